/*
 * muc_load.h - loading rooms from PostgreSQL: all of them at start (rooms,
 * affiliations, and the tail of each archive into the history ring), or
 * one room when an invalidation names it (configuration and
 * affiliations are replaced; members added or removed elsewhere get
 * their bookmark updated and lose their seat when no longer allowed in).
 */
#ifndef MUC_LOAD_H
#define MUC_LOAD_H

#include "muc_types.h"

/* err: 0 or the failing query's -KN_E*. */
typedef void (*muc_load_done_cb)(int err, void *arg);

/* Load every room of the service (only NULL) or just room only. m->store
 * must be set. done is called once, from the loop. */
void muc_load(muc_t *m, const char *only, muc_load_done_cb done, void *arg);
/* Load room jid, which this node does not hold yet, with the tail of its
 * archive into the history ring (muc_lookup.c). done is called once. */
void muc_load_room(muc_t *m, const char *jid, muc_load_done_cb done, void *arg);

#endif
