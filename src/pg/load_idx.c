/*
 * load_idx.c: load_idx(images_path, labels_path), a set-returning function
 * that streams an IDX pair (MNIST's format, gzip or raw) as rows of
 * (id, label, pixels).
 *
 * It is value-per-call: the nn_idx reader stays open across calls in the
 * SRF's multi_call_memory_ctx and holds one row at a time. Called in the
 * select list (`SELECT (load_idx(...)).*`), rows stream one by one and a
 * LIMIT stops the reading; in FROM, PostgreSQL's function scan first collects
 * the rows in a tuplestore, which spills to disk beyond work_mem.
 *
 * Nothing here may block: a FIFO with no writer, a terminal or a device
 * would hang the backend in open() or read(), out of reach of cancel and
 * statement_timeout. So only regular files are read. Each path is checked
 * with stat() before it is opened, opened through fd.c (OpenTransientFile,
 * so the descriptor is counted and an error closes it) with O_NONBLOCK, so
 * that even a path swapped for a FIFO in between cannot block the open, and
 * checked again with fstat() on the descriptor; then O_NONBLOCK is cleared.
 * zlib's gzclose closes the descriptor it reads, and fd.c has no way to let
 * go of a transient file without closing it, so zlib gets a duplicate,
 * counted with AcquireExternalFD, and the transient file is closed at once:
 * every descriptor has one owner that closes it exactly once. The duplicates
 * live in zlib handles outside any memory context; a reset callback on that
 * context closes them when the query ends early or aborts.
 *
 * Reading a file on the server is what COPY FROM a file does, and it is
 * allowed to the same roles: superusers and members of pg_read_server_files.
 * The check is made here in C, like COPY's, rather than by revoking EXECUTE,
 * so the function can be granted without exposing the file system. Relative
 * paths resolve against the data directory, as with COPY.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "idx.h"
#include "mlcnn_pg.h"

PG_FUNCTION_INFO_V1(load_idx);

/* what lives across calls */
typedef struct LoadIdxState
{
	nn_idx		idx;			/* the two zlib handles, once open */
	int			fds[2];			/* descriptors not yet handed to idx, or -1 */
	int			external;		/* descriptors counted with AcquireExternalFD */
	uint8	   *pixels;			/* row_bytes scratch */
	MemoryContextCallback cb;
} LoadIdxState;

/* Close the files and stop counting their descriptors; safe to call again. */
static void
LoadIdxClose(LoadIdxState *state)
{
	nn_idx_close(&state->idx);
	for (int i = 0; i < 2; i++)
	{
		if (state->fds[i] >= 0)
			close(state->fds[i]);
		state->fds[i] = -1;
	}
	for (; state->external > 0; state->external--)
		ReleaseExternalFD();
}

/* Reset callback of the SRF's context: close the files whatever happened. */
static void
LoadIdxCleanup(void *arg)
{
	LoadIdxClose((LoadIdxState *) arg);
}

/* What a file that is not a regular file is, for messages. */
static const char *
FileKind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "directory";
	if (S_ISFIFO(mode))
		return "named pipe (FIFO)";
	if (S_ISCHR(mode))
		return "character device";
	if (S_ISBLK(mode))
		return "block device";
	if (S_ISSOCK(mode))
		return "socket";
	return "special file";
}

/* Refuse a file that is not regular (kind says what it is): reading a FIFO or a device can block. */
static void
RefuseSpecialFile(const char *kind, bool is_dir, const char *path, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("IDX %s file \"%s\" is not a regular file", what, path),
			 errdetail("It is a %s. load_idx reads only regular files, so that reading cannot block the server.",
					   kind),
			 is_dir ? 0 :
			 errhint("To load from a pipe, use psql's \\copy with FROM PROGRAM 'data/idxtool copy IMAGES LABELS' on the client.")));
}

/*
 * Open path read-only without blocking: an fd.c transient descriptor of a
 * regular file, in blocking mode (the caller closes it with
 * CloseTransientFile; an error closes it too). A path that is not a regular
 * file is never opened for reading: -1, with what it is in *kind and
 * whether it is a directory in *is_dir. The file is checked with stat()
 * before the open, which is O_NONBLOCK in case the path was swapped for a
 * FIFO in between, and again with fstat() on the descriptor. Errors name
 * the file as "<what> \"path\"".
 */
int
MlcnnOpenRegular(const char *path, const char *what, const char **kind, bool *is_dir)
{
	struct stat st;
	int			fd;
	int			flags;

	if (stat(path, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open %s \"%s\": %m", what, path)));
	*is_dir = S_ISDIR(st.st_mode);
	if (!S_ISREG(st.st_mode))
	{
		*kind = FileKind(st.st_mode);
		return -1;
	}
	fd = OpenTransientFile(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open %s \"%s\": %m", what, path)));
	if (fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat %s \"%s\": %m", what, path)));
	if (!S_ISREG(st.st_mode))
	{
		*kind = FileKind(st.st_mode);
		*is_dir = S_ISDIR(st.st_mode);
		CloseTransientFile(fd);
		return -1;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not set %s \"%s\" to blocking mode: %m", what, path)));
	return fd;
}

/*
 * Open one IDX file without blocking into state->fds[slot]: a descriptor of
 * a regular file, in blocking mode, counted as an external descriptor.
 */
static void
OpenIdxFile(LoadIdxState *state, int slot, const char *path, const char *what)
{
	char		name[64];
	const char *kind;
	bool		is_dir;
	int			fd;

	snprintf(name, sizeof(name), "IDX %s file", what);
	fd = MlcnnOpenRegular(path, name, &kind, &is_dir);
	if (fd < 0)
		RefuseSpecialFile(kind, is_dir, path, what);

	/* zlib closes what it reads: give it a duplicate of its own */
	if (!AcquireExternalFD())
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open IDX %s file \"%s\": %m", what, path)));
	state->external++;
	state->fds[slot] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (state->fds[slot] < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not duplicate the descriptor of IDX %s file \"%s\": %m", what, path)));
	if (CloseTransientFile(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close IDX %s file \"%s\": %m", what, path)));
}

/* Refuse roles that may not read server files, like COPY FROM a file (fn names the function, hint the client way). */
void
MlcnnCheckReadServerFiles(const char *fn, const char *what, const char *hint)
{
	if (!superuser() && !has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to read %s on the server", what),
				 errdetail("Only superusers and roles with privileges of the \"pg_read_server_files\" role may call %s.", fn),
				 errhint("%s", hint)));
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

		MlcnnCheckReadServerFiles("load_idx", "IDX files",
								  "Load the files from the client instead: psql's \\copy with FROM PROGRAM 'data/idxtool copy IMAGES LABELS' works for any role.");
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
		state->fds[0] = state->fds[1] = -1;
		/* from here on, whatever happens, what gets opened gets closed */
		state->cb.func = LoadIdxCleanup;
		state->cb.arg = state;
		MemoryContextRegisterResetCallback(funcctx->multi_call_memory_ctx, &state->cb);
		OpenIdxFile(state, 0, images_path, "images");
		OpenIdxFile(state, 1, labels_path, "labels");
		{
			int			images_fd = state->fds[0],
						labels_fd = state->fds[1];

			/* the reader takes both over, and closes them if it fails */
			state->fds[0] = state->fds[1] = -1;
			if (nn_idx_open_fds(&state->idx, images_fd, labels_fd, images_path, labels_path,
								&st) != NN_OK)
			{
				LoadIdxClose(state);
				MlcnnReportStatus(&st);
			}
		}
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
		LoadIdxClose(state);
		MlcnnReportStatus(&st);
	}
	if (r == 0)
	{
		LoadIdxClose(state);
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
