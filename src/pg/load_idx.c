/*
 * load_idx.c: load_idx(images_path, labels_path), a set-returning function
 * that streams an IDX pair (MNIST's format, gzip or raw) as rows of
 * (id, label, pixels).
 *
 * It is value-per-call: the nn_idx reader stays open across calls in the
 * SRF's multi_call_memory_ctx and holds one row at a time. Called in the
 * select list (`SELECT (load_idx(...)).*`), rows stream one by one and a
 * LIMIT stops the reading; in FROM, PostgreSQL's function scan first collects
 * the rows in a tuplestore, which spills to disk beyond work_mem. The files
 * are zlib handles outside any memory context; a reset callback on that
 * context closes them when the query ends early or aborts.
 *
 * Reading a file on the server is what COPY FROM a file does, and it is
 * allowed to the same roles: superusers and members of pg_read_server_files.
 * The check is made here in C, like COPY's, rather than by revoking EXECUTE,
 * so the function can be granted without exposing the file system. Relative
 * paths resolve against the data directory, as with COPY.
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "idx.h"
#include "mlcnn_pg.h"

PG_FUNCTION_INFO_V1(load_idx);

/* what lives across calls */
typedef struct LoadIdxState
{
	nn_idx		idx;
	uint8	   *pixels;			/* row_bytes scratch */
	MemoryContextCallback cb;
} LoadIdxState;

/* Reset callback of the SRF's context: close the files whatever happened. */
static void
LoadIdxCleanup(void *arg)
{
	LoadIdxState *state = (LoadIdxState *) arg;

	nn_idx_close(&state->idx);
}

/* Refuse roles that may not read server files, like COPY FROM a file. */
static void
CheckReadServerFiles(void)
{
	if (!superuser() && !has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to read IDX files on the server"),
				 errdetail("Only superusers and roles with privileges of the \"pg_read_server_files\" role may call load_idx."),
				 errhint("Load the files from the client instead: psql's \\copy with FROM PROGRAM 'data/idxtool copy IMAGES LABELS' works for any role.")));
}

/* load_idx(images_path text, labels_path text) RETURNS TABLE(id int, label int, pixels bytea) */
Datum
load_idx(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	LoadIdxState *state;
	nn_status	st = {0};
	int32		label;
	int			r;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext oldcxt;
		TupleDesc	tupdesc;
		char	   *images_path;
		char	   *labels_path;

		CheckReadServerFiles();
		funcctx = SRF_FIRSTCALL_INIT();
		oldcxt = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("load_idx must be called in a context that accepts a set of rows")));
		funcctx->tuple_desc = BlessTupleDesc(tupdesc);

		images_path = text_to_cstring(PG_GETARG_TEXT_PP(0));
		labels_path = text_to_cstring(PG_GETARG_TEXT_PP(1));

		state = palloc0(sizeof(LoadIdxState));
		if (nn_idx_open(&state->idx, images_path, labels_path, &st) != NN_OK)
			MlcnnReportStatus(&st);
		/* from here on the files are open: make sure they get closed */
		state->cb.func = LoadIdxCleanup;
		state->cb.arg = state;
		MemoryContextRegisterResetCallback(funcctx->multi_call_memory_ctx, &state->cb);
		if (state->idx.n > (int64) PG_INT32_MAX + 1)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("IDX images file \"%s\" has too many rows for load_idx",
							images_path),
					 errdetail("The header says %lld rows; ids are integers, so at most %lld rows can be loaded.",
							   (long long) state->idx.n, (long long) PG_INT32_MAX + 1)));
		state->pixels = palloc(state->idx.row_bytes);
		funcctx->user_fctx = state;
		MemoryContextSwitchTo(oldcxt);
	}

	funcctx = SRF_PERCALL_SETUP();
	state = (LoadIdxState *) funcctx->user_fctx;

	/* a large file takes a while, so make sure we can be interrupted */
	CHECK_FOR_INTERRUPTS();

	r = nn_idx_next(&state->idx, state->pixels, &label, &st);
	if (r < 0)
	{
		nn_idx_close(&state->idx);
		MlcnnReportStatus(&st);
	}
	if (r == 0)
	{
		nn_idx_close(&state->idx);
		SRF_RETURN_DONE(funcctx);
	}
	else
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		bytea	   *pixels = (bytea *) palloc(VARHDRSZ + state->idx.row_bytes);
		HeapTuple	tuple;

		SET_VARSIZE(pixels, VARHDRSZ + state->idx.row_bytes);
		memcpy(VARDATA(pixels), state->pixels, state->idx.row_bytes);
		values[0] = Int32GetDatum((int32) (state->idx.next - 1));
		values[1] = Int32GetDatum(label);
		values[2] = PointerGetDatum(pixels);
		tuple = heap_form_tuple(funcctx->tuple_desc, values, nulls);
		SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(tuple));
	}
}
