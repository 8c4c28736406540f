/*
 * net.c: a network over a mini-batch: the buffer planner and working
 * memory, the resource bound, input loading, forward, loss and backward.
 *
 * The network is a graph of nodes (spec.c builds it) run in node order;
 * what a node does comes from its op (ops.h). Tensors are one buffer each
 * per batch: spatial (C,B,H,W), flat (B,N). The planner lays every buffer
 * of a batch (activations, their gradients, each op's kept state and
 * scratch) into one arena from their lifetimes over a timeline of forward
 * steps then backward steps, ggml-alloc style: a buffer's memory is given
 * to another once its last reader has run, largest buffers placed first,
 * each at the lowest offset free for its whole lifetime. A relu whose
 * input nothing else reads works in place, forward and backward. With no
 * memory behind it the same plan is the measure pass of the resource
 * bound, so the bound and the allocation never disagree.
 *
 * Backward walks the nodes in reverse, accumulating into the gradients of
 * their inputs (zeroed by their last reader, which runs first, or written
 * by it where its op assigns: bwd_assigns in ops.h), and skips
 * inputs no parameter lies upstream of (the first convolution never
 * computes its input gradient, which saves its largest gemm).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops.h"

#define Max(a, b) ((a) > (b) ? (a) : (b))
#define PLAN_ALIGN 64			/* bytes */
#define PLAN_MAX (8 * NN_MAX_LAYERS + 8)	/* buffers of one plan */

/* a * b, saturating at SIZE_MAX instead of wrapping */
static inline size_t
sat_mul(size_t a, size_t b)
{
	size_t		r;

	return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

/* a + b, saturating at SIZE_MAX */
static inline size_t
sat_add(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* number of floats one image occupies in tensor t (0 = input) */
static size_t
tensor_elems(const nn_net *net, int t)
{
	nn_shape	s = nn_tensor_shape(net, t);

	return sat_mul(sat_mul((size_t) s.h, (size_t) s.w), (size_t) s.c);
}

/* ---------------------------------------------------------------- graph facts */

/* what the planner and the passes need to know about the graph */
typedef struct graph_facts
{
	int			last_fwd[NN_MAX_LAYERS + 1];	/* last node reading tensor t (-1: none) */
	int			readers[NN_MAX_LAYERS + 1]; /* nodes reading tensor t */
	int			needs_grad[NN_MAX_LAYERS + 1];	/* a parameter lies upstream of t */
	int			inplace[NN_MAX_LAYERS]; /* node i writes over its input */
} graph_facts;

/* what backward of node i reads (NN_BWD_*) */
static int
bwd_reads(const nn_net *net, int i)
{
	const nn_op *op = nn_op_of(net->layers[i].kind);

	return op->bwd_reads ? op->bwd_reads(&net->layers[i]) : 0;
}

/* Readers, gradients needed and in-place nodes of net. */
static void
graph_study(const nn_net *net, graph_facts *g)
{
	int			n = net->nlayers;

	for (int t = 0; t <= n; t++)
	{
		g->last_fwd[t] = -1;
		g->readers[t] = 0;
		g->needs_grad[t] = 0;
	}
	for (int i = 0; i < n; i++)
	{
		const nn_layer *L = &net->layers[i];
		int			up = L->w_len > 0;

		for (int k = 0; k < L->nin; k++)
		{
			g->last_fwd[L->inputs[k]] = i;
			g->readers[L->inputs[k]]++;
			up |= g->needs_grad[L->inputs[k]];
		}
		g->needs_grad[i + 1] = up;
	}
	for (int i = 0; i < n; i++)
	{
		const nn_layer *L = &net->layers[i];
		int			t = L->inputs[0];

		/* in place: the only reader of an input whose producer does not read it back */
		g->inplace[i] = nn_op_of(L->kind)->inplace && L->nin == 1 && g->readers[t] == 1 &&
			(t == 0 || !(bwd_reads(net, t - 1) & NN_BWD_OUTPUT));
	}
}

/* ---------------------------------------------------------------- planner */

/* one buffer to place: bytes, lifetime [start, end] in steps, where its address goes */
typedef struct plan_req
{
	size_t		bytes;
	int			start;
	int			end;
	void	  **slot;
	size_t		off;
} plan_req;

typedef struct plan
{
	plan_req	req[PLAN_MAX];
	int			n;
	int			overflow;		/* a size saturated */
} plan;

/* Ask for n elements of size sz living over [start, end], their address into *slot. */
static plan_req *
plan_take(plan *p, size_t n, size_t sz, int start, int end, void **slot)
{
	plan_req   *r;

	if (n == 0)
	{
		*slot = NULL;
		return NULL;
	}
	r = &p->req[p->n++];
	r->bytes = sat_mul(n, sz);
	if (r->bytes == SIZE_MAX)
		p->overflow = 1;
	r->start = start;
	r->end = end;
	r->slot = slot;
	return r;
}

/* Offsets for every request: largest first, each at the lowest free offset; returns the arena size. */
static size_t
plan_place(plan *p)
{
	int			order[PLAN_MAX];
	size_t		total = 0;

	for (int i = 0; i < p->n; i++)
		order[i] = i;
	/* insertion sort, largest first, ties in request order: the same plan every time */
	for (int i = 1; i < p->n; i++)
		for (int j = i; j > 0 && p->req[order[j]].bytes > p->req[order[j - 1]].bytes; j--)
		{
			int			t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (int a = 0; a < p->n; a++)
	{
		plan_req   *r = &p->req[order[a]];
		size_t		bytes = sat_add(r->bytes, PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN;
		size_t		off = 0;
		int			moved = 1;

		/* the lowest offset clear of every placed buffer alive at the same time */
		while (moved)
		{
			moved = 0;
			for (int b = 0; b < a; b++)
			{
				const plan_req *q = &p->req[order[b]];
				size_t		qbytes = sat_add(q->bytes, PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN;

				if (q->end < r->start || r->end < q->start)
					continue;	/* never alive together */
				if (off < sat_add(q->off, qbytes) && q->off < sat_add(off, bytes))
				{
					off = sat_add(q->off, qbytes);
					moved = 1;
				}
			}
		}
		r->off = off;
		total = Max(total, sat_add(off, bytes));
	}
	return total;
}

/*
 * Lay out the buffers of a batch of B images into plan p: the work's
 * pointers are set relative to a NULL arena (plan_bind adds the base).
 * Steps: node i runs forward at step i and backward at step 2n - 1 - i.
 */
static void
work_plan(plan *p, nn_work *w, const nn_net *net, int B, int train)
{
	graph_facts g;
	int			n = net->nlayers;
	int			last = 2 * n;	/* after everything */
	plan_req   *act[NN_MAX_LAYERS + 1] = {0};
	plan_req   *dact[NN_MAX_LAYERS + 1] = {0};

	int			keep_all = train & NN_WORK_KEEP_ALL;
	int			frozen = !(train & 1) && (train & NN_WORK_FROZEN);

	train &= ~(NN_WORK_KEEP_ALL | NN_WORK_FROZEN);
	memset(p, 0, sizeof(*p));
	memset(w, 0, sizeof(*w));
	w->B = B;
	w->train = train;
	w->frozen = frozen;
	graph_study(net, &g);

	/* activations: from their producer to their last reader */
	for (int t = 0; t <= n; t++)
	{
		int			start = t == 0 ? 0 : t - 1;
		int			end = Max(g.last_fwd[t], start);

		if (t == n)
			end = last;			/* the logits are read after the pass */
		else if (train)
		{
			for (int i = t; i < n; i++)
				for (int k = 0; k < net->layers[i].nin; k++)
					if (net->layers[i].inputs[k] == t && (bwd_reads(net, i) & NN_BWD_INPUT))
						end = Max(end, 2 * n - 1 - i);
			if (t > 0 && (bwd_reads(net, t - 1) & NN_BWD_OUTPUT))
				end = Max(end, 2 * n - 1 - (t - 1));
		}
		if (t > 0 && g.inplace[t - 1])
		{
			/* the same buffer as the node's input, living as long as either */
			act[t] = act[net->layers[t - 1].inputs[0]];
			act[t]->end = Max(act[t]->end, end);
			continue;
		}
		act[t] = plan_take(p, sat_mul(tensor_elems(net, t), (size_t) B), sizeof(float), start, end,
						   (void **) &w->act[t]);
	}

	/* gradients: from the backward of the last reader to that of the producer */
	if (train)
	{
		for (int t = n; t >= 1; t--)
		{
			int			start = t == n ? n - 1 : 2 * n - 1 - g.last_fwd[t];
			int			end = 2 * n - 1 - (t - 1);
			int			i = g.last_fwd[t];

			if (t != n && (!g.needs_grad[t] || i < 0))
				continue;			/* nothing upstream learns, or nothing reads it */
			if (t < n && i >= 0 && g.inplace[i])
			{
				/* a relu's input gradient is its output gradient, rewritten in place */
				dact[t] = dact[i + 1];
				if (dact[t])
					dact[t]->end = Max(dact[t]->end, end);
				continue;
			}
			dact[t] = plan_take(p, sat_mul(tensor_elems(net, t), (size_t) B), sizeof(float), start, end,
								(void **) &w->dact[t]);
		}
	}

	/* what each op keeps or needs as scratch */
	for (int i = 0; i < n; i++)
	{
		const nn_layer *L = &net->layers[i];
		const nn_op *op = nn_op_of(L->kind);
		nn_op_mem	m = {0};
		int			kept = train ? 2 * n - 1 - i : i;

		if (op->mem)
			op->mem(L, B, train, &m);
		plan_take(p, m.col, sizeof(float), i, kept, (void **) &w->col[i]);
		plan_take(p, m.argmax, sizeof(int32_t), i, kept, (void **) &w->argmax[i]);
		plan_take(p, m.mask, sizeof(float), i, kept, (void **) &w->mask[i]);
		plan_take(p, m.aux, sizeof(float), i, kept, (void **) &w->aux[i]);
		plan_take(p, m.stat, sizeof(double), i, kept, (void **) &w->stat[i]);
		plan_take(p, m.dcol, sizeof(float), 2 * n - 1 - i, 2 * n - 1 - i, (void **) &w->dcol[i]);
		plan_take(p, m.prep, sizeof(float), frozen ? 0 : i, frozen ? last : kept, (void **) &w->prep[i]);
		plan_take(p, m.fscratch, sizeof(float), i, i, (void **) &w->fscratch[i]);
	}
	plan_take(p, sat_mul((size_t) B, (size_t) net->classes), sizeof(float), 0, last, (void **) &w->probs);
	plan_take(p, (size_t) B, sizeof(int32_t), 0, last, (void **) &w->labels);
	if (keep_all)
		for (int i = 0; i < p->n; i++)
		{
			p->req[i].start = 0;
			p->req[i].end = last;
		}
	/* the arena's start is rounded up to PLAN_ALIGN too (nn_work_alloc) */
	w->bytes = sat_add(plan_place(p), PLAN_ALIGN);
	if (p->overflow)
		w->bytes = SIZE_MAX;
}

/* Point every buffer of the plan into the arena at base; in-place tensors share. */
static void
plan_bind(plan *p, nn_work *w, const nn_net *net, char *base)
{
	graph_facts g;

	for (int i = 0; i < p->n; i++)
		*p->req[i].slot = base + p->req[i].off;
	graph_study(net, &g);
	for (int i = 0; i < net->nlayers; i++)
		if (g.inplace[i])
		{
			w->act[i + 1] = w->act[net->layers[i].inputs[0]];
			if (w->train && g.needs_grad[net->layers[i].inputs[0]])
				w->dact[net->layers[i].inputs[0]] = w->dact[i + 1];
		}
}

/* Same canonical spec, input and classes? (see nn.h) */
int
nn_net_same(const nn_net *a, const nn_net *b, char *why, size_t len)
{
	if (strcmp(a->spec, b->spec) == 0 && a->input.h == b->input.h && a->input.w == b->input.w &&
		a->input.c == b->input.c && a->classes == b->classes)
		return 1;
	if (why)
		snprintf(why, len, "%s on %dx%dx%d with %d classes is not %s on %dx%dx%d with %d classes",
				 a->spec, a->input.h, a->input.w, a->input.c, a->classes,
				 b->spec, b->input.h, b->input.w, b->input.c, b->classes);
	return 0;
}

/* Bytes nn_work_alloc would take. */
size_t
nn_work_bytes(const nn_net *net, int B, int train)
{
	plan		p;
	nn_work		w;

	work_plan(&p, &w, net, B, train);
	return w.bytes;
}

/* Largest BLAS dimension node L gives a batch of B (saturating). */
static size_t
layer_gemm_dim(const nn_layer *L, int B)
{
	size_t		d = 0;

	if (L->kind == NN_CONV)
	{
		d = sat_mul((size_t) B, (size_t) L->out.h * L->out.w);
		d = Max(d, (size_t) L->in.c * L->kernel * L->kernel);
	}
	else if (L->kind == NN_DENSE)
		d = Max((size_t) B, (size_t) L->in.h * L->in.w * L->in.c);
	return d;
}

/* The resource bound of B images (see nn.h). */
int
nn_net_bound(const nn_net *net, int B, int train, nn_bound *b, nn_status *st)
{
	plan		p;
	nn_work		w;

	memset(b, 0, sizeof(*b));
	b->batch = B;
	b->train = train & ~NN_WORK_FROZEN;
	if (B < 1)
		return nn_fail(st, NN_ERR_INVALID, "a batch must hold at least one image, not %d", B);
	b->params_bytes = sat_mul(sat_add(net->nparams, net->nbuffers), sizeof(float));
	for (int t = 0; t <= net->nlayers; t++)
		b->largest = Max(b->largest, sat_mul(tensor_elems(net, t), (size_t) B));
	for (int i = 0; i < net->nlayers; i++)
	{
		const nn_layer *L = &net->layers[i];
		const nn_op *op = nn_op_of(L->kind);
		size_t		dim = layer_gemm_dim(L, B);
		nn_op_mem	m = {0};

		b->macs = sat_add(b->macs, sat_mul(op->macs(L), (size_t) B));
		if (op->mem)
			op->mem(L, B, b->train, &m);
		b->largest = Max(b->largest, Max(m.col, m.aux));
		if (dim > INT32_MAX)
			return nn_fail(st, NN_ERR_LIMIT,
						   "layer %d (%s) of the network would multiply matrices of %zu rows or columns for a batch of %d, more than the limit of %d",
						   i + 1, op->name, dim, B, INT32_MAX);
	}
	work_plan(&p, &w, net, B, train);
	b->work_bytes = w.bytes;
	if (b->work_bytes == SIZE_MAX || b->largest == SIZE_MAX)
		return nn_fail(st, NN_ERR_LIMIT, "the network's working memory for a batch of %d overflows 64 bits", B);
	return NN_OK;
}

/* Allocate the buffers a batch of up to B images needs, after checking the bound. */
int
nn_work_alloc(nn_work *w, const nn_net *net, int B, int train,
			  const nn_allocator *a, nn_status *st)
{
	nn_bound	b;
	plan		p;

	memset(w, 0, sizeof(*w));
	if (nn_net_bound(net, B, train & ~NN_WORK_KEEP_ALL, &b, st) != NN_OK)
		return st->code;
	work_plan(&p, w, net, B, train);
	train &= ~NN_WORK_KEEP_ALL;
	w->arena = nn_calloc(a, 1, w->bytes);
	if (w->arena == NULL)
	{
		memset(w, 0, sizeof(*w));
		return nn_fail(st, NN_ERR_NOMEM, "out of memory allocating %llu bytes of working memory for a batch of %d",
					   (unsigned long long) b.work_bytes, B);
	}
	/* every buffer on a cache line of its own: offsets are multiples of PLAN_ALIGN from here */
	plan_bind(&p, w, net, (char *) w->arena + (PLAN_ALIGN - (uintptr_t) w->arena % PLAN_ALIGN) % PLAN_ALIGN);
	return NN_OK;
}

/* Release every buffer of w. */
void
nn_work_free(nn_work *w, const nn_allocator *a)
{
	nn_free(a, w->arena);
	memset(w, 0, sizeof(*w));
}

/* Initial parameters (He-normal weights, zero biases, batch norm's ones) and buffers. */
void
nn_net_init_params(const nn_net *net, float *params, float *buffers, nn_rng *rng)
{
	memset(params, 0, net->nparams * sizeof(float));
	if (buffers)
		memset(buffers, 0, net->nbuffers * sizeof(float));
	for (int i = 0; i < net->nlayers; i++)
	{
		const nn_op *op = nn_op_of(net->layers[i].kind);

		if (op->init)
			op->init(&net->layers[i], params, buffers, rng);
	}
}
/* Convert B rows of float32 HWC values into (C,B,H,W), as v or (v - mean) / std. */
static void
load_floats(float *dst, const uint8_t *const *rows, int B, nn_shape in, const nn_norm *norm)
{
	size_t		hw = (size_t) in.h * in.w;
	int			scaled = norm->mode != NN_NORM_NONE;
	float		mean = norm->mean,
				std = norm->std;

	for (int b = 0; b < B; b++)
	{
		const uint8_t *src = rows[b];

		for (int c = 0; c < in.c; c++)
		{
			float	   *d = dst + ((size_t) c * B + b) * hw;

			for (size_t p = 0; p < hw; p++)
			{
				float		v;

				memcpy(&v, src + (p * in.c + c) * sizeof(float), sizeof(float));
				d[p] = scaled ? (v - mean) / std : v;
			}
		}
	}
}

/* Convert B rows of HWC values into (C,B,H,W) floats, normalised. */
void
nn_load_pixels(float *dst, const uint8_t *const *rows, int B, nn_shape in,
			   const nn_norm *norm)
{
	float		lut[256];
	size_t		hw = (size_t) in.h * in.w;

	if (norm->dtype == NN_DTYPE_FLOAT32)
	{
		load_floats(dst, rows, B, in, norm);
		return;
	}
	for (int v = 0; v < 256; v++)
	{
		switch (norm->mode)
		{
			case NN_NORM_MINMAX:
				lut[v] = (float) v / 255.0f;
				break;
			case NN_NORM_ZSCORE:
				lut[v] = ((float) v / 255.0f - norm->mean) / norm->std;
				break;
			default:
				lut[v] = (float) v;
				break;
		}
	}
	for (int b = 0; b < B; b++)
	{
		const uint8_t *src = rows[b];

		if (in.c == 1)
		{
			float	   *d = dst + (size_t) b * hw;

			for (size_t p = 0; p < hw; p++)
				d[p] = lut[src[p]];
			continue;
		}
		for (int c = 0; c < in.c; c++)
		{
			float	   *d = dst + ((size_t) c * B + b) * hw;

			for (size_t p = 0; p < hw; p++)
				d[p] = lut[src[p * in.c + c]];
		}
	}
}

/* The context of node i of one part of a batch, forward fields. */
static void
op_ctx(nn_op_ctx *c, const nn_net *net, int i, const float *params, float *buffers,
	   nn_work *w, int B, int train, nn_rng *rng)
{
	const nn_layer *L = &net->layers[i];

	memset(c, 0, sizeof(*c));
	c->net = net;
	c->L = L;
	c->i = i;
	c->B = B;
	c->train = train;
	for (int k = 0; k < L->nin; k++)
		c->in[k] = w->act[L->inputs[k]];
	c->out = w->act[i + 1];
	c->w = L->w_len ? params + L->w_off : NULL;
	c->b = L->b_len ? params + L->b_off : NULL;
	c->buf = L->buf_len && buffers ? buffers + L->buf_off : NULL;
	c->work = w;
	c->rng = rng;
}

/* Is node i one whose training pass needs the whole batch? */
static const nn_coupled *
coupled_at(const nn_net *net, int i, int train)
{
	return train ? nn_op_of(net->layers[i].kind)->coupled : NULL;
}

/*
 * Forward of nodes [from, to) of one part. A batch-coupled node may only
 * be first (its apply step, with the batch's totals given) or run whole
 * from this part's own sums (total NULL: a part that is the whole batch).
 */
static int
forward_range(const nn_net *net, const float *params, float *buffers, nn_work *w, int B,
			  int train, nn_rng *rng, nn_timing *t, int from, int to, const double *total, double count)
{
	for (int i = from; i < to; i++)
	{
		nn_op_ctx	c;
		const nn_coupled *cp = coupled_at(net, i, train);
		double		tl = t ? nn_now() : 0;

		if (nn_interrupted())
			return NN_ERR_CANCELLED;
		op_ctx(&c, net, i, params, buffers, w, B, train, rng);
		if (cp && i == from && total)
			cp->apply(&c, total, count);
		else if (cp)
		{
			double		n = (double) B * cp->per_image(&net->layers[i]);

			cp->stats(&c, w->stat[i]);
			cp->update(&net->layers[i], c.buf, w->stat[i], n);
			cp->apply(&c, w->stat[i], n);
		}
		else
			nn_op_of(net->layers[i].kind)->forward(&c);
		if (t)
			t->layer_fwd_s[i] += nn_now() - tl;
	}
	return nn_interrupted() ? NN_ERR_CANCELLED : NN_OK;
}

/* Forward pass of B images in w->act[0]; logits end in w->act[nlayers]. */
int
nn_net_forward(const nn_net *net, const float *params, float *buffers, nn_work *w, int B,
			   int train, nn_rng *rng, nn_timing *t)
{
	double		t0 = nn_now();
	int			rc;

	w->dropout_active = train && rng != NULL;
	w->forward_train = train;
	w->buffers = buffers;
	rc = forward_range(net, params, buffers, w, B, train, rng, t, 0, net->nlayers, NULL, 0);
	if (t)
		t->forward_s += nn_now() - t0;
	return rc;
}

/* Softmax cross-entropy of the logits; returns the summed loss, counts hits. */
double
nn_net_loss(const nn_net *net, nn_work *w, const int32_t *labels, int B,
			int64_t *correct, nn_timing *t)
{
	double		t0 = nn_now();
	const float *logits = w->act[net->nlayers];
	int			K = net->classes;
	double		loss;

	if (labels != w->labels)
		memcpy(w->labels, labels, (size_t) B * sizeof(int32_t));
	loss = nn_softmax_xent_forward(w->probs, logits, labels, B, K);

	if (correct)
	{
		for (int b = 0; b < B; b++)
			if (nn_argmax(logits + (size_t) b * K, K) == labels[b])
				(*correct)++;
	}
	if (t)
		t->loss_s += nn_now() - t0;
	return loss;
}

/* The backward fields of node i's context: gradients in and out, zeroed where first written. */
static void
op_ctx_backward(nn_op_ctx *c, const nn_net *net, const graph_facts *g, int i, float *grads,
				nn_work *w, int B)
{
	const nn_layer *L = &net->layers[i];

	c->dout = w->dact[i + 1];
	c->dw = L->w_len ? grads + L->w_off : NULL;
	c->db = L->b_len ? grads + L->b_off : NULL;
	for (int k = 0; k < L->nin; k++)
	{
		int			t = L->inputs[k];

		c->din[k] = (t > 0 && g->needs_grad[t]) ? w->dact[t] : NULL;
		if (c->din[k] == NULL)
			continue;
		if (c->din[k] == c->dout)
			c->din_inplace = 1;
		else if (g->last_fwd[t] == i && (k == 0 || L->inputs[k - 1] != t))
		{
			if (nn_op_of(L->kind)->bwd_assigns)
				c->din_fresh[k] = 1;
			else
				memset(c->din[k], 0, sat_mul(tensor_elems(net, t), (size_t) B) * sizeof(float));
		}
	}
}

/* Backward of nodes [from, to), in reverse; a coupled node first in the range takes the totals. */
static int
backward_range(const nn_net *net, const graph_facts *g, const float *params, float *grads,
			   nn_work *w, int B, nn_timing *t, int from, int to, const double *total, double count)
{
	for (int i = to - 1; i >= from; i--)
	{
		nn_op_ctx	c;
		const nn_coupled *cp = coupled_at(net, i, w->forward_train);
		double		tl = t ? nn_now() : 0;

		if (nn_interrupted())
			return NN_ERR_CANCELLED;
		op_ctx(&c, net, i, params, w->buffers, w, B, w->forward_train, NULL);
		op_ctx_backward(&c, net, g, i, grads, w, B);
		if (c.dout == NULL)
		{
			/* nothing reads node i's output: it adds to no gradient (its inputs' are zero) */
			for (int k = 0; k < net->layers[i].nin; k++)
				nn_din_zero_fresh(&c, k, tensor_elems(net, net->layers[i].inputs[k]) * (size_t) B);
			continue;
		}
		if (cp && i == to - 1 && total)
			cp->bapply(&c, total, count);
		else if (cp)
		{
			double		n = (double) B * cp->per_image(&net->layers[i]);

			cp->bstats(&c, w->stat[i]);
			cp->bapply(&c, w->stat[i], n);
		}
		else
			nn_op_of(net->layers[i].kind)->backward(&c);
		if (t)
			t->layer_bwd_s[i] += nn_now() - tl;
	}
	return nn_interrupted() ? NN_ERR_CANCELLED : NN_OK;
}

/* Backward pass: grads += d(scale * summed loss)/d(params). */
int
nn_net_backward(const nn_net *net, const float *params, float *grads,
				nn_work *w, int B, float scale, nn_timing *t)
{
	double		t0 = nn_now();
	int			n = net->nlayers;
	graph_facts g;
	int			rc;

	graph_study(net, &g);
	memset(w->dact[n], 0, tensor_elems(net, n) * B * sizeof(float));
	nn_softmax_xent_backward(w->dact[n], w->probs, w->labels, B, net->classes, scale);
	rc = backward_range(net, &g, params, grads, w, B, t, 0, n, NULL, 0);
	if (t)
		t->backward_s += nn_now() - t0;
	return rc;
}

/* ---------------------------------------------------- a batch in parts */

/* what the part functions share */
typedef struct parts_ctx
{
	const nn_net *net;
	const float *params;
	float	   *buffers;
	nn_work   **w;
	const int  *B;
	nn_rng	  **rng;
	nn_timing **t;
	float	  **grads;
	graph_facts g;
	int			from,
				to;				/* the range of the current step */
	const double *total;		/* the batch's sums for a coupled node at from (to - 1) */
	double		count;
	int			next;			/* the coupled node whose sums each part takes after the
								 * range, while its data is in cache (-1: none) */
	float		scale;			/* of the loss gradient */
	int			status[NN_MAX_PARTS];
} parts_ctx;

/* one part's sums for the coupled node i (forward) */
static void
part_stats_of(parts_ctx *c, int part, int i)
{
	nn_op_ctx	oc;
	double		tl = c->t[part] ? nn_now() : 0;

	if (c->status[part] != NN_OK || c->B[part] == 0)
		return;
	op_ctx(&oc, c->net, i, c->params, c->buffers, c->w[part], c->B[part], 1, c->rng[part]);
	nn_op_of(c->net->layers[i].kind)->coupled->stats(&oc, c->w[part]->stat[i]);
	if (c->t[part])
		c->t[part]->layer_fwd_s[i] += nn_now() - tl;
}

/* one part's forward over the current range, then the next coupled node's sums */
static void
part_forward(void *arg, int part)
{
	parts_ctx  *c = arg;

	if (c->status[part] != NN_OK || c->B[part] == 0)
		return;
	c->status[part] = forward_range(c->net, c->params, c->buffers, c->w[part], c->B[part], 1,
									c->rng[part], c->t[part], c->from, c->to, c->total, c->count);
	if (c->next >= 0)
		part_stats_of(c, part, c->next);
}

/* one part's sums for the coupled node at c->from (forward) */
static void
part_stats(void *arg, int part)
{
	parts_ctx  *c = arg;

	part_stats_of(c, part, c->from);
}

/* Add the parts' sums of node i in part order into total; returns the values they count. */
static double
parts_total(parts_ctx *c, int nparts, int i, double *total, int nstat)
{
	const nn_coupled *cp = nn_op_of(c->net->layers[i].kind)->coupled;
	double		count = 0;

	memset(total, 0, (size_t) nstat * sizeof(double));
	for (int part = 0; part < nparts; part++)
	{
		if (c->B[part] == 0)
			continue;
		for (int k = 0; k < nstat; k++)
			total[k] += c->w[part]->stat[i][k];
		count += (double) c->B[part] * cp->per_image(&c->net->layers[i]);
	}
	return count;
}

/* first status of the parts that is not NN_OK */
static int
parts_status(const parts_ctx *c, int nparts)
{
	for (int part = 0; part < nparts; part++)
		if (c->status[part] != NN_OK)
			return c->status[part];
	return nn_interrupted() ? NN_ERR_CANCELLED : NN_OK;
}

/* Does any node of net need the whole batch when training (batch norm)? */
int
nn_net_batch_coupled(const nn_net *net)
{
	for (int i = 0; i < net->nlayers; i++)
		if (coupled_at(net, i, 1))
			return 1;
	return 0;
}

/* Forward of a training batch split into parts (see nn.h). */
int
nn_net_forward_parts(const nn_net *net, const float *params, float *buffers, nn_work **w,
					 const int *B, int nparts, nn_rng **rng, nn_timing **t,
					 nn_parts_run run, void *run_ctx)
{
	parts_ctx	c = {0};
	double		total[2 * NN_MAX_DIM];
	int			n = net->nlayers;
	double		t0 = nn_now();
	nn_timing  *tt = NULL;		/* the first part's timing gets the pass's wall time */

	c.net = net;
	c.params = params;
	c.buffers = buffers;
	c.w = w;
	c.B = B;
	c.rng = rng;
	c.t = t;
	for (int part = 0; part < nparts; part++)
	{
		w[part]->dropout_active = rng[part] != NULL;
		w[part]->forward_train = 1;
		w[part]->buffers = buffers;
		if (tt == NULL)
			tt = t[part];
	}
	c.next = -1;
	for (int from = 0; from < n;)
	{
		int			to = from + 1;

		/* up to the next coupled node, which starts a range of its own */
		while (to < n && !coupled_at(net, to, 1))
			to++;
		c.total = NULL;
		if (coupled_at(net, from, 1))
		{
			const nn_coupled *cp = coupled_at(net, from, 1);
			int			nstat = cp->nstat(&net->layers[from]);

			c.from = from;
			if (c.next != from)
				run(part_stats, &c, nparts, run_ctx);	/* not summed by the range before */
			if (parts_status(&c, nparts) != NN_OK)
				return parts_status(&c, nparts);
			c.count = parts_total(&c, nparts, from, total, nstat);
			cp->update(&net->layers[from], buffers + net->layers[from].buf_off, total, c.count);
			c.total = total;
		}
		c.from = from;
		c.to = to;
		c.next = to < n ? to : -1;	/* to is coupled when below n */
		run(part_forward, &c, nparts, run_ctx);
		if (parts_status(&c, nparts) != NN_OK)
			return parts_status(&c, nparts);
		from = to;
	}
	if (tt)
		tt->forward_s += nn_now() - t0;
	return NN_OK;
}

/* one part's backward sums of the coupled node i */
static void
part_bstats_of(parts_ctx *c, int part, int i)
{
	nn_op_ctx	oc;
	const nn_coupled *cp = nn_op_of(c->net->layers[i].kind)->coupled;
	double		tl = c->t[part] ? nn_now() : 0;

	if (c->status[part] != NN_OK || c->B[part] == 0)
		return;
	op_ctx(&oc, c->net, i, c->params, c->w[part]->buffers, c->w[part], c->B[part], 1, NULL);
	op_ctx_backward(&oc, c->net, &c->g, i, c->grads[part], c->w[part], c->B[part]);
	if (oc.dout == NULL)
	{
		/* nothing reads node i's output: no sums (backward_range skips the node) */
		memset(c->w[part]->stat[i], 0, sizeof(double) * cp->nstat(&c->net->layers[i]));
		return;
	}
	cp->bstats(&oc, c->w[part]->stat[i]);
	if (c->t[part])
		c->t[part]->layer_bwd_s[i] += nn_now() - tl;
}

/* one part's backward over the current range, then the next coupled node's sums */
static void
part_backward(void *arg, int part)
{
	parts_ctx  *c = arg;

	if (c->status[part] != NN_OK || c->B[part] == 0)
		return;
	c->status[part] = backward_range(c->net, &c->g, c->params, c->grads[part], c->w[part], c->B[part],
									 c->t[part], c->from, c->to, c->total, c->count);
	if (c->next >= 0)
		part_bstats_of(c, part, c->next);
}

/* one part's backward sums of the coupled node at c->to - 1 */
static void
part_bstats(void *arg, int part)
{
	parts_ctx  *c = arg;

	part_bstats_of(c, part, c->to - 1);
}

/* the loss gradient of one part into its dact[n] */
static void
part_loss_grad(void *arg, int part)
{
	parts_ctx  *c = arg;
	int			n = c->net->nlayers;

	if (c->B[part] == 0)
		return;
	memset(c->w[part]->dact[n], 0, tensor_elems(c->net, n) * c->B[part] * sizeof(float));
	nn_softmax_xent_backward(c->w[part]->dact[n], c->w[part]->probs, c->w[part]->labels,
							 c->B[part], c->net->classes, c->scale);
}

/* Backward of a training batch split into parts (see nn.h). */
int
nn_net_backward_parts(const nn_net *net, const float *params, float **grads, nn_work **w,
					  const int *B, int nparts, float scale, nn_timing **t,
					  nn_parts_run run, void *run_ctx)
{
	parts_ctx	c = {0};
	double		total[2 * NN_MAX_DIM];
	int			n = net->nlayers;
	double		t0 = nn_now();
	nn_timing  *tt = NULL;
	int			rc = NN_OK;

	for (int part = 0; part < nparts && tt == NULL; part++)
		tt = t[part];

	c.net = net;
	c.params = params;
	c.grads = grads;
	c.w = w;
	c.B = B;
	c.t = t;
	graph_study(net, &c.g);
	c.scale = scale;
	c.next = -1;				/* no sums taken yet */
	if (!nn_net_batch_coupled(net))
	{
		/* one run: the loss gradient and the whole backward pass per part */
		c.from = 0;
		c.to = n;
		run(part_loss_grad, &c, nparts, run_ctx);
		run(part_backward, &c, nparts, run_ctx);
		rc = parts_status(&c, nparts);
		if (tt)
			tt->backward_s += nn_now() - t0;
		return rc;
	}
	run(part_loss_grad, &c, nparts, run_ctx);
	for (int to = n, from; to > 0; to = from)
	{
		/* down to just above the next coupled node, which tops a range of its own */
		from = to - 1;
		while (from > 0 && !coupled_at(net, from - 1, 1))
			from--;
		c.from = from;
		c.to = to;
		c.total = NULL;
		if (coupled_at(net, to - 1, 1))
		{
			const nn_coupled *cp = coupled_at(net, to - 1, 1);

			if (c.next != to - 1)
				run(part_bstats, &c, nparts, run_ctx);	/* not summed by the range before */
			if (parts_status(&c, nparts) != NN_OK)
				return parts_status(&c, nparts);
			c.count = parts_total(&c, nparts, to - 1, total, cp->nstat(&net->layers[to - 1]));
			c.total = total;
		}
		c.next = from > 0 ? from - 1 : -1;	/* from - 1 is coupled when from > 0 */
		run(part_backward, &c, nparts, run_ctx);
		if (parts_status(&c, nparts) != NN_OK)
			return parts_status(&c, nparts);
	}
	if (tt)
		tt->backward_s += nn_now() - t0;
	return NN_OK;
}

/* what each part of nn_net_forward_split needs */
typedef struct split_ctx
{
	const nn_net *net;
	const float *params;
	float	   *buffers;
	nn_work   **w;
	int			nparts;
	const uint8_t *const *rows;
	int			B;
	const nn_norm *norm;
	nn_timing  *t;
	int			status[NN_MAX_PARTS];
} split_ctx;

/* the first row of part p of c's batch */
static int
split_at(const split_ctx *c, int p)
{
	return (int) ((int64_t) c->B * p / c->nparts);
}

/* one part of an inference batch: its rows loaded and run forward */
static void
split_part(void *arg, int p)
{
	split_ctx  *c = arg;
	int			lo = split_at(c, p),
				n = split_at(c, p + 1) - lo;

	c->status[p] = NN_OK;
	if (n == 0)
		return;
	nn_load_pixels(c->w[p]->act[0], c->rows + lo, n, c->net->input, c->norm);
	c->status[p] = nn_net_forward(c->net, c->params, c->buffers, c->w[p], n, 0, NULL,
								  p == 0 ? c->t : NULL);
}

/* Inference split into parts side by side; every logit ends in w[0] (see nn.h). */
int
nn_net_forward_split(const nn_net *net, const float *params, float *buffers, nn_work **w,
					 int nparts, const uint8_t *const *rows, int B, const nn_norm *norm,
					 nn_timing *t, nn_parts_run run, void *run_ctx)
{
	split_ctx	c = {net, params, buffers, w, nparts, rows, B, norm, t, {0}};
	int			K = net->classes;

	if (nparts > NN_MAX_PARTS)
		nparts = c.nparts = NN_MAX_PARTS;
	run(split_part, &c, nparts, run_ctx);
	for (int p = 0; p < nparts; p++)
		if (c.status[p] != NN_OK)
			return c.status[p];
	/* after every part is done: w[0]'s logits buffer may share memory with its pass */
	for (int p = 1; p < nparts; p++)
		memcpy(w[0]->act[net->nlayers] + (size_t) split_at(&c, p) * K, w[p]->act[net->nlayers],
			   sizeof(float) * (size_t) (split_at(&c, p + 1) - split_at(&c, p)) * K);
	return NN_OK;
}
