/*
 * fuzz_image.c: libFuzzer harness of decode_image's core, nn_image_decode(),
 * with Debian's libpng and libjpeg-turbo.
 *
 * The first byte picks the output (height 1..16, width 1..8, 1 or 3
 * channels); the rest is the file. Promises: a status with a message, or
 * an output that does not depend on what the buffer held before (two runs
 * over buffers filled with 0x00 and 0xff must agree, so every byte was
 * written); no source over the pixel limit (1 Mpx here) is allocated, which
 * ASan's allocator under -rss_limit_mb would otherwise report.
 */
#include "fuzz.h"
#include "image.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t		out1[16 * 16 * 3],
				out2[16 * 16 * 3];
	nn_status	st;
	int			h,
				w,
				c,
				rc1,
				rc2;

	if (size < 1)
		return 0;
	h = 1 + (data[0] & 0x0f);
	w = 1 + ((data[0] >> 4) & 0x07);
	c = (data[0] & 0x80) ? 3 : 1;
	memset(out1, 0x00, sizeof(out1));
	memset(out2, 0xff, sizeof(out2));
	rc1 = nn_image_decode(data + 1, size - 1, h, w, c, 1u << 20, out1, NULL, &nn_malloc_allocator, &st);
	if (rc1 != NN_OK)
	{
		fuzz_check_failure(rc1, &st);
		return 0;
	}
	rc2 = nn_image_decode(data + 1, size - 1, h, w, c, 1u << 20, out2, NULL, &nn_malloc_allocator, &st);
	FUZZ_CHECK(rc2 == NN_OK, "a second decode of the same bytes failed: %s", st.msg);
	FUZZ_CHECK(memcmp(out1, out2, (size_t) h * w * c) == 0, "output bytes left unwritten or not deterministic");
	return 0;
}
