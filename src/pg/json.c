/*
 * json.c: the one writer of mlcnn's jsonb results (model_info, evaluate,
 * the options as stored), on PostgreSQL's own jsonb builder.
 *
 * Each call adds one value, under a key inside an object or as the next
 * element inside an array (key NULL), through pushJsonbValue; the closing
 * call of the outermost container leaves the tree for MlcnnJsonFinish,
 * which makes the Jsonb with JsonbValueToJsonb. Numbers become numeric:
 * integers exactly, floats in PostgreSQL's shortest form that reads back
 * as the same float (float4out's and float8out's), and non-finite floats,
 * which JSON cannot hold, null.
 */
#include "postgres.h"

#include <math.h>

#include "common/shortest_dec.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "mlcnn_pg.h"

/* Push the key of the next value, when there is one. */
static void
push_key(MlcnnJson *j, const char *key)
{
	JsonbValue	k;

	if (key == NULL)
		return;
	k.type = jbvString;
	k.val.string.len = strlen(key);
	k.val.string.val = pstrdup(key);
	pushJsonbValue(&j->state, WJB_KEY, &k);
}

/* Push a scalar under key (in an object) or as the next element (in an array). */
static void
push_scalar(MlcnnJson *j, const char *key, JsonbValue *v)
{
	Assert(j->state != NULL);
	push_key(j, key);
	pushJsonbValue(&j->state, j->state->contVal.type == jbvArray ? WJB_ELEM : WJB_VALUE, v);
}

/* Push a number given as decimal text. */
static void
push_numeric_text(MlcnnJson *j, const char *key, const char *text)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text),
														ObjectIdGetDatum(InvalidOid),
														Int32GetDatum(-1)));
	push_scalar(j, key, &v);
}

/* Start a document, an object or an array under key. */
static void
begin(MlcnnJson *j, const char *key, JsonbIteratorToken token)
{
	if (j->state != NULL)
		push_key(j, key);
	pushJsonbValue(&j->state, token, NULL);
}

/* Close the innermost container; the outermost leaves the result. */
static void
end(MlcnnJson *j, JsonbIteratorToken token)
{
	JsonbValue *v = pushJsonbValue(&j->state, token, NULL);

	if (j->state == NULL)
		j->result = v;
}

/* An empty writer. */
void
MlcnnJsonInit(MlcnnJson *j)
{
	j->state = NULL;
	j->result = NULL;
}

/* Open an object (key NULL for the document or an array element). */
void
MlcnnJsonBeginObject(MlcnnJson *j, const char *key)
{
	begin(j, key, WJB_BEGIN_OBJECT);
}

/* Close the innermost object. */
void
MlcnnJsonEndObject(MlcnnJson *j)
{
	end(j, WJB_END_OBJECT);
}

/* Open an array. */
void
MlcnnJsonBeginArray(MlcnnJson *j, const char *key)
{
	begin(j, key, WJB_BEGIN_ARRAY);
}

/* Close the innermost array. */
void
MlcnnJsonEndArray(MlcnnJson *j)
{
	end(j, WJB_END_ARRAY);
}

/* An integer. */
void
MlcnnJsonInt(MlcnnJson *j, const char *key, int64 value)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(value);
	push_scalar(j, key, &v);
}

/* A float32 in its shortest exact form; null when not finite. */
void
MlcnnJsonFloat4(MlcnnJson *j, const char *key, float value)
{
	char		buf[FLOAT_SHORTEST_DECIMAL_LEN];

	if (!isfinite(value))
	{
		MlcnnJsonNull(j, key);
		return;
	}
	float_to_shortest_decimal_buf(value, buf);
	push_numeric_text(j, key, buf);
}

/* A float64 in its shortest exact form; null when not finite. */
void
MlcnnJsonFloat8(MlcnnJson *j, const char *key, double value)
{
	char		buf[DOUBLE_SHORTEST_DECIMAL_LEN];

	if (!isfinite(value))
	{
		MlcnnJsonNull(j, key);
		return;
	}
	double_to_shortest_decimal_buf(value, buf);
	push_numeric_text(j, key, buf);
}

/* A string (copied). */
void
MlcnnJsonText(MlcnnJson *j, const char *key, const char *value)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.len = strlen(value);
	v.val.string.val = pstrdup(value);
	push_scalar(j, key, &v);
}

/* A boolean. */
void
MlcnnJsonBool(MlcnnJson *j, const char *key, bool value)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = value;
	push_scalar(j, key, &v);
}

/* null. */
void
MlcnnJsonNull(MlcnnJson *j, const char *key)
{
	JsonbValue	v;

	v.type = jbvNull;
	push_scalar(j, key, &v);
}

/* The finished document as a Jsonb. */
Jsonb *
MlcnnJsonFinish(MlcnnJson *j)
{
	if (j->state != NULL || j->result == NULL)
		elog(ERROR, "mlcnn jsonb document is not closed. Please report a bug.");
	return JsonbValueToJsonb(j->result);
}
