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

/* ------------------------------------------------------------ reading */

/* The member key of the object jb, or NULL. */
JsonbValue *
MlcnnJsonbMember(Jsonb *jb, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = (int) strlen(key);
	return findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
}

/* The number under key (an ERROR 22023 naming who and key when it is not one), or NULL. */
bool
MlcnnJsonbNumber(Jsonb *jb, const char *key, const char *who, double *v)
{
	JsonbValue *jv = MlcnnJsonbMember(jb, key);

	if (jv == NULL)
		return false;
	if (jv->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s\"%s\" must be a number", who, key)));
	*v = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(jv->val.numeric)));
	return true;
}

/* The whole number under key in [lo, hi] (22023 otherwise, naming who and key), or dflt when absent. */
int32
MlcnnJsonbInt(Jsonb *jb, const char *key, int32 lo, int32 hi, int32 dflt, const char *who)
{
	double		d;

	if (!MlcnnJsonbNumber(jb, key, who, &d))
		return dflt;
	if (d != floor(d) || d < lo || d > hi)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s\"%s\" must be a whole number from %d to %d, not %g", who, key, lo, hi, d)));
	return (int32) d;
}
