/*
 * load_conn.c - the client connection state machine (load_conn.h).
 *
 * I/O: one read watcher, always active while the socket is open, and one
 * write watcher armed only while the socket (or TLS) would block. Output
 * is appended to c->out and the connection is put on the client's flush
 * list; an ev_prepare watcher writes every listed connection before the
 * loop sleeps, so a burst of stanzas for one connection costs one
 * SSL_write. Input is read into the client's shared scratch buffer and
 * appended to c->in; complete elements are processed and consumed, so
 * c->in only ever holds a partial element and is freed when empty, which
 * keeps idle connections small.
 *
 * Invariant: state IDLE <=> fd == -1 and ssl == NULL. A connection on the
 * flush list may become IDLE (and even reconnect) before the list is
 * drained: the drain checks the state, and in_flush stays true until the
 * drain unlinks it, so the list is never corrupted.
 */
#include "load_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "kn_err.h"
#include "kn_mem.h"

#define CONN_MAX_ELEMENT (1u << 20)
#define CONN_KEEP_BUF    4096

static const char *const conn_state_names[] = {
    "idle",          "connecting",    "ws-upgrade",    "stream-features",
    "starttls",      "tls-handshake", "sasl-features", "sasl",
    "bind-features", "bind",          "session",       "roster",
    "online",        "closing",
};

const char *load_conn_state_name(int state)
{
    if (state < 0 || (size_t)state >= KN_ARRAY_LEN(conn_state_names))
        return "?";
    return conn_state_names[state];
}

static void conn_teardown(load_conn_t *c)
{
    ev_io_stop(c->cl->loop, &c->rio);
    ev_io_stop(c->cl->loop, &c->wio);
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    kn_buf_free(&c->in);
    kn_buf_free(&c->out);
    kn_buf_free(&c->wsin);
    c->ws_framed = false;
    load_scram_clear(&c->scram);
    c->state = LOAD_CONN_IDLE;
    c->restart = false;
}

void load_conn_abort(load_conn_t *c, int err, const char *why)
{
    if (c->state == LOAD_CONN_IDLE)
        return;
    conn_teardown(c);
    c->cl->on_closed(c, err, why);
}

static void conn_failf(load_conn_t *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void conn_failf(load_conn_t *c, int err, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    load_conn_abort(c, err, why);
}

#define WS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"

static void conn_want_flush(load_conn_t *c);

/* One RFC 6455 frame, client to server: FIN, opcode, masked. The mask
 * key is zero (XOR with it is the identity): the server must accept any
 * key, and this is a load tool, not a browser. */

static void ws_frame(kn_buf_t *out, int opcode, const char *data, size_t len)
{
    uint8_t h[14];
    size_t hl = 0;
    h[hl++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        h[hl++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (uint8_t)(len >> 8);
        h[hl++] = (uint8_t)len;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    memset(h + hl, 0, 4);
    hl += 4;
    kn_buf_append(out, h, hl);
    kn_buf_append(out, data, len);
}

void load_conn_send(load_conn_t *c, const char *data, size_t len)
{
    if (c->state == LOAD_CONN_IDLE)
        return;
    if (c->ws_framed) {
        if (len == 16 && memcmp(data, "</stream:stream>", 16) == 0) {
            static const char cl[] = "<close xmlns='" WS_FRAMING "'/>";
            ws_frame(&c->out, 1, cl, sizeof(cl) - 1);
        } else {
            ws_frame(&c->out, 1, data, len);
        }
    } else {
        kn_buf_append(&c->out, data, len);
    }
    conn_want_flush(c);
}

static void conn_want_flush(load_conn_t *c)
{
    if (!c->in_flush) {
        c->in_flush = true;
        c->flush_next = c->cl->flush_head;
        c->cl->flush_head = c;
    }
}

static void conn_send_str(load_conn_t *c, const char *s)
{
    load_conn_send(c, s, strlen(s));
}

/* Write as much of c->out as the socket takes. 0, or -1 after abort. */
static int conn_flush(load_conn_t *c)
{
    while (c->out.len > 0) {
        ssize_t n;
        if (c->ssl != NULL) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, c->out.data, (int)c->out.len);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    ev_io_start(c->cl->loop, &c->wio);
                    return 0;
                }
                conn_failf(c, -KN_EIO, "TLS write failed (%s)",
                           e == SSL_ERROR_SYSCALL ? strerror(errno)
                                                  : "ssl error");
                return -1;
            }
            n = r;
        } else {
            n = write(c->fd, c->out.data, c->out.len);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    ev_io_start(c->cl->loop, &c->wio);
                    return 0;
                }
                conn_failf(c, -KN_EIO, "write failed: %s", strerror(errno));
                return -1;
            }
        }
        kn_buf_consume(&c->out, (size_t)n);
    }
    if (c->out.cap > CONN_KEEP_BUF)
        kn_buf_free(&c->out);
    ev_io_stop(c->cl->loop, &c->wio);
    return 0;
}

static void client_flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(revents);
    load_client_t *cl = w->data;
    while (cl->flush_head != NULL) {
        load_conn_t *c = cl->flush_head;
        cl->flush_head = c->flush_next;
        c->in_flush = false;
        c->flush_next = NULL;
        /* Before the TLS handshake ends, output waits (only the
         * handshake itself writes). */
        if (c->state != LOAD_CONN_IDLE && c->state != LOAD_CONN_CONNECTING &&
            c->state != LOAD_CONN_HANDSHAKE)
            conn_flush(c);
    }
}

static void conn_stream_open(load_conn_t *c)
{
    char hdr[512];
    if (c->ws_framed) {
        snprintf(hdr, sizeof(hdr),
                 "<open xmlns='" WS_FRAMING "' to='%s' version='1.0'/>",
                 c->cl->opts->domain);
        load_xml_reset(&c->xml, CONN_MAX_ELEMENT);
        conn_send_str(c, hdr);
        return;
    }
    snprintf(hdr, sizeof(hdr),
             "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='%s' "
             "version='1.0'>",
             c->cl->opts->domain);
    load_xml_reset(&c->xml, CONN_MAX_ELEMENT);
    conn_send_str(c, hdr);
}

static void conn_user_pass(load_conn_t *c, char *user, size_t usz, char *pass,
                           size_t psz)
{
    const load_opts_t *o = c->cl->opts;
    load_fmt_user(user, usz, o->user_fmt, c->user);
    if (o->password_fmt != NULL)
        load_fmt_user(pass, psz, o->password_fmt, c->user);
    else
        snprintf(pass, psz, "%s", user);
}

/* --ws: the HTTP upgrade request (RFC 6455 4.1, RFC 7395 3.3). */
static void ws_upgrade(load_conn_t *c)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET /xmpp-websocket HTTP/1.1\r\nHost: %s\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: xmpp\r\n\r\n",
                     c->cl->opts->domain);
    c->state = LOAD_CONN_WS_UPGRADE;
    kn_buf_reset(&c->in);
    load_conn_send(c, req, (size_t)n);
}

/* --ws: whole frames from c->wsin to c->in (text), answering pings.
 * 0, or -1 when the server closed the WebSocket. */
static int ws_unframe(load_conn_t *c)
{
    static const char open_hdr[] =
        "<stream:stream xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams'>";
    size_t off = 0;
    int rc = 0;
    const uint8_t *p = (const uint8_t *)c->wsin.data;
    while (c->wsin.len - off >= 2) {
        const uint8_t *f = p + off;
        size_t avail = c->wsin.len - off, hl = 2;
        uint64_t len = f[1] & 0x7f;
        if (len == 126) {
            if (avail < 4)
                break;
            len = ((uint64_t)f[2] << 8) | f[3];
            hl = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | f[2 + i];
            hl = 10;
        }
        if (f[1] & 0x80)
            hl += 4; /* a server must not mask; skip the key anyway */
        if (avail < hl || avail - hl < len)
            break;
        const char *d = (const char *)f + hl;
        int op = f[0] & 0x0f;
        if (op == 1 || op == 0) {
            if (op == 1 && len >= 5 && memcmp(d, "<open", 5) == 0)
                kn_buf_append(&c->in, open_hdr, sizeof(open_hdr) - 1);
            else if (op == 1 && len >= 6 && memcmp(d, "<close", 6) == 0)
                kn_buf_append_str(&c->in, "</stream:stream>");
            else
                kn_buf_append(&c->in, d, (size_t)len);
        } else if (op == 9) {
            ws_frame(&c->out, 10, d, (size_t)len);
            conn_want_flush(c);
        } else if (op == 8) {
            rc = -1;
        }
        off += hl + (size_t)len;
    }
    kn_buf_consume(&c->wsin, off);
    if (c->wsin.len == 0 && c->wsin.cap > CONN_KEEP_BUF)
        kn_buf_free(&c->wsin);
    return rc;
}

static void conn_handshake(load_conn_t *c)
{
    ERR_clear_error();
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        ev_io_stop(c->cl->loop, &c->wio);
        if (c->cl->opts->ws) {
            ws_upgrade(c);
            return;
        }
        c->state = LOAD_CONN_FEATURES_TLS;
        conn_stream_open(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        ev_io_stop(c->cl->loop, &c->wio);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        ev_io_start(c->cl->loop, &c->wio);
        return;
    }
    char buf[160];
    unsigned long ec = ERR_get_error();
    ERR_error_string_n(ec, buf, sizeof(buf));
    conn_failf(c, -KN_EIO, "TLS handshake failed: %s",
               ec ? buf
                  : (e == SSL_ERROR_SYSCALL ? "connection reset" : "closed"));
}

static void conn_start_tls(load_conn_t *c)
{
    c->ssl = SSL_new(c->cl->ssl_ctx);
    if (c->ssl == NULL) {
        conn_failf(c, -KN_EIO, "SSL_new failed");
        return;
    }
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, c->cl->opts->domain);
    c->state = LOAD_CONN_HANDSHAKE;
    kn_buf_reset(&c->in);
    conn_handshake(c);
}

/* Text of <text> or the first child name of a stream error or failure. */
static void conn_describe(const char *el, size_t len, char *out, size_t osz)
{
    size_t tl;
    const char *t = load_xml_child_text(el, len, "text", &tl);
    const char *gt = memchr(el, '>', len);
    const char *child =
        gt && gt[-1] != '/' ? memchr(gt, '<', len - (size_t)(gt - el)) : NULL;
    size_t cl = 0;
    if (child != NULL) {
        child++;
        while (child + cl < el + len && child[cl] != ' ' && child[cl] != '/' &&
               child[cl] != '>')
            cl++;
    }
    snprintf(out, osz, "%.*s%s%.*s", (int)cl, child ? child : "", t ? ": " : "",
             t ? (int)(tl > 120 ? 120 : tl) : 0, t ? t : "");
}

static void conn_send_sasl(load_conn_t *c, const char *el, size_t len)
{
    const load_opts_t *o = c->cl->opts;
    char user[256], pass[256];
    conn_user_pass(c, user, sizeof(user), pass, sizeof(pass));
    kn_buf_t b64 = KN_BUF_INIT, st = KN_BUF_INIT;
    if (o->sasl == LOAD_SASL_SCRAM) {
        if (!load_xml_has(el, len, ">SCRAM-SHA-1<")) {
            conn_failf(c, -KN_EAUTH, "server offers no SCRAM-SHA-1");
            return;
        }
        load_scram_start(&c->scram, user, pass, &c->keys, NULL, &b64);
        kn_buf_printf(&st,
                      "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                      "mechanism='SCRAM-SHA-1'>%s</auth>",
                      b64.data);
    } else {
        if (!load_xml_has(el, len, ">PLAIN<")) {
            conn_failf(c, -KN_EAUTH, "server offers no PLAIN");
            return;
        }
        load_sasl_plain(user, pass, &b64);
        kn_buf_printf(&st,
                      "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                      "mechanism='PLAIN'>%s</auth>",
                      b64.data);
    }
    c->state = LOAD_CONN_SASL;
    load_conn_send(c, st.data, st.len);
    kn_buf_free(&b64);
    kn_buf_free(&st);
}

static void conn_on_sasl(load_conn_t *c, const char *el, size_t len)
{
    bool scram = c->cl->opts->sasl == LOAD_SASL_SCRAM;
    size_t tl = 0;
    const char *t;
    if (load_xml_is(el, len, "challenge")) {
        t = memchr(el, '>', len);
        t = (t && t[-1] != '/') ? t + 1 : NULL;
        const char *lt = t ? memchr(t, '<', len - (size_t)(t - el)) : NULL;
        tl = lt ? (size_t)(lt - t) : 0;
        if (!scram) {
            conn_failf(c, -KN_EPROTO, "unexpected SASL challenge");
            return;
        }
        if (c->scram.stage == 0) {
            kn_buf_t b64 = KN_BUF_INIT, st = KN_BUF_INIT;
            if (t == NULL || load_scram_step(&c->scram, t, tl, &b64) < 0) {
                conn_failf(c, -KN_EAUTH, "bad SCRAM server-first message");
                return;
            }
            kn_buf_printf(&st,
                          "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'"
                          ">%s</response>",
                          b64.data);
            load_conn_send(c, st.data, st.len);
            kn_buf_free(&b64);
            kn_buf_free(&st);
            return;
        }
        /* Some servers send server-final as a challenge (RFC 6120
         * 6.3.10 allows it) and wait for an empty response. */
        if (t == NULL || load_scram_verify(&c->scram, t, tl) < 0) {
            conn_failf(c, -KN_EAUTH, "SCRAM server signature mismatch");
            return;
        }
        conn_send_str(c, "<response "
                         "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        return;
    }
    if (load_xml_is(el, len, "success")) {
        if (scram && c->scram.stage == 1) {
            t = memchr(el, '>', len);
            t = (t && t[-1] != '/') ? t + 1 : NULL;
            const char *lt = t ? memchr(t, '<', len - (size_t)(t - el)) : NULL;
            tl = lt ? (size_t)(lt - t) : 0;
            if (t == NULL || tl == 0 ||
                load_scram_verify(&c->scram, t, tl) < 0) {
                conn_failf(c, -KN_EAUTH,
                           "SCRAM server signature missing "
                           "or wrong in <success/>");
                return;
            }
        }
        load_scram_clear(&c->scram);
        c->state = LOAD_CONN_FEATURES_AUTH;
        c->restart = true;
        conn_stream_open(c);
        return;
    }
    if (load_xml_is(el, len, "failure")) {
        char why[200];
        conn_describe(el, len, why, sizeof(why));
        conn_failf(c, -KN_EAUTH, "SASL failure: %s", why);
        return;
    }
    conn_failf(c, -KN_EPROTO, "unexpected element during SASL: %.40s", el);
}

/* Session is needed when advertised without <optional/> (RFC 3921). */
static bool conn_session_required(const char *el, size_t len)
{
    const char *s = memmem(el, len, "<session", 8);
    if (s == NULL)
        return false;
    const char *end = el + len;
    const char *gt = memchr(s, '>', (size_t)(end - s));
    if (gt == NULL || gt[-1] == '/')
        return true;
    const char *close = memmem(gt, (size_t)(end - gt), "</session>", 10);
    if (close == NULL)
        return true;
    return memmem(gt, (size_t)(close - gt), "<optional", 9) == NULL;
}

static bool conn_iq_result(const char *el, size_t len, const char *id,
                           const char **err)
{
    size_t vl, il;
    const char *type = load_xml_attr(el, len, "type", &vl);
    const char *iid = load_xml_attr(el, len, "id", &il);
    *err = NULL;
    if (!load_xml_is(el, len, "iq") || iid == NULL || il != strlen(id) ||
        memcmp(iid, id, il) != 0 || type == NULL)
        return false;
    if (vl == 5 && memcmp(type, "error", 5) == 0)
        *err = "error";
    return true;
}

static void conn_send_roster_get(load_conn_t *c)
{
    c->state = LOAD_CONN_ROSTER;
    conn_send_str(c, "<iq type='get' id='r1'><query "
                     "xmlns='jabber:iq:roster'/></iq>");
}

/* Answer a server's iq get/set (roster push, ping) so it never waits. */
static bool conn_answer_iq(load_conn_t *c, const char *el, size_t len)
{
    size_t tl, il, fl;
    const char *type = load_xml_attr(el, len, "type", &tl);
    if (type == NULL || !((tl == 3 && memcmp(type, "get", 3) == 0) ||
                          (tl == 3 && memcmp(type, "set", 3) == 0)))
        return false;
    const char *id = load_xml_attr(el, len, "id", &il);
    const char *from = load_xml_attr(el, len, "from", &fl);
    char buf[600];
    int n = snprintf(buf, sizeof(buf), "<iq type='result' id='%.*s'%s%.*s%s/>",
                     id ? (int)(il > 200 ? 200 : il) : 0, id ? id : "",
                     from ? " to='" : "", from ? (int)(fl > 300 ? 300 : fl) : 0,
                     from ? from : "", from ? "'" : "");
    load_conn_send(c, buf, (size_t)n);
    return true;
}

static void conn_element(load_conn_t *c, const char *el, size_t len)
{
    const char *err;
    if (load_xml_is(el, len, "stream:error")) {
        char why[200];
        conn_describe(el, len, why, sizeof(why));
        conn_failf(c, c->state < LOAD_CONN_ONLINE ? -KN_EAUTH : -KN_EPROTO,
                   "stream error: %s", why);
        return;
    }
    switch (c->state) {
    case LOAD_CONN_FEATURES_PLAIN:
        if (!load_xml_is(el, len, "stream:features"))
            break;
        if (!load_xml_has(el, len, "<starttls")) {
            conn_failf(c, -KN_EPROTO, "server offers no STARTTLS");
            return;
        }
        c->state = LOAD_CONN_STARTTLS;
        conn_send_str(c, "<starttls "
                         "xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        return;
    case LOAD_CONN_STARTTLS:
        if (!load_xml_is(el, len, "proceed")) {
            conn_failf(c, -KN_EPROTO, "STARTTLS refused");
            return;
        }
        c->restart = true; /* conn_process drops the rest of c->in */
        return;
    case LOAD_CONN_FEATURES_TLS:
        if (load_xml_is(el, len, "stream:features"))
            conn_send_sasl(c, el, len);
        return;
    case LOAD_CONN_SASL:
        conn_on_sasl(c, el, len);
        return;
    case LOAD_CONN_FEATURES_AUTH:
        if (!load_xml_is(el, len, "stream:features"))
            break;
        if (!load_xml_has(el, len, "<bind")) {
            conn_failf(c, -KN_EPROTO, "server offers no resource binding");
            return;
        }
        c->session = conn_session_required(el, len);
        c->state = LOAD_CONN_BIND;
        {
            char buf[300];
            int n = snprintf(buf, sizeof(buf),
                             "<iq type='set' id='b1'><bind "
                             "xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                             "<resource>%s</resource></bind></iq>",
                             c->cl->opts->resource);
            load_conn_send(c, buf, (size_t)n);
        }
        return;
    case LOAD_CONN_BIND:
        if (!conn_iq_result(el, len, "b1", &err))
            break;
        if (err != NULL) {
            conn_failf(c, -KN_EAUTH, "resource bind refused");
            return;
        }
        {
            size_t jl;
            const char *jid = load_xml_child_text(el, len, "jid", &jl);
            kn_free(&c->jid);
            if (jid == NULL) {
                conn_failf(c, -KN_EPROTO, "bind result without a JID");
                return;
            }
            c->jid = kn_strndup(jid, jl);
        }
        if (c->session) {
            c->state = LOAD_CONN_SESSION;
            conn_send_str(c, "<iq type='set' id='s1'><session "
                             "xmlns='urn:ietf:params:xml:ns:xmpp-session'/>"
                             "</iq>");
            return;
        }
        conn_send_roster_get(c);
        return;
    case LOAD_CONN_SESSION:
        if (!conn_iq_result(el, len, "s1", &err))
            break;
        if (err != NULL) {
            conn_failf(c, -KN_EAUTH, "session establishment refused");
            return;
        }
        conn_send_roster_get(c);
        return;
    case LOAD_CONN_ROSTER:
        if (!conn_iq_result(el, len, "r1", &err))
            break;
        if (err != NULL) {
            conn_failf(c, -KN_EPROTO, "roster get refused");
            return;
        }
        c->state = LOAD_CONN_ONLINE;
        conn_send_str(c, "<presence/>");
        c->cl->on_online(c);
        return;
    case LOAD_CONN_ONLINE:
        if (load_xml_is(el, len, "iq") && conn_answer_iq(c, el, len))
            return;
        c->cl->on_stanza(c, el, len);
        return;
    default:
        return;
    }
    /* Anything else before online: answer iqs, ignore the rest. */
    if (load_xml_is(el, len, "iq"))
        conn_answer_iq(c, el, len);
}

/* Scan c->in for complete elements and act on each. */
static void conn_process(load_conn_t *c)
{
    size_t done = 0;
    for (;;) {
        size_t s, e;
        int ev = load_xml_next(&c->xml, c->in.data, c->in.len, &s, &e);
        if (ev == LOAD_XML_MORE)
            break;
        if (ev == LOAD_XML_ERROR) {
            conn_failf(c, -KN_EPROTO, "unparsable or oversized input");
            return;
        }
        if (ev == LOAD_XML_CLOSE) {
            if (c->state == LOAD_CONN_CLOSING) {
                conn_teardown(c);
                c->cl->on_closed(c, 0, NULL);
            } else {
                conn_failf(c, -KN_ECLOSED, "server closed the stream (%s)",
                           load_conn_state_name(c->state));
            }
            return;
        }
        done = e;
        if (ev == LOAD_XML_OPEN)
            continue;
        conn_element(c, c->in.data + s, e - s);
        if (c->state == LOAD_CONN_IDLE)
            return;
        if (c->restart) {
            c->restart = false;
            if (c->state == LOAD_CONN_STARTTLS) {
                if (c->in.len > e) {
                    conn_failf(c, -KN_EPROTO, "data after <proceed/>");
                    return;
                }
                conn_start_tls(c);
                return;
            }
            kn_buf_consume(&c->in, e);
            done = 0;
        }
    }
    if (done > 0) {
        kn_buf_consume(&c->in, done);
        load_xml_shift(&c->xml, done);
    }
    if (c->in.len == 0 && c->in.cap > CONN_KEEP_BUF)
        kn_buf_free(&c->in);
}

static void conn_read(load_conn_t *c)
{
    load_client_t *cl = c->cl;
    for (;;) {
        ssize_t n;
        if (c->ssl != NULL) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, cl->scratch, (int)sizeof(cl->scratch));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ)
                    break;
                if (e == SSL_ERROR_WANT_WRITE) {
                    ev_io_start(cl->loop, &c->wio);
                    break;
                }
                if (c->state == LOAD_CONN_CLOSING) {
                    conn_teardown(c);
                    cl->on_closed(c, 0, NULL);
                } else {
                    conn_failf(c, -KN_ECLOSED,
                               "connection closed by server (%s)",
                               load_conn_state_name(c->state));
                }
                return;
            }
            n = r;
        } else {
            n = read(c->fd, cl->scratch, sizeof(cl->scratch));
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (n <= 0) {
                if (c->state == LOAD_CONN_CLOSING) {
                    conn_teardown(c);
                    cl->on_closed(c, 0, NULL);
                    return;
                }
                conn_failf(c, -KN_ECLOSED, "connection %s (%s)",
                           n == 0 ? "closed by server" : strerror(errno),
                           load_conn_state_name(c->state));
                return;
            }
        }
        int st = c->state;
        if (st == LOAD_CONN_WS_UPGRADE) {
            kn_buf_append(&c->in, cl->scratch, (size_t)n);
            const char *eoh = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
            if (eoh == NULL)
                continue;
            if (c->in.len < 12 || memcmp(c->in.data + 9, "101", 3) != 0) {
                conn_failf(c, -KN_EAUTH, "WebSocket upgrade refused: %.40s",
                           c->in.data);
                return;
            }
            size_t head = (size_t)(eoh + 4 - c->in.data);
            kn_buf_append(&c->wsin, c->in.data + head, c->in.len - head);
            kn_buf_reset(&c->in);
            c->ws_framed = true;
            c->state = LOAD_CONN_FEATURES_TLS; /* no STARTTLS in WebSocket */
            conn_stream_open(c);
        } else if (c->ws_framed) {
            kn_buf_append(&c->wsin, cl->scratch, (size_t)n);
        } else {
            kn_buf_append(&c->in, cl->scratch, (size_t)n);
        }
        if (c->ws_framed && ws_unframe(c) < 0 && c->in.len == 0) {
            if (c->state == LOAD_CONN_CLOSING) {
                conn_teardown(c);
                cl->on_closed(c, 0, NULL);
            } else {
                conn_failf(c, -KN_ECLOSED, "WebSocket closed by server (%s)",
                           load_conn_state_name(c->state));
            }
            return;
        }
        conn_process(c);
        if (c->state == LOAD_CONN_IDLE || c->state == LOAD_CONN_HANDSHAKE)
            return;
        /* After STARTTLS the plain socket must not be read further. */
        if (st == LOAD_CONN_STARTTLS && c->ssl != NULL)
            return;
    }
}

static void conn_connected(load_conn_t *c)
{
    int err = 0;
    socklen_t el = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0) {
        conn_failf(c, -KN_EIO, "connect to port %d failed: %s",
                   ntohs(c->dst.sin_port), strerror(err));
        return;
    }
    ev_io_stop(c->cl->loop, &c->wio);
    ev_io_start(c->cl->loop, &c->rio);
    if (c->cl->opts->direct_tls) {
        conn_start_tls(c);
        return;
    }
    if (c->cl->opts->ws) {
        ws_upgrade(c);
        return;
    }
    c->state = LOAD_CONN_FEATURES_PLAIN;
    conn_stream_open(c);
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    KN_UNUSED(loop);
    load_conn_t *c = w->data;
    if (c->state == LOAD_CONN_CONNECTING) {
        conn_connected(c);
        return;
    }
    if (c->state == LOAD_CONN_HANDSHAKE) {
        conn_handshake(c);
        if (c->state == LOAD_CONN_FEATURES_TLS ||
            c->state == LOAD_CONN_WS_UPGRADE)
            conn_flush(c);
        return;
    }
    if (revents & EV_WRITE) {
        if (conn_flush(c) < 0)
            return;
        if (c->ssl != NULL)
            conn_read(c); /* a read may have waited for this write */
        return;
    }
    if (revents & EV_READ)
        conn_read(c);
}

void load_conn_login(load_conn_t *c)
{
    KN_ASSERT(c->state == LOAD_CONN_IDLE);
    load_client_t *cl = c->cl;
    c->t_start = load_now_ns();
    c->joined = false;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = LOAD_CONN_CONNECTING;
        conn_failf(c, -KN_EIO, "socket: %s", strerror(errno));
        return;
    }
    c->state = LOAD_CONN_CONNECTING;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
#ifdef IP_BIND_ADDRESS_NO_PORT
    /* Pick the port at connect() time, per destination, so source
     * addresses multiply the usable ports. */
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
    if (c->src.sin_addr.s_addr != 0 &&
        bind(c->fd, (struct sockaddr *)&c->src, sizeof(c->src)) < 0) {
        conn_failf(c, -KN_EIO, "bind to source %s: %s",
                   inet_ntoa(c->src.sin_addr), strerror(errno));
        return;
    }
    ev_io_init(&c->rio, conn_io_cb, c->fd, EV_READ);
    ev_io_init(&c->wio, conn_io_cb, c->fd, EV_WRITE);
    c->rio.data = c->wio.data = c;
    if (connect(c->fd, (struct sockaddr *)&c->dst, sizeof(c->dst)) < 0 &&
        errno != EINPROGRESS) {
        conn_failf(c, -KN_EIO, "connect to port %d: %s", ntohs(c->dst.sin_port),
                   strerror(errno));
        return;
    }
    ev_io_start(cl->loop, &c->wio);
}

void load_conn_logout(load_conn_t *c)
{
    if (c->state == LOAD_CONN_IDLE || c->state == LOAD_CONN_CLOSING)
        return;
    c->t_start = load_now_ns();
    if (c->state == LOAD_CONN_ONLINE)
        conn_send_str(c, "<presence type='unavailable'/>");
    conn_send_str(c, "</stream:stream>");
    c->state = LOAD_CONN_CLOSING;
}

int load_client_init(load_client_t *cl, struct ev_loop *loop,
                     const load_opts_t *opts)
{
    cl->loop = loop;
    cl->opts = opts;
    cl->flush_head = NULL;
    cl->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (cl->ssl_ctx == NULL) {
        fprintf(stderr, "kiln-load: SSL_CTX_new failed\n");
        return -KN_EIO;
    }
    /* A load test of the server, not of certificate validation: the
     * benchmark servers use a self-signed certificate. */
    SSL_CTX_set_verify(cl->ssl_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(cl->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                      SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(cl->ssl_ctx, SSL_SESS_CACHE_OFF);
    ev_prepare_init(&cl->flush_watcher, client_flush_cb);
    cl->flush_watcher.data = cl;
    ev_prepare_start(loop, &cl->flush_watcher);
    return 0;
}

void load_client_free(load_client_t *cl)
{
    ev_prepare_stop(cl->loop, &cl->flush_watcher);
    SSL_CTX_free(cl->ssl_ctx);
    cl->ssl_ctx = NULL;
}
