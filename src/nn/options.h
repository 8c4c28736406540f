/*
 * options.h: the training options, described by one table.
 *
 * nn_option_table[] names every option of train_conv2d with its type,
 * range, default and help text, and says where its value lives in
 * nn_options. Everything that sets, stores or shows options goes through
 * it: the PostgreSQL layer walks the jsonb it is given and hands each value
 * to nn_options_set(); the model format stores each option as name, type
 * and value from the table; model_info and the README's reference are
 * written from it; bench/nn_bench's --set key=value parses its text by the
 * option's type. A new option is one row of the table and one field of
 * nn_options.
 *
 * Setters check the type and the range and name the key and what is
 * allowed; an unknown key is an error that lists the known ones and
 * suggests the nearest. A failed set leaves the options unchanged.
 */
#ifndef MLCNN_OPTIONS_H
#define MLCNN_OPTIONS_H

#include "nn.h"

/* DEFAULT/MIN/MAX triples */
#define NN_DEFAULT_EPOCHS 8
#define NN_MIN_EPOCHS 1
#define NN_MAX_EPOCHS 10000
#define NN_DEFAULT_BATCH 64
#define NN_MIN_BATCH 1
#define NN_MAX_BATCH 65536
#define NN_DEFAULT_CLASSES 10
#define NN_MIN_CLASSES 2
#define NN_MAX_CLASSES 4096
#define NN_DEFAULT_LR 0.005f
#define NN_MAX_LR 10.0f
#define NN_DEFAULT_MOMENTUM 0.9f
#define NN_DEFAULT_SEED 42
#define NN_MAX_SEED 9007199254740992.0	/* 2^53: doubles are exact below it */
#define NN_MAX_THREADS 256
#define NN_MAX_OPTION_NAME 64	/* bytes of an option's name */
#define NN_MAX_OPTIONS 64		/* rows the table may have */

/* the layer spec used when "layers" is not given; %d is the class count */
#define NN_DEFAULT_SPEC_FMT "conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) dropout(0.25) flatten dense(128) relu dropout(0.5) dense(%d)"

typedef struct nn_options
{
	char		layers[NN_MAX_SPEC];	/* layer spec; "" means the default */
	nn_shape	input;			/* h = 0 when not given (inferred) */
	int32_t		classes;
	int32_t		epochs;
	int32_t		batch_size;
	int32_t		optimizer;		/* NN_OPT_* */
	float		learning_rate;
	int32_t		lr_schedule;	/* NN_LR_* */
	float		momentum;
	float		weight_decay;
	uint64_t	seed;
	int32_t		normalize;		/* NN_NORM_* */
	float		validation_fraction;	/* [0, 0.5] */
	int32_t		threads;		/* 0 = the GUC/default */
	int32_t		record_times;	/* store wall-clock seconds in the model */
	int32_t		augment_hflip;	/* training images flipped left-right at random */
	int32_t		augment_shift;	/* training images shifted by up to this many pixels */
} nn_options;

/* ------------------------------------------------------------- the table */

/*
 * The types of options. The numbers are stored in models (format 2's
 * options section), so they never change; new types take new numbers.
 */
typedef enum nn_option_type
{
	NN_OPTION_INT = 1,			/* a whole number in [min, max] (int32_t or uint64_t field) */
	NN_OPTION_FLOAT = 2,		/* a float32 in the range (float field) */
	NN_OPTION_BOOL = 3,			/* true or false (int32_t field, 0 or 1) */
	NN_OPTION_TEXT = 4,			/* text of at most max bytes (char array field) */
	NN_OPTION_ENUM = 5,			/* one of names, case-insensitive (int32_t field: its index) */
	NN_OPTION_SHAPE = 6			/* [h, w, c], each in [min, max], or null: not given (nn_shape) */
} nn_option_type;

/* range flags: the bound itself is not allowed */
#define NN_OPTION_MIN_OPEN 1
#define NN_OPTION_MAX_OPEN 2

typedef struct nn_option_def
{
	const char *name;
	nn_option_type type;
	size_t		offset;			/* of the field in nn_options */
	size_t		size;			/* of that field */
	double		min;			/* INT, FLOAT, each SHAPE value: the range */
	double		max;			/* ... TEXT: the longest text in bytes */
	int			flags;			/* NN_OPTION_MIN_OPEN, NN_OPTION_MAX_OPEN */
	const char *const *names;	/* ENUM: its values, index = the stored number */
	int			nnames;
	const char *default_doc;	/* the default, as the README shows it */
	const char *help;			/* what is allowed and what it does (the README's column) */
} nn_option_def;

extern const nn_option_def nn_option_table[];
extern const int nn_option_count;

/* the option of that exact name, or NULL */
const nn_option_def *nn_option_find(const char *name);

/* the type's word in messages and the README: "integer", "number", "boolean", "text", "[h, w, c]" */
const char *nn_option_type_name(nn_option_type type);

/*
 * The edit distance behind "did you mean" for unknown keys. The PostgreSQL
 * layer points it at varstr_levenshtein; NULL (the standalone tools) uses
 * the core's own small one.
 */
extern int	(*nn_option_distance) (const char *a, const char *b);

/* ------------------------------------------------------------- setting */

/* the kinds of values a caller hands over (what JSON has) */
typedef enum nn_value_kind
{
	NN_VALUE_NULL,
	NN_VALUE_BOOL,
	NN_VALUE_INT,
	NN_VALUE_FLOAT,
	NN_VALUE_TEXT,
	NN_VALUE_ARRAY,
	NN_VALUE_OBJECT
} nn_value_kind;

#define NN_VALUE_MAX_ITEMS 4	/* array values an option ever reads */

/* one value for an option */
typedef struct nn_value
{
	nn_value_kind kind;
	int			b;				/* BOOL */
	int64_t		i;				/* INT */
	double		f;				/* FLOAT */
	const char *s;				/* TEXT: s[0..len), need not be NUL-terminated */
	size_t		len;
	const char *shown;			/* INT, FLOAT: the number as written, for messages; NULL: formatted */
	int			nitems;			/* ARRAY: its length */
	const struct nn_value *items;	/* ARRAY: its first min(nitems, NN_VALUE_MAX_ITEMS) values */
} nn_value;

/* what v is, for "must be X, not <this>": "a string", "null", ..., or a number as written */
void		nn_value_describe(const nn_value *v, char *buf, size_t len);

/* fill with defaults */
void		nn_options_default(nn_options *o);

/*
 * Set option key to v, checking the type and range. Integers are accepted
 * where numbers are, and whole numbers (3.0) where integers are. Errors:
 * NN_ERR_INVALID (unknown key, wrong type, out of range) or NN_ERR_LIMIT
 * (text too long), naming the key and what is allowed; o is then unchanged.
 */
int			nn_options_set(nn_options *o, const char *key, const nn_value *v, nn_status *st);

/* the same for one typed value */
int			nn_options_set_int(nn_options *o, const char *key, int64_t v, nn_status *st);
int			nn_options_set_float(nn_options *o, const char *key, double v, nn_status *st);
int			nn_options_set_bool(nn_options *o, const char *key, int v, nn_status *st);
int			nn_options_set_text(nn_options *o, const char *key, const char *v, nn_status *st);
/* input: h = 0 means not given (inferred from the pixels) */
int			nn_options_set_shape(nn_options *o, const char *key, nn_shape v, nn_status *st);

/*
 * Set option key from text, parsed by the option's type: integers and
 * numbers as C writes them, booleans as true/false (on/off, yes/no, 1/0),
 * a shape as "h,w,c" (or "[h, w, c]", "hxwxc"; "null" or "" for none).
 */
int			nn_options_set_parsed(nn_options *o, const char *key, const char *text, nn_status *st);

/* "key=value", as bench/nn_bench --set takes it */
int			nn_options_assign(nn_options *o, const char *assignment, nn_status *st);

/* ------------------------------------------------------------- reading */

/* the value of option d in o: INT, BOOL and ENUM (its index) */
int64_t		nn_option_int(const nn_options *o, const nn_option_def *d);
/* FLOAT */
float		nn_option_float(const nn_options *o, const nn_option_def *d);
/* TEXT: the text; ENUM: the name of its value */
const char *nn_option_text(const nn_options *o, const nn_option_def *d);
/* SHAPE */
nn_shape	nn_option_shape(const nn_options *o, const nn_option_def *d);

/* the value of option d as text that nn_options_set_parsed reads back; returns its length */
int			nn_option_format(const nn_options *o, const nn_option_def *d, char *buf, size_t len);

/* names for enum values, and back (NULL / -1 when unknown) */
const char *nn_optimizer_name(int32_t v);
const char *nn_schedule_name(int32_t v);
const char *nn_norm_name(int32_t v);
int32_t		nn_optimizer_from_name(const char *name);	/* case-insensitive */
int32_t		nn_schedule_from_name(const char *name);
int32_t		nn_norm_from_name(const char *name);

/* the layer spec of o into buf: o->layers, or the default spec for o->classes */
void		nn_options_spec(const nn_options *o, char *buf, size_t len);

#endif							/* MLCNN_OPTIONS_H */
