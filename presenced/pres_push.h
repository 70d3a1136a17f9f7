/*
 * pres_push.h - push notifications (XEP-0357): the pure half (enable and
 * disable requests, the notification, the app server's answers;
 * pres_push_req.c, unit tested) and the service (pres_push.c).
 *
 * A note on the model. A user's resource registers an app server (a JID
 * and a node on it) with <enable/>; the registration is stored in
 * push_registrations (sql/0008_push.sql) with the publish-options form it
 * came with, and lasts until <disable/>, the deletion of the account or a
 * non-transient error from the app server. Whenever presenced stores a
 * message offline for the user (pres_offline.c: 1:1 messages and group
 * messages for absent members, R-GRP-4), the same statement returns the
 * user's registrations and stored count, and each registration gets one
 * publish (XEP-0357 section 5) from the user's bare JID. Nothing waits for
 * the answer: the ids of the publishes in flight are remembered (bounded,
 * the oldest forgotten first) so that an error can remove its
 * registration.
 */
#ifndef PRES_PUSH_H
#define PRES_PUSH_H

#include <stdbool.h>
#include <stddef.h>

#include "kn_stanza.h"
#include "kn_xmpp_err.h"

#define PUSH_NS         "urn:xmpp:push:0"
#define PUSH_NS_SUMMARY "urn:xmpp:push:summary"
#define PUSH_NS_PUBSUB  "http://jabber.org/protocol/pubsub"
#define PUSH_NS_PUBOPTS "http://jabber.org/protocol/pubsub#publish-options"
#define PUSH_NS_DATA    "jabber:x:data"
/* The enable-form field listing bare JIDs not to notify (per-room mute). */
#define PUSH_MUTE_VAR "kiln#muted"

#define PUSH_NODE_MAX 1023 /* bytes of a node name (the column's check) */
#define PUSH_FORM_MAX 8192 /* bytes of a serialized publish-options form */
#define PUSH_MUTE_MAX 256  /* muted JIDs per registration */
#define PUSH_BODY_MAX 1024 /* bytes of last-message-body */

typedef enum push_op {
    PUSH_OP_ENABLE = 0,
    PUSH_OP_DISABLE,
} push_op_t;

/* One parsed request; every string is owned (push_req_free). */
typedef struct push_req {
    push_op_t op;
    char *jid;     /* the app server, prepared */
    char *node;    /* enable: never NULL; disable: NULL = every node */
    char *options; /* enable: the serialized publish-options form without
                      our mute field; NULL: none */
    char *muted;   /* enable: prepared bare JIDs, '\n'-separated ("": none) */
} push_req_t;

/*
 * Parse the IQ st (its first child in urn:xmpp:push:0) into req. Returns
 * 0, or -KN_EPROTO with *err set: bad-request for a get, an unknown
 * element, a missing jid or (enable) node, a node too long or a malformed
 * form (not a submit form, or a FORM_TYPE other than publish-options);
 * jid-malformed for a jid or muted JID that does not prepare;
 * not-acceptable for a form over PUSH_FORM_MAX or too many muted JIDs.
 * Pure; on error req holds nothing to free.
 */
int push_req_parse(const kn_stanza_t *st, push_req_t *req,
                   kn_stanza_err_t *err);
void push_req_free(push_req_t *req);

/*
 * Whether the error answer st (an <iq type='error'/>) from an app server
 * says to try again later: type wait, or a condition that is about the
 * moment (internal-server-error, resource-constraint,
 * remote-server-timeout, recipient-unavailable). Anything else (the node
 * is gone, we are not allowed ...) is final: the registration goes.
 */
bool push_error_is_transient(const kn_stanza_t *st);

/* The length of the longest prefix of s[0..len) that is at most max bytes
 * and does not split a UTF-8 sequence. */
size_t push_utf8_cut(const char *s, size_t len, size_t max);

/* What one notification says. */
typedef struct push_note {
    const char *id;             /* the iq id */
    const char *from;           /* the user's bare JID */
    const char *to;             /* the app server */
    const char *node;           /* its node */
    long long count;            /* message-count */
    const char *sender;         /* last-message-sender; NULL: none */
    const char *body;           /* last-message-body; NULL: left out */
    size_t body_len;            /* bytes of body */
    const kn_stanza_t *options; /* a parsed publish-options form, or NULL */
} push_note_t;

/* Build the XEP-0357 section 5 publish for n with b (reset first); the
 * caller owns the result. */
kn_stanza_t *push_note_build(kn_stanza_builder_t *b, const push_note_t *n);

#endif
