/*
 * onnx.c: a network as an ONNX model; see onnx.h.
 *
 * Every message is allocated from one arena over the caller's allocator
 * and packed by protobuf-c at the end, so a failure anywhere frees
 * everything at once. Node i's output tensor is named after its label, or
 * "<op>_<i>"; the last node's is "logits". Initializers are named as
 * model_weights() names the tensors (PyTorch's state_dict keys). The op
 * files add their own nodes (the table's onnx entry).
 */
#include <stdio.h>
#include <string.h>

#include <onnx/onnx.pb-c.h>

#include "onnx.h"
#include "ops.h"

#define ARENA_BLOCK (64 * 1024)
#define ONNX_MAX_TENSORS (4 * NN_MAX_LAYERS + 8)

/* a block of the arena */
typedef struct arena_block
{
	struct arena_block *next;
	size_t		used,
				size;
	max_align_t data[];
} arena_block;

struct nn_onnx_node
{
	Onnx__NodeProto proto;
	Onnx__AttributeProto *attrs[8];
};

struct nn_onnx
{
	const nn_allocator *a;
	arena_block *blocks;
	int			failed;			/* an allocation failed */
	const nn_model *m;
	const char *names[NN_MAX_LAYERS + 1];	/* tensor t's name */
	Onnx__NodeProto *nodes[2 * NN_MAX_LAYERS + 4];
	int			nnodes;
	Onnx__TensorProto *inits[ONNX_MAX_TENSORS];
	int			ninits;
	nn_tensor_info tensors[ONNX_MAX_TENSORS];
	int			ntensors;
};

/* n zeroed bytes from the arena, or NULL (x->failed set) */
static void *
arena_alloc(nn_onnx *x, size_t n)
{
	arena_block *b = x->blocks;
	void	   *p;

	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (b == NULL || b->size - b->used < n)
	{
		size_t		size = n > ARENA_BLOCK ? n : ARENA_BLOCK;

		b = nn_alloc(x->a, sizeof(arena_block) + size);
		if (b == NULL)
		{
			x->failed = 1;
			return NULL;
		}
		b->size = size;
		b->used = 0;
		b->next = x->blocks;
		x->blocks = b;
	}
	p = (char *) b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

/* a copy of s in the arena */
static char *
arena_str(nn_onnx *x, const char *s)
{
	size_t		n = strlen(s) + 1;
	char	   *d = arena_alloc(x, n);

	if (d)
		memcpy(d, s, n);
	return d;
}

/* release the arena */
static void
arena_free(nn_onnx *x)
{
	while (x->blocks)
	{
		arena_block *next = x->blocks->next;

		nn_free(x->a, x->blocks);
		x->blocks = next;
	}
}

/* the name of node i's k-th input tensor */
const char *
nn_onnx_input(nn_onnx *x, int i, int k)
{
	return x->names[x->m->net.layers[i].inputs[k]];
}

/* a node op_type named name with inputs in[0..nin) and the one output name (NULL when out of memory) */
static nn_onnx_node *
node_make(nn_onnx *x, const char *op_type, const char *name, int nin, const char *const *in)
{
	nn_onnx_node *n = arena_alloc(x, sizeof(nn_onnx_node));
	char	  **inputs = arena_alloc(x, sizeof(char *) * (nin > 0 ? nin : 1));
	char	  **outputs = arena_alloc(x, sizeof(char *));

	if (n == NULL || inputs == NULL || outputs == NULL ||
		x->nnodes >= (int) (sizeof(x->nodes) / sizeof(x->nodes[0])))
	{
		x->failed = 1;
		return NULL;
	}
	onnx__node_proto__init(&n->proto);
	for (int k = 0; k < nin; k++)
		inputs[k] = (char *) in[k];
	outputs[0] = (char *) name;
	n->proto.n_input = nin;
	n->proto.input = inputs;
	n->proto.n_output = 1;
	n->proto.output = outputs;
	n->proto.name = (char *) name;
	n->proto.op_type = (char *) op_type;
	n->proto.attribute = n->attrs;
	x->nodes[x->nnodes++] = &n->proto;
	return n;
}

/* a node with inputs and node i's output (NULL when out of memory) */
nn_onnx_node *
nn_onnx_node_add(nn_onnx *x, int i, const char *op_type, int nin, const char *const *in)
{
	return node_make(x, op_type, x->names[i + 1], nin, in);
}

/* a new attribute of n, or NULL */
static Onnx__AttributeProto *
attr_new(nn_onnx *x, nn_onnx_node *n, const char *name, Onnx__AttributeProto__AttributeType type)
{
	Onnx__AttributeProto *at;

	if (n == NULL || n->proto.n_attribute >= sizeof(n->attrs) / sizeof(n->attrs[0]))
	{
		x->failed = 1;
		return NULL;
	}
	at = arena_alloc(x, sizeof(*at));
	if (at == NULL)
		return NULL;
	onnx__attribute_proto__init(at);
	at->name = (char *) name;
	at->has_type = 1;
	at->type = type;
	n->attrs[n->proto.n_attribute++] = at;
	return at;
}

/* integer attribute */
void
nn_onnx_attr_int(nn_onnx *x, nn_onnx_node *n, const char *name, int64_t v)
{
	Onnx__AttributeProto *at = attr_new(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);

	if (at)
	{
		at->has_i = 1;
		at->i = v;
	}
}

/* integer-list attribute */
void
nn_onnx_attr_ints(nn_onnx *x, nn_onnx_node *n, const char *name, int count, const int64_t *v)
{
	Onnx__AttributeProto *at = attr_new(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
	int64_t    *d = arena_alloc(x, sizeof(int64_t) * count);

	if (at && d)
	{
		memcpy(d, v, sizeof(int64_t) * count);
		at->n_ints = count;
		at->ints = d;
	}
}

/* float attribute */
void
nn_onnx_attr_float(nn_onnx *x, nn_onnx_node *n, const char *name, float v)
{
	Onnx__AttributeProto *at = attr_new(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);

	if (at)
	{
		at->has_f = 1;
		at->f = v;
	}
}

/* a float initializer of ndims dims over data (not copied) */
static const char *
add_init(nn_onnx *x, const char *name, int ndims, const int64_t *dims, const float *data, size_t n)
{
	Onnx__TensorProto *t = arena_alloc(x, sizeof(*t));
	int64_t    *d = arena_alloc(x, sizeof(int64_t) * (ndims > 0 ? ndims : 1));

	if (t == NULL || d == NULL || x->ninits >= ONNX_MAX_TENSORS)
	{
		x->failed = 1;
		return name;
	}
	onnx__tensor_proto__init(t);
	if (ndims > 0)
		memcpy(d, dims, sizeof(int64_t) * ndims);
	t->n_dims = ndims;
	t->dims = d;
	t->has_data_type = 1;
	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	t->n_float_data = n;
	t->float_data = (float *) data;
	t->name = (char *) name;
	x->inits[x->ninits++] = t;
	return name;
}

/* node i's tensor "what" as an initializer */
const char *
nn_onnx_tensor(nn_onnx *x, int i, const char *what)
{
	const nn_tensor_info *t = nn_tensor_find(x->tensors, x->ntensors, i, what);
	int64_t		dims[4];

	if (t == NULL)
	{
		x->failed = 1;
		return "";
	}
	for (int d = 0; d < t->ndims; d++)
		dims[d] = t->shape[d];
	return add_init(x, t->name, t->ndims, dims, (t->buffer ? x->m->buffers : x->m->params) + t->off, t->len);
}

/* node i's output is its first input */
void
nn_onnx_pass(nn_onnx *x, int i)
{
	x->names[i + 1] = nn_onnx_input(x, i, 0);
}

/* a float [dims] value_info named name */
static Onnx__ValueInfoProto *
value_info(nn_onnx *x, const char *name, int ndims, const int64_t *dims)
{
	Onnx__ValueInfoProto *v = arena_alloc(x, sizeof(*v));
	Onnx__TypeProto *tp = arena_alloc(x, sizeof(*tp));
	Onnx__TypeProto__Tensor *tt = arena_alloc(x, sizeof(*tt));
	Onnx__TensorShapeProto *sh = arena_alloc(x, sizeof(*sh));
	Onnx__TensorShapeProto__Dimension **dim = arena_alloc(x, sizeof(void *) * ndims);

	if (v == NULL || tp == NULL || tt == NULL || sh == NULL || dim == NULL)
		return NULL;
	onnx__value_info_proto__init(v);
	onnx__type_proto__init(tp);
	onnx__type_proto__tensor__init(tt);
	onnx__tensor_shape_proto__init(sh);
	for (int d = 0; d < ndims; d++)
	{
		dim[d] = arena_alloc(x, sizeof(**dim));
		if (dim[d] == NULL)
			return NULL;
		onnx__tensor_shape_proto__dimension__init(dim[d]);
		if (dims[d] < 0)
		{
			dim[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
			dim[d]->dim_param = "N";
		}
		else
		{
			dim[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			dim[d]->dim_value = dims[d];
		}
	}
	sh->n_dim = ndims;
	sh->dim = dim;
	tt->has_elem_type = 1;
	tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	tt->shape = sh;
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	v->name = (char *) name;
	v->type = tp;
	return v;
}

/* a scalar float initializer named name */
static const char *
scalar(nn_onnx *x, const char *name, float v)
{
	float	   *d = arena_alloc(x, sizeof(float));

	if (d == NULL)
		return name;
	*d = v;
	return add_init(x, name, 0, NULL, d, 1);
}

/* a node outside the layers: name = op_type(a, b) */
static void
binary_node(nn_onnx *x, const char *op_type, const char *name, const char *a, const char *b)
{
	const char *in[2] = {a, b};

	node_make(x, op_type, name, 2, in);
}

/* the normalisation nodes in front: the name of the tensor the first layer reads */
static const char *
normalise(nn_onnx *x)
{
	const nn_norm *norm = &x->m->norm;

	const char *scaled = "pixels";

	if (norm->mode == NN_NORM_NONE)
		return "pixels";
	/* the same float operations as nn_load_pixels: bytes v / 255 first; then (- mean) / std */
	if (norm->dtype == NN_DTYPE_UINT8)
	{
		binary_node(x, "Div", "pixels_scaled", "pixels", scalar(x, "mlcnn.scale", 255.0f));
		if (norm->mode == NN_NORM_MINMAX)
			return "pixels_scaled";
		scaled = "pixels_scaled";
	}
	binary_node(x, "Sub", "pixels_centered", scaled, scalar(x, "mlcnn.mean", norm->mean));
	binary_node(x, "Div", "pixels_normalized", "pixels_centered", scalar(x, "mlcnn.std", norm->std));
	return "pixels_normalized";
}

/* the tensor names of every node's output */
static int
name_tensors(nn_onnx *x, nn_status *st)
{
	const nn_net *net = &x->m->net;

	for (int i = 0; i < net->nlayers; i++)
	{
		const nn_layer *L = &net->layers[i];
		char		buf[NN_MAX_LABEL + 32];

		if (i == net->nlayers - 1)
			snprintf(buf, sizeof(buf), "logits");
		else if (L->label[0])
			snprintf(buf, sizeof(buf), "%s", L->label);
		else
			snprintf(buf, sizeof(buf), "%s_%d", nn_op_of(L->kind)->name, i);
		x->names[i + 1] = arena_str(x, buf);
		if (x->names[i + 1] == NULL)
			return nn_fail(st, NN_ERR_NOMEM, "out of memory for the ONNX graph");
	}
	return NN_OK;
}

/* metadata entry key = value */
static Onnx__StringStringEntryProto *
meta(nn_onnx *x, const char *key, const char *value)
{
	Onnx__StringStringEntryProto *e = arena_alloc(x, sizeof(*e));

	if (e == NULL)
		return NULL;
	onnx__string_string_entry_proto__init(e);
	e->key = (char *) key;
	e->value = arena_str(x, value);
	return e;
}

/* the model of m as ONNX bytes */
int
nn_model_to_onnx(const nn_model *m, const char *version, uint8_t **out, size_t *len,
				 const nn_allocator *a, nn_status *st)
{
	nn_onnx		x;
	const nn_net *net = &m->net;
	Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
	Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
	Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
	Onnx__OperatorSetIdProto *opsets[1] = {&opset};
	Onnx__ValueInfoProto *in_info,
			   *out_info;
	Onnx__StringStringEntryProto *props[5];
	int64_t		in_dims[4] = {-1, net->input.c, net->input.h, net->input.w};
	int64_t		out_dims[2] = {-1, net->classes};
	char		classes[16];
	const char *norm_text = m->norm.mode == NN_NORM_MINMAX ? "minmax" :
		m->norm.mode == NN_NORM_ZSCORE ? "zscore" : "none";
	size_t		size;
	int			rc = NN_OK;

	*out = NULL;
	*len = 0;
	memset(&x, 0, sizeof(x));
	x.a = a;
	x.m = m;
	x.ntensors = nn_net_tensors(net, x.tensors, ONNX_MAX_TENSORS);
	if (x.ntensors > ONNX_MAX_TENSORS)
		return nn_fail(st, NN_ERR_LIMIT, "the network has %d tensors, more than the %d an export takes",
					   x.ntensors, ONNX_MAX_TENSORS);
	if (net->nlayers < 1)
		return nn_fail(st, NN_ERR_INVALID, "the model has no layers");
	if (name_tensors(&x, st) != NN_OK)
	{
		arena_free(&x);
		return NN_ERR_NOMEM;
	}
	x.names[0] = normalise(&x);
	for (int i = 0; i < net->nlayers && !x.failed; i++)
	{
		const nn_op *op = nn_op_of(net->layers[i].kind);

		if (op->onnx == NULL)
		{
			rc = nn_fail(st, NN_ERR_INVALID, "layer %d (%s) has no ONNX form", i + 1, op->name);
			break;
		}
		op->onnx(&x, &net->layers[i], i);
	}
	/* a network that ends in a dropout names its output after that dropout's input */
	if (rc == NN_OK && strcmp(x.names[net->nlayers], "logits") != 0)
	{
		Onnx__NodeProto *last = x.nnodes > 0 ? x.nodes[x.nnodes - 1] : NULL;

		if (last && last->n_output == 1 && strcmp(last->output[0], x.names[net->nlayers]) == 0)
			last->output[0] = "logits";
		else
			rc = nn_fail(st, NN_ERR_INVALID, "the network's output is not the output of its last node");
	}

	in_info = value_info(&x, "pixels", 4, in_dims);
	out_info = value_info(&x, "logits", 2, out_dims);
	snprintf(classes, sizeof(classes), "%d", net->classes);
	props[0] = meta(&x, "mlcnn_version", version);
	props[1] = meta(&x, "classes", classes);
	props[2] = meta(&x, "layers", net->spec);
	props[3] = meta(&x, "normalize", norm_text);
	props[4] = meta(&x, "input_type", nn_dtype_name(m->norm.dtype));
	if (rc == NN_OK && (x.failed || in_info == NULL || out_info == NULL ||
						!props[0] || !props[1] || !props[2] || !props[3] || !props[4]))
		rc = nn_fail(st, NN_ERR_NOMEM, "out of memory for the ONNX graph");
	if (rc != NN_OK)
	{
		arena_free(&x);
		return rc;
	}

	graph.name = "mlcnn";
	graph.n_node = x.nnodes;
	graph.node = x.nodes;
	graph.n_initializer = x.ninits;
	graph.initializer = x.inits;
	graph.n_input = 1;
	graph.input = &in_info;
	graph.n_output = 1;
	graph.output = &out_info;
	opset.domain = "";
	opset.has_version = 1;
	opset.version = NN_ONNX_OPSET;
	model.has_ir_version = 1;
	model.ir_version = NN_ONNX_IR_VERSION;
	model.n_opset_import = 1;
	model.opset_import = opsets;
	model.producer_name = "mlcnn";
	model.producer_version = (char *) version;
	model.graph = &graph;
	model.n_metadata_props = 5;
	model.metadata_props = props;

	size = protobuf_c_message_get_packed_size(&model.base);
	*out = nn_alloc(a, size > 0 ? size : 1);
	if (*out == NULL)
		rc = nn_fail(st, NN_ERR_NOMEM, "out of memory for an ONNX file of %zu bytes", size);
	else
		*len = protobuf_c_message_pack(&model.base, *out);
	arena_free(&x);
	return rc;
}
