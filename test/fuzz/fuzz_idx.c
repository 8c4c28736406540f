/*
 * fuzz_idx.c: libFuzzer harness of the IDX reader.
 *
 * Input framing: u16 little-endian length k of the images file, a flags
 * byte, then the images file (k bytes, clamped to what is there) and the
 * labels file (the rest). Flag bit 0 gzips the images file as it is
 * written, bit 1 the labels file; without them the bytes are the files as
 * they lie on disk (so a fuzzed gzip stream reaches zlib too).
 *
 * Each input drives nn_idx_parse_header() on the whole buffer and on both
 * files as images and as labels, then writes the pair to two temporary
 * files and streams them through nn_idx_open()/nn_idx_next() to the end.
 */
#include <unistd.h>
#include <zlib.h>

#include "fuzz.h"
#include "idx.h"

static char images_path[256];
static char labels_path[256];

/* Remove the temporary files at exit. */
static void
remove_files(void)
{
	unlink(images_path);
	unlink(labels_path);
}

/* Pick per-process file names once, in /dev/shm when it is there. */
static void
init_paths(void)
{
	const char *dir = getenv("FUZZ_TMPDIR");

	if (images_path[0] != '\0')
		return;
	if (dir == NULL)
		dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(images_path, sizeof(images_path), "%s/mlcnn_fuzz_idx_%d_images", dir, (int) getpid());
	snprintf(labels_path, sizeof(labels_path), "%s/mlcnn_fuzz_idx_%d_labels", dir, (int) getpid());
	atexit(remove_files);
}

/* Write len bytes to path, raw or through gzip. */
static void
write_file(const char *path, const uint8_t *data, size_t len, int gz)
{
	if (gz)
	{
		gzFile		f = gzopen(path, "wb1");

		if (f == NULL || (len > 0 && gzwrite(f, data, (unsigned) len) != (int) len) ||
			gzclose(f) != Z_OK)
			abort();
	}
	else
	{
		FILE	   *f = fopen(path, "wb");

		if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
			abort();
	}
}

/* Parse a header from an exact-size copy of buf and check a success. */
static void
check_header(const uint8_t *buf, size_t len, int labels)
{
	uint8_t    *copy = malloc(len ? len : 1);
	int64_t		n = -1;
	int32_t		h = -1,
				w = -1,
				c = -1;
	nn_status	st;
	int			rc;

	if (copy == NULL)
		abort();
	memcpy(copy, buf, len);
	memset(&st, 0, sizeof(st));
	rc = nn_idx_parse_header(copy, len, labels, &n, &h, &w, &c, NULL, &st);
	if (rc < 0)
	{
		FUZZ_CHECK(rc == -1, "returned %d", rc);
		FUZZ_CHECK(st.code != NN_OK && st.msg[0] != '\0' && memchr(st.msg, '\0', NN_MSG_LEN) != NULL,
				   "failure without a status");
	}
	else
	{
		FUZZ_CHECK((size_t) rc <= len && rc >= 8 && rc <= 20, "header of %d bytes in %zu", rc, len);
		FUZZ_CHECK(n >= 0 && h >= 1 && w >= 1 && c >= 1 && h <= NN_MAX_DIM && w <= NN_MAX_DIM &&
				   c <= NN_MAX_DIM, "dimensions %lld x %dx%dx%d", (long long) n, h, w, c);
	}
	free(copy);
}

/* libFuzzer entry point. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		k;
	int			flags;
	const uint8_t *img,
			   *lab;
	size_t		nimg,
				nlab;
	nn_idx		x;
	nn_status	st;

	check_header(data, size, 0);
	check_header(data, size, 1);
	if (size < 3)
		return 0;
	k = (size_t) data[0] | (size_t) data[1] << 8;
	flags = data[2];
	img = data + 3;
	nimg = k < size - 3 ? k : size - 3;
	lab = img + nimg;
	nlab = size - 3 - nimg;
	check_header(img, nimg, 0);
	check_header(lab, nlab, 1);

	init_paths();
	write_file(images_path, img, nimg, flags & 1);
	write_file(labels_path, lab, nlab, flags & 2);
	memset(&st, 0, sizeof(st));
	if (nn_idx_open(&x, images_path, labels_path, &st) != NN_OK)
	{
		FUZZ_CHECK(st.code != NN_OK && st.msg[0] != '\0', "open failed without a status");
		nn_idx_close(&x);
		return 0;
	}
	FUZZ_CHECK(x.row_bytes == x.h * x.w * x.c && x.row_bytes > 0, "row of %d bytes for %dx%dx%d",
			   x.row_bytes, x.h, x.w, x.c);
	{
		uint8_t    *pixels = malloc((size_t) x.row_bytes);
		int32_t		label;
		int			r;
		int64_t		rows = 0;

		if (pixels == NULL)
			abort();
		while ((r = nn_idx_next(&x, pixels, &label, &st)) == 1)
		{
			FUZZ_CHECK(label >= 0 && label <= 255, "label %d", label);
			rows++;
		}
		FUZZ_CHECK(r == 0 || (r == -1 && st.code != NN_OK && st.msg[0] != '\0'),
				   "nn_idx_next returned %d", r);
		FUZZ_CHECK(r == -1 || rows == x.n, "%lld rows read of %lld", (long long) rows, (long long) x.n);
		free(pixels);
	}
	nn_idx_close(&x);
	nn_idx_close(&x);
	return 0;
}
