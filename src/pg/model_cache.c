/*
 * model_cache.c: decoding models once per call site, not once per row.
 *
 * A query such as SELECT predict(m.model, t.pixels) FROM test t, models m
 * hands the same model to predict() for every row. Decoding it (CRC over
 * ~900 kB, validation, copying the parameters) costs far more than one
 * forward pass, so the decoded model lives in fn_extra (or an aggregate's
 * state) together with its inference buffers, and is reused while the
 * datum is the same. A model stored out of line is recognised by its TOAST
 * pointer, so a hit costs no detoasting at all; an in-line or in-memory
 * model is recognised by its raw bytes.
 *
 * Models stored out of line are also kept, decoded, across queries: the
 * last SESSION_MODELS of them, in the session's memory, within
 * mlcnn.model_cache_memory bytes (least recently used first out). An entry
 * goes when a relcache invalidation names its TOAST table (TRUNCATE,
 * VACUUM FULL, CLUSTER and DROP may reuse the value's OID), and the whole
 * cache goes at DROP EXTENSION mlcnn. A new call site
 * finds its model there by the TOAST pointer plus the checksum stored in
 * the blob's last four bytes (a one-chunk read), so a short query such as
 * SELECT predict(model, $1) FROM models WHERE name = 'mnist' neither
 * detoasts nor checks the ~900 kB model again.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "utils/inval.h"
#include "utils/memutils.h"

#include "compat.h"
#include "mlcnn_pg.h"
#include "pool.h"

#define SESSION_MODELS 4

/* A decoded model kept for the session. */
typedef struct SessionModel
{
	MemoryContext cxt;			/* owns history and params; NULL: empty slot */
	char		key[64];		/* the TOAST pointer */
	Size		key_len;
	uint32		crc;			/* the blob's stored checksum */
	Size		blob_bytes;
	Size		held;			/* bytes of cxt */
	Oid			toastrelid;		/* the TOAST table the key points into */
	nn_model	model;
	uint64		last_used;
} SessionModel;

static SessionModel session_models[SESSION_MODELS];
static uint64 session_clock;
static object_access_hook_type prev_object_access_hook;

/* Drop one session entry. */
static void
session_evict(SessionModel *e)
{
	if (e->cxt)
		MemoryContextDelete(e->cxt);
	e->cxt = NULL;
	e->held = 0;
}

/* Drop every session entry pointing into toastrelid (InvalidOid: all). */
static void
session_invalidate(Oid toastrelid)
{
	for (int i = 0; i < SESSION_MODELS; i++)
		if (session_models[i].cxt &&
			(toastrelid == InvalidOid || session_models[i].toastrelid == toastrelid))
			session_evict(&session_models[i]);
}

/* Relcache invalidation: a TOAST table changed, so its value OIDs may be reused. */
static void
session_relcache_callback(Datum arg, Oid relid)
{
	session_invalidate(relid);
}

/* DROP EXTENSION mlcnn frees the session cache (other objects pass on). */
static void
session_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					  int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == ExtensionRelationId &&
		objectId == get_extension_oid("mlcnn", true))
		session_invalidate(InvalidOid);
}

/* Register the session cache's invalidation callback and hook (from _PG_init). */
void
MlcnnModelCacheInit(void)
{
	CacheRegisterRelcacheCallback(session_relcache_callback, (Datum) 0);
	prev_object_access_hook = object_access_hook;
	object_access_hook = session_object_access;
}

/* Bytes the session cache holds. */
static Size
session_bytes(void)
{
	Size		n = 0;

	for (int i = 0; i < SESSION_MODELS; i++)
		n += session_models[i].cxt ? session_models[i].held : 0;
	return n;
}

/*
 * The checksum stored in the last four bytes of an out-of-line,
 * uncompressed model, and its length, read without detoasting the rest;
 * false if that cannot be had cheaply.
 */
bool
MlcnnStoredCrc(struct varlena *raw, uint32 *crc, Size *blob_len)
{
	struct varatt_external ext;
	struct varlena *tail;
	Size		len;
	const uint8 *b;
	bool		ok;

	if (!VARATT_IS_EXTERNAL_ONDISK(raw) || VARSIZE_EXTERNAL(raw) > sizeof(session_models[0].key))
		return false;
	VARATT_EXTERNAL_GET_POINTER(ext, raw);
	if (VARATT_EXTERNAL_IS_COMPRESSED(ext))
		return false;
	len = VARATT_EXTERNAL_GET_EXTSIZE(ext);
	if (len < 8)
		return false;
	*blob_len = len;
	tail = detoast_attr_slice(raw, (int32) (len - 4), 4);
	ok = VARSIZE_ANY_EXHDR(tail) == 4;
	if (ok)
	{
		b = (const uint8 *) VARDATA_ANY(tail);
		*crc = (uint32) b[0] | (uint32) b[1] << 8 | (uint32) b[2] << 16 | (uint32) b[3] << 24;
	}
	pfree(tail);
	return ok;
}

/* The session's decoded copy of the model behind raw, or NULL. */
static SessionModel *
session_find(struct varlena *raw, uint32 crc)
{
	for (int i = 0; i < SESSION_MODELS; i++)
	{
		SessionModel *e = &session_models[i];

		if (e->cxt && e->crc == crc && e->key_len == VARSIZE_EXTERNAL(raw) &&
			memcmp(e->key, raw, e->key_len) == 0)
		{
			e->last_used = ++session_clock;
			return e;
		}
	}
	return NULL;
}

/* Copy a decoded model's parameters, history, buffers and format-1 options text into dst, allocated from a; false if out of memory. */
static bool
copy_model(nn_model *dst, const nn_model *src, const nn_allocator *a)
{
	*dst = *src;
	dst->tuning = NULL;			/* predictions need no record of the search or the rounds */
	dst->rounds = NULL;
	dst->history = NULL;
	dst->buffers = NULL;
	dst->options_v1 = NULL;
	dst->params = nn_alloc(a, src->net.nparams * sizeof(float) + 1);
	if (src->nepochs > 0)
		dst->history = nn_alloc(a, (size_t) src->nepochs * sizeof(nn_epoch));
	if (src->buffers != NULL)
		dst->buffers = nn_alloc(a, src->net.nbuffers * sizeof(float) + 1);
	if (src->options_v1 != NULL)
		dst->options_v1 = nn_alloc(a, strlen(src->options_v1) + 1);
	if (dst->params == NULL || (src->nepochs > 0 && dst->history == NULL) ||
		(src->buffers != NULL && dst->buffers == NULL) ||
		(src->options_v1 != NULL && dst->options_v1 == NULL))
		return false;
	memcpy(dst->params, src->params, src->net.nparams * sizeof(float));
	if (src->nepochs > 0)
		memcpy(dst->history, src->history, (size_t) src->nepochs * sizeof(nn_epoch));
	if (src->buffers != NULL)
		memcpy(dst->buffers, src->buffers, src->net.nbuffers * sizeof(float));
	if (src->options_v1 != NULL)
		strcpy(dst->options_v1, src->options_v1);
	return true;
}

/* The least recently used entry, or an empty one. */
static SessionModel *
session_victim(void)
{
	SessionModel *e = &session_models[0];

	for (int i = 1; i < SESSION_MODELS && e->cxt; i++)
		if (session_models[i].cxt == NULL || session_models[i].last_used < e->last_used)
			e = &session_models[i];
	return e;
}

/*
 * Keep a decoded model for the session, in place of the least recently
 * used, evicting more until it fits mlcnn.model_cache_memory.
 */
static void
session_put(struct varlena *raw, uint32 crc, const nn_model *m, Size blob_bytes)
{
	Size		limit = (Size) mlcnn_model_cache_memory_kb * 1024;
	Size		need = m->net.nparams * sizeof(float) + (Size) m->nepochs * sizeof(nn_epoch);
	SessionModel *e;
	MlcnnAlloc	alloc;
	MemoryContext cxt;
	struct varatt_external ext;

	if (need > limit)
		return;					/* larger than the whole cache: not kept */
	session_evict(session_victim());
	while (session_bytes() + need > limit)
		session_evict(session_victim());
	e = session_victim();
	cxt = AllocSetContextCreate(TopMemoryContext, "mlcnn session model", ALLOCSET_DEFAULT_SIZES);
	MlcnnAllocInit(&alloc, cxt);
	if (!copy_model(&e->model, m, &alloc.a))
	{
		MemoryContextDelete(cxt);	/* no room: simply not kept */
		return;
	}
	e->key_len = VARSIZE_EXTERNAL(raw);
	memcpy(e->key, raw, e->key_len);
	VARATT_EXTERNAL_GET_POINTER(ext, raw);
	e->toastrelid = ext.va_toastrelid;
	e->crc = crc;
	e->blob_bytes = blob_bytes;
	e->held = MemoryContextMemAllocated(cxt, true);
	e->last_used = ++session_clock;
	e->cxt = cxt;
}

/* Does d match the key of mm? */
static bool
key_matches(const MlcnnModel *mm, struct varlena *raw)
{
	if (VARATT_IS_EXTERNAL_ONDISK(raw))
		return mm->key_external && mm->key_len == VARSIZE_EXTERNAL(raw) &&
			memcmp(mm->key, raw, mm->key_len) == 0;
	if (VARATT_IS_EXTERNAL(raw))
		return false;			/* expanded or indirect: decode anew */
	return !mm->key_external && mm->key_len == VARSIZE_ANY(raw) &&
		memcmp(mm->key, raw, mm->key_len) == 0;
}

/* Decode blob into m with allocator a, raising any error. */
void
MlcnnModelDecode(nn_model *m, bytea *blob, const nn_allocator *a)
{
	nn_status	st;

	if (nn_model_read(m, (const uint8_t *) VARDATA_ANY(blob), VARSIZE_ANY_EXHDR(blob), a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	if (m->kind != NN_BLOB_MODEL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expected a model but got a gradient blob"),
				 errhint("Gradients from compute_gradients() go to update_weights().")));
}

/*
 * The decoded model for datum d: from *slot if it holds d, else decoded
 * into it, with inference buffers for up to batch images (none for 0; fewer when
 * mlcnn.max_inference_memory says so: mm->batch). accounted: the slot
 * belongs to an aggregate state, whose memory counts in the training budget.
 */
MlcnnModel *
MlcnnModelGet(MlcnnModel **slot, MemoryContext parent, Datum d, int batch, bool accounted)
{
	struct varlena *raw = (struct varlena *) DatumGetPointer(d);
	MlcnnModel *mm = *slot;
	bytea	   *blob;
	MemoryContext old;
	nn_status	st;
	SessionModel *e;
	uint32		crc = 0;
	Size		crc_len;
	bool		have_crc;

	if (mm && mm->want >= batch && key_matches(mm, raw))
		return mm;

	if (mm == NULL)
	{
		mm = MemoryContextAllocZero(parent, sizeof(MlcnnModel));
		mm->cxt = AllocSetContextCreate(parent, "mlcnn model cache", ALLOCSET_DEFAULT_SIZES);
		*slot = mm;
	}
	else
		MemoryContextReset(mm->cxt);
	if (accounted)
		MlcnnAllocInitAccounted(&mm->alloc, mm->cxt);
	else
		MlcnnAllocInit(&mm->alloc, mm->cxt);
	mm->key = NULL;
	mm->key_len = 0;
	mm->batch = 0;
	mm->nparts = 1;				/* the reset freed any parts */
	mm->want = 0;

	old = MemoryContextSwitchTo(mm->cxt);
	have_crc = MlcnnStoredCrc(raw, &crc, &crc_len);
	if (have_crc && (e = session_find(raw, crc)) != NULL)
	{
		if (!copy_model(&mm->model, &e->model, &mm->alloc.a))
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory copying a model of %zu parameters", e->model.net.nparams)));
		mm->blob_bytes = e->blob_bytes;
		mm->crc = crc;
		blob = NULL;
		elog(DEBUG1, "mlcnn: model of %zu bytes found in the session's cache", mm->blob_bytes);
	}
	else
	{
		blob = (bytea *) PG_DETOAST_DATUM(d);
		mm->blob_bytes = VARSIZE_ANY_EXHDR(blob);
		MlcnnModelDecode(&mm->model, blob, &mm->alloc.a);
		{
			/* the decode checked the checksum in the last four bytes */
			const uint8 *t = (const uint8 *) VARDATA_ANY(blob) + mm->blob_bytes - 4;

			mm->crc = (uint32) t[0] | (uint32) t[1] << 8 | (uint32) t[2] << 16 | (uint32) t[3] << 24;
		}
		elog(DEBUG1, "mlcnn: model of %zu bytes decoded", mm->blob_bytes);
		if (have_crc)
			session_put(raw, crc, &mm->model, mm->blob_bytes);
	}
	/* the budget, measured before the working memory is allocated (batch 0: none wanted) */
	if (batch > 0)
	{
		mm->batch = MlcnnFitBatch(&mm->model.net, batch, false, mm->alloc.cur, "the model");
		/* a cached model never changes: its kernels keep their transformed weights */
		if (nn_work_alloc(&mm->work, &mm->model.net, mm->batch, NN_WORK_FROZEN, &mm->alloc.a, &st) != NN_OK)
			MlcnnReportStatus(&st);
	}
	mm->want = batch;
	mm->generation++;
	if (VARATT_IS_EXTERNAL_ONDISK(raw))
	{
		mm->key_external = true;
		mm->key_len = VARSIZE_EXTERNAL(raw);
	}
	else
	{
		mm->key_external = false;
		mm->key_len = VARATT_IS_EXTERNAL(raw) ? 0 : VARSIZE_ANY(raw);
	}
	if (mm->key_len > 0)
	{
		mm->key = palloc(mm->key_len);
		memcpy(mm->key, raw, mm->key_len);
	}
	if (blob && (Pointer) blob != (Pointer) raw)
		pfree(blob);
	MemoryContextSwitchTo(old);
	return mm;
}

/* The model cached for argument argno of this call site. */
MlcnnModel *
MlcnnModelForCall(FunctionCallInfo fcinfo, int argno, int batch)
{
	return MlcnnModelGet((MlcnnModel **) &fcinfo->flinfo->fn_extra,
						 fcinfo->flinfo->fn_mcxt, PG_GETARG_DATUM(argno), batch, false);
}

/* Serialise m into a new bytea in the current memory context. */
bytea *
MlcnnModelToBytea(const nn_model *m)
{
	Size		len = nn_model_size(m);
	bytea	   *out;

	if (len > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model of %zu bytes is too large for a bytea", len)));
	out = palloc(len + VARHDRSZ);
	SET_VARSIZE(out, len + VARHDRSZ);
	nn_model_write(m, (uint8_t *) VARDATA(out));
	return out;
}

/* nn_parts_run over the core's helper threads: one part each */
static void
run_on_pool(nn_part_fn fn, void *ctx, int nparts, void *run_ctx)
{
	nn_parallel_run(fn, ctx, nparts);
}

/*
 * The parts mm's batches can split into with threads threads: 1 + the
 * works allocated (each for a share of mm->batch), as many as the threads
 * and mlcnn.max_inference_memory allow beside mm->work.
 */
static int
model_parts(MlcnnModel *mm, int threads)
{
	int			want = Min(Min(threads, MLCNN_INFER_PARTS), mm->batch / 8);
	int			share;
	Size		bytes;
	nn_status	st;

	if (want > 1)
		want = Min(want, nn_parallel_threads(want));
	if (want < 2)
		return 1;
	if (want == mm->nparts)
		return want;
	share = (mm->batch + want - 1) / want;
	bytes = (Size) (want - 1) * nn_work_bytes(&mm->model.net, share, NN_WORK_FROZEN);
	if (!MlcnnInferenceFits(mm->work.bytes + bytes))
		return 1;
	/* parts sized for another split: freed, then as many as want */
	for (int p = 0; p < mm->nparts - 1; p++)
		nn_work_free(&mm->parts[p], &mm->alloc.a);
	mm->nparts = 1;
	for (int p = 0; p < want - 1; p++)
	{
		if (nn_work_alloc(&mm->parts[p], &mm->model.net, share, NN_WORK_FROZEN, &mm->alloc.a, &st) != NN_OK)
			MlcnnReportStatus(&st);
		mm->nparts = p + 2;
	}
	return mm->nparts;
}

/*
 * Forward B (<= mm->batch) rows of pixels through the cached model. A
 * batch of many rows is split between the threads (mlcnn.threads), each
 * running its part through OpenBLAS on one thread: the layers between the
 * matrix products run in parallel too.
 */
void
MlcnnModelForward(MlcnnModel *mm, const uint8_t *const *rows, int B, nn_timing *t)
{
	int			threads;
	int			nparts;

	Assert(B <= mm->batch);
	threads = MlcnnSetThreads(B == 1 ? 1 : 0);
	nparts = B >= 16 ? model_parts(mm, threads) : 1;
	if (nparts > 1)
	{
		nn_work    *w[MLCNN_INFER_PARTS];

		MlcnnSetThreads(1);
		w[0] = &mm->work;
		for (int p = 1; p < nparts; p++)
			w[p] = &mm->parts[p - 1];
		if (nn_net_forward_split(&mm->model.net, mm->model.params, mm->model.buffers, w, nparts,
								 rows, B, &mm->model.norm, t, run_on_pool, NULL) != NN_OK)
			MlcnnReportCancel("the forward pass was cancelled");
		return;
	}
	nn_load_pixels(mm->work.act[0], rows, B, mm->model.net.input, &mm->model.norm);
	if (nn_net_forward(&mm->model.net, mm->model.params, mm->model.buffers, &mm->work, B, 0, NULL, t) != NN_OK)
		MlcnnReportCancel("the forward pass was cancelled");
}
