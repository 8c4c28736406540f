/*
 * guc.c: the mlcnn.* settings and the translation of core status codes
 * into SQLSTATEs.
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "compat.h"
#include "mlcnn_pg.h"

int			mlcnn_threads = 0;	/* OpenBLAS threads; 0 = one per core */
int			mlcnn_max_train_memory_kb = 1024 * 1024;	/* kB; 0 = no limit */
int			mlcnn_max_inference_memory_kb = 256 * 1024; /* kB; 0 = no limit */
int			mlcnn_model_cache_memory_kb = 64 * 1024;	/* kB; 0 = no session cache */
int			mlcnn_max_image_pixels = 40000000;
bool		mlcnn_progress = false; /* NOTICE per epoch */

/* Define the GUCs and reserve the prefix. */
void
MlcnnGucInit(void)
{
	DefineCustomIntVariable("mlcnn.threads",
							"Number of OpenBLAS threads for training and inference.",
							"Used when the training options do not name a thread count, and "
							"for batched inference (evaluate, compute_gradients). 0 means one "
							"per core. Single-row functions such as predict always use one "
							"thread: for one image, waking threads costs more than it saves. "
							"For a role that is not a superuser, this setting and the threads "
							"option of train_conv2d are capped at the number of cores the server "
							"may run on; superusers may ask for up to 256.",
							&mlcnn_threads,
							0, 0, 256,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mlcnn.max_train_memory",
							"Largest memory one train_conv2d call may use.",
							"Counts the buffered rows (one byte per bytea value, four per real[] value, plus a label) and the "
							"working memory of training (activations of one batch, parameters, "
							"gradients, optimizer moments), together over every mlcnn aggregate "
							"of the backend (several train_conv2d calls in one statement share "
							"it). Training that would pass it fails "
							"early with an error instead of exhausting the server's memory. "
							"0 means no limit. Only superusers may change it, so that it can "
							"serve as an administrator's safeguard.",
							&mlcnn_max_train_memory_kb,
							1024 * 1024, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mlcnn.max_inference_memory",
							"Largest memory one model may use to predict, evaluate or compute gradients.",
							"Counts the decoded parameters and the working memory (activations "
							"and workspace) of a batch, measured from the network before it is "
							"allocated. Batched functions shrink their batch to fit; a model "
							"that cannot run one image within it fails with an error, so a "
							"forged model cannot exhaust the server's memory. 0 means no "
							"limit. Only superusers may change it.",
							&mlcnn_max_inference_memory_kb,
							256 * 1024, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mlcnn.model_cache_memory",
							"Largest memory the session cache of decoded models may hold.",
							"Models stored out of line are kept decoded across queries, the "
							"least recently used leaving first, up to this many bytes (and "
							"four models). A model larger than it is not kept. 0 turns the "
							"cache off. Only superusers may change it.",
							&mlcnn_model_cache_memory_kb,
							64 * 1024, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mlcnn.max_image_pixels",
							"Largest image, in source pixels, decode_image() decodes.",
							"Checked against the file's header before anything is allocated "
							"for its pixels (a decompression bomb claims billions). Only "
							"superusers may change it.",
							&mlcnn_max_image_pixels,
							40000000, 1, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("mlcnn.progress",
							 "Report training progress, one NOTICE per epoch.",
							 "Each NOTICE gives the epoch, the training loss and accuracy, the "
							 "validation accuracy when there is a hold-out, seconds, images per "
							 "second and the estimated time left.",
							 &mlcnn_progress,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("mlcnn");
}

/* Raise the error of a cancelled core call. */
void
MlcnnReportCancel(const char *what)
{
	nn_status	st;

	nn_fail(&st, NN_ERR_CANCELLED, "%s", what);
	MlcnnReportStatus(&st);
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
		case NN_ERR_UNSUPPORTED:
			code = ERRCODE_FEATURE_NOT_SUPPORTED;
			break;
		case NN_ERR_CANCELLED:
			/* PostgreSQL's own error for what stopped it: timeout, cancel, terminate */
			CHECK_FOR_INTERRUPTS();
			code = ERRCODE_QUERY_CANCELED;
			break;
		default:
			elog(ERROR, "unexpected mlcnn status %d: %s. Please report a bug.",
				 (int) st->code, st->msg);
	}
	ereport(ERROR, (errcode(code), errmsg("%s", st->msg)));
}
