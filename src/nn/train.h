/*
 * train.h: buffered training rows and the training loop.
 *
 * nn_rows holds rows compactly (their values, one byte or one float32
 * each, plus an int32 label) in
 * fixed-size chunks, so that growing never copies. The aggregate appends to
 * it, parallel workers serialise and merge it, and nn_train() sorts it into
 * a canonical order before its seeded shuffle, so that the same rows give
 * the same model whatever order they arrived in.
 */
#ifndef MLCNN_TRAIN_H
#define MLCNN_TRAIN_H

#include "model.h"

#define NN_TRAIN_PARTS 4		/* parts a batch is split into (see nn_train) */
#define NN_ROWS_PER_CHUNK 4096	/* at most; chunks hold about NN_ROWS_CHUNK_BYTES */
#define NN_ROWS_CHUNK_BYTES (4 << 20)
#define NN_MAX_ROW_BYTES 0x3FFFFFFF	/* bytes of one row: what a bytea can hold */

typedef struct nn_rows
{
	int32_t		row_bytes;		/* bytes of one row's values (h*w*c values) */
	int32_t		dtype;			/* NN_DTYPE_* of the values */
	int64_t		n;				/* rows held */
	int64_t		skipped;		/* rows with NULL pixels or label */
	int64_t		nchunks;
	int64_t		chunk_cap;		/* slots in chunks[] */
	uint8_t   **chunks;			/* each nn_rows_per_chunk() * (row_bytes + 4) bytes */
	size_t		bytes;			/* allocated */
} nn_rows;

void		nn_rows_init(nn_rows *r, int32_t row_bytes);
/* rows one chunk holds: NN_ROWS_CHUNK_BYTES worth, 1..NN_ROWS_PER_CHUNK */
int64_t		nn_rows_per_chunk(const nn_rows *r);
int			nn_rows_append(nn_rows *r, const uint8_t *pixels, int32_t label,
						   const nn_allocator *a, nn_status *st);
/* append all rows of src to dst (same row_bytes and dtype); src is unchanged */
int			nn_rows_merge(nn_rows *dst, const nn_rows *src, const nn_allocator *a, nn_status *st);
const uint8_t *nn_rows_pixels(const nn_rows *r, int64_t i);
int32_t		nn_rows_label(const nn_rows *r, int64_t i);
void		nn_rows_free(nn_rows *r, const nn_allocator *a);

/* serialised size and form: u32 row_bytes, u32 dtype, u64 n, u64 skipped, then rows */
size_t		nn_rows_serial_size(const nn_rows *r);
void		nn_rows_serialize(const nn_rows *r, uint8_t *buf);
int			nn_rows_deserialize(nn_rows *r, const uint8_t *buf, size_t len,
								const nn_allocator *a, nn_status *st);

/* the phases of nn_train, in order (the split only with a hold-out) */
typedef enum nn_train_phase
{
	NN_PHASE_SORTING = 0,		/* rows into canonical order */
	NN_PHASE_SPLITTING,			/* the seeded hold-out */
	NN_PHASE_STATISTICS,		/* normalisation statistics, initial weights */
	NN_PHASE_TRAINING			/* the epochs */
} nn_train_phase;

/* Callbacks from the training loop, always on the calling thread and
 * never while helper threads work, so each may longjmp out (PostgreSQL's
 * CHECK_FOR_INTERRUPTS does): all memory the loop holds comes from the
 * allocator, so the caller's memory context reclaims it. Every phase also
 * polls nn_interrupted() and stops with NN_ERR_CANCELLED. */
typedef struct nn_train_hooks
{
	void	   *ctx;
	/* at the start of each phase; may be NULL */
	void		(*on_phase) (void *ctx, nn_train_phase phase);
	/* after every batch; nonzero return cancels with NN_ERR_CANCELLED */
	int			(*on_batch) (void *ctx);
	/* after every epoch (1-based), with its figures and ETA */
	void		(*on_epoch) (void *ctx, int32_t epoch, int32_t epochs,
							 const nn_epoch *e, double images_per_s, double eta_s);
	/*
	 * set OpenBLAS to `threads` threads (0 = the caller's default) and
	 * return how many that is; may be NULL (then 0 means 1)
	 */
	int32_t		(*set_threads) (void *ctx, int32_t threads);
} nn_train_hooks;

/*
 * Train a model on rows with options. If init is given (continue
 * training), its architecture, input and classes must match the options'
 * and its parameters are the start. out receives the trained model
 * (allocated from a). timing, if not NULL, accumulates phase times.
 */
int			nn_train(nn_model *out, nn_rows *rows, const nn_options *opt,
					 const nn_model *init, const nn_train_hooks *hooks,
					 nn_timing *timing, const nn_allocator *a, nn_status *st);

/*
 * The same training in steps, for a search that stops and resumes runs
 * (successive halving): nn_trainer_begin does everything before the first
 * epoch (checks, memory, the canonical order and split, statistics,
 * initial weights; the run's epochs are the options', so the learning-rate
 * schedule is theirs); nn_trainer_run trains on until `epochs` are done;
 * nn_trainer_pause frees the working memory of a batch until the next run
 * (what a paused run keeps: nn_trainer_state_bytes); nn_trainer_end
 * completes out and frees the run; nn_trainer_free abandons it with its
 * model. begin + run(opt->epochs) + end is nn_train, bit for bit. A run
 * keeps pointers to rows, opt, hooks and timing.
 */
typedef struct nn_trainer nn_trainer;
int			nn_trainer_begin(nn_trainer **tr, nn_model *out, const nn_rows *rows, const nn_options *opt,
							 const nn_model *init, const nn_train_hooks *hooks, nn_timing *timing,
							 const nn_allocator *a, nn_status *st);
int			nn_trainer_run(nn_trainer *tr, int32_t epochs);
int32_t		nn_trainer_epochs(const nn_trainer *tr);
void		nn_trainer_pause(nn_trainer *tr);
size_t		nn_trainer_state_bytes(const nn_net *net, const nn_options *opt, int64_t n);
int			nn_trainer_end(nn_trainer *tr);
void		nn_trainer_free(nn_trainer *tr);

/* bytes of working memory nn_train will take beyond n rows (for budgets; saturating) */
size_t		nn_train_work_bytes(const nn_net *net, const nn_options *opt, int64_t n);

/* the input inferred from a pixel length (a square grey or three times a square RGB image), or an error */
int			nn_infer_input(nn_shape *in, int32_t row_bytes, nn_status *st);

#endif							/* MLCNN_TRAIN_H */
