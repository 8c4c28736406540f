/*
 * pool.h: a tiny pool of helper threads for data-parallel work in the core.
 *
 * nn_parallel_run(fn, ctx, n) runs fn(ctx, 0) on the calling thread and
 * fn(ctx, 1..n-1) on helper threads, and returns when all are done. The
 * helpers are created on first use, live as long as the process, block
 * every signal (so a PostgreSQL backend's signal handlers only ever run on
 * its own thread) and touch nothing between runs, so the caller may leave
 * by longjmp between two runs. Tasks must not fail and must not call back
 * into the caller's runtime.
 */
#ifndef MLCNN_POOL_H
#define MLCNN_POOL_H

#define NN_POOL_MAX_THREADS 16

typedef void (*nn_task_fn) (void *ctx, int slot);

/* run fn over slots 0..n-1; returns how many slots ran in parallel (>= 1) */
int			nn_parallel_run(nn_task_fn fn, void *ctx, int n);

/* how many slots nn_parallel_run can give at most (creating helpers as needed) */
int			nn_parallel_threads(int want);

#endif							/* MLCNN_POOL_H */
