/*
 * op_batchnorm.c: batch normalisation, "batchnorm": per channel after an
 * image (PyTorch's BatchNorm2d), per feature after a flat vector
 * (BatchNorm1d). Training normalises with the batch's mean and biased
 * variance and updates the running mean and unbiased variance with
 * momentum 0.1 (eps 1e-5, as PyTorch); evaluation and prediction use the
 * running statistics. The scale and shift (weight, bias) are trained
 * parameters; running_mean, running_var and num_batches_tracked are
 * buffers.
 *
 * The statistics are the whole batch's even when the batch is split into
 * data-parallel parts: the network runs the training pass as coupled
 * steps (ops.h): each part sums its values, the sums are added in a
 * fixed order, then each part normalises. Sums are in double, so the
 * single-pass variance E[x^2] - E[x]^2 loses nothing that matters here.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "conv_direct.h"
#include "onnx.h"
#include "ops.h"

#define BN_EPS 1e-5
#define BN_MOMENTUM 0.1

/* channels (spatial) or features (flat) */
static int
bn_channels(const nn_layer *L)
{
	return L->in.c;
}

/* values of one image per channel */
static size_t
bn_per_image(const nn_layer *L)
{
	return (size_t) L->in.h * L->in.w;
}

/* "batchnorm" */
static void
bn_format(const nn_layer *L, char *buf, size_t len)
{
	snprintf(buf, len, "batchnorm");
}

/* same shape; weight and bias per channel; three buffers */
static int
bn_shape(nn_layer *L, nn_shape_ctx *c)
{
	L->out = L->in;
	L->flat_out = c->flat[0];
	L->w_len = (size_t) L->in.c;
	L->b_len = (size_t) L->in.c;
	L->buf_len = 2 * (size_t) L->in.c + 1;	/* running mean, running var, batches */
	return NN_OK;
}

/* weight 1, bias 0, running mean 0, running var 1, no batches */
static void
bn_init(const nn_layer *L, float *params, float *buffers, nn_rng *rng)
{
	int			C = bn_channels(L);

	for (int k = 0; k < C; k++)
	{
		params[L->w_off + k] = 1.0f;
		params[L->b_off + k] = 0.0f;
		buffers[L->buf_off + k] = 0.0f;
		buffers[L->buf_off + C + k] = 1.0f;
	}
	buffers[L->buf_off + 2 * C] = 0.0f;
}

/* training keeps the batch's mean and 1/std (x-hat comes again from the input); two sums per channel */
static void
bn_mem(const nn_layer *L, int B, int train, nn_op_mem *m)
{
	if (!train)
		return;
	m->aux = 2 * (size_t) bn_channels(L);
	m->stat = 2 * (size_t) bn_channels(L);
}

/* one instruction set's loops over a channel (op_batchnorm_kern.h) */
typedef struct bn_kern
{
	void		(*sums) (const float *restrict x, size_t n, size_t st, double *s, double *q);
	void		(*normalize) (float *restrict y, const float *restrict x, size_t n, size_t st,
							  float m, float inv, float w, float b);
	void		(*grad) (float *restrict dx, const float *restrict dy, const float *restrict x, size_t n,
						 size_t st, float m, float inv, float k1, float M, float sdy, float sdx, int assign);
	void		(*eval_grad) (float *restrict dx, const float *restrict dy, const float *restrict x,
							  size_t n, size_t st, float m, float inv, float scale, int assign,
							  double *s, double *q);
} bn_kern;

#define BN_RUN 16				/* gradient values a lane sums in float before the double total */

#define KERN_FILE "op_batchnorm_kern.h"
#define KERN_TYPE bn_kern
#include "kern_each.h"

/*
 * where channel ch's values start, how many there are and how far apart:
 * spatial (C,B,HW) keeps them together, flat (B,C) one per image
 */
static size_t
bn_span(const nn_layer *L, int B, int ch, size_t *n, size_t *st)
{
	if (L->flat_in)
	{
		*n = (size_t) B;
		*st = (size_t) L->in.c;
		return (size_t) ch;
	}
	*n = (size_t) B * bn_per_image(L);
	*st = 1;
	return (size_t) ch * *n;
}

/* evaluation: the running statistics */
static void
bn_forward(nn_op_ctx *c)
{
	const nn_layer *L = c->L;
	const bn_kern *k = kern_pick();
	int			C = bn_channels(L);

	for (int ch = 0; ch < C; ch++)
	{
		size_t		n,
					st,
					at = bn_span(L, c->B, ch, &n, &st);
		float		inv = 1.0f / sqrtf(c->buf[C + ch] + (float) BN_EPS);

		k->normalize(c->out + at, c->in[0] + at, n, st, c->buf[ch], inv, c->w[ch], c->b[ch]);
	}
}

/*
 * evaluation-mode backward (compute_gradients): with the running
 * statistics fixed, y = scale x + shift per channel
 */
static void
bn_backward(nn_op_ctx *c)
{
	const nn_layer *L = c->L;
	const bn_kern *k = kern_pick();
	int			C = bn_channels(L);

	for (int ch = 0; ch < C; ch++)
	{
		size_t		n,
					st,
					at = bn_span(L, c->B, ch, &n, &st);
		float		inv = 1.0f / sqrtf(c->buf[C + ch] + (float) BN_EPS);
		double		s,
					q;

		k->eval_grad(c->din[0] ? c->din[0] + at : NULL, c->dout + at, c->in[0] + at, n, st,
					 c->buf[ch], inv, c->w[ch] * inv, c->din_fresh[0], &s, &q);
		c->db[ch] += (float) s;
		c->dw[ch] += (float) q;
	}
}

/* backward reads the input (x-hat in training) */
static int
bn_bwd_reads(const nn_layer *L)
{
	return NN_BWD_INPUT;
}

/* training step 1: sum and sum of squares per channel of this part */
static void
bn_stats(nn_op_ctx *c, double *stat)
{
	const nn_layer *L = c->L;
	const bn_kern *k = kern_pick();
	int			C = bn_channels(L);

	for (int ch = 0; ch < C; ch++)
	{
		size_t		n,
					st,
					at = bn_span(L, c->B, ch, &n, &st);

		k->sums(c->in[0] + at, n, st, &stat[ch], &stat[C + ch]);
	}
}

/* the batch's mean and biased variance of channel ch from the totals */
static void
bn_moments(const double *total, int C, int ch, double count, double *mean, double *var)
{
	*mean = total[ch] / count;
	*var = total[C + ch] / count - *mean * *mean;
	if (*var < 0)
		*var = 0;
}

/* training step 2, once per batch: running mean and unbiased variance */
static void
bn_update(const nn_layer *L, float *buf, const double *total, double count)
{
	int			C = bn_channels(L);

	for (int ch = 0; ch < C; ch++)
	{
		double		mean,
					var;

		bn_moments(total, C, ch, count, &mean, &var);
		buf[ch] = (float) ((1 - BN_MOMENTUM) * buf[ch] + BN_MOMENTUM * mean);
		buf[C + ch] = (float) ((1 - BN_MOMENTUM) * buf[C + ch] +
							   BN_MOMENTUM * (count > 1 ? var * count / (count - 1) : var));
	}
	buf[2 * C] += 1.0f;
}

/* training step 3: normalise with the batch's statistics, keep them */
static void
bn_apply(nn_op_ctx *c, const double *total, double count)
{
	const nn_layer *L = c->L;
	const bn_kern *k = kern_pick();
	int			C = bn_channels(L);
	float	   *mean_of = c->work->aux[c->i];
	float	   *invstd = mean_of + C;

	for (int ch = 0; ch < C; ch++)
	{
		double		mean,
					var;
		size_t		n,
					st,
					at = bn_span(L, c->B, ch, &n, &st);

		bn_moments(total, C, ch, count, &mean, &var);
		mean_of[ch] = (float) mean;
		invstd[ch] = (float) (1.0 / sqrt(var + BN_EPS));
		k->normalize(c->out + at, c->in[0] + at, n, st, mean_of[ch], invstd[ch], c->w[ch], c->b[ch]);
	}
}

/* backward step 1: sum of dy and of dy * x-hat per channel; dweight, dbias */
static void
bn_bstats(nn_op_ctx *c, double *stat)
{
	const nn_layer *L = c->L;
	const bn_kern *k = kern_pick();
	int			C = bn_channels(L);
	const float *mean_of = c->work->aux[c->i];
	const float *invstd = mean_of + C;

	for (int ch = 0; ch < C; ch++)
	{
		size_t		n,
					st,
					at = bn_span(L, c->B, ch, &n, &st);

		k->eval_grad(NULL, c->dout + at, c->in[0] + at, n, st, mean_of[ch], invstd[ch], 0, 0,
					 &stat[ch], &stat[C + ch]);
		c->db[ch] += (float) stat[ch];
		c->dw[ch] += (float) stat[C + ch];
	}
}

/* backward step 2: dx = w / std / M * (M dy - sum dy - x-hat sum(dy x-hat)) */
static void
bn_bapply(nn_op_ctx *c, const double *total, double count)
{
	const nn_layer *L = c->L;
	const bn_kern *k = kern_pick();
	int			C = bn_channels(L);
	const float *mean_of = c->work->aux[c->i];
	const float *invstd = mean_of + C;

	if (c->din[0] == NULL)
		return;
	for (int ch = 0; ch < C; ch++)
	{
		size_t		n,
					st,
					at = bn_span(L, c->B, ch, &n, &st);

		k->grad(c->din[0] + at, c->dout + at, c->in[0] + at, n, st, mean_of[ch], invstd[ch],
				(float) (c->w[ch] * invstd[ch] / count),
				(float) count, (float) total[ch], (float) total[C + ch], c->din_fresh[0]);
	}
}

/* two statistics per channel */
static int
bn_nstat(const nn_layer *L)
{
	return 2 * bn_channels(L);
}

/* a multiply and an add per value */
static uint64_t
bn_macs(const nn_layer *L)
{
	return nn_shape_elems(L->in);
}

static const nn_coupled bn_coupled = {
	.nstat = bn_nstat,
	.stats = bn_stats,
	.update = bn_update,
	.apply = bn_apply,
	.bstats = bn_bstats,
	.bapply = bn_bapply,
	.per_image = bn_per_image,
};

/* BatchNormalization with the running statistics (inference) */
static void
batchnorm_onnx(nn_onnx *x, const nn_layer *L, int i)
{
	const char *in[5] = {nn_onnx_input(x, i, 0), nn_onnx_tensor(x, i, "weight"), nn_onnx_tensor(x, i, "bias"),
	nn_onnx_tensor(x, i, "running_mean"), nn_onnx_tensor(x, i, "running_var")};
	nn_onnx_node *n = nn_onnx_node_add(x, i, "BatchNormalization", 5, in);

	nn_onnx_attr_float(x, n, "epsilon", (float) BN_EPS);
	/* ONNX weighs the running value by momentum, PyTorch the new one */
	nn_onnx_attr_float(x, n, "momentum", (float) (1 - BN_MOMENTUM));
}

const nn_op nn_op_batchnorm = {
	.name = "batchnorm",
	.usage = "batchnorm",
	.format = bn_format,
	.shape = bn_shape,
	.init = bn_init,
	.mem = bn_mem,
	.bwd_reads = bn_bwd_reads,
	.forward = bn_forward,
	.backward = bn_backward,
	.bwd_assigns = 1,
	.macs = bn_macs,
	.torch = "BatchNorm2d",
	.coupled = &bn_coupled,
	.onnx = batchnorm_onnx,
};
