/*
 * options.h: training options, and the one parser that reads them.
 *
 * The SQL layer hands the jsonb options of train_conv2d() over as JSON text;
 * nn_options_parse() is the only place that interprets them. Unknown keys,
 * wrong types and out-of-range values are errors that name the key and what
 * is allowed. nn_options_to_json() writes the canonical form stored in a
 * model (every key, defaults filled in, fixed key order).
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
#define NN_MAX_THREADS 256
#define NN_MAX_OPTIONS_JSON 16384
#define NN_MAX_JSON_DEPTH 32	/* nesting of arrays and objects */

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
} nn_options;

/* fill with defaults */
void		nn_options_default(nn_options *o);

/* parse a JSON object (len bytes, need not be NUL-terminated) over the defaults in *o */
int			nn_options_parse(nn_options *o, const char *json, size_t len, nn_status *st);

/* canonical JSON of o into buf; returns bytes written (excluding NUL) or -1 if too small */
int			nn_options_to_json(const nn_options *o, char *buf, size_t len);

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
