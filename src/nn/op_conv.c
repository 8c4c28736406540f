/*
 * op_conv.c: 2-D convolution, conv(filters, kernel[, stride[, padding]][, groups=G]).
 *
 * Padding is "valid" (none), "same" (odd kernel, stride 1: (K-1)/2 per
 * side, as PyTorch's padding="same") or a number of zeros per side (as
 * PyTorch's padding=P, which ResNet's strided 3x3 convolutions use).
 * groups=G splits the input and output channels into G groups (depthwise
 * when G equals the input channels). 3x3 stride-1 convolutions of 16
 * channels or more run on conv_winograd.c's F(4x4, 3x3), other stride-1
 * convolutions of few channels on conv_direct.c's kernels, the rest on
 * layers.c's im2col + sgemm; a 1x1 stride-1 convolution needs no im2col.
 */
#include <stdio.h>
#include <string.h>

#include "conv_direct.h"
#include "conv_winograd.h"
#include "onnx.h"
#include "ops.h"

#define CONV_MAX_KERNEL 64		/* kernel, stride, padding */

/* padding "valid", "same" or an integer, into L */
static int
conv_padding(nn_layer *L, const spec_arg *a, spec_ctx *c)
{
	char		text[32];

	if (a->type == SPEC_ARG_INT)
	{
		L->same = 0;
		return nn_spec_int(c, a, "padding", 0, CONV_MAX_KERNEL, &L->pad);
	}
	if (a->type == SPEC_ARG_WORD && nn_spec_word_is(c, a, "valid"))
	{
		L->same = 0;
		L->pad = 0;
		return NN_OK;
	}
	if (a->type == SPEC_ARG_WORD && nn_spec_word_is(c, a, "same"))
	{
		L->same = 1;
		return NN_OK;
	}
	nn_spec_arg_text(c, a, text, sizeof(text));
	return nn_spec_fail(c, a, "conv padding must be \"valid\" or \"same\", not \"%s\"", text);
}

/* conv(filters, kernel[, stride[, padding]][, groups=G]) */
static int
conv_args(nn_layer *L, const spec_arg *a, int n, spec_ctx *c)
{
	int			pos = 0;

	L->stride = 1;
	L->groups = 1;
	for (int k = 0; k < n; k++)
	{
		int			rc;

		if (a[k].key_len > 0)
		{
			if (!nn_spec_key_is(c, &a[k], "groups"))
				return nn_spec_fail(c, &a[k], "conv takes one named argument, groups=G");
			rc = nn_spec_int(c, &a[k], "groups", 1, NN_MAX_DIM, &L->groups);
		}
		else if (pos == 0)
			rc = nn_spec_int(c, &a[k], "filters", 1, NN_MAX_DIM, &L->units), pos++;
		else if (pos == 1)
			rc = nn_spec_int(c, &a[k], "kernel size", 1, CONV_MAX_KERNEL, &L->kernel), pos++;
		else if (pos == 2 && a[k].type == SPEC_ARG_INT)
			rc = nn_spec_int(c, &a[k], "stride", 1, CONV_MAX_KERNEL, &L->stride), pos++;
		else if (pos <= 3)
			rc = conv_padding(L, &a[k], c), pos = 4;	/* padding is the last positional */
		else
			return nn_spec_fail(c, &a[k], "conv takes at most 4 arguments: %s", nn_op_conv.usage);
		if (rc != NN_OK)
			return rc;
	}
	if (pos < 2)
		return nn_spec_fail(c, NULL, "conv needs 2 arguments: %s", nn_op_conv.usage);
	if (L->same)
	{
		if (L->kernel % 2 == 0 || L->stride != 1)
			return nn_spec_fail(c, NULL, "conv padding \"same\" needs an odd kernel size and stride 1");
		L->pad = (L->kernel - 1) / 2;
	}
	if (L->units % L->groups != 0)
		return nn_spec_fail(c, NULL, "conv filters (%d) must be a multiple of groups (%d)", L->units, L->groups);
	return NN_OK;
}

/* conv(F,K), conv(F,K,S), conv(F,K,S,same), conv(F,K,S,P), groups=G last */
static void
conv_format(const nn_layer *L, char *buf, size_t len)
{
	char		groups[32] = "";

	if (L->groups > 1)
		snprintf(groups, sizeof(groups), ",groups=%d", L->groups);
	if (L->same)
		snprintf(buf, len, "conv(%d,%d,%d,same%s)", L->units, L->kernel, L->stride, groups);
	else if (L->pad > 0)
		snprintf(buf, len, "conv(%d,%d,%d,%d%s)", L->units, L->kernel, L->stride, L->pad, groups);
	else if (L->stride != 1)
		snprintf(buf, len, "conv(%d,%d,%d%s)", L->units, L->kernel, L->stride, groups);
	else
		snprintf(buf, len, "conv(%d,%d%s)", L->units, L->kernel, groups);
}

/* a window of K with padding P and stride S over in: the output side, or an error */
int
nn_window_shape(nn_layer *L, nn_shape_ctx *c)
{
	int32_t		hp = L->in.h + 2 * L->pad,
				wp = L->in.w + 2 * L->pad;

	if (c->flat[0])
		return nn_shape_fail(c, NN_ERR_SHAPE,
							 "needs an image input but gets a flat vector of %s; put conv and pooling layers before flatten and dense",
							 c->shape);
	if (L->kernel > hp || L->kernel > wp)
		return nn_shape_fail(c, NN_ERR_SHAPE,
							 "does not fit its %s input: the %dx%d window is larger than the %s%dx%d image",
							 c->shape, L->kernel, L->kernel, L->pad ? "padded " : "", hp, wp);
	L->out.h = (hp - L->kernel) / L->stride + 1;
	L->out.w = (wp - L->kernel) / L->stride + 1;
	return NN_OK;
}

/* output shape and parameters */
static int
conv_shape(nn_layer *L, nn_shape_ctx *c)
{
	int			G = L->groups > 1 ? L->groups : 1;

	if (nn_window_shape(L, c) != NN_OK)
		return c->st->code;
	if (L->in.c % G != 0)
		return nn_shape_fail(c, NN_ERR_SHAPE, "splits its %s input into %d groups, which do not divide %d channels",
							 c->shape, G, L->in.c);
	L->out.c = L->units;
	L->w_len = (size_t) L->units * (L->in.c / G) * L->kernel * L->kernel;
	L->b_len = (size_t) L->units;
	return NN_OK;
}

/* He-normal weights */
static void
conv_init(const nn_layer *L, float *params, float *buffers, nn_rng *rng)
{
	nn_init_he(L, params, rng);
}

/* true when the conv is 1x1, stride 1, no padding: col is the input itself */
static int
conv_pointwise(const nn_layer *L)
{
	return L->kernel == 1 && L->stride == 1 && L->pad == 0;
}

/*
 * im2col (kept for backward) and its backward scratch; for the direct
 * kernels, their scratch of a few planes (col then holds no state)
 */
static void
conv_mem(const nn_layer *L, int B, int train, nn_op_mem *m)
{
	size_t		col = (size_t) L->in.c * L->kernel * L->kernel * B * L->out.h * L->out.w;

	if (nn_conv_winograd_fits(L))
	{
		m->prep = nn_conv_winograd_filter_floats(L);
		m->fscratch = nn_conv_winograd_forward_floats(L, B);
		if (train)
			m->dcol = nn_conv_winograd_backward_floats(L, B);
		return;
	}
	if (nn_conv_direct_fits(L))
	{
		m->col = nn_conv_direct_forward_floats(L);
		if (train)
			m->dcol = nn_conv_direct_backward_floats(L);
		return;
	}
	if (conv_pointwise(L))
		return;
	m->col = col;
	if (train)
		m->dcol = col;
}

/* backward reads the input itself when there is no im2col */
static int
conv_bwd_reads(const nn_layer *L)
{
	return conv_pointwise(L) || nn_conv_winograd_fits(L) || nn_conv_direct_fits(L) ? NN_BWD_INPUT : 0;
}

/* the kernels a conv layer runs on */
const char *
nn_conv_path(const nn_layer *L)
{
	if (nn_conv_winograd_fits(L))
		return "winograd";
	if (nn_conv_direct_fits(L))
		return "direct";
	return conv_pointwise(L) ? "pointwise" : "im2col";
}

/* forward */
static void
conv_forward(nn_op_ctx *c)
{
	if (nn_conv_winograd_fits(c->L))
	{
		nn_work    *w = c->work;

		/* frozen weights are transformed once per work */
		nn_conv_winograd_forward(c->out, c->in[0], c->w, c->b, c->L, c->B, w->prep[c->i],
								 w->frozen && w->prep_of[c->i] == c->w, w->fscratch[c->i]);
		if (w->frozen)
			w->prep_of[c->i] = c->w;
		return;
	}
	if (nn_conv_direct_fits(c->L))
	{
		nn_conv_direct_forward(c->out, c->in[0], c->w, c->b, c->L, c->B, c->work->col[c->i]);
		return;
	}
	nn_conv2d_forward(c->out, c->work->col[c->i], c->in[0], c->w, c->b, c->L, c->B);
}

/* backward */
static void
conv_backward(nn_op_ctx *c)
{
	const float *col = c->work->col[c->i] ? c->work->col[c->i] : c->in[0];

	if (nn_conv_winograd_fits(c->L))
	{
		nn_conv_winograd_backward(c->din[0], c->dw, c->db, c->dout, c->in[0], c->L, c->B,
								  c->work->prep[c->i], c->work->dcol[c->i], c->din_fresh[0]);
		return;
	}
	nn_din_zero_fresh(c, 0, (size_t) c->B * nn_shape_elems(c->L->in));
	if (nn_conv_direct_fits(c->L))
	{
		nn_conv_direct_backward(c->din[0], c->dw, c->db, c->dout, c->in[0], c->w, c->L, c->B,
								c->work->dcol[c->i]);
		return;
	}
	nn_conv2d_backward(c->din[0], c->dw, c->db, c->work->dcol[c->i], c->dout, col, c->w, c->L, c->B);
}

/* OC * OH * OW * (C/G) * K * K */
static uint64_t
conv_macs(const nn_layer *L)
{
	int			G = L->groups > 1 ? L->groups : 1;

	return (uint64_t) L->out.c * L->out.h * L->out.w * (uint64_t) (L->in.c / G) * L->kernel * L->kernel;
}

/* Conv with kernel_shape, strides, pads and group */
static void
conv_onnx(nn_onnx *x, const nn_layer *L, int i)
{
	const char *in[3] = {nn_onnx_input(x, i, 0), nn_onnx_tensor(x, i, "weight"), NULL};
	int64_t		k[2] = {L->kernel, L->kernel},
				s[2] = {L->stride, L->stride},
				p[4] = {L->pad, L->pad, L->pad, L->pad};
	nn_onnx_node *n;

	if (L->b_len > 0)
		in[2] = nn_onnx_tensor(x, i, "bias");
	n = nn_onnx_node_add(x, i, "Conv", L->b_len > 0 ? 3 : 2, in);
	nn_onnx_attr_ints(x, n, "kernel_shape", 2, k);
	nn_onnx_attr_ints(x, n, "strides", 2, s);
	nn_onnx_attr_ints(x, n, "pads", 4, p);
	nn_onnx_attr_int(x, n, "group", L->groups > 1 ? L->groups : 1);
}

const nn_op nn_op_conv = {
	.name = "conv",
	.min_args = 2,
	.max_args = 5,
	.usage = "conv(filters, kernel[, stride[, padding]][, groups=G]), as in conv(32,3)",
	.args = conv_args,
	.format = conv_format,
	.shape = conv_shape,
	.init = conv_init,
	.mem = conv_mem,
	.bwd_reads = conv_bwd_reads,
	.forward = conv_forward,
	.backward = conv_backward,
	.bwd_assigns = 1,
	.macs = conv_macs,
	.torch = "Conv2d",
	.onnx = conv_onnx,
};
