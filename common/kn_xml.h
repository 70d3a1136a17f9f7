/*
 * kn_xml.h - the incremental XMPP stream parser: bytes in, events out.
 *
 * No sockets: the caller feeds whatever bytes it read, in any split, and
 * then drains events with kn_xml_next() until it returns 0:
 *
 *     kn_xml_feed(p, buf, n);            (any inbound byte is activity)
 *     while ((rc = kn_xml_next(p, &ev)) > 0) {
 *         handle(&ev);                   (owns ev.stanza)
 *         kn_stanza_unref(&ev.stanza);
 *     }
 *     if (rc < 0) send kn_stream_err_write(kn_xml_error(p, NULL)), close.
 *
 * Parsing happens inside kn_xml_next() and stops right after each event, so
 * the bytes after a stanza are not looked at until the caller asks for the
 * next event. That makes stream restarts exact: after <auth/> succeeds (or
 * <starttls/> is answered) call kn_xml_reset() before asking for more; do
 * not call kn_xml_next() while such a decision is pending.
 *
 * Events: the stream header (<stream:stream> open tag, as a one-element
 * stanza carrying its attributes), each complete top-level stanza (a
 * depth-1 child of the stream, any namespace: tls, sasl, sm ... are legal),
 * and the stream close tag. Whitespace between stanzas produces no event.
 *
 * What is rejected, and the stream error it maps to (kn_xml_error()):
 *   DOCTYPE, entity declarations, comments, processing instructions
 *                                         -> restricted-xml
 *   declared encoding other than UTF-8    -> unsupported-encoding
 *   malformed XML, invalid UTF-8, undefined entity, mismatched tags
 *                                         -> not-well-formed
 *   unbound or reserved namespace prefix  -> bad-namespace-prefix
 *   root not {http://etherx.jabber.org/streams}stream, or the stream's
 *   default namespace not the expected content namespace
 *                                         -> invalid-namespace
 *   non-whitespace text between stanzas   -> bad-format
 *   stanza bytes, header bytes, depth or attribute count over the limits
 *                                         -> policy-violation
 * After an error the parser stays failed until kn_xml_reset().
 */
#ifndef KN_XML_H
#define KN_XML_H

#include <stdbool.h>
#include <stddef.h>

#include "kn_stanza.h"
#include "kn_xmpp_err.h"

#define KN_XML_MAX_STANZA_DEFAULT 65536 /* bytes of one top-level stanza */
#define KN_XML_MAX_DEPTH_DEFAULT  32    /* the stanza element is depth 1 */
#define KN_XML_MAX_ATTRS_DEFAULT  64    /* per element, xmlns decls count */
#define KN_XML_MAX_HEADER_DEFAULT 4096  /* XML declaration + stream tag */

typedef struct kn_xml_limits {
    size_t max_stanza;
    size_t max_depth;
    size_t max_attrs;
    size_t max_header;
} kn_xml_limits_t;

#define KN_XML_LIMITS_DEFAULT                                                  \
    {                                                                          \
        KN_XML_MAX_STANZA_DEFAULT, KN_XML_MAX_DEPTH_DEFAULT,                   \
            KN_XML_MAX_ATTRS_DEFAULT, KN_XML_MAX_HEADER_DEFAULT                \
    }

typedef enum kn_xml_event_type {
    KN_XML_HEADER = 1, /* stanza: the stream element with its attributes */
    KN_XML_STANZA,     /* stanza: one complete top-level element */
    KN_XML_CLOSE,      /* stanza: NULL; </stream:stream> was received */
} kn_xml_event_type_t;

typedef struct kn_xml_event {
    kn_xml_event_type_t type;
    kn_stanza_t *stanza; /* owned by the caller: kn_stanza_unref() it */
} kn_xml_event_t;

typedef struct kn_xml kn_xml_t;

/* A parser for one stream. lim NULL means the defaults; content_ns is the
 * default namespace the stream header must declare (KN_NS_CLIENT,
 * KN_NS_COMPONENT), or NULL to accept any. Both are copied. Caller frees
 * with kn_xml_free(). */
kn_xml_t *kn_xml_new(const kn_xml_limits_t *lim, const char *content_ns);
/* Free *pp (pending events and their stanzas too); sets *pp = NULL;
 * idempotent. */
void kn_xml_free(kn_xml_t **pp);

/* Queue len bytes (copied) for parsing. Returns 0, or the parser's error
 * (negative) if it has failed already. Never parses: see kn_xml_next(). */
int kn_xml_feed(kn_xml_t *p, const void *buf, size_t len);

/* Parse queued bytes up to the next event. Returns 1 and fills *ev (the
 * caller owns ev->stanza), 0 when more input is needed, or a negative
 * error: -KN_EPROTO for bad XML, -KN_ETOOBIG for a limit; kn_xml_error()
 * says which stream error to send. Events completed before an error are
 * returned before it. Not reentrant: do not call from a handler of p. */
int kn_xml_next(kn_xml_t *p, kn_xml_event_t *ev);

/* Start a new stream on the same parser (same limits and content
 * namespace): a fresh expat parser, pending events dropped, error cleared.
 * keep_unparsed: bytes received after the last event are kept and parsed
 * as the start of the new stream (SASL success with a pipelined header);
 * pass false after STARTTLS, where anything sent before the handshake must
 * be discarded (RFC 6120 5.3.3). Either way, whitespace before the new
 * stream's first other byte is dropped: it ended the old stream ("</auth>\n")
 * and would make the new XML declaration not-well-formed. */
void kn_xml_reset(kn_xml_t *p, bool keep_unparsed);

/* The stream error for the parser's failure (KN_SE_NONE while healthy);
 * *detail (may be NULL) gets a static human-readable reason for logs. */
kn_stream_err_t kn_xml_error(const kn_xml_t *p, const char **detail);

/* The default namespace and the prefix of the stream namespace declared
 * on the current stream header ("" when not declared, NULL before the
 * header). Valid until the next kn_xml_reset(). */
const char *kn_xml_stream_ns(const kn_xml_t *p);
const char *kn_xml_stream_prefix(const kn_xml_t *p);

/*
 * Release the expat parser and stanza builder of a stream that is idle
 * between stanzas (about 13 KB); they are re-created, with the stream's
 * namespaces, by the next kn_xml_next() that has input. Returns true when
 * parked (or already parked), false when something is pending (an open
 * element, unparsed non-space bytes, a queued event, the prolog, a
 * failure) and nothing was freed. For connection managers holding many
 * idle streams; cheap to call from a periodic sweep.
 */
bool kn_xml_park(kn_xml_t *p);

/*
 * Parse one complete stanza held in buf[0..len) (as carried between
 * processes: the root declares its namespace, or inherits content_ns,
 * NULL meaning jabber:client). Default limits apply. Returns 0 and a new
 * stanza in *out (caller unrefs), or -KN_EPROTO / -KN_ETOOBIG. For the
 * rare places that must read a payload (server-answered IQs, daemons);
 * the routing path never parses.
 */
int kn_xml_parse_stanza(const void *buf, size_t len, const char *content_ns,
                        kn_stanza_t **out);

#endif
