/*
 * distributed.c: train_distributed(relation, options), data-parallel
 * training where every shard of a relation trains on its own rows and only
 * models cross the network.
 *
 * The shards are the relation's leaf partitions (a plain table is one
 * shard); a partition may be a postgres_fdw foreign table on another
 * server. Each round is one query: the UNION ALL of one train_conv2d per
 * shard, from the current global model (none in the first round, when every
 * shard starts from the same seeded weights), under average_models weighted
 * by the rows each shard trained on. On a foreign partition whose server
 * lists mlcnn in its "extensions" option, postgres_fdw pushes the whole
 * aggregate down: the remote server trains on its rows and returns one
 * model; with async_capable the shards' servers train at the same time (an
 * Append of foreign scans). On a Citus distributed table the shards are
 * Citus's: each round runs train_conv2d on every shard on its worker through
 * run_command_on_shards (the global model goes out as a literal in the
 * command, each shard's model comes back as hex text). local_epochs per
 * round, rounds rounds: model averaging (MADlib's, federated averaging's).
 * The shards' models are averaged in the order of their bytes (Citus: of
 * their shard ids), whatever order they arrive in, so a fixed layout gives
 * the same model.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "compat.h"
#include "mlcnn_pg.h"

PG_FUNCTION_INFO_V1(train_distributed);

/* train_distributed's own keys; everything else is a training option */
static const char *const own_keys[] = {"pixels_column", "label_column", "rounds", "local_epochs"};

/* Error 22023 about the options. */
static void
dist_error(const char *msg) pg_attribute_noreturn();

static void
dist_error(const char *msg)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("train_distributed: %s", msg)));
}

/* A text member, or dflt. */
static char *
text_member(Jsonb *jb, const char *key, const char *dflt)
{
	JsonbValue *v = MlcnnJsonbMember(jb, key);

	if (v == NULL)
		return pstrdup(dflt);
	if (v->type != jbvString || v->val.string.len == 0)
		dist_error(psprintf("\"%s\" must be a column name", key));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The type of column col of rel, or an error naming it. */
static Oid
column_type(Oid rel, const char *col)
{
	AttrNumber	att = get_attnum(rel, col);

	if (att == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("train_distributed: relation %s has no column \"%s\"", get_rel_name(rel), col)));
	return get_atttype(rel, att);
}

/* train_distributed(relation, options): rounds of local training on every shard, averaged. */
Datum
train_distributed(PG_FUNCTION_ARGS)
{
	Oid			rel = PG_GETARG_OID(0);
	Jsonb	   *opts = PG_GETARG_JSONB_P(1);
	Jsonb	   *train = opts;
	char	   *pix,
			   *lab;
	int32		rounds,
				local_epochs;
	nn_options	o;
	nn_status	st;
	Oid			ptype;
	const char *schema = quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)));
	MemoryContext outer = CurrentMemoryContext;
	StringInfoData q;
	int			nshards = 0;
	char	  **shards = NULL;
	bytea	   *model = NULL;
	nn_rounds	rec;
	nn_model	m;
	MlcnnAlloc	alloc;
	bytea	   *result;
	double		t0 = nn_now();
	bool		citus = false;

	if (!JB_ROOT_IS_OBJECT(opts))
		dist_error("options must be a JSON object");
	pix = text_member(opts, "pixels_column", "pixels");
	lab = text_member(opts, "label_column", "label");
	rounds = MlcnnJsonbInt(opts, "rounds", 1, NN_MAX_ROUNDS, 5, "train_distributed: ");
	local_epochs = MlcnnJsonbInt(opts, "local_epochs", 1, NN_MAX_EPOCHS, 1, "train_distributed: ");
	if (MlcnnJsonbMember(opts, "epochs"))
		dist_error("\"epochs\" is local_epochs per round (rounds x local_epochs in all)");
	for (int i = 0; i < (int) lengthof(own_keys); i++)
		train = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(train),
												   CStringGetTextDatum(own_keys[i])));
	train = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(train),
											   DirectFunctionCall1(jsonb_in, CStringGetDatum(psprintf("{\"epochs\": %d}", local_epochs)))));
	nn_options_default(&o);
	if (MlcnnOptionsFromJsonb(&o, train, &st) != NN_OK)
		MlcnnReportStatus(&st);
	if (o.normalize == NN_NORM_ZSCORE)
		dist_error("\"normalize\": \"zscore\" would give every shard statistics of its own; use minmax or none");
	ptype = column_type(rel, pix);
	if (ptype != BYTEAOID && ptype != FLOAT4ARRAYOID)
		dist_error(psprintf("column \"%s\" must be bytea or real[], not %s", pix, format_type_be(ptype)));
	if (column_type(rel, lab) != INT4OID)
		dist_error(psprintf("column \"%s\" must be an integer", lab));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* a Citus distributed table: its shards are Citus's, trained through run_command_on_shards */
	{
		Oid			argt[1] = {REGCLASSOID};
		Datum		argv[1] = {ObjectIdGetDatum(rel)};

		if (SPI_execute("SELECT 1 WHERE pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL",
						true, 0) == SPI_OK_SELECT && SPI_processed == 1 &&
			SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1",
								  1, argt, argv, NULL, true, 0) == SPI_OK_SELECT && SPI_processed == 1)
			citus = true;
	}
	/* the shards: the leaf partitions, by name (a plain table is its own) */
	if (!citus)
	{
		Oid			argt[1] = {REGCLASSOID};
		Datum		argv[1] = {ObjectIdGetDatum(rel)};

		if (SPI_execute_with_args("SELECT relid::regclass::text FROM pg_catalog.pg_partition_tree($1) "
								  "WHERE isleaf ORDER BY 1", 1, argt, argv, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "train_distributed: listing the partitions failed");
		nshards = (int) SPI_processed;
		shards = MemoryContextAlloc(outer, sizeof(char *) * Max(nshards, 1));
		for (int i = 0; i < nshards; i++)
			shards[i] = MemoryContextStrdup(outer, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		if (nshards == 0)
		{
			/* not partitioned: the relation is the one shard */
			shards[0] = MemoryContextStrdup(outer, DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(rel))));
			nshards = 1;
		}
	}
	/* one round's query: a train_conv2d per shard, averaged by the rows each trained on */
	initStringInfo(&q);
	appendStringInfo(&q, "SELECT %s.average_models(m, w ORDER BY k), count(m), sum(w)::int8, "
					 "sum(w * a) / nullif(sum(w) FILTER (WHERE a IS NOT NULL), 0), count(*), "
					 "min(err) FILTER (WHERE err IS NOT NULL) FROM ("
					 "SELECT k, m, err, (i->>'rows_trained')::float8 AS w, "
					 "(i->'history'->-1->>'validation_accuracy')::float8 AS a FROM ("
					 "SELECT %s, %s.model_info(m) AS i FROM (",
					 schema, citus ? "k, m, err" : "m AS k, m, NULL::text AS err", schema);
	if (citus)
	{
		/*
		 * Citus runs the command on every shard, in parallel, on its worker;
		 * the global model goes in the command as a literal, each shard's
		 * model comes back as hex text
		 */
		appendStringInfo(&q, "SELECT shardid AS k, CASE WHEN success AND result <> '' THEN decode(result, 'hex') END AS m, "
						 "CASE WHEN NOT success THEN result END AS err "
						 "FROM run_command_on_shards($3, format('SELECT encode(%%1$s.train_conv2d(%%2$I, %%3$I, %%4$L::jsonb, %%5$s), ''hex'') FROM %%%%s', "
						 "%s, %s, %s, $1::text, CASE WHEN $2 IS NULL THEN 'NULL::bytea' ELSE format('decode(%%L, ''hex'')', encode($2, 'hex')) END))",
						 quote_literal_cstr(schema), quote_literal_cstr(pix), quote_literal_cstr(lab));
		nshards = 0;
	}
	else
	{
		/*
		 * Each branch only the aggregate, so that it is a bare (async) foreign
		 * scan of a pushed-down aggregate; the models arrive in any order and
		 * are averaged in the order of their bytes
		 */
		for (int i = 0; i < nshards; i++)
			appendStringInfo(&q, "%sSELECT %s.train_conv2d(%s, %s, $1, $2) AS m FROM %s",
							 i ? " UNION ALL " : "", schema, quote_identifier(pix), quote_identifier(lab), shards[i]);
	}
	appendStringInfoString(&q, citus ? ") u) v) s" : ") u(m)) v) s");

	memset(&rec, 0, sizeof(rec));
	rec.shards = nshards;
	rec.local_epochs = local_epochs;
	rec.nrounds = rounds;
	rec.round = MemoryContextAllocZero(outer, sizeof(nn_round) * rounds);
	for (int r = 0; r < rounds; r++)
	{
		Oid			argt[3] = {JSONBOID, BYTEAOID, REGCLASSOID};
		Datum		argv[3] = {JsonbPGetDatum(train), PointerGetDatum(model), ObjectIdGetDatum(rel)};
		char		nulls[3] = {' ', model ? ' ' : 'n', ' '};
		double		tr = nn_now();
		bool		isnull;
		Datum		d;
		nn_round   *x = &rec.round[r];

		CHECK_FOR_INTERRUPTS();
		if (SPI_execute_with_args(q.data, citus ? 3 : 2, argt, argv, nulls, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "train_distributed: round %d failed", r + 1);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6, &isnull);
		if (!isnull)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("train_distributed: round %d: a shard failed: %s", r + 1, TextDatumGetCString(d))));
		if (citus)
		{
			nshards = (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull));
			rec.shards = nshards;
		}
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (isnull)
			dist_error(psprintf("round %d: no shard had rows to train on", r + 1));
		{
			MemoryContext old = MemoryContextSwitchTo(outer);
			bytea	   *next = DatumGetByteaPCopy(d);

			MemoryContextSwitchTo(old);
			if (model)
				pfree(model);
			model = next;
		}
		x->shards = (int32) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
		x->rows = isnull ? 0 : DatumGetInt64(d);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
		x->val_acc = isnull ? NAN : (float) DatumGetFloat8(d);
		x->seconds = o.record_times ? (float) (nn_now() - tr) : 0.0f;
		SPI_freetuptable(SPI_tuptable);
		if (mlcnn_progress)
			ereport(NOTICE,
					(errmsg("train_distributed round %d/%d: %d of %d shards trained on %lld rows, validation accuracy %.4f, %.1f s, about %.0f s left",
							r + 1, rounds, x->shards, nshards, (long long) x->rows, (double) x->val_acc,
							nn_now() - tr, (nn_now() - t0) / (r + 1) * (rounds - r - 1))));
	}
	SPI_finish();

	/* the averaged model with the record of its rounds */
	MlcnnAllocInit(&alloc, CurrentMemoryContext);
	if (nn_model_read(&m, (const uint8_t *) VARDATA_ANY(model), VARSIZE_ANY_EXHDR(model), &alloc.a, &st) != NN_OK)
		MlcnnReportStatus(&st);
	m.rounds = &rec;			/* average_models wrote none */
	m.options.epochs = local_epochs;
	result = MlcnnModelToBytea(&m);
	MlcnnStatsAdd(MLCNN_FN_TRAIN_DISTRIBUTED, 1, rec.round[rounds - 1].rows, nn_now() - t0, NULL,
				  (int64) rounds * local_epochs, alloc.peak);
	PG_RETURN_BYTEA_P(result);
}
