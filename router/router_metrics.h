/* router_metrics.h - register the router's metrics (kn_metrics.h). */
#ifndef ROUTER_METRICS_H
#define ROUTER_METRICS_H

#include "router.h"

void router_metrics_register(router_t *r);

#endif
