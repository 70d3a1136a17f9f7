/*
 * c2s_ws.h - XMPP over WebSocket (RFC 7395) as a c2s transport.
 *
 * After c2s_http.c answered the upgrade with 101, the connection becomes
 * an ordinary c2s connection (c2s_conn.c) whose transport is this one,
 * layered over the inner transport (TCP, or TLS on the HTTPS port).
 * libwslay does the RFC 6455 framing (masking, fragments, ping/pong,
 * close); this file translates between RFC 7395 messages and the bytes
 * of an RFC 6120 stream, so the stream state machine (c2s_stream.c) and
 * its XML parser see what a TCP client would send:
 *
 *   in:  <open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to=.../>
 *            -> <stream:stream xmlns='jabber:client' xmlns:stream=...>
 *        <close xmlns='urn:...:xmpp-framing'/> -> </stream:stream>
 *        any other text message -> its bytes, as they are
 *   out: the stream writes <open/> and <close/> itself (C2S_STREAM_F_FRAMED)
 *        so its output is a run of complete elements; each becomes one
 *        text message, with xmlns='jabber:client' (or xmlns:stream on
 *        stream:features / stream:error) added where the element does not
 *        declare it, as RFC 7395 3.3.3 wants every message to stand alone.
 *
 * Limits: a message (all its fragments) larger than max_msg ends the
 * stream with policy-violation before its payload is read; binary
 * messages end it with bad-format. The close code sent when the
 * connection ends: 1000, or 1009 / 1003 / 1002 after such an error.
 */
#ifndef C2S_WS_H
#define C2S_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "c2s_transport.h"
#include "kn_buf.h"
#include "kn_xmpp_err.h"

typedef struct c2s_ws c2s_ws_t;

/* RFC 6455 4.2.2: base64(SHA-1(key + GUID)) into out (29 bytes with the
 * NUL). */
void c2s_ws_accept_key(const char *key, size_t len, char out[29]);

/* A WebSocket transport over inner (its state ist and fd are taken: freed
 * with this one). pending[0..npending): bytes the client sent after its
 * upgrade request (copied). max_msg: the largest message accepted. */
c2s_ws_t *c2s_ws_new(const c2s_transport_t *inner, void *ist, int fd,
                     size_t max_msg, const void *pending, size_t npending);

/* One text message from the client -> stream bytes appended to out.
 * Returns 0, or -KN_EPROTO with *err set (a malformed <open/>, a framing
 * element in a wrong namespace). Pure: for unit tests. */
int c2s_ws_frame_in(const void *msg, size_t len, kn_buf_t *out,
                    kn_stream_err_t *err);

/* Split stream output buf[0..len) into messages, one per complete
 * top-level element, each passed to emit (data valid for the call).
 * Stops after the element that ends at or past max bytes. Returns the
 * bytes consumed (the end of the last complete element; 0 when none is
 * complete), or -1 when buf is not well-formed. Pure: for unit tests. */
typedef void (*c2s_ws_emit_fn)(void *ud, const char *data, size_t len);
ssize_t c2s_ws_split_out(const char *buf, size_t len, size_t max,
                         c2s_ws_emit_fn emit, void *ud);

#endif
