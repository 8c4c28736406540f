/*
 * test_idx.c: the IDX reader on files written here (gzip and raw) whose
 * content is known by construction, and on every kind of broken file.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "idx.h"
#include "t.h"

/* a temporary file name under /tmp, created empty */
static void
tmp_path(char *buf, size_t len, const char *tag)
{
	int			fd;

	snprintf(buf, len, "/tmp/mlcnn_test_idx_%s_XXXXXX", tag);
	fd = mkstemp(buf);
	if (fd >= 0)
		close(fd);
}

/* write len bytes to path, gzip-compressed or raw */
static int
write_file(const char *path, const uint8_t *data, size_t len, int gz)
{
	if (gz)
	{
		gzFile		f = gzopen(path, "wb");

		if (f == NULL)
			return 0;
		if (len > 0 && gzwrite(f, data, (unsigned) len) != (int) len)
		{
			gzclose(f);
			return 0;
		}
		return gzclose(f) == Z_OK;
	}
	else
	{
		FILE	   *f = fopen(path, "wb");
		size_t		w;

		if (f == NULL)
			return 0;
		w = len > 0 ? fwrite(data, 1, len, f) : 0;
		return (fclose(f) == 0) && w == len;
	}
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

/* pixel value of image i at byte j, by construction */
static uint8_t
pix(int i, int j)
{
	return (uint8_t) (i * 31 + j * 7);
}

/* label of image i, covering the whole u8 range */
static uint8_t
lab(int i)
{
	return (uint8_t) (i * 51 + 3);
}

/*
 * Build an images file image in memory: magic 0x803 when c == 0 (3 dims),
 * else 0x804. Data for `rows` images although the header says n. Returns bytes.
 */
static size_t
build_images(uint8_t *buf, uint32_t n, uint32_t h, uint32_t w, uint32_t c, int rows)
{
	size_t		off;
	int			rb = (int) (h * w * (c ? c : 1));

	put_be32(buf, c ? 0x804 : 0x803);
	put_be32(buf + 4, n);
	put_be32(buf + 8, h);
	put_be32(buf + 12, w);
	off = 16;
	if (c)
	{
		put_be32(buf + 16, c);
		off = 20;
	}
	for (int i = 0; i < rows; i++)
		for (int j = 0; j < rb; j++)
			buf[off++] = pix(i, j);
	return off;
}

/* labels file image: header says n, data for rows labels */
static size_t
build_labels(uint8_t *buf, uint32_t n, int rows)
{
	put_be32(buf, 0x801);
	put_be32(buf + 4, n);
	for (int i = 0; i < rows; i++)
		buf[8 + i] = lab(i);
	return 8 + (size_t) rows;
}

/* Write a good pair (n rows of h x w x c) and read it back completely. */
static void
roundtrip(int gz, uint32_t h, uint32_t w, uint32_t c, int n)
{
	static uint8_t ibuf[1 << 16],
				lbuf[1 << 10];
	char		ip[64],
				lp[64];
	nn_idx		x;
	nn_status	st = {0};
	uint8_t		row[4096];
	int32_t		label = -1;
	int			rb = (int) (h * w * (c ? c : 1));
	int			rows = 0,
				pixels_ok = 1,
				labels_ok = 1,
				r;

	tmp_path(ip, sizeof(ip), "img");
	tmp_path(lp, sizeof(lp), "lab");
	T_OK(write_file(ip, ibuf, build_images(ibuf, n, h, w, c, n), gz), "write images file");
	T_OK(write_file(lp, lbuf, build_labels(lbuf, n, n), gz), "write labels file");

	T_OK(nn_idx_open(&x, ip, lp, &st) == NN_OK, "open %s %ux%ux%u: %s",
		 gz ? "gzip" : "raw", h, w, c, st.msg);
	T_OK(x.n == n && x.h == (int) h && x.w == (int) w && x.c == (int) (c ? c : 1),
		 "header gives n=%lld h=%d w=%d c=%d", (long long) x.n, x.h, x.w, x.c);
	T_OK(x.row_bytes == rb, "row_bytes %d, expected %d", x.row_bytes, rb);
	while ((r = nn_idx_next(&x, row, &label, &st)) == 1)
	{
		for (int j = 0; j < rb; j++)
			if (row[j] != pix(rows, j))
				pixels_ok = 0;
		if (label != lab(rows))
			labels_ok = 0;
		rows++;
	}
	T_OK(r == 0, "read ends cleanly (%d: %s)", r, st.msg);
	T_OK(rows == n, "read %d rows, expected %d", rows, n);
	T_OK(pixels_ok, "every pixel as written");
	T_OK(labels_ok, "every label as written (0..255)");
	T_OK(nn_idx_next(&x, row, &label, &st) == 0, "reading past the end keeps returning 0");
	nn_idx_close(&x);
	nn_idx_close(&x);			/* twice is fine */
	unlink(ip);
	unlink(lp);
}

/* a gzip pair of 28x28 images reads back byte for byte */
T_CASE(idx_read_gzip)
{
	roundtrip(1, 28, 28, 0, 7);
}

/* the same, uncompressed */
T_CASE(idx_read_raw)
{
	roundtrip(0, 28, 28, 0, 7);
}

/* 4-dim (HWC) images, and the smallest possible image */
T_CASE(idx_read_hwc)
{
	roundtrip(1, 4, 5, 3, 6);
	roundtrip(0, 1, 1, 1, 1);
}

/* a header with n = 0 is a valid, empty data set */
T_CASE(idx_read_zero_rows)
{
	roundtrip(1, 2, 2, 0, 0);
}

/* Expect nn_idx_open on (images, labels) to fail with code and a message containing both parts. */
static void
expect_open_error(const char *ip, const char *lp, nn_code code, const char *part1,
				  const char *part2, const char *what)
{
	nn_idx		x;
	nn_status	st = {0};
	int			rc = nn_idx_open(&x, ip, lp, &st);

	T_OK(rc == (int) code && st.code == code, "%s: code %d, expected %d", what, rc, (int) code);
	T_OK(strstr(st.msg, part1) != NULL, "%s: message names \"%s\": %s", what, part1, st.msg);
	if (part2)
		T_OK(strstr(st.msg, part2) != NULL, "%s: message says \"%s\": %s", what, part2, st.msg);
	T_OK(x.images == NULL && x.labels == NULL, "%s: nothing left open", what);
	nn_idx_close(&x);
}

/* files that cannot be opened or read: the errno text and the path */
T_CASE(idx_missing_file)
{
	static uint8_t buf[64];
	char		lp[64];

	tmp_path(lp, sizeof(lp), "lab");
	write_file(lp, buf, build_labels(buf, 2, 2), 1);
	expect_open_error("/tmp/mlcnn_test_idx_does_not_exist", lp, NN_ERR_IO,
					  "/tmp/mlcnn_test_idx_does_not_exist", "No such file", "missing images");
	expect_open_error(lp, "/tmp/mlcnn_test_idx_no_labels", NN_ERR_DATA, lp,
					  "not an IDX images file", "labels given as images");
	expect_open_error("/tmp", lp, NN_ERR_IO, "\"/tmp\"", "directory", "a directory");
	unlink(lp);
}

/* Is fd an open descriptor? */
static int
fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* nn_idx_open_fds reads from descriptors it takes over and closes them on every path */
T_CASE(idx_open_fds)
{
	static uint8_t ibuf[1 << 12],
				lbuf[64];
	char		ip[64],
				lp[64];
	nn_idx		x;
	nn_status	st = {0};
	uint8_t		row[64];
	int32_t		label;
	int			ifd,
				lfd,
				rows = 0;

	tmp_path(ip, sizeof(ip), "img");
	tmp_path(lp, sizeof(lp), "lab");
	T_OK(write_file(ip, ibuf, build_images(ibuf, 5, 3, 3, 0, 5), 1), "write images file");
	T_OK(write_file(lp, lbuf, build_labels(lbuf, 5, 5), 0), "write labels file");

	/* a good pair: the rows as written, the descriptors closed with the reader */
	ifd = open(ip, O_RDONLY);
	lfd = open(lp, O_RDONLY);
	T_OK(nn_idx_open_fds(&x, ifd, lfd, ip, lp, &st) == NN_OK, "open from descriptors: %s", st.msg);
	while (nn_idx_next(&x, row, &label, &st) == 1)
		rows += row[0] == pix(rows, 0) && label == lab(rows);
	T_OK(rows == 5, "5 rows as written from descriptors (got %d)", rows);
	nn_idx_close(&x);
	T_OK(!fd_is_open(ifd) && !fd_is_open(lfd), "nn_idx_close closes both descriptors");

	/* a bad labels header: both closed, the message names the path given */
	ifd = open(ip, O_RDONLY);
	lfd = open(ip, O_RDONLY);
	T_OK(nn_idx_open_fds(&x, ifd, lfd, ip, "labels-name", &st) == NN_ERR_DATA &&
		 strstr(st.msg, "\"labels-name\" is not an IDX labels file") != NULL,
		 "a bad labels file fails naming the path given: %s", st.msg);
	T_OK(!fd_is_open(ifd) && !fd_is_open(lfd) && x.images == NULL && x.labels == NULL,
		 "a failed open closes both descriptors");

	/* a bad images header: the labels descriptor, not yet read, is closed too */
	ifd = open(lp, O_RDONLY);
	lfd = open(lp, O_RDONLY);
	T_OK(nn_idx_open_fds(&x, ifd, lfd, "images-name", lp, &st) == NN_ERR_DATA,
		 "a bad images file fails: %s", st.msg);
	T_OK(!fd_is_open(ifd) && !fd_is_open(lfd), "and closes both descriptors");

	/* a missing descriptor or path: what was given is still closed */
	lfd = open(lp, O_RDONLY);
	T_OK(nn_idx_open_fds(&x, -1, lfd, ip, lp, &st) == NN_ERR_INVALID, "a missing descriptor: %s", st.msg);
	T_OK(!fd_is_open(lfd), "the other descriptor is closed");
	ifd = open(ip, O_RDONLY);
	lfd = open(lp, O_RDONLY);
	T_OK(nn_idx_open_fds(&x, ifd, lfd, ip, NULL, &st) == NN_ERR_INVALID, "a missing path: %s", st.msg);
	T_OK(!fd_is_open(ifd) && !fd_is_open(lfd), "both descriptors are closed");
	unlink(ip);
	unlink(lp);
}

/* every malformed header: empty, short, bad magic, counts, dimensions */
T_CASE(idx_bad_files)
{
	static uint8_t ibuf[1 << 14],
				lbuf[256];
	char		ip[64],
				lp[64],
				bp[64];
	size_t		ilen,
				llen;

	tmp_path(ip, sizeof(ip), "img");
	tmp_path(lp, sizeof(lp), "lab");
	tmp_path(bp, sizeof(bp), "bad");
	ilen = build_images(ibuf, 3, 4, 4, 0, 3);
	llen = build_labels(lbuf, 3, 3);
	write_file(ip, ibuf, ilen, 1);
	write_file(lp, lbuf, llen, 1);

	/* empty, gzip and raw */
	write_file(bp, ibuf, 0, 0);
	expect_open_error(bp, lp, NN_ERR_DATA, bp, "is empty", "empty raw images");
	write_file(bp, ibuf, 0, 1);
	expect_open_error(ip, bp, NN_ERR_DATA, bp, "is empty", "empty gzip labels");

	/* header cut short */
	write_file(bp, ibuf, 10, 1);
	expect_open_error(bp, lp, NN_ERR_DATA, bp, "header has 10 bytes, expected 16", "short header");
	write_file(bp, ibuf, 3, 0);
	expect_open_error(bp, lp, NN_ERR_DATA, bp, "expected at least 4", "3-byte file");

	/* bad magic: a labels file as images and images as labels, and garbage */
	expect_open_error(ip, ip, NN_ERR_DATA, ip, "not an IDX labels file", "images as labels");
	write_file(bp, (const uint8_t *) "GIF89a, not an IDX file at all", 30, 0);
	expect_open_error(bp, lp, NN_ERR_DATA, bp, "magic number 0x47494638", "garbage");

	/* counts differ */
	write_file(bp, lbuf, build_labels(lbuf, 2, 2), 1);
	expect_open_error(ip, bp, NN_ERR_DATA, ip, "has 3 rows but labels file", "counts differ");

	/* dimensions */
	write_file(bp, ibuf, build_images(ibuf, 1, 0, 28, 0, 0), 1);
	expect_open_error(bp, lp, NN_ERR_DATA, bp, "unexpected dimensions 0x28x1", "zero height");
	write_file(bp, ibuf, build_images(ibuf, 1, 28, 28, 5000, 0), 1);
	expect_open_error(bp, lp, NN_ERR_DATA, bp, "unexpected dimensions 28x28x5000", "too many channels");
	write_file(bp, ibuf, build_images(ibuf, 1, 4096, 4096, 2, 0), 1);
	expect_open_error(bp, lp, NN_ERR_LIMIT, bp, "more than 16777216 bytes", "too many bytes per image");

	unlink(ip);
	unlink(lp);
	unlink(bp);
}

/* Open a pair that is valid in its headers and read until the error; returns rows read. */
static int
read_until_error(const char *ip, const char *lp, nn_status *st)
{
	nn_idx		x;
	uint8_t		row[4096];
	int32_t		label;
	int			rows = 0,
				r;

	if (nn_idx_open(&x, ip, lp, st) != NN_OK)
		return -100;
	while ((r = nn_idx_next(&x, row, &label, st)) == 1)
		rows++;
	nn_idx_close(&x);
	return r < 0 ? rows : -rows - 1;
}

/* data that ends before the header's row count, raw, gzip and cut gzip */
T_CASE(idx_truncated)
{
	static uint8_t ibuf[1 << 18],
				lbuf[256],
				zbuf[1 << 18];
	char		ip[64],
				lp[64],
				zp[64];
	size_t		ilen;
	nn_status	st = {0};
	int			rows;
	FILE	   *f;
	long		zlen;

	tmp_path(ip, sizeof(ip), "img");
	tmp_path(lp, sizeof(lp), "lab");
	tmp_path(zp, sizeof(zp), "gz");

	/* header says 5 rows of 16 bytes, data for 3 and a half */
	ilen = build_images(ibuf, 5, 4, 4, 0, 4) - 8;
	write_file(ip, ibuf, ilen, 0);
	write_file(lp, lbuf, build_labels(lbuf, 5, 5), 1);
	rows = read_until_error(ip, lp, &st);
	T_OK(rows == 3, "raw: 3 rows before the error, got %d", rows);
	T_OK(st.code == NN_ERR_DATA && strstr(st.msg, ip) != NULL &&
		 strstr(st.msg, "expected 5 rows of 16 bytes, got 3 complete rows") != NULL,
		 "raw truncation message: %s", st.msg);

	/* the same data gzip-compressed */
	write_file(ip, ibuf, ilen, 1);
	rows = read_until_error(ip, lp, &st);
	T_OK(rows == 3 && strstr(st.msg, "expected 5 rows") != NULL,
		 "gzip: 3 rows, then: %s", st.msg);

	/* a gzip stream cut in the middle: complete rows come out, then an error naming the file */
	ilen = build_images(ibuf, 200, 28, 28, 0, 200);
	write_file(zp, ibuf, ilen, 1);
	f = fopen(zp, "rb");
	zlen = f ? (long) fread(zbuf, 1, sizeof(zbuf), f) : 0;
	if (f)
		fclose(f);
	T_OK(zlen > 100 && zlen < (long) sizeof(zbuf), "compressed test file is %ld bytes", zlen);
	write_file(zp, zbuf, (size_t) zlen / 2, 0);
	write_file(lp, lbuf, build_labels(lbuf, 200, 200), 0);
	rows = read_until_error(zp, lp, &st);
	T_OK(rows >= 0 && rows < 200, "cut gzip stream: error after %d rows", rows);
	T_OK(strstr(st.msg, zp) != NULL, "cut gzip message names the file: %s", st.msg);

	/* labels run out first */
	ilen = build_images(ibuf, 4, 2, 2, 0, 4);
	write_file(ip, ibuf, ilen, 1);
	write_file(lp, lbuf, build_labels(lbuf, 4, 2), 1);
	rows = read_until_error(ip, lp, &st);
	T_OK(rows == 2 && strstr(st.msg, lp) != NULL &&
		 strstr(st.msg, "expected 4 labels") != NULL,
		 "labels truncation after %d rows: %s", rows, st.msg);

	unlink(ip);
	unlink(lp);
	unlink(zp);
}

/* header parsing on memory buffers, including every prefix of a header */
T_CASE(idx_parse_header_buffer)
{
	uint8_t		buf[32];
	int64_t		n = -1;
	int32_t		h = -1,
				w = -1,
				c = -1;
	nn_status	st = {0};
	size_t		len;
	int			rc;

	len = build_images(buf, 60000, 28, 28, 0, 0);
	rc = nn_idx_parse_header(buf, len, 0, &n, &h, &w, &c, "b", &st);
	T_OK(rc == 16 && n == 60000 && h == 28 && w == 28 && c == 1,
		 "3-dim header: %d bytes, n=%lld %dx%dx%d", rc, (long long) n, h, w, c);
	len = build_images(buf, 4294967295u, 32, 32, 3, 0);
	rc = nn_idx_parse_header(buf, len, 0, &n, &h, &w, &c, "b", &st);
	T_OK(rc == 20 && n == 4294967295LL && h == 32 && w == 32 && c == 3,
		 "4-dim header, n=2^32-1: %d bytes, n=%lld %dx%dx%d", rc, (long long) n, h, w, c);
	len = build_labels(buf, 10000, 0);
	rc = nn_idx_parse_header(buf, len, 1, &n, &h, &w, &c, "b", &st);
	T_OK(rc == 8 && n == 10000, "labels header: %d bytes, n=%lld", rc, (long long) n);
	/* every prefix of a good header is an error, never a read past len */
	len = build_images(buf, 5, 28, 28, 3, 0);
	for (size_t k = 0; k < len; k++)
	{
		uint8_t    *copy = malloc(k ? k : 1);

		memcpy(copy, buf, k);
		if (nn_idx_parse_header(copy, k, 0, &n, &h, &w, &c, "prefix", &st) != -1)
			T_OK(0, "a %zu-byte prefix parsed", k);
		free(copy);
	}
	T_OK(strstr(st.msg, "\"prefix\"") != NULL, "prefix message names the path: %s", st.msg);
	T_OK(nn_idx_parse_header(buf, len, 1, &n, &h, &w, &c, NULL, &st) == -1 &&
		 st.code == NN_ERR_DATA, "images header as labels is an error: %s", st.msg);
	put_be32(buf, 0x0803);
	buf[2] = 0x0d;				/* float data: not supported */
	T_OK(nn_idx_parse_header(buf, len, 0, &n, &h, &w, &c, "f", &st) == -1 &&
		 strstr(st.msg, "0x00000d03") != NULL, "float IDX refused: %s", st.msg);
}
