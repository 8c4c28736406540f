/*
 * threads.c: every OpenBLAS thread of a backend, and how many of them run.
 *
 * PostgreSQL's signal handlers (query cancel, statement_timeout's SIGALRM,
 * die, latch wake-ups, config reload) assume they run on the backend's own
 * thread. The kernel delivers a process-directed signal to any thread that
 * does not block it, so every other thread in a backend must block them all.
 * A new thread inherits the mask of the thread that creates it, and OpenBLAS
 * creates its threads at three moments, all from the thread that calls it:
 *
 *   - in its library constructor, when the backend loads mlcnn (before
 *     _PG_init, with the backend's signals unblocked): MlcnnThreadsInit
 *     shuts that pool down and builds it again with every signal blocked;
 *   - in openblas_set_num_threads, when the count grows past the threads
 *     it has;
 *   - lazily, on the first threaded call after its pool was shut down:
 *     OpenBLAS shuts the pool down before every fork (a pthread_atfork
 *     handler), e.g. around COPY ... TO PROGRAM in a backend, or in a
 *     postmaster with shared_preload_libraries before it forks each backend.
 *
 * So MlcnnSetThreads, which runs before mlcnn computes anything, is the one
 * place that calls OpenBLAS's thread functions, and it does so with every
 * signal blocked: it rebuilds a pool that a fork took down, then sets the
 * count. The training helpers of src/nn/pool.c block their signals
 * themselves. The postmaster never computes, and its pool would be taken
 * down at its next fork anyway, so there the pool is only shut down.
 *
 * The count is capped too: a role that is not a superuser cannot make a
 * backend run more threads than the cores it may run on (mlcnn.threads and
 * the train_conv2d option both allow 256), since every thread is a process
 * on the server that an administrator did not grant. Training's helper
 * threads are sized from the count returned here, so they obey the cap too.
 *
 * The thread-server symbols exist in OpenBLAS's pthread build only; they are
 * weak, so mlcnn still loads with another build and then only sets counts.
 */
#include "postgres.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cblas.h>

#include "miscadmin.h"

#include "mlcnn_pg.h"

/* OpenBLAS's thread server (driver/others/blas_server.c) */
extern int	blas_thread_init(void) __attribute__((weak));
extern int	blas_thread_shutdown_(void) __attribute__((weak));
extern int	blas_server_avail __attribute__((weak));	/* 0: no pool */

static int	mlcnn_cores = 0;	/* cores this process may use; 0 = not counted yet */
static int	current_threads = -1;	/* what OpenBLAS was last told */

/* Is this OpenBLAS build one with a thread server we can manage? */
static bool
HaveBlasServer(void)
{
	return blas_thread_init != NULL && blas_thread_shutdown_ != NULL &&
		&blas_server_avail != NULL;
}

/* Block every signal in this thread; the old mask goes to *old. */
static void
BlockAllSignals(sigset_t *old)
{
	sigset_t	all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, old);
}

/* The online cores, or fewer when this process's CPU affinity allows fewer. */
static int
CountCores(void)
{
	long		online = sysconf(_SC_NPROCESSORS_ONLN);
	int			n = online > 0 ? (int) online : 1;
	cpu_set_t	set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 &&
		CPU_COUNT(&set) > 0 && CPU_COUNT(&set) < n)
		n = CPU_COUNT(&set);
	return n;
}

/* Load-time set-up: rebuild OpenBLAS's pool with every signal blocked. */
void
MlcnnThreadsInit(void)
{
	sigset_t	old;

	mlcnn_cores = CountCores();
	if (!HaveBlasServer())
		return;
	BlockAllSignals(&old);
	blas_thread_shutdown_();
	/* the postmaster computes nothing: its backends build their own pools */
	if (IsUnderPostmaster || !IsPostmasterEnvironment)
		blas_thread_init();
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/*
 * Tell OpenBLAS how many threads to use (0 = mlcnn.threads, whose 0 is one
 * per core), at most the cores unless the role is a superuser; returns that
 * count. Rebuilds the pool if a fork took it down.
 */
int
MlcnnSetThreads(int threads)
{
	int			n = threads > 0 ? threads : mlcnn_threads;
	bool		pool_down;

	if (mlcnn_cores <= 0)
		mlcnn_cores = CountCores();
	if (n <= 0)
		n = mlcnn_cores;
	if (n > mlcnn_cores && !superuser())
		n = mlcnn_cores;
	pool_down = HaveBlasServer() && blas_server_avail == 0;
	if (n != current_threads || pool_down)
	{
		sigset_t	old;

		/* threads made here inherit this mask, so no signal reaches them */
		BlockAllSignals(&old);
		if (pool_down)
			blas_thread_init();
		openblas_set_num_threads(n);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		current_threads = n;
	}
	return n;
}
