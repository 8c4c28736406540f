/*
 * test_bound.c: the resource bound of a network (nn_net_bound), the tiled
 * matrix products behind it, and the interrupt checks of every phase.
 *
 * The bound is the measure pass of the allocator's own plan, so its bytes
 * must equal what nn_work_alloc takes; hostile shapes (the forged models
 * of the hostile-models issue) must come out as huge figures or as
 * NN_ERR_LIMIT, never as a wrapped small number. Tiling a large product
 * must not change the result beyond rounding. And a host that asks the core to stop
 * must be obeyed in each phase of training and in a forward pass.
 * (Tiles are bitwise equal to one call where OpenBLAS keeps its kernel:
 * products with a transposed right operand pick other kernels for thin
 * tiles and round differently; the tiling depends only on the shapes, so
 * results stay deterministic either way.)
 */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "train.h"

/* build spec on input h x w x c with classes, or fail the test */
static int
build(nn_net *net, const char *spec, int h, int w, int c, int classes)
{
	nn_status	st = {0};
	nn_shape	in = {h, w, c};

	return T_OK(nn_net_build(net, spec, in, classes, &st) == NN_OK, "\"%s\" on %dx%dx%d builds: %s",
				spec, h, w, c, st.msg);
}

T_CASE(test_bound_reference_cnn)
{
	nn_net		net;
	nn_bound	b;
	nn_status	st = {0};
	/* by hand: conv1 26*26*32*9, relu, pool 13*13*32*4, conv2 11*11*64*288, relu, pool 5*5*64*4, flatten, dense 128*1600, relu, dense 10*128 */
	uint64_t	macs = 194688 + 21632 + 21632 + 2230272 + 7744 + 6400 + 1600 + 204800 + 128 + 1280;

	if (!build(&net, NN_REFERENCE_SPEC, 28, 28, 1, 10))
		return;
	T_OK(net.per_image.macs == macs, "one image costs %llu multiply-adds (by hand %llu)",
		 (unsigned long long) net.per_image.macs, (unsigned long long) macs);
	T_OK(net.per_image.params_bytes == 225034 * 4, "parameters: %llu bytes",
		 (unsigned long long) net.per_image.params_bytes);
	for (int B = 1; B <= 256; B *= 4)
		for (int train = 0; train <= 1; train++)
		{
			nn_work		w;

			if (!T_OK(nn_net_bound(&net, B, train, &b, &st) == NN_OK, "bound of %d: %s", B, st.msg))
				continue;
			T_OK(b.macs == macs * B, "batch of %d: %llu multiply-adds", B, (unsigned long long) b.macs);
			T_OK(b.work_bytes == nn_work_bytes(&net, B, train), "batch of %d%s: bound %llu bytes = nn_work_bytes",
				 B, train ? " (train)" : "", (unsigned long long) b.work_bytes);
			if (T_OK(nn_work_alloc(&w, &net, B, train, &nn_malloc_allocator, &st) == NN_OK, "alloc: %s", st.msg))
			{
				T_OK(w.bytes == b.work_bytes, "batch of %d%s: the allocation took the %llu bytes the bound said",
					 B, train ? " (train)" : "", (unsigned long long) b.work_bytes);
				nn_work_free(&w, &nn_malloc_allocator);
			}
		}
}

T_CASE(test_bound_hostile_shapes)
{
	nn_net		net;
	nn_bound	b;
	nn_status	st = {0};

	/* the crash of the issue: a max-pool input of more than 2^31 floats */
	if (build(&net, "conv(129,1) maxpool(64) flatten dense(2)", 4096, 4096, 1, 2))
	{
		T_OK(net.per_image.work_bytes > ((uint64_t) 8 << 30),
			 "conv(129,1) maxpool(64) on 4096x4096: one image needs %llu bytes (> 8 GiB), so a budget refuses it",
			 (unsigned long long) net.per_image.work_bytes);
		T_OK(net.per_image.largest > ((uint64_t) 1 << 31), "its largest buffer has %llu floats (> 2^31)",
			 (unsigned long long) net.per_image.largest);
		T_OK(nn_net_bound(&net, 65536, 1, &b, &st) == NN_ERR_LIMIT,
			 "a batch of 65536 of it passes the 32-bit matrix limit: %s", st.msg);
	}
	/* sizes that overflow 64 bits saturate and are refused */
	if (build(&net, "conv(4096,1) conv(1,64) dense(2)", 4096, 4096, 1, 2))
	{
		T_OK(nn_net_bound(&net, 65536, 1, &b, &st) == NN_ERR_LIMIT,
			 "a 64x64 filter over 4096 channels of 4096x4096, batch 65536: %s", st.msg);
		T_OK(nn_work_bytes(&net, 65536, 1) == SIZE_MAX, "nn_work_bytes saturates instead of wrapping");
		T_OK(net.per_image.macs > ((uint64_t) 1 << 47), "one image: %llu multiply-adds",
			 (unsigned long long) net.per_image.macs);
	}
	/* a huge-arithmetic, small-memory net: the cost is there before any allocation */
	if (build(&net, "conv(4096,32) dense(2)", 64, 64, 1, 2))
		T_OK(net.per_image.macs >= (uint64_t) 4096 * 33 * 33 * 32 * 32,
			 "conv(4096,32) on 64x64: %llu multiply-adds per image", (unsigned long long) net.per_image.macs);
	T_OK(nn_net_bound(&net, 0, 0, &b, &st) == NN_ERR_INVALID, "a batch of 0 is refused: %s", st.msg);
}

/* a seeded array of n floats in [-1, 1) */
static float *
rand_array(size_t n, uint64_t seed)
{
	nn_rng		r;
	float	   *x = malloc(n * sizeof(float));

	nn_rng_seed(&r, seed);
	for (size_t i = 0; i < n; i++)
		x[i] = 2.0f * nn_rng_uniform(&r) - 1.0f;
	return x;
}

T_CASE(test_bound_tiled_gemm)
{
	nn_net		net;
	uint64_t	saved = nn_gemm_tile_macs;
	const uint64_t tiles[] = {(uint64_t) 1 << 40, 1 << 16, 1 << 10, 7};

	/* conv forward and backward, and dense, with products tiled ever finer */
	if (!build(&net, "conv(12,3) relu dense(5)", 20, 20, 3, 5))
		return;
	{
		int			B = 4;
		nn_layer   *C = &net.layers[0],
				   *D = &net.layers[3];
		size_t		nin = (size_t) 3 * B * 400,
					nout = (size_t) 12 * B * 18 * 18,
					ncol = (size_t) 27 * B * 18 * 18,
					nd = (size_t) D->in.c;
		float	   *inp = rand_array(nin, 1),
				   *wt = rand_array(net.nparams, 2),
				   *dout = rand_array(nout, 3),
				   *dinp_ref = NULL,
				   *out_ref = NULL,
				   *dw_ref = NULL,
				   *dense_ref = NULL,
				   *dense_in = rand_array(nd * B, 4);

		for (int t = 0; t < 4; t++)
		{
			float	   *out = calloc(nout, sizeof(float)),
					   *col = calloc(ncol, sizeof(float)),
					   *dcol = calloc(ncol, sizeof(float)),
					   *dinp = calloc(nin, sizeof(float)),
					   *dw = calloc(net.nparams, sizeof(float)),
					   *dense = calloc((size_t) 5 * B, sizeof(float));

			nn_gemm_tile_macs = tiles[t];
			nn_conv2d_forward(out, col, inp, wt + C->w_off, wt + C->b_off, C, B);
			nn_conv2d_backward(dinp, dw + C->w_off, dw + C->b_off, dcol, dout, col, wt + C->w_off, C, B);
			nn_dense_forward(dense, dense_in, wt + D->w_off, wt + D->b_off, B, (int) nd, 5);
			if (t == 0)
			{
				out_ref = out;
				dinp_ref = dinp;
				dw_ref = dw;
				dense_ref = dense;
				free(col);
				free(dcol);
				continue;
			}
			T_OK(memcmp(out, out_ref, nout * sizeof(float)) == 0, "conv forward in tiles of %llu", (unsigned long long) tiles[t]);
			T_OK(memcmp(dinp, dinp_ref, nin * sizeof(float)) == 0, "conv dinp in tiles of %llu", (unsigned long long) tiles[t]);
			T_CLOSE(dw, dw_ref, net.nparams, 1e-6, 1e-5, "conv dw tiled");
			T_CLOSE(dense, dense_ref, (size_t) 5 * B, 1e-6, 1e-5, "dense tiled");
			free(out);
			free(col);
			free(dcol);
			free(dinp);
			free(dw);
			free(dense);
		}
		free(out_ref);
		free(dinp_ref);
		free(dw_ref);
		free(dense_ref);
		free(inp);
		free(wt);
		free(dout);
		free(dense_in);
	}
	nn_gemm_tile_macs = saved;
}

/* ------------------------------------------------------------ interrupts */

static int	armed;				/* the poll answers "stop" */
static int	polls;				/* polls seen while armed */
static nn_train_phase arm_at;	/* arm when this phase starts */

/* the host's poll: sticky once armed */
static int
test_poll(void)
{
	if (armed)
		polls++;
	return armed;
}

/* on_phase hook: arm at the chosen phase */
static void
arm_phase(void *ctx, nn_train_phase p)
{
	if (p == arm_at)
		armed = 1;
}

T_CASE(test_bound_interrupt_every_phase)
{
	const int	n = 70000;		/* more than a shuffle's check interval */
	nn_rows		rows;
	nn_options	o;
	nn_model	m;
	nn_status	st = {0};
	nn_rng		r;
	uint8_t		px[4];
	nn_train_hooks hooks = {.on_phase = arm_phase};
	const struct
	{
		nn_train_phase p;
		const char *word;
	}			phases[] = {
		{NN_PHASE_SORTING, "sorting"},
		{NN_PHASE_SPLITTING, "validation"},
		{NN_PHASE_STATISTICS, "z-score"},
		{NN_PHASE_TRAINING, "epoch 1"},
	};

	nn_rows_init(&rows, 4);
	nn_rng_seed(&r, 5);
	for (int i = 0; i < n; i++)
	{
		for (int k = 0; k < 4; k++)
			px[k] = (uint8_t) nn_rng_below(&r, 256);
		if (nn_rows_append(&rows, px, (int32_t) (px[0] & 1), &nn_malloc_allocator, &st) != NN_OK)
			break;
	}
	nn_options_default(&o);
	o.input.h = 2;
	o.input.w = 2;
	o.input.c = 1;
	o.classes = 2;
	o.epochs = 1;
	o.batch_size = 256;
	o.validation_fraction = 0.1f;
	o.normalize = NN_NORM_ZSCORE;
	o.threads = 1;
	snprintf(o.layers, sizeof(o.layers), "dense(4) relu dense(2)");

	nn_interrupt_poll = test_poll;
	for (int i = 0; i < 4; i++)
	{
		int			rc;

		armed = 0;
		polls = 0;
		arm_at = phases[i].p;
		rc = nn_train(&m, &rows, &o, NULL, &hooks, NULL, &nn_malloc_allocator, &st);
		T_OK(rc == NN_ERR_CANCELLED && strstr(st.msg, phases[i].word) != NULL && polls >= 1,
			 "a stop asked for at the start of phase %d is obeyed in it: %s (%d polls)", i, st.msg, polls);
	}
	/* and a forward pass stops between layers */
	{
		nn_net		net;
		nn_work		w;
		float	   *params;

		if (build(&net, "conv(4,3) relu maxpool(2) dense(2)", 12, 12, 1, 2) &&
			T_OK(nn_work_alloc(&w, &net, 2, 0, &nn_malloc_allocator, &st) == NN_OK, "alloc: %s", st.msg))
		{
			params = calloc(net.nparams, sizeof(float));
			armed = 1;
			polls = 0;
			T_OK(nn_net_forward(&net, params, NULL, &w, 2, 0, NULL, NULL) == NN_ERR_CANCELLED && polls >= 1,
				 "an interrupted forward pass reports NN_ERR_CANCELLED");
			armed = 0;
			T_OK(nn_net_forward(&net, params, NULL, &w, 2, 0, NULL, NULL) == NN_OK, "and runs when not interrupted");
			free(params);
			nn_work_free(&w, &nn_malloc_allocator);
		}
	}
	nn_interrupt_poll = NULL;
	armed = 0;
	/* nothing interrupted: the same options train */
	T_OK(nn_train(&m, &rows, &o, NULL, &hooks, NULL, &nn_malloc_allocator, &st) == NN_OK,
		 "with no poll the same training finishes: %s", st.msg);
	nn_model_free(&m, &nn_malloc_allocator);
	nn_rows_free(&rows, &nn_malloc_allocator);
}

T_CASE(test_bound_sort_is_canonical)
{
	/* the interruptible merge sort gives the canonical order: sorted by pixels, label, position */
	const int	n = 20000;
	nn_rows		rows;
	nn_options	o;
	nn_model	m1,
				m2;
	nn_status	st = {0};
	nn_rng		r;
	uint8_t		px[1];

	nn_options_default(&o);
	o.input.h = o.input.w = o.input.c = 1;
	o.classes = 2;
	o.epochs = 1;
	o.batch_size = 1000;
	o.record_times = 0;
	o.threads = 1;
	snprintf(o.layers, sizeof(o.layers), "dense(2)");
	for (int pass = 0; pass < 2; pass++)
	{
		nn_rows_init(&rows, 1);
		nn_rng_seed(&r, 9);
		for (int i = 0; i < n; i++)
		{
			/* pass 1 appends the same rows in reverse order */
			int			k = pass == 0 ? i : n - 1 - i;
			nn_rng		rk;

			nn_rng_seed(&rk, (uint64_t) k);
			px[0] = (uint8_t) nn_rng_below(&rk, 7);
			if (nn_rows_append(&rows, px, (int32_t) (nn_rng_below(&rk, 2)), &nn_malloc_allocator, &st) != NN_OK)
				break;
		}
		T_OK(nn_train(pass == 0 ? &m1 : &m2, &rows, &o, NULL, NULL, NULL, &nn_malloc_allocator, &st) == NN_OK,
			 "training on %d rows with many ties: %s", n, st.msg);
		nn_rows_free(&rows, &nn_malloc_allocator);
	}
	T_OK(m1.params && m2.params && memcmp(m1.params, m2.params, m1.net.nparams * sizeof(float)) == 0,
		 "the same rows in reverse order give the same weights (the sort is total)");
	nn_model_free(&m1, &nn_malloc_allocator);
	nn_model_free(&m2, &nn_malloc_allocator);
}

T_CASE(test_bound_sgd_step_checked)
{
	/* update_weights' step: params -= lr * grads, and where a weight stops being finite */
	float		p[3] = {1.0f, 2.0f, 3.0f};
	const float g[3] = {1.0f, 1e38f, 0.5f};

	T_OK(nn_sgd_step_checked(p, g, 1, 0.5f) == 1 && p[0] == 0.5f, "one step of 0.5: 1 - 0.5 * 1 = %g", p[0]);
	T_OK(nn_sgd_step_checked(p, g, 3, 1e3f) == 1, "lr 1e3 on a gradient of 1e38 overflows weight 1");
}
