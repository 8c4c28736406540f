/*
 * idx.h: a streaming reader of the IDX format (MNIST, Fashion-MNIST), gzip
 * or raw (zlib reads both). Images files are magic 0x00000803 (u8, 3 dims:
 * n, h, w) or 0x00000804 (u8, 4 dims: n, h, w, c); labels 0x00000801 (u8,
 * 1 dim). All header integers are big-endian. Every error names the file.
 */
#ifndef MLCNN_IDX_H
#define MLCNN_IDX_H

#include "nn.h"

typedef struct nn_idx
{
	void	   *images;			/* gzFile */
	void	   *labels;			/* gzFile */
	char		images_path[512];
	char		labels_path[512];
	int64_t		n;				/* rows in both files */
	int64_t		next;			/* rows read so far */
	int32_t		h,
				w,
				c;
	int32_t		row_bytes;
} nn_idx;

/* header parsing on a buffer, for the fuzzer and the reader: fills dims, returns header bytes or -1 */
int			nn_idx_parse_header(const uint8_t *buf, size_t len, int labels,
								int64_t *n, int32_t *h, int32_t *w, int32_t *c,
								const char *path, nn_status *st);

/* open an images and a labels file by path (plain open(2), blocking: pipes work too) */
int			nn_idx_open(nn_idx *x, const char *images_path, const char *labels_path, nn_status *st);

/*
 * The same on two descriptors open for reading, which the reader takes over:
 * nn_idx_close closes them, and so does a failed open, always. The paths only
 * name the files in messages.
 */
int			nn_idx_open_fds(nn_idx *x, int images_fd, int labels_fd, const char *images_path,
							const char *labels_path, nn_status *st);
/* read the next row into pixels (row_bytes) and *label; returns 1 row, 0 at end, -1 error */
int			nn_idx_next(nn_idx *x, uint8_t *pixels, int32_t *label, nn_status *st);
/* close both files; safe to call twice and after a failed open */
void		nn_idx_close(nn_idx *x);

#endif							/* MLCNN_IDX_H */
