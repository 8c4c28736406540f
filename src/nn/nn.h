/*
 * nn.h: the public interface of mlcnn's neural-network core.
 *
 * The core is plain C99 plus OpenBLAS. It never includes postgres.h, never
 * calls exit() or abort(), takes all memory from an injected allocator and
 * reports every failure as a status code plus a message (nn_status). The
 * PostgreSQL layer (src/pg) turns a status into ereport(); the standalone
 * test binary prints it.
 *
 * Tensor layouts (row-major, float32):
 *   - spatial activations are (C,B,H,W): channel-major with the batch inside,
 *     so that a convolution over a whole mini-batch is one sgemm;
 *   - flat activations (after flatten/dense) are (B,N);
 *   - conv weights are (OC,C,K,K) and dense weights (N,I): PyTorch's layouts,
 *     so model_weights() can hand them to a torch state_dict unchanged.
 * All parameters of a network live in ONE float buffer carved by the layer
 * table (w_off/b_off); gradients and optimizer moments use the same layout.
 */
#ifndef MLCNN_NN_H
#define MLCNN_NN_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- status */

typedef enum nn_code
{
	NN_OK = 0,
	NN_ERR_NOMEM,				/* allocator returned NULL */
	NN_ERR_INVALID,				/* bad argument or option value */
	NN_ERR_PARSE,				/* layer spec or options text does not parse */
	NN_ERR_SHAPE,				/* shapes do not fit */
	NN_ERR_CORRUPT,				/* model/gradient blob corrupt or truncated */
	NN_ERR_LIMIT,				/* a size limit was passed */
	NN_ERR_IO,					/* file could not be read */
	NN_ERR_DATA,				/* bad data file content (IDX) or numeric trouble */
	NN_ERR_CANCELLED,			/* a callback asked to stop */
	NN_ERR_UNSUPPORTED			/* valid input mlcnn has no equivalent for (an ONNX operator) */
} nn_code;

#define NN_MSG_LEN 512

typedef struct nn_status
{
	nn_code		code;
	char		msg[NN_MSG_LEN];	/* lowercase, no trailing period */
} nn_status;

/* Set *st and return code; printf-style message. */
int			nn_fail(nn_status *st, nn_code code, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------- interrupts */

/*
 * Set by the host (the PostgreSQL layer points it at a check of its
 * cancel and terminate flags): returns nonzero once the work in progress
 * should stop, and keeps returning nonzero until the core has returned to
 * the host. It may be called from any thread, so it only reads flags. NULL
 * (the standalone tools) never interrupts. Layers poll it between layers
 * and inside any loop whose cost a model can make large; a phase that sees
 * it stops and reports NN_ERR_CANCELLED.
 */
extern int	(*nn_interrupt_poll) (void);

/* nonzero when the host asked the core to stop */
static inline int
nn_interrupted(void)
{
	return nn_interrupt_poll != NULL && nn_interrupt_poll() != 0;
}

/* ------------------------------------------------------------- text */

/* c lowercased if it is an ASCII capital (independent of the locale) */
static inline char
nn_ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char) (c | 0x20) : c;
}

/* do the len bytes at s equal the lowercase word w, ignoring ASCII case? */
int			nn_word_is(const char *s, size_t len, const char *w);

/*
 * up to max bytes of s (len bytes) into buf for a message: printable ASCII,
 * anything else (and quotes and backslashes) as '?', "..." when cut
 */
void		nn_quote(char *buf, size_t buflen, const char *s, size_t len, size_t max);

/* ------------------------------------------------------------- allocator */

typedef struct nn_allocator
{
	void	   *(*alloc) (void *ctx, size_t size);	/* NULL on failure */
	void		(*free) (void *ctx, void *ptr);		/* ptr may be NULL */
	void	   *ctx;
} nn_allocator;

/* malloc/free, for the standalone tools and tests */
extern const nn_allocator nn_malloc_allocator;

void	   *nn_alloc(const nn_allocator *a, size_t size);
void	   *nn_calloc(const nn_allocator *a, size_t n, size_t size);	/* zeroed, overflow-checked */
void		nn_free(const nn_allocator *a, void *ptr);

/* ------------------------------------------------------------------- rng */

/* xoshiro128** seeded through splitmix64: same seed, same stream, everywhere */
typedef struct nn_rng
{
	uint32_t	s[4];
} nn_rng;

void		nn_rng_seed(nn_rng *r, uint64_t seed);
uint32_t	nn_rng_u32(nn_rng *r);
float		nn_rng_uniform(nn_rng *r);	/* [0,1) */
float		nn_rng_normal(nn_rng *r);	/* N(0,1), Box-Muller */
uint32_t	nn_rng_below(nn_rng *r, uint32_t n);	/* uniform in [0,n), unbiased */

/* ---------------------------------------------------------------- layers */

#define NN_MAX_LAYERS 64			/* nodes of a network, the implicit ones included */
#define NN_MAX_SPEC 1024		/* bytes of layer-spec text */
#define NN_MAX_DIM 4096			/* largest h, w, c, units, filters */
#define NN_MAX_INPUTS 4			/* inputs of one node (add, concat) */
#define NN_MAX_LABEL 16			/* bytes of a label, NUL included */

/* the kinds of node; each has one entry in the table of operations (ops.c) */
typedef enum nn_layer_kind
{
	NN_CONV = 1,
	NN_MAXPOOL,
	NN_RELU,
	NN_DENSE,
	NN_DROPOUT,
	NN_FLATTEN,
	NN_AVGPOOL,
	NN_GLOBALAVGPOOL,
	NN_BATCHNORM,
	NN_ADD,
	NN_CONCAT,
	NN_NKINDS
} nn_layer_kind;

typedef struct nn_shape
{
	int32_t		h,
				w,
				c;
} nn_shape;

/* what a node is to the residual block around it */
enum
{
	NN_ROLE_LAYER = 0,			/* written by the user (or an implicit flatten) */
	NN_ROLE_PROJECTION,			/* a residual block's 1x1 shortcut convolution */
	NN_ROLE_RESIDUAL			/* a residual block's closing add */
};

/*
 * One node of the network graph. Tensor 0 is the network's input and
 * tensor i+1 the output of node i; a node reads the tensors in inputs[]
 * (all earlier), so the nodes are in an order that runs forward.
 */
typedef struct nn_layer
{
	nn_layer_kind kind;
	int32_t		units;			/* conv: filters; dense: outputs */
	int32_t		kernel;			/* conv: kernel size; pooling: window */
	int32_t		stride;			/* conv, pooling */
	int32_t		pad;			/* conv: zero padding per side (0 = valid) */
	int32_t		same;			/* conv: 1 when written as padding "same" */
	int32_t		groups;			/* conv: channel groups (1; = channels: depthwise) */
	float		rate;			/* dropout probability */
	nn_shape	in,
				out;			/* flat tensors: h = w = 1, c = N; in: of inputs[0] */
	int32_t		flat_in;		/* inputs are (B,N) rather than (C,B,H,W) */
	int32_t		flat_out;		/* the output is (B,N) */
	int32_t		nin;			/* inputs */
	int32_t		inputs[NN_MAX_INPUTS];	/* tensor ids */
	int32_t		role;			/* NN_ROLE_* */
	int32_t		block_start;	/* NN_ROLE_RESIDUAL: the first node of its body */
	int32_t		from;			/* written after from(...): inputs[0] is named */
	char		label[NN_MAX_LABEL];	/* "name:" written before it, or "" */
	size_t		w_off,
				w_len,
				b_off,
				b_len;			/* parameter slices; len 0 if none */
	size_t		buf_off,
				buf_len;		/* slice of the net's buffers (batch norm's running
								 * statistics: state that is not trained); len 0 if none */
} nn_layer;

/*
 * Layer kernels, llm.c style: outputs first, sizes last, backward
 * accumulates into dweight/dbias/dinp with +=. Zeroing is the caller's.
 * dinp may be NULL when the gradient w.r.t. the input is not needed.
 */

/* sum of x[0..n) in float with 16 independent partial sums (vectorizes) */
float		nn_sum_floats(const float *restrict x, size_t n);

/* conv: inp (C,B,H,W) -> out (OC,B,OH,OW); col is (C*K*K, B*OH*OW) scratch kept for backward */
void		nn_conv2d_forward(float *out, float *col, const float *inp,
							  const float *weight, const float *bias,
							  const nn_layer *L, int B);
/* dcol is (C*K*K, B*OH*OW) scratch; col is what forward left there */
void		nn_conv2d_backward(float *dinp, float *dweight, float *dbias, float *dcol,
							   const float *dout, const float *col,
							   const float *weight, const nn_layer *L, int B);

/* maxpool: inp (C,B,H,W) -> out (C,B,OH,OW); argmax (C,B,OH,OW) indexes within each (c,b) plane of inp */
void		nn_maxpool_forward(float *out, int32_t *argmax, const float *inp,
							   const nn_layer *L, int B);
void		nn_maxpool_backward(float *dinp, const float *dout, const int32_t *argmax,
								const nn_layer *L, int B);

/* relu over n values (out may be inp); backward uses the forward output */
void		nn_relu_forward(float *out, const float *inp, size_t n);
void		nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n);
/* the same backward when the gradient buffer is shared: dout becomes dinp */
void		nn_relu_backward_inplace(float *dout, const float *out, size_t n);

/*
 * Matrix products of more multiply-adds than this run in tiles with an
 * interrupt check between them (2^31 by default; tests lower it).
 */
extern uint64_t nn_gemm_tile_macs;

/* dense: inp (B,I) -> out (B,N); weight (N,I), bias (N) */
void		nn_dense_forward(float *out, const float *inp, const float *weight,
							 const float *bias, int B, int nin, int nout);
void		nn_dense_backward(float *dinp, float *dweight, float *dbias,
							  const float *dout, const float *inp, const float *weight,
							  int B, int nin, int nout);

/* dropout (inverted): mask holds 0 or 1/(1-rate); training only */
void		nn_dropout_forward(float *out, float *mask, const float *inp, size_t n,
							   float rate, nn_rng *rng);
void		nn_dropout_backward(float *dinp, const float *dout, const float *mask, size_t n);

/* flatten: (C,B,H,W) -> (B, C*H*W) in PyTorch's (c,h,w) order, and back */
void		nn_flatten_forward(float *out, const float *inp, int B, int C, int H, int W);
void		nn_flatten_backward(float *dinp, const float *dout, int B, int C, int H, int W);

/* index of the largest of x[0..K), the first on ties */
int			nn_argmax(const float *x, int K);
/* softmax of x[0..K) into p */
void		nn_softmax(float *p, const float *x, int K);

/*
 * softmax + cross-entropy: logits (B,K) -> probs (B,K); returns the summed
 * loss over the batch (double). labels in [0,K).
 */
double		nn_softmax_xent_forward(float *probs, const float *logits,
									const int32_t *labels, int B, int K);
/* dlogits += (probs - onehot) * scale; scale is 1/B for a mean loss */
void		nn_softmax_xent_backward(float *dlogits, const float *probs,
									 const int32_t *labels, int B, int K, float scale);

/* ------------------------------------------------------------------- net */

/*
 * What a network costs, from the same plan nn_work_alloc follows (a measure
 * pass with no memory behind it, ggml-alloc style), so the bound and the
 * real allocation never disagree. Every figure saturates at UINT64_MAX
 * instead of wrapping, so a hostile shape can only make it larger.
 */
typedef struct nn_bound
{
	uint64_t	params_bytes;	/* the parameters (floats) */
	uint64_t	work_bytes;		/* activations and workspace of the batch */
	uint64_t	macs;			/* multiply-adds (and pooling compares) of one forward pass of the batch */
	uint64_t	largest;		/* elements of the largest single buffer */
	int			batch;			/* images the figures are for */
	int			train;			/* backward buffers counted */
} nn_bound;

typedef struct nn_net
{
	nn_shape	input;
	int32_t		classes;
	int32_t		nlayers;
	nn_layer	layers[NN_MAX_LAYERS];
	size_t		nparams;
	size_t		nbuffers;		/* floats of non-trained state (running statistics) */
	char		spec[NN_MAX_SPEC];	/* canonical spec text */
	nn_bound	per_image;		/* inference bound of one image (nn_net_build) */
} nn_net;

/* The reference CNN of the study */
#define NN_REFERENCE_SPEC "conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) dense(128) relu dense(10)"

/*
 * Parse a layer spec into net->layers (kinds and hyper-parameters only).
 * Errors name the 1-based character position and the token.
 */
int			nn_spec_parse(nn_net *net, const char *spec, nn_status *st);

/*
 * Shape inference and parameter layout: fills in/out shapes, flat_in,
 * parameter offsets, nparams and the canonical spec. Names the layer that
 * does not fit. The last layer must produce `classes` outputs.
 */
int			nn_net_build(nn_net *net, const char *spec, nn_shape input,
						 int32_t classes, nn_status *st);

/* one parameter or buffer tensor of a net, named as PyTorch's state_dict names it (names.c) */
typedef struct nn_tensor_info
{
	char		name[96];		/* "0.weight", "3.body.1.running_var", ... */
	int			layer;			/* node index */
	int			buffer;			/* 1: in the buffers (running statistics); 0: in the parameters */
	size_t		off,
				len;			/* floats */
	int			ndims;			/* 0 for a scalar (num_batches_tracked) */
	int			shape[4];
} nn_tensor_info;

/* every tensor of net in state_dict order into out[0..max); returns how many there are */
int			nn_net_tensors(const nn_net *net, nn_tensor_info *out, int max);
/* the tensor of node i in t[0..n) whose name ends in ".what" ("weight", "running_var"), or NULL */
const nn_tensor_info *nn_tensor_find(const nn_tensor_info *t, int n, int i, const char *what);

/*
 * Do a and b have the same architecture (canonical spec, input, classes)?
 * When not, and why is not NULL, what each is goes into why.
 */
int			nn_net_same(const nn_net *a, const nn_net *b, char *why, size_t len);

/* Write the canonical spec of net->layers into buf (NUL-terminated). */
void		nn_spec_format(const nn_net *net, char *buf, size_t len);

/* initial parameters from rng (He-normal weights, zero biases, batch norm's ones) and buffers (may be NULL when the net has none) */
void		nn_net_init_params(const nn_net *net, float *params, float *buffers, nn_rng *rng);

/*
 * Per-batch working memory for forward/backward of a net: one arena carved
 * by the buffer planner (net.c), which gives a tensor's memory to another
 * once nothing reads it any more.
 */
typedef struct nn_work
{
	int			B;				/* capacity in images */
	int			train;			/* allocate backward buffers and dropout masks */
	int			dropout_active; /* the last forward drew dropout masks */
	float	   *act[NN_MAX_LAYERS + 1];	/* act[0] = input (C,B,H,W); act[i+1] = output of node i
										 * (a relu may share its input's buffer) */
	float	   *dact[NN_MAX_LAYERS + 1];	/* gradients of act (train; NULL where none is needed) */
	float	   *col[NN_MAX_LAYERS]; /* conv im2col (kept for backward when training) */
	float	   *dcol[NN_MAX_LAYERS];	/* conv backward scratch */
	int32_t    *argmax[NN_MAX_LAYERS];	/* maxpool */
	float	   *mask[NN_MAX_LAYERS];	/* dropout */
	float	   *aux[NN_MAX_LAYERS]; /* other per-node state an op keeps (batch norm) */
	double	   *stat[NN_MAX_LAYERS];	/* partial sums of batch-wide ops (batch norm) */
	float	   *fscratch[NN_MAX_LAYERS];	/* a node's scratch during its forward step only */
	float	   *prep[NN_MAX_LAYERS];	/* weights transformed for a node's kernels (Winograd) */
	const float *prep_of[NN_MAX_LAYERS];	/* frozen: the weights prep[i] holds, or NULL */
	int			frozen;			/* NN_WORK_FROZEN: the weights never change under this work */
	int			forward_train;	/* the last forward pass was in training mode */
	float	   *buffers;		/* the buffers the last forward pass used */
	float	   *probs;			/* (B,classes) */
	int32_t    *labels;			/* (B) */
	size_t		bytes;			/* total allocated */
	void	   *arena;			/* what nn_work_free releases */
} nn_work;

/*
 * train: 0 inference, 1 training; | NN_WORK_KEEP_ALL keeps every buffer
 * for the whole pass (no reuse), for tests and debugging that look at
 * intermediate tensors after the pass.
 */
#define NN_WORK_KEEP_ALL 0x100
/*
 * | NN_WORK_FROZEN (inference): the caller promises that the weights at a
 * given address never change while the work lives (a cached model's), so
 * the kernels transform them once and keep the result.
 */
#define NN_WORK_FROZEN 0x200
int			nn_work_alloc(nn_work *w, const nn_net *net, int B, int train,
						  const nn_allocator *a, nn_status *st);
void		nn_work_free(nn_work *w, const nn_allocator *a);
/* bytes nn_work_alloc would take (saturating: SIZE_MAX when they overflow) */
size_t		nn_work_bytes(const nn_net *net, int B, int train);

/*
 * The resource bound of a batch of B images (train: with backward
 * buffers): fills *b from the measure pass and fails with NN_ERR_LIMIT when
 * a size overflows or a matrix product has a dimension past INT_MAX (the
 * BLAS interface is 32-bit). nn_work_alloc checks it before allocating.
 */
int			nn_net_bound(const nn_net *net, int B, int train, nn_bound *b, nn_status *st);

/* seconds spent per phase, accumulated by forward/backward/update */
typedef struct nn_timing
{
	double		forward_s;
	double		backward_s;
	double		update_s;
	double		loss_s;
	double		layer_fwd_s[NN_MAX_LAYERS];
	double		layer_bwd_s[NN_MAX_LAYERS];
	int64_t		batches;
	int64_t		images;
} nn_timing;

double		nn_now(void);		/* monotonic seconds */

/*
 * Forward pass of B images already in w->act[0] (C,B,H,W). Leaves the logits
 * in w->act[nlayers] (B,classes). rng is used by dropout when train is set
 * (pass NULL for inference). Returns NN_OK, or NN_ERR_CANCELLED when
 * nn_interrupted() stopped it (the outputs are then undefined).
 */
int			nn_net_forward(const nn_net *net, const float *params, float *buffers, nn_work *w,
						   int B, int train, nn_rng *rng, nn_timing *t);

/*
 * A training batch split into nparts data-parallel parts, each in its own
 * work w[p] with B[p] images (batch-wide statistics still those of the
 * whole batch): run(fn, ctx, nparts, run_ctx) must call fn(ctx, p) for
 * every part p, in parallel or not, and return when all are done. The
 * forward pass updates buffers (running statistics) once per batch; the
 * backward pass accumulates part p's gradient into grads[p] (the loss of
 * each part from nn_net_loss first). t[p] may be NULL.
 */
#define NN_MAX_PARTS 16
/* does training net need the whole batch at once somewhere (batch norm)? Without, parts are independent */
int			nn_net_batch_coupled(const nn_net *net);
typedef void (*nn_part_fn) (void *ctx, int part);
typedef void (*nn_parts_run) (nn_part_fn fn, void *ctx, int nparts, void *run_ctx);
int			nn_net_forward_parts(const nn_net *net, const float *params, float *buffers, nn_work **w,
								 const int *B, int nparts, nn_rng **rng, nn_timing **t,
								 nn_parts_run run, void *run_ctx);
int			nn_net_backward_parts(const nn_net *net, const float *params, float **grads, nn_work **w,
								  const int *B, int nparts, float scale, nn_timing **t,
								  nn_parts_run run, void *run_ctx);

/* Softmax + mean cross-entropy over w->act[nlayers] with labels; returns summed loss; counts correct in *correct */
double		nn_net_loss(const nn_net *net, nn_work *w, const int32_t *labels, int B,
						int64_t *correct, nn_timing *t);

/*
 * Backward pass after nn_net_forward + nn_net_loss: accumulates the gradient
 * of (sum of losses * scale) into grads (same layout as params). Zero grads
 * first. scale is 1/B for the mean loss. Returns NN_OK or NN_ERR_CANCELLED.
 */
int			nn_net_backward(const nn_net *net, const float *params, float *grads,
							nn_work *w, int B, float scale, nn_timing *t);

/*
 * How the rows' values become the network's input: their element type
 * (bytes, or float32 for real[] inputs) and the normalisation.
 */
typedef struct nn_norm
{
	int32_t		mode;			/* NN_NORM_NONE / MINMAX / ZSCORE */
	float		mean;			/* zscore: of pixel/255 (bytes) or of the value (floats); floats' minmax: the minimum */
	float		std;			/* zscore: the standard deviation; floats' minmax: max - min */
	int32_t		dtype;			/* NN_DTYPE_*: the rows' element type */
} nn_norm;

enum
{
	NN_NORM_NONE = 0,
	NN_NORM_MINMAX = 1,
	NN_NORM_ZSCORE = 2,
	NN_NORM_AUTO = 3			/* an option only: minmax for bytes, none for floats */
};

/* the element types of input rows; the numbers are stored in models */
enum
{
	NN_DTYPE_UINT8 = 0,			/* one byte per value (bytea pixels) */
	NN_DTYPE_FLOAT32 = 1		/* IEEE float32, host order (real[]) */
};

/* "uint8" or "float32" */
const char *nn_dtype_name(int32_t dtype);

/* bytes per value of dtype */
static inline int
nn_dtype_size(int32_t dtype)
{
	return dtype == NN_DTYPE_FLOAT32 ? 4 : 1;
}

/*
 * Convert B rows of HWC values (norm->dtype: bytes, or float32 that need
 * not be aligned) into w->act[0] (C,B,H,W): bytes as v, v/255 or
 * (v/255 - mean)/std; floats as v or (v - mean)/std.
 */
void		nn_load_pixels(float *dst, const uint8_t *const *rows, int B,
						   nn_shape in, const nn_norm *norm);
/*
 * Inference of B images split into nparts parts that run side by side
 * through run (part p on w[p], whose capacity must hold its share, about
 * B / nparts): each part loads its rows with norm and runs forward; the
 * logits of all B images are then in w[0]->act[nlayers] in row order. t
 * (the first part's) may be NULL. NN_OK or NN_ERR_CANCELLED.
 */
int			nn_net_forward_split(const nn_net *net, const float *params, float *buffers, nn_work **w,
								 int nparts, const uint8_t *const *rows, int B, const nn_norm *norm,
								 nn_timing *t, nn_parts_run run, void *run_ctx);

/* ------------------------------------------------------------- optimizer */

enum
{
	NN_OPT_SGD = 0,
	NN_OPT_MOMENTUM = 1,
	NN_OPT_ADAM = 2
};

enum
{
	NN_LR_CONSTANT = 0,
	NN_LR_STEP = 1,				/* lr * gamma^(epoch / step) ... see options */
	NN_LR_COSINE = 2,			/* cosine decay to 0 over all steps */
	NN_LR_ONECYCLE = 3			/* linear warm-up 30% to lr, cosine down */
};

typedef struct nn_optim
{
	int32_t		kind;
	float		lr;
	float		momentum;		/* momentum: mu; adam: beta1 */
	float		beta2;
	float		eps;
	float		weight_decay;	/* L2 added to the gradient (PyTorch semantics) */
	int64_t		t;				/* steps taken */
	float	   *m;				/* moments, same layout as params; NULL for sgd */
	float	   *v;
} nn_optim;

/* one step over n params with learning rate lr (the schedule's value) */
void		nn_optim_step(nn_optim *o, float *params, const float *grads, size_t n, float lr);

/*
 * The same step in parts, so that disjoint ranges can be updated in
 * parallel: nn_optim_begin once, then nn_optim_apply over [lo, hi) ranges
 * that cover the parameters.
 */
void		nn_optim_begin(nn_optim *o);
void		nn_optim_apply(const nn_optim *o, float *params, const float *grads,
						   size_t lo, size_t hi, float lr);
/* params -= lr * grads over n values; the index of the first non-finite result, or n */
size_t		nn_sgd_step_checked(float *params, const float *grads, size_t n, float lr);

/* learning rate of the schedule at step (0-based) of total_steps */
float		nn_lr_at(int32_t schedule, float base_lr, int64_t step, int64_t total_steps,
					 int64_t steps_per_epoch);

#endif							/* MLCNN_NN_H */
