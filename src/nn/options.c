/*
 * options.c: the table of training options and the setters that go
 * through it.
 *
 * There is no parser here. The PostgreSQL layer hands over the values of
 * the jsonb it was given (PostgreSQL has already parsed and checked it);
 * the standalone tools hand over text, which nn_options_set_parsed() reads
 * by the option's type. Either way each value reaches one setter per type,
 * which checks the kind of value, then the range, and writes the field
 * only when both hold, so a failed set changes nothing. Messages name the
 * key and what is allowed, and show the value as it was written (numbers)
 * or quoted (text), shortened to 24 printable characters.
 *
 * Enum values are matched case-insensitively; keys exactly. A whole
 * number given as a float (3.0, 1e2) is an integer; integers are numbers.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

#define SHOWN_LEN 24			/* characters of a value or key quoted in a message */
#define NAMES_COUNT(a) ((int32_t) (sizeof(a) / sizeof((a)[0])))
#define FIELD(f) offsetof(nn_options, f), sizeof(((nn_options *) 0)->f)

static const char *const optimizer_names[] = {"sgd", "momentum", "adam"};
static const char *const schedule_names[] = {"constant", "step", "cosine", "onecycle"};
static const char *const norm_names[] = {"none", "minmax", "zscore", "auto"};	/* NN_NORM_* order */

/* every option, in the order of messages, models and the README */
const nn_option_def nn_option_table[] = {
	{"layers", NN_OPTION_TEXT, FIELD(layers), 0, NN_MAX_SPEC - 1, 0, NULL, 0,
		"`conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) dropout(0.25) flatten dense(128) relu dropout(0.5) dense(<classes>)`",
	"a [layer spec](#layer-specs)"},
	{"input", NN_OPTION_SHAPE, FIELD(input), 1, NN_MAX_DIM, 0, NULL, 0,
		"inferred from the pixel length: a square grey image, or three times a square an RGB one",
	"1..4096 each"},
	{"classes", NN_OPTION_INT, FIELD(classes), NN_MIN_CLASSES, NN_MAX_CLASSES, 0, NULL, 0,
		"10", "2..4096"},
	{"epochs", NN_OPTION_INT, FIELD(epochs), NN_MIN_EPOCHS, NN_MAX_EPOCHS, 0, NULL, 0,
		"8", "1..10000"},
	{"batch_size", NN_OPTION_INT, FIELD(batch_size), NN_MIN_BATCH, NN_MAX_BATCH, 0, NULL, 0,
		"64", "1..65536, at most the training rows"},
	{"optimizer", NN_OPTION_ENUM, FIELD(optimizer), 0, 0, 0, optimizer_names, NAMES_COUNT(optimizer_names),
		"`adam`", "`adam` (bias-corrected, β = 0.9, 0.999), `sgd`, `momentum`"},
	{"learning_rate", NN_OPTION_FLOAT, FIELD(learning_rate), 0, NN_MAX_LR, NN_OPTION_MIN_OPEN, NULL, 0,
		"0.005", "> 0 and ≤ 10; the peak rate for `onecycle`"},
	{"lr_schedule", NN_OPTION_ENUM, FIELD(lr_schedule), 0, 0, 0, schedule_names, NAMES_COUNT(schedule_names),
		"`onecycle`",
		"`constant`, `step` (×0.1 at 50% and 75% of the steps), `cosine` (to 0), `onecycle` (PyTorch's OneCycleLR: warm-up over 30% from lr/25, cosine down to lr/25/10⁴)"},
	{"momentum", NN_OPTION_FLOAT, FIELD(momentum), 0, 1, NN_OPTION_MAX_OPEN, NULL, 0,
		"0.9", "0 ≤ m < 1 (`momentum` optimizer)"},
	{"weight_decay", NN_OPTION_FLOAT, FIELD(weight_decay), 0, 1, 0, NULL, 0,
		"0", "0..1, L2 added to the gradient as PyTorch does"},
	{"seed", NN_OPTION_INT, FIELD(seed), 0, NN_MAX_SEED, 0, NULL, 0,
		"42", "0..2⁵³; seeds weights, shuffles, hold-out and dropout"},
	{"normalize", NN_OPTION_ENUM, FIELD(normalize), 0, 0, 0, norm_names, NAMES_COUNT(norm_names),
		"`auto`",
		"`none` (the values as they are), `minmax` (bytes: pixel/255; real[]: (v - min)/(max - min) over the training rows), `zscore` (mean and standard deviation of the training rows, of pixel/255 for bytes), `auto` (`minmax` for bytea pixels, `none` for real[]); the statistics are stored in the model and applied by predict"},
	{"validation_fraction", NN_OPTION_FLOAT, FIELD(validation_fraction), 0, 0.5, 0, NULL, 0,
		"0", "0..0.5: a seeded hold-out whose accuracy is reported per epoch"},
	{"threads", NN_OPTION_INT, FIELD(threads), 0, NN_MAX_THREADS, 0, NULL, 0,
		"0 (= `mlcnn.threads`, by default one per core)",
		"0..256 threads, capped at the server's cores for a role that is not a superuser (superusers get what they ask for); each batch is split into four data-parallel parts (fewer for batches under 4), each run with single-threaded OpenBLAS, and the threads take the parts in turn (so at most 4 help); the parts' gradients are added in a fixed order, so the thread count never changes the model"},
	{"record_times", NN_OPTION_BOOL, FIELD(record_times), 0, 1, 0, NULL, 0,
		"true", "store wall-clock seconds in the model (false: fully byte-identical models)"},
	{"augment_hflip", NN_OPTION_BOOL, FIELD(augment_hflip), 0, 1, 0, NULL, 0,
		"false", "flip each training image left-right with probability 1/2, drawn per image per epoch from the seeded generator (also written `\"augment\": {\"hflip\": true}`); validation and inference see the images as they are"},
	{"augment_shift", NN_OPTION_INT, FIELD(augment_shift), 0, 16, 0, NULL, 0,
		"0", "0..16: shift each training image by up to this many pixels down or up and left or right (uniform, zero fill), drawn like augment_hflip (also `\"augment\": {\"shift\": 2}`)"},
};

const int	nn_option_count = NAMES_COUNT(nn_option_table);

int			(*nn_option_distance) (const char *a, const char *b) = NULL;

/* ------------------------------------------------------------- names */

/* Lower-case an ASCII letter. */
static char
ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char) (c + 32) : c;
}

/* Index of the len bytes at s in names[n], case-insensitive, or -1. */
static int32_t
name_index(const char *const *names, int32_t n, const char *s, size_t len)
{
	if (s == NULL)
		return -1;
	for (int32_t i = 0; i < n; i++)
	{
		size_t		k = 0;

		while (k < len && names[i][k] != '\0' && ascii_lower(s[k]) == names[i][k])
			k++;
		if (k == len && names[i][k] == '\0')
			return i;
	}
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
	return name_index(optimizer_names, NAMES_COUNT(optimizer_names), name, name ? strlen(name) : 0);
}

/* NN_LR_* of a name, or -1. */
int32_t
nn_schedule_from_name(const char *name)
{
	return name_index(schedule_names, NAMES_COUNT(schedule_names), name, name ? strlen(name) : 0);
}

/* NN_NORM_* of a name, or -1. */
int32_t
nn_norm_from_name(const char *name)
{
	return name_index(norm_names, NAMES_COUNT(norm_names), name, name ? strlen(name) : 0);
}

/* Fill o with the defaults. */
void
nn_options_default(nn_options *o)
{
	memset(o, 0, sizeof(*o));
	o->classes = NN_DEFAULT_CLASSES;
	o->epochs = NN_DEFAULT_EPOCHS;
	o->batch_size = NN_DEFAULT_BATCH;
	o->optimizer = NN_OPT_ADAM;
	o->learning_rate = NN_DEFAULT_LR;
	o->lr_schedule = NN_LR_ONECYCLE;
	o->momentum = NN_DEFAULT_MOMENTUM;
	o->seed = NN_DEFAULT_SEED;
	o->normalize = NN_NORM_AUTO;
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

/* The option of that exact name, or NULL. */
const nn_option_def *
nn_option_find(const char *name)
{
	for (int i = 0; name != NULL && i < nn_option_count; i++)
		if (strcmp(nn_option_table[i].name, name) == 0)
			return &nn_option_table[i];
	return NULL;
}

/* The word for a type in messages and the README. */
const char *
nn_option_type_name(nn_option_type type)
{
	switch (type)
	{
		case NN_OPTION_INT:
			return "integer";
		case NN_OPTION_FLOAT:
			return "number";
		case NN_OPTION_BOOL:
			return "boolean";
		case NN_OPTION_TEXT:
		case NN_OPTION_ENUM:
			return "text";
		case NN_OPTION_SHAPE:
			return "[h, w, c]";
	}
	return "value";
}

/* ------------------------------------------------------------- messages */

/* Up to SHOWN_LEN bytes of s (len bytes) as printable ASCII into buf, "..." when cut. */
static void
quote(char *buf, size_t buflen, const char *s, size_t len)
{
	nn_quote(buf, buflen, s, len, SHOWN_LEN);
}

/* What kind of value v is, for "must be X, not <this>": "a string", "null", ... */
void
nn_value_describe(const nn_value *v, char *buf, size_t len)
{
	static const char *const kinds[] = {"null", "a boolean", "a number", "a number", "a string",
	"an array", "an object"};

	snprintf(buf, len, "%s", (int) v->kind >= 0 && (int) v->kind < NAMES_COUNT(kinds) ? kinds[v->kind] : "a value");
}

/* A number as written (or formatted), for "not <this>" after a range or a fraction. */
static void
number_shown(const nn_value *v, char *buf, size_t len)
{
	if (v->shown != NULL)
		quote(buf, len, v->shown, strlen(v->shown));
	else if (v->kind == NN_VALUE_INT)
		snprintf(buf, len, "%lld", (long long) v->i);
	else
		snprintf(buf, len, "%.15g", v->f);
}

/* The core's edit distance (ASCII case folded on a's side), for "did you mean". */
static int
edit_distance(const char *a, const char *b)
{
	int			row[NN_MAX_OPTION_NAME + 1];
	size_t		la = strlen(a),
				lb = strlen(b);

	if (la > NN_MAX_OPTION_NAME || lb > NN_MAX_OPTION_NAME)
		return 1000;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int) j;
	for (size_t i = 1; i <= la; i++)
	{
		int			diag = row[0];

		row[0] = (int) i;
		for (size_t j = 1; j <= lb; j++)
		{
			int			up = row[j];
			int			best = diag + (ascii_lower(a[i - 1]) != b[j - 1]);

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

/* Fail for an unknown key: the nearest known one (at most 2 edits away) and all of them. */
static int
unknown_key(const char *key, nn_status *st)
{
	char		shown[SHOWN_LEN + 8];
	char		allowed[NN_MSG_LEN];
	char		hint[NN_MAX_OPTION_NAME + 24] = "";
	size_t		k = 0,
				keylen = strlen(key);
	int			best = 3,
				besti = -1;

	for (int i = 0; i < nn_option_count; i++)
	{
		const char *name = nn_option_table[i].name;
		int			d = keylen > NN_MAX_OPTION_NAME ? 1000 :
			nn_option_distance ? nn_option_distance(key, name) : edit_distance(key, name);

		if (k < sizeof(allowed))
			k += snprintf(allowed + k, sizeof(allowed) - k, "%s%s", i ? ", " : "", name);
		if (d < best)
			best = d, besti = i;
	}
	if (besti >= 0)
		snprintf(hint, sizeof(hint), " (did you mean \"%s\"?)", nn_option_table[besti].name);
	quote(shown, sizeof(shown), key, keylen);
	return nn_fail(st, NN_ERR_INVALID, "unknown option \"%s\"%s; allowed: %s", shown, hint, allowed);
}

/* ------------------------------------------------------------- fields */

/* Write an integer into the field of d. */
static void
put_int(nn_options *o, const nn_option_def *d, int64_t v)
{
	char	   *p = (char *) o + d->offset;

	if (d->size == sizeof(int32_t))
	{
		int32_t		x = (int32_t) v;

		memcpy(p, &x, sizeof(x));
	}
	else
		memcpy(p, &v, sizeof(v));
}

/* Value of option d in o: INT, BOOL and ENUM (its index). */
int64_t
nn_option_int(const nn_options *o, const nn_option_def *d)
{
	const char *p = (const char *) o + d->offset;

	if (d->size == sizeof(int32_t))
	{
		int32_t		x;

		memcpy(&x, p, sizeof(x));
		return x;
	}
	else
	{
		int64_t		x;

		memcpy(&x, p, sizeof(x));
		return x;
	}
}

/* Value of FLOAT option d in o. */
float
nn_option_float(const nn_options *o, const nn_option_def *d)
{
	float		f;

	memcpy(&f, (const char *) o + d->offset, sizeof(f));
	return f;
}

/* Value of TEXT option d (its text) or ENUM option d (its value's name). */
const char *
nn_option_text(const nn_options *o, const nn_option_def *d)
{
	if (d->type == NN_OPTION_ENUM)
	{
		int64_t		i = nn_option_int(o, d);

		return i >= 0 && i < d->nnames ? d->names[i] : "";
	}
	return (const char *) o + d->offset;
}

/* Value of SHAPE option d in o. */
nn_shape
nn_option_shape(const nn_options *o, const nn_option_def *d)
{
	nn_shape	s;

	memcpy(&s, (const char *) o + d->offset, sizeof(s));
	return s;
}

/* ------------------------------------------------------------- setting */

/*
 * Check v as an integer in [lo, hi] for subject (`option "epochs"`); a
 * whole float counts, a fraction or another kind does not.
 */
static int
check_int(const nn_value *v, const char *subject, double lo, double hi, int64_t *out,
		  nn_status *st)
{
	char		shown[SHOWN_LEN + 8];

	if (v->kind != NN_VALUE_INT && v->kind != NN_VALUE_FLOAT)
	{
		nn_value_describe(v, shown, sizeof(shown));
		return nn_fail(st, NN_ERR_INVALID, "%s must be an integer, not %s", subject, shown);
	}
	number_shown(v, shown, sizeof(shown));
	if (v->kind == NN_VALUE_INT)
	{
		/* compared as integers: 2^53 + 1 is no double */
		if (v->i < (int64_t) lo || v->i > (int64_t) hi)
			return nn_fail(st, NN_ERR_INVALID, "%s must be between %lld and %lld, not %s",
						   subject, (long long) lo, (long long) hi, shown);
		*out = v->i;
		return NN_OK;
	}
	if (isfinite(v->f) && v->f != floor(v->f))
		return nn_fail(st, NN_ERR_INVALID, "%s must be an integer, not %s", subject, shown);
	if (!(v->f >= lo && v->f <= hi))
		return nn_fail(st, NN_ERR_INVALID, "%s must be between %lld and %lld, not %s",
					   subject, (long long) lo, (long long) hi, shown);
	*out = (int64_t) v->f;
	return NN_OK;
}

/* Set INT option d. */
static int
set_int(nn_options *o, const nn_option_def *d, const nn_value *v, nn_status *st)
{
	char		subject[NN_MAX_OPTION_NAME + 16];
	int64_t		x;

	snprintf(subject, sizeof(subject), "option \"%s\"", d->name);
	if (check_int(v, subject, d->min, d->max, &x, st) != NN_OK)
		return st->code;
	put_int(o, d, x);
	return NN_OK;
}

/* "between 0 and 1", "greater than 0 and at most 10", ...: the range of FLOAT option d */
static void
float_range(const nn_option_def *d, char *buf, size_t len)
{
	int			lo_open = (d->flags & NN_OPTION_MIN_OPEN) != 0,
				hi_open = (d->flags & NN_OPTION_MAX_OPEN) != 0;

	if (!lo_open && !hi_open)
		snprintf(buf, len, "between %g and %g", d->min, d->max);
	else
		snprintf(buf, len, "%s %g and %s %g", lo_open ? "greater than" : "at least", d->min,
				 hi_open ? "less than" : "at most", d->max);
}

/* Set FLOAT option d; the range is checked on the float32 that is stored. */
static int
set_float(nn_options *o, const nn_option_def *d, const nn_value *v, nn_status *st)
{
	char		shown[SHOWN_LEN + 8];
	char		range[96];
	float		f;
	int			ok;

	if (v->kind != NN_VALUE_INT && v->kind != NN_VALUE_FLOAT)
	{
		nn_value_describe(v, shown, sizeof(shown));
		return nn_fail(st, NN_ERR_INVALID, "option \"%s\" must be a number, not %s", d->name, shown);
	}
	number_shown(v, shown, sizeof(shown));
	f = v->kind == NN_VALUE_INT ? (float) v->i : (float) v->f;
	ok = (d->flags & NN_OPTION_MIN_OPEN) ? f > (float) d->min : f >= (float) d->min;
	ok = ok && ((d->flags & NN_OPTION_MAX_OPEN) ? f < (float) d->max : f <= (float) d->max);
	if (!ok)
	{
		float_range(d, range, sizeof(range));
		return nn_fail(st, NN_ERR_INVALID, "option \"%s\" must be %s, not %s", d->name, range, shown);
	}
	memcpy((char *) o + d->offset, &f, sizeof(f));
	return NN_OK;
}

/* Set BOOL option d. */
static int
set_bool(nn_options *o, const nn_option_def *d, const nn_value *v, nn_status *st)
{
	char		shown[SHOWN_LEN + 8];

	if (v->kind != NN_VALUE_BOOL)
	{
		nn_value_describe(v, shown, sizeof(shown));
		return nn_fail(st, NN_ERR_INVALID, "option \"%s\" must be a boolean, not %s", d->name, shown);
	}
	put_int(o, d, v->b != 0);
	return NN_OK;
}

/* Set TEXT option d: at most max bytes, no NUL. */
static int
set_text(nn_options *o, const nn_option_def *d, const nn_value *v, nn_status *st)
{
	char		shown[SHOWN_LEN + 8];
	char	   *field = (char *) o + d->offset;

	if (v->kind != NN_VALUE_TEXT)
	{
		nn_value_describe(v, shown, sizeof(shown));
		return nn_fail(st, NN_ERR_INVALID, "option \"%s\" must be a string, not %s", d->name, shown);
	}
	if ((double) v->len > d->max || v->len >= d->size)
		return nn_fail(st, NN_ERR_LIMIT, "option \"%s\" is %zu bytes long, more than the limit of %.0f",
					   d->name, v->len, d->max);
	if (v->len > 0 && memchr(v->s, '\0', v->len) != NULL)
		return nn_fail(st, NN_ERR_INVALID, "option \"%s\" holds a NUL byte", d->name);
	memset(field, 0, d->size);
	if (v->len > 0)
		memcpy(field, v->s, v->len);
	return NN_OK;
}

/* Set ENUM option d from one of its names. */
static int
set_enum(nn_options *o, const nn_option_def *d, const nn_value *v, nn_status *st)
{
	char		allowed[160];
	char		shown[SHOWN_LEN + 8];
	size_t		k = 0;
	int32_t		i = -1;

	allowed[0] = '\0';
	for (int n = 0; n < d->nnames && k < sizeof(allowed); n++)
		k += snprintf(allowed + k, sizeof(allowed) - k, "%s\"%s\"",
					  n == 0 ? "" : (n == d->nnames - 1 ? " or " : ", "), d->names[n]);
	if (v->kind != NN_VALUE_TEXT)
	{
		nn_value_describe(v, shown, sizeof(shown));
		return nn_fail(st, NN_ERR_INVALID, "option \"%s\" must be %s, not %s", d->name, allowed, shown);
	}
	if (v->len <= NN_MAX_OPTION_NAME)
		i = name_index(d->names, d->nnames, v->s, v->len);
	if (i < 0)
	{
		quote(shown, sizeof(shown), v->s, v->len);
		return nn_fail(st, NN_ERR_INVALID, "option \"%s\" must be %s, not \"%s\"", d->name, allowed, shown);
	}
	put_int(o, d, i);
	return NN_OK;
}

/* Set SHAPE option d from [h, w, c], or null for "not given". */
static int
set_shape(nn_options *o, const nn_option_def *d, const nn_value *v, nn_status *st)
{
	char		shown[SHOWN_LEN + 8];
	char		subject[NN_MAX_OPTION_NAME + 32];
	int64_t		dims[3];
	nn_shape	s = {0, 0, 0};

	if (v->kind == NN_VALUE_ARRAY)
	{
		if (v->nitems != 3 || v->items == NULL)
			return nn_fail(st, NN_ERR_INVALID, "option \"%s\" must have 3 values [h, w, c], not %d",
						   d->name, v->nitems);
		snprintf(subject, sizeof(subject), "each value of option \"%s\"", d->name);
		for (int i = 0; i < 3; i++)
			if (check_int(&v->items[i], subject, d->min, d->max, &dims[i], st) != NN_OK)
				return st->code;
		s.h = (int32_t) dims[0];
		s.w = (int32_t) dims[1];
		s.c = (int32_t) dims[2];
	}
	else if (v->kind != NN_VALUE_NULL)
	{
		nn_value_describe(v, shown, sizeof(shown));
		return nn_fail(st, NN_ERR_INVALID, "option \"%s\" must be an array of 3 integers [h, w, c], not %s",
					   d->name, shown);
	}
	memcpy((char *) o + d->offset, &s, sizeof(s));
	return NN_OK;
}

/* Set option key to v (see options.h). */
int
nn_options_set(nn_options *o, const char *key, const nn_value *v, nn_status *st)
{
	const nn_option_def *d = nn_option_find(key);

	if (key == NULL || v == NULL)
		return nn_fail(st, NN_ERR_INVALID, "an option needs a key and a value");
	if (d == NULL)
		return unknown_key(key, st);
	switch (d->type)
	{
		case NN_OPTION_INT:
			return set_int(o, d, v, st);
		case NN_OPTION_FLOAT:
			return set_float(o, d, v, st);
		case NN_OPTION_BOOL:
			return set_bool(o, d, v, st);
		case NN_OPTION_TEXT:
			return set_text(o, d, v, st);
		case NN_OPTION_ENUM:
			return set_enum(o, d, v, st);
		case NN_OPTION_SHAPE:
			return set_shape(o, d, v, st);
	}
	return nn_fail(st, NN_ERR_INVALID, "option \"%s\" has an unknown type", d->name);
}

/* Set option key to an integer. */
int
nn_options_set_int(nn_options *o, const char *key, int64_t v, nn_status *st)
{
	nn_value	x = {.kind = NN_VALUE_INT, .i = v};

	return nn_options_set(o, key, &x, st);
}

/* Set option key to a number. */
int
nn_options_set_float(nn_options *o, const char *key, double v, nn_status *st)
{
	nn_value	x = {.kind = NN_VALUE_FLOAT, .f = v};

	return nn_options_set(o, key, &x, st);
}

/* Set option key to a boolean. */
int
nn_options_set_bool(nn_options *o, const char *key, int v, nn_status *st)
{
	nn_value	x = {.kind = NN_VALUE_BOOL, .b = v != 0};

	return nn_options_set(o, key, &x, st);
}

/* Set option key to a NUL-terminated text. */
int
nn_options_set_text(nn_options *o, const char *key, const char *v, nn_status *st)
{
	nn_value	x = {.kind = NN_VALUE_TEXT, .s = v, .len = v ? strlen(v) : 0};

	return nn_options_set(o, key, &x, st);
}

/* Set option key to a shape; all zero means not given. */
int
nn_options_set_shape(nn_options *o, const char *key, nn_shape v, nn_status *st)
{
	nn_value	dims[3] = {{.kind = NN_VALUE_INT, .i = v.h}, {.kind = NN_VALUE_INT, .i = v.w},
	{.kind = NN_VALUE_INT, .i = v.c}};
	nn_value	x = {.kind = NN_VALUE_ARRAY, .nitems = 3, .items = dims};

	if (v.h == 0 && v.w == 0 && v.c == 0)
		x.kind = NN_VALUE_NULL;
	return nn_options_set(o, key, &x, st);
}

/* ------------------------------------------------------------- from text */

/*
 * Read a number token text[0..len) into v (an integer when it is one that
 * fits int64, else a double); shown is the NUL-terminated token. Returns 0
 * when it is no number.
 */
static int
parse_number(const char *shown, nn_value *v)
{
	const char *p = shown + (shown[0] == '-' || shown[0] == '+');
	char	   *end;

	memset(v, 0, sizeof(*v));
	v->shown = shown;
	if (*p == '\0')
		return 0;
	if (strspn(p, "0123456789") == strlen(p))
	{
		errno = 0;
		v->i = strtoll(shown, &end, 10);
		if (errno == 0 && *end == '\0')
		{
			v->kind = NN_VALUE_INT;
			return 1;
		}
	}
	/* digits first, and only what JSON numbers hold: no "inf", "nan" or hex */
	if (!((*p >= '0' && *p <= '9') || *p == '.') || strspn(p, "0123456789.eE+-") != strlen(p))
		return 0;
	v->f = strtod(shown, &end);
	if (*end != '\0' || end == shown)
		return 0;
	v->kind = NN_VALUE_FLOAT;
	return 1;
}

/* Set SHAPE option key from "h,w,c", "[h, w, c]", "hxwxc", or "null"/"" for none. */
static int
parse_shape(nn_options *o, const char *key, const char *text, nn_status *st)
{
	char		buf[128];
	nn_value	items[NN_VALUE_MAX_ITEMS];
	nn_value	v = {.kind = NN_VALUE_ARRAY, .items = items};
	nn_value	none = {.kind = NN_VALUE_NULL};
	char	   *p = buf,
			   *save = NULL;
	size_t		n;

	snprintf(buf, sizeof(buf), "%s", text);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == ']' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	while (*p == '[' || *p == ' ')
		p++;
	if (*p == '\0' || strcmp(p, "null") == 0)
		return nn_options_set(o, key, &none, st);
	for (char *t = strtok_r(p, ",x ", &save); t != NULL; t = strtok_r(NULL, ",x ", &save))
	{
		if (v.nitems < NN_VALUE_MAX_ITEMS && !parse_number(t, &items[v.nitems]))
		{
			char		shown[SHOWN_LEN + 8];

			quote(shown, sizeof(shown), t, strlen(t));
			return nn_fail(st, NN_ERR_INVALID, "each value of option \"%s\" must be an integer, not \"%s\"",
						   key, shown);
		}
		v.nitems++;
	}
	return nn_options_set(o, key, &v, st);
}

/* Set option key from text, parsed by its type (see options.h). */
int
nn_options_set_parsed(nn_options *o, const char *key, const char *text, nn_status *st)
{
	const nn_option_def *d = nn_option_find(key);
	char		shown[SHOWN_LEN + 8];
	nn_value	v;

	if (key == NULL || text == NULL)
		return nn_fail(st, NN_ERR_INVALID, "an option needs a key and a value");
	if (d == NULL)
		return unknown_key(key, st);
	quote(shown, sizeof(shown), text, strlen(text));
	switch (d->type)
	{
		case NN_OPTION_INT:
		case NN_OPTION_FLOAT:
			if (!parse_number(text, &v))
				return nn_fail(st, NN_ERR_INVALID, "option \"%s\" must be %s, not \"%s\"",
							   key, d->type == NN_OPTION_INT ? "an integer" : "a number", shown);
			if (d->type == NN_OPTION_FLOAT && v.kind == NN_VALUE_INT)
			{
				v.kind = NN_VALUE_FLOAT;	/* as a double: "-0" keeps its sign */
				v.f = strtod(text, NULL);
			}
			return nn_options_set(o, key, &v, st);
		case NN_OPTION_BOOL:
			{
				static const char *const yes[] = {"true", "on", "yes", "1", "t"};
				static const char *const no[] = {"false", "off", "no", "0", "f"};

				if (name_index(yes, NAMES_COUNT(yes), text, strlen(text)) >= 0)
					return nn_options_set_bool(o, key, 1, st);
				if (name_index(no, NAMES_COUNT(no), text, strlen(text)) >= 0)
					return nn_options_set_bool(o, key, 0, st);
				return nn_fail(st, NN_ERR_INVALID, "option \"%s\" must be a boolean (true or false), not \"%s\"",
							   key, shown);
			}
		case NN_OPTION_TEXT:
		case NN_OPTION_ENUM:
			return nn_options_set_text(o, key, text, st);
		case NN_OPTION_SHAPE:
			return parse_shape(o, key, text, st);
	}
	return nn_fail(st, NN_ERR_INVALID, "option \"%s\" has an unknown type", key);
}

/* Set one option from "key=value". */
int
nn_options_assign(nn_options *o, const char *assignment, nn_status *st)
{
	const char *eq = assignment ? strchr(assignment, '=') : NULL;
	char		key[2 * NN_MAX_OPTION_NAME + 1];
	char		shown[SHOWN_LEN + 8];
	size_t		n;

	if (eq == NULL)
	{
		quote(shown, sizeof(shown), assignment ? assignment : "", assignment ? strlen(assignment) : 0);
		return nn_fail(st, NN_ERR_INVALID, "expected key=value, not \"%s\"", shown);
	}
	n = (size_t) (eq - assignment);
	if (n >= sizeof(key))
		n = sizeof(key) - 1;	/* longer than any name: unknown either way */
	memcpy(key, assignment, n);
	key[n] = '\0';
	return nn_options_set_parsed(o, key, eq + 1, st);
}

/* The value of option d as text nn_options_set_parsed reads back; returns its length. */
int
nn_option_format(const nn_options *o, const nn_option_def *d, char *buf, size_t len)
{
	switch (d->type)
	{
		case NN_OPTION_INT:
			return snprintf(buf, len, "%lld", (long long) nn_option_int(o, d));
		case NN_OPTION_FLOAT:
			return snprintf(buf, len, "%.9g", (double) nn_option_float(o, d));
		case NN_OPTION_BOOL:
			return snprintf(buf, len, "%s", nn_option_int(o, d) ? "true" : "false");
		case NN_OPTION_TEXT:
		case NN_OPTION_ENUM:
			return snprintf(buf, len, "%s", nn_option_text(o, d));
		case NN_OPTION_SHAPE:
			{
				nn_shape	s = nn_option_shape(o, d);

				if (s.h == 0 && s.w == 0 && s.c == 0)
					return snprintf(buf, len, "null");
				return snprintf(buf, len, "%d,%d,%d", s.h, s.w, s.c);
			}
	}
	return snprintf(buf, len, "?");
}
