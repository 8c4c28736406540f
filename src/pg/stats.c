/*
 * stats.c: per-session accounting of mlcnn's calls (time split by phase,
 * rows, peak memory), read by the mlcnn_stats view and the EXPLAIN hooks.
 */
#include "postgres.h"

#include "compat.h"
#include "mlcnn_pg.h"

typedef struct MlcnnStat
{
	int64		calls;
	int64		rows;
	int64		epochs;
	int64		batches;
	int64		images;
	double		total_s;
	double		forward_s;
	double		backward_s;
	double		update_s;
	double		loss_s;
	Size		peak_bytes;
} MlcnnStat;

static MlcnnStat session_stats[MLCNN_NFN];

/* Add one unit of work to the session's figures. */
void
MlcnnStatsAdd(MlcnnFn fn, int64 calls, int64 rows, double seconds,
			  const nn_timing *t, int64 epochs, Size peak_bytes)
{
	MlcnnStat  *s = &session_stats[fn];

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
