/*
 * onnx_import.c: an mlcnn model from an ONNX CNN graph (model_from_onnx).
 *
 * protobuf-c decodes the file (through the caller's allocator); the nodes,
 * which ONNX keeps in topological order, are read one by one into mlcnn
 * layers, and the layers are written as a layer spec in the named form
 * (labels, from(), add(), concat()), which the spec parser builds into a
 * network like any other: its shapes are checked and its resource bound
 * measured before anything is allocated for it. The initializers are then
 * copied into the parameters and buffers. What PyTorch's exporter emits
 * around the layers folds away: Identity, Dropout, zero Pad, Constant, and
 * the Shape / Gather / Unsqueeze / Concat chain of x.view(N, -1) that ends
 * in a Reshape (a flatten). mlcnn's own export imports with its
 * normalisation (the Div / Sub / Div in front).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <onnx/onnx.pb-c.h>

#include "onnx.h"
#include "ops.h"

#define IMP_MAX_VALUES 4096		/* tensors a graph may name */
#define IMP_MAX_NODES 4096

/* what a tensor name stands for */
typedef enum
{
	V_NET,						/* an activation: mlcnn node `node` (-1: the input) */
	V_FLOATS,					/* a float constant */
	V_INTS,						/* an integer constant */
	V_SHAPE						/* derived from Shape(): a flatten's target */
} imp_kind;

typedef struct imp_val
{
	const char *name;
	imp_kind	kind;
	int			node;
	const float *f;				/* V_FLOATS */
	const int64_t *i;			/* V_INTS */
	size_t		n;
	int			ndims;
	int64_t		dims[8];
	void	   *owned;			/* f or i when decoded from raw data (freed at the end) */
} imp_val;

/* one mlcnn layer being read */
typedef struct imp_node
{
	nn_layer_kind kind;
	char		text[80];		/* its spec text, without label */
	int			nin;
	int			in[NN_MAX_INPUTS];	/* producing node, -1 the input */
	const imp_val *w,
			   *b,
			   *mean,
			   *var;
	int			transpose_w;	/* Gemm with transB = 0 */
	int			labelled;
	const char *onnx_name;		/* for messages */
} imp_node;

typedef struct imp
{
	const nn_allocator *a;
	nn_status  *st;
	imp_val    *vals;
	int			nvals;
	imp_node   *nodes;
	int			nnodes;
	int			norm_stage;		/* 0 none, 1 divided by 255 (bytes only), 2 centred, 3 scaled */
	int32_t		dtype;			/* NN_DTYPE_* of the model's rows */
	float		mean,
				std;
	const char *input_name;
	const char *norm_name;		/* the tensor the normalisation ended in */
	int			shape_bad;		/* the input's shape is unusable (reported after the nodes) */
	char		shape_msg[NN_MSG_LEN];
} imp;

/* the value named name, or NULL */
static imp_val *
val_find(imp *x, const char *name)
{
	if (name == NULL)
		return NULL;
	for (int k = x->nvals - 1; k >= 0; k--)
		if (strcmp(x->vals[k].name, name) == 0)
			return &x->vals[k];
	return NULL;
}

/* a new value named name */
static imp_val *
val_new(imp *x, const char *name, imp_kind kind)
{
	imp_val    *v;

	if (x->nvals >= IMP_MAX_VALUES)
	{
		nn_fail(x->st, NN_ERR_LIMIT, "the ONNX graph names more than %d tensors", IMP_MAX_VALUES);
		return NULL;
	}
	v = &x->vals[x->nvals++];
	memset(v, 0, sizeof(*v));
	v->name = name;
	v->kind = kind;
	return v;
}

/* little-endian 4-byte float at p */
static float
le_float(const uint8_t *p)
{
	uint32_t	u = (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
	float		f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* a tensor proto as a float or integer constant named name */
static imp_val *
val_tensor(imp *x, const char *name, const Onnx__TensorProto *t)
{
	uint64_t	n = 1;
	imp_val    *v;

	if (t->n_dims > 8)
	{
		nn_fail(x->st, NN_ERR_INVALID, "tensor \"%s\" has %zu dimensions, more than 8", name, t->n_dims);
		return NULL;
	}
	for (size_t d = 0; d < t->n_dims; d++)
	{
		if (t->dims[d] < 0 || (t->dims[d] > 0 && n > (UINT64_C(1) << 40) / (uint64_t) t->dims[d]))
		{
			nn_fail(x->st, NN_ERR_LIMIT, "tensor \"%s\" has an absurd dimension %lld", name, (long long) t->dims[d]);
			return NULL;
		}
		n *= (uint64_t) t->dims[d];
	}
	if (t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
	{
		nn_fail(x->st, NN_ERR_INVALID, "tensor \"%s\" keeps its data in an external file; mlcnn reads one file", name);
		return NULL;
	}
	if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
	{
		float	   *f;

		if (t->has_raw_data ? t->raw_data.len != n * 4 : t->n_float_data != n)
		{
			nn_fail(x->st, NN_ERR_INVALID, "tensor \"%s\" holds %zu values but its dimensions make %llu", name,
					t->has_raw_data ? t->raw_data.len / 4 : t->n_float_data, (unsigned long long) n);
			return NULL;
		}
		if ((v = val_new(x, name, V_FLOATS)) == NULL)
			return NULL;
		if (t->has_raw_data)
		{
			if ((f = nn_alloc(x->a, sizeof(float) * (n ? n : 1))) == NULL)
			{
				nn_fail(x->st, NN_ERR_NOMEM, "out of memory for tensor \"%s\"", name);
				return NULL;
			}
			for (uint64_t k = 0; k < n; k++)
				f[k] = le_float(t->raw_data.data + 4 * k);
			v->f = f;
			v->owned = f;
		}
		else
			v->f = t->float_data;
	}
	else if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
	{
		int64_t    *iv;

		if (t->has_raw_data ? t->raw_data.len != n * 8 : t->n_int64_data != n)
		{
			nn_fail(x->st, NN_ERR_INVALID, "tensor \"%s\" holds the wrong number of integers", name);
			return NULL;
		}
		if ((v = val_new(x, name, V_INTS)) == NULL)
			return NULL;
		if (t->has_raw_data)
		{
			if ((iv = nn_alloc(x->a, sizeof(int64_t) * (n ? n : 1))) == NULL)
			{
				nn_fail(x->st, NN_ERR_NOMEM, "out of memory for tensor \"%s\"", name);
				return NULL;
			}
			for (uint64_t k = 0; k < n; k++)
			{
				uint64_t	u = 0;

				for (int b = 7; b >= 0; b--)
					u = u << 8 | t->raw_data.data[8 * k + b];
				iv[k] = (int64_t) u;
			}
			v->i = iv;
			v->owned = iv;
		}
		else
			v->i = t->int64_data;
	}
	else
	{
		nn_fail(x->st, NN_ERR_INVALID, "tensor \"%s\" has data type %d; mlcnn imports float weights", name,
				(int) t->data_type);
		return NULL;
	}
	v->n = n;
	v->ndims = (int) t->n_dims;
	for (size_t d = 0; d < t->n_dims; d++)
		v->dims[d] = t->dims[d];
	return v;
}

/* the attribute name of node n, or NULL */
static const Onnx__AttributeProto *
attr(const Onnx__NodeProto *n, const char *name)
{
	for (size_t k = 0; k < n->n_attribute; k++)
		if (n->attribute[k]->name && strcmp(n->attribute[k]->name, name) == 0)
			return n->attribute[k];
	return NULL;
}

/* integer attribute, or def */
static int64_t
attr_int(const Onnx__NodeProto *n, const char *name, int64_t def)
{
	const Onnx__AttributeProto *a = attr(n, name);

	return a && a->has_i ? a->i : def;
}

/* float attribute, or def */
static float
attr_float(const Onnx__NodeProto *n, const char *name, float def)
{
	const Onnx__AttributeProto *a = attr(n, name);

	return a && a->has_f ? a->f : def;
}

/* the common value of an ints attribute (all equal), def when absent; -1 when they differ */
static int64_t
attr_same(const Onnx__NodeProto *n, const char *name, int64_t def)
{
	const Onnx__AttributeProto *a = attr(n, name);

	if (a == NULL || a->n_ints == 0)
		return def;
	for (size_t k = 1; k < a->n_ints; k++)
		if (a->ints[k] != a->ints[0])
			return -1;
	return a->ints[0];
}

/* the op is not one mlcnn has */
static int
unsupported(imp *x, const Onnx__NodeProto *n, const char *why)
{
	return nn_fail(x->st, NN_ERR_UNSUPPORTED, "ONNX operator %s (node \"%s\") %s", n->op_type,
				   n->name && n->name[0] ? n->name : (n->n_output ? n->output[0] : "?"), why);
}

/* input k of n as an activation: its producing node, or -2 with the error set */
static int
net_input(imp *x, const Onnx__NodeProto *n, size_t k)
{
	imp_val    *v = k < n->n_input ? val_find(x, n->input[k]) : NULL;

	if (v == NULL || v->kind != V_NET)
	{
		unsupported(x, n, v == NULL ? "reads a tensor no earlier node makes" : "takes a constant where mlcnn takes an activation");
		return -2;
	}
	return v->node;
}

/* input k of n as a float constant (optional: NULL when absent) */
static const imp_val *
const_input(imp *x, const Onnx__NodeProto *n, size_t k, int optional, int *bad)
{
	imp_val    *v;

	if (k >= n->n_input || n->input[k][0] == '\0')
	{
		if (!optional)
		{
			unsupported(x, n, "lacks an input mlcnn needs");
			*bad = 1;
		}
		return NULL;
	}
	v = val_find(x, n->input[k]);
	if (v == NULL || v->kind != V_FLOATS)
	{
		unsupported(x, n, "takes weights that are not constant initializers");
		*bad = 1;
		return NULL;
	}
	return v;
}

/* a new mlcnn node from ONNX node n with activation inputs in[0..nin), output named after n */
static imp_node *
node_new(imp *x, const Onnx__NodeProto *n, nn_layer_kind kind, int nin, const int *in)
{
	imp_node   *d;
	imp_val    *v;

	if (x->nnodes >= NN_MAX_LAYERS)
	{
		nn_fail(x->st, NN_ERR_LIMIT, "the ONNX graph needs more than %d mlcnn layers", NN_MAX_LAYERS);
		return NULL;
	}
	if (n->n_output < 1)
	{
		unsupported(x, n, "has no output");
		return NULL;
	}
	d = &x->nodes[x->nnodes];
	memset(d, 0, sizeof(*d));
	d->kind = kind;
	d->nin = nin;
	for (int k = 0; k < nin; k++)
		d->in[k] = in[k];
	d->onnx_name = n->name && n->name[0] ? n->name : n->output[0];
	if ((v = val_new(x, n->output[0], V_NET)) == NULL)
		return NULL;
	v->node = x->nnodes++;
	return d;
}

/* output of n is its input k (Identity, Dropout, zero Pad) */
static int
alias(imp *x, const Onnx__NodeProto *n, size_t k)
{
	imp_val    *src = k < n->n_input ? val_find(x, n->input[k]) : NULL,
			   *v;

	if (src == NULL || n->n_output < 1)
		return unsupported(x, n, "reads a tensor no earlier node makes");
	if ((v = val_new(x, n->output[0], src->kind)) == NULL)
		return x->st->code;
	*v = *src;
	v->name = n->output[0];
	v->owned = NULL;
	return NN_OK;
}

/* true when v is the scalar c (or a one-element tensor of it) */
static int
is_scalar(const imp_val *v, float *c)
{
	if (v == NULL || v->kind != V_FLOATS || v->n != 1)
		return 0;
	*c = v->f[0];
	return 1;
}

/* Div / Sub on the input: mlcnn's own normalisation nodes */
static int
normalisation(imp *x, const Onnx__NodeProto *n, int is_div)
{
	imp_val    *a = n->n_input == 2 ? val_find(x, n->input[0]) : NULL;
	imp_val    *b = n->n_input == 2 ? val_find(x, n->input[1]) : NULL;
	float		c;
	const char *want = x->norm_stage == 0 ? x->input_name : x->norm_name;

	if (a == NULL || a->kind != V_NET || a->node != -1 || !is_scalar(b, &c) || strcmp(a->name, want) != 0)
		return unsupported(x, n, x->dtype == NN_DTYPE_UINT8 ?
						   "is only imported as the input's normalisation (x / 255, - mean, / std)" :
						   "is only imported as the float input's normalisation (- mean, / std)");
	if (is_div && x->norm_stage == 0 && c == 255.0f && x->dtype == NN_DTYPE_UINT8)
		x->norm_stage = 1;
	else if (!is_div && x->norm_stage == (x->dtype == NN_DTYPE_UINT8 ? 1 : 0))
	{
		x->norm_stage = 2;
		x->mean = c;
	}
	else if (is_div && x->norm_stage == 2 && c > 0)
	{
		x->norm_stage = 3;
		x->std = c;
	}
	else
		return unsupported(x, n, x->dtype == NN_DTYPE_UINT8 ?
						   "is only imported as the input's normalisation (x / 255, - mean, / std)" :
						   "is only imported as the float input's normalisation (- mean, / std)");
	if (alias(x, n, 0) != NN_OK)
		return x->st->code;
	x->norm_name = n->output[0];
	return NN_OK;
}

/* Conv */
static int
read_conv(imp *x, const Onnx__NodeProto *n)
{
	int			in = net_input(x, n, 0),
				bad = 0;
	const imp_val *w = const_input(x, n, 1, 0, &bad),
			   *b = const_input(x, n, 2, 1, &bad);
	int64_t		k = attr_same(n, "kernel_shape", w && w->ndims == 4 ? w->dims[2] : -1),
				s = attr_same(n, "strides", 1),
				p = attr_same(n, "pads", 0),
				dl = attr_same(n, "dilations", 1),
				g = attr_int(n, "group", 1);
	const Onnx__AttributeProto *ap = attr(n, "auto_pad");
	imp_node   *d;

	if (in == -2 || bad)
		return x->st->code;
	if (w->ndims != 4 || w->dims[2] != w->dims[3] || k != w->dims[2])
		return unsupported(x, n, "has a kernel that is not square (mlcnn's are K x K)");
	if (s < 1 || p < 0 || dl != 1 || g < 1 || (ap && ap->has_s && ap->s.len > 0 &&
												!(ap->s.len == 6 && memcmp(ap->s.data, "NOTSET", 6) == 0)))
		return unsupported(x, n, "has unequal strides or pads, dilations or auto_pad (mlcnn: one stride, one padding per side)");
	if ((d = node_new(x, n, NN_CONV, 1, &in)) == NULL)
		return x->st->code;
	snprintf(d->text, sizeof(d->text), g > 1 ? "conv(%lld,%lld,%lld,%lld,groups=%lld)" : "conv(%lld,%lld,%lld,%lld)",
			 (long long) w->dims[0], (long long) k, (long long) s, (long long) p, (long long) g);
	d->w = w;
	d->b = b;
	return NN_OK;
}

/* MaxPool, AveragePool */
static int
read_pool(imp *x, const Onnx__NodeProto *n, nn_layer_kind kind, const char *name)
{
	int			in = net_input(x, n, 0);
	int64_t		k = attr_same(n, "kernel_shape", -1),
				s = attr_same(n, "strides", 1),
				p = attr_same(n, "pads", 0),
				dl = attr_same(n, "dilations", 1);
	imp_node   *d;

	if (in == -2)
		return x->st->code;
	if (k < 1 || s < 1 || p != 0 || dl != 1 || attr_int(n, "ceil_mode", 0) != 0)
		return unsupported(x, n, "has a window mlcnn does not have (square, no padding, no dilation, floor mode)");
	if ((d = node_new(x, n, kind, 1, &in)) == NULL)
		return x->st->code;
	snprintf(d->text, sizeof(d->text), "%s(%lld,%lld)", name, (long long) k, (long long) s);
	return NN_OK;
}

/* an op of one activation input and no arguments */
static int
read_plain(imp *x, const Onnx__NodeProto *n, nn_layer_kind kind, const char *text)
{
	int			in = net_input(x, n, 0);
	imp_node   *d;

	if (in == -2)
		return x->st->code;
	if ((d = node_new(x, n, kind, 1, &in)) == NULL)
		return x->st->code;
	snprintf(d->text, sizeof(d->text), "%s", text);
	return NN_OK;
}

/* Gemm: y = x W^T + b */
static int
read_gemm(imp *x, const Onnx__NodeProto *n)
{
	int			in = net_input(x, n, 0),
				bad = 0;
	const imp_val *w = const_input(x, n, 1, 0, &bad),
			   *b = const_input(x, n, 2, 1, &bad);
	int			tb = (int) attr_int(n, "transB", 0);
	imp_node   *d;

	if (in == -2 || bad)
		return x->st->code;
	if (w->ndims != 2 || attr_int(n, "transA", 0) != 0 || attr_float(n, "alpha", 1) != 1 || attr_float(n, "beta", 1) != 1)
		return unsupported(x, n, "is not a plain linear layer (2-D weights, alpha = beta = 1, transA = 0)");
	if ((d = node_new(x, n, NN_DENSE, 1, &in)) == NULL)
		return x->st->code;
	snprintf(d->text, sizeof(d->text), "dense(%lld)", (long long) w->dims[tb ? 0 : 1]);
	d->w = w;
	d->b = b;
	d->transpose_w = !tb;
	return NN_OK;
}

/* BatchNormalization at inference */
static int
read_batchnorm(imp *x, const Onnx__NodeProto *n)
{
	int			in = net_input(x, n, 0),
				bad = 0;
	const imp_val *sc = const_input(x, n, 1, 0, &bad),
			   *b = const_input(x, n, 2, 0, &bad),
			   *mean = const_input(x, n, 3, 0, &bad),
			   *var = const_input(x, n, 4, 0, &bad);
	float		eps = attr_float(n, "epsilon", 1e-5f);
	imp_node   *d;

	if (in == -2 || bad)
		return x->st->code;
	if (fabsf(eps - 1e-5f) > 1e-9f)
		return unsupported(x, n, "has an epsilon other than mlcnn's 1e-5");
	if (attr_int(n, "training_mode", 0) != 0)
		return unsupported(x, n, "is in training mode");
	if ((d = node_new(x, n, NN_BATCHNORM, 1, &in)) == NULL)
		return x->st->code;
	snprintf(d->text, sizeof(d->text), "batchnorm");
	d->w = sc;
	d->b = b;
	d->mean = mean;
	d->var = var;
	return NN_OK;
}

/* Add, Sum, Concat of activations */
static int
read_merge(imp *x, const Onnx__NodeProto *n, nn_layer_kind kind)
{
	int			in[NN_MAX_INPUTS];
	imp_node   *d;

	if (n->n_input < 2 || n->n_input > NN_MAX_INPUTS)
		return unsupported(x, n, "merges fewer than 2 or more than 4 tensors");
	if (kind == NN_CONCAT && attr_int(n, "axis", 1) != 1)
		return unsupported(x, n, "concatenates along an axis other than the channels (1)");
	for (size_t k = 0; k < n->n_input; k++)
		if ((in[k] = net_input(x, n, k)) == -2)
			return x->st->code;
	if ((d = node_new(x, n, kind, (int) n->n_input, in)) == NULL)
		return x->st->code;
	snprintf(d->text, sizeof(d->text), "%s", kind == NN_CONCAT ? "concat" : "add");
	return NN_OK;
}

/* Shape-derived or integer chains: Shape, Gather, Unsqueeze, Concat of integers */
static int
read_shape_op(imp *x, const Onnx__NodeProto *n)
{
	imp_val    *v;

	for (size_t k = 0; k < n->n_input; k++)
	{
		imp_val    *a = val_find(x, n->input[k]);

		if (a == NULL || (strcmp(n->op_type, "Shape") != 0 && a->kind != V_SHAPE && a->kind != V_INTS))
			return unsupported(x, n, "computes on activations (mlcnn folds only shape arithmetic)");
	}
	if (n->n_output < 1 || (v = val_new(x, n->output[0], V_SHAPE)) == NULL)
		return n->n_output < 1 ? unsupported(x, n, "has no output") : x->st->code;
	return NN_OK;
}

/* Reshape to (N, -1) or from a shape chain: a flatten */
static int
read_reshape(imp *x, const Onnx__NodeProto *n)
{
	int			in = net_input(x, n, 0);
	imp_val    *s = n->n_input > 1 ? val_find(x, n->input[1]) : NULL;

	if (in == -2)
		return x->st->code;
	if (s == NULL || !(s->kind == V_SHAPE || (s->kind == V_INTS && s->n == 2 && (s->i[1] == -1 || s->i[0] == 0))))
		return unsupported(x, n, "reshapes to something other than (N, -1), a flatten");
	return read_plain(x, n, NN_FLATTEN, "flatten");
}

/* Pad: only all-zero padding, which is nothing */
static int
read_pad(imp *x, const Onnx__NodeProto *n)
{
	imp_val    *p = n->n_input > 1 ? val_find(x, n->input[1]) : NULL;

	if (p == NULL || p->kind != V_INTS)
		return unsupported(x, n, "pads by amounts that are not constant");
	for (size_t k = 0; k < p->n; k++)
		if (p->i[k] != 0)
			return unsupported(x, n, "pads by more than zero (mlcnn pads inside conv only)");
	return alias(x, n, 0);
}

/* Constant: its value tensor */
static int
read_constant(imp *x, const Onnx__NodeProto *n)
{
	const Onnx__AttributeProto *a = attr(n, "value");

	if (a == NULL || a->t == NULL || n->n_output < 1)
		return unsupported(x, n, "has no tensor value");
	return val_tensor(x, n->output[0], a->t) ? NN_OK : x->st->code;
}

/* one node */
static int
read_node(imp *x, const Onnx__NodeProto *n)
{
	const char *op = n->op_type ? n->op_type : "";

	if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx") != 0)
		return unsupported(x, n, "is from another operator domain");
	if (strcmp(op, "Conv") == 0)
		return read_conv(x, n);
	if (strcmp(op, "Relu") == 0)
		return read_plain(x, n, NN_RELU, "relu");
	if (strcmp(op, "MaxPool") == 0)
		return n->n_output > 1 ? unsupported(x, n, "returns indices") : read_pool(x, n, NN_MAXPOOL, "maxpool");
	if (strcmp(op, "AveragePool") == 0)
		return read_pool(x, n, NN_AVGPOOL, "avgpool");
	if (strcmp(op, "GlobalAveragePool") == 0)
		return read_plain(x, n, NN_GLOBALAVGPOOL, "globalavgpool");
	if (strcmp(op, "Flatten") == 0)
		return attr_int(n, "axis", 1) != 1 ? unsupported(x, n, "flattens from an axis other than 1")
			: read_plain(x, n, NN_FLATTEN, "flatten");
	if (strcmp(op, "Gemm") == 0)
		return read_gemm(x, n);
	if (strcmp(op, "BatchNormalization") == 0)
		return read_batchnorm(x, n);
	if (strcmp(op, "Add") == 0 || strcmp(op, "Sum") == 0)
		return read_merge(x, n, NN_ADD);
	if (strcmp(op, "Concat") == 0)
	{
		imp_val    *a = n->n_input > 0 ? val_find(x, n->input[0]) : NULL;

		return a && a->kind != V_NET ? read_shape_op(x, n) : read_merge(x, n, NN_CONCAT);
	}
	if (strcmp(op, "Identity") == 0 || strcmp(op, "Dropout") == 0)
		return alias(x, n, 0);
	if (strcmp(op, "Constant") == 0)
		return read_constant(x, n);
	if (strcmp(op, "Shape") == 0 || strcmp(op, "Gather") == 0 || strcmp(op, "Unsqueeze") == 0)
		return read_shape_op(x, n);
	if (strcmp(op, "Reshape") == 0)
		return read_reshape(x, n);
	if (strcmp(op, "Pad") == 0)
		return read_pad(x, n);
	if (strcmp(op, "Div") == 0 || strcmp(op, "Sub") == 0)
		return normalisation(x, n, op[0] == 'D');
	return unsupported(x, n, "is not supported (mlcnn imports Conv, BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool, Add, Concat, Flatten, Gemm and what folds away)");
}

/* the spec of the read nodes in the named form */
static int
write_spec(imp *x, char *buf, size_t len)
{
	size_t		pos = 0;

	/* a node is labelled when a later node reads it other than as the one before */
	for (int k = 0; k < x->nnodes; k++)
	{
		const imp_node *d = &x->nodes[k];

		for (int j = 0; j < d->nin; j++)
			if (d->in[j] >= 0 && (d->nin > 1 || d->in[j] != k - 1))
				x->nodes[d->in[j]].labelled = 1;
	}
	buf[0] = '\0';
	for (int k = 0; k < x->nnodes; k++)
	{
		const imp_node *d = &x->nodes[k];
		char		piece[200],
					from[32] = "",
					label[16] = "",
					args[96] = "";

		if (d->nin == 1 && d->in[0] != k - 1)
			snprintf(from, sizeof(from), d->in[0] < 0 ? "from(input) " : "from(n%d) ", d->in[0]);
		if (d->labelled)
			snprintf(label, sizeof(label), "n%d: ", k);
		if (d->nin > 1)
		{
			size_t		ap = 0;

			for (int j = 0; j < d->nin; j++)
			{
				char		one[16];

				snprintf(one, sizeof(one), d->in[j] < 0 ? "input" : "n%d", d->in[j]);
				ap += snprintf(args + ap, sizeof(args) - ap, "%s%s", j ? "," : "(", one);
			}
			snprintf(args + ap, sizeof(args) - ap, ")");
		}
		snprintf(piece, sizeof(piece), "%s%s%s%s%s", k ? " " : "", from, label, d->text, args);
		if (pos + strlen(piece) + 1 > len)
			return nn_fail(x->st, NN_ERR_LIMIT, "the imported network's layer spec is longer than %zu bytes", len - 1);
		memcpy(buf + pos, piece, strlen(piece) + 1);
		pos += strlen(piece);
	}
	return NN_OK;
}

/* v into dst (len floats): its size must be len */
static int
copy_weights(imp *x, const imp_node *d, const char *what, const imp_val *v, float *dst, size_t len,
			 int transpose, size_t rows)
{
	if (v == NULL)
	{
		memset(dst, 0, sizeof(float) * len);
		return NN_OK;
	}
	if (v->n != len)
		return nn_fail(x->st, NN_ERR_INVALID, "node \"%s\": its %s initializer \"%s\" holds %zu values, the layer needs %zu",
					   d->onnx_name, what, v->name, v->n, len);
	if (!transpose)
		memcpy(dst, v->f, sizeof(float) * len);
	else
	{
		size_t		cols = len / rows;	/* v is (cols, rows): dst (rows, cols) */

		for (size_t r = 0; r < rows; r++)
			for (size_t c = 0; c < cols; c++)
				dst[r * cols + c] = v->f[c * rows + r];
	}
	return NN_OK;
}

/* the parameters and buffers of m from the read nodes (net layers skip implicit flattens) */
static int
fill_weights(imp *x, nn_model *m)
{
	const nn_net *net = &m->net;
	nn_tensor_info *t;
	int			nt = nn_net_tensors(net, NULL, 0),
				j = 0,
				rc = NN_OK;

	if ((t = nn_alloc(x->a, sizeof(nn_tensor_info) * (nt > 0 ? nt : 1))) == NULL)
		return nn_fail(x->st, NN_ERR_NOMEM, "out of memory for the tensor names");
	nn_net_tensors(net, t, nt);
	for (int k = 0; k < x->nnodes && rc == NN_OK; k++, j++)
	{
		const imp_node *d = &x->nodes[k];
		const nn_layer *L;

		while (j < net->nlayers && net->layers[j].kind != d->kind && net->layers[j].kind == NN_FLATTEN)
			j++;
		if (j >= net->nlayers || net->layers[j].kind != d->kind)
		{
			rc = nn_fail(x->st, NN_ERR_INVALID, "node \"%s\" does not line up with the built network", d->onnx_name);
			break;
		}
		L = &net->layers[j];
		if (d->kind == NN_CONV || d->kind == NN_DENSE || d->kind == NN_BATCHNORM)
		{
			rc = copy_weights(x, d, "weight", d->w, m->params + L->w_off, L->w_len, d->transpose_w, (size_t) L->units);
			if (rc == NN_OK && L->b_len)
				rc = copy_weights(x, d, "bias", d->b, m->params + L->b_off, L->b_len, 0, 1);
		}
		if (rc == NN_OK && d->kind == NN_BATCHNORM)
		{
			const nn_tensor_info *mt = nn_tensor_find(t, nt, j, "running_mean"),
					   *vt = nn_tensor_find(t, nt, j, "running_var");

			if (mt == NULL || vt == NULL)
				rc = nn_fail(x->st, NN_ERR_INVALID, "node \"%s\": no running statistics in the built layer", d->onnx_name);
			else if ((rc = copy_weights(x, d, "mean", d->mean, m->buffers + mt->off, mt->len, 0, 1)) == NN_OK)
				rc = copy_weights(x, d, "variance", d->var, m->buffers + vt->off, vt->len, 0, 1);
		}
	}
	nn_free(x->a, t);
	return rc;
}

/* the graph's input: its name and [N, C, H, W] shape into *in */
static int
read_input(imp *x, const Onnx__GraphProto *g, const nn_onnx_import_opts *o, nn_shape *in)
{
	for (size_t k = 0; k < g->n_input; k++)
	{
		const Onnx__ValueInfoProto *vi = g->input[k];
		const Onnx__TensorShapeProto *sh;
		imp_val    *v;

		if (vi->name == NULL || val_find(x, vi->name))
			continue;			/* an initializer listed as an input (older exporters) */
		if (x->input_name)
			return nn_fail(x->st, NN_ERR_UNSUPPORTED, "the ONNX graph has more than one input (\"%s\", \"%s\")",
						   x->input_name, vi->name);
		x->input_name = vi->name;
		if ((v = val_new(x, vi->name, V_NET)) == NULL)
			return x->st->code;
		v->node = -1;
		sh = vi->type && vi->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && vi->type->tensor_type ?
			vi->type->tensor_type->shape : NULL;
		if (vi->type && vi->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && vi->type->tensor_type &&
			vi->type->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
			return nn_fail(x->st, NN_ERR_UNSUPPORTED, "the ONNX input \"%s\" is not float", vi->name);
		if (o->input.h > 0)
			*in = o->input;
		else if (sh && sh->n_dim == 4)
		{
			int64_t		d[3];

			for (int i = 0; i < 3; i++)
			{
				const Onnx__TensorShapeProto__Dimension *dm = sh->dim[i + 1];

				d[i] = dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ? dm->dim_value : -1;
				if ((d[i] < 1 || d[i] > 65536) && !x->shape_bad)
				{
					x->shape_bad = 1;
					snprintf(x->shape_msg, sizeof(x->shape_msg),
							 "the ONNX input \"%s\" has dimension %d of %lld; give \"input\" in the options",
							 vi->name, i + 1, (long long) d[i]);
				}
			}
			in->c = (int) d[0];
			in->h = (int) d[1];
			in->w = (int) d[2];
		}
		else
		{
			x->shape_bad = 1;
			snprintf(x->shape_msg, sizeof(x->shape_msg),
					 "the ONNX input \"%s\" is not [N, C, H, W]; give \"input\" in the options", vi->name);
		}
	}
	if (x->input_name == NULL)
		return nn_fail(x->st, NN_ERR_INVALID, "the ONNX graph has no input");
	return NN_OK;
}

/* protobuf-c's allocator over ours */
static void *
pb_alloc(void *ctx, size_t size)
{
	return nn_alloc((const nn_allocator *) ctx, size);
}

/* and its free */
static void
pb_free(void *ctx, void *p)
{
	nn_free((const nn_allocator *) ctx, p);
}

/* an mlcnn model from ONNX bytes */
int
nn_model_from_onnx(nn_model *m, const uint8_t *buf, size_t len, const nn_onnx_import_opts *o,
				   const nn_allocator *a, nn_status *st)
{
	ProtobufCAllocator pa = {pb_alloc, pb_free, (void *) a};
	Onnx__ModelProto *model;
	const Onnx__GraphProto *g;
	imp			x;
	nn_shape	in = {0};
	char		spec[NN_MAX_SPEC];
	int			rc = NN_OK,
				classes;
	nn_rng		rng;
	imp_val    *out;

	memset(m, 0, sizeof(*m));
	memset(&x, 0, sizeof(x));
	x.a = a;
	x.st = st;
	model = onnx__model_proto__unpack(&pa, len, buf);
	if (model == NULL)
		return nn_fail(st, NN_ERR_CORRUPT, "not an ONNX model: the %zu bytes do not decode as a ModelProto (truncated or not ONNX)", len);
	g = model->graph;
	if (g == NULL || g->n_node == 0)
		rc = nn_fail(st, NN_ERR_INVALID, "the ONNX model has no graph");
	else if (g->n_node > IMP_MAX_NODES)
		rc = nn_fail(st, NN_ERR_LIMIT, "the ONNX graph has %zu nodes, more than %d", g->n_node, IMP_MAX_NODES);
	for (size_t k = 0; rc == NN_OK && k < model->n_opset_import; k++)
	{
		const Onnx__OperatorSetIdProto *op = model->opset_import[k];

		if ((op->domain == NULL || op->domain[0] == '\0') && (op->version < 7 || op->version > 18))
			rc = nn_fail(st, NN_ERR_UNSUPPORTED, "the ONNX model uses opset %lld; mlcnn reads opsets 7 to 18",
						 (long long) op->version);
	}
	if (rc == NN_OK)
	{
		x.vals = nn_calloc(a, IMP_MAX_VALUES, sizeof(imp_val));
		x.nodes = nn_calloc(a, NN_MAX_LAYERS, sizeof(imp_node));
		if (x.vals == NULL || x.nodes == NULL)
			rc = nn_fail(st, NN_ERR_NOMEM, "out of memory for the ONNX graph");
	}
	for (size_t k = 0; rc == NN_OK && k < g->n_initializer; k++)
		if (val_tensor(&x, g->initializer[k]->name ? g->initializer[k]->name : "", g->initializer[k]) == NULL)
			rc = st->code;
	x.dtype = o->dtype >= 0 ? o->dtype : NN_DTYPE_UINT8;
	for (size_t k = 0; o->dtype < 0 && model->metadata_props && k < model->n_metadata_props; k++)
	{
		const Onnx__StringStringEntryProto *e = model->metadata_props[k];

		if (e->key && e->value && strcmp(e->key, "input_type") == 0 && strcmp(e->value, nn_dtype_name(NN_DTYPE_FLOAT32)) == 0)
			x.dtype = NN_DTYPE_FLOAT32;
	}
	if (rc == NN_OK)
		rc = read_input(&x, g, o, &in);
	for (size_t k = 0; rc == NN_OK && k < g->n_node; k++)
	{
		if (nn_interrupted())
			rc = nn_fail(st, NN_ERR_CANCELLED, "cancelled");
		else
			rc = read_node(&x, g->node[k]);
	}
	if (rc == NN_OK && x.shape_bad)
		rc = nn_fail(st, NN_ERR_INVALID, "%s", x.shape_msg);
	if (rc == NN_OK && (g->n_output != 1 || (out = val_find(&x, g->output[0]->name)) == NULL ||
						out->kind != V_NET || out->node != x.nnodes - 1))
		rc = nn_fail(st, NN_ERR_UNSUPPORTED, "the ONNX graph's one output must be its last layer's");
	if (rc == NN_OK && x.nodes[x.nnodes - 1].kind != NN_DENSE)
		rc = nn_fail(st, NN_ERR_UNSUPPORTED, "the ONNX graph must end in a linear layer (Gemm), whose outputs are the classes");
	if (rc == NN_OK)
		rc = write_spec(&x, spec, sizeof(spec));
	if (rc == NN_OK)
	{
		const imp_val *w = x.nodes[x.nnodes - 1].w;

		classes = (int) (x.nodes[x.nnodes - 1].transpose_w ? w->dims[1] : w->dims[0]);
		if (o->classes > 0 && o->classes != classes)
			rc = nn_fail(st, NN_ERR_INVALID, "the ONNX graph has %d outputs, not the %d classes of the options", classes, o->classes);
	}
	if (rc == NN_OK)
		rc = nn_net_build(&m->net, spec, in, classes, st);
	if (rc == NN_OK)
	{
		m->kind = NN_BLOB_MODEL;
		m->params = nn_calloc(a, m->net.nparams ? m->net.nparams : 1, sizeof(float));
		m->buffers = m->net.nbuffers ? nn_calloc(a, m->net.nbuffers, sizeof(float)) : NULL;
		if (m->params == NULL || (m->net.nbuffers && m->buffers == NULL))
			rc = nn_fail(st, NN_ERR_NOMEM, "out of memory for %zu parameters", m->net.nparams);
	}
	if (rc == NN_OK)
	{
		nn_rng_seed(&rng, 0);
		nn_net_init_params(&m->net, m->params, m->buffers, &rng);
		rc = fill_weights(&x, m);
	}
	if (rc == NN_OK)
	{
		nn_options_default(&m->options);
		snprintf(m->options.layers, sizeof(m->options.layers), "%s", m->net.spec);
		m->options.input = in;
		m->options.classes = classes;
		m->norm.dtype = x.dtype;
		if (x.norm_stage == 0 || o->normalize_given)
		{
			m->norm.mode = o->normalize;
			m->norm.mean = o->mean;
			m->norm.std = o->std;
		}
		else if (x.norm_stage == 1)
			m->norm.mode = NN_NORM_MINMAX;
		else if (x.norm_stage == 3)
		{
			/* for floats minmax is the same (v - mean) / std: zscore names both */
			m->norm.mode = NN_NORM_ZSCORE;
			m->norm.mean = x.mean;
			m->norm.std = x.std;
		}
		else
			rc = nn_fail(st, NN_ERR_UNSUPPORTED, "the input's normalisation stops half-way (- mean without / std)");
		m->options.normalize = m->norm.mode;
	}
	/* decoded tensors of raw data were allocated apart */
	for (int k = 0; x.vals && k < x.nvals; k++)
		nn_free(a, x.vals[k].owned);
	if (rc != NN_OK)
		nn_model_free(m, a);
	nn_free(a, x.vals);
	nn_free(a, x.nodes);
	onnx__model_proto__free_unpacked(model, &pa);
	return rc;
}
