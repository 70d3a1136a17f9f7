/*
 * c2s_http.c - HTTP connections on the c2s HTTP and HTTPS ports: socket,
 * TLS handshake, reads into c2s_http_proto.c, writes of its responses,
 * the idle deadline, and the hand-over of an upgraded WebSocket.
 *
 * A note on lifetime. HTTP connections are not c2s connections (no
 * stream, no slot, no session) until an upgrade: then the fd, the inner
 * transport (TCP or TLS) and the bytes the client sent after its request
 * go to c2s_conn_adopt() under the WebSocket transport, once the 101 is
 * written. They count against max_connections like c2s connections
 * (srv->nhttp). A connection that ends goes on a close list freed from
 * the server's ev_prepare (c2s_http_drain), never inside its own
 * callback.
 *
 * A connection silent for http_idle_s (no complete request, or an idle
 * keep-alive) is closed without an answer: one timer per connection,
 * restarted only when bytes arrive. Until its first request is complete
 * a connection counts as unauthenticated against the flood caps
 * (c2s_flood.h) and has preauth.header_timeout from accept, TLS
 * handshake included, for it (the timer never runs past that deadline).
 *
 * A note on the last answer. Closing a socket with unread input makes the
 * kernel send a reset, and a reset can destroy the answer (a 413 for a
 * body still arriving) before the client read it. So after the last
 * answer the connection shuts its write side and reads and discards for
 * up to HTTP_LINGER_S (nginx's lingering close), then closes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "c2s_bosh.h"
#include "c2s_http.h"
#include "c2s_metrics.h"
#include "c2s_server.h"
#include "c2s_transport.h"
#include "c2s_ws.h"
#include "kn_metrics.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"

#define HTTP_READ_BATCH 8
#define HTTP_LINGER_S   2.0           /* reading after a last answer */
#define HTTP_LINGER_MAX (1024 * 1024) /* bytes read meanwhile */
#define HTTP_SEND_PIECE (64 * 1024)   /* a file's body, read per step */
#define HTTP_SEND_STEPS 4             /* pieces per writable event */

struct c2s_http {
    c2s_server_t *srv;
    c2s_http_t *prev, *next; /* srv->http */
    c2s_http_t *next_close;
    ev_io io;
    ev_timer idle;
    const c2s_transport_t *tr;
    void *trs;
    c2s_http_proto_t hp;
    c2s_http_conf_t cf;
    struct sockaddr_storage sa;
    uint8_t key[16];    /* c2s_flood_key */
    double accepted_at; /* the first request's deadline */
    bool unauth;        /* counted in srv->flood: no request yet */
    kn_buf_t pending;   /* bytes after the last request parsed: WebSocket
                         * frames after an upgrade, or the next requests
                         * while a BOSH request is held */
    c2s_bosh_t *bosh;   /* the session holding our request, or NULL */
    size_t out_off;
    uint8_t read_want, write_want;
    bool handshaking : 1;
    bool closing : 1;
    bool secure : 1; /* SASL may be offered: TLS, loopback, or trusted */
    bool lingering : 1;
    size_t lingered;
};

static char http_rbuf[16384];
static c2s_http_t *http_close_list;

static void http_on_io(struct ev_loop *loop, ev_io *w, int revents);

static void http_update_io(c2s_http_t *h)
{
    int ev = 0;
    if (h->handshaking)
        ev = h->read_want ? h->read_want : EV_READ;
    else if (h->write_want)
        ev = h->write_want;
    else if (h->hp.act == C2S_HTTP_MORE)
        ev = h->read_want ? h->read_want : EV_READ;
    if (ev == (h->io.events & (EV_READ | EV_WRITE)) && ev_is_active(&h->io))
        return;
    ev_io_stop(h->srv->loop, &h->io);
    ev_io_set(&h->io, h->io.fd, ev);
    if (ev != 0)
        ev_io_start(h->srv->loop, &h->io);
}

/* (Re)start the idle timer: http_idle_s, but never past the first
 * request's deadline. */
static void http_arm_idle(c2s_http_t *h)
{
    const c2s_conf_t *cf = h->srv->conf;
    double t = (double)cf->http_idle_s;
    if (h->unauth && cf->preauth_header_timeout > 0) {
        double left = h->accepted_at + (double)cf->preauth_header_timeout -
                      ev_now(h->srv->loop);
        if (left < t)
            t = left > 0.001 ? left : 0.001;
    }
    h->idle.repeat = t;
    ev_timer_again(h->srv->loop, &h->idle);
}

/* The first request is complete: no longer counted as unauthenticated. */
static void http_counted_done(c2s_http_t *h)
{
    if (!h->unauth)
        return;
    h->unauth = false;
    c2s_flood_unauth_done(h->srv->flood, h->key);
    h->idle.repeat = (double)h->srv->conf->http_idle_s;
}

static void http_unlink(c2s_http_t *h)
{
    c2s_server_t *srv = h->srv;
    http_counted_done(h);
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        srv->http = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    srv->nhttp--;
    ev_io_stop(srv->loop, &h->io);
    ev_timer_stop(srv->loop, &h->idle);
}

/* End the connection: freed (fd closed) from the close list. */
static void http_close(c2s_http_t *h)
{
    if (h->closing)
        return;
    h->closing = true;
    if (h->bosh != NULL)
        c2s_bosh_forget(h->bosh, h);
    h->bosh = NULL;
    http_unlink(h);
    h->next_close = http_close_list;
    http_close_list = h;
}

static void http_free(c2s_http_t *h)
{
    if (h->tr != NULL) {
        h->tr->free(&h->trs);
        close(h->io.fd);
    }
    c2s_http_proto_free(&h->hp);
    kn_buf_free(&h->pending);
    free(h);
}

void c2s_http_drain(c2s_server_t *srv)
{
    KN_UNUSED(srv);
    while (http_close_list != NULL) {
        c2s_http_t *h = http_close_list;
        http_close_list = h->next_close;
        http_free(h);
    }
}

void c2s_http_close_all(c2s_server_t *srv)
{
    while (srv->http != NULL)
        http_close(srv->http);
    c2s_http_drain(srv);
}

/* The 101 is out: the connection becomes a c2s connection. */
static void http_upgrade(c2s_http_t *h)
{
    c2s_server_t *srv = h->srv;
    int fd = h->io.fd;
    c2s_ws_t *w =
        c2s_ws_new(h->tr, h->trs, fd, (size_t)srv->conf->max_stanza_bytes,
                   h->pending.data, h->pending.len);
    h->tr = NULL; /* taken, with the fd */
    h->trs = NULL;
    unsigned flags = C2S_STREAM_F_FRAMED | (h->secure ? C2S_STREAM_F_TLS : 0);
    http_close(h);
    c2s_conn_adopt(srv, fd, (struct sockaddr *)&h->sa, &c2s_transport_ws, w,
                   flags);
}

static void http_linger(c2s_http_t *h)
{
    h->lingering = true;
    shutdown(h->io.fd, SHUT_WR);
    ev_timer_stop(h->srv->loop, &h->idle);
    ev_timer_set(&h->idle, HTTP_LINGER_S, 0.);
    ev_timer_start(h->srv->loop, &h->idle);
    ev_io_stop(h->srv->loop, &h->io);
    ev_io_set(&h->io, h->io.fd, EV_READ);
    ev_io_start(h->srv->loop, &h->io);
}

static void http_discard(c2s_http_t *h)
{
    for (int i = 0; i < HTTP_READ_BATCH; i++) {
        int want = EV_READ;
        ssize_t n =
            h->tr->read(h->trs, h->io.fd, http_rbuf, sizeof(http_rbuf), &want);
        if (n == -KN_EAGAIN)
            return;
        h->lingered += n > 0 ? (size_t)n : 0;
        if (n <= 0 || h->lingered > HTTP_LINGER_MAX) {
            http_close(h);
            return;
        }
    }
}

static void http_flush(c2s_http_t *h)
{
    kn_buf_t *out = &h->hp.out;
    int steps = 0;
again:
    while (h->out_off < out->len) {
        int want = EV_WRITE;
        ssize_t n = h->tr->write(h->trs, h->io.fd, out->data + h->out_off,
                                 out->len - h->out_off, &want);
        if (n == -KN_EAGAIN) {
            h->write_want = (uint8_t)want;
            http_update_io(h);
            return;
        }
        if (n < 0) {
            http_close(h);
            return;
        }
        h->out_off += (size_t)n;
    }
    h->write_want = 0;
    h->out_off = 0;
    if (out->cap > 65536 + HTTP_SEND_PIECE)
        kn_buf_free(out);
    else
        kn_buf_reset(out);
    if (h->hp.act == C2S_HTTP_SEND) {
        /* A file's body (c2s_upload.c): a few pieces per event, then back
         * to the loop, which calls us again while the socket is writable. */
        if (steps++ >= HTTP_SEND_STEPS) {
            h->write_want = EV_WRITE;
            http_update_io(h);
            return;
        }
        /* a download making progress is not idle */
        ev_timer_again(h->srv->loop, &h->idle);
        bool done = c2s_http_proto_pull(&h->hp, HTTP_SEND_PIECE);
        if (!done || out->len > 0)
            goto again;
    }
    if (h->hp.act == C2S_HTTP_MORE && h->pending.len > 0 && steps > 0)
        ev_feed_event(h->srv->loop, &h->io, EV_READ); /* requests behind */
    if (h->hp.act == C2S_HTTP_CLOSE) {
        http_linger(h);
        return;
    }
    if (h->hp.act == C2S_HTTP_UPGRADE) {
        http_upgrade(h);
        return;
    }
    http_update_io(h);
}

/* Parse n bytes and act on the parser's verdict. */
static void http_feed(c2s_http_t *h, const char *data, size_t n)
{
    size_t used = 0;
    c2s_http_act_t act = c2s_http_proto_feed(&h->hp, data, n, &used);
    if (act != C2S_HTTP_MORE || h->hp.out.len > h->out_off)
        http_counted_done(h); /* a request was complete: it has an answer */
    if ((act == C2S_HTTP_UPGRADE || act == C2S_HTTP_BOSH ||
         act == C2S_HTTP_SEND) &&
        used < n)
        kn_buf_append(&h->pending, data + used, n - used);
    if (act == C2S_HTTP_BOSH) {
        ev_timer_stop(h->srv->loop, &h->idle); /* BOSH's wait governs */
        c2s_bosh_request(h->srv, h, h->hp.body.data ? h->hp.body.data : "",
                         h->hp.body.len, h->secure,
                         (const struct sockaddr *)&h->sa);
    }
}

static void http_read(c2s_http_t *h)
{
    for (int i = 0; i < HTTP_READ_BATCH && h->hp.act == C2S_HTTP_MORE &&
                    !h->closing && !h->lingering;
         i++) {
        if (h->pending.len > 0) { /* requests behind an answered BOSH one */
            kn_buf_t p = h->pending;
            h->pending = (kn_buf_t)KN_BUF_INIT;
            http_feed(h, p.data, p.len);
            kn_buf_free(&p);
            continue;
        }
        int want = EV_READ;
        ssize_t n =
            h->tr->read(h->trs, h->io.fd, http_rbuf, sizeof(http_rbuf), &want);
        if (n == -KN_EAGAIN) {
            h->read_want = (uint8_t)want;
            break;
        }
        h->read_want = 0;
        if (n <= 0) {
            http_close(h);
            return;
        }
        http_arm_idle(h);
        http_feed(h, http_rbuf, (size_t)n);
    }
    if (h->closing || h->lingering)
        return;
    if (h->hp.out.len > h->out_off)
        http_flush(h);
    else if (h->hp.act == C2S_HTTP_CLOSE)
        http_linger(h);
    else
        http_update_io(h);
}

void c2s_http_bosh_link(c2s_http_t *h, c2s_bosh_t *b)
{
    h->bosh = b;
}

static void http_bosh_done(c2s_http_t *h)
{
    h->bosh = NULL;
    if (h->closing || h->lingering)
        return;
    ev_timer_again(h->srv->loop, &h->idle);
    if (h->hp.out.len > h->out_off && !h->write_want)
        http_flush(h);
    if (!h->closing && !h->lingering && h->hp.act == C2S_HTTP_MORE &&
        h->pending.len > 0)
        ev_feed_event(h->srv->loop, &h->io, EV_READ);
}

void c2s_http_bosh_answer(c2s_http_t *h, const char *body, size_t len)
{
    KN_ASSERT(!h->closing && h->hp.act == C2S_HTTP_BOSH);
    c2s_http_proto_answer(&h->hp, 200, "text/xml; charset=utf-8", body, len);
    http_bosh_done(h);
}

void c2s_http_bosh_refuse(c2s_http_t *h, int status, const char *why)
{
    KN_ASSERT(!h->closing && h->hp.act == C2S_HTTP_BOSH);
    c2s_http_proto_answer(&h->hp, status, "text/plain; charset=utf-8", why,
                          strlen(why));
    http_bosh_done(h);
}

static void http_handshake(c2s_http_t *h)
{
    int want = EV_READ;
    int rc = h->tr->handshake(h->trs, h->io.fd, &want);
    if (rc == -KN_EAGAIN) {
        h->read_want = (uint8_t)want;
        http_update_io(h);
        return;
    }
    if (rc < 0) {
        http_close(h);
        return;
    }
    h->handshaking = false;
    h->read_want = 0;
    http_read(h);
}

static void http_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    KN_UNUSED(loop);
    c2s_http_t *h = w->data;
    if (h->closing)
        return;
    if (h->lingering) {
        http_discard(h);
        return;
    }
    if (h->handshaking) {
        http_handshake(h);
        return;
    }
    if (h->write_want && (revents & h->write_want)) {
        http_flush(h);
        return;
    }
    if (h->hp.act == C2S_HTTP_MORE)
        http_read(h);
}

static void http_on_idle(struct ev_loop *loop, ev_timer *t, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(revents);
    c2s_http_t *h = t->data;
    if (h->unauth && !h->lingering) {
        kn_log_info("c2s: HTTP connection without a complete request "
                    "within %.0f s of accept, closing (pre-auth timeout)",
                    ev_now(h->srv->loop) - h->accepted_at);
        kn_metric_add(c2s_metrics.closed_preauth, 1);
    }
    http_close(h);
}

static bool http_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
               in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

void c2s_http_accept(c2s_server_t *srv, int fd, const struct sockaddr *sa,
                     bool tls)
{
    const c2s_conf_t *conf = srv->conf;
    c2s_http_t *h = kn_calloc(1, sizeof(*h));
    h->srv = srv;
    h->cf.origins = conf->ws_origins;
    h->cf.ws_url = conf->ws_url;
    h->cf.bosh_url = conf->bosh_url;
    h->cf.web_root = conf->web_root;
    h->cf.upload = srv->upload.service != NULL ? &srv->upload : NULL;
    h->cf.max_header = (size_t)conf->http_max_header;
    h->cf.max_body = (size_t)conf->http_max_body;
    c2s_http_proto_init(&h->hp, &h->cf, tls);
    h->hp.metrics_ok = kn_metrics_peer_allowed(sa);
    if (sa->sa_family == AF_INET6)
        memcpy(&h->sa, sa, sizeof(struct sockaddr_in6));
    else
        memcpy(&h->sa, sa, sizeof(struct sockaddr_in));
    h->secure = tls || conf->http_plain_auth || http_is_loopback(sa);
    h->tr = &c2s_transport_tcp;
    ev_io_init(&h->io, http_on_io, fd, EV_READ);
    h->io.data = h;
    ev_init(&h->idle, http_on_idle);
    h->idle.repeat = (double)conf->http_idle_s;
    h->idle.data = h;
    h->next = srv->http;
    if (srv->http != NULL)
        srv->http->prev = h;
    srv->http = h;
    srv->nhttp++;
    c2s_flood_key(sa, h->key);
    c2s_flood_unauth_add(srv->flood, h->key);
    h->unauth = true;
    h->accepted_at = ev_now(srv->loop);
    if (tls) {
        h->trs = c2s_tls_new(srv->tls, fd);
        if (h->trs == NULL) {
            h->tr = NULL;
            close(fd);
            http_close(h);
            return;
        }
        h->tr = &c2s_transport_tls;
        h->handshaking = true;
    }
    http_arm_idle(h);
    ev_io_start(srv->loop, &h->io);
}
