/*
 * stats.c: per-session accounting of mlcnn's calls (time split by phase,
 * rows, peak memory), read by the mlcnn_stats view and the EXPLAIN hooks.
 *
 * Every SQL-callable function reports its work through MlcnnStatsAdd. Three
 * tallies are kept, all backend-local:
 *   - session: what the mlcnn_stats view shows; mlcnn_stats_reset() zeroes it;
 *   - lifetime: the same sums, never reset, so that EXPLAIN can take the
 *     difference between two snapshots even when a reset happens in between;
 *   - window peaks: the high-water mark of mlcnn's own memory per function
 *     since the innermost open window (one per EXPLAIN ANALYZE query, nested
 *     by MlcnnStatsPeakPush/Pop), because a maximum cannot be diffed.
 * A parallel worker keeps its own tallies, which nobody reads: that is why
 * the SQL functions over them are PARALLEL RESTRICTED.
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "mlcnn_pg.h"

PG_FUNCTION_INFO_V1(mlcnn_stats);
PG_FUNCTION_INFO_V1(mlcnn_stats_reset);

static MlcnnStat session_stats[MLCNN_NFN];
static MlcnnStat lifetime_stats[MLCNN_NFN];
static Size window_peak[MLCNN_NFN];

/* SQL names, in MlcnnFn order */
static const char *const fn_names[MLCNN_NFN] = {
	[MLCNN_FN_TRAIN] = "train_conv2d",
	[MLCNN_FN_PREDICT] = "predict",
	[MLCNN_FN_PREDICT_PROBA] = "predict_proba",
	[MLCNN_FN_FORWARD_PASS] = "forward_pass",
	[MLCNN_FN_COMPUTE_GRADIENTS] = "compute_gradients",
	[MLCNN_FN_UPDATE_WEIGHTS] = "update_weights",
	[MLCNN_FN_CALCULATE_LOSS] = "calculate_loss",
	[MLCNN_FN_EVALUATE] = "evaluate",
	[MLCNN_FN_MODEL_INFO] = "model_info",
	[MLCNN_FN_MODEL_WEIGHTS] = "model_weights",
	[MLCNN_FN_LOAD_IDX] = "load_idx",
	[MLCNN_FN_MODEL_TO_ONNX] = "model_to_onnx",
	[MLCNN_FN_MODEL_FROM_ONNX] = "model_from_onnx",
	[MLCNN_FN_DECODE_IMAGE] = "decode_image",
	[MLCNN_FN_TUNE] = "tune_conv2d",
	[MLCNN_FN_TRAIN_DISTRIBUTED] = "train_distributed",
};

/* Add one unit of work to one tally. */
static void
stat_add(MlcnnStat *s, int64 calls, int64 rows, double seconds,
		 const nn_timing *t, int64 epochs, Size peak_bytes)
{
	s->calls += calls;
	s->rows += rows;
	s->epochs += epochs;
	s->total_s += seconds;
	if (t)
	{
		s->forward_s += t->forward_s;
		s->backward_s += t->backward_s;
		s->update_s += t->update_s;
		s->loss_s += t->loss_s;
		s->batches += t->batches;
		s->images += t->images;
	}
	if (peak_bytes > s->peak_bytes)
		s->peak_bytes = peak_bytes;
}

/* Add one unit of work to the session's figures. */
void
MlcnnStatsAdd(MlcnnFn fn, int64 calls, int64 rows, double seconds,
			  const nn_timing *t, int64 epochs, Size peak_bytes)
{
	Assert((int) fn >= 0 && (int) fn < MLCNN_NFN);
	stat_add(&session_stats[fn], calls, rows, seconds, t, epochs, peak_bytes);
	stat_add(&lifetime_stats[fn], calls, rows, seconds, t, epochs, peak_bytes);
	if (peak_bytes > window_peak[fn])
		window_peak[fn] = peak_bytes;
}

/* The SQL name of fn. */
const char *
MlcnnFnName(MlcnnFn fn)
{
	if ((int) fn < 0 || (int) fn >= MLCNN_NFN)
		return "?";
	return fn_names[fn];
}

/* Copy the never-reset counters into out[MLCNN_NFN]. */
void
MlcnnStatsSnapshot(MlcnnStat *out)
{
	memcpy(out, lifetime_stats, sizeof(lifetime_stats));
}

/* Open a peak window: remember the running peaks, start from zero. */
void
MlcnnStatsPeakPush(Size *saved)
{
	memcpy(saved, window_peak, sizeof(window_peak));
	memset(window_peak, 0, sizeof(window_peak));
}

/* Close a peak window: report its peaks, fold them into the enclosing one. */
void
MlcnnStatsPeakPop(const Size *saved, Size *out)
{
	memcpy(out, window_peak, sizeof(window_peak));
	for (int fn = 0; fn < MLCNN_NFN; fn++)
		if (saved[fn] > window_peak[fn])
			window_peak[fn] = saved[fn];
}

/*
 * mlcnn_stats(): one row per function this session has called since the
 * last reset.
 */
Datum
mlcnn_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int fn = 0; fn < MLCNN_NFN; fn++)
	{
		const MlcnnStat *s = &session_stats[fn];
		Datum		values[9];
		bool		nulls[9] = {0};

		if (s->calls == 0)
			continue;
		values[0] = CStringGetTextDatum(fn_names[fn]);
		values[1] = Int64GetDatum(s->calls);
		values[2] = Int64GetDatum(s->rows);
		values[3] = Float8GetDatum(1000.0 * s->total_s);
		values[4] = Float8GetDatum(1000.0 * s->forward_s);
		values[5] = Float8GetDatum(1000.0 * s->backward_s);
		values[6] = Float8GetDatum(1000.0 * s->update_s);
		values[7] = Float8GetDatum(1000.0 * s->loss_s);
		values[8] = Int64GetDatum((int64) s->peak_bytes);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* mlcnn_stats_reset(): zero the figures mlcnn_stats shows. */
Datum
mlcnn_stats_reset(PG_FUNCTION_ARGS)
{
	memset(session_stats, 0, sizeof(session_stats));
	PG_RETURN_VOID();
}

static MlcnnTrialEntry trial_log[MLCNN_TRIAL_LOG];
static uint64 trial_count;

/* Remember one trial of a search. */
void
MlcnnTrialLogAdd(const MlcnnTrialEntry *e)
{
	trial_log[trial_count % MLCNN_TRIAL_LOG] = *e;
	trial_count++;
}

/* The trials numbered after since (the oldest first), at most MLCNN_TRIAL_LOG of them. */
int
MlcnnTrialLogSince(uint64 since, MlcnnTrialEntry *out)
{
	uint64		from = since;
	int			n = 0;

	if (trial_count - from > MLCNN_TRIAL_LOG)
		from = trial_count - MLCNN_TRIAL_LOG;
	for (uint64 i = from; i < trial_count; i++)
		out[n++] = trial_log[i % MLCNN_TRIAL_LOG];
	return n;
}

/* Trials logged since the library was loaded. */
uint64
MlcnnTrialLogCount(void)
{
	return trial_count;
}
