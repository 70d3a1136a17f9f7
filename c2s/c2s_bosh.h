/*
 * c2s_bosh.h - XMPP over BOSH (XEP-0124, XEP-0206) as a c2s transport.
 *
 * A BOSH session is an ordinary c2s connection (c2s_conn.c: the same
 * stream, SASL, bind, routing, limits, idle policy) without a socket of
 * its own: its transport reads the stanzas the client POSTed and writes
 * the stream's output into the answers to the requests it holds. The
 * stream runs framed (C2S_STREAM_F_FRAMED), as for WebSocket, so its
 * output is a run of whole elements; <open/> is dropped, <close/> turns
 * into type='terminate'.
 *
 * The session lives on the node that created it (its sid is only in this
 * node's table); a request for an unknown sid, on any node, gets
 * <body type='terminate' condition='item-not-found'/>.
 *
 * Requests are processed in rid order: a request ahead of the next rid
 * (within the window of `requests`) waits for the ones before it; a rid
 * already answered gets the same answer again (the last `requests`
 * answers are kept); a rid outside the window ends the session with
 * item-not-found. At most `hold` requests are held; the oldest is
 * answered first, with whatever output there is, at the latest after
 * `wait` seconds. With no request held for `inactivity` seconds the
 * session ends like a dropped connection (R-WEB-2): contacts get
 * unavailable.
 */
#ifndef C2S_BOSH_H
#define C2S_BOSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kn_buf.h"

#define C2S_NS_HTTPBIND       "http://jabber.org/protocol/httpbind"
#define C2S_NS_XBOSH          "urn:xmpp:xbosh"
#define C2S_BOSH_MAX_REQUESTS 8

/* The attributes of a <body/> a handler looks at, and its children as
 * the raw bytes the client sent. */
typedef struct c2s_bosh_body {
    uint64_t rid;
    bool has_rid;
    char sid[64];
    char to[256];
    char type[16];    /* "terminate" or "" */
    char ver[16];     /* "" when absent */
    long wait, hold;  /* -1 when absent */
    bool restart;     /* xmpp:restart='true' */
    kn_buf_t payload; /* the children, as sent */
} c2s_bosh_body_t;

/* Parse one request body. Returns 0, or -KN_EPROTO (not XML, not a
 * {http://jabber.org/protocol/httpbind}body, a bad number). Pure. Free
 * out->payload with kn_buf_free(). */
int c2s_bosh_parse(const char *data, size_t len, c2s_bosh_body_t *out);

struct c2s_server;
struct c2s_http;
typedef struct c2s_bosh c2s_bosh_t;

/* A POST to /http-bind on HTTP connection h (body borrowed for the
 * call). The answer comes through c2s_http_bosh_answer(h, ...), now or
 * later; secure: SASL may be offered (as for WebSocket); sa: the
 * client's address (per-address SASL failure delay). */
void c2s_bosh_request(struct c2s_server *srv, struct c2s_http *h,
                      const char *body, size_t len, bool secure,
                      const struct sockaddr *sa);

/* HTTP connection h, holding a request of session b, went away. */
void c2s_bosh_forget(c2s_bosh_t *b, struct c2s_http *h);

/* Answer the requests held past `hold` (the ev_prepare, after the
 * connections' output went out). */
void c2s_bosh_settle(struct c2s_server *srv);

/* ---- c2s_http.c: answering a held request ---------------------------------
 */

/* Answer h's BOSH request: 200, text/xml. Clears h's session link. */
void c2s_http_bosh_answer(struct c2s_http *h, const char *body, size_t len);
/* Refuse it with an HTTP status (400: not a BOSH body). */
void c2s_http_bosh_refuse(struct c2s_http *h, int status, const char *why);
/* Link h to the session holding its request (NULL: none). */
void c2s_http_bosh_link(struct c2s_http *h, c2s_bosh_t *b);

#endif
