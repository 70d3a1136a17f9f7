/*
 * c2s_block.c - XEP-0191 on the delivery path: a bound session refuses
 * what comes from a JID its user blocked, and the user cannot send to
 * one.
 *
 * A note on where the list comes from. presenced owns the block list
 * (PostgreSQL, cached while the user is online). When it sees a session
 * come up (the router's SESSION_UP copy) it sends that session the whole
 * list, an iq with KN_F_BLOCKLIST that we keep and never write to the
 * client; every later change reaches every session of the user as the
 * block/unblock push, flagged the same way, which we apply and deliver.
 * Both travel presenced -> router -> this node on one path, so a push
 * never overtakes the list it changes. Between SESSION_UP and the list's
 * arrival nothing is known, so every delivery for the session is held
 * (in order, in one buffer, at most hold_max bytes) and run through the
 * filter when the list comes. If presenced does not answer (it is down),
 * the owner reads the list from PostgreSQL after a wait
 * (c2s_stream_block_loaded). A session whose user blocks nobody keeps a
 * NULL list: the filter costs one pointer test per delivery.
 *
 * A note on matching (kn_block.h). Envelope JIDs are prepared, so the
 * sender's JID is matched as is, with at most four binary searches and
 * no allocation. The user's own JIDs and the server itself are never
 * blocked (XEP-0191 note: a user's resources always reach each other;
 * the server's answers must reach the user who blocked its domain).
 *
 * Refusals (XEP-0191 "User Blocks JID"): a message (normal, chat) or an
 * iq get/set gets <service-unavailable/> back, so the user looks offline;
 * presence, iq results, errors, groupchat and headline messages are
 * dropped silently; a multicast (presence fan-out, room traffic) is
 * dropped for this session only. A message the router copied to several
 * resources is answered by the first copy only (KN_F_EXTRA_COPY).
 */
#include <stdint.h>
#include <string.h>

#include "c2s_sm.h"
#include "c2s_stream.h"
#include "kn_block.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "kn_xml.h"

#define BLOCK_HOLD_MAX_DEFAULT (1024 * 1024)

/* A held delivery: this header, then from, to and the payload. */
typedef struct held_hdr {
    uint8_t kind, stanza, type, pad;
    uint16_t flags;
    uint16_t from_len, to_len;
    uint32_t len;
    uint64_t ack_id;
} held_hdr_t;

/* Whether jid[0..len) is the user's own account (any resource) or the
 * server itself: never blocked. */
static bool block_exempt(const c2s_stream_t *s, const char *jid, size_t len)
{
    size_t bl = kn_jid_bare_len(&s->jid);
    if (len >= bl && memcmp(jid, kn_jid_str(&s->jid), bl) == 0 &&
        (len == bl || jid[bl] == '/'))
        return true;
    size_t dl = strlen(s->cf->domain);
    return len == dl && memcmp(jid, s->cf->domain, dl) == 0;
}

/* Prepare jids[0..n) and make them the session's list. */
static void block_set(c2s_stream_t *s, const char *const *jids,
                      const size_t *lens, size_t n)
{
    kn_jid_t *prep = n ? kn_calloc(n, sizeof(*prep)) : NULL;
    const char **p = n ? kn_calloc(n, sizeof(*p)) : NULL;
    size_t *pl = n ? kn_calloc(n, sizeof(*pl)) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (kn_jid_parse(&prep[k], jids[i], lens[i]) < 0) {
            kn_log_warn("c2s: %s: unusable block item '%.*s' ignored",
                        kn_jid_str(&s->jid), (int)lens[i], jids[i]);
            continue;
        }
        p[k] = kn_jid_str(&prep[k]);
        pl[k] = kn_jid_len(&prep[k]);
        k++;
    }
    kn_blocklist_free(&s->blocked);
    s->blocked = kn_blocklist_new(p, pl, k);
    for (size_t i = 0; i < k; i++)
        kn_jid_free(&prep[i]);
    free(prep);
    free(p);
    free(pl);
}

/* The items of element e of st (a <blocklist/>, <block/> or <unblock/>)
 * as arrays borrowed from st; returns their number. */
static size_t block_items(const kn_stanza_t *st, int e, const char ***jids,
                          size_t **lens)
{
    size_t n = 0;
    for (int it = kn_stanza_first_child(st, e); it >= 0;
         it = kn_stanza_next_sibling(st, it))
        n++;
    *jids = n ? kn_calloc(n, sizeof(**jids)) : NULL;
    *lens = n ? kn_calloc(n, sizeof(**lens)) : NULL;
    size_t k = 0;
    for (int it = kn_stanza_first_child(st, e); it >= 0;
         it = kn_stanza_next_sibling(st, it)) {
        size_t len = 0;
        const char *jid = kn_stanza_attr(st, it, "jid", &len);
        if (strcmp(kn_stanza_name(st, it), "item") != 0 || jid == NULL)
            continue;
        (*jids)[k] = jid;
        (*lens)[k] = len;
        k++;
    }
    return k;
}

static void block_release(c2s_stream_t *s);

/* Apply a push (<block/> or <unblock/> element e of st). */
static void block_apply(c2s_stream_t *s, const kn_stanza_t *st, int e,
                        bool block)
{
    const char **jids;
    size_t *lens;
    size_t n = block_items(st, e, &jids, &lens);
    if (!block && n == 0)
        kn_blocklist_free(&s->blocked); /* unblock all */
    for (size_t i = 0; i < n; i++) {
        kn_jid_t j = KN_JID_INIT;
        if (kn_jid_parse(&j, jids[i], lens[i]) < 0)
            continue;
        if (block)
            kn_blocklist_add(&s->blocked, kn_jid_str(&j), kn_jid_len(&j));
        else
            kn_blocklist_del(&s->blocked, kn_jid_str(&j), kn_jid_len(&j));
        kn_jid_free(&j);
    }
    free(jids);
    free(lens);
}

static c2s_act_t block_hold(c2s_stream_t *s, const kn_env_t *env,
                            const void *pl, size_t len)
{
    if (s->held == NULL)
        s->held = kn_calloc(1, sizeof(*s->held));
    held_hdr_t h = {0};
    h.kind = (uint8_t)env->kind;
    h.stanza = (uint8_t)env->stanza;
    h.type = (uint8_t)env->type;
    h.flags = env->flags;
    h.from_len = (uint16_t)env->from_len;
    h.to_len = (uint16_t)env->to_len;
    h.len = (uint32_t)len;
    h.ack_id = env->ack_id;
    kn_buf_append(s->held, &h, sizeof(h));
    kn_buf_append(s->held, env->from, env->from_len);
    kn_buf_append(s->held, env->to, env->to_len);
    kn_buf_append(s->held, pl, len);
    size_t max = s->cf->hold_max ? s->cf->hold_max : BLOCK_HOLD_MAX_DEFAULT;
    if (s->held->len <= max)
        return C2S_ACT_MORE;
    kn_log_info("c2s: %s: over %zu bytes held waiting for the block list, "
                "closing",
                kn_jid_str(&s->jid), max);
    c2s_stream_close(s, KN_SE_RESOURCE_CONSTRAINT, KN_ENV_REASON_DROPPED);
    return C2S_ACT_CLOSE;
}

/* Walk the held deliveries: fn(s, env, payload, len) for each, in order;
 * the buffer is detached first and freed after. */
static void block_drain(c2s_stream_t *s,
                        void (*fn)(c2s_stream_t *, const kn_env_t *,
                                   const void *, size_t))
{
    kn_buf_t *b = s->held;
    s->held = NULL;
    if (b == NULL)
        return;
    size_t off = 0;
    while (off + sizeof(held_hdr_t) <= b->len) {
        held_hdr_t h;
        memcpy(&h, b->data + off, sizeof(h));
        off += sizeof(h);
        kn_env_t e = {0};
        e.kind = (kn_env_kind_t)h.kind;
        e.stanza = (kn_env_stanza_t)h.stanza;
        e.type = (kn_env_type_t)h.type;
        e.flags = h.flags;
        e.ack_id = h.ack_id;
        e.from = b->data + off;
        e.from_len = h.from_len;
        off += h.from_len;
        e.to = b->data + off;
        e.to_len = h.to_len;
        off += h.to_len;
        fn(s, &e, b->data + off, h.len);
        off += h.len;
    }
    kn_buf_free(b);
    free(b);
}

static void block_replay_one(c2s_stream_t *s, const kn_env_t *env,
                             const void *pl, size_t len)
{
    if (s->state == C2S_ST_SESSION)
        c2s_stream_inbound(s, env, pl, len);
}

/* The list is known: run what was held through the filter. */
static void block_release(c2s_stream_t *s)
{
    s->block_ready = true;
    block_drain(s, block_replay_one);
}

/* Block-list data from presenced (KN_F_BLOCKLIST). */
static c2s_act_t block_data(c2s_stream_t *s, const kn_env_t *env,
                            const void *pl, size_t len)
{
    kn_stanza_t *st = NULL;
    if (kn_xml_parse_stanza(pl, len, KN_NS_CLIENT, &st) < 0) {
        kn_log_warn("c2s: %s: unparsable block-list data dropped",
                    kn_jid_str(&s->jid));
        return C2S_ACT_MORE;
    }
    int e = kn_stanza_first_child(st, 0);
    const char *name = e >= 0 ? kn_stanza_name(st, e) : "";
    bool ns_ok = e >= 0 && strcmp(kn_stanza_ns(st, e), C2S_NS_BLOCKING) == 0;
    c2s_act_t act = C2S_ACT_MORE;
    if (ns_ok && strcmp(name, "blocklist") == 0) {
        /* The whole list: replaces whatever we had (a re-sent list). */
        const char **jids;
        size_t *lens;
        size_t n = block_items(st, e, &jids, &lens);
        block_set(s, jids, lens, n);
        free(jids);
        free(lens);
        if (!s->block_ready)
            block_release(s);
    } else if (ns_ok &&
               (strcmp(name, "block") == 0 || strcmp(name, "unblock") == 0)) {
        if (!s->block_ready) {
            act = block_hold(s, env, pl, len);
        } else {
            block_apply(s, st, e, name[0] == 'b');
            size_t off = s->out->len;
            c2s_stanza_deliver(s, pl, len);
            act = c2s_sm_sent(s, off, env);
        }
    } else {
        kn_log_warn("c2s: %s: block-list data without a blocking element",
                    kn_jid_str(&s->jid));
    }
    kn_stanza_unref(&st);
    return act;
}

/* Send the error cond for the delivery env/pl back to its sender. */
static void block_bounce(c2s_stream_t *s, const kn_env_t *env, const void *pl,
                         size_t len, kn_stanza_err_t cond)
{
    kn_stanza_t *orig = NULL;
    if (kn_xml_parse_stanza(pl, len, KN_NS_CLIENT, &orig) < 0)
        return;
    kn_stanza_t *r = kn_stanza_error_reply(orig, cond, NULL);
    kn_stanza_unref(&orig);
    if (r == NULL)
        return;
    if (kn_stanza_from(r) == NULL) {
        /* It was addressed without 'to' (to us by the router): answer
         * from the session's JID. */
        kn_stanza_t *r2 =
            kn_stanza_with_attr(r, 0, "from", kn_jid_str(&s->jid));
        kn_stanza_unref(&r);
        r = r2;
    }
    kn_buf_t xml = KN_BUF_INIT;
    kn_stanza_serialize(r, &xml, NULL);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = env->stanza;
    e.type = KN_ENV_TYPE_ERROR;
    e.flags = KN_F_NO_OFFLINE;
    if (env->to_len > 0) {
        e.from = env->to;
        e.from_len = env->to_len;
    } else {
        e.from = kn_jid_str(&s->jid);
        e.from_len = kn_jid_len(&s->jid);
    }
    e.to = env->from;
    e.to_len = env->from_len;
    e.conn_id = s->ops->conn_id(s->ud);
    c2s_stream_route(s, &e, xml.data, xml.len);
    kn_buf_free(&xml);
    kn_stanza_unref(&r);
}

/* Whether the delivery comes from a blocked JID; if so it was answered
 * or dropped here. */
static bool block_refused(c2s_stream_t *s, const kn_env_t *env, const void *pl,
                          size_t len)
{
    if (env->from_len == 0 || block_exempt(s, env->from, env->from_len) ||
        !kn_blocklist_match(s->blocked, env->from, env->from_len))
        return false;
    bool answer = env->kind == KN_ENV_STANZA &&
                  !(env->flags & KN_F_EXTRA_COPY) && kn_env_wants_reply(env);
    kn_log_debug("c2s: %s: %s from blocked %.*s %s", kn_jid_str(&s->jid),
                 kn_env_stanza_name(env->stanza), (int)env->from_len, env->from,
                 answer ? "refused" : "dropped");
    if (answer)
        block_bounce(s, env, pl, len, KN_STE_SERVICE_UNAVAILABLE);
    return true;
}

c2s_act_t c2s_stream_inbound(c2s_stream_t *s, const kn_env_t *env,
                             const void *payload, size_t len)
{
    if (env->flags & KN_F_BLOCKLIST)
        return block_data(s, env, payload, len);
    if (env->kind == KN_ENV_STANZA && (env->flags & KN_F_CARBONS_SET))
        s->carbons = (env->flags & KN_F_CARBONS) != 0; /* XEP-0280 answer */
    if (!s->block_ready)
        return block_hold(s, env, payload, len);
    bool acked = env->kind == KN_ENV_STANZA && (env->flags & KN_F_ACK_WANTED);
    c2s_act_t act = C2S_ACT_MORE;
    /* XEP-0352: an inactive session holds presence and chat states
     * here, before anything reaches the output (c2s_csi.c); a flush
     * counts each stanza it writes for XEP-0198 itself. */
    if ((s->blocked == NULL || !block_refused(s, env, payload, len)) &&
        !c2s_csi_filter(s, env, payload, len)) {
        size_t off = s->out->len;
        c2s_stanza_deliver(s, payload, len);
        /* XEP-0198: queued until the client's <a/>, which then
         * acknowledges a stored offline message (c2s_sm.c). */
        if (acked && c2s_sm_acks_offline(s))
            acked = false;
        act = c2s_sm_sent(s, off, env);
    }
    /* Written or refused, a stored offline message is done with. */
    if (acked && s->ops->ack_mark != NULL)
        s->ops->ack_mark(s->ud, env->ack_id);
    return act;
}

void c2s_stream_block_loaded(c2s_stream_t *s, const char *const *jids,
                             const size_t *lens, size_t n)
{
    if (s->block_ready || s->state != C2S_ST_SESSION)
        return;
    block_set(s, jids, lens, n);
    block_release(s);
}

bool c2s_block_outbound(c2s_stream_t *s, const kn_stanza_t *st,
                        const kn_jid_t *to, kn_env_stanza_t est,
                        kn_env_type_t type)
{
    if (s->blocked == NULL || to->str == NULL ||
        block_exempt(s, kn_jid_str(to), kn_jid_len(to)) ||
        !kn_blocklist_match(s->blocked, kn_jid_str(to), kn_jid_len(to)))
        return false;
    if (type == KN_ENV_TYPE_ERROR ||
        (est == KN_ENV_ST_IQ && type == KN_ENV_TYPE_RESULT))
        return true; /* nothing to answer an answer with */
    kn_stanza_t *r =
        kn_stanza_error_reply_ext(st, KN_STE_NOT_ACCEPTABLE, "cancel", NULL,
                                  "blocked", C2S_NS_BLOCKING_ERRORS);
    if (r != NULL) {
        c2s_stream_write_stanza(s, r);
        kn_stanza_unref(&r);
    }
    return true;
}

bool c2s_reroute_env(const kn_env_t *env, kn_env_t *out)
{
    if (env->kind != KN_ENV_STANZA ||
        (env->flags & (KN_F_REROUTE | KN_F_BLOCKLIST | KN_F_EXTRA_COPY)) ||
        !kn_env_wants_reply(env))
        return false;
    *out = *env;
    out->flags |= KN_F_REROUTE;
    /* A stored offline message keeps the connection it was meant for:
     * presenced tells its own returns from older ones by it. */
    if (!(env->flags & KN_F_ACK_WANTED))
        out->conn_id = 0;
    return true;
}

/* A held delivery at the end of the session goes back as a vanished
 * connection's would (c2s_reroute_env); the rest is dropped. */
static void block_reroute_one(c2s_stream_t *s, const kn_env_t *env,
                              const void *pl, size_t len)
{
    kn_env_t e;
    if (c2s_reroute_env(env, &e))
        c2s_stream_route(s, &e, pl, len);
}

void c2s_block_end(c2s_stream_t *s)
{
    block_drain(s, block_reroute_one);
    kn_blocklist_free(&s->blocked);
}
