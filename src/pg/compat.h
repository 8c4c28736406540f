/*
 * compat.h: every PG_VERSION_NUM difference mlcnn needs. Small ones are
 * macros here; the EXPLAIN hooks changed shape (PostgreSQL 17 added
 * standard_ExplainOneQuery, 18 a per-plan hook and split explain.h), so
 * explain.c keeps two code paths, chosen by the feature macros below:
 * no source file but this one names a version number.
 */
#ifndef MLCNN_COMPAT_H
#define MLCNN_COMPAT_H

#include "postgres.h"

/* the VARATT_* macros moved out of postgres.h in 16 */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(x) EmitWarningsOnPlaceholders(x)
#endif

/* 17: standard_ExplainOneQuery plans and explains one query */
#define MLCNN_HAVE_STANDARD_EXPLAIN_ONE_QUERY (PG_VERSION_NUM >= 170000)

/*
 * 18: explain_per_plan_hook adds a section to each plan's output, and
 * ExplainState and the property functions have headers of their own
 */
#define MLCNN_HAVE_PER_PLAN_EXPLAIN (PG_VERSION_NUM >= 180000)

#endif
