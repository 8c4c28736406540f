/*
 * onnx.h: a network as an ONNX model (opset 13), for model_to_onnx().
 *
 * onnx.c builds the graph with protobuf-c's generated code for the
 * onnx.proto Debian ships (libonnx-dev); the op files add their nodes
 * through the small builder below, so they never see protobuf types.
 */
#ifndef NN_ONNX_H
#define NN_ONNX_H

#include <stdint.h>

#include "model.h"
#include "nn.h"

#define NN_ONNX_OPSET 13
#define NN_ONNX_IR_VERSION 7	/* the IR of opset 13 */

typedef struct nn_onnx nn_onnx;			/* a graph being built */
typedef struct nn_onnx_node nn_onnx_node;	/* one of its nodes */

/*
 * The ONNX model of m into *out (len bytes, from a): input "pixels", float
 * [N, C, H, W] of raw pixel values, first normalised as mlcnn does; output
 * "logits" [N, classes]; metadata_props mlcnn_version (version), classes,
 * layers, normalize, input_type (uint8 or float32: the rows it was trained
 * on; a float32 model's input is not divided by 255). NN_ERR_NOMEM, or
 * NN_ERR_LIMIT past what protobuf holds.
 */
int			nn_model_to_onnx(const nn_model *m, const char *version, uint8_t **out, size_t *len,
							 const nn_allocator *a, nn_status *st);

/* what an ONNX file cannot say, for nn_model_from_onnx */
typedef struct nn_onnx_import_opts
{
	int			normalize_given;	/* normalize, mean, std below apply */
	int32_t		normalize;		/* NN_NORM_* */
	float		mean,
				std;
	int32_t		classes;		/* 0: the last layer's outputs */
	nn_shape	input;			/* h = 0: the graph input's [N, C, H, W] */
	int32_t		dtype;			/* NN_DTYPE_* of the rows; -1: mlcnn's input_type metadata, else uint8 */
} nn_onnx_import_opts;

/*
 * An mlcnn model from an ONNX CNN graph (onnx_import.c): Conv,
 * BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool, Add,
 * Concat, Flatten, Gemm, and what folds away around them. Errors:
 * NN_ERR_CORRUPT (does not decode), NN_ERR_UNSUPPORTED (an operator or form
 * mlcnn lacks, naming the node), NN_ERR_INVALID (inconsistent sizes),
 * NN_ERR_LIMIT, NN_ERR_NOMEM, and what building the network reports.
 */
int			nn_model_from_onnx(nn_model *m, const uint8_t *buf, size_t len, const nn_onnx_import_opts *o,
							   const nn_allocator *a, nn_status *st);

/* the name of node i's k-th input tensor */
const char *nn_onnx_input(nn_onnx *x, int i, int k);
/* a node op_type named after node i, with inputs in[0..nin) and node i's output */
nn_onnx_node *nn_onnx_node_add(nn_onnx *x, int i, const char *op_type, int nin, const char *const *in);
/* integer, integer-list and float attributes of a node (NULL: ignored, the error is kept) */
void		nn_onnx_attr_int(nn_onnx *x, nn_onnx_node *n, const char *name, int64_t v);
void		nn_onnx_attr_ints(nn_onnx *x, nn_onnx_node *n, const char *name, int count, const int64_t *v);
void		nn_onnx_attr_float(nn_onnx *x, nn_onnx_node *n, const char *name, float v);
/* node i's tensor "weight", "bias", "running_mean" or "running_var" as an initializer: its name */
const char *nn_onnx_tensor(nn_onnx *x, int i, const char *what);
/* node i adds no node: its output is its first input (dropout at inference) */
void		nn_onnx_pass(nn_onnx *x, int i);

#endif							/* NN_ONNX_H */
