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

int			nn_idx_open(nn_idx *x, const char *images_path, const char *labels_path, nn_status *st);
/* read the next row into pixels (row_bytes) and *label; returns 1 row, 0 at end, -1 error */
int			nn_idx_next(nn_idx *x, uint8_t *pixels, int32_t *label, nn_status *st);
void		nn_idx_close(nn_idx *x);

#endif							/* MLCNN_IDX_H */
