/*
 * op_dense.c: the layers over values rather than windows: dense(units)
 * (fully connected, PyTorch's Linear), flatten ((C,B,H,W) to (B, C*H*W) in
 * PyTorch's (c,h,w) order), relu (in place where nothing else reads its
 * input) and dropout(rate) (inverted dropout, training only). The kernels
 * are layers.c's.
 */
#include <stdio.h>
#include <string.h>

#include "onnx.h"
#include "ops.h"

#define FLATTEN_MAX ((uint64_t) 1 << 28)	/* values of a flattened image */

/* dense(units) */
static int
dense_args(nn_layer *L, const spec_arg *a, int n, spec_ctx *c)
{
	return nn_spec_int(c, &a[0], "units", 1, NN_MAX_DIM, &L->units);
}

/* canonical dense */
static void
dense_format(const nn_layer *L, char *buf, size_t len)
{
	snprintf(buf, len, "dense(%d)", L->units);
}

/* flat in (the builder flattens an image first), units out */
static int
dense_shape(nn_layer *L, nn_shape_ctx *c)
{
	L->out.h = L->out.w = 1;
	L->out.c = L->units;
	L->flat_out = 1;
	L->w_len = (size_t) L->units * L->in.c;
	L->b_len = (size_t) L->units;
	return NN_OK;
}

/* He-normal weights */
static void
dense_init(const nn_layer *L, float *params, float *buffers, nn_rng *rng)
{
	nn_init_he(L, params, rng);
}

/* backward needs the input for dweight */
static int
dense_bwd_reads(const nn_layer *L)
{
	return NN_BWD_INPUT;
}

/* forward */
static void
dense_forward(nn_op_ctx *c)
{
	nn_dense_forward(c->out, c->in[0], c->w, c->b, c->B, c->L->in.c, c->L->units);
}

/* backward */
static void
dense_backward(nn_op_ctx *c)
{
	nn_dense_backward(c->din[0], c->dw, c->db, c->dout, c->in[0], c->w, c->B, c->L->in.c, c->L->units);
}

/* units * inputs */
static uint64_t
dense_macs(const nn_layer *L)
{
	return (uint64_t) L->units * L->in.c;
}

/* "flatten" */
static void
flatten_format(const nn_layer *L, char *buf, size_t len)
{
	snprintf(buf, len, "flatten");
}

/* an image into one vector */
static int
flatten_shape(nn_layer *L, nn_shape_ctx *c)
{
	uint64_t	n = nn_shape_elems(L->in);

	if (c->flat[0])
		return nn_shape_fail(c, NN_ERR_SHAPE, "has nothing to flatten: its input is already a flat vector of %s",
							 c->shape);
	if (n > FLATTEN_MAX)
		return nn_shape_fail(c, NN_ERR_LIMIT, "would flatten its %s input into %llu values, more than the limit of %llu",
							 c->shape, (unsigned long long) n, (unsigned long long) FLATTEN_MAX);
	L->out.h = L->out.w = 1;
	L->out.c = (int32_t) n;
	L->flat_out = 1;
	return NN_OK;
}

/* forward */
static void
flatten_forward(nn_op_ctx *c)
{
	nn_flatten_forward(c->out, c->in[0], c->B, c->L->in.c, c->L->in.h, c->L->in.w);
}

/* backward */
static void
flatten_backward(nn_op_ctx *c)
{
	if (c->din[0])
		nn_flatten_backward(c->din[0], c->dout, c->B, c->L->in.c, c->L->in.h, c->L->in.w);
}

/* one move per value */
static uint64_t
elem_macs(const nn_layer *L)
{
	return nn_shape_elems(L->out);
}

/* shape kept, flat or not */
static int
same_shape(nn_layer *L, nn_shape_ctx *c)
{
	L->out = L->in;
	L->flat_out = c->flat[0];
	return NN_OK;
}

/* "relu" */
static void
relu_format(const nn_layer *L, char *buf, size_t len)
{
	snprintf(buf, len, "relu");
}

/* relu backward reads its output */
static int
relu_bwd_reads(const nn_layer *L)
{
	return NN_BWD_OUTPUT;
}

/* forward (out may be in) */
static void
relu_forward(nn_op_ctx *c)
{
	nn_relu_forward(c->out, c->in[0], (size_t) c->B * nn_shape_elems(c->L->out));
}

/* backward, in place when the planner shared the gradient buffer */
static void
relu_backward(nn_op_ctx *c)
{
	size_t		n = (size_t) c->B * nn_shape_elems(c->L->out);

	if (c->din_inplace)
		nn_relu_backward_inplace(c->din[0], c->out, n);
	else if (c->din[0])
		nn_relu_backward(c->din[0], c->dout, c->out, n);
}

/* dropout(rate), 0 <= rate < 1 */
static int
dropout_args(nn_layer *L, const spec_arg *a, int n, spec_ctx *c)
{
	char		text[64];
	float		f;

	if (a[0].type != SPEC_ARG_INT && a[0].type != SPEC_ARG_NUMBER)
		return nn_spec_fail(c, &a[0], "expected a number for the dropout rate");
	f = (float) a[0].d;
	if (!(a[0].d >= 0) || !(f < 1.0f))
	{
		nn_spec_arg_text(c, &a[0], text, sizeof(text));
		return nn_spec_fail(c, &a[0], "dropout rate must be at least 0 and less than 1, not %s", text);
	}
	L->rate = f;
	return NN_OK;
}

/* dropout(rate) in the shortest form that reads back */
static void
dropout_format(const nn_layer *L, char *buf, size_t len)
{
	char		num[32];

	nn_float_text(num, sizeof(num), L->rate);
	snprintf(buf, len, "dropout(%s)", num);
}

/* the mask, when training */
static void
dropout_mem(const nn_layer *L, int B, int train, nn_op_mem *m)
{
	if (train)
		m->mask = (size_t) B * nn_shape_elems(L->out);
}

/* forward: masked when training with a generator, a copy otherwise */
static void
dropout_forward(nn_op_ctx *c)
{
	size_t		n = (size_t) c->B * nn_shape_elems(c->L->out);
	float	   *mask = c->work->mask[c->i];

	if (c->work->dropout_active && mask && c->L->rate > 0)
		nn_dropout_forward(c->out, mask, c->in[0], n, c->L->rate, c->rng);
	else
		memcpy(c->out, c->in[0], n * sizeof(float));
}

/* backward: through the mask of the last forward */
static void
dropout_backward(nn_op_ctx *c)
{
	size_t		n = (size_t) c->B * nn_shape_elems(c->L->out);
	float	   *mask = c->work->mask[c->i];

	if (c->din[0] == NULL)
		return;
	if (c->work->dropout_active && mask && c->L->rate > 0)
		nn_dropout_backward(c->din[0], c->dout, mask, n);
	else
		for (size_t k = 0; k < n; k++)
			c->din[0][k] += c->dout[k];
}

/* Gemm with the (out, in) weight transposed */
static void
dense_onnx(nn_onnx *x, const nn_layer *L, int i)
{
	const char *in[3] = {nn_onnx_input(x, i, 0), nn_onnx_tensor(x, i, "weight"), nn_onnx_tensor(x, i, "bias")};
	nn_onnx_node *n = nn_onnx_node_add(x, i, "Gemm", 3, in);

	nn_onnx_attr_int(x, n, "transB", 1);
}

/* Flatten from axis 1 */
static void
flatten_onnx(nn_onnx *x, const nn_layer *L, int i)
{
	const char *in[1] = {nn_onnx_input(x, i, 0)};

	nn_onnx_attr_int(x, nn_onnx_node_add(x, i, "Flatten", 1, in), "axis", 1);
}

/* Relu */
static void
relu_onnx(nn_onnx *x, const nn_layer *L, int i)
{
	const char *in[1] = {nn_onnx_input(x, i, 0)};

	nn_onnx_node_add(x, i, "Relu", 1, in);
}

/* nothing at inference */
static void
dropout_onnx(nn_onnx *x, const nn_layer *L, int i)
{
	nn_onnx_pass(x, i);
}

const nn_op nn_op_dense = {
	.name = "dense",
	.min_args = 1,
	.max_args = 1,
	.usage = "dense(units), as in dense(128)",
	.args = dense_args,
	.format = dense_format,
	.shape = dense_shape,
	.init = dense_init,
	.bwd_reads = dense_bwd_reads,
	.forward = dense_forward,
	.backward = dense_backward,
	.macs = dense_macs,
	.torch = "Linear",
	.onnx = dense_onnx,
};

const nn_op nn_op_flatten = {
	.name = "flatten",
	.usage = "flatten",
	.format = flatten_format,
	.shape = flatten_shape,
	.forward = flatten_forward,
	.backward = flatten_backward,
	.macs = elem_macs,
	.torch = "Flatten",
	.onnx = flatten_onnx,
};

const nn_op nn_op_relu = {
	.name = "relu",
	.usage = "relu",
	.format = relu_format,
	.shape = same_shape,
	.bwd_reads = relu_bwd_reads,
	.inplace = 1,
	.forward = relu_forward,
	.backward = relu_backward,
	.macs = elem_macs,
	.torch = "ReLU",
	.onnx = relu_onnx,
};

const nn_op nn_op_dropout = {
	.name = "dropout",
	.min_args = 1,
	.max_args = 1,
	.usage = "dropout(rate), as in dropout(0.5)",
	.args = dropout_args,
	.format = dropout_format,
	.shape = same_shape,
	.mem = dropout_mem,
	.forward = dropout_forward,
	.backward = dropout_backward,
	.macs = elem_macs,
	.torch = "Dropout",
	.onnx = dropout_onnx,
};
