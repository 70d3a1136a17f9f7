/*
 * muc_service.h - the entry point of mucd's protocol logic: one envelope
 * (and payload) from the router in, zero or more envelopes out through
 * m->sink. No sockets: the daemon (main.c) feeds what kn_link receives,
 * unit tests feed canned envelopes and read what the sink captured.
 */
#ifndef MUC_SERVICE_H
#define MUC_SERVICE_H

#include <stddef.h>

#include "kn_env.h"
#include "muc_types.h"

/* Handle one envelope from the router: STANZA addressed to the service
 * or a room (presence, message, iq), SESSION_DOWN copies (the session
 * leaves every room), BOUNCE of something we sent. env and payload are
 * borrowed. Bad input is answered with a stanza error or dropped, never
 * fatal. */
void muc_service_handle(muc_t *m, const kn_env_t *env, const void *payload,
                        size_t len);

/* Hand one addressed stanza to its handler (presence, message, iq); a
 * stanza for a room not in memory may be deferred (muc_lookup.c), which
 * calls this again when PostgreSQL has answered. in is borrowed. */
void muc_service_dispatch(muc_t *m, const muc_in_t *in);

#endif
