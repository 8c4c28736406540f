/*
 * test_options.c: the option table and its setters (src/nn/options.c):
 * defaults, every key through every setter, every kind of error with its
 * message, "did you mean", text parsed by type (bench/nn_bench --set), the
 * table's own consistency, and the README's options reference, which must
 * list exactly the table's rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "options.h"

/* value constructors for the tests */
#define V_NULL ((nn_value) {.kind = NN_VALUE_NULL})
#define V_BOOL(x) ((nn_value) {.kind = NN_VALUE_BOOL, .b = (x)})
#define V_INT(x) ((nn_value) {.kind = NN_VALUE_INT, .i = (x)})
#define V_FLOAT(x) ((nn_value) {.kind = NN_VALUE_FLOAT, .f = (x)})
#define V_SHOWN(x, t) ((nn_value) {.kind = NN_VALUE_FLOAT, .f = (x), .shown = (t)})
#define V_TEXT(x) ((nn_value) {.kind = NN_VALUE_TEXT, .s = (x), .len = strlen(x)})
#define V_OBJECT ((nn_value) {.kind = NN_VALUE_OBJECT})
#define V_ARRAY(n, it) ((nn_value) {.kind = NN_VALUE_ARRAY, .nitems = (n), .items = (it)})

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

/*
 * Expect setting key to v over the defaults to fail with code and a message
 * containing want, leaving the options as they were.
 */
static void
expect_fail(const char *key, nn_value v, nn_code code, const char *want)
{
	nn_options	o,
				before;
	nn_status	st = {0};
	int			rc;
	size_t		n;

	nn_options_default(&o);
	before = o;
	rc = nn_options_set(&o, key, &v, &st);
	T_OK(rc == code && strstr(st.msg, want) != NULL, "%s -> code %d \"%s\" (got %d: %s)",
		 key, code, want, rc, st.msg);
	n = strlen(st.msg);
	/* a value cut short ends in "...", which is not a sentence's period */
	T_OK(n > 0 && n < NN_MSG_LEN - 1 && options_equal(&o, &before) &&
		 (st.msg[n - 1] != '.' || (n > 3 && strcmp(st.msg + n - 3, "...") == 0)),
		 "%s: the message fits, has no trailing period, and nothing changed", key);
}

/* Expect "key=value" to fail with a message containing want. */
static void
expect_assign_fail(const char *assignment, const char *want)
{
	nn_options	o;
	nn_status	st = {0};
	int			rc;

	nn_options_default(&o);
	rc = nn_options_assign(&o, assignment, &st);
	T_OK(rc == NN_ERR_INVALID && strstr(st.msg, want) != NULL, "--set %s -> \"%s\" (got %d: %s)",
		 assignment, want, rc, st.msg);
}

/* Set a value over o, reporting the message on failure. */
static int
set(nn_options *o, const char *key, nn_value v)
{
	nn_status	st = {0};
	int			rc = nn_options_set(o, key, &v, &st);

	if (rc != NN_OK)
		T_OK(0, "setting %s: %s", key, st.msg);
	return rc == NN_OK;
}

T_CASE(test_options_defaults)
{
	nn_options	o;
	char		spec[NN_MAX_SPEC];

	nn_options_default(&o);
	T_OK(o.layers[0] == '\0' && o.input.h == 0 && o.classes == 10 && o.epochs == NN_DEFAULT_EPOCHS &&
		 o.batch_size == NN_DEFAULT_BATCH && o.optimizer == NN_OPT_ADAM &&
		 o.learning_rate == NN_DEFAULT_LR && o.lr_schedule == NN_LR_ONECYCLE &&
		 o.momentum == 0.9f && o.weight_decay == 0 && o.seed == NN_DEFAULT_SEED &&
		 o.normalize == NN_NORM_AUTO && o.validation_fraction == 0 && o.threads == 0 &&
		 o.record_times == 1, "defaults as documented");
	nn_options_spec(&o, spec, sizeof(spec));
	T_OK(strcmp(spec, "conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) dropout(0.25) flatten dense(128) relu dropout(0.5) dense(10)") == 0,
		 "default spec for 10 classes: %s", spec);
	set(&o, "classes", V_INT(3));
	nn_options_spec(&o, spec, sizeof(spec));
	T_OK(strstr(spec, "dense(128) relu dropout(0.5) dense(3)") != NULL, "default spec follows classes: %s", spec);
	set(&o, "layers", V_TEXT("dense(3)"));
	nn_options_spec(&o, spec, sizeof(spec));
	T_OK(strcmp(spec, "dense(3)") == 0, "given layers win");
}

T_CASE(test_options_every_key)
{
	nn_options	o;
	nn_status	st = {0};
	nn_value	dims[3] = {V_INT(32), V_INT(30), V_INT(3)};

	nn_options_default(&o);
	T_OK(set(&o, "layers", V_TEXT("conv(8,3) relu dense(5)")) && set(&o, "input", V_ARRAY(3, dims)) &&
		 set(&o, "classes", V_INT(5)) && set(&o, "epochs", V_INT(3)) && set(&o, "batch_size", V_INT(128)) &&
		 set(&o, "optimizer", V_TEXT("momentum")) && set(&o, "learning_rate", V_FLOAT(0.05)) &&
		 set(&o, "lr_schedule", V_TEXT("cosine")) && set(&o, "momentum", V_FLOAT(0.8)) &&
		 set(&o, "weight_decay", V_FLOAT(0.0005)) && set(&o, "seed", V_INT(9007199254740992LL)) &&
		 set(&o, "normalize", V_TEXT("zscore")) && set(&o, "validation_fraction", V_FLOAT(0.5)) &&
		 set(&o, "threads", V_INT(4)) && set(&o, "record_times", V_BOOL(0)), "every key sets");
	T_OK(strcmp(o.layers, "conv(8,3) relu dense(5)") == 0, "layers");
	T_OK(o.input.h == 32 && o.input.w == 30 && o.input.c == 3, "input h, w, c in order");
	T_OK(o.classes == 5 && o.epochs == 3 && o.batch_size == 128, "integers");
	T_OK(o.optimizer == NN_OPT_MOMENTUM && o.lr_schedule == NN_LR_COSINE && o.normalize == NN_NORM_ZSCORE, "enums");
	T_OK(o.learning_rate == 0.05f && o.momentum == 0.8f && o.weight_decay == 0.0005f &&
		 o.validation_fraction == 0.5f, "floats");
	T_OK(o.seed == 9007199254740992ULL, "seed 2^53 exactly");
	T_OK(o.threads == 4 && o.record_times == 0, "threads, record_times");

	/* the typed shorthands */
	nn_options_default(&o);
	T_OK(nn_options_set_int(&o, "epochs", 7, &st) == NN_OK && o.epochs == 7, "nn_options_set_int");
	T_OK(nn_options_set_float(&o, "momentum", 0.25, &st) == NN_OK && o.momentum == 0.25f, "nn_options_set_float");
	T_OK(nn_options_set_bool(&o, "record_times", 0, &st) == NN_OK && o.record_times == 0, "nn_options_set_bool");
	T_OK(nn_options_set_text(&o, "normalize", "none", &st) == NN_OK && o.normalize == NN_NORM_NONE, "nn_options_set_text (enum)");
	T_OK(nn_options_set_shape(&o, "input", (nn_shape) {4, 5, 6}, &st) == NN_OK && o.input.h == 4 && o.input.c == 6,
		 "nn_options_set_shape");
	T_OK(nn_options_set_shape(&o, "input", (nn_shape) {0, 0, 0}, &st) == NN_OK && o.input.h == 0,
		 "a zero shape is \"not given\"");

	/* other spellings */
	nn_options_default(&o);
	T_OK(set(&o, "optimizer", V_TEXT("SGD")) && set(&o, "lr_schedule", V_TEXT("Step")) &&
		 set(&o, "normalize", V_TEXT("NONE")) &&
		 o.optimizer == NN_OPT_SGD && o.lr_schedule == NN_LR_STEP && o.normalize == NN_NORM_NONE,
		 "enum names are case-insensitive");
	T_OK(set(&o, "lr_schedule", V_TEXT("constant")) && set(&o, "normalize", V_TEXT("minmax")) &&
		 set(&o, "optimizer", V_TEXT("adam")) &&
		 o.lr_schedule == NN_LR_CONSTANT && o.normalize == NN_NORM_MINMAX && o.optimizer == NN_OPT_ADAM,
		 "the other enum values");
	T_OK(set(&o, "epochs", V_FLOAT(3.0)) && set(&o, "batch_size", V_FLOAT(1e2)) &&
		 set(&o, "classes", V_FLOAT(2e1)) && set(&o, "threads", V_FLOAT(-0.0)) &&
		 o.epochs == 3 && o.batch_size == 100 && o.classes == 20 && o.threads == 0,
		 "whole numbers given as floats are integers");
	T_OK(set(&o, "learning_rate", V_INT(1)) && set(&o, "momentum", V_INT(0)) &&
		 set(&o, "weight_decay", V_INT(1)) && set(&o, "seed", V_INT(0)) &&
		 o.learning_rate == 1.0f && o.momentum == 0 && o.weight_decay == 1.0f && o.seed == 0,
		 "integers are numbers; range edges");
	T_OK(set(&o, "learning_rate", V_INT(10)) && set(&o, "record_times", V_BOOL(1)) && set(&o, "input", V_NULL) &&
		 o.learning_rate == 10.0f && o.record_times == 1 && o.input.h == 0, "upper lr edge, true, null input");
	T_OK(set(&o, "layers", V_TEXT("\xc3\xa9\xf0\x9f\x98\x80 dense(10)")) &&
		 strcmp(o.layers, "\xc3\xa9\xf0\x9f\x98\x80 dense(10)") == 0, "UTF-8 text passes through");
	T_OK(set(&o, "layers", V_TEXT("")) && o.layers[0] == '\0', "empty layers means the default");
	{
		/* text need not be NUL-terminated: len is its end */
		nn_value	v = {.kind = NN_VALUE_TEXT, .s = "dense(4)garbage", .len = 8};

		T_OK(set(&o, "layers", v) && strcmp(o.layers, "dense(4)") == 0, "len bounds the text");
	}

	/* setting works over the values already there */
	nn_options_default(&o);
	o.epochs = 77;
	T_OK(set(&o, "classes", V_INT(4)) && o.epochs == 77 && o.classes == 4, "only the given key changes");
}

T_CASE(test_options_errors)
{
	nn_value	two[2] = {V_INT(28), V_INT(28)};
	nn_value	four[4] = {V_INT(1), V_INT(2), V_INT(3), V_INT(4)};
	nn_value	zero[3] = {V_INT(28), V_INT(0), V_INT(1)};
	nn_value	big[3] = {V_SHOWN(1e10, "10000000000"), V_INT(28), V_INT(1)};
	nn_value	text[3] = {V_INT(28), V_INT(28), V_TEXT("1")};
	nn_value	nested[3] = {V_INT(28), V_INT(28), V_ARRAY(1, NULL)};
	nn_value	frac[3] = {V_INT(28), V_FLOAT(2.5), V_INT(1)};

	expect_fail("epoch", V_INT(3), NN_ERR_INVALID, "unknown option \"epoch\" (did you mean \"epochs\"?)");
	expect_fail("epoch", V_INT(3), NN_ERR_INVALID,
				"allowed: layers, input, classes, epochs, batch_size, optimizer, learning_rate, lr_schedule, momentum, weight_decay, seed, normalize, validation_fraction, threads, record_times");
	expect_fail("validation_fractions", V_INT(3), NN_ERR_INVALID, "did you mean \"validation_fraction\"");
	expect_fail("Epochs", V_INT(3), NN_ERR_INVALID, "unknown option \"Epochs\" (did you mean \"epochs\"?)");
	expect_fail("colour", V_BOOL(1), NN_ERR_INVALID, "unknown option \"colour\"; allowed: layers");
	expect_fail("", V_INT(1), NN_ERR_INVALID, "unknown option \"\"; allowed: layers");
	expect_fail("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
				V_INT(1), NN_ERR_INVALID, "unknown option \"zzzzzzzzzzzzzzzzzzzzzzzz...\"; allowed");
	expect_fail("a\tb\"c", V_INT(1), NN_ERR_INVALID, "unknown option \"a?b?c\"");
	expect_fail("epochs", V_TEXT("10"), NN_ERR_INVALID, "option \"epochs\" must be an integer, not a string");
	expect_fail("epochs", V_BOOL(1), NN_ERR_INVALID, "option \"epochs\" must be an integer, not a boolean");
	expect_fail("epochs", V_NULL, NN_ERR_INVALID, "option \"epochs\" must be an integer, not null");
	expect_fail("epochs", V_ARRAY(1, NULL), NN_ERR_INVALID, "must be an integer, not an array");
	expect_fail("epochs", V_OBJECT, NN_ERR_INVALID, "must be an integer, not an object");
	expect_fail("epochs", V_FLOAT(3.5), NN_ERR_INVALID, "option \"epochs\" must be an integer, not 3.5");
	expect_fail("epochs", V_SHOWN(1.5, "1.5000"), NN_ERR_INVALID, "must be an integer, not 1.5000");
	expect_fail("epochs", V_INT(0), NN_ERR_INVALID, "option \"epochs\" must be between 1 and 10000, not 0");
	expect_fail("epochs", V_INT(10001), NN_ERR_INVALID, "between 1 and 10000, not 10001");
	expect_fail("epochs", V_INT(-1), NN_ERR_INVALID, "between 1 and 10000, not -1");
	expect_fail("epochs", V_FLOAT(1e300 * 1e300), NN_ERR_INVALID, "between 1 and 10000, not inf");
	expect_fail("epochs", V_SHOWN(1e26, "99999999999999999999999999"), NN_ERR_INVALID,
				"between 1 and 10000, not 999999999999999999999999...");
	expect_fail("classes", V_INT(1), NN_ERR_INVALID, "option \"classes\" must be between 2 and 4096, not 1");
	expect_fail("classes", V_INT(4097), NN_ERR_INVALID, "between 2 and 4096");
	expect_fail("batch_size", V_INT(65537), NN_ERR_INVALID, "option \"batch_size\" must be between 1 and 65536, not 65537");
	expect_fail("threads", V_INT(257), NN_ERR_INVALID, "option \"threads\" must be between 0 and 256");
	expect_fail("seed", V_INT(9007199254740993LL), NN_ERR_INVALID,
				"option \"seed\" must be between 0 and 9007199254740992, not 9007199254740993");
	expect_fail("seed", V_INT(-1), NN_ERR_INVALID, "option \"seed\" must be between 0");
	expect_fail("optimizer", V_TEXT("rmsprop"), NN_ERR_INVALID,
				"option \"optimizer\" must be \"sgd\", \"momentum\" or \"adam\", not \"rmsprop\"");
	expect_fail("optimizer", V_INT(1), NN_ERR_INVALID,
				"option \"optimizer\" must be \"sgd\", \"momentum\" or \"adam\", not a number");
	expect_fail("optimizer", V_TEXT("adamadamadamadamadamadamadamadamadamadamadamadamadamadamadamadamadam"),
				NN_ERR_INVALID, "not \"adamadamadamadamadamadam...\"");
	expect_fail("lr_schedule", V_TEXT("linear"), NN_ERR_INVALID,
				"must be \"constant\", \"step\", \"cosine\" or \"onecycle\", not \"linear\"");
	expect_fail("normalize", V_TEXT("l2"), NN_ERR_INVALID, "must be \"none\", \"minmax\", \"zscore\" or \"auto\", not \"l2\"");
	expect_fail("normalize", V_NULL, NN_ERR_INVALID, "must be \"none\", \"minmax\", \"zscore\" or \"auto\", not null");
	expect_fail("learning_rate", V_INT(0), NN_ERR_INVALID,
				"option \"learning_rate\" must be greater than 0 and at most 10, not 0");
	expect_fail("learning_rate", V_FLOAT(1e-60), NN_ERR_INVALID, "not 1e-60");	/* 0 as a float */
	expect_fail("learning_rate", V_FLOAT(10.5), NN_ERR_INVALID, "not 10.5");
	expect_fail("learning_rate", V_FLOAT(1e39), NN_ERR_INVALID, "at most 10, not 1e+39");	/* inf as a float */
	expect_fail("learning_rate", V_TEXT("fast"), NN_ERR_INVALID, "option \"learning_rate\" must be a number, not a string");
	expect_fail("learning_rate", V_FLOAT(NAN), NN_ERR_INVALID, "option \"learning_rate\" must be greater than 0");
	expect_fail("momentum", V_INT(1), NN_ERR_INVALID, "option \"momentum\" must be at least 0 and less than 1, not 1");
	expect_fail("momentum", V_FLOAT(0.999999999), NN_ERR_INVALID, "less than 1");	/* 1 as a float */
	expect_fail("momentum", V_FLOAT(-0.1), NN_ERR_INVALID, "not -0.1");
	expect_fail("weight_decay", V_FLOAT(1.5), NN_ERR_INVALID, "option \"weight_decay\" must be between 0 and 1, not 1.5");
	expect_fail("validation_fraction", V_FLOAT(0.51), NN_ERR_INVALID,
				"option \"validation_fraction\" must be between 0 and 0.5, not 0.51");
	expect_fail("record_times", V_INT(1), NN_ERR_INVALID, "option \"record_times\" must be a boolean, not a number");
	expect_fail("record_times", V_TEXT("yes"), NN_ERR_INVALID, "must be a boolean, not a string");
	expect_fail("layers", V_INT(5), NN_ERR_INVALID, "option \"layers\" must be a string, not a number");
	expect_fail("layers", V_ARRAY(0, NULL), NN_ERR_INVALID, "option \"layers\" must be a string, not an array");
	{
		nn_value	v = {.kind = NN_VALUE_TEXT, .s = "dense(10)\0x", .len = 11};

		expect_fail("layers", v, NN_ERR_INVALID, "option \"layers\" holds a NUL byte");
	}
	expect_fail("input", V_INT(784), NN_ERR_INVALID, "option \"input\" must be an array of 3 integers [h, w, c], not a number");
	expect_fail("input", V_TEXT("8x8"), NN_ERR_INVALID, "must be an array of 3 integers [h, w, c], not a string");
	expect_fail("input", V_ARRAY(2, two), NN_ERR_INVALID, "option \"input\" must have 3 values [h, w, c], not 2");
	expect_fail("input", V_ARRAY(0, NULL), NN_ERR_INVALID, "not 0");
	expect_fail("input", V_ARRAY(4, four), NN_ERR_INVALID, "not 4");
	expect_fail("input", V_ARRAY(1000000, four), NN_ERR_INVALID, "not 1000000");
	expect_fail("input", V_ARRAY(3, zero), NN_ERR_INVALID, "each value of option \"input\" must be between 1 and 4096, not 0");
	expect_fail("input", V_ARRAY(3, big), NN_ERR_INVALID, "each value of option \"input\" must be between 1 and 4096, not 10000000000");
	expect_fail("input", V_ARRAY(3, text), NN_ERR_INVALID, "each value of option \"input\" must be an integer, not a string");
	expect_fail("input", V_ARRAY(3, nested), NN_ERR_INVALID, "must be an integer, not an array");
	expect_fail("input", V_ARRAY(3, frac), NN_ERR_INVALID, "must be an integer, not 2.5");
}

T_CASE(test_options_layers_length)
{
	static char text[NN_MAX_SPEC + 64];
	nn_options	o;
	nn_status	st = {0};

	nn_options_default(&o);
	memset(text, 'x', NN_MAX_SPEC - 1);
	text[NN_MAX_SPEC - 1] = '\0';
	T_OK(nn_options_set_text(&o, "layers", text, &st) == NN_OK && strlen(o.layers) == NN_MAX_SPEC - 1,
		 "1023 bytes of layers fit");
	memset(text, 'y', NN_MAX_SPEC);
	text[NN_MAX_SPEC] = '\0';
	T_OK(nn_options_set_text(&o, "layers", text, &st) == NN_ERR_LIMIT &&
		 strstr(st.msg, "option \"layers\" is 1024 bytes long, more than the limit of 1023") &&
		 o.layers[0] == 'x', "1024 bytes do not, and the old value stays: %s", st.msg);
}

T_CASE(test_options_did_you_mean_hook)
{
	nn_options	o;
	nn_status	st = {0};
	int			(*saved) (const char *, const char *) = nn_option_distance;

	/* a host distance (PostgreSQL's varstr_levenshtein) replaces the core's */
	nn_options_default(&o);
	nn_option_distance = NULL;
	nn_options_set_int(&o, "threds", 1, &st);
	T_OK(strstr(st.msg, "did you mean \"threads\"") != NULL, "the core's own distance: %s", st.msg);
	nn_option_distance = NULL;
	nn_options_set_int(&o, "seeds", 1, &st);
	T_OK(strstr(st.msg, "did you mean \"seed\"") != NULL, "one edit away: %s", st.msg);
	nn_options_set_int(&o, "sedd_xyz", 1, &st);
	T_OK(strstr(st.msg, "did you mean") == NULL, "no suggestion more than 2 edits away: %s", st.msg);
	nn_option_distance = saved;
}

T_CASE(test_options_parsed_text)
{
	nn_options	o,
				back;
	nn_status	st = {0};
	char		buf[NN_MAX_SPEC + 8];

	nn_options_default(&o);
	T_OK(nn_options_assign(&o, "epochs=3", &st) == NN_OK && o.epochs == 3, "epochs=3");
	T_OK(nn_options_assign(&o, "learning_rate=1e-3", &st) == NN_OK && o.learning_rate == 0.001f, "learning_rate=1e-3");
	T_OK(nn_options_assign(&o, "batch_size=2.0", &st) == NN_OK && o.batch_size == 2, "a whole float as an integer");
	T_OK(nn_options_assign(&o, "record_times=false", &st) == NN_OK && o.record_times == 0 &&
		 nn_options_assign(&o, "record_times=On", &st) == NN_OK && o.record_times == 1 &&
		 nn_options_assign(&o, "record_times=0", &st) == NN_OK && o.record_times == 0, "booleans");
	T_OK(nn_options_assign(&o, "input=28,28,1", &st) == NN_OK && o.input.h == 28 && o.input.c == 1 &&
		 nn_options_assign(&o, "input=[14, 28, 2]", &st) == NN_OK && o.input.h == 14 && o.input.c == 2 &&
		 nn_options_assign(&o, "input=32x32x3", &st) == NN_OK && o.input.w == 32 && o.input.c == 3 &&
		 nn_options_assign(&o, "input=null", &st) == NN_OK && o.input.h == 0 &&
		 nn_options_assign(&o, "input=", &st) == NN_OK && o.input.h == 0, "shapes");
	T_OK(nn_options_assign(&o, "layers=conv(4,3) relu dense(10)", &st) == NN_OK &&
		 strcmp(o.layers, "conv(4,3) relu dense(10)") == 0, "text keeps its '=' free tail: %s", o.layers);
	T_OK(nn_options_assign(&o, "layers=a=b", &st) == NN_OK && strcmp(o.layers, "a=b") == 0, "only the first '=' splits");
	T_OK(nn_options_assign(&o, "optimizer=Momentum", &st) == NN_OK && o.optimizer == NN_OPT_MOMENTUM, "enums");
	T_OK(nn_options_set_parsed(&o, "seed", "9007199254740992", &st) == NN_OK && o.seed == 9007199254740992ULL,
		 "nn_options_set_parsed");
	/* found by fuzz_options: "-0" is an integer, but a number option keeps its sign */
	T_OK(nn_options_assign(&o, "momentum=-0", &st) == NN_OK && o.momentum == 0 && signbit(o.momentum),
		 "momentum=-0 is -0.0");

	expect_assign_fail("epochs", "expected key=value, not \"epochs\"");
	expect_assign_fail("epoch=3", "unknown option \"epoch\" (did you mean \"epochs\"?)");
	expect_assign_fail("epochs=abc", "option \"epochs\" must be an integer, not \"abc\"");
	expect_assign_fail("epochs=", "option \"epochs\" must be an integer, not \"\"");
	expect_assign_fail("epochs=2.5", "option \"epochs\" must be an integer, not 2.5");
	expect_assign_fail("epochs=99999999999999999999", "must be between 1 and 10000, not 99999999999999999999");
	expect_assign_fail("learning_rate=inf", "option \"learning_rate\" must be a number, not \"inf\"");
	expect_assign_fail("learning_rate=0x10", "must be a number, not \"0x10\"");
	expect_assign_fail("learning_rate=0", "must be greater than 0 and at most 10, not 0");
	expect_assign_fail("record_times=maybe", "option \"record_times\" must be a boolean (true or false), not \"maybe\"");
	expect_assign_fail("input=28,28", "option \"input\" must have 3 values [h, w, c], not 2");
	expect_assign_fail("input=28,28,1,1,1,1", "not 6");
	expect_assign_fail("input=28,a,1", "each value of option \"input\" must be an integer, not \"a\"");
	expect_assign_fail("input=28,0,1", "each value of option \"input\" must be between 1 and 4096, not 0");
	expect_assign_fail("normalize=max", "must be \"none\", \"minmax\", \"zscore\" or \"auto\", not \"max\"");

	/* every option's text reads back to the same value, at defaults and away from them */
	for (int pass = 0; pass < 2; pass++)
	{
		int			bad = 0;

		nn_options_default(&o);
		if (pass == 1)
		{
			nn_options_assign(&o, "layers=conv(8,3) relu dense(5)", &st);
			nn_options_assign(&o, "input=32,30,3", &st);
			o.learning_rate = nextafterf(0.1f, 1.0f);	/* needs 9 digits */
			o.momentum = 0.99999994f;	/* the float just below 1 */
			o.weight_decay = 1e-38f;	/* a subnormal float */
			o.validation_fraction = 0.333333343f;
			o.seed = 9007199254740992ULL;
			o.record_times = 0;
			o.optimizer = NN_OPT_SGD;
		}
		nn_options_default(&back);
		for (int i = 0; i < nn_option_count; i++)
		{
			const nn_option_def *d = &nn_option_table[i];

			nn_option_format(&o, d, buf, sizeof(buf));
			if (nn_options_set_parsed(&back, d->name, buf, &st) != NN_OK)
			{
				bad++;
				T_OK(0, "%s=%s does not read back: %s", d->name, buf, st.msg);
			}
		}
		T_OK(bad == 0 && options_equal(&o, &back), "pass %d: set_parsed(format(o)) == o for every option", pass);
	}
}

T_CASE(test_options_table)
{
	nn_options	o;
	nn_status	st = {0};
	int			bad = 0;

	nn_options_default(&o);
	T_OK(nn_option_count > 0 && nn_option_count <= NN_MAX_OPTIONS, "%d options (at most %d)",
		 nn_option_count, NN_MAX_OPTIONS);
	for (int i = 0; i < nn_option_count; i++)
	{
		const nn_option_def *d = &nn_option_table[i];
		char		text[NN_MAX_SPEC + 8];
		nn_options	t = o;

		if (strlen(d->name) == 0 || strlen(d->name) > NN_MAX_OPTION_NAME ||
			strspn(d->name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(d->name) ||
			nn_option_find(d->name) != d ||
			d->offset + d->size > sizeof(nn_options) || d->default_doc == NULL || d->help == NULL ||
			(d->type == NN_OPTION_ENUM && (d->names == NULL || d->nnames < 1)))
		{
			bad++;
			T_OK(0, "table row %d (%s) is malformed", i, d->name);
		}
		/* the default of every option is one its own setter accepts */
		nn_option_format(&o, d, text, sizeof(text));
		if (nn_options_set_parsed(&t, d->name, text, &st) != NN_OK)
		{
			bad++;
			T_OK(0, "the default of %s (%s) is refused: %s", d->name, text, st.msg);
		}
	}
	T_OK(bad == 0, "every row names a field of nn_options, once, with a default its setter takes");
	T_OK(nn_option_find("epochs") == &nn_option_table[3] && nn_option_find("nope") == NULL &&
		 nn_option_find(NULL) == NULL, "nn_option_find");
	T_OK(strcmp(nn_option_type_name(NN_OPTION_SHAPE), "[h, w, c]") == 0 &&
		 strcmp(nn_option_type_name(NN_OPTION_ENUM), "text") == 0, "type names");
}

/*
 * The README's options reference is the table: its rows, in order, are
 * exactly "| `name` | type | default | allowed |" of every table row.
 */
T_CASE(test_options_readme_table)
{
	FILE	   *f = fopen("README.md", "r");
	char		line[4096];
	char		want[4096];
	int			in_table = 0,
				row = 0,
				bad = 0;

	if (!T_OK(f != NULL, "README.md opens (run from the repository root)"))
		return;
	while (fgets(line, sizeof(line), f) != NULL)
	{
		line[strcspn(line, "\n")] = '\0';
		if (!in_table)
		{
			in_table = strcmp(line, "| key | type | default | allowed |") == 0;
			continue;
		}
		if (strncmp(line, "|---", 4) == 0)
			continue;
		if (line[0] != '|')
			break;
		if (row < nn_option_count)
		{
			const nn_option_def *d = &nn_option_table[row];

			snprintf(want, sizeof(want), "| `%s` | %s | %s | %s |", d->name,
					 nn_option_type_name(d->type), d->default_doc, d->help);
			if (strcmp(line, want) != 0)
			{
				bad++;
				T_OK(0, "README row %d is\n  %s\nbut the table says\n  %s", row + 1, line, want);
			}
		}
		row++;
	}
	fclose(f);
	T_OK(in_table, "README.md has the options table");
	T_OK(row == nn_option_count && bad == 0, "the README lists the %d options of the table, as the table says (%d rows, %d differ)",
		 nn_option_count, row, bad);
}

T_CASE(test_options_names)
{
	T_OK(strcmp(nn_optimizer_name(NN_OPT_ADAM), "adam") == 0 && nn_optimizer_name(3) == NULL &&
		 nn_optimizer_name(-1) == NULL, "optimizer names");
	T_OK(strcmp(nn_schedule_name(NN_LR_ONECYCLE), "onecycle") == 0 && nn_schedule_name(4) == NULL, "schedule names");
	T_OK(strcmp(nn_norm_name(NN_NORM_ZSCORE), "zscore") == 0 && strcmp(nn_norm_name(NN_NORM_AUTO), "auto") == 0 && nn_norm_name(4) == NULL, "norm names");
	T_OK(nn_optimizer_from_name("Momentum") == NN_OPT_MOMENTUM && nn_optimizer_from_name("rmsprop") == -1 &&
		 nn_optimizer_from_name(NULL) == -1, "optimizer from name");
	T_OK(nn_schedule_from_name("cosine") == NN_LR_COSINE && nn_norm_from_name("none") == NN_NORM_NONE &&
		 nn_norm_from_name("") == -1 && nn_norm_from_name("nonex") == -1 && nn_norm_from_name("non") == -1,
		 "schedule and norm from name; prefixes and extensions are not names");
}
