/*
 * conv_winograd.c: 3x3 stride-1 convolutions by Winograd's minimal
 * filtering F(4x4, 3x3) (Lavin and Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2015), forward and both backward passes.
 *
 * The output is cut into 4x4 tiles; tile t reads the 6x6 input patch at
 * (4ty - P, 4tx - P), zeros outside the image. With the 6x6 transforms
 *
 *   U = G g G^T   of every filter g (oc, c)      U[xi][c][oc]
 *   V = B^T d B   of every patch d (t, c)        V[xi][t][c]
 *   M[xi] = V[xi] U[xi]                          36 sgemms, T x C by C x OC
 *   y = A^T M A   of every tile (t, oc)
 *
 * a tile's 16 outputs cost 36 multiply-adds per channel pair instead of
 * 144: 4x fewer, less the part of the last tiles that falls outside (an
 * 11x11 output in 3x3 tiles: 84% used). Backward is the exact transpose of
 * these steps, so it is the gradient of the convolution this computes:
 *
 *   dM = A dy A^T;  dU[xi] = V[xi]^T dM[xi];  dg += G^T dU G
 *   dV[xi] = dM[xi] U[xi]^T;  dd += B dV B^T  (overlapping patches add up)
 *
 * The tile transforms run on vectors of channels, so activations pass
 * through channels-last copies (positions x channels padded to the
 * vector). Every sum runs in a fixed order image by image and OpenBLAS is
 * called on one thread per part (as everywhere in the core), so results do
 * not depend on threads. The transforms scale by at most 8 and 1/24:
 * rounding differs from im2col + sgemm by a few units in the sixth
 * digit (the unit tests compare both with the reference kernels). The
 * instruction set follows the direct kernels' choice (conv_direct.h).
 */
#include <string.h>

#include <cblas.h>

#include "nn.h"
#include "conv_direct.h"
#include "conv_winograd.h"

int			nn_conv_winograd_mode = NN_CONV_WINOGRAD_AUTO;

/* the sizes of one layer on a batch */
typedef struct wg_geom
{
	int			B,
				C,
				H,
				W,
				OC,
				OH,
				OW,
				P,
				TH,
				TW,
				T,				/* tiles: B * TH * TW */
				Cp,				/* C and OC rounded up to the vector */
				OCp;
} wg_geom;

/* one instruction set's transforms */
typedef struct wg_kern
{
	int			vl;
	void		(*filters) (float *restrict U, const float *restrict weight, const wg_geom *g);
	void		(*filters_grad) (float *restrict dweight, const float *restrict dU, const wg_geom *g);
	void		(*input) (float *restrict V, const float *restrict X, const wg_geom *g);
	void		(*output) (float *restrict Y, const float *restrict M, const wg_geom *g);
	void		(*output_grad) (float *restrict dM, const float *restrict dY, const wg_geom *g);
	void		(*input_grad) (float *restrict dX, const float *restrict dV, const wg_geom *g);
} wg_kern;

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define KERN(name) name##_avx512
#define KERN_ATTR __attribute__((target("avx512f")))
#define VL 16
#include "conv_winograd_kern.h"

#define KERN(name) name##_avx2
#define KERN_ATTR __attribute__((target("avx2,fma")))
#define VL 8
#include "conv_winograd_kern.h"
#endif

#define KERN(name) name##_base
#define KERN_ATTR
#define VL 4
#include "conv_winograd_kern.h"

/* the transforms this CPU runs best (the direct kernels' level) */
static const wg_kern *
wg_pick(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	if (nn_conv_direct_level >= NN_CONV_DIRECT_AVX512 && __builtin_cpu_supports("avx512f"))
		return &kern_avx512;
	if (nn_conv_direct_level >= NN_CONV_DIRECT_AVX2 &&
		__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return &kern_avx2;
#endif
	return &kern_base;
}

/* n rounded up to a multiple of m */
static int
round_up(int n, int m)
{
	return (n + m - 1) / m * m;
}

/* the geometry of L on B images with k's vectors */
static void
wg_geometry(wg_geom *g, const wg_kern *k, const nn_layer *L, int B)
{
	g->B = B;
	g->C = L->in.c;
	g->H = L->in.h;
	g->W = L->in.w;
	g->OC = L->out.c;
	g->OH = L->out.h;
	g->OW = L->out.w;
	g->P = L->pad;
	g->TH = (g->OH + 3) / 4;
	g->TW = (g->OW + 3) / 4;
	g->T = B * g->TH * g->TW;
	g->Cp = round_up(g->C, k->vl);
	g->OCp = round_up(g->OC, k->vl);
}

/* true when L is a convolution the Winograd path computes */
int
nn_conv_winograd_fits(const nn_layer *L)
{
	if (nn_conv_winograd_mode == NN_CONV_WINOGRAD_NEVER)
		return 0;
	if (L->kind != NN_CONV || L->kernel != 3 || L->stride != 1 || L->groups > 1 || L->pad > 2)
		return 0;
	if (nn_conv_winograd_mode == NN_CONV_WINOGRAD_ALWAYS)
		return 1;
	/* where the multiply-adds, not the copies, dominate (bench/nn_bench --conv) */
	return L->in.c >= NN_CONV_WINOGRAD_MIN_CHANNELS && L->out.c >= NN_CONV_WINOGRAD_MIN_CHANNELS;
}

/* floats of U, V and M, and of the channels-last copy X or Y */
static void
wg_sizes(const wg_geom *g, size_t *u, size_t *v, size_t *m, size_t *xy)
{
	size_t		x = (size_t) g->B * g->H * g->W * g->Cp,
				y = (size_t) g->B * g->OH * g->OW * g->OCp;

	*u = (size_t) 36 * g->C * g->OCp;
	*v = (size_t) 36 * g->T * g->Cp;
	*m = (size_t) 36 * g->T * g->OCp;
	*xy = x > y ? x : y;
}

/* the transformed filters U */
size_t
nn_conv_winograd_filter_floats(const nn_layer *L)
{
	wg_geom		g;
	size_t		u,
				v,
				m,
				xy;

	wg_geometry(&g, wg_pick(), L, 1);
	wg_sizes(&g, &u, &v, &m, &xy);
	return u;
}

/* forward's col: V, kept for backward */
size_t
nn_conv_winograd_kept_floats(const nn_layer *L, int B)
{
	wg_geom		g;
	size_t		u,
				v,
				m,
				xy;

	wg_geometry(&g, wg_pick(), L, B);
	wg_sizes(&g, &u, &v, &m, &xy);
	return v;
}

/* forward's scratch: M, then X or Y */
size_t
nn_conv_winograd_forward_floats(const nn_layer *L, int B)
{
	wg_geom		g;
	size_t		u,
				v,
				m,
				xy;

	wg_geometry(&g, wg_pick(), L, B);
	wg_sizes(&g, &u, &v, &m, &xy);
	return m + xy;
}

/* backward's scratch: dU, dM, then dY, dX or U transposed (dV reuses V) */
size_t
nn_conv_winograd_backward_floats(const nn_layer *L, int B)
{
	wg_geom		g;
	size_t		u,
				v,
				m,
				xy,
				ut;

	wg_geometry(&g, wg_pick(), L, B);
	wg_sizes(&g, &u, &v, &m, &xy);
	ut = (size_t) 36 * g.OC * g.Cp;
	return u + m + (xy > ut ? xy : ut);
}

/* positions per block of the transposes below: their rows stay in L1 */
#define WG_BLOCK 16

/* X (N, Cp) = inp (C, N) transposed, padded channels zero */
static void
to_channels_last(float *restrict X, const float *restrict inp, int C, int Cp, size_t N)
{
	for (size_t i0 = 0; i0 < N; i0 += WG_BLOCK)
	{
		size_t		n = N - i0 < WG_BLOCK ? N - i0 : WG_BLOCK;
		float	   *x = X + i0 * Cp;

		for (int c = 0; c < C; c++)
		{
			const float *src = inp + (size_t) c * N + i0;

			for (size_t j = 0; j < n; j++)
				x[j * Cp + c] = src[j];
		}
		for (size_t j = 0; j < n && Cp > C; j++)
			memset(x + j * Cp + C, 0, sizeof(float) * (Cp - C));
	}
}

/* out (C, N) = Y (N, Cp) transposed, plus bias (when not NULL); add: out += instead */
static void
from_channels_last(float *restrict out, const float *restrict Y, int C, int Cp, size_t N,
				   const float *bias, int add)
{
	for (size_t i0 = 0; i0 < N; i0 += WG_BLOCK)
	{
		size_t		n = N - i0 < WG_BLOCK ? N - i0 : WG_BLOCK;
		const float *y = Y + i0 * Cp;

		for (int c = 0; c < C; c++)
		{
			float	   *restrict o = out + (size_t) c * N + i0;
			float		v = bias ? bias[c] : 0.0f;

			if (add)
				for (size_t j = 0; j < n; j++)
					o[j] += y[j * Cp + c];
			else
				for (size_t j = 0; j < n; j++)
					o[j] = y[j * Cp + c] + v;
		}
	}
}

/* forward: out = conv(inp) + bias; U and col keep what backward needs */
void
nn_conv_winograd_forward(float *out, const float *inp, const float *weight,
						 const float *bias, const nn_layer *L, int B, float *U,
						 int have_u, float *col, float *scratch)
{
	const wg_kern *k = wg_pick();
	wg_geom		g;
	size_t		u,
				v,
				m,
				xy;
	float	   *V,
			   *M,
			   *XY;

	wg_geometry(&g, k, L, B);
	wg_sizes(&g, &u, &v, &m, &xy);
	V = col;
	M = scratch;
	XY = M + m;

	if (!have_u)
		k->filters(U, weight, &g);
	to_channels_last(XY, inp, g.C, g.Cp, (size_t) B * g.H * g.W);
	k->input(V, XY, &g);
	for (int xi = 0; xi < 36; xi++)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.T, g.OCp, g.C, 1.0f,
					V + (size_t) xi * g.T * g.Cp, g.Cp, U + (size_t) xi * g.C * g.OCp, g.OCp,
					0.0f, M + (size_t) xi * g.T * g.OCp, g.OCp);
	k->output(XY, M, &g);
	from_channels_last(out, XY, g.OC, g.OCp, (size_t) B * g.OH * g.OW, bias, 0);
}

/* backward from forward's U and col (its V is overwritten by dV) */
void
nn_conv_winograd_backward(float *dinp, float *dweight, float *dbias, const float *dout,
						  const nn_layer *L, int B, const float *U, float *col,
						  float *scratch)
{
	const wg_kern *k = wg_pick();
	wg_geom		g;
	size_t		u,
				v,
				m,
				xy;
	size_t		N;
	float	   *V,
			   *M,
			   *dU = scratch,
			   *XY;

	wg_geometry(&g, k, L, B);
	wg_sizes(&g, &u, &v, &m, &xy);
	V = col;
	M = dU + u;
	XY = M + m;
	N = (size_t) B * g.OH * g.OW;

	for (int oc = 0; oc < g.OC; oc++)
		dbias[oc] += nn_sum_floats(dout + (size_t) oc * N, N);

	/* dM = A dy A^T */
	to_channels_last(XY, dout, g.OC, g.OCp, N);
	k->output_grad(M, XY, &g);

	/* dU[xi] = V[xi]^T dM[xi]; dweight += G^T dU G */
	for (int xi = 0; xi < 36; xi++)
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.C, g.OCp, g.T, 1.0f,
					V + (size_t) xi * g.T * g.Cp, g.Cp, M + (size_t) xi * g.T * g.OCp, g.OCp,
					0.0f, dU + (size_t) xi * g.C * g.OCp, g.OCp);
	k->filters_grad(dweight, dU, &g);
	if (dinp == NULL)
		return;

	/*
	 * dV[xi] = dM[xi] U[xi]^T over V (its padded channels stay zero), with
	 * U transposed first into XY (OpenBLAS's small-matrix kernels take the
	 * plain product, not this transposed one); dinp += B dV B^T
	 */
	for (int xi = 0; xi < 36; xi++)
	{
		const float *u = U + (size_t) xi * g.C * g.OCp;
		float	   *ut = XY + (size_t) xi * g.OC * g.Cp;

		for (int c = 0; c < g.C; c++)
			for (int oc = 0; oc < g.OC; oc++)
				ut[(size_t) oc * g.Cp + c] = u[(size_t) c * g.OCp + oc];
	}
	for (int xi = 0; xi < 36; xi++)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.T, g.C, g.OC, 1.0f,
					M + (size_t) xi * g.T * g.OCp, g.OCp, XY + (size_t) xi * g.OC * g.Cp, g.Cp,
					0.0f, V + (size_t) xi * g.T * g.Cp, g.Cp);
	memset(XY, 0, sizeof(float) * (size_t) B * g.H * g.W * g.Cp);
	k->input_grad(XY, V, &g);
	from_channels_last(dinp, XY, g.C, g.Cp, (size_t) B * g.H * g.W, NULL, 1);
}
