/*
 * router_offline.c - what the router hands the offline handler is kept
 * until the handler says it is done with it (R-PRES-5, R-DROP-1).
 *
 * A message for a user with no available resource goes to the offline
 * handler (presenced), which stores it. A presenced killed a few
 * milliseconds after the router handed it one (before ZeroMQ saw its
 * connection close) lost it in the socket: nothing stored, nothing
 * bounced. Now every hand-off gets an id (ack_id, with
 * KN_F_OFFLINE_HANDOFF) and the router keeps a copy until the handler
 * returns the id in an ACK (KN_F_OFFLINE_HANDOFF, the ids as targets),
 * which it sends once the message is stored, bounced, sent on or
 * dropped by its rules. When a handler registers, every copy not
 * acknowledged yet is handed to it again, in order (without a link id,
 * so its link does not drop it as a resend); the handler stores a
 * hand-off id once (offline_messages.handoff is unique), so a message
 * the killed handler had stored but not acknowledged is not stored
 * twice.
 *
 * Only a handler that registered KN_REG_OFFLINE with seq
 * KN_OFFLINE_ACKS_HANDOFFS acknowledges hand-offs: with one (the latest
 * registrant decides) this is on, else messages go as before, unkept.
 * While it is on and no handler is reachable (stopping: its REGISTER
 * with reason SHUTDOWN; killed, not yet declared lost; declared lost), a
 * message for an offline user is kept for the next one instead of
 * bounced. The copies are bounded (ROUTER_OFF_MAX, ROUTER_OFF_BYTES):
 * past that, with a handler there the oldest copy is given up (logged:
 * it was handed out, most likely stored), without one the new message
 * bounces. A router restart loses the copies (as the archive copies).
 * Ids are (milliseconds since the epoch << 16) + a counter, strictly
 * increasing, so a router started again does not reuse the id of a
 * message still stored from its previous run.
 */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "router.h"

#define ROUTER_OFF_MAX   100000
#define ROUTER_OFF_BYTES (128u << 20)

typedef struct router_off {
    uint64_t id;
    size_t elen, plen;
    UT_hash_handle hh; /* r->off_held, in hand-off order */
    unsigned char data[];
} off_copy_t;

static uint64_t off_next_id(router_t *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t id = ms << 16;
    if (id <= r->off_last_id)
        id = r->off_last_id + 1;
    r->off_last_id = id;
    return id;
}

static void off_drop(router_t *r, off_copy_t *o)
{
    HASH_DEL(r->off_held, o);
    r->off_count--;
    r->off_bytes -= o->elen + o->plen;
    free(o);
}

/* Send retained copy o to h (no link id: not a resend of a node's frame). */
static void off_send(router_t *r, const router_node_t *h, const off_copy_t *o)
{
    kn_env_t e;
    if (kn_env_decode(o->data, o->elen, &e) < 0)
        return; /* cannot happen: we encoded it */
    router_payload_t pl = {o->data + o->elen, o->plen, NULL};
    uint64_t link = r->cur_link;
    r->cur_link = 0;
    router_emit(r, h, &e, &pl);
    r->cur_link = link;
}

bool router_off_handoff(router_t *r, router_node_t *h, const kn_env_t *env,
                        const router_payload_t *pl)
{
    if (!r->off_on)
        return false;
    if (r->off_count >= ROUTER_OFF_MAX ||
        r->off_bytes + pl->len + KN_ENV_MAX_BYTES / 256 > ROUTER_OFF_BYTES) {
        if (h == NULL || r->off_held == NULL)
            return false; /* nobody to take it: the sender is told */
        kn_log_warn("offline hand-off %" PRIu64 " not acknowledged by the "
                    "offline handler: given up (%zu kept)",
                    r->off_held->id, r->off_count);
        r->off_given_up++;
        off_drop(r, r->off_held);
    }
    kn_env_t e = *env;
    e.kind = KN_ENV_STANZA;
    e.flags |= KN_F_OFFLINE_HANDOFF;
    e.ack_id = off_next_id(r);
    e.link = 0;
    kn_buf_t b = KN_BUF_INIT;
    if (kn_env_encode(&e, &b) < 0) {
        kn_buf_free(&b);
        return false;
    }
    off_copy_t *o = kn_malloc(sizeof(*o) + b.len + pl->len);
    o->id = e.ack_id;
    o->elen = b.len;
    o->plen = pl->len;
    memcpy(o->data, b.data, b.len);
    if (pl->len > 0)
        memcpy(o->data + b.len, pl->data, pl->len);
    kn_buf_free(&b);
    HASH_ADD(hh, r->off_held, id, sizeof(o->id), o);
    r->off_count++;
    r->off_bytes += o->elen + o->plen;
    if (h != NULL) {
        router_emit(r, h, &e, pl); /* unreachable: kept (undeliverable) */
        r->stats.routed++;
    }
    return true;
}

void router_off_ack(router_t *r, const kn_env_t *env)
{
    for (size_t i = 0; i < env->ntargets; i++) {
        uint64_t id = kn_env_target(env, i);
        off_copy_t *o = NULL;
        HASH_FIND(hh, r->off_held, &id, sizeof(id), o);
        if (o != NULL)
            off_drop(r, o);
    }
}

void router_off_resend(router_t *r, const router_node_t *h)
{
    if (r->off_held == NULL || r->off_resending)
        return;
    kn_log_info("offline handler %s: %zu messages not acknowledged handed "
                "again",
                h->name, r->off_count);
    r->off_resending = true;
    off_copy_t *o, *tmp;
    HASH_ITER(hh, r->off_held, o, tmp)
    {
        off_send(r, h, o);
        if (!r->off_on) /* a handler that does not acknowledge: handed */
            off_drop(r, o);
    }
    r->off_resending = false;
}

void router_off_free(router_t *r)
{
    off_copy_t *o, *tmp;
    HASH_ITER(hh, r->off_held, o, tmp)
    {
        off_drop(r, o);
    }
}
