/*
 * test_torch.c: mlcnn's kernels, whole-network passes and optimizers
 * against PyTorch, llm.c's test_gpt2.c style.
 *
 * test/make_fixtures.py ran PyTorch 1.13 once on seeded inputs and weights
 * and wrote test/fixtures/ref_cnn.bin (the reference CNN on 8 images:
 * logits, mean cross-entropy, every parameter gradient and parameters after
 * Adam/SGD steps), test/fixtures/layers.bin (one case per layer kind:
 * input, weights, output, upstream gradient and the gradients) and
 * test/fixtures/schedules.bin (learning rates per step); for the graph
 * core, test/fixtures/ops.bin (batch norm in training and evaluation mode,
 * average pooling, grouped and depthwise convolutions) and one file per
 * whole network built from an mlcnn spec (resnet.bin, resnet_proj.bin,
 * resnet_nested.bin, graph_net.bin, graph_flat.bin, graph_dead.bin: the
 * state_dict keys against nn_net_tensors, three SGD steps in training
 * mode, an evaluation-mode pass). The fixtures keep PyTorch's (B,C,H,W)
 * activation layout; this file transposes to mlcnn's (C,B,H,W). A missing
 * or malformed fixture file is a failure, not a skip.
 *
 * Tolerances (why: test/fixtures/README.md): both sides compute in float32
 * but sum in different orders (OpenBLAS sgemm vs PyTorch's kernels), so
 * values agree to a few float32 ulps of the largest partial sums, not
 * bitwise. Forward values (logits ~0.1, layer outputs ~1) and the layer
 * cases' gradients (~1-30) use atol 1e-5 + rtol 1e-4; the reference CNN's
 * gradients (at most ~0.15, most ~1e-3) atol 2e-7 + rtol 1e-4; the loss
 * 1e-5 relative; exact operations (pixel loading, max pooling's output,
 * flatten, relu) must match exactly; optimizer steps fed PyTorch's own
 * gradients differ only in the rounding of a few float operations per
 * value: atol 1e-7 + rtol 1e-5 (Adam, whose step divides by sqrt(v) + eps:
 * atol 1e-6). Whole nets with batch norm: logits atol 1e-5 + rtol 1e-4,
 * gradients atol 5e-6 + rtol 1e-4 (measured: at most 4e-6 of the largest
 * value of the tensor), running statistics atol 1e-6 + rtol 1e-5,
 * parameters after three steps atol 1e-6 + rtol 1e-4.
 */
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "ops.h"
#include "t.h"

#define FX_DIR "test/fixtures/"
#define FX_MAX_TENSORS 256
#define FX_NAME_LEN 48

#define ATOL_FWD 1e-5
#define RTOL_FWD 1e-4
#define ATOL_GRAD 1e-5
#define RTOL_GRAD 1e-4
/* reference CNN gradients are at most ~0.15 (most ~1e-3): an absolute floor scaled to them */
#define ATOL_GRAD_REF 2e-7
/* running statistics after an update: (1 - 0.1) r + 0.1 * the batch's statistic */
#define ATOL_BUF 1e-6
#define RTOL_BUF 1e-5
/* whole nets with batch norm (test/fixtures/README.md) */
#define ATOL_NET_FWD 1e-5
#define RTOL_NET_FWD 1e-4
#define RTOL_NET_LOSS 1e-5
#define ATOL_NET_GRAD 5e-6
#define RTOL_NET_GRAD 1e-4
#define ATOL_NET_STEP 1e-6
#define RTOL_NET_STEP 1e-4

/* ---------------------------------------------------------------- fixture files */

typedef struct fx_tensor
{
	char		name[FX_NAME_LEN + 1];
	int32_t		dtype;			/* 0 float32, 1 int32 */
	int32_t		ndim;
	int32_t		dims[4];
	size_t		count;
	const void *data;
} fx_tensor;

typedef struct fx_file
{
	uint8_t    *buf;
	size_t		len;
	int			n;
	fx_tensor	t[FX_MAX_TENSORS];
} fx_file;

/* little-endian i32 at p */
static int32_t
rd_i32(const uint8_t *p)
{
	return (int32_t) ((uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24);
}

/* Read and index a fixture file; a failed assertion (not a skip) when it is missing or bad. */
static int
fx_open(fx_file *f, const char *name)
{
	char		path[256];
	FILE	   *fp;
	long		sz;
	size_t		pos;
	int			ok = 1;

	memset(f, 0, sizeof(*f));
	snprintf(path, sizeof(path), FX_DIR "%s", name);
	fp = fopen(path, "rb");
	if (!T_OK(fp != NULL, "fixture %s opens (run from the repository root; regenerate with /usr/bin/python3 test/make_fixtures.py)", path))
		return 0;
	fseek(fp, 0, SEEK_END);
	sz = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	f->buf = malloc(sz > 0 ? (size_t) sz : 1);
	f->len = sz > 0 ? (size_t) sz : 0;
	if (fread(f->buf, 1, f->len, fp) != f->len)
		ok = 0;
	fclose(fp);
	if (!ok || f->len < 12 || memcmp(f->buf, "MLFX0001", 8) != 0)
	{
		T_OK(0, "fixture %s has the MLFX0001 header", path);
		return 0;
	}
	f->n = rd_i32(f->buf + 8);
	pos = 12;
	if (f->n < 0 || f->n > FX_MAX_TENSORS)
		ok = 0;
	for (int i = 0; ok && i < f->n; i++)
	{
		fx_tensor  *t = &f->t[i];

		if (pos + FX_NAME_LEN + 24 > f->len)
		{
			ok = 0;
			break;
		}
		memcpy(t->name, f->buf + pos, FX_NAME_LEN);
		t->name[FX_NAME_LEN] = '\0';
		pos += FX_NAME_LEN;
		t->dtype = rd_i32(f->buf + pos);
		t->ndim = rd_i32(f->buf + pos + 4);
		t->count = 1;
		for (int d = 0; d < 4; d++)
		{
			t->dims[d] = rd_i32(f->buf + pos + 8 + 4 * d);
			if (t->dims[d] < 0)
				ok = 0;
			else
				t->count *= (size_t) t->dims[d];
		}
		pos += 24;
		if ((t->dtype != 0 && t->dtype != 1) || t->ndim < 0 || t->ndim > 4 ||
			t->count > (f->len - pos) / 4)
		{
			ok = 0;
			break;
		}
		t->data = f->buf + pos;
		pos += t->count * 4;
	}
	if (!T_OK(ok && pos == f->len, "fixture %s: %d tensors whose sizes add up to the file's %zu bytes",
			  path, f->n, f->len))
		return 0;
	return 1;
}

/* Release a fixture file. */
static void
fx_close(fx_file *f)
{
	free(f->buf);
	f->buf = NULL;
}

/*
 * The tensor called name with dtype and exactly the given dims (the first
 * zero ends the list); NULL plus a failed assertion otherwise (silent when
 * found, to keep the output readable).
 */
static const void *
fx_get(const fx_file *f, const char *name, int dtype, int d0, int d1, int d2, int d3)
{
	int			want[4] = {d0, d1, d2, d3};
	int			ndim = 0;

	while (ndim < 4 && want[ndim] > 0)
		ndim++;
	for (int i = 0; i < f->n; i++)
	{
		const fx_tensor *t = &f->t[i];
		int			same = (t->dtype == dtype && t->ndim == ndim);

		if (strcmp(t->name, name) != 0)
			continue;
		for (int d = 0; same && d < ndim; d++)
			same = (t->dims[d] == want[d]);
		if (!same)
		{
			T_OK(0, "fixture tensor %s has dtype %d and shape %dx%dx%dx%d (ndim %d)",
				 name, dtype, d0, d1, d2, d3, ndim);
			return NULL;
		}
		return t->data;
	}
	T_OK(0, "fixture tensor %s is present", name);
	return NULL;
}

#define FX_F32(f, name, ...) ((const float *) fx_get((f), (name), 0, __VA_ARGS__))
#define FX_I32(f, name, ...) ((const int32_t *) fx_get((f), (name), 1, __VA_ARGS__))

/* ---------------------------------------------------------------- helpers */

/* (B,C,HW) -> (C,B,HW) into a malloc'd buffer */
static float *
to_cbhw(const float *src, int B, int C, size_t hw)
{
	float	   *dst = malloc(sizeof(float) * (size_t) B * C * hw);

	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++)
			memcpy(dst + ((size_t) c * B + b) * hw, src + ((size_t) b * C + c) * hw, sizeof(float) * hw);
	return dst;
}

/* malloc'd zeros */
static float *
zeros(size_t n)
{
	return calloc(n ? n : 1, sizeof(float));
}

/* the layer built from spec on input shape in (followed by whatever the spec needs) */
static int
build_layer(nn_layer *L, const char *spec, nn_shape in, int classes)
{
	nn_net		net;
	nn_status	st = {0};

	if (!T_OK(nn_net_build(&net, spec, in, classes, &st) == NN_OK, "\"%s\" builds: %s", spec, st.msg))
		return 0;
	*L = net.layers[0];
	return 1;
}

/* ---------------------------------------------------------------- reference CNN */

/* the reference CNN, its fixture and the parameters */
typedef struct ref_case
{
	fx_file		f;
	nn_net		net;
	const float *params;
	const float *input;
	const int32_t *labels;
	const int32_t *pixels;
} ref_case;

#define REF_B 8

/* Open ref_cnn.bin and build the reference CNN; 0 on failure (already reported). */
static int
ref_open(ref_case *rc)
{
	nn_status	st = {0};
	nn_shape	in = {28, 28, 1};

	if (!fx_open(&rc->f, "ref_cnn.bin"))
		return 0;
	if (!T_OK(nn_net_build(&rc->net, NN_REFERENCE_SPEC, in, 10, &st) == NN_OK, "reference CNN builds: %s", st.msg))
		return 0;
	rc->params = FX_F32(&rc->f, "params", (int) rc->net.nparams, 0, 0, 0);
	rc->input = FX_F32(&rc->f, "input", REF_B, 1, 28, 28);
	rc->labels = FX_I32(&rc->f, "labels", REF_B, 0, 0, 0);
	rc->pixels = FX_I32(&rc->f, "pixels", REF_B, 28, 28, 0);
	return rc->params && rc->input && rc->labels && rc->pixels;
}

/* names of the parameter tensors in state_dict order */
static const char *const ref_names[] = {
	"0.weight (conv1)", "0.bias (conv1)", "3.weight (conv2)", "3.bias (conv2)",
	"7.weight (dense 1600->128)", "7.bias (dense 1600->128)", "9.weight (dense 128->10)", "9.bias (dense 128->10)"
};

T_CASE(test_torch_ref_cnn_layout)
{
	ref_case	rc;
	const int32_t *sizes;
	size_t		off = 0;
	int			k = 0;

	if (!ref_open(&rc))
	{
		fx_close(&rc.f);
		return;
	}
	sizes = FX_I32(&rc.f, "param_sizes", 8, 0, 0, 0);
	if (sizes)
	{
		/* mlcnn's single buffer: per layer weight then bias, in layer order = state_dict order */
		for (int i = 0; i < rc.net.nlayers; i++)
		{
			const nn_layer *L = &rc.net.layers[i];

			if (L->w_len == 0)
				continue;
			T_OK(k + 1 < 8 && L->w_off == off && L->w_len == (size_t) sizes[k], "%s at offset %zu, %d values (got %zu, %zu)",
				 ref_names[k], off, sizes[k], L->w_off, L->w_len);
			off += (size_t) sizes[k++];
			T_OK(k < 8 && L->b_off == off && L->b_len == (size_t) sizes[k], "%s at offset %zu, %d values (got %zu, %zu)",
				 ref_names[k], off, sizes[k], L->b_off, L->b_len);
			off += (size_t) sizes[k++];
		}
		T_OK(k == 8 && off == rc.net.nparams, "8 tensors cover all %zu parameters", rc.net.nparams);
	}
	fx_close(&rc.f);
}

T_CASE(test_torch_ref_cnn_load_pixels)
{
	ref_case	rc;
	const uint8_t *rows[REF_B];
	uint8_t		bytes[REF_B][28 * 28];
	float	   *got = zeros(REF_B * 28 * 28);
	nn_norm		norm = {NN_NORM_MINMAX, 0, 1};

	if (ref_open(&rc))
	{
		for (int b = 0; b < REF_B; b++)
		{
			for (int p = 0; p < 28 * 28; p++)
				bytes[b][p] = (uint8_t) rc.pixels[b * 28 * 28 + p];
			rows[b] = bytes[b];
		}
		nn_load_pixels(got, rows, REF_B, rc.net.input, &norm);
		/* one channel: (C,B,H,W) and (B,C,H,W) coincide; v/255 in float32 both sides */
		T_CLOSE(got, rc.input, REF_B * 28 * 28, 0, 0, "minmax pixels equal torch's pixels/255 exactly");
	}
	free(got);
	fx_close(&rc.f);
}

/* Forward + loss (+ backward when grads) of the reference CNN on the fixture batch. */
static double
ref_run(ref_case *rc, nn_work *w, float *logits, float *grads)
{
	nn_status	st = {0};
	double		loss;
	int64_t		correct = 0;

	if (!T_OK(nn_work_alloc(w, &rc->net, REF_B, grads != NULL, &nn_malloc_allocator, &st) == NN_OK,
			  "work allocates: %s", st.msg))
		return NAN;
	memcpy(w->act[0], rc->input, sizeof(float) * REF_B * 28 * 28);
	nn_net_forward(&rc->net, rc->params, NULL, w, REF_B, grads != NULL, NULL, NULL);
	memcpy(logits, w->act[rc->net.nlayers], sizeof(float) * REF_B * 10);
	loss = nn_net_loss(&rc->net, w, rc->labels, REF_B, &correct, NULL);
	if (grads)
	{
		memset(grads, 0, sizeof(float) * rc->net.nparams);
		nn_net_backward(&rc->net, rc->params, grads, w, REF_B, 1.0f / REF_B, NULL);
	}
	nn_work_free(w, &nn_malloc_allocator);
	return loss / REF_B;
}

T_CASE(test_torch_ref_cnn_forward)
{
	ref_case	rc;
	nn_work		w;
	float		logits[REF_B * 10];
	const float *want,
			   *want_loss;

	if (ref_open(&rc) &&
		(want = FX_F32(&rc.f, "logits", REF_B, 10, 0, 0)) != NULL &&
		(want_loss = FX_F32(&rc.f, "loss", 1, 0, 0, 0)) != NULL)
	{
		/* inference-mode work (no backward buffers) */
		double		loss = ref_run(&rc, &w, logits, NULL);
		float		lossf = (float) loss;

		T_CLOSE(logits, want, REF_B * 10, ATOL_FWD, RTOL_FWD, "logits (inference work)");
		T_CLOSE(&lossf, want_loss, 1, 0, 1e-5, "mean cross-entropy loss");
		printf("# loss mlcnn %.9g torch %.9g\n", loss, want_loss[0]);
	}
	fx_close(&rc.f);
}

T_CASE(test_torch_ref_cnn_gradients)
{
	ref_case	rc;
	nn_work		w;
	float		logits[REF_B * 10];
	const float *want_logits,
			   *want_loss,
			   *want;
	float	   *grads = NULL;

	if (ref_open(&rc) &&
		(want_logits = FX_F32(&rc.f, "logits", REF_B, 10, 0, 0)) != NULL &&
		(want_loss = FX_F32(&rc.f, "loss", 1, 0, 0, 0)) != NULL &&
		(want = FX_F32(&rc.f, "grads", (int) rc.net.nparams, 0, 0, 0)) != NULL)
	{
		double		loss;
		float		lossf;
		int			k = 0;
		char		what[96];

		grads = zeros(rc.net.nparams);
		loss = ref_run(&rc, &w, logits, grads);
		lossf = (float) loss;
		T_CLOSE(logits, want_logits, REF_B * 10, ATOL_FWD, RTOL_FWD, "logits (training work)");
		T_CLOSE(&lossf, want_loss, 1, 0, 1e-5, "mean cross-entropy loss (training work)");
		for (int i = 0; i < rc.net.nlayers; i++)
		{
			const nn_layer *L = &rc.net.layers[i];

			if (L->w_len == 0)
				continue;
			snprintf(what, sizeof(what), "grad %s", ref_names[k++]);
			T_CLOSE(grads + L->w_off, want + L->w_off, L->w_len, ATOL_GRAD_REF, RTOL_GRAD, what);
			snprintf(what, sizeof(what), "grad %s", ref_names[k++]);
			T_CLOSE(grads + L->b_off, want + L->b_off, L->b_len, ATOL_GRAD_REF, RTOL_GRAD, what);
		}
		T_OK(k == 8, "all 8 parameter tensors compared");
		T_CLOSE(grads, want, rc.net.nparams, ATOL_GRAD_REF, RTOL_GRAD, "all gradients");
	}
	free(grads);
	fx_close(&rc.f);
}

/*
 * Optimizers: mlcnn's nn_optim_step fed PyTorch's gradients from the same
 * parameters must give PyTorch's parameters after one and two steps.
 */
static void
check_optimizer(ref_case *rc, const char *name, int kind, int steps)
{
	const float *grads = FX_F32(&rc->f, "grads", (int) rc->net.nparams, 0, 0, 0);
	const float *hp;
	const int32_t *idx;
	char		key[64];
	int			nidx = 0;
	size_t		n = rc->net.nparams;
	float	   *p,
			   *m,
			   *v,
			   *got;
	nn_optim	o;

	snprintf(key, sizeof(key), "%s.hp", name);
	hp = FX_F32(&rc->f, key, 5, 0, 0, 0);
	for (int i = 0; i < rc->f.n; i++)
		if (strcmp(rc->f.t[i].name, "step_index") == 0)
			nidx = (int) rc->f.t[i].count;
	idx = FX_I32(&rc->f, "step_index", nidx > 0 ? nidx : 1, 0, 0, 0);
	if (!grads || !hp || !idx)
		return;
	p = malloc(sizeof(float) * n);
	m = zeros(n);
	v = zeros(n);
	got = zeros((size_t) nidx);
	memcpy(p, rc->params, sizeof(float) * n);
	memset(&o, 0, sizeof(o));
	o.kind = kind;
	o.lr = hp[0];
	o.momentum = hp[1];
	o.beta2 = hp[2];
	o.eps = hp[3];
	o.weight_decay = hp[4];
	o.m = m;
	o.v = v;
	for (int t = 1; t <= steps; t++)
	{
		const float *want;
		char		what[96];

		nn_optim_step(&o, p, grads, n, o.lr);
		snprintf(key, sizeof(key), "%s.t%d", name, t);
		if ((want = FX_F32(&rc->f, key, nidx, 0, 0, 0)) == NULL)
			break;
		for (int i = 0; i < nidx; i++)
			got[i] = p[idx[i]];
		snprintf(what, sizeof(what), "%s: sampled parameters after step %d", name, t);
		if (kind == NN_OPT_ADAM)
			T_CLOSE(got, want, (size_t) nidx, 1e-6, 1e-5, what);
		else
			T_CLOSE(got, want, (size_t) nidx, 1e-7, 1e-5, what);
	}
	T_OK(o.t == steps, "%s took %d steps (t = %lld)", name, steps, (long long) o.t);
	free(p);
	free(m);
	free(v);
	free(got);
}

T_CASE(test_torch_optimizers)
{
	ref_case	rc;

	if (ref_open(&rc))
	{
		check_optimizer(&rc, "adam", NN_OPT_ADAM, 2);
		check_optimizer(&rc, "adam_wd", NN_OPT_ADAM, 1);
		check_optimizer(&rc, "momentum", NN_OPT_MOMENTUM, 2);
		check_optimizer(&rc, "sgd", NN_OPT_SGD, 1);
	}
	fx_close(&rc.f);
}

/* ---------------------------------------------------------------- layer cases */

/*
 * A conv case: builds the layer from spec on the fixture's input, runs the
 * fast kernels forward and backward and compares in mlcnn's layout. G is
 * the spec's groups: weights are (OC, C/G, K, K).
 */
static void
check_conv(const fx_file *f, const char *name, const char *spec, int B, int C, int H, int W,
		   int OC, int K, int OH, int OW, int G)
{
	char		key[96];
	nn_layer	L;
	nn_shape	in = {H, W, C};
	const float *inp,
			   *weight,
			   *bias,
			   *out,
			   *dout,
			   *dinp,
			   *dweight,
			   *dbias;
	float	   *x,
			   *y,
			   *want_y,
			   *dy,
			   *want_dx,
			   *col,
			   *dcol,
			   *gx,
			   *gw,
			   *gb;
	size_t		nin = (size_t) B * C * H * W,
				nout = (size_t) B * OC * OH * OW,
				ncol = (size_t) C * K * K * B * OH * OW,
				nw = (size_t) OC * (C / G) * K * K;

#define GET(var, field, ...) (snprintf(key, sizeof(key), "%s." field, name), var = FX_F32(f, key, __VA_ARGS__))
	GET(inp, "inp", B, C, H, W);
	GET(weight, "weight", OC, C / G, K, K);
	GET(bias, "bias", OC, 0, 0, 0);
	GET(out, "out", B, OC, OH, OW);
	GET(dout, "dout", B, OC, OH, OW);
	GET(dinp, "dinp", B, C, H, W);
	GET(dweight, "dweight", OC, C / G, K, K);
	GET(dbias, "dbias", OC, 0, 0, 0);
	if (!inp || !weight || !bias || !out || !dout || !dinp || !dweight || !dbias)
		return;
	if (!build_layer(&L, spec, in, 2))
		return;
	if (!T_OK(L.kind == NN_CONV && L.out.h == OH && L.out.w == OW && L.out.c == OC &&
			  L.w_len == nw && (L.groups > 1 ? L.groups : 1) == G,
			  "%s: \"%s\" gives PyTorch's output shape %dx%dx%d and %zu weights in %d groups (got %dx%dx%d, %zu)",
			  name, spec, OH, OW, OC, nw, G, L.out.h, L.out.w, L.out.c, L.w_len))
		return;

	x = to_cbhw(inp, B, C, (size_t) H * W);
	want_y = to_cbhw(out, B, OC, (size_t) OH * OW);
	dy = to_cbhw(dout, B, OC, (size_t) OH * OW);
	want_dx = to_cbhw(dinp, B, C, (size_t) H * W);
	y = zeros(nout);
	col = zeros(ncol);
	dcol = zeros(ncol);
	gx = zeros(nin);
	gw = zeros(nw);
	gb = zeros((size_t) OC);

	nn_conv2d_forward(y, col, x, weight, bias, &L, B);
	snprintf(key, sizeof(key), "%s: output", name);
	T_CLOSE(y, want_y, nout, ATOL_FWD, RTOL_FWD, key);
	/* net.c's convention: a 1x1 stride-1 conv keeps no col, backward reads the input */
	nn_conv2d_backward(gx, gw, gb, dcol, dy, (K == 1 && L.stride == 1 && L.pad == 0) ? x : col,
					   weight, &L, B);
	snprintf(key, sizeof(key), "%s: grad input", name);
	T_CLOSE(gx, want_dx, nin, ATOL_GRAD, RTOL_GRAD, key);
	snprintf(key, sizeof(key), "%s: grad weight", name);
	T_CLOSE(gw, dweight, nw, ATOL_GRAD, RTOL_GRAD, key);
	snprintf(key, sizeof(key), "%s: grad bias", name);
	T_CLOSE(gb, dbias, (size_t) OC, ATOL_GRAD, RTOL_GRAD, key);

	/* backward accumulates (+=): a second call doubles every gradient */
	nn_conv2d_backward(gx, gw, gb, dcol, dy, (K == 1 && L.stride == 1 && L.pad == 0) ? x : col,
					   weight, &L, B);
	for (size_t i = 0; i < (size_t) OC; i++)
		gb[i] *= 0.5f;
	snprintf(key, sizeof(key), "%s: grad bias accumulates", name);
	T_CLOSE(gb, dbias, (size_t) OC, ATOL_GRAD, RTOL_GRAD, key);

	free(x);
	free(want_y);
	free(dy);
	free(want_dx);
	free(y);
	free(col);
	free(dcol);
	free(gx);
	free(gw);
	free(gb);
}

T_CASE(test_torch_layer_conv)
{
	fx_file		f;

	if (fx_open(&f, "layers.bin"))
	{
		/* (9-3)/2+1 = 4, (7-3)/2+1 = 3 */
		check_conv(&f, "conv_stride2", "conv(4,3,2) dense(2)", 2, 3, 9, 7, 4, 3, 4, 3, 1);
		check_conv(&f, "conv_same", "conv(5,3,same) dense(2)", 2, 3, 6, 8, 5, 3, 6, 8, 1);
		check_conv(&f, "conv_k5", "conv(3,5) dense(2)", 3, 2, 10, 8, 3, 5, 6, 4, 1);
		check_conv(&f, "conv_1x1", "conv(4,1) dense(2)", 2, 3, 5, 6, 4, 1, 5, 6, 1);
		check_conv(&f, "conv_same_k5", "conv(3,5,same) dense(2)", 2, 2, 7, 5, 3, 5, 7, 5, 1);
	}
	fx_close(&f);
}

/* A maxpool case (window K, stride S). */
static void
check_maxpool(const fx_file *f, const char *name, const char *spec, int B, int C, int H, int W,
			  int OH, int OW)
{
	char		key[96];
	nn_layer	L;
	nn_shape	in = {H, W, C};
	const float *inp,
			   *out,
			   *dout,
			   *dinp;
	float	   *x,
			   *y,
			   *want_y,
			   *dy,
			   *want_dx,
			   *gx;
	int32_t    *argmax;
	size_t		nin = (size_t) B * C * H * W,
				nout = (size_t) B * C * OH * OW;

	GET(inp, "inp", B, C, H, W);
	GET(out, "out", B, C, OH, OW);
	GET(dout, "dout", B, C, OH, OW);
	GET(dinp, "dinp", B, C, H, W);
	if (!inp || !out || !dout || !dinp)
		return;
	if (!build_layer(&L, spec, in, 2))
		return;
	if (!T_OK(L.kind == NN_MAXPOOL && L.out.h == OH && L.out.w == OW && L.out.c == C,
			  "%s: \"%s\" gives PyTorch's output shape %dx%dx%d (got %dx%dx%d)",
			  name, spec, OH, OW, C, L.out.h, L.out.w, L.out.c))
		return;
	x = to_cbhw(inp, B, C, (size_t) H * W);
	want_y = to_cbhw(out, B, C, (size_t) OH * OW);
	dy = to_cbhw(dout, B, C, (size_t) OH * OW);
	want_dx = to_cbhw(dinp, B, C, (size_t) H * W);
	y = zeros(nout);
	gx = zeros(nin);
	argmax = calloc(nout, sizeof(int32_t));

	nn_maxpool_forward(y, argmax, x, &L, B);
	snprintf(key, sizeof(key), "%s: output (a selection: exact)", name);
	T_CLOSE(y, want_y, nout, 0, 0, key);
	nn_maxpool_backward(gx, dy, argmax, &L, B);
	/* overlapping windows (3/2) add two upstream values into one input: one rounding */
	snprintf(key, sizeof(key), "%s: grad input", name);
	T_CLOSE(gx, want_dx, nin, 1e-6, 1e-6, key);

	free(x);
	free(want_y);
	free(dy);
	free(want_dx);
	free(y);
	free(gx);
	free(argmax);
}

T_CASE(test_torch_layer_maxpool)
{
	fx_file		f;

	if (fx_open(&f, "layers.bin"))
	{
		/* floor(7/2) = 3, floor(9/2) = 4; (9-3)/2+1 = 4, (8-3)/2+1 = 3 */
		check_maxpool(&f, "maxpool2", "maxpool(2) dense(2)", 2, 3, 7, 9, 3, 4);
		check_maxpool(&f, "maxpool3s2", "maxpool(3,2) dense(2)", 2, 2, 9, 8, 4, 3);
	}
	fx_close(&f);
}

T_CASE(test_torch_layer_dense)
{
	fx_file		file;
	const fx_file *f = &file;
	const char *name = "dense";
	char		key[96];
	const float *inp,
			   *weight,
			   *bias,
			   *out,
			   *dout,
			   *dinp,
			   *dweight,
			   *dbias;
	const int	B = 3,
				I = 12,
				N = 5;

	if (fx_open(&file, "layers.bin"))
	{
		GET(inp, "inp", B, I, 0, 0);
		GET(weight, "weight", N, I, 0, 0);
		GET(bias, "bias", N, 0, 0, 0);
		GET(out, "out", B, N, 0, 0);
		GET(dout, "dout", B, N, 0, 0);
		GET(dinp, "dinp", B, I, 0, 0);
		GET(dweight, "dweight", N, I, 0, 0);
		GET(dbias, "dbias", N, 0, 0, 0);
		if (inp && weight && bias && out && dout && dinp && dweight && dbias)
		{
			float		y[3 * 5] = {0},
						gx[3 * 12] = {0},
						gw[5 * 12] = {0},
						gb[5] = {0};

			/* (B,N) is the same layout in both */
			nn_dense_forward(y, inp, weight, bias, B, I, N);
			T_CLOSE(y, out, (size_t) B * N, ATOL_FWD, RTOL_FWD, "dense: output");
			nn_dense_backward(gx, gw, gb, dout, inp, weight, B, I, N);
			T_CLOSE(gx, dinp, (size_t) B * I, ATOL_GRAD, RTOL_GRAD, "dense: grad input");
			T_CLOSE(gw, dweight, (size_t) N * I, ATOL_GRAD, RTOL_GRAD, "dense: grad weight");
			T_CLOSE(gb, dbias, (size_t) N, ATOL_GRAD, RTOL_GRAD, "dense: grad bias");
		}
	}
	fx_close(&file);
}

T_CASE(test_torch_layer_flatten_relu)
{
	fx_file		file;
	const fx_file *f = &file;
	char		key[96];
	const char *name;
	const float *inp,
			   *out,
			   *dout,
			   *dinp;
	const int	B = 2,
				C = 3,
				H = 4,
				W = 5;
	const size_t n = (size_t) B * C * H * W;

	if (!fx_open(&file, "layers.bin"))
	{
		fx_close(&file);
		return;
	}
	name = "flatten";
	GET(inp, "inp", B, C, H, W);
	GET(out, "out", B, C * H * W, 0, 0);
	GET(dout, "dout", B, C * H * W, 0, 0);
	GET(dinp, "dinp", B, C, H, W);
	if (inp && out && dout && dinp)
	{
		float	   *x = to_cbhw(inp, B, C, (size_t) H * W),
				   *want_dx = to_cbhw(dinp, B, C, (size_t) H * W),
				   *y = zeros(n),
				   *gx = zeros(n);

		/* (C,B,H,W) -> (B, C*H*W) must be torch's flatten of (B,C,H,W): a permutation, exact */
		nn_flatten_forward(y, x, B, C, H, W);
		T_CLOSE(y, out, n, 0, 0, "flatten: output in (c,h,w) order");
		nn_flatten_backward(gx, dout, B, C, H, W);
		T_CLOSE(gx, want_dx, n, 0, 0, "flatten: grad input");
		free(x);
		free(want_dx);
		free(y);
		free(gx);
	}

	name = "relu";
	GET(inp, "inp", B, C, H, W);
	GET(out, "out", B, C, H, W);
	GET(dout, "dout", B, C, H, W);
	GET(dinp, "dinp", B, C, H, W);
	if (inp && out && dout && dinp)
	{
		float	   *y = zeros(n),
				   *gx = zeros(n);

		/* elementwise: any layout */
		nn_relu_forward(y, inp, n);
		T_CLOSE(y, out, n, 0, 0, "relu: output");
		nn_relu_backward(gx, dout, y, n);
		T_CLOSE(gx, dinp, n, 0, 0, "relu: grad input");
		free(y);
		free(gx);
	}
	fx_close(&file);
}

T_CASE(test_torch_layer_softmax_xent)
{
	fx_file		f;
	const float *logits,
			   *probs,
			   *loss,
			   *dlogits;
	const int32_t *labels;
	const int	B = 5,
				K = 7;

	if (fx_open(&f, "layers.bin") &&
		(logits = FX_F32(&f, "xent.logits", B, K, 0, 0)) != NULL &&
		(labels = FX_I32(&f, "xent.labels", B, 0, 0, 0)) != NULL &&
		(probs = FX_F32(&f, "xent.probs", B, K, 0, 0)) != NULL &&
		(loss = FX_F32(&f, "xent.loss", 1, 0, 0, 0)) != NULL &&
		(dlogits = FX_F32(&f, "xent.dlogits", B, K, 0, 0)) != NULL)
	{
		float		p[5 * 7] = {0},
					g[5 * 7] = {0},
					meanf;
		double		sum;

		/* rows 2 and 3 hold logits near +1000 and -500: must stay finite */
		sum = nn_softmax_xent_forward(p, logits, labels, B, K);
		meanf = (float) (sum / B);
		T_CLOSE(p, probs, (size_t) B * K, 1e-7, 1e-5, "softmax probabilities");
		T_CLOSE(&meanf, loss, 1, 0, 1e-5, "mean cross-entropy with huge logits");
		nn_softmax_xent_backward(g, p, labels, B, K, 1.0f / B);
		T_CLOSE(g, dlogits, (size_t) B * K, 1e-7, 1e-5, "d(mean loss)/d(logits)");
	}
	fx_close(&f);
}

/* ---------------------------------------------------------------- schedules */

/*
 * nn_lr_at against PyTorch's schedulers stepped once per batch:
 * OneCycleLR(max_lr, total_steps) with its defaults (pct_start 0.3,
 * div_factor 25, final_div_factor 1e4, cosine annealing) and
 * CosineAnnealingLR(T_max = total_steps - 1, eta_min 0). PyTorch computes
 * in double (cosine recursively), mlcnn in double then rounds to float:
 * rtol 1e-5, atol 1e-8 (1e-6 of the peak rate; values near the ends are
 * ~1e-8 and below).
 */
T_CASE(test_torch_lr_schedules)
{
	fx_file		f;
	static const int totals[] = {2, 7, 100, 1000};

	if (fx_open(&f, "schedules.bin"))
	{
		for (int k = 0; k < 4; k++)
		{
			int			T = totals[k];
			float	   *got = zeros((size_t) T);
			const float *want;
			char		key[64],
						what[96];

			snprintf(key, sizeof(key), "lr.onecycle.%d", T);
			if ((want = FX_F32(&f, key, T, 0, 0, 0)) != NULL)
			{
				for (int s = 0; s < T; s++)
					got[s] = nn_lr_at(NN_LR_ONECYCLE, 0.01f, s, T, T);
				snprintf(what, sizeof(what), "onecycle over %d steps equals OneCycleLR", T);
				T_CLOSE(got, want, (size_t) T, 1e-8, 1e-5, what);
			}
			snprintf(key, sizeof(key), "lr.cosine.%d", T);
			if ((want = FX_F32(&f, key, T, 0, 0, 0)) != NULL)
			{
				for (int s = 0; s < T; s++)
					got[s] = nn_lr_at(NN_LR_COSINE, 0.01f, s, T, T);
				snprintf(what, sizeof(what), "cosine over %d steps equals CosineAnnealingLR(T_max %d)", T, T - 1);
				T_CLOSE(got, want, (size_t) T, 1e-8, 1e-5, what);
			}
			free(got);
		}
	}
	fx_close(&f);
}

/* ---------------------------------------------------------------- the graph core's ops */

/*
 * ops.bin: batch norm (training and evaluation mode), average pooling,
 * global average pooling and grouped convolutions, one layer each.
 */

/*
 * Node i of net alone through its op, as net.c runs it (batch norm's
 * training pass in its coupled steps over the whole batch): forward of x
 * into y, then backward of the upstream gradient dy into dx, dw and db
 * (zeroed by the caller). buffers are updated in training mode.
 */
static int
node_pass(const nn_net *net, int i, const float *params, float *buffers, int B, int train,
		  const float *x, float *y, const float *dy, float *dx, float *dw, float *db)
{
	const nn_layer *L = &net->layers[i];
	const nn_op *op = nn_op_of(L->kind);
	const nn_coupled *cp = train ? op->coupled : NULL;
	double		count = cp ? (double) B * cp->per_image(L) : 0;
	nn_work		w;
	nn_op_ctx	c;
	nn_status	st = {0};

	if (nn_work_alloc(&w, net, B, 1 | NN_WORK_KEEP_ALL, &nn_malloc_allocator, &st) != NN_OK)
		return T_OK(0, "work for \"%s\" allocates: %s", net->spec, st.msg);
	memset(&c, 0, sizeof(c));
	c.net = net;
	c.L = L;
	c.i = i;
	c.B = B;
	c.train = train;
	c.in[0] = x;
	c.out = y;
	c.w = L->w_len ? params + L->w_off : NULL;
	c.b = L->b_len ? params + L->b_off : NULL;
	c.buf = L->buf_len ? buffers + L->buf_off : NULL;
	c.work = &w;
	if (cp)
	{
		cp->stats(&c, w.stat[i]);
		cp->update(L, c.buf, w.stat[i], count);
		cp->apply(&c, w.stat[i], count);
	}
	else
		op->forward(&c);
	c.dout = dy;
	c.din[0] = dx;
	c.dw = dw;
	c.db = db;
	if (cp)
	{
		cp->bstats(&c, w.stat[i]);
		cp->bapply(&c, w.stat[i], count);
	}
	else
		op->backward(&c);
	nn_work_free(&w, &nn_malloc_allocator);
	return 1;
}

/*
 * A batch norm case: node `node` of spec on the fixture's input, which is
 * (B,C,H,W) (BatchNorm2d) or, with H = 0, (B,C) (BatchNorm1d, a flat
 * input). Training mode: the output, the gradients and the running
 * statistics after the update; evaluation mode, from the same starting
 * state: the output and gradients on the running statistics, which stay.
 */
static void
check_batchnorm(const fx_file *f, const char *name, const char *spec, nn_shape in, int node,
				int B, int C, int H, int W)
{
	static const char *const modes[2] = {"eval", "train"};
	char		key[96];
	nn_net		net;
	nn_status	st = {0};
	const nn_layer *L;
	int			spatial = H > 0;
	size_t		hw = spatial ? (size_t) H * W : 1,
				n = (size_t) B * C * hw;
	const float *inp,
			   *weight,
			   *bias,
			   *rmean,
			   *rvar,
			   *dout;

	GET(inp, "inp", B, C, H, W);
	GET(weight, "weight", C, 0, 0, 0);
	GET(bias, "bias", C, 0, 0, 0);
	GET(rmean, "running_mean", C, 0, 0, 0);
	GET(rvar, "running_var", C, 0, 0, 0);
	GET(dout, "dout", B, C, H, W);
	if (!inp || !weight || !bias || !rmean || !rvar || !dout)
		return;
	if (!T_OK(nn_net_build(&net, spec, in, 2, &st) == NN_OK, "\"%s\" builds: %s", spec, st.msg))
		return;
	L = &net.layers[node];
	if (!T_OK(L->kind == NN_BATCHNORM && L->in.c == C && L->flat_in == !spatial && L->buf_len == 2 * (size_t) C + 1,
			  "%s: node %d of \"%s\" is a batch norm over %d %s with 2C+1 buffers", name, node, spec, C,
			  spatial ? "channels" : "features (flat input)"))
		return;
	for (int train = 1; train >= 0; train--)
	{
		const char *mode = modes[train];
		float	   *params = zeros(net.nparams),
				   *buffers = zeros(net.nbuffers),
				   *x = spatial ? to_cbhw(inp, B, C, hw) : zeros(n),
				   *dy = spatial ? to_cbhw(dout, B, C, hw) : zeros(n),
				   *y = zeros(n),
				   *dx = zeros(n),
				   *dw = zeros((size_t) C),
				   *db = zeros((size_t) C),
				   *want;
		const float *want_out,
				   *want_dinp,
				   *want_dw,
				   *want_db;

		if (!spatial)
		{
			/* (B,N) is the same layout in both */
			memcpy(x, inp, sizeof(float) * n);
			memcpy(dy, dout, sizeof(float) * n);
		}
		memcpy(params + L->w_off, weight, sizeof(float) * C);
		memcpy(params + L->b_off, bias, sizeof(float) * C);
		memcpy(buffers + L->buf_off, rmean, sizeof(float) * C);
		memcpy(buffers + L->buf_off + C, rvar, sizeof(float) * C);
		snprintf(key, sizeof(key), "%s.%s.out", name, mode);
		want_out = FX_F32(f, key, B, C, H, W);
		snprintf(key, sizeof(key), "%s.%s.dinp", name, mode);
		want_dinp = FX_F32(f, key, B, C, H, W);
		snprintf(key, sizeof(key), "%s.%s.dweight", name, mode);
		want_dw = FX_F32(f, key, C, 0, 0, 0);
		snprintf(key, sizeof(key), "%s.%s.dbias", name, mode);
		want_db = FX_F32(f, key, C, 0, 0, 0);
		if (want_out && want_dinp && want_dw && want_db &&
			node_pass(&net, node, params, buffers, B, train, x, y, dy, dx, dw, db))
		{
			want = spatial ? to_cbhw(want_out, B, C, hw) : zeros(n);
			if (!spatial)
				memcpy(want, want_out, sizeof(float) * n);
			snprintf(key, sizeof(key), "%s (%s mode): output", name, mode);
			T_CLOSE(y, want, n, ATOL_FWD, RTOL_FWD, key);
			free(want);
			want = spatial ? to_cbhw(want_dinp, B, C, hw) : zeros(n);
			if (!spatial)
				memcpy(want, want_dinp, sizeof(float) * n);
			snprintf(key, sizeof(key), "%s (%s mode): grad input", name, mode);
			T_CLOSE(dx, want, n, ATOL_GRAD, RTOL_GRAD, key);
			free(want);
			snprintf(key, sizeof(key), "%s (%s mode): grad weight", name, mode);
			T_CLOSE(dw, want_dw, (size_t) C, ATOL_GRAD, RTOL_GRAD, key);
			snprintf(key, sizeof(key), "%s (%s mode): grad bias", name, mode);
			T_CLOSE(db, want_db, (size_t) C, ATOL_GRAD, RTOL_GRAD, key);
			if (train)
			{
				const float *want_rm,
						   *want_rv;

				snprintf(key, sizeof(key), "%s.train.running_mean", name);
				want_rm = FX_F32(f, key, C, 0, 0, 0);
				snprintf(key, sizeof(key), "%s.train.running_var", name);
				want_rv = FX_F32(f, key, C, 0, 0, 0);
				if (want_rm && want_rv)
				{
					snprintf(key, sizeof(key), "%s (train mode): running mean after the update", name);
					T_CLOSE(buffers + L->buf_off, want_rm, (size_t) C, ATOL_BUF, RTOL_BUF, key);
					snprintf(key, sizeof(key), "%s (train mode): running variance (unbiased) after the update", name);
					T_CLOSE(buffers + L->buf_off + C, want_rv, (size_t) C, ATOL_BUF, RTOL_BUF, key);
				}
				T_OK(buffers[L->buf_off + 2 * C] == 1.0f, "%s (train mode): num_batches_tracked 0 -> 1 (got %g)",
					 name, buffers[L->buf_off + 2 * C]);
			}
			else
				T_OK(memcmp(buffers + L->buf_off, rmean, sizeof(float) * C) == 0 &&
					 memcmp(buffers + L->buf_off + C, rvar, sizeof(float) * C) == 0 &&
					 buffers[L->buf_off + 2 * C] == 0.0f,
					 "%s (eval mode): the running statistics stay as they were", name);
		}
		free(params);
		free(buffers);
		free(x);
		free(dy);
		free(y);
		free(dx);
		free(dw);
		free(db);
	}
}

T_CASE(test_torch_op_batchnorm)
{
	fx_file		f;
	nn_shape	img = {5, 6, 3},
				vec = {1, 1, 5};

	if (fx_open(&f, "ops.bin"))
	{
		/* batchnorm on an image: node 0; on a flat vector: node 1, after the flatten */
		check_batchnorm(&f, "bn2d", "batchnorm dense(2)", img, 0, 4, 3, 5, 6);
		check_batchnorm(&f, "bn1d", "flatten batchnorm dense(2)", vec, 1, 6, 5, 0, 0);
	}
	fx_close(&f);
}

/* An average pooling case (avgpool(W[,S]) or globalavgpool), node 0 of spec. */
static void
check_avgpool(const fx_file *f, const char *name, const char *spec, int B, int C, int H, int W,
			  int OH, int OW)
{
	char		key[96];
	nn_net		net;
	nn_status	st = {0};
	nn_shape	in = {H, W, C};
	const float *inp,
			   *out,
			   *dout,
			   *dinp;
	size_t		nin = (size_t) B * C * H * W,
				nout = (size_t) B * C * OH * OW;

	GET(inp, "inp", B, C, H, W);
	GET(out, "out", B, C, OH, OW);
	GET(dout, "dout", B, C, OH, OW);
	GET(dinp, "dinp", B, C, H, W);
	if (!inp || !out || !dout || !dinp)
		return;
	if (!T_OK(nn_net_build(&net, spec, in, 2, &st) == NN_OK, "\"%s\" builds: %s", spec, st.msg))
		return;
	if (T_OK(net.layers[0].out.h == OH && net.layers[0].out.w == OW && net.layers[0].out.c == C,
			 "%s: \"%s\" gives PyTorch's output shape %dx%dx%d (got %dx%dx%d)", name, spec, OH, OW, C,
			 net.layers[0].out.h, net.layers[0].out.w, net.layers[0].out.c))
	{
		float	   *x = to_cbhw(inp, B, C, (size_t) H * W),
				   *dy = to_cbhw(dout, B, C, (size_t) OH * OW),
				   *want_y = to_cbhw(out, B, C, (size_t) OH * OW),
				   *want_dx = to_cbhw(dinp, B, C, (size_t) H * W),
				   *y = zeros(nout),
				   *dx = zeros(nin);

		if (node_pass(&net, 0, NULL, NULL, B, 1, x, y, dy, dx, NULL, NULL))
		{
			snprintf(key, sizeof(key), "%s: output", name);
			T_CLOSE(y, want_y, nout, ATOL_FWD, RTOL_FWD, key);
			snprintf(key, sizeof(key), "%s: grad input", name);
			T_CLOSE(dx, want_dx, nin, ATOL_GRAD, RTOL_GRAD, key);
		}
		free(x);
		free(dy);
		free(want_y);
		free(want_dx);
		free(y);
		free(dx);
	}
}

T_CASE(test_torch_op_avgpool)
{
	fx_file		f;

	if (fx_open(&f, "ops.bin"))
	{
		/* (9-3)/2+1 = 4, (8-3)/2+1 = 3; floor(7/2) = 3, floor(9/2) = 4; (5-2)+1 = 4, (4-2)+1 = 3 */
		check_avgpool(&f, "avgpool3s2", "avgpool(3,2) dense(2)", 2, 3, 9, 8, 4, 3);
		check_avgpool(&f, "avgpool2", "avgpool(2) dense(2)", 2, 2, 7, 9, 3, 4);
		check_avgpool(&f, "avgpool2s1", "avgpool(2,1) dense(2)", 2, 2, 5, 4, 4, 3);
		/* AdaptiveAvgPool2d(1): (B,C,1,1) */
		check_avgpool(&f, "gap", "globalavgpool dense(2)", 3, 4, 5, 7, 1, 1);
	}
	fx_close(&f);
}

T_CASE(test_torch_op_conv_groups)
{
	fx_file		f;

	if (fx_open(&f, "ops.bin"))
	{
		/* 2 groups of 2 -> 3 channels; depthwise, stride 2, padding 1: (9+2-3)/2+1 = 5, 4; depthwise x2 */
		check_conv(&f, "conv_groups2", "conv(6,3,1,same,groups=2) dense(2)", 2, 4, 7, 6, 6, 3, 7, 6, 2);
		check_conv(&f, "conv_depthwise", "conv(4,3,2,1,groups=4) dense(2)", 2, 4, 9, 8, 4, 3, 5, 4, 4);
		check_conv(&f, "conv_depthwise_x2", "conv(6,3,groups=3) dense(2)", 2, 3, 6, 7, 6, 3, 4, 5, 3);
	}
	fx_close(&f);
}

/* ---------------------------------------------------------------- whole nets */

/*
 * resnet.bin, resnet_proj.bin, graph_net.bin: a network built by
 * make_fixtures.py from the same spec as mlcnn's, as names.c describes the
 * PyTorch module tree, with PyTorch's initialisation and batch norms set
 * as if trained a little (random weight, bias and running statistics, 5
 * batches tracked). Each file: the initial state as sd.<state_dict key>,
 * the batch (input, labels), three training steps on it with SGD,
 * momentum and weight decay (t<k>.logits, t<k>.loss, t<k>.buffers: the
 * running statistics after step k's forward pass; grad.<key>: step 1's
 * gradients; t3.params: the parameters after the third step, every
 * sample_stride-th value), and an evaluation-mode pass on the initial
 * state (eval.logits, eval.loss and, but for resnet.bin, eval.grad.<key>).
 */

#define NET_MAX_TENSORS 96

/* a whole-net fixture: the net mlcnn builds from the spec and PyTorch's state */
typedef struct net_fx
{
	fx_file		f;
	const char *file;
	nn_net		net;
	nn_tensor_info t[NET_MAX_TENSORS];
	int			nt;
	int			B;
	float	   *params;			/* the initial state, from sd.* */
	float	   *buffers;
	float	   *input;			/* (C,B,H,W) */
	const int32_t *labels;
} net_fx;

/* the fixture tensor called name, or NULL (silent: the caller asserts) */
static const fx_tensor *
fx_find(const fx_file *f, const char *name)
{
	for (int i = 0; i < f->n; i++)
		if (strcmp(f->t[i].name, name) == 0)
			return &f->t[i];
	return NULL;
}

/*
 * The state_dict of the fixture against nn_net_tensors: the same keys in
 * the same order with the same shapes, laid out one after another in the
 * parameters and in the buffers. Loads the initial state on the way.
 */
static int
net_check_state(net_fx *nf)
{
	const fx_file *f = &nf->f;
	size_t		poff = 0,
				boff = 0;
	int			k = 0,
				bad = -1;
	char		why[160] = "";

	for (int i = 0; i < f->n && bad < 0; i++)
	{
		const fx_tensor *ft = &f->t[i];
		const nn_tensor_info *t;
		int			same;

		if (strncmp(ft->name, "sd.", 3) != 0)
			continue;
		if (k >= nf->nt)
		{
			bad = k;
			snprintf(why, sizeof(why), "PyTorch has %s beyond mlcnn's %d tensors", ft->name, nf->nt);
			break;
		}
		t = &nf->t[k];
		same = strcmp(ft->name + 3, t->name) == 0 && ft->ndim == t->ndims && ft->count == t->len &&
			ft->dtype == (t->ndims == 0 ? 1 : 0) && t->off == (t->buffer ? boff : poff);
		for (int d = 0; same && d < t->ndims; d++)
			same = ft->dims[d] == t->shape[d];
		if (!same)
		{
			bad = k;
			snprintf(why, sizeof(why), "PyTorch's key %d is %s (%d dims, %zu values), mlcnn's %s (%d dims, %zu values at %zu)",
					 k, ft->name + 3, ft->ndim, ft->count, t->name, t->ndims, t->len, t->off);
			break;
		}
		if (t->ndims == 0)
			nf->buffers[t->off] = (float) *(const int32_t *) ft->data;
		else
			memcpy((t->buffer ? nf->buffers : nf->params) + t->off, ft->data, sizeof(float) * t->len);
		*(t->buffer ? &boff : &poff) += t->len;
		k++;
	}
	if (bad < 0 && k != nf->nt)
	{
		bad = k;
		snprintf(why, sizeof(why), "PyTorch has %d keys, mlcnn %d tensors", k, nf->nt);
	}
	return T_OK(bad < 0 && poff == nf->net.nparams && boff == nf->net.nbuffers,
				"%s: the %d state_dict keys, shapes and order are nn_net_tensors' (%zu parameters, %zu buffer values)%s%s",
				nf->file, nf->nt, nf->net.nparams, nf->net.nbuffers, bad < 0 ? "" : ": ", why);
}

/* Open a whole-net fixture, build spec and load the initial state; 0 on failure (reported). */
static int
net_open(net_fx *nf, const char *file, const char *spec, nn_shape in, int classes, int B)
{
	nn_status	st = {0};
	const float *x;

	memset(nf, 0, sizeof(*nf));
	nf->file = file;
	nf->B = B;
	if (!fx_open(&nf->f, file))
		return 0;
	if (!T_OK(nn_net_build(&nf->net, spec, in, classes, &st) == NN_OK, "%s: \"%s\" builds: %s", file, spec, st.msg))
		return 0;
	nf->nt = nn_net_tensors(&nf->net, nf->t, NET_MAX_TENSORS);
	if (nf->nt > NET_MAX_TENSORS)
		return T_OK(0, "%s: %d tensors fit in %d", file, nf->nt, NET_MAX_TENSORS);
	nf->params = zeros(nf->net.nparams);
	nf->buffers = zeros(nf->net.nbuffers);
	x = FX_F32(&nf->f, "input", B, in.c, in.h, in.w);
	nf->labels = FX_I32(&nf->f, "labels", B, 0, 0, 0);
	if (!x || !nf->labels)
		return 0;
	nf->input = to_cbhw(x, B, in.c, (size_t) in.h * in.w);
	return net_check_state(nf);
}

/* Release a whole-net fixture. */
static void
net_close(net_fx *nf)
{
	free(nf->params);
	free(nf->buffers);
	free(nf->input);
	fx_close(&nf->f);
}

/*
 * Compare got (the parameters or, buffer set, the buffers) tensor by tensor
 * with the fixture: per-key tensors prefix<key> when flat is NULL, else the
 * flat fixture array flat, which holds every stride-th value of the layout.
 */
static void
net_compare(const net_fx *nf, const float *got, int buffer, const char *prefix, const char *flat,
			int stride, double atol, double rtol, const char *what)
{
	const float *all = NULL;
	size_t		n = buffer ? nf->net.nbuffers : nf->net.nparams;
	char		key[FX_NAME_LEN + 16],
				msg[160];

	if (flat)
	{
		const fx_tensor *ft = fx_find(&nf->f, flat);

		if (!ft || ft->dtype != 0 || ft->count != (n + stride - 1) / stride)
		{
			T_OK(0, "%s: %s holds every %d%s value of %zu", nf->file, flat, stride, stride == 1 ? "" : "th", n);
			return;
		}
		all = ft->data;
	}
	for (int k = 0; k < nf->nt; k++)
	{
		const nn_tensor_info *t = &nf->t[k];
		float	   *g,
				   *w;
		size_t		m = 0;

		if (t->buffer != buffer)
			continue;
		g = zeros(t->len);
		w = zeros(t->len);
		if (all)
		{
			/* the sampled values inside this tensor */
			for (size_t i = (t->off + stride - 1) / stride * stride; i < t->off + t->len; i += stride)
			{
				g[m] = got[i];
				w[m++] = all[i / stride];
			}
		}
		else
		{
			const fx_tensor *ft;

			snprintf(key, sizeof(key), "%s%s", prefix, t->name);
			ft = fx_find(&nf->f, key);
			if (!ft || ft->dtype != 0 || ft->count != t->len)
				T_OK(0, "%s: %s holds %zu values", nf->file, key, t->len);
			else
			{
				memcpy(g, got + t->off, sizeof(float) * t->len);
				memcpy(w, ft->data, sizeof(float) * t->len);
				m = t->len;
			}
		}
		snprintf(msg, sizeof(msg), "%s: %s %s", nf->file, what, t->name);
		if (m > 0)
			T_CLOSE(g, w, m, atol, rtol, msg);
		free(g);
		free(w);
	}
}

/* nn_parts_run that runs the parts one after another */
static void
run_parts_serial(nn_part_fn fn, void *ctx, int nparts, void *run_ctx)
{
	for (int p = 0; p < nparts; p++)
		fn(ctx, p);
}

/*
 * Forward (training mode or not), loss and backward of the fixture batch at
 * params/buffers into grads (zeroed here), in nparts parts as training
 * splits a batch over threads (1: nn_net_forward itself; 2: a third of the
 * batch and the rest, an uneven split); the logits into
 * logits (B,classes). Returns the mean loss, NAN on failure (reported).
 */
static double
net_pass(const net_fx *nf, const float *params, float *buffers, int train, int nparts,
		 float *logits, float *grads)
{
	const nn_net *net = &nf->net;
	size_t		hw = (size_t) net->input.h * net->input.w,
				np = net->nparams;
	int			K = net->classes,
				sizes[2] = {nparts == 1 ? nf->B : nf->B / 3, nf->B - nf->B / 3},
				at = 0,
				ok = 1;
	nn_work		w[2];
	nn_work    *wp[2] = {&w[0], &w[1]};
	nn_rng	   *rng[2] = {NULL, NULL};
	nn_timing  *tm[2] = {NULL, NULL};
	float	   *g[2] = {grads, zeros(np)};
	double		loss = 0;
	nn_status	st = {0};

	memset(w, 0, sizeof(w));
	memset(grads, 0, sizeof(float) * np);
	for (int p = 0; p < nparts; p++)
	{
		if (nn_work_alloc(&w[p], net, sizes[p], 1, &nn_malloc_allocator, &st) != NN_OK)
			ok = T_OK(0, "%s: work of %d allocates: %s", nf->file, sizes[p], st.msg);
		for (int ch = 0; ok && ch < net->input.c; ch++)
			memcpy(w[p].act[0] + (size_t) ch * sizes[p] * hw, nf->input + ((size_t) ch * nf->B + at) * hw,
				   sizeof(float) * sizes[p] * hw);
		at += sizes[p];
	}
	if (ok && nparts == 1)
	{
		ok = nn_net_forward(net, params, buffers, &w[0], nf->B, train, NULL, NULL) == NN_OK;
		loss = nn_net_loss(net, &w[0], nf->labels, nf->B, NULL, NULL);
		ok &= nn_net_backward(net, params, grads, &w[0], nf->B, 1.0f / nf->B, NULL) == NN_OK;
		memcpy(logits, w[0].act[net->nlayers], sizeof(float) * nf->B * K);
	}
	else if (ok)
	{
		ok = nn_net_forward_parts(net, params, buffers, wp, sizes, 2, rng, tm, run_parts_serial, NULL) == NN_OK;
		for (int p = 0, b = 0; p < 2; b += sizes[p], p++)
		{
			loss += nn_net_loss(net, &w[p], nf->labels + b, sizes[p], NULL, NULL);
			memcpy(logits + (size_t) b * K, w[p].act[net->nlayers], sizeof(float) * sizes[p] * K);
		}
		ok &= nn_net_backward_parts(net, params, g, wp, sizes, 2, 1.0f / nf->B, tm, run_parts_serial, NULL) == NN_OK;
		for (size_t i = 0; i < np; i++)
			grads[i] += g[1][i];
	}
	for (int p = 0; p < nparts; p++)
		nn_work_free(&w[p], &nn_malloc_allocator);
	free(g[1]);
	if (!ok)
		T_OK(0, "%s: the %s pass%s runs", nf->file, train ? "training" : "evaluation",
			 nparts == 1 ? "" : " in two parts");
	return ok ? loss / nf->B : NAN;
}

/*
 * Three training steps on the fixture batch from the initial state, each a
 * forward pass with the batch's statistics (updating the running ones),
 * the loss, backward and nn_optim_step with PyTorch's SGD settings, the
 * batch whole or in two parts; every step's logits, loss and running
 * statistics, step 1's gradients and the parameters after step 3 against
 * PyTorch's.
 */
static void
net_train_steps(const net_fx *nf, int nparts)
{
	const nn_net *net = &nf->net;
	size_t		np = net->nparams;
	int			K = net->classes;
	float	   *params = malloc(sizeof(float) * np),
			   *buffers = malloc(sizeof(float) * net->nbuffers),
			   *grads = zeros(np),
			   *mom = zeros(np),
			   *logits = zeros((size_t) nf->B * K);
	const float *hp = FX_F32(&nf->f, "sgd.hp", 5, 0, 0, 0);
	const int32_t *stride = FX_I32(&nf->f, "sample_stride", 1, 0, 0, 0);
	const char *how = nparts == 1 ? "whole batch" : "two parts";
	nn_optim	o;
	char		key[64],
				what[96];

	memcpy(params, nf->params, sizeof(float) * np);
	memcpy(buffers, nf->buffers, sizeof(float) * net->nbuffers);
	memset(&o, 0, sizeof(o));
	if (hp && stride)
	{
		o.kind = NN_OPT_MOMENTUM;
		o.lr = hp[0];
		o.momentum = hp[1];
		o.weight_decay = hp[4];
		o.m = mom;
		for (int t = 1; t <= 3; t++)
		{
			double		loss = net_pass(nf, params, buffers, 1, nparts, logits, grads);
			float		lossf = (float) loss;
			const float *want;

			snprintf(key, sizeof(key), "t%d.logits", t);
			snprintf(what, sizeof(what), "%s: step %d logits (training mode, %s)", nf->file, t, how);
			if ((want = FX_F32(&nf->f, key, nf->B, K, 0, 0)) != NULL)
				T_CLOSE(logits, want, (size_t) nf->B * K, ATOL_NET_FWD, RTOL_NET_FWD, what);
			snprintf(key, sizeof(key), "t%d.loss", t);
			snprintf(what, sizeof(what), "%s: step %d loss (%s)", nf->file, t, how);
			if ((want = FX_F32(&nf->f, key, 1, 0, 0, 0)) != NULL)
				T_CLOSE(&lossf, want, 1, 0, RTOL_NET_LOSS, what);
			snprintf(key, sizeof(key), "t%d.buffers", t);
			snprintf(what, sizeof(what), "step %d (%s) running statistics", t, how);
			net_compare(nf, buffers, 1, "", key, 1, ATOL_BUF, RTOL_BUF, what);
			if (t == 1)
			{
				snprintf(what, sizeof(what), "step 1 (%s) gradient", how);
				net_compare(nf, grads, 0, "grad.", NULL, 1, ATOL_NET_GRAD, RTOL_NET_GRAD, what);
			}
			nn_optim_step(&o, params, grads, np, o.lr);
		}
		snprintf(what, sizeof(what), "after 3 SGD steps (%s), parameters", how);
		net_compare(nf, params, 0, "", "t3.params", stride[0], ATOL_NET_STEP, RTOL_NET_STEP, what);
		/* num_batches_tracked: 5 + 3 */
		for (int k = 0; k < nf->nt; k++)
			if (nf->t[k].ndims == 0 && !T_OK(buffers[nf->t[k].off] == 8.0f, "%s: %s is 8 after 3 steps (got %g)",
											 nf->file, nf->t[k].name, buffers[nf->t[k].off]))
				break;
	}
	free(params);
	free(buffers);
	free(grads);
	free(mom);
	free(logits);
}

/* Evaluation mode on the initial state: logits, loss, gradients where stored, buffers kept; an inference work's logits. */
static void
net_eval(const net_fx *nf)
{
	const nn_net *net = &nf->net;
	int			K = net->classes;
	float	   *buffers = malloc(sizeof(float) * net->nbuffers),
			   *grads = zeros(net->nparams),
			   *logits = zeros((size_t) nf->B * K);
	const float *want,
			   *want_logits;
	char		what[96];
	double		loss;
	float		lossf;
	nn_work		w;
	nn_status	st = {0};

	memcpy(buffers, nf->buffers, sizeof(float) * net->nbuffers);
	loss = net_pass(nf, nf->params, buffers, 0, 1, logits, grads);
	lossf = (float) loss;
	snprintf(what, sizeof(what), "%s: logits (evaluation mode: running statistics)", nf->file);
	if ((want_logits = FX_F32(&nf->f, "eval.logits", nf->B, K, 0, 0)) != NULL)
		T_CLOSE(logits, want_logits, (size_t) nf->B * K, ATOL_NET_FWD, RTOL_NET_FWD, what);
	snprintf(what, sizeof(what), "%s: loss (evaluation mode)", nf->file);
	if ((want = FX_F32(&nf->f, "eval.loss", 1, 0, 0, 0)) != NULL)
		T_CLOSE(&lossf, want, 1, 0, RTOL_NET_LOSS, what);
	if (fx_find(&nf->f, "eval.grad.0.weight"))
		net_compare(nf, grads, 0, "eval.grad.", NULL, 1, ATOL_NET_GRAD, RTOL_NET_GRAD, "evaluation-mode gradient");
	T_OK(memcmp(buffers, nf->buffers, sizeof(float) * net->nbuffers) == 0,
		 "%s: evaluation mode leaves the running statistics alone", nf->file);

	/* predict's way: an inference work, whose planner reuses every buffer once its last reader ran */
	if (nn_work_alloc(&w, net, nf->B, 0, &nn_malloc_allocator, &st) != NN_OK)
		T_OK(0, "%s: inference work allocates: %s", nf->file, st.msg);
	else
	{
		memcpy(w.act[0], nf->input, sizeof(float) * nf->B * nn_shape_elems(net->input));
		T_OK(nn_net_forward(net, nf->params, buffers, &w, nf->B, 0, NULL, NULL) == NN_OK,
			 "%s: the inference pass runs", nf->file);
		snprintf(what, sizeof(what), "%s: logits (inference work)", nf->file);
		if (want_logits)
			T_CLOSE(w.act[net->nlayers], want_logits, (size_t) nf->B * K, ATOL_NET_FWD, RTOL_NET_FWD, what);
		nn_work_free(&w, &nn_malloc_allocator);
	}
	free(buffers);
	free(grads);
	free(logits);
}

/* Every check of one whole-net fixture. */
static void
check_net(const char *file, const char *spec, nn_shape in, int classes, int B)
{
	net_fx		nf;

	if (net_open(&nf, file, spec, in, classes, B))
	{
		net_train_steps(&nf, 1);
		net_train_steps(&nf, 2);
		net_eval(&nf);
	}
	net_close(&nf);
}

/* the specs make_fixtures.py built its PyTorch modules from */
#define RESNET_SPEC "conv(16,3,1,same) batchnorm relu " \
	"residual(conv(16,3,1,same) batchnorm relu conv(16,3,1,same) batchnorm) relu maxpool(2) " \
	"conv(32,3,1,same) batchnorm relu " \
	"residual(conv(32,3,1,same) batchnorm relu conv(32,3,1,same) batchnorm) relu maxpool(2) " \
	"globalavgpool dense(10)"
#define RESNET_PROJ_SPEC "conv(8,3) relu residual(conv(16,3,2,1) batchnorm relu conv(16,3,1,same) batchnorm) relu " \
	"globalavgpool dense(4)"
#define GRAPH_SPEC "conv(8,3,1,same) batchnorm a: relu b: conv(8,3,1,same,groups=8) from(a) c: conv(8,1,groups=2) " \
	"s: add(b, c) relu t: avgpool(3,2) from(s) u: maxpool(3,2) concat(t, u) dense(8) batchnorm relu dense(3)"

T_CASE(test_torch_net_resnet)
{
	nn_shape	in = {28, 28, 1};

	/* two residual blocks with identity shortcuts, six batch norms, on 4 MNIST-sized images */
	check_net("resnet.bin", RESNET_SPEC, in, 10, 4);
}

T_CASE(test_torch_net_resnet_projection)
{
	nn_shape	in = {12, 12, 2};

	/* a strided block (padding 1) whose shortcut is a 1x1 stride-2 Conv2d with bias, 2.proj */
	check_net("resnet_proj.bin", RESNET_PROJ_SPEC, in, 4, 6);
}

T_CASE(test_torch_net_graph)
{
	nn_shape	in = {10, 10, 3};

	/* labels, from, add and concat; depthwise and grouped convs; avgpool(3,2); BatchNorm1d */
	check_net("graph_net.bin", GRAPH_SPEC, in, 3, 6);
}

#define RESNET_NESTED_SPEC "conv(4,3,1,same) residual(residual(conv(4,3,1,same) batchnorm relu) conv(8,3,1,same) batchnorm) " \
	"relu globalavgpool dense(3)"
#define GRAPH_FLAT_SPEC "conv(4,3,2) relu f: flatten a: dense(6) from(f) b: dense(5) c: concat(a, b) from(f) e: dense(11) " \
	"add(c, e) batchnorm relu dense(3)"

T_CASE(test_torch_net_resnet_nested)
{
	nn_shape	in = {8, 8, 2};

	/* 1.body.0.body.*: a block in a block; the outer widens 4 -> 8 at stride 1: a pointwise 1.proj */
	check_net("resnet_nested.bin", RESNET_NESTED_SPEC, in, 3, 5);
}

T_CASE(test_torch_net_graph_flat)
{
	nn_shape	in = {9, 9, 2};

	/* flat vectors: concat and add of dense outputs, BatchNorm1d after the add */
	check_net("graph_flat.bin", GRAPH_FLAT_SPEC, in, 3, 5);
}

#define GRAPH_DEAD_SPEC "conv(4,3,1,same) a: relu conv(4,3,1,same) batchnorm from(a) b: conv(4,1) s: add(a, b) " \
	"from(b) maxpool(2) concat(a, b) from(s) batchnorm relu dense(3)"

T_CASE(test_torch_net_graph_dead_branches)
{
	nn_shape	in = {6, 6, 2};

	/*
	 * nodes whose outputs nothing reads: a batch norm (a coupled op, in the
	 * parts too), a maxpool, and a concat that is the last reader of a and b,
	 * so it must still zero their gradients; zero gradients for the dead
	 * parameters, running statistics updated all the same
	 */
	check_net("graph_dead.bin", GRAPH_DEAD_SPEC, in, 3, 5);
}
