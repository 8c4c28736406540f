/*
 * load_images.c: load_images(folder) RETURNS TABLE(path, label, image),
 * the one-folder-per-class layout (as torchvision's ImageFolder) read on
 * the server.
 *
 * The first call lists the class folders and their files (names only,
 * sorted bytewise, so the order never depends on the file system) through
 * fd.c's AllocateDir, which an error closes; every later call reads one
 * file, so rows stream and a LIMIT stops the reading. Only regular files
 * are opened (load_idx.c's MlcnnOpenRegular: no FIFO or device can block
 * the backend); files that are not PNG or JPEG by their signature, and
 * special files, are skipped and counted in a NOTICE at the end. Files
 * directly in the folder (outside a class folder) and deeper folders are
 * skipped too. The same roles as load_idx may call it.
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "mlcnn_pg.h"

PG_FUNCTION_INFO_V1(load_images);

#define LOAD_IMAGES_MAX_FILES 10000000	/* entries listed at most */

/* one file to read */
typedef struct ImageEntry
{
	char	   *path;
	char	   *label;
} ImageEntry;

/* what lives across calls */
typedef struct LoadImagesState
{
	ImageEntry *entries;
	int64		n,
				cap,
				next;
	int64		skipped;
} LoadImagesState;

/* bytewise order of entries by path */
static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const ImageEntry *) a)->path, ((const ImageEntry *) b)->path);
}

/* bytewise order of names */
static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* the names in dir (not . and ..), sorted; *n of them */
static char **
list_dir(const char *dir, int64 *n)
{
	DIR		   *d = AllocateDir(dir);
	struct dirent *de;
	char	  **names = NULL;
	int64		cap = 0;

	*n = 0;
	while ((de = ReadDir(d, dir)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (*n >= LOAD_IMAGES_MAX_FILES)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("folder \"%s\" has more than %d entries", dir, LOAD_IMAGES_MAX_FILES)));
		if (*n == cap)
		{
			cap = cap ? 2 * cap : 64;
			names = names ? repalloc_huge(names, sizeof(char *) * cap) : palloc(sizeof(char *) * cap);
		}
		names[(*n)++] = pstrdup(de->d_name);
	}
	FreeDir(d);
	if (*n > 1)
		qsort(names, *n, sizeof(char *), name_cmp);
	return names;
}

/* true when path is a directory (following links); false for anything else or nothing */
static bool
is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* every class folder's files into state */
static void
collect(LoadImagesState *state, const char *folder)
{
	int64		nclasses;
	char	  **classes;

	if (!is_dir(folder))
	{
		struct stat st;

		if (stat(folder, &st) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open image folder \"%s\": %m", folder)));
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a folder", folder),
				 errhint("load_images reads a folder of class folders of images, as torchvision's ImageFolder.")));
	}
	classes = list_dir(folder, &nclasses);
	for (int64 c = 0; c < nclasses; c++)
	{
		char	   *cdir = psprintf("%s/%s", folder, classes[c]);
		int64		nfiles;
		char	  **files;

		if (!is_dir(cdir))
		{
			state->skipped++;	/* a file outside any class folder */
			continue;
		}
		files = list_dir(cdir, &nfiles);
		for (int64 f = 0; f < nfiles; f++)
		{
			if (state->n == state->cap)
			{
				state->cap = state->cap ? 2 * state->cap : 256;
				state->entries = state->entries ?
					repalloc_huge(state->entries, sizeof(ImageEntry) * state->cap) :
					palloc(sizeof(ImageEntry) * state->cap);
			}
			state->entries[state->n].path = psprintf("%s/%s", cdir, files[f]);
			state->entries[state->n].label = classes[c];
			state->n++;
		}
	}
	if (state->n > 1)
		qsort(state->entries, state->n, sizeof(ImageEntry), entry_cmp);
}

/* the bytes of entry e as a bytea, or NULL (skipped: not a regular file, not PNG or JPEG) */
static bytea *
read_image(const ImageEntry *e)
{
	const char *kind;
	bool		dir;
	int			fd = MlcnnOpenRegular(e->path, "image file", &kind, &dir);
	struct stat st;
	bytea	   *b;
	size_t		got = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat image file \"%s\": %m", e->path)));
	if ((uint64) st.st_size > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("image file \"%s\" has %lld bytes, more than a bytea holds", e->path, (long long) st.st_size)));
	b = palloc(VARHDRSZ + st.st_size);
	while (got < (size_t) st.st_size)
	{
		ssize_t		r;

		CHECK_FOR_INTERRUPTS();
		r = read(fd, VARDATA(b) + got, st.st_size - got);
		if (r < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read image file \"%s\": %m", e->path)));
		if (r == 0)
			break;				/* shrank while read: what is there */
		got += r;
	}
	CloseTransientFile(fd);
	SET_VARSIZE(b, VARHDRSZ + got);
	if (!(got >= 8 && memcmp(VARDATA(b), "\x89PNG\r\n\x1a\n", 8) == 0) &&
		!(got >= 3 && (uint8) VARDATA(b)[0] == 0xff && (uint8) VARDATA(b)[1] == 0xd8 && (uint8) VARDATA(b)[2] == 0xff))
	{
		pfree(b);
		return NULL;
	}
	return b;
}

/* load_images(folder text) RETURNS TABLE(path text, label text, image bytea) */
Datum
load_images(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	LoadImagesState *state;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		TupleDesc	tupdesc;
		char	   *folder;

		MlcnnCheckReadServerFiles("load_images", "image files",
								  "Load the files from the client instead, for example with psql's \\lo_import or a client that sends the bytes as a bytea parameter.");
		folder = text_to_cstring(PG_GETARG_TEXT_PP(0));
		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("load_images must be called where a row type can be returned")));
		funcctx->tuple_desc = BlessTupleDesc(tupdesc);
		state = palloc0(sizeof(LoadImagesState));
		collect(state, folder);
		funcctx->user_fctx = state;
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	state = (LoadImagesState *) funcctx->user_fctx;
	while (state->next < state->n)
	{
		const ImageEntry *e = &state->entries[state->next++];
		bytea	   *b;
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		CHECK_FOR_INTERRUPTS();
		b = read_image(e);
		if (b == NULL)
		{
			state->skipped++;
			continue;
		}
		values[0] = CStringGetTextDatum(e->path);
		values[1] = CStringGetTextDatum(e->label);
		values[2] = PointerGetDatum(b);
		SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(heap_form_tuple(funcctx->tuple_desc, values, nulls)));
	}
	if (state->skipped > 0)
		ereport(NOTICE,
				(errmsg("load_images skipped %lld entries that are not PNG or JPEG files in a class folder",
						(long long) state->skipped)));
	SRF_RETURN_DONE(funcctx);
}
