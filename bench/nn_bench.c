/*
 * nn_bench.c: the core's training speed, without PostgreSQL.
 *
 * Trains a network (the reference CNN by default) with nn_train() on IDX
 * files, or on N synthetic random images when none are given, and prints
 * seconds per epoch, images per second, achieved GFLOPS and the time of
 * every layer's forward and backward pass.
 *
 *   bench/nn_bench [--images F --labels F] [--rows N] [--epochs E]
 *                  [--threads T] [--batch B] [--layers SPEC]
 *                  [--set KEY=VALUE ...] [--test-images F --test-labels F]
 *   bench/nn_bench --list-options
 *
 * --set sets one of train_conv2d's options through the core's option table
 * (repeatable, applied after the flags in order; the value is read by the
 * option's type: --set learning_rate=0.001 --set input=28,28,1
 * --set record_times=false); --list-options prints the table. With a test
 * set it also prints the test accuracy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "conv_direct.h"
#include "conv_winograd.h"
#include "idx.h"
#include "ops.h"
#include "train.h"

/* Read up to max rows of an IDX pair into rows; returns 0 or prints an error. */
static int
read_idx(nn_rows *rows, const char *images, const char *labels, long max)
{
	nn_idx		x;
	nn_status	st;
	uint8_t    *pix;
	int32_t		label;
	int			r;

	if (nn_idx_open(&x, images, labels, &st) != NN_OK)
	{
		fprintf(stderr, "nn_bench: %s\n", st.msg);
		return -1;
	}
	nn_rows_init(rows, x.row_bytes);
	pix = malloc(x.row_bytes);
	while (rows->n < max && (r = nn_idx_next(&x, pix, &label, &st)) == 1)
		nn_rows_append(rows, pix, label, &nn_malloc_allocator, &st);
	nn_idx_close(&x);
	free(pix);
	if (r < 0)
	{
		fprintf(stderr, "nn_bench: %s\n", st.msg);
		return -1;
	}
	return 0;
}

/* Test accuracy of model over rows, in batches of 256. */
static double
test_accuracy(const nn_model *m, const nn_rows *rows)
{
	nn_work		w;
	nn_status	st;
	const uint8_t *batch[256];
	int64_t		correct = 0;

	if (nn_work_alloc(&w, &m->net, 256, 0, &nn_malloc_allocator, &st) != NN_OK)
		return -1;
	for (int64_t s = 0; s < rows->n; s += 256)
	{
		int			B = (int) (rows->n - s < 256 ? rows->n - s : 256);

		for (int b = 0; b < B; b++)
		{
			batch[b] = nn_rows_pixels(rows, s + b);
			w.labels[b] = nn_rows_label(rows, s + b);
		}
		nn_load_pixels(w.act[0], batch, B, m->net.input, &m->norm);
		nn_net_forward(&m->net, m->params, NULL, &w, B, 0, NULL, NULL);
		nn_net_loss(&m->net, &w, w.labels, B, &correct, NULL);
	}
	nn_work_free(&w, &nn_malloc_allocator);
	return (double) correct / (double) rows->n;
}

/* set_threads hook */
static int32_t
set_threads(void *ctx, int32_t n)
{
	openblas_set_num_threads(n > 0 ? n : 1);
	return n > 0 ? n : 1;
}

/* progress hook: one line per epoch */
static void
on_epoch(void *ctx, int32_t epoch, int32_t epochs, const nn_epoch *e,
		 double ips, double eta)
{
	printf("epoch %d/%d: loss %.4f, accuracy %.4f, %.2f s, %.0f images/s\n",
		   epoch, epochs, e->loss, e->train_acc, e->seconds, ips);
	fflush(stdout);
}

#define USAGE "usage: %s [--images F --labels F] [--rows N] [--epochs E] [--threads T] [--batch B] [--layers SPEC] [--set KEY=VALUE ...] [--conv auto|im2col|direct|winograd] [--test-images F --test-labels F] | --list-options\n"
#define MAX_SETS 64

/* Print the option table: name, type, default, what is allowed. */
static void
list_options(void)
{
	for (int i = 0; i < nn_option_count; i++)
	{
		const nn_option_def *d = &nn_option_table[i];

		printf("%-20s %-10s default %s\n%22s%s\n", d->name, nn_option_type_name(d->type),
			   d->default_doc, "", d->help);
	}
}

/* Run the benchmark. */
int
main(int argc, char **argv)
{
	const char *images = NULL,
			   *labels = NULL,
			   *layers = NN_REFERENCE_SPEC,
			   *sets[MAX_SETS],
			   *test_images = NULL,
			   *test_labels = NULL;
	long		nrows = 60000;
	int			nsets = 0;
	int			epochs = 1,
				threads = 2,
				batch = 64;
	nn_rows		rows;
	nn_options	opt;
	nn_model	model;
	nn_status	st;
	nn_timing	t;
	nn_train_hooks hooks = {.on_epoch = on_epoch, .set_threads = set_threads};
	const nn_allocator *a = &nn_malloc_allocator;
	double		t0,
				secs,
				macs_fwd = 0,
				macs_train = 0;

	if (argc == 2 && !strcmp(argv[1], "--list-options"))
	{
		list_options();
		return 0;
	}
	for (int i = 1; i < argc; i += 2)
	{
		if (i + 1 >= argc || !strncmp(argv[i], "--h", 3))
		{
			fprintf(stderr, USAGE, argv[0]);
			return 2;
		}
		if (!strcmp(argv[i], "--images"))
			images = argv[i + 1];
		else if (!strcmp(argv[i], "--labels"))
			labels = argv[i + 1];
		else if (!strcmp(argv[i], "--rows"))
			nrows = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--epochs"))
			epochs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--batch"))
			batch = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--layers"))
			layers = argv[i + 1];
		else if (!strcmp(argv[i], "--set") && nsets < MAX_SETS)
			sets[nsets++] = argv[i + 1];
		else if (!strcmp(argv[i], "--conv") && !strcmp(argv[i + 1], "auto"))
			nn_conv_direct_mode = NN_CONV_DIRECT_AUTO, nn_conv_winograd_mode = NN_CONV_WINOGRAD_AUTO;
		else if (!strcmp(argv[i], "--conv") && !strcmp(argv[i + 1], "im2col"))
			nn_conv_direct_mode = NN_CONV_DIRECT_NEVER, nn_conv_winograd_mode = NN_CONV_WINOGRAD_NEVER;
		else if (!strcmp(argv[i], "--conv") && !strcmp(argv[i + 1], "direct"))
			nn_conv_direct_mode = NN_CONV_DIRECT_ALWAYS, nn_conv_winograd_mode = NN_CONV_WINOGRAD_NEVER;
		else if (!strcmp(argv[i], "--conv") && !strcmp(argv[i + 1], "winograd"))
			nn_conv_winograd_mode = NN_CONV_WINOGRAD_ALWAYS;
		else if (!strcmp(argv[i], "--test-images"))
			test_images = argv[i + 1];
		else if (!strcmp(argv[i], "--test-labels"))
			test_labels = argv[i + 1];
		else
		{
			fprintf(stderr, USAGE, argv[0]);
			return 2;
		}
	}

	if (images && labels)
	{
		if (read_idx(&rows, images, labels, nrows) != 0)
			return 1;
	}
	else
	{
		nn_rng		rng;
		uint8_t		pix[784];

		nn_rng_seed(&rng, 1);
		nn_rows_init(&rows, 784);
		for (long i = 0; i < nrows; i++)
		{
			for (int k = 0; k < 784; k++)
				pix[k] = (uint8_t) nn_rng_u32(&rng);
			nn_rows_append(&rows, pix, (int32_t) nn_rng_below(&rng, 10), a, &st);
		}
	}

	/* the flags, then every --set, all through the option table */
	nn_options_default(&opt);
	if (nn_options_set_text(&opt, "layers", layers, &st) != NN_OK ||
		nn_options_set_int(&opt, "epochs", epochs, &st) != NN_OK ||
		nn_options_set_int(&opt, "batch_size", batch, &st) != NN_OK ||
		nn_options_set_int(&opt, "threads", threads, &st) != NN_OK ||
		nn_options_set_text(&opt, "lr_schedule", "constant", &st) != NN_OK)
	{
		fprintf(stderr, "nn_bench: %s\n", st.msg);
		return 2;
	}
	for (int i = 0; i < nsets; i++)
		if (nn_options_assign(&opt, sets[i], &st) != NN_OK)
		{
			fprintf(stderr, "nn_bench: --set %s: %s\n", sets[i], st.msg);
			return 2;
		}
	epochs = opt.epochs;
	batch = opt.batch_size;
	threads = opt.threads;
	memset(&t, 0, sizeof(t));
	t0 = nn_now();
	if (nn_train(&model, &rows, &opt, NULL, &hooks, &t, a, &st) != NN_OK)
	{
		fprintf(stderr, "nn_bench: %s\n", st.msg);
		return 1;
	}
	secs = nn_now() - t0;

	for (int i = 0; i < model.net.nlayers; i++)
	{
		const nn_layer *L = &model.net.layers[i];
		/* the matrix products' multiply-adds (conv and dense) */
		double		m = (L->kind == NN_CONV || L->kind == NN_DENSE) ? (double) nn_op_of(L->kind)->macs(L) : 0;

		macs_fwd += m;
		/* backward: weight gradient always, input gradient except the first layer */
		macs_train += m + (m > 0 ? m : 0) + (m > 0 && i > 0 ? m : 0);
	}
	printf("\n%s on %ld images of %dx%dx%d, batch %d, %d thread(s), %d epoch(s)\n",
		   model.net.spec, (long) rows.n, model.net.input.h, model.net.input.w,
		   model.net.input.c, batch, threads, epochs);
	printf("convolutions: %s (direct and Winograd kernels: %s)\n",
		   nn_conv_winograd_mode == NN_CONV_WINOGRAD_ALWAYS ? "Winograd wherever it fits" :
		   nn_conv_direct_mode == NN_CONV_DIRECT_NEVER ? "im2col + sgemm" :
		   nn_conv_direct_mode == NN_CONV_DIRECT_ALWAYS ? "direct wherever it fits" : "auto",
		   nn_conv_direct_isa());
	printf("seconds per epoch: %.2f\n", secs / epochs);
	printf("images per second: %.0f\n", (double) rows.n * epochs / secs);
	printf("GFLOPS achieved:   %.1f (%.2f M multiply-adds per image forward, counted as a direct convolution)\n",
		   2.0 * macs_train * rows.n * epochs / secs / 1e9, macs_fwd / 1e6);
	printf("phases (s): forward %.2f, backward %.2f, update %.2f, loss %.2f, other %.2f\n",
		   t.forward_s, t.backward_s, t.update_s, t.loss_s,
		   secs - t.forward_s - t.backward_s - t.update_s - t.loss_s);
	printf("%-4s %-18s %12s %12s  %s\n", "#", "layer", "forward s", "backward s", "kernels");
	for (int i = 0; i < model.net.nlayers; i++)
	{
		const nn_layer *L = &model.net.layers[i];
		char		desc[48];

		snprintf(desc, sizeof(desc), "%s %dx%dx%d", nn_op_of(L->kind)->name, L->out.h, L->out.w, L->out.c);
		printf("%-4d %-18s %12.3f %12.3f  %s\n", i, desc, t.layer_fwd_s[i], t.layer_bwd_s[i],
			   L->kind == NN_CONV ? nn_conv_path(L) : "");
	}
	if (test_images && test_labels)
	{
		nn_rows		test;

		if (read_idx(&test, test_images, test_labels, 1L << 30) != 0)
			return 1;
		printf("test accuracy: %.4f on %ld rows\n", test_accuracy(&model, &test), (long) test.n);
		nn_rows_free(&test, a);
	}
	nn_model_free(&model, a);
	nn_rows_free(&rows, a);
	return 0;
}
