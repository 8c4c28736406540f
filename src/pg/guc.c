/*
 * guc.c: the mlcnn.* settings, the allocator over memory contexts, and the
 * translation of core status codes into SQLSTATEs.
 */
#include "postgres.h"

#include "utils/guc.h"
#include "utils/memutils.h"

#include "compat.h"
#include "mlcnn_pg.h"

int			mlcnn_threads = 1;	/* OpenBLAS threads; 0 = all cores */

/* Define the GUCs and reserve the prefix. */
void
MlcnnGucInit(void)
{
	DefineCustomIntVariable("mlcnn.threads",
							"Number of OpenBLAS threads for training and inference.",
							"Used when the training options do not name a thread count. "
							"0 means one per core. More threads speed up large batches; "
							"single-row prediction is fastest with 1.",
							&mlcnn_threads,
							1, 0, 256,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("mlcnn");
}

/* alloc callback: huge allocations that return NULL instead of raising */
static void *
cxt_alloc(void *ctx, size_t size)
{
	return MemoryContextAllocExtended((MemoryContext) ctx, size ? size : 1,
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

/* free callback */
static void
cxt_free(void *ctx, void *ptr)
{
	pfree(ptr);
}

/* Point a at cxt. */
void
MlcnnAllocatorInit(nn_allocator *a, MemoryContext cxt)
{
	a->alloc = cxt_alloc;
	a->free = cxt_free;
	a->ctx = cxt;
}

/* Raise st as an ERROR, choosing the SQLSTATE from its code. */
void
MlcnnReportStatus(const nn_status *st)
{
	int			code;

	switch (st->code)
	{
		case NN_ERR_NOMEM:
			code = ERRCODE_OUT_OF_MEMORY;
			break;
		case NN_ERR_INVALID:
			code = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
		case NN_ERR_PARSE:
			code = ERRCODE_SYNTAX_ERROR;
			break;
		case NN_ERR_SHAPE:
			code = ERRCODE_DATA_EXCEPTION;
			break;
		case NN_ERR_CORRUPT:
			code = ERRCODE_DATA_CORRUPTED;
			break;
		case NN_ERR_LIMIT:
			code = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			break;
		case NN_ERR_IO:
			code = ERRCODE_UNDEFINED_FILE;
			break;
		case NN_ERR_DATA:
			code = ERRCODE_DATA_EXCEPTION;
			break;
		case NN_ERR_CANCELLED:
			code = ERRCODE_QUERY_CANCELED;
			break;
		default:
			elog(ERROR, "unexpected mlcnn status %d: %s. Please report a bug.",
				 (int) st->code, st->msg);
	}
	ereport(ERROR, (errcode(code), errmsg("%s", st->msg)));
}
