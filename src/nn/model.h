/*
 * model.h: a trained model in memory, and the one place that reads and
 * writes its byte format (model.c). Gradient blobs (compute_gradients)
 * use the same container with kind = NN_BLOB_GRADIENTS.
 *
 * Format, version 1, all integers little-endian, floats IEEE-754 binary32:
 *   magic "MLCNNMDL" (8 bytes), u16 version, u16 kind, u32 total length
 *   (u64 for long ones: see model.c), then sections, then u32 CRC-32 of all
 *   bytes before it. model.c's header comment is the authoritative layout.
 */
#ifndef MLCNN_MODEL_H
#define MLCNN_MODEL_H

#include "nn.h"
#include "options.h"

#define NN_MODEL_VERSION 1
#define NN_MAX_HISTORY NN_MAX_EPOCHS

enum
{
	NN_BLOB_MODEL = 1,
	NN_BLOB_GRADIENTS = 2
};

typedef struct nn_epoch
{
	float		loss;			/* mean training loss */
	float		train_acc;		/* training accuracy over the epoch */
	float		val_acc;		/* validation accuracy; NaN when no hold-out */
	float		seconds;		/* 0 when times are not recorded */
} nn_epoch;

typedef struct nn_model
{
	int32_t		kind;			/* NN_BLOB_* */
	nn_net		net;			/* architecture: input, classes, layers, nparams, spec */
	nn_norm		norm;
	nn_options	options;		/* as trained (canonical) */
	int64_t		rows_trained;
	int64_t		rows_skipped;	/* NULL pixels or labels */
	int64_t		grad_rows;		/* gradients: rows averaged */
	double		train_seconds;	/* 0 when times are not recorded */
	int32_t		nepochs;
	nn_epoch   *history;		/* nepochs entries */
	float	   *params;			/* net.nparams floats */
	float	   *buffers;		/* net.nbuffers floats (running statistics); NULL when 0 */
} nn_model;

/* exact size in bytes of the serialised form */
size_t		nn_model_size(const nn_model *m);

/* serialise into buf, which holds nn_model_size(m) bytes */
void		nn_model_write(const nn_model *m, uint8_t *buf);

/*
 * Parse and check a blob. On success m->history and m->params are
 * allocated from a (free with nn_model_free). Never reads past len; every
 * field is validated, the checksum verified and the net rebuilt from its
 * spec and shapes.
 */
int			nn_model_read(nn_model *m, const uint8_t *buf, size_t len,
						  const nn_allocator *a, nn_status *st);

void		nn_model_free(nn_model *m, const nn_allocator *a);

/* CRC-32 (IEEE) */
uint32_t	nn_crc32(const uint8_t *buf, size_t len);

/*
 * model_info as JSON text into buf; returns length or -1 when buf is too
 * small. size_needed: nn_model_info_size().
 */
size_t		nn_model_info_size(const nn_model *m);
int			nn_model_info_json(const nn_model *m, size_t blob_bytes, char *buf, size_t len);

#endif							/* MLCNN_MODEL_H */
