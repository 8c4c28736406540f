/*
 * ops.c: the table of operations (ops.h), one entry per kind of node, and
 * the small helpers the op files share.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* every kind, in nn_layer_kind order; a new kind is one more line */
static const nn_op *const op_table[NN_NKINDS] = {
	[NN_CONV] = &nn_op_conv,
	[NN_MAXPOOL] = &nn_op_maxpool,
	[NN_RELU] = &nn_op_relu,
	[NN_DENSE] = &nn_op_dense,
	[NN_DROPOUT] = &nn_op_dropout,
	[NN_FLATTEN] = &nn_op_flatten,
	[NN_AVGPOOL] = &nn_op_avgpool,
	[NN_GLOBALAVGPOOL] = &nn_op_globalavgpool,
	[NN_BATCHNORM] = &nn_op_batchnorm,
	[NN_ADD] = &nn_op_add,
	[NN_CONCAT] = &nn_op_concat,
};

/* The entry of kind, or NULL. */
const nn_op *
nn_op_of(nn_layer_kind kind)
{
	return (kind > 0 && kind < NN_NKINDS) ? op_table[kind] : NULL;
}

/* The kind whose entry is op (0 if none). */
nn_layer_kind
nn_op_kind(const nn_op *op)
{
	for (int k = 1; k < NN_NKINDS; k++)
		if (op_table[k] == op)
			return (nn_layer_kind) k;
	return 0;
}

/* The entry named name (len bytes, case-insensitively), or NULL. */
const nn_op *
nn_op_named(const char *name, size_t len)
{
	for (int k = 1; k < NN_NKINDS; k++)
		if (nn_word_is(name, len, op_table[k]->name))
			return op_table[k];
	return NULL;
}

/* "conv, maxpool, ...": every layer name, for messages. */
const char *
nn_op_names(void)
{
	return "conv, maxpool, avgpool, globalavgpool, batchnorm, relu, dropout, flatten, dense, add, concat, residual, from";
}

/* Shortest %g form of a float that reads back as the same float. */
void
nn_float_text(char *buf, size_t len, float v)
{
	for (int prec = 6; prec <= 9; prec++)
	{
		snprintf(buf, len, "%.*g", prec, (double) v);
		if ((float) strtod(buf, NULL) == v)
			return;
	}
}

/* He-normal weights (std sqrt(2/fan_in)); biases stay as they are (zero). */
void
nn_init_he(const nn_layer *L, float *params, nn_rng *rng)
{
	double		fan_in;
	float		std;

	if (L->w_len == 0)
		return;
	fan_in = (double) L->w_len / L->units;
	std = (float) sqrt(2.0 / fan_in);
	for (size_t k = 0; k < L->w_len; k++)
		params[L->w_off + k] = std * nn_rng_normal(rng);
}
