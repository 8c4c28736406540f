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
 */
#include "postgres.h"

#include "access/detoast.h"
#include "utils/memutils.h"

#include "compat.h"
#include "mlcnn_pg.h"

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

/* The decoded model for datum d: from *slot if it holds d, else decoded into it. */
MlcnnModel *
MlcnnModelGet(MlcnnModel **slot, MemoryContext parent, Datum d, int batch)
{
	struct varlena *raw = (struct varlena *) DatumGetPointer(d);
	MlcnnModel *mm = *slot;
	bytea	   *blob;
	MemoryContext old;
	nn_status	st;

	if (mm && mm->batch >= batch && key_matches(mm, raw))
		return mm;

	if (mm == NULL)
	{
		mm = MemoryContextAllocZero(parent, sizeof(MlcnnModel));
		mm->cxt = AllocSetContextCreate(parent, "mlcnn model cache", ALLOCSET_DEFAULT_SIZES);
		MlcnnAllocInit(&mm->alloc, mm->cxt);
		*slot = mm;
	}
	else
	{
		MemoryContextReset(mm->cxt);
		MlcnnAllocInit(&mm->alloc, mm->cxt);
		mm->key = NULL;
		mm->key_len = 0;
		mm->batch = 0;
	}

	old = MemoryContextSwitchTo(mm->cxt);
	blob = (bytea *) PG_DETOAST_DATUM(d);
	mm->blob_bytes = VARSIZE_ANY_EXHDR(blob);
	MlcnnModelDecode(&mm->model, blob, &mm->alloc.a);
	if (nn_work_alloc(&mm->work, &mm->model.net, batch, 0, &mm->alloc.a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	mm->batch = batch;
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
	if ((Pointer) blob != (Pointer) raw)
		pfree(blob);
	MemoryContextSwitchTo(old);
	return mm;
}

/* The model cached for argument argno of this call site. */
MlcnnModel *
MlcnnModelForCall(FunctionCallInfo fcinfo, int argno, int batch)
{
	return MlcnnModelGet((MlcnnModel **) &fcinfo->flinfo->fn_extra,
						 fcinfo->flinfo->fn_mcxt, PG_GETARG_DATUM(argno), batch);
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

/* Error unless len pixels fit the model's input. */
void
MlcnnCheckPixels(const nn_model *m, Size len)
{
	const nn_shape *in = &m->net.input;
	Size		want = (Size) in->h * in->w * in->c;

	if (len != want)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("pixels have %zu bytes but the model's input %dx%dx%d needs %zu",
						len, in->h, in->w, in->c, want)));
}

/* Forward B rows of pixels through the cached model. */
void
MlcnnModelForward(MlcnnModel *mm, const uint8_t *const *rows, int B, nn_timing *t)
{
	MlcnnSetThreads(B == 1 ? 1 : 0);
	nn_load_pixels(mm->work.act[0], rows, B, mm->model.net.input, &mm->model.norm);
	nn_net_forward(&mm->model.net, mm->model.params, &mm->work, B, 0, NULL, t);
}
