/*
 * idxtool.c: small command-line helper around mlcnn's IDX reader.
 *
 *   idxtool copy IMAGES LABELS
 *       Writes the rows as PostgreSQL COPY text (id, label, pixels as bytea
 *       hex) to stdout: the client-side way to load IDX files for roles that
 *       may not read server files, e.g.
 *       \copy t(id, label, pixels) FROM PROGRAM 'data/idxtool copy a.gz b.gz'
 *
 *   idxtool synth DIR N_TRAIN N_TEST SEED
 *       Writes a deterministic synthetic 28x28x1, 10-class data set in the
 *       MNIST file layout ({train,t10k}-{images-idx3,labels-idx1}-ubyte.gz).
 *       Each class is a simple shape (bars, diagonals, block, crosses, box,
 *       ring) at a jittered position and size, with seeded noise.
 *
 *   idxtool bad DIR
 *       Writes the small good and malformed IDX files the SQL tests use.
 *
 * A tool, not the core: it prints errors to stderr and exits non-zero.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "idx.h"
#include "nn.h"

#define SYNTH_SIZE 28
#define SYNTH_CLASSES 10

/* Print a message to stderr and exit 1. */
static void
die(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "idxtool: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

/* store v big-endian at p */
static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

/* ------------------------------------------------------------------ copy */

/* Stream an IDX pair to stdout as COPY text rows. */
static int
cmd_copy(const char *images, const char *labels)
{
	static const char hex[] = "0123456789abcdef";
	nn_idx		x;
	nn_status	st = {0};
	uint8_t    *row;
	char	   *line;
	int32_t		label;
	int			r;

	if (nn_idx_open(&x, images, labels, &st) != NN_OK)
		die("%s", st.msg);
	row = malloc((size_t) x.row_bytes);
	line = malloc((size_t) x.row_bytes * 2 + 64);
	if (row == NULL || line == NULL)
		die("out of memory");
	while ((r = nn_idx_next(&x, row, &label, &st)) == 1)
	{
		int			len = snprintf(line, 64, "%lld\t%d\t\\\\x", (long long) (x.next - 1), (int) label);

		for (int j = 0; j < x.row_bytes; j++)
		{
			line[len++] = hex[row[j] >> 4];
			line[len++] = hex[row[j] & 15];
		}
		line[len++] = '\n';
		if (fwrite(line, 1, (size_t) len, stdout) != (size_t) len)
			die("could not write to stdout: %s", strerror(errno));
	}
	nn_idx_close(&x);
	free(row);
	free(line);
	if (r < 0)
		die("%s", st.msg);
	if (fflush(stdout) != 0)
		die("could not write to stdout: %s", strerror(errno));
	return 0;
}

/* ----------------------------------------------------------------- files */

/* Write an IDX file: header of ndims dims (after magic) and data, gzip or raw. */
static void
write_idx(const char *dir, const char *name, int gz, uint32_t magic,
		  const uint32_t *dims, int ndims, const uint8_t *data, size_t len)
{
	char		path[1024];
	uint8_t		hdr[24];
	size_t		hlen = 4 + 4 * (size_t) ndims;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	put_be32(hdr, magic);
	for (int i = 0; i < ndims; i++)
		put_be32(hdr + 4 + 4 * i, dims[i]);
	if (gz)
	{
		gzFile		f = gzopen(path, "wb6");

		if (f == NULL)
			die("could not create \"%s\": %s", path, strerror(errno));
		if (gzwrite(f, hdr, (unsigned) hlen) != (int) hlen ||
			(len > 0 && gzwrite(f, data, (unsigned) len) != (int) len) ||
			gzclose(f) != Z_OK)
			die("could not write \"%s\"", path);
	}
	else
	{
		FILE	   *f = fopen(path, "wb");

		if (f == NULL)
			die("could not create \"%s\": %s", path, strerror(errno));
		if (fwrite(hdr, 1, hlen, f) != hlen ||
			(len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
			die("could not write \"%s\": %s", path, strerror(errno));
	}
}

/* Write bytes to DIR/name as they are (no IDX header). */
static void
write_raw(const char *dir, const char *name, const uint8_t *data, size_t len)
{
	char		path[1024];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL)
		die("could not create \"%s\": %s", path, strerror(errno));
	if ((len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
		die("could not write \"%s\": %s", path, strerror(errno));
}

/* mkdir -p: create dir and its missing parents */
static void
make_dir(const char *dir)
{
	char		path[1024];

	if (strlen(dir) >= sizeof(path))
		die("directory name too long: \"%s\"", dir);
	strcpy(path, dir);
	for (char *p = path + 1; *p; p++)
	{
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			die("could not create directory \"%s\": %s", path, strerror(errno));
		*p = '/';
	}
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die("could not create directory \"%s\": %s", path, strerror(errno));
}

/* ----------------------------------------------------------------- synth */

/* Distance from point (px,py) to the segment (x0,y0)-(x1,y1). */
static float
seg_dist(float px, float py, float x0, float y0, float x1, float y1)
{
	float		dx = x1 - x0,
				dy = y1 - y0;
	float		l2 = dx * dx + dy * dy;
	float		t = l2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / l2 : 0;

	t = t < 0 ? 0 : (t > 1 ? 1 : t);
	dx = px - (x0 + t * dx);
	dy = py - (y0 + t * dy);
	return sqrtf(dx * dx + dy * dy);
}

/* Paint a thick segment with intensity v into img (max blend). */
static void
paint_seg(float *img, float x0, float y0, float x1, float y1, float thick, float v)
{
	for (int y = 0; y < SYNTH_SIZE; y++)
		for (int x = 0; x < SYNTH_SIZE; x++)
			if (seg_dist((float) x, (float) y, x0, y0, x1, y1) <= thick * 0.5f)
				img[y * SYNTH_SIZE + x] = fmaxf(img[y * SYNTH_SIZE + x], v);
}

/* random float in [lo, hi) */
static float
uni(nn_rng *r, float lo, float hi)
{
	return lo + (hi - lo) * nn_rng_uniform(r);
}

/*
 * Draw one image of class k: a shape centred near the middle, jittered by up
 * to 3 pixels, with random size, stroke and brightness, then Gaussian noise.
 */
static void
synth_image(uint8_t *out, int k, nn_rng *r)
{
	float		img[SYNTH_SIZE * SYNTH_SIZE] = {0};
	float		cx = 13.5f + uni(r, -3, 3),
				cy = 13.5f + uni(r, -3, 3);
	float		s = uni(r, 7, 10);	/* half extent */
	float		t = uni(r, 2.2f, 3.6f);	/* stroke */
	float		v = uni(r, 170, 255);

	switch (k)
	{
		case 0:				/* horizontal bar */
			paint_seg(img, cx - s, cy, cx + s, cy, t, v);
			break;
		case 1:				/* vertical bar */
			paint_seg(img, cx, cy - s, cx, cy + s, t, v);
			break;
		case 2:				/* diagonal \ */
			paint_seg(img, cx - s, cy - s, cx + s, cy + s, t, v);
			break;
		case 3:				/* diagonal / */
			paint_seg(img, cx - s, cy + s, cx + s, cy - s, t, v);
			break;
		case 4:				/* filled block */
			{
				float		b = s * 0.6f;

				for (int y = 0; y < SYNTH_SIZE; y++)
					for (int x = 0; x < SYNTH_SIZE; x++)
						if (fabsf(x - cx) <= b && fabsf(y - cy) <= b)
							img[y * SYNTH_SIZE + x] = v;
			}
			break;
		case 5:				/* plus */
			paint_seg(img, cx - s, cy, cx + s, cy, t, v);
			paint_seg(img, cx, cy - s, cx, cy + s, t, v);
			break;
		case 6:				/* X */
			paint_seg(img, cx - s, cy - s, cx + s, cy + s, t, v);
			paint_seg(img, cx - s, cy + s, cx + s, cy - s, t, v);
			break;
		case 7:				/* hollow box */
			paint_seg(img, cx - s, cy - s, cx + s, cy - s, t, v);
			paint_seg(img, cx + s, cy - s, cx + s, cy + s, t, v);
			paint_seg(img, cx + s, cy + s, cx - s, cy + s, t, v);
			paint_seg(img, cx - s, cy + s, cx - s, cy - s, t, v);
			break;
		case 8:				/* two horizontal bars */
			paint_seg(img, cx - s, cy - s * 0.6f, cx + s, cy - s * 0.6f, t, v);
			paint_seg(img, cx - s, cy + s * 0.6f, cx + s, cy + s * 0.6f, t, v);
			break;
		default:				/* ring */
			for (int y = 0; y < SYNTH_SIZE; y++)
				for (int x = 0; x < SYNTH_SIZE; x++)
				{
					float		d = sqrtf((x - cx) * (x - cx) + (y - cy) * (y - cy));

					if (fabsf(d - s) <= t * 0.5f)
						img[y * SYNTH_SIZE + x] = v;
				}
			break;
	}
	for (int i = 0; i < SYNTH_SIZE * SYNTH_SIZE; i++)
	{
		float		p = img[i] + 18.0f * nn_rng_normal(r);

		out[i] = (uint8_t) (p < 0 ? 0 : (p > 255 ? 255 : lrintf(p)));
	}
}

/* Write one split (images and labels) of n rows drawn from seed. */
static void
synth_split(const char *dir, const char *prefix, long n, uint64_t seed)
{
	size_t		rb = SYNTH_SIZE * SYNTH_SIZE;
	uint8_t    *pix = malloc(rb * (size_t) (n > 0 ? n : 1));
	uint8_t    *lab = malloc((size_t) (n > 0 ? n : 1));
	uint32_t	idims[3] = {(uint32_t) n, SYNTH_SIZE, SYNTH_SIZE};
	uint32_t	ldims[1] = {(uint32_t) n};
	char		name[64];
	nn_rng		r;

	if (pix == NULL || lab == NULL)
		die("out of memory");
	nn_rng_seed(&r, seed);
	for (long i = 0; i < n; i++)
	{
		lab[i] = (uint8_t) nn_rng_below(&r, SYNTH_CLASSES);
		synth_image(pix + rb * i, lab[i], &r);
	}
	snprintf(name, sizeof(name), "%s-images-idx3-ubyte.gz", prefix);
	write_idx(dir, name, 1, 0x803, idims, 3, pix, rb * (size_t) n);
	snprintf(name, sizeof(name), "%s-labels-idx1-ubyte.gz", prefix);
	write_idx(dir, name, 1, 0x801, ldims, 1, lab, (size_t) n);
	free(pix);
	free(lab);
}

/* Parse a non-negative integer argument. */
static long
parse_count(const char *s, const char *what, long max)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > max)
		die("%s must be an integer between 0 and %ld, not \"%s\"", what, max, s);
	return v;
}

/* The synthetic data set: train and test splits from different seeds. */
static int
cmd_synth(const char *dir, const char *ntrain, const char *ntest, const char *seed)
{
	long		n1 = parse_count(ntrain, "N_TRAIN", 10000000);
	long		n2 = parse_count(ntest, "N_TEST", 10000000);
	uint64_t	s = (uint64_t) parse_count(seed, "SEED", 2147483647L);

	make_dir(dir);
	synth_split(dir, "train", n1, s * 2 + 1);
	synth_split(dir, "t10k", n2, s * 2 + 2);
	return 0;
}

/* ------------------------------------------------------------------- bad */

/*
 * The files of the load_idx tests. The good ones have content the tests can
 * check independently: row i of "ok" (3x2 pixels) has pixel j = i*16 + j and
 * label i % 10; row i of "hwc" (2x2x3) has pixel j = i*16 + j, label 9 - i.
 */
static int
cmd_bad(const char *dir)
{
	uint8_t		pix[12 * 16],
				lab[16],
				junk[16] = {0};
	uint32_t	dims[4];

	make_dir(dir);
	for (int i = 0; i < 12; i++)
	{
		for (int j = 0; j < 6; j++)
			pix[i * 6 + j] = (uint8_t) (i * 16 + j);
		lab[i] = (uint8_t) (i % 10);
	}
	dims[0] = 12, dims[1] = 3, dims[2] = 2;
	write_idx(dir, "ok-images-idx3-ubyte", 0, 0x803, dims, 3, pix, 12 * 6);
	write_idx(dir, "ok-images-idx3-ubyte.gz", 1, 0x803, dims, 3, pix, 12 * 6);
	write_idx(dir, "ok-labels-idx1-ubyte", 0, 0x801, dims, 1, lab, 12);
	write_idx(dir, "ok-labels-idx1-ubyte.gz", 1, 0x801, dims, 1, lab, 12);

	/* 4-dim images, HWC: 5 rows of 2x2x3 */
	for (int i = 0; i < 5; i++)
	{
		for (int j = 0; j < 12; j++)
			pix[i * 12 + j] = (uint8_t) (i * 16 + j);
		lab[i] = (uint8_t) (9 - i);
	}
	dims[0] = 5, dims[1] = 2, dims[2] = 2, dims[3] = 3;
	write_idx(dir, "hwc-images-idx4-ubyte.gz", 1, 0x804, dims, 4, pix, 5 * 12);
	write_idx(dir, "hwc-labels-idx1-ubyte.gz", 1, 0x801, dims, 1, lab, 5);

	/* a magic number for int32 data instead of unsigned bytes */
	dims[0] = 12, dims[1] = 3, dims[2] = 2;
	write_idx(dir, "badmagic-images-idx3-ubyte.gz", 1, 0x0c03, dims, 3, junk, 6);
	/* 11 labels for the 12 "ok" images */
	dims[0] = 11;
	write_idx(dir, "count11-labels-idx1-ubyte.gz", 1, 0x801, dims, 1, lab, 11);
	/* header says 12 rows of 6 bytes, data holds 7 and a half */
	for (int i = 0; i < 12; i++)
		for (int j = 0; j < 6; j++)
			pix[i * 6 + j] = (uint8_t) (i * 16 + j);
	dims[0] = 12, dims[1] = 3, dims[2] = 2;
	write_idx(dir, "truncated-images-idx3-ubyte.gz", 1, 0x803, dims, 3, pix, 7 * 6 + 3);
	/* zero height, and a width over the limit */
	dims[0] = 12, dims[1] = 0, dims[2] = 28;
	write_idx(dir, "zeroheight-images-idx3-ubyte.gz", 1, 0x803, dims, 3, junk, 0);
	dims[0] = 12, dims[1] = 28, dims[2] = 5000;
	write_idx(dir, "wide-images-idx3-ubyte.gz", 1, 0x803, dims, 3, junk, 0);
	/* an empty file, and a header cut after 10 bytes */
	write_raw(dir, "empty-images-idx3-ubyte", junk, 0);
	dims[0] = 12, dims[1] = 3, dims[2] = 2;
	{
		uint8_t		hdr[16];

		put_be32(hdr, 0x803);
		for (int i = 0; i < 3; i++)
			put_be32(hdr + 4 + 4 * i, dims[i]);
		write_raw(dir, "shortheader-images-idx3-ubyte", hdr, 10);
	}
	return 0;
}

/* Print usage and exit 2. */
static void
usage(void)
{
	fprintf(stderr,
			"usage: idxtool copy IMAGES LABELS        rows as COPY text (id, label, pixels bytea hex)\n"
			"       idxtool synth DIR N_TRAIN N_TEST SEED   a synthetic 28x28 10-class IDX data set\n"
			"       idxtool bad DIR                     the small good and malformed files of the tests\n");
	exit(2);
}

/* Dispatch on the command word. */
int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "copy") == 0)
		return cmd_copy(argv[2], argv[3]);
	if (argc == 6 && strcmp(argv[1], "synth") == 0)
		return cmd_synth(argv[2], argv[3], argv[4], argv[5]);
	if (argc == 3 && strcmp(argv[1], "bad") == 0)
		return cmd_bad(argv[2]);
	usage();
	return 2;
}
