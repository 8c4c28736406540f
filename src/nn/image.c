/*
 * image.c: PNG and JPEG bytes to mlcnn's pixel layout; see image.h.
 *
 * PNG goes through libpng's simplified read API, which reports errors as a
 * return value (its internal longjmp stays inside libpng), always as 8-bit
 * RGBA: palettes, grey, grey+alpha, tRNS, 16-bit (read as sRGB-encoded,
 * PNG_IMAGE_FLAG_16BIT_sRGB) and interlacing all arrive the same way, and
 * alpha is then composited on black here (v * a / 255, rounded, in the
 * file's own encoding). JPEG goes through libjpeg-turbo with an error
 * manager whose longjmp lands in decode_jpeg itself, before any frame of
 * the caller; its warnings (premature end of data, corrupt entropy data)
 * count as errors. EXIF orientation is not applied.
 *
 * The resize is separable and works one output row at a time: the source
 * rows an output row covers are combined into one row of doubles, which
 * the columns then combine with weights computed once, so the scratch is
 * one source row and the weights. Shrinking
 * axes weight each source pixel by the length of it the output pixel
 * covers and divide by the covered area once at the end (exact block means
 * for integer factors); enlarging axes interpolate bilinearly between the
 * two nearest source pixels (centres aligned, as OpenCV's INTER_LINEAR).
 */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "image.h"

/* taps of one output coordinate along one axis */
typedef struct axis_taps
{
	int			first;			/* first source index */
	int			n;				/* how many */
	double		w[2];			/* bilinear: the two weights */
	int			area;			/* weights are coverage lengths (area): w unused */
	double		lo,
				hi;				/* area: the covered source interval */
} axis_taps;

/* the source pixels output index i covers along an axis of sn -> n */
static void
taps_of(axis_taps *t, int i, int sn, int n)
{
	double		scale = (double) sn / n;

	memset(t, 0, sizeof(*t));
	if (sn == n)
	{
		t->first = i;
		t->n = 1;
		t->w[0] = 1;
	}
	else if (sn > n)
	{
		t->area = 1;
		t->lo = i * scale;
		t->hi = (i + 1) * scale;
		t->first = (int) floor(t->lo);
		t->n = (int) ceil(t->hi) - t->first;
		if (t->first + t->n > sn)
			t->n = sn - t->first;
	}
	else
	{
		double		s = (i + 0.5) * scale - 0.5;
		int			s0;

		if (s < 0)
			s = 0;
		s0 = (int) floor(s);
		if (s0 >= sn - 1)
		{
			t->first = sn - 1;
			t->n = 1;
			t->w[0] = 1;
			return;
		}
		t->first = s0;
		t->n = 2;
		t->w[1] = s - s0;
		t->w[0] = 1 - t->w[1];
	}
}

/* weight of tap k of t */
static double
tap_weight(const axis_taps *t, int k)
{
	double		a,
				b;

	if (!t->area)
		return t->w[k];
	a = t->first + k;
	b = a + 1;
	if (a < t->lo)
		a = t->lo;
	if (b > t->hi)
		b = t->hi;
	return b > a ? b - a : 0;
}

/* resize src (sh x sw x c) into dst (h x w x c) */
int
nn_image_resize(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int h, int w,
				const nn_allocator *a, nn_status *st)
{
	double		norm = (sh > h ? (double) sh / h : 1) * (sw > w ? (double) sw / w : 1);
	double	   *row = nn_alloc(a, sizeof(double) * (size_t) sw * c);
	axis_taps  *tx = nn_alloc(a, sizeof(axis_taps) * (size_t) w);
	/* the columns' weights, computed once: x's taps at wx[wx_at[x] ...] (each x covers at most sw/w + 2) */
	double	   *wx = nn_alloc(a, sizeof(double) * ((size_t) sw + 2 * (size_t) w));
	size_t	   *wx_at = nn_alloc(a, sizeof(size_t) * (size_t) w);
	int			rc = NN_OK;

	if (row == NULL || tx == NULL || wx == NULL || wx_at == NULL)
		rc = nn_fail(st, NN_ERR_NOMEM, "out of memory resizing a %dx%d image", sw, sh);
	for (int x = 0, at = 0; rc == NN_OK && x < w; x++)
	{
		taps_of(&tx[x], x, sw, w);
		wx_at[x] = at;
		for (int k = 0; k < tx[x].n; k++)
			wx[at++] = tap_weight(&tx[x], k);
	}
	for (int y = 0; rc == NN_OK && y < h; y++)
	{
		axis_taps	ty;

		if (nn_interrupted())
		{
			rc = nn_fail(st, NN_ERR_CANCELLED, "resizing the image was cancelled");
			break;
		}
		taps_of(&ty, y, sh, h);
		memset(row, 0, sizeof(double) * (size_t) sw * c);
		for (int k = 0; k < ty.n; k++)
		{
			const uint8_t *s = src + (size_t) (ty.first + k) * sw * c;
			double		wy = tap_weight(&ty, k);

			for (size_t i = 0; i < (size_t) sw * c; i++)
				row[i] += wy * s[i];
		}
		for (int x = 0; x < w; x++)
		{
			const double *wk = wx + wx_at[x];
			const double *r = row + (size_t) tx[x].first * c;

			for (int ch = 0; ch < c; ch++)
			{
				double		v = 0;

				for (int k = 0; k < tx[x].n; k++)
					v += wk[k] * r[(size_t) k * c + ch];
				v = floor(v / norm + 0.5);
				dst[((size_t) y * w + x) * c + ch] = (uint8_t) (v < 0 ? 0 : v > 255 ? 255 : v);
			}
		}
	}
	nn_free(a, row);
	nn_free(a, tx);
	nn_free(a, wx);
	nn_free(a, wx_at);
	return rc;
}

/* a PNG file into an RGBA buffer (*rgba, allocated; *sw x *sh) */
static int
decode_png(const uint8_t *buf, size_t len, int c, uint64_t max_pixels, uint8_t **rgba, int *sw, int *sh,
		   nn_image_info *info, const nn_allocator *a, nn_status *st)
{
	png_image	img;
	size_t		bytes;

	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_memory(&img, buf, len))
		return nn_fail(st, NN_ERR_DATA, "corrupt PNG: %s", img.message);
	if (info)
	{
		info->width = img.width;
		info->height = img.height;
	}
	if ((uint64_t) img.width * img.height > max_pixels || img.width > INT32_MAX / 8 || img.height > INT32_MAX / 8)
	{
		png_image_free(&img);
		return nn_fail(st, NN_ERR_LIMIT, "the PNG claims %ux%u pixels, more than mlcnn.max_image_pixels (%llu)",
					   img.width, img.height, (unsigned long long) max_pixels);
	}
	img.format = PNG_FORMAT_RGBA;
	img.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
	bytes = PNG_IMAGE_SIZE(img);
	*rgba = nn_alloc(a, bytes);
	if (*rgba == NULL)
	{
		png_image_free(&img);
		return nn_fail(st, NN_ERR_NOMEM, "out of memory for a %ux%u image", img.width, img.height);
	}
	if (!png_image_finish_read(&img, NULL, *rgba, 0, NULL))
	{
		nn_fail(st, NN_ERR_DATA, "corrupt PNG: %s", img.message);
		png_image_free(&img);
		nn_free(a, *rgba);
		*rgba = NULL;
		return NN_ERR_DATA;
	}
	*sw = (int) img.width;
	*sh = (int) img.height;
	/* alpha on black, then c channels, in place (pixel p's c bytes never pass its 4) */
	for (size_t p = 0; p < (size_t) img.width * img.height; p++)
	{
		const uint8_t *q = *rgba + 4 * p;
		uint8_t    *d = *rgba + (size_t) c * p;
		int			v[3];

		for (int ch = 0; ch < 3; ch++)
			v[ch] = (q[ch] * q[3] + 127) / 255;
		if (c == 1)
			d[0] = (uint8_t) ((299 * v[0] + 587 * v[1] + 114 * v[2] + 500) / 1000);
		else
			for (int ch = 0; ch < 3; ch++)
				d[ch] = (uint8_t) v[ch];
	}
	png_image_free(&img);
	return NN_OK;
}

/* libjpeg's error manager, with the way back and the last message */
typedef struct jpeg_err
{
	struct jpeg_error_mgr mgr;
	jmp_buf		back;
	char		msg[JMSG_LENGTH_MAX];
	int			warned;
} jpeg_err;

/* a fatal error: back to decode_jpeg */
static void
jpeg_fatal(j_common_ptr cinfo)
{
	jpeg_err   *e = (jpeg_err *) cinfo->err;

	(*cinfo->err->format_message) (cinfo, e->msg);
	longjmp(e->back, 1);
}

/* a warning (level < 0) is corrupt data: keep the first message */
static void
jpeg_message(j_common_ptr cinfo, int level)
{
	jpeg_err   *e = (jpeg_err *) cinfo->err;

	if (level < 0 && !e->warned)
	{
		(*cinfo->err->format_message) (cinfo, e->msg);
		e->warned = 1;
	}
}

/* a JPEG file into *pix (allocated; *sw x *sh x comps, comps 1 or 3) */
static int
decode_jpeg(const uint8_t *buf, size_t len, int c, uint64_t max_pixels, uint8_t **pix, int *sw, int *sh,
			nn_image_info *info, const nn_allocator *a, nn_status *st)
{
	struct jpeg_decompress_struct cinfo;
	jpeg_err	err;
	uint8_t    *volatile out = NULL;
	volatile int rc = NN_OK;

	memset(&err, 0, sizeof(err));
	cinfo.err = jpeg_std_error(&err.mgr);
	err.mgr.error_exit = jpeg_fatal;
	err.mgr.emit_message = jpeg_message;
	if (setjmp(err.back))
	{
		jpeg_destroy_decompress(&cinfo);
		if (out)
			nn_free(a, out);
		*pix = NULL;
		return rc != NN_OK ? rc : nn_fail(st, NN_ERR_DATA, "corrupt JPEG: %s", err.msg);
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, buf, len);
	jpeg_read_header(&cinfo, TRUE);
	if (info)
	{
		info->width = cinfo.image_width;
		info->height = cinfo.image_height;
	}
	if ((uint64_t) cinfo.image_width * cinfo.image_height > max_pixels)
	{
		rc = nn_fail(st, NN_ERR_LIMIT, "the JPEG claims %ux%u pixels, more than mlcnn.max_image_pixels (%llu)",
					 cinfo.image_width, cinfo.image_height, (unsigned long long) max_pixels);
		jpeg_destroy_decompress(&cinfo);
		return rc;
	}
	/* grey from the file's own luma; colour as RGB (grey sources replicated) */
	cinfo.out_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
	jpeg_start_decompress(&cinfo);
	out = nn_alloc(a, (size_t) cinfo.output_width * cinfo.output_height * cinfo.output_components);
	if (out == NULL)
	{
		rc = nn_fail(st, NN_ERR_NOMEM, "out of memory for a %ux%u image", cinfo.output_width, cinfo.output_height);
		jpeg_destroy_decompress(&cinfo);
		return rc;
	}
	while (cinfo.output_scanline < cinfo.output_height)
	{
		JSAMPROW	r = out + (size_t) cinfo.output_scanline * cinfo.output_width * cinfo.output_components;

		if (nn_interrupted())
		{
			rc = nn_fail(st, NN_ERR_CANCELLED, "decoding the JPEG was cancelled");
			longjmp(err.back, 1);
		}
		jpeg_read_scanlines(&cinfo, &r, 1);
	}
	jpeg_finish_decompress(&cinfo);
	if (err.warned)
	{
		rc = nn_fail(st, NN_ERR_DATA, "corrupt JPEG: %s", err.msg);
		longjmp(err.back, 1);
	}
	*sw = (int) cinfo.output_width;
	*sh = (int) cinfo.output_height;
	jpeg_destroy_decompress(&cinfo);
	*pix = out;
	return NN_OK;
}

/* the output size: h and w in 1..NN_IMAGE_MAX_SIDE, c 1 or 3 */
int
nn_image_check(int h, int w, int c, nn_status *st)
{
	if (h < 1 || w < 1 || h > NN_IMAGE_MAX_SIDE || w > NN_IMAGE_MAX_SIDE)
		return nn_fail(st, NN_ERR_INVALID, "height and width must be between 1 and %d, not %d and %d",
					   NN_IMAGE_MAX_SIDE, h, w);
	if (c != 1 && c != 3)
		return nn_fail(st, NN_ERR_INVALID, "channels must be 1 (grey) or 3 (RGB), not %d", c);
	return NN_OK;
}

/* PNG or JPEG to h x w x c pixels */
int
nn_image_decode(const uint8_t *buf, size_t len, int h, int w, int c, uint64_t max_pixels,
				uint8_t *out, nn_image_info *info, const nn_allocator *a, nn_status *st)
{
	static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	uint8_t    *src = NULL;
	int			sw = 0,
				sh = 0,
				rc;

	if (nn_image_check(h, w, c, st) != NN_OK)
		return st->code;
	if (len >= 8 && memcmp(buf, png_sig, 8) == 0)
	{
		if (info)
			info->format = NN_IMAGE_PNG;
		rc = decode_png(buf, len, c, max_pixels, &src, &sw, &sh, info, a, st);
	}
	else if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
	{
		if (info)
			info->format = NN_IMAGE_JPEG;
		rc = decode_jpeg(buf, len, c, max_pixels, &src, &sw, &sh, info, a, st);
	}
	else
		return nn_fail(st, NN_ERR_DATA, "not a PNG or JPEG image: the %zu bytes start with neither signature", len);
	if (rc != NN_OK)
		return rc;

	if (sw == w && sh == h)
	{
		memcpy(out, src, (size_t) w * h * c);
		rc = NN_OK;
	}
	else
		rc = nn_image_resize(src, sh, sw, c, out, h, w, a, st);
	nn_free(a, src);
	return rc;
}
