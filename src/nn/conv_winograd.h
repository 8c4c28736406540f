/*
 * conv_winograd.h: 3x3 stride-1 convolutions by Winograd's minimal
 * filtering F(4x4, 3x3), forward and both backward passes; see
 * conv_winograd.c.
 */
#ifndef NN_CONV_WINOGRAD_H
#define NN_CONV_WINOGRAD_H

#include <stddef.h>

#include "nn.h"

/* the narrowest input and output the Winograd path takes in auto mode */
#define NN_CONV_WINOGRAD_MIN_CHANNELS 16

enum
{
	NN_CONV_WINOGRAD_AUTO,		/* where it fits and the channels are many */
	NN_CONV_WINOGRAD_NEVER,		/* the other paths everywhere */
	NN_CONV_WINOGRAD_ALWAYS		/* wherever it fits (tests) */
};

/* the choice above; a variable so tests and nn_bench can compare the paths */
extern int	nn_conv_winograd_mode;

/* true when the Winograd path computes L (3x3, stride 1, one group, padding <= 2) */
int			nn_conv_winograd_fits(const nn_layer *L);
/* floats of the transformed filters (the op's prep) */
size_t		nn_conv_winograd_filter_floats(const nn_layer *L);
/* floats of forward's scratch, for B images */
size_t		nn_conv_winograd_forward_floats(const nn_layer *L, int B);
/* floats of backward's scratch, for B images */
size_t		nn_conv_winograd_backward_floats(const nn_layer *L, int B);

/*
 * out (OC,B,OH,OW) = conv(inp (C,B,H,W)) + bias, with the filters
 * transformed into U (unless have_u: U holds them already); nothing else
 * is kept for backward
 */
void		nn_conv_winograd_forward(float *out, const float *inp, const float *weight,
									 const float *bias, const nn_layer *L, int B, float *U,
									 int have_u, float *scratch);
/*
 * dweight += , dbias += , and dinp += (when not NULL; = when assign) the
 * gradients, from the forward input and U
 */
void		nn_conv_winograd_backward(float *dinp, float *dweight, float *dbias, const float *dout,
									  const float *inp, const nn_layer *L, int B, const float *U,
									  float *scratch, int assign);

#endif							/* NN_CONV_WINOGRAD_H */
