/*
 * idx.c: a streaming reader of IDX files (the MNIST format), gzip or raw.
 *
 * zlib's gzFile reads both transparently, so one code path serves
 * "train-images-idx3-ubyte.gz" and its gunzipped twin. The reader never holds
 * more than one row: nn_idx_next() reads row_bytes pixels from the images file
 * and one byte from the labels file, so a 60,000-row set costs nothing but
 * the two zlib buffers.
 *
 * The format: a big-endian magic number whose third byte is the element type
 * (0x08 = unsigned byte) and whose fourth is the number of dimensions, then
 * one big-endian u32 per dimension, then the data. Images are 0x00000803
 * (n, h, w; one channel) or 0x00000804 (n, h, w, c; HWC interleaved); labels
 * are 0x00000801 (n).
 *
 * Everything that can be wrong with such a file is reported as an nn_status
 * whose message names the file: missing or unreadable (with the errno text),
 * empty, a header cut short, a wrong magic number, dimensions out of range,
 * images and labels with different row counts, data that ends before the
 * header's row count. Header parsing works on a memory buffer, so a fuzzer
 * can drive it without files.
 *
 * The reader works on descriptors (nn_idx_open_fds, through gzdopen), so a
 * caller can open the files its own way: the PostgreSQL layer opens them
 * through fd.c and refuses anything but regular files first. nn_idx_open()
 * is the plain open() for the standalone tools, which may read pipes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "idx.h"

#define IDX_MAGIC_LABELS	0x00000801
#define IDX_MAGIC_IMAGES3	0x00000803
#define IDX_MAGIC_IMAGES4	0x00000804
#define IDX_MAX_HEADER		20	/* magic + 4 dimensions */
#define IDX_MAX_ROW_BYTES	(1 << 24)
#define IDX_GZ_BUFFER		(128 * 1024)

/* big-endian u32 at p */
static uint32_t
read_be32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) |
		((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

/* what kind of file a caller expects, for messages */
static const char *
kind_name(int labels)
{
	return labels ? "labels" : "images";
}

/* Number of header bytes announced by the magic number in buf (4 when unknown). */
static size_t
header_bytes(const uint8_t *buf, int labels)
{
	uint32_t	magic = read_be32(buf);

	if (labels && magic == IDX_MAGIC_LABELS)
		return 8;
	if (!labels && magic == IDX_MAGIC_IMAGES3)
		return 16;
	if (!labels && magic == IDX_MAGIC_IMAGES4)
		return 20;
	return 4;
}

/* Parse an IDX header from buf; fills n and the row shape; returns header bytes or -1. */
int
nn_idx_parse_header(const uint8_t *buf, size_t len, int labels,
					int64_t *n, int32_t *h, int32_t *w, int32_t *c,
					const char *path, nn_status *st)
{
	uint32_t	magic;
	uint32_t	dims[3] = {1, 1, 1};
	size_t		need;
	int			ndims;
	int64_t		row;

	if (path == NULL)
		path = "(buffer)";
	if (len == 0)
	{
		nn_fail(st, NN_ERR_DATA, "IDX %s file \"%s\" is empty", kind_name(labels), path);
		return -1;
	}
	if (len < 4)
	{
		nn_fail(st, NN_ERR_DATA, "IDX %s file \"%s\" is truncated: header has %zu bytes, expected at least 4",
				kind_name(labels), path, len);
		return -1;
	}
	magic = read_be32(buf);
	need = header_bytes(buf, labels);
	if (need == 4)
	{
		if (labels)
			nn_fail(st, NN_ERR_DATA, "\"%s\" is not an IDX labels file: magic number 0x%08x, expected 0x%08x",
					path, (unsigned) magic, (unsigned) IDX_MAGIC_LABELS);
		else
			nn_fail(st, NN_ERR_DATA, "\"%s\" is not an IDX images file: magic number 0x%08x, expected 0x%08x or 0x%08x",
					path, (unsigned) magic, (unsigned) IDX_MAGIC_IMAGES3,
					(unsigned) IDX_MAGIC_IMAGES4);
		return -1;
	}
	if (len < need)
	{
		nn_fail(st, NN_ERR_DATA, "IDX %s file \"%s\" is truncated: header has %zu bytes, expected %zu",
				kind_name(labels), path, len, need);
		return -1;
	}
	ndims = (int) (need / 4) - 2;	/* dimensions after n */
	for (int i = 0; i < ndims; i++)
		dims[i] = read_be32(buf + 8 + 4 * i);
	for (int i = 0; i < ndims; i++)
	{
		if (dims[i] < 1 || dims[i] > NN_MAX_DIM)
		{
			nn_fail(st, NN_ERR_DATA, "IDX images file \"%s\" has unexpected dimensions %ux%ux%u: each must be between 1 and %d",
					path, (unsigned) dims[0], (unsigned) dims[1], (unsigned) dims[2], NN_MAX_DIM);
			return -1;
		}
	}
	row = (int64_t) dims[0] * dims[1] * dims[2];
	if (row > IDX_MAX_ROW_BYTES)
	{
		nn_fail(st, NN_ERR_LIMIT, "IDX images file \"%s\" has unexpected dimensions %ux%ux%u: more than %d bytes per image",
				path, (unsigned) dims[0], (unsigned) dims[1], (unsigned) dims[2], IDX_MAX_ROW_BYTES);
		return -1;
	}
	*n = (int64_t) read_be32(buf + 4);
	*h = (int32_t) dims[0];
	*w = (int32_t) dims[1];
	*c = (int32_t) dims[2];
	return (int) need;
}

/* Describe the last gzread/gzopen failure on f into st. */
static int
gz_failure(gzFile f, const char *what, const char *path, nn_status *st)
{
	int			zerr = Z_OK;
	const char *msg = f ? gzerror(f, &zerr) : NULL;

	if (zerr == Z_ERRNO || msg == NULL || msg[0] == '\0')
		return nn_fail(st, NN_ERR_IO, "could not read IDX %s file \"%s\": %s",
					   what, path, errno ? strerror(errno) : "unknown error");
	return nn_fail(st, NN_ERR_DATA, "could not read IDX %s file \"%s\": %s", what, path, msg);
}

/*
 * Read up to len bytes; returns the count read (short only at end of file)
 * or -1 with st set.
 */
static int64_t
gz_read_full(gzFile f, void *buf, size_t len, const char *what, const char *path,
			 nn_status *st)
{
	size_t		got = 0;

	while (got < len)
	{
		int			r;

		errno = 0;
		r = gzread(f, (uint8_t *) buf + got, (unsigned) (len - got));
		if (r < 0)
		{
			gz_failure(f, what, path, st);
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t) r;
	}
	return (int64_t) got;
}

/*
 * Read and check the header of one IDX file open on *fd. The descriptor
 * passes to the gzFile in *out (then *fd becomes -1, and gzclose closes it);
 * if gzdopen fails, *fd stays the caller's.
 */
static int
open_one(gzFile *out, int *fd, const char *path, int labels, int64_t *n, int32_t *h,
		 int32_t *w, int32_t *c, nn_status *st)
{
	uint8_t		hdr[IDX_MAX_HEADER];
	int64_t		got;
	size_t		need;
	gzFile		f;

	f = gzdopen(*fd, "rb");
	if (f == NULL)
		return nn_fail(st, NN_ERR_NOMEM, "could not open IDX %s file \"%s\": out of memory",
					   kind_name(labels), path);
	*out = f;
	*fd = -1;
	gzbuffer(f, IDX_GZ_BUFFER);

	/* the magic number first: it says how long the header is */
	got = gz_read_full(f, hdr, 4, kind_name(labels), path, st);
	if (got < 0)
		return st->code;
	need = got == 4 ? header_bytes(hdr, labels) : 4;
	if (got == 4 && need > 4)
	{
		int64_t		more = gz_read_full(f, hdr + 4, need - 4, kind_name(labels), path, st);

		if (more < 0)
			return st->code;
		got += more;
	}
	if (nn_idx_parse_header(hdr, (size_t) got, labels, n, h, w, c, path, st) < 0)
		return st->code;
	return NN_OK;
}

/* Check the two paths and copy them into x for messages. */
static int
set_paths(nn_idx *x, const char *images_path, const char *labels_path, nn_status *st)
{
	if (images_path == NULL || labels_path == NULL)
		return nn_fail(st, NN_ERR_INVALID, "IDX file path is missing");
	if (strlen(images_path) >= sizeof(x->images_path))
		return nn_fail(st, NN_ERR_INVALID, "IDX images file path is longer than %zu bytes: \"%.64s...\"",
					   sizeof(x->images_path) - 1, images_path);
	if (strlen(labels_path) >= sizeof(x->labels_path))
		return nn_fail(st, NN_ERR_INVALID, "IDX labels file path is longer than %zu bytes: \"%.64s...\"",
					   sizeof(x->labels_path) - 1, labels_path);
	strcpy(x->images_path, images_path);
	strcpy(x->labels_path, labels_path);
	return NN_OK;
}

/* Take over fd as x's images file and read its header; on failure fd is closed. */
static int
attach_images(nn_idx *x, int fd, nn_status *st)
{
	gzFile		f = NULL;
	int			rc = open_one(&f, &fd, x->images_path, 0, &x->n, &x->h, &x->w, &x->c, st);

	x->images = f;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Take over fd as x's labels file, read its header and match the row counts; on failure fd is closed. */
static int
attach_labels(nn_idx *x, int fd, nn_status *st)
{
	gzFile		f = NULL;
	int64_t		nlabels;
	int32_t		lh,
				lw,
				lc;
	int			rc = open_one(&f, &fd, x->labels_path, 1, &nlabels, &lh, &lw, &lc, st);

	x->labels = f;
	if (fd >= 0)
		close(fd);
	if (rc != NN_OK)
		return rc;
	if (nlabels != x->n)
		return nn_fail(st, NN_ERR_DATA, "IDX images file \"%s\" has %lld rows but labels file \"%s\" has %lld",
					   x->images_path, (long long) x->n, x->labels_path, (long long) nlabels);
	x->row_bytes = x->h * x->w * x->c;
	x->next = 0;
	return NN_OK;
}

/* Leave x closed and empty after a failed open; returns st's code. */
static int
open_failed(nn_idx *x, nn_status *st)
{
	nn_idx_close(x);
	x->n = 0;
	return st->code;
}

/* Open an images and a labels descriptor, taken over, and check that they belong together. */
int
nn_idx_open_fds(nn_idx *x, int images_fd, int labels_fd, const char *images_path,
				const char *labels_path, nn_status *st)
{
	memset(x, 0, sizeof(*x));
	if (images_fd < 0 || labels_fd < 0)
		nn_fail(st, NN_ERR_INVALID, "IDX file descriptor is missing");
	else if (set_paths(x, images_path, labels_path, st) == NN_OK)
	{
		/* from here each attach_* closes its descriptor when it fails */
		if (attach_images(x, images_fd, st) != NN_OK)
		{
			close(labels_fd);
			return open_failed(x, st);
		}
		if (attach_labels(x, labels_fd, st) != NN_OK)
			return open_failed(x, st);
		return NN_OK;
	}
	/* nothing taken over yet: close what we were given */
	if (images_fd >= 0)
		close(images_fd);
	if (labels_fd >= 0)
		close(labels_fd);
	return open_failed(x, st);
}

/* open(2) one IDX file for reading; returns the descriptor or -1 with st set. */
static int
open_path(const char *path, int labels, nn_status *st)
{
	int			fd;

	errno = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		nn_fail(st, NN_ERR_IO, "could not open IDX %s file \"%s\": %s",
				kind_name(labels), path, strerror(errno));
	return fd;
}

/*
 * Open an images file and a labels file by path and check that they belong
 * together; the images file's header is checked before the labels file is
 * opened.
 */
int
nn_idx_open(nn_idx *x, const char *images_path, const char *labels_path, nn_status *st)
{
	int			fd;

	memset(x, 0, sizeof(*x));
	if (set_paths(x, images_path, labels_path, st) != NN_OK)
		return open_failed(x, st);
	if ((fd = open_path(images_path, 0, st)) < 0 || attach_images(x, fd, st) != NN_OK)
		return open_failed(x, st);
	if ((fd = open_path(labels_path, 1, st)) < 0 || attach_labels(x, fd, st) != NN_OK)
		return open_failed(x, st);
	return NN_OK;
}

/* Read the next row into pixels (row_bytes) and *label: 1 row, 0 at the end, -1 on error. */
int
nn_idx_next(nn_idx *x, uint8_t *pixels, int32_t *label, nn_status *st)
{
	int64_t		got;
	uint8_t		lab;

	if (x->images == NULL || x->labels == NULL)
	{
		nn_fail(st, NN_ERR_INVALID, "IDX reader is not open");
		return -1;
	}
	if (x->next >= x->n)
		return 0;

	got = gz_read_full((gzFile) x->images, pixels, (size_t) x->row_bytes, "images",
					   x->images_path, st);
	if (got < 0)
		return -1;
	if (got < x->row_bytes)
	{
		nn_fail(st, NN_ERR_DATA, "IDX images file \"%s\" is truncated: expected %lld rows of %d bytes, got %lld complete rows",
				x->images_path, (long long) x->n, (int) x->row_bytes, (long long) x->next);
		return -1;
	}
	got = gz_read_full((gzFile) x->labels, &lab, 1, "labels", x->labels_path, st);
	if (got < 0)
		return -1;
	if (got < 1)
	{
		nn_fail(st, NN_ERR_DATA, "IDX labels file \"%s\" is truncated: expected %lld labels of 1 byte, got %lld",
				x->labels_path, (long long) x->n, (long long) x->next);
		return -1;
	}
	*label = (int32_t) lab;
	x->next++;
	return 1;
}

/* Close both files; safe to call twice and after a failed open. */
void
nn_idx_close(nn_idx *x)
{
	if (x->images)
		gzclose((gzFile) x->images);
	if (x->labels)
		gzclose((gzFile) x->labels);
	x->images = NULL;
	x->labels = NULL;
}
