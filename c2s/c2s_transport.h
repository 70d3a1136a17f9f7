/*
 * c2s_transport.h - how a connection moves bytes: a small vtable (Redis's
 * ConnectionType) so plain TCP, TLS, and later WebSocket and BOSH framing
 * sit under the same connection code. WebSocket (c2s_ws.c) is a transport
 * over an inner one (TCP or TLS) that turns RFC 7395 frames into stream
 * bytes and back.
 *
 * Every function is non-blocking. read/write return a byte count (> 0),
 * 0 for an orderly close by the peer (read), -KN_EAGAIN with *want set to
 * EV_READ or EV_WRITE (TLS may need the other direction), or -KN_EIO.
 */
#ifndef C2S_TRANSPORT_H
#define C2S_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

typedef struct c2s_transport {
    const char *name;
    ssize_t (*read)(void *state, int fd, void *buf, size_t len, int *want);
    ssize_t (*write)(void *state, int fd, const void *buf, size_t len,
                     int *want);
    /* NULL when there is no handshake; else 0 done, -KN_EAGAIN, -KN_EIO */
    int (*handshake)(void *state, int fd, int *want);
    /* Free the transport state (not the fd). */
    void (*free)(void **state);
    /* After read returned -KN_EPROTO: the stream error the client gets
     * (the framing broke a rule, e.g. policy-violation for an oversized
     * WebSocket message). May be NULL (none). */
    int (*stream_error)(void *state);
    /* The idle sweep parked the stream's parser: give back what can be
     * rebuilt on the next byte. May be NULL. */
    void (*park)(void *state);
} c2s_transport_t;

extern const c2s_transport_t c2s_transport_tcp;
extern const c2s_transport_t c2s_transport_tls; /* state: c2s_tls_t * */
extern const c2s_transport_t c2s_transport_ws;  /* state: c2s_ws_t * */

#endif
