/*
 * router_io.h - binds the router logic to its ZeroMQ ROUTER socket.
 */
#ifndef ROUTER_IO_H
#define ROUTER_IO_H

#include <ev.h>

#include "router.h"

typedef struct router_io router_io_t;

/* Bind the ROUTER socket at bind and create the router (returned in *rp,
 * owned by the io object). Returns NULL after logging when the endpoint
 * cannot be bound. */
router_io_t *router_io_new(struct ev_loop *loop, const char *bind,
                           router_t **rp, const char *domain, uint32_t boot,
                           double node_timeout);
void router_io_free(router_io_t **iop);

#endif
