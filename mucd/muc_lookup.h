/*
 * muc_lookup.h - stanzas for a room this node does not hold wait while
 * PostgreSQL is asked about it (muc_lookup.c has why and how). Only with a
 * store; without one (unit tests) nothing is deferred.
 */
#ifndef MUC_LOOKUP_H
#define MUC_LOOKUP_H

#include <stdbool.h>

#include "muc_types.h"

/* Called by the service for every stanza to a room (in->room set) with
 * in->lookup NONE. Returns true when the stanza was taken (queued behind a
 * look-up of its room, or refused for lack of room in the queues): the
 * caller does nothing more with it. Returns false when it is to be
 * handled now. in is copied (the stanza referenced). */
bool muc_lookup_defer(muc_t *m, const muc_in_t *in);

/* The session full ended: drop the stanzas it has waiting, so that no
 * join of a session that is gone is replayed. */
void muc_lookup_session_down(muc_t *m, const char *full);

/* Free every waiting stanza (shutdown). */
void muc_lookup_fini(muc_t *m);

#endif
