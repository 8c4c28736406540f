/*
 * options.c: the one parser of training options, and their canonical JSON.
 *
 * The options are one JSON object (RFC 8259) of known keys. The parser is
 * small and strict on purpose: it takes bytes that need not be
 * NUL-terminated, never reads past len, recurses at most NN_MAX_JSON_DEPTH
 * levels, validates UTF-8 and escapes (\uXXXX, surrogate pairs; \u0000 is
 * refused as PostgreSQL's jsonb refuses it) and rejects trailing text. It
 * is fuzzed with libFuzzer, so every path is bounds-checked.
 *
 * It runs in two passes. The first checks the syntax of the whole document,
 * so malformed JSON is always NN_ERR_PARSE with a 1-based byte position
 * whatever it contains. The second walks the top-level object and applies
 * each key to a copy of the options, which is copied back only when every
 * key was good. Keys may appear once each. Integers must be whole numbers
 * (3 and 3.0 are 3, 3.5 is an error), numbers are read with strtod (the
 * backend keeps LC_NUMERIC at "C") and enum names are case-insensitive.
 * "input": null means "infer the input shape", which is also its default.
 *
 * nn_options_to_json() writes every key in a fixed order with floats in the
 * shortest form that reads back as the same float, so parse(to_json(o))
 * gives o again.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

#define JSON_NEAR_LEN 16		/* bytes quoted after "near" */
#define JSON_NUM_LEN 256		/* longest number token interpreted */
#define JSON_KEY_LEN 64			/* longest key kept for matching */
#define JSON_SEED_MAX 9007199254740992.0	/* 2^53: doubles are exact below it */

/* the value types of JSON */
typedef enum jtype
{
	JT_STRING,
	JT_NUMBER,
	JT_TRUE,
	JT_FALSE,
	JT_NULL,
	JT_ARRAY,
	JT_OBJECT
} jtype;

/* a value found by the parser: its type and byte span [start, end) */
typedef struct jval
{
	jtype		type;
	size_t		start;
	size_t		end;
} jval;

/* parser state over json[0..len) */
typedef struct jparser
{
	const char *s;
	size_t		len;
	size_t		pos;
	nn_status  *st;
} jparser;

/* the keys, in canonical order */
enum
{
	K_LAYERS,
	K_INPUT,
	K_CLASSES,
	K_EPOCHS,
	K_BATCH_SIZE,
	K_OPTIMIZER,
	K_LEARNING_RATE,
	K_LR_SCHEDULE,
	K_MOMENTUM,
	K_WEIGHT_DECAY,
	K_SEED,
	K_NORMALIZE,
	K_VALIDATION_FRACTION,
	K_THREADS,
	K_RECORD_TIMES,
	K_COUNT
};

static const char *const key_names[K_COUNT] = {
	"layers", "input", "classes", "epochs", "batch_size", "optimizer",
	"learning_rate", "lr_schedule", "momentum", "weight_decay", "seed",
	"normalize", "validation_fraction", "threads", "record_times"
};

static const char *const optimizer_names[] = {"sgd", "momentum", "adam"};
static const char *const schedule_names[] = {"constant", "step", "cosine", "onecycle"};
static const char *const norm_names[] = {"none", "minmax", "zscore"};

#define NAMES_COUNT(a) ((int32_t) (sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------------------- names */

/* Case-insensitive ASCII equality of two NUL-terminated strings. */
static int
ascii_ieq(const char *a, const char *b)
{
	for (;; a++, b++)
	{
		char		ca = (*a >= 'A' && *a <= 'Z') ? *a + 32 : *a;
		char		cb = (*b >= 'A' && *b <= 'Z') ? *b + 32 : *b;

		if (ca != cb)
			return 0;
		if (ca == '\0')
			return 1;
	}
}

/* Index of name in names[n], case-insensitive, or -1. */
static int32_t
name_index(const char *const *names, int32_t n, const char *name)
{
	if (name == NULL)
		return -1;
	for (int32_t i = 0; i < n; i++)
		if (ascii_ieq(names[i], name))
			return i;
	return -1;
}

/* Name of an optimizer (NN_OPT_*), or NULL. */
const char *
nn_optimizer_name(int32_t v)
{
	return v >= 0 && v < NAMES_COUNT(optimizer_names) ? optimizer_names[v] : NULL;
}

/* Name of a learning-rate schedule (NN_LR_*), or NULL. */
const char *
nn_schedule_name(int32_t v)
{
	return v >= 0 && v < NAMES_COUNT(schedule_names) ? schedule_names[v] : NULL;
}

/* Name of a normalisation mode (NN_NORM_*), or NULL. */
const char *
nn_norm_name(int32_t v)
{
	return v >= 0 && v < NAMES_COUNT(norm_names) ? norm_names[v] : NULL;
}

/* NN_OPT_* of a name, or -1. */
int32_t
nn_optimizer_from_name(const char *name)
{
	return name_index(optimizer_names, NAMES_COUNT(optimizer_names), name);
}

/* NN_LR_* of a name, or -1. */
int32_t
nn_schedule_from_name(const char *name)
{
	return name_index(schedule_names, NAMES_COUNT(schedule_names), name);
}

/* NN_NORM_* of a name, or -1. */
int32_t
nn_norm_from_name(const char *name)
{
	return name_index(norm_names, NAMES_COUNT(norm_names), name);
}

/* Fill o with the defaults. */
void
nn_options_default(nn_options *o)
{
	memset(o, 0, sizeof(*o));
	o->layers[0] = '\0';
	o->input.h = o->input.w = o->input.c = 0;
	o->classes = NN_DEFAULT_CLASSES;
	o->epochs = NN_DEFAULT_EPOCHS;
	o->batch_size = NN_DEFAULT_BATCH;
	o->optimizer = NN_OPT_ADAM;
	o->learning_rate = NN_DEFAULT_LR;
	o->lr_schedule = NN_LR_ONECYCLE;
	o->momentum = NN_DEFAULT_MOMENTUM;
	o->weight_decay = 0.0f;
	o->seed = NN_DEFAULT_SEED;
	o->normalize = NN_NORM_MINMAX;
	o->validation_fraction = 0.0f;
	o->threads = 0;
	o->record_times = 1;
}

/* The layer spec of o into buf: its layers, or the default spec for its classes. */
void
nn_options_spec(const nn_options *o, char *buf, size_t len)
{
	if (len == 0)
		return;
	if (o->layers[0] != '\0')
		snprintf(buf, len, "%s", o->layers);
	else
		snprintf(buf, len, NN_DEFAULT_SPEC_FMT, o->classes);
}

/* -------------------------------------------------------------- syntax */

/* Copy up to max bytes of s (len bytes) into buf as printable ASCII. */
static void
json_quote(char *buf, size_t buflen, const char *s, size_t len, size_t max)
{
	size_t		n = 0;
	size_t		i;

	for (i = 0; i < len && i < max && n + 1 < buflen; i++)
	{
		unsigned char c = (unsigned char) s[i];

		buf[n++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char) c : '?';
	}
	if (i < len && n + 4 < buflen)
	{
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
}

/* Fail with a syntax error at byte offset at; returns NN_ERR_PARSE. */
static int
json_error(jparser *p, size_t at, const char *fmt,...)
	__attribute__((format(printf, 3, 4)));

static int
json_error(jparser *p, size_t at, const char *fmt,...)
{
	char		why[NN_MSG_LEN];
	char		near[JSON_NEAR_LEN + 8];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (at >= p->len)
		return nn_fail(p->st, NN_ERR_PARSE,
					   "invalid JSON in options at position %zu (end of input): %s",
					   p->len + 1, why);
	json_quote(near, sizeof(near), p->s + at, p->len - at, JSON_NEAR_LEN);
	return nn_fail(p->st, NN_ERR_PARSE, "invalid JSON in options at position %zu near \"%s\": %s",
				   at + 1, near, why);
}

/* Skip JSON whitespace. */
static void
json_ws(jparser *p)
{
	while (p->pos < p->len &&
		   (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
			p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

/* Value of one hex digit, or -1. */
static int
json_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Read 4 hex digits at p->pos into *u. */
static int
json_hex4(jparser *p, uint32_t *u)
{
	uint32_t	v = 0;

	if (p->len - p->pos < 4)
		return json_error(p, p->pos, "\\u needs 4 hex digits");
	for (int i = 0; i < 4; i++)
	{
		int			h = json_hex(p->s[p->pos + i]);

		if (h < 0)
			return json_error(p, p->pos, "\\u needs 4 hex digits");
		v = v << 4 | (uint32_t) h;
	}
	p->pos += 4;
	*u = v;
	return NN_OK;
}

/* Append code point u as UTF-8 to out (cap bytes), counting all bytes in *n. */
static void
json_put(char *out, size_t cap, size_t *n, uint32_t u)
{
	char		b[4];
	int			k;

	if (u < 0x80)
		b[0] = (char) u, k = 1;
	else if (u < 0x800)
		b[0] = (char) (0xC0 | u >> 6), b[1] = (char) (0x80 | (u & 0x3F)), k = 2;
	else if (u < 0x10000)
		b[0] = (char) (0xE0 | u >> 12), b[1] = (char) (0x80 | ((u >> 6) & 0x3F)),
			b[2] = (char) (0x80 | (u & 0x3F)), k = 3;
	else
		b[0] = (char) (0xF0 | u >> 18), b[1] = (char) (0x80 | ((u >> 12) & 0x3F)),
			b[2] = (char) (0x80 | ((u >> 6) & 0x3F)), b[3] = (char) (0x80 | (u & 0x3F)), k = 4;
	for (int i = 0; i < k; i++)
	{
		if (out != NULL && *n < cap)
			out[*n] = b[i];
		(*n)++;
	}
}

/* Length of the valid UTF-8 sequence at s (avail bytes, first byte >= 0x80), or 0. */
static int
json_utf8_len(const unsigned char *s, size_t avail)
{
	int			k;
	uint32_t	u;

	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		k = 2, u = s[0] & 0x1F;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		k = 3, u = s[0] & 0x0F;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		k = 4, u = s[0] & 0x07;
	else
		return 0;
	if (avail < (size_t) k)
		return 0;
	for (int i = 1; i < k; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		u = u << 6 | (s[i] & 0x3F);
	}
	if ((k == 3 && u < 0x800) || (k == 4 && (u < 0x10000 || u > 0x10FFFF)) ||
		(u >= 0xD800 && u <= 0xDFFF))
		return 0;
	return k;
}

/*
 * Parse a string at p->pos (on the opening quote). When out is not NULL the
 * decoded bytes go there (at most cap, not NUL-terminated); *outlen gets the
 * full decoded length either way.
 */
static int
json_string(jparser *p, char *out, size_t cap, size_t *outlen)
{
	size_t		n = 0;

	p->pos++;					/* the opening quote */
	for (;;)
	{
		unsigned char c;

		if (p->pos >= p->len)
			return json_error(p, p->pos, "unterminated string");
		c = (unsigned char) p->s[p->pos];
		if (c == '"')
		{
			p->pos++;
			break;
		}
		if (c < 0x20)
			return json_error(p, p->pos, "control character in a string (escape it)");
		if (c == '\\')
		{
			size_t		at = p->pos;
			uint32_t	u;

			if (p->pos + 1 >= p->len)
				return json_error(p, p->len, "unterminated string");
			c = (unsigned char) p->s[p->pos + 1];
			p->pos += 2;
			switch (c)
			{
				case '"':
				case '\\':
				case '/':
					u = c;
					break;
				case 'b':
					u = '\b';
					break;
				case 'f':
					u = '\f';
					break;
				case 'n':
					u = '\n';
					break;
				case 'r':
					u = '\r';
					break;
				case 't':
					u = '\t';
					break;
				case 'u':
					if (json_hex4(p, &u) != NN_OK)
						return p->st->code;
					if (u >= 0xDC00 && u <= 0xDFFF)
						return json_error(p, at, "lone low surrogate in \\u escape");
					if (u >= 0xD800 && u <= 0xDBFF)
					{
						uint32_t	lo;

						if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
							return json_error(p, at, "high surrogate not followed by a low one");
						p->pos += 2;
						if (json_hex4(p, &lo) != NN_OK)
							return p->st->code;
						if (lo < 0xDC00 || lo > 0xDFFF)
							return json_error(p, at, "high surrogate not followed by a low one");
						u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
					}
					if (u == 0)
						return json_error(p, at, "\\u0000 is not allowed");
					break;
				default:
					return json_error(p, at, "invalid escape in a string");
			}
			json_put(out, cap, &n, u);
			continue;
		}
		if (c >= 0x80)
		{
			int			k = json_utf8_len((const unsigned char *) p->s + p->pos, p->len - p->pos);

			if (k == 0)
				return json_error(p, p->pos, "invalid UTF-8 in a string");
			for (int i = 0; i < k; i++)
			{
				if (out != NULL && n < cap)
					out[n] = p->s[p->pos + i];
				n++;
			}
			p->pos += k;
			continue;
		}
		if (out != NULL && n < cap)
			out[n] = (char) c;
		n++;
		p->pos++;
	}
	if (outlen)
		*outlen = n;
	return NN_OK;
}

/* Is c an ASCII digit? */
static int
json_digit(jparser *p, size_t at)
{
	return at < p->len && p->s[at] >= '0' && p->s[at] <= '9';
}

/* Parse a number at p->pos (RFC 8259 grammar). */
static int
json_number(jparser *p)
{
	size_t		start = p->pos;

	if (p->pos < p->len && p->s[p->pos] == '-')
		p->pos++;
	if (!json_digit(p, p->pos))
		return json_error(p, start, "invalid number");
	if (p->s[p->pos] == '0')
		p->pos++;
	else
		while (json_digit(p, p->pos))
			p->pos++;
	if (p->pos < p->len && p->s[p->pos] == '.')
	{
		p->pos++;
		if (!json_digit(p, p->pos))
			return json_error(p, start, "invalid number: digits must follow the decimal point");
		while (json_digit(p, p->pos))
			p->pos++;
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E'))
	{
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (!json_digit(p, p->pos))
			return json_error(p, start, "invalid number: digits must follow the exponent");
		while (json_digit(p, p->pos))
			p->pos++;
	}
	if (json_digit(p, p->pos))
		return json_error(p, start, "invalid number: no leading zeros");
	return NN_OK;
}

/* Match the literal word at p->pos. */
static int
json_literal(jparser *p, const char *word)
{
	size_t		n = strlen(word);

	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return json_error(p, p->pos, "expected a JSON value");
	p->pos += n;
	return NN_OK;
}

/* Parse any value at p->pos (whitespace skipped) at nesting depth; fills *v. */
static int
json_value(jparser *p, int depth, jval *v)
{
	char		c;

	json_ws(p);
	if (p->pos >= p->len)
		return json_error(p, p->pos, "expected a JSON value");
	v->start = p->pos;
	c = p->s[p->pos];
	if (c == '{' || c == '[')
	{
		char		close = c == '{' ? '}' : ']';
		int			first = 1;

		if (depth >= NN_MAX_JSON_DEPTH)
			return nn_fail(p->st, NN_ERR_LIMIT,
						   "options nest deeper than %d levels at position %zu",
						   NN_MAX_JSON_DEPTH, p->pos + 1);
		v->type = c == '{' ? JT_OBJECT : JT_ARRAY;
		p->pos++;
		for (;;)
		{
			jval		item;

			json_ws(p);
			if (first && p->pos < p->len && p->s[p->pos] == close)
			{
				p->pos++;
				break;
			}
			if (v->type == JT_OBJECT)
			{
				if (p->pos >= p->len || p->s[p->pos] != '"')
					return json_error(p, p->pos, first ? "expected a key string or \"}\"" :
									  "expected a key string");
				if (json_string(p, NULL, 0, NULL) != NN_OK)
					return p->st->code;
				json_ws(p);
				if (p->pos >= p->len || p->s[p->pos] != ':')
					return json_error(p, p->pos, "expected \":\" after a key");
				p->pos++;
			}
			if (json_value(p, depth + 1, &item) != NN_OK)
				return p->st->code;
			json_ws(p);
			if (p->pos < p->len && p->s[p->pos] == ',')
			{
				p->pos++;
				first = 0;
				continue;
			}
			if (p->pos < p->len && p->s[p->pos] == close)
			{
				p->pos++;
				break;
			}
			return json_error(p, p->pos, close == '}' ? "expected \",\" or \"}\"" :
							  "expected \",\" or \"]\"");
		}
	}
	else if (c == '"')
	{
		v->type = JT_STRING;
		if (json_string(p, NULL, 0, NULL) != NN_OK)
			return p->st->code;
	}
	else if (c == '-' || (c >= '0' && c <= '9'))
	{
		v->type = JT_NUMBER;
		if (json_number(p) != NN_OK)
			return p->st->code;
	}
	else if (c == 't')
	{
		v->type = JT_TRUE;
		if (json_literal(p, "true") != NN_OK)
			return p->st->code;
	}
	else if (c == 'f')
	{
		v->type = JT_FALSE;
		if (json_literal(p, "false") != NN_OK)
			return p->st->code;
	}
	else if (c == 'n')
	{
		v->type = JT_NULL;
		if (json_literal(p, "null") != NN_OK)
			return p->st->code;
	}
	else
		return json_error(p, p->pos, "expected a JSON value");
	v->end = p->pos;
	return NN_OK;
}

/* ------------------------------------------------------------- meaning */

/* "a string", "a number" ... for messages */
static const char *
json_type_name(jtype t)
{
	switch (t)
	{
		case JT_STRING:
			return "a string";
		case JT_NUMBER:
			return "a number";
		case JT_TRUE:
		case JT_FALSE:
			return "a boolean";
		case JT_NULL:
			return "null";
		case JT_ARRAY:
			return "an array";
		case JT_OBJECT:
			return "an object";
	}
	return "a value";
}

/* Copy the number token v into buf (NUL-terminated); 0 when it is too long. */
static int
json_number_text(const jparser *p, const jval *v, char *buf, size_t len)
{
	size_t		n = v->end - v->start;

	if (n + 1 > len)
		return 0;
	memcpy(buf, p->s + v->start, n);
	buf[n] = '\0';
	return 1;
}

/* Token text of v for a message, shortened. */
static void
json_value_text(const jparser *p, const jval *v, char *buf, size_t len)
{
	json_quote(buf, len, p->s + v->start, v->end - v->start, 24);
}

/*
 * Read the integer v for subject (e.g. `option "epochs"`) in [lo,hi].
 * Plain digits are read exactly; whole numbers written with a fraction or
 * an exponent (3.0, 1e3) count too, up to 2^53 where doubles stop being
 * exact.
 */
static int
json_get_int(const jparser *p, const jval *v, const char *subject, int64_t lo, int64_t hi,
			 int64_t *out)
{
	char		text[JSON_NUM_LEN];
	char		shown[40];
	double		d;

	if (v->type != JT_NUMBER)
		return nn_fail(p->st, NN_ERR_INVALID, "%s must be an integer, not %s",
					   subject, json_type_name(v->type));
	json_value_text(p, v, shown, sizeof(shown));
	if (!json_number_text(p, v, text, sizeof(text)))
		return nn_fail(p->st, NN_ERR_INVALID, "%s must be between %lld and %lld, not %s",
					   subject, (long long) lo, (long long) hi, shown);
	if (strpbrk(text, ".eE") == NULL)
	{
		/* plain digits: exact, saturating well above any limit */
		const char *c = text + (text[0] == '-');
		int64_t		u = 0;

		for (; *c; c++)
			if (u < (int64_t) 100000000000000000)	/* 1e17: no overflow */
				u = u * 10 + (*c - '0');
		if (text[0] == '-')
			u = -u;
		if (u < lo || u > hi)
			return nn_fail(p->st, NN_ERR_INVALID, "%s must be between %lld and %lld, not %s",
						   subject, (long long) lo, (long long) hi, shown);
		*out = u;
		return NN_OK;
	}
	d = strtod(text, NULL);
	if (isfinite(d) && d != floor(d))
		return nn_fail(p->st, NN_ERR_INVALID, "%s must be an integer, not %s", subject, shown);
	if (!(d >= (double) lo && d <= (double) hi && fabs(d) < JSON_SEED_MAX))
		return nn_fail(p->st, NN_ERR_INVALID, "%s must be between %lld and %lld, not %s",
					   subject, (long long) lo, (long long) hi, shown);
	*out = (int64_t) d;
	return NN_OK;
}

/* Read the number v for option key as a float; range checks are the caller's. */
static int
json_get_float(const jparser *p, const jval *v, const char *key, float *out, char *shown,
			   size_t shownlen)
{
	char		text[JSON_NUM_LEN];

	if (v->type != JT_NUMBER)
		return nn_fail(p->st, NN_ERR_INVALID, "option \"%s\" must be a number, not %s",
					   key, json_type_name(v->type));
	json_value_text(p, v, shown, shownlen);
	if (!json_number_text(p, v, text, sizeof(text)))
		return nn_fail(p->st, NN_ERR_INVALID, "option \"%s\" has a number of more than %d characters",
					   key, JSON_NUM_LEN - 1);
	*out = (float) strtod(text, NULL);
	return NN_OK;
}

/* Read the enum string v for key among names[n] into *out. */
static int
json_get_enum(jparser *p, const jval *v, const char *key, const char *const *names, int32_t n,
			  int32_t *out)
{
	char		buf[JSON_KEY_LEN + 1];
	char		shown[40];
	char		allowed[128];
	size_t		len = 0,
				k = 0;
	int32_t		i;

	allowed[0] = '\0';
	for (i = 0; i < n; i++)
		k += snprintf(allowed + k, sizeof(allowed) - k, "%s\"%s\"",
					  i == 0 ? "" : (i == n - 1 ? " or " : ", "), names[i]);
	if (v->type != JT_STRING)
		return nn_fail(p->st, NN_ERR_INVALID, "option \"%s\" must be %s, not %s",
					   key, allowed, json_type_name(v->type));
	p->pos = v->start;
	if (json_string(p, buf, JSON_KEY_LEN, &len) != NN_OK)
		return p->st->code;
	buf[len < JSON_KEY_LEN ? len : JSON_KEY_LEN] = '\0';
	i = len < JSON_KEY_LEN ? name_index(names, n, buf) : -1;
	if (i < 0)
	{
		json_quote(shown, sizeof(shown), buf, len, 24);
		return nn_fail(p->st, NN_ERR_INVALID, "option \"%s\" must be %s, not \"%s\"",
					   key, allowed, shown);
	}
	*out = i;
	return NN_OK;
}

/* Edit distance of a and b (short strings), for "did you mean". */
static int
edit_distance(const char *a, const char *b)
{
	int			row[JSON_KEY_LEN + 1];
	size_t		la = strlen(a),
				lb = strlen(b);

	if (la > JSON_KEY_LEN || lb > JSON_KEY_LEN)
		return 1000;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int) j;
	for (size_t i = 1; i <= la; i++)
	{
		int			diag = row[0];

		row[0] = (int) i;
		for (size_t j = 1; j <= lb; j++)
		{
			char		ca = (a[i - 1] >= 'A' && a[i - 1] <= 'Z') ? a[i - 1] + 32 : a[i - 1];
			int			up = row[j];
			int			best = diag + (ca != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

/* Fail for an unknown key, suggesting the nearest known one. */
static int
json_unknown_key(jparser *p, const char *key, size_t keylen)
{
	char		shown[40];
	char		allowed[256];
	char		hint[48] = "";
	size_t		k = 0;
	int			best = 3,
				besti = -1;

	for (int i = 0; i < K_COUNT; i++)
	{
		int			d = keylen <= JSON_KEY_LEN ? edit_distance(key, key_names[i]) : 1000;

		k += snprintf(allowed + k, sizeof(allowed) - k, "%s%s", i ? ", " : "", key_names[i]);
		if (d < best)
			best = d, besti = i;
	}
	if (besti >= 0)
		snprintf(hint, sizeof(hint), " (did you mean \"%s\"?)", key_names[besti]);
	json_quote(shown, sizeof(shown), key, keylen, 24);
	return nn_fail(p->st, NN_ERR_INVALID, "unknown option \"%s\"%s; allowed: %s",
				   shown, hint, allowed);
}

/* Apply the value v of known key k to t. */
static int
json_apply(jparser *p, int k, const jval *v, nn_options *t)
{
	const char *key = key_names[k];
	char		subject[48];
	char		shown[40];
	int64_t		i64;
	float		f;

	snprintf(subject, sizeof(subject), "option \"%s\"", key);
	switch (k)
	{
		case K_LAYERS:
			{
				size_t		len = 0;

				if (v->type != JT_STRING)
					return nn_fail(p->st, NN_ERR_INVALID, "option \"layers\" must be a string, not %s",
								   json_type_name(v->type));
				memset(t->layers, 0, sizeof(t->layers));
				p->pos = v->start;
				if (json_string(p, t->layers, NN_MAX_SPEC - 1, &len) != NN_OK)
					return p->st->code;
				if (len > NN_MAX_SPEC - 1)
					return nn_fail(p->st, NN_ERR_LIMIT,
								   "option \"layers\" is %zu bytes long, more than the limit of %d",
								   len, NN_MAX_SPEC - 1);
				t->layers[len] = '\0';
				return NN_OK;
			}
		case K_INPUT:
			{
				int32_t		dims[3];
				int			n = 0;

				if (v->type == JT_NULL)
				{
					t->input.h = t->input.w = t->input.c = 0;
					return NN_OK;
				}
				if (v->type != JT_ARRAY)
					return nn_fail(p->st, NN_ERR_INVALID,
								   "option \"input\" must be an array of 3 integers [h, w, c], not %s",
								   json_type_name(v->type));
				p->pos = v->start + 1;
				for (;;)
				{
					jval		e;

					json_ws(p);
					if (p->s[p->pos] == ']')
						break;
					if (json_value(p, 2, &e) != NN_OK)
						return p->st->code;
					if (n < 3)
					{
						if (json_get_int(p, &e, "each value of option \"input\"", 1, NN_MAX_DIM,
										 &i64) != NN_OK)
							return p->st->code;
						dims[n] = (int32_t) i64;
					}
					n++;
					json_ws(p);
					if (p->s[p->pos] == ',')
						p->pos++;
				}
				if (n != 3)
					return nn_fail(p->st, NN_ERR_INVALID,
								   "option \"input\" must have 3 values [h, w, c], not %d", n);
				t->input.h = dims[0];
				t->input.w = dims[1];
				t->input.c = dims[2];
				return NN_OK;
			}
		case K_CLASSES:
			if (json_get_int(p, v, subject, NN_MIN_CLASSES, NN_MAX_CLASSES, &i64) != NN_OK)
				return p->st->code;
			t->classes = (int32_t) i64;
			return NN_OK;
		case K_EPOCHS:
			if (json_get_int(p, v, subject, NN_MIN_EPOCHS, NN_MAX_EPOCHS, &i64) != NN_OK)
				return p->st->code;
			t->epochs = (int32_t) i64;
			return NN_OK;
		case K_BATCH_SIZE:
			if (json_get_int(p, v, subject, NN_MIN_BATCH, NN_MAX_BATCH, &i64) != NN_OK)
				return p->st->code;
			t->batch_size = (int32_t) i64;
			return NN_OK;
		case K_THREADS:
			if (json_get_int(p, v, subject, 0, NN_MAX_THREADS, &i64) != NN_OK)
				return p->st->code;
			t->threads = (int32_t) i64;
			return NN_OK;
		case K_SEED:
			if (json_get_int(p, v, subject, 0, (int64_t) JSON_SEED_MAX, &i64) != NN_OK)
				return p->st->code;
			t->seed = (uint64_t) i64;
			return NN_OK;
		case K_OPTIMIZER:
			return json_get_enum(p, v, key, optimizer_names, NAMES_COUNT(optimizer_names),
								 &t->optimizer);
		case K_LR_SCHEDULE:
			return json_get_enum(p, v, key, schedule_names, NAMES_COUNT(schedule_names),
								 &t->lr_schedule);
		case K_NORMALIZE:
			return json_get_enum(p, v, key, norm_names, NAMES_COUNT(norm_names),
								 &t->normalize);
		case K_LEARNING_RATE:
			if (json_get_float(p, v, key, &f, shown, sizeof(shown)) != NN_OK)
				return p->st->code;
			if (!(f > 0.0f && f <= NN_MAX_LR))
				return nn_fail(p->st, NN_ERR_INVALID,
							   "option \"learning_rate\" must be greater than 0 and at most %g, not %s",
							   (double) NN_MAX_LR, shown);
			t->learning_rate = f;
			return NN_OK;
		case K_MOMENTUM:
			if (json_get_float(p, v, key, &f, shown, sizeof(shown)) != NN_OK)
				return p->st->code;
			if (!(f >= 0.0f && f < 1.0f))
				return nn_fail(p->st, NN_ERR_INVALID,
							   "option \"momentum\" must be at least 0 and less than 1, not %s", shown);
			t->momentum = f;
			return NN_OK;
		case K_WEIGHT_DECAY:
			if (json_get_float(p, v, key, &f, shown, sizeof(shown)) != NN_OK)
				return p->st->code;
			if (!(f >= 0.0f && f <= 1.0f))
				return nn_fail(p->st, NN_ERR_INVALID,
							   "option \"weight_decay\" must be between 0 and 1, not %s", shown);
			t->weight_decay = f;
			return NN_OK;
		case K_VALIDATION_FRACTION:
			if (json_get_float(p, v, key, &f, shown, sizeof(shown)) != NN_OK)
				return p->st->code;
			if (!(f >= 0.0f && f <= 0.5f))
				return nn_fail(p->st, NN_ERR_INVALID,
							   "option \"validation_fraction\" must be between 0 and 0.5, not %s", shown);
			t->validation_fraction = f;
			return NN_OK;
		case K_RECORD_TIMES:
			if (v->type != JT_TRUE && v->type != JT_FALSE)
				return nn_fail(p->st, NN_ERR_INVALID,
							   "option \"record_times\" must be a boolean, not %s",
							   json_type_name(v->type));
			t->record_times = v->type == JT_TRUE;
			return NN_OK;
	}
	return nn_fail(p->st, NN_ERR_INVALID, "unknown option \"%s\"", key);
}

/* Parse a JSON object of options (len bytes) over the values already in *o. */
int
nn_options_parse(nn_options *o, const char *json, size_t len, nn_status *st)
{
	jparser		p = {json, len, 0, st};
	jval		top;
	nn_options	t;
	uint32_t	seen = 0;

	if (json == NULL)
		return nn_fail(st, NN_ERR_INVALID, "options must be a JSON object");
	if (len > NN_MAX_OPTIONS_JSON)
		return nn_fail(st, NN_ERR_LIMIT, "options are %zu bytes long, more than the limit of %d",
					   len, NN_MAX_OPTIONS_JSON);

	/* pass 1: syntax of the whole document */
	if (json_value(&p, 0, &top) != NN_OK)
		return st->code;
	json_ws(&p);
	if (p.pos < len)
		return json_error(&p, p.pos, "unexpected text after the JSON value");
	if (top.type != JT_OBJECT)
		return nn_fail(st, NN_ERR_INVALID, "options must be a JSON object, not %s",
					   json_type_name(top.type));

	/* pass 2: the members of the top-level object, known to be well formed */
	t = *o;
	p.pos = top.start + 1;
	for (;;)
	{
		char		key[JSON_KEY_LEN + 1];
		size_t		keylen = 0;
		int			k = -1;
		jval		v;

		json_ws(&p);
		if (p.s[p.pos] == '}')
			break;
		if (json_string(&p, key, JSON_KEY_LEN, &keylen) != NN_OK)
			return st->code;
		key[keylen < JSON_KEY_LEN ? keylen : JSON_KEY_LEN] = '\0';
		for (int i = 0; i < K_COUNT && keylen <= JSON_KEY_LEN; i++)
			if (strlen(key_names[i]) == keylen && memcmp(key, key_names[i], keylen) == 0)
				k = i;
		if (k < 0)
			return json_unknown_key(&p, key, keylen);
		if (seen & (1u << k))
			return nn_fail(st, NN_ERR_INVALID, "option \"%s\" is given twice", key_names[k]);
		seen |= 1u << k;
		json_ws(&p);
		p.pos++;				/* the ":" */
		if (json_value(&p, 1, &v) != NN_OK)
			return st->code;
		if (json_apply(&p, k, &v, &t) != NN_OK)
			return st->code;
		p.pos = v.end;
		json_ws(&p);
		if (p.s[p.pos] == ',')
			p.pos++;
	}
	*o = t;
	return NN_OK;
}

/* ------------------------------------------------------------- writing */

/* an output buffer that remembers overflow */
typedef struct jout
{
	char	   *buf;
	size_t		len;
	size_t		n;
	int			overflow;
} jout;

/* Append printf-style text. */
static void
jout_printf(jout *w, const char *fmt,...)
	__attribute__((format(printf, 2, 3)));

static void
jout_printf(jout *w, const char *fmt,...)
{
	va_list		ap;
	int			k;

	if (w->overflow)
		return;
	va_start(ap, fmt);
	k = vsnprintf(w->buf + w->n, w->len - w->n, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t) k >= w->len - w->n)
	{
		w->overflow = 1;
		return;
	}
	w->n += (size_t) k;
}

/* Append s as a JSON string literal. */
static void
jout_string(jout *w, const char *s)
{
	jout_printf(w, "\"");
	for (; *s && !w->overflow; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c == '"' || c == '\\')
			jout_printf(w, "\\%c", c);
		else if (c == '\n')
			jout_printf(w, "\\n");
		else if (c == '\t')
			jout_printf(w, "\\t");
		else if (c == '\r')
			jout_printf(w, "\\r");
		else if (c < 0x20)
			jout_printf(w, "\\u%04x", c);
		else
			jout_printf(w, "%c", c);
	}
	jout_printf(w, "\"");
}

/* Append the shortest decimal form of v that parses back to the same float. */
static void
jout_float(jout *w, float v)
{
	char		num[32];

	for (int prec = 6; prec <= 9; prec++)
	{
		snprintf(num, sizeof(num), "%.*g", prec, (double) v);
		if ((float) strtod(num, NULL) == v)
			break;
	}
	jout_printf(w, "%s", num);
}

/* Append an enum name, or its number when it has none (never for valid options). */
static void
jout_name(jout *w, const char *name, int32_t v)
{
	if (name)
		jout_string(w, name);
	else
		jout_printf(w, "%d", v);
}

/* Canonical JSON of o into buf; returns its length, or -1 when buf is too small. */
int
nn_options_to_json(const nn_options *o, char *buf, size_t len)
{
	jout		w = {buf, len, 0, 0};

	if (len == 0)
		return -1;
	buf[0] = '\0';
	jout_printf(&w, "{\"layers\": ");
	jout_string(&w, o->layers);
	if (o->input.h > 0)
		jout_printf(&w, ", \"input\": [%d, %d, %d]", o->input.h, o->input.w, o->input.c);
	else
		jout_printf(&w, ", \"input\": null");
	jout_printf(&w, ", \"classes\": %d, \"epochs\": %d, \"batch_size\": %d, \"optimizer\": ",
				o->classes, o->epochs, o->batch_size);
	jout_name(&w, nn_optimizer_name(o->optimizer), o->optimizer);
	jout_printf(&w, ", \"learning_rate\": ");
	jout_float(&w, o->learning_rate);
	jout_printf(&w, ", \"lr_schedule\": ");
	jout_name(&w, nn_schedule_name(o->lr_schedule), o->lr_schedule);
	jout_printf(&w, ", \"momentum\": ");
	jout_float(&w, o->momentum);
	jout_printf(&w, ", \"weight_decay\": ");
	jout_float(&w, o->weight_decay);
	jout_printf(&w, ", \"seed\": %llu, \"normalize\": ", (unsigned long long) o->seed);
	jout_name(&w, nn_norm_name(o->normalize), o->normalize);
	jout_printf(&w, ", \"validation_fraction\": ");
	jout_float(&w, o->validation_fraction);
	jout_printf(&w, ", \"threads\": %d, \"record_times\": %s}", o->threads,
				o->record_times ? "true" : "false");
	if (w.overflow)
	{
		buf[0] = '\0';
		return -1;
	}
	return (int) w.n;
}
