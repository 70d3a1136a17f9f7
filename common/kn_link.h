/*
 * kn_link.h - the node side of the router link: one ZeroMQ DEALER whose
 * routing id is the node name, HELLO, heartbeats both ways, and noticing
 * a restarted router.
 *
 * Every process but the router uses one (c2s nodes, presenced, mucd,
 * component links). The link hides the control protocol (kn_proto.h);
 * the application sees data envelopes and two events: "ready" (the router
 * accepted us; our node index is known) and "ready with resync" (the
 * router restarted or had declared us lost: re-announce every session,
 * then call kn_link_synced()). Registrations made with kn_link_register()
 * are remembered and repeated after every HELLO, so the application does
 * not redo them.
 *
 * While the router is away, ZeroMQ queues what we send (up to the send
 * high-water mark) and delivers it on reconnection; the router holds
 * those stanzas during its warm-up, so nothing is lost to the race.
 */
#ifndef KN_LINK_H
#define KN_LINK_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kn_config.h"
#include "kn_env.h"

typedef struct kn_link kn_link_t;

typedef struct kn_link_ops {
    /* A STANZA, MULTICAST, BOUNCE or KICK from the router. env and
     * payload are borrowed for the call. May call kn_link_send(). */
    void (*on_message)(void *ud, const kn_env_t *env, const void *payload,
                       size_t len);
    /* The router accepted our HELLO. resync is true when it had restarted
     * or lost us: re-announce sessions (SESSION_UP with KN_F_REANNOUNCE),
     * then call kn_link_synced(). */
    void (*on_ready)(void *ud, bool resync);
} kn_link_ops_t;

/* Create the link and connect to cc->router_endpoint (asynchronously).
 * role is KN_F_ROLE_C2S, KN_F_ROLE_DAEMON or KN_F_ROLE_COMPONENT. loop,
 * ops and ud are borrowed and must outlive the link. Returns NULL after
 * logging when the socket cannot be set up. */
kn_link_t *kn_link_new(struct ev_loop *loop, const kn_common_conf_t *cc,
                       const char *node_name, uint16_t role,
                       const kn_link_ops_t *ops, void *ud);

/* Close the socket (pending frames are dropped after a short linger) and
 * free. Idempotent; sets *lp = NULL. Not from the link's own callback. */
void kn_link_free(kn_link_t **lp);

/* True once the router has accepted us and our node index is known. */
bool kn_link_ready(const kn_link_t *l);

/* The cluster-wide connection id for a node-local id. */
uint64_t kn_link_conn_id(const kn_link_t *l, uint64_t local);

/* Send env (+ payload, may be NULL/0) to the router. Returns 0, -KN_EAGAIN
 * when the send high-water mark is reached (nothing sent), -KN_ETOOBIG
 * for an oversized envelope, -KN_EIO otherwise. Callable from callbacks. */
int kn_link_send(kn_link_t *l, const kn_env_t *env, const void *payload,
                 size_t len);

/* Register a namespace, domain, feature or role with the router (flags:
 * one KN_REG_* bit; name may be "" for roles). Sent now if ready and
 * again after every HELLO. */
void kn_link_register(kn_link_t *l, uint16_t flags, const char *name);
/* The same with seq in the REGISTER envelope (what the registration
 * means, e.g. KN_OFFLINE_ACKS_HANDOFFS; kn_link_register: 0). */
void kn_link_register_seq(kn_link_t *l, uint16_t flags, const char *name,
                          uint32_t seq);

/* Tell the router we finished re-announcing our sessions. */
void kn_link_synced(kn_link_t *l);

/* In on_ready with resync: true when the router that asked us to HELLO
 * again had not restarted (same boot id) but had declared this node lost
 * and ended every session it attributed to us (R-DROP-6): re-announcing
 * them would bring back sessions whose contacts saw them go and whose
 * messages went to offline storage. */
bool kn_link_declared_lost(const kn_link_t *l);

/* The router's boot id as last seen (0 before the first HELLO answer). */
uint32_t kn_link_router_boot(const kn_link_t *l);

/* Frames in our queue: data frames the current router has not
 * acknowledged yet (KN_LINK_T_ACKED) and frames held for lack of one.
 * 0 when there is no ready router to wait for (nothing can drain). */
size_t kn_link_unacked(const kn_link_t *l);

#endif
