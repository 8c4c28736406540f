/*
 * ops.h: the table of operations, one entry per kind of node.
 *
 * Everything the core does with a node goes through its entry: the
 * layer-spec parser hands it the arguments, shape inference asks it for
 * the output shape and the parameters, the buffer planner for the memory
 * it keeps, the network for forward and backward, the resource bound for
 * its cost, and model_weights and export for the names other frameworks
 * use. A new kind of layer is one file (op_*.c) and one line in ops.c.
 */
#ifndef MLCNN_OPS_H
#define MLCNN_OPS_H

#include <string.h>

#include "nn.h"

/* ------------------------------------------------------------ parsing */

/* one argument of a layer as written: an integer, a number or a word, maybe key=value */
typedef enum spec_arg_type
{
	SPEC_ARG_INT,
	SPEC_ARG_NUMBER,
	SPEC_ARG_WORD,
	SPEC_ARG_OTHER				/* anything else: an error for every op */
} spec_arg_type;

typedef struct spec_arg
{
	spec_arg_type type;
	long long	i;				/* SPEC_ARG_INT (saturated) */
	double		d;				/* SPEC_ARG_INT and SPEC_ARG_NUMBER */
	size_t		at;				/* byte offset of the value in the spec */
	size_t		len;			/* bytes of the value */
	size_t		key_at;			/* key=value: the key's offset and length; len 0 without */
	size_t		key_len;
} spec_arg;

typedef struct spec_ctx spec_ctx;	/* the parser (spec.c) */

/* a syntax error at arg a (NULL: at the layer's name) naming the position */
int			nn_spec_fail(spec_ctx *c, const spec_arg *a, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
/* an integer argument in [lo, hi] ("conv filters must be between ...") */
int			nn_spec_int(spec_ctx *c, const spec_arg *a, const char *what, int lo, int hi, int32_t *out);
/* does word argument a equal the lowercase w (case-insensitively)? */
int			nn_spec_word_is(spec_ctx *c, const spec_arg *a, const char *w);
/* is a a key=value argument with key k? */
int			nn_spec_key_is(spec_ctx *c, const spec_arg *a, const char *k);
/* the text of argument a, quoted for messages */
void		nn_spec_arg_text(spec_ctx *c, const spec_arg *a, char *buf, size_t len);

/* ------------------------------------------------------- shape inference */

/* what an op's shape function sees; errors go through nn_shape_fail */
typedef struct nn_shape_ctx
{
	const nn_shape *in[NN_MAX_INPUTS];	/* shapes of the node's inputs */
	int			flat[NN_MAX_INPUTS];	/* is input k (B,N)? */
	const char *text;			/* the layer as written, quoted */
	const char *shape;			/* "28x28x1" or "64 values": inputs[0] */
	int			num;			/* the user's layer number */
	nn_status  *st;
} nn_shape_ctx;

/* a window of L->kernel with L->pad and L->stride over L->in: out.h, out.w, or an error (op_conv.c) */
int			nn_window_shape(nn_layer *L, nn_shape_ctx *c);
/* the kernels a conv layer runs on: "winograd", "direct", "pointwise" or "im2col" */
const char *nn_conv_path(const nn_layer *L);

/* "layer <num> \"<text>\" " followed by the message; returns code */
int			nn_shape_fail(nn_shape_ctx *c, nn_code code, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------- memory plan */

/*
 * Per-node memory beyond its output, in elements (floats; argmax int32):
 * kept from forward to backward when training, scratch of the forward
 * pass otherwise; dcol is scratch of the backward pass.
 */
typedef struct nn_op_mem
{
	size_t		col;
	size_t		argmax;
	size_t		mask;			/* training only */
	size_t		aux;
	size_t		dcol;			/* training only */
	size_t		stat;			/* doubles: partial sums over the batch (training only) */
	size_t		fscratch;		/* the forward pass's own scratch (not kept) */
	size_t		prep;			/* the weights transformed for the kernels: kept while the
								 * work lives when its weights are frozen, else as col */
} nn_op_mem;

/* what backward reads besides its output gradient (for the planner) */
enum
{
	NN_BWD_INPUT = 1,			/* the forward inputs */
	NN_BWD_OUTPUT = 2			/* the forward output */
};

/* -------------------------------------------------------- forward, backward */

/* one node at work on a batch */
typedef struct nn_op_ctx
{
	const nn_net *net;
	const nn_layer *L;
	int			i;				/* node index */
	int			B;
	int			train;
	const float *in[NN_MAX_INPUTS];
	float	   *out;
	const float *w;				/* params + w_off, or NULL */
	const float *b;
	float	   *buf;			/* the net's buffers + buf_off (train: updated) */
	nn_work    *work;			/* col, argmax, mask, aux of node i */
	nn_rng	   *rng;			/* dropout, training only */
	/* backward */
	const float *dout;
	float	   *din[NN_MAX_INPUTS];	/* NULL where no gradient is needed */
	int			din_inplace;	/* din[0] is dout's buffer (relu) */
	int			din_fresh[NN_MAX_INPUTS];	/* an op with bwd_assigns writes din[k] first this
											 * pass: it holds garbage, so "=" (or zero it) */
	float	   *dw;
	float	   *db;
} nn_op_ctx;

/*
 * An op whose training pass depends on the whole batch (batch norm's
 * statistics). The network runs it in steps so that the data-parallel
 * parts of a batch can add their sums, in a fixed order, before any part
 * goes on: sums of this part's rows into stat (nstat doubles), then, with
 * the batch's totals over count values, the running state updated once
 * and every part normalised; the same for the backward pass.
 */
typedef struct nn_coupled
{
	int			(*nstat) (const nn_layer *L);
	void		(*stats) (nn_op_ctx *c, double *stat);
	void		(*update) (const nn_layer *L, float *buf, const double *total, double count);
	void		(*apply) (nn_op_ctx *c, const double *total, double count);
	void		(*bstats) (nn_op_ctx *c, double *stat);
	void		(*bapply) (nn_op_ctx *c, const double *total, double count);
	/* values per image that one statistic sums over (h*w) */
	size_t		(*per_image) (const nn_layer *L);
} nn_coupled;

struct nn_onnx;					/* onnx.h */

typedef struct nn_op
{
	const char *name;			/* spec keyword, lowercase */
	int			min_args;
	int			max_args;		/* positional */
	const char *usage;			/* shown when the arguments are wrong */
	/* hyper-parameters from the arguments; NULL when it takes none */
	int			(*args) (nn_layer *L, const spec_arg *a, int n, spec_ctx *c);
	/* the canonical text of the node */
	void		(*format) (const nn_layer *L, char *buf, size_t len);
	/* output shape, flatness, w_len, b_len, buf_len from the inputs */
	int			(*shape) (nn_layer *L, nn_shape_ctx *c);
	/* initial parameters (weights and biases; running statistics in buffers) */
	void		(*init) (const nn_layer *L, float *params, float *buffers, nn_rng *rng);
	/* memory beyond the output; NULL for none */
	void		(*mem) (const nn_layer *L, int B, int train, nn_op_mem *m);
	int			(*bwd_reads) (const nn_layer *L);	/* NN_BWD_*, in either mode */
	/* may write its output over its (only) input's buffer */
	int			inplace;
	/* its backward honours din_fresh (the network zeroes din for the others) */
	int			bwd_assigns;
	/* takes the labels of its inputs as arguments, as add(a, b) */
	int			refs;
	void		(*forward) (nn_op_ctx *c);
	void		(*backward) (nn_op_ctx *c);
	/* multiply-adds of one image */
	uint64_t	(*macs) (const nn_layer *L);
	/* PyTorch's module for names ("Conv2d"), NULL where it has none (add) */
	const char *torch;
	/* its ONNX nodes at inference (onnx.h's builder) */
	void		(*onnx) (struct nn_onnx *x, const nn_layer *L, int i);
	/* the training pass over the whole batch; NULL for ops that see images alone */
	const nn_coupled *coupled;
} nn_op;

/* the entry of kind, or NULL */
const nn_op *nn_op_of(nn_layer_kind kind);
/* the entry named name (len bytes, case-insensitive), or NULL */
const nn_op *nn_op_named(const char *name, size_t len);
/* the kind of an entry */
nn_layer_kind nn_op_kind(const nn_op *op);
/* "conv, maxpool, ..." : the names for messages */
const char *nn_op_names(void);

/* the entries, defined in the op files */
extern const nn_op nn_op_conv;
extern const nn_op nn_op_maxpool;
extern const nn_op nn_op_avgpool;
extern const nn_op nn_op_globalavgpool;
extern const nn_op nn_op_relu;
extern const nn_op nn_op_dense;
extern const nn_op nn_op_dropout;
extern const nn_op nn_op_flatten;
extern const nn_op nn_op_batchnorm;
extern const nn_op nn_op_add;
extern const nn_op nn_op_concat;

/* ---------------------------------------------------------- shared helpers */

/* the shape of tensor t of net (0: the input; i+1: node i's output) */
static inline nn_shape
nn_tensor_shape(const nn_net *net, int t)
{
	return t == 0 ? net->input : net->layers[t - 1].out;
}

/* elements one image of a shape holds (h*w*c) */
static inline size_t
nn_shape_elems(nn_shape s)
{
	return (size_t) s.h * s.w * s.c;
}

/* din[k] zeroed if it is fresh: for an op's paths that can only add */
static inline void
nn_din_zero_fresh(nn_op_ctx *c, int k, size_t n)
{
	if (c->din[k] && c->din_fresh[k])
		memset(c->din[k], 0, n * sizeof(float));
	c->din_fresh[k] = 0;
}

/* shortest text of a float that reads back as the same float */
void		nn_float_text(char *buf, size_t len, float v);

/* He-normal weights (std sqrt(2/fan_in)) of L's w slice; biases stay 0 */
void		nn_init_he(const nn_layer *L, float *params, nn_rng *rng);

#endif							/* MLCNN_OPS_H */
