/*
 * limits.c: what bounds the work mlcnn does in a backend.
 *
 *   - The allocator the core gets (MlcnnAlloc over a memory context). It
 *     counts what it holds; an aggregate state's allocator also adds it to
 *     one backend-wide account, so that mlcnn.max_train_memory is checked
 *     against every mlcnn aggregate state of the backend together, not
 *     against each on its own (six train_conv2d calls in one SELECT share
 *     one budget). A reset callback on the context takes whatever is left
 *     off the account, so an error or a cancel can never leak budget.
 *   - The inference budget (mlcnn.max_inference_memory): the decoded
 *     parameters plus the working memory of the batch, measured with the
 *     core's resource bound before the working memory is allocated. A
 *     batch that does not fit is shrunk; one image that does not fit is an
 *     ERROR 54000 naming what it needs.
 *   - Interrupts: the core polls nn_interrupt_poll between layers and in
 *     every long loop, from any thread; it reads PostgreSQL's cancel and
 *     terminate flags and nothing else. When the core then stops with
 *     NN_ERR_CANCELLED, MlcnnReportStatus lets CHECK_FOR_INTERRUPTS raise
 *     PostgreSQL's own error (statement timeout, user request, terminate).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "compat.h"
#include "mlcnn_pg.h"

/* bytes held by every mlcnn aggregate state of this backend */
static Size agg_bytes;

/* alloc callback: huge allocations that return NULL instead of raising */
static void *
cxt_alloc(void *ctx, size_t size)
{
	MlcnnAlloc *m = (MlcnnAlloc *) ctx;
	void	   *p = MemoryContextAllocExtended(m->cxt, size ? size : 1,
											   MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);

	if (p)
	{
		Size		space = GetMemoryChunkSpace(p);

		m->cur += space;
		if (m->cur > m->peak)
			m->peak = m->cur;
		if (m->accounted)
			agg_bytes += space;
	}
	return p;
}

/* free callback */
static void
cxt_free(void *ctx, void *ptr)
{
	MlcnnAlloc *m = (MlcnnAlloc *) ctx;
	Size		sz = GetMemoryChunkSpace(ptr);

	sz = Min(sz, m->cur);
	m->cur -= sz;
	if (m->accounted)
		agg_bytes -= Min(sz, agg_bytes);
	pfree(ptr);
}

/* Point m at cxt, with zero counts, outside the aggregate account. */
void
MlcnnAllocInit(MlcnnAlloc *m, MemoryContext cxt)
{
	m->a.alloc = cxt_alloc;
	m->a.free = cxt_free;
	m->a.ctx = m;
	m->cxt = cxt;
	m->cur = 0;
	m->peak = 0;
	m->accounted = false;
}

/* Reset callback: what the context still held leaves the account with it. */
static void
account_release(void *arg)
{
	MlcnnAlloc *m = (MlcnnAlloc *) arg;

	if (m->accounted)
		agg_bytes -= Min(m->cur, agg_bytes);
	m->cur = 0;
	m->accounted = false;
}

/* Like MlcnnAllocInit, and count what m holds in the backend's aggregate account. */
void
MlcnnAllocInitAccounted(MlcnnAlloc *m, MemoryContext cxt)
{
	MemoryContextCallback *cb = MemoryContextAlloc(cxt, sizeof(MemoryContextCallback));

	MlcnnAllocInit(m, cxt);
	m->accounted = true;
	cb->func = account_release;
	cb->arg = m;
	MemoryContextRegisterResetCallback(cxt, cb);
}

/* Bytes all mlcnn aggregate states of this backend hold now. */
Size
MlcnnAggBytes(void)
{
	return agg_bytes;
}

/* A kB setting as bytes (0 stays 0: no limit). */
static Size
kb_bytes(int kb)
{
	return (Size) kb * 1024;
}

/*
 * The largest batch of at most want images whose inference (or, with
 * train, gradient) working memory fits mlcnn.max_inference_memory next to
 * the extra bytes already held (the decoded parameters); an ERROR 54000
 * when not even one image fits, or when the net passes a size limit.
 */
int
MlcnnFitBatch(const nn_net *net, int want, bool train, Size extra, const char *what)
{
	Size		limit = kb_bytes(mlcnn_max_inference_memory_kb);
	nn_bound	b;
	nn_status	st;
	int			B = Max(want, 1);

	for (;;)
	{
		/* inference sizes the model cache's work, whose weights are frozen */
		if (nn_net_bound(net, B, train ? 1 : NN_WORK_FROZEN, &b, &st) != NN_OK)
			MlcnnReportStatus(&st);
		if (limit == 0 || b.work_bytes + extra <= limit)
			return B;
		if (B == 1)
			break;
		B = Max(B / 2, 1);
	}
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("%s needs %llu kB for one image, more than mlcnn.max_inference_memory (%d kB)",
					what, (unsigned long long) ((b.work_bytes + extra) / 1024), mlcnn_max_inference_memory_kb),
			 errdetail("The network (%s on %dx%dx%d) has %zu parameters and needs %llu kB of working memory "
					   "and %llu multiply-adds per image.",
					   net->spec, net->input.h, net->input.w, net->input.c, net->nparams,
					   (unsigned long long) (b.work_bytes / 1024),
					   (unsigned long long) net->per_image.macs),
			 errhint("A superuser can raise mlcnn.max_inference_memory.")));
	return 0;					/* not reached */
}

/* Does mlcnn.max_inference_memory allow bytes of inference buffers? */
bool
MlcnnInferenceFits(Size bytes)
{
	return mlcnn_max_inference_memory_kb == 0 || bytes <= kb_bytes(mlcnn_max_inference_memory_kb);
}

/* Error unless the training budget can hold need more bytes beside every aggregate state's. */
void
MlcnnCheckTrainBudget(Size need, const char *detail)
{
	Size		limit = kb_bytes(mlcnn_max_train_memory_kb);
	Size		held = agg_bytes;
	Size		total = held > SIZE_MAX - need ? SIZE_MAX : held + need;

	if (mlcnn_max_train_memory_kb > 0 && total > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training needs %zu kB, more than mlcnn.max_train_memory (%d kB)",
						total / 1024, mlcnn_max_train_memory_kb),
				 errdetail("%s All mlcnn aggregate states of this backend hold %zu kB.", detail, held / 1024),
				 errhint("Raise mlcnn.max_train_memory, or train on fewer rows.")));
}

/*
 * The core's interrupt poll: true when CHECK_FOR_INTERRUPTS would cancel
 * the query or end the backend. Reads flags only, so helper threads may
 * call it too.
 */
static int
interrupt_poll(void)
{
	if (InterruptHoldoffCount != 0 || CritSectionCount != 0)
		return 0;
	return ProcDiePending || (QueryCancelPending && QueryCancelHoldoffCount == 0);
}

/* Let the core poll PostgreSQL's interrupt flags. */
void
MlcnnInterruptsInit(void)
{
	nn_interrupt_poll = interrupt_poll;
}

/*
 * AggCheckCallContext for mlcnn's aggregates, which refuse to run as
 * window functions: their final functions finish a batch or train on the
 * rows, work that a moving frame would redo for every row. what names the
 * aggregate in the error.
 */
int
MlcnnAggContext(FunctionCallInfo fcinfo, MemoryContext *aggcxt, const char *what)
{
	int			kind = AggCheckCallContext(fcinfo, aggcxt);

	if (kind == 0)
		elog(ERROR, "%s support function called in non-aggregate context", what);
	if (kind == AGG_CONTEXT_WINDOW)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot be used as a window function", what),
				 errhint("Call it as a plain aggregate, with GROUP BY for one result per group.")));
	return kind;
}
