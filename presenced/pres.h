/*
 * pres.h - kiln-presenced's shared state: the context every module gets,
 * the session table (pres_sess.c), the roster cache (pres_roster.c) and
 * the output sink (pres_out.c).
 *
 * A note on ownership. The router copies every SESSION_UP/DOWN/PRIORITY
 * to us, so presenced holds its own table of the cluster's sessions:
 * full JID -> {connection id, priority, available, last available
 * presence, directed-presence recipients}, grouped per bare JID in a
 * pres_user_t. That table is the authority presenced answers probes
 * from; it is written through to Redis (pres:<bare>, dirpres:<full>,
 * R-PRES-1) and rebuilt from Redis when presenced restarts
 * (pres_sess_restore). A pres_user_t lives while it has sessions or a
 * roster load in flight; its roster cache goes with it, so the cache is
 * bounded by the number of online users and invalidated by every roster
 * write (we are the only writer; kilnctl's shared-group edits arrive
 * through the shared_group_changes poll, pres_shared.c).
 *
 * Nothing here blocks: PostgreSQL through kn_pg, Redis through kn_redis,
 * the router through the sink (kn_link in main.c, a capture in tests).
 */
#ifndef PRES_H
#define PRES_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "kn_buf.h"
#include "kn_env.h"
#include "kn_pg.h"
#include "kn_redis.h"
#include "kn_stanza.h"
#include "kn_xmpp_err.h"
#include "pres_subscr.h"

typedef struct pres pres_t;
typedef struct pres_user pres_user_t;
typedef struct pres_caps pres_caps_t;
struct kn_blocklist;
struct pres_block_wait;
struct pres_bc_job;

/* ---- config (pres_conf.c) ---- */
enum { PRES_OFFLINE_STORE_AND_BOUNCE = 0, PRES_OFFLINE_STORE_AND_DROP = 1 };

typedef struct pres_conf {
    int offline_type;                 /* PRES_OFFLINE_* */
    long long offline_quota_bytes;    /* per user */
    long long shared_poll_ms;         /* shared-group change poll period */
    int roster_presence;              /* R-PERF-8: 0 = no roster fan-out */
    long long pep_max_items;          /* PEP: largest max_items ("max") */
    long long pep_max_nodes;          /* PEP: nodes per account */
    int push_include_body;            /* XEP-0357: send last-message-body */
    long long push_max_registrations; /* XEP-0357: app servers per user */
    int mam_enabled;                  /* XEP-0313: archive messages at all */
    int mam_default;                  /* XEP-0313: MAM_PREF_* (pres_mam.h) */
    long long mam_retention_days;     /* 0: archive kept forever */
    long long mam_expire_interval_ms; /* retention sweep period */
    char *admins;               /* XEP-0133: admin bare JIDs, comma-separated */
    long long roster_max_items; /* rosteritems rows per user (0: none) */
    long long private_max_bytes;  /* XEP-0049: one stored element */
    long long vcard_max_bytes;    /* XEP-0054: one vCard */
    long long pep_item_max_bytes; /* XEP-0163: one item's payload */
} pres_conf_t;

struct kn_conf;
/* Load the `presenced` section (absent: defaults). Returns 0 or -KN_EINVAL
 * with err filled. */
int pres_conf_load(const struct kn_conf *cf, pres_conf_t *out, char *err,
                   size_t errlen);
/* Free what pres_conf_load() allocated (strings). */
void pres_conf_free(pres_conf_t *c);

/* ---- roster items (pres_roster.c) ---- */
typedef struct pres_item {
    char *jid;     /* bare JID of the contact */
    char *name;    /* may be NULL */
    char **groups; /* ngroups strings, owned */
    size_t ngroups;
    pres_substate_t st;   /* personal state (shared: forced both) */
    bool in_roster;       /* shown in the roster (not only pending-in) */
    bool shared;          /* comes (also) from a shared group */
    bool personal;        /* has a rosteritems row */
    char *pending_status; /* status text of a stored subscribe */
} pres_item_t;

typedef struct pres_roster {
    pres_item_t *items;
    size_t n, cap;
    long long ver; /* the user's roster_versions.version */
} pres_roster_t;

/* Effective subscription of an item (a shared item is "both"). */
pres_sub_t pres_item_sub(const pres_item_t *it);
/* The item for jid, or NULL. */
pres_item_t *pres_roster_find(const pres_roster_t *r, const char *jid);
void pres_roster_free(pres_roster_t **rp);

/* ---- sessions (pres_sess.c) ---- */
typedef struct pres_sess {
    char *full; /* key */
    size_t bare_len;
    uint64_t conn;
    int16_t prio;
    bool router_avail; /* AVAILABLE flag from the router's copy */
    bool avail;        /* we processed its available presence */
    bool initial_done; /* login flow (R-PRES-3/4/5) ran */
    bool block_sent;   /* its XEP-0191 block list went to its c2s node */
    kn_stanza_t *last; /* last available presence (from = full) */
    /* The available presence its last broadcast sent (NULL: none yet, or
     * its unavailable went out since). Set and cleared when the fan-out
     * runs, not when the presence arrives: a login sends the new resource
     * only what others have already broadcast, so each resource gets
     * each presence once (pres_broadcast.c). */
    kn_stanza_t *shown;
    char **dir; /* directed presence recipients (R-PRES-7) */
    size_t ndir;
    uint64_t *off_ids; /* offline rows sent to it (pres_offline.c) */
    size_t noff, off_cap;
    char *caps_key;         /* XEP-0115 "hash ver" claimed; NULL: none */
    struct pres_caps *caps; /* its resolved caps (a reference); NULL */
    pres_user_t *user;
    struct pres_sess *next; /* in user->sessions */
    UT_hash_handle hh;      /* p->sessions */
} pres_sess_t;

typedef void (*pres_roster_cb)(pres_t *p, const char *bare,
                               const pres_roster_t *r, int err, void *arg);

typedef struct pres_roster_waiter {
    pres_roster_cb cb;
    void *arg;
    struct pres_roster_waiter *next;
} pres_roster_waiter_t;

struct pres_user {
    char *bare; /* key */
    pres_sess_t *sessions;
    pres_roster_t *roster; /* cache; NULL when not loaded */
    bool loading;
    bool reload; /* invalidated while loading */
    pres_roster_waiter_t *waiters;
    struct kn_blocklist *blocked; /* XEP-0191 list (cache); NULL: none */
    uint8_t block_state;          /* PRES_BLOCK_* */
    bool block_busy; /* blocking IQs running: not freed meanwhile */
    struct pres_block_wait *block_waiting; /* blocking IQs until loaded */
    char *photo;        /* XEP-0153 hash (hex, "" no photo); NULL unknown */
    bool photo_loading; /* vcards query in flight */
    bool photo_stale;   /* a presence went out before the hash was known */
    /* Fan-outs waiting for the hash (loading) and, behind them, every
     * later fan-out of the user, in order (pres_broadcast.c). */
    struct pres_bc_job *bc_parked;
    bool off_pass;     /* a redelivery read of offline rows is queued */
    bool off_again;    /* rows were released meanwhile: read once more */
    UT_hash_handle hh; /* p->users */
};

/* ---- the sink: how stanzas leave ---- */
typedef struct pres_sink {
    void (*send)(void *ud, const kn_env_t *env, const void *payload,
                 size_t len);
    void *ud;
} pres_sink_t;

typedef struct pres_stats {
    uint64_t broadcasts, multicast_targets, offline_stored, offline_sent,
        offline_acked, offline_returned, offline_bounced, offline_resent,
        offline_resent_stored, offline_dups, pushes, push_sent, push_removed,
        caps_queries, caps_hits, caps_bad, pep_contact_notified, pep_last_sent,
        bundles, bundled;
} pres_stats_t;

/* An offline row handed to a c2s node and not deleted yet (R-PRES-5). */
/* A XEP-0357 publish waiting for its answer (pres_push.c). */
typedef struct pres_push_pending pres_push_pending_t;

typedef struct pres_off_row {
    uint64_t id;   /* key: offline_messages.id */
    uint64_t conn; /* the connection it was sent to */
    bool acked;    /* written; the delete is queued */
    UT_hash_handle hh;
} pres_off_row_t;

struct pres {
    struct ev_loop *loop;
    char *domain;
    pres_conf_t conf;
    pres_sink_t sink;
    kn_pg_pool_t *pg; /* may be NULL in unit tests */
    /* One connection (pool_min = pool_max = 1), FIFO: the writes whose
     * order matters (offline messages: insert, read, delete; last
     * presence: delete at login, upsert at logout, iq:last read) are
     * executed in the order they were queued, so bigserial ids follow
     * arrival order. NULL: pg is used (unit tests). */
    kn_pg_pool_t *pg_ord;
    kn_redis_t *redis;     /* may be NULL */
    pres_sess_t *sessions; /* full JID -> session */
    pres_user_t *users;    /* bare JID -> user */
    long long shared_ver;  /* last shared_group_changes id seen */
    bool shared_polling;
    struct pres **shared_inflight; /* the poll's slot (pres_shared.c) */
    struct pres **admin_inflight;  /* admin_commands poll (pres_admin.c) */
    struct pres_adhoc *adhoc;      /* XEP-0050 sessions (pres_adhoc.c) */
    size_t adhoc_n;
    ev_timer shared_timer;
    /* A stop: waiting (at most PRES_OFF_STOP_WAIT s) for the router's
     * answer to our "stopping" notice (kn_proto.h), after which no ACK of
     * a written row reaches us (pres_offline.c). */
    bool off_stop_wait;
    ev_timer off_stop_timer;
    double started; /* ev_now at start, for iq:last on the server */
    kn_buf_t out;   /* serialisation scratch */
    /* pres_bundle_*: deliveries for one connection collected into one
     * MULTICAST envelope (KN_F_BUNDLE); conn 0: none open. */
    kn_buf_t bundle;
    uint64_t bundle_conn;
    size_t bundle_n;
    kn_stanza_t *bundle_one; /* the first item, sent alone if it stays so */
    uint64_t *targets;
    size_t targets_cap;
    kn_stanza_builder_t *b;
    struct pres_subq *subq_head, **subq_tail; /* pres_subscr_io.c */
    pres_off_row_t *off_rows; /* offline rows in flight, by id */
    bool subq_busy;
    struct pep_queue *pep_queues; /* pres_pep.c: bare JID -> FIFO of jobs */
    char *pep_trusted;            /* the MUC service: publishes for users */
    unsigned long pep_seq;        /* PEP notification and item ids */
    pres_push_pending_t *push_pending; /* XEP-0357 publishes by id, oldest
                                          first */
    size_t push_npending;
    unsigned long push_seq;            /* XEP-0357 publish ids */
    struct pres_caps *caps;            /* pres_caps.c: cache by key, LRU */
    struct caps_pending *caps_pending; /* resolutions in flight */
    size_t caps_npending;
    unsigned long caps_seq;      /* disco#info ids */
    struct caps_last *caps_last; /* last-item queries in flight */
    struct pres_mam *mam;        /* XEP-0313 archive (pres_mam.c) */
    /* pres_last.c: last-presence writes (upsert at logout, delete at
     * login) not yet sent, by user, the newest per user; flushed as one
     * statement per loop pass by last_flush_w, one batch in flight. */
    struct pres_last_op *last_ops;
    ev_prepare last_flush_w;
    bool last_inflight;
    pres_stats_t stats;
};

/* ---- pres_core.c ---- */
/* A context; sink, pg and redis are borrowed. Free with pres_free(). */
pres_t *pres_new(struct ev_loop *loop, const char *domain,
                 const pres_conf_t *conf, const pres_sink_t *sink,
                 kn_pg_pool_t *pg, kn_redis_t *redis);
void pres_free(pres_t **pp);
/* Handle one message from the router (env/payload borrowed). */
void pres_handle(pres_t *p, const kn_env_t *env, const void *payload,
                 size_t len);
/* Start timers (shared-group poll) and restore state from Redis. */
void pres_start(pres_t *p);
/* A graceful stop began: stop the timers (no new work of our own). */
void pres_stop(pres_t *p);
/* Replace the Redis handle (borrowed; NULL: no Redis writes), e.g. before
 * the process frees it while pool callbacks may still run. */
void pres_set_redis(pres_t *p, kn_redis_t *redis);

/* ---- pres_sess.c ---- */
pres_user_t *pres_user_find(pres_t *p, const char *bare);
/* Take and run kilnctl's queued commands (pres_admin.c). */
void pres_admin_poll(pres_t *p);
/* End the sessions of jid (bare: all of them) with reason. */
void pres_admin_kick(pres_t *p, const char *jid, kn_env_reason_t reason);
/* A headline from the domain to every online session (subject may be
 * NULL or ""); returns how many. */
size_t pres_admin_announce(pres_t *p, const char *text, const char *subject);

/* ---- pres_creds.c ---- */
/* Users rows of bares[0..n) changed in PostgreSQL: tombstone their copies
 * in the credential cache and tell every c2s node, then done(arg)
 * (always, also without Redis). */
void pres_creds_invalidate(pres_t *p, char *const *bares, size_t n,
                           void (*done)(void *arg), void *arg);

/* ---- pres_adhoc.c: XEP-0133 over XEP-0050 ---- */
/* <command/> to the domain. */
void pres_adhoc_iq(pres_t *p, const kn_stanza_t *st);
/* disco#info/#items to the domain with a commands node. */
void pres_adhoc_disco(pres_t *p, const kn_stanza_t *st);
/* Whether from's bare JID is in presenced.admins. */
bool pres_adhoc_is_admin(const pres_t *p, const char *from);
void pres_adhoc_free(pres_t *p);
pres_user_t *pres_user_get(pres_t *p, const char *bare);
/* Free u if it has no sessions and nothing in flight. */
void pres_user_maybe_free(pres_t *p, pres_user_t *u);
pres_sess_t *pres_sess_find(pres_t *p, const char *full);
void pres_sess_up(pres_t *p, const kn_env_t *env);
void pres_sess_down(pres_t *p, const kn_env_t *env);
void pres_sess_priority(pres_t *p, const kn_env_t *env);
/* Number of u's sessions that are available (presence processed). */
size_t pres_user_navail(const pres_user_t *u);
/* Redis write-through of a session's presence (R-PRES-1). */
void pres_sess_store(pres_t *p, const pres_sess_t *s);
void pres_sess_unstore(pres_t *p, const pres_sess_t *s);
/* Record / forget a directed presence recipient (R-PRES-7). */
void pres_sess_dir_add(pres_t *p, pres_sess_t *s, const char *to);
void pres_sess_dir_del(pres_t *p, pres_sess_t *s, const char *to);
void pres_sess_dir_clear(pres_t *p, pres_sess_t *s);
/* Rebuild the table from Redis sessions:* and pres:* after a restart. */
void pres_sess_restore(pres_t *p);

/* ---- pres_out.c ---- */
/* Route st on its to (STANZA). st borrowed. flags: KN_F_*. */
void pres_send(pres_t *p, const kn_stanza_t *st, uint16_t flags);
/* Route a stored offline message (st's to: the session's full JID) to the
 * connection conn only, asking its c2s node to ACK row id `row` once
 * written (KN_F_ACK_WANTED). */
void pres_send_row(pres_t *p, const kn_stanza_t *st, uint64_t conn,
                   uint64_t row);
/* Route st with to replaced. */
void pres_send_to(pres_t *p, const kn_stanza_t *st, const char *to);
/* Deliveries to the one connection conn (a local session), in order, as
 * one MULTICAST envelope with KN_F_BUNDLE (kn_proto.h) instead of one
 * STANZA envelope each: begin, add each stanza (to set, or set to `to`),
 * end (to NULL: st's own `to`). A single item goes out as the plain STANZA it
 * would have been; a bundle that grows past PRES_BUNDLE_MAX bytes goes out and
 * a new one starts. Anything else sent meanwhile (pres_send...) first sends
 * what was collected, so the order on the wire is the order of the calls. conn
 * 0: no bundle, each add is a pres_send_to. */
/* Under c2s.out_buffer_max's smallest value (64 KiB): one bundle is
 * written to the session's output in one go, before any socket write. */
#define PRES_BUNDLE_MAX (32 * 1024)
void pres_bundle_begin(pres_t *p, uint64_t conn);
void pres_bundle_add_to(pres_t *p, const kn_stanza_t *st, const char *to);
void pres_bundle_end(pres_t *p);
/* One MULTICAST of st to targets[0..n). */
void pres_multicast(pres_t *p, const kn_stanza_t *st, const uint64_t *targets,
                    size_t n);
/* The same with envelope flags (KN_F_*). */
void pres_multicast_flags(pres_t *p, const kn_stanza_t *st,
                          const uint64_t *targets, size_t n, uint16_t flags);
/* Error reply to orig. */
void pres_send_error(pres_t *p, const kn_stanza_t *orig, kn_stanza_err_t cond);
/* The same with a <text/> (a limit: say which and how much). */
void pres_send_error_text(pres_t *p, const kn_stanza_t *orig,
                          kn_stanza_err_t cond, const char *text);
/* Append conn to p->targets (growing). */
void pres_target_add(pres_t *p, size_t *n, uint64_t conn);
/* p->targets = the sessions of u (its available ones when avail_only; none
 * when u is NULL); returns how many. */
size_t pres_user_targets(pres_t *p, const pres_user_t *u, bool avail_only);
/* An empty result to iq (from = its to). */
void pres_send_result(pres_t *p, const kn_stanza_t *iq);
/* The ISO 8601 UTC stamp of t into buf[32]. */
void pres_stamp(double t, char *buf, size_t size);
/* True if jid (bare) is a local user of our domain. */
bool pres_is_local(const pres_t *p, const char *jid);
/* Local part of a local bare JID into a new string. */
char *pres_localpart(const char *bare);
/* Whether a kiln:creds: value (kn_credcache.h) is a cached users row of
 * an account that is not disabled (pres_sess.c, the login's account
 * check). */
bool pres_creds_cached_enabled(const char *v, size_t len);
/* The ordered pool (see pres_t.pg_ord), borrowed; NULL: use pg. */
void pres_set_ordered_pg(pres_t *p, kn_pg_pool_t *pg_ord);
/* The pool for ordered statements: pg_ord, else pg. */
kn_pg_pool_t *pres_pg_ordered(const pres_t *p);

/* A kn_pg callback that only logs errors (arg: a static label). */
void pres_pg_ignore(const PGresult *res, int err, void *arg);
/* Bare part of a JID into a new string. */
char *pres_bare_of(const char *jid);

/* ---- pres_roster.c ---- */
/* Get u's effective roster (personal items merged with shared groups):
 * from the cache (cb called at once) or PostgreSQL (cb later). */
void pres_roster_get(pres_t *p, const char *bare, pres_roster_cb cb, void *arg);
/* Drop the cached roster of bare (after a write). */
void pres_roster_invalidate(pres_t *p, const char *bare);
void pres_roster_invalidate_all(pres_t *p);
/* Handle an IQ in jabber:iq:roster. */
void pres_roster_iq(pres_t *p, const kn_env_t *env, const kn_stanza_t *st);
/* Push item (NULL item => remove of jid) to every session of bare. */
void pres_roster_push(pres_t *p, const char *bare, const pres_item_t *it,
                      const char *jid, long long ver);
/* Push the current effective item for jid (or its removal) to bare's
 * sessions after a write: the cache is dropped and reloaded first. */
void pres_roster_push_jid(pres_t *p, const char *bare, const char *jid);
/* The version string "<user>-<shared>" (XEP-0237). */
void pres_roster_ver_str(long long user_ver, long long shared_ver, char *buf,
                         size_t size);
/* Groups <-> the 0x01-separated form used with PostgreSQL. */
void pres_groups_join(char *const *groups, size_t n, kn_buf_t *out);
size_t pres_groups_split(const char *s, char ***out);
/* Merge a shared item (jid, group) into r. */
void pres_roster_merge_shared(pres_roster_t *r, const char *jid,
                              const char *group);
/* Build the <item/> for it into the builder's open element. */
void pres_item_build(kn_stanza_builder_t *b, const pres_item_t *it);

/* ---- pres_register.c ---- */
/* XEP-0077 to the server from a local user: query, password change,
 * account removal. */
void pres_register_iq(pres_t *p, const kn_stanza_t *st);

/* ---- pres_broadcast.c ---- */
/* A broadcast presence (no to) from a local full JID. */
void pres_broadcast_handle(pres_t *p, const kn_stanza_t *st, const char *from);
/* The session ended: synthesize unavailable if it was available. */
void pres_broadcast_session_end(pres_t *p, pres_sess_t *s);
/* Directed presence from a local user (R-PRES-7). */
void pres_directed_handle(pres_t *p, const kn_stanza_t *st, const char *from,
                          const char *to);
/* Send the presence of each available resource of contact to full. */
size_t pres_send_presences_of(pres_t *p, const char *contact, const char *to);

/* Stamp the avatar hash on u's available resources' presence again and
 * re-broadcast it (the hash became known or changed). */
void pres_broadcast_avatar(pres_t *p, pres_user_t *u);
/* u's hash load ended (known, or still NULL after an error): run the
 * fan-outs parked waiting for it, stamped with it, in order. u may be
 * freed by the time this returns. */
void pres_broadcast_photo_known(pres_t *p, pres_user_t *u);
/* Drop u's parked fan-outs without running them (pres_free). */
void pres_broadcast_user_free(pres_user_t *u);

/* ---- pres_avatar.c: vCard-based avatars (XEP-0153) ---- */
#define PRES_NS_VCARD_UPDATE "vcard-temp:x:update"
/* SHA-1 hex of the decoded PHOTO/BINVAL of vCard element v of st into
 * hex[size >= 41]; "" when there is none. -KN_EPROTO (hex "") for bad
 * base64. */
int pres_avatar_hash_vcard(const kn_stanza_t *st, int v, char *hex,
                           size_t size);
/* The same for a serialized <vCard/>. */
int pres_avatar_hash_xml(const char *xml, char *hex, size_t size);
/* A copy of presence st (caller owns) with the client's vcard-temp:x:update
 * x replaced by ours: <photo>photo</photo>, <photo/> for "", an empty x
 * for NULL (not known yet). Uses p->b. */
kn_stanza_t *pres_avatar_stamp(pres_t *p, const kn_stanza_t *st,
                               const char *photo);
/* Load u's hash from PostgreSQL unless known or in flight. */
void pres_avatar_load(pres_t *p, pres_user_t *u);
/* A vCard set stored hash for bare: remember it, re-broadcast if new. */
void pres_avatar_set(pres_t *p, const char *bare, const char *hash);

/* ---- pres_probe.c ---- */
void pres_probe_handle(pres_t *p, const kn_stanza_t *st, const char *from,
                       const char *to);

/* ---- pres_subscr_io.c ---- */
void pres_subscr_handle(pres_t *p, const kn_env_t *env, const kn_stanza_t *st,
                        const char *from, const char *to);

/* Y's available resources' presence (available) or an unavailable from
 * each of them (!available) to X's available resources. */
void pres_presence_flow(pres_t *p, const char *y, const char *x,
                        bool available);
/* Roster remove (RFC 6121 2.5.2): tell the contact's side. */
void pres_subscr_cancel_on_remove(pres_t *p, const char *user_bare,
                                  const char *contact, pres_sub_t sub, bool out,
                                  bool in);

/* ---- pres_offline.c ---- */
void pres_offline_store(pres_t *p, const kn_env_t *env, const kn_stanza_t *st,
                        const void *payload, size_t len);
/* Send bare's stored messages to the session full (after its presence);
 * each row is deleted when its c2s node ACKs the write. */
void pres_offline_deliver(pres_t *p, const char *bare, const char *full);
/* An ACK from a c2s node: delete the rows whose ids are its targets. */
void pres_offline_ack(pres_t *p, const kn_env_t *env);
/* A row sent with KN_F_ACK_WANTED came back undelivered (env->ack_id):
 * it is still stored; hand it to another session or keep it. */
void pres_offline_returned(pres_t *p, const kn_env_t *env);
/* Session s is going away: its rows not written yet are free again. */
void pres_offline_session_gone(pres_t *p, pres_sess_t *s);
/* Forget every row in flight (shutdown). */
void pres_offline_free(pres_t *p);
/* The router handed us env (KN_F_OFFLINE_HANDOFF) and we are done with
 * it (stored, bounced, sent on, not worth storing, unparsable): ACK its
 * hand-off id, so the router forgets its copy. No-op without the flag. */
void pres_offline_handoff_done(pres_t *p, const kn_env_t *env);
/* A stop: tell the router we are stopping (it hands us no more messages
 * and keeps c2s's ACKs of written rows for the next presenced). */
void pres_offline_stopping(pres_t *p);
/* The router's answer to that (a REGISTER KN_REG_OFFLINE, reason
 * SHUTDOWN). */
void pres_offline_stop_answered(pres_t *p);
/* 1 while a stop waits for that answer, else 0. */
size_t pres_offline_stop_pending(const pres_t *p);

/* ---- pres_last.c ---- */
void pres_last_store(pres_t *p, const char *bare, const kn_stanza_t *unavail);
void pres_last_clear(pres_t *p, const char *bare);
/* Queue now every write pres_last_store/clear have batched (before a
 * read of last_presence on the ordered pool, and at each loop pass). */
void pres_last_flush(pres_t *p);
/* Writes batched and not yet sent (a stop waits for them). */
size_t pres_last_pending(const pres_t *p);
/* Drop what is still batched (pres_free), with a warning. */
void pres_last_free(pres_t *p);
void pres_last_iq(pres_t *p, const kn_env_t *env, const kn_stanza_t *st);
/* Send the stored last unavailable presence of each of contacts[0..n)
 * (bare JIDs) to full, then call done(arg). */
void pres_last_send_stored(pres_t *p, char **contacts, size_t n,
                           const char *full, void (*done)(pres_t *, void *),
                           void *arg);

/* ---- pres_shared.c ---- */
void pres_shared_poll(pres_t *p);

/* ---- pres_iq.c: version, time, private, vCard; dispatch ---- */
void pres_iq_handle(pres_t *p, const kn_env_t *env, const kn_stanza_t *st);
/* The sender's bare JID if the IQ is to its own account (no to, its bare
 * JID or the server), else NULL. Caller frees. */
char *pres_iq_own_bare(pres_t *p, const kn_stanza_t *st);

/* ---- pres_block.c: blocking (XEP-0191) ---- */
enum {
    PRES_BLOCK_UNKNOWN = 0, /* not loaded (or the load failed) */
    PRES_BLOCK_LOADING,
    PRES_BLOCK_LOADED,
};
/* An IQ in urn:xmpp:blocking (get the list, block, unblock). */
void pres_block_iq(pres_t *p, const kn_stanza_t *st);
/* Whether owner_bare's cached list blocks jid (false when not loaded). */
bool pres_is_blocked(pres_t *p, const char *owner_bare, const char *jid);
/* Whether either of the JIDs a and b (full or bare) is blocked by the
 * other's owner, on the cached lists. Never for two JIDs of one user. */
bool pres_block_between(pres_t *p, const char *a, const char *b);
/* A session came up: send it the user's list (KN_F_BLOCKLIST), loading
 * the list first if needed. */
void pres_block_session_up(pres_t *p, pres_sess_t *s);
/* Free what u holds for blocking (the list, waiting IQs). */
void pres_block_user_free(pres_user_t *u);
/* Whether owner_bare blocks jid: from the cache when loaded, else from
 * PostgreSQL. cb(p, blocked, err, arg) exactly once, maybe at once. */
typedef void (*pres_block_cb)(pres_t *p, bool blocked, int err, void *arg);
void pres_block_check(pres_t *p, const char *owner_bare, const char *jid,
                      pres_block_cb cb, void *arg);
/* The four XEP-0191 keys of jid (kn_block_keys, the last repeated) as
 * NUL-terminated strings for SQL parameters: keys[0..4) point into the
 * returned allocation, which the caller frees. */
char *pres_block_key_params(const char *jid, size_t len, const char *keys[4]);

/* ---- pres_pep.c: PEP (XEP-0163), see pres_pep.h ---- */
/* A pubsub, pubsub#owner, disco#info or disco#items IQ to a local bare
 * JID (st borrowed; from stamped). */
void pres_pep_iq(pres_t *p, const kn_env_t *env, const kn_stanza_t *st);
/* The domain trusted to publish and retract on users' behalf (the MUC
 * service; NULL or "": none). Copied. */
void pres_pep_set_trusted(pres_t *p, const char *domain);
/* Free the job queues (pres_free); jobs with a query in flight are
 * orphaned and freed by its callback. */
void pres_pep_free(pres_t *p);

/* ---- pres_caps.c: entity capabilities (XEP-0115), see pres_caps.h ---- */
/* An available presence st of session s (first: it just became
 * available): resolve its caps if they changed; when they are (or become)
 * known, send it the last items it is interested in. */
void pres_caps_presence(pres_t *p, pres_sess_t *s, const kn_stanza_t *st,
                        bool first);
/* An iq result or error to a local bare JID: if it answers one of our
 * disco#info queries, handle it and return true. */
bool pres_caps_reply(pres_t *p, const kn_stanza_t *st);
/* Session s goes away: drop its caps reference. */
void pres_caps_sess_gone(pres_t *p, pres_sess_t *s);
/* A PEP event ev (from owner's bare JID, no to) about node with access
 * model `access` (a pep_access_t): multicast it to the available
 * resources of owner's contacts that are allowed and asked for NODE+notify
 * (owner's own resources are not included). ev borrowed. */
void pres_caps_notify(pres_t *p, const char *owner, const char *node,
                      int access, const kn_stanza_t *ev);
/* Free the cache and the resolutions in flight (pres_free). */
void pres_caps_free(pres_t *p);

/* ---- pres_push.c: push notifications (XEP-0357), see pres_push.h ---- */
/* An <enable/> or <disable/> IQ (urn:xmpp:push:0) to a local bare JID. */
void pres_push_iq(pres_t *p, const kn_stanza_t *st);
/* A message msg for bare was stored offline; res's rows from column col
 * on hold the user's registrations (jid, node, options; jid NULL: none)
 * and its stored count: one publish to each (borrowed, not kept). */
void pres_push_stored(pres_t *p, const char *bare, const kn_stanza_t *msg,
                      const PGresult *res, int col);
/* An iq result or error to a local bare JID: if it answers one of our
 * publishes, handle it (an error may remove the registration) and return
 * true. */
bool pres_push_reply(pres_t *p, const kn_stanza_t *st);
/* Forget the publishes waiting for answers (pres_free). */
void pres_push_free(pres_t *p);

#endif
