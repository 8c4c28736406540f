/*
 * options.c: train_conv2d's jsonb options into the core's typed options,
 * and back out as jsonb.
 *
 * PostgreSQL has parsed and checked the jsonb already, so nothing here
 * reads JSON text: the top-level object is walked with a jsonb iterator
 * and each member is handed to the core's nn_options_set() as a typed value
 * (null, boolean, integer or number, string, array with its first few
 * elements, object), which checks it against the core's option table. A
 * number's text (numeric_out) travels with it, so messages show what was
 * written. The core's "did you mean" uses varstr_levenshtein.
 *
 * Format-1 models stored their options as canonical JSON text; their
 * typed options are read here, through the same walk, when model_info or
 * update_weights needs them.
 */
#include "postgres.h"

#include <errno.h>
#include <stdlib.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/varlena.h"

#include "mlcnn_pg.h"

/* The core's "did you mean" distance: PostgreSQL's Levenshtein (keys are short). */
static int
option_distance(const char *a, const char *b)
{
	return varstr_levenshtein(a, (int) strlen(a), b, (int) strlen(b), 1, 1, 1, true);
}

/* Point the core's option-name distance at varstr_levenshtein (from _PG_init). */
void
MlcnnOptionsInit(void)
{
	nn_option_distance = option_distance;
}

/* A jsonb number as an nn_value: an integer when it is a whole one that fits int64. */
static void
number_value(Numeric num, nn_value *v)
{
	char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(num)));
	char	   *dot = strchr(text, '.');
	char	   *end;
	bool		whole = dot == NULL || dot[strspn(dot + 1, "0") + 1] == '\0';

	v->shown = text;
	if (whole)
	{
		char	   *digits = dot ? pnstrdup(text, dot - text) : text;

		errno = 0;
		v->i = strtoll(digits, &end, 10);
		if (errno == 0 && *end == '\0')
		{
			v->kind = NN_VALUE_INT;
			return;
		}
	}
	v->kind = NN_VALUE_FLOAT;
	v->f = strtod(text, NULL);	/* inf beyond a double: the range check refuses it */
}

/*
 * A jsonb value as an nn_value; items (NN_VALUE_MAX_ITEMS of them) hold an
 * array's first elements, whose own containers are described but not
 * opened.
 */
static void
to_value(JsonbValue *jv, nn_value *v, nn_value *items)
{
	memset(v, 0, sizeof(*v));
	switch (jv->type)
	{
		case jbvNull:
			v->kind = NN_VALUE_NULL;
			break;
		case jbvBool:
			v->kind = NN_VALUE_BOOL;
			v->b = jv->val.boolean;
			break;
		case jbvString:
			v->kind = NN_VALUE_TEXT;
			v->s = jv->val.string.val;
			v->len = jv->val.string.len;
			break;
		case jbvNumeric:
			number_value(jv->val.numeric, v);
			break;
		case jbvBinary:
			if (JsonContainerIsArray(jv->val.binary.data) && items != NULL)
			{
				v->kind = NN_VALUE_ARRAY;
				v->nitems = (int) JsonContainerSize(jv->val.binary.data);
				v->items = items;
				for (int i = 0; i < v->nitems && i < NN_VALUE_MAX_ITEMS; i++)
					to_value(getIthJsonbValueFromContainer(jv->val.binary.data, i), &items[i], NULL);
			}
			else
				v->kind = JsonContainerIsArray(jv->val.binary.data) ? NN_VALUE_ARRAY : NN_VALUE_OBJECT;
			break;
		default:
			v->kind = NN_VALUE_OBJECT;
			break;
	}
}

/*
 * The members of object c as options, each named prefix_member when prefix
 * is given; the object under "augment" ({"hflip": true, "shift": 2}) is
 * read the same way with that prefix (augment_hflip, augment_shift).
 */
static int
set_members(nn_options *o, JsonbContainer *c, const char *prefix, nn_status *st)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbIteratorToken r;
	JsonbValue	k,
				val;
	nn_value	v;
	nn_value	items[NN_VALUE_MAX_ITEMS];

	while ((r = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (r != WJB_KEY)
			continue;
		key = prefix ? psprintf("%s_%.*s", prefix, k.val.string.len, k.val.string.val) :
			pnstrdup(k.val.string.val, k.val.string.len);
		r = JsonbIteratorNext(&it, &val, true);
		Assert(r == WJB_VALUE);
		if (prefix == NULL && strcmp(key, "augment") == 0 &&
			val.type == jbvBinary && JsonContainerIsObject(val.val.binary.data))
		{
			if (set_members(o, val.val.binary.data, key, st) != NN_OK)
				return st->code;
		}
		else
		{
			to_value(&val, &v, items);
			if (nn_options_set(o, key, &v, st) != NN_OK)
				return st->code;
		}
		pfree(key);
	}
	return NN_OK;
}

/*
 * Apply the options jsonb jb over *o through the core's table. On an
 * error *st says what (the core's words) and *o is unchanged.
 */
int
MlcnnOptionsFromJsonb(nn_options *o, Jsonb *jb, nn_status *st)
{
	nn_options	t = *o;
	JsonbValue	val;
	nn_value	v;

	if (!JB_ROOT_IS_OBJECT(jb))
	{
		char		what[64];

		memset(&v, 0, sizeof(v));
		v.kind = NN_VALUE_ARRAY;
		if (JB_ROOT_IS_SCALAR(jb) && JsonbExtractScalar(&jb->root, &val))
			to_value(&val, &v, NULL);
		nn_value_describe(&v, what, sizeof(what));
		return nn_fail(st, NN_ERR_INVALID, "options must be a JSON object, not %s", what);
	}
	if (set_members(&t, &jb->root, NULL, st) != NN_OK)
		return st->code;
	*o = t;
	return NN_OK;
}

/* Option d of o as a jsonb value under its name. */
void
MlcnnJsonOption(MlcnnJson *j, const nn_option_def *d, const nn_options *o)
{
	switch (d->type)
	{
		case NN_OPTION_INT:
			MlcnnJsonInt(j, d->name, nn_option_int(o, d));
			break;
		case NN_OPTION_FLOAT:
			MlcnnJsonFloat4(j, d->name, nn_option_float(o, d));
			break;
		case NN_OPTION_BOOL:
			MlcnnJsonBool(j, d->name, nn_option_int(o, d) != 0);
			break;
		case NN_OPTION_TEXT:
		case NN_OPTION_ENUM:
			MlcnnJsonText(j, d->name, nn_option_text(o, d));
			break;
		case NN_OPTION_SHAPE:
			{
				nn_shape	s = nn_option_shape(o, d);

				if (s.h == 0 && s.w == 0 && s.c == 0)
					MlcnnJsonNull(j, d->name);
				else
				{
					MlcnnJsonBeginArray(j, d->name);
					MlcnnJsonInt(j, NULL, s.h);
					MlcnnJsonInt(j, NULL, s.w);
					MlcnnJsonInt(j, NULL, s.c);
					MlcnnJsonEndArray(j);
				}
			}
			break;
	}
}

/* The options o as a jsonb object under key: every option of the table. */
void
MlcnnJsonOptions(MlcnnJson *j, const char *key, const nn_options *o)
{
	MlcnnJsonBeginObject(j, key);
	for (int i = 0; i < nn_option_count; i++)
		MlcnnJsonOption(j, &nn_option_table[i], o);
	MlcnnJsonEndObject(j);
}

/*
 * Apply one option, key = jv (a jsonb value), over *o through the core's
 * table, as if it were the only member of an options object.
 */
int
MlcnnOptionSetJsonb(nn_options *o, const char *key, JsonbValue *jv, nn_status *st)
{
	JsonbParseState *ps = NULL;
	JsonbValue	k;
	JsonbValue *res;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = (int) strlen(key);
	pushJsonbValue(&ps, WJB_BEGIN_OBJECT, NULL);
	pushJsonbValue(&ps, WJB_KEY, &k);
	pushJsonbValue(&ps, WJB_VALUE, jv);
	res = pushJsonbValue(&ps, WJB_END_OBJECT, NULL);
	return MlcnnOptionsFromJsonb(o, JsonbValueToJsonb(res), st);
}

/*
 * A format-1 model's options (JSON text kept by the core) into its typed
 * options, through jsonb and the table; bad text is a corrupt model (XX001).
 * Models of format 2 carry typed options and are left alone.
 */
void
MlcnnModelOptionsV1(nn_model *m)
{
	JsonLexContext *lex;
	Jsonb	   *jb;
	nn_options	o;
	nn_status	st;

	if (m->options_v1 == NULL)
		return;
	lex = makeJsonLexContextCstringLen(m->options_v1, (int) strlen(m->options_v1),
									   GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &nullSemAction) != JSON_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model is corrupt: bad options: its format-1 options are not valid JSON")));
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(m->options_v1)));
	nn_options_default(&o);
	if (MlcnnOptionsFromJsonb(&o, jb, &st) != NN_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model is corrupt: bad options: %s", st.msg)));
	m->options = o;
}
