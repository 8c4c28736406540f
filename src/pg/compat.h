/*
 * compat.h: every PG_VERSION_NUM difference mlcnn needs, as small macros.
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

#endif
