/* muc_metrics.h - register mucd's metrics (kn_metrics.h). */
#ifndef MUC_METRICS_H
#define MUC_METRICS_H

#include "kn_pg.h"
#include "muc_types.h"

void muc_metrics_register(muc_t *m, kn_pg_pool_t *pg);

#endif
