/*
 * net.c: a whole network over a mini-batch: working memory, input loading,
 * forward, loss and backward passes, and weight initialisation.
 *
 * The net is a flat list of layers (nn_net from nn_net_build). Activations
 * act[0..nlayers] are one buffer per layer boundary, sized for the batch
 * capacity (relu shares its input's); in training the gradients dact[]
 * alternate between two buffers (a relu's, again, in place). Backward walks the list in reverse and
 * skips input gradients that nothing upstream needs (the first convolution
 * never computes one, which saves its largest gemm).
 */
#include <math.h>
#include <string.h>

#include "nn.h"

#define Max(a, b) ((a) > (b) ? (a) : (b))

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

/* number of floats one image occupies at boundary i (0 = input) */
static size_t
boundary_elems(const nn_net *net, int i)
{
	const nn_shape *s = (i == 0) ? &net->input : &net->layers[i - 1].out;

	return sat_mul(sat_mul((size_t) s->h, (size_t) s->w), (size_t) s->c);
}

/* floats of the im2col buffer of a conv layer for B images; 0 for 1x1 */
static size_t
col_elems(const nn_layer *L, int B)
{
	if (L->kind != NN_CONV)
		return 0;
	if (L->kernel == 1 && L->stride == 1 && L->pad == 0)
		return 0;
	return sat_mul(sat_mul((size_t) L->in.c * L->kernel * L->kernel, (size_t) B),
				   (size_t) L->out.h * L->out.w);
}

/* Does layer i need the gradient of its input (is there a parameter upstream)? */
static int
needs_dinp(const nn_net *net, int i)
{
	for (int j = 0; j < i; j++)
		if (net->layers[j].w_len > 0)
			return 1;
	return 0;
}

/*
 * One buffer of n elements of size sz, counted in w->bytes and remembered
 * for nn_work_free. With a NULL allocator it only counts.
 */
static void *
work_take(nn_work *w, const nn_allocator *a, size_t n, size_t sz, int *failed)
{
	void	   *p;

	if (n == 0 || *failed)
		return NULL;
	w->bytes = sat_add(w->bytes, sat_mul(n, sz));
	if (a == NULL)
		return NULL;
	p = nn_calloc(a, n, sz);
	if (p == NULL)
		*failed = 1;
	else
		w->owned[w->nowned++] = p;
	return p;
}

/*
 * Lay out the buffers of a batch of B images (or, with a NULL allocator,
 * count their bytes). Memory is kept small: relu works in place (act[i+1]
 * is act[i]: no backward pass needs a relu's input, only its output), and
 * the gradients of activations live in two ping-pong buffers, since
 * backward through layer i reads dact[i+1] and writes dact[i] only.
 */
static void
work_plan(nn_work *w, const nn_net *net, int B, int train, const nn_allocator *a,
		  int *failed)
{
	size_t		maxcol = 0,
				maxact = 0;

	memset(w, 0, sizeof(*w));
	w->B = B;
	w->train = train;
	w->act[0] = work_take(w, a, sat_mul(boundary_elems(net, 0), (size_t) B), sizeof(float), failed);
	for (int i = 0; i < net->nlayers; i++)
	{
		const nn_layer *L = &net->layers[i];
		size_t		c = col_elems(L, B);
		size_t		n = sat_mul(boundary_elems(net, i + 1), (size_t) B);

		if (L->kind == NN_RELU)
			w->act[i + 1] = w->act[i];
		else
			w->act[i + 1] = work_take(w, a, n, sizeof(float), failed);
		if (n > maxact)
			maxact = n;
		w->col[i] = work_take(w, a, c, sizeof(float), failed);
		if (c > maxcol && needs_dinp(net, i))
			maxcol = c;
		if (L->kind == NN_MAXPOOL)
			w->argmax[i] = work_take(w, a, n, sizeof(int32_t), failed);
		if (L->kind == NN_DROPOUT && train)
			w->mask[i] = work_take(w, a, n, sizeof(float), failed);
	}
	if (train)
	{
		float	   *pingpong[2];

		int			cur = 0;

		pingpong[0] = work_take(w, a, maxact, sizeof(float), failed);
		pingpong[1] = work_take(w, a, maxact, sizeof(float), failed);
		/* from the top; a relu's gradient works in place, the others alternate */
		w->dact[net->nlayers] = pingpong[cur];
		for (int i = net->nlayers - 1; i >= 1; i--)
		{
			if (net->layers[i].kind != NN_RELU)
				cur = 1 - cur;
			w->dact[i] = pingpong[cur];
		}
		w->dcol = work_take(w, a, maxcol, sizeof(float), failed);
	}
	w->probs = work_take(w, a, sat_mul((size_t) B, (size_t) net->classes), sizeof(float), failed);
	w->labels = work_take(w, a, (size_t) B, sizeof(int32_t), failed);
}

/* Bytes nn_work_alloc would take. */
size_t
nn_work_bytes(const nn_net *net, int B, int train)
{
	nn_work		w;
	int			failed = 0;

	work_plan(&w, net, B, train, NULL, &failed);
	return w.bytes;
}

/* Multiply-adds (compares for pooling, one per value elsewhere) of layer L for one image. */
static uint64_t
layer_macs(const nn_layer *L)
{
	uint64_t	out = (uint64_t) L->out.h * L->out.w * L->out.c;

	switch (L->kind)
	{
		case NN_CONV:
			return sat_mul(out, (size_t) L->in.c * L->kernel * L->kernel);
		case NN_MAXPOOL:
			return sat_mul(out, (size_t) L->kernel * L->kernel);
		case NN_DENSE:
			return sat_mul(out, (size_t) L->in.h * L->in.w * L->in.c);
		default:
			return out;
	}
}

/* Largest BLAS dimension layer L gives a batch of B (saturating). */
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
	nn_work		w;
	int			failed = 0;

	memset(b, 0, sizeof(*b));
	b->batch = B;
	b->train = train;
	if (B < 1)
		return nn_fail(st, NN_ERR_INVALID, "a batch must hold at least one image, not %d", B);
	b->params_bytes = sat_mul(net->nparams, sizeof(float));
	for (int i = 0; i <= net->nlayers; i++)
		b->largest = Max(b->largest, sat_mul(boundary_elems(net, i), (size_t) B));
	for (int i = 0; i < net->nlayers; i++)
	{
		const nn_layer *L = &net->layers[i];
		size_t		dim = layer_gemm_dim(L, B);

		b->macs = sat_add(b->macs, sat_mul(layer_macs(L), (size_t) B));
		b->largest = Max(b->largest, col_elems(L, B));
		if (dim > INT32_MAX)
			return nn_fail(st, NN_ERR_LIMIT,
						   "layer %d (%s) of the network would multiply matrices of %zu rows or columns for a batch of %d, more than the limit of %d",
						   i + 1, L->kind == NN_CONV ? "conv" : "dense", dim, B, INT32_MAX);
	}
	work_plan(&w, net, B, train, NULL, &failed);
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
	int			failed = 0;
	nn_bound	b;

	memset(w, 0, sizeof(*w));
	if (nn_net_bound(net, B, train, &b, st) != NN_OK)
		return st->code;
	work_plan(w, net, B, train, a, &failed);
	if (failed)
	{
		nn_work_free(w, a);
		return nn_fail(st, NN_ERR_NOMEM, "out of memory allocating %llu bytes of working memory for a batch of %d",
					   (unsigned long long) b.work_bytes, B);
	}
	return NN_OK;
}

/* Release every buffer of w. */
void
nn_work_free(nn_work *w, const nn_allocator *a)
{
	for (int i = 0; i < w->nowned; i++)
		nn_free(a, w->owned[i]);
	memset(w, 0, sizeof(*w));
}

/* He-normal weights (std sqrt(2/fan_in)) and zero biases. */
void
nn_net_init_params(const nn_net *net, float *params, nn_rng *rng)
{
	memset(params, 0, net->nparams * sizeof(float));
	for (int i = 0; i < net->nlayers; i++)
	{
		const nn_layer *L = &net->layers[i];
		double		fan_in;
		float		std;

		if (L->w_len == 0)
			continue;
		fan_in = (double) L->w_len / L->units;
		std = (float) sqrt(2.0 / fan_in);
		for (size_t k = 0; k < L->w_len; k++)
			params[L->w_off + k] = std * nn_rng_normal(rng);
	}
}

/* Convert B images of HWC bytes into (C,B,H,W) floats, normalised. */
void
nn_load_pixels(float *dst, const uint8_t *const *rows, int B, nn_shape in,
			   const nn_norm *norm)
{
	float		lut[256];
	size_t		hw = (size_t) in.h * in.w;

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

/* Forward pass of B images in w->act[0]; logits end in w->act[nlayers]. */
int
nn_net_forward(const nn_net *net, const float *params, nn_work *w, int B,
			   int train, nn_rng *rng, nn_timing *t)
{
	double		t0 = nn_now();

	w->dropout_active = train && rng != NULL;
	for (int i = 0; i < net->nlayers; i++)
	{
		const nn_layer *L = &net->layers[i];
		const float *in = w->act[i];
		float	   *out = w->act[i + 1];
		size_t		n = boundary_elems(net, i + 1) * B;
		double		tl = t ? nn_now() : 0;

		if (nn_interrupted())
			return NN_ERR_CANCELLED;
		switch (L->kind)
		{
			case NN_CONV:
				nn_conv2d_forward(out, w->col[i], in, params + L->w_off, params + L->b_off, L, B);
				break;
			case NN_MAXPOOL:
				nn_maxpool_forward(out, w->argmax[i], in, L, B);
				break;
			case NN_RELU:
				nn_relu_forward(out, in, n);
				break;
			case NN_DENSE:
				nn_dense_forward(out, in, params + L->w_off, params + L->b_off,
								 B, L->in.c * L->in.h * L->in.w, L->units);
				break;
			case NN_DROPOUT:
				if (w->dropout_active && w->mask[i] && L->rate > 0)
					nn_dropout_forward(out, w->mask[i], in, n, L->rate, rng);
				else
					memcpy(out, in, n * sizeof(float));
				break;
			case NN_FLATTEN:
				nn_flatten_forward(out, in, B, L->in.c, L->in.h, L->in.w);
				break;
		}
		if (t)
			t->layer_fwd_s[i] += nn_now() - tl;
	}
	if (t)
		t->forward_s += nn_now() - t0;
	return nn_interrupted() ? NN_ERR_CANCELLED : NN_OK;
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
		{
			const float *row = logits + (size_t) b * K;
			int			best = 0;

			for (int k = 1; k < K; k++)
				if (row[k] > row[best])
					best = k;
			if (best == labels[b])
				(*correct)++;
		}
	}
	if (t)
		t->loss_s += nn_now() - t0;
	return loss;
}

/* Backward pass: grads += d(scale * summed loss)/d(params). */
int
nn_net_backward(const nn_net *net, const float *params, float *grads,
				nn_work *w, int B, float scale, nn_timing *t)
{
	double		t0 = nn_now();
	int			last = net->nlayers;

	memset(w->dact[last], 0, boundary_elems(net, last) * B * sizeof(float));
	nn_softmax_xent_backward(w->dact[last], w->probs, w->labels, B, net->classes, scale);

	for (int i = net->nlayers - 1; i >= 0; i--)
	{
		const nn_layer *L = &net->layers[i];
		const float *dout = w->dact[i + 1];
		int			want = (i > 0) && needs_dinp(net, i);
		float	   *dinp = want ? w->dact[i] : NULL;
		size_t		nin = boundary_elems(net, i) * B;
		size_t		nout = boundary_elems(net, i + 1) * B;
		double		tl = t ? nn_now() : 0;

		if (nn_interrupted())
			return NN_ERR_CANCELLED;
		if (dinp && dinp != dout)
			memset(dinp, 0, nin * sizeof(float));
		switch (L->kind)
		{
			case NN_CONV:
				nn_conv2d_backward(dinp, grads + L->w_off, grads + L->b_off, w->dcol, dout,
								   w->col[i] ? w->col[i] : w->act[i],
								   params + L->w_off, L, B);
				break;
			case NN_MAXPOOL:
				if (dinp)
					nn_maxpool_backward(dinp, dout, w->argmax[i], L, B);
				break;
			case NN_RELU:
				if (dinp == dout)
					nn_relu_backward_inplace(dinp, w->act[i + 1], nout);
				else if (dinp)
					nn_relu_backward(dinp, dout, w->act[i + 1], nout);
				break;
			case NN_DENSE:
				nn_dense_backward(dinp, grads + L->w_off, grads + L->b_off, dout, w->act[i],
								  params + L->w_off, B, L->in.c * L->in.h * L->in.w, L->units);
				break;
			case NN_DROPOUT:
				if (dinp)
				{
					if (w->dropout_active && w->mask[i] && L->rate > 0)
						nn_dropout_backward(dinp, dout, w->mask[i], nout);
					else
						for (size_t k = 0; k < nout; k++)
							dinp[k] += dout[k];
				}
				break;
			case NN_FLATTEN:
				if (dinp)
					nn_flatten_backward(dinp, dout, B, L->in.c, L->in.h, L->in.w);
				break;
		}
		if (t)
			t->layer_bwd_s[i] += nn_now() - tl;
	}
	if (t)
		t->backward_s += nn_now() - t0;
	return nn_interrupted() ? NN_ERR_CANCELLED : NN_OK;
}
