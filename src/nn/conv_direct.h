/*
 * conv_direct.h: direct convolution (no im2col) for stride-1 convolutions
 * with few channels; see conv_direct.c.
 */
#ifndef NN_CONV_DIRECT_H
#define NN_CONV_DIRECT_H

#include <stddef.h>

#include "nn.h"

/* the narrowest input and widest input or output the direct kernels take in auto mode */
#define NN_CONV_DIRECT_MIN_CHANNELS 4
#define NN_CONV_DIRECT_MAX_CHANNELS 32

enum
{
	NN_CONV_DIRECT_AUTO,		/* where it fits and the channels are few */
	NN_CONV_DIRECT_NEVER,		/* im2col + sgemm everywhere */
	NN_CONV_DIRECT_ALWAYS		/* wherever it fits (tests) */
};

/* the choice above; a variable so tests and nn_bench can compare the paths */
extern int	nn_conv_direct_mode;

enum
{
	NN_CONV_DIRECT_GENERIC = 1,
	NN_CONV_DIRECT_AVX2,
	NN_CONV_DIRECT_AVX512
};

/* the widest instruction set the kernels may use (tests lower it); sizes follow it */
extern int	nn_conv_direct_level;

/* the instruction set the vector kernels run here: nn_conv_direct_level capped by the CPU */
int			nn_vector_level(void);

/* true when the direct kernels compute L (stride 1, one group, P < K) */
int			nn_conv_direct_fits(const nn_layer *L);
/* "avx512", "avx2" or "generic": the kernels this CPU runs */
const char *nn_conv_direct_isa(void);
/* scratch floats of each pass, independent of the batch size */
size_t		nn_conv_direct_forward_floats(const nn_layer *L);
size_t		nn_conv_direct_backward_floats(const nn_layer *L);

/* out (OC,B,OH,OW) = conv(inp (C,B,H,W)) + bias */
void		nn_conv_direct_forward(float *out, const float *inp, const float *weight,
								   const float *bias, const nn_layer *L, int B, float *scratch);
/* dweight += , dbias += , and dinp += (when not NULL) the gradients */
void		nn_conv_direct_backward(float *dinp, float *dweight, float *dbias, const float *dout,
									const float *inp, const float *weight, const nn_layer *L,
									int B, float *scratch);

#endif							/* NN_CONV_DIRECT_H */
