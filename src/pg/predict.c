/*
 * predict.c: the per-row inference functions: predict, predict_proba,
 * forward_pass and calculate_loss. Each reuses the model decoded for its
 * call site (model_cache.c), so its per-row cost is one forward pass. Each
 * has a bytea and a real[] entry point (the *_real ones).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "compat.h"
#include "mlcnn_pg.h"

PG_FUNCTION_INFO_V1(predict);
PG_FUNCTION_INFO_V1(predict_real);
PG_FUNCTION_INFO_V1(predict_proba);
PG_FUNCTION_INFO_V1(predict_proba_real);
PG_FUNCTION_INFO_V1(forward_pass);
PG_FUNCTION_INFO_V1(forward_pass_real);
PG_FUNCTION_INFO_V1(calculate_loss);
PG_FUNCTION_INFO_V1(calculate_loss_real);

/* Run one row (argument 1, of dtype) through the model of argument 0; returns the logits. */
static const float *
forward_one(FunctionCallInfo fcinfo, int32 dtype, MlcnnModel **out, nn_timing *t)
{
	MlcnnPixels px;
	MlcnnModel *mm;

	MlcnnGetPixels(fcinfo, 1, dtype, &px);
	mm = MlcnnModelForCall(fcinfo, 0, 1);
	MlcnnCheckPixels(&mm->model, &px);
	MlcnnModelForward(mm, &px.data, 1, t);
	*out = mm;
	return mm->work.act[mm->model.net.nlayers];
}

/* A real[] of n floats. */
static ArrayType *
float_array(const float *v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		d[i] = Float4GetDatum(v[i]);
	return construct_array(d, n, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT);
}

/* predict(model, pixels): the class with the largest logit. */
static Datum
predict_common(FunctionCallInfo fcinfo, int32 dtype)
{
	double		t0 = nn_now();
	nn_timing	t = {0};
	MlcnnModel *mm;
	const float *logits = forward_one(fcinfo, dtype, &mm, &t);
	int			best = nn_argmax(logits, mm->model.net.classes);

	MlcnnStatsAdd(MLCNN_FN_PREDICT, 1, 1, nn_now() - t0, &t, 0, mm->work.bytes);
	PG_RETURN_INT32(best);
}

/* predict_proba(model, pixels): softmax probabilities per class. */
static Datum
predict_proba_common(FunctionCallInfo fcinfo, int32 dtype)
{
	double		t0 = nn_now();
	nn_timing	t = {0};
	MlcnnModel *mm;
	const float *logits = forward_one(fcinfo, dtype, &mm, &t);
	int			K = mm->model.net.classes;
	float	   *probs = palloc(sizeof(float) * K);
	ArrayType  *result;

	nn_softmax(probs, logits, K);
	result = float_array(probs, K);
	MlcnnStatsAdd(MLCNN_FN_PREDICT_PROBA, 1, 1, nn_now() - t0, &t, 0, mm->work.bytes);
	PG_RETURN_ARRAYTYPE_P(result);
}

/* forward_pass(model, pixels): the output logits, before softmax. */
static Datum
forward_pass_common(FunctionCallInfo fcinfo, int32 dtype)
{
	double		t0 = nn_now();
	nn_timing	t = {0};
	MlcnnModel *mm;
	const float *logits = forward_one(fcinfo, dtype, &mm, &t);
	ArrayType  *result = float_array(logits, mm->model.net.classes);

	MlcnnStatsAdd(MLCNN_FN_FORWARD_PASS, 1, 1, nn_now() - t0, &t, 0, mm->work.bytes);
	PG_RETURN_ARRAYTYPE_P(result);
}

/* calculate_loss(model, pixels, label): cross-entropy of one row. */
static Datum
calculate_loss_common(FunctionCallInfo fcinfo, int32 dtype)
{
	double		t0 = nn_now();
	nn_timing	t = {0};
	int32		label = PG_GETARG_INT32(2);
	MlcnnModel *mm;
	const float *logits;
	double		loss;

	/* the model is decoded before the label check so the class count is known */
	logits = forward_one(fcinfo, dtype, &mm, &t);
	if (label < 0 || label >= mm->model.net.classes)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("label %d is outside the model's classes 0..%d",
						label, mm->model.net.classes - 1)));
	(void) logits;
	loss = nn_net_loss(&mm->model.net, &mm->work, &label, 1, NULL, &t);
	MlcnnStatsAdd(MLCNN_FN_CALCULATE_LOSS, 1, 1, nn_now() - t0, &t, 0, mm->work.bytes);
	PG_RETURN_FLOAT8(loss);
}

/* predict(model bytea, pixels bytea) */
Datum
predict(PG_FUNCTION_ARGS)
{
	return predict_common(fcinfo, NN_DTYPE_UINT8);
}

/* predict(model bytea, pixels real[]) */
Datum
predict_real(PG_FUNCTION_ARGS)
{
	return predict_common(fcinfo, NN_DTYPE_FLOAT32);
}

/* predict_proba(model bytea, pixels bytea) */
Datum
predict_proba(PG_FUNCTION_ARGS)
{
	return predict_proba_common(fcinfo, NN_DTYPE_UINT8);
}

/* predict_proba(model bytea, pixels real[]) */
Datum
predict_proba_real(PG_FUNCTION_ARGS)
{
	return predict_proba_common(fcinfo, NN_DTYPE_FLOAT32);
}

/* forward_pass(model bytea, pixels bytea) */
Datum
forward_pass(PG_FUNCTION_ARGS)
{
	return forward_pass_common(fcinfo, NN_DTYPE_UINT8);
}

/* forward_pass(model bytea, pixels real[]) */
Datum
forward_pass_real(PG_FUNCTION_ARGS)
{
	return forward_pass_common(fcinfo, NN_DTYPE_FLOAT32);
}

/* calculate_loss(model bytea, pixels bytea, label integer) */
Datum
calculate_loss(PG_FUNCTION_ARGS)
{
	return calculate_loss_common(fcinfo, NN_DTYPE_UINT8);
}

/* calculate_loss(model bytea, pixels real[], label integer) */
Datum
calculate_loss_real(PG_FUNCTION_ARGS)
{
	return calculate_loss_common(fcinfo, NN_DTYPE_FLOAT32);
}
