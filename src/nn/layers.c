/*
 * layers.c: the fast layer kernels of the core (forward and backward).
 *
 * Convolution is im2col + one sgemm over the whole mini-batch, darknet
 * style: with activations stored (C,B,H,W), the im2col matrix col is
 * (C*K*K, B*OH*OW) with row c*K*K+ky*K+kx and column b*OH*OW+oy*OW+ox, and
 * out (OC, B*OH*OW) = W (OC, C*K*K) x col is already the (OC,B,OH,OW)
 * output. Backward is dW += dout x col^T, then, only when the input gradient
 * is wanted, dcol = W^T x dout and col2im. A 1x1 kernel with stride 1 and
 * no padding needs no im2col at all: the input is its own col.
 *
 * Everything that is not a gemm is a plain loop written so that gcc -O3
 * vectorizes it without -ffast-math: restrict pointers, bounds worked out
 * once per row instead of per element, no branches on data (max pooling
 * and relu use selects), float reductions split over 16 independent
 * partial sums. No loop here is threaded and none uses atomics, so results
 * are bitwise reproducible for a fixed OpenBLAS thread count.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

/* cblas.h pulls in <complex.h>, whose macro I would eat the dense sizes */
#undef I

#include "nn.h"
#include "conv_direct.h"

/*
 * Multiply-adds one sgemm call may take at most (some tens of ms; a
 * variable so the tests can make it small): a larger
 * product, which only a hostile or absurd network asks for, is computed in
 * tiles of rows (and columns, when one row alone is too much) with an
 * interrupt check between tiles. The tiling depends only on the shapes, so
 * results stay deterministic; a thin tile may round differently from one
 * call, since OpenBLAS picks its kernel by size (test_bound.c measures it).
 */
uint64_t	nn_gemm_tile_macs = (uint64_t) 1 << 31;

/* row-major C = alpha op(A) op(B) + beta C, tiled and interruptible */
static void
sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
	  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
	uint64_t	row = (uint64_t) N * (uint64_t) (K > 0 ? K : 1);
	int			mt,
				nt;

	if ((uint64_t) M * row <= nn_gemm_tile_macs)
	{
		cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
		return;
	}
	if (row >= nn_gemm_tile_macs)
	{
		uint64_t	cols = nn_gemm_tile_macs / (uint64_t) (K > 0 ? K : 1);

		mt = 1;
		nt = cols < 1 ? 1 : cols > (uint64_t) N ? N : (int) cols;
	}
	else
	{
		uint64_t	rows = nn_gemm_tile_macs / row;

		mt = rows > (uint64_t) M ? M : (int) rows;
		nt = N;
	}
	for (int i = 0; i < M; i += mt)
		for (int j = 0; j < N; j += nt)
		{
			int			m = M - i < mt ? M - i : mt;
			int			n = N - j < nt ? N - j : nt;
			const float *a = ta == CblasNoTrans ? A + (size_t) i * lda : A + i;
			const float *b = tb == CblasNoTrans ? B + j : B + (size_t) j * ldb;

			if (nn_interrupted())
				return;
			cblas_sgemm(CblasRowMajor, ta, tb, m, n, K, alpha, a, lda, b, ldb, beta,
						C + (size_t) i * ldc + j, ldc);
		}
}

/*
 * Range [*lo,*hi) of output positions o in [0,on) whose input position
 * o*S - P + k falls inside [0,n). Empty ranges come back as lo == hi.
 */
static inline void
valid_range(int n, int on, int S, int P, int k, int *lo, int *hi)
{
	int			first = P - k;	/* need o*S >= first */
	int			last = n - 1 + P - k;	/* need o*S <= last */
	int			l,
				h;

	/* called per (plane, ky, kx): keep the two divisions off the S = 1 path */
	if (S == 1)
	{
		l = first <= 0 ? 0 : first;
		h = last < 0 ? 0 : last + 1;
	}
	else
	{
		l = first <= 0 ? 0 : (first + S - 1) / S;
		h = last < 0 ? 0 : last / S + 1;
	}

	if (h > on)
		h = on;
	if (l > h)
		l = h;
	*lo = l;
	*hi = h;
}

/* sum of x[0..n) in float with 16 independent partial sums (vectorizes) */
float
nn_sum_floats(const float *restrict x, size_t n)
{
	float		acc[16] = {0};
	double		s = 0.0;
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
		for (int j = 0; j < 16; j++)
			acc[j] += x[i + j];
	for (int j = 0; j < 16; j++)
		s += acc[j];
	for (; i < n; i++)
		s += x[i];
	return (float) s;
}

/*
 * Copy n floats. Runs in im2col are short (a row of the output, 11 floats
 * for the reference CNN) and gcc would turn a plain copy loop into a call to
 * memcpy per run, which costs more than the copy itself; blocks of four
 * (one SSE move each) with an overlapping last block stay inline and beat
 * both memcpy and gcc's vectorized loop with its scalar epilogue.
 */
static inline void
copy_run(float *restrict d, const float *restrict s, int n)
{
	int			i = 0;

	if (n < 4)
	{
		if (n > 0)
			d[0] = s[0];
		if (n > 1)
			d[1] = s[1];
		if (n > 2)
			d[2] = s[2];
		return;
	}
	for (; i + 4 <= n; i += 4)
	{
		d[i] = s[i];
		d[i + 1] = s[i + 1];
		d[i + 2] = s[i + 2];
		d[i + 3] = s[i + 3];
	}
	if (i < n)
	{
		i = n - 4;
		d[i] = s[i];
		d[i + 1] = s[i + 1];
		d[i + 2] = s[i + 2];
		d[i + 3] = s[i + 3];
	}
}

/* d[0..n) += s[0..n), in blocks of four for the same reason as copy_run */
static inline void
add_run(float *restrict d, const float *restrict s, int n)
{
	int			i = 0;

	for (; i + 4 <= n; i += 4)
	{
		d[i] += s[i];
		d[i + 1] += s[i + 1];
		d[i + 2] += s[i + 2];
		d[i + 3] += s[i + 3];
	}
	if (i < n)
		d[i] += s[i];
	if (i + 1 < n)
		d[i + 1] += s[i + 1];
	if (i + 2 < n)
		d[i + 2] += s[i + 2];
}

/* Zero n floats; padding runs are a float or two, so no memset call for them. */
static inline void
zero_run(float *restrict d, int n)
{
	if (n >= 4)
	{
		memset(d, 0, sizeof(float) * n);
		return;
	}
	if (n > 0)
		d[0] = 0.0f;
	if (n > 1)
		d[1] = 0.0f;
	if (n > 2)
		d[2] = 0.0f;
}

/*
 * im2col: inp (C,B,H,W) -> col (C*K*K, B*OH*OW). Loops run plane by plane
 * so that the input plane stays in L1 while its K*K rows of col are
 * written; padding is written as zero runs, the rest as contiguous copies
 * (stride 1) or a strided gather.
 */
static void
im2col(float *restrict col, const float *restrict inp, int C, int B, int H, int W,
	   int K, int S, int P, int OH, int OW)
{
	size_t		OHW = (size_t) OH * OW;
	size_t		N = (size_t) B * OHW;
	size_t		HW = (size_t) H * W;

	for (int c = 0; c < C && !nn_interrupted(); c++)
		for (int b = 0; b < B; b++)
		{
			const float *restrict plane = inp + ((size_t) c * B + b) * HW;

			for (int ky = 0; ky < K; ky++)
			{
				int			oy0,
							oy1;

				valid_range(H, OH, S, P, ky, &oy0, &oy1);
				for (int kx = 0; kx < K; kx++)
				{
					float	   *restrict dst = col + ((size_t) (c * K + ky) * K + kx) * N + b * OHW;
					int			ox0,
								ox1,
								y0 = oy0,
								y1 = oy1,
								run;

					valid_range(W, OW, S, P, kx, &ox0, &ox1);
					run = ox1 - ox0;
					if (run <= 0)
						y1 = y0;	/* the whole column range is padding */

					if (y0 > 0)
						memset(dst, 0, sizeof(float) * (size_t) y0 * OW);
					if (S == 1 && run == OW && OW == W)
					{
						/*
						 * rows are contiguous in the input: one block copy;
						 * none when kernel row ky only meets padding (then
						 * y0 - P + ky < 0 points before the plane)
						 */
						if (y1 > y0)
							memcpy(dst + (size_t) y0 * OW,
								   plane + (size_t) (y0 - P + ky) * W,
								   sizeof(float) * (size_t) (y1 - y0) * OW);
					}
					else
					{
						for (int oy = y0; oy < y1; oy++)
						{
							float	   *restrict d = dst + (size_t) oy * OW;
							const float *restrict s = plane + (size_t) (oy * S - P + ky) * W +
								(ox0 * S - P + kx);

							zero_run(d, ox0);
							if (S == 1)
								copy_run(d + ox0, s, run);
							else
								for (int i = 0; i < run; i++)
									d[ox0 + i] = s[(size_t) i * S];
							zero_run(d + ox1, OW - ox1);
						}
					}
					if (y1 < OH)
						memset(dst + (size_t) y1 * OW, 0, sizeof(float) * (OHW - (size_t) y1 * OW));
				}
			}
		}
}

/*
 * col2im: accumulate dcol (C*K*K, B*OH*OW) into dinp (C,B,H,W), the adjoint
 * of im2col. Padding positions are simply skipped. Plane by plane, so each
 * input plane is summed into while it sits in L1, in a fixed order.
 */
static void
col2im(float *restrict dinp, const float *restrict dcol, int C, int B, int H, int W,
	   int K, int S, int P, int OH, int OW)
{
	size_t		OHW = (size_t) OH * OW;
	size_t		N = (size_t) B * OHW;
	size_t		HW = (size_t) H * W;

	for (int c = 0; c < C && !nn_interrupted(); c++)
		for (int b = 0; b < B; b++)
		{
			float	   *restrict plane = dinp + ((size_t) c * B + b) * HW;

			for (int ky = 0; ky < K; ky++)
			{
				int			oy0,
							oy1;

				valid_range(H, OH, S, P, ky, &oy0, &oy1);
				for (int kx = 0; kx < K; kx++)
				{
					const float *restrict src = dcol + ((size_t) (c * K + ky) * K + kx) * N + b * OHW;
					int			ox0,
								ox1,
								run;

					valid_range(W, OW, S, P, kx, &ox0, &ox1);
					run = ox1 - ox0;
					if (run <= 0)
						continue;
					for (int oy = oy0; oy < oy1; oy++)
					{
						float	   *restrict d = plane + (size_t) (oy * S - P + ky) * W +
							(ox0 * S - P + kx);
						const float *restrict s = src + (size_t) oy * OW + ox0;

						if (S == 1)
							add_run(d, s, run);
						else
							for (int i = 0; i < run; i++)
								d[(size_t) i * S] += s[i];
					}
				}
			}
		}
}

/* floats of stack scratch for the transposed dweight gemm (16 kB) */
#define DW_SCRATCH 4096

/* true when the conv is 1x1, stride 1, no padding: col is the input itself */
static inline int
conv_is_pointwise(const nn_layer *L)
{
	return L->kernel == 1 && L->stride == 1 && L->pad == 0;
}

/* channel groups of a conv layer (0, as in a zeroed nn_layer, means 1) */
static inline int
conv_groups(const nn_layer *L)
{
	return L->groups > 1 ? L->groups : 1;
}

/*
 * conv forward: inp (C,B,H,W) -> out (OC,B,OH,OW), leaving the im2col
 * matrix in col for backward. For a pointwise conv (1x1, stride 1, pad 0)
 * col would equal inp: forward then copies inp into col unless col is NULL
 * or col == inp, so a caller may skip the copy by passing the forward's
 * input as col to backward. With G groups, group g's OC/G filters see
 * only its C/G input channels: rows g*C/G*K*K.. of col, one gemm each
 * (weights (OC, C/G, K, K), as PyTorch).
 */
void
nn_conv2d_forward(float *out, float *col, const float *inp,
				  const float *weight, const float *bias,
				  const nn_layer *L, int B)
{
	int			C = L->in.c,
				H = L->in.h,
				W = L->in.w;
	int			OC = L->out.c,
				OH = L->out.h,
				OW = L->out.w;
	int			K = L->kernel;
	int			G = conv_groups(L);
	int			N = B * OH * OW;
	int			KKg = C / G * K * K;
	int			OCg = OC / G;
	const float *a;

	if (conv_is_pointwise(L))
	{
		if (col != NULL && col != inp)
			memcpy(col, inp, sizeof(float) * (size_t) C * N);
		a = inp;
	}
	else
	{
		im2col(col, inp, C, B, H, W, K, L->stride, L->pad, OH, OW);
		a = col;
	}

	/* start from the bias and let the gemm add onto it (beta = 1) */
	for (int oc = 0; oc < OC; oc++)
	{
		float	   *restrict o = out + (size_t) oc * N;
		float		v = bias ? bias[oc] : 0.0f;

		for (int i = 0; i < N; i++)
			o[i] = v;
	}
	for (int g = 0; g < G; g++)
		sgemm(CblasNoTrans, CblasNoTrans, OCg, N, KKg, 1.0f, weight + (size_t) g * OCg * KKg, KKg,
			  a + (size_t) g * KKg * N, N, 1.0f, out + (size_t) g * OCg * N, N);
}

/* dweight (OC,KK) += dout (OC,N) x col (KK,N)^T for one group */
static void
conv_dweight(float *dweight, const float *dout, const float *col, int OC, int KK, int N)
{
	if (KK < OC && (size_t) KK * OC <= DW_SCRATCH)
	{
		/*
		 * Few columns per filter (a first layer: C*K*K = 9 for MNIST): the
		 * gemm with the short side as M is about twice as fast in OpenBLAS,
		 * so compute dweight^T = col x dout^T and add it transposed.
		 */
		float		tmp[DW_SCRATCH];

		sgemm(CblasNoTrans, CblasTrans, KK, OC, N, 1.0f, col, N, dout, N, 0.0f, tmp, OC);
		for (int oc = 0; oc < OC; oc++)
			for (int r = 0; r < KK; r++)
				dweight[(size_t) oc * KK + r] += tmp[(size_t) r * OC + oc];
	}
	else
		sgemm(CblasNoTrans, CblasTrans, OC, KK, N, 1.0f, dout, N, col, N, 1.0f, dweight, KK);
}

/*
 * conv backward: dweight += dout x col^T, dbias += row sums of dout, and
 * when dinp is not NULL dinp += col2im(W^T x dout) (dcol is the scratch for
 * W^T x dout; a pointwise conv gemms straight into dinp instead), group by
 * group.
 */
void
nn_conv2d_backward(float *dinp, float *dweight, float *dbias, float *dcol,
				   const float *dout, const float *col,
				   const float *weight, const nn_layer *L, int B)
{
	int			C = L->in.c,
				H = L->in.h,
				W = L->in.w;
	int			OC = L->out.c,
				OH = L->out.h,
				OW = L->out.w;
	int			K = L->kernel;
	int			G = conv_groups(L);
	int			N = B * OH * OW;
	int			KKg = C / G * K * K;
	int			OCg = OC / G;
	int			Cg = C / G;

	for (int oc = 0; oc < OC; oc++)
		dbias[oc] += nn_sum_floats(dout + (size_t) oc * N, N);
	for (int g = 0; g < G; g++)
		conv_dweight(dweight + (size_t) g * OCg * KKg, dout + (size_t) g * OCg * N,
					 col + (size_t) g * KKg * N, OCg, KKg, N);

	if (dinp == NULL)
		return;
	if (conv_is_pointwise(L))
	{
		for (int g = 0; g < G; g++)
			sgemm(CblasTrans, CblasNoTrans, Cg, N, OCg, 1.0f, weight + (size_t) g * OCg * Cg, Cg,
				  dout + (size_t) g * OCg * N, N, 1.0f, dinp + (size_t) g * Cg * N, N);
		return;
	}
	for (int g = 0; g < G; g++)
		sgemm(CblasTrans, CblasNoTrans, KKg, N, OCg, 1.0f, weight + (size_t) g * OCg * KKg, KKg,
			  dout + (size_t) g * OCg * N, N, 0.0f, dcol + (size_t) g * KKg * N, N);
	col2im(dinp, dcol, C, B, H, W, K, L->stride, L->pad, OH, OW);
}

/*
 * Better-of-two for max pooling: true when v should replace the running
 * maximum m, i.e. v > m, or v is NaN and m is not (so the first NaN wins and
 * propagates, as in PyTorch). Written with && on comparisons only so that
 * gcc turns it into vector compares and blends.
 */
static inline int
pool_better(float v, float m)
{
	return (v > m) || (v != v && m == m);
}

/* One output row of a 2x2 stride-2 max pool; i0 is the in-plane index of r0[0]. */
static inline void
maxpool_row_2x2(float *restrict o, int32_t *restrict am, const float *restrict r0,
				const float *restrict r1, int OW, int32_t i0, int32_t W)
{
	for (int ox = 0; ox < OW; ox++)
	{
		float		m = r0[2 * ox];
		int32_t		at = i0 + 2 * ox;
		float		v;
		int			gt;

		v = r0[2 * ox + 1];
		gt = pool_better(v, m);
		m = gt ? v : m;
		at = gt ? i0 + 2 * ox + 1 : at;
		v = r1[2 * ox];
		gt = pool_better(v, m);
		m = gt ? v : m;
		at = gt ? i0 + W + 2 * ox : at;
		v = r1[2 * ox + 1];
		gt = pool_better(v, m);
		m = gt ? v : m;
		at = gt ? i0 + W + 2 * ox + 1 : at;
		o[ox] = m;
		am[ox] = at;
	}
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/*
 * maxpool_row_2x2 in AVX-512, 16 outputs a step: the even and odd columns
 * of both input rows deinterleaved by permutes, then the same four-way
 * better-of-two in the same window order, so the same values and argmax.
 */
__attribute__((target("avx512f"), always_inline))
static inline void
maxpool_row_2x2_avx512(float *restrict o, int32_t *restrict am, const float *restrict r0,
					   const float *restrict r1, int OW, int32_t i0, int32_t W)
{
	const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
	const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
	const __m512i step = _mm512_add_epi32(even, _mm512_set1_epi32(i0));

	for (int ox = 0; ox < OW; ox += 16)
	{
		int			n = OW - ox < 16 ? OW - ox : 16;
		__mmask16	lo = (__mmask16) (n >= 8 ? 0xFFFF : (1u << (2 * n)) - 1),
					hi = (__mmask16) (n > 8 ? (1u << (2 * (n - 8))) - 1 : 0),
					out = (__mmask16) ((1u << n) - 1);
		__m512		a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * ox),
					a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * ox + 16),
					b0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * ox),
					b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * ox + 16);
		__m512		cand[3] = {_mm512_permutex2var_ps(a0, odd, a1),
			_mm512_permutex2var_ps(b0, even, b1),
		_mm512_permutex2var_ps(b0, odd, b1)};
		__m512i		base = _mm512_add_epi32(step, _mm512_set1_epi32(2 * ox));
		__m512i		off[3] = {_mm512_set1_epi32(1), _mm512_set1_epi32(W), _mm512_set1_epi32(W + 1)};
		__m512		m = _mm512_permutex2var_ps(a0, even, a1);
		__m512i		at = base;

		for (int k = 0; k < 3; k++)
		{
			__m512		v = cand[k];

			/* v > m, or v NaN, where m is not NaN: pool_better in two compares */
			__mmask16	gt = _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(m, m, _CMP_ORD_Q), v, m, _CMP_NLE_UQ);

			m = _mm512_mask_blend_ps(gt, m, v);
			at = _mm512_mask_blend_epi32(gt, at, _mm512_add_epi32(base, off[k]));
		}
		_mm512_mask_storeu_ps(o + ox, out, m);
		_mm512_mask_storeu_epi32(am + ox, out, at);
	}
}

/* one HxW plane's 2x2 stride-2 pooling into OHxOW, row by row in AVX-512 */
__attribute__((target("avx512f")))
static void
maxpool_plane_2x2_avx512(float *restrict o, int32_t *restrict am, const float *restrict in,
						 int OH, int OW, int32_t W)
{
	for (int oy = 0; oy < OH; oy++)
		maxpool_row_2x2_avx512(o + (size_t) oy * OW, am + (size_t) oy * OW, in + (size_t) (2 * oy) * W,
							   in + (size_t) (2 * oy + 1) * W, OW, 2 * oy * W, W);
}
#endif

/* the same with the plain row loop */
static void
maxpool_plane_2x2(float *restrict o, int32_t *restrict am, const float *restrict in,
				  int OH, int OW, int32_t W)
{
	for (int oy = 0; oy < OH; oy++)
		maxpool_row_2x2(o + (size_t) oy * OW, am + (size_t) oy * OW, in + (size_t) (2 * oy) * W,
						in + (size_t) (2 * oy + 1) * W, OW, 2 * oy * W, W);
}

/* the 2x2 stride-2 plane loop this CPU runs best (the direct kernels' level) */
static void (*
			 maxpool_plane_2x2_pick(void)) (float *restrict, int32_t *restrict, const float *restrict,
											int, int, int32_t)
{
#if defined(__x86_64__) || defined(__i386__)
	if (nn_vector_level() == NN_CONV_DIRECT_AVX512)
		return maxpool_plane_2x2_avx512;
#endif
	return maxpool_plane_2x2;
}

/*
 * Compares one output row of a pooling window may cost before the row
 * loop checks for interrupts row by row (a plane of a large, overlapping
 * window can take seconds).
 */
#define POOL_ROW_CHECK ((uint64_t) 1 << 20)

/*
 * max pooling forward, floor mode (windows never pass the edge). argmax
 * gets the index within its (c,b) plane of each window's maximum (so it
 * fits 32 bits whatever the batch), scanning the window row by row: the
 * first maximum wins ties, a NaN wins over numbers. The 2x2 stride-2 case
 * has its own vectorized row loop.
 */
void
nn_maxpool_forward(float *out, int32_t *argmax, const float *inp,
				   const nn_layer *L, int B)
{
	int			C = L->in.c,
				H = L->in.h,
				W = L->in.w;
	int			OH = L->out.h,
				OW = L->out.w;
	int			K = L->kernel,
				S = L->stride;
	size_t		HW = (size_t) H * W;
	size_t		OHW = (size_t) OH * OW;
	size_t		planes = (size_t) C * B;
	int			check_rows = (uint64_t) K * K * OW > POOL_ROW_CHECK;
	void		(*plane_2x2) (float *restrict, int32_t *restrict, const float *restrict,
							  int, int, int32_t) = maxpool_plane_2x2_pick();

	for (size_t p = 0; p < planes && !nn_interrupted(); p++)
	{
		const float *in = inp + p * HW;
		float	   *o = out + p * OHW;
		int32_t    *am = argmax + p * OHW;

		if (K == 2 && S == 2)
		{
			plane_2x2(o, am, in, OH, OW, W);
			continue;
		}
		for (int oy = 0; oy < OH; oy++)
		{
			if (check_rows && nn_interrupted())
				return;
			for (int ox = 0; ox < OW; ox++)
			{
				int32_t		first = (oy * S) * W + ox * S;
				float		m = in[first];
				int32_t		at = first;

				for (int ky = 0; ky < K; ky++)
					for (int kx = 0; kx < K; kx++)
					{
						int32_t		i = first + ky * W + kx;
						float		v = in[i];
						int			gt = pool_better(v, m);

						m = gt ? v : m;
						at = gt ? i : at;
					}
				o[oy * OW + ox] = m;
				am[oy * OW + ox] = at;
			}
		}
	}
}

/* max pooling backward: dinp[plane + argmax[i]] += dout[i], in order */
void
nn_maxpool_backward(float *dinp, const float *dout, const int32_t *argmax,
					const nn_layer *L, int B)
{
	size_t		HW = (size_t) L->in.h * L->in.w;
	size_t		OHW = (size_t) L->out.h * L->out.w;
	size_t		planes = (size_t) L->out.c * B;

	for (size_t p = 0; p < planes; p++)
	{
		float	   *restrict d = dinp + p * HW;
		const float *restrict g = dout + p * OHW;
		const int32_t *restrict am = argmax + p * OHW;

		for (size_t i = 0; i < OHW; i++)
			d[am[i]] += g[i];
	}
}

#if defined(__x86_64__) || defined(__i386__)
/* nn_relu_forward's loop in AVX-512: the same compare (ordered, so NaN passes), 16 at a time */
__attribute__((target("avx512f")))
static size_t
relu_forward_avx512(float *out, const float *inp, size_t n)
{
	__m512		z = _mm512_setzero_ps();
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m512		v = _mm512_loadu_ps(inp + i);

		_mm512_storeu_ps(out + i, _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, z, _CMP_LT_OQ), z));
	}
	return i;
}
#endif

/* relu forward: x < 0 ? 0 : x (NaN passes through, as in PyTorch); out may be inp */
void
nn_relu_forward(float *out, const float *inp, size_t n)
{
	size_t		i = 0;

#if defined(__x86_64__) || defined(__i386__)
	if (n >= 16 && nn_vector_level() == NN_CONV_DIRECT_AVX512)
		i = relu_forward_avx512(out, inp, n);
#endif
	for (; i < n; i++)
		out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
}

/* relu backward: dinp += dout where the forward output was positive */
void
nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n)
{
	float	   *restrict d = dinp;
	const float *restrict g = dout;
	const float *restrict y = out;

	for (size_t i = 0; i < n; i++)
	{
		float		gi = g[i];	/* loaded unconditionally, so it vectorizes */

		d[i] += y[i] > 0.0f ? gi : 0.0f;
	}
}

#if defined(__x86_64__) || defined(__i386__)
/* nn_relu_backward_inplace's loop in AVX-512: zero where not y > 0 (NaN included), 16 at a time */
__attribute__((target("avx512f")))
static size_t
relu_backward_inplace_avx512(float *d, const float *y, size_t n)
{
	__m512		z = _mm512_setzero_ps();
	size_t		i = 0;

	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(d + i, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_loadu_ps(y + i), z, _CMP_GT_OQ),
													 _mm512_loadu_ps(d + i)));
	return i;
}
#endif

/* relu backward in place: the gradient survives where the output was positive */
void
nn_relu_backward_inplace(float *dout, const float *out, size_t n)
{
	float	   *restrict d = dout;
	const float *restrict y = out;
	size_t		i = 0;

#if defined(__x86_64__) || defined(__i386__)
	if (n >= 16 && nn_vector_level() == NN_CONV_DIRECT_AVX512)
		i = relu_backward_inplace_avx512(d, y, n);
#endif
	for (; i < n; i++)
	{
		float		gi = d[i];

		d[i] = y[i] > 0.0f ? gi : 0.0f;
	}
}

/* dense forward: out (B,N) = inp (B,I) x weight^T (I,N) + bias */
void
nn_dense_forward(float *out, const float *inp, const float *weight,
				 const float *bias, int B, int I, int N)
{
	for (int b = 0; b < B; b++)
	{
		float	   *restrict o = out + (size_t) b * N;

		if (bias)
			memcpy(o, bias, sizeof(float) * N);
		else
			memset(o, 0, sizeof(float) * N);
	}
	sgemm(CblasNoTrans, CblasTrans, B, N, I, 1.0f, inp, I, weight, I, 1.0f, out, N);
}

/*
 * dense backward: dweight (N,I) += dout^T x inp, dbias += column sums of
 * dout, dinp (B,I) += dout x weight when dinp is not NULL
 */
void
nn_dense_backward(float *dinp, float *dweight, float *dbias,
				  const float *dout, const float *inp, const float *weight,
				  int B, int I, int N)
{
	float	   *restrict db = dbias;

	for (int b = 0; b < B; b++)
	{
		const float *restrict g = dout + (size_t) b * N;

		for (int n = 0; n < N; n++)
			db[n] += g[n];
	}
	sgemm(CblasTrans, CblasNoTrans, N, I, B, 1.0f, dout, N, inp, I, 1.0f, dweight, I);
	if (dinp != NULL)
		sgemm(CblasNoTrans, CblasNoTrans, B, I, N, 1.0f, dout, N, weight, I, 1.0f, dinp, I);
}

/*
 * inverted dropout: mask[i] = 1/(1-rate) with probability 1-rate (u >= rate
 * for u uniform in [0,1)), else 0; out = inp * mask. One draw per value.
 */
void
nn_dropout_forward(float *out, float *mask, const float *inp, size_t n,
				   float rate, nn_rng *rng)
{
	float		keep = rate < 1.0f ? 1.0f / (1.0f - rate) : 0.0f;

	for (size_t i = 0; i < n; i++)
		mask[i] = nn_rng_uniform(rng) >= rate ? keep : 0.0f;
	for (size_t i = 0; i < n; i++)
		out[i] = inp[i] * mask[i];
}

/* dropout backward: dinp += dout * mask */
void
nn_dropout_backward(float *dinp, const float *dout, const float *mask, size_t n)
{
	float	   *restrict d = dinp;
	const float *restrict g = dout;
	const float *restrict m = mask;

	for (size_t i = 0; i < n; i++)
		d[i] += g[i] * m[i];
}

/* flatten (C,B,H,W) -> (B, C*H*W): one contiguous plane per (b,c) */
void
nn_flatten_forward(float *out, const float *inp, int B, int C, int H, int W)
{
	size_t		HW = (size_t) H * W;

	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++)
			memcpy(out + ((size_t) b * C + c) * HW, inp + ((size_t) c * B + b) * HW,
				   sizeof(float) * HW);
}

/* flatten backward: dinp (C,B,H,W) += dout (B, C*H*W) permuted back */
void
nn_flatten_backward(float *dinp, const float *dout, int B, int C, int H, int W)
{
	size_t		HW = (size_t) H * W;

	for (int c = 0; c < C; c++)
		for (int b = 0; b < B; b++)
		{
			float	   *restrict d = dinp + ((size_t) c * B + b) * HW;
			const float *restrict g = dout + ((size_t) b * C + c) * HW;

			for (size_t i = 0; i < HW; i++)
				d[i] += g[i];
		}
}

/* Index of the largest of x[0..K): the first one on ties (argmax of logits). */
int
nn_argmax(const float *x, int K)
{
	int			best = 0;

	for (int k = 1; k < K; k++)
		if (x[k] > x[best])
			best = k;
	return best;
}

/* Softmax of x[0..K) into p (shifted by the max; sums in double). */
void
nn_softmax(float *p, const float *x, int K)
{
	float		mx = x[0];
	double		sum = 0.0;

	for (int k = 1; k < K; k++)
		mx = x[k] > mx ? x[k] : mx;
	for (int k = 0; k < K; k++)
	{
		p[k] = expf(x[k] - mx);
		sum += p[k];
	}
	for (int k = 0; k < K; k++)
		p[k] = (float) (p[k] / sum);
}

/*
 * softmax + cross-entropy forward. Each row is shifted by its max before
 * exp; the loss of a row is log(sum exp(x - max)) - (x[label] - max) in
 * double, which stays finite even where probs underflow to 0. A label out
 * of [0,K) makes the loss NaN rather than reading out of bounds.
 */
double
nn_softmax_xent_forward(float *probs, const float *logits,
						const int32_t *labels, int B, int K)
{
	double		loss = 0.0;

	if (K <= 0)
		return B > 0 ? NAN : 0.0;
	for (int b = 0; b < B; b++)
	{
		const float *restrict x = logits + (size_t) b * K;
		float	   *restrict p = probs + (size_t) b * K;
		float		mx = x[0];
		double		sum = 0.0;
		float		inv;

		for (int k = 1; k < K; k++)
			mx = x[k] > mx ? x[k] : mx;
		for (int k = 0; k < K; k++)
		{
			p[k] = expf(x[k] - mx);
			sum += p[k];
		}
		inv = (float) (1.0 / sum);
		for (int k = 0; k < K; k++)
			p[k] *= inv;
		if (labels[b] < 0 || labels[b] >= K)
			loss += NAN;
		else
			loss += log(sum) - ((double) x[labels[b]] - mx);
	}
	return loss;
}

/* softmax + cross-entropy backward: dlogits += (probs - onehot) * scale */
void
nn_softmax_xent_backward(float *dlogits, const float *probs,
						 const int32_t *labels, int B, int K, float scale)
{
	for (int b = 0; b < B; b++)
	{
		float	   *restrict d = dlogits + (size_t) b * K;
		const float *restrict p = probs + (size_t) b * K;
		int32_t		y = labels[b];

		for (int k = 0; k < K; k++)
			d[k] += (p[k] - (k == y ? 1.0f : 0.0f)) * scale;
	}
}
