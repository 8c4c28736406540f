/*
 * op_merge.c: nodes that join branches of the graph. add(a, b, ...) sums
 * tensors of one shape (a residual block ends in one); concat(a, b, ...)
 * joins them along the channels (images of one size) or the features
 * (flat vectors). The arguments are labels (spec.c resolves them).
 */
#include <stdio.h>
#include <string.h>

#include "onnx.h"
#include "ops.h"

/* name(label, label, ...) is written by spec.c, which knows the labels */
static void
merge_format(const nn_layer *L, char *buf, size_t len)
{
	snprintf(buf, len, "%s", L->kind == NN_ADD ? "add" : "concat");
}

/* every input the shape of the first */
static int
add_shape(nn_layer *L, nn_shape_ctx *c)
{
	for (int k = 1; k < L->nin; k++)
		if (c->flat[k] != c->flat[0] || c->in[k]->h != c->in[0]->h ||
			c->in[k]->w != c->in[0]->w || c->in[k]->c != c->in[0]->c)
			return nn_shape_fail(c, NN_ERR_SHAPE, "adds tensors of different shapes: input %d is %dx%dx%d, input 1 is %s",
								 k + 1, c->in[k]->h, c->in[k]->w, c->in[k]->c, c->shape);
	L->out = L->in;
	L->flat_out = c->flat[0];
	return NN_OK;
}

/* out = in0 + in1 + ..., in order (the first two in one pass) */
static void
add_forward(nn_op_ctx *c)
{
	size_t		n = (size_t) c->B * nn_shape_elems(c->L->out);
	const float *restrict a = c->in[0],
			   *restrict b = c->in[1];
	float	   *restrict out = c->out;

	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
	for (int k = 2; k < c->L->nin; k++)
	{
		const float *restrict x = c->in[k];
		float	   *restrict o = c->out;

		for (size_t i = 0; i < n; i++)
			o[i] += x[i];
	}
}

/* every input gets the output's gradient */
static void
add_backward(nn_op_ctx *c)
{
	size_t		n = (size_t) c->B * nn_shape_elems(c->L->out);

	for (int k = 0; k < c->L->nin; k++)
	{
		float	   *restrict d = c->din[k];
		const float *restrict g = c->dout;

		if (d == NULL)
			continue;
		if (c->din_fresh[k])
			memcpy(d, g, n * sizeof(float));
		else
			for (size_t i = 0; i < n; i++)
				d[i] += g[i];
	}
}

/* one add per value and input */
static uint64_t
merge_macs(const nn_layer *L)
{
	return nn_shape_elems(L->out) * (uint64_t) L->nin;
}

/* images of one size: channels add up; flat vectors: features add up */
static int
concat_shape(nn_layer *L, nn_shape_ctx *c)
{
	int64_t		total = 0;

	for (int k = 0; k < L->nin; k++)
	{
		if (c->flat[k] != c->flat[0] || c->in[k]->h != c->in[0]->h || c->in[k]->w != c->in[0]->w)
			return nn_shape_fail(c, NN_ERR_SHAPE, "joins tensors of different sizes: input %d is %dx%dx%d, input 1 is %s",
								 k + 1, c->in[k]->h, c->in[k]->w, c->in[k]->c, c->shape);
		total += c->in[k]->c;
	}
	if (total > ((int64_t) 1 << 28))
		return nn_shape_fail(c, NN_ERR_LIMIT, "joins %lld channels, more than the limit", (long long) total);
	L->out = L->in;
	L->out.c = (int32_t) total;
	L->flat_out = c->flat[0];
	return NN_OK;
}

/* (C,B,H,W): the inputs one after another; (B,N): row by row */
static void
concat_forward(nn_op_ctx *c)
{
	size_t		off = 0;

	for (int k = 0; k < c->L->nin; k++)
	{
		size_t		n = nn_shape_elems(nn_tensor_shape(c->net, c->L->inputs[k]));

		if (!c->L->flat_in)
			memcpy(c->out + off * c->B, c->in[k], n * c->B * sizeof(float));
		else
			for (int b = 0; b < c->B; b++)
				memcpy(c->out + (size_t) b * c->L->out.c + off, c->in[k] + (size_t) b * n, n * sizeof(float));
		off += n;
	}
}

/* the output's gradient split back */
static void
concat_backward(nn_op_ctx *c)
{
	size_t		off = 0;

	for (int k = 0; k < c->L->nin; k++)
	{
		size_t		n = nn_shape_elems(nn_tensor_shape(c->net, c->L->inputs[k]));
		float	   *d = c->din[k];

		if (d != NULL)
		{
			if (!c->L->flat_in)
				for (size_t i = 0; i < n * c->B; i++)
					d[i] += c->dout[off * c->B + i];
			else
				for (int b = 0; b < c->B; b++)
					for (size_t i = 0; i < n; i++)
						d[(size_t) b * n + i] += c->dout[(size_t) b * c->L->out.c + off + i];
		}
		off += n;
	}
}

/* the node's inputs into one node of op_type */
static void
merge_onnx(nn_onnx *x, const nn_layer *L, int i, const char *op_type)
{
	const char *in[NN_MAX_INPUTS];

	for (int k = 0; k < L->nin; k++)
		in[k] = nn_onnx_input(x, i, k);
	if (strcmp(op_type, "Concat") == 0)
		nn_onnx_attr_int(x, nn_onnx_node_add(x, i, op_type, L->nin, in), "axis", 1);
	else if (L->nin == 2)
		nn_onnx_node_add(x, i, op_type, 2, in);
	else
		nn_onnx_node_add(x, i, "Sum", L->nin, in);
}

/* Add (Sum of more than two) */
static void
add_onnx(nn_onnx *x, const nn_layer *L, int i)
{
	merge_onnx(x, L, i, "Add");
}

/* Concat along the channels */
static void
concat_onnx(nn_onnx *x, const nn_layer *L, int i)
{
	merge_onnx(x, L, i, "Concat");
}

const nn_op nn_op_add = {
	.name = "add",
	.min_args = 2,
	.max_args = NN_MAX_INPUTS,
	.usage = "add(label, label[, ...]), as in add(a, b)",
	.refs = 1,
	.format = merge_format,
	.shape = add_shape,
	.forward = add_forward,
	.backward = add_backward,
	.bwd_assigns = 1,
	.macs = merge_macs,
	.onnx = add_onnx,
};

const nn_op nn_op_concat = {
	.name = "concat",
	.min_args = 2,
	.max_args = NN_MAX_INPUTS,
	.usage = "concat(label, label[, ...]), as in concat(a, b)",
	.refs = 1,
	.format = merge_format,
	.shape = concat_shape,
	.forward = concat_forward,
	.backward = concat_backward,
	.macs = merge_macs,
	.onnx = concat_onnx,
};
