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
 * instruction set follows the direct kernels' choice (conv_direct.h). A
 * pass stops between blocks of tiles when nn_interrupted() asks (its
 * outputs are then undefined; the network reports the cancel).
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
	/* tiles t0..t1-1; the transformed side's 36 planes ts floats apart, tile t at row t - t0 */
	void		(*input) (float *restrict V, const float *restrict X, const wg_geom *g, int t0, int t1, size_t ts);
	void		(*output) (float *restrict Y, const float *restrict M, const wg_geom *g, int t0, int t1, size_t ts);
	void		(*output_grad) (float *restrict dM, const float *restrict dY, const wg_geom *g, int t0, int t1, size_t ts);
	void		(*input_grad) (float *restrict dX, const float *restrict dV, const wg_geom *g, int t0, int t1, size_t ts);
} wg_kern;

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#define KERN_FILE "conv_winograd_kern.h"
#define KERN_TYPE wg_kern
#include "kern_each.h"

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

/*
 * Tiles whose products M go through the cache together: the products of a
 * whole batch (36 planes of tiles x output channels) are far larger than a
 * core's L2, a block of them is not.
 */
#define WG_TILE_BLOCK 72

/* floats of each buffer of a layer on a batch */
typedef struct wg_sizes
{
	size_t		u,				/* the filters' transform U (and dU) */
				v,				/* a block of the input's V (and of dV) */
				m,				/* a block of the products M (and of dM) */
				x,				/* the channels-last input X (and dX) */
				y,				/* the channels-last output Y (and dY) */
				ut;				/* U transposed */
} wg_sizes;

/* the sizes of g's buffers */
static wg_sizes
wg_sizes_of(const wg_geom *g)
{
	wg_sizes	z;

	z.u = (size_t) 36 * g->C * g->OCp;
	z.v = (size_t) 36 * (g->T < WG_TILE_BLOCK ? g->T : WG_TILE_BLOCK) * g->Cp;
	z.m = (size_t) 36 * (g->T < WG_TILE_BLOCK ? g->T : WG_TILE_BLOCK) * g->OCp;
	z.x = (size_t) g->B * g->H * g->W * g->Cp;
	z.y = (size_t) g->B * g->OH * g->OW * g->OCp;
	z.ut = (size_t) 36 * g->OC * g->Cp;
	return z;
}

/* the sizes of L's buffers on B images */
static wg_sizes
wg_layer_sizes(const nn_layer *L, int B)
{
	wg_geom		g;

	wg_geometry(&g, kern_pick(), L, B);
	return wg_sizes_of(&g);
}

/* the transformed filters U */
size_t
nn_conv_winograd_filter_floats(const nn_layer *L)
{
	return wg_layer_sizes(L, 1).u;
}

/* forward's scratch: a block of V and of M, X and Y */
size_t
nn_conv_winograd_forward_floats(const nn_layer *L, int B)
{
	wg_sizes	z = wg_layer_sizes(L, B);

	return z.v + z.m + z.x + z.y;
}

/* backward's scratch: dU, a block of V (then dV) and of dM, dY, X, dX and U transposed */
size_t
nn_conv_winograd_backward_floats(const nn_layer *L, int B)
{
	wg_sizes	z = wg_layer_sizes(L, B);

	return z.u + z.v + z.m + z.y + 2 * z.x + z.ut;
}

/* positions per block of the transposes below: their rows stay in L1 */
#define WG_BLOCK 16

#if defined(__x86_64__) || defined(__i386__)
/* r (16 vectors of 16) transposed in registers: unpacks, then lane shuffles */
__attribute__((target("avx512f"), always_inline))
static inline void
transpose16_avx512(__m512 *r)
{
	__m512		t[16];

	for (int i = 0; i < 8; i++)
	{
		t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
		t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
	}
	for (int i = 0; i < 4; i++)
	{
		__m512d		a = _mm512_castps_pd(t[4 * i]),
					b = _mm512_castps_pd(t[4 * i + 1]),
					c = _mm512_castps_pd(t[4 * i + 2]),
					d = _mm512_castps_pd(t[4 * i + 3]);

		r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
		r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
		r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
		r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
	}
	for (int h = 0; h < 16; h += 8)
		for (int i = 0; i < 4; i++)
		{
			t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
			t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
		}
	for (int i = 0; i < 8; i++)
	{
		r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
		r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
	}
}

/* to_channels_last's whole 16 x 16 blocks (positions x channels) in AVX-512 */
__attribute__((target("avx512f")))
static void
to_channels_last_avx512(float *restrict X, const float *restrict inp, int C, int Cp, size_t N)
{
	for (size_t i0 = 0; i0 + 16 <= N; i0 += 16)
		for (int c0 = 0; c0 + 16 <= C; c0 += 16)
		{
			__m512		r[16];

			for (int k = 0; k < 16; k++)
				r[k] = _mm512_loadu_ps(inp + (size_t) (c0 + k) * N + i0);
			transpose16_avx512(r);
			for (int j = 0; j < 16; j++)
				_mm512_storeu_ps(X + (i0 + j) * Cp + c0, r[j]);
		}
}

/* from_channels_last's whole 16 x 16 blocks in AVX-512 */
__attribute__((target("avx512f")))
static void
from_channels_last_avx512(float *restrict out, const float *restrict Y, int C, int Cp, size_t N,
						  const float *bias, int add)
{
	for (size_t i0 = 0; i0 + 16 <= N; i0 += 16)
		for (int c0 = 0; c0 + 16 <= C; c0 += 16)
		{
			__m512		r[16];

			for (int j = 0; j < 16; j++)
				r[j] = _mm512_loadu_ps(Y + (i0 + j) * Cp + c0);
			transpose16_avx512(r);
			for (int k = 0; k < 16; k++)
			{
				float	   *o = out + (size_t) (c0 + k) * N + i0;

				if (add)
					_mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), r[k]));
				else
					_mm512_storeu_ps(o, _mm512_add_ps(r[k], _mm512_set1_ps(bias ? bias[c0 + k] : 0.0f)));
			}
		}
}
#endif

/*
 * The whole 16 x 16 blocks done by a vector transpose: positions below
 * *n_done have channels below the return value done (the rest is scalar)
 */
static int
channels_last_vector(float *restrict dst, const float *restrict src, int C, int Cp, size_t N,
					 const float *bias, int add, int to, size_t *n_done)
{
	*n_done = 0;
#if defined(__x86_64__) || defined(__i386__)
	if (C >= 16 && N >= 16 && nn_vector_level() == NN_CONV_DIRECT_AVX512)
	{
		if (to)
			to_channels_last_avx512(dst, src, C, Cp, N);
		else
			from_channels_last_avx512(dst, src, C, Cp, N, bias, add);
		*n_done = N / 16 * 16;
		return C / 16 * 16;
	}
#endif
	return 0;
}

/* X (N, Cp) = inp (C, N) transposed, padded channels zero */
static void
to_channels_last(float *restrict X, const float *restrict inp, int C, int Cp, size_t N)
{
	size_t		nv;
	int			cv = channels_last_vector(X, inp, C, Cp, N, NULL, 0, 1, &nv);

	for (size_t i0 = 0; i0 < N; i0 += WG_BLOCK)
	{
		size_t		n = N - i0 < WG_BLOCK ? N - i0 : WG_BLOCK;
		float	   *x = X + i0 * Cp;

		for (int c = i0 + n <= nv ? cv : 0; c < C; c++)
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
	size_t		nv;
	int			cv = channels_last_vector(out, Y, C, Cp, N, bias, add, 0, &nv);

	for (size_t i0 = 0; i0 < N; i0 += WG_BLOCK)
	{
		size_t		n = N - i0 < WG_BLOCK ? N - i0 : WG_BLOCK;
		const float *y = Y + i0 * Cp;

		for (int c = i0 + n <= nv ? cv : 0; c < C; c++)
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

/* forward: out = conv(inp) + bias; U keeps the filters' transform for backward */
void
nn_conv_winograd_forward(float *out, const float *inp, const float *weight,
						 const float *bias, const nn_layer *L, int B, float *U,
						 int have_u, float *scratch)
{
	const wg_kern *k = kern_pick();
	wg_geom		g;
	wg_sizes	z;
	size_t		vs,
				ms;
	float	   *V = scratch,
			   *M,
			   *X,
			   *Y;

	wg_geometry(&g, k, L, B);
	z = wg_sizes_of(&g);
	M = V + z.v;
	X = M + z.m;
	Y = X + z.x;

	if (!have_u)
		k->filters(U, weight, &g);
	to_channels_last(X, inp, g.C, g.Cp, (size_t) B * g.H * g.W);
	/* a block of tiles at a time: its V, its 36 products, its outputs */
	for (int t0 = 0; t0 < g.T && !nn_interrupted(); t0 += WG_TILE_BLOCK)
	{
		int			nt = g.T - t0 < WG_TILE_BLOCK ? g.T - t0 : WG_TILE_BLOCK;

		ms = (size_t) nt * g.OCp;
		vs = (size_t) nt * g.Cp;
		k->input(V, X, &g, t0, t0 + nt, vs);
		for (int xi = 0; xi < 36; xi++)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, g.OCp, g.C, 1.0f,
						V + xi * vs, g.Cp, U + (size_t) xi * g.C * g.OCp, g.OCp,
						0.0f, M + xi * ms, g.OCp);
		k->output(Y, M, &g, t0, t0 + nt, ms);
	}
	from_channels_last(out, Y, g.OC, g.OCp, (size_t) B * g.OH * g.OW, bias, 0);
}

/*
 * backward from the input and forward's U (V again block by block: it
 * costs less than keeping it); dinp = when assign, else +=
 */
void
nn_conv_winograd_backward(float *dinp, float *dweight, float *dbias, const float *dout,
						  const float *inp, const nn_layer *L, int B, const float *U,
						  float *scratch, int assign)
{
	const wg_kern *k = kern_pick();
	wg_geom		g;
	wg_sizes	z;
	size_t		N,
				vs,
				ms;
	float	   *dU = scratch,
			   *V,
			   *M,
			   *dY,
			   *X,
			   *dX,
			   *UT;

	wg_geometry(&g, k, L, B);
	z = wg_sizes_of(&g);
	V = dU + z.u;
	M = V + z.v;
	dY = M + z.m;
	X = dY + z.y;
	dX = X + z.x;
	UT = dX + z.x;
	N = (size_t) B * g.OH * g.OW;

	for (int oc = 0; oc < g.OC; oc++)
		dbias[oc] += nn_sum_floats(dout + (size_t) oc * N, N);
	to_channels_last(dY, dout, g.OC, g.OCp, N);
	to_channels_last(X, inp, g.C, g.Cp, (size_t) B * g.H * g.W);
	if (dinp)
	{
		/* U transposed (OpenBLAS's small-matrix kernels take the plain product dM U^T this way) */
		for (int xi = 0; xi < 36; xi++)
		{
			const float *uu = U + (size_t) xi * g.C * g.OCp;
			float	   *ut = UT + (size_t) xi * g.OC * g.Cp;

			for (int c = 0; c < g.C; c++)
				for (int oc = 0; oc < g.OC; oc++)
					ut[(size_t) oc * g.Cp + c] = uu[(size_t) c * g.OCp + oc];
		}
		memset(dX, 0, sizeof(float) * z.x);
	}

	/*
	 * A block of tiles at a time: its V again; dM = A dy A^T; dU[xi] +=
	 * V[xi]^T dM[xi]; then dV[xi] = dM[xi] U[xi]^T over V (its padded
	 * channels stay zero) and dX += B dV B^T
	 */
	for (int t0 = 0; t0 < g.T && !nn_interrupted(); t0 += WG_TILE_BLOCK)
	{
		int			nt = g.T - t0 < WG_TILE_BLOCK ? g.T - t0 : WG_TILE_BLOCK;

		ms = (size_t) nt * g.OCp;
		vs = (size_t) nt * g.Cp;
		k->input(V, X, &g, t0, t0 + nt, vs);
		k->output_grad(M, dY, &g, t0, t0 + nt, ms);
		for (int xi = 0; xi < 36; xi++)
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.C, g.OCp, nt, 1.0f,
						V + xi * vs, g.Cp, M + xi * ms, g.OCp,
						t0 == 0 ? 0.0f : 1.0f, dU + (size_t) xi * g.C * g.OCp, g.OCp);
		if (dinp == NULL)
			continue;
		for (int xi = 0; xi < 36; xi++)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, g.C, g.OC, 1.0f,
						M + xi * ms, g.OCp, UT + (size_t) xi * g.OC * g.Cp, g.Cp,
						0.0f, V + xi * vs, g.Cp);
		k->input_grad(dX, V, &g, t0, t0 + nt, vs);
	}
	k->filters_grad(dweight, dU, &g);
	if (dinp)
		from_channels_last(dinp, dX, g.C, g.Cp, (size_t) B * g.H * g.W, NULL, !assign);
}
