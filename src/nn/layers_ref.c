/*
 * layers_ref.c: naive, obviously-correct versions of the layer kernels.
 *
 * Each function is the textbook definition written as nested loops over the
 * layouts of nn.h, with double accumulators. Nothing here is meant to be
 * fast; the unit tests compare the kernels of layers.c against these and
 * check these against finite differences.
 */
#include <math.h>
#include <string.h>

#include "layers_ref.h"

/* Flat index of (c,b,y,x) in a (C,B,H,W) tensor. */
static inline size_t
at4(int c, int b, int y, int x, int B, int H, int W)
{
	return (((size_t) c * B + b) * H + y) * W + x;
}

/* conv forward by definition; also writes col (the im2col matrix) if given */
void
nn_conv2d_forward_ref(float *out, float *col, const float *inp,
					  const float *weight, const float *bias,
					  const nn_layer *L, int B)
{
	int			C = L->in.c,
				H = L->in.h,
				W = L->in.w;
	int			OC = L->out.c,
				OH = L->out.h,
				OW = L->out.w;
	int			K = L->kernel,
				S = L->stride,
				P = L->pad;
	size_t		N = (size_t) B * OH * OW;

	for (int oc = 0; oc < OC; oc++)
		for (int b = 0; b < B; b++)
			for (int oy = 0; oy < OH; oy++)
				for (int ox = 0; ox < OW; ox++)
				{
					double		acc = bias ? bias[oc] : 0.0;

					for (int c = 0; c < C; c++)
						for (int ky = 0; ky < K; ky++)
							for (int kx = 0; kx < K; kx++)
							{
								int			iy = oy * S - P + ky;
								int			ix = ox * S - P + kx;

								if (iy < 0 || iy >= H || ix < 0 || ix >= W)
									continue;
								acc += (double) weight[((oc * C + c) * K + ky) * K + kx] *
									inp[at4(c, b, iy, ix, B, H, W)];
							}
					out[at4(oc, b, oy, ox, B, OH, OW)] = (float) acc;
				}

	if (col == NULL)
		return;
	for (int c = 0; c < C; c++)
		for (int ky = 0; ky < K; ky++)
			for (int kx = 0; kx < K; kx++)
				for (int b = 0; b < B; b++)
					for (int oy = 0; oy < OH; oy++)
						for (int ox = 0; ox < OW; ox++)
						{
							size_t		r = ((size_t) c * K + ky) * K + kx;
							size_t		n = ((size_t) b * OH + oy) * OW + ox;
							int			iy = oy * S - P + ky;
							int			ix = ox * S - P + kx;
							float		v = 0.0f;

							if (iy >= 0 && iy < H && ix >= 0 && ix < W)
								v = inp[at4(c, b, iy, ix, B, H, W)];
							col[r * N + n] = v;
						}
}

/* conv backward by definition; col is the im2col matrix the forward wrote */
void
nn_conv2d_backward_ref(float *dinp, float *dweight, float *dbias, float *dcol,
					   const float *dout, const float *col,
					   const float *weight, const nn_layer *L, int B)
{
	int			C = L->in.c,
				H = L->in.h,
				W = L->in.w;
	int			OC = L->out.c,
				OH = L->out.h,
				OW = L->out.w;
	int			K = L->kernel,
				S = L->stride,
				P = L->pad;
	size_t		N = (size_t) B * OH * OW;

	/* dweight[oc][r] += sum_n dout[oc][n] * col[r][n] */
	for (int oc = 0; oc < OC; oc++)
		for (size_t r = 0; r < (size_t) C * K * K; r++)
		{
			double		acc = 0.0;

			for (size_t n = 0; n < N; n++)
				acc += (double) dout[oc * N + n] * col[r * N + n];
			dweight[oc * (size_t) C * K * K + r] += (float) acc;
		}

	/* dbias[oc] += sum of dout over batch and space */
	for (int oc = 0; oc < OC; oc++)
	{
		double		acc = 0.0;

		for (size_t n = 0; n < N; n++)
			acc += dout[oc * N + n];
		dbias[oc] += (float) acc;
	}

	if (dinp == NULL)
		return;
	/* dinp[c,b,iy,ix] += sum over (oc,ky,kx) hitting it of w * dout */
	for (int c = 0; c < C; c++)
		for (int b = 0; b < B; b++)
			for (int iy = 0; iy < H; iy++)
				for (int ix = 0; ix < W; ix++)
				{
					double		acc = 0.0;

					for (int oc = 0; oc < OC; oc++)
						for (int ky = 0; ky < K; ky++)
							for (int kx = 0; kx < K; kx++)
							{
								int			ty = iy + P - ky;
								int			tx = ix + P - kx;

								if (ty < 0 || tx < 0 || ty % S != 0 || tx % S != 0)
									continue;
								if (ty / S >= OH || tx / S >= OW)
									continue;
								acc += (double) weight[((oc * C + c) * K + ky) * K + kx] *
									dout[at4(oc, b, ty / S, tx / S, B, OH, OW)];
							}
					dinp[at4(c, b, iy, ix, B, H, W)] += (float) acc;
				}
}

/* max pooling by definition: first maximum wins, NaN propagates */
void
nn_maxpool_forward_ref(float *out, int32_t *argmax, const float *inp,
					   const nn_layer *L, int B)
{
	int			C = L->in.c,
				H = L->in.h,
				W = L->in.w;
	int			OH = L->out.h,
				OW = L->out.w;
	int			K = L->kernel,
				S = L->stride;

	for (int c = 0; c < C; c++)
		for (int b = 0; b < B; b++)
			for (int oy = 0; oy < OH; oy++)
				for (int ox = 0; ox < OW; ox++)
				{
					size_t		best = at4(c, b, oy * S, ox * S, B, H, W);

					for (int ky = 0; ky < K; ky++)
						for (int kx = 0; kx < K; kx++)
						{
							size_t		i = at4(c, b, oy * S + ky, ox * S + kx, B, H, W);

							if (inp[i] > inp[best] || (isnan(inp[i]) && !isnan(inp[best])))
								best = i;
						}
					out[at4(c, b, oy, ox, B, OH, OW)] = inp[best];
					argmax[at4(c, b, oy, ox, B, OH, OW)] =
						(int32_t) (best - at4(c, b, 0, 0, B, H, W));	/* within the plane */
				}
}

/* max pooling backward: route each gradient to its argmax */
void
nn_maxpool_backward_ref(float *dinp, const float *dout, const int32_t *argmax,
						const nn_layer *L, int B)
{
	size_t		n = (size_t) L->out.c * B * L->out.h * L->out.w;
	size_t		OHW = (size_t) L->out.h * L->out.w,
				HW = (size_t) L->in.h * L->in.w;

	for (size_t i = 0; i < n; i++)
		dinp[(i / OHW) * HW + argmax[i]] += dout[i];
}

/* relu: max(x, 0); NaN stays NaN like PyTorch */
void
nn_relu_forward_ref(float *out, const float *inp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (inp[i] > 0.0f || isnan(inp[i])) ? inp[i] : 0.0f;
}

/* relu backward: pass the gradient where the output is positive */
void
nn_relu_backward_ref(float *dinp, const float *dout, const float *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (out[i] > 0.0f)
			dinp[i] += dout[i];
}

/* dense forward: out[b][n] = bias[n] + sum_i inp[b][i] * weight[n][i] */
void
nn_dense_forward_ref(float *out, const float *inp, const float *weight,
					 const float *bias, int B, int I, int N)
{
	for (int b = 0; b < B; b++)
		for (int n = 0; n < N; n++)
		{
			double		acc = bias ? bias[n] : 0.0;

			for (int i = 0; i < I; i++)
				acc += (double) inp[(size_t) b * I + i] * weight[(size_t) n * I + i];
			out[(size_t) b * N + n] = (float) acc;
		}
}

/* dense backward by definition */
void
nn_dense_backward_ref(float *dinp, float *dweight, float *dbias,
					  const float *dout, const float *inp, const float *weight,
					  int B, int I, int N)
{
	for (int n = 0; n < N; n++)
	{
		double		acc = 0.0;

		for (int b = 0; b < B; b++)
			acc += dout[(size_t) b * N + n];
		dbias[n] += (float) acc;
		for (int i = 0; i < I; i++)
		{
			acc = 0.0;
			for (int b = 0; b < B; b++)
				acc += (double) dout[(size_t) b * N + n] * inp[(size_t) b * I + i];
			dweight[(size_t) n * I + i] += (float) acc;
		}
	}
	if (dinp == NULL)
		return;
	for (int b = 0; b < B; b++)
		for (int i = 0; i < I; i++)
		{
			double		acc = 0.0;

			for (int n = 0; n < N; n++)
				acc += (double) dout[(size_t) b * N + n] * weight[(size_t) n * I + i];
			dinp[(size_t) b * I + i] += (float) acc;
		}
}

/* inverted dropout: keep with probability 1-rate, scaled by 1/(1-rate) */
void
nn_dropout_forward_ref(float *out, float *mask, const float *inp, size_t n,
					   float rate, nn_rng *rng)
{
	for (size_t i = 0; i < n; i++)
	{
		float		u = nn_rng_uniform(rng);

		mask[i] = (rate < 1.0f && u >= rate) ? 1.0f / (1.0f - rate) : 0.0f;
		out[i] = inp[i] * mask[i];
	}
}

/* dropout backward: the same mask */
void
nn_dropout_backward_ref(float *dinp, const float *dout, const float *mask, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dinp[i] += dout[i] * mask[i];
}

/* flatten (C,B,H,W) to (B, C*H*W) in (c,h,w) order */
void
nn_flatten_forward_ref(float *out, const float *inp, int B, int C, int H, int W)
{
	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++)
			for (int y = 0; y < H; y++)
				for (int x = 0; x < W; x++)
					out[(size_t) b * C * H * W + ((size_t) c * H + y) * W + x] =
						inp[at4(c, b, y, x, B, H, W)];
}

/* flatten backward: the inverse permutation, accumulated */
void
nn_flatten_backward_ref(float *dinp, const float *dout, int B, int C, int H, int W)
{
	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++)
			for (int y = 0; y < H; y++)
				for (int x = 0; x < W; x++)
					dinp[at4(c, b, y, x, B, H, W)] +=
						dout[(size_t) b * C * H * W + ((size_t) c * H + y) * W + x];
}

/* softmax and summed cross-entropy, in double throughout */
double
nn_softmax_xent_forward_ref(float *probs, const float *logits,
							const int32_t *labels, int B, int K)
{
	double		loss = 0.0;

	for (int b = 0; b < B; b++)
	{
		const float *x = logits + (size_t) b * K;
		double		mx = x[0],
					sum = 0.0;

		for (int k = 1; k < K; k++)
			if (x[k] > mx)
				mx = x[k];
		for (int k = 0; k < K; k++)
			sum += exp((double) x[k] - mx);
		for (int k = 0; k < K; k++)
			probs[(size_t) b * K + k] = (float) (exp((double) x[k] - mx) / sum);
		if (labels[b] < 0 || labels[b] >= K)
			loss += NAN;
		else
			loss += log(sum) - ((double) x[labels[b]] - mx);
	}
	return loss;
}

/* dlogits += (probs - onehot(label)) * scale */
void
nn_softmax_xent_backward_ref(float *dlogits, const float *probs,
							 const int32_t *labels, int B, int K, float scale)
{
	for (int b = 0; b < B; b++)
		for (int k = 0; k < K; k++)
		{
			double		g = probs[(size_t) b * K + k] - (k == labels[b] ? 1.0 : 0.0);

			dlogits[(size_t) b * K + k] += (float) (g * scale);
		}
}
