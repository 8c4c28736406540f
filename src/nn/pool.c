/*
 * pool.c: helper threads for nn_parallel_run (see pool.h).
 *
 * One process-wide pool. A run publishes (fn, ctx, n) and then bumps the
 * generation number; helper i runs slot i + 1 if the run has one, and
 * every helper, whether it had a slot or not, acknowledges the run: the
 * caller returns only when all have, so no helper can still be reading a
 * run's (fn, ctx, n), or running its slot, when the next run is published. Training makes two runs per
 * mini-batch, a fraction of a millisecond apart, so both sides spin
 * briefly on the atomics before they fall back to sleeping on a condition
 * variable: waking a sleeping thread costs tens of microseconds, which
 * added up to several percent of an epoch. If a helper cannot be created,
 * the slots without a thread run on the caller, one after another.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "pool.h"

#define SPINS 4000				/* about 50 microseconds of polling */

static struct
{
	pthread_mutex_t mu;
	pthread_cond_t go;
	pthread_cond_t done;
	int			nhelpers;		/* helpers alive: slots 1..nhelpers */
	_Atomic uint64_t gen;		/* bumped for every run, after fn/ctx/n */
	_Atomic int pending;		/* helpers yet to acknowledge this run */
	nn_task_fn	fn;
	void	   *ctx;
	int			n;				/* slots in this run */
	uint64_t	born[NN_POOL_MAX_THREADS];	/* gen when each helper was made */
}			pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};

/* let a spinning hyper-thread sibling run */
static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Wait until the generation moves past seen; returns the new one. */
static uint64_t
wait_for_run(uint64_t seen)
{
	uint64_t	g;

	for (int i = 0; i < SPINS; i++)
	{
		if ((g = atomic_load_explicit(&pool.gen, memory_order_acquire)) != seen)
			return g;
		cpu_relax();
	}
	pthread_mutex_lock(&pool.mu);
	while ((g = atomic_load_explicit(&pool.gen, memory_order_acquire)) == seen)
		pthread_cond_wait(&pool.go, &pool.mu);
	pthread_mutex_unlock(&pool.mu);
	return g;
}

/* A helper's life: wait for a run, do its slot, report, repeat. */
static void *
helper_main(void *arg)
{
	int			slot = (int) (intptr_t) arg;
	uint64_t	seen;

	pthread_mutex_lock(&pool.mu);
	seen = pool.born[slot];		/* a run published before we got here is ours */
	pthread_mutex_unlock(&pool.mu);
	for (;;)
	{
		seen = wait_for_run(seen);
		if (slot < pool.n)
			pool.fn(pool.ctx, slot);
		if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1)
		{
			pthread_mutex_lock(&pool.mu);
			pthread_cond_signal(&pool.done);
			pthread_mutex_unlock(&pool.mu);
		}
	}
	return NULL;
}

/* Make sure helpers for slots 1..want-1 exist; returns the slots available. */
int
nn_parallel_threads(int want)
{
	sigset_t	all,
				old;

	if (want > NN_POOL_MAX_THREADS)
		want = NN_POOL_MAX_THREADS;
	if (want <= pool.nhelpers + 1)
		return want < 1 ? 1 : want;
	/* helpers inherit this mask: no signal is ever delivered to them */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_mutex_lock(&pool.mu);
	while (pool.nhelpers + 1 < want)
	{
		pthread_t	t;
		pthread_attr_t attr;
		int			ok;

		pool.born[pool.nhelpers + 1] = atomic_load(&pool.gen);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		ok = pthread_create(&t, &attr, helper_main, (void *) (intptr_t) (pool.nhelpers + 1)) == 0;
		pthread_attr_destroy(&attr);
		if (!ok)
			break;
		pool.nhelpers++;
	}
	pthread_mutex_unlock(&pool.mu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pool.nhelpers + 1 < want ? pool.nhelpers + 1 : want;
}

/* Run fn over slots 0..n-1, slot 0 here; returns the slots run in parallel. */
int
nn_parallel_run(nn_task_fn fn, void *ctx, int n)
{
	int			par = n > 1 ? nn_parallel_threads(n) : 1;

	if (par > 1)
	{
		pthread_mutex_lock(&pool.mu);
		pool.fn = fn;
		pool.ctx = ctx;
		pool.n = par;
		atomic_store_explicit(&pool.pending, pool.nhelpers, memory_order_relaxed);
		atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
		pthread_cond_broadcast(&pool.go);
		pthread_mutex_unlock(&pool.mu);
	}
	fn(ctx, 0);
	/* slots no helper could take run here, in order */
	for (int slot = par; slot < n; slot++)
		fn(ctx, slot);
	if (par > 1)
	{
		for (int i = 0; i < SPINS && atomic_load_explicit(&pool.pending, memory_order_acquire) > 0; i++)
			cpu_relax();
		if (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0)
		{
			pthread_mutex_lock(&pool.mu);
			while (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0)
				pthread_cond_wait(&pool.done, &pool.mu);
			pthread_mutex_unlock(&pool.mu);
		}
	}
	return par;
}
