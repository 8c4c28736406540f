/*
 * mlcnn_pg.h: what the files of the PostgreSQL layer share.
 */
#ifndef MLCNN_PG_H
#define MLCNN_PG_H

#include "postgres.h"

#include "nn.h"

/* guc.c */
extern int	mlcnn_threads;
void		MlcnnGucInit(void);

/* raise an nn_status as an ERROR with a fitting SQLSTATE */
void		MlcnnReportStatus(const nn_status *st) pg_attribute_noreturn();

/* an nn_allocator over the given memory context (huge, no-OOM allocations) */
void		MlcnnAllocatorInit(nn_allocator *a, MemoryContext cxt);

#endif
