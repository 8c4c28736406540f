/*
 * layers_ref.h: naive reference versions of the layer kernels of nn.h.
 *
 * Same signatures and layouts as the fast kernels, with a _ref suffix. They
 * are plain loops over the definition of each layer (no im2col, no BLAS),
 * accumulate in double and exist only so that the unit tests can check the
 * fast kernels and the gradients against something obviously correct.
 * The conv reference fills col element by element from the definition of
 * im2col (always, also for 1x1 kernels) and its backward reads the input from
 * there; it ignores dcol.
 */
#ifndef MLCNN_LAYERS_REF_H
#define MLCNN_LAYERS_REF_H

#include "nn.h"

void		nn_conv2d_forward_ref(float *out, float *col, const float *inp,
								  const float *weight, const float *bias,
								  const nn_layer *L, int B);
void		nn_conv2d_backward_ref(float *dinp, float *dweight, float *dbias, float *dcol,
								   const float *dout, const float *col,
								   const float *weight, const nn_layer *L, int B);

void		nn_maxpool_forward_ref(float *out, int32_t *argmax, const float *inp,
								   const nn_layer *L, int B);
void		nn_maxpool_backward_ref(float *dinp, const float *dout, const int32_t *argmax,
									const nn_layer *L, int B);

void		nn_relu_forward_ref(float *out, const float *inp, size_t n);
void		nn_relu_backward_ref(float *dinp, const float *dout, const float *out, size_t n);

void		nn_dense_forward_ref(float *out, const float *inp, const float *weight,
								 const float *bias, int B, int I, int N);
void		nn_dense_backward_ref(float *dinp, float *dweight, float *dbias,
								  const float *dout, const float *inp, const float *weight,
								  int B, int I, int N);

void		nn_dropout_forward_ref(float *out, float *mask, const float *inp, size_t n,
								   float rate, nn_rng *rng);
void		nn_dropout_backward_ref(float *dinp, const float *dout, const float *mask, size_t n);

void		nn_flatten_forward_ref(float *out, const float *inp, int B, int C, int H, int W);
void		nn_flatten_backward_ref(float *dinp, const float *dout, int B, int C, int H, int W);

double		nn_softmax_xent_forward_ref(float *probs, const float *logits,
										const int32_t *labels, int B, int K);
void		nn_softmax_xent_backward_ref(float *dlogits, const float *probs,
										 const int32_t *labels, int B, int K, float scale);

#endif							/* MLCNN_LAYERS_REF_H */
