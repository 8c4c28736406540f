/*
 * test_train.c: the row store and the training loop (src/nn/train.c).
 *
 * The learning problem is synthetic and easy on purpose: 8x8 images of
 * noise (0..79) where one 4x4 quadrant is bright (150..255); the class is
 * the bright quadrant. A conv(8,3) relu maxpool(2) dense(4) net separates
 * that almost at once, so a few epochs must reach >= 95% training accuracy
 * on the final epoch and >= 95% on 256 fresh images (chance is 25%).
 * Determinism: the same rows in another order with the same options and
 * seed give the same model bytes (record_times off; with it on, the same
 * parameters); another seed gives other bytes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"
#include "t.h"

#define QUAD_SPEC "conv(8,3) relu maxpool(2) dense(4)"
#define QUAD_ROWS 512
#define QUAD_ACC 0.95

/* ---------------------------------------------------------------- helpers */

typedef struct count_ctx
{
	long		live;
} count_ctx;

/* counting malloc */
static void *
count_alloc(void *ctx, size_t size)
{
	void	   *p = malloc(size ? size : 1);

	if (p)
		((count_ctx *) ctx)->live++;
	return p;
}

/* counting free */
static void
count_free(void *ctx, void *ptr)
{
	if (ptr)
	{
		((count_ctx *) ctx)->live--;
		free(ptr);
	}
}

static count_ctx counts;
static const nn_allocator counting = {count_alloc, count_free, &counts};

/* One 8x8 image whose quadrant q is bright, into px; noise from rng. */
static void
quad_image(uint8_t *px, int q, nn_rng *rng)
{
	for (int y = 0; y < 8; y++)
		for (int x = 0; x < 8; x++)
		{
			int			in_q = ((y >= 4) * 2 + (x >= 4)) == q;

			px[y * 8 + x] = (uint8_t) (in_q ? 150 + nn_rng_below(rng, 106) : nn_rng_below(rng, 80));
		}
}

/* n quadrant images and labels (malloc'd), from seed */
static void
quad_data(uint8_t **pixels, int32_t **labels, int n, uint64_t seed)
{
	nn_rng		rng;

	nn_rng_seed(&rng, seed);
	*pixels = malloc((size_t) n * 64);
	*labels = malloc(sizeof(int32_t) * n);
	for (int i = 0; i < n; i++)
	{
		(*labels)[i] = (int32_t) nn_rng_below(&rng, 4);
		quad_image(*pixels + (size_t) i * 64, (*labels)[i], &rng);
	}
}

/* A row store of the n images in the order perm (identity when NULL). */
static int
quad_rows(nn_rows *r, const uint8_t *pixels, const int32_t *labels, int n, const int *perm)
{
	nn_status	st = {0};

	nn_rows_init(r, 64);
	for (int i = 0; i < n; i++)
	{
		int			k = perm ? perm[i] : i;

		if (nn_rows_append(r, pixels + (size_t) k * 64, labels[k], &counting, &st) != NN_OK)
			return T_OK(0, "append: %s", st.msg);
	}
	return 1;
}

/* options for the quadrant problem */
static void
quad_options(nn_options *o)
{
	nn_options_default(o);
	snprintf(o->layers, sizeof(o->layers), "%s", QUAD_SPEC);
	o->classes = 4;
	o->epochs = 4;
	o->batch_size = 32;
	o->learning_rate = 0.01f;
	o->record_times = 0;
}

/* serialised bytes of a model (malloc'd) */
static uint8_t *
model_bytes(const nn_model *m, size_t *len)
{
	uint8_t    *buf;

	*len = nn_model_size(m);
	buf = malloc(*len);
	nn_model_write(m, buf);
	return buf;
}

/* free what nn_train allocated into m */
static void
model_free(nn_model *m)
{
	nn_free(&counting, m->params);
	nn_free(&counting, m->history);
	nn_free(&counting, m->buffers);
	m->params = NULL;
	m->history = NULL;
}

/* Accuracy of a trained model on n images, as predict() would compute it. */
static double
model_accuracy(const nn_model *m, const uint8_t *pixels, const int32_t *labels, int n)
{
	nn_work		w;
	nn_status	st = {0};
	int64_t		correct = 0;
	const uint8_t *rows[64];

	if (!T_OK(nn_work_alloc(&w, &m->net, 64, 0, &counting, &st) == NN_OK, "inference work: %s", st.msg))
		return 0;
	for (int s = 0; s < n; s += 64)
	{
		int			B = n - s < 64 ? n - s : 64;

		for (int b = 0; b < B; b++)
			rows[b] = pixels + (size_t) (s + b) * 64;
		nn_load_pixels(w.act[0], rows, B, m->net.input, &m->norm);
		nn_net_forward(&m->net, m->params, m->buffers, &w, B, 0, NULL, NULL);
		nn_net_loss(&m->net, &w, labels + s, B, &correct, NULL);
	}
	nn_work_free(&w, &counting);
	return (double) correct / n;
}

/* ---------------------------------------------------------------- learning */

T_CASE(test_train_learns_quadrants)
{
	uint8_t    *px,
			   *tpx;
	int32_t    *lab,
			   *tlab;
	nn_rows		rows;
	nn_options	o;
	nn_model	m;
	nn_status	st = {0};
	int			rc;

	quad_data(&px, &lab, QUAD_ROWS, 1);
	quad_data(&tpx, &tlab, 256, 2);
	quad_options(&o);
	if (quad_rows(&rows, px, lab, QUAD_ROWS, NULL))
	{
		rc = nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st);
		if (T_OK(rc == NN_OK, "training succeeds: %s", st.msg))
		{
			const nn_epoch *last = &m.history[m.nepochs - 1];
			double		acc = model_accuracy(&m, tpx, tlab, 256);

			T_OK(m.nepochs == 4, "4 epochs of history (got %d)", m.nepochs);
			T_OK(m.net.input.h == 8 && m.net.input.w == 8 && m.net.input.c == 1,
				 "input inferred as 8x8x1 from 64-byte rows");
			for (int e = 0; e < m.nepochs; e++)
				printf("# epoch %d: loss %.4f train acc %.4f\n", e + 1, m.history[e].loss, m.history[e].train_acc);
			T_OK(last->train_acc >= QUAD_ACC, "final-epoch training accuracy %.4f >= %.2f", last->train_acc, QUAD_ACC);
			T_OK(acc >= QUAD_ACC, "accuracy on 256 fresh images %.4f >= %.2f", acc, QUAD_ACC);
			T_OK(last->loss < m.history[0].loss, "loss falls: %.4f -> %.4f", m.history[0].loss, last->loss);
			T_OK(isnan(last->val_acc), "no hold-out: val_acc is NaN");
			T_OK(m.rows_trained == QUAD_ROWS && m.kind == NN_BLOB_MODEL, "rows_trained %lld", (long long) m.rows_trained);
			T_OK(m.train_seconds == 0 && last->seconds == 0, "record_times off: no times stored");
			T_OK(strcmp(m.options.layers, m.net.spec) == 0 && m.options.input.h == 8,
				 "stored options carry the canonical spec and the input");
			/* the trained model survives serialisation */
			{
				size_t		len;
				uint8_t    *buf = model_bytes(&m, &len);
				nn_model	back;

				rc = nn_model_read(&back, buf, len, &counting, &st);
				if (T_OK(rc == NN_OK, "trained model reads back: %s", st.msg))
				{
					T_OK(memcmp(back.params, m.params, sizeof(float) * m.net.nparams) == 0,
						 "same parameters after a round trip");
					T_OK(model_accuracy(&back, tpx, tlab, 256) == acc, "same accuracy after a round trip");
					nn_model_free(&back, &counting);
				}
				free(buf);
			}
			model_free(&m);
		}
	}
	nn_rows_free(&rows, &counting);
	T_OK(counts.live == 0, "everything freed (%ld allocations live)", counts.live);
	free(px);
	free(lab);
	free(tpx);
	free(tlab);
}

T_CASE(test_train_learns_every_optimizer)
{
	uint8_t    *px;
	int32_t    *lab;
	nn_rows		rows;
	nn_options	o;
	nn_model	m;
	nn_status	st = {0};
	static const struct
	{
		int32_t		optimizer;
		int32_t		schedule;
		float		lr;
		float		weight_decay;
	}			runs[] = {
		{NN_OPT_SGD, NN_LR_CONSTANT, 0.1f, 0.0f},
		{NN_OPT_MOMENTUM, NN_LR_STEP, 0.02f, 1e-4f},
		{NN_OPT_ADAM, NN_LR_COSINE, 0.01f, 1e-4f},
	};

	quad_data(&px, &lab, QUAD_ROWS, 8);
	if (quad_rows(&rows, px, lab, QUAD_ROWS, NULL))
	{
		for (int i = 0; i < 3; i++)
		{
			quad_options(&o);
			o.optimizer = runs[i].optimizer;
			o.lr_schedule = runs[i].schedule;
			o.learning_rate = runs[i].lr;
			o.weight_decay = runs[i].weight_decay;
			o.epochs = 6;
			if (T_OK(nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_OK, "%s/%s: %s",
					 nn_optimizer_name(o.optimizer), nn_schedule_name(o.lr_schedule), st.msg))
			{
				T_OK(m.history[m.nepochs - 1].train_acc >= QUAD_ACC, "%s with %s schedule: final-epoch accuracy %.4f >= %.2f",
					 nn_optimizer_name(o.optimizer), nn_schedule_name(o.lr_schedule),
					 m.history[m.nepochs - 1].train_acc, QUAD_ACC);
				model_free(&m);
			}
		}
	}
	nn_rows_free(&rows, &counting);
	free(px);
	free(lab);
}

/* ---------------------------------------------------------------- determinism */

/* Train on the rows in order perm with o; bytes of the model (malloc'd) or NULL. */
static uint8_t *
train_bytes(const uint8_t *px, const int32_t *lab, const int *perm, const nn_options *o,
			size_t *len, float **params, size_t *nparams)
{
	nn_rows		rows;
	nn_model	m;
	nn_status	st = {0};
	uint8_t    *buf = NULL;

	if (!quad_rows(&rows, px, lab, QUAD_ROWS, perm))
		return NULL;
	if (T_OK(nn_train(&m, &rows, o, NULL, NULL, NULL, &counting, &st) == NN_OK, "training: %s", st.msg))
	{
		buf = model_bytes(&m, len);
		if (params)
		{
			*nparams = m.net.nparams;
			*params = malloc(sizeof(float) * m.net.nparams);
			memcpy(*params, m.params, sizeof(float) * m.net.nparams);
		}
		model_free(&m);
	}
	nn_rows_free(&rows, &counting);
	return buf;
}

T_CASE(test_train_deterministic)
{
	uint8_t    *px;
	int32_t    *lab;
	int			perm[QUAD_ROWS];
	nn_options	o;
	nn_rng		rng;
	size_t		l1,
				l2,
				l3,
				n1,
				n2;
	uint8_t    *b1,
			   *b2,
			   *b3;
	float	   *p1 = NULL,
			   *p2 = NULL;

	quad_data(&px, &lab, QUAD_ROWS, 3);
	for (int i = 0; i < QUAD_ROWS; i++)
		perm[i] = i;
	nn_rng_seed(&rng, 4);
	for (int i = QUAD_ROWS - 1; i > 0; i--)
	{
		int			j = (int) nn_rng_below(&rng, (uint32_t) i + 1),
					t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	quad_options(&o);
	o.epochs = 2;
	o.validation_fraction = 0.125f;	/* the split must not depend on arrival order either */
	o.layers[0] = '\0';
	snprintf(o.layers, sizeof(o.layers), "conv(8,3) relu dropout(0.25) maxpool(2) dense(4)");

	b1 = train_bytes(px, lab, NULL, &o, &l1, NULL, NULL);
	b2 = train_bytes(px, lab, perm, &o, &l2, NULL, NULL);
	T_OK(b1 && b2 && l1 == l2 && memcmp(b1, b2, l1) == 0,
		 "record_times off: rows in another order give byte-identical models (%zu bytes)", l1);
	o.seed = 43;
	b3 = train_bytes(px, lab, NULL, &o, &l3, NULL, NULL);
	T_OK(b1 && b3 && (l1 != l3 || memcmp(b1, b3, l1) != 0), "another seed gives other bytes");
	free(b1);
	free(b2);
	free(b3);

	o.seed = 42;
	o.record_times = 1;
	b1 = train_bytes(px, lab, NULL, &o, &l1, &p1, &n1);
	b2 = train_bytes(px, lab, perm, &o, &l2, &p2, &n2);
	T_OK(p1 && p2 && n1 == n2 && memcmp(p1, p2, sizeof(float) * n1) == 0,
		 "record_times on: rows in another order give identical parameters");
	free(b1);
	free(b2);
	free(p1);
	free(p2);
	T_OK(counts.live == 0, "everything freed (%ld live)", counts.live);
	free(px);
	free(lab);
}

/* ---------------------------------------------------------------- options */

T_CASE(test_train_validation_and_zscore)
{
	uint8_t    *px;
	int32_t    *lab;
	nn_rows		rows;
	nn_options	o;
	nn_model	m;
	nn_status	st = {0};

	quad_data(&px, &lab, QUAD_ROWS, 5);
	quad_options(&o);
	o.validation_fraction = 0.25f;
	if (quad_rows(&rows, px, lab, QUAD_ROWS, NULL) &&
		T_OK(nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_OK, "training with a hold-out: %s", st.msg))
	{
		int			ok = 1;

		for (int e = 0; e < m.nepochs; e++)
			if (!(m.history[e].val_acc >= 0 && m.history[e].val_acc <= 1))
				ok = 0;
		T_OK(ok, "validation_fraction 0.25: every epoch has a val_acc in [0,1] (last %.4f)",
			 m.history[m.nepochs - 1].val_acc);
		T_OK(m.history[m.nepochs - 1].val_acc >= 0.9, "hold-out accuracy %.4f >= 0.9",
			 m.history[m.nepochs - 1].val_acc);
		model_free(&m);
	}
	nn_rows_free(&rows, &counting);

	/* z-score over all rows (no hold-out): statistics computed here independently */
	quad_options(&o);
	o.normalize = NN_NORM_ZSCORE;
	if (quad_rows(&rows, px, lab, QUAD_ROWS, NULL) &&
		T_OK(nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_OK, "training with zscore: %s", st.msg))
	{
		double		s = 0,
					q = 0,
					n = (double) QUAD_ROWS * 64,
					mean,
					sd;

		for (size_t i = 0; i < (size_t) QUAD_ROWS * 64; i++)
		{
			s += px[i] / 255.0;
			q += (px[i] / 255.0) * (px[i] / 255.0);
		}
		mean = s / n;
		sd = sqrt(q / n - mean * mean);
		T_OK(m.norm.mode == NN_NORM_ZSCORE && m.options.normalize == NN_NORM_ZSCORE, "model records zscore");
		T_OK(isfinite(m.norm.mean) && isfinite(m.norm.std) && m.norm.std > 0, "finite mean %g and std %g",
			 m.norm.mean, m.norm.std);
		T_OK(fabs(m.norm.mean - mean) < 1e-5 && fabs(m.norm.std - sd) < 1e-5,
			 "mean %.6f std %.6f match pixel/255 statistics %.6f %.6f", m.norm.mean, m.norm.std, mean, sd);
		T_OK(m.history[m.nepochs - 1].train_acc >= QUAD_ACC, "zscore training reaches %.4f", m.history[m.nepochs - 1].train_acc);
		model_free(&m);
	}
	nn_rows_free(&rows, &counting);
	T_OK(counts.live == 0, "everything freed (%ld live)", counts.live);
	free(px);
	free(lab);
}

T_CASE(test_train_continue)
{
	uint8_t    *px;
	int32_t    *lab;
	nn_rows		rows;
	nn_options	o;
	nn_model	first,
				fresh,
				cont,
				bad;
	nn_status	st = {0};

	quad_data(&px, &lab, QUAD_ROWS, 6);
	quad_options(&o);
	o.epochs = 1;
	o.normalize = NN_NORM_ZSCORE;
	if (!quad_rows(&rows, px, lab, QUAD_ROWS, NULL))
		return;
	if (T_OK(nn_train(&first, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_OK, "first epoch: %s", st.msg))
	{
		nn_options	o2 = o;

		/* continue: starts from first's parameters and keeps its normalisation */
		o2.normalize = NN_NORM_MINMAX;
		if (T_OK(nn_train(&cont, &rows, &o2, &first, NULL, NULL, &counting, &st) == NN_OK, "continue training: %s", st.msg) &&
			T_OK(nn_train(&fresh, &rows, &o2, NULL, NULL, NULL, &counting, &st) == NN_OK, "fresh training: %s", st.msg))
		{
			T_OK(cont.norm.mode == NN_NORM_ZSCORE && cont.norm.mean == first.norm.mean &&
				 cont.norm.std == first.norm.std, "the continued model keeps the initial model's normalisation");
			T_OK(cont.history[0].loss < fresh.history[0].loss,
				 "starting from trained weights: first-epoch loss %.4f < %.4f from scratch",
				 cont.history[0].loss, fresh.history[0].loss);
			T_OK(memcmp(cont.params, first.params, sizeof(float) * first.net.nparams) != 0,
				 "continued training changed the parameters");
			model_free(&cont);
			model_free(&fresh);
		}

		/* another architecture, another input, a gradient blob: refused */
		snprintf(o2.layers, sizeof(o2.layers), "conv(6,3) relu maxpool(2) dense(4)");
		T_OK(nn_train(&bad, &rows, &o2, &first, NULL, NULL, &counting, &st) == NN_ERR_SHAPE &&
			 strstr(st.msg, "architecture") != NULL, "another architecture is refused: %s", st.msg);
		o2 = o;
		o2.input.h = 4;
		o2.input.w = 16;
		o2.input.c = 1;
		o2.layers[0] = '\0';
		snprintf(o2.layers, sizeof(o2.layers), "%s", QUAD_SPEC);
		T_OK(nn_train(&bad, &rows, &o2, &first, NULL, NULL, &counting, &st) == NN_ERR_SHAPE,
			 "the same spec on a 4x16 input is refused: %s", st.msg);
		first.kind = NN_BLOB_GRADIENTS;
		T_OK(nn_train(&bad, &rows, &o, &first, NULL, NULL, &counting, &st) == NN_ERR_INVALID,
			 "a gradient blob as the start is refused: %s", st.msg);
		model_free(&first);
	}
	nn_rows_free(&rows, &counting);
	T_OK(counts.live == 0, "everything freed (%ld live)", counts.live);
	free(px);
	free(lab);
}

/* hook state */
typedef struct hook_ctx
{
	int			batches;
	int			cancel_after;
	int			epochs_seen;
	int			last_epoch;
	int			threads;
} hook_ctx;

/* on_batch: count, cancel after cancel_after */
static int
hook_batch(void *ctx)
{
	hook_ctx   *h = ctx;

	h->batches++;
	return h->cancel_after > 0 && h->batches >= h->cancel_after;
}

/* on_epoch: record */
static void
hook_epoch(void *ctx, int32_t epoch, int32_t epochs, const nn_epoch *e, double ips, double eta)
{
	hook_ctx   *h = ctx;

	h->epochs_seen++;
	if (epoch == h->last_epoch + 1)
		h->last_epoch = epoch;
}

/* set_threads: record the first request (the lane count); BLAS follows with 1 */
static int32_t
hook_threads(void *ctx, int32_t threads)
{
	hook_ctx   *h = ctx;

	if (h->threads == 0)
		h->threads = threads;
	return threads;
}

T_CASE(test_train_errors_and_hooks)
{
	uint8_t    *px;
	int32_t    *lab;
	nn_rows		rows,
				empty;
	nn_options	o;
	nn_model	m;
	nn_status	st = {0};
	hook_ctx	h;
	nn_train_hooks hooks = {.ctx = &h, .on_batch = hook_batch, .on_epoch = hook_epoch, .set_threads = hook_threads};

	quad_data(&px, &lab, 40, 7);
	quad_options(&o);
	if (!quad_rows(&rows, px, lab, 40, NULL))
		return;

	o.batch_size = 41;
	T_OK(nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_ERR_INVALID &&
		 strstr(st.msg, "batch_size") != NULL, "batch_size 41 > 40 rows: %s", st.msg);
	o.batch_size = 40;
	o.validation_fraction = 0.5f;
	T_OK(nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_ERR_INVALID,
		 "batch_size 40 > the 20 training rows left by the hold-out: %s", st.msg);
	quad_options(&o);
	nn_rows_init(&empty, 64);
	T_OK(nn_train(&m, &empty, &o, NULL, NULL, NULL, &counting, &st) == NN_ERR_INVALID,
		 "no rows: %s", st.msg);
	o.input.h = 8;
	o.input.w = 4;
	o.input.c = 1;
	T_OK(nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_ERR_SHAPE,
		 "input 8x4x1 on 64-byte rows: %s", st.msg);

	/* hooks: every batch and epoch reported, threads passed on */
	quad_options(&o);
	o.batch_size = 8;
	o.epochs = 3;
	o.threads = 3;
	memset(&h, 0, sizeof(h));
	memset(&st, 0, sizeof(st));
	if (T_OK(nn_train(&m, &rows, &o, NULL, &hooks, NULL, &counting, &st) == NN_OK, "training with hooks: %s", st.msg))
	{
		T_OK(h.batches == 3 * 5, "on_batch after each of 3 x 5 batches (got %d)", h.batches);
		T_OK(h.epochs_seen == 3 && h.last_epoch == 3, "on_epoch for epochs 1, 2, 3 in order");
		T_OK(h.threads == 3, "set_threads got 3 (got %d)", h.threads);
		model_free(&m);
	}

	/* cancel after the 7th batch (in epoch 2) */
	memset(&h, 0, sizeof(h));
	h.cancel_after = 7;
	T_OK(nn_train(&m, &rows, &o, NULL, &hooks, NULL, &counting, &st) == NN_ERR_CANCELLED &&
		 st.code == NN_ERR_CANCELLED, "on_batch returning nonzero cancels: %s", st.msg);
	T_OK(h.batches == 7 && m.params == NULL && m.history == NULL, "stopped at batch 7, no model left");

	/* cancel during the validation pass (32 training rows in 4 batches, then the hold-out of 8) */
	o.validation_fraction = 0.2f;
	memset(&h, 0, sizeof(h));
	h.cancel_after = 5;			/* 4 training batches, then the first validation batch */
	{
		int			rc = nn_train(&m, &rows, &o, NULL, &hooks, NULL, &counting, &st);

		T_OK(rc == NN_ERR_CANCELLED && h.batches == 5, "cancel in the validation pass (call %d): %s",
			 h.batches, st.msg);
	}
	nn_rows_free(&rows, &counting);
	T_OK(counts.live == 0, "nothing leaked by the failures (%ld live)", counts.live);
	free(px);
	free(lab);
}

/* ---------------------------------------------------------------- rows */

T_CASE(test_train_rows_serialise)
{
	nn_rows		r,
				back;
	nn_status	st = {0};
	const int	n = NN_ROWS_PER_CHUNK + 904;	/* crosses a chunk boundary */
	uint8_t		px[3];
	size_t		len;
	uint8_t    *buf,
			   *cut;
	size_t		bad = 0;
	int			same = 1;

	nn_rows_init(&r, 3);
	for (int i = 0; i < n; i++)
	{
		px[0] = (uint8_t) i;
		px[1] = (uint8_t) (i >> 8);
		px[2] = (uint8_t) (i * 7);
		if (nn_rows_append(&r, px, i - 100, &counting, &st) != NN_OK)
			break;
	}
	r.skipped = 7;
	T_OK(r.n == n && r.nchunks == 2, "%d rows in 2 chunks (got %lld in %lld)", n, (long long) r.n, (long long) r.nchunks);
	len = nn_rows_serial_size(&r);
	T_OK(len == 24 + (size_t) n * 7, "serial size 24 + %d * 7 (got %zu)", n, len);
	buf = malloc(len + 1);
	nn_rows_serialize(&r, buf);
	if (T_OK(nn_rows_deserialize(&back, buf, len, &counting, &st) == NN_OK, "deserialise: %s", st.msg))
	{
		same = back.n == r.n && back.skipped == 7 && back.row_bytes == 3;
		for (int64_t i = 0; same && i < r.n; i++)
			same = memcmp(nn_rows_pixels(&r, i), nn_rows_pixels(&back, i), 3) == 0 &&
				nn_rows_label(&r, i) == nn_rows_label(&back, i);
		T_OK(same, "every row, label and the skipped count survive");
		nn_rows_free(&back, &counting);
	}
	for (size_t k = 0; k < len; k++)
	{
		cut = malloc(k ? k : 1);
		memcpy(cut, buf, k);
		if (nn_rows_deserialize(&back, cut, k, &counting, &st) != NN_ERR_CORRUPT)
		{
			bad++;
			nn_rows_free(&back, &counting);
		}
		free(cut);
	}
	T_OK(bad == 0, "all %zu truncations are NN_ERR_CORRUPT (%zu are not)", len, bad);
	buf[len] = 0;
	T_OK(nn_rows_deserialize(&back, buf, len + 1, &counting, &st) == NN_ERR_CORRUPT, "a trailing byte is refused");
	/* a row count that overflows the length arithmetic */
	memset(buf + 4, 0xFF, 8);
	T_OK(nn_rows_deserialize(&back, buf, len, &counting, &st) == NN_ERR_CORRUPT, "row count 2^64-1 is refused");
	free(buf);

	/* merge: rows appended, skipped added, mismatched widths refused */
	{
		nn_rows		a,
					w5;
		uint8_t		five[5] = {1, 2, 3, 4, 5};

		nn_rows_init(&a, 3);
		nn_rows_append(&a, px, 1, &counting, &st);
		a.skipped = 2;
		T_OK(nn_rows_merge(&a, &r, &counting, &st) == NN_OK && a.n == n + 1 && a.skipped == 9 &&
			 nn_rows_label(&a, n) == n - 101, "merge appends %d rows and adds skipped counts", n);
		nn_rows_init(&w5, 5);
		nn_rows_append(&w5, five, 0, &counting, &st);
		T_OK(nn_rows_merge(&a, &w5, &counting, &st) == NN_ERR_SHAPE, "merging 5-byte rows into 3-byte rows: %s", st.msg);
		nn_rows_free(&a, &counting);
		nn_rows_free(&w5, &counting);
	}
	nn_rows_free(&r, &counting);
	T_OK(counts.live == 0, "everything freed (%ld live)", counts.live);
}

/* ---------------------------------------------------------------- lanes */

T_CASE(test_train_parts)
{
	uint8_t    *px,
			   *tpx;
	int32_t    *lab,
			   *tlab;
	int			perm[QUAD_ROWS];
	nn_options	o;
	uint8_t    *one = NULL;
	size_t		one_len = 0;

	quad_data(&px, &lab, QUAD_ROWS, 5);
	quad_data(&tpx, &tlab, 256, 6);
	for (int i = 0; i < QUAD_ROWS; i++)
		perm[i] = QUAD_ROWS - 1 - i;
	quad_options(&o);
	snprintf(o.layers, sizeof(o.layers), "conv(8,3) relu dropout(0.25) maxpool(2) dense(4)");
	/*
	 * batches of 32 split into NN_TRAIN_PARTS parts (the last batch is
	 * smaller); 1, 2 and 3 threads take those parts round-robin and must
	 * give the same model, whatever the row order
	 */
	for (int threads = 1; threads <= 3; threads++)
	{
		size_t		l1,
					l2,
					n1,
					n2;
		uint8_t    *b1,
				   *b2;
		float	   *p1 = NULL,
				   *p2 = NULL;
		nn_rows		rows;
		nn_model	m;
		nn_status	st = {0};

		o.threads = threads;
		b1 = train_bytes(px, lab, NULL, &o, &l1, &p1, &n1);
		b2 = train_bytes(px, lab, perm, &o, &l2, &p2, &n2);
		T_OK(b1 && b2 && l1 == l2 && memcmp(b1, b2, l1) == 0,
			 "%d thread(s): the same bytes whatever the row order", threads);
		if (threads == 1)
		{
			one = b1;
			one_len = l1;
			b1 = NULL;
		}
		else
		{
			/* the stored options name the thread count: compare the weights */
			nn_model	m1,
						mt;
			nn_status	s1 = {0};

			if (T_OK(one && b1 && nn_model_read(&m1, one, one_len, &counting, &s1) == NN_OK &&
					 nn_model_read(&mt, b1, l1, &counting, &s1) == NN_OK, "read back: %s", s1.msg))
			{
				T_OK(m1.net.nparams == mt.net.nparams &&
					 memcmp(m1.params, mt.params, sizeof(float) * m1.net.nparams) == 0,
					 "%d threads give the weights of 1 thread, bit for bit", threads);
				nn_model_free(&m1, &counting);
				nn_model_free(&mt, &counting);
			}
		}
		free(b1);
		free(b2);
		free(p1);
		free(p2);
		if (quad_rows(&rows, px, lab, QUAD_ROWS, NULL))
		{
			if (T_OK(nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_OK,
					 "%d thread(s) train: %s", threads, st.msg))
			{
				double		acc = model_accuracy(&m, tpx, tlab, 256);

				T_OK(acc >= QUAD_ACC, "%d thread(s): accuracy on 256 fresh images %.4f >= %.2f",
					 threads, acc, QUAD_ACC);
				model_free(&m);
			}
		}
		nn_rows_free(&rows, &counting);
	}
	free(one);
	T_OK(counts.live == 0, "everything freed (%ld live)", counts.live);
	free(px);
	free(lab);
	free(tpx);
	free(tlab);
}

T_CASE(test_train_batchnorm_residual_threads)
{
	/*
	 * a residual network with batch norm: the batch statistics are the
	 * whole batch's whatever the lanes, so 1, 2 and 3 threads give the
	 * same weights and running statistics bit for bit, and it learns
	 */
	uint8_t    *px,
			   *tpx;
	int32_t    *lab,
			   *tlab;
	nn_options	o;
	nn_model	ref = {0};

	quad_data(&px, &lab, QUAD_ROWS, 15);
	quad_data(&tpx, &tlab, 256, 16);
	quad_options(&o);
	snprintf(o.layers, sizeof(o.layers),
			 "conv(8,3,1,same) batchnorm relu residual(conv(8,3,1,same) batchnorm relu conv(8,3,1,same) batchnorm) relu "
			 "maxpool(2) globalavgpool dense(4)");
	for (int threads = 1; threads <= 3; threads++)
	{
		nn_rows		rows;
		nn_model	m;
		nn_status	st = {0};

		o.threads = threads;
		if (!quad_rows(&rows, px, lab, QUAD_ROWS, NULL))
			break;
		if (T_OK(nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_OK,
				 "%d thread(s) train the residual net: %s", threads, st.msg))
		{
			T_OK(m.net.nbuffers == 3 * 17 && m.buffers != NULL && m.buffers[16] > 0.0f &&
				 m.buffers[2 * 8] == (float) (o.epochs * ((QUAD_ROWS + 31) / 32)),
				 "running statistics kept: variance %g, %g batches tracked", m.buffers[8], m.buffers[16]);
			if (threads == 1)
				ref = m;
			else
			{
				T_OK(memcmp(m.params, ref.params, sizeof(float) * m.net.nparams) == 0 &&
					 memcmp(m.buffers, ref.buffers, sizeof(float) * m.net.nbuffers) == 0,
					 "%d threads give the weights and running statistics of 1 thread, bit for bit", threads);
				T_OK(model_accuracy(&m, tpx, tlab, 256) >= QUAD_ACC, "%d threads: it learns (%.4f)",
					 threads, model_accuracy(&m, tpx, tlab, 256));
				model_free(&m);
			}
		}
		nn_rows_free(&rows, &counting);
	}
	if (ref.params)
		model_free(&ref);
	T_OK(counts.live == 0, "everything freed (%ld live)", counts.live);
	free(px);
	free(lab);
	free(tpx);
	free(tlab);
}

/*
 * Augmentation: with augment_hflip and augment_shift the model is the same
 * for 1 and 3 threads and for two runs, differs from training without them,
 * and still learns; without them the model is the one training gave before
 * the options existed (the draws have their own generator).
 */
T_CASE(test_train_augment)
{
	uint8_t    *px,
			   *tpx;
	int32_t    *lab,
			   *tlab;
	nn_options	o;
	nn_model	plain = {0},
				ref = {0};

	quad_data(&px, &lab, QUAD_ROWS, 17);
	quad_data(&tpx, &tlab, 256, 18);
	quad_options(&o);
	for (int run = 0; run < 3; run++)
	{
		nn_rows		rows;
		nn_model	m;
		nn_status	st = {0};

		o.augment_hflip = run > 0;
		o.augment_shift = run > 0 ? 1 : 0;
		o.threads = run == 2 ? 3 : 1;
		if (!quad_rows(&rows, px, lab, QUAD_ROWS, NULL))
			break;
		if (T_OK(nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_OK, "run %d trains: %s", run, st.msg))
		{
			if (run == 0)
				plain = m;
			else if (run == 1)
			{
				ref = m;
				T_OK(memcmp(m.params, plain.params, sizeof(float) * m.net.nparams) != 0,
					 "flips and shifts change the model");
				T_OK(model_accuracy(&m, tpx, tlab, 256) >= 0.5, "with augmentation it still learns: %.4f, chance is 0.25",
					 model_accuracy(&m, tpx, tlab, 256));
				T_OK(m.options.augment_hflip == 1 && m.options.augment_shift == 1, "the model records its augmentation");
			}
			else
			{
				T_OK(memcmp(m.params, ref.params, sizeof(float) * m.net.nparams) == 0,
					 "3 threads draw the same flips and shifts: the same model bit for bit");
				model_free(&m);
			}
		}
		nn_rows_free(&rows, &counting);
	}
	if (plain.params)
		model_free(&plain);
	if (ref.params)
		model_free(&ref);
	T_OK(counts.live == 0, "everything freed (%ld live)", counts.live);
	free(px);
	free(lab);
	free(tpx);
	free(tlab);
}

/* ---------------------------------------------------------------- float rows */

/* a row store of n quadrant images as float32 rows of pixel/255 */
static int
quad_float_rows(nn_rows *r, const uint8_t *pixels, const int32_t *labels, int n)
{
	nn_status	st = {0};
	float		v[64];

	nn_rows_init(r, 64 * sizeof(float));
	r->dtype = NN_DTYPE_FLOAT32;
	for (int i = 0; i < n; i++)
	{
		for (int k = 0; k < 64; k++)
			v[k] = (float) pixels[(size_t) i * 64 + k] / 255.0f;
		if (nn_rows_append(r, (const uint8_t *) v, labels[i], &counting, &st) != NN_OK)
			return T_OK(0, "append: %s", st.msg);
	}
	return 1;
}

/* accuracy of m over the first n rows of a row store */
static double
rows_accuracy(const nn_model *m, const nn_rows *r, int n)
{
	nn_work		w;
	nn_status	st = {0};
	int64_t		correct = 0;
	const uint8_t *rows[64];
	int32_t		labels[64];

	if (!T_OK(nn_work_alloc(&w, &m->net, 64, 0, &counting, &st) == NN_OK, "inference work: %s", st.msg))
		return 0;
	for (int s = 0; s < n; s += 64)
	{
		int			B = n - s < 64 ? n - s : 64;

		for (int b = 0; b < B; b++)
		{
			rows[b] = nn_rows_pixels(r, s + b);
			labels[b] = nn_rows_label(r, s + b);
		}
		nn_load_pixels(w.act[0], rows, B, m->net.input, &m->norm);
		nn_net_forward(&m->net, m->params, m->buffers, &w, B, 0, NULL, NULL);
		nn_net_loss(&m->net, &w, labels, B, &correct, NULL);
	}
	nn_work_free(&w, &counting);
	return (double) correct / n;
}

T_CASE(test_train_float_rows)
{
	uint8_t    *px,
			   *tpx;
	int32_t    *lab,
			   *tlab;
	nn_rows		rows,
				test,
				brows;
	nn_options	o;
	nn_model	m = {0},
				bm = {0};
	nn_status	st = {0};

	quad_data(&px, &lab, QUAD_ROWS, 31);
	quad_data(&tpx, &tlab, 256, 32);
	quad_options(&o);
	if (!quad_float_rows(&rows, px, lab, QUAD_ROWS) || !quad_float_rows(&test, tpx, tlab, 256) ||
		!quad_rows(&brows, px, lab, QUAD_ROWS, NULL))
		return;

	/* floats of pixel/255 load as the same tensor as bytes under minmax */
	{
		nn_shape	in = {8, 8, 1};
		nn_norm		fn = {NN_NORM_NONE, 0, 1, NN_DTYPE_FLOAT32},
					bn = {NN_NORM_MINMAX, 0, 1, NN_DTYPE_UINT8};
		float		a[4 * 64],
					b[4 * 64];
		const uint8_t *fr[4],
				   *br[4];

		for (int i = 0; i < 4; i++)
		{
			fr[i] = nn_rows_pixels(&rows, i);
			br[i] = px + (size_t) i * 64;
		}
		nn_load_pixels(a, fr, 4, in, &fn);
		nn_load_pixels(b, br, 4, in, &bn);
		T_OK(memcmp(a, b, sizeof(a)) == 0, "float rows of v/255 load exactly as byte rows under minmax");
	}

	if (T_OK(nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_OK, "float rows train: %s", st.msg))
	{
		double		acc = rows_accuracy(&m, &test, 256);

		T_OK(m.norm.dtype == NN_DTYPE_FLOAT32 && m.norm.mode == NN_NORM_NONE && m.options.normalize == NN_NORM_NONE,
			 "the model records float32 rows and normalize auto became none (dtype %d, mode %d)", m.norm.dtype, m.norm.mode);
		T_OK(m.net.input.h == 8 && m.net.input.c == 1, "input inferred as 8x8x1 from 64 values (256 bytes)");
		T_OK(acc >= QUAD_ACC, "accuracy on 256 fresh float images %.4f >= %.2f", acc, QUAD_ACC);
		/* floats of pixel/255 sort as their bytes: the same model as bytes under minmax */
		if (T_OK(nn_train(&bm, &brows, &o, NULL, NULL, NULL, &counting, &st) == NN_OK, "byte rows train: %s", st.msg))
		{
			T_OK(memcmp(bm.params, m.params, sizeof(float) * m.net.nparams) == 0,
				 "float rows of pixel/255 train the same parameters as byte rows under minmax");
			model_free(&bm);
		}

		/* the input section: present for floats, read back, absent for bytes */
		{
			size_t		len;
			uint8_t    *buf = model_bytes(&m, &len);
			nn_model	back;

			if (T_OK(nn_model_read(&back, buf, len, &counting, &st) == NN_OK, "a float model reads back: %s", st.msg))
			{
				T_OK(back.norm.dtype == NN_DTYPE_FLOAT32, "its element type survives");
				nn_model_free(&back, &counting);
			}
			/* the section is the last one written: tag 8, length 4, value; forge element type 2 */
			T_OK(buf[len - 18] == NN_SECTION_INPUT && buf[len - 8] == 1, "the input section closes the blob");
			buf[len - 8] = 2;
			{
				uint32_t	crc = nn_crc32(buf, len - 4);

				for (int i = 0; i < 4; i++)
					buf[len - 4 + i] = (uint8_t) (crc >> (8 * i));
			}
			T_OK(nn_model_read(&back, buf, len, &counting, &st) == NN_ERR_CORRUPT &&
				 strstr(st.msg, "input element type") != NULL, "an unknown element type is refused: %s", st.msg);
			m.norm.dtype = NN_DTYPE_UINT8;
			T_OK(nn_model_size(&m) == len - 14, "a byte model has no input section (%zu vs %zu bytes)", nn_model_size(&m), len);
			m.norm.dtype = NN_DTYPE_FLOAT32;
			free(buf);
		}

		/* continuing from a model of the other element type is refused */
		T_OK(nn_train(&bm, &brows, &o, &m, NULL, NULL, &counting, &st) == NN_ERR_SHAPE &&
			 strstr(st.msg, "float32 inputs but the rows are uint8") != NULL, "float model, byte rows: %s", st.msg);
		model_free(&m);
	}

	/* statistics of floats: zscore over the values, minmax as minimum and range */
	{
		double		sum = 0,
					sq = 0,
					lo = 1e9,
					hi = -1e9,
					cnt = 0;

		for (int64_t i = 0; i < rows.n; i++)
			for (int k = 0; k < 64; k++)
			{
				float		v;

				memcpy(&v, nn_rows_pixels(&rows, i) + k * 4, 4);
				sum += v;
				sq += (double) v * v;
				lo = v < lo ? v : lo;
				hi = v > hi ? v : hi;
				cnt++;
			}
		o.epochs = 1;
		o.normalize = NN_NORM_ZSCORE;
		if (T_OK(nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_OK, "zscore on floats: %s", st.msg))
		{
			double		mean = sum / cnt,
						sd = sqrt(sq / cnt - mean * mean);

			T_OK(fabs(m.norm.mean - mean) < 1e-6 && fabs(m.norm.std - sd) < 1e-6,
				 "zscore statistics of the values: %g %g (expected %g %g)", m.norm.mean, m.norm.std, mean, sd);
			model_free(&m);
		}
		/* a flip would swap the quadrants' classes: shifts only */
		o.normalize = NN_NORM_MINMAX;
		o.epochs = 4;
		o.augment_shift = 1;
		if (T_OK(nn_train(&m, &rows, &o, NULL, NULL, NULL, &counting, &st) == NN_OK, "minmax and augmentation on floats: %s", st.msg))
		{
			T_OK(m.norm.mean == (float) lo && m.norm.std == (float) (hi - lo),
				 "minmax of floats stores the minimum and the range: %g %g (expected %g %g)", m.norm.mean, m.norm.std, lo, hi - lo);
			T_OK(rows_accuracy(&m, &test, 256) >= 0.5, "augmented float training learns: %.4f (chance 0.25)",
				 rows_accuracy(&m, &test, 256));
			model_free(&m);
		}
		o.augment_shift = 0;
	}

	/* values whose statistics overflow a float are refused, not stored as infinities */
	{
		nn_rows		big;
		float		v[64];

		nn_rows_init(&big, 64 * sizeof(float));
		big.dtype = NN_DTYPE_FLOAT32;
		for (int k = 0; k < 64; k++)
			v[k] = k % 2 ? 3e38f : -3e38f;
		for (int i = 0; i < 40; i++)
			nn_rows_append(&big, (const uint8_t *) v, i % 4, &counting, &st);
		o.normalize = NN_NORM_MINMAX;
		T_OK(nn_train(&m, &big, &o, NULL, NULL, NULL, &counting, &st) == NN_ERR_DATA &&
			 strstr(st.msg, "too large to normalise") != NULL, "overflowing statistics: %s", st.msg);
		nn_rows_free(&big, &counting);
	}
	nn_rows_free(&rows, &counting);
	nn_rows_free(&test, &counting);
	nn_rows_free(&brows, &counting);
	T_OK(counts.live == 0, "everything freed (%ld live)", counts.live);
	free(px);
	free(lab);
	free(tpx);
	free(tlab);
}

/* ---------------------------------------------------------------- tuning */

#include "tune.h"

/* a search over learning rates on the quadrant problem */
static void
quad_search(nn_tuning *t, nn_trial *trials, int strategy, const float *lrs, int n)
{
	memset(t, 0, sizeof(*t));
	t->strategy = strategy;
	t->metric = NN_METRIC_VAL_ACCURACY;
	t->eta = 2;
	t->min_epochs = 1;
	t->nkeys = 1;
	snprintf(t->keys[0], sizeof(t->keys[0]), "learning_rate");
	t->ntrials = n;
	t->trials = trials;
	for (int i = 0; i < n; i++)
	{
		memset(&trials[i], 0, sizeof(trials[i]));
		quad_options(&trials[i].opt);
		trials[i].opt.validation_fraction = 0.25f;
		trials[i].opt.learning_rate = lrs[i];
	}
}

T_CASE(test_train_tune)
{
	uint8_t    *px;
	int32_t    *lab;
	nn_rows		rows;
	nn_tuning	t;
	nn_trial	trials[4];
	nn_model	m,
				ref;
	nn_status	st = {0};
	static const float lrs[4] = {0.0005f, 0.01f, 0.002f, 0.00002f};

	quad_data(&px, &lab, QUAD_ROWS, 41);
	if (!quad_rows(&rows, px, lab, QUAD_ROWS, NULL))
		return;
	for (int strategy = NN_TUNE_GRID; strategy <= NN_TUNE_HALVING; strategy += NN_TUNE_HALVING - NN_TUNE_GRID)
	{
		const char *name = nn_tune_strategy_name(strategy);

		quad_search(&t, trials, strategy, lrs, 4);
		if (!T_OK(nn_tune(&m, &rows, &t, NULL, NULL, NULL, &counting, &st) == NN_OK, "%s search: %s", name, st.msg))
			continue;
		T_OK(m.tuning != NULL && m.tuning->ntrials == 4 && m.tuning->best == t.best, "%s: the model carries the record", name);
		for (int i = 0; i < 4; i++)
			T_OK(trials[i].epochs == 4 || strategy == NN_TUNE_HALVING, "%s: trial %d trained %d epochs", name, i, trials[i].epochs);
		for (int i = 0; i < 4; i++)
			T_OK(t.best == i || !(trials[i].val_acc > trials[t.best].val_acc), "%s: the winner %d has the best accuracy (%g vs trial %d: %g)",
				 name, t.best, trials[t.best].val_acc, i, trials[i].val_acc);
		if (strategy == NN_TUNE_HALVING)
		{
			int			hist[5] = {0};

			for (int i = 0; i < 4; i++)
				hist[trials[i].epochs]++;
			T_OK(hist[1] == 2 && hist[2] == 1 && hist[4] == 1 && trials[t.best].epochs == 4,
				 "halving: two trials stop at 1 epoch, one at 2, the winner trains all 4 (%d %d %d %d)",
				 trials[0].epochs, trials[1].epochs, trials[2].epochs, trials[3].epochs);
		}
		/* the winner is exactly nn_train of its options, resumed or not */
		if (T_OK(nn_train(&ref, &rows, &trials[t.best].opt, NULL, NULL, NULL, &counting, &st) == NN_OK, "retrain: %s", st.msg))
		{
			T_OK(memcmp(ref.params, m.params, sizeof(float) * m.net.nparams) == 0,
				 "%s: retraining the winning options gives the same weights", name);
			model_free(&ref);
		}
		/* the record survives the model format */
		{
			size_t		len;
			uint8_t    *buf = model_bytes(&m, &len);
			nn_model	back;

			if (T_OK(nn_model_read(&back, buf, len, &counting, &st) == NN_OK, "%s: a tuned model reads back: %s", name, st.msg))
			{
				int			same = back.tuning && back.tuning->ntrials == 4 && back.tuning->best == t.best &&
					back.tuning->strategy == strategy && strcmp(back.tuning->keys[0], "learning_rate") == 0;

				for (int i = 0; same && i < 4; i++)
					same = back.tuning->trials[i].opt.learning_rate == lrs[i] &&
						back.tuning->trials[i].epochs == trials[i].epochs &&
						memcmp(&back.tuning->trials[i].val_acc, &trials[i].val_acc, 4) == 0 &&
						memcmp(&back.tuning->trials[i].val_loss, &trials[i].val_loss, 4) == 0;
				T_OK(same, "%s: every trial's options and figures survive", name);
				nn_model_free(&back, &counting);
			}
			/* a reader that does not know section 9 skips it: the optional bit is set */
			{
				int			found = 0;

				for (size_t k = 24; k + 10 <= len - 4;)
				{
					uint16_t	tag = (uint16_t) (buf[k] | buf[k + 1] << 8);
					uint64_t	sl = 0;

					for (int b = 7; b >= 0; b--)
						sl = sl << 8 | buf[k + 2 + b];
					found |= tag == (NN_SECTION_TUNING | NN_SECTION_OPTIONAL);
					k += 10 + (size_t) sl;
				}
				T_OK(found, "%s: the tuning section is written as optional (0x8009)", name);
			}
			free(buf);
		}
		nn_model_free(&m, &counting);
	}
	/* searches refused before any training */
	quad_search(&t, trials, NN_TUNE_GRID, lrs, 2);
	trials[1].opt.validation_fraction = 0;
	T_OK(nn_tune(&m, &rows, &t, NULL, NULL, NULL, &counting, &st) == NN_ERR_INVALID && strstr(st.msg, "trial 2"),
		 "no hold-out: %s", st.msg);
	quad_search(&t, trials, NN_TUNE_HALVING, lrs, 2);
	t.min_epochs = 4;
	T_OK(nn_tune(&m, &rows, &t, NULL, NULL, NULL, &counting, &st) == NN_ERR_INVALID && strstr(st.msg, "min_epochs"),
		 "halving without enough epochs: %s", st.msg);
	quad_search(&t, trials, NN_TUNE_GRID, lrs, 2);
	snprintf(trials[0].opt.layers, sizeof(trials[0].opt.layers), "conv(8,3) relu dense(4) nonsense");
	T_OK(nn_tune(&m, &rows, &t, NULL, NULL, NULL, &counting, &st) == NN_ERR_INVALID && strstr(st.msg, "trial 1"),
		 "a layer spec that does not parse: %s", st.msg);
	nn_rows_free(&rows, &counting);
	T_OK(counts.live == 0, "everything freed (%ld live)", counts.live);
	free(px);
	free(lab);
}
