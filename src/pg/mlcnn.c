/*
 * mlcnn.c: module entry point. _PG_init calls each part's init function;
 * hooks are installed last.
 */
#include "postgres.h"

#include "fmgr.h"

#include "mlcnn_pg.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Load-time set-up: GUCs first, then OpenBLAS's threads, hooks last. */
void
_PG_init(void)
{
	MlcnnGucInit();
	MlcnnThreadsInit();
	MlcnnOptionsInit();
	MlcnnInterruptsInit();
	MlcnnModelCacheInit();
	MlcnnExplainInit();			/* hooks: keep last */
}
