/*
 * conv_direct_kern.h: the inner loops of the direct convolution, written
 * once and compiled once per instruction set by conv_direct.c, which defines
 * before each inclusion:
 *
 *   KERN(name)   the name with the instruction set's suffix
 *   KERN_NAME    the instruction set's name, for messages
 *   KERN_ATTR    its gcc target attribute (empty off x86)
 *   VL           floats per vector
 *   QB           vectors of output positions per register block
 *   OB           output channels per register block
 *   DB           rows and planes per block of the weight gradient
 *
 * and gets KERN(kern), the cd_kern entry of these kernels; the macros are
 * undefined at the end. Positions are
 * those of a padded plane (q = y * Wp + x, see conv_direct.c); every loop
 * bound below is a multiple of its block, so there are no tails.
 */

#include "kern_vec.h"

/*
 * o[j][q] = sum over c, ky, kx of wp[c][ky][kx][j] * in[c][q + ky*Wp + kx],
 * for the OB channels j of one block and q < Q: in holds C padded planes of
 * plane floats, wp the block's weights channel-innermost, o OB rows of Q.
 */
KERN_ATTR
static void
KERN(fwd_block) (float *restrict o, const float *restrict in, const float *restrict wp,
				 int C, int K, int Wp, size_t plane, size_t Q)
{
	for (size_t q = 0; q < Q; q += QB * VL)
	{
		KERN(vf)	acc[OB][QB];

#pragma GCC unroll 8
		for (int j = 0; j < OB; j++)
#pragma GCC unroll 8
			for (int i = 0; i < QB; i++)
				acc[j][i] = (KERN(vf)) {0};
		for (int c = 0; c < C; c++)
			for (int ky = 0; ky < K; ky++)
			{
				const float *s = in + (size_t) c * plane + q + (size_t) ky * Wp;
				const float *w = wp + (size_t) (c * K + ky) * K * OB;

				for (int kx = 0; kx < K; kx++, s++, w += OB)
				{
					KERN(vf)	x[QB];

#pragma GCC unroll 8
					for (int i = 0; i < QB; i++)
						x[i] = KERN(load) (s + i * VL);
#pragma GCC unroll 8
					for (int j = 0; j < OB; j++)
					{
						KERN(vf)	wv = KERN_BCAST(w + j);

#pragma GCC unroll 8
						for (int i = 0; i < QB; i++)
							acc[j][i] += wv * x[i];
					}
				}
			}
#pragma GCC unroll 8
		for (int j = 0; j < OB; j++)
#pragma GCC unroll 8
			for (int i = 0; i < QB; i++)
				KERN(store) (o + (size_t) j * Q + q + i * VL, acc[j][i]);
	}
}

/*
 * acc[j][i] += d[j][q] * in[i][q + off] lane by lane over q < Q, for a
 * block of DB output-gradient rows d (rows of Q floats) and DB input planes
 * in (plane floats apart): one tap (off = ky*Wp + kx) of the weight
 * gradient. acc holds DB*DB vectors of VL partial sums, carried from image
 * to image in accv; the caller adds their lanes once per batch.
 */
KERN_ATTR
static void
KERN(dw_block) (float *restrict accv, const float *restrict d, const float *restrict in,
				size_t plane, size_t Q, size_t off)
{
	KERN(vf)	acc[DB][DB];

#pragma GCC unroll 8
	for (int j = 0; j < DB; j++)
#pragma GCC unroll 8
		for (int i = 0; i < DB; i++)
			acc[j][i] = KERN(load) (accv + (size_t) (j * DB + i) * VL);
	for (size_t q = 0; q < Q; q += VL)
	{
		KERN(vf)	dv[DB],
					x[DB];

#pragma GCC unroll 8
		for (int j = 0; j < DB; j++)
			dv[j] = KERN(load) (d + (size_t) j * Q + q);
#pragma GCC unroll 8
		for (int i = 0; i < DB; i++)
			x[i] = KERN(load) (in + (size_t) i * plane + q + off);
#pragma GCC unroll 8
		for (int j = 0; j < DB; j++)
#pragma GCC unroll 8
			for (int i = 0; i < DB; i++)
				acc[j][i] += dv[j] * x[i];
	}
#pragma GCC unroll 8
	for (int j = 0; j < DB; j++)
#pragma GCC unroll 8
		for (int i = 0; i < DB; i++)
			KERN(store) (accv + (size_t) (j * DB + i) * VL, acc[j][i]);
}

static const cd_kern KERN(kern) = {KERN_NAME, VL, QB, OB, DB, KERN(fwd_block), KERN(dw_block)};

/* ready for the next instruction set */
#undef KERN
#undef KERN_NAME
#undef KERN_ATTR
#undef KERN_BCAST
#undef VL
#undef QB
#undef OB
#undef DB
