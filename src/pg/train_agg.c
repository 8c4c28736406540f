/*
 * train_agg.c: the train_conv2d aggregate.
 *
 * The transition function only buffers: each row's pixels (one byte per
 * value for bytea, four for real[]) and label go into an nn_rows store in a memory context of its
 * own, after the options have been read once (from the first row that
 * carries them, through the core's option table) so that a bad pixel
 * length or label fails at that row. All
 * the learning happens in the final function, which hands the rows to
 * nn_train(). Parallel plans work: each worker buffers its share, the
 * states travel serialised, the leader merges them, and nn_train() puts
 * the rows into a canonical order before its seeded shuffle, so the model
 * is the same, byte for byte, whichever plan ran.
 */
#include "postgres.h"

#include <math.h>

#include "access/detoast.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "mlcnn_pg.h"
#include "tune.h"

PG_FUNCTION_INFO_V1(mlcnn_train_transfn);
PG_FUNCTION_INFO_V1(mlcnn_train_transfn_real);
PG_FUNCTION_INFO_V1(mlcnn_train_combinefn);
PG_FUNCTION_INFO_V1(mlcnn_train_serialfn);
PG_FUNCTION_INFO_V1(mlcnn_train_deserialfn);
PG_FUNCTION_INFO_V1(mlcnn_train_finalfn);
PG_FUNCTION_INFO_V1(mlcnn_tune_transfn);
PG_FUNCTION_INFO_V1(mlcnn_tune_transfn_real);
PG_FUNCTION_INFO_V1(mlcnn_tune_finalfn);

typedef struct TrainState
{
	MemoryContext cxt;			/* "mlcnn training rows": everything below */
	MlcnnAlloc	alloc;
	nn_rows		rows;
	bool		sized;			/* rows.row_bytes is known */
	bool		configured;		/* opt is set */
	bool		tune;			/* tune_conv2d: the options argument is a search, opt its fixed options */
	nn_options	opt;
	char	   *opt_raw;		/* the options jsonb as given, for equality */
	Size		opt_len;
	bytea	   *init;			/* continue from this model, or NULL */
	uint32		init_crc;		/* its stored checksum: with its length, its identity */
	int			ninit_keys;		/* TOAST pointers known to hold the same model */
	char		init_keys[4][TOAST_POINTER_SIZE];
	bytea	   *result;			/* cached final result */
	int64		result_rows;
} TrainState;

/* A new, empty state in the aggregate's context. */
static TrainState *
state_create(MemoryContext aggcxt)
{
	TrainState *s = MemoryContextAllocZero(aggcxt, sizeof(TrainState));

	s->cxt = AllocSetContextCreate(aggcxt, "mlcnn training rows", ALLOCSET_DEFAULT_SIZES);
	MlcnnAllocInitAccounted(&s->alloc, s->cxt);
	nn_rows_init(&s->rows, 0);
	nn_options_default(&s->opt);
	return s;
}

/*
 * Apply an options jsonb (NULL = defaults) to s->opt through the core's
 * table, or a search's fixed options, and remember its bytes.
 */
static void
state_configure(TrainState *s, Jsonb *jb)
{
	nn_status	st;

	nn_options_default(&s->opt);
	if (s->tune)
	{
		if (jb == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("tune_conv2d needs a search, not NULL")));
		MlcnnTuneFixedOptions(&s->opt, jb);
	}
	else if (jb != NULL && MlcnnOptionsFromJsonb(&s->opt, jb, &st) != NN_OK)
		MlcnnReportStatus(&st);
	if (jb != NULL)
	{
		s->opt_len = VARSIZE(jb);
		s->opt_raw = MemoryContextAlloc(s->cxt, s->opt_len);
		memcpy(s->opt_raw, jb, s->opt_len);
	}
	s->configured = true;
}

/* Error unless two states were given the same options (tune: the same search). */
static void
check_same_options(const char *raw1, Size len1, const char *raw2, Size len2, bool tune)
{
	if (len1 != len2 || (len1 > 0 && memcmp(raw1, raw2, len1) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(tune ? "tune_conv2d's search must be the same for every row" :
						"train_conv2d options must be the same for every row")));
}

/*
 * Error unless a row's options (jb, possibly with a short header; NULL for
 * SQL NULL) are the ones s was configured with. Every row is compared: a
 * datum's address says nothing, since per-row values reuse memory.
 */
static void
check_row_options(const TrainState *s, Jsonb *jb)
{
	/* compare the payloads (a jsonb's is never empty, so NULL differs) */
	check_same_options(s->opt_raw ? VARDATA(s->opt_raw) : NULL,
					   s->opt_raw ? s->opt_len - VARHDRSZ : 0,
					   jb ? VARDATA_ANY(jb) : NULL,
					   jb ? VARSIZE_ANY_EXHDR(jb) : 0, s->tune);
}

/* Budget check: these rows plus extra bytes, beside every other aggregate state of the backend. */
static void
check_budget(const TrainState *s, Size extra)
{
	char		detail[128];

	snprintf(detail, sizeof(detail), "%lld buffered rows of %d bytes take %zu kB.",
			 (long long) s->rows.n, s->rows.row_bytes, s->rows.bytes / 1024);
	MlcnnCheckTrainBudget(extra, detail);
}

/* The stored checksum (last four bytes) of a model blob. */
static uint32
blob_crc(const bytea *b)
{
	const uint8 *p = (const uint8 *) VARDATA_ANY(b) + VARSIZE_ANY_EXHDR(b) - 4;

	if (VARSIZE_ANY_EXHDR(b) < 4)
		return 0;
	return (uint32) p[0] | (uint32) p[1] << 8 | (uint32) p[2] << 16 | (uint32) p[3] << 24;
}

/* Remember a TOAST pointer that holds s->init. */
static void
remember_init_key(TrainState *s, struct varlena *raw)
{
	if (s->ninit_keys < (int) lengthof(s->init_keys) && VARSIZE_EXTERNAL(raw) <= TOAST_POINTER_SIZE)
		memcpy(s->init_keys[s->ninit_keys++], raw, VARSIZE_EXTERNAL(raw));
}

/*
 * The first non-NULL init_model is copied; every later one must be the
 * same model (an ERROR 22023 otherwise, so the plan never picks which).
 * A model is known by its length and the checksum it stores: a TOAST
 * pointer already seen costs nothing, a new one a four-byte slice read,
 * an in-line value no copy.
 */
static void
note_init_model(TrainState *s, Datum d)
{
	struct varlena *raw = (struct varlena *) DatumGetPointer(d);
	uint32		crc;
	Size		len;

	if (s->init != NULL && VARATT_IS_EXTERNAL_ONDISK(raw))
	{
		for (int i = 0; i < s->ninit_keys; i++)
			if (memcmp(s->init_keys[i], raw, VARSIZE_EXTERNAL(raw)) == 0)
				return;
		if (MlcnnStoredCrc(raw, &crc, &len))
		{
			if (len != VARSIZE(s->init) - VARHDRSZ || crc != s->init_crc)
				goto differ;
			remember_init_key(s, raw);
			return;
		}
	}
	if (s->init == NULL)
	{
		bytea	   *init = DatumGetByteaP(d);

		s->init = nn_alloc(&s->alloc.a, VARSIZE(init));
		if (s->init == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory copying an initial model of %zu bytes", (Size) VARSIZE(init))));
		memcpy(s->init, init, VARSIZE(init));
		s->init_crc = blob_crc(s->init);
		if (VARATT_IS_EXTERNAL_ONDISK(raw))
			remember_init_key(s, raw);
		return;
	}
	{
		bytea	   *b = DatumGetByteaPP(d);

		if (VARSIZE_ANY_EXHDR(b) == VARSIZE(s->init) - VARHDRSZ && blob_crc(b) == s->init_crc)
			return;
	}
differ:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("train_conv2d's init_model must be the same model on every row"),
			 errhint("Train from one model per call; GROUP BY the model to train several.")));
}

/* train_conv2d transition: buffer one row (pixels of dtype, label[, options[, init_model]]). */
static TrainState *
train_transition(FunctionCallInfo fcinfo, int32 dtype, bool tune)
{
	MemoryContext aggcxt;
	TrainState *s;
	MlcnnPixels px;
	int32		label;
	Size		len;
	nn_status	st;

	MlcnnAggContext(fcinfo, &aggcxt, tune ? "tune_conv2d" : "train_conv2d");
	if (PG_ARGISNULL(0))
	{
		s = state_create(aggcxt);
		s->tune = tune;
	}
	else
		s = (TrainState *) PG_GETARG_POINTER(0);

	/* options: parsed at the first row, then only compared */
	if (PG_NARGS() > 3)
	{
		if (!s->configured)
			state_configure(s, PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3));
		else
			check_row_options(s, PG_ARGISNULL(3) ? NULL :
							  (Jsonb *) PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(3)));
		if (PG_NARGS() > 4 && !PG_ARGISNULL(4))
			note_init_model(s, PG_GETARG_DATUM(4));
	}
	else if (!s->configured)
		state_configure(s, NULL);

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
	{
		s->rows.skipped++;
		return s;
	}
	MlcnnGetPixels(fcinfo, 1, dtype, &px);
	label = PG_GETARG_INT32(2);
	len = px.values;

	if (!s->sized)
	{
		nn_shape	in = s->opt.input;
		const char *unit = dtype == NN_DTYPE_FLOAT32 ? "values" : "bytes";

		if (in.h > 0)
		{
			if ((Size) in.h * in.w * in.c != len)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("pixels have %zu %s but input [%d, %d, %d] needs %zu",
								len, unit, in.h, in.w, in.c, (Size) in.h * in.w * in.c)));
		}
		else if (nn_infer_input(&in, (int32_t) Min(len, PG_INT32_MAX), &st) != NN_OK)
			MlcnnReportStatus(&st);
		if (px.bytes > NN_MAX_ROW_BYTES)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("a row of %zu %s is too large to train on", len, unit)));
		s->rows.row_bytes = (int32_t) px.bytes;
		s->rows.dtype = dtype;
		s->sized = true;
	}
	else if (px.bytes != (Size) s->rows.row_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("pixels have %zu %s but the input shape needs %d",
						len, dtype == NN_DTYPE_FLOAT32 ? "values" : "bytes",
						s->rows.row_bytes / nn_dtype_size(dtype)),
				 errdetail("Every row must have the same number of pixels.")));
	if (label < 0 || label >= s->opt.classes)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("label %d is outside 0..%d", label, s->opt.classes - 1),
				 errhint("Set the \"classes\" option to the number of classes.")));

	/* a new chunk of rows is due: check before it is allocated */
	if ((s->rows.n % nn_rows_per_chunk(&s->rows)) == 0)
		check_budget(s, (Size) nn_rows_per_chunk(&s->rows) * (s->rows.row_bytes + sizeof(int32)));
	if (nn_rows_append(&s->rows, px.data, label, &s->alloc.a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	return s;
}

/* train_conv2d transition for bytea pixels. */
Datum
mlcnn_train_transfn(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(train_transition(fcinfo, NN_DTYPE_UINT8, false));
}

/* train_conv2d transition for real[] pixels. */
Datum
mlcnn_train_transfn_real(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(train_transition(fcinfo, NN_DTYPE_FLOAT32, false));
}

/* tune_conv2d transition for bytea pixels: buffer the row, the search read at the first. */
Datum
mlcnn_tune_transfn(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(train_transition(fcinfo, NN_DTYPE_UINT8, true));
}

/* tune_conv2d transition for real[] pixels. */
Datum
mlcnn_tune_transfn_real(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(train_transition(fcinfo, NN_DTYPE_FLOAT32, true));
}

/* Merge two partial states (parallel aggregation). */
Datum
mlcnn_train_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	TrainState *s1,
			   *s2;
	nn_status	st;

	MlcnnAggContext(fcinfo, &aggcxt, "train_conv2d");
	s1 = PG_ARGISNULL(0) ? NULL : (TrainState *) PG_GETARG_POINTER(0);
	s2 = PG_ARGISNULL(1) ? NULL : (TrainState *) PG_GETARG_POINTER(1);
	if (s2 == NULL)
		PG_RETURN_POINTER(s1);
	if (s1 == NULL)
	{
		/* s2 came from the deserializer, in a context under aggcxt */
		MemoryContextSetParent(s2->cxt, aggcxt);
		PG_RETURN_POINTER(s2);
	}
	if (s1->tune != s2->tune)
		elog(ERROR, "train_conv2d and tune_conv2d states cannot be combined");
	if (s1->configured && s2->configured)
		check_same_options(s1->opt_raw, s1->opt_len, s2->opt_raw, s2->opt_len, s1->tune);
	if (s1->sized && s2->sized && s1->rows.dtype != s2->rows.dtype)
		elog(ERROR, "train_conv2d states of bytea and real[] rows cannot be combined");
	if (s1->sized && s2->sized && s1->rows.row_bytes != s2->rows.row_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("pixels have %d bytes but the input shape needs %d",
						s2->rows.row_bytes, s1->rows.row_bytes)));
	if (!s1->sized && s2->sized)
	{
		s1->rows.row_bytes = s2->rows.row_bytes;
		s1->rows.dtype = s2->rows.dtype;
		s1->sized = true;
	}
	if (nn_rows_merge(&s1->rows, &s2->rows, &s1->alloc.a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	if (s2->init != NULL)
	{
		if (s1->init != NULL &&
			(VARSIZE(s1->init) != VARSIZE(s2->init) || memcmp(s1->init, s2->init, VARSIZE(s1->init)) != 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("train_conv2d's init_model must be the same model on every row")));
		if (s1->init == NULL)
			note_init_model(s1, PointerGetDatum(s2->init));
	}
	check_budget(s1, 0);
	MemoryContextDelete(s2->cxt);
	PG_RETURN_POINTER(s1);
}

/*
 * Serialised state: u8 flags (1 configured, 2 sized, 4 tune), u32 options length
 * and bytes (jsonb), u32 init length and bytes, then the nn_rows form.
 */
Datum
mlcnn_train_serialfn(PG_FUNCTION_ARGS)
{
	TrainState *s;
	Size		initlen,
				len;
	bytea	   *out;
	char	   *p;
	uint32		u;

	MlcnnAggContext(fcinfo, NULL, "train_conv2d");
	s = (TrainState *) PG_GETARG_POINTER(0);
	initlen = s->init ? VARSIZE(s->init) : 0;
	len = 1 + 4 + s->opt_len + 4 + initlen + nn_rows_serial_size(&s->rows);
	if (len > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many training rows for a parallel worker to hand over (%zu bytes)", len),
				 errhint("Set max_parallel_workers_per_gather = 0 for this query.")));
	out = palloc(len + VARHDRSZ);
	SET_VARSIZE(out, len + VARHDRSZ);
	p = VARDATA(out);
	*p++ = (char) ((s->configured ? 1 : 0) | (s->sized ? 2 : 0) | (s->tune ? 4 : 0));
	u = (uint32) s->opt_len;
	memcpy(p, &u, 4);
	p += 4;
	if (s->opt_len)
		memcpy(p, s->opt_raw, s->opt_len);
	p += s->opt_len;
	u = (uint32) initlen;
	memcpy(p, &u, 4);
	p += 4;
	if (initlen)
		memcpy(p, s->init, initlen);
	p += initlen;
	nn_rows_serialize(&s->rows, (uint8_t *) p);
	PG_RETURN_BYTEA_P(out);
}

/* Rebuild a state from mlcnn_train_serialfn output, checking every length. */
Datum
mlcnn_train_deserialfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	const char *p = VARDATA_ANY(in);
	Size		left = VARSIZE_ANY_EXHDR(in);
	TrainState *s;
	uint32		optlen,
				initlen;
	uint8		flags;
	nn_status	st;

	MlcnnAggContext(fcinfo, &aggcxt, "train_conv2d");
	if (left < 5)
		elog(ERROR, "deserialized training state is truncated");
	flags = (uint8) *p++;
	memcpy(&optlen, p, 4);
	p += 4;
	left -= 5;
	if (optlen > left || left - optlen < 4)
		elog(ERROR, "deserialized training state is truncated");
	s = state_create(aggcxt);
	s->tune = (flags & 4) != 0;
	if (optlen)
	{
		Jsonb	   *jb = MemoryContextAlloc(s->cxt, optlen);

		memcpy(jb, p, optlen);
		if (VARSIZE(jb) != optlen)
			elog(ERROR, "deserialized training state is corrupt");
		state_configure(s, jb);
	}
	else if (flags & 1)
		state_configure(s, NULL);
	p += optlen;
	left -= optlen;
	memcpy(&initlen, p, 4);
	p += 4;
	left -= 4;
	if (initlen > left)
		elog(ERROR, "deserialized training state is truncated");
	if (initlen)
	{
		if (initlen < VARHDRSZ + 4 || (s->init = nn_alloc(&s->alloc.a, initlen)) == NULL)
			elog(ERROR, "deserialized training state is corrupt or too large");
		memcpy(s->init, p, initlen);
		if (VARATT_IS_EXTENDED(s->init) || VARSIZE(s->init) != initlen)
			elog(ERROR, "deserialized training state is corrupt");
		s->init_crc = blob_crc(s->init);
	}
	p += initlen;
	left -= initlen;
	if (nn_rows_deserialize(&s->rows, (const uint8_t *) p, left, &s->alloc.a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	s->sized = (flags & 2) != 0;
	PG_RETURN_POINTER(s);
}

/* A copy of b in the current memory context. */
static bytea *
copy_bytea(const bytea *b)
{
	bytea	   *c = palloc(VARSIZE(b));

	memcpy(c, b, VARSIZE(b));
	return c;
}

/* Training hooks: interrupts, progress, threads. */
static int
hook_batch(void *ctx)
{
	CHECK_FOR_INTERRUPTS();
	return 0;
}

/* One NOTICE per epoch when mlcnn.progress is on. */
static void
hook_epoch(void *ctx, int32_t epoch, int32_t epochs, const nn_epoch *e,
		   double images_per_s, double eta_s)
{
	char		val[64] = "";

	if (!mlcnn_progress)
		return;
	if (!isnan(e->val_acc))
		snprintf(val, sizeof(val), ", validation accuracy %.4f", e->val_acc);
	ereport(NOTICE,
			(errmsg("epoch %d/%d: loss %.4f, accuracy %.4f%s, %.1f s, %.0f images/s, %.0f s left",
					epoch, epochs, e->loss, e->train_acc, val,
					(double) e->seconds, images_per_s, eta_s)));
}

/* what a training is doing, for the error context and progress */
typedef struct TrainProgress
{
	nn_train_phase phase;
	bool		started;		/* a phase has begun */
	int64		rows;
} TrainProgress;

/* the words of each phase, in nn_train_phase order */
static const char *const phase_words[] = {
	"sorting the training rows into canonical order",
	"splitting off the validation rows",
	"computing normalisation statistics",
	"training",
};

/* Phase hook: remember the phase; a NOTICE when mlcnn.progress is on. */
static void
hook_phase(void *ctx, nn_train_phase phase)
{
	TrainProgress *p = (TrainProgress *) ctx;

	p->phase = phase;
	p->started = true;
	if (mlcnn_progress)
		ereport(NOTICE,
				(errmsg("%s: %lld rows, %.2f s into the statement", phase_words[phase], (long long) p->rows,
						(double) (GetCurrentTimestamp() - GetCurrentStatementStartTimestamp()) / 1e6)));
}

/* Error context: which phase of train_conv2d was interrupted or failed. */
static void
train_error_context(void *arg)
{
	TrainProgress *p = (TrainProgress *) arg;

	if (p->started)
		errcontext("train_conv2d %s (%lld rows)", phase_words[p->phase], (long long) p->rows);
}

/* set_threads hook: OpenBLAS threads, 0 meaning mlcnn.threads */
static int32_t
hook_threads(void *ctx, int32_t threads)
{
	return MlcnnSetThreads(threads);
}

/* train_conv2d final: train on the buffered rows and return the model. */
Datum
mlcnn_train_finalfn(PG_FUNCTION_ARGS)
{
	TrainState *s;
	MemoryContext cxt,
				old;
	MlcnnAlloc	alloc;
	nn_model	model,
				init;
	TrainProgress progress = {0};
	nn_train_hooks hooks = {.ctx = &progress, .on_phase = hook_phase, .on_batch = hook_batch,
	.on_epoch = hook_epoch, .set_threads = hook_threads};
	ErrorContextCallback errcb;
	nn_timing	t = {0};
	nn_status	st;
	double		t0 = nn_now();
	bytea	   *result;
	Size		peak;

	MlcnnAggContext(fcinfo, NULL, "train_conv2d");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();		/* no rows at all, like sum() */
	s = (TrainState *) PG_GETARG_POINTER(0);
	if (s->result && s->result_rows == s->rows.n)
		PG_RETURN_BYTEA_P(copy_bytea(s->result));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "mlcnn training", ALLOCSET_DEFAULT_SIZES);
	MlcnnAllocInitAccounted(&alloc, cxt);
	if (s->init)
		MlcnnModelDecode(&init, s->init, &alloc.a);
	if (s->rows.n > 0)
	{
		nn_net		net;
		nn_shape	in = s->opt.input;
		char		spec[NN_MAX_SPEC];

		/* fail early, before any allocation, if the budget cannot hold it */
		if (in.h == 0 && nn_infer_input(&in, s->rows.row_bytes / nn_dtype_size(s->rows.dtype), &st) != NN_OK)
			MlcnnReportStatus(&st);
		nn_options_spec(&s->opt, spec, sizeof(spec));
		if (nn_net_build(&net, spec, in, s->opt.classes, &st) != NN_OK)
			MlcnnReportStatus(&st);
		check_budget(s, nn_train_work_bytes(&net, &s->opt, s->rows.n));
	}
	progress.rows = s->rows.n;
	errcb.callback = train_error_context;
	errcb.arg = &progress;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	if (nn_train(&model, &s->rows, &s->opt, s->init ? &init : NULL, &hooks, &t, &alloc.a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	error_context_stack = errcb.previous;

	old = MemoryContextSwitchTo(MemoryContextGetParent(s->cxt));
	result = MlcnnModelToBytea(&model);
	MemoryContextSwitchTo(old);
	peak = alloc.peak + s->alloc.peak;
	MemoryContextDelete(cxt);

	if (s->result)
		pfree(s->result);
	s->result = result;
	s->result_rows = s->rows.n;
	MlcnnStatsAdd(MLCNN_FN_TRAIN, 1, s->rows.n + s->rows.skipped, nn_now() - t0, &t,
				  s->opt.epochs, peak);
	/* the state keeps the model for a repeated final call; the caller gets a copy */
	PG_RETURN_BYTEA_P(copy_bytea(result));
}

/* Phase hook of a search's trials: remembered for the error context, no NOTICE (the trials report). */
static void
hook_phase_quiet(void *ctx, nn_train_phase phase)
{
	TrainProgress *p = (TrainProgress *) ctx;

	p->phase = phase;
	p->started = true;
}

/* After each trial (or each trial of a rung): a NOTICE when mlcnn.progress is on. */
static void
hook_trial(void *ctx, const nn_tuning *t, int32_t trial, int32_t rung, int32_t done, int32_t total, double eta_s)
{
	const nn_trial *tr = &t->trials[trial];
	char		where[32] = "";

	if (!mlcnn_progress)
		return;
	if (t->strategy == NN_TUNE_HALVING)
		snprintf(where, sizeof(where), "rung %d, ", rung + 1);
	ereport(NOTICE,
			(errmsg("tune_conv2d %strial %d of %d (%d/%d trainings) %s: %s, %d epochs, validation accuracy %.4f, loss %.4f, about %.0f s left",
					where, trial + 1, t->ntrials, done, total, MlcnnTrialText(t, trial),
					tr->failed ? "diverged" : "trained", tr->epochs,
					(double) tr->val_acc, (double) tr->val_loss, eta_s)));
}

/* Error context: which part of tune_conv2d failed. */
static void
tune_error_context(void *arg)
{
	TrainProgress *p = (TrainProgress *) arg;

	if (p->started)
		errcontext("tune_conv2d %s (%lld rows)", phase_words[p->phase], (long long) p->rows);
}

/* tune_conv2d final: run the search over the buffered rows; the best model, with every trial on record. */
Datum
mlcnn_tune_finalfn(PG_FUNCTION_ARGS)
{
	TrainState *s;
	MemoryContext cxt,
				old;
	MlcnnAlloc	alloc;
	nn_model	model;
	nn_tuning	t;
	TrainProgress progress = {0};
	nn_train_hooks hooks = {.ctx = &progress, .on_phase = hook_phase_quiet, .on_batch = hook_batch,
	.set_threads = hook_threads};
	ErrorContextCallback errcb;
	nn_timing	timing = {0};
	nn_status	st;
	double		t0 = nn_now();
	bytea	   *result;
	Size		peak;
	int64		epochs = 0;

	MlcnnAggContext(fcinfo, NULL, "tune_conv2d");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (TrainState *) PG_GETARG_POINTER(0);
	if (s->result && s->result_rows == s->rows.n)
		PG_RETURN_BYTEA_P(copy_bytea(s->result));
	if (s->rows.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no training rows: every row was NULL")));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "mlcnn tuning", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	MlcnnAllocInitAccounted(&alloc, cxt);
	/* every trial's options, checked before anything is trained or allocated for it */
	MlcnnTuneSearch(&t, &s->opt, (Jsonb *) s->opt_raw);
	{
		nn_shape	in = s->opt.input;
		size_t		need;

		if (in.h == 0 && nn_infer_input(&in, s->rows.row_bytes / nn_dtype_size(s->rows.dtype), &st) != NN_OK)
			MlcnnReportStatus(&st);
		need = nn_tune_work_bytes(&t, in, s->rows.n, &st);
		if (need == SIZE_MAX)
			MlcnnReportStatus(&st);
		check_budget(s, need);
	}
	progress.rows = s->rows.n;
	errcb.callback = tune_error_context;
	errcb.arg = &progress;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	if (nn_tune(&model, &s->rows, &t, &hooks, hook_trial, &timing, &alloc.a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	error_context_stack = errcb.previous;

	for (int i = 0; i < t.ntrials; i++)
	{
		MlcnnTrialEntry e;

		snprintf(e.text, sizeof(e.text), "%s", MlcnnTrialText(&t, i));
		e.epochs = t.trials[i].epochs;
		e.seconds = t.trials[i].wall_s;
		e.val_acc = t.trials[i].val_acc;
		e.val_loss = t.trials[i].val_loss;
		e.winner = i == t.best;
		MlcnnTrialLogAdd(&e);
		epochs += t.trials[i].epochs;
	}
	MemoryContextSwitchTo(MemoryContextGetParent(s->cxt));
	result = MlcnnModelToBytea(&model);
	MemoryContextSwitchTo(old);
	peak = alloc.peak + s->alloc.peak;
	MemoryContextDelete(cxt);

	if (s->result)
		pfree(s->result);
	s->result = result;
	s->result_rows = s->rows.n;
	MlcnnStatsAdd(MLCNN_FN_TUNE, 1, s->rows.n + s->rows.skipped, nn_now() - t0, &timing, epochs, peak);
	PG_RETURN_BYTEA_P(copy_bytea(result));
}
