/*
 * pres_mam.h - the one-to-one message archive (XEP-0313, urn:xmpp:mam:2)
 * in presenced: the pure half (pres_mam_req.c: query, RSM and prefs
 * parsing, ids and time stamps; unit tested) and the I/O half
 * (pres_mam.c: batched writes, queries, prefs, retention).
 *
 * Archive ids are the router's (router_mam.c): milliseconds since the
 * epoch << 16, plus a counter; so an id is also the message's time, and
 * a time bound is an id bound.
 */
#ifndef PRES_MAM_H
#define PRES_MAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kn_env.h"
#include "kn_stanza.h"
#include "kn_xmpp_err.h"

#define MAM_NS       "urn:xmpp:mam:2"
#define MAM_NS_RSM   "http://jabber.org/protocol/rsm"
#define MAM_NS_DATA  "jabber:x:data"
#define MAM_NS_FWD   "urn:xmpp:forward:0"
#define MAM_NS_DELAY "urn:xmpp:delay"

#define MAM_MAX_DEFAULT 50
#define MAM_MAX_LIMIT   250

/* A parsed archive query. Bounds are on ids, both exclusive: the rows
 * returned have lo < id < hi. */
typedef struct mam_query {
    char *queryid; /* may be NULL */
    char *with;    /* prepared bare JID, or NULL */
    int64_t lo, hi;
    size_t max;    /* page size, 0..MAM_MAX_LIMIT */
    bool backward; /* RSM <before/>: the page just before hi (the last
                      page when <before/> is empty) */
} mam_query_t;

/* Parse the <query xmlns='urn:xmpp:mam:2'/> element q of iq st (a set):
 * form fields with, start, end, after-id, before-id (XEP-0313 4.1), RSM
 * max, after, before (XEP-0059). Returns 0, or -1 with *err (bad-request:
 * an unknown field, a bad date, id or max; a form whose FORM_TYPE is not
 * urn:xmpp:mam:2). Free with mam_query_free. */
int mam_query_parse(const kn_stanza_t *st, int q, mam_query_t *out,
                    kn_stanza_err_t *err);
void mam_query_free(mam_query_t *q);

/* An archive id as a number: decimal digits only, > 0. -1 otherwise. */
int64_t mam_id_parse(const char *s);
/* An XEP-0082 DateTime (CCYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm|-hh:mm)) in
 * milliseconds since the epoch; -1 when it is not one. */
int64_t mam_time_parse(const char *s);
/* The XEP-0082 stamp (UTC, milliseconds) of archive id `id` into buf. */
void mam_id_stamp(uint64_t id, char *buf, size_t size);

/* Archiving preferences (XEP-0313 section 6). */
enum { MAM_PREF_ALWAYS = 0, MAM_PREF_NEVER = 1, MAM_PREF_ROSTER = 2 };
extern const char *const mam_pref_names[]; /* "always", "never", "roster" */

typedef struct mam_prefs {
    int dflt;      /* MAM_PREF_* */
    char **always; /* prepared bare JIDs */
    size_t nalways;
    char **never;
    size_t nnever;
} mam_prefs_t;

/* Parse <prefs default=...><always><jid/>...</always><never>...</never>
 * </prefs> (element e of st). Returns 0, or -1 with *err (bad-request). */
int mam_prefs_parse(const kn_stanza_t *st, int e, mam_prefs_t *out,
                    kn_stanza_err_t *err);
void mam_prefs_free(mam_prefs_t *p);
/* Build <prefs/> into the builder's open element. */
void mam_prefs_build(kn_stanza_builder_t *b, const mam_prefs_t *p);

/* PostgreSQL text[] literal of n strings into out (reset first). */
struct kn_buf;
void mam_pg_array(struct kn_buf *out, char *const *v, size_t n);
/* Append one element to a text[] literal being built ("{" ... "}"): the
 * caller writes the braces. */
void mam_pg_array_elem(struct kn_buf *out, const char *s, size_t len);

/* ---- pres_mam.c ---- */
struct pres;
/* An archive copy from the router (KN_F_ARCHIVE): queue its rows. */
void pres_mam_archive(struct pres *p, const kn_env_t *env, const void *payload,
                      size_t len);
/* An IQ in urn:xmpp:mam:2 (query, prefs) to the user's own account. */
void pres_mam_iq(struct pres *p, const kn_stanza_t *st);
/* Start the retention timer. */
void pres_mam_start(struct pres *p);
/* Rows queued or being written (for shutdown: 0 means drained). */
size_t pres_mam_pending(const struct pres *p);
void pres_mam_free(struct pres *p);
/* An account changed or was removed (local part; the credential cache's
 * channel, kn_credcache.h): its cached preferences are dropped, and once
 * the copies received so far are written, its rows are deleted if it is
 * no longer an account. */
void pres_mam_account_changed(struct pres *p, const char *local);
/* Forget every cached preference (invalidations may have been missed). */
void pres_mam_cache_clear(struct pres *p);

#endif
