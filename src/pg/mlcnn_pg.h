/*
 * mlcnn_pg.h: what the files of the PostgreSQL layer share.
 */
#ifndef MLCNN_PG_H
#define MLCNN_PG_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"

#include "model.h"
#include "train.h"

/* ------------------------------------------------------------- guc.c */
extern int	mlcnn_threads;
extern int	mlcnn_max_train_memory_kb;
extern int	mlcnn_max_inference_memory_kb;
extern int	mlcnn_model_cache_memory_kb;
extern int	mlcnn_max_image_pixels;

/* load_idx.c: reading files on the server */
void		MlcnnCheckReadServerFiles(const char *fn, const char *what, const char *hint);
int			MlcnnOpenRegular(const char *path, const char *what, const char **kind, bool *is_dir);
extern bool mlcnn_progress;
void		MlcnnGucInit(void);

/* raise an nn_status as an ERROR with a fitting SQLSTATE */
void		MlcnnReportStatus(const nn_status *st) pg_attribute_noreturn();
/* raise the error of a cancelled core call (PostgreSQL's own, via CHECK_FOR_INTERRUPTS) */
void		MlcnnReportCancel(const char *what) pg_attribute_noreturn();

/* ------------------------------------------------------------ limits.c */

/*
 * An nn_allocator over a memory context (huge, no-OOM allocations) that
 * also tracks the bytes it holds and their high-water mark, and, for
 * aggregate states, adds them to the backend's aggregate account.
 */
typedef struct MlcnnAlloc
{
	nn_allocator a;				/* hand &x.a to the core */
	MemoryContext cxt;
	Size		cur;
	Size		peak;
	bool		accounted;		/* counted in MlcnnAggBytes() */
} MlcnnAlloc;

void		MlcnnAllocInit(MlcnnAlloc *m, MemoryContext cxt);
/* the same, counted in the aggregate account until cxt is reset or deleted */
void		MlcnnAllocInitAccounted(MlcnnAlloc *m, MemoryContext cxt);
/* bytes every mlcnn aggregate state of the backend holds */
Size		MlcnnAggBytes(void);
/* error 54000 unless need more bytes fit mlcnn.max_train_memory beside all aggregate states */
void		MlcnnCheckTrainBudget(Size need, const char *detail);
/* the largest batch <= want that fits mlcnn.max_inference_memory beside extra bytes */
int			MlcnnFitBatch(const nn_net *net, int want, bool train, Size extra, const char *what);
/* does mlcnn.max_inference_memory allow bytes of inference buffers? */
bool		MlcnnInferenceFits(Size bytes);
/* AggCheckCallContext that refuses window calls (0A000) and names the aggregate */
int			MlcnnAggContext(FunctionCallInfo fcinfo, MemoryContext *aggcxt, const char *what);
/* point the core's interrupt poll at PostgreSQL's flags */
void		MlcnnInterruptsInit(void);

/* ------------------------------------------------------------ threads.c */

/* rebuild OpenBLAS's thread pool with every signal blocked (from _PG_init) */
void		MlcnnThreadsInit(void);

/*
 * Set the OpenBLAS thread count (0 = the mlcnn.threads setting), capped at
 * the cores for roles that are not superusers; returns the count in force.
 * Call before computing: it also rebuilds a pool that a fork took down.
 */
int			MlcnnSetThreads(int threads);

/* ------------------------------------------------------------ model_cache.c */

/*
 * A decoded model kept across calls: per call site in fn_extra, or in an
 * aggregate's state. The key is the model datum: the TOAST pointer when the
 * model is stored out of line (no detoasting per row), else its raw bytes.
 */
/* the most threads one inference batch is split between */
#define MLCNN_INFER_PARTS 8

typedef struct MlcnnModel
{
	MemoryContext cxt;			/* owns everything below */
	MlcnnAlloc	alloc;
	bool		key_external;
	Size		key_len;
	char	   *key;			/* toast pointer or raw varlena bytes */
	Size		blob_bytes;		/* detoasted size of the model */
	uint32		crc;			/* its stored checksum: with blob_bytes, its identity */
	nn_model	model;
	nn_work		work;			/* inference buffers for `batch` images */
	nn_work		parts[MLCNN_INFER_PARTS - 1];	/* more parts of a batch run side by side */
	int			nparts;			/* 1 + how many of parts are allocated */
	int			batch;			/* images the buffers hold (within the budget) */
	int			want;			/* images asked for */
	uint64		generation;		/* bumped at every decode */
} MlcnnModel;

/* the decoded model for datum d, from *slot or decoded anew into it */
MlcnnModel *MlcnnModelGet(MlcnnModel **slot, MemoryContext parent, Datum d, int batch,
						  bool accounted);
/* the stored checksum and length of an out-of-line uncompressed model, without detoasting it */
bool		MlcnnStoredCrc(struct varlena *raw, uint32 *crc, Size *blob_len);
/* the session cache's invalidation callback and DROP EXTENSION hook */
void		MlcnnModelCacheInit(void);
/* the model cached per call site of fcinfo for argument argno */
MlcnnModel *MlcnnModelForCall(FunctionCallInfo fcinfo, int argno, int batch);
/* decode a model that is not cached, with allocator a */
void		MlcnnModelDecode(nn_model *m, bytea *blob, const nn_allocator *a);
/* a new bytea holding the serialised model */
bytea	   *MlcnnModelToBytea(const nn_model *m);
/* run B images (rows) through the cached model; logits in work.act[nlayers] */
void		MlcnnModelForward(MlcnnModel *mm, const uint8_t *const *rows, int B, nn_timing *t);

/* ------------------------------------------------------------ pixels.c */

/* one row's values: bytea (a byte each) or real[] (a float4 each) */
typedef struct MlcnnPixels
{
	const uint8 *data;
	Size		bytes;
	Size		values;
	int32		dtype;			/* NN_DTYPE_* */
} MlcnnPixels;

/* argument argno as pixels of dtype (real[]: no NULL, NaN or infinite element) */
void		MlcnnGetPixels(FunctionCallInfo fcinfo, int argno, int32 dtype, MlcnnPixels *px);
/* error unless px is of the model's type and fills its input; errors name both lengths */
void		MlcnnCheckPixels(const nn_model *m, const MlcnnPixels *px);
/* "bytea" or "real[]" */
const char *MlcnnDtypeSqlName(int32 dtype);

/* ------------------------------------------------------------ json.c */

/*
 * The one jsonb writer: values go under a key inside an object, or (key
 * NULL) as the next element of an array or as the document itself.
 */
typedef struct MlcnnJson
{
	JsonbParseState *state;
	JsonbValue *result;	/* the closed document */
} MlcnnJson;

void		MlcnnJsonInit(MlcnnJson *j);
void		MlcnnJsonBeginObject(MlcnnJson *j, const char *key);
void		MlcnnJsonEndObject(MlcnnJson *j);
void		MlcnnJsonBeginArray(MlcnnJson *j, const char *key);
void		MlcnnJsonEndArray(MlcnnJson *j);
void		MlcnnJsonInt(MlcnnJson *j, const char *key, int64 value);
/* floats in PostgreSQL's shortest exact form; null when not finite */
void		MlcnnJsonFloat4(MlcnnJson *j, const char *key, float value);
void		MlcnnJsonFloat8(MlcnnJson *j, const char *key, double value);
void		MlcnnJsonText(MlcnnJson *j, const char *key, const char *value);
void		MlcnnJsonBool(MlcnnJson *j, const char *key, bool value);
void		MlcnnJsonNull(MlcnnJson *j, const char *key);
/* the closed document as a Jsonb */
Jsonb	   *MlcnnJsonFinish(MlcnnJson *j);

/* reading: the member key of an object, or NULL */
JsonbValue *MlcnnJsonbMember(Jsonb *jb, const char *key);
/* the number under key into *v (false when absent; 22023 "<who>"key" must be a number") */
bool		MlcnnJsonbNumber(Jsonb *jb, const char *key, const char *who, double *v);
/* the whole number under key in [lo, hi], or dflt when absent (22023 naming who and key) */
int32		MlcnnJsonbInt(Jsonb *jb, const char *key, int32 lo, int32 hi, int32 dflt, const char *who);

/* ------------------------------------------------------------ options.c */

/* point the core's "did you mean" at varstr_levenshtein */
void		MlcnnOptionsInit(void);
/* apply an options jsonb over *o through the core's table; *o unchanged on error */
int			MlcnnOptionsFromJsonb(nn_options *o, Jsonb *jb, nn_status *st);
/* the options as a jsonb object under key */
void		MlcnnJsonOptions(MlcnnJson *j, const char *key, const nn_options *o);
/* option d of o under its name */
void		MlcnnJsonOption(MlcnnJson *j, const nn_option_def *d, const nn_options *o);
/* apply key = jv over *o through the core's table; *o unchanged on error */
int			MlcnnOptionSetJsonb(nn_options *o, const char *key, JsonbValue *jv, nn_status *st);
/* a format-1 model's JSON options text into m->options (XX001 when bad) */
void		MlcnnModelOptionsV1(nn_model *m);

/* ------------------------------------------------------------ tune.c */

/* the search's fixed options (every key but the search's own; validation_fraction 0.1 by default) into *o */
void		MlcnnTuneFixedOptions(nn_options *o, Jsonb *search);
/* the search's trials over the fixed options base, checked (22023 naming the key or value) */
void		MlcnnTuneSearch(nn_tuning *t, const nn_options *base, Jsonb *search);
/* a trial's varied options as JSON text, for messages */
char	   *MlcnnTrialText(const nn_tuning *t, int i);
/* the record of a search under "tuning" */
void		MlcnnJsonTuning(MlcnnJson *j, const nn_tuning *t);

/* ------------------------------------------------------------ stats.c */

typedef enum MlcnnFn
{
	MLCNN_FN_TRAIN = 0,
	MLCNN_FN_PREDICT,
	MLCNN_FN_PREDICT_PROBA,
	MLCNN_FN_FORWARD_PASS,
	MLCNN_FN_COMPUTE_GRADIENTS,
	MLCNN_FN_UPDATE_WEIGHTS,
	MLCNN_FN_CALCULATE_LOSS,
	MLCNN_FN_EVALUATE,
	MLCNN_FN_MODEL_INFO,
	MLCNN_FN_MODEL_WEIGHTS,
	MLCNN_FN_LOAD_IDX,
	MLCNN_FN_MODEL_TO_ONNX,
	MLCNN_FN_MODEL_FROM_ONNX,
	MLCNN_FN_DECODE_IMAGE,
	MLCNN_FN_TUNE,
	MLCNN_FN_TRAIN_DISTRIBUTED,
	MLCNN_NFN
} MlcnnFn;

/*
 * Account one unit of work: calls (function calls or aggregate groups),
 * rows processed, wall seconds, the phase split (may be NULL), epochs, and
 * the peak bytes of mlcnn's own memory it used.
 */
void		MlcnnStatsAdd(MlcnnFn fn, int64 calls, int64 rows, double seconds,
						  const nn_timing *t, int64 epochs, Size peak_bytes);

/* the figures of one function; peak_bytes is a high-water mark, not a sum */
typedef struct MlcnnStat
{
	int64		calls;
	int64		rows;
	int64		epochs;
	int64		batches;
	int64		images;
	double		total_s;
	double		forward_s;
	double		backward_s;
	double		update_s;
	double		loss_s;
	Size		peak_bytes;
} MlcnnStat;

/*
 * The trials of the searches this backend ran, for EXPLAIN ANALYZE: a
 * ring of the last MLCNN_TRIAL_LOG, numbered from 1 since the library was
 * loaded.
 */
#define MLCNN_TRIAL_LOG 256
typedef struct MlcnnTrialEntry
{
	char		text[160];		/* the trial's varied options */
	int32		epochs;
	double		seconds;
	float		val_acc;
	float		val_loss;
	bool		winner;
} MlcnnTrialEntry;
void		MlcnnTrialLogAdd(const MlcnnTrialEntry *e);
/* entries numbered after `since`, oldest first, at most MLCNN_TRIAL_LOG: how many, copied into out */
int			MlcnnTrialLogSince(uint64 since, MlcnnTrialEntry *out);
uint64		MlcnnTrialLogCount(void);

/* the SQL name of fn */
const char *MlcnnFnName(MlcnnFn fn);
/* copy the counters since the library was loaded (never reset) into out[MLCNN_NFN] */
void		MlcnnStatsSnapshot(MlcnnStat *out);
/* start a nested peak window: save the running peaks in saved[MLCNN_NFN], zero them */
void		MlcnnStatsPeakPush(Size *saved);
/* end it: the window's peaks into out[MLCNN_NFN]; the enclosing window keeps the max */
void		MlcnnStatsPeakPop(const Size *saved, Size *out);

/* ------------------------------------------------------------ explain.c */

/* install the EXPLAIN and executor hooks (call last in _PG_init) */
void		MlcnnExplainInit(void);

#endif
