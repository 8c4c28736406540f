/*
 * test_net.c: whole networks through nn_net_forward / nn_net_loss /
 * nn_net_backward (src/nn/net.c): finite-difference gradient checks of the
 * reference CNN and of small nets with stride, 'same' padding, overlapping
 * pooling and dropout; dropout's inference path, rate and reproducibility;
 * batch independence of the (C,B,H,W) layout.
 *
 * Gradient check. The loss is the mean cross-entropy over the batch, summed
 * in double by nn_net_loss from float32 logits. For a parameter p the
 * numerical derivative is (L(p+h) - L(p-h)) / (fl(p+h) - fl(p-h)); the
 * analytical one is nn_net_backward with scale 1/B. Two errors compete:
 * rounding of the float32 forward (about 1e-7 * |L| / 2h; it dominates at
 * h = 1e-4, where the median relative error rises to ~1e-3) and the kinks
 * of relu and max pooling (a first-layer weight of the reference CNN moves
 * B*26*26 relu inputs and pool winners; each crossing inside [p-h, p+h]
 * bends the loss; at h = 1e-2 a fifth of the parameters are hit). h = 1e-3
 * balances them. A parameter whose one-sided differences (L(p+h)-L(p))/h
 * and (L(p)-L(p-h))/h differ by more than FD_KINK relative is at a visible
 * kink and is not judged (at most FD_KINK_SHARE of them); the others must
 * satisfy |num - ana| <= FD_ATOL + FD_RTOL * max(|num|, |ana|) with atol
 * 2e-5 and rtol 5e-2 (measured worst: 2.2% on gradients of ~0.05 of the
 * reference CNN, where several small crossings can hide from the one-sided
 * test; larger relative errors only on gradients below ~1e-4, inside
 * atol), and the median relative error of the gradients that are not ~0
 * must be below 3e-3 (measured 5e-4 on the reference CNN, 1e-4 on the
 * small nets). Scaling one tensor's analytical gradient by 1.1 fails every
 * one of the three checks; a wrong index, a transposed weight or a missing
 * term gives relative errors of order 1.
 * (PyTorch's exact gradients for the reference CNN are in test_torch.c.)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "ops.h"
#include "t.h"

#define FD_STEP 1e-3f
#define FD_ATOL 2e-5
#define FD_RTOL 5e-2
#define FD_KINK_SHARE 0.10
#define FD_MEDIAN 3e-3
#define FD_KINK 0.05			/* one-sided slopes differing by more than 5% mean a kink */
#define FD_RESOLVE 4			/* loss changes of at most 4 ulps of the loss are below resolution */
#define FD_PER_TENSOR 25		/* reference CNN: 25 per tensor, 8 tensors = 200 */

/* a net, its parameters and a batch */
typedef struct net_case
{
	nn_net		net;
	float	   *params;
	float	   *buffers;		/* running statistics (batch norm) */
	float	   *input;			/* (C,B,H,W) */
	int32_t    *labels;
	int			B;
	nn_work		w;
	uint64_t	drop_seed;		/* dropout masks: the same stream for every evaluation */
	int			train;			/* forward in training mode (dropout active) */
} net_case;

/* Build spec on in/classes with random parameters and a random batch of B. */
static int
case_init(net_case *c, const char *spec, nn_shape in, int classes, int B, uint64_t seed)
{
	nn_status	st = {0};
	nn_rng		rng;
	size_t		nin;

	memset(c, 0, sizeof(*c));
	if (!T_OK(nn_net_build(&c->net, spec, in, classes, &st) == NN_OK, "\"%s\" builds: %s", spec, st.msg))
		return 0;
	if (!T_OK(nn_work_alloc(&c->w, &c->net, B, 1, &nn_malloc_allocator, &st) == NN_OK,
			  "work for \"%s\" allocates: %s", spec, st.msg))
		return 0;
	nn_rng_seed(&rng, seed);
	c->B = B;
	c->params = malloc(sizeof(float) * c->net.nparams);
	c->buffers = malloc(sizeof(float) * (c->net.nbuffers + 1));
	nn_net_init_params(&c->net, c->params, c->buffers, &rng);
	/* non-zero biases, so that their gradients and layout are exercised */
	for (int i = 0; i < c->net.nlayers; i++)
		for (size_t k = 0; k < c->net.layers[i].b_len; k++)
			c->params[c->net.layers[i].b_off + k] = 0.1f * nn_rng_normal(&rng);
	nin = (size_t) in.h * in.w * in.c * B;
	c->input = malloc(sizeof(float) * nin);
	for (size_t k = 0; k < nin; k++)
		c->input[k] = nn_rng_uniform(&rng);
	c->labels = malloc(sizeof(int32_t) * B);
	for (int b = 0; b < B; b++)
		c->labels[b] = (int32_t) nn_rng_below(&rng, (uint32_t) classes);
	c->drop_seed = seed + 1;
	return 1;
}

/* free a case */
static void
case_free(net_case *c)
{
	nn_work_free(&c->w, &nn_malloc_allocator);
	free(c->params);
	free(c->buffers);
	free(c->input);
	free(c->labels);
}

/* Mean loss at the current parameters (dropout masks redrawn from the same seed). */
static double
case_loss(net_case *c)
{
	nn_rng		rng;

	nn_rng_seed(&rng, c->drop_seed);
	memcpy(c->w.act[0], c->input, sizeof(float) * (size_t) c->net.input.h * c->net.input.w *
		   c->net.input.c * c->B);
	nn_net_forward(&c->net, c->params, c->buffers, &c->w, c->B, c->train, c->train ? &rng : NULL, NULL);
	return nn_net_loss(&c->net, &c->w, c->labels, c->B, NULL, NULL) / c->B;
}

/* Analytical gradient of the mean loss into grads (zeroed first). */
static void
case_grads(net_case *c, float *grads)
{
	case_loss(c);
	memset(grads, 0, sizeof(float) * c->net.nparams);
	nn_net_backward(&c->net, c->params, grads, &c->w, c->B, 1.0f / c->B, NULL);
}

/* compare doubles for qsort */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * Check the gradient at the parameter indices idx[0..n) by central
 * differences; asserts and prints the largest and median relative errors.
 * A parameter whose one-sided differences disagree (a kink between p-h and
 * p+h) is counted as a kink instead of being judged.
 */
static void
grad_check(net_case *c, const size_t *idx, int n, const char *what)
{
	float	   *grads = malloc(sizeof(float) * c->net.nparams);
	double	   *rel = malloc(sizeof(double) * n);
	int			misses = 0,
				kinks = 0,
				unresolved = 0,
				judged = 0,
				nonzero = 0;
	double		worst = 0,
				worst_num = 0,
				worst_ana = 0,
				l0;
	size_t		worst_at = 0;

	case_grads(c, grads);
	l0 = case_loss(c);
	for (int k = 0; k < n; k++)
	{
		size_t		i = idx[k];
		float		x = c->params[i],
					xp = x + FD_STEP,
					xm = x - FD_STEP;
		double		lp,
					lm,
					num,
					fwd,
					bwd,
					ana = grads[i],
					scale,
					lim,
					res;

		c->params[i] = xp;
		lp = case_loss(c);
		c->params[i] = xm;
		lm = case_loss(c);
		c->params[i] = x;
		num = (lp - lm) / ((double) xp - (double) xm);
		fwd = (lp - l0) / ((double) xp - (double) x);
		bwd = (l0 - lm) / ((double) x - (double) xm);
		scale = fmax(fabs(num), fabs(ana));
		lim = FD_ATOL + FD_RTOL * scale;
		/*
		 * A float loss resolves changes of an ulp or so: when the step moved
		 * it by a few ulps only and the analytical gradient agrees that it
		 * should not move more, the difference quotient is rounding noise
		 * (counted apart, not judged). A gradient that predicts a
		 * larger move is still judged.
		 */
		res = FD_RESOLVE * (double) (nextafterf((float) fabs(l0), INFINITY) - (float) fabs(l0));
		if (fabs(lp - lm) <= res && fabs(ana) * ((double) xp - (double) xm) <= 2 * res)
		{
			unresolved++;
			continue;
		}
		if (fabs(fwd - bwd) > FD_KINK * fmax(fabs(fwd), fabs(bwd)) + FD_ATOL)
		{
			kinks++;
			continue;
		}
		judged++;
		if (!(fabs(num - ana) <= lim))
			misses++;
		if (!(scale > FD_ATOL))
			continue;			/* both ~0 (dead units, unselected pool inputs) */
		rel[nonzero++] = fabs(num - ana) / scale;
		if (rel[nonzero - 1] > worst || isnan(rel[nonzero - 1]))
		{
			worst = rel[nonzero - 1];
			worst_at = i;
			worst_num = num;
			worst_ana = ana;
		}
	}
	qsort(rel, nonzero, sizeof(double), cmp_double);
	printf("# %s: %d parameters, %d skipped at kinks, %d below the loss's resolution, %d with a gradient above %g; largest relative error %.3g (param %zu: numerical %.6g analytical %.6g), median %.3g\n",
		   what, n, kinks, unresolved, nonzero, FD_ATOL, worst, worst_at, worst_num, worst_ana, nonzero ? rel[nonzero / 2] : NAN);
	T_OK(kinks <= (int) (FD_KINK_SHARE * n), "%s: %d of %d parameters at kinks (at most %d)",
		 what, kinks, n, (int) (FD_KINK_SHARE * n));
	T_OK(misses == 0, "%s: all %d smooth gradients within atol %g + rtol %g (%d are not)",
		 what, judged, FD_ATOL, FD_RTOL, misses);
	T_OK(nonzero >= n / 4, "%s: %d of %d gradients are not ~0", what, nonzero, n);
	T_OK(nonzero > 0 && rel[nonzero / 2] < FD_MEDIAN, "%s: median relative error of the non-zero gradients %.3g < %g",
		 what, nonzero ? rel[nonzero / 2] : NAN, FD_MEDIAN);
	free(grads);
	free(rel);
}

/* Check every parameter of a (small) case. */
static void
grad_check_all(net_case *c, const char *what)
{
	size_t	   *idx = malloc(sizeof(size_t) * c->net.nparams);

	for (size_t i = 0; i < c->net.nparams; i++)
		idx[i] = i;
	grad_check(c, idx, (int) c->net.nparams, what);
	free(idx);
}

T_CASE(test_net_gradcheck_reference_cnn)
{
	net_case	c;
	nn_shape	in = {28, 28, 1};
	size_t		idx[16 * FD_PER_TENSOR];
	int			n = 0;
	nn_rng		rng;

	if (case_init(&c, NN_REFERENCE_SPEC, in, 10, 4, 101))
	{
		/* FD_PER_TENSOR random entries of every weight and bias tensor */
		nn_rng_seed(&rng, 7);
		for (int i = 0; i < c.net.nlayers; i++)
		{
			const nn_layer *L = &c.net.layers[i];

			for (int k = 0; L->w_len && k < FD_PER_TENSOR; k++)
				idx[n++] = L->w_off + nn_rng_below(&rng, (uint32_t) L->w_len);
			for (int k = 0; L->b_len && k < FD_PER_TENSOR; k++)
				idx[n++] = L->b_off + nn_rng_below(&rng, (uint32_t) L->b_len);
		}
		T_OK(n == 8 * FD_PER_TENSOR, "%d parameters sampled from 8 tensors", n);
		grad_check(&c, idx, n, "reference CNN");
	}
	case_free(&c);
}

T_CASE(test_net_gradcheck_stride_same_pool)
{
	net_case	c;
	nn_shape	in = {11, 9, 2};

	/* 11x9x2 -> conv stride 2: 5x4x4 -> same: 5x4x6 -> pool 3/2: 2x1x6 -> 12 -> 8 -> 5 */
	if (case_init(&c, "conv(4,3,2) relu conv(6,3,same) relu maxpool(3,2) flatten dense(8) relu dense(5)",
				  in, 5, 3, 202))
	{
		T_OK(c.net.nparams == 76 + 222 + 104 + 45, "447 parameters (got %zu)", c.net.nparams);
		grad_check_all(&c, "stride/same/overlapping-pool net");
	}
	case_free(&c);
}

T_CASE(test_net_gradcheck_pointwise_and_dropout)
{
	net_case	c;
	nn_shape	in = {8, 7, 3};

	/*
	 * 1x1 conv (no im2col, backward reads the input), dropout in training
	 * mode: every evaluation redraws the same masks from the same seed, so
	 * the loss is a fixed function of the parameters
	 */
	if (case_init(&c, "conv(5,1) relu conv(4,3) relu dropout(0.3) maxpool(2) dense(6) relu dropout(0.5) dense(3)",
				  in, 3, 4, 303))
	{
		c.train = 1;
		grad_check_all(&c, "1x1 conv + dropout net (training mode)");
	}
	case_free(&c);
}

T_CASE(test_net_backward_accumulates)
{
	net_case	c;
	nn_shape	in = {11, 9, 2};

	if (case_init(&c, "conv(4,3,2) relu conv(6,3,same) relu maxpool(3,2) dense(5)", in, 5, 3, 404))
	{
		float	   *g1 = malloc(sizeof(float) * c.net.nparams),
				   *g2 = malloc(sizeof(float) * c.net.nparams);

		case_grads(&c, g1);
		case_grads(&c, g2);
		/*
		 * a second forward and backward without zeroing: grads += the same
		 * values (backward consumes what its forward kept: the planner may
		 * give that memory to the last nodes' backward scratch)
		 */
		case_loss(&c);
		nn_net_backward(&c.net, c.params, g2, &c.w, c.B, 1.0f / c.B, NULL);
		for (size_t i = 0; i < c.net.nparams; i++)
			g1[i] *= 2.0f;
		T_CLOSE(g2, g1, c.net.nparams, 1e-7, 1e-6, "two backward passes accumulate to twice the gradient");
		free(g1);
		free(g2);
	}
	case_free(&c);
}

T_CASE(test_net_batch_independence)
{
	net_case	c;
	nn_shape	in = {12, 10, 3};
	const int	B = 5;

	if (case_init(&c, "conv(6,3) relu maxpool(2) conv(4,3,same) relu flatten dense(7) relu dense(4)", in, 4, B, 505))
	{
		float		all[5 * 4],
					one[5 * 4];
		size_t		hw = (size_t) in.h * in.w;
		nn_work		w1;
		nn_status	st = {0};

		case_loss(&c);
		memcpy(all, c.w.act[c.net.nlayers], sizeof(all));
		/* each image alone, through a work of capacity 1 */
		if (T_OK(nn_work_alloc(&w1, &c.net, 1, 0, &nn_malloc_allocator, &st) == NN_OK, "work of 1: %s", st.msg))
		{
			for (int b = 0; b < B; b++)
			{
				for (int ch = 0; ch < in.c; ch++)
					memcpy(w1.act[0] + ch * hw, c.input + ((size_t) ch * B + b) * hw, sizeof(float) * hw);
				nn_net_forward(&c.net, c.params, NULL, &w1, 1, 0, NULL, NULL);
				memcpy(one + b * 4, w1.act[c.net.nlayers], sizeof(float) * 4);
			}
			T_CLOSE(one, all, (size_t) B * 4, 1e-5, 1e-4,
					"logits of a batch of 5 in (C,B,H,W) equal the 5 images one at a time");
			nn_work_free(&w1, &nn_malloc_allocator);
		}
	}
	case_free(&c);
}

/* nn_parts_run that runs the parts one after another */
static void
run_serially(nn_part_fn fn, void *ctx, int nparts, void *run_ctx)
{
	for (int p = 0; p < nparts; p++)
		fn(ctx, p);
}

/*
 * Inference through a frozen work (the filters' Winograd transform kept
 * from the first pass) and split into parts gives the logits of one plain
 * pass over the whole batch.
 */
T_CASE(test_net_forward_frozen_and_split)
{
	net_case	c;
	nn_shape	in = {10, 10, 1};
	enum
	{
		B = 23, K = 5, PARTS = 3
	};

	if (case_init(&c, "conv(16,3) relu conv(16,3,1,same) relu maxpool(2) flatten dense(5)", in, K, 1, 506))
	{
		nn_norm		norm = {NN_NORM_MINMAX, 0, 1, NN_DTYPE_UINT8};
		uint8_t		pix[B][100];
		const uint8_t *rows[B];
		float		ref[B * K],
					again[B * K];
		nn_work		plain,
					frozen,
					parts[PARTS];
		nn_work    *w[PARTS];
		nn_status	st = {0};
		nn_rng		r;
		int			ok = 1;

		nn_rng_seed(&r, 77);
		for (int b = 0; b < B; b++)
		{
			for (int k = 0; k < 100; k++)
				pix[b][k] = (uint8_t) nn_rng_below(&r, 256);
			rows[b] = pix[b];
		}
		T_OK(strcmp(nn_conv_path(&c.net.layers[2]), "winograd") == 0, "the second convolution runs on Winograd");
		ok &= nn_work_alloc(&plain, &c.net, B, 0, &nn_malloc_allocator, &st) == NN_OK;
		ok &= nn_work_alloc(&frozen, &c.net, B, NN_WORK_FROZEN, &nn_malloc_allocator, &st) == NN_OK;
		for (int p = 0; p < PARTS; p++)
		{
			ok &= nn_work_alloc(&parts[p], &c.net, p == 0 ? B : (B + PARTS - 1) / PARTS, NN_WORK_FROZEN,
								&nn_malloc_allocator, &st) == NN_OK;
			w[p] = &parts[p];
		}
		if (T_OK(ok, "the works allocate: %s", st.msg))
		{
			nn_load_pixels(plain.act[0], rows, B, in, &norm);
			nn_net_forward(&c.net, c.params, NULL, &plain, B, 0, NULL, NULL);
			memcpy(ref, plain.act[c.net.nlayers], sizeof(ref));

			for (int pass = 0; pass < 2; pass++)
			{
				nn_load_pixels(frozen.act[0], rows, B, in, &norm);
				nn_net_forward(&c.net, c.params, NULL, &frozen, B, 0, NULL, NULL);
				memcpy(again, frozen.act[c.net.nlayers], sizeof(again));
				T_OK(memcmp(again, ref, sizeof(ref)) == 0, "frozen work, pass %d: the plain pass's logits", pass + 1);
			}
			T_OK(nn_net_forward_split(&c.net, c.params, NULL, w, PARTS, rows, B, &norm, NULL,
									  run_serially, NULL) == NN_OK, "the split pass runs");
			T_CLOSE(parts[0].act[c.net.nlayers], ref, (size_t) B * K, 1e-6, 1e-5,
					"23 images split into 3 parts: the logits of one pass, in row order");
		}
		nn_work_free(&plain, &nn_malloc_allocator);
		nn_work_free(&frozen, &nn_malloc_allocator);
		for (int p = 0; p < PARTS; p++)
			nn_work_free(&parts[p], &nn_malloc_allocator);
	}
	case_free(&c);
}

/* ---------------------------------------------------------------- dropout */

T_CASE(test_net_dropout_inference_is_identity)
{
	net_case	c,
				d;
	nn_shape	in = {10, 10, 2};

	if (case_init(&c, "conv(4,3) relu maxpool(2) dense(6) relu dense(3)", in, 3, 6, 606) &&
		case_init(&d, "conv(4,3) relu dropout(0.4) maxpool(2) dropout(0.25) dense(6) relu dropout(0.5) dense(3)",
				  in, 3, 6, 606))
	{
		const float *lc,
				   *ld;
		double		loss_c,
					loss_d;

		T_OK(c.net.nparams == d.net.nparams, "dropout adds no parameters (%zu vs %zu)", c.net.nparams, d.net.nparams);
		memcpy(d.params, c.params, sizeof(float) * c.net.nparams);
		loss_c = case_loss(&c);
		loss_d = case_loss(&d);
		lc = c.w.act[c.net.nlayers];
		ld = d.w.act[d.net.nlayers];
		T_CLOSE(ld, lc, 6 * 3, 0, 0, "inference forward with dropout layers equals the net without them (bitwise)");
		T_OK(loss_c == loss_d, "same loss %.9g vs %.9g", loss_c, loss_d);
		/* training flag without an rng: dropout stays off too */
		memcpy(d.w.act[0], d.input, sizeof(float) * 10 * 10 * 2 * 6);
		nn_net_forward(&d.net, d.params, NULL, &d.w, 6, 1, NULL, NULL);
		T_CLOSE(d.w.act[d.net.nlayers], lc, 6 * 3, 0, 0, "train=1 with rng NULL is the inference path");
		T_OK(d.w.dropout_active == 0, "no dropout masks drawn without an rng");
		/* training mode with an rng changes the logits */
		d.train = 1;
		case_loss(&d);
		T_OK(d.w.dropout_active == 1, "training forward with an rng draws masks");
		T_OK(memcmp(d.w.act[d.net.nlayers], lc, sizeof(float) * 6 * 3) != 0, "training-mode dropout changes the logits");
	}
	case_free(&c);
	case_free(&d);
}

/* share of zeros in the dropout mask of layer li, and check out == inp * mask */
static double
dropout_zero_share(net_case *c, int li, float rate, int *consistent)
{
	const nn_layer *L = &c->net.layers[li];
	size_t		n = (size_t) L->out.h * L->out.w * L->out.c * c->B;
	size_t		zeros = 0;
	float		keep = 1.0f / (1.0f - rate);

	*consistent = 1;
	for (size_t k = 0; k < n; k++)
	{
		float		m = c->w.mask[li][k];

		if (m == 0.0f)
			zeros++;
		else if (m != keep)
			*consistent = 0;
		if (c->w.act[li + 1][k] != c->w.act[li][k] * m)
			*consistent = 0;
	}
	return (double) zeros / (double) n;
}

T_CASE(test_net_dropout_rate_and_seed)
{
	net_case	c;
	nn_shape	in = {28, 28, 1};

	/*
	 * dropout(0.3) after 4x26x26x8 = 21632 activations, dropout(0.5) after
	 * 4*64; each after its relu, since a relu that follows works in place
	 * and would overwrite the dropout's output
	 */
	if (case_init(&c, "conv(8,3) relu dropout(0.3) maxpool(2) dense(64) relu dropout(0.5) dense(10)", in, 10, 4, 707))
	{
		int			consistent;
		double		share;
		float	   *logits1 = malloc(sizeof(float) * 40),
				   *mask1 = malloc(sizeof(float) * 21632);

		/* the planner reuses a dropout's output once the next layer ran: keep everything to look */
		nn_work_free(&c.w, &nn_malloc_allocator);
		nn_work_alloc(&c.w, &c.net, c.B, 1 | NN_WORK_KEEP_ALL, &nn_malloc_allocator, NULL);
		c.train = 1;
		case_loss(&c);
		T_OK(c.net.layers[2].kind == NN_DROPOUT && c.w.mask[2] != NULL, "layer 3 is dropout with a mask");
		share = dropout_zero_share(&c, 2, 0.3f, &consistent);
		/* binomial: sd sqrt(0.21 / 21632) = 0.0031; bound 0.02 is > 6 sd */
		T_OK(fabs(share - 0.3) < 0.02, "dropout(0.3) zeroes %.4f of 21632 activations (0.28..0.32)", share);
		T_OK(consistent, "mask is 0 or 1/(1-0.3), output = input * mask");
		share = dropout_zero_share(&c, 7, 0.5f, &consistent);
		/* 256 values: sd 0.031, bound 0.15 */
		T_OK(c.net.layers[7].kind == NN_DROPOUT && fabs(share - 0.5) < 0.15,
			 "dropout(0.5) zeroes %.3f of 256 activations", share);
		T_OK(consistent, "mask is 0 or 2, output = input * mask");

		/* same seed: same masks and logits; another seed: different masks */
		memcpy(logits1, c.w.act[c.net.nlayers], sizeof(float) * 40);
		memcpy(mask1, c.w.mask[2], sizeof(float) * 21632);
		case_loss(&c);
		T_OK(memcmp(mask1, c.w.mask[2], sizeof(float) * 21632) == 0 &&
			 memcmp(logits1, c.w.act[c.net.nlayers], sizeof(float) * 40) == 0,
			 "the same seed gives the same masks and logits");
		c.drop_seed += 1000;
		case_loss(&c);
		T_OK(memcmp(mask1, c.w.mask[2], sizeof(float) * 21632) != 0, "another seed gives other masks");
		free(logits1);
		free(mask1);
	}
	case_free(&c);
}

/* ---------------------------------------------------- the graph's new ops */

/* Random parameters of every batch norm and random running statistics (evaluation mode). */
static void
case_randomize_norms(net_case *c, uint64_t seed)
{
	nn_rng		rng;

	nn_rng_seed(&rng, seed);
	for (int i = 0; i < c->net.nlayers; i++)
	{
		const nn_layer *L = &c->net.layers[i];

		if (L->kind != NN_BATCHNORM)
			continue;
		for (int k = 0; k < L->in.c; k++)
		{
			c->params[L->w_off + k] = 0.5f + nn_rng_uniform(&rng);
			c->buffers[L->buf_off + k] = 0.2f * nn_rng_normal(&rng);
			c->buffers[L->buf_off + L->in.c + k] = 0.5f + nn_rng_uniform(&rng);
		}
	}
}

T_CASE(test_net_gradcheck_average_pools)
{
	net_case	c;
	nn_shape	in = {12, 10, 2};

	if (case_init(&c, "conv(4,3) relu avgpool(2) conv(6,3,1,same) relu avgpool(3,2) globalavgpool dense(5)", in, 5, 3, 811))
		grad_check_all(&c, "avgpool + globalavgpool net");
	case_free(&c);
}

T_CASE(test_net_gradcheck_batchnorm_training)
{
	net_case	c;
	nn_shape	in = {9, 8, 2};

	/* the batch's statistics: every image's gradient depends on every other's */
	if (case_init(&c, "conv(4,3) batchnorm relu conv(5,3,same) batchnorm flatten dense(6) batchnorm relu dense(3)",
				  in, 3, 6, 812))
	{
		c.train = 1;
		case_randomize_norms(&c, 5);
		grad_check_all(&c, "batch norm (training mode: batch statistics)");
	}
	case_free(&c);
}

T_CASE(test_net_gradcheck_batchnorm_evaluation)
{
	net_case	c;
	nn_shape	in = {9, 8, 2};

	if (case_init(&c, "conv(4,3) batchnorm relu conv(5,3,same) batchnorm flatten dense(6) batchnorm relu dense(3)",
				  in, 3, 4, 813))
	{
		case_randomize_norms(&c, 6);
		grad_check_all(&c, "batch norm (evaluation mode: running statistics)");
	}
	case_free(&c);
}

T_CASE(test_net_gradcheck_residual)
{
	net_case	c;
	nn_shape	in = {10, 10, 2};

	/*
	 * an identity shortcut, then a strided block with a projection
	 * shortcut. (A relu on both sides of a batch norm that also feeds a
	 * shortcut puts many kinks in reach of the finite differences, and a
	 * bias right before a batch norm has exactly no gradient, which float32
	 * differences see as noise of ~2e-5: both are avoided here; the PyTorch
	 * fixture of test_torch.c checks a ResNet block as usual.)
	 */
	if (case_init(&c, "conv(4,3,1,same) residual(batchnorm conv(4,3,1,same) relu conv(4,3,1,same)) relu "
				  "residual(conv(6,3,2,1) relu batchnorm conv(6,3,1,same)) globalavgpool dense(4)", in, 4, 4, 814))
	{
		int			proj = 0,
					adds = 0;

		for (int i = 0; i < c.net.nlayers; i++)
		{
			proj += c.net.layers[i].role == NN_ROLE_PROJECTION;
			adds += c.net.layers[i].kind == NN_ADD;
		}
		T_OK(proj == 1 && adds == 2, "two residual adds, one projection shortcut (%d, %d)", adds, proj);
		c.train = 1;
		grad_check_all(&c, "residual net with batch norm (training mode)");
	}
	case_free(&c);
}

T_CASE(test_net_gradcheck_concat_and_groups)
{
	net_case	c;
	nn_shape	in = {8, 8, 3};

	/* a branch read twice (from), channels joined, grouped and depthwise convolutions */
	if (case_init(&c, "a: conv(6,3,1,same) relu b: conv(4,1) from(a) c: conv(6,3,1,same,groups=3) relu "
				  "conv(6,3,1,same,groups=6) d: relu concat(b, d) maxpool(2) dense(3)", in, 3, 3, 815))
	{
		T_OK(c.net.nparams == (6 * 27 + 6) + (4 * 6 + 4) + (6 * 18 + 6) + (6 * 9 + 6) + (3 * 160 + 3),
			 "grouped weights are (OC, C/G, K, K): %zu parameters", c.net.nparams);
		grad_check_all(&c, "concat, from() and grouped convolutions");
	}
	case_free(&c);
}

/* nn_parts_run that runs the parts one after another */
static void
run_serial(nn_part_fn fn, void *ctx, int nparts, void *run_ctx)
{
	for (int p = 0; p < nparts; p++)
		fn(ctx, p);
}

T_CASE(test_net_batchnorm_parts_are_one_batch)
{
	/*
	 * a batch split into parts of 1, 2 and 3 images normalises with the
	 * whole batch's statistics: the same logits, gradients and running
	 * statistics as the batch in one piece (up to the order of the sums)
	 */
	net_case	c;
	nn_shape	in = {7, 7, 2};
	enum
	{
		B = 6, K = 3
	};
	const int	sizes[3] = {1, 2, 3};

	if (case_init(&c, "conv(3,3) batchnorm relu flatten dense(4) batchnorm dense(3)", in, K, B, 816))
	{
		nn_work		w[3];
		nn_work    *wp[3];
		nn_rng	   *rng[3] = {NULL, NULL, NULL};
		nn_timing  *t[3] = {NULL, NULL, NULL};
		float	   *g_whole = calloc(c.net.nparams, sizeof(float)),
				   *g_sum = calloc(c.net.nparams, sizeof(float)),
				   *g_parts[3];
		float	   *buf_parts = malloc(sizeof(float) * c.net.nbuffers);
		float		logits[B * K],
					plogits[B * K];
		size_t		hw = (size_t) in.h * in.w;
		int			at = 0,
					ok = 1;
		nn_status	st = {0};

		memcpy(buf_parts, c.buffers, sizeof(float) * c.net.nbuffers);
		c.train = 1;
		case_loss(&c);
		memcpy(logits, c.w.act[c.net.nlayers], sizeof(logits));
		nn_net_backward(&c.net, c.params, g_whole, &c.w, B, 1.0f / B, NULL);
		for (int p = 0; p < 3; p++)
		{
			ok &= nn_work_alloc(&w[p], &c.net, sizes[p], 1, &nn_malloc_allocator, &st) == NN_OK;
			wp[p] = &w[p];
			g_parts[p] = calloc(c.net.nparams, sizeof(float));
			for (int ch = 0; ch < in.c; ch++)
				memcpy(w[p].act[0] + (size_t) ch * sizes[p] * hw, c.input + ((size_t) ch * B + at) * hw,
					   sizeof(float) * sizes[p] * hw);
			at += sizes[p];
		}
		T_OK(ok && nn_net_forward_parts(&c.net, c.params, buf_parts, wp, sizes, 3, rng, t, run_serial, NULL) == NN_OK,
			 "the forward pass in three parts runs");
		at = 0;
		for (int p = 0; p < 3; p++)
		{
			memcpy(plogits + at * K, w[p].act[c.net.nlayers], sizeof(float) * sizes[p] * K);
			nn_net_loss(&c.net, &w[p], c.labels + at, sizes[p], NULL, NULL);
			at += sizes[p];
		}
		T_CLOSE(plogits, logits, B * K, 1e-5, 1e-5, "logits of the parts = logits of the whole batch");
		T_OK(nn_net_backward_parts(&c.net, c.params, g_parts, wp, sizes, 3, 1.0f / B, t, run_serial, NULL) == NN_OK,
			 "the backward pass in three parts runs");
		for (int p = 0; p < 3; p++)
			for (size_t k = 0; k < c.net.nparams; k++)
				g_sum[k] += g_parts[p][k];
		T_CLOSE(g_sum, g_whole, c.net.nparams, 1e-6, 1e-4, "the parts' gradients add up to the whole batch's");
		T_CLOSE(buf_parts, c.buffers, c.net.nbuffers, 1e-6, 1e-5, "running statistics updated once, as by the whole batch");
		T_OK(buf_parts[2 * 3] == 1.0f, "num_batches_tracked counts one batch (%g)", buf_parts[2 * 3]);
		free(g_whole);
		free(g_sum);
		for (int p = 0; p < 3; p++)
		{
			nn_work_free(&w[p], &nn_malloc_allocator);
			free(g_parts[p]);
		}
		free(buf_parts);
	}
	case_free(&c);
}
