/*
 * pres_caps.h - entity capabilities (XEP-0115) and the PEP notifications
 * they drive (XEP-0163 4.3): the pure half (the verification string of a
 * disco#info answer, the <c/> of a presence; pres_caps_ver.c, unit
 * tested) and the service (pres_caps.c).
 *
 * A note on the model. A session's presence names its caps (hash, node,
 * ver). presenced resolves each ver once: its bounded in-memory cache,
 * else Redis (caps:<hash>:<ver>, the feature list, with a TTL), else one
 * disco#info to a session that claimed it, from that session's bare JID
 * (the router hands results to a bare JID to us), whose answer is trusted
 * only when its hash is the claimed ver (XEP-0115 5.4). The features of
 * the form NODE+notify are the session's interests: a publish to NODE is
 * sent to every available resource of the owner's contacts that is
 * interested and allowed by the node's access model, and a session whose
 * caps become known gets the last item of each node it is interested in
 * from each of its contacts and its own account (XEP-0163 4.3.2).
 */
#ifndef PRES_CAPS_H
#define PRES_CAPS_H

#include <stdbool.h>
#include <stddef.h>

#include "kn_buf.h"
#include "kn_stanza.h"

#define PRES_NS_CAPS "http://jabber.org/protocol/caps"

/* The verification strings we can check (XEP-0115 5.1; XEP-0300 names). */
bool pres_caps_hash_known(const char *hash);

/*
 * The XEP-0115 5.1 string S of the disco#info <query/> element `query`
 * of st, appended to out. Returns 0, or -KN_EPROTO when the answer is
 * ill-formed by 5.4 (a repeated identity, feature or FORM_TYPE; a
 * FORM_TYPE with two different values); a form whose FORM_TYPE is not
 * hidden, or that has none, is left out.
 */
int pres_caps_s(const kn_stanza_t *st, int query, kn_buf_t *out);

/* The base64 of hash(S) into out[size] (size >= 64 is always enough).
 * Returns 0, -KN_EPROTO (ill-formed, as above), or -KN_EINVAL for a hash
 * we do not know. */
int pres_caps_ver(const kn_stanza_t *st, int query, const char *hash, char *out,
                  size_t size);

/* The <c xmlns='http://jabber.org/protocol/caps'/> of presence st: hash,
 * node and ver (borrowed from st). Returns 0, or -KN_ENOENT when there is
 * none or it lacks hash or ver (legacy caps, which cannot be verified). */
typedef struct pres_caps_claim {
    const char *hash, *node, *ver;
} pres_caps_claim_t;
int pres_caps_claim(const kn_stanza_t *st, pres_caps_claim_t *out);

#endif
