/*
 * kn_env_stanza.h - the envelope of a stanza a daemon sends: the one place
 * that maps a kn_stanza_t to the routing fields of kn_env_t.
 */
#ifndef KN_ENV_STANZA_H
#define KN_ENV_STANZA_H

#include "kn_env.h"
#include "kn_stanza.h"

/*
 * Fill the stanza name, type, from, to and (for an iq) node = the
 * namespace of its first child, from st; other fields are left as they
 * are. Strings point into st (valid while st is). An unknown or missing
 * type becomes the default that fits the stanza (normal, available,
 * result). Returns 0, or -KN_EPROTO when st is not a message, presence
 * or iq (e is then unusable).
 */
int kn_env_from_stanza(kn_env_t *e, const kn_stanza_t *st);

#endif
