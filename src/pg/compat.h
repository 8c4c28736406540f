/*
 * compat.h: every PG_VERSION_NUM difference mlcnn needs, as small macros.
 */
#ifndef MLCNN_COMPAT_H
#define MLCNN_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(x) EmitWarningsOnPlaceholders(x)
#endif

#endif
