/*
 * model.h: a trained model in memory, and the one place that reads and
 * writes its byte format (model.c). Gradient blobs (compute_gradients)
 * use the same container with kind = NN_BLOB_GRADIENTS.
 *
 * Format 2 (written), all integers little-endian, floats IEEE-754:
 *   magic "MLCNNMDL" (8 bytes), u16 version, u16 kind, u32 reserved,
 *   u64 total length, then tagged sections (u16 tag, u64 length, payload),
 *   then u32 CRC-32 of all bytes before it. Format 1 (read only) had fixed
 *   fields after the same header. model.c's header comment is the
 *   authoritative layout of both.
 */
#ifndef MLCNN_MODEL_H
#define MLCNN_MODEL_H

#include "nn.h"
#include "options.h"

#define NN_MODEL_VERSION 2		/* the format nn_model_write writes */
#define NN_MODEL_VERSION_MIN 1	/* the oldest nn_model_read reads */
#define NN_MAX_OPTIONS_V1 16384	/* bytes of a format-1 model's options text */
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
	float		val_loss;		/* mean validation loss; NaN without a hold-out (not stored in the history) */
} nn_epoch;

/*
 * The section tags of format 2. A reader that meets a tag it does not know
 * skips the section when NN_SECTION_OPTIONAL is set in the tag and refuses
 * the blob otherwise, so a later addition that older readers may ignore
 * sets the bit, and one they must not ignore leaves it clear.
 */
enum
{
	NN_SECTION_ARCH = 1,		/* i32 h, w, c, classes; u32 spec length, canonical spec */
	NN_SECTION_NORM = 2,		/* i32 mode, f32 mean, f32 std */
	NN_SECTION_OPTIONS = 3,		/* u16 count, then per option: name, type, value (models only) */
	NN_SECTION_COUNTERS = 4,	/* i64 rows trained, rows skipped, gradient rows; f64 seconds */
	NN_SECTION_HISTORY = 5,		/* u32 epochs, then f32 loss, train acc, val acc, seconds each */
	NN_SECTION_PARAMS = 6,		/* u64 count, then that many f32 (PyTorch order and layout) */
	NN_SECTION_BUFFERS = 7,		/* u64 count, then that many f32 (only when net.nbuffers > 0) */
	NN_SECTION_INPUT = 8,		/* i32 element type NN_DTYPE_* (only when not uint8; must not be skipped) */
	NN_SECTION_TUNING = 9,		/* the search that chose the model (tune.h); written with NN_SECTION_OPTIONAL */
	NN_SECTION_ROUNDS = 10		/* the rounds of train_distributed; written with NN_SECTION_OPTIONAL */
};

#define NN_MAX_ROUNDS 10000

/* one round of data-parallel training across shards (train_distributed) */
typedef struct nn_round
{
	int64_t		rows;			/* rows the shards trained on */
	int32_t		shards;			/* shards that returned a model */
	float		val_acc;		/* the shards' last-epoch validation accuracy, weighted by rows; NaN without */
	float		seconds;		/* wall-clock (0 without record_times) */
} nn_round;

typedef struct nn_rounds
{
	int32_t		shards;			/* shards of the relation */
	int32_t		local_epochs;
	int32_t		nrounds;
	nn_round   *round;
} nn_rounds;
#define NN_SECTION_OPTIONAL 0x8000

typedef struct nn_tuning nn_tuning; /* tune.h */

typedef struct nn_model
{
	int32_t		kind;			/* NN_BLOB_* */
	int32_t		format;			/* the format version it was read from (0: not read) */
	nn_net		net;			/* architecture: input, classes, layers, nparams, spec */
	nn_norm		norm;
	nn_options	options;		/* as trained; a format-1 model's are the defaults */
	char	   *options_v1;		/* a format-1 model's options as stored (JSON text, NUL-terminated); else NULL */
	int64_t		rows_trained;
	int64_t		rows_skipped;	/* NULL pixels or labels */
	int64_t		grad_rows;		/* gradients: rows averaged */
	double		train_seconds;	/* 0 when times are not recorded */
	int32_t		nepochs;
	nn_epoch   *history;		/* nepochs entries */
	float	   *params;			/* net.nparams floats */
	float	   *buffers;		/* net.nbuffers floats (running statistics); NULL when 0 */
	nn_tuning  *tuning;			/* the search that chose it (tune_conv2d), or NULL; owned */
	nn_rounds  *rounds;			/* the rounds that trained it (train_distributed), or NULL; owned */
} nn_model;

/* exact size in bytes of the serialised form */
size_t		nn_model_size(const nn_model *m);

/* serialise into buf, which holds nn_model_size(m) bytes */
void		nn_model_write(const nn_model *m, uint8_t *buf);

/*
 * Parse and check a blob of format 1 or 2. On success m->history,
 * m->params, m->buffers and m->options_v1 are allocated from a (free with
 * nn_model_free). Never reads past len; every field is validated, the
 * checksum verified and the net rebuilt from its spec and shapes.
 */
int			nn_model_read(nn_model *m, const uint8_t *buf, size_t len,
						  const nn_allocator *a, nn_status *st);

void		nn_model_free(nn_model *m, const nn_allocator *a);

/* CRC-32 (IEEE) */
uint32_t	nn_crc32(const uint8_t *buf, size_t len);

#endif							/* MLCNN_MODEL_H */
