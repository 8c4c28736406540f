/*
 * op_pool.c: pooling. maxpool(window[, stride]) and avgpool(window[,
 * stride]) over windows that never pass the edge (floor mode, no padding,
 * as PyTorch's defaults; the stride defaults to the window), and
 * globalavgpool, the mean of each channel's whole plane (PyTorch's
 * AdaptiveAvgPool2d(1)), whose 1x1xC output a dense layer flattens.
 * Max pooling's kernels are layers.c's; the averages are here.
 */
#include <stdio.h>
#include <string.h>

#include "onnx.h"
#include "ops.h"

#define POOL_MAX_WINDOW 64


/* window[, stride] of maxpool and avgpool */
static int
pool_args(nn_layer *L, const spec_arg *a, int n, spec_ctx *c, const char *kind)
{
	for (int k = 0; k < n; k++)
		if (a[k].key_len > 0)
			return nn_spec_fail(c, &a[k], "%s takes no named arguments", kind);
	if (nn_spec_int(c, &a[0], "window", 1, POOL_MAX_WINDOW, &L->kernel) != NN_OK)
		return NN_ERR_PARSE;
	L->stride = L->kernel;
	if (n > 1 && nn_spec_int(c, &a[1], "stride", 1, POOL_MAX_WINDOW, &L->stride) != NN_OK)
		return NN_ERR_PARSE;
	L->pad = 0;
	return NN_OK;
}

/* maxpool arguments */
static int
maxpool_args(nn_layer *L, const spec_arg *a, int n, spec_ctx *c)
{
	return pool_args(L, a, n, c, "maxpool");
}

/* avgpool arguments */
static int
avgpool_args(nn_layer *L, const spec_arg *a, int n, spec_ctx *c)
{
	return pool_args(L, a, n, c, "avgpool");
}

/* name(W) or name(W,S) */
static void
pool_format(const char *name, const nn_layer *L, char *buf, size_t len)
{
	if (L->stride == L->kernel)
		snprintf(buf, len, "%s(%d)", name, L->kernel);
	else
		snprintf(buf, len, "%s(%d,%d)", name, L->kernel, L->stride);
}

/* canonical maxpool */
static void
maxpool_format(const nn_layer *L, char *buf, size_t len)
{
	pool_format("maxpool", L, buf, len);
}

/* canonical avgpool */
static void
avgpool_format(const nn_layer *L, char *buf, size_t len)
{
	pool_format("avgpool", L, buf, len);
}

/* windows over the image, channels kept */
static int
pool_shape(nn_layer *L, nn_shape_ctx *c)
{
	if (nn_window_shape(L, c) != NN_OK)
		return c->st->code;
	L->out.c = L->in.c;
	return NN_OK;
}

/* maxpool keeps its argmax for backward (and writes it in inference too) */
static void
maxpool_mem(const nn_layer *L, int B, int train, nn_op_mem *m)
{
	m->argmax = (size_t) L->out.c * B * L->out.h * L->out.w;
}

/* maxpool forward */
static void
maxpool_forward(nn_op_ctx *c)
{
	nn_maxpool_forward(c->out, c->work->argmax[c->i], c->in[0], c->L, c->B);
}

/* maxpool backward */
static void
maxpool_backward(nn_op_ctx *c)
{
	if (c->din[0])
		nn_maxpool_backward(c->din[0], c->dout, c->work->argmax[c->i], c->L, c->B);
}

/* one compare (or add) per window element of every output */
static uint64_t
pool_macs(const nn_layer *L)
{
	return (uint64_t) L->out.c * L->out.h * L->out.w * L->kernel * L->kernel;
}

/* avgpool forward: the mean of each window, plane by plane */
static void
avgpool_forward(nn_op_ctx *c)
{
	const nn_layer *L = c->L;
	int			H = L->in.h,
				W = L->in.w,
				OH = L->out.h,
				OW = L->out.w,
				K = L->kernel,
				S = L->stride;
	size_t		planes = (size_t) L->in.c * c->B;
	float		inv = 1.0f / (float) (K * K);

	for (size_t p = 0; p < planes && !nn_interrupted(); p++)
	{
		const float *in = c->in[0] + p * H * W;
		float	   *o = c->out + p * OH * OW;

		for (int oy = 0; oy < OH; oy++)
			for (int ox = 0; ox < OW; ox++)
			{
				float		s = 0.0f;

				for (int ky = 0; ky < K; ky++)
					for (int kx = 0; kx < K; kx++)
						s += in[(size_t) (oy * S + ky) * W + ox * S + kx];
				o[oy * OW + ox] = s * inv;
			}
	}
}

/* avgpool backward: each window's gradient spread evenly over it */
static void
avgpool_backward(nn_op_ctx *c)
{
	const nn_layer *L = c->L;
	int			H = L->in.h,
				W = L->in.w,
				OH = L->out.h,
				OW = L->out.w,
				K = L->kernel,
				S = L->stride;
	size_t		planes = (size_t) L->in.c * c->B;
	float		inv = 1.0f / (float) (K * K);

	if (c->din[0] == NULL)
		return;
	for (size_t p = 0; p < planes && !nn_interrupted(); p++)
	{
		float	   *d = c->din[0] + p * H * W;
		const float *g = c->dout + p * OH * OW;

		for (int oy = 0; oy < OH; oy++)
			for (int ox = 0; ox < OW; ox++)
			{
				float		v = g[oy * OW + ox] * inv;

				for (int ky = 0; ky < K; ky++)
					for (int kx = 0; kx < K; kx++)
						d[(size_t) (oy * S + ky) * W + ox * S + kx] += v;
			}
	}
}

/* globalavgpool: 1x1 per channel */
static int
gap_shape(nn_layer *L, nn_shape_ctx *c)
{
	if (c->flat[0])
		return nn_shape_fail(c, NN_ERR_SHAPE,
							 "needs an image input but gets a flat vector of %s; put pooling layers before flatten and dense",
							 c->shape);
	L->out.h = L->out.w = 1;
	L->out.c = L->in.c;
	return NN_OK;
}

/* globalavgpool forward: the mean of every (c,b) plane, summed in double */
static void
gap_forward(nn_op_ctx *c)
{
	size_t		HW = (size_t) c->L->in.h * c->L->in.w;
	size_t		planes = (size_t) c->L->in.c * c->B;

	for (size_t p = 0; p < planes; p++)
	{
		const float *in = c->in[0] + p * HW;
		double		s = 0;

		for (size_t k = 0; k < HW; k++)
			s += in[k];
		c->out[p] = (float) (s / (double) HW);
	}
}

/* globalavgpool backward: dinp += dout / (H*W) over the plane */
static void
gap_backward(nn_op_ctx *c)
{
	size_t		HW = (size_t) c->L->in.h * c->L->in.w;
	size_t		planes = (size_t) c->L->in.c * c->B;

	if (c->din[0] == NULL)
		return;
	for (size_t p = 0; p < planes; p++)
	{
		float	   *d = c->din[0] + p * HW;
		float		v = c->dout[p] / (float) HW;

		for (size_t k = 0; k < HW; k++)
			d[k] += v;
	}
}

/* one add per input value */
static uint64_t
gap_macs(const nn_layer *L)
{
	return nn_shape_elems(L->in);
}

/* "globalavgpool" */
static void
gap_format(const nn_layer *L, char *buf, size_t len)
{
	snprintf(buf, len, "globalavgpool");
}

/* a window of MaxPool or AveragePool: kernel_shape and strides, no padding (floor mode) */
static void
window_onnx(nn_onnx *x, const nn_layer *L, int i, const char *op_type)
{
	const char *in[1] = {nn_onnx_input(x, i, 0)};
	int64_t		k[2] = {L->kernel, L->kernel},
				s[2] = {L->stride, L->stride};
	nn_onnx_node *n = nn_onnx_node_add(x, i, op_type, 1, in);

	nn_onnx_attr_ints(x, n, "kernel_shape", 2, k);
	nn_onnx_attr_ints(x, n, "strides", 2, s);
}

/* MaxPool */
static void
maxpool_onnx(nn_onnx *x, const nn_layer *L, int i)
{
	window_onnx(x, L, i, "MaxPool");
}

/* AveragePool */
static void
avgpool_onnx(nn_onnx *x, const nn_layer *L, int i)
{
	window_onnx(x, L, i, "AveragePool");
}

/* GlobalAveragePool */
static void
globalavgpool_onnx(nn_onnx *x, const nn_layer *L, int i)
{
	const char *in[1] = {nn_onnx_input(x, i, 0)};

	nn_onnx_node_add(x, i, "GlobalAveragePool", 1, in);
}

const nn_op nn_op_maxpool = {
	.name = "maxpool",
	.min_args = 1,
	.max_args = 2,
	.usage = "maxpool(window[, stride]), as in maxpool(2)",
	.args = maxpool_args,
	.format = maxpool_format,
	.shape = pool_shape,
	.mem = maxpool_mem,
	.forward = maxpool_forward,
	.backward = maxpool_backward,
	.macs = pool_macs,
	.torch = "MaxPool2d",
	.onnx = maxpool_onnx,
};

const nn_op nn_op_avgpool = {
	.name = "avgpool",
	.min_args = 1,
	.max_args = 2,
	.usage = "avgpool(window[, stride]), as in avgpool(2)",
	.args = avgpool_args,
	.format = avgpool_format,
	.shape = pool_shape,
	.forward = avgpool_forward,
	.backward = avgpool_backward,
	.macs = pool_macs,
	.torch = "AvgPool2d",
	.onnx = avgpool_onnx,
};

const nn_op nn_op_globalavgpool = {
	.name = "globalavgpool",
	.min_args = 0,
	.max_args = 0,
	.usage = "globalavgpool",
	.format = gap_format,
	.shape = gap_shape,
	.forward = gap_forward,
	.backward = gap_backward,
	.macs = gap_macs,
	.torch = "AdaptiveAvgPool2d",
	.onnx = globalavgpool_onnx,
};
