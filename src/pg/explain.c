/*
 * explain.c: the mlcnn section of EXPLAIN ANALYZE.
 *
 * mlcnn's functions report their work to stats.c, whose counters are
 * cumulative and always on. The executor hooks here take a snapshot of them
 * when a query to be explained starts, and the EXPLAIN hook prints the
 * difference once the query has run: per function the calls, rows, (for
 * training and tuning) epochs, batches and images per second, (for tuning) every trial, the time split into
 * forward, backward, weight update and loss, and the peak of mlcnn's own
 * memory; for the query the growth of the backend's peak resident memory
 * (VmHWM of /proc/self/status). Nothing is printed without ANALYZE or when
 * the query called no mlcnn function, so other plans read as before, and the
 * query itself is never touched.
 *
 * Where the section is printed depends on the server version:
 *   - PostgreSQL 18 has explain_per_plan_hook, called by ExplainOnePlan after
 *     the plan, triggers and JIT lines and before "Execution Time";
 *   - before 18 there is only ExplainOneQuery_hook, which runs around the
 *     whole planning and execution but is not called back once the plan is
 *     printed. It records which ExplainState and query text the EXPLAIN is
 *     about; the ExecutorStart hook recognises that query (same nesting
 *     level, same query text pointer, ANALYZE on) and the ExecutorEnd hook,
 *     which ExplainOnePlan calls at the very place where 18 calls the
 *     per-plan hook, prints the section into that ExplainState.
 * So the section sits in the same place, inside the query's group, on every
 * version.
 *
 * Queries are told apart by nesting level (counted in the executor hooks, as
 * pg_stat_statements does) and by the QueryDesc's address. A frame per level
 * holds the snapshot; a frame left open by an error is closed the next time
 * a query starts at its level or above, and when an enclosing frame ends.
 * Parallel workers are skipped: their mlcnn work is counted in their own
 * process, which nobody reads. (train_conv2d trains in the leader's final
 * function, so a parallel training is counted in full; parallel predict()
 * calls made by workers are not.)
 *
 * When mlcnn is loaded on first use in the middle of an EXPLAIN ANALYZE (the
 * first call of one of its functions loads the library while the query
 * starts), the EXPLAIN hook was not installed when that EXPLAIN began, so
 * that one EXPLAIN shows no section; every later one does. LOAD 'mlcnn',
 * session_preload_libraries or shared_preload_libraries avoid this.
 */
#include "postgres.h"

#include "compat.h"

#include <stdio.h>
#include <stdlib.h>

#include "access/parallel.h"
#include "commands/explain.h"
#if MLCNN_HAVE_PER_PLAN_EXPLAIN
#include "commands/explain_format.h"
#include "commands/explain_state.h"
#endif
#include "executor/executor.h"
#include "executor/instrument.h"
#include "storage/fd.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"

#include "mlcnn_pg.h"

/* the snapshot of one query being explained, per nesting level */
typedef struct QueryFrame
{
	bool		active;
	QueryDesc  *queryDesc;		/* compared by address only */
	PlannedStmt *plannedstmt;	/* 18: how the per-plan hook finds the frame */
	ExplainState *es;			/* before 18: the EXPLAIN to print into */
	int64		hwm_kb;			/* VmHWM at the start, -1 if unknown */
	MlcnnStat	before[MLCNN_NFN];
	Size		saved_peak[MLCNN_NFN];
	uint64		trials_before;	/* MlcnnTrialLogCount() at the start */
} QueryFrame;

static QueryFrame *frames = NULL;	/* indexed by nesting level */
static int	nframes = 0;
static int	nesting_level = 0;

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;

#if MLCNN_HAVE_PER_PLAN_EXPLAIN
static explain_per_plan_hook_type prev_explain_per_plan = NULL;
#else
static ExplainOneQuery_hook_type prev_ExplainOneQuery = NULL;

/* the EXPLAIN under way, as its ExplainOneQuery call saw it */
typedef struct ExplainTarget
{
	ExplainState *es;
	const char *queryString;
	int			level;
} ExplainTarget;

static ExplainTarget *explain_target = NULL;
#endif

/* The backend's peak resident set in kB (VmHWM), or -1 where unknown. */
static int64
BackendPeakRssKb(void)
{
	FILE	   *f = AllocateFile("/proc/self/status", "r");
	char		line[256];
	int64		kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
	{
		if (strncmp(line, "VmHWM:", 6) == 0)
		{
			kb = strtoll(line + 6, NULL, 10);
			break;
		}
	}
	FreeFile(f);
	return kb;
}

/* Close every open frame at level and deeper, innermost first, printing nothing. */
static void
AbandonFrames(int level)
{
	for (int l = nframes - 1; l >= level && l >= 0; l--)
	{
		if (frames[l].active)
		{
			Size		discard[MLCNN_NFN];

			MlcnnStatsPeakPop(frames[l].saved_peak, discard);
			frames[l].active = false;
		}
	}
}

/*
 * Whether queryDesc, starting at the current level, may be explained with
 * ANALYZE; before 18, *es is set to the EXPLAIN that runs it.
 */
static bool
FrameWanted(QueryDesc *queryDesc, ExplainState **es)
{
	*es = NULL;
#if MLCNN_HAVE_PER_PLAN_EXPLAIN
	return queryDesc->instrument_options != 0;
#else
	if (explain_target == NULL ||
		explain_target->level != nesting_level ||
		!explain_target->es->analyze ||
		queryDesc->sourceText != explain_target->queryString)
		return false;
	*es = explain_target->es;
	return true;
#endif
}

/* At ExecutorStart: open a frame for queryDesc if it is being explained. */
static void
FrameBegin(QueryDesc *queryDesc)
{
	ExplainState *es;
	QueryFrame *f;
	int64		hwm;

	/*
	 * Frames at this level or deeper belong to queries that ended in an
	 * error (or to open cursors, which are never EXPLAINed): drop them.
	 */
	AbandonFrames(nesting_level);
	if (!FrameWanted(queryDesc, &es))
		return;
	if (nesting_level >= nframes)
	{
		int			n = Max(8, nesting_level + 1);

		n = Max(n, nframes * 2);
		if (frames == NULL)
			frames = MemoryContextAllocZero(TopMemoryContext, n * sizeof(QueryFrame));
		else
		{
			frames = repalloc(frames, n * sizeof(QueryFrame));
			memset(frames + nframes, 0, (n - nframes) * sizeof(QueryFrame));
		}
		nframes = n;
	}
	hwm = BackendPeakRssKb();
	f = &frames[nesting_level];
	f->queryDesc = queryDesc;
	f->plannedstmt = queryDesc->plannedstmt;
	f->es = es;
	f->hwm_kb = hwm;
	MlcnnStatsSnapshot(f->before);
	MlcnnStatsPeakPush(f->saved_peak);
	f->trials_before = MlcnnTrialLogCount();
	f->active = true;
}

/* The open frame of queryDesc at the current level, or NULL. */
static QueryFrame *
FrameOf(QueryDesc *queryDesc)
{
	if (nesting_level < nframes && frames[nesting_level].active &&
		frames[nesting_level].queryDesc == queryDesc)
		return &frames[nesting_level];
	return NULL;
}

/* Append n two-space indents in TEXT format, like EXPLAIN's own lines. */
static void
IndentText(ExplainState *es)
{
	if (es->str->len == 0 || es->str->data[es->str->len - 1] == '\n')
		appendStringInfoSpaces(es->str, es->indent * 2);
}

/* kB for a byte count, rounded up like EXPLAIN's memory figures. */
static int64
BytesToKb(Size bytes)
{
	return (int64) ((bytes + 1023) / 1024);
}

/* Print one function's figures d (peak in bytes) in TEXT format. */
static void
ShowFunctionText(ExplainState *es, MlcnnFn fn, const MlcnnStat *d)
{
	IndentText(es);
	appendStringInfo(es->str, "%s: calls=" INT64_FORMAT " rows=" INT64_FORMAT,
					 MlcnnFnName(fn), d->calls, d->rows);
	if (fn == MLCNN_FN_TRAIN || fn == MLCNN_FN_TUNE)
	{
		appendStringInfo(es->str, " epochs=" INT64_FORMAT " batches=" INT64_FORMAT,
						 d->epochs, d->batches);
		if (es->timing && d->total_s > 0)
			appendStringInfo(es->str, " images/s=%.1f", d->images / d->total_s);
	}
	appendStringInfoChar(es->str, '\n');
	es->indent++;
	if (es->timing)
	{
		IndentText(es);
		appendStringInfo(es->str,
						 "Timing: Forward %.3f ms, Backward %.3f ms, Update %.3f ms, Loss %.3f ms, Total %.3f ms\n",
						 1000.0 * d->forward_s, 1000.0 * d->backward_s,
						 1000.0 * d->update_s, 1000.0 * d->loss_s, 1000.0 * d->total_s);
	}
	IndentText(es);
	appendStringInfo(es->str, "Peak Memory: " INT64_FORMAT "kB\n", BytesToKb(d->peak_bytes));
	es->indent--;
}

/* The trials of the searches the query ran (tune_conv2d), after the frame's start. */
static void
ShowTrials(ExplainState *es, uint64 since)
{
	MlcnnTrialEntry *e = palloc(sizeof(MlcnnTrialEntry) * MLCNN_TRIAL_LOG);
	int			n = MlcnnTrialLogSince(since, e);

	if (n == 0)
		return;
	if (es->format == EXPLAIN_FORMAT_TEXT)
	{
		es->indent++;
		for (int i = 0; i < n; i++)
		{
			IndentText(es);
			appendStringInfo(es->str, "Trial %d%s: %s epochs=%d", i + 1, e[i].winner ? " (best)" : "",
							 e[i].text, e[i].epochs);
			if (es->timing)
				appendStringInfo(es->str, " time=%.3f ms", 1000.0 * e[i].seconds);
			appendStringInfo(es->str, " validation_accuracy=%.4f validation_loss=%.4f\n",
							 (double) e[i].val_acc, (double) e[i].val_loss);
		}
		es->indent--;
		return;
	}
	ExplainOpenGroup("Trials", "Trials", false, es);
	for (int i = 0; i < n; i++)
	{
		ExplainOpenGroup("Trial", NULL, true, es);
		ExplainPropertyText("Options", e[i].text, es);
		ExplainPropertyBool("Best", e[i].winner, es);
		ExplainPropertyInteger("Epochs", NULL, e[i].epochs, es);
		if (es->timing)
			ExplainPropertyFloat("Time", "ms", 1000.0 * e[i].seconds, 3, es);
		ExplainPropertyFloat("Validation Accuracy", NULL, e[i].val_acc, 4, es);
		ExplainPropertyFloat("Validation Loss", NULL, e[i].val_loss, 4, es);
		ExplainCloseGroup("Trial", NULL, true, es);
	}
	ExplainCloseGroup("Trials", "Trials", false, es);
}

/* Print one function's figures d as properties of a group (JSON, YAML, XML). */
static void
ShowFunctionStructured(ExplainState *es, MlcnnFn fn, const MlcnnStat *d)
{
	ExplainOpenGroup("Function", NULL, true, es);
	ExplainPropertyText("Function Name", MlcnnFnName(fn), es);
	ExplainPropertyInteger("Calls", NULL, d->calls, es);
	ExplainPropertyInteger("Rows", NULL, d->rows, es);
	if (fn == MLCNN_FN_TRAIN || fn == MLCNN_FN_TUNE)
	{
		ExplainPropertyInteger("Epochs", NULL, d->epochs, es);
		ExplainPropertyInteger("Batches", NULL, d->batches, es);
		if (es->timing)
			ExplainPropertyFloat("Images Per Second", NULL,
								 d->total_s > 0 ? d->images / d->total_s : 0, 1, es);
	}
	if (es->timing)
	{
		ExplainPropertyFloat("Forward Time", "ms", 1000.0 * d->forward_s, 3, es);
		ExplainPropertyFloat("Backward Time", "ms", 1000.0 * d->backward_s, 3, es);
		ExplainPropertyFloat("Update Time", "ms", 1000.0 * d->update_s, 3, es);
		ExplainPropertyFloat("Loss Time", "ms", 1000.0 * d->loss_s, 3, es);
		ExplainPropertyFloat("Total Time", "ms", 1000.0 * d->total_s, 3, es);
	}
	ExplainPropertyInteger("Peak Memory", "kB", BytesToKb(d->peak_bytes), es);
	ExplainCloseGroup("Function", NULL, true, es);
}

/*
 * Close frame f and print what happened since it opened into es: nothing
 * if no mlcnn function was called. Timings follow TIMING, the backend's
 * memory growth (a figure of the whole query) follows SUMMARY.
 */
static void
FrameExplain(QueryFrame *f, ExplainState *es)
{
	MlcnnStat	now[MLCNN_NFN];
	MlcnnStat	d[MLCNN_NFN];
	Size		peak[MLCNN_NFN];
	int64		hwm;
	bool		any = false;

	AbandonFrames(nesting_level + 1);
	MlcnnStatsSnapshot(now);
	MlcnnStatsPeakPop(f->saved_peak, peak);
	f->active = false;
	hwm = BackendPeakRssKb();

	for (int fn = 0; fn < MLCNN_NFN; fn++)
	{
		const MlcnnStat *a = &f->before[fn];
		const MlcnnStat *b = &now[fn];

		d[fn].calls = b->calls - a->calls;
		d[fn].rows = b->rows - a->rows;
		d[fn].epochs = b->epochs - a->epochs;
		d[fn].batches = b->batches - a->batches;
		d[fn].images = b->images - a->images;
		d[fn].total_s = b->total_s - a->total_s;
		d[fn].forward_s = b->forward_s - a->forward_s;
		d[fn].backward_s = b->backward_s - a->backward_s;
		d[fn].update_s = b->update_s - a->update_s;
		d[fn].loss_s = b->loss_s - a->loss_s;
		d[fn].peak_bytes = peak[fn];
		if (d[fn].calls > 0)
			any = true;
	}
	if (!any)
		return;

	if (es->format == EXPLAIN_FORMAT_TEXT)
	{
		IndentText(es);
		appendStringInfoString(es->str, "mlcnn:\n");
		es->indent++;
		for (int fn = 0; fn < MLCNN_NFN; fn++)
			if (d[fn].calls > 0)
			{
				ShowFunctionText(es, (MlcnnFn) fn, &d[fn]);
				if (fn == MLCNN_FN_TUNE)
					ShowTrials(es, f->trials_before);
			}
		if (es->summary && f->hwm_kb >= 0 && hwm >= 0)
		{
			IndentText(es);
			appendStringInfo(es->str, "Backend Peak Memory Growth: " INT64_FORMAT "kB\n",
							 hwm - f->hwm_kb);
		}
		es->indent--;
	}
	else
	{
		ExplainOpenGroup("mlcnn", "mlcnn", true, es);
		ExplainOpenGroup("Functions", "Functions", false, es);
		for (int fn = 0; fn < MLCNN_NFN; fn++)
			if (d[fn].calls > 0)
				ShowFunctionStructured(es, (MlcnnFn) fn, &d[fn]);
		ExplainCloseGroup("Functions", "Functions", false, es);
		if (d[MLCNN_FN_TUNE].calls > 0)
			ShowTrials(es, f->trials_before);
		if (es->summary && f->hwm_kb >= 0 && hwm >= 0)
			ExplainPropertyInteger("Backend Peak Memory Growth", "kB", hwm - f->hwm_kb, es);
		ExplainCloseGroup("mlcnn", "mlcnn", true, es);
	}
}

/* ExecutorStart hook: open the frame, then start one level deeper. */
static void
mlcnn_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (!IsParallelWorker())
		FrameBegin(queryDesc);
	nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorStart)
			prev_ExecutorStart(queryDesc, eflags);
		else
			standard_ExecutorStart(queryDesc, eflags);
	}
	PG_FINALLY();
	{
		nesting_level--;
	}
	PG_END_TRY();
}

#if MLCNN_HAVE_PER_PLAN_EXPLAIN
/* ExecutorRun hook: count the nesting level. */
static void
mlcnn_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count)
{
	nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count);
		else
			standard_ExecutorRun(queryDesc, direction, count);
	}
	PG_FINALLY();
	{
		nesting_level--;
	}
	PG_END_TRY();
}
#else
/* ExecutorRun hook: count the nesting level. */
static void
mlcnn_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
				  bool execute_once)
{
	nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		nesting_level--;
	}
	PG_END_TRY();
}
#endif

/* ExecutorFinish hook: count the nesting level (AFTER triggers run here). */
static void
mlcnn_ExecutorFinish(QueryDesc *queryDesc)
{
	nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		nesting_level--;
	}
	PG_END_TRY();
}

/*
 * ExecutorEnd hook. Before 18, ExplainOnePlan calls it right after the plan
 * is printed: the place to print the section. From 18 the per-plan hook has
 * printed it already; a frame still open (auto_explain's queries) is closed.
 * The level is not changed here, so that hooks called from an ExecutorEnd
 * further out (auto_explain in 19 calls the per-plan hook) see this query's.
 */
static void
mlcnn_ExecutorEnd(QueryDesc *queryDesc)
{
#if !MLCNN_HAVE_PER_PLAN_EXPLAIN
	QueryFrame *f = IsParallelWorker() ? NULL : FrameOf(queryDesc);

	if (f && f->es)
		FrameExplain(f, f->es);
#endif
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (!IsParallelWorker() && FrameOf(queryDesc))
		AbandonFrames(nesting_level);
}

#if MLCNN_HAVE_PER_PLAN_EXPLAIN
/* explain_per_plan_hook: print the section of the plan just run. */
static void
mlcnn_explain_per_plan(PlannedStmt *plannedstmt, IntoClause *into, ExplainState *es,
					   const char *queryString, ParamListInfo params,
					   QueryEnvironment *queryEnv)
{
	if (prev_explain_per_plan)
		prev_explain_per_plan(plannedstmt, into, es, queryString, params, queryEnv);
	if (es->analyze && !IsParallelWorker() && nesting_level < nframes &&
		frames[nesting_level].active &&
		frames[nesting_level].plannedstmt == plannedstmt)
		FrameExplain(&frames[nesting_level], es);
}
#else
/* Plan query and explain it, as explain.c does when no hook is set. */
static void
ExplainPlanAndRun(Query *query, int cursorOptions, IntoClause *into, ExplainState *es,
				  const char *queryString, ParamListInfo params,
				  QueryEnvironment *queryEnv)
{
#if MLCNN_HAVE_STANDARD_EXPLAIN_ONE_QUERY
	standard_ExplainOneQuery(query, cursorOptions, into, es, queryString, params, queryEnv);
#else
	PlannedStmt *plan;
	instr_time	plan_start,
				plan_time;
	BufferUsage buf_start,
				buf_used;

	if (es->buffers)
		buf_start = pgBufferUsage;
	INSTR_TIME_SET_CURRENT(plan_start);
	plan = pg_plan_query(query, queryString, cursorOptions, params);
	INSTR_TIME_SET_CURRENT(plan_time);
	INSTR_TIME_SUBTRACT(plan_time, plan_start);
	if (es->buffers)
	{
		memset(&buf_used, 0, sizeof(buf_used));
		BufferUsageAccumDiff(&buf_used, &pgBufferUsage, &buf_start);
	}
	ExplainOnePlan(plan, into, es, queryString, params, queryEnv,
				   &plan_time, es->buffers ? &buf_used : NULL);
#endif
}

/* ExplainOneQuery hook: remember which EXPLAIN is running, then plan and run. */
static void
mlcnn_ExplainOneQuery(Query *query, int cursorOptions, IntoClause *into,
					  ExplainState *es, const char *queryString,
					  ParamListInfo params, QueryEnvironment *queryEnv)
{
	ExplainTarget target;
	ExplainTarget *outer = explain_target;

	target.es = es;
	target.queryString = queryString;
	target.level = nesting_level;
	explain_target = &target;
	PG_TRY();
	{
		if (prev_ExplainOneQuery)
			prev_ExplainOneQuery(query, cursorOptions, into, es, queryString,
								 params, queryEnv);
		else
			ExplainPlanAndRun(query, cursorOptions, into, es, queryString,
							  params, queryEnv);
	}
	PG_FINALLY();
	{
		explain_target = outer;
	}
	PG_END_TRY();
}
#endif

/* Install the hooks, each chained to the one before it. */
void
MlcnnExplainInit(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = mlcnn_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = mlcnn_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = mlcnn_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = mlcnn_ExecutorEnd;
#if MLCNN_HAVE_PER_PLAN_EXPLAIN
	prev_explain_per_plan = explain_per_plan_hook;
	explain_per_plan_hook = mlcnn_explain_per_plan;
#else
	prev_ExplainOneQuery = ExplainOneQuery_hook;
	ExplainOneQuery_hook = mlcnn_ExplainOneQuery;
#endif
}
