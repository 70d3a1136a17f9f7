/*
 * c2s_sm.c - XEP-0198 stream management on one stream (c2s_sm.h).
 *
 * A note on what is counted. After <enable/>, every message, presence
 * and iq written to the client is one stanza on the server's side
 * (deliveries, c2s's own answers and pings), queued as the exact bytes
 * written; every message, presence and iq the client sends is one on
 * its side (our h). <r/>, <a/> and the other SM elements are not
 * stanzas. The queue's invariants are c2s_smq.h's.
 *
 * A note on stored offline messages (R-PRES-5). With SM, the row of an
 * offline message is deleted when the client's <a/> covers it
 * (ops->ack_done), not when the socket took it; an unacked one goes back
 * to its row at the end of the session (c2s_sm_end) or travels with the
 * queue on resumption.
 *
 * A note on resumption ids. The id is 16 random bytes in hex; the router
 * keeps it with the session's route (ENABLE), so <resume/> on any node
 * finds the session through the router by the authenticated bare JID
 * and the id, wherever the session lives now (docs/ARCHITECTURE.md).
 */
#include "c2s_sm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"

#define SM_ID_HEX 32

struct c2s_sm {
    c2s_smq_t q;
    char id[SM_ID_HEX + 1];
    uint32_t r_at;       /* queue length when our last <r/> went out */
    uint32_t client_h;   /* <resume h=...>: while resuming */
    uint64_t copy_acked; /* highest router copy (KN_F_SM_COPY) acked */
    bool copy_dirty : 1; /* copy_acked moved: tell the router */
    bool resume : 1;     /* resumable (<enable resume='true'/>) */
    bool detached : 1;   /* the connection is gone, the session waits */
    bool r_pending : 1;
    bool resuming : 1; /* our <resume/> is with the router */
};

static const char SM_ERR_NS[] = "urn:ietf:params:xml:ns:xmpp-stanzas";

static void sm_write_failed(c2s_stream_t *s, const char *cond, bool with_h,
                            uint32_t h)
{
    kn_buf_append_str(s->out, "<failed xmlns='" C2S_NS_SM "'");
    if (with_h)
        kn_buf_printf(s->out, " h='%u'", (unsigned)h);
    kn_buf_printf(s->out, "><%s xmlns='%s'/></failed>", cond, SM_ERR_NS);
}

static const char *sm_fail_cond(int code)
{
    switch (code) {
    case KN_SM_FAIL_UNDEFINED:
        return "undefined-condition";
    case KN_SM_FAIL_UNEXPECTED:
        return "unexpected-request";
    default:
        return "item-not-found";
    }
}

void c2s_sm_features(const c2s_stream_t *s, kn_buf_t *out)
{
    (void)s;
    kn_buf_append_str(out, "<sm xmlns='" C2S_NS_SM "'/>");
}

/* A decimal 32-bit h; false when absent or malformed. */
static bool sm_parse_h(const kn_stanza_t *st, uint32_t *h)
{
    const char *v = kn_stanza_attr(st, 0, "h", NULL);
    if (v == NULL || *v < '0' || *v > '9')
        return false;
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end != '\0' || x > UINT32_MAX)
        return false;
    *h = (uint32_t)x;
    return true;
}

static bool attr_true(const kn_stanza_t *st, const char *name)
{
    const char *v = kn_stanza_attr(st, 0, name, NULL);
    return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static int sm_route(c2s_stream_t *s, kn_env_t *e)
{
    return c2s_stream_route(s, e, NULL, 0);
}

void c2s_sm_reannounce(c2s_stream_t *s)
{
    if (s->sm == NULL || !s->sm->resume || !s->session_up)
        return;
    kn_env_t e = {0};
    e.kind = KN_ENV_SM;
    e.flags = KN_F_SM_ENABLE;
    e.from = kn_jid_str(&s->jid);
    e.from_len = kn_jid_len(&s->jid);
    e.conn_id = s->ops->conn_id(s->ud);
    e.node = s->sm->id;
    e.node_len = SM_ID_HEX;
    sm_route(s, &e);
}

static c2s_act_t sm_enable(c2s_stream_t *s, const kn_stanza_t *st)
{
    if (s->state != C2S_ST_SESSION || s->sm != NULL) {
        /* XEP-0198 3: before binding, or a second time. */
        sm_write_failed(s, "unexpected-request", false, 0);
        return C2S_ACT_MORE;
    }
    c2s_sm_t *sm = kn_calloc(1, sizeof(*sm));
    c2s_smq_init(&sm->q, 0);
    s->sm = sm;
    bool resume = attr_true(st, "resume") && s->cf->sm_resume_timeout > 0;
    if (!resume) {
        kn_buf_append_str(s->out, "<enabled xmlns='" C2S_NS_SM "'/>");
        return C2S_ACT_MORE;
    }
    unsigned char rnd[SM_ID_HEX / 2];
    c2s_random(rnd, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(sm->id + 2 * i, 3, "%02x", rnd[i]);
    sm->resume = true;
    kn_buf_printf(s->out,
                  "<enabled xmlns='" C2S_NS_SM "' id='%s' resume='true' "
                  "max='%u'/>",
                  sm->id, s->cf->sm_resume_timeout);
    c2s_sm_reannounce(s);
    return C2S_ACT_MORE;
}

static void sm_item_acked(void *ud, const c2s_smq_item_t *it)
{
    c2s_stream_t *s = ud;
    if ((it->flags & KN_F_ACK_WANTED) && s->ops->ack_done != NULL)
        s->ops->ack_done(s->ud, it->ack_id);
    if ((it->flags & KN_F_SM_COPY) && it->ack_id > s->sm->copy_acked) {
        s->sm->copy_acked = it->ack_id;
        s->sm->copy_dirty = true;
    }
}

/* The router may forget its copies the client acknowledged
 * (router_sm.c). */
static void sm_copies_acked(c2s_stream_t *s)
{
    if (!s->sm->copy_dirty)
        return;
    s->sm->copy_dirty = false;
    kn_env_t e = {0};
    e.kind = KN_ENV_SM;
    e.flags = KN_F_SM_ACKED;
    e.from = kn_jid_str(&s->jid);
    e.from_len = kn_jid_len(&s->jid);
    e.conn_id = s->ops->conn_id(s->ud);
    e.ack_id = s->sm->copy_acked;
    sm_route(s, &e);
}

static c2s_act_t sm_ack(c2s_stream_t *s, const kn_stanza_t *st)
{
    uint32_t h;
    if (s->sm == NULL || s->sm->resuming)
        return C2S_ACT_MORE; /* nothing to acknowledge: ignored */
    if (!sm_parse_h(st, &h))
        return c2s_stream_fail(s, KN_SE_BAD_FORMAT, "<a/> without a valid h");
    int n = c2s_smq_ack(&s->sm->q, h, sm_item_acked, s);
    if (n < 0) {
        /* XEP-0198 4: more than we sent. */
        kn_log_info("c2s: %s: <a h='%u'/> but only %u sent",
                    kn_jid_str(&s->jid), (unsigned)h, (unsigned)s->sm->q.sent);
        return c2s_stream_fail(s, KN_SE_UNDEFINED_CONDITION,
                               "handled-count-too-high");
    }
    sm_copies_acked(s);
    s->sm->r_pending = false;
    s->sm->r_at = (uint32_t)c2s_smq_pending(&s->sm->q);
    return C2S_ACT_MORE;
}

static c2s_act_t sm_resume(c2s_stream_t *s, const kn_stanza_t *st)
{
    uint32_t h = 0;
    size_t idlen = 0;
    const char *previd = kn_stanza_attr(st, 0, "previd", &idlen);
    if (s->state != C2S_ST_BIND || s->sm != NULL) {
        sm_write_failed(s, "unexpected-request", false, 0);
        return C2S_ACT_MORE;
    }
    if (previd == NULL || idlen != SM_ID_HEX || !sm_parse_h(st, &h)) {
        sm_write_failed(s, "item-not-found", false, 0);
        return C2S_ACT_MORE;
    }
    c2s_sm_t *sm = kn_calloc(1, sizeof(*sm));
    memcpy(sm->id, previd, SM_ID_HEX);
    sm->resuming = true;
    sm->client_h = h;
    kn_buf_t bare = KN_BUF_INIT;
    kn_buf_printf(&bare, "%s@%s", s->user, s->cf->domain);
    kn_env_t e = {0};
    e.kind = KN_ENV_SM;
    e.flags = KN_F_SM_RESUME;
    e.from = bare.data;
    e.from_len = bare.len;
    e.node = sm->id;
    e.node_len = SM_ID_HEX;
    e.seq = h;
    e.conn_id = s->ops->conn_id(s->ud);
    int rc = sm_route(s, &e);
    kn_buf_free(&bare);
    if (rc < 0) {
        free(sm);
        sm_write_failed(s, "item-not-found", false, 0);
        return C2S_ACT_MORE;
    }
    s->sm = sm;
    s->pause = C2S_PAUSE_RESUME;
    return C2S_ACT_PAUSED;
}

c2s_act_t c2s_sm_handle(c2s_stream_t *s, const kn_stanza_t *st)
{
    const char *name = kn_stanza_name(st, 0);
    if (s->user == NULL || s->state == C2S_ST_FEATURES ||
        s->state == C2S_ST_SASL) {
        /* Not authenticated: nothing of SM applies. */
        if (strcmp(name, "enable") == 0 || strcmp(name, "resume") == 0) {
            sm_write_failed(s, "unexpected-request", false, 0);
            return C2S_ACT_MORE;
        }
        return c2s_stream_fail(s, KN_SE_NOT_AUTHORIZED, name);
    }
    if (strcmp(name, "enable") == 0)
        return sm_enable(s, st);
    if (strcmp(name, "r") == 0) {
        if (s->sm != NULL && !s->sm->resuming)
            kn_buf_printf(s->out, "<a xmlns='" C2S_NS_SM "' h='%u'/>",
                          (unsigned)s->sm->q.in);
        return C2S_ACT_MORE;
    }
    if (strcmp(name, "a") == 0)
        return sm_ack(s, st);
    if (strcmp(name, "resume") == 0)
        return sm_resume(s, st);
    return c2s_stream_fail(s, KN_SE_UNSUPPORTED_STANZA_TYPE, name);
}

void c2s_sm_counted(c2s_stream_t *s)
{
    if (s->sm != NULL && !s->sm->resuming)
        s->sm->q.in++;
}

c2s_act_t c2s_sm_sent(c2s_stream_t *s, size_t off, const kn_env_t *env)
{
    c2s_sm_t *sm = s->sm;
    if (sm == NULL || sm->resuming || s->out->len <= off)
        return C2S_ACT_MORE;
    kn_env_t e;
    if (env != NULL) {
        e = *env;
        e.conn_id = s->ops->conn_id(s->ud);
        env = &e;
    }
    c2s_smq_push(&sm->q,
                 c2s_smq_item_new(env, s->out->data + off, s->out->len - off));
    size_t n = c2s_smq_pending(&sm->q);
    size_t max = s->cf->sm_max_unacked ? s->cf->sm_max_unacked : 1000;
    if (n > max) {
        kn_log_info("c2s: %s: %zu stanzas unacknowledged%s, ending the "
                    "session",
                    kn_jid_str(&s->jid), n, sm->detached ? " (detached)" : "");
        c2s_stream_close(s,
                         sm->detached ? KN_SE_NONE : KN_SE_RESOURCE_CONSTRAINT,
                         KN_ENV_REASON_DROPPED);
        return C2S_ACT_CLOSE;
    }
    size_t every = s->cf->sm_request_after ? s->cf->sm_request_after : 5;
    if (!sm->detached && !sm->r_pending && n >= every &&
        n - sm->r_at >= every) {
        kn_buf_append_str(s->out, "<r xmlns='" C2S_NS_SM "'/>");
        sm->r_pending = true;
        sm->r_at = (uint32_t)n;
    }
    return C2S_ACT_MORE;
}

bool c2s_sm_acks_offline(const c2s_stream_t *s)
{
    return s->sm != NULL && !s->sm->resuming;
}

bool c2s_sm_resumable(const c2s_stream_t *s)
{
    return s->sm != NULL && s->sm->resume && !s->sm->resuming &&
           s->state == C2S_ST_SESSION && s->session_up;
}

void c2s_sm_detach(c2s_stream_t *s)
{
    KN_ASSERT(s->sm != NULL);
    s->sm->detached = true;
    s->sm->r_pending = false;
}

bool c2s_sm_detached(const c2s_stream_t *s)
{
    return s->sm != NULL && s->sm->detached;
}

static int sm_route_cb(void *ud, const kn_env_t *env, const void *pl,
                       size_t len)
{
    return c2s_stream_route(ud, env, pl, len);
}

/* Route one item elsewhere, as for a vanished connection. */
static void sm_reroute_item(const c2s_smq_item_t *it,
                            int (*route)(void *ud, const kn_env_t *env,
                                         const void *pl, size_t len),
                            void *ud)
{
    if (it->stanza == KN_ENV_ST_NONE)
        return; /* c2s's own answer or ping: nobody to tell */
    kn_env_t e, r;
    c2s_smq_item_env(it, &e);
    if (c2s_reroute_env(&e, &r))
        route(ud, &r, c2s_smq_item_bytes(it), it->len);
}

void c2s_sm_end(c2s_stream_t *s)
{
    if (s->sm == NULL)
        return;
    size_t n = 0;
    /* Declared lost by the router: it has rerouted its own copies of the
     * messages it sent to this session (router_sm.c); ours would be
     * second copies. */
    bool copied = s->reason == KN_ENV_REASON_NODE_LOST;
    c2s_smq_item_t *it;
    while ((it = c2s_smq_take(&s->sm->q)) != NULL) {
        if (!(copied && (it->flags & KN_F_SM_COPY)))
            sm_reroute_item(it, sm_route_cb, s);
        free(it);
        n++;
    }
    if (n > 0)
        kn_log_info("c2s: %s: session ended with %zu stanzas unacknowledged "
                    "(%u sent, the client's h %u): rerouted",
                    s->jid.str ? s->jid.str : "?", n, (unsigned)s->sm->q.sent,
                    (unsigned)s->sm->q.acked);
}

void c2s_sm_free(c2s_stream_t *s)
{
    if (s->sm == NULL)
        return;
    c2s_smq_clear(&s->sm->q);
    free(s->sm);
    s->sm = NULL;
}

void c2s_sm_reroute_queue(const void *payload, size_t len,
                          int (*route)(void *ud, const kn_env_t *env,
                                       const void *pl, size_t len),
                          void *ud)
{
    c2s_smq_t q;
    c2s_smq_init(&q, 0);
    if (len > 0 && c2s_smq_decode(&q, payload, len) < 0)
        kn_log_warn("c2s: a damaged XEP-0198 queue: %zu items rerouted",
                    c2s_smq_pending(&q));
    c2s_smq_item_t *it;
    while ((it = c2s_smq_take(&q)) != NULL) {
        sm_reroute_item(it, route, ud);
        free(it);
    }
}

/* ---- resumption, the giving side ---------------------------------------- */

int c2s_sm_handover(c2s_stream_t *s, const char *previd, size_t previd_len,
                    const char *bare, size_t bare_len, uint32_t client_h,
                    kn_env_t *out, kn_buf_t *payload, uint32_t *h_out)
{
    c2s_sm_t *sm = s->sm;
    if (!c2s_sm_resumable(s) || previd_len != SM_ID_HEX ||
        memcmp(previd, sm->id, SM_ID_HEX) != 0 ||
        kn_jid_bare_len(&s->jid) != bare_len ||
        memcmp(kn_jid_str(&s->jid), bare, bare_len) != 0)
        return -1;
    *h_out = sm->q.in;
    if (c2s_smq_ack(&sm->q, client_h, sm_item_acked, s) < 0) {
        kn_log_info("c2s: %s: <resume h='%u'/> but only %u sent",
                    kn_jid_str(&s->jid), (unsigned)client_h,
                    (unsigned)sm->q.sent);
        return KN_SM_FAIL_UNDEFINED;
    }
    sm_copies_acked(s);
    c2s_smq_encode(&sm->q, payload);
    memset(out, 0, sizeof(*out));
    out->kind = KN_ENV_SM;
    out->flags = KN_F_SM_STATE;
    out->priority = s->priority;
    if (s->available)
        out->flags |= KN_F_SM_AVAIL;
    if (s->carbons)
        out->flags |= KN_F_SM_CARBONS;
    out->seq = sm->q.in;
    out->from = kn_jid_str(&s->jid);
    out->from_len = kn_jid_len(&s->jid);
    out->conn_id = s->ops->conn_id(s->ud);
    kn_log_info("c2s: %s: handing the session over (%zu unacked, h %u)",
                kn_jid_str(&s->jid), c2s_smq_pending(&sm->q),
                (unsigned)sm->q.in);
    /* The queue now travels; the route is the router's to move. */
    c2s_sm_free(s);
    s->session_up = false;
    return 0;
}

/* ---- resumption, the asking side ---------------------------------------- */

bool c2s_sm_resuming(const c2s_stream_t *s)
{
    return s->sm != NULL && s->sm->resuming && s->pause == C2S_PAUSE_RESUME;
}

static c2s_act_t sm_resume_failed(c2s_stream_t *s, const kn_env_t *env)
{
    sm_write_failed(s, sm_fail_cond(env->priority),
                    (env->flags & KN_F_SM_H) != 0, env->seq);
    kn_log_info("c2s: resumption of %.*s failed (%s)",
                (int)(s->sm ? SM_ID_HEX : 0), s->sm ? s->sm->id : "",
                sm_fail_cond(env->priority));
    c2s_sm_free(s);
    s->pause = C2S_PAUSE_NONE;
    return c2s_stream_process(s);
}

c2s_act_t c2s_sm_answer(c2s_stream_t *s, const kn_env_t *env,
                        const void *payload, size_t len)
{
    KN_ASSERT(c2s_sm_resuming(s));
    c2s_sm_t *sm = s->sm;
    kn_jid_t j = KN_JID_INIT;
    if (!(env->flags & KN_F_SM_STATE) ||
        kn_jid_parse(&j, env->from, env->from_len) < 0 || kn_jid_is_bare(&j)) {
        kn_jid_free(&j);
        return sm_resume_failed(s, env);
    }
    c2s_smq_init(&sm->q, sm->client_h);
    if (len > 0 && c2s_smq_decode(&sm->q, payload, len) < 0)
        kn_log_warn("c2s: %s: damaged XEP-0198 queue in the handover",
                    kn_jid_str(&j));
    sm->q.in = env->seq;
    sm->resuming = false;
    sm->resume = true;
    kn_jid_free(&s->jid);
    s->jid = j;
    s->state = C2S_ST_SESSION;
    s->session_up = true;
    s->available = (env->flags & KN_F_SM_AVAIL) != 0;
    s->carbons = (env->flags & KN_F_SM_CARBONS) != 0; /* for re-announces */
    s->priority = env->priority;
    s->pause = C2S_PAUSE_NONE;
    kn_buf_printf(s->out, "<resumed xmlns='" C2S_NS_SM "' previd='%s' h='%u'/>",
                  sm->id, (unsigned)sm->q.in);
    size_t n = c2s_smq_pending(&sm->q);
    for (size_t i = 0; i < n; i++) {
        const c2s_smq_item_t *it = c2s_smq_at(&sm->q, i);
        kn_buf_append(s->out, c2s_smq_item_bytes(it), it->len);
    }
    if (n > 0) {
        kn_buf_append_str(s->out, "<r xmlns='" C2S_NS_SM "'/>");
        sm->r_pending = true;
        sm->r_at = (uint32_t)n;
    }
    kn_log_info("c2s: %s resumed (%zu stanzas sent again, h %u)",
                kn_jid_str(&s->jid), n, (unsigned)sm->q.in);
    /* XEP-0191: deliveries wait for the block list, which presenced
     * sends to the session's new connection (c2s_block.c). */
    s->block_ready = false;
    if (s->ops->block_wait != NULL)
        s->ops->block_wait(s->ud);
    return c2s_stream_process(s);
}
