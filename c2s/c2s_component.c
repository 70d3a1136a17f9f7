/*
 * c2s_component.c - external components (XEP-0114, jabber:component:accept)
 * on a c2s node.
 *
 * A component (a gateway such as biboumi) connects over plain TCP to
 * c2s.component_port (loopback or a trusted network: XEP-0114 has no
 * TLS), opens a stream `to` its domain, which must be one of the
 * top-level `components` (else host-unknown), and proves the shared
 * secret with <handshake>hex(SHA-1(stream id + secret))</handshake>
 * (else not-authorized; both close the stream). Then the connection is
 * registered with the router (KN_REG_COMPONENT: domain, connection id,
 * disco name), which sends it every stanza to that domain, or a share of
 * them when several connections serve the domain (router_comp.c).
 *
 * Stanzas from the component: `from` must be a JID of its domain (else
 * invalid-from, RFC 6120 4.9.3.9), `to` is required (improper-addressing);
 * both are prepared; the stanza goes to the router re-serialised as
 * jabber:client, like a client's. Stanzas to the component: the router's
 * payload is parsed and written in the component namespace (the same
 * tree, RFC 6120 4.8.3). What arrives for a connection that has gone goes
 * back to the router with KN_F_REROUTE (message, iq get/set), which sends
 * it to another connection of the domain or bounces it.
 *
 * Input is shaped like a client's (c2s_conn.c, issue 16), with its own
 * rates (component_rate_bytes_per_s, component_rate_stanzas_per_s; off
 * by default: a gateway carries many users): a read that leaves a
 * bucket in debt stops reading until it is paid, and a component still
 * over its rate rate_close_after seconds later is closed with
 * <policy-violation/>.
 *
 * Same XML parser and limits as client streams. Connection ids have bit
 * C2S_COMP_LOCAL_BIT set in their node-local part, so the router's
 * deliveries for them are told apart from client connections' without a
 * lookup. Closed connections are freed from an ev_prepare, never inside
 * their own callback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "c2s_bucket.h"
#include "c2s_metrics.h"
#include "c2s_server.h"
#include "kn_digest.h"
#include "kn_env_stanza.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"

#define COMP_READ_CHUNK 16384
#define COMP_READ_BATCH 8

typedef enum comp_state {
    COMP_ST_HEADER = 0,
    COMP_ST_HANDSHAKE,
    COMP_ST_READY,
    COMP_ST_CLOSED,
} comp_state_t;

typedef struct comp_conn {
    struct c2s_comps *cs;
    int fd;
    ev_io rio, wio;
    ev_timer throttle; /* reading paused for the input rate */
    c2s_bucket_t rate_bytes, rate_stanzas;
    double over_since; /* first read over the rate of this streak; 0 */
    size_t stanzas;    /* parsed since the last charge */
    kn_xml_t *xml;
    kn_buf_t out;
    size_t out_off;
    const c2s_comp_def_t *def; /* known after the header */
    char sid[33];
    char peer[64];
    uint64_t local;
    comp_state_t state;
    bool header_sent;
    bool registered;
    struct comp_conn *next;
} comp_conn_t;

struct c2s_comps {
    c2s_server_t *srv;
    int lfd;
    ev_io lio;
    ev_prepare reap;
    comp_conn_t *conns;
    uint64_t seq;
    kn_buf_t scratch;
};

static void comp_on_read(struct ev_loop *loop, ev_io *w, int revents);
static void comp_on_write(struct ev_loop *loop, ev_io *w, int revents);

bool c2s_comp_is_conn(uint64_t conn_id)
{
    return (conn_id & C2S_COMP_LOCAL_BIT) != 0;
}

static comp_conn_t *comp_find(c2s_comps_t *cs, uint64_t conn_id)
{
    uint64_t local = conn_id & KN_CONN_LOCAL_MASK;
    for (comp_conn_t *c = cs->conns; c; c = c->next)
        if (c->local == local && c->state != COMP_ST_CLOSED)
            return c;
    return NULL;
}

static uint64_t comp_conn_id(const comp_conn_t *c)
{
    return kn_link_conn_id(c->cs->srv->link, c->local);
}

/* KN_REG_COMPONENT(_DOWN) for c. */
static void comp_register(comp_conn_t *c, bool up)
{
    c2s_server_t *srv = c->cs->srv;
    if (!kn_link_ready(srv->link))
        return; /* sent again from c2s_comp_on_ready */
    kn_env_t e = {0};
    e.kind = KN_ENV_REGISTER;
    e.flags = up ? KN_REG_COMPONENT : KN_REG_COMPONENT_DOWN;
    e.node = c->def->domain;
    e.node_len = strlen(c->def->domain);
    e.conn_id = comp_conn_id(c);
    const char *name = c->def->name ? c->def->name : "";
    int rc = kn_link_send(srv->link, &e, name, strlen(name));
    if (rc < 0)
        kn_log_warn("c2s: component %s: registration failed: %s",
                    c->def->domain, kn_strerror(rc));
}

static void comp_output(comp_conn_t *c)
{
    if (c->out.len > c->out_off && c->fd >= 0)
        ev_io_start(c->cs->srv->loop, &c->wio);
}

static void comp_write_header(comp_conn_t *c, const char *from)
{
    kn_buf_append_str(&c->out, "<?xml version='1.0'?><stream:stream "
                               "xmlns:stream='http://etherx.jabber.org/"
                               "streams' xmlns='" KN_NS_COMPONENT "' from='");
    kn_buf_append_xml_escaped(&c->out, from, strlen(from));
    kn_buf_append_str(&c->out, "' id='");
    kn_buf_append_str(&c->out, c->sid);
    kn_buf_append_str(&c->out, "'>");
    c->header_sent = true;
}

/* End the stream (err: KN_SE_NONE for none) and schedule the close. */
static void comp_close(comp_conn_t *c, kn_stream_err_t err, const char *why)
{
    if (c->state == COMP_ST_CLOSED)
        return;
    struct ev_loop *loop = c->cs->srv->loop;
    if (err != KN_SE_NONE) {
        if (!c->header_sent)
            comp_write_header(c, c->cs->srv->cc->domain);
        kn_stream_err_write(&c->out, err, NULL);
    }
    if (c->header_sent)
        kn_buf_append_str(&c->out, "</stream:stream>");
    kn_log_info("c2s: component %s from %s closed: %s",
                c->def ? c->def->domain : "?", c->peer,
                err != KN_SE_NONE ? kn_stream_err_name(err) : why);
    if (c->registered)
        comp_register(c, false);
    c->registered = false;
    c->state = COMP_ST_CLOSED;
    ev_io_stop(loop, &c->rio);
    ev_timer_stop(loop, &c->throttle);
    /* One last try to hand the error to the socket; then it goes. What
     * it took is done with: the write watcher may still run before the
     * reaper (its event of the same loop pass) and must not send it
     * again (found by tests/fuzz/fuzz_component.c). */
    if (c->fd >= 0 && c->out.len > c->out_off) {
        ssize_t n = send(c->fd, c->out.data + c->out_off,
                         c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0)
            c->out_off += (size_t)n;
    }
}

static void comp_free(comp_conn_t *c)
{
    struct ev_loop *loop = c->cs->srv->loop;
    ev_io_stop(loop, &c->rio);
    ev_io_stop(loop, &c->wio);
    ev_timer_stop(loop, &c->throttle);
    if (c->fd >= 0) {
        shutdown(c->fd, SHUT_RDWR);
        close(c->fd);
    }
    kn_xml_free(&c->xml);
    kn_buf_free(&c->out);
    free(c);
}

static void comp_on_reap(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    c2s_comps_t *cs = w->data;
    comp_conn_t **pp = &cs->conns;
    while (*pp != NULL) {
        comp_conn_t *c = *pp;
        if (c->state == COMP_ST_CLOSED) {
            *pp = c->next;
            comp_free(c);
        } else {
            pp = &c->next;
        }
    }
}

static const c2s_comp_def_t *comp_def_find(const c2s_server_t *srv,
                                           const char *domain)
{
    for (size_t i = 0; i < srv->conf->ncomponents; i++)
        if (strcmp(srv->conf->components[i].domain, domain) == 0)
            return &srv->conf->components[i];
    return NULL;
}

static void comp_on_header(comp_conn_t *c, const kn_stanza_t *h)
{
    const char *to = kn_stanza_attr(h, 0, "to", NULL);
    kn_buf_t p = KN_BUF_INIT;
    const c2s_comp_def_t *d = NULL;
    if (to != NULL && kn_jid_prepare_str(to, strlen(to), &p) == 0)
        d = comp_def_find(c->cs->srv, p.data);
    kn_buf_free(&p);
    comp_write_header(c, d != NULL ? d->domain : c->cs->srv->cc->domain);
    if (d == NULL) {
        kn_log_warn("c2s: component stream from %s to unknown '%s'", c->peer,
                    to ? to : "");
        comp_close(c, KN_SE_HOST_UNKNOWN, NULL);
        return;
    }
    c->def = d;
    c->state = COMP_ST_HANDSHAKE;
}

static void comp_on_handshake(comp_conn_t *c, const kn_stanza_t *st)
{
    if (strcmp(kn_stanza_name(st, 0), "handshake") != 0 ||
        strcmp(kn_stanza_ns(st, 0), KN_NS_COMPONENT) != 0) {
        comp_close(c, KN_SE_NOT_AUTHORIZED, NULL);
        return;
    }
    kn_buf_t got = KN_BUF_INIT;
    kn_stanza_text(st, 0, &got);
    char want[KN_SHA1_HEX_LEN + 1];
    kn_sha1_hex2(c->sid, strlen(c->sid), c->def->secret, strlen(c->def->secret),
                 want);
    /* Hex digits may come in either case. */
    for (size_t i = 0; i < got.len; i++)
        if (got.data[i] >= 'A' && got.data[i] <= 'F')
            got.data[i] = (char)(got.data[i] - 'A' + 'a');
    bool ok = got.data != NULL && kn_digest_equal(got.data, want);
    kn_buf_free(&got);
    if (!ok) {
        kn_log_warn("c2s: component %s from %s: bad handshake", c->def->domain,
                    c->peer);
        comp_close(c, KN_SE_NOT_AUTHORIZED, NULL);
        return;
    }
    kn_buf_append_str(&c->out, "<handshake/>");
    c->state = COMP_ST_READY;
    c->registered = true;
    comp_register(c, true);
    kn_log_info("c2s: component %s connected from %s", c->def->domain, c->peer);
}

static void comp_write_stanza(comp_conn_t *c, const kn_stanza_t *st)
{
    kn_stanza_serialize(st, &c->out, KN_NS_COMPONENT);
}

static void comp_reply_error(comp_conn_t *c, const kn_stanza_t *st,
                             kn_stanza_err_t cond)
{
    kn_stanza_t *r = kn_stanza_error_reply(st, cond, NULL);
    if (r != NULL)
        comp_write_stanza(c, r);
    kn_stanza_unref(&r);
}

/* Serialise st for the router: jabber:client, declared on the root. */
static void comp_payload(c2s_comps_t *cs, const kn_stanza_t *st)
{
    kn_buf_t tmp = KN_BUF_INIT;
    kn_stanza_serialize(st, &tmp, KN_NS_CLIENT);
    kn_buf_reset(&cs->scratch);
    size_t i = 1;
    while (i < tmp.len && tmp.data[i] != ' ' && tmp.data[i] != '>' &&
           tmp.data[i] != '/')
        i++;
    kn_buf_append(&cs->scratch, tmp.data, i);
    kn_buf_append_str(&cs->scratch, " xmlns='" KN_NS_CLIENT "'");
    kn_buf_append(&cs->scratch, tmp.data + i, tmp.len - i);
    kn_buf_free(&tmp);
}

static void comp_on_stanza(comp_conn_t *c, const kn_stanza_t *st)
{
    kn_stanza_kind_t kind = kn_stanza_kind(st);
    if (kind == KN_STANZA_OTHER ||
        strcmp(kn_stanza_ns(st, 0), KN_NS_COMPONENT) != 0) {
        comp_close(c, KN_SE_UNSUPPORTED_STANZA_TYPE, NULL);
        return;
    }
    const char *from_attr = kn_stanza_from(st);
    const char *to_attr = kn_stanza_to(st);
    if (from_attr == NULL || to_attr == NULL) {
        comp_close(c, KN_SE_IMPROPER_ADDRESSING, NULL);
        return;
    }
    kn_jid_t from = KN_JID_INIT, to = KN_JID_INIT;
    size_t dlen = 0;
    const char *dom = NULL;
    if (kn_jid_parse(&from, from_attr, strlen(from_attr)) == 0)
        dom = kn_jid_domain(&from, &dlen);
    if (dom == NULL || dlen != strlen(c->def->domain) ||
        memcmp(dom, c->def->domain, dlen) != 0) {
        kn_log_warn("c2s: component %s sent from '%s'", c->def->domain,
                    from_attr);
        comp_close(c, KN_SE_INVALID_FROM, NULL);
        goto out;
    }
    if (kn_jid_parse(&to, to_attr, strlen(to_attr)) < 0) {
        comp_reply_error(c, st, KN_STE_JID_MALFORMED);
        goto out;
    }
    kn_env_stanza_t est = kn_env_stanza_from_name(kn_stanza_name(st, 0));
    kn_env_type_t type;
    if (kn_env_type_from_str(est, kn_stanza_type(st), &type) < 0) {
        comp_reply_error(c, st, KN_STE_BAD_REQUEST);
        goto out;
    }
    const char *iq_ns = NULL;
    if (est == KN_ENV_ST_IQ) {
        int ch = kn_stanza_first_child(st, 0);
        if (ch >= 0)
            iq_ns = kn_stanza_ns(st, ch);
    }
    kn_stanza_t *stamped =
        kn_stanza_with_attr(st, 0, "from", kn_jid_str(&from));
    comp_payload(c->cs, stamped);
    kn_stanza_unref(&stamped);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = est;
    e.type = type;
    e.from = kn_jid_str(&from);
    e.from_len = kn_jid_len(&from);
    e.to = kn_jid_str(&to);
    e.to_len = kn_jid_len(&to);
    e.conn_id = comp_conn_id(c);
    if (iq_ns != NULL) {
        e.node = iq_ns;
        e.node_len = strlen(iq_ns);
    }
    int rc = kn_link_send(c->cs->srv->link, &e, c->cs->scratch.data,
                          c->cs->scratch.len);
    if (rc < 0) {
        kn_log_warn("c2s: component %s: stanza to the router lost: %s",
                    c->def->domain, kn_strerror(rc));
        if (kn_env_wants_reply(&e))
            comp_reply_error(c, st, KN_STE_INTERNAL_SERVER_ERROR);
    }
    if (c->cs->scratch.cap > 65536)
        kn_buf_free(&c->cs->scratch);
out:
    kn_jid_free(&from);
    kn_jid_free(&to);
}

static void comp_process(comp_conn_t *c)
{
    kn_xml_event_t ev;
    int rc;
    while (c->state != COMP_ST_CLOSED && (rc = kn_xml_next(c->xml, &ev)) != 0) {
        if (rc < 0) {
            comp_close(c, kn_xml_error(c->xml, NULL), NULL);
            return;
        }
        switch (ev.type) {
        case KN_XML_HEADER:
            if (c->state == COMP_ST_HEADER)
                comp_on_header(c, ev.stanza);
            else
                comp_close(c, KN_SE_INVALID_XML, NULL);
            break;
        case KN_XML_STANZA:
            c->stanzas++;
            if (c->state == COMP_ST_HANDSHAKE)
                comp_on_handshake(c, ev.stanza);
            else if (c->state == COMP_ST_READY)
                comp_on_stanza(c, ev.stanza);
            break;
        case KN_XML_CLOSE:
            comp_close(c, KN_SE_NONE, "closed by the component");
            break;
        }
        kn_stanza_unref(&ev.stanza);
    }
}

static void comp_on_throttle(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    comp_conn_t *c = t->data;
    if (c->state != COMP_ST_CLOSED)
        ev_io_start(loop, &c->rio);
}

/* Charge a read of n bytes and the stanzas it held. In debt: reading
 * pauses until it is paid. false: over the rate for rate_close_after. */
static bool comp_shape(comp_conn_t *c, size_t n)
{
    const c2s_conf_t *cf = c->cs->srv->conf;
    struct ev_loop *loop = c->cs->srv->loop;
    double now = ev_now(loop);
    bool ok = true;
    double wait = 0;
    if (cf->comp_rate_bytes_per_s > 0) {
        double r = (double)cf->comp_rate_bytes_per_s;
        double burst = 2 * r > 2.0 * (double)cf->max_stanza_bytes
                           ? 2 * r
                           : 2.0 * (double)cf->max_stanza_bytes;
        ok &= c2s_bucket_take(&c->rate_bytes, r, burst, (double)n, now);
        wait = c2s_bucket_wait(&c->rate_bytes, r);
    }
    if (cf->comp_rate_stanzas_per_s > 0) {
        double r = (double)cf->comp_rate_stanzas_per_s;
        double burst = 4 * r > 100 ? 4 * r : 100;
        ok &= c2s_bucket_take(&c->rate_stanzas, r, burst, (double)c->stanzas,
                              now);
        double w2 = c2s_bucket_wait(&c->rate_stanzas, r);
        if (w2 > wait)
            wait = w2;
    }
    c->stanzas = 0;
    if (ok) {
        c->over_since = 0;
        return true;
    }
    if (c->over_since == 0) {
        c->over_since = now;
        kn_log_info("c2s: component %s from %s: over its input rate, "
                    "reading paused",
                    c->def ? c->def->domain : "?", c->peer);
    } else if (cf->rate_close_after > 0 &&
               now - c->over_since >= (double)cf->rate_close_after) {
        kn_metric_add(c2s_metrics.closed_rate, 1);
        return false;
    }
    kn_metric_add(c2s_metrics.throttled, 1);
    ev_io_stop(loop, &c->rio);
    ev_timer_set(&c->throttle, wait > 0.001 ? wait : 0.001, 0.);
    ev_timer_start(loop, &c->throttle);
    return true;
}

static void comp_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    comp_conn_t *c = w->data;
    char buf[COMP_READ_CHUNK];
    for (int i = 0; i < COMP_READ_BATCH && c->state != COMP_ST_CLOSED; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) {
            comp_close(c, KN_SE_NONE, n == 0 ? "eof" : strerror(errno));
            break;
        }
        kn_xml_feed(c->xml, buf, (size_t)n);
        comp_process(c);
        if (c->state == COMP_ST_CLOSED)
            break;
        if (!comp_shape(c, (size_t)n)) {
            comp_close(c, KN_SE_POLICY_VIOLATION, NULL);
            break;
        }
        if (ev_is_active(&c->throttle))
            break;
    }
    comp_output(c);
    if (c->out.len - c->out_off > (size_t)c->cs->srv->conf->out_buffer_max)
        comp_close(c, KN_SE_RESOURCE_CONSTRAINT, NULL);
}

static void comp_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    comp_conn_t *c = w->data;
    while (c->out.len > c->out_off) {
        ssize_t n = send(c->fd, c->out.data + c->out_off,
                         c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            ev_io_stop(loop, w);
            comp_close(c, KN_SE_NONE, "write error");
            return;
        }
        c->out_off += (size_t)n;
    }
    kn_buf_reset(&c->out);
    c->out_off = 0;
    ev_io_stop(loop, w);
}

static void comp_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    c2s_comps_t *cs = w->data;
    for (int i = 0; i < 16; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(w->fd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        comp_conn_t *c = kn_calloc(1, sizeof(*c));
        c->cs = cs;
        c->fd = fd;
        c->local = C2S_COMP_LOCAL_BIT | (++cs->seq & (C2S_COMP_LOCAL_BIT - 1));
        unsigned char rnd[16];
        c2s_random(rnd, sizeof(rnd));
        for (size_t k = 0; k < sizeof(rnd); k++)
            snprintf(c->sid + 2 * k, 3, "%02x", rnd[k]);
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->peer,
                      sizeof(c->peer));
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
                      c->peer, sizeof(c->peer));
        c->xml = kn_xml_new(&cs->srv->scf.limits, KN_NS_COMPONENT);
        ev_io_init(&c->rio, comp_on_read, fd, EV_READ);
        c->rio.data = c;
        ev_io_init(&c->wio, comp_on_write, fd, EV_WRITE);
        c->wio.data = c;
        ev_init(&c->throttle, comp_on_throttle);
        c->throttle.data = c;
        c2s_bucket_init(&c->rate_bytes, HUGE_VAL, ev_now(loop));
        c2s_bucket_init(&c->rate_stanzas, HUGE_VAL, ev_now(loop));
        ev_io_start(loop, &c->rio);
        c->next = cs->conns;
        cs->conns = c;
    }
}

int c2s_comp_start(c2s_server_t *srv)
{
    const c2s_conf_t *cf = srv->conf;
    if (cf->component_port <= 0 || srv->comps != NULL)
        return 0;
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cf->bind, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)cf->component_port);
        sl = sizeof(*in);
    } else if (inet_pton(AF_INET6, cf->bind, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)cf->component_port);
        sl = sizeof(*in6);
    } else {
        return -KN_EINVAL;
    }
    int fd =
        socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -KN_EIO;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0) {
        kn_log_err("c2s: cannot listen for components on %s port %lld: %s",
                   cf->bind, cf->component_port, strerror(errno));
        close(fd);
        return -KN_EIO;
    }
    c2s_comps_t *cs = kn_calloc(1, sizeof(*cs));
    cs->srv = srv;
    cs->lfd = fd;
    ev_io_init(&cs->lio, comp_on_accept, fd, EV_READ);
    cs->lio.data = cs;
    ev_io_start(srv->loop, &cs->lio);
    ev_prepare_init(&cs->reap, comp_on_reap);
    cs->reap.data = cs;
    ev_prepare_start(srv->loop, &cs->reap);
    ev_unref(srv->loop); /* the reaper alone does not keep the loop alive */
    srv->comps = cs;
    kn_log_info("c2s: listening for components on %s port %lld (%zu "
                "configured)",
                cf->bind, cf->component_port, cf->ncomponents);
    return 0;
}

void c2s_comp_on_ready(c2s_server_t *srv)
{
    c2s_comps_t *cs = srv->comps;
    for (comp_conn_t *c = cs ? cs->conns : NULL; c; c = c->next)
        if (c->state == COMP_ST_READY)
            comp_register(c, true);
}

static void comp_on_router_stanza(comp_conn_t *c, const kn_env_t *env,
                                  const void *pl, size_t len)
{
    kn_stanza_t *st = NULL;
    if (kn_xml_parse_stanza(pl, len, KN_NS_CLIENT, &st) < 0)
        return;
    if (env->kind == KN_ENV_BOUNCE) {
        if (env->seq < KN_STE_COUNT_)
            comp_reply_error(c, st, (kn_stanza_err_t)env->seq);
    } else {
        comp_write_stanza(c, st);
    }
    kn_stanza_unref(&st);
    if (c->out.len - c->out_off > (size_t)c->cs->srv->conf->out_buffer_max) {
        /* The component does not read: as for a slow client. */
        comp_close(c, KN_SE_RESOURCE_CONSTRAINT, NULL);
        return;
    }
    comp_output(c);
}

bool c2s_comp_on_message(c2s_server_t *srv, const kn_env_t *env, const void *pl,
                         size_t len)
{
    if ((env->kind != KN_ENV_STANZA && env->kind != KN_ENV_BOUNCE) ||
        !c2s_comp_is_conn(env->conn_id))
        return false;
    comp_conn_t *c = srv->comps ? comp_find(srv->comps, env->conn_id) : NULL;
    if (c != NULL && c->state == COMP_ST_READY) {
        comp_on_router_stanza(c, env, pl, len);
        return true;
    }
    kn_env_t e;
    if (env->kind == KN_ENV_STANZA && c2s_reroute_env(env, &e)) {
        int rc = kn_link_send(srv->link, &e, pl, len);
        if (rc < 0)
            kn_log_warn("c2s: reroute for a gone component failed: %s",
                        kn_strerror(rc));
    }
    return true;
}

void c2s_comp_stop(c2s_server_t *srv)
{
    c2s_comps_t *cs = srv->comps;
    if (cs == NULL)
        return;
    for (comp_conn_t *c = cs->conns; c; c = c->next)
        comp_close(c, KN_SE_SYSTEM_SHUTDOWN, NULL);
    comp_on_reap(srv->loop, &cs->reap, 0);
    ev_io_stop(srv->loop, &cs->lio);
    close(cs->lfd);
    ev_ref(srv->loop);
    ev_prepare_stop(srv->loop, &cs->reap);
    kn_buf_free(&cs->scratch);
    free(cs);
    srv->comps = NULL;
}
