/*
 * load_conn.h - one simulated XMPP client: TCP connect from a chosen
 * source address, STARTTLS or direct TLS, SASL (SCRAM-SHA-1 or PLAIN),
 * resource bind, session when required, roster get, initial presence.
 * Once online, every stanza is handed to the owner's callback.
 * With --ws the stream runs over RFC 7395 WebSocket instead (a minimal
 * RFC 6455 client: one masked text frame per send, server frames
 * unwrapped into the same input; <open/>/<close/> translated to and from
 * the stream header and close tag).
 *
 * A connection object is owned by its worker and lives for the whole run
 * (it is reused when the user logs in again), so callbacks never free it:
 * a failed or closed connection just returns to LOAD_CONN_IDLE.
 */
#ifndef LOAD_CONN_H
#define LOAD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>
#include <netinet/in.h>
#include <openssl/ssl.h>

#include "kn_buf.h"
#include "load.h"
#include "load_sasl.h"
#include "load_xml.h"

enum load_conn_state {
    LOAD_CONN_IDLE = 0,
    LOAD_CONN_CONNECTING,
    LOAD_CONN_WS_UPGRADE, /* --ws: waiting for the 101 */
    LOAD_CONN_FEATURES_PLAIN, /* waiting for features offering STARTTLS */
    LOAD_CONN_STARTTLS,       /* waiting for <proceed/> */
    LOAD_CONN_HANDSHAKE,      /* TLS handshake */
    LOAD_CONN_FEATURES_TLS,   /* waiting for SASL mechanisms */
    LOAD_CONN_SASL,
    LOAD_CONN_FEATURES_AUTH, /* waiting for bind */
    LOAD_CONN_BIND,
    LOAD_CONN_SESSION,
    LOAD_CONN_ROSTER,
    LOAD_CONN_ONLINE,
    LOAD_CONN_CLOSING, /* </stream:stream> sent, waiting for peer */
};

typedef struct load_conn load_conn_t;

/* What every connection of one worker shares. */
typedef struct load_client {
    struct ev_loop *loop;
    SSL_CTX *ssl_ctx;
    const load_opts_t *opts;
    load_conn_t *flush_head; /* connections with output queued */
    ev_prepare flush_watcher;
    char scratch[65536]; /* read buffer shared by all connections */
    void *owner;
    /* Called once the initial presence is sent. */
    void (*on_online)(load_conn_t *c);
    /* A stanza arrived while online (message, presence, iq result). */
    void (*on_stanza)(load_conn_t *c, const char *el, size_t len);
    /* The connection ended: err 0 for a clean logout, else -KN_E* with a
     * reason (KN_EAUTH: the server refused the login). */
    void (*on_closed)(load_conn_t *c, int err, const char *why);
} load_client_t;

struct load_conn {
    load_client_t *cl;
    size_t idx;  /* index in the worker's table */
    size_t user; /* absolute user number */
    int state;
    int fd;
    SSL *ssl;
    ev_io rio;
    ev_io wio;
    kn_buf_t in;
    kn_buf_t out;
    kn_buf_t wsin; /* --ws: received bytes not yet a whole frame */
    bool ws_framed; /* --ws: after the 101, sends are framed */
    load_xml_t xml;
    load_scram_t scram;
    load_scram_keys_t keys; /* the SCRAM cache slot of this user */
    bool keys_known;        /* keys has this user's --scram-cache line */
    char *jid;              /* full JID from bind */
    struct sockaddr_in dst;
    struct sockaddr_in src;
    uint64_t t_start; /* login or logout start, monotonic ns */
    load_conn_t *flush_next;
    bool in_flush;
    bool restart; /* the stream restarts after the current element */
    bool session;
    /* owned by the worker's scenario logic */
    uint8_t *seen; /* presence: contacts seen available */
    uint32_t nseen;
    bool joined;         /* muc: in the room */
    bool join_pending;   /* muc: join sent, no answer yet */
    bool counted_online; /* counted in the worker's online total */
    bool away;           /* presence: the last status wave sent "away" */
};

/* Create the shared client state; 0 or -KN_EIO (message on stderr). */
int load_client_init(load_client_t *cl, struct ev_loop *loop,
                     const load_opts_t *opts);
void load_client_free(load_client_t *cl);

/* Start logging c in (c must be IDLE). Errors come through on_closed,
 * possibly before this returns. */
void load_conn_login(load_conn_t *c);
/* Send unavailable presence and close the stream; on_closed(0) follows
 * when the server closes its side. */
void load_conn_logout(load_conn_t *c);
/* Queue bytes; they are written before the loop sleeps. */
void load_conn_send(load_conn_t *c, const char *data, size_t len);
/* Drop the connection now, reporting err/why through on_closed. */
void load_conn_abort(load_conn_t *c, int err, const char *why);
const char *load_conn_state_name(int state);

#endif
