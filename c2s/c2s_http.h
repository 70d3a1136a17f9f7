/*
 * c2s_http.h - the HTTP/1.1 side of a c2s node: requests parsed by
 * libhttp-parser, answered from c2s_http_proto.c (bytes in, response
 * bytes and an action out: no sockets, so a unit test feeds canned
 * requests), and carried by c2s_http.c (socket, TLS on the HTTPS port,
 * keep-alive, the idle deadline, the hand-over of an upgraded WebSocket
 * to c2s_conn.c).
 *
 * Routes:
 *   GET /xmpp-websocket, GET /ws   RFC 7395 upgrade (101), else 4xx
 *   GET /.well-known/host-meta[.json]   XEP-0156 (CORS: any origin)
 *   GET /chat/...                  files of c2s.web_root (404 when unset)
 *   POST /http-bind                BOSH (XEP-0124/0206, c2s_bosh.c)
 *   PUT, GET /upload/...           XEP-0363 files (c2s_upload.c)
 *   OPTIONS *                      CORS preflight
 *   anything else                  404; a known path with a wrong method
 *                                  405; oversized head 431, body 413;
 *                                  unparsable 400 (then the connection
 *                                  closes)
 */
#ifndef C2S_HTTP_H
#define C2S_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>

#include "c2s_upload.h"
#include "kn_buf.h"

/* Settings of a node's HTTP side (borrowed strings; outlive the users). */
typedef struct c2s_http_conf {
    const char *origins;  /* c2s.ws_origins: "", "*", or a comma list */
    const char *ws_url;   /* "" : derived from Host */
    const char *bosh_url; /* "" : derived from Host */
    const char *web_root; /* "" : no /chat/ */
    size_t max_header;
    size_t max_body;
    const c2s_upload_conf_t *upload; /* NULL: no /upload/ */
} c2s_http_conf_t;

typedef enum c2s_http_act {
    C2S_HTTP_MORE = 0, /* send the output, read the next request */
    C2S_HTTP_CLOSE,    /* send the output, then close */
    C2S_HTTP_UPGRADE,  /* send the output (101), then the bytes after
                        * *used are the client's first WebSocket bytes */
    C2S_HTTP_BOSH,     /* a POST to /http-bind in h->body: hand it to
                        * c2s_bosh.c, which answers through
                        * c2s_http_proto_answer(); then feed the bytes
                        * after *used */
    C2S_HTTP_SEND,     /* send the output, then what
                        * c2s_http_proto_pull() gives until it is done;
                        * then feed the bytes after *used */
} c2s_http_act_t;

/* Header fields a handler looks at (the rest are skipped). */
enum {
    C2S_HH_HOST = 0,
    C2S_HH_ORIGIN,
    C2S_HH_UPGRADE,
    C2S_HH_CONNECTION,
    C2S_HH_WS_KEY,
    C2S_HH_WS_VERSION,
    C2S_HH_WS_PROTOCOL,
    C2S_HH_EXPECT,
    C2S_HH_CONTENT_TYPE,
    C2S_HH_RANGE,
    C2S_HH_COUNT
};

typedef struct c2s_http_proto {
    const c2s_http_conf_t *cf;
    http_parser p;
    bool tls; /* the request came over TLS (wss://, https://) */
    /* the request being parsed */
    kn_buf_t url;
    kn_buf_t field, value; /* the header being parsed */
    bool in_value;
    char *hdr[C2S_HH_COUNT];
    size_t head_bytes, body_bytes;
    int err_status;       /* set by a callback that aborted the parse */
    const char *err_why;  /* and why (NULL: generic) */
    c2s_upload_req_t *up; /* an upload PUT or GET under way */
    bool dup_host;
    bool keep_body; /* POST /http-bind: the body is kept */
    kn_buf_t body;
    /* results */
    kn_buf_t out; /* responses, in request order */
    c2s_http_act_t act;
    unsigned requests; /* answered on this connection */
    bool metrics_ok; /* the peer may read /metrics (kn_metrics_peer_allowed) */
} c2s_http_proto_t;

void c2s_http_proto_init(c2s_http_proto_t *h, const c2s_http_conf_t *cf,
                         bool tls);
void c2s_http_proto_free(c2s_http_proto_t *h);

/* Parse data[0..len) and answer every complete request into h->out.
 * Returns the action; *used gets the bytes consumed (all of them unless
 * the action is CLOSE or UPGRADE). Do not feed again after CLOSE or
 * UPGRADE. */
c2s_http_act_t c2s_http_proto_feed(c2s_http_proto_t *h, const char *data,
                                   size_t len, size_t *used);

/* Answer the BOSH request the last feed returned C2S_HTTP_BOSH for (CORS
 * headers added for an allowed Origin); the parser goes on with the next
 * request (C2S_HTTP_MORE) unless the connection must close. */
void c2s_http_proto_answer(c2s_http_proto_t *h, int status, const char *ctype,
                           const void *body, size_t len);

/* Write a response head announcing clen body bytes (HEAD: none follow);
 * extra: more header lines, may be NULL. For c2s_upload.c. */
void c2s_http_proto_head(c2s_http_proto_t *h, int status, const char *ctype,
                         size_t clen, const char *extra);
/* A response with its body, and an error page (text/plain). */
void c2s_http_proto_respond(c2s_http_proto_t *h, int status, const char *ctype,
                            const void *body, size_t len, const char *extra);
void c2s_http_proto_error(c2s_http_proto_t *h, int status, const char *why,
                          const char *extra);
/* CORS lines of the upload URLs (any origin: the URL is the capability). */
void c2s_http_proto_cors(const c2s_http_proto_t *h, kn_buf_t *extra);

/* After C2S_HTTP_SEND: append the next part of the body to h->out (at
 * most max bytes). Returns true when the body is complete: the action is
 * then MORE (the parser goes on) or CLOSE. */
bool c2s_http_proto_pull(c2s_http_proto_t *h, size_t max);

/* Whether a WebSocket / CORS request from origin (NULL: none, a
 * non-browser client) may go on, for a request to host (the Host header,
 * may be NULL). list: "" same host only, "*" any, else a comma list of
 * origins. Pure. */
bool c2s_http_origin_ok(const char *list, const char *origin, const char *host);

/* The file for the URL path rel (after "/chat/", still percent-encoded)
 * under root: root/decoded-rel, with index.html for a directory. Refuses
 * (-KN_EINVAL) NUL, backslashes, empty, "." or ".." segments and dot
 * files. Pure (the caller still checks where symlinks lead). */
int c2s_http_static_path(const char *root, const char *rel, size_t len,
                         kn_buf_t *out);

/* The Content-Type for a file name. */
const char *c2s_http_mime(const char *path);

#endif
