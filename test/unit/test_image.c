/*
 * test_image.c: the resize of decode_image and the decoder's refusals
 * without an image library in the loop (the PNG and JPEG files themselves
 * are checked in test/images/decode.py).
 */
#include <string.h>

#include "image.h"
#include "nn.h"
#include "t.h"

/* integer factors give exact block means; the same size copies; enlarging keeps the corners */
T_CASE(test_image_resize)
{
	uint8_t		src[6 * 4],
				dst[3 * 2],
				same[6 * 4],
				up[12 * 8];
	nn_status	st;
	int			exact = 1;

	for (int i = 0; i < 24; i++)
		src[i] = (uint8_t) (i * 11 % 256);
	T_OK(nn_image_resize(src, 6, 4, 1, dst, 3, 2, &nn_malloc_allocator, &st) == NN_OK, "shrink 6x4 to 3x2: %s", st.msg);
	for (int y = 0; y < 3; y++)
		for (int x = 0; x < 2; x++)
		{
			int			s = src[(2 * y) * 4 + 2 * x] + src[(2 * y) * 4 + 2 * x + 1] +
				src[(2 * y + 1) * 4 + 2 * x] + src[(2 * y + 1) * 4 + 2 * x + 1];

			exact &= dst[y * 2 + x] == (uint8_t) ((s + 2) / 4);
		}
	T_OK(exact, "every output pixel is the rounded mean of its 2x2 block");
	T_OK(nn_image_resize(src, 6, 4, 1, same, 6, 4, &nn_malloc_allocator, &st) == NN_OK &&
		 memcmp(src, same, sizeof(src)) == 0, "the same size leaves the pixels unchanged");
	T_OK(nn_image_resize(src, 6, 4, 1, up, 12, 8, &nn_malloc_allocator, &st) == NN_OK &&
		 up[0] == src[0] && up[12 * 8 - 1] == src[23], "enlarging keeps the corner pixels (%d %d)", up[0], up[95]);
}

/* sizes and signatures are checked before any decoding */
T_CASE(test_image_refusals)
{
	uint8_t		out[4];
	static const uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	nn_status	st;

	T_OK(nn_image_decode(junk, 8, 0, 2, 1, 100, out, NULL, &nn_malloc_allocator, &st) == NN_ERR_INVALID,
		 "height 0: %s", st.msg);
	T_OK(nn_image_decode(junk, 8, 2, 2, 2, 100, out, NULL, &nn_malloc_allocator, &st) == NN_ERR_INVALID,
		 "channels 2: %s", st.msg);
	T_OK(nn_image_decode(junk, 8, 2, 2, 1, 100, out, NULL, &nn_malloc_allocator, &st) == NN_ERR_DATA,
		 "no signature: %s", st.msg);
}
