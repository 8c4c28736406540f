/*
 * primitives.c: the building blocks exposed to SQL — compute_gradients
 * (aggregate), update_weights, evaluate (aggregate), model_info and
 * model_weights. With them a training loop can be written in PL/pgSQL; the
 * train_conv2d aggregate is the fast path that does the same inside C.
 *
 * The two aggregates push rows through the network in batches of
 * AGG_BATCH, copying each row's pixels into a batch buffer, because one
 * forward pass over 64 images costs far less than 64 passes over one.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/expandeddatum.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "compat.h"
#include "metrics.h"
#include "mlcnn_pg.h"

PG_FUNCTION_INFO_V1(mlcnn_gradients_transfn);
PG_FUNCTION_INFO_V1(mlcnn_gradients_transfn_real);
PG_FUNCTION_INFO_V1(mlcnn_gradients_combinefn);
PG_FUNCTION_INFO_V1(mlcnn_gradients_finalfn);
PG_FUNCTION_INFO_V1(mlcnn_evaluate_transfn);
PG_FUNCTION_INFO_V1(mlcnn_evaluate_transfn_real);
PG_FUNCTION_INFO_V1(mlcnn_evaluate_combinefn);
PG_FUNCTION_INFO_V1(mlcnn_evaluate_finalfn);
PG_FUNCTION_INFO_V1(update_weights);
PG_FUNCTION_INFO_V1(model_info);
PG_FUNCTION_INFO_V1(model_weights);

#define AGG_BATCH 32

/*
 * The aggregates' state is a bytea, so that other processes and servers can
 * hold partial results: PostgreSQL's parallel workers, Citus's workers (it
 * splits an aggregate only when its state type is not internal), and
 * average_models' callers. While a query adds rows it is an expanded object
 * (utils/expandeddatum.h) holding the decoded model and a batch of queued
 * rows; flattened, it is a partial result:
 *
 *   8  magic "MLCNNAGG"
 *   1  u8 kind: 1 compute_gradients, 2 evaluate
 *   1  u8 1 when a model was seen (else only skipped rows)
 *   2  u16 0
 *   4  u32 the model's stored checksum   8  u64 its length (its identity)
 *   8  i64 rows skipped (NULL model, pixels or label)
 *   then compute_gradients: a gradient blob of the model format whose
 *   parameters are the sums (not yet the mean) over its grad_rows rows;
 *   evaluate: the metrics' counts (nn_metrics_serialize).
 *
 * Flattening first runs the queued rows, so a partial counts every row it
 * has seen. The combine function merges partials exactly (counts) or in
 * float arithmetic (gradient sums); the final function gives the same
 * result as one state that saw every row, the gradients within float
 * rounding.
 */
#define PARTIAL_HEADER 32
#define KIND_GRADIENTS 1
#define KIND_EVALUATE 2

typedef struct BatchState
{
	ExpandedObjectHeader hdr;	/* first: the state is an expanded object */
	MemoryContext cxt;			/* the object's context: everything below */
	MlcnnAlloc	alloc;
	int			kind;			/* KIND_* */
	/* the result so far */
	bool		have_model;		/* a model (or a partial of one) was seen */
	uint32		model_crc;		/* its identity: stored checksum and length */
	uint64		model_len;
	nn_net		net;			/* gradients: the architecture, for the blob */
	nn_norm		norm;
	float	   *grads;			/* gradients: summed */
	int64		n;				/* rows counted */
	int64		skipped;		/* NULL model, pixels or label */
	nn_metrics	metrics;		/* evaluate */
	bool		have_metrics;
	/* the rows of this process */
	MlcnnModel *mm;				/* the model, decoded once */
	uint64		generation;		/* mm->generation when first seen */
	int			nb;				/* rows waiting in the batch */
	int			cap;			/* rows a batch holds (<= AGG_BATCH, within the budget) */
	uint8	   *pix;			/* cap rows of the model's values */
	const uint8_t *rows[AGG_BATCH];
	int32		labels[AGG_BATCH];
	nn_timing	t;
	double		seconds;
	nn_work		work;			/* gradients: training buffers */
} BatchState;

static Size batch_flat_size(ExpandedObjectHeader *eohptr);
static void batch_flatten(ExpandedObjectHeader *eohptr, void *result, Size allocated_size);
static void flush(BatchState *s);

static const ExpandedObjectMethods batch_methods = {batch_flat_size, batch_flatten};

/* The name of the aggregate of a kind. */
static const char *
kind_name(int kind)
{
	return kind == KIND_GRADIENTS ? "compute_gradients" : "evaluate";
}

/* A new, empty state of kind in a context under parent. */
static BatchState *
state_new(MemoryContext parent, int kind)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "mlcnn batch state", ALLOCSET_DEFAULT_SIZES);
	BatchState *s = MemoryContextAllocZero(cxt, sizeof(BatchState));

	EOH_init_header(&s->hdr, &batch_methods, cxt);
	s->cxt = cxt;
	s->kind = kind;
	MlcnnAllocInitAccounted(&s->alloc, cxt);
	return s;
}

/* Error unless a model of this identity is the state's (or the state has none yet, which adopts it). */
static void
same_model(BatchState *s, uint32 crc, uint64 len)
{
	if (!s->have_model)
	{
		s->have_model = true;
		s->model_crc = crc;
		s->model_len = len;
	}
	else if (s->model_crc != crc || s->model_len != len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the model must be the same for every row of one aggregate call")));
}

/* Gradients: the architecture and sums of a first model or partial, allocated in the state. */
static void
adopt_net(BatchState *s, const nn_net *net, const nn_norm *norm)
{
	s->net = *net;
	s->norm = *norm;
	s->grads = nn_calloc(&s->alloc.a, net->nparams ? net->nparams : 1, sizeof(float));
	if (s->grads == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory for the gradients of %zu parameters", net->nparams)));
}

/* Merge the flat partial p (len bytes) into s. */
static void
merge_partial(BatchState *s, const uint8 *p, Size len)
{
	uint32		crc;
	uint64		mlen;
	int64		skipped;
	nn_status	st;

	if (len < PARTIAL_HEADER || memcmp(p, "MLCNNAGG", 8) != 0 || p[8] != s->kind)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("%s: not a partial result of %s", kind_name(s->kind), kind_name(s->kind))));
	memcpy(&crc, p + 12, 4);
	memcpy(&mlen, p + 16, 8);
	memcpy(&skipped, p + 24, 8);
	if (skipped < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("%s: a corrupt partial result", kind_name(s->kind))));
	s->skipped += skipped;
	if (p[9] == 0)
	{
		if (len != PARTIAL_HEADER)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("%s: a corrupt partial result", kind_name(s->kind))));
		return;
	}
	same_model(s, crc, mlen);
	p += PARTIAL_HEADER;
	len -= PARTIAL_HEADER;
	if (s->kind == KIND_GRADIENTS)
	{
		nn_model	g;
		MlcnnAlloc	tmp;

		MlcnnAllocInit(&tmp, CurrentMemoryContext);
		if (nn_model_read(&g, p, len, &tmp.a, &st) != NN_OK)
			MlcnnReportStatus(&st);
		if (g.kind != NN_BLOB_GRADIENTS || g.grad_rows < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("compute_gradients: a corrupt partial result")));
		if (s->grads == NULL)
			adopt_net(s, &g.net, &g.norm);
		else if (!nn_net_same(&s->net, &g.net, NULL, 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the model must be the same for every row of one aggregate call")));
		for (Size i = 0; i < g.net.nparams; i++)
			s->grads[i] += g.params[i];
		s->n += g.grad_rows;
		nn_model_free(&g, &tmp.a);
	}
	else
	{
		nn_metrics	m;

		if (nn_metrics_deserialize(&m, p, len, &s->alloc.a, &st) != NN_OK)
			MlcnnReportStatus(&st);
		if (!s->have_metrics)
		{
			s->metrics = m;
			s->have_metrics = true;
		}
		else
		{
			if (m.classes != s->metrics.classes)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("evaluate: partial results of %d and %d classes", m.classes, s->metrics.classes)));
			nn_metrics_merge(&s->metrics, &m);
			nn_metrics_free(&m, &s->alloc.a);
		}
		s->n = s->metrics.rows;
	}
}

/* The state in datum d: our expanded object, or a flat partial made into one (in parent). */
static BatchState *
state_of(Datum d, MemoryContext parent, int kind)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	BatchState *s;
	bytea	   *flat;

	if (VARATT_IS_EXTERNAL_EXPANDED(v))
	{
		ExpandedObjectHeader *eoh = DatumGetEOHP(d);

		if (eoh->eoh_methods == &batch_methods && ((BatchState *) eoh)->kind == kind)
			return (BatchState *) eoh;
	}
	/* a partial from another process (or a spilled hash table): a state of its own */
	flat = DatumGetByteaPP(d);
	s = state_new(parent, kind);
	merge_partial(s, (const uint8 *) VARDATA_ANY(flat), VARSIZE_ANY_EXHDR(flat));
	return s;
}

/* The decoded model of argument 1 for s; its buffers on first sight. */
static void
state_model(FunctionCallInfo fcinfo, BatchState *s)
{
	bool		gradients = s->kind == KIND_GRADIENTS;
	MlcnnModel *mm = MlcnnModelGet(&s->mm, s->cxt, PG_GETARG_DATUM(1), gradients ? 0 : AGG_BATCH, true);
	const nn_net *net = &mm->model.net;
	nn_status	st;

	if (s->pix != NULL)
	{
		if (mm->generation != s->generation)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the model must be the same for every row of one aggregate call")));
		return;
	}
	if (mm->model.kind != NN_BLOB_MODEL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s needs a model, not a gradient blob", kind_name(s->kind))));
	same_model(s, mm->crc, mm->blob_bytes);
	s->generation = mm->generation;
	if (gradients)
	{
		if (s->grads == NULL)
			adopt_net(s, net, &mm->model.norm);
		/* the gradient sums and training buffers, within the inference budget */
		s->cap = MlcnnFitBatch(net, AGG_BATCH, true, mm->alloc.cur + sizeof(float) * net->nparams, "compute_gradients");
		if (nn_work_alloc(&s->work, net, s->cap, 1, &s->alloc.a, &st) != NN_OK)
			MlcnnReportStatus(&st);
	}
	else
	{
		s->cap = mm->batch;
		if (!s->have_metrics)
		{
			if (nn_metrics_init(&s->metrics, net->classes, &s->alloc.a, &st) != NN_OK)
				MlcnnReportStatus(&st);
			s->have_metrics = true;
		}
	}
	s->pix = nn_alloc(&s->alloc.a, (Size) s->cap * net->input.h * net->input.w * net->input.c *
					  nn_dtype_size(mm->model.norm.dtype));
	if (s->pix == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory for a batch of %d rows", s->cap)));
}

/* Queue one row (model arg 1, pixels arg 2 of dtype, label arg 3); returns true when the batch is full. */
static bool
queue_row(FunctionCallInfo fcinfo, BatchState *s, int32 dtype)
{
	MlcnnPixels px;
	int32		label;
	const nn_net *net;

	if (PG_ARGISNULL(1))
	{
		s->skipped++;
		return false;
	}
	state_model(fcinfo, s);
	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		s->skipped++;
		return false;
	}
	net = &s->mm->model.net;
	MlcnnGetPixels(fcinfo, 2, dtype, &px);
	label = PG_GETARG_INT32(3);
	MlcnnCheckPixels(&s->mm->model, &px);
	if (label < 0 || label >= net->classes)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("label %d is outside the model's classes 0..%d", label, net->classes - 1)));
	memcpy(s->pix + s->nb * px.bytes, px.data, px.bytes);
	s->rows[s->nb] = s->pix + s->nb * px.bytes;
	s->labels[s->nb] = label;
	s->nb++;
	return s->nb == s->cap;
}

/* Run the queued rows: gradients accumulate, or evaluation counts. */
static void
flush(BatchState *s)
{
	MlcnnModel *mm = s->mm;
	const nn_net *net;
	int			B = s->nb;
	double		t0;

	if (B == 0)
		return;
	t0 = nn_now();
	net = &mm->model.net;
	MlcnnSetThreads(0);
	if (s->kind == KIND_GRADIENTS)
	{
		nn_load_pixels(s->work.act[0], s->rows, B, net->input, &mm->model.norm);
		if (nn_net_forward(net, mm->model.params, mm->model.buffers, &s->work, B, 0, NULL, &s->t) != NN_OK)
			MlcnnReportCancel("compute_gradients was cancelled");
		nn_net_loss(net, &s->work, s->labels, B, NULL, &s->t);
		if (nn_net_backward(net, mm->model.params, s->grads, &s->work, B, 1.0f, &s->t) != NN_OK)
			MlcnnReportCancel("compute_gradients was cancelled");
		s->n += B;
	}
	else
	{
		double		loss;

		MlcnnModelForward(mm, s->rows, B, &s->t);
		loss = nn_net_loss(net, &mm->work, s->labels, B, NULL, &s->t);
		nn_metrics_add(&s->metrics, mm->work.act[net->nlayers], s->labels, B, loss);
		s->n = s->metrics.rows;
	}
	s->nb = 0;
	s->t.batches++;
	s->t.images += B;
	s->seconds += nn_now() - t0;
}

/* The gradient blob of s: sums, or (mean) divided by the rows, into params (NULL: for its size only). */
static nn_model
gradient_blob(const BatchState *s, bool mean, float *params)
{
	nn_model	g;

	memset(&g, 0, sizeof(g));
	g.kind = NN_BLOB_GRADIENTS;
	g.net = s->net;
	g.norm = s->norm;
	nn_options_default(&g.options);
	g.grad_rows = s->n;
	g.rows_skipped = s->skipped;
	g.params = params;
	for (Size i = 0; params && i < g.net.nparams; i++)
		params[i] = mean ? s->grads[i] / (float) s->n : s->grads[i];
	return g;
}

/* Bytes of the flat partial (the queued rows run first). */
static Size
batch_flat_size(ExpandedObjectHeader *eohptr)
{
	BatchState *s = (BatchState *) eohptr;
	Size		n = VARHDRSZ + PARTIAL_HEADER;

	flush(s);
	if (!s->have_model)
		return n;
	if (s->kind == KIND_GRADIENTS)
	{
		nn_model	g = gradient_blob(s, false, NULL);	/* sizing reads no parameter */

		return n + nn_model_size(&g);
	}
	return n + nn_metrics_serial_size(&s->metrics);
}

/* Write the flat partial into result (batch_flat_size bytes). */
static void
batch_flatten(ExpandedObjectHeader *eohptr, void *result, Size allocated_size)
{
	BatchState *s = (BatchState *) eohptr;
	uint8	   *p = (uint8 *) VARDATA(result);
	uint16		zero = 0;

	memset(result, 0, allocated_size);
	SET_VARSIZE(result, allocated_size);
	memcpy(p, "MLCNNAGG", 8);
	p[8] = (uint8) s->kind;
	p[9] = s->have_model ? 1 : 0;
	memcpy(p + 10, &zero, 2);
	memcpy(p + 12, &s->model_crc, 4);
	memcpy(p + 16, &s->model_len, 8);
	memcpy(p + 24, &s->skipped, 8);
	p += PARTIAL_HEADER;
	if (!s->have_model)
		return;
	if (s->kind == KIND_GRADIENTS)
	{
		nn_model	g = gradient_blob(s, false, NULL);

		g.params = s->grads;	/* the sums as they are */
		nn_model_write(&g, p);
	}
	else
		nn_metrics_serialize(&s->metrics, p);
}

/* Shared transition: the state, the row queued, a full batch run. */
static Datum
batch_transition(FunctionCallInfo fcinfo, int kind, int32 dtype)
{
	MemoryContext aggcxt;
	BatchState *s;
	double		t0 = nn_now();
	bool		full;

	MlcnnAggContext(fcinfo, &aggcxt, kind_name(kind));

	s = PG_ARGISNULL(0) ? state_new(aggcxt, kind) : state_of(PG_GETARG_DATUM(0), aggcxt, kind);
	full = queue_row(fcinfo, s, dtype);
	s->seconds += nn_now() - t0;	/* the queueing; flush counts its own */
	if (full)
		flush(s);
	PG_RETURN_DATUM(EOHPGetRWDatum(&s->hdr));
}

/* Shared combine: two states or partials into one. */
static Datum
batch_combine(FunctionCallInfo fcinfo, int kind)
{
	MemoryContext aggcxt;
	BatchState *s;

	MlcnnAggContext(fcinfo, &aggcxt, kind_name(kind));
	if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(1))
		s = state_of(PG_GETARG_DATUM(0), aggcxt, kind);
	else
	{
		Datum		other = PG_GETARG_DATUM(1);
		bytea	   *flat;

		s = PG_ARGISNULL(0) ? state_new(aggcxt, kind) : state_of(PG_GETARG_DATUM(0), aggcxt, kind);
		/* the other side as a flat partial (an expanded one is flattened: its queued rows run) */
		flat = DatumGetByteaPP(other);
		merge_partial(s, (const uint8 *) VARDATA_ANY(flat), VARSIZE_ANY_EXHDR(flat));
	}
	PG_RETURN_DATUM(EOHPGetRWDatum(&s->hdr));
}

/* Shared start of a final call: the state with its last rows run, or NULL. */
static BatchState *
batch_final(FunctionCallInfo fcinfo, int kind)
{
	MemoryContext aggcxt;
	BatchState *s;

	MlcnnAggContext(fcinfo, &aggcxt, kind_name(kind));
	if (PG_ARGISNULL(0))
		return NULL;
	s = state_of(PG_GETARG_DATUM(0), aggcxt, kind);
	flush(s);
	return s;
}

/* compute_gradients transition: queue the row, run a full batch. */
Datum
mlcnn_gradients_transfn(PG_FUNCTION_ARGS)
{
	return batch_transition(fcinfo, KIND_GRADIENTS, NN_DTYPE_UINT8);
}

/* compute_gradients transition for real[] pixels. */
Datum
mlcnn_gradients_transfn_real(PG_FUNCTION_ARGS)
{
	return batch_transition(fcinfo, KIND_GRADIENTS, NN_DTYPE_FLOAT32);
}

/* compute_gradients combine: partial sums added. */
Datum
mlcnn_gradients_combinefn(PG_FUNCTION_ARGS)
{
	return batch_combine(fcinfo, KIND_GRADIENTS);
}

/* compute_gradients final: the mean gradient as a gradient blob. */
Datum
mlcnn_gradients_finalfn(PG_FUNCTION_ARGS)
{
	BatchState *s = batch_final(fcinfo, KIND_GRADIENTS);
	nn_model	g;
	bytea	   *out;

	if (s == NULL || s->n == 0)
		PG_RETURN_NULL();
	g = gradient_blob(s, true, palloc(sizeof(float) * Max(s->net.nparams, 1)));
	out = MlcnnModelToBytea(&g);
	pfree(g.params);
	MlcnnStatsAdd(MLCNN_FN_COMPUTE_GRADIENTS, 1, s->n + s->skipped, s->seconds, &s->t, 0,
				  s->alloc.peak + (s->mm ? s->mm->alloc.peak : 0));
	/* the sums stay in the state, so a second final call gives the same */
	PG_RETURN_BYTEA_P(out);
}

/* evaluate transition: queue the row, run a full batch. */
Datum
mlcnn_evaluate_transfn(PG_FUNCTION_ARGS)
{
	return batch_transition(fcinfo, KIND_EVALUATE, NN_DTYPE_UINT8);
}

/* evaluate transition for real[] pixels. */
Datum
mlcnn_evaluate_transfn_real(PG_FUNCTION_ARGS)
{
	return batch_transition(fcinfo, KIND_EVALUATE, NN_DTYPE_FLOAT32);
}

/* evaluate combine: partial counts added. */
Datum
mlcnn_evaluate_combinefn(PG_FUNCTION_ARGS)
{
	return batch_combine(fcinfo, KIND_EVALUATE);
}

/* evaluate final: rows, accuracy, loss, confusion matrix, precision, recall. */
Datum
mlcnn_evaluate_finalfn(PG_FUNCTION_ARGS)
{
	BatchState *s = batch_final(fcinfo, KIND_EVALUATE);
	const nn_metrics *m;
	MlcnnJson	j;
	int			K;

	if (s == NULL || !s->have_metrics)
		PG_RETURN_NULL();
	m = &s->metrics;
	K = m->classes;
	MlcnnJsonInit(&j);
	MlcnnJsonBeginObject(&j, NULL);
	MlcnnJsonInt(&j, "rows", m->rows);
	MlcnnJsonInt(&j, "skipped", s->skipped);
	MlcnnJsonInt(&j, "correct", m->correct);
	/*
	 * No rows: no accuracy, no loss (the floats' null). The loss is a mean
	 * of float32 losses, shown at float32 precision: how the rows fell into
	 * batches regroups its double sum, which must not show.
	 */
	MlcnnJsonFloat8(&j, "accuracy", nn_metrics_accuracy(m));
	MlcnnJsonFloat4(&j, "loss", (float) nn_metrics_mean_loss(m));
	if (m->confusion)
	{
		MlcnnJsonBeginArray(&j, "confusion_matrix");
		for (int i = 0; i < K; i++)
		{
			CHECK_FOR_INTERRUPTS();
			MlcnnJsonBeginArray(&j, NULL);
			for (int k = 0; k < K; k++)
				MlcnnJsonInt(&j, NULL, m->confusion[(Size) i * K + k]);
			MlcnnJsonEndArray(&j);
		}
		MlcnnJsonEndArray(&j);
	}
	else
		MlcnnJsonNull(&j, "confusion_matrix");	/* past NN_METRICS_MATRIX_CLASSES classes */
	/* a class never predicted (precision) or never present (recall): null */
	MlcnnJsonBeginArray(&j, "precision");
	for (int k = 0; k < K; k++)
		MlcnnJsonFloat8(&j, NULL, nn_metrics_precision(m, k));
	MlcnnJsonEndArray(&j);
	MlcnnJsonBeginArray(&j, "recall");
	for (int k = 0; k < K; k++)
		MlcnnJsonFloat8(&j, NULL, nn_metrics_recall(m, k));
	MlcnnJsonEndArray(&j);
	MlcnnJsonEndObject(&j);
	MlcnnStatsAdd(MLCNN_FN_EVALUATE, 1, s->n + s->skipped, s->seconds, &s->t, 0,
				  s->alloc.peak + (s->mm ? s->mm->alloc.peak : 0));
	PG_RETURN_JSONB_P(MlcnnJsonFinish(&j));
}

/* Decode a blob for a one-shot function, in the current context. */
static void
decode_any(nn_model *m, bytea *blob, MlcnnAlloc *alloc)
{
	nn_status	st;

	MlcnnAllocInit(alloc, CurrentMemoryContext);
	if (nn_model_read(m, (const uint8_t *) VARDATA_ANY(blob), VARSIZE_ANY_EXHDR(blob), &alloc->a, &st) != NN_OK)
		MlcnnReportStatus(&st);
}

/* update_weights(model, gradients, learning_rate): one plain SGD step. */
Datum
update_weights(PG_FUNCTION_ARGS)
{
	double		t0 = nn_now();
	bytea	   *mb = PG_GETARG_BYTEA_PP(0);
	bytea	   *gb = PG_GETARG_BYTEA_PP(1);
	float4		lr = PG_GETARG_FLOAT4(2);
	nn_model	m,
				g;
	MlcnnAlloc	alloc;
	bytea	   *out;
	size_t		bad;

	if (!isfinite(lr) || lr < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("learning_rate must be a finite number >= 0, not %g", (double) lr)));
	decode_any(&m, mb, &alloc);
	if (m.kind != NN_BLOB_MODEL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the first argument of update_weights must be a model, not gradients")));
	decode_any(&g, gb, &alloc);
	if (g.kind != NN_BLOB_GRADIENTS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the second argument of update_weights must be gradients from compute_gradients, not a model")));
	MlcnnModelOptionsV1(&m);	/* a format-1 model keeps its options in format 2 */
	if (!nn_net_same(&m.net, &g.net, NULL, 0))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("gradients of another architecture"),
				 errdetail("The model is %s on %dx%dx%d; the gradients are for %s on %dx%dx%d.",
						   m.net.spec, m.net.input.h, m.net.input.w, m.net.input.c,
						   g.net.spec, g.net.input.h, g.net.input.w, g.net.input.c)));
	if (m.norm.dtype != g.norm.dtype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("gradients of %s rows cannot update a model of %s rows",
						MlcnnDtypeSqlName(g.norm.dtype), MlcnnDtypeSqlName(m.norm.dtype)),
				 errhint("Compute the gradients with the model they update.")));
	if (m.norm.mode != g.norm.mode || m.norm.mean != g.norm.mean || m.norm.std != g.norm.std)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("gradients were computed with another input normalisation than the model's"),
				 errhint("Compute the gradients with the model they update.")));
	bad = nn_sgd_step_checked(m.params, g.params, m.net.nparams, lr);
	if (bad < m.net.nparams)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("update_weights made weight %zu infinite", bad),
				 errhint("Lower the learning rate.")));
	out = MlcnnModelToBytea(&m);
	MlcnnStatsAdd(MLCNN_FN_UPDATE_WEIGHTS, 1, 1, nn_now() - t0, NULL, 0, alloc.peak);
	PG_RETURN_BYTEA_P(out);
}

/* The model_info document of m, a blob of blob_bytes bytes. */
static Jsonb *
model_info_jsonb(const nn_model *m, Size blob_bytes)
{
	bool		timed = m->options.record_times && m->kind == NN_BLOB_MODEL;
	MlcnnJson	j;

	MlcnnJsonInit(&j);
	MlcnnJsonBeginObject(&j, NULL);
	MlcnnJsonInt(&j, "format_version", m->format);
	MlcnnJsonText(&j, "kind", m->kind == NN_BLOB_MODEL ? "model" : "gradients");
	MlcnnJsonText(&j, "layers", m->net.spec);
	MlcnnJsonBeginArray(&j, "input");
	MlcnnJsonInt(&j, NULL, m->net.input.h);
	MlcnnJsonInt(&j, NULL, m->net.input.w);
	MlcnnJsonInt(&j, NULL, m->net.input.c);
	MlcnnJsonEndArray(&j);
	MlcnnJsonText(&j, "input_type", MlcnnDtypeSqlName(m->norm.dtype));
	MlcnnJsonInt(&j, "classes", m->net.classes);
	MlcnnJsonInt(&j, "parameters", (int64) m->net.nparams);
	if (m->net.nbuffers > 0)
		MlcnnJsonInt(&j, "buffers", (int64) m->net.nbuffers);
	MlcnnJsonInt(&j, "size_bytes", (int64) blob_bytes);
	MlcnnJsonBeginObject(&j, "normalize");
	MlcnnJsonText(&j, "mode", nn_norm_name(m->norm.mode));
	if (m->norm.mode == NN_NORM_ZSCORE)
	{
		MlcnnJsonFloat4(&j, "mean", m->norm.mean);
		MlcnnJsonFloat4(&j, "std", m->norm.std);
	}
	else if (m->norm.mode == NN_NORM_MINMAX && m->norm.dtype == NN_DTYPE_FLOAT32)
	{
		MlcnnJsonFloat4(&j, "min", m->norm.mean);
		MlcnnJsonFloat4(&j, "range", m->norm.std);	/* max - min */
	}
	MlcnnJsonEndObject(&j);
	if (m->kind == NN_BLOB_MODEL)
		MlcnnJsonOptions(&j, "options", &m->options);
	else
		MlcnnJsonNull(&j, "options");
	MlcnnJsonInt(&j, "rows_trained", m->rows_trained);
	MlcnnJsonInt(&j, "rows_skipped", m->rows_skipped);
	if (m->kind == NN_BLOB_GRADIENTS)
		MlcnnJsonInt(&j, "gradient_rows", m->grad_rows);
	MlcnnJsonBeginArray(&j, "history");
	for (int i = 0; i < m->nepochs; i++)
	{
		const nn_epoch *e = &m->history[i];

		MlcnnJsonBeginObject(&j, NULL);
		MlcnnJsonInt(&j, "epoch", i + 1);
		MlcnnJsonFloat4(&j, "loss", e->loss);
		MlcnnJsonFloat4(&j, "train_accuracy", e->train_acc);
		MlcnnJsonFloat4(&j, "validation_accuracy", e->val_acc);	/* NaN without a hold-out: null */
		MlcnnJsonFloat4(&j, "seconds", timed ? e->seconds : NAN);
		MlcnnJsonEndObject(&j);
	}
	MlcnnJsonEndArray(&j);
	MlcnnJsonFloat8(&j, "training_seconds", timed ? m->train_seconds : NAN);
	if (m->tuning)
		MlcnnJsonTuning(&j, m->tuning);
	if (m->rounds)
	{
		MlcnnJsonBeginObject(&j, "distributed");
		MlcnnJsonInt(&j, "shards", m->rounds->shards);
		MlcnnJsonInt(&j, "local_epochs", m->rounds->local_epochs);
		MlcnnJsonBeginArray(&j, "rounds");
		for (int i = 0; i < m->rounds->nrounds; i++)
		{
			const nn_round *x = &m->rounds->round[i];

			MlcnnJsonBeginObject(&j, NULL);
			MlcnnJsonInt(&j, "round", i + 1);
			MlcnnJsonInt(&j, "shards_trained", x->shards);
			MlcnnJsonInt(&j, "rows", x->rows);
			MlcnnJsonFloat4(&j, "validation_accuracy", x->val_acc);
			MlcnnJsonFloat4(&j, "seconds", timed ? x->seconds : NAN);
			MlcnnJsonEndObject(&j);
		}
		MlcnnJsonEndArray(&j);
		MlcnnJsonEndObject(&j);
	}
	MlcnnJsonEndObject(&j);
	return MlcnnJsonFinish(&j);
}

/* model_info(model): everything the blob says about itself, as jsonb. */
Datum
model_info(PG_FUNCTION_ARGS)
{
	bytea	   *mb = PG_GETARG_BYTEA_PP(0);
	nn_model	m;
	MlcnnAlloc	alloc;
	Jsonb	   *info;

	decode_any(&m, mb, &alloc);
	MlcnnModelOptionsV1(&m);
	info = model_info_jsonb(&m, VARSIZE_ANY_EXHDR(mb));
	MlcnnStatsAdd(MLCNN_FN_MODEL_INFO, 1, 1, 0, NULL, 0, alloc.peak);
	PG_RETURN_JSONB_P(info);
}

/* One row of model_weights. */
static void
weights_row(ReturnSetInfo *rsinfo, int layer, const char *name, const int *shape,
			int ndims, const float *w, Size n)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	Datum	   *sd = palloc(sizeof(Datum) * ndims);
	Datum	   *wd = palloc(sizeof(Datum) * n);

	for (int i = 0; i < ndims; i++)
		sd[i] = Int32GetDatum(shape[i]);
	for (Size i = 0; i < n; i++)
		wd[i] = Float4GetDatum(w[i]);
	values[0] = Int32GetDatum(layer);
	values[1] = CStringGetTextDatum(name);
	values[2] = PointerGetDatum(construct_array(sd, ndims, INT4OID, 4, true, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(wd, (int) n, FLOAT4OID, 4, true, TYPALIGN_INT));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	pfree(sd);
	pfree(wd);
}

/*
 * model_weights(model): every parameter and buffer tensor in PyTorch's
 * layout and state_dict order, named after the equivalent module tree
 * (names.c), so that the rows make a state_dict that loads with strict=True.
 */
Datum
model_weights(PG_FUNCTION_ARGS)
{
	bytea	   *mb = PG_GETARG_BYTEA_PP(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	nn_model	m;
	MlcnnAlloc	alloc;
	nn_tensor_info *tensors;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	decode_any(&m, mb, &alloc);
	n = nn_net_tensors(&m.net, NULL, 0);
	tensors = palloc(sizeof(nn_tensor_info) * Max(n, 1));
	nn_net_tensors(&m.net, tensors, n);
	for (int k = 0; k < n; k++)
	{
		const nn_tensor_info *t = &tensors[k];
		const float *src = t->buffer ? m.buffers : m.params;

		weights_row(rsinfo, t->layer, t->name, t->shape, t->ndims, src + t->off, t->len);
	}
	MlcnnStatsAdd(MLCNN_FN_MODEL_WEIGHTS, 1, 1, 0, NULL, 0, alloc.peak);
	return (Datum) 0;
}
