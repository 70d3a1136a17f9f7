/*
 * c2s_bosh.c - BOSH sessions (see c2s_bosh.h): the <body/> parser, the
 * session table, rid ordering and replay, held requests, the wait and
 * inactivity timer, and the transport under the session's c2s connection.
 *
 * A note on the data structure. A session keeps its held requests in an
 * array sorted by rid (at most C2S_BOSH_MAX_REQUESTS), each with the HTTP
 * connection waiting for its answer (NULL once that connection went away:
 * the answer is still made and kept, so the client's retry with the same
 * rid gets it), and a ring of the last answers by rid for replay. One
 * timer per session: the oldest held request's wait deadline, or, with
 * nothing held, the inactivity deadline.
 *
 * A note on output. The transport's write() only takes output while a
 * processed request is held; otherwise it says "would block", and the
 * output stays in the connection's buffer, under out_buffer_max and with
 * exact acknowledgements of offline messages, until the next request
 * wakes the connection (c2s_conn_wake).
 */
#include "c2s_bosh.h"

#include <expat.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uthash.h>

#include "c2s_server.h"
#include "c2s_transport.h"
#include "c2s_ws.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_stanza.h"

#define BOSH_SEP '\x01'

/* ---- the <body/> parser
 * ------------------------------------------------------
 */

typedef struct bosh_parse {
    XML_Parser xp;
    c2s_bosh_body_t *out;
    const char *data;
    int depth;
    size_t child_start, child_tag_end;
    bool bad;
} bosh_parse_t;

static bool bosh_name_is(const char *name, const char *ns, const char *local)
{
    size_t nl = strlen(ns);
    if (*ns == '\0')
        return strchr(name, BOSH_SEP) == NULL && strcmp(name, local) == 0;
    if (strncmp(name, ns, nl) != 0 || name[nl] != BOSH_SEP)
        return false;
    const char *l = name + nl + 1;
    size_t ll = strlen(local);
    return strncmp(l, local, ll) == 0 && (l[ll] == '\0' || l[ll] == BOSH_SEP);
}

static bool bosh_copy(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap)
        return false;
    memcpy(dst, v, n + 1);
    return true;
}

static bool bosh_number(const char *v, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    if (*v < '0' || *v > '9')
        return false;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end != '\0' || x > max)
        return false;
    *out = x;
    return true;
}

static void bosh_body_attrs(bosh_parse_t *bp, const XML_Char **atts)
{
    c2s_bosh_body_t *o = bp->out;
    for (const XML_Char **a = atts; *a != NULL; a += 2) {
        const char *n = a[0], *v = a[1];
        uint64_t x = 0;
        bool ok = true;
        if (bosh_name_is(n, "", "rid")) {
            ok = bosh_number(v, UINT64_C(9007199254740991), &o->rid);
            o->has_rid = ok;
        } else if (bosh_name_is(n, "", "sid")) {
            ok = bosh_copy(o->sid, sizeof(o->sid), v);
        } else if (bosh_name_is(n, "", "to")) {
            ok = bosh_copy(o->to, sizeof(o->to), v);
        } else if (bosh_name_is(n, "", "type")) {
            ok = bosh_copy(o->type, sizeof(o->type), v);
        } else if (bosh_name_is(n, "", "ver")) {
            ok = bosh_copy(o->ver, sizeof(o->ver), v);
        } else if (bosh_name_is(n, "", "wait")) {
            ok = bosh_number(v, 86400, &x);
            o->wait = (long)x;
        } else if (bosh_name_is(n, "", "hold")) {
            ok = bosh_number(v, 1000, &x);
            o->hold = (long)x;
        } else if (bosh_name_is(n, C2S_NS_XBOSH, "restart")) {
            o->restart = strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
        }
        if (!ok)
            bp->bad = true;
    }
}

static size_t bosh_pos(bosh_parse_t *bp, bool end)
{
    long idx = XML_GetCurrentByteIndex(bp->xp);
    return (size_t)(idx + (end ? XML_GetCurrentByteCount(bp->xp) : 0));
}

static void XMLCALL bosh_on_start(void *ud, const XML_Char *name,
                                  const XML_Char **atts)
{
    bosh_parse_t *bp = ud;
    if (++bp->depth == 1) {
        if (!bosh_name_is(name, C2S_NS_HTTPBIND, "body"))
            bp->bad = true;
        else
            bosh_body_attrs(bp, atts);
    } else if (bp->depth == 2) {
        bp->child_start = bosh_pos(bp, false);
        bp->child_tag_end = bosh_pos(bp, true);
    }
}

static void XMLCALL bosh_on_end(void *ud, const XML_Char *name)
{
    bosh_parse_t *bp = ud;
    KN_UNUSED(name);
    if (bp->depth-- != 2)
        return;
    size_t end = XML_GetCurrentByteCount(bp->xp) == 0 ? bp->child_tag_end
                                                      : bosh_pos(bp, true);
    kn_buf_append(&bp->out->payload, bp->data + bp->child_start,
                  end - bp->child_start);
}

static void XMLCALL bosh_on_text(void *ud, const XML_Char *s, int len)
{
    bosh_parse_t *bp = ud;
    if (bp->depth != 1)
        return;
    for (int i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            bp->bad = true;
}

static void XMLCALL bosh_on_restricted(void *ud, const XML_Char *name,
                                       const XML_Char *sysid,
                                       const XML_Char *pubid, int internal)
{
    bosh_parse_t *bp = ud;
    KN_UNUSED(name);
    KN_UNUSED(sysid);
    KN_UNUSED(pubid);
    KN_UNUSED(internal);
    bp->bad = true;
    XML_StopParser(bp->xp, XML_FALSE);
}

int c2s_bosh_parse(const char *data, size_t len, c2s_bosh_body_t *out)
{
    memset(out, 0, sizeof(*out));
    out->wait = out->hold = -1;
    bosh_parse_t bp = {0};
    bp.out = out;
    bp.data = data;
    static const XML_Char sep = BOSH_SEP;
    bp.xp = XML_ParserCreateNS("UTF-8", sep);
    KN_ASSERT(bp.xp != NULL);
    XML_SetUserData(bp.xp, &bp);
    XML_SetElementHandler(bp.xp, bosh_on_start, bosh_on_end);
    XML_SetCharacterDataHandler(bp.xp, bosh_on_text);
    /* No DOCTYPE (so no entity can be declared, let alone expanded). */
    XML_SetStartDoctypeDeclHandler(bp.xp, bosh_on_restricted);
    enum XML_Status rc = XML_Parse(bp.xp, data, (int)len, XML_TRUE);
    XML_ParserFree(bp.xp);
    if (rc != XML_STATUS_OK || bp.bad) {
        kn_buf_free(&out->payload);
        return -KN_EPROTO;
    }
    return 0;
}

/* ---- sessions
 * -----------------------------------------------------------------
 */

typedef struct bosh_req {
    c2s_http_t *h; /* NULL: its HTTP connection went away */
    uint64_t rid;
    double since;
    bool processed;
    bool terminate, restart;
    kn_buf_t payload; /* until processed */
} bosh_req_t;

typedef struct bosh_answer {
    uint64_t rid; /* 0: empty slot */
    char *data;
    size_t len;
} bosh_answer_t;

struct c2s_bosh {
    c2s_server_t *srv;
    c2s_conn_t *conn;
    char sid[33];
    UT_hash_handle hh;
    c2s_bosh_t *next_dirty;
    bool dirty;
    bool created; /* the creation answer went out */
    bool ended;   /* <close/> went out: later requests get terminate */
    uint64_t rid; /* the last rid processed */
    uint64_t create_rid;
    unsigned wait, hold, requests;
    bosh_req_t held[C2S_BOSH_MAX_REQUESTS];
    size_t nheld;
    bosh_answer_t answers[C2S_BOSH_MAX_REQUESTS];
    size_t next_answer;
    kn_buf_t in; /* stream bytes for the connection to read */
    size_t in_off;
    ev_timer timer;
    double idle_since; /* nothing held since */
    const char *cond;  /* condition of the final terminate */
};

static const c2s_transport_t bosh_transport;

static void bosh_mark(c2s_bosh_t *b)
{
    if (b->dirty)
        return;
    b->dirty = true;
    b->next_dirty = b->srv->bosh_dirty;
    b->srv->bosh_dirty = b;
}

static void bosh_terminate_now(c2s_http_t *h, const char *cond)
{
    char buf[256];
    int n =
        snprintf(buf, sizeof(buf),
                 "<body xmlns='" C2S_NS_HTTPBIND "' type='terminate'%s%s%s/>",
                 cond ? " condition='" : "", cond ? cond : "", cond ? "'" : "");
    c2s_http_bosh_answer(h, buf, (size_t)n);
}

static void bosh_rearm(c2s_bosh_t *b);

/* Answer held request i with payload; type NULL, or "" / a condition for
 * a terminate. Kept for replay. */
static void bosh_answer(c2s_bosh_t *b, size_t i, const char *payload,
                        size_t plen, const char *term)
{
    bosh_req_t r = b->held[i];
    memmove(&b->held[i], &b->held[i + 1],
            (b->nheld - i - 1) * sizeof(b->held[0]));
    b->nheld--;
    if (b->nheld == 0)
        b->idle_since = ev_now(b->srv->loop);
    kn_buf_t body = KN_BUF_INIT;
    kn_buf_append_str(&body, "<body xmlns='" C2S_NS_HTTPBIND "'");
    if (r.rid == b->create_rid && !b->created) {
        const c2s_conf_t *cf = b->srv->conf;
        kn_buf_printf(&body,
                      " xmlns:xmpp='" C2S_NS_XBOSH "' sid='%s' wait='%u'"
                      " inactivity='%lld' polling='%lld' requests='%u'"
                      " hold='%u' ver='1.11' from='",
                      b->sid, b->wait, cf->bosh_inactivity, cf->bosh_polling,
                      b->requests, b->hold);
        kn_buf_append_xml_escaped(&body, b->srv->cc->domain,
                                  strlen(b->srv->cc->domain));
        kn_buf_append_str(&body, "' secure='true' xmpp:version='1.0'"
                                 " xmpp:restartlogic='true'");
        b->created = true;
    }
    if (term != NULL) {
        kn_buf_append_str(&body, " type='terminate'");
        if (*term != '\0')
            kn_buf_printf(&body, " condition='%s'", term);
    }
    if (plen > 0) {
        kn_buf_append_str(&body, " xmlns:stream='" KN_NS_STREAMS "'>");
        kn_buf_append(&body, payload, plen);
        kn_buf_append_str(&body, "</body>");
    } else {
        kn_buf_append_str(&body, "/>");
    }
    bosh_answer_t *a = &b->answers[b->next_answer];
    b->next_answer = (b->next_answer + 1) % b->requests;
    free(a->data);
    a->rid = r.rid;
    a->len = body.len;
    a->data = kn_memdup(body.data, body.len);
    if (r.h != NULL)
        c2s_http_bosh_answer(r.h, body.data, body.len);
    kn_buf_free(&body);
    kn_buf_free(&r.payload);
    bosh_rearm(b);
}

/* The oldest processed held request, or -1. */
static long bosh_oldest(const c2s_bosh_t *b)
{
    for (size_t i = 0; i < b->nheld; i++)
        if (b->held[i].processed)
            return (long)i;
    return -1;
}

/* End the session from our side (limits, rid window, inactivity). */
static void bosh_end(c2s_bosh_t *b, const char *cond, kn_env_reason_t reason)
{
    if (b->cond == NULL)
        b->cond = cond;
    if (b->conn != NULL)
        c2s_conn_close(b->conn, KN_SE_NONE, reason);
}

static void bosh_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(revents);
    c2s_bosh_t *b = t->data;
    double now = ev_now(b->srv->loop);
    if (b->nheld > 0) {
        if (now < b->held[0].since + b->wait) {
            bosh_rearm(b);
        } else if (b->held[0].processed) {
            bosh_answer(b, 0, NULL, 0, NULL); /* wait is over: empty */
        } else {
            kn_log_info("c2s: BOSH %s: rid %" PRIu64 " never came", b->sid,
                        b->rid + 1);
            bosh_end(b, "item-not-found", KN_ENV_REASON_DROPPED);
        }
        return;
    }
    if (now < b->idle_since + (double)b->srv->conf->bosh_inactivity) {
        bosh_rearm(b);
        return;
    }
    kn_log_info("c2s: BOSH %s: no request for %lld s, ending the session",
                b->sid, b->srv->conf->bosh_inactivity);
    bosh_end(b, NULL, KN_ENV_REASON_DROPPED);
}

static void bosh_rearm(c2s_bosh_t *b)
{
    if (b->conn == NULL)
        return;
    double now = ev_now(b->srv->loop);
    double at = b->nheld > 0
                    ? b->held[0].since + b->wait
                    : b->idle_since + (double)b->srv->conf->bosh_inactivity;
    ev_timer_stop(b->srv->loop, &b->timer);
    ev_timer_set(&b->timer, at > now ? at - now : 0., 0.);
    ev_timer_start(b->srv->loop, &b->timer);
}

static void bosh_feed(c2s_bosh_t *b, const char *data, size_t len)
{
    if (b->in_off == b->in.len) {
        kn_buf_reset(&b->in);
        b->in_off = 0;
    }
    kn_buf_append(&b->in, data, len);
}

static void bosh_feed_header(c2s_bosh_t *b)
{
    bosh_feed(b, "", 0);
    kn_buf_append_str(&b->in, "<stream:stream xmlns='" KN_NS_CLIENT
                              "' xmlns:stream='" KN_NS_STREAMS "' to='");
    kn_buf_append_xml_escaped(&b->in, b->srv->cc->domain,
                              strlen(b->srv->cc->domain));
    kn_buf_append_str(&b->in, "' version='1.0'>");
}

/* Feed the requests that are next in rid order to the stream. */
static void bosh_process(c2s_bosh_t *b)
{
    for (bool more = true; more;) {
        more = false;
        for (size_t i = 0; i < b->nheld; i++) {
            bosh_req_t *r = &b->held[i];
            if (r->processed || r->rid != b->rid + 1)
                continue;
            if (r->restart)
                bosh_feed_header(b);
            bosh_feed(b, r->payload.data ? r->payload.data : "",
                      r->payload.len);
            if (r->terminate)
                bosh_feed(b, "</stream:stream>", 16);
            kn_buf_free(&r->payload);
            r->processed = true;
            b->rid++;
            more = true;
        }
    }
    if (b->conn != NULL)
        c2s_conn_wake(b->conn);
    bosh_mark(b);
}

static void bosh_take(c2s_bosh_t *b, c2s_http_t *h, c2s_bosh_body_t *bd)
{
    if (b->ended) {
        bosh_terminate_now(h, NULL);
        return;
    }
    if (bd->rid <= b->rid) { /* a retry: the same answer again */
        for (size_t i = 0; i < b->requests; i++) {
            bosh_answer_t *a = &b->answers[i];
            if (a->rid == bd->rid && a->data != NULL) {
                c2s_http_bosh_answer(h, a->data, a->len);
                return;
            }
        }
        for (size_t i = 0; i < b->nheld; i++) {
            if (b->held[i].rid == bd->rid) { /* still held: h takes over */
                if (b->held[i].h != NULL)
                    bosh_terminate_now(b->held[i].h, "item-not-found");
                b->held[i].h = h;
                c2s_http_bosh_link(h, b);
                return;
            }
        }
        bosh_terminate_now(h, "item-not-found");
        bosh_end(b, "item-not-found", KN_ENV_REASON_DROPPED);
        return;
    }
    if (bd->rid > b->rid + b->requests) {
        bosh_terminate_now(h, "item-not-found");
        bosh_end(b, "item-not-found", KN_ENV_REASON_DROPPED);
        return;
    }
    for (size_t i = 0; i < b->nheld; i++) {
        if (b->held[i].rid == bd->rid) { /* the same rid twice, ahead */
            bosh_terminate_now(h, "bad-request");
            return;
        }
    }
    if (b->nheld >= b->requests) {
        bosh_terminate_now(h, "policy-violation");
        bosh_end(b, "policy-violation", KN_ENV_REASON_DROPPED);
        return;
    }
    size_t at = b->nheld;
    while (at > 0 && b->held[at - 1].rid > bd->rid)
        at--;
    memmove(&b->held[at + 1], &b->held[at],
            (b->nheld - at) * sizeof(b->held[0]));
    b->nheld++;
    bosh_req_t *r = &b->held[at];
    memset(r, 0, sizeof(*r));
    r->h = h;
    r->rid = bd->rid;
    r->since = ev_now(b->srv->loop);
    r->terminate = strcmp(bd->type, "terminate") == 0;
    r->restart = bd->restart;
    r->payload = bd->payload;
    bd->payload = (kn_buf_t)KN_BUF_INIT;
    c2s_http_bosh_link(h, b);
    bosh_process(b);
    bosh_rearm(b);
}

static bool bosh_domain_is(const char *to, const char *domain)
{
    return strcasecmp(to, domain) == 0;
}

static void bosh_create(c2s_server_t *srv, c2s_http_t *h, c2s_bosh_body_t *bd,
                        bool secure, const struct sockaddr *sa)
{
    const c2s_conf_t *cf = srv->conf;
    if (!bosh_domain_is(bd->to, srv->cc->domain)) {
        bosh_terminate_now(h, "host-unknown");
        return;
    }
    if (srv->nconns + srv->nhttp > (size_t)cf->max_connections) {
        bosh_terminate_now(h, "remote-connection-failed");
        return;
    }
    c2s_bosh_t *b = kn_calloc(1, sizeof(*b));
    b->srv = srv;
    uint8_t rnd[16];
    c2s_random(rnd, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(b->sid + 2 * i, 3, "%02x", rnd[i]);
    b->requests = (unsigned)cf->bosh_requests;
    b->hold = bd->hold < 0 ? 1 : (unsigned)bd->hold;
    if (b->hold > b->requests - 1)
        b->hold = b->requests - 1;
    b->wait = bd->wait <= 0 ? (unsigned)cf->bosh_wait_max : (unsigned)bd->wait;
    if (b->wait > (unsigned)cf->bosh_wait_max)
        b->wait = (unsigned)cf->bosh_wait_max;
    b->rid = bd->rid - 1;
    b->create_rid = bd->rid;
    b->idle_since = ev_now(srv->loop);
    ev_init(&b->timer, bosh_on_timer);
    b->timer.data = b;
    HASH_ADD_STR(srv->bosh, sid, b);
    unsigned flags = C2S_STREAM_F_FRAMED | (secure ? C2S_STREAM_F_TLS : 0);
    b->conn = c2s_conn_adopt(srv, -1, sa, &bosh_transport, b, flags);
    kn_log_debug("c2s: BOSH session %s (wait %u, hold %u)", b->sid, b->wait,
                 b->hold);
    bd->restart = true; /* the creation opens the stream */
    bosh_take(b, h, bd);
}

void c2s_bosh_request(c2s_server_t *srv, c2s_http_t *h, const char *body,
                      size_t len, bool secure, const struct sockaddr *sa)
{
    c2s_bosh_body_t bd;
    if (c2s_bosh_parse(body, len, &bd) < 0) {
        c2s_http_bosh_refuse(h, 400, "not a BOSH <body/> (XEP-0124)");
        return;
    }
    if (!bd.has_rid) {
        bosh_terminate_now(h, "bad-request");
    } else if (bd.sid[0] == '\0') {
        bosh_create(srv, h, &bd, secure, sa);
    } else {
        c2s_bosh_t *b = NULL;
        HASH_FIND_STR(srv->bosh, bd.sid, b);
        if (b == NULL) /* another node's, or over */
            bosh_terminate_now(h, "item-not-found");
        else
            bosh_take(b, h, &bd);
    }
    kn_buf_free(&bd.payload);
}

void c2s_bosh_forget(c2s_bosh_t *b, c2s_http_t *h)
{
    for (size_t i = 0; i < b->nheld; i++)
        if (b->held[i].h == h)
            b->held[i].h = NULL; /* answered anyway, for the retry */
}

void c2s_bosh_settle(c2s_server_t *srv)
{
    while (srv->bosh_dirty != NULL) {
        c2s_bosh_t *b = srv->bosh_dirty;
        srv->bosh_dirty = b->next_dirty;
        b->dirty = false;
        long i;
        while (b->nheld > b->hold && (i = bosh_oldest(b)) >= 0)
            bosh_answer(b, (size_t)i, NULL, 0, NULL);
    }
}

/* ---- the transport ----------------------------------------------------------
 */

static ssize_t bosh_read(void *state, int fd, void *buf, size_t len, int *want)
{
    c2s_bosh_t *b = state;
    KN_UNUSED(fd);
    size_t n = b->in.len - b->in_off;
    if (n == 0) {
        *want = EV_READ;
        return -KN_EAGAIN;
    }
    if (n > len)
        n = len;
    memcpy(buf, b->in.data + b->in_off, n);
    b->in_off += n;
    return (ssize_t)n;
}

typedef struct bosh_out {
    kn_buf_t payload;
    bool close, error;
} bosh_out_t;

static void bosh_collect(void *ud, const char *data, size_t len)
{
    bosh_out_t *o = ud;
    if (len >= 6 && memcmp(data, "<open ", 6) == 0)
        return; /* the session attributes say it all */
    if (len >= 7 && memcmp(data, "<close ", 7) == 0) {
        o->close = true;
        return;
    }
    if (len >= 13 && memcmp(data, "<stream:error", 13) == 0)
        o->error = true;
    kn_buf_append(&o->payload, data, len);
}

static ssize_t bosh_write(void *state, int fd, const void *buf, size_t len,
                          int *want)
{
    c2s_bosh_t *b = state;
    KN_UNUSED(fd);
    long i = bosh_oldest(b);
    if (i < 0) {
        *want = EV_WRITE; /* until a request comes (c2s_conn_wake) */
        return -KN_EAGAIN;
    }
    bosh_out_t o = {KN_BUF_INIT, false, false};
    ssize_t n = c2s_ws_split_out(buf, len, SIZE_MAX, bosh_collect, &o);
    if (n <= 0) {
        kn_buf_free(&o.payload);
        return -KN_EIO;
    }
    if (o.close) {
        b->ended = true;
        bosh_answer(b, (size_t)i, o.payload.data, o.payload.len,
                    o.error ? "remote-stream-error" : "");
    } else {
        bosh_answer(b, (size_t)i, o.payload.data, o.payload.len, NULL);
    }
    kn_buf_free(&o.payload);
    return n;
}

static void bosh_free(void **state)
{
    c2s_bosh_t *b = *state;
    if (b == NULL)
        return;
    c2s_server_t *srv = b->srv;
    b->conn = NULL;
    ev_timer_stop(srv->loop, &b->timer);
    HASH_DEL(srv->bosh, b);
    if (b->dirty) {
        c2s_bosh_t **pp = &srv->bosh_dirty;
        while (*pp != b)
            pp = &(*pp)->next_dirty;
        *pp = b->next_dirty;
    }
    const char *cond = b->cond ? b->cond : (b->ended ? NULL : "");
    for (size_t i = 0; i < b->nheld; i++) {
        bosh_req_t *r = &b->held[i];
        if (r->h != NULL)
            bosh_terminate_now(r->h, cond && *cond ? cond : NULL);
        kn_buf_free(&r->payload);
    }
    for (size_t i = 0; i < C2S_BOSH_MAX_REQUESTS; i++)
        free(b->answers[i].data);
    kn_buf_free(&b->in);
    free(b);
    *state = NULL;
}

static const c2s_transport_t bosh_transport = {
    "bosh", bosh_read, bosh_write, NULL, bosh_free, NULL,
};
