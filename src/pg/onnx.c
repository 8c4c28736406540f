/*
 * onnx.c: model_to_onnx(model bytea) RETURNS bytea, a model as an ONNX
 * file (the core's onnx.c builds it), and model_from_onnx(onnx bytea,
 * options jsonb), a model from one (the core's onnx_import.c reads it).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "mlcnn_pg.h"
#include "model.h"
#include "onnx.h"
#include "options.h"

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

/* the "input_type" of jb: -1 when absent (the file's mlcnn metadata decides), else bytea or real[] */
static int32
json_input_type(Jsonb *jb)
{
	JsonbValue *jv;
	char	   *v;

	jv = MlcnnJsonbMember(jb, "input_type");
	if (jv == NULL)
		return -1;
	v = jv->type == jbvString ? pnstrdup(jv->val.string.val, jv->val.string.len) : NULL;
	if (v && strcmp(v, "bytea") == 0)
		return NN_DTYPE_UINT8;
	if (v && (strcmp(v, "real[]") == 0 || strcmp(v, "real") == 0 || strcmp(v, "float4[]") == 0))
		return NN_DTYPE_FLOAT32;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"input_type\" must be \"bytea\" or \"real[]\"")));
	return -1;					/* not reached */
}

PG_FUNCTION_INFO_V1(model_from_onnx);

/* model_from_onnx(onnx, options): an mlcnn model from an ONNX file */
Datum
model_from_onnx(PG_FUNCTION_ARGS)
{
	bytea	   *file = PG_GETARG_BYTEA_PP(0);
	Jsonb	   *jb = PG_GETARG_JSONB_P(1);
	Jsonb	   *rest;
	MlcnnAlloc	alloc;
	nn_onnx_import_opts o;
	nn_options	opt;
	nn_model	m;
	nn_status	st;
	bytea	   *out;

	memset(&o, 0, sizeof(o));
	if (!JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object")));
	if ((MlcnnJsonbMember(jb, "layers") != NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model_from_onnx takes the layers from the file, not from option \"layers\"")));
	/* mean, std and input_type are the import's own; the rest is the option table's */
	{
		double		d;

		if (MlcnnJsonbNumber(jb, "mean", "option ", &d))
			o.mean = (float) d;
		if (MlcnnJsonbNumber(jb, "std", "option ", &d))
			o.std = (float) d;
	}
	o.dtype = json_input_type(jb);
	rest = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(jb), CStringGetTextDatum("mean")));
	rest = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(rest), CStringGetTextDatum("std")));
	rest = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(rest), CStringGetTextDatum("input_type")));
	nn_options_default(&opt);
	if (MlcnnOptionsFromJsonb(&opt, rest, &st) != NN_OK)
		MlcnnReportStatus(&st);
	/* without "normalize" (or with "auto") the network gets the pixels as they are, as the file's input does */
	o.normalize_given = (MlcnnJsonbMember(jb, "normalize") != NULL) && opt.normalize != NN_NORM_AUTO;
	o.normalize = o.normalize_given ? opt.normalize : NN_NORM_NONE;
	if (o.normalize_given && opt.normalize == NN_NORM_ZSCORE && !((MlcnnJsonbMember(jb, "mean") != NULL) && (MlcnnJsonbMember(jb, "std") != NULL) && o.std > 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"normalize\": \"zscore\" needs \"mean\" and a positive \"std\" (of pixel / 255, or of the value for real[])")));
	if (o.normalize_given && opt.normalize == NN_NORM_MINMAX && o.dtype == NN_DTYPE_FLOAT32)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"normalize\": \"minmax\" of real[] inputs needs the training rows' range: give \"zscore\" with \"mean\" and \"std\" instead")));
	o.classes = (MlcnnJsonbMember(jb, "classes") != NULL) ? opt.classes : 0;
	o.input = opt.input;

	MlcnnAllocInit(&alloc, CurrentMemoryContext);
	if (nn_model_from_onnx(&m, (const uint8_t *) VARDATA_ANY(file), VARSIZE_ANY_EXHDR(file), &o, &alloc.a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	/* the training options for a later train_conv2d(init_model): the file's network, the caller's rest */
	snprintf(opt.layers, sizeof(opt.layers), "%s", m.options.layers);
	opt.input = m.options.input;
	opt.classes = m.options.classes;
	opt.normalize = m.norm.mode;
	m.options = opt;
	out = MlcnnModelToBytea(&m);
	MlcnnStatsAdd(MLCNN_FN_MODEL_FROM_ONNX, 1, 1, 0, NULL, 0, alloc.peak);
	PG_RETURN_BYTEA_P(out);
}
