/*
 * test_options.c: the options parser and its canonical JSON
 * (src/nn/options.c): defaults, every key, every kind of error, the round
 * trip, and malformed JSON of many kinds, including every prefix of a valid
 * document (each must fail cleanly; the fuzzer goes further).
 */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "options.h"

/* Parse the NUL-terminated json over defaults into *o; returns the code. */
static int
parse(nn_options *o, const char *json, nn_status *st)
{
	nn_options_default(o);
	memset(st, 0, sizeof(*st));
	return nn_options_parse(o, json, strlen(json), st);
}

/* Expect json to fail with code and a message containing want. */
static void
expect_fail(const char *json, nn_code code, const char *want)
{
	nn_options	o;
	nn_status	st;
	int			rc = parse(&o, json, &st);
	size_t		n;

	T_OK(rc == code && strstr(st.msg, want) != NULL, "%s -> code %d \"%s\" (got %d: %s)",
		 json, code, want, rc, st.msg);
	n = strlen(st.msg);
	/* a value cut short ends in "...", which is not a sentence's period */
	T_OK(n > 0 && n < NN_MSG_LEN - 1 &&
		 (st.msg[n - 1] != '.' || (n > 3 && strcmp(st.msg + n - 3, "...") == 0)),
		 "message fits and has no trailing period");
}

/* field-by-field equality of two option sets */
static int
options_equal(const nn_options *a, const nn_options *b)
{
	return strcmp(a->layers, b->layers) == 0 &&
		a->input.h == b->input.h && a->input.w == b->input.w && a->input.c == b->input.c &&
		a->classes == b->classes && a->epochs == b->epochs && a->batch_size == b->batch_size &&
		a->optimizer == b->optimizer && a->learning_rate == b->learning_rate &&
		a->lr_schedule == b->lr_schedule && a->momentum == b->momentum &&
		a->weight_decay == b->weight_decay && a->seed == b->seed &&
		a->normalize == b->normalize && a->validation_fraction == b->validation_fraction &&
		a->threads == b->threads && a->record_times == b->record_times;
}

T_CASE(test_options_defaults)
{
	nn_options	o;
	nn_status	st;
	char		spec[NN_MAX_SPEC];

	nn_options_default(&o);
	T_OK(o.layers[0] == '\0' && o.input.h == 0 && o.classes == 10 && o.epochs == NN_DEFAULT_EPOCHS &&
		 o.batch_size == NN_DEFAULT_BATCH && o.optimizer == NN_OPT_ADAM &&
		 o.learning_rate == NN_DEFAULT_LR && o.lr_schedule == NN_LR_ONECYCLE &&
		 o.momentum == 0.9f && o.weight_decay == 0 && o.seed == NN_DEFAULT_SEED &&
		 o.normalize == NN_NORM_MINMAX && o.validation_fraction == 0 && o.threads == 0 &&
		 o.record_times == 1, "defaults as documented");
	T_OK(parse(&o, "{}", &st) == NN_OK, "{} parses");
	T_OK(parse(&o, " \t\r\n{ \n}\n ", &st) == NN_OK, "whitespace around {}");
	nn_options_spec(&o, spec, sizeof(spec));
	T_OK(strcmp(spec, "conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) dropout(0.25) flatten dense(128) relu dropout(0.5) dense(10)") == 0,
		 "default spec for 10 classes: %s", spec);
	parse(&o, "{\"classes\": 3}", &st);
	nn_options_spec(&o, spec, sizeof(spec));
	T_OK(strstr(spec, "dense(128) relu dropout(0.5) dense(3)") != NULL, "default spec follows classes: %s", spec);
	parse(&o, "{\"layers\": \"dense(3)\", \"classes\": 3}", &st);
	nn_options_spec(&o, spec, sizeof(spec));
	T_OK(strcmp(spec, "dense(3)") == 0, "given layers win");
}

T_CASE(test_options_every_key)
{
	nn_options	o;
	nn_status	st;
	const char *json =
		"{\"layers\": \"conv(8,3) relu dense(5)\", \"input\": [32, 30, 3], \"classes\": 5,"
		" \"epochs\": 3, \"batch_size\": 128, \"optimizer\": \"momentum\", \"learning_rate\": 0.05,"
		" \"lr_schedule\": \"cosine\", \"momentum\": 0.8, \"weight_decay\": 0.0005, \"seed\": 9007199254740992,"
		" \"normalize\": \"zscore\", \"validation_fraction\": 0.5, \"threads\": 4, \"record_times\": false}";

	T_OK(parse(&o, json, &st) == NN_OK, "all keys parse: %s", st.msg);
	T_OK(strcmp(o.layers, "conv(8,3) relu dense(5)") == 0, "layers");
	T_OK(o.input.h == 32 && o.input.w == 30 && o.input.c == 3, "input h, w, c in order");
	T_OK(o.classes == 5 && o.epochs == 3 && o.batch_size == 128, "integers");
	T_OK(o.optimizer == NN_OPT_MOMENTUM && o.lr_schedule == NN_LR_COSINE && o.normalize == NN_NORM_ZSCORE, "enums");
	T_OK(o.learning_rate == 0.05f && o.momentum == 0.8f && o.weight_decay == 0.0005f &&
		 o.validation_fraction == 0.5f, "floats");
	T_OK(o.seed == 9007199254740992ULL, "seed 2^53 exactly");
	T_OK(o.threads == 4 && o.record_times == 0, "threads, record_times");

	/* other spellings */
	T_OK(parse(&o, "{\"optimizer\": \"SGD\", \"lr_schedule\": \"Step\", \"normalize\": \"NONE\"}", &st) == NN_OK &&
		 o.optimizer == NN_OPT_SGD && o.lr_schedule == NN_LR_STEP && o.normalize == NN_NORM_NONE,
		 "enum names are case-insensitive");
	T_OK(parse(&o, "{\"lr_schedule\": \"constant\", \"normalize\": \"minmax\", \"optimizer\": \"adam\"}", &st) == NN_OK &&
		 o.lr_schedule == NN_LR_CONSTANT && o.normalize == NN_NORM_MINMAX && o.optimizer == NN_OPT_ADAM,
		 "the other enum values");
	T_OK(parse(&o, "{\"epochs\": 3.0, \"batch_size\": 1e2, \"classes\": 2E+1, \"threads\": -0}", &st) == NN_OK &&
		 o.epochs == 3 && o.batch_size == 100 && o.classes == 20 && o.threads == 0,
		 "whole numbers with a fraction or exponent are integers");
	T_OK(parse(&o, "{\"learning_rate\": 1, \"momentum\": 0, \"weight_decay\": 1, \"seed\": 0}", &st) == NN_OK &&
		 o.learning_rate == 1.0f && o.momentum == 0 && o.weight_decay == 1.0f && o.seed == 0, "range edges");
	T_OK(parse(&o, "{\"learning_rate\": 10, \"record_times\": true, \"input\": null}", &st) == NN_OK &&
		 o.learning_rate == 10.0f && o.record_times == 1 && o.input.h == 0, "upper lr edge, true, null input");
	T_OK(parse(&o, "{\"layers\": \"dense(\\u0031\\u0030)\\t\\\"\\/\\\\\"}", &st) == NN_OK &&
		 strcmp(o.layers, "dense(10)\t\"/\\") == 0, "escapes in strings: %s", o.layers);
	T_OK(parse(&o, "{\"layers\": \"\\u00e9\\ud83d\\ude00\xc3\xa9\"}", &st) == NN_OK &&
		 strcmp(o.layers, "\xc3\xa9\xf0\x9f\x98\x80\xc3\xa9") == 0, "\\u escapes, a surrogate pair and raw UTF-8");
	T_OK(parse(&o, "{\"\\u0065pochs\": 7}", &st) == NN_OK && o.epochs == 7, "escaped key");
	T_OK(parse(&o, "{\"layers\": \"\"}", &st) == NN_OK && o.layers[0] == '\0', "empty layers means the default");

	/* parse layers over non-default values: only given keys change */
	nn_options_default(&o);
	o.epochs = 77;
	T_OK(nn_options_parse(&o, "{\"classes\": 4}", 14, &st) == NN_OK && o.epochs == 77 && o.classes == 4,
		 "parse works over the values already there");
	/* not NUL-terminated: len is the end */
	T_OK(nn_options_parse(&o, "{\"classes\": 6}garbage", 14, &st) == NN_OK && o.classes == 6, "len bounds the input");
}

T_CASE(test_options_errors)
{
	expect_fail("{\"epoch\": 3}", NN_ERR_INVALID, "unknown option \"epoch\" (did you mean \"epochs\"?)");
	expect_fail("{\"epoch\": 3}", NN_ERR_INVALID,
				"allowed: layers, input, classes, epochs, batch_size, optimizer, learning_rate, lr_schedule, momentum, weight_decay, seed, normalize, validation_fraction, threads, record_times");
	expect_fail("{\"validation_fractions\": 3}", NN_ERR_INVALID, "did you mean \"validation_fraction\"");
	expect_fail("{\"Epochs\": 3}", NN_ERR_INVALID, "unknown option \"Epochs\" (did you mean \"epochs\"?)");
	expect_fail("{\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\": 1}",
				NN_ERR_INVALID, "unknown option \"zzzzzzzzzzzzzzzzzzzzzzzz...\"; allowed");
	expect_fail("{\"epochs\": \"10\"}", NN_ERR_INVALID, "option \"epochs\" must be an integer, not a string");
	expect_fail("{\"epochs\": true}", NN_ERR_INVALID, "option \"epochs\" must be an integer, not a boolean");
	expect_fail("{\"epochs\": null}", NN_ERR_INVALID, "option \"epochs\" must be an integer, not null");
	expect_fail("{\"epochs\": [1]}", NN_ERR_INVALID, "must be an integer, not an array");
	expect_fail("{\"epochs\": {}}", NN_ERR_INVALID, "must be an integer, not an object");
	expect_fail("{\"epochs\": 3.5}", NN_ERR_INVALID, "option \"epochs\" must be an integer, not 3.5");
	expect_fail("{\"epochs\": 0}", NN_ERR_INVALID, "option \"epochs\" must be between 1 and 10000, not 0");
	expect_fail("{\"epochs\": 10001}", NN_ERR_INVALID, "between 1 and 10000, not 10001");
	expect_fail("{\"epochs\": -1}", NN_ERR_INVALID, "between 1 and 10000, not -1");
	expect_fail("{\"epochs\": 1e999}", NN_ERR_INVALID, "between 1 and 10000, not 1e999");
	expect_fail("{\"epochs\": 99999999999999999999999999}", NN_ERR_INVALID, "between 1 and 10000, not 99999999999999999999");
	expect_fail("{\"classes\": 1}", NN_ERR_INVALID, "option \"classes\" must be between 2 and 4096, not 1");
	expect_fail("{\"classes\": 4097}", NN_ERR_INVALID, "between 2 and 4096");
	expect_fail("{\"batch_size\": 65537}", NN_ERR_INVALID, "option \"batch_size\" must be between 1 and 65536, not 65537");
	expect_fail("{\"threads\": 257}", NN_ERR_INVALID, "option \"threads\" must be between 0 and 256");
	expect_fail("{\"seed\": 9007199254740993}", NN_ERR_INVALID, "option \"seed\" must be between 0 and 9007199254740992");
	expect_fail("{\"seed\": -1}", NN_ERR_INVALID, "option \"seed\" must be between 0");
	expect_fail("{\"optimizer\": \"rmsprop\"}", NN_ERR_INVALID,
				"option \"optimizer\" must be \"sgd\", \"momentum\" or \"adam\", not \"rmsprop\"");
	expect_fail("{\"optimizer\": 1}", NN_ERR_INVALID, "option \"optimizer\" must be \"sgd\", \"momentum\" or \"adam\", not a number");
	expect_fail("{\"lr_schedule\": \"linear\"}", NN_ERR_INVALID,
				"must be \"constant\", \"step\", \"cosine\" or \"onecycle\", not \"linear\"");
	expect_fail("{\"normalize\": \"l2\"}", NN_ERR_INVALID, "must be \"none\", \"minmax\" or \"zscore\", not \"l2\"");
	expect_fail("{\"learning_rate\": 0}", NN_ERR_INVALID,
				"option \"learning_rate\" must be greater than 0 and at most 10, not 0");
	expect_fail("{\"learning_rate\": 1e-60}", NN_ERR_INVALID, "not 1e-60");	/* 0 as a float */
	expect_fail("{\"learning_rate\": 10.5}", NN_ERR_INVALID, "not 10.5");
	expect_fail("{\"learning_rate\": \"fast\"}", NN_ERR_INVALID, "option \"learning_rate\" must be a number, not a string");
	expect_fail("{\"momentum\": 1}", NN_ERR_INVALID, "option \"momentum\" must be at least 0 and less than 1, not 1");
	expect_fail("{\"momentum\": 0.999999999}", NN_ERR_INVALID, "less than 1");	/* 1 as a float */
	expect_fail("{\"momentum\": -0.1}", NN_ERR_INVALID, "not -0.1");
	expect_fail("{\"weight_decay\": 1.5}", NN_ERR_INVALID, "option \"weight_decay\" must be between 0 and 1, not 1.5");
	expect_fail("{\"validation_fraction\": 0.51}", NN_ERR_INVALID,
				"option \"validation_fraction\" must be between 0 and 0.5, not 0.51");
	expect_fail("{\"record_times\": 1}", NN_ERR_INVALID, "option \"record_times\" must be a boolean, not a number");
	expect_fail("{\"record_times\": \"yes\"}", NN_ERR_INVALID, "must be a boolean, not a string");
	expect_fail("{\"layers\": 5}", NN_ERR_INVALID, "option \"layers\" must be a string, not a number");
	expect_fail("{\"input\": 784}", NN_ERR_INVALID, "option \"input\" must be an array of 3 integers [h, w, c], not a number");
	expect_fail("{\"input\": [28, 28]}", NN_ERR_INVALID, "option \"input\" must have 3 values [h, w, c], not 2");
	expect_fail("{\"input\": []}", NN_ERR_INVALID, "not 0");
	expect_fail("{\"input\": [1, 2, 3, 4]}", NN_ERR_INVALID, "not 4");
	expect_fail("{\"input\": [28, 0, 1]}", NN_ERR_INVALID, "each value of option \"input\" must be between 1 and 4096, not 0");
	expect_fail("{\"input\": [28, 28, \"1\"]}", NN_ERR_INVALID, "each value of option \"input\" must be an integer, not a string");
	expect_fail("{\"input\": [28, 28, [1]]}", NN_ERR_INVALID, "must be an integer, not an array");
	expect_fail("{\"epochs\": 3, \"epochs\": 4}", NN_ERR_INVALID, "option \"epochs\" is given twice");
	expect_fail("[]", NN_ERR_INVALID, "options must be a JSON object, not an array");
	expect_fail("\"adam\"", NN_ERR_INVALID, "options must be a JSON object, not a string");
	expect_fail("null", NN_ERR_INVALID, "options must be a JSON object, not null");
	expect_fail("42", NN_ERR_INVALID, "options must be a JSON object");
}

T_CASE(test_options_error_leaves_options)
{
	nn_options	o,
				before;
	nn_status	st;

	nn_options_default(&o);
	before = o;
	T_OK(nn_options_parse(&o, "{\"epochs\": 5, \"classes\": 1}", 27, &st) == NN_ERR_INVALID, "fails");
	T_OK(options_equal(&o, &before), "a failed parse changes nothing (epochs stays %d)", o.epochs);
	T_OK(nn_options_parse(&o, NULL, 0, &st) == NN_ERR_INVALID, "NULL input");
}

T_CASE(test_options_layers_length)
{
	static char json[NN_MAX_SPEC + 64];
	nn_options	o;
	nn_status	st;
	size_t		n;

	n = snprintf(json, sizeof(json), "{\"layers\": \"");
	memset(json + n, 'x', NN_MAX_SPEC - 1);
	snprintf(json + n + NN_MAX_SPEC - 1, sizeof(json) - n - NN_MAX_SPEC + 1, "\"}");
	T_OK(parse(&o, json, &st) == NN_OK && strlen(o.layers) == NN_MAX_SPEC - 1, "1023 bytes of layers fit");
	n = snprintf(json, sizeof(json), "{\"layers\": \"");
	memset(json + n, 'x', NN_MAX_SPEC);
	snprintf(json + n + NN_MAX_SPEC, sizeof(json) - n - NN_MAX_SPEC, "\"}");
	T_OK(parse(&o, json, &st) == NN_ERR_LIMIT && strstr(st.msg, "option \"layers\" is 1024 bytes long"),
		 "1024 bytes do not: %s", st.msg);
}

T_CASE(test_options_malformed)
{
	static const struct
	{
		const char *json;
		const char *want;
	}			cases[] = {
		{"", "position 1 (end of input): expected a JSON value"},
		{"   ", "position 4 (end of input)"},
		{"{", "position 2 (end of input): expected a key string or \"}\""},
		{"{\"epochs\" 3}", "position 11 near \"3}\": expected \":\" after a key"},
		{"{\"epochs\": 3,}", "position 14 near \"}\": expected a key string"},
		{"{\"epochs\": 3 \"seed\": 1}", "position 14", },
		{"{epochs: 3}", "position 2 near \"epochs: 3}\""},
		{"{'epochs': 3}", "expected a key string"},
		{"{\"epochs\": 03}", "no leading zeros"},
		{"{\"epochs\": +3}", "expected a JSON value"},
		{"{\"epochs\": 3.}", "digits must follow the decimal point"},
		{"{\"epochs\": .5}", "expected a JSON value"},
		{"{\"epochs\": 1e}", "digits must follow the exponent"},
		{"{\"epochs\": -}", "invalid number"},
		{"{\"epochs\": NaN}", "expected a JSON value"},
		{"{\"epochs\": Infinity}", "expected a JSON value"},
		{"{\"record_times\": tru}", "expected a JSON value"},
		{"{\"record_times\": True}", "expected a JSON value"},
		{"{\"layers\": \"abc}", "unterminated string"},
		{"{\"layers\": \"a\\qb\"}", "invalid escape"},
		{"{\"layers\": \"a\\u12\"}", "\\u needs 4 hex digits"},
		{"{\"layers\": \"a\\u12g4\"}", "\\u needs 4 hex digits"},
		{"{\"layers\": \"\\ud83d\"}", "high surrogate not followed by a low one"},
		{"{\"layers\": \"\\ud83d\\u0041\"}", "high surrogate not followed by a low one"},
		{"{\"layers\": \"\\ude00\"}", "lone low surrogate"},
		{"{\"layers\": \"\\u0000\"}", "\\u0000 is not allowed"},
		{"{\"layers\": \"a\tb\"}", "control character"},
		{"{\"layers\": \"\xff\"}", "invalid UTF-8"},
		{"{\"layers\": \"\xc0\xaf\"}", "invalid UTF-8"},	/* overlong "/" */
		{"{\"layers\": \"\xed\xa0\x80\"}", "invalid UTF-8"},	/* encoded surrogate */
		{"{\"layers\": \"\xe2\x82\"}", "invalid UTF-8"},	/* truncated sequence */
		{"{\"layers\": \"\xf4\x90\x80\x80\"}", "invalid UTF-8"},	/* above U+10FFFF */
		{"{} {}", "position 4 near \"{}\": unexpected text after the JSON value"},
		{"{}x", "unexpected text"},
		{"{\"input\": [1, 2, 3}", "expected \",\" or \"]\""},
		{"{\"input\": [1, 2, 3,]}", "expected a JSON value"},
		{"{\"input\": [1 2 3]}", "expected \",\" or \"]\""},
		{"{\"a\": 1 ]", "expected \",\" or \"}\""},
		{"\xef\xbb\xbf{}", "position 1 near \"???{}\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_fail(cases[i].json, NN_ERR_PARSE, cases[i].want);
	/* syntax errors win over unknown keys found earlier */
	expect_fail("{\"nope\": 1, \"epochs\": }", NN_ERR_PARSE, "expected a JSON value");
	/* a NUL byte inside len is just a bad byte */
	{
		nn_options	o;
		nn_status	st;

		nn_options_default(&o);
		T_OK(nn_options_parse(&o, "{\"epochs\": 3\0}", 14, &st) == NN_ERR_PARSE, "NUL inside: %s", st.msg);
	}
}

T_CASE(test_options_depth_and_size)
{
	static char json[NN_MAX_OPTIONS_JSON + 16];
	nn_options	o;
	nn_status	st;
	size_t		n = 0;

	/*
	 * An unknown key with 31 nested arrays is 32 levels with the object:
	 * deep enough to parse, so it fails as an unknown key; one more level
	 * is a limit error.
	 */
	n = snprintf(json, sizeof(json), "{\"x\": ");
	for (int i = 0; i < 31; i++)
		json[n++] = '[';
	for (int i = 0; i < 31; i++)
		json[n++] = ']';
	json[n++] = '}';
	json[n] = '\0';
	T_OK(parse(&o, json, &st) == NN_ERR_INVALID && strstr(st.msg, "unknown option \"x\""), "32 levels parse: %s", st.msg);
	n = snprintf(json, sizeof(json), "{\"x\": ");
	for (int i = 0; i < 32; i++)
		json[n++] = '[';
	for (int i = 0; i < 32; i++)
		json[n++] = ']';
	json[n++] = '}';
	json[n] = '\0';
	T_OK(parse(&o, json, &st) == NN_ERR_LIMIT && strstr(st.msg, "deeper than 32 levels at position 38"),
		 "33 levels are refused: %s", st.msg);
	/* a deep unclosed prefix must not recurse without bound */
	memset(json, '[', NN_MAX_OPTIONS_JSON);
	json[NN_MAX_OPTIONS_JSON] = '\0';
	T_OK(parse(&o, json, &st) == NN_ERR_LIMIT, "16384 brackets: %s", st.msg);
	/* size limit */
	memset(json, ' ', NN_MAX_OPTIONS_JSON + 1);
	json[0] = '{';
	json[NN_MAX_OPTIONS_JSON] = '}';
	json[NN_MAX_OPTIONS_JSON + 1] = '\0';
	T_OK(parse(&o, json, &st) == NN_ERR_LIMIT && strstr(st.msg, "16385 bytes"), "over the size limit: %s", st.msg);
	json[NN_MAX_OPTIONS_JSON - 1] = '}';
	json[NN_MAX_OPTIONS_JSON] = '\0';
	T_OK(parse(&o, json, &st) == NN_OK, "exactly the size limit parses: %s", st.msg);
}

T_CASE(test_options_truncated_everywhere)
{
	const char *json =
		"{\"layers\": \"conv(8,3) \\u0072elu \\ud83d\\ude00 dense(5)\", \"input\": [32, 30, 3],"
		" \"classes\": 5, \"learning_rate\": -0.5e-3, \"record_times\": false, \"seed\": null,"
		" \"x\": {\"y\": [true, null, 1.5E+2, \"z\"]}}";
	size_t		len = strlen(json);
	int			bad = 0;

	/* every strict prefix is malformed JSON: a parse error, never a crash */
	for (size_t n = 0; n < len; n++)
	{
		char	   *copy = malloc(n ? n : 1);
		nn_options	o;
		nn_status	st = {0};
		int			rc;

		memcpy(copy, json, n);	/* exactly n bytes: a read past them is an ASan error */
		nn_options_default(&o);
		rc = nn_options_parse(&o, copy, n, &st);
		if (rc != NN_ERR_PARSE)
		{
			if (bad++ < 3)
				T_OK(0, "prefix of %zu bytes gives %d: %s", n, rc, st.msg);
		}
		free(copy);
	}
	T_OK(bad == 0, "all %zu prefixes fail to parse (%d did not)", len, bad);
	{
		nn_options	o;
		nn_status	st = {0};

		nn_options_default(&o);
		T_OK(nn_options_parse(&o, json, len, &st) == NN_ERR_INVALID, "the whole document is valid JSON: %s", st.msg);
	}
}

T_CASE(test_options_round_trip)
{
	nn_options	o,
				back;
	nn_status	st;
	char		buf[NN_MAX_OPTIONS_JSON];
	int			n;

	nn_options_default(&o);
	n = nn_options_to_json(&o, buf, sizeof(buf));
	T_OK(n > 0 && (size_t) n == strlen(buf), "defaults write (%d bytes)", n);
	T_OK(strcmp(buf, "{\"layers\": \"\", \"input\": null, \"classes\": 10, \"epochs\": 8, \"batch_size\": 64,"
				" \"optimizer\": \"adam\", \"learning_rate\": 0.005, \"lr_schedule\": \"onecycle\", \"momentum\": 0.9,"
				" \"weight_decay\": 0, \"seed\": 42, \"normalize\": \"minmax\", \"validation_fraction\": 0,"
				" \"threads\": 0, \"record_times\": true}") == 0, "canonical defaults: %s", buf);
	T_OK(nn_options_parse(&back, buf, n, &st) == NN_OK && options_equal(&back, &o), "defaults read back");

	/* odd values: a float that needs 9 digits, escapes, control bytes */
	nn_options_default(&o);
	snprintf(o.layers, sizeof(o.layers), "conv(8,3) \"quoted\" back\\slash\ttab\nnl\x01 \xc3\xa9");
	o.input = (nn_shape) {4096, 1, 4096};
	o.classes = 4096;
	o.epochs = 10000;
	o.batch_size = 65536;
	o.optimizer = NN_OPT_SGD;
	o.learning_rate = nextafterf(0.1f, 1.0f);	/* needs 9 digits */
	o.lr_schedule = NN_LR_STEP;
	o.momentum = 0.99999994f;	/* the float just below 1 */
	o.weight_decay = 1e-38f;	/* a subnormal float */
	o.seed = 9007199254740992ULL;
	o.normalize = NN_NORM_ZSCORE;
	o.validation_fraction = 0.333333343f;
	o.threads = 256;
	o.record_times = 0;
	n = nn_options_to_json(&o, buf, sizeof(buf));
	T_OK(n > 0, "writes: %s", buf);
	nn_options_default(&back);
	T_OK(nn_options_parse(&back, buf, n, &st) == NN_OK, "reads back: %s", st.msg);
	T_OK(options_equal(&back, &o), "parse(to_json(o)) == o");
	T_OK(strstr(buf, "\\\"quoted\\\" back\\\\slash\\ttab\\nnl\\u0001") != NULL, "strings escaped");

	/* too small a buffer */
	T_OK(nn_options_to_json(&o, buf, 20) == -1 && buf[0] == '\0', "-1 when the buffer is too small");
	n = nn_options_to_json(&o, buf, sizeof(buf));
	T_OK(nn_options_to_json(&o, buf, n) == -1 && nn_options_to_json(&o, buf, n + 1) == n, "exact fit needs room for the NUL");
}

T_CASE(test_options_names)
{
	T_OK(strcmp(nn_optimizer_name(NN_OPT_ADAM), "adam") == 0 && nn_optimizer_name(3) == NULL &&
		 nn_optimizer_name(-1) == NULL, "optimizer names");
	T_OK(strcmp(nn_schedule_name(NN_LR_ONECYCLE), "onecycle") == 0 && nn_schedule_name(4) == NULL, "schedule names");
	T_OK(strcmp(nn_norm_name(NN_NORM_ZSCORE), "zscore") == 0 && nn_norm_name(3) == NULL, "norm names");
	T_OK(nn_optimizer_from_name("Momentum") == NN_OPT_MOMENTUM && nn_optimizer_from_name("rmsprop") == -1 &&
		 nn_optimizer_from_name(NULL) == -1, "optimizer from name");
	T_OK(nn_schedule_from_name("cosine") == NN_LR_COSINE && nn_norm_from_name("none") == NN_NORM_NONE &&
		 nn_norm_from_name("") == -1, "schedule and norm from name");
}
