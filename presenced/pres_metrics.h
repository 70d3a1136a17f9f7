/* pres_metrics.h - register presenced's metrics (kn_metrics.h). */
#ifndef PRES_METRICS_H
#define PRES_METRICS_H

#include "kn_pg.h"
#include "kn_redis.h"
#include "pres.h"

void pres_metrics_register(pres_t *p, kn_pg_pool_t *pg, kn_pg_pool_t *pg_ord,
                           kn_redis_t *redis);

#endif
