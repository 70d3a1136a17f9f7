/*
 * router.h - the router's state and its protocol logic.
 *
 * The logic (router_node.c, router_table.c, router_route.c) takes decoded
 * envelopes in and calls r->send() for every frame out; it never touches a
 * socket, so unit tests drive it directly. router_io.c binds it to the
 * ZeroMQ ROUTER socket and router_redis.c writes the table through to
 * Redis when r->redis is set.
 */
#ifndef ROUTER_H
#define ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "kn_buf.h"
#include "kn_env.h"
#include "kn_xmpp_err.h"

#define ROUTER_MAX_NODES     1024
#define ROUTER_NODE_NAME_MAX 64

typedef struct router router_t;
typedef struct router_sess router_sess_t;

/* A payload frame: the bytes, and an opaque handle the I/O layer can use
 * to forward the frame without copying (a zmq_msg_t). */
typedef struct router_payload {
    const void *data;
    size_t len;
    void *msg;
} router_payload_t;

typedef struct router_node {
    char name[ROUTER_NODE_NAME_MAX];
    uint16_t index; /* 1..ROUTER_MAX_NODES-1; 0 is never used */
    uint16_t roles; /* KN_F_ROLE_* */
    bool alive;
    bool synced;      /* finished re-announcing after our start */
    bool restored;    /* taken from Redis at a takeover, sessions too: they
                       * go unless it HELLOs (same boot) and re-announces */
    uint32_t boot;    /* the node's boot id (HELLO seq) */
    double last_seen; /* router clock, seconds */
    size_t nsessions;
    /* Link sequences (kn_env_t.link) of its data frames: the highest we
     * routed, the highest acknowledged, and link_rx as it was at the last
     * acknowledgement tick (router_ack_links: what we acknowledge next,
     * routed at least one tick ago, so out of our socket). */
    uint64_t link_rx;
    uint64_t link_ack;
    uint64_t link_mark;
    UT_hash_handle hh; /* r->nodes_by_name */
} router_node_t;

/* A node a standby router heard from (HELLO/HEARTBEAT): on taking over,
 * it tells each at once to HELLO. */
typedef struct router_peer {
    char name[ROUTER_NODE_NAME_MAX];
    double last_seen;
    UT_hash_handle hh;
} router_peer_t;

struct router_sess {
    char *full;      /* key: prepared full JID, NUL-terminated */
    size_t bare_len; /* full[0..bare_len) is the bare JID */
    uint64_t conn;   /* owning connection; node = kn_conn_node(conn) */
    int16_t prio;
    bool avail;     /* has sent available presence */
    bool carbons;   /* XEP-0280 enabled (router_carbons.c) */
    bool restored;  /* from Redis at a takeover, not re-announced yet */
    bool node_gone; /* its node could not be told to end it (replaced) */
    struct router_bare *bare;
    char *sm_id;                     /* XEP-0198 resumption id, or NULL */
    uint64_t moving_to;              /* resuming on this connection, or 0 */
    struct router_sm_held *sm_held;  /* stanzas held while moving, FIFO */
    struct router_sm_held **sm_tail; /* (router_sm.c) */
    size_t sm_nheld;
    struct router_sm_held *sm_copies; /* unacked messages, oldest first */
    struct router_sm_held **sm_ctail;
    size_t sm_ncopies;
    uint64_t sm_seq;     /* last copy sequence given */
    uint64_t serial;     /* creation order (r->sess_serial) */
    router_sess_t *next; /* in bare->sessions */
    UT_hash_handle hh;   /* r->sessions */
};

typedef struct router_bare {
    char *bare; /* key */
    router_sess_t *sessions;
    UT_hash_handle hh; /* r->bares */
} router_bare_t;

/* One registration: namespace, domain, feature, or a role (sessions,
 * offline) held by a node. */
typedef struct router_reg {
    char *key;        /* "<flags>:<name>" so one name can hold roles */
    const char *name; /* points into key */
    uint16_t flags;
    uint16_t node; /* node index: the latest registrant, which serves it */
    /* Other nodes that registered the same name (every c2s node
     * registers its features and the upload domain): one of them takes
     * over when `node` is lost, so a stopped node does not take the
     * registration with it. */
    uint16_t *others;
    size_t nothers;
    /* KN_REG_OFFLINE: the holder acknowledges hand-offs (its REGISTER's
     * seq had KN_OFFLINE_ACKS_HANDOFFS), and it is stopping (its
     * REGISTER with reason SHUTDOWN): hand it nothing more. */
    bool handoff_acks;
    bool stopping;
    UT_hash_handle hh;
} router_reg_t;

/* An external component's domain (XEP-0114) and its live connections;
 * kept with none left, so stanzas to it bounce as to a known service. */
typedef struct router_comp {
    char *domain; /* key */
    char *name;   /* disco#items name, "" when none */
    uint64_t *conns;
    size_t n, cap;
    UT_hash_handle hh;
} router_comp_t;

/* Counters for logs and the stats command. */
typedef struct router_stats {
    uint64_t in, out, routed, bounced, dropped, multicast_in;
} router_stats_t;

typedef void (*router_send_fn)(void *ud, const router_node_t *to,
                               const kn_env_t *env,
                               const router_payload_t *payload);

struct router {
    char *domain;
    uint32_t boot;       /* our boot id, sent in HELLO/HEARTBEAT */
    double node_timeout; /* seconds */
    double warm_until;   /* holding stanzas until nodes re-sync */
    double warm_s;       /* warm-up length after a start or a takeover */
    /* Hot standby (router_lease.h): while standby the router keeps no
     * table, routes nothing and answers nodes with KN_F_STANDBY. epoch is
     * the fencing token every HELLO/HEARTBEAT carries (0: no lease). */
    bool standby;
    uint64_t epoch;
    router_peer_t *peers;
    uint64_t standby_dropped; /* frames a standby refused */
    /* (origin node index << 48) | link seq of the data frame being
     * handled, 0 otherwise: stamped on every frame it causes. */
    uint64_t cur_link;
    uint64_t link_dups; /* resent frames already routed: dropped */
    /* Link ids (as stamped, cur_link) the nodes reported at their re-sync
     * (HEARTBEAT + KN_F_DELIVERED): frames the previous router routed
     * and delivered. A resent data frame with one of them is dropped.
     * Open addressing, 0 = empty; kept until dlv_until. */
    uint64_t *dlv_slots;
    size_t dlv_cap, dlv_count;
    double dlv_until;
    uint64_t dlv_dups; /* resent frames dropped as delivered before */
    bool warm_waiting; /* past the fixed warm-up: until every node SYNCED */
    router_node_t *nodes[ROUTER_MAX_NODES];
    router_node_t *nodes_by_name;
    router_sess_t *sessions;
    router_bare_t *bares;
    router_reg_t *regs;
    router_comp_t *comps; /* router_comp.c */
    router_send_fn send;
    void *send_ud;
    void *redis; /* kn_redis_t *, or NULL (tests) */
    router_stats_t stats;
    struct router_held *hold_head; /* stanzas held during warm-up, FIFO */
    struct router_held **hold_tail;
    size_t hold_count;
    bool replaying; /* routing held stanzas now */
    bool stopping;  /* router_stop_routing: data frames left to the next */
    /* Session events (SESSION_UP/DOWN/PRIORITY copies) of the warm-up,
     * in order, for a node that registers KN_REG_SESSIONS after they
     * were sent (router_table.c). */
    struct router_sess_ev *sess_log;
    struct router_sess_ev **sess_log_tail;
    size_t sess_log_count;
    bool undeliverable; /* inside router_undeliverable: no second level */
    /* Offline-row ACKs (c2s) that found no offline handler, or one that
     * could not be reached (presenced restarting): sent to the next one
     * that registers, so written rows are deleted, not delivered again
     * (router_route_ack). Bounded: ROUTER_ACKS_MAX ids. */
    uint64_t *acks_held;
    size_t nacks_held;
    bool acks_flushing;
    /* The last ROUTER_ACKS_RECENT row ids sent on to the offline handler
     * (a ring): given again to the next handler that registers, since a
     * handler killed with -9 loses those in its socket and those whose
     * delete had not committed (the delete is idempotent). */
    uint64_t *acks_recent;
    size_t nacks_recent, acks_recent_next;
    /* router_offline.c: hand-offs to the offline handler not
     * acknowledged yet (uthash by id, in hand-off order, bounded). */
    struct router_off *off_held;
    size_t off_count, off_bytes;
    uint64_t off_last_id, off_given_up;
    bool off_on; /* the offline handler acknowledges hand-offs */
    bool off_resending;
    uint64_t sess_serial;   /* last router_sess_t.serial given */
    uint16_t dropping_node; /* node whose sessions are being ended, or 0 */
    /* A message to a bare JID being sent to several sessions
     * (route_message_bare): a copy that cannot reach its session is kept
     * here, and rerouted only if no other copy reached a session. */
    struct {
        bool active;
        int16_t prio;  /* the priority the copies go to */
        size_t failed; /* copies that came back undeliverable */
        kn_buf_t env;  /* the first of them, encoded */
        kn_buf_t payload;
        /* copies to resumable sessions that could not be sent (their
         * XEP-0198 copy stands in): connection and copy sequence */
        size_t nsm;
        struct {
            uint64_t conn, seq;
        } sm[8];
    } fanout;
    uint64_t *mc_split; /* multicast split work arrays, grown only */
    bool *mc_done;
    size_t mc_cap;
    /* router_mam.c: archive ids, and the archive copies the archiver has
     * not acknowledged yet (FIFO in id order, bounded). */
    uint64_t mam_last_id;
    bool mam_on; /* an archiver registered since we started */
    struct router_arch *arch_head, **arch_tail;
    size_t arch_count, arch_bytes;
    uint64_t arch_evicted;
    /* Deferred sending (router_mam_defer): the first retained copy not
     * sent yet, how many follow it, the node they are for, and the hook
     * that arms the I/O layer's flush timer. */
    struct router_arch *arch_unsent;
    size_t arch_unsent_n;
    const struct router_node *arch_to;
    void (*arch_arm)(void *ud);
    void *arch_arm_ud;
    bool arch_flushing;
    kn_buf_t mam_scratch, carbon_scratch;
    kn_buf_t arch_batch; /* the batch envelope being sent (kn_arch.h) */
};

router_t *router_new(const char *domain, uint32_t boot, double node_timeout,
                     router_send_fn send, void *ud);
void router_free(router_t **rp);

/* Handle one message from node `from_name` (its routing id). now is the
 * router's clock in seconds. Never fails: bad input is logged and dropped
 * or bounced. */
void router_handle(router_t *r, const char *from_name, size_t from_len,
                   const kn_env_t *env, const router_payload_t *payload,
                   double now);

/* Send heartbeats to every live node and declare lost the nodes silent
 * for longer than node_timeout. Call every heartbeat period. */
void router_tick(router_t *r, double now);

/* Acknowledge to each node the link sequences routed before the previous
 * call (a HEARTBEAT, only when there is something new). Call every
 * ROUTER_ACK_EVERY seconds, so nodes keep little for a resend. */
#define ROUTER_ACK_EVERY 0.25
void router_ack_links(router_t *r);

/* The lease was taken (epoch): start acting with an empty table (then
 * router_node_restore/router_sess_restore from Redis), hold stanzas for
 * the warm-up (until every node we heard of as a standby has
 * re-announced, at most warm_s); router_wake_peers then tells each of
 * those nodes to HELLO. */
void router_become_active(router_t *r, uint64_t epoch, double now);
void router_wake_peers(router_t *r, double now);

/* The lease is lost: stop acting at once, forget the table without
 * telling anyone but the nodes (KN_F_STANDBY), write nothing more. */
void router_become_standby(router_t *r, double now);

/* A stop (SIGTERM): acknowledge to every live node each data frame
 * routed so far (its output is in our socket, flushed at close: the
 * socket lingers), then route no more data frames: the nodes send the
 * unacknowledged ones to the next router, and not those we routed, which
 * the next router would route a second time (a message delivered just
 * before the stop came again, through offline storage when its recipient
 * had left meanwhile). Control frames are still handled. */
void router_stop_routing(router_t *r);

/* ---- router_node.c ---- */
router_node_t *router_node_by_name(router_t *r, const char *name, size_t len);
void router_node_hello(router_t *r, const char *name, size_t len,
                       const kn_env_t *env, double now);
void router_node_heartbeat(router_t *r, const char *name, size_t len,
                           const kn_env_t *env, double now);
void router_node_lost(router_t *r, router_node_t *n, kn_env_reason_t why);
/* Send n a HELLO/HEARTBEAT with flags, our boot id and our epoch (and, in
 * a HEARTBEAT, its acknowledged link sequence). n may be a stack copy
 * holding only a name. */
void router_node_send_ctl(router_t *r, const router_node_t *n,
                          kn_env_kind_t kind, uint16_t flags);
/* Heartbeat every live node; declare lost the silent ones. */
void router_tick_nodes(router_t *r, double now);

/* After a takeover, the previous router's table from Redis: a node it
 * knew (name, index, boot id; skipped if a node of that name or index is
 * known already) and each of its sessions. Nothing is copied to the
 * session-event nodes (they know them). A restored node that does not
 * HELLO within node_timeout is lost as usual (its sessions end with
 * node_lost); one that does, with the same boot id, keeps them until its
 * SYNCED, when those it did not re-announce end (they ended while no
 * router listened). */
router_node_t *router_node_restore(router_t *r, const char *name,
                                   uint16_t index, uint32_t boot, double now);
void router_sess_restore(router_t *r, const char *full, uint64_t conn,
                         int16_t prio, bool avail);

/* ---- router_table.c ---- */
router_sess_t *router_sess_find(router_t *r, const char *full, size_t len);
router_bare_t *router_bare_find(router_t *r, const char *bare, size_t len);
/* Add or replace the route for full; a different previous owner is
 * kicked with <conflict/> (R-DROP-7). */
void router_sess_up(router_t *r, const kn_env_t *env);
/* Remove full's route only if conn still owns it (ownership check). */
void router_sess_down(router_t *r, const kn_env_t *env);
void router_sess_priority(router_t *r, const kn_env_t *env);
/* A daemon (src) asks to end the session from/conn id (reason kept): the
 * owning node gets a KICK if conn still owns from's route. */
void router_sess_kick(router_t *r, const router_node_t *src,
                      const kn_env_t *env);
void router_sess_remove(router_t *r, router_sess_t *s, kn_env_reason_t why);

/* During a warm-up (after start or a takeover) nodes re-announce, and
 * sessions restored from Redis end, possibly before presenced and mucd
 * have registered for session events: those events are kept and sent to
 * each node at its first KN_REG_SESSIONS registration. Freed when the
 * warm-up ends. */
void router_sess_log_replay(router_t *r, const router_node_t *to);
void router_sess_log_free(router_t *r);

/* ---- router_route.c ---- */
/* An ACK from a c2s node: to the offline handler (dropped without one:
 * the rows stay and are delivered again). */
void router_route_ack(router_t *r, const kn_env_t *env);
void router_route_stanza(router_t *r, router_node_t *src, const kn_env_t *env,
                         const router_payload_t *payload);
void router_route_multicast(router_t *r, const kn_env_t *env,
                            const router_payload_t *payload);
void router_register(router_t *r, router_node_t *src, const kn_env_t *env);
void router_unregister_node(router_t *r, uint16_t node);
router_reg_t *router_reg_find(router_t *r, uint16_t flags, const char *name,
                              size_t len);
/* Return the payload to the sender as a BOUNCE with cond. */
void router_bounce(router_t *r, router_node_t *src, const kn_env_t *env,
                   const router_payload_t *payload, kn_stanza_err_t cond);
/* The I/O layer could not hand env to node `to` (ZMQ_ROUTER_MANDATORY
 * said the peer is gone): store a message offline or bounce it; a stored
 * offline message (KN_F_ACK_WANTED) goes back to the offline handler.
 * When `to` is the offline handler itself, a message bounces (storing it
 * would send it to the same unreachable node again) and a stored offline
 * message is dropped (its row is still in PostgreSQL). What cannot be
 * handed on from here is dropped, not retried. */
void router_undeliverable(router_t *r, const router_node_t *to,
                          const kn_env_t *env, const router_payload_t *payload);
/* A copy of a message that went to several sessions of s's bare JID
 * (when there were sess_serial sessions, to those of priority prio) no
 * longer reaches s: true when another of those sessions, on a node that
 * is alive and neither s's nor the one being dropped, still has it, so
 * rerouting this copy would give that resource the message twice. */
bool router_fanout_delivered(const router_t *r, const router_sess_t *s,
                             uint64_t sess_serial, int16_t prio);
/* A node subscribed to session events (KN_REG_SESSIONS): SESSION_UP
 * (KN_F_REANNOUNCE) for every session in the table, so that sessions
 * that came up before it registered (a router restart: nodes re-announce
 * and clients bind before presenced registers again) are not missed. */
void router_sess_tell(router_t *r, const router_node_t *n);
/* The row ACKs recently sent on to the offline handler are held again
 * (before router_acks_flush, when a handler registers). */
void router_acks_recent_again(router_t *r);
/* Hand the held offline-row ACKs to the offline handler, if any. */
void router_acks_flush(router_t *r);
/* Send to node n a copy of env with kind/conn replaced. */
void router_emit(router_t *r, const router_node_t *n, const kn_env_t *env,
                 const router_payload_t *payload);

/* ---- router_offline.c (hand-offs kept until acknowledged) ---- */
/* A message for a user with no available resource: when the offline
 * handler acknowledges hand-offs (r->off_on), keep a copy, give it an id
 * (ack_id, KN_F_OFFLINE_HANDOFF) and hand it to h, or, h NULL (none
 * reachable), keep it for the next one; true then. False (nothing done):
 * not kept (off, or full without a handler): route it as before. */
bool router_off_handoff(router_t *r, router_node_t *h, const kn_env_t *env,
                        const router_payload_t *pl);
/* The offline handler's ACK (KN_F_OFFLINE_HANDOFF): forget those ids. */
void router_off_ack(router_t *r, const kn_env_t *env);
/* An offline handler registered: hand it every copy kept, in order. */
void router_off_resend(router_t *r, const router_node_t *h);
void router_off_free(router_t *r);

/* ---- router_comp.c ---- */
/* KN_REG_COMPONENT(_DOWN) from node src (payload: the disco name). */
void router_comp_register(router_t *r, router_node_t *src, const kn_env_t *env,
                          const router_payload_t *payload);
router_comp_t *router_comp_find(router_t *r, const char *domain, size_t len);
/* Route a stanza to component c: one of its connections chosen by the
 * bare JIDs of both ends (one conversation stays on one connection);
 * none: a bounce (remote-server-not-found, service-unavailable for an
 * iq get/set). */
void router_comp_route(router_t *r, router_node_t *src, router_comp_t *c,
                       const kn_env_t *env, const router_payload_t *pl);
/* Node lost or re-HELLOed: forget its component connections. */
void router_comp_drop_node(router_t *r, uint16_t node);
void router_comp_free_all(router_t *r);
/* Move s to connection conn (XEP-0198 resumption): the table, the
 * session-event nodes (SESSION_UP with KN_F_MOVED) and Redis follow. */
void router_sess_move(router_t *r, router_sess_t *s, uint64_t conn, bool avail,
                      int16_t prio);

/* ---- router_sm.c (XEP-0198 resumption across nodes) ---- */
/* An SM envelope from node src. */
void router_sm_handle(router_t *r, router_node_t *src, const kn_env_t *env,
                      const router_payload_t *payload);
/* A delivery to s (env already aimed at its connection): held while s
 * is moving to another connection; true when held. */
bool router_sm_hold(router_t *r, router_sess_t *s, const kn_env_t *env,
                    const router_payload_t *payload);
/* A message about to be delivered to resumable session s: keep a copy
 * until the client acknowledges it (e gets KN_F_SM_COPY and the copy's
 * sequence in ack_id). */
void router_sm_copy(router_t *r, router_sess_t *s, kn_env_t *e,
                    const router_payload_t *payload);
/* Forget the copy seq of s: another resource got the message (a fan-out
 * whose send to s failed), so it must not be rerouted later. */
void router_sm_copy_forget(router_sess_t *s, uint64_t seq);
/* s is being removed (why): a resumption in progress fails; returns the
 * stanzas to route once s is out of the table (router_sm_release_gone):
 * those held while moving, and, when its node was lost, the copies of
 * every unacknowledged message. */
struct router_sm_held *router_sm_sess_gone(router_t *r, router_sess_t *s,
                                           kn_env_reason_t why);
/* Route stanzas held for a session that is gone as for a vanished
 * connection (KN_F_REROUTE); frees the list. */
void router_sm_release_gone(router_t *r, struct router_sm_held *h);
/* An SM envelope could not reach node `to`. */
void router_sm_undeliverable(router_t *r, const router_node_t *to,
                             const kn_env_t *env);
/* Free s's SM state (router_free). */
void router_sm_sess_free(router_sess_t *s);

/* ---- router_disco.c ---- */
/* Answer a disco#info/#items get to the server; false if env is not one
 * (or cannot be parsed), and the caller goes on. */
bool router_disco_answer(router_t *r, router_node_t *src, const kn_env_t *env,
                         const router_payload_t *pl);

/* ---- router_carbons.c (XEP-0280) ---- */
/* Answer a carbons enable/disable IQ (env->node is urn:xmpp:carbons:2);
 * false if env is not one and the caller goes on. */
bool router_carbons_iq(router_t *r, router_node_t *src, const kn_env_t *env,
                       const router_payload_t *pl);
/* A message a client sent (KN_F_CARBON_OK): a <sent/> copy to each other
 * carbons-enabled session of the sender; sid: the message's archive id
 * (0: none), put in the copy as the sender's XEP-0359 stanza-id. */
void router_carbons_sent(router_t *r, const kn_env_t *env,
                         const router_payload_t *pl, uint64_t sid);
/* A message to a local user (KN_F_CARBON_OK) was routed: a <received/>
 * copy to each carbons-enabled session of b that did not get it: direct
 * is the session it went to (a full JID), else NULL and best the
 * priority of the sessions that got it (-1: none, stored offline). */
void router_carbons_received(router_t *r, const kn_env_t *env,
                             const router_payload_t *pl, const router_bare_t *b,
                             const router_sess_t *direct, int best);

/* ---- router_mam.c (XEP-0313/0359) ---- */
/* A message a client sent (KN_F_ARCHIVE_OK), before it is routed: when an
 * archiver is registered, give it an archive id, retain and send the
 * archive copy, and set *out to the payload to deliver (with the
 * recipient's <stanza-id/> when the recipient is a local user; out->data
 * may point into r->mam_scratch until the next call). Returns the id, or
 * 0 (not archived; *out = *pl). */
uint64_t router_mam_message(router_t *r, const kn_env_t *env,
                            const router_payload_t *pl, router_payload_t *out);
/* Batch the archive copies instead of sending each at once: a copy is
 * retained as before and sent by router_mam_flush(), which the I/O layer
 * calls from a short timer that arm() (called when the first unsent copy
 * is queued) starts; ROUTER_ARCH_BATCH unsent copies, or anything else
 * sent to the archiver's node (a MAM query, so it sees every message
 * routed before it), flush them at once. Without this call (the unit
 * tests' default) each copy is sent when its message is routed. */
void router_mam_defer(router_t *r, void (*arm)(void *ud), void *ud);
/* Send every queued archive copy to the archiver, in order. */
void router_mam_flush(router_t *r);
/* The archiver's ACK (KN_F_ARCHIVE): forget copies up to env->ack_id. */
void router_mam_ack(router_t *r, const kn_env_t *env);
/* The archiver (re)registered: send it every retained copy, in order. */
void router_mam_resend(router_t *r);
void router_mam_free(router_t *r);
/* Append pl to out with <stanza-id xmlns='urn:xmpp:sid:0' by='by' id='id'/>
 * as the root's last child; false if pl is not a complete <message>. */
bool router_sid_insert(kn_buf_t *out, const void *pl, size_t len,
                       const char *by, size_t by_len, uint64_t id);

/* ---- router_redis.c (no-ops when r->redis is NULL) ---- */
void router_redis_sess_up(router_t *r, const router_sess_t *s);
void router_redis_sess_down(router_t *r, const router_sess_t *s);
void router_redis_node_alive(router_t *r, const router_node_t *n);
void router_redis_node_lost(router_t *r, const router_node_t *n);
/* Verify that Redis still holds the table; rewrite it if not. */
void router_redis_check(router_t *r);

#endif
