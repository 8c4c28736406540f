/*
 * pixels.c: a row's values as every mlcnn function takes them, bytea
 * (one byte per value) or real[] (float4 per value, flattened row-major
 * whatever the array's dimensions), and the checks that they fit a model.
 *
 * Each SQL function that takes pixels has a bytea and a real[] form, bound
 * to two C entry points that pass the element type down: a datum does not
 * say whether it is a bytea or an array.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/array.h"

#include "compat.h"
#include "mlcnn_pg.h"

/* The SQL type of an element type, for messages and model_info. */
const char *
MlcnnDtypeSqlName(int32 dtype)
{
	return dtype == NN_DTYPE_FLOAT32 ? "real[]" : "bytea";
}

/* Error unless the n floats at v are finite, naming the first that is not (1-based). */
static void
check_finite(const float *v, Size n)
{
	for (Size i = 0; i < n; i++)
		if (!isfinite(v[i]))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("pixels element %zu is %s", i + 1,
							isnan(v[i]) ? "NaN" : v[i] > 0 ? "Infinity" : "-Infinity"),
					 errdetail("Inputs must be finite numbers.")));
}

/* Error naming the first NULL element (1-based) of an array that has some. */
static void
check_no_nulls(ArrayType *a, Size n)
{
	bits8	   *bitmap = ARR_NULLBITMAP(a);

	if (bitmap == NULL)
		return;
	for (Size i = 0; i < n; i++)
		if ((bitmap[i / 8] & (1 << (i % 8))) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("pixels element %zu is NULL", i + 1),
					 errdetail("Inputs must be finite numbers.")));
}

/* Argument argno as pixels of dtype: its values, checked, without a copy where it can. */
void
MlcnnGetPixels(FunctionCallInfo fcinfo, int argno, int32 dtype, MlcnnPixels *px)
{
	px->dtype = dtype;
	if (dtype == NN_DTYPE_FLOAT32)
	{
		ArrayType  *a = PG_GETARG_ARRAYTYPE_P(argno);
		Size		n = (Size) ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));

		if (ARR_ELEMTYPE(a) != FLOAT4OID)
			elog(ERROR, "pixels must be a real[]");
		check_no_nulls(a, n);
		check_finite((const float *) ARR_DATA_PTR(a), n);
		px->data = (const uint8 *) ARR_DATA_PTR(a);
		px->values = n;
		px->bytes = n * sizeof(float);
	}
	else
	{
		bytea	   *b = PG_GETARG_BYTEA_PP(argno);

		px->data = (const uint8 *) VARDATA_ANY(b);
		px->values = px->bytes = VARSIZE_ANY_EXHDR(b);
	}
}

/* Error unless the pixels are of the model's element type and fill its input. */
void
MlcnnCheckPixels(const nn_model *m, const MlcnnPixels *px)
{
	const nn_shape *in = &m->net.input;
	Size		want = (Size) in->h * in->w * in->c;

	if (px->dtype != m->norm.dtype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the model takes %s pixels, not %s", MlcnnDtypeSqlName(m->norm.dtype),
						MlcnnDtypeSqlName(px->dtype)),
				 errhint("A model is trained on bytea or on real[] rows and takes the same type afterwards.")));
	if (px->values != want)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("pixels have %zu %s but the model's input %dx%dx%d needs %zu",
						px->values, px->dtype == NN_DTYPE_FLOAT32 ? "values" : "bytes",
						in->h, in->w, in->c, want)));
}
