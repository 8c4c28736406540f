/*
 * onnx.c: model_to_onnx(model bytea) RETURNS bytea, a model as an ONNX
 * file (the core's onnx.c builds it).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/memutils.h"

#include "mlcnn_pg.h"
#include "model.h"
#include "onnx.h"

PG_FUNCTION_INFO_V1(model_to_onnx);

/* model_to_onnx(model): the model as ONNX (opset 13) bytes */
Datum
model_to_onnx(PG_FUNCTION_ARGS)
{
	bytea	   *blob = PG_GETARG_BYTEA_PP(0);
	MlcnnAlloc	alloc;
	nn_model	m;
	nn_status	st;
	uint8_t    *bytes;
	size_t		len;
	bytea	   *out;

	MlcnnAllocInit(&alloc, CurrentMemoryContext);
	if (nn_model_read(&m, (const uint8_t *) VARDATA_ANY(blob), VARSIZE_ANY_EXHDR(blob), &alloc.a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	if (m.kind != NN_BLOB_MODEL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model_to_onnx takes a model, not a gradient blob")));
	if (nn_model_to_onnx(&m, MLCNN_VERSION, &bytes, &len, &alloc.a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	if (len > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the ONNX file would take %zu bytes, more than a bytea holds", len)));
	out = palloc(VARHDRSZ + len);
	SET_VARSIZE(out, VARHDRSZ + len);
	memcpy(VARDATA(out), bytes, len);
	MlcnnStatsAdd(MLCNN_FN_MODEL_TO_ONNX, 1, 1, 0, NULL, 0, alloc.peak);
	PG_RETURN_BYTEA_P(out);
}
