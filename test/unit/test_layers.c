/*
 * test_layers.c: the layer kernels of layers.c against the naive references
 * of layers_ref.c, and both backward passes against central finite
 * differences of the forward.
 *
 * Fast vs reference: the fast kernels accumulate in float (sgemm), the
 * references in double, so sums of T products of values of size ~1 differ
 * by about sqrt(T) * 6e-8 * sum|terms|; for the largest shapes here (T up to
 * ~3000) that is ~1e-5 absolute on values of size ~10, and the tolerances
 * (atol/rtol 1e-4 unless stated) leave a margin of about 10x. Copies and
 * selections (im2col, max pooling, flatten, dropout masks) must match
 * exactly.
 *
 * Finite differences: the loss is L = sum(out * R) for a fixed random R, so
 * dL/dout = R is what backward gets. L is evaluated with the double-
 * accumulating reference forward and summed in double. Conv, dense, flatten
 * and dropout are linear in the perturbed value, so the central difference
 * has no truncation error at any step; relu and max pooling are piecewise
 * linear and the inputs are kept at least 2h away from every kink or tie, so
 * they have none either. What remains is rounding: outputs are stored as
 * float (relative 6e-8), which moves L by about sqrt(n) * 6e-8 * |out*R| and
 * the quotient by that over 2h; with h = 0.05 and n < 2000 this is < 1e-4.
 * The step actually taken is measured as (float)(x+h) - (float)(x-h). The
 * tolerance is atol 1e-3 + rtol 1e-3 on gradients of size ~1-10.
 * Softmax cross-entropy is smooth but not linear: with h = 1e-3 the
 * truncation error is h^2/6 * |f'''| < 1e-6, and the loss is computed in
 * double from float logits, so atol 1e-5 holds.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conv_direct.h"
#include "conv_winograd.h"
#include "layers_ref.h"
#include "nn.h"
#include "t.h"

#define FD_STEP 0.05f
#define FD_ATOL 1e-3
#define FD_RTOL 1e-3

/* ---------------------------------------------------------------- helpers */

/* malloc'd floats uniform in [-scale, scale) */
static float *
rand_floats(nn_rng *r, size_t n, float scale)
{
	float	   *p = malloc(sizeof(float) * (n ? n : 1));

	for (size_t i = 0; i < n; i++)
		p[i] = (2.0f * nn_rng_uniform(r) - 1.0f) * scale;
	return p;
}

/* malloc'd copy of n floats */
static float *
copy_floats(const float *src, size_t n)
{
	float	   *p = malloc(sizeof(float) * (n ? n : 1));

	memcpy(p, src, sizeof(float) * n);
	return p;
}

/* sum(a * b) in double: the scalar loss of the gradient checks */
static double
dot(const float *a, const float *b, size_t n)
{
	double		s = 0.0;

	for (size_t i = 0; i < n; i++)
		s += (double) a[i] * b[i];
	return s;
}

/* conv layer struct filled by hand, as nn_net_build would */
static nn_layer
conv_layer(int C, int H, int W, int OC, int K, int S, int P)
{
	nn_layer	L;

	memset(&L, 0, sizeof(L));
	L.kind = NN_CONV;
	L.units = OC;
	L.kernel = K;
	L.stride = S;
	L.pad = P;
	L.in.c = C;
	L.in.h = H;
	L.in.w = W;
	L.out.c = OC;
	L.out.h = (H + 2 * P - K) / S + 1;
	L.out.w = (W + 2 * P - K) / S + 1;
	return L;
}

/* maxpool layer struct filled by hand (floor mode) */
static nn_layer
pool_layer(int C, int H, int W, int K, int S)
{
	nn_layer	L;

	memset(&L, 0, sizeof(L));
	L.kind = NN_MAXPOOL;
	L.kernel = K;
	L.stride = S;
	L.in.c = C;
	L.in.h = H;
	L.in.w = W;
	L.out.c = C;
	L.out.h = (H - K) / S + 1;
	L.out.w = (W - K) / S + 1;
	return L;
}

/* the loss of the gradient checks, evaluated on demand */
typedef double (*loss_fn) (void *ctx);

/*
 * Central differences of f with respect to each of x[0..n): writes
 * (f(x+h) - f(x-h)) / (step actually taken) into g.
 */
static void
finite_diff(float *x, size_t n, float h, loss_fn f, void *ctx, float *g)
{
	for (size_t i = 0; i < n; i++)
	{
		float		save = x[i];
		double		lp,
					lm,
					xp,
					xm;

		x[i] = save + h;
		xp = x[i];
		lp = f(ctx);
		x[i] = save - h;
		xm = x[i];
		lm = f(ctx);
		x[i] = save;
		g[i] = (float) ((lp - lm) / (xp - xm));
	}
}

/* ------------------------------------------------------------------- conv */

typedef struct conv_case
{
	const char *name;
	int			C,
				H,
				W,
				OC,
				K,
				S,
				P,
				B;
} conv_case;

static const conv_case conv_cases[] = {
	{"1ch 5x7 k3", 1, 5, 7, 2, 3, 1, 0, 2},
	{"3ch 8x6 k3 stride 2 same", 3, 8, 6, 4, 3, 2, 1, 3},
	{"2ch 7x9 k5 same", 2, 7, 9, 3, 5, 1, 2, 2},
	{"2ch 10x11 k4 stride 3 pad 1", 2, 10, 11, 3, 4, 3, 1, 2},
	{"3ch 9x8 k3 stride 2", 3, 9, 8, 5, 3, 2, 0, 3},
	{"4ch 6x5 k1 (pointwise)", 4, 6, 5, 5, 1, 1, 0, 3},
	{"3ch 9x8 k1 stride 2", 3, 9, 8, 2, 1, 2, 0, 2},
	{"2ch 4x3 k1 pad 1", 2, 4, 3, 2, 1, 1, 1, 2},
	{"2ch 5x5 k2 pad 3", 2, 5, 5, 3, 2, 1, 3, 2},
	{"1ch 28x28 k3 (conv1)", 1, 28, 28, 32, 3, 1, 0, 4},
	{"2ch 6x7 k2 many filters", 2, 6, 7, 12, 2, 1, 0, 2},
	{"1ch 9x8 k7 96 filters", 1, 9, 8, 96, 7, 1, 0, 2},
	{"32ch 13x13 k3 (conv2)", 32, 13, 13, 8, 3, 1, 0, 3},
};

/* Fast conv forward/backward vs the reference, with and without dinp. */
T_CASE(test_layer_conv_vs_ref)
{
	nn_rng		r;

	nn_rng_seed(&r, 11);
	for (size_t t = 0; t < sizeof(conv_cases) / sizeof(conv_cases[0]); t++)
	{
		const conv_case *cc = &conv_cases[t];
		nn_layer	L = conv_layer(cc->C, cc->H, cc->W, cc->OC, cc->K, cc->S, cc->P);
		int			B = cc->B;
		size_t		nin = (size_t) cc->C * B * cc->H * cc->W;
		size_t		N = (size_t) B * L.out.h * L.out.w;
		size_t		nout = (size_t) cc->OC * N;
		size_t		KK = (size_t) cc->C * cc->K * cc->K;
		size_t		nw = cc->OC * KK;
		float	   *inp = rand_floats(&r, nin, 1.0f);
		float	   *w = rand_floats(&r, nw, 1.0f);
		float	   *bias = rand_floats(&r, cc->OC, 1.0f);
		float	   *dout = rand_floats(&r, nout, 1.0f);
		float	   *out = malloc(sizeof(float) * nout);
		float	   *out_ref = malloc(sizeof(float) * nout);
		float	   *col = rand_floats(&r, KK * N, 9.0f);	/* garbage to overwrite */
		float	   *col_ref = malloc(sizeof(float) * KK * N);
		float	   *dcol = rand_floats(&r, KK * N, 9.0f);
		/* gradients start nonzero: backward must add, not assign */
		float	   *dinp = rand_floats(&r, nin, 1.0f);
		float	   *dw = rand_floats(&r, nw, 1.0f);
		float	   *db = rand_floats(&r, cc->OC, 1.0f);
		float	   *dinp_ref = copy_floats(dinp, nin);
		float	   *dw_ref = copy_floats(dw, nw);
		float	   *db_ref = copy_floats(db, cc->OC);
		float	   *dw2 = copy_floats(dw, nw);
		float	   *db2 = copy_floats(db, cc->OC);
		char		what[160];
		double		tol = 1e-4;

		T_OK(L.out.h >= 1 && L.out.w >= 1, "%s: output %dx%d", cc->name, L.out.h, L.out.w);
		nn_conv2d_forward(out, col, inp, w, bias, &L, B);
		nn_conv2d_forward_ref(out_ref, col_ref, inp, w, bias, &L, B);
		snprintf(what, sizeof(what), "%s: forward", cc->name);
		T_CLOSE(out, out_ref, nout, tol, tol, what);
		snprintf(what, sizeof(what), "%s: im2col (exact)", cc->name);
		T_CLOSE(col, col_ref, KK * N, 0, 0, what);

		nn_conv2d_backward(dinp, dw, db, dcol, dout, col, w, &L, B);
		nn_conv2d_backward_ref(dinp_ref, dw_ref, db_ref, NULL, dout, col_ref, w, &L, B);
		snprintf(what, sizeof(what), "%s: dweight", cc->name);
		T_CLOSE(dw, dw_ref, nw, tol, tol, what);
		snprintf(what, sizeof(what), "%s: dbias", cc->name);
		T_CLOSE(db, db_ref, cc->OC, tol, tol, what);
		snprintf(what, sizeof(what), "%s: dinp", cc->name);
		T_CLOSE(dinp, dinp_ref, nin, tol, tol, what);

		/* dinp NULL: same parameter gradients, and nothing else touched */
		memset(dcol, 0, sizeof(float) * KK * N);
		nn_conv2d_backward(NULL, dw2, db2, dcol, dout, col, w, &L, B);
		snprintf(what, sizeof(what), "%s: dweight without dinp", cc->name);
		T_CLOSE(dw2, dw_ref, nw, tol, tol, what);
		snprintf(what, sizeof(what), "%s: dbias without dinp", cc->name);
		T_CLOSE(db2, db_ref, cc->OC, tol, tol, what);

		free(inp);
		free(w);
		free(bias);
		free(dout);
		free(out);
		free(out_ref);
		free(col);
		free(col_ref);
		free(dcol);
		free(dinp);
		free(dw);
		free(db);
		free(dinp_ref);
		free(dw_ref);
		free(db_ref);
		free(dw2);
		free(db2);
	}
}

/* the direct kernels' own cases: the channel counts they are for */
static const conv_case direct_cases[] = {
	{"16ch 28x28 k3 same (ResNet block)", 16, 28, 28, 16, 3, 1, 1, 3},
	{"5ch 9x13 k3 same to 7", 5, 9, 13, 7, 3, 1, 1, 2},
	{"3ch 6x6 k5 pad 2 to 13", 3, 6, 6, 13, 5, 1, 2, 3},
	{"1ch 3x2 k3 pad 2", 1, 3, 2, 2, 3, 1, 2, 2},
	{"24ch 7x7 k2 to 40", 24, 7, 7, 40, 2, 1, 0, 2},
};

/*
 * One conv case's tensors for checking a fast path against the reference:
 * random inputs, the reference's results, and the gradients both start
 * from (random, so that += shows).
 */
typedef struct conv_bufs
{
	nn_layer	L;
	int			B;
	size_t		nin,
				nout,
				nw;
	float	   *inp,
			   *w,
			   *bias,
			   *dout,
			   *out,			/* the fast path's output (starts as garbage) */
			   *out_ref,
			   *col_ref,
			   *dinp,
			   *dw,
			   *db,
			   *dinp_ref,
			   *dw_ref,
			   *db_ref,
			   *dw2,			/* for the pass without dinp */
			   *db2;
} conv_bufs;

/* cb's tensors for case cc, the reference's forward already in out_ref */
static void
conv_bufs_init(conv_bufs *cb, const conv_case *cc, nn_rng *r)
{
	cb->L = conv_layer(cc->C, cc->H, cc->W, cc->OC, cc->K, cc->S, cc->P);
	cb->B = cc->B;
	cb->nin = (size_t) cc->C * cc->B * cc->H * cc->W;
	cb->nout = (size_t) cc->OC * cc->B * cb->L.out.h * cb->L.out.w;
	cb->nw = (size_t) cc->OC * cc->C * cc->K * cc->K;
	cb->inp = rand_floats(r, cb->nin, 1.0f);
	cb->w = rand_floats(r, cb->nw, 1.0f);
	cb->bias = rand_floats(r, cc->OC, 1.0f);
	cb->dout = rand_floats(r, cb->nout, 1.0f);
	cb->out = rand_floats(r, cb->nout, 9.0f);
	cb->out_ref = malloc(sizeof(float) * cb->nout);
	cb->col_ref = malloc(sizeof(float) * cb->nw / cc->OC * cc->B * cb->L.out.h * cb->L.out.w);
	cb->dinp = rand_floats(r, cb->nin, 1.0f);
	cb->dw = rand_floats(r, cb->nw, 1.0f);
	cb->db = rand_floats(r, cc->OC, 1.0f);
	cb->dinp_ref = copy_floats(cb->dinp, cb->nin);
	cb->dw_ref = copy_floats(cb->dw, cb->nw);
	cb->db_ref = copy_floats(cb->db, cc->OC);
	cb->dw2 = copy_floats(cb->dw, cb->nw);
	cb->db2 = copy_floats(cb->db, cc->OC);
	nn_conv2d_forward_ref(cb->out_ref, cb->col_ref, cb->inp, cb->w, cb->bias, &cb->L, cb->B);
	nn_conv2d_backward_ref(cb->dinp_ref, cb->dw_ref, cb->db_ref, NULL, cb->dout, cb->col_ref, cb->w,
						   &cb->L, cb->B);
}

/* free cb's tensors */
static void
conv_bufs_free(conv_bufs *cb)
{
	float	   *all[] = {cb->inp, cb->w, cb->bias, cb->dout, cb->out, cb->out_ref, cb->col_ref, cb->dinp,
		cb->dw, cb->db, cb->dinp_ref, cb->dw_ref, cb->db_ref, cb->dw2, cb->db2};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(all[i]);
}

/* n floats of NaN, so that a read of anything not written first shows */
static float *
nan_floats(size_t n)
{
	float	   *p = malloc(sizeof(float) * (n ? n : 1));

	for (size_t i = 0; i < n; i++)
		p[i] = NAN;
	return p;
}

/* the direct kernels on one case at the current level vs the reference, scratch poisoned */
static void
check_direct_case(const conv_case *cc, nn_rng *r)
{
	conv_bufs	c;
	float	   *fscr,
			   *bscr;
	char		what[200];
	double		tol = 1e-4;

	conv_bufs_init(&c, cc, r);
	fscr = nan_floats(nn_conv_direct_forward_floats(&c.L));
	bscr = nan_floats(nn_conv_direct_backward_floats(&c.L));
	T_OK(nn_conv_direct_fits(&c.L), "%s: the direct kernels take it (%s)", cc->name, nn_conv_direct_isa());
	nn_conv_direct_forward(c.out, c.inp, c.w, c.bias, &c.L, c.B, fscr);
	snprintf(what, sizeof(what), "%s: direct forward (%s)", cc->name, nn_conv_direct_isa());
	T_CLOSE(c.out, c.out_ref, c.nout, tol, tol, what);

	nn_conv_direct_backward(c.dinp, c.dw, c.db, c.dout, c.inp, c.w, &c.L, c.B, bscr);
	snprintf(what, sizeof(what), "%s: direct dweight (%s)", cc->name, nn_conv_direct_isa());
	T_CLOSE(c.dw, c.dw_ref, c.nw, tol, tol, what);
	snprintf(what, sizeof(what), "%s: direct dbias (%s)", cc->name, nn_conv_direct_isa());
	T_CLOSE(c.db, c.db_ref, cc->OC, tol, tol, what);
	snprintf(what, sizeof(what), "%s: direct dinp (%s)", cc->name, nn_conv_direct_isa());
	T_CLOSE(c.dinp, c.dinp_ref, c.nin, tol, tol, what);

	free(bscr);
	bscr = nan_floats(nn_conv_direct_backward_floats(&c.L));
	nn_conv_direct_backward(NULL, c.dw2, c.db2, c.dout, c.inp, c.w, &c.L, c.B, bscr);
	snprintf(what, sizeof(what), "%s: direct dweight without dinp (%s)", cc->name, nn_conv_direct_isa());
	T_CLOSE(c.dw2, c.dw_ref, c.nw, tol, tol, what);

	free(fscr);
	free(bscr);
	conv_bufs_free(&c);
}

/*
 * The direct kernels vs the reference at every instruction-set level, on
 * every stride-1 case above and their own; scratch starts as NaN, so a read
 * of anything the kernels did not write shows.
 */
T_CASE(test_layer_conv_direct_vs_ref)
{
	nn_rng		r;
	int			mode = nn_conv_direct_mode,
				level = nn_conv_direct_level;

	nn_rng_seed(&r, 12);
	nn_conv_direct_mode = NN_CONV_DIRECT_ALWAYS;
	for (int lv = NN_CONV_DIRECT_GENERIC; lv <= NN_CONV_DIRECT_AVX512; lv++)
	{
		nn_conv_direct_level = lv;
		for (size_t t = 0; t < sizeof(conv_cases) / sizeof(conv_cases[0]); t++)
		{
			nn_layer	L = conv_layer(conv_cases[t].C, conv_cases[t].H, conv_cases[t].W, conv_cases[t].OC,
									   conv_cases[t].K, conv_cases[t].S, conv_cases[t].P);

			if (nn_conv_direct_fits(&L))
				check_direct_case(&conv_cases[t], &r);
		}
		for (size_t t = 0; t < sizeof(direct_cases) / sizeof(direct_cases[0]); t++)
			check_direct_case(&direct_cases[t], &r);
	}
	nn_conv_direct_mode = mode;
	nn_conv_direct_level = level;
}

/* the Winograd path's own cases: channel counts off and on the vector, every padding, tails */
static const conv_case winograd_cases[] = {
	{"32ch 13x13 k3 to 64 (conv2)", 32, 13, 13, 64, 3, 1, 0, 3},
	{"16ch 28x28 k3 same (ResNet block)", 16, 28, 28, 16, 3, 1, 1, 2},
	{"5ch 9x11 k3 pad 2 to 7", 5, 9, 11, 7, 3, 1, 2, 2},
	{"3ch 3x3 k3 to 20", 3, 3, 3, 20, 3, 1, 0, 3},
	{"17ch 6x5 k3 same to 33", 17, 6, 5, 33, 3, 1, 1, 1},
};

/*
 * The tolerance of a Winograd result against the reference: its rounding
 * error grows with the size of the transformed terms (up to 8x, and sums
 * over every position), so it is taken relative to the largest value.
 */
static double
winograd_tol(const float *want, size_t n)
{
	double		m = 1.0;

	for (size_t i = 0; i < n; i++)
		m = fabs(want[i]) > m ? fabs(want[i]) : m;
	return 2e-5 * m;
}

/* the Winograd path on one case at the current level vs the reference, scratch poisoned */
static void
check_winograd_case(const conv_case *cc, nn_rng *r)
{
	conv_bufs	c;
	float	   *sscr,
			   *bscr,
			   *U,
			   *out2,
			   *dinp0,
			   *dfresh;
	char		what[200];

	conv_bufs_init(&c, cc, r);
	sscr = nan_floats(nn_conv_winograd_forward_floats(&c.L, c.B));
	bscr = nan_floats(nn_conv_winograd_backward_floats(&c.L, c.B));
	U = nan_floats(nn_conv_winograd_filter_floats(&c.L));
	out2 = malloc(sizeof(float) * c.nout);
	T_OK(nn_conv_winograd_fits(&c.L), "%s: the Winograd path takes it", cc->name);
	nn_conv_winograd_forward(c.out, c.inp, c.w, c.bias, &c.L, c.B, U, 0, sscr);
	/* again with the filters kept from the first pass: the same bits */
	nn_conv_winograd_forward(out2, c.inp, c.w, c.bias, &c.L, c.B, U, 1, sscr);
	T_OK(memcmp(c.out, out2, sizeof(float) * c.nout) == 0, "%s: Winograd forward with kept filters", cc->name);
	snprintf(what, sizeof(what), "%s: Winograd forward (%s)", cc->name, nn_conv_direct_isa());
	T_CLOSE(c.out, c.out_ref, c.nout, winograd_tol(c.out_ref, c.nout), 1e-4, what);

	dinp0 = copy_floats(c.dinp, c.nin);
	nn_conv_winograd_backward(c.dinp, c.dw, c.db, c.dout, c.inp, &c.L, c.B, U, bscr, 0);
	snprintf(what, sizeof(what), "%s: Winograd dweight (%s)", cc->name, nn_conv_direct_isa());
	T_CLOSE(c.dw, c.dw_ref, c.nw, winograd_tol(c.dw_ref, c.nw), 1e-4, what);
	snprintf(what, sizeof(what), "%s: Winograd dbias (%s)", cc->name, nn_conv_direct_isa());
	T_CLOSE(c.db, c.db_ref, cc->OC, winograd_tol(c.db_ref, cc->OC), 1e-4, what);
	snprintf(what, sizeof(what), "%s: Winograd dinp (%s)", cc->name, nn_conv_direct_isa());
	T_CLOSE(c.dinp, c.dinp_ref, c.nin, winograd_tol(c.dinp_ref, c.nin), 1e-4, what);

	free(bscr);
	bscr = nan_floats(nn_conv_winograd_backward_floats(&c.L, c.B));
	nn_conv_winograd_backward(NULL, c.dw2, c.db2, c.dout, c.inp, &c.L, c.B, U, bscr, 0);
	snprintf(what, sizeof(what), "%s: Winograd dweight without dinp (%s)", cc->name, nn_conv_direct_isa());
	T_CLOSE(c.dw2, c.dw_ref, c.nw, winograd_tol(c.dw_ref, c.nw), 1e-4, what);

	/* dinp assigned over garbage (a fresh gradient) is the added one less what it held */
	dfresh = nan_floats(c.nin);
	nn_conv_winograd_backward(dfresh, c.dw2, c.db2, c.dout, c.inp, &c.L, c.B, U, bscr, 1);
	for (size_t i = 0; i < c.nin; i++)
		dfresh[i] += dinp0[i];
	snprintf(what, sizeof(what), "%s: Winograd dinp assigned (%s)", cc->name, nn_conv_direct_isa());
	T_CLOSE(dfresh, c.dinp_ref, c.nin, winograd_tol(c.dinp_ref, c.nin), 1e-4, what);

	free(dfresh);
	free(dinp0);
	free(sscr);
	free(bscr);
	free(U);
	free(out2);
	conv_bufs_free(&c);
}

/*
 * The Winograd path vs the reference at every instruction-set level, on
 * every case above it takes and its own; scratch starts as NaN.
 */
T_CASE(test_layer_conv_winograd_vs_ref)
{
	nn_rng		r;
	int			mode = nn_conv_winograd_mode,
				level = nn_conv_direct_level;

	nn_rng_seed(&r, 13);
	nn_conv_winograd_mode = NN_CONV_WINOGRAD_ALWAYS;
	for (int lv = NN_CONV_DIRECT_GENERIC; lv <= NN_CONV_DIRECT_AVX512; lv++)
	{
		nn_conv_direct_level = lv;
		for (size_t t = 0; t < sizeof(conv_cases) / sizeof(conv_cases[0]); t++)
		{
			nn_layer	L = conv_layer(conv_cases[t].C, conv_cases[t].H, conv_cases[t].W, conv_cases[t].OC,
									   conv_cases[t].K, conv_cases[t].S, conv_cases[t].P);

			if (nn_conv_winograd_fits(&L))
				check_winograd_case(&conv_cases[t], &r);
		}
		for (size_t t = 0; t < sizeof(winograd_cases) / sizeof(winograd_cases[0]); t++)
			check_winograd_case(&winograd_cases[t], &r);
	}
	nn_conv_winograd_mode = mode;
	nn_conv_direct_level = level;
}

/*
 * Pointwise conv (1x1, stride 1, pad 0) skips im2col: backward must work
 * both with the col forward filled and with the forward's input as col
 * (forward given col NULL or col == inp).
 */
T_CASE(test_layer_conv_pointwise_col)
{
	nn_rng		r;
	int			C = 3,
				H = 4,
				W = 5,
				OC = 4,
				B = 2;
	nn_layer	L = conv_layer(C, H, W, OC, 1, 1, 0);
	size_t		nin = (size_t) C * B * H * W;
	size_t		nout = (size_t) OC * B * H * W;
	float	   *inp,
			   *w,
			   *bias,
			   *dout,
			   *out,
			   *out_ref,
			   *col,
			   *dinp,
			   *dw,
			   *db,
			   *dinp_ref,
			   *dw_ref,
			   *db_ref;

	nn_rng_seed(&r, 12);
	inp = rand_floats(&r, nin, 1.0f);
	w = rand_floats(&r, (size_t) OC * C, 1.0f);
	bias = rand_floats(&r, OC, 1.0f);
	dout = rand_floats(&r, nout, 1.0f);
	out = malloc(sizeof(float) * nout);
	out_ref = malloc(sizeof(float) * nout);
	col = rand_floats(&r, nin, 5.0f);
	dinp_ref = calloc(nin, sizeof(float));
	dw_ref = calloc((size_t) OC * C, sizeof(float));
	db_ref = calloc(OC, sizeof(float));
	nn_conv2d_forward_ref(out_ref, NULL, inp, w, bias, &L, B);
	nn_conv2d_backward_ref(dinp_ref, dw_ref, db_ref, NULL, dout, inp, w, &L, B);

	for (int mode = 0; mode < 3; mode++)
	{
		const char *how[] = {"col buffer", "col NULL, input as col", "col == inp"};
		float	   *fcol = mode == 0 ? col : mode == 1 ? NULL : inp;
		const float *bcol = mode == 0 ? col : inp;
		char		what[128];

		dinp = calloc(nin, sizeof(float));
		dw = calloc((size_t) OC * C, sizeof(float));
		db = calloc(OC, sizeof(float));
		nn_conv2d_forward(out, fcol, inp, w, bias, &L, B);
		snprintf(what, sizeof(what), "pointwise forward, %s", how[mode]);
		T_CLOSE(out, out_ref, nout, 1e-5, 1e-5, what);
		nn_conv2d_backward(dinp, dw, db, NULL, dout, bcol, w, &L, B);
		snprintf(what, sizeof(what), "pointwise dinp, %s", how[mode]);
		T_CLOSE(dinp, dinp_ref, nin, 1e-5, 1e-5, what);
		snprintf(what, sizeof(what), "pointwise dweight, %s", how[mode]);
		T_CLOSE(dw, dw_ref, (size_t) OC * C, 1e-5, 1e-5, what);
		snprintf(what, sizeof(what), "pointwise dbias, %s", how[mode]);
		T_CLOSE(db, db_ref, OC, 1e-5, 1e-5, what);
		free(dinp);
		free(dw);
		free(db);
	}
	free(inp);
	free(w);
	free(bias);
	free(dout);
	free(out);
	free(out_ref);
	free(col);
	free(dinp_ref);
	free(dw_ref);
	free(db_ref);
}

/* the 3x3 cross-correlation of a known image, worked out by hand */
T_CASE(test_layer_conv_known_values)
{
	/* one 3x3 image 1..9, one 2x2 kernel [[1,0],[0,-1]], bias 0.5 */
	float		inp[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	float		w[4] = {1, 0, 0, -1};
	float		bias[1] = {0.5f};
	/* valid: x[y][x] - x[y+1][x+1] = -4 everywhere, + 0.5 */
	float		want_valid[4] = {-3.5f, -3.5f, -3.5f, -3.5f};

	/*
	 * pad 1, stride 2: outputs at (-1,-1),(-1,1),(1,-1),(1,1):
	 * 0-1, 0-3, 0-7, 5-9, each + 0.5
	 */
	float		want_pad[4] = {-0.5f, -2.5f, -6.5f, 0.5f - 4.0f};
	float		out[4],
				col[16];
	nn_layer	L = conv_layer(1, 3, 3, 1, 2, 1, 0);

	nn_conv2d_forward(out, col, inp, w, bias, &L, 1);
	T_CLOSE(out, want_valid, 4, 0, 0, "valid 2x2 conv of 1..9");
	L = conv_layer(1, 3, 3, 1, 2, 2, 1);
	T_OK(L.out.h == 2 && L.out.w == 2, "pad 1 stride 2 gives 2x2");
	nn_conv2d_forward(out, col, inp, w, bias, &L, 1);
	T_CLOSE(out, want_pad, 4, 0, 0, "padded strided 2x2 conv of 1..9");
}

typedef struct conv_fd
{
	nn_layer	L;
	int			B;
	float	   *inp,
			   *w,
			   *bias,
			   *out,
			   *R;
} conv_fd;

/* loss sum(conv(inp) * R) with the double-accumulating reference */
static double
conv_loss(void *p)
{
	conv_fd    *c = p;
	size_t		n = (size_t) c->L.out.c * c->B * c->L.out.h * c->L.out.w;

	nn_conv2d_forward_ref(c->out, NULL, c->inp, c->w, c->bias, &c->L, c->B);
	return dot(c->out, c->R, n);
}

/* Conv backward (fast and reference) against finite differences. */
T_CASE(test_layer_conv_gradcheck)
{
	static const conv_case fd_cases[] = {
		{"2ch 6x5 k3 stride 2 same", 2, 6, 5, 3, 3, 2, 1, 2},
		{"2ch 5x4 k3", 2, 5, 4, 2, 3, 1, 0, 2},
		{"3ch 4x3 k1", 3, 4, 3, 2, 1, 1, 0, 2},
	};
	nn_rng		r;

	nn_rng_seed(&r, 13);
	for (size_t t = 0; t < sizeof(fd_cases) / sizeof(fd_cases[0]); t++)
	{
		const conv_case *cc = &fd_cases[t];
		conv_fd		c;
		size_t		nin = (size_t) cc->C * cc->B * cc->H * cc->W;
		size_t		N,
					nout,
					KK,
					nw;
		float	   *col,
				   *dcol,
				   *dinp,
				   *dw,
				   *db,
				   *g;
		char		what[128];

		c.L = conv_layer(cc->C, cc->H, cc->W, cc->OC, cc->K, cc->S, cc->P);
		c.B = cc->B;
		N = (size_t) c.B * c.L.out.h * c.L.out.w;
		nout = cc->OC * N;
		KK = (size_t) cc->C * cc->K * cc->K;
		nw = cc->OC * KK;
		c.inp = rand_floats(&r, nin, 1.0f);
		c.w = rand_floats(&r, nw, 1.0f);
		c.bias = rand_floats(&r, cc->OC, 1.0f);
		c.R = rand_floats(&r, nout, 1.0f);
		c.out = malloc(sizeof(float) * nout);
		col = malloc(sizeof(float) * KK * N);
		dcol = malloc(sizeof(float) * KK * N);
		dinp = calloc(nin, sizeof(float));
		dw = calloc(nw, sizeof(float));
		db = calloc(cc->OC, sizeof(float));
		g = malloc(sizeof(float) * (nin > nw ? nin : nw));

		nn_conv2d_forward(c.out, col, c.inp, c.w, c.bias, &c.L, c.B);
		nn_conv2d_backward(dinp, dw, db, dcol, c.R,
						   cc->K == 1 && cc->S == 1 && cc->P == 0 ? c.inp : col,
						   c.w, &c.L, c.B);

		finite_diff(c.inp, nin, FD_STEP, conv_loss, &c, g);
		snprintf(what, sizeof(what), "%s: dinp vs finite differences", cc->name);
		T_CLOSE(dinp, g, nin, FD_ATOL, FD_RTOL, what);
		finite_diff(c.w, nw, FD_STEP, conv_loss, &c, g);
		snprintf(what, sizeof(what), "%s: dweight vs finite differences", cc->name);
		T_CLOSE(dw, g, nw, FD_ATOL, FD_RTOL, what);
		finite_diff(c.bias, cc->OC, FD_STEP, conv_loss, &c, g);
		snprintf(what, sizeof(what), "%s: dbias vs finite differences", cc->name);
		T_CLOSE(db, g, cc->OC, FD_ATOL, FD_RTOL, what);

		/* the reference backward too (it reads the input from its col) */
		memset(dinp, 0, sizeof(float) * nin);
		memset(dw, 0, sizeof(float) * nw);
		nn_conv2d_forward_ref(c.out, col, c.inp, c.w, c.bias, &c.L, c.B);
		nn_conv2d_backward_ref(dinp, dw, db, NULL, c.R, col, c.w, &c.L, c.B);
		finite_diff(c.inp, nin, FD_STEP, conv_loss, &c, g);
		snprintf(what, sizeof(what), "%s: reference dinp vs finite differences", cc->name);
		T_CLOSE(dinp, g, nin, FD_ATOL, FD_RTOL, what);
		finite_diff(c.w, nw, FD_STEP, conv_loss, &c, g);
		snprintf(what, sizeof(what), "%s: reference dweight vs finite differences", cc->name);
		T_CLOSE(dw, g, nw, FD_ATOL, FD_RTOL, what);

		free(c.inp);
		free(c.w);
		free(c.bias);
		free(c.R);
		free(c.out);
		free(col);
		free(dcol);
		free(dinp);
		free(dw);
		free(db);
		free(g);
	}
}

/* Same inputs, same bits: conv forward and backward run twice. */
T_CASE(test_layer_conv_deterministic)
{
	nn_rng		r;
	nn_layer	L = conv_layer(16, 13, 13, 32, 3, 1, 1);
	int			B = 8;
	size_t		nin = (size_t) 16 * B * 13 * 13;
	size_t		N = (size_t) B * L.out.h * L.out.w;
	size_t		nout = 32 * N;
	size_t		nw = 32 * 16 * 9;
	float	   *inp,
			   *w,
			   *bias,
			   *dout,
			   *col,
			   *dcol,
			   *out[2],
			   *dinp[2],
			   *dw[2],
			   *db[2];

	nn_rng_seed(&r, 14);
	inp = rand_floats(&r, nin, 1.0f);
	w = rand_floats(&r, nw, 1.0f);
	bias = rand_floats(&r, 32, 1.0f);
	dout = rand_floats(&r, nout, 1.0f);
	col = malloc(sizeof(float) * 16 * 9 * N);
	dcol = malloc(sizeof(float) * 16 * 9 * N);
	for (int k = 0; k < 2; k++)
	{
		out[k] = malloc(sizeof(float) * nout);
		dinp[k] = calloc(nin, sizeof(float));
		dw[k] = calloc(nw, sizeof(float));
		db[k] = calloc(32, sizeof(float));
		nn_conv2d_forward(out[k], col, inp, w, bias, &L, B);
		nn_conv2d_backward(dinp[k], dw[k], db[k], dcol, dout, col, w, &L, B);
	}
	T_OK(memcmp(out[0], out[1], sizeof(float) * nout) == 0, "forward bitwise equal");
	T_OK(memcmp(dinp[0], dinp[1], sizeof(float) * nin) == 0, "dinp bitwise equal");
	T_OK(memcmp(dw[0], dw[1], sizeof(float) * nw) == 0, "dweight bitwise equal");
	T_OK(memcmp(db[0], db[1], sizeof(float) * 32) == 0, "dbias bitwise equal");
	for (int k = 0; k < 2; k++)
	{
		free(out[k]);
		free(dinp[k]);
		free(dw[k]);
		free(db[k]);
	}
	free(inp);
	free(w);
	free(bias);
	free(dout);
	free(col);
	free(dcol);
}

/* ---------------------------------------------------------------- maxpool */

/*
 * n distinct values spaced 4*FD_STEP apart in random order, so no
 * finite-difference step can change which value of a window is largest
 */
static float *
spaced_floats(nn_rng *r, size_t n)
{
	float	   *p = malloc(sizeof(float) * (n ? n : 1));

	for (size_t i = 0; i < n; i++)
		p[i] = ((float) i - (float) n / 2) * 4 * FD_STEP;
	for (size_t i = n; i > 1; i--)
	{
		size_t		j = nn_rng_below(r, (uint32_t) i);
		float		t = p[i - 1];

		p[i - 1] = p[j];
		p[j] = t;
	}
	return p;
}

/* Fast max pooling against the reference on several shapes, at the current level. */
static void
check_maxpool_vs_ref(void)
{
	static const struct
	{
		int			C,
					H,
					W,
					K,
					S,
					B;
	}			cases[] = {
		{2, 6, 8, 2, 2, 3},		/* the common case */
		{3, 7, 5, 2, 2, 2},		/* odd sizes: floor mode drops the edge */
		{2, 7, 9, 3, 2, 2},		/* overlapping windows */
		{1, 9, 6, 3, 3, 2},
		{2, 5, 6, 2, 1, 2},		/* stride 1 */
		{4, 26, 26, 2, 2, 3},	/* conv1's output */
		{2, 70, 69, 2, 2, 2},	/* rows of more than 16 outputs, with a tail */
	};
	nn_rng		r;

	nn_rng_seed(&r, 21);
	for (size_t t = 0; t < sizeof(cases) / sizeof(cases[0]); t++)
	{
		nn_layer	L = pool_layer(cases[t].C, cases[t].H, cases[t].W, cases[t].K, cases[t].S);
		int			B = cases[t].B;
		size_t		nin = (size_t) L.in.c * B * L.in.h * L.in.w;
		size_t		nout = (size_t) L.out.c * B * L.out.h * L.out.w;
		float	   *inp = rand_floats(&r, nin, 1.0f);
		float	   *out = malloc(sizeof(float) * nout);
		float	   *out_ref = malloc(sizeof(float) * nout);
		int32_t    *am = malloc(sizeof(int32_t) * nout);
		int32_t    *am_ref = malloc(sizeof(int32_t) * nout);
		float	   *dout = rand_floats(&r, nout, 1.0f);
		float	   *dinp = rand_floats(&r, nin, 1.0f);
		float	   *dinp_ref = copy_floats(dinp, nin);
		char		what[128];

		/* quantize half of the planes to force ties */
		for (size_t i = 0; i < nin / 2; i++)
			inp[i] = roundf(inp[i] * 2.0f) / 2.0f;
		nn_maxpool_forward(out, am, inp, &L, B);
		nn_maxpool_forward_ref(out_ref, am_ref, inp, &L, B);
		snprintf(what, sizeof(what), "pool %dx%d k%d s%d: forward (exact)",
				 L.in.h, L.in.w, L.kernel, L.stride);
		T_CLOSE(out, out_ref, nout, 0, 0, what);
		T_OK(memcmp(am, am_ref, sizeof(int32_t) * nout) == 0,
			 "pool %dx%d k%d s%d: argmax equal to the reference",
			 L.in.h, L.in.w, L.kernel, L.stride);
		nn_maxpool_backward(dinp, dout, am, &L, B);
		nn_maxpool_backward_ref(dinp_ref, dout, am_ref, &L, B);
		snprintf(what, sizeof(what), "pool %dx%d k%d s%d: backward",
				 L.in.h, L.in.w, L.kernel, L.stride);
		T_CLOSE(dinp, dinp_ref, nin, 0, 0, what);
		free(inp);
		free(out);
		free(out_ref);
		free(am);
		free(am_ref);
		free(dout);
		free(dinp);
		free(dinp_ref);
	}
}

/* Ties pick the first maximum in window order; NaN propagates (at the current level). */
static void
check_maxpool_ties_nan(void)
{
	/* one 2x4 plane, two 2x2 windows: [1 3 | 5 5] / [3 2 | 5 4] */
	float		inp[8] = {1, 3, 5, 5, 3, 2, 5, 4};
	float		out[2];
	int32_t		am[2];
	nn_layer	L = pool_layer(1, 2, 4, 2, 2);
	float		nan_inp[8] = {1, NAN, 5, 6, 9, 2, 7, NAN};

	nn_maxpool_forward(out, am, inp, &L, 1);
	T_OK(out[0] == 3 && am[0] == 1, "tie 3/3 picks the first: got %g at %d", out[0], am[0]);
	T_OK(out[1] == 5 && am[1] == 2, "tie 5/5/5 picks the first: got %g at %d", out[1], am[1]);
	nn_maxpool_forward(out, am, nan_inp, &L, 1);
	T_OK(isnan(out[0]) && am[0] == 1, "NaN in a window propagates: got %g at %d", out[0], am[0]);
	T_OK(isnan(out[1]) && am[1] == 7, "NaN after the max propagates: got %g at %d", out[1], am[1]);
}

/* both checks above with the vector row loop and with the plain one */
T_CASE(test_layer_maxpool_levels)
{
	int			level = nn_conv_direct_level;

	for (int lv = NN_CONV_DIRECT_GENERIC; lv <= NN_CONV_DIRECT_AVX512; lv++)
	{
		nn_conv_direct_level = lv;
		check_maxpool_vs_ref();
		check_maxpool_ties_nan();
	}
	nn_conv_direct_level = level;
}

typedef struct pool_fd
{
	nn_layer	L;
	int			B;
	float	   *inp,
			   *out,
			   *R;
	int32_t    *am;
} pool_fd;

/* loss sum(maxpool(inp) * R) */
static double
pool_loss(void *p)
{
	pool_fd    *c = p;

	nn_maxpool_forward_ref(c->out, c->am, c->inp, &c->L, c->B);
	return dot(c->out, c->R, (size_t) c->L.out.c * c->B * c->L.out.h * c->L.out.w);
}

/* Max pooling backward against finite differences (also overlapping). */
T_CASE(test_layer_maxpool_gradcheck)
{
	nn_rng		r;
	nn_layer	shapes[2] = {pool_layer(2, 6, 5, 2, 2), pool_layer(2, 7, 7, 3, 2)};

	nn_rng_seed(&r, 22);
	for (int t = 0; t < 2; t++)
	{
		pool_fd		c;
		size_t		nin,
					nout;
		float	   *dinp,
				   *g;
		int32_t    *am;
		char		what[128];

		c.L = shapes[t];
		c.B = 2;
		nin = (size_t) c.L.in.c * c.B * c.L.in.h * c.L.in.w;
		nout = (size_t) c.L.out.c * c.B * c.L.out.h * c.L.out.w;
		c.inp = spaced_floats(&r, nin);
		c.R = rand_floats(&r, nout, 1.0f);
		c.out = malloc(sizeof(float) * nout);
		c.am = malloc(sizeof(int32_t) * nout);
		am = malloc(sizeof(int32_t) * nout);
		dinp = calloc(nin, sizeof(float));
		g = malloc(sizeof(float) * nin);
		nn_maxpool_forward(c.out, am, c.inp, &c.L, c.B);
		nn_maxpool_backward(dinp, c.R, am, &c.L, c.B);
		finite_diff(c.inp, nin, FD_STEP, pool_loss, &c, g);
		snprintf(what, sizeof(what), "pool k%d s%d: dinp vs finite differences",
				 c.L.kernel, c.L.stride);
		T_CLOSE(dinp, g, nin, FD_ATOL, FD_RTOL, what);
		free(c.inp);
		free(c.R);
		free(c.out);
		free(c.am);
		free(am);
		free(dinp);
		free(g);
	}
}

/* ------------------------------------------------------------------- relu */

/*
 * relu forward at every level: negatives to 0, NaN and -0 pass through, in
 * place and not, with a tail; backward in place the same way
 */
T_CASE(test_layer_relu_levels)
{
	int			level = nn_conv_direct_level;
	float		x[37],
				y[37];

	for (int i = 0; i < 37; i++)
		x[i] = (float) (i % 5) - 2.0f + 0.25f * (float) i;
	x[3] = NAN;
	x[20] = -0.0f;
	x[36] = -1.0f;
	for (int lv = NN_CONV_DIRECT_GENERIC; lv <= NN_CONV_DIRECT_AVX512; lv++)
	{
		int			ok = 1;
		float		z[37];

		nn_conv_direct_level = lv;
		nn_relu_forward(y, x, 37);
		memcpy(z, x, sizeof(z));
		nn_relu_forward(z, z, 37);
		for (int i = 0; i < 37; i++)
		{
			float		want = x[i] < 0.0f ? 0.0f : x[i];

			ok &= isnan(want) ? isnan(y[i]) && isnan(z[i]) :
				memcmp(&y[i], &want, sizeof(float)) == 0 && memcmp(&z[i], &want, sizeof(float)) == 0;
		}
		T_OK(ok, "relu at level %d: negatives to 0, NaN and -0 kept, in place too", lv);
		/* backward in place: the gradient (here 1 + i) only where the output is > 0 */
		for (int i = 0; i < 37; i++)
			z[i] = 1.0f + (float) i;
		nn_relu_backward_inplace(z, x, 37);
		ok = 1;
		for (int i = 0; i < 37; i++)
			ok &= z[i] == (x[i] > 0.0f ? 1.0f + (float) i : 0.0f);
		T_OK(ok, "relu backward in place at level %d: zero where the output is not > 0 (NaN, -0)", lv);
	}
	nn_conv_direct_level = level;
}

typedef struct relu_fd
{
	size_t		n;
	float	   *inp,
			   *out,
			   *R;
} relu_fd;

/* loss sum(relu(inp) * R) */
static double
relu_loss(void *p)
{
	relu_fd    *c = p;

	nn_relu_forward_ref(c->out, c->inp, c->n);
	return dot(c->out, c->R, c->n);
}

/* relu: fast vs reference, NaN, and finite differences. */
T_CASE(test_layer_relu)
{
	nn_rng		r;
	size_t		n = 1037;		/* not a multiple of any vector width */
	float	   *inp,
			   *out,
			   *out_ref,
			   *dout,
			   *dinp,
			   *dinp_ref,
			   *g;
	relu_fd		c;
	float		special[4] = {NAN, -0.0f, INFINITY, -INFINITY};
	float		sout[4];

	nn_rng_seed(&r, 31);
	inp = rand_floats(&r, n, 1.0f);
	/* keep every input at least 2h from the kink at 0 */
	for (size_t i = 0; i < n; i++)
		inp[i] += inp[i] < 0 ? -2 * FD_STEP : 2 * FD_STEP;
	out = malloc(sizeof(float) * n);
	out_ref = malloc(sizeof(float) * n);
	dout = rand_floats(&r, n, 1.0f);
	dinp = rand_floats(&r, n, 1.0f);
	dinp_ref = copy_floats(dinp, n);
	g = malloc(sizeof(float) * n);

	nn_relu_forward(out, inp, n);
	nn_relu_forward_ref(out_ref, inp, n);
	T_CLOSE(out, out_ref, n, 0, 0, "relu forward (exact)");
	nn_relu_backward(dinp, dout, out, n);
	nn_relu_backward_ref(dinp_ref, dout, out_ref, n);
	T_CLOSE(dinp, dinp_ref, n, 0, 0, "relu backward (exact)");

	/* in place (shared buffers): the same as accumulating into zeros */
	{
		float	   *d = copy_floats(dout, n);
		float	   *acc = calloc(n, sizeof(float));
		float	   *x = copy_floats(inp, n);

		nn_relu_backward_inplace(d, out, n);
		nn_relu_backward_ref(acc, dout, out_ref, n);
		T_CLOSE(d, acc, n, 0, 0, "relu backward in place (exact)");
		nn_relu_forward(x, x, n);
		T_CLOSE(x, out_ref, n, 0, 0, "relu forward in place (exact)");
		free(d);
		free(acc);
		free(x);
	}

	memset(dinp, 0, sizeof(float) * n);
	nn_relu_backward(dinp, dout, out, n);
	c.n = n;
	c.inp = inp;
	c.out = out_ref;
	c.R = dout;
	finite_diff(inp, n, FD_STEP, relu_loss, &c, g);
	T_CLOSE(dinp, g, n, FD_ATOL, FD_RTOL, "relu dinp vs finite differences");

	nn_relu_forward(sout, special, 4);
	T_OK(isnan(sout[0]), "relu(NaN) is NaN");
	T_OK(sout[1] == 0.0f && sout[2] == INFINITY && sout[3] == 0.0f,
		 "relu(-0, inf, -inf) = 0, inf, 0: got %g %g %g", sout[1], sout[2], sout[3]);

	free(inp);
	free(out);
	free(out_ref);
	free(dout);
	free(dinp);
	free(dinp_ref);
	free(g);
}

/* ------------------------------------------------------------------ dense */

typedef struct dense_fd
{
	int			B,
				I,
				N;
	float	   *inp,
			   *w,
			   *bias,
			   *out,
			   *R;
} dense_fd;

/* loss sum(dense(inp) * R) */
static double
dense_loss(void *p)
{
	dense_fd   *c = p;

	nn_dense_forward_ref(c->out, c->inp, c->w, c->bias, c->B, c->I, c->N);
	return dot(c->out, c->R, (size_t) c->B * c->N);
}

/* dense: fast vs reference (with and without dinp) and finite differences. */
T_CASE(test_layer_dense)
{
	static const int shapes[][3] = {{1, 7, 3}, {5, 16, 10}, {8, 1600, 12}, {3, 33, 65}};
	nn_rng		r;

	nn_rng_seed(&r, 41);
	for (int t = 0; t < 4; t++)
	{
		int			B = shapes[t][0],
					I = shapes[t][1],
					N = shapes[t][2];
		size_t		nin = (size_t) B * I,
					nw = (size_t) N * I,
					nout = (size_t) B * N;
		dense_fd	c;
		float	   *out = malloc(sizeof(float) * nout);
		float	   *dinp,
				   *dw,
				   *db,
				   *dinp_ref,
				   *dw_ref,
				   *db_ref,
				   *dw2,
				   *db2,
				   *g;
		char		what[128];

		c.B = B;
		c.I = I;
		c.N = N;
		c.inp = rand_floats(&r, nin, 1.0f);
		c.w = rand_floats(&r, nw, 1.0f);
		c.bias = rand_floats(&r, N, 1.0f);
		c.R = rand_floats(&r, nout, 1.0f);
		c.out = malloc(sizeof(float) * nout);
		dinp = rand_floats(&r, nin, 1.0f);
		dw = rand_floats(&r, nw, 1.0f);
		db = rand_floats(&r, N, 1.0f);
		dinp_ref = copy_floats(dinp, nin);
		dw_ref = copy_floats(dw, nw);
		db_ref = copy_floats(db, N);
		dw2 = copy_floats(dw, nw);
		db2 = copy_floats(db, N);
		g = malloc(sizeof(float) * (nin > nw ? nin : nw));

		nn_dense_forward(out, c.inp, c.w, c.bias, B, I, N);
		nn_dense_forward_ref(c.out, c.inp, c.w, c.bias, B, I, N);
		snprintf(what, sizeof(what), "dense %dx%d->%d: forward", B, I, N);
		T_CLOSE(out, c.out, nout, 1e-4, 1e-4, what);
		nn_dense_backward(dinp, dw, db, c.R, c.inp, c.w, B, I, N);
		nn_dense_backward_ref(dinp_ref, dw_ref, db_ref, c.R, c.inp, c.w, B, I, N);
		snprintf(what, sizeof(what), "dense %dx%d->%d: dinp", B, I, N);
		T_CLOSE(dinp, dinp_ref, nin, 1e-4, 1e-4, what);
		snprintf(what, sizeof(what), "dense %dx%d->%d: dweight", B, I, N);
		T_CLOSE(dw, dw_ref, nw, 1e-4, 1e-4, what);
		snprintf(what, sizeof(what), "dense %dx%d->%d: dbias", B, I, N);
		T_CLOSE(db, db_ref, N, 1e-4, 1e-4, what);
		nn_dense_backward(NULL, dw2, db2, c.R, c.inp, c.w, B, I, N);
		snprintf(what, sizeof(what), "dense %dx%d->%d: dweight without dinp", B, I, N);
		T_CLOSE(dw2, dw_ref, nw, 1e-4, 1e-4, what);
		snprintf(what, sizeof(what), "dense %dx%d->%d: dbias without dinp", B, I, N);
		T_CLOSE(db2, db_ref, N, 1e-4, 1e-4, what);

		if (I <= 64)
		{
			memset(dinp, 0, sizeof(float) * nin);
			memset(dw, 0, sizeof(float) * nw);
			memset(db, 0, sizeof(float) * N);
			nn_dense_backward(dinp, dw, db, c.R, c.inp, c.w, B, I, N);
			finite_diff(c.inp, nin, FD_STEP, dense_loss, &c, g);
			snprintf(what, sizeof(what), "dense %dx%d->%d: dinp vs finite differences", B, I, N);
			T_CLOSE(dinp, g, nin, FD_ATOL, FD_RTOL, what);
			finite_diff(c.w, nw, FD_STEP, dense_loss, &c, g);
			snprintf(what, sizeof(what), "dense %dx%d->%d: dweight vs finite differences", B, I, N);
			T_CLOSE(dw, g, nw, FD_ATOL, FD_RTOL, what);
			finite_diff(c.bias, N, FD_STEP, dense_loss, &c, g);
			snprintf(what, sizeof(what), "dense %dx%d->%d: dbias vs finite differences", B, I, N);
			T_CLOSE(db, g, N, FD_ATOL, FD_RTOL, what);
		}
		free(out);
		free(c.inp);
		free(c.w);
		free(c.bias);
		free(c.R);
		free(c.out);
		free(dinp);
		free(dw);
		free(db);
		free(dinp_ref);
		free(dw_ref);
		free(db_ref);
		free(dw2);
		free(db2);
		free(g);
	}
}

/* ---------------------------------------------------------------- dropout */

typedef struct dropout_fd
{
	size_t		n;
	float		rate;
	uint64_t	seed;
	float	   *inp,
			   *out,
			   *mask,
			   *R;
} dropout_fd;

/* loss sum(dropout(inp) * R), re-seeding so that every call draws the same mask */
static double
dropout_loss(void *p)
{
	dropout_fd *c = p;
	nn_rng		r;

	nn_rng_seed(&r, c->seed);
	nn_dropout_forward_ref(c->out, c->mask, c->inp, c->n, c->rate, &r);
	return dot(c->out, c->R, c->n);
}

/* dropout: same stream as the reference, mask values and rate, gradients. */
T_CASE(test_layer_dropout)
{
	size_t		n = 100000;
	nn_rng		r,
				r_ref,
				rd;
	float	   *inp,
			   *out,
			   *mask,
			   *out_ref,
			   *mask_ref,
			   *dout,
			   *dinp,
			   *dinp_ref,
			   *g;
	float		rate = 0.3f;
	float		keep = 1.0f / (1.0f - rate);
	size_t		kept = 0,
				bad = 0;
	dropout_fd	c;
	double		sd = sqrt(n * rate * (1.0 - rate));

	nn_rng_seed(&rd, 51);
	inp = rand_floats(&rd, n, 1.0f);
	dout = rand_floats(&rd, n, 1.0f);
	out = malloc(sizeof(float) * n);
	mask = malloc(sizeof(float) * n);
	out_ref = malloc(sizeof(float) * n);
	mask_ref = malloc(sizeof(float) * n);
	dinp = rand_floats(&rd, n, 1.0f);
	dinp_ref = copy_floats(dinp, n);
	g = malloc(sizeof(float) * n);

	nn_rng_seed(&r, 52);
	nn_rng_seed(&r_ref, 52);
	nn_dropout_forward(out, mask, inp, n, rate, &r);
	nn_dropout_forward_ref(out_ref, mask_ref, inp, n, rate, &r_ref);
	T_CLOSE(mask, mask_ref, n, 0, 0, "dropout mask equals the reference's (same draws)");
	T_CLOSE(out, out_ref, n, 0, 0, "dropout output equals the reference's");
	T_OK(memcmp(&r, &r_ref, sizeof(r)) == 0, "one draw per value, as the reference");
	for (size_t i = 0; i < n; i++)
	{
		if (mask[i] == keep)
			kept++;
		else if (mask[i] != 0.0f)
			bad++;
	}
	T_OK(bad == 0, "mask values are 0 or 1/(1-rate): %zu others", bad);
	/* kept ~ Binomial(n, 1-rate): allow 5 standard deviations */
	T_OK(fabs((double) kept - n * (1.0 - rate)) < 5 * sd,
		 "kept %zu of %zu, expected %.0f +- %.0f", kept, n, n * (1.0 - rate), 5 * sd);

	nn_dropout_backward(dinp, dout, mask, n);
	nn_dropout_backward_ref(dinp_ref, dout, mask_ref, n);
	T_CLOSE(dinp, dinp_ref, n, 0, 0, "dropout backward equals the reference's");

	/* rate 0 keeps everything unscaled */
	nn_dropout_forward(out, mask, inp, n, 0.0f, &r);
	T_CLOSE(out, inp, n, 0, 0, "dropout rate 0 is the identity");

	/* finite differences on a small slice, mask fixed by the seed */
	c.n = 500;
	c.rate = 0.5f;
	c.seed = 53;
	c.inp = inp;
	c.out = out_ref;
	c.mask = mask_ref;
	c.R = dout;
	dropout_loss(&c);
	memset(dinp, 0, sizeof(float) * c.n);
	nn_dropout_backward(dinp, dout, c.mask, c.n);
	finite_diff(inp, c.n, FD_STEP, dropout_loss, &c, g);
	T_CLOSE(dinp, g, c.n, FD_ATOL, FD_RTOL, "dropout dinp vs finite differences");

	free(inp);
	free(out);
	free(mask);
	free(out_ref);
	free(mask_ref);
	free(dout);
	free(dinp);
	free(dinp_ref);
	free(g);
}

/* ---------------------------------------------------------------- flatten */

/* flatten: PyTorch's (c,h,w) order by construction, round trip, reference. */
T_CASE(test_layer_flatten)
{
	int			B = 3,
				C = 4,
				H = 2,
				W = 5;
	size_t		n = (size_t) B * C * H * W;
	float	   *inp = malloc(sizeof(float) * n);
	float	   *out = malloc(sizeof(float) * n);
	float	   *out_ref = malloc(sizeof(float) * n);
	float	   *back = calloc(n, sizeof(float));
	float	   *dinp,
			   *dinp_ref,
			   *dout;
	size_t		wrong = 0;
	nn_rng		r;

	/* encode (c,b,h,w) in the value so the position can be checked */
	for (int c = 0; c < C; c++)
		for (int b = 0; b < B; b++)
			for (int h = 0; h < H; h++)
				for (int w = 0; w < W; w++)
					inp[((c * B + b) * H + h) * W + w] = (float) (1000 * c + 100 * b + 10 * h + w);
	nn_flatten_forward(out, inp, B, C, H, W);
	for (int b = 0; b < B; b++)
		for (int i = 0; i < C * H * W; i++)
		{
			int			c = i / (H * W),
						h = (i / W) % H,
						w = i % W;

			if (out[b * C * H * W + i] != (float) (1000 * c + 100 * b + 10 * h + w))
				wrong++;
		}
	T_OK(wrong == 0, "flatten puts (c,h,w) of sample b at b*CHW + (c*H+h)*W + w: %zu wrong", wrong);
	nn_flatten_forward_ref(out_ref, inp, B, C, H, W);
	T_CLOSE(out, out_ref, n, 0, 0, "flatten forward equals the reference");
	nn_flatten_backward(back, out, B, C, H, W);
	T_CLOSE(back, inp, n, 0, 0, "flatten backward inverts forward");

	nn_rng_seed(&r, 61);
	dout = rand_floats(&r, n, 1.0f);
	dinp = rand_floats(&r, n, 1.0f);
	dinp_ref = copy_floats(dinp, n);
	nn_flatten_backward(dinp, dout, B, C, H, W);
	nn_flatten_backward_ref(dinp_ref, dout, B, C, H, W);
	T_CLOSE(dinp, dinp_ref, n, 0, 0, "flatten backward accumulates like the reference");

	free(inp);
	free(out);
	free(out_ref);
	free(back);
	free(dout);
	free(dinp);
	free(dinp_ref);
}

/* ----------------------------------------------------------- softmax_xent */

typedef struct xent_fd
{
	int			B,
				K;
	float	   *logits,
			   *probs;
	int32_t    *labels;
} xent_fd;

/* the summed cross-entropy of the reference (double throughout) */
static double
xent_loss(void *p)
{
	xent_fd    *c = p;

	return nn_softmax_xent_forward_ref(c->probs, c->logits, c->labels, c->B, c->K);
}

/* softmax cross-entropy: reference, known values, stability, gradients. */
T_CASE(test_layer_softmax_xent)
{
	int			B = 6,
				K = 10;
	size_t		n = (size_t) B * K;
	nn_rng		r;
	float	   *logits,
			   *probs,
			   *probs_ref,
			   *dl,
			   *dl_ref,
			   *g;
	int32_t		labels[6];
	double		loss,
				loss_ref;
	xent_fd		c;
	float		big[3] = {1000.0f, -1000.0f, 999.0f};
	float		pbig[3];
	int32_t		lbig = 1;
	float		flat[4] = {2.5f, 2.5f, 2.5f, 2.5f};
	float		pflat[4];
	int32_t		lflat[1] = {3};

	nn_rng_seed(&r, 71);
	logits = rand_floats(&r, n, 4.0f);
	probs = malloc(sizeof(float) * n);
	probs_ref = malloc(sizeof(float) * n);
	dl = rand_floats(&r, n, 1.0f);
	dl_ref = copy_floats(dl, n);
	g = malloc(sizeof(float) * n);
	for (int b = 0; b < B; b++)
		labels[b] = (int32_t) nn_rng_below(&r, K);

	loss = nn_softmax_xent_forward(probs, logits, labels, B, K);
	loss_ref = nn_softmax_xent_forward_ref(probs_ref, logits, labels, B, K);
	T_CLOSE(probs, probs_ref, n, 1e-6, 1e-5, "softmax probs vs reference");
	T_OK(fabs(loss - loss_ref) <= 1e-5 * fabs(loss_ref),
		 "loss %.9g vs reference %.9g", loss, loss_ref);
	for (int b = 0; b < B; b++)
	{
		double		s = 0;

		for (int k = 0; k < K; k++)
			s += probs[b * K + k];
		T_OK(fabs(s - 1.0) < 1e-6, "row %d of probs sums to 1: %.9g", b, s);
	}

	nn_softmax_xent_backward(dl, probs, labels, B, K, 0.25f);
	nn_softmax_xent_backward_ref(dl_ref, probs_ref, labels, B, K, 0.25f);
	T_CLOSE(dl, dl_ref, n, 1e-6, 1e-5, "dlogits vs reference (accumulated, scale 1/4)");

	/* finite differences of the summed loss, scale 1 */
	memset(dl, 0, sizeof(float) * n);
	nn_softmax_xent_backward(dl, probs, labels, B, K, 1.0f);
	c.B = B;
	c.K = K;
	c.logits = logits;
	c.probs = probs_ref;
	c.labels = labels;
	finite_diff(logits, n, 1e-3f, xent_loss, &c, g);
	T_CLOSE(dl, g, n, 1e-5, 1e-4, "dlogits vs finite differences");

	/* equal logits: p = 1/K, loss = log K, whatever the label */
	loss = nn_softmax_xent_forward(pflat, flat, lflat, 1, 4);
	T_OK(fabs(loss - log(4.0)) < 1e-6, "equal logits give log(K): %.9g", loss);

	/* huge logits: no overflow; loss of label 1 is 2000 + log(1 + e^-1) */
	loss = nn_softmax_xent_forward(pbig, big, &lbig, 1, 3);
	T_OK(isfinite(loss) && fabs(loss - (2000.0 + log1p(exp(-1.0)))) < 1e-3,
		 "huge logits: loss %.9g finite and right", loss);
	T_OK(isfinite(pbig[0]) && pbig[1] == 0.0f && fabs(pbig[0] - 1.0 / (1.0 + exp(-1.0))) < 1e-6,
		 "huge logits: probs %g %g %g", pbig[0], pbig[1], pbig[2]);

	/* a label out of range gives a NaN loss, not a read out of bounds */
	labels[2] = K;
	loss = nn_softmax_xent_forward(probs, logits, labels, B, K);
	T_OK(isnan(loss), "label %d of %d classes gives a NaN loss: %g", K, K, loss);
	memset(dl, 0, sizeof(float) * n);
	nn_softmax_xent_backward(dl, probs, labels, B, K, 1.0f);
	T_CLOSE(dl + 2 * K, probs + 2 * K, K, 0, 0, "its dlogits are probs (no one-hot)");

	free(logits);
	free(probs);
	free(probs_ref);
	free(dl);
	free(dl_ref);
	free(g);
}
