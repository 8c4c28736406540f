/*
 * conv_direct.c: direct convolution for stride-1 convolutions with few
 * channels, forward and both backward passes.
 *
 * With 16 or 32 channels, im2col + sgemm spends most of its time copying:
 * each im2col element feeds only OC multiply-adds, and the im2col matrix of
 * a batch (C*K*K x B*OH*OW) is far larger than the caches. Here no im2col
 * exists. Each image's input is copied once into zero-padded planes of Wp =
 * W + 2P columns; on such a plane an output position (y, x) is q = y*Wp + x
 * and its tap (ky, kx) reads position q + ky*Wp + kx, so a run of
 * consecutive q (which crosses rows; the Wp - OW columns past each row's end
 * are computed and dropped) is a run of consecutive input floats for every
 * tap. The kernels (conv_direct_kern.h) hold a block of output channels x
 * positions in vector registers and stream the taps through them:
 *
 *   forward         out = direct(pad(inp), W)
 *   input gradient  dinp += direct(pad(dout, K-1-P), W flipped and transposed)
 *   weight gradient dW[oc][c][ky][kx] += sum over q of dout[oc][q] * inp[c][q + ky*Wp + kx]
 *
 * All sums run in a fixed order, image by image, so the results do not
 * depend on threads; they differ from im2col + sgemm in rounding only (the
 * unit tests compare both with the reference kernels). The instruction set
 * is chosen once per process from the CPU (AVX-512, AVX2 + FMA, or plain
 * vectors; the OpenBLAS core setting does not apply here). The weight
 * gradient is summed over the vector lanes, so CPUs of different vector
 * widths round it differently: a model is reproducible bit for bit on one
 * machine, as with OpenBLAS, whose kernels also follow the CPU.
 */
#include <string.h>

#include "nn.h"
#include "conv_direct.h"

int			nn_conv_direct_mode = NN_CONV_DIRECT_AUTO;
int			nn_conv_direct_level = NN_CONV_DIRECT_AVX512;

/* one instruction set's kernels and blocking */
typedef struct cd_kern
{
	const char *name;
	int			vl,
				qb,
				ob,
				db;
	void		(*fwd) (float *restrict o, const float *restrict in, const float *restrict wp,
						int C, int K, int Wp, size_t plane, size_t Q);
	void		(*dw) (float *restrict accv, const float *restrict d, const float *restrict in,
					   size_t plane, size_t Q, size_t off);
} cd_kern;

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define KERN(name) name##_avx512
#define KERN_NAME "avx512"
#define KERN_BCAST(p) ((KERN(vf)) _mm512_set1_ps(*(p)))
#define KERN_ATTR __attribute__((target("avx512f")))
#define VL 16
#define QB 3
#define OB 8
#define DB 4
#include "conv_direct_kern.h"

#define KERN(name) name##_avx2
#define KERN_NAME "avx2"
#define KERN_BCAST(p) ((KERN(vf)) _mm256_set1_ps(*(p)))
#define KERN_ATTR __attribute__((target("avx2,fma")))
#define VL 8
#define QB 3
#define OB 4
#define DB 3
#include "conv_direct_kern.h"
#endif

#define KERN(name) name##_base
#define KERN_NAME "generic"
#define KERN_BCAST(p) ((KERN(vf)) {0} + *(p))
#define KERN_ATTR
#define VL 4
#define QB 3
#define OB 4
#define DB 3
#include "conv_direct_kern.h"


/* the instruction set the vector kernels run here (direct, Winograd, pooling) */
int
nn_vector_level(void)
{
	static int	cached;			/* the CPU's widest level, once found (0: not yet) */
	int			cpu = __atomic_load_n(&cached, __ATOMIC_RELAXED);

	if (cpu == 0)
	{
		int			found = NN_CONV_DIRECT_GENERIC;

#if defined(__x86_64__) || defined(__i386__)
		__builtin_cpu_init();
		if (__builtin_cpu_supports("avx512f"))
			found = NN_CONV_DIRECT_AVX512;
		else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
			found = NN_CONV_DIRECT_AVX2;
#endif
		cpu = found;
		__atomic_store_n(&cached, cpu, __ATOMIC_RELAXED);	/* the same value from any thread */
	}
	return nn_conv_direct_level < cpu ? nn_conv_direct_level : cpu;
}

/* the kernels this CPU runs best */
static const cd_kern *
cd_pick(void)
{
#if defined(__x86_64__) || defined(__i386__)
	switch (nn_vector_level())
	{
		case NN_CONV_DIRECT_AVX512:
			return &kern_avx512;
		case NN_CONV_DIRECT_AVX2:
			return &kern_avx2;
	}
#endif
	return &kern_base;
}

/* the name of the instruction set the kernels use here */
const char *
nn_conv_direct_isa(void)
{
	return cd_pick()->name;
}

/* n rounded up to a multiple of m */
static size_t
round_up(size_t n, size_t m)
{
	return (n + m - 1) / m * m;
}

/* padded planes of a stride-1 convolution of C channels of HxW, K, P */
typedef struct cd_geom
{
	int			C,
				H,
				W,
				K,
				P,
				OH,
				OW,
				Wp;
	size_t		plane;			/* floats per padded plane */
	size_t		Q;				/* output positions computed per plane */
} cd_geom;

/*
 * The planes: Q covers every output row (OH * Wp) rounded up to a register
 * block, and a plane is tall enough that every tap of every q < Q reads
 * inside it (the rows past H + 2P are zero).
 */
static void
cd_geometry(cd_geom *g, const cd_kern *k, int C, int H, int W, int K, int P)
{
	size_t		need;
	size_t		rows;

	g->C = C;
	g->H = H;
	g->W = W;
	g->K = K;
	g->P = P;
	g->OH = H + 2 * P - K + 1;
	g->OW = W + 2 * P - K + 1;
	g->Wp = W + 2 * P;
	g->Q = round_up((size_t) g->OH * g->Wp, (size_t) k->qb * k->vl);
	need = g->Q + (size_t) (K - 1) * (g->Wp + 1);
	rows = (need + g->Wp - 1) / g->Wp;
	if (rows < (size_t) (H + 2 * P))
		rows = H + 2 * P;
	g->plane = rows * g->Wp;
}

/* true when L is a convolution the direct kernels compute */
int
nn_conv_direct_fits(const nn_layer *L)
{
	if (nn_conv_direct_mode == NN_CONV_DIRECT_NEVER)
		return 0;
	if (L->kind != NN_CONV || L->stride != 1 || (L->groups > 1) ||
		L->pad > L->kernel - 1 || (L->kernel == 1 && L->pad == 0))
		return 0;
	if (nn_conv_direct_mode == NN_CONV_DIRECT_ALWAYS)
		return 1;
	/*
	 * where im2col's copies dominate the multiply-adds, and the weight
	 * gradient's block of input planes is not mostly padding (bench/nn_bench
	 * --conv im2col|auto on the ResNet and the reference CNN)
	 */
	return L->in.c >= NN_CONV_DIRECT_MIN_CHANNELS &&
		L->in.c <= NN_CONV_DIRECT_MAX_CHANNELS && L->out.c <= NN_CONV_DIRECT_MAX_CHANNELS;
}

/* the forward geometry of L */
static void
cd_forward_geometry(cd_geom *g, const cd_kern *k, const nn_layer *L)
{
	cd_geometry(g, k, L->in.c, L->in.h, L->in.w, L->kernel, L->pad);
}

/* the input-gradient geometry of L: dout padded by K-1-P */
static void
cd_backward_geometry(cd_geom *g, const cd_kern *k, const nn_layer *L)
{
	cd_geometry(g, k, L->out.c, L->out.h, L->out.w, L->kernel, L->kernel - 1 - L->pad);
}

/* scratch floats of the forward pass: packed weights, padded input, one output block */
size_t
nn_conv_direct_forward_floats(const nn_layer *L)
{
	const cd_kern *k = cd_pick();
	cd_geom		g;
	size_t		KK = (size_t) L->kernel * L->kernel;

	cd_forward_geometry(&g, k, L);
	return round_up(L->out.c, k->ob) * L->in.c * KK + (size_t) L->in.c * g.plane + k->ob * g.Q;
}

/* scratch floats of the backward pass (one image at a time, whatever B) */
size_t
nn_conv_direct_backward_floats(const nn_layer *L)
{
	const cd_kern *k = cd_pick();
	cd_geom		f,
				b;
	size_t		KK = (size_t) L->kernel * L->kernel;

	cd_forward_geometry(&f, k, L);
	cd_backward_geometry(&b, k, L);
	return round_up(L->in.c, k->ob) * L->out.c * KK	/* flipped weights */
		+ round_up(L->in.c, k->db) * f.plane	/* padded input */
		+ round_up(L->out.c, k->db) * f.Q	/* output gradient rows */
		+ (size_t) L->out.c * b.plane	/* padded output gradient */
		+ k->ob * b.Q			/* one input-gradient block */
		+ round_up(L->out.c, k->db) * round_up(L->in.c, k->db) * KK * k->vl;	/* lanes of dweight */
}

/*
 * Weights for fwd_block: block by block of ob output channels, each
 * (in, ky, kx, ob) with zeros past the last channel. w(o, i, ky, kx) is at
 * o*so + i*si + ky*K + kx, taps mirrored when flip (the input gradient's
 * weights, o being the layer's input channel).
 */
static void
cd_pack_weights(float *dst, const float *w, int O, int I, int K, int ob,
				size_t so, size_t si, int flip)
{
	int			blocks = (O + ob - 1) / ob;

	for (int blk = 0; blk < blocks; blk++)
		for (int i = 0; i < I; i++)
			for (int ky = 0; ky < K; ky++)
				for (int kx = 0; kx < K; kx++)
					for (int j = 0; j < ob; j++)
					{
						int			o = blk * ob + j;
						int			sy = flip ? K - 1 - ky : ky;
						int			sx = flip ? K - 1 - kx : kx;

						*dst++ = o < O ? w[o * so + i * si + (size_t) sy * K + sx] : 0.0f;
					}
}

/*
 * Image b of src (C, B, H, W) into planes of g (Cr >= C of them, the extra
 * ones zero): P zero rows and columns around each image, zeros past it.
 */
static void
cd_pad(float *restrict dst, const float *restrict src, const cd_geom *g, int Cr, int B, int b)
{
	size_t		HW = (size_t) g->H * g->W;

	for (int c = 0; c < Cr; c++)
	{
		float	   *p = dst + (size_t) c * g->plane;
		const float *s = src + ((size_t) c * B + b) * HW;

		if (c >= g->C)
		{
			memset(p, 0, sizeof(float) * g->plane);
			continue;
		}
		memset(p, 0, sizeof(float) * ((size_t) g->P * g->Wp + g->P));
		p += (size_t) g->P * g->Wp + g->P;
		for (int y = 0; y < g->H; y++, s += g->W, p += g->Wp)
		{
			memcpy(p, s, sizeof(float) * g->W);
			/* this row's right padding and the next row's left */
			memset(p + g->W, 0, sizeof(float) * 2 * g->P);
		}
		p -= g->P;
		memset(p, 0, sizeof(float) * (g->plane - (size_t) (p - (dst + (size_t) c * g->plane))));
	}
}

/*
 * Rows j of o (ob rows of g->Q positions) to output channels o0 + j of image
 * b of out (OC, B, OH, OW): the valid columns, plus bias[oc] when bias is
 * given; added to what is there when acc.
 */
static void
cd_unpad(float *restrict out, const float *restrict o, const cd_geom *g, int o0, int ob, int OC,
		 int B, int b, const float *bias, int acc)
{
	size_t		OHW = (size_t) g->OH * g->OW;

	for (int j = 0; j < ob && o0 + j < OC; j++)
	{
		float	   *restrict d = out + ((size_t) (o0 + j) * B + b) * OHW;
		const float *restrict s = o + (size_t) j * g->Q;
		float		v = bias ? bias[o0 + j] : 0.0f;

		for (int y = 0; y < g->OH; y++, d += g->OW, s += g->Wp)
		{
			if (acc)
				for (int x = 0; x < g->OW; x++)
					d[x] += s[x];
			else
				for (int x = 0; x < g->OW; x++)
					d[x] = s[x] + v;
		}
	}
}

/*
 * conv forward: inp (C,B,H,W) -> out (OC,B,OH,OW) = W * inp + bias, image
 * by image; scratch holds nn_conv_direct_forward_floats(L) floats.
 */
void
nn_conv_direct_forward(float *out, const float *inp, const float *weight, const float *bias,
					   const nn_layer *L, int B, float *scratch)
{
	const cd_kern *k = cd_pick();
	int			C = L->in.c,
				OC = L->out.c,
				K = L->kernel;
	size_t		KK = (size_t) K * K;
	cd_geom		g;
	float	   *wp = scratch,
			   *in,
			   *o;

	cd_forward_geometry(&g, k, L);
	in = wp + round_up(OC, k->ob) * C * KK;
	o = in + (size_t) C * g.plane;
	cd_pack_weights(wp, weight, OC, C, K, k->ob, (size_t) C * KK, KK, 0);
	for (int b = 0; b < B && !nn_interrupted(); b++)
	{
		cd_pad(in, inp, &g, C, B, b);
		for (int o0 = 0; o0 < OC; o0 += k->ob)
		{
			k->fwd(o, in, wp + (size_t) o0 * C * KK, C, K, g.Wp, g.plane, g.Q);
			cd_unpad(out, o, &g, o0, k->ob, OC, B, b, bias, 0);
		}
	}
}

/*
 * Rows of image b's output gradient on the forward planes: dq[oc][y*Wp + x]
 * = dout[oc][b][y][x] for x < OW, zero elsewhere (the dropped columns, the
 * rounding of Q and the rows OCr past OC), so they add nothing.
 */
static void
cd_dout_rows(float *restrict dq, const float *restrict dout, const cd_geom *g, int OC, int OCr,
			 int B, int b)
{
	size_t		OHW = (size_t) g->OH * g->OW;

	memset(dq, 0, sizeof(float) * g->Q * OCr);
	for (int oc = 0; oc < OC; oc++)
	{
		float	   *d = dq + (size_t) oc * g->Q;
		const float *s = dout + ((size_t) oc * B + b) * OHW;

		for (int y = 0; y < g->OH; y++, d += g->Wp, s += g->OW)
			memcpy(d, s, sizeof(float) * g->OW);
	}
}

/* the dweight lanes of block (o0, c0) and tap t: db*db vectors of vl floats */
static float *
cd_lanes(float *accv, const cd_kern *k, int o0, int c0, size_t t, int Cr, size_t KK)
{
	size_t		blk = ((size_t) (o0 / k->db) * (Cr / k->db) + c0 / k->db) * KK + t;

	return accv + blk * k->db * k->db * k->vl;
}

/*
 * conv backward: dbias += the row sums of dout, dweight += dout x inp over
 * every tap and, when dinp is not NULL, dinp += the input gradient; scratch
 * holds nn_conv_direct_backward_floats(L) floats.
 */
void
nn_conv_direct_backward(float *dinp, float *dweight, float *dbias, const float *dout,
						const float *inp, const float *weight, const nn_layer *L, int B,
						float *scratch)
{
	const cd_kern *k = cd_pick();
	int			C = L->in.c,
				OC = L->out.c,
				K = L->kernel;
	int			Cr = (int) round_up(C, k->db),
				OCr = (int) round_up(OC, k->db);
	size_t		KK = (size_t) K * K;
	cd_geom		f,
				g;
	float	   *wf = scratch,
			   *in,
			   *dq,
			   *dpad,
			   *o,
			   *accv;

	cd_forward_geometry(&f, k, L);
	cd_backward_geometry(&g, k, L);
	in = wf + round_up(C, k->ob) * OC * KK;
	dq = in + (size_t) Cr * f.plane;
	dpad = dq + (size_t) OCr * f.Q;
	o = dpad + (size_t) OC * g.plane;
	accv = o + (size_t) k->ob * g.Q;
	memset(accv, 0, sizeof(float) * OCr * Cr * KK * k->vl);
	for (int oc = 0; oc < OC; oc++)
		dbias[oc] += nn_sum_floats(dout + (size_t) oc * B * f.OH * f.OW, (size_t) B * f.OH * f.OW);
	if (dinp)
		cd_pack_weights(wf, weight, C, OC, K, k->ob, KK, (size_t) C * KK, 1);

	for (int b = 0; b < B && !nn_interrupted(); b++)
	{
		cd_pad(in, inp, &f, Cr, B, b);
		cd_dout_rows(dq, dout, &f, OC, OCr, B, b);
		for (int o0 = 0; o0 < OCr; o0 += k->db)
			for (int c0 = 0; c0 < Cr; c0 += k->db)
				for (size_t t = 0; t < KK; t++)
					k->dw(cd_lanes(accv, k, o0, c0, t, Cr, KK), dq + (size_t) o0 * f.Q,
						  in + (size_t) c0 * f.plane, f.plane, f.Q, (t / K) * f.Wp + t % K);
		if (dinp == NULL)
			continue;
		cd_pad(dpad, dout, &g, OC, B, b);
		for (int c0 = 0; c0 < C; c0 += k->ob)
		{
			k->fwd(o, dpad, wf + (size_t) c0 * OC * KK, OC, K, g.Wp, g.plane, g.Q);
			cd_unpad(dinp, o, &g, c0, k->ob, C, B, b, NULL, 1);
		}
	}
	for (int o0 = 0; o0 < OCr; o0 += k->db)
		for (int c0 = 0; c0 < Cr; c0 += k->db)
			for (size_t t = 0; t < KK; t++)
			{
				const float *a = cd_lanes(accv, k, o0, c0, t, Cr, KK);

				for (int j = 0; j < k->db && o0 + j < OC; j++)
					for (int i = 0; i < k->db && c0 + i < C; i++)
					{
						const float *v = a + (size_t) (j * k->db + i) * k->vl;
						float		s = 0.0f;

						for (int l = 0; l < k->vl; l++)
							s += v[l];
						dweight[((size_t) (o0 + j) * C + c0 + i) * KK + t] += s;
					}
			}
}
