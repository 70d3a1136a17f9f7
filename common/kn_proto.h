/*
 * kn_proto.h - the cluster protocol on top of the envelope (kn_env.h):
 * flag bits and conventions every process must agree on. docs/
 * ARCHITECTURE.md ("Wire between processes") explains the exchanges.
 *
 * Connection ids are cluster-wide: the router gives every node a 16-bit
 * index at HELLO, and a node's connection ids are (index << 48) | local.
 * So any process can tell which node owns a connection id, and a
 * multicast needs only connection ids.
 */
#ifndef KN_PROTO_H
#define KN_PROTO_H

#include <stdint.h>

/* HELLO / HEARTBEAT flags */
#define KN_F_FRESH   0x0001 /* node just started: drop its stale sessions */
#define KN_F_ACK     0x0002 /* router's answer to a HELLO */
#define KN_F_REHELLO 0x0004 /* router does not know you: HELLO again */
#define KN_F_SYNCED  0x0008 /* node finished re-announcing its sessions */
/* Router -> node HELLO/HEARTBEAT: this router does not hold the lease (a
 * hot standby): send it nothing but heartbeats. */
#define KN_F_STANDBY 0x0020
/* Node -> router HEARTBEAT, sent after the ACK of a re-sync and before
 * SYNCED: the payload is the link ids (u64, little-endian) of the data
 * frames the node received from the router(s) in its last seconds before
 * (kn_link.c; router.c keeps them). A frame the previous router routed but had
 * not acknowledged to its sender comes again; one of these ids was delivered
 * and is not routed twice. Old routers ignore the flag and payload. */
#define KN_F_DELIVERED 0x0040
/* Router -> node HELLO and HEARTBEAT carry two targets: the router's
 * fencing epoch (0 without a lease) and, in HEARTBEAT, the highest link
 * sequence of this node's data frames it has routed (KN_LINK_T_*). A node
 * ignores an active router whose epoch is older than the newest it saw. */
#define KN_LINK_T_EPOCH     0
#define KN_LINK_T_ACKED     1
#define KN_LINK_T_COUNT     2
#define KN_F_ROLE_C2S       0x0100 /* HELLO: a connection manager */
#define KN_F_ROLE_DAEMON    0x0200 /* HELLO: presenced, mucd, ... */
#define KN_F_ROLE_COMPONENT 0x0400 /* HELLO: an external component link */

/* SESSION_UP / PRIORITY flags */
#define KN_F_AVAILABLE  0x0001 /* the resource has sent available presence */
#define KN_F_REANNOUNCE 0x0010 /* re-announcement after a router restart */

/* STANZA flags */
#define KN_F_REROUTE    0x0001 /* target connection vanished: route to bare */
#define KN_F_NO_OFFLINE 0x0002 /* never store offline (avoid loops) */
#define KN_F_COPY                                                              \
    0x0004 /* a copy for the presence daemon to record (directed               \
              presence); it must not deliver it */
/* A stored offline message (R-PRES-5): conn_id names the one connection
 * it is for and ack_id its row. The owning c2s node returns ack_id in an
 * ACK once the stanza's last byte was accepted by the socket. The router
 * delivers it only to that connection; otherwise (session gone or
 * replaced, node unreachable, a c2s reroute) it goes back to the offline
 * handler, which still holds the row: it is never stored again and never
 * bounced. */
#define KN_F_ACK_WANTED 0x0008
/* The offline handler (presenced) -> router: a message it was handed to
 * store but sent on to the bare JID instead, because it counts the user
 * available (a resource came up while the message was in flight). Routed
 * like any message, offline storage included: when the router finds no
 * resource either (presenced's view was stale), it comes back to the
 * offline handler, flag kept, which stores it and never sends it on
 * again (no loop). A bounce of it (no offline handler then) is stored
 * too. Without this, it went with KN_F_NO_OFFLINE, bounced to presenced
 * and was dropped: lost. */
#define KN_F_OFFLINE_RESENT 0x8000
/* Router -> the offline handler: a message for an offline user whose
 * copy the router keeps until the handler is done with it; ack_id is its
 * hand-off id. The handler stores a hand-off id at most once (it may be
 * handed again: to the next handler after a kill -9) and, once the
 * message is stored (or bounced, sent on, or not worth storing), sends
 * an ACK with this flag and the ids as targets; the router forgets them
 * (router_offline.c). Only for a handler that registered KN_REG_OFFLINE
 * with seq KN_OFFLINE_ACKS_HANDOFFS. (0x2000 is KN_F_MOVED on a
 * SESSION_UP: a STANZA or ACK never had it.) */
#define KN_F_OFFLINE_HANDOFF 0x2000
/* REGISTER KN_REG_OFFLINE: seq, the handler acknowledges hand-offs. */
#define KN_OFFLINE_ACKS_HANDOFFS 1u
/* REGISTER KN_REG_OFFLINE with reason KN_ENV_REASON_SHUTDOWN (node ->
 * router): the handler is stopping; the router hands it nothing more
 * (hand-offs and c2s's ACKs of written rows are kept for the next one)
 * and answers with the same envelope, after which no ACK of a row
 * reaches the stopping handler: its stop waits for that answer. */

/* XEP-0191 data for c2s, from presenced: a <blocklist/> iq is the whole
 * block list of the session it is addressed to (c2s keeps it, the client
 * never sees it); a <block/> or <unblock/> push updates the list of every
 * session it reaches and is then delivered. */
#define KN_F_BLOCKLIST 0x0020
/* The router delivers a message to a bare JID to several resources: all
 * but the first copy carry this, so a refusal (XEP-0191) answers the
 * sender once. */
#define KN_F_EXTRA_COPY 0x0010
/* c2s -> router, a message from a client (kn_msgrules.h): eligible for
 * carbons (XEP-0280) / for the archive (XEP-0313). */
#define KN_F_CARBON_OK  0x0040
#define KN_F_ARCHIVE_OK 0x0080
/* router -> archiver (KN_REG_ARCHIVE): a copy to archive; ack_id is its
 * archive id. archiver -> router, on an ACK: ack_id is the highest id of
 * the archive copies it has written (cumulative). */
#define KN_F_ARCHIVE 0x0100
/* With KN_F_ARCHIVE, router -> archiver: the payload is a batch of
 * archive copies (kn_arch.h), ack_id the id of its last one. */
#define KN_F_ARCHIVE_BATCH 0x0800
/* SESSION_UP (c2s -> router): the session has enabled carbons. On a
 * STANZA router -> c2s with KN_F_CARBONS_SET: the answer to a carbons
 * enable/disable, and the session's carbons state is now the KN_F_CARBONS
 * bit (c2s keeps it for re-announcing). */
#define KN_F_CARBONS     0x0200
#define KN_F_CARBONS_SET 0x0400

/* MULTICAST: the payload is a bundle (kn_env.h, kn_env_bundle_next) of
 * STANZA deliveries, written in order to each target as if each had
 * come in its own envelope to that connection: presenced's login flow
 * sends a new resource its contacts' presence this way, one envelope
 * instead of one per contact resource. */
#define KN_F_BUNDLE 0x1000

/* A SESSION_UP copy to the session-event nodes: the session (same full
 * JID) moved to conn_id by XEP-0198 resumption; it is not a new login. */
#define KN_F_MOVED 0x2000

/* SM (XEP-0198) flags: exactly one of ENABLE, RESUME, STATE, FAILED,
 * ACKED says what the envelope is (docs/ARCHITECTURE.md, "Stream
 * management").
 * ENABLE  c2s -> router: session from (full JID) on conn_id is resumable
 *         with id node.
 * RESUME  c2s -> router -> owning c2s: bare JID from (authenticated)
 *         asks to resume id node with the client's h in seq; from the
 *         router on, conn_id is the old connection and ack_id the new.
 * STATE   owning c2s -> router -> new c2s: the handover; from = full
 *         JID, conn_id old, ack_id new, seq = the server's h, priority
 *         and KN_F_AVAILABLE of the session, payload = the unacked
 *         queue (c2s_smq.h).
 * FAILED  -> new c2s: resumption impossible; priority = the condition
 *         (KN_SM_FAIL_*), seq = the server's h when KN_F_SM_H is set;
 *         a payload, if any, is a queue the new node reroutes.
 * ACKED   c2s -> router: the client acknowledged every router copy of
 *         session from up to router sequence ack_id. */
#define KN_F_SM_ENABLE 0x0001
#define KN_F_SM_RESUME 0x0002
#define KN_F_SM_STATE  0x0004
#define KN_F_SM_FAILED 0x0008
#define KN_F_SM_ACKED  0x0010
#define KN_F_SM_H      0x0100 /* FAILED: seq holds the server's h */
#define KN_F_SM_AVAIL  0x0200 /* STATE: the session sent available presence */
#define KN_F_SM_CARBONS                                                        \
    0x0400 /* STATE: XEP-0280 carbons were enabled on the session */
#define KN_F_SM_COPY                                                           \
    0x4000 /* STANZA: the router keeps a copy of it for a resumable            \
              session until acked; ack_id is its router sequence */

#define KN_SM_FAIL_ITEM_NOT_FOUND 0
#define KN_SM_FAIL_UNDEFINED      1
#define KN_SM_FAIL_UNEXPECTED     2

/* REGISTER flags (node field carries the namespace, feature or domain) */
#define KN_REG_IQ_NS    0x0001 /* IQs to the server/bare JIDs in this ns */
#define KN_REG_DOMAIN   0x0002 /* every stanza to this domain */
#define KN_REG_SESSIONS 0x0004 /* copies of SESSION_UP/DOWN/PRIORITY */
#define KN_REG_OFFLINE  0x0008 /* handler for messages to offline users */
#define KN_REG_FEATURE  0x0010 /* a disco#info feature of the server */
#define KN_REG_PRESENCE                                                        \
    0x0020 /* handler of broadcast/subscription presence                       \
            */
#define KN_REG_ACCOUNT_NS                                                      \
    0x0040 /* IQs to local bare JIDs (accounts) in this ns; checked before     \
              KN_REG_IQ_NS for them, never used for IQs to the domain, not     \
              a server feature (PEP, an account's disco) */
/* An XEP-0114 component connection (c2s -> router): node = the
 * component's domain, conn = the connection id, payload = its disco name
 * (may be empty). Several connections, on any nodes, may serve one
 * domain; _DOWN removes one (a lost node's connections go with it). */
#define KN_REG_COMPONENT      0x0080
#define KN_REG_COMPONENT_DOWN 0x0100
#define KN_REG_ARCHIVE                                                         \
    0x0200 /* the archiver: a copy of every archivable message (XEP-0313) */
/* KN_REG_SESSIONS may be held by several nodes (presenced and mucd both
 * want session-end events); every other registration has one holder,
 * the last node that registered it. */

/* BOUNCE: seq carries the kn_stanza_err_t condition. */

/* ACK (c2s -> router -> the offline handler): the targets are the ack
 * ids of KN_F_ACK_WANTED stanzas the node wrote since its last ACK, for
 * any of its connections (one ACK per loop iteration at most). */

#define KN_CONN_NODE_SHIFT 48
#define KN_CONN_LOCAL_MASK ((UINT64_C(1) << KN_CONN_NODE_SHIFT) - 1)

static inline uint16_t kn_conn_node(uint64_t conn)
{
    return (uint16_t)(conn >> KN_CONN_NODE_SHIFT);
}

static inline uint64_t kn_conn_make(uint16_t node, uint64_t local)
{
    return ((uint64_t)node << KN_CONN_NODE_SHIFT) |
           (local & KN_CONN_LOCAL_MASK);
}

#endif
