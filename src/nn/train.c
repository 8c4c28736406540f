/*
 * train.c: buffered rows and the training loop.
 *
 * Determinism is designed in, not tested in afterwards: rows are first put
 * into a canonical order (by pixel bytes, then label), so the order in
 * which a scan or a set of parallel workers delivered them does not matter;
 * every random choice (initial weights, hold-out split, epoch shuffles,
 * dropout masks) comes from its own seeded nn_rng stream; and the loop does
 * the same floating-point operations in the same order for the same input.
 * The same rows, options and seed therefore give the same model bytes.
 *
 * Pixels stay as bytes (one per pixel) until a batch is assembled, so the
 * memory of training is the rows plus one batch of activations plus the
 * parameters with their gradients and optimizer moments.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "train.h"

/*
 * How often the loops over rows check for interrupts: every ROWS_CHECK rows
 * (a few ms of work for the smallest rows) and, in loops that read every
 * pixel, every BYTES_CHECK bytes.
 */
#define ROWS_CHECK 65536
#define BYTES_CHECK ((size_t) 16 << 20)
/* rows sorted by qsort at a time before the merge passes */
#define SORT_RUN 4096

/* --------------------------------------------------------------- rows */

/* bytes one stored row takes: pixels then an int32 label */
static inline size_t
row_stride(const nn_rows *r)
{
	return (size_t) r->row_bytes + sizeof(int32_t);
}

/* Start an empty row store for rows of row_bytes pixels. */
void
nn_rows_init(nn_rows *r, int32_t row_bytes)
{
	memset(r, 0, sizeof(*r));
	r->row_bytes = row_bytes;
}

/* Rows per chunk: about 4 MB of them, so huge images do not allocate gigabytes. */
int64_t
nn_rows_per_chunk(const nn_rows *r)
{
	int64_t		n = (int64_t) (NN_ROWS_CHUNK_BYTES / row_stride(r));

	return n < 1 ? 1 : n > NN_ROWS_PER_CHUNK ? NN_ROWS_PER_CHUNK : n;
}

/* Make room for one more chunk pointer. */
static int
grow_chunks(nn_rows *r, const nn_allocator *a, nn_status *st)
{
	int64_t		cap = r->chunk_cap ? r->chunk_cap * 2 : 16;
	uint8_t   **c = nn_calloc(a, (size_t) cap, sizeof(uint8_t *));

	if (c == NULL)
		return nn_fail(st, NN_ERR_NOMEM, "out of memory buffering training rows");
	if (r->chunks)
	{
		memcpy(c, r->chunks, (size_t) r->nchunks * sizeof(uint8_t *));
		nn_free(a, r->chunks);
	}
	r->bytes += (size_t) (cap - r->chunk_cap) * sizeof(uint8_t *);
	r->chunks = c;
	r->chunk_cap = cap;
	return NN_OK;
}

/* Append one row. */
int
nn_rows_append(nn_rows *r, const uint8_t *pixels, int32_t label,
			   const nn_allocator *a, nn_status *st)
{
	int64_t		per = nn_rows_per_chunk(r);
	int64_t		slot = r->n % per;
	uint8_t    *dst;

	if (slot == 0 && r->n / per >= r->nchunks)
	{
		size_t		bytes = (size_t) per * row_stride(r);

		if (r->nchunks == r->chunk_cap && grow_chunks(r, a, st) != NN_OK)
			return st->code;
		r->chunks[r->nchunks] = nn_alloc(a, bytes);
		if (r->chunks[r->nchunks] == NULL)
			return nn_fail(st, NN_ERR_NOMEM, "out of memory buffering %lld training rows",
						   (long long) r->n + 1);
		r->nchunks++;
		r->bytes += bytes;
	}
	dst = r->chunks[r->n / per] + (size_t) slot * row_stride(r);
	memcpy(dst, pixels, (size_t) r->row_bytes);
	memcpy(dst + r->row_bytes, &label, sizeof(int32_t));
	r->n++;
	return NN_OK;
}

/* Pixels of row i. */
const uint8_t *
nn_rows_pixels(const nn_rows *r, int64_t i)
{
	int64_t		per = nn_rows_per_chunk(r);

	return r->chunks[i / per] + (size_t) (i % per) * row_stride(r);
}

/* Label of row i. */
int32_t
nn_rows_label(const nn_rows *r, int64_t i)
{
	int32_t		label;

	memcpy(&label, nn_rows_pixels(r, i) + r->row_bytes, sizeof(int32_t));
	return label;
}

/* Append every row of src to dst; src is left as it was (its owner frees it). */
int
nn_rows_merge(nn_rows *dst, const nn_rows *src, const nn_allocator *a, nn_status *st)
{
	if (src->n > 0 && dst->n > 0 && src->dtype != dst->dtype)
		return nn_fail(st, NN_ERR_SHAPE, "some rows are %s and others %s",
					   nn_dtype_name(src->dtype), nn_dtype_name(dst->dtype));
	if (src->n > 0 && dst->n > 0 && src->row_bytes != dst->row_bytes)
		return nn_fail(st, NN_ERR_SHAPE, "pixels have %d bytes in one row but %d in another",
					   src->row_bytes, dst->row_bytes);
	if (dst->n == 0 && src->n > 0)
	{
		dst->row_bytes = src->row_bytes;
		dst->dtype = src->dtype;
	}
	for (int64_t i = 0; i < src->n; i++)
	{
		if (i % ROWS_CHECK == 0 && nn_interrupted())
			return nn_fail(st, NN_ERR_CANCELLED, "merging training rows was cancelled");
		if (nn_rows_append(dst, nn_rows_pixels(src, i), nn_rows_label(src, i), a, st) != NN_OK)
			return st->code;
	}
	dst->skipped += src->skipped;
	return NN_OK;
}

/* Release the row store. */
void
nn_rows_free(nn_rows *r, const nn_allocator *a)
{
	for (int64_t i = 0; i < r->nchunks; i++)
		nn_free(a, r->chunks[i]);
	nn_free(a, r->chunks);
	r->chunks = NULL;
	r->nchunks = r->chunk_cap = 0;
	r->n = 0;
	r->bytes = 0;
}

/* Serialised size: header then the rows back to back. */
size_t
nn_rows_serial_size(const nn_rows *r)
{
	return 24 + (size_t) r->n * row_stride(r);
}

/* Serialise (little-endian host layout for labels; checked on read). */
void
nn_rows_serialize(const nn_rows *r, uint8_t *buf)
{
	uint32_t	rb = (uint32_t) r->row_bytes,
				dt = (uint32_t) r->dtype;
	uint64_t	n = (uint64_t) r->n,
				sk = (uint64_t) r->skipped;
	size_t		stride = row_stride(r);

	memcpy(buf, &rb, 4);
	memcpy(buf + 4, &dt, 4);
	memcpy(buf + 8, &n, 8);
	memcpy(buf + 16, &sk, 8);
	buf += 24;
	for (int64_t c = 0; c < r->nchunks; c++)
	{
		int64_t		per = nn_rows_per_chunk(r);
		int64_t		rows = r->n - c * per;

		if (rows > per)
			rows = per;
		memcpy(buf, r->chunks[c], (size_t) rows * stride);
		buf += (size_t) rows * stride;
	}
}

/* Rebuild a row store from nn_rows_serialize output, checking every length. */
int
nn_rows_deserialize(nn_rows *r, const uint8_t *buf, size_t len,
					const nn_allocator *a, nn_status *st)
{
	uint32_t	rb,
				dt;
	uint64_t	n,
				sk;

	if (len < 24)
		return nn_fail(st, NN_ERR_CORRUPT, "deserialized training state is truncated");
	memcpy(&rb, buf, 4);
	memcpy(&dt, buf + 4, 4);
	memcpy(&n, buf + 8, 8);
	memcpy(&sk, buf + 16, 8);
	if (rb > NN_MAX_ROW_BYTES || sk > (uint64_t) INT64_MAX || dt > NN_DTYPE_FLOAT32 ||
		rb % (uint32_t) nn_dtype_size((int32_t) dt) != 0 ||
		n > (len - 24) / ((uint64_t) rb + 4) || (len - 24) != n * ((uint64_t) rb + 4))
		return nn_fail(st, NN_ERR_CORRUPT, "deserialized training state is truncated or corrupt");
	nn_rows_init(r, (int32_t) rb);
	r->dtype = (int32_t) dt;
	r->skipped = (int64_t) sk;
	buf += 24;
	for (uint64_t i = 0; i < n; i++)
	{
		int32_t		label;

		if (i % ROWS_CHECK == 0 && nn_interrupted())
			return nn_fail(st, NN_ERR_CANCELLED, "reading training rows was cancelled");
		memcpy(&label, buf + rb, 4);
		if (nn_rows_append(r, buf, label, a, st) != NN_OK)
			return st->code;
		buf += rb + 4;
	}
	return NN_OK;
}

/* --------------------------------------------------------------- sorting */

/* qsort_r is not portable; the comparator's context lives here. */
static const nn_rows *sort_rows;

/*
 * Float rows by their values in order, numerically, so that rows of
 * pixel/255 sort as their bytes do (and so train the same model).
 */
static int
cmp_floats(const uint8_t *pa, const uint8_t *pb, int32_t row_bytes)
{
	for (int32_t k = 0; k < row_bytes; k += (int32_t) sizeof(float))
	{
		float		x,
					y;

		memcpy(&x, pa + k, sizeof(float));
		memcpy(&y, pb + k, sizeof(float));
		if (x != y)
			return x < y ? -1 : 1;
	}
	return 0;
}

/*
 * Canonical order: the values (bytes as unsigned, floats numerically),
 * then the bytes (floats equal in value, such as -0 and 0), then label,
 * then position (total order).
 */
static int
cmp_rows(const void *pa, const void *pb)
{
	int64_t		a = *(const int64_t *) pa,
				b = *(const int64_t *) pb;
	const uint8_t *ra = nn_rows_pixels(sort_rows, a),
			   *rb = nn_rows_pixels(sort_rows, b);
	int			c = sort_rows->dtype == NN_DTYPE_FLOAT32 ? cmp_floats(ra, rb, sort_rows->row_bytes) : 0;

	if (c == 0)
		c = memcmp(ra, rb, (size_t) sort_rows->row_bytes);
	if (c != 0)
		return c;
	if (nn_rows_label(sort_rows, a) != nn_rows_label(sort_rows, b))
		return nn_rows_label(sort_rows, a) < nn_rows_label(sort_rows, b) ? -1 : 1;
	return (a > b) - (a < b);
}

/*
 * Merge the sorted runs a[lo..mid) and a[mid..hi) into out[lo..hi),
 * checking for interrupts every ROWS_CHECK rows merged, counted across
 * calls in *since (the first passes merge small runs, the last all rows at
 * once); NN_ERR_CANCELLED when asked to stop.
 */
static int
merge_runs(int64_t *out, const int64_t *a, int64_t lo, int64_t mid, int64_t hi, int64_t *since)
{
	int64_t		i = lo,
				j = mid,
				k = lo;

	while (i < mid && j < hi)
	{
		if (++*since >= ROWS_CHECK)
		{
			*since = 0;
			if (nn_interrupted())
				return NN_ERR_CANCELLED;
		}
		out[k++] = cmp_rows(&a[j], &a[i]) < 0 ? a[j++] : a[i++];
	}
	while (i < mid)
		out[k++] = a[i++];
	while (j < hi)
		out[k++] = a[j++];
	return NN_OK;
}

/*
 * Put idx[0..n) (row numbers) into canonical order. A qsort over millions
 * of rows cannot be interrupted, so: runs of SORT_RUN rows by qsort, then
 * bottom-up merge passes through tmp (n slots), checking for interrupts
 * between runs and inside the merges. The order is total, so the result is
 * the one any correct sort gives.
 */
static int
sort_canonical(int64_t *idx, int64_t *tmp, int64_t n, const nn_rows *rows, nn_status *st)
{
	int64_t    *src = idx,
			   *dst = tmp;
	int64_t		since = 0;

	sort_rows = rows;
	for (int64_t lo = 0; lo < n; lo += SORT_RUN)
	{
		if (nn_interrupted())
			goto cancelled;
		qsort(idx + lo, (size_t) (n - lo < SORT_RUN ? n - lo : SORT_RUN), sizeof(int64_t), cmp_rows);
	}
	for (int64_t width = SORT_RUN; width < n; width *= 2)
	{
		int64_t    *t;

		for (int64_t lo = 0; lo < n; lo += 2 * width)
		{
			int64_t		mid = lo + width < n ? lo + width : n;
			int64_t		hi = lo + 2 * width < n ? lo + 2 * width : n;

			if (merge_runs(dst, src, lo, mid, hi, &since) != NN_OK)
				goto cancelled;
		}
		t = src;
		src = dst;
		dst = t;
	}
	if (src != idx)
		memcpy(idx, src, (size_t) n * sizeof(int64_t));
	sort_rows = NULL;
	return NN_OK;

cancelled:
	sort_rows = NULL;
	return nn_fail(st, NN_ERR_CANCELLED, "sorting training rows was cancelled");
}

/* Fisher-Yates shuffle of idx[0..n) from rng; NN_ERR_CANCELLED if interrupted. */
static int
shuffle(int64_t *idx, int64_t n, nn_rng *rng)
{
	for (int64_t i = n - 1; i > 0; i--)
	{
		int64_t		j = (int64_t) nn_rng_below(rng, (uint32_t) (i + 1));
		int64_t		t = idx[i];

		if (i % ROWS_CHECK == 0 && nn_interrupted())
			return NN_ERR_CANCELLED;
		idx[i] = idx[j];
		idx[j] = t;
	}
	return NN_OK;
}

/* --------------------------------------------------------------- training */

/*
 * Parts a batch of B images is split into: a constant, not the thread
 * count, so that the model does not depend on how many threads ran it
 * (threads take parts round-robin).
 */
static int
train_parts(int B)
{
	return B < NN_TRAIN_PARTS ? B : NN_TRAIN_PARTS;
}

/*
 * Parts that get a work of their own: every part when an op couples them
 * (each part's forward state waits for the batch's statistics), else one
 * per thread, which runs its parts' whole steps one after another on it.
 */
static int
train_works(const nn_net *net, int parts, int threads)
{
	if (nn_net_batch_coupled(net))
		return parts;
	return threads < 1 ? 1 : threads < parts ? threads : parts;
}

/* Bytes of working memory nn_train takes beyond the n rows themselves (saturating). */
size_t
nn_train_work_bytes(const nn_net *net, const nn_options *opt, int64_t n)
{
	int			parts = train_parts(opt->batch_size);
	/* threads 0 takes the session's setting: at most one work per part */
	int			works = train_works(net, parts, opt->threads > 0 ? opt->threads : parts);
	int			per_lane = (opt->batch_size + parts - 1) / parts;
	size_t		part = nn_work_bytes(net, per_lane, 1),
				params = net->nparams * sizeof(float),
				total;

	/* the works, each part's gradients; params, moments, the model's params */
	if (part > SIZE_MAX / 8 / NN_TRAIN_PARTS)
		return SIZE_MAX;
	total = (size_t) works * part + (size_t) parts * params + 4 * params;
	/* augmented copies of each part's rows */
	if (opt->augment_hflip || opt->augment_shift)
		total += (size_t) parts * per_lane * (size_t) (net->input.h * net->input.w * net->input.c);
	/* the row order and, while sorting, its merge buffer */
	return total + 2 * (size_t) n * sizeof(int64_t);
}

/* Everything nn_train allocates, so one cleanup frees it. */
/* One data-parallel part: its share of a batch, its buffers, its gradients. */
typedef struct part
{
	nn_work		w;				/* for up to ceil(B / parts) images (parts with a work) */
	nn_work    *pw;				/* the work it runs on: its own, or its thread's */
	float	   *grads;
	const uint8_t **batch;
	uint8_t    *aug;			/* augmented copies of its rows (when augmenting) */
	nn_rng		rng;			/* dropout */
	nn_rng		aug_rng;		/* augmentation draws, apart so dropout's are unchanged */
	nn_timing  *t;				/* part 0 reports its phase times; others NULL */
	double		loss;
	int64_t		correct;
	int			status;			/* of its last whole step */
} part;

typedef struct train_mem
{
	part		parts[NN_TRAIN_PARTS];
	int			nparts;			/* logical parts (train_parts) */
	int			part_b[NN_TRAIN_PARTS];	/* images of the current batch per part */
	int			nthreads;		/* threads that run them, round-robin */
	int64_t    *idx;
	float	   *m;
	float	   *v;
} train_mem;

/* free a train_mem */
static void parts_free(train_mem *tm, const nn_allocator *a);

static void
train_mem_free(train_mem *tm, const nn_allocator *a)
{
	parts_free(tm, a);
	nn_free(a, tm->idx);
	nn_free(a, tm->m);
	nn_free(a, tm->v);
}

/* What every part of one training step shares. */
typedef struct step_ctx
{
	const nn_net *net;
	float	   *params;
	float	   *buffers;		/* running statistics, updated once per batch */
	const nn_rows *rows;
	const nn_norm *norm;
	const int64_t *idx;			/* the batch's row numbers */
	int			b_n;			/* images in the batch */
	float		scale;			/* 1 / b_n: the mean over the whole batch */
	train_mem  *tm;
	nn_optim   *optim;
	float		lr;
	int			hflip;			/* augmentation (options augment_hflip, augment_shift) */
	int			shift;
} step_ctx;

/*
 * src (h x w x c bytes) into dst, flipped left-right with probability 1/2
 * when hflip and shifted by (dy, dx) uniform in [-shift, shift] with zeros
 * where the shift uncovers; draws in this order, only those enabled.
 */
static void
augment_row(uint8_t *restrict dst, const uint8_t *restrict src, nn_shape in, int esize,
			int hflip, int shift, nn_rng *rng)
{
	size_t		px = (size_t) in.c * esize;	/* bytes of one pixel */

	int			flip = hflip ? (int) nn_rng_below(rng, 2) : 0;
	int			dy = shift ? (int) nn_rng_below(rng, 2 * shift + 1) - shift : 0;
	int			dx = shift ? (int) nn_rng_below(rng, 2 * shift + 1) - shift : 0;

	for (int y = 0; y < in.h; y++)
		for (int x = 0; x < in.w; x++)
		{
			int			sy = y - dy,
						sx = (flip ? in.w - 1 - x : x) - dx;
			uint8_t    *d = dst + ((size_t) y * in.w + x) * px;

			if (sy < 0 || sy >= in.h || sx < 0 || sx >= in.w)
				memset(d, 0, px);	/* 0 and 0.0f alike */
			else
				memcpy(d, src + ((size_t) sy * in.w + sx) * px, px);
		}
}

/* Part l's images of the batch: pixels into its input, labels, gradients zeroed. */
static void
part_load(void *arg, int l)
{
	step_ctx   *c = (step_ctx *) arg;
	part	   *pt = &c->tm->parts[l];
	int			lo = (int) ((int64_t) c->b_n * l / c->tm->nparts);
	int			B = c->tm->part_b[l];

	pt->loss = 0;
	pt->correct = 0;
	memset(pt->grads, 0, c->net->nparams * sizeof(float));
	for (int b = 0; b < B; b++)
	{
		pt->batch[b] = nn_rows_pixels(c->rows, c->idx[lo + b]);
		pt->pw->labels[b] = nn_rows_label(c->rows, c->idx[lo + b]);
		if (c->hflip || c->shift)
		{
			uint8_t    *d = pt->aug + (size_t) b * c->rows->row_bytes;

			augment_row(d, pt->batch[b], c->net->input, nn_dtype_size(c->rows->dtype),
						c->hflip, c->shift, &pt->aug_rng);
			pt->batch[b] = d;
		}
	}
	if (B > 0)
		nn_load_pixels(pt->pw->act[0], pt->batch, B, c->net->input, c->norm);
}

/* Part l's loss over its logits. */
static void
part_loss(void *arg, int l)
{
	step_ctx   *c = (step_ctx *) arg;
	part	   *pt = &c->tm->parts[l];

	if (c->tm->part_b[l] > 0)
		pt->loss = nn_net_loss(c->net, pt->pw, pt->pw->labels, c->tm->part_b[l], &pt->correct, pt->t);
}

/*
 * Part l's whole step when no op couples the parts: its images loaded,
 * forward, loss and backward in one go (one pool run per step, which is
 * what small networks on small batches need).
 */
static void
part_whole_step(void *arg, int l)
{
	step_ctx   *c = (step_ctx *) arg;
	part	   *pt = &c->tm->parts[l];
	int			B = c->tm->part_b[l];

	part_load(arg, l);
	pt->status = NN_OK;
	if (B == 0)
		return;
	pt->status = nn_net_forward(c->net, c->params, c->buffers, pt->pw, B, 1, &pt->rng, pt->t);
	if (pt->status != NN_OK)
		return;
	pt->loss = nn_net_loss(c->net, pt->pw, pt->pw->labels, B, &pt->correct, pt->t);
	pt->status = nn_net_backward(c->net, c->params, pt->grads, pt->pw, B, c->scale, pt->t);
}

/* what run_parts hands each thread */
typedef struct parts_run
{
	nn_part_fn	fn;
	void	   *ctx;
	int			nparts;
	int			nthreads;
} parts_run;

/* Thread t's parts of one run: t, t + threads, ... */
static void
thread_parts(void *arg, int t)
{
	parts_run  *r = (parts_run *) arg;

	for (int l = t; l < r->nparts; l += r->nthreads)
		r->fn(r->ctx, l);
}

/* nn_parts_run over the pool: the threads take the parts in turn */
static void
run_parts(nn_part_fn fn, void *ctx, int nparts, void *run_ctx)
{
	parts_run	r = {fn, ctx, nparts, *(int *) run_ctx};

	nn_parallel_run(thread_parts, &r, r.nthreads);
}

/*
 * One step's forward, loss and backward over the parts of the batch;
 * batch-wide statistics (batch norm) are those of the whole batch.
 */
static int
train_step(step_ctx *c)
{
	train_mem  *tm = c->tm;
	nn_work    *w[NN_TRAIN_PARTS];
	nn_rng	   *rng[NN_TRAIN_PARTS];
	nn_timing  *t[NN_TRAIN_PARTS];
	float	   *grads[NN_TRAIN_PARTS];

	for (int l = 0; l < tm->nparts; l++)
	{
		tm->part_b[l] = (int) ((int64_t) c->b_n * (l + 1) / tm->nparts) -
			(int) ((int64_t) c->b_n * l / tm->nparts);
		w[l] = tm->parts[l].pw;
		rng[l] = &tm->parts[l].rng;
		t[l] = tm->parts[l].t;
		grads[l] = tm->parts[l].grads;
	}
	if (!nn_net_batch_coupled(c->net))
	{
		/* no batch-wide op: each part is independent, one run does it all */
		run_parts(part_whole_step, c, tm->nparts, &tm->nthreads);
		for (int l = 0; l < tm->nparts; l++)
			if (tm->parts[l].status != NN_OK)
				return tm->parts[l].status;
		return NN_OK;
	}
	run_parts(part_load, c, tm->nparts, &tm->nthreads);
	if (nn_net_forward_parts(c->net, c->params, c->buffers, w, tm->part_b, tm->nparts, rng, t,
							 run_parts, &tm->nthreads) != NN_OK)
		return NN_ERR_CANCELLED;
	run_parts(part_loss, c, tm->nparts, &tm->nthreads);
	return nn_net_backward_parts(c->net, c->params, grads, w, tm->part_b, tm->nparts, c->scale, t,
								 run_parts, &tm->nthreads);
}

/*
 * Thread t's part of the update: for its slice of the parameters, add the
 * other parts' gradients to part 0's in part order, then take the step.
 * Every parameter is computed the same way whatever the slicing.
 */
static void
thread_update(void *arg, int t)
{
	step_ctx   *c = (step_ctx *) arg;
	train_mem  *tm = c->tm;
	size_t		n = c->net->nparams,
				lo = n * (size_t) t / (size_t) tm->nthreads,
				hi = n * (size_t) (t + 1) / (size_t) tm->nthreads;
	float	   *restrict g = tm->parts[0].grads;

	for (int k = 1; k < tm->nparts; k++)
	{
		const float *restrict gk = tm->parts[k].grads;

		for (size_t i = lo; i < hi; i++)
			g[i] += gk[i];
	}
	nn_optim_apply(c->optim, c->params, g, lo, hi, c->lr);
}

/* z-score statistics of pixel/255 over the given rows of bytes (integer sums per row, fixed order) */
static int
zscore_stats(nn_norm *norm, const nn_rows *rows, const int64_t *idx, int64_t n)
{
	double		sum = 0,
				sq = 0,
				count = (double) n * rows->row_bytes;
	size_t		since = 0;

	for (int64_t i = 0; i < n; i++)
	{
		const uint8_t *p = nn_rows_pixels(rows, idx[i]);
		uint64_t	s = 0,
					q = 0;

		since += (size_t) rows->row_bytes;
		if (since >= BYTES_CHECK || i % ROWS_CHECK == 0)
		{
			since = 0;
			if (nn_interrupted())
				return NN_ERR_CANCELLED;
		}

		for (int32_t k = 0; k < rows->row_bytes; k++)
		{
			s += p[k];
			q += (uint64_t) p[k] * p[k];
		}
		sum += (double) s;
		sq += (double) q;
	}
	sum /= 255.0;
	sq /= 255.0 * 255.0;
	norm->mean = (float) (sum / count);
	norm->std = (float) sqrt(fmax(sq / count - (sum / count) * (sum / count), 0.0));
	if (!(norm->std > 1e-6f))
		norm->std = 1.0f;
	return NN_OK;
}

/*
 * The statistics of float rows (double sums in a fixed order): zscore's
 * mean and standard deviation, or minmax's minimum and range, as the
 * (v - mean) / std that nn_load_pixels applies. A constant input gets a
 * divisor of 1; statistics that overflow a float are refused.
 */
static int
float_stats(nn_norm *norm, const nn_rows *rows, const int64_t *idx, int64_t n, nn_status *st)
{
	int32_t		nv = rows->row_bytes / (int32_t) sizeof(float);
	double		sum = 0,
				sq = 0,
				lo = INFINITY,
				hi = -INFINITY,
				count = (double) n * nv;
	size_t		since = 0;

	for (int64_t i = 0; i < n; i++)
	{
		const uint8_t *p = nn_rows_pixels(rows, idx[i]);

		since += (size_t) rows->row_bytes;
		if (since >= BYTES_CHECK || i % ROWS_CHECK == 0)
		{
			since = 0;
			if (nn_interrupted())
				return nn_fail(st, NN_ERR_CANCELLED, "computing the normalisation statistics was cancelled");
		}
		for (int32_t k = 0; k < nv; k++)
		{
			float		v;

			memcpy(&v, p + (size_t) k * sizeof(float), sizeof(float));
			sum += v;
			sq += (double) v * v;
			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
		}
	}
	if (norm->mode == NN_NORM_ZSCORE)
	{
		norm->mean = (float) (sum / count);
		norm->std = (float) sqrt(fmax(sq / count - (sum / count) * (sum / count), 0.0));
	}
	else
	{
		norm->mean = (float) lo;
		norm->std = (float) (hi - lo);
	}
	if (!isfinite(norm->mean) || !isfinite(norm->std))
		return nn_fail(st, NN_ERR_DATA, "the input values are too large to normalise (%s statistics overflow a float)",
					   nn_norm_name(norm->mode));
	if (!(norm->std > 1e-6f * fmaxf(1.0f, fabsf(norm->mean))))
		norm->std = 1.0f;
	return NN_OK;
}

/* Accuracy of params over idx[0..n) rows, inference mode; their mean loss in *loss. */
static double
accuracy(const nn_net *net, const float *params, float *buffers, const nn_norm *norm, nn_work *w,
		 const nn_rows *rows, const int64_t *idx, int64_t n, const uint8_t **batch,
		 const nn_train_hooks *hooks, double *loss)
{
	int64_t		correct = 0;
	double		loss_sum = 0;

	for (int64_t s = 0; s < n; s += w->B)
	{
		int			B = (int) ((n - s) < w->B ? (n - s) : w->B);

		for (int b = 0; b < B; b++)
		{
			batch[b] = nn_rows_pixels(rows, idx[s + b]);
			w->labels[b] = nn_rows_label(rows, idx[s + b]);
		}
		nn_load_pixels(w->act[0], batch, B, net->input, norm);
		if (nn_net_forward(net, params, buffers, w, B, 0, NULL, NULL) != NN_OK)
			return NAN;
		loss_sum += nn_net_loss(net, w, w->labels, B, &correct, NULL);
		if (hooks && hooks->on_batch && hooks->on_batch(hooks->ctx))
			return NAN;
	}
	*loss = n ? loss_sum / (double) n : NAN;
	return n ? (double) correct / (double) n : NAN;
}

/* Tell the host which phase starts. */
static void
phase(const nn_train_hooks *hooks, nn_train_phase p)
{
	if (hooks && hooks->on_phase)
		hooks->on_phase(hooks->ctx, p);
}

/*
 * The row order training starts from: every row number, sorted into the
 * canonical order, then (with a hold-out) shuffled by the split's stream
 * so that the first nval are the validation rows.
 */
static int
order_rows(int64_t *idx, const nn_rows *rows, int64_t nval, nn_rng *rng_split,
		   const nn_train_hooks *hooks, const nn_allocator *a, nn_status *st)
{
	int64_t		n = rows->n;
	int64_t    *tmp;
	int			rc;

	phase(hooks, NN_PHASE_SORTING);
	for (int64_t i = 0; i < n; i++)
		idx[i] = i;
	tmp = n > SORT_RUN ? nn_calloc(a, (size_t) n, sizeof(int64_t)) : NULL;
	if (n > SORT_RUN && tmp == NULL)
		return nn_fail(st, NN_ERR_NOMEM, "out of memory sorting %lld training rows", (long long) n);
	rc = sort_canonical(idx, tmp, n, rows, st);
	nn_free(a, tmp);
	if (rc != NN_OK || nval == 0)
		return rc;
	phase(hooks, NN_PHASE_SPLITTING);
	if (shuffle(idx, n, rng_split) != NN_OK)
		return nn_fail(st, NN_ERR_CANCELLED, "splitting off the validation rows was cancelled");
	return NN_OK;
}

/* everything one training holds, so that its steps fit a screen each */
typedef struct train_run
{
	const nn_rows *rows;
	const nn_options *opt;
	const nn_train_hooks *hooks;
	nn_timing  *timing;
	const nn_allocator *a;
	nn_status  *st;
	nn_model   *out;
	nn_net		net;
	nn_shape	in;
	train_mem	tm;
	nn_optim	optim;
	int64_t		nval,
				ntrain,
				steps_per_epoch,
				total_steps,
				step;
	nn_rng		rng_init,
				rng_split,
				rng_shuffle;
	double		t_start;
} train_run;

/* The network the options describe on the rows' input, checked against init. */
static int
train_network(train_run *r, const nn_model *init)
{
	const nn_options *opt = r->opt;
	char		spec[NN_MAX_SPEC];

	if (r->rows->n == 0)
		return nn_fail(r->st, NN_ERR_INVALID, "no training rows: every row was NULL or the input was empty");
	if (opt->input.h > 0)
	{
		r->in = opt->input;
		if ((int64_t) r->in.h * r->in.w * r->in.c * nn_dtype_size(r->rows->dtype) != r->rows->row_bytes)
			return nn_fail(r->st, NN_ERR_SHAPE, "pixels have %d values but input [%d, %d, %d] needs %lld",
						   r->rows->row_bytes / nn_dtype_size(r->rows->dtype), r->in.h, r->in.w, r->in.c,
						   (long long) r->in.h * r->in.w * r->in.c);
	}
	else if (nn_infer_input(&r->in, r->rows->row_bytes / nn_dtype_size(r->rows->dtype), r->st) != NN_OK)
		return r->st->code;
	nn_options_spec(opt, spec, sizeof(spec));
	if (nn_net_build(&r->net, spec, r->in, opt->classes, r->st) != NN_OK)
		return r->st->code;
	if (init)
	{
		if (init->kind != NN_BLOB_MODEL)
			return nn_fail(r->st, NN_ERR_INVALID, "the initial model is a gradient blob, not a model");
		if (init->norm.dtype != r->rows->dtype)
			return nn_fail(r->st, NN_ERR_SHAPE, "the initial model takes %s inputs but the rows are %s",
						   nn_dtype_name(init->norm.dtype), nn_dtype_name(r->rows->dtype));
		if (!nn_net_same(&init->net, &r->net, NULL, 0))
			return nn_fail(r->st, NN_ERR_SHAPE,
						   "the initial model's architecture (%s on %dx%dx%d, %d classes) differs from the options' (%s on %dx%dx%d, %d classes)",
						   init->net.spec, init->net.input.h, init->net.input.w, init->net.input.c,
						   init->net.classes, r->net.spec, r->in.h, r->in.w, r->in.c, r->net.classes);
	}
	return NN_OK;
}

/* The hold-out split and the step counts. */
static int
train_split(train_run *r)
{
	int64_t		n = r->rows->n;
	int			B = r->opt->batch_size;

	r->nval = (int64_t) floor((double) n * r->opt->validation_fraction);
	r->ntrain = n - r->nval;
	if (r->ntrain < 1)
		return nn_fail(r->st, NN_ERR_INVALID, "validation_fraction %g leaves no training rows of %lld",
					   r->opt->validation_fraction, (long long) n);
	if (B > r->ntrain)
		return nn_fail(r->st, NN_ERR_INVALID, "batch_size %d is larger than the %lld training rows",
					   B, (long long) r->ntrain);
	r->steps_per_epoch = (r->ntrain + B - 1) / B;
	r->total_steps = r->steps_per_epoch * r->opt->epochs;
	return NN_OK;
}

/* The working memory of a batch's parts: activations, gradients, row pointers, augmented copies. */
static int
parts_alloc(train_run *r)
{
	train_mem  *tm = &r->tm;
	const nn_options *opt = r->opt;
	int			per_part = (opt->batch_size + tm->nparts - 1) / tm->nparts;
	int			augment = opt->augment_hflip || opt->augment_shift;
	size_t		np = r->net.nparams;
	int			works = train_works(&r->net, tm->nparts, tm->nthreads);

	for (int l = 0; l < tm->nparts; l++)
	{
		part	   *pt = &tm->parts[l];

		/* thread t runs parts t, t + nthreads, ...: part l shares work l % works */
		pt->pw = &tm->parts[l % works].w;
		if (l < works && nn_work_alloc(&pt->w, &r->net, per_part, 1, r->a, r->st) != NN_OK)
			return r->st->code;
		pt->grads = nn_calloc(r->a, np, sizeof(float));
		pt->batch = nn_calloc(r->a, (size_t) per_part, sizeof(uint8_t *));
		if (augment)
			pt->aug = nn_alloc(r->a, (size_t) per_part * r->rows->row_bytes);
		if (!pt->grads || !pt->batch || (augment && !pt->aug))
			return nn_fail(r->st, NN_ERR_NOMEM, "out of memory setting up training of %zu parameters", np);
	}
	return NN_OK;
}

/* Release what parts_alloc took (a paused run keeps everything else). */
static void
parts_free(train_mem *tm, const nn_allocator *a)
{
	for (int l = 0; l < tm->nparts; l++)
	{
		part	   *pt = &tm->parts[l];

		nn_work_free(&pt->w, a);
		nn_free(a, pt->grads);
		nn_free(a, pt->batch);
		nn_free(a, pt->aug);
		pt->grads = NULL;
		pt->batch = NULL;
		pt->aug = NULL;
	}
}

/* Memory: the parts of a batch, the threads that run them (single-threaded BLAS), the model. */
static int
train_alloc(train_run *r)
{
	train_mem  *tm = &r->tm;
	const nn_options *opt = r->opt;
	const nn_train_hooks *hooks = r->hooks;
	nn_model   *out = r->out;
	int32_t		want = opt->threads > 0 ? opt->threads : 1;
	size_t		np = r->net.nparams;

	if (hooks && hooks->set_threads)
	{
		want = hooks->set_threads(hooks->ctx, opt->threads);
		hooks->set_threads(hooks->ctx, 1);
	}
	tm->nparts = train_parts(opt->batch_size);
	if (want > tm->nparts)
		want = tm->nparts;
	tm->nthreads = nn_parallel_threads(want < 1 ? 1 : want);
	if (parts_alloc(r) != NN_OK)
		return r->st->code;
	for (int l = 0; l < tm->nparts; l++)
	{
		part	   *pt = &tm->parts[l];

		nn_rng_seed(&pt->rng, opt->seed ^ 0xc2b2ae3d27d4eb4fULL ^ ((uint64_t) l * 0x9e3779b97f4a7c15ULL));
		nn_rng_seed(&pt->aug_rng, opt->seed ^ 0x165667b19e3779f9ULL ^ ((uint64_t) l * 0x85ebca77c2b2ae63ULL));
		pt->t = (l % tm->nthreads) == 0 ? r->timing : NULL;	/* thread 0's parts */
	}
	tm->idx = nn_calloc(r->a, (size_t) r->rows->n, sizeof(int64_t));
	out->params = nn_calloc(r->a, np, sizeof(float));
	out->buffers = r->net.nbuffers ? nn_calloc(r->a, r->net.nbuffers, sizeof(float)) : NULL;
	out->history = nn_calloc(r->a, (size_t) opt->epochs, sizeof(nn_epoch));
	if (opt->optimizer != NN_OPT_SGD)
		tm->m = nn_calloc(r->a, np, sizeof(float));
	if (opt->optimizer == NN_OPT_ADAM)
		tm->v = nn_calloc(r->a, np, sizeof(float));
	if (!tm->idx || !out->params || !out->history || (r->net.nbuffers && !out->buffers) ||
		(opt->optimizer != NN_OPT_SGD && !tm->m) || (opt->optimizer == NN_OPT_ADAM && !tm->v))
		return nn_fail(r->st, NN_ERR_NOMEM, "out of memory setting up training of %zu parameters", np);
	return NN_OK;
}

/* The model's description, normalisation and starting parameters (init's, or fresh). */
static int
train_start(train_run *r, const nn_model *init)
{
	nn_model   *out = r->out;
	const nn_options *opt = r->opt;
	const nn_net *net = &r->net;

	out->kind = NN_BLOB_MODEL;
	out->net = *net;
	out->options = *opt;
	snprintf(out->options.layers, sizeof(out->options.layers), "%s", net->spec);
	out->options.input = r->in;
	if (init)
	{
		out->norm = init->norm;
		memcpy(out->params, init->params, net->nparams * sizeof(float));
		if (net->nbuffers)
			memcpy(out->buffers, init->buffers, net->nbuffers * sizeof(float));
	}
	else
	{
		int			floats = r->rows->dtype == NN_DTYPE_FLOAT32;

		out->norm.dtype = r->rows->dtype;
		out->norm.mode = opt->normalize != NN_NORM_AUTO ? opt->normalize :
			floats ? NN_NORM_NONE : NN_NORM_MINMAX;
		out->norm.mean = 0;
		out->norm.std = 1;
		phase(r->hooks, NN_PHASE_STATISTICS);
		if (floats && out->norm.mode != NN_NORM_NONE)
		{
			if (float_stats(&out->norm, r->rows, r->tm.idx + r->nval, r->ntrain, r->st) != NN_OK)
				return r->st->code;
		}
		else if (out->norm.mode == NN_NORM_ZSCORE &&
				 zscore_stats(&out->norm, r->rows, r->tm.idx + r->nval, r->ntrain) != NN_OK)
			return nn_fail(r->st, NN_ERR_CANCELLED, "computing the z-score statistics was cancelled");
		nn_net_init_params(net, out->params, out->buffers, &r->rng_init);
	}
	out->options.normalize = out->norm.mode;
	out->rows_trained = r->rows->n;
	out->rows_skipped = r->rows->skipped;

	memset(&r->optim, 0, sizeof(r->optim));
	r->optim.kind = opt->optimizer;
	r->optim.lr = opt->learning_rate;
	r->optim.momentum = opt->optimizer == NN_OPT_ADAM ? 0.9f : opt->momentum;
	r->optim.beta2 = 0.999f;
	r->optim.eps = 1e-8f;
	r->optim.weight_decay = opt->weight_decay;
	r->optim.m = r->tm.m;
	r->optim.v = r->tm.v;
	return NN_OK;
}

/* One epoch: shuffle, every batch's step and update, the figures, the hold-out. */
static int
train_epoch(train_run *r, int32_t epoch)
{
	const nn_options *opt = r->opt;
	const nn_train_hooks *hooks = r->hooks;
	nn_model   *out = r->out;
	train_mem  *tm = &r->tm;
	double		t_epoch = nn_now(),
				loss_sum = 0,
				secs;
	int64_t		correct = 0;
	int64_t    *train_idx = tm->idx + r->nval;
	nn_epoch   *e = &out->history[epoch];
	int			B = opt->batch_size;

	if (shuffle(train_idx, r->ntrain, &r->rng_shuffle) != NN_OK)
		return nn_fail(r->st, NN_ERR_CANCELLED, "shuffling the training rows was cancelled");
	for (int64_t s = 0; s < r->ntrain; s += B)
	{
		int			b_n = (int) ((r->ntrain - s) < B ? (r->ntrain - s) : B);
		float		lr = nn_lr_at(opt->lr_schedule, opt->learning_rate, r->step, r->total_steps,
								  r->steps_per_epoch);
		double		t_upd;
		step_ctx	c = {&r->net, out->params, out->buffers, r->rows, &out->norm, train_idx + s, b_n,
			1.0f / (float) b_n, tm, &r->optim, lr, opt->augment_hflip, opt->augment_shift};

		if (train_step(&c) != NN_OK || nn_interrupted())
			return nn_fail(r->st, NN_ERR_CANCELLED, "training was cancelled in epoch %d", epoch + 1);
		for (int l = 0; l < tm->nparts; l++)
		{
			loss_sum += tm->parts[l].loss;
			correct += tm->parts[l].correct;
		}
		t_upd = nn_now();
		nn_optim_begin(&r->optim);
		nn_parallel_run(thread_update, &c, tm->nthreads);
		if (r->timing)
		{
			r->timing->update_s += nn_now() - t_upd;
			r->timing->batches++;
			r->timing->images += b_n;
		}
		r->step++;
		if (hooks && hooks->on_batch && hooks->on_batch(hooks->ctx))
			return nn_fail(r->st, NN_ERR_CANCELLED, "training was cancelled");
	}
	if (!isfinite(loss_sum))
		return nn_fail(r->st, NN_ERR_DATA,
					   "training diverged in epoch %d: the loss is not finite; lower the learning_rate", epoch + 1);
	e->loss = (float) (loss_sum / (double) r->ntrain);
	e->train_acc = (float) ((double) correct / (double) r->ntrain);
	e->val_acc = NAN;
	e->val_loss = NAN;
	if (r->nval > 0)
	{
		double		val_loss = NAN;

		e->val_acc = (float) accuracy(&r->net, out->params, out->buffers, &out->norm, &tm->parts[0].w, r->rows,
									  tm->idx, r->nval, tm->parts[0].batch, hooks, &val_loss);
		e->val_loss = (float) val_loss;
		if (isnan(e->val_acc))
			return nn_fail(r->st, NN_ERR_CANCELLED, "training was cancelled");
	}
	secs = nn_now() - t_epoch;
	e->seconds = opt->record_times ? (float) secs : 0.0f;
	out->nepochs = epoch + 1;
	if (hooks && hooks->on_epoch)
	{
		double		elapsed = nn_now() - r->t_start;

		hooks->on_epoch(hooks->ctx, epoch + 1, opt->epochs, e, (double) r->ntrain / (secs > 0 ? secs : 1e-9),
						elapsed / (epoch + 1) * (opt->epochs - epoch - 1));
	}
	return NN_OK;
}

/* A run that stops between epochs and goes on (train.h). */
struct nn_trainer
{
	train_run	r;
	int32_t		done;			/* epochs trained */
	int			paused;			/* parts_free ran; parts_alloc before the next epoch */
};

/* Start a run: check, allocate, order and split the rows, normalise, initialise (see train.h). */
int
nn_trainer_begin(nn_trainer **trp, nn_model *out, const nn_rows *rows, const nn_options *opt,
				 const nn_model *init, const nn_train_hooks *hooks, nn_timing *timing,
				 const nn_allocator *a, nn_status *st)
{
	nn_trainer *tr = nn_calloc(a, 1, sizeof(nn_trainer));
	train_run  *r;
	int			rc;

	*trp = NULL;
	memset(out, 0, sizeof(*out));
	if (tr == NULL)
		return nn_fail(st, NN_ERR_NOMEM, "out of memory starting a training run");
	r = &tr->r;
	r->rows = rows;
	r->opt = opt;
	r->hooks = hooks;
	r->timing = timing;
	r->a = a;
	r->st = st;
	r->out = out;
	r->t_start = nn_now();
	rc = train_network(r, init);
	if (rc == NN_OK)
		rc = train_split(r);
	if (rc == NN_OK)
	{
		nn_rng_seed(&r->rng_init, opt->seed);
		nn_rng_seed(&r->rng_split, opt->seed ^ 0x5bd1e9955bd1e995ULL);
		nn_rng_seed(&r->rng_shuffle, opt->seed ^ 0x9e3779b97f4a7c15ULL);
		/* canonical order, then the seeded split: validation rows idx[0..nval), training rows after */
		rc = train_alloc(r);
	}
	if (rc == NN_OK)
		rc = order_rows(r->tm.idx, rows, r->nval, &r->rng_split, hooks, a, st);
	if (rc == NN_OK)
		rc = train_start(r, init);
	if (rc != NN_OK)
	{
		nn_trainer_free(tr);
		return rc;
	}
	*trp = tr;
	return NN_OK;
}

/* Train on until epochs epochs are done (at most the options' epochs). */
int
nn_trainer_run(nn_trainer *tr, int32_t epochs)
{
	train_run  *r = &tr->r;
	int			rc = NN_OK;

	if (epochs > r->opt->epochs)
		epochs = r->opt->epochs;
	if (tr->done >= epochs)
		return NN_OK;
	if (tr->paused)
	{
		if (parts_alloc(r) != NN_OK)
			return r->st->code;
		tr->paused = 0;
	}
	if (tr->done == 0)
		phase(r->hooks, NN_PHASE_TRAINING);
	while (rc == NN_OK && tr->done < epochs)
	{
		rc = train_epoch(r, tr->done);
		if (rc == NN_OK)
			tr->done++;
	}
	return rc;
}

/* Epochs trained so far. */
int32_t
nn_trainer_epochs(const nn_trainer *tr)
{
	return tr->done;
}

/* Release the working memory of a batch until the next nn_trainer_run. */
void
nn_trainer_pause(nn_trainer *tr)
{
	if (!tr->paused)
		parts_free(&tr->r.tm, tr->r.a);
	tr->paused = 1;
}

/* Bytes a paused run keeps: parameters, buffers, moments, row order, history. */
size_t
nn_trainer_state_bytes(const nn_net *net, const nn_options *opt, int64_t n)
{
	size_t		np = net->nparams;
	size_t		moments = opt->optimizer == NN_OPT_ADAM ? 2 : opt->optimizer == NN_OPT_SGD ? 0 : 1;

	return sizeof(nn_trainer) + (np * (1 + moments) + net->nbuffers) * sizeof(float) +
		(size_t) n * sizeof(int64_t) + (size_t) opt->epochs * sizeof(nn_epoch);
}

/* Finish a run: the model in out is complete, the run's memory freed. */
int
nn_trainer_end(nn_trainer *tr)
{
	train_run  *r = &tr->r;
	nn_model   *out = r->out;
	const nn_allocator *a = r->a;

	out->train_seconds = r->opt->record_times ? nn_now() - r->t_start : 0.0;
	if (!r->opt->record_times)
		for (int i = 0; i < out->nepochs; i++)
			out->history[i].seconds = 0;
	train_mem_free(&r->tm, a);
	nn_free(a, tr);
	return NN_OK;
}

/* Abandon a run: its memory and its model's. */
void
nn_trainer_free(nn_trainer *tr)
{
	const nn_allocator *a;

	if (tr == NULL)
		return;
	a = tr->r.a;
	train_mem_free(&tr->r.tm, a);
	nn_model_free(tr->r.out, a);
	nn_free(a, tr);
}

/* Train a model on rows with opt (see train.h): a run from start to end. */
int
nn_train(nn_model *out, nn_rows *rows, const nn_options *opt,
		 const nn_model *init, const nn_train_hooks *hooks,
		 nn_timing *timing, const nn_allocator *a, nn_status *st)
{
	nn_trainer *tr;
	int			rc = nn_trainer_begin(&tr, out, rows, opt, init, hooks, timing, a, st);

	if (rc != NN_OK)
		return rc;
	rc = nn_trainer_run(tr, opt->epochs);
	if (rc != NN_OK)
	{
		nn_trainer_free(tr);
		return rc;
	}
	return nn_trainer_end(tr);
}
