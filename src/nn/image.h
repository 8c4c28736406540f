/*
 * image.h: PNG and JPEG bytes to mlcnn's pixel layout (decode_image()).
 *
 * The decoders are Debian's libpng (its simplified read API) and
 * libjpeg-turbo; neither's error handling leaves image.c. Output: height x
 * width x channels bytes, row-major, channels interleaved.
 */
#ifndef NN_IMAGE_H
#define NN_IMAGE_H

#include <stdint.h>

#include "nn.h"

#define NN_IMAGE_MAX_SIDE 4096	/* largest output height or width */

/* what a file holds, read from its header alone */
typedef struct nn_image_info
{
	int			format;			/* NN_IMAGE_PNG or NN_IMAGE_JPEG */
	uint32_t	width,
				height;
} nn_image_info;

enum
{
	NN_IMAGE_PNG = 1,
	NN_IMAGE_JPEG = 2
};

/* NN_OK when h x w x c is an output decode can make, else NN_ERR_INVALID saying why */
int			nn_image_check(int h, int w, int c, nn_status *st);

/*
 * Decode buf (len bytes: PNG or JPEG, told apart by their signatures) into
 * out (h*w*c bytes; c 1 or 3), resized: area averaging when shrinking,
 * bilinear when enlarging, unchanged at the same size, per axis. Colour to
 * grey is ITU-R BT.601 luma (for JPEG the file's own luma); grey to colour
 * replicates; alpha is composited on black. A source of more than
 * max_pixels pixels is NN_ERR_LIMIT before anything is allocated for it;
 * truncated or corrupt data NN_ERR_DATA; bad sizes NN_ERR_INVALID. info,
 * when not NULL, receives what the header said.
 */
int			nn_image_decode(const uint8_t *buf, size_t len, int h, int w, int c, uint64_t max_pixels,
							uint8_t *out, nn_image_info *info, const nn_allocator *a, nn_status *st);

/* resize src (sh x sw x c bytes) into dst (h x w x c) as nn_image_decode does */
int			nn_image_resize(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int h, int w,
							const nn_allocator *a, nn_status *st);

#endif							/* NN_IMAGE_H */
