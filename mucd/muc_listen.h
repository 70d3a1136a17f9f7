/*
 * muc_listen.h - a dedicated PostgreSQL connection that LISTENs on the
 * 'kiln_muc' channel (invalidations, muc_persist.c) and hands each
 * payload to a callback. Non-blocking connect on the loop, reconnect with
 * backoff; on every (re)connect the callback gets payload NULL, meaning
 * "notifications may have been missed: reload everything you cache".
 */
#ifndef MUC_LISTEN_H
#define MUC_LISTEN_H

#include <ev.h>

typedef struct muc_listen muc_listen_t;

typedef void (*muc_listen_cb)(const char *payload, void *arg);

/* conninfo copied; cb called from the loop. */
muc_listen_t *muc_listen_new(struct ev_loop *loop, const char *conninfo,
                             muc_listen_cb cb, void *arg);
void muc_listen_free(muc_listen_t **lp);

#endif
