/*
 * kn_xmpp_err.h - XMPP stream errors (RFC 6120 4.9.3) and stanza errors
 * (RFC 6120 8.3.3): their names, their XML, and bounce replies.
 *
 * Errors inside Kiln are -KN_E* codes; these are what the edge turns them
 * into on the wire.
 */
#ifndef KN_XMPP_ERR_H
#define KN_XMPP_ERR_H

#include "kn_buf.h"
#include "kn_stanza.h"

#define KN_NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"
#define KN_NS_STANZA_ERRORS "urn:ietf:params:xml:ns:xmpp-stanzas"

/* Stream error conditions, RFC 6120 4.9.3, in RFC order. */
typedef enum kn_stream_err {
    KN_SE_NONE = 0,
    KN_SE_BAD_FORMAT,
    KN_SE_BAD_NAMESPACE_PREFIX,
    KN_SE_CONFLICT,
    KN_SE_CONNECTION_TIMEOUT,
    KN_SE_HOST_GONE,
    KN_SE_HOST_UNKNOWN,
    KN_SE_IMPROPER_ADDRESSING,
    KN_SE_INTERNAL_SERVER_ERROR,
    KN_SE_INVALID_FROM,
    KN_SE_INVALID_NAMESPACE,
    KN_SE_INVALID_XML,
    KN_SE_NOT_AUTHORIZED,
    KN_SE_NOT_WELL_FORMED,
    KN_SE_POLICY_VIOLATION,
    KN_SE_REMOTE_CONNECTION_FAILED,
    KN_SE_RESET,
    KN_SE_RESOURCE_CONSTRAINT,
    KN_SE_RESTRICTED_XML,
    KN_SE_SEE_OTHER_HOST,
    KN_SE_SYSTEM_SHUTDOWN,
    KN_SE_UNDEFINED_CONDITION,
    KN_SE_UNSUPPORTED_ENCODING,
    KN_SE_UNSUPPORTED_FEATURE,
    KN_SE_UNSUPPORTED_STANZA_TYPE,
    KN_SE_UNSUPPORTED_VERSION,
    KN_SE_COUNT_
} kn_stream_err_t;

/* The RFC element name ("not-well-formed"); "none" for KN_SE_NONE and
 * "undefined-condition" for values out of range. Static storage. */
const char *kn_stream_err_name(kn_stream_err_t err);

/* Append <stream:error><NAME xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>
 * </stream:error> to out (the stream prefix must be bound, as it is in any
 * stream Kiln writes). text (may be NULL) is added as a <text/> element,
 * except for see-other-host where it is the element's content (the new
 * host, RFC 6120 4.9.3.19). text is escaped here. */
void kn_stream_err_write(kn_buf_t *out, kn_stream_err_t err, const char *text);

/* Stanza error conditions, RFC 6120 8.3.3. */
typedef enum kn_stanza_err {
    KN_STE_BAD_REQUEST = 0,
    KN_STE_CONFLICT,
    KN_STE_FEATURE_NOT_IMPLEMENTED,
    KN_STE_FORBIDDEN,
    KN_STE_GONE,
    KN_STE_INTERNAL_SERVER_ERROR,
    KN_STE_ITEM_NOT_FOUND,
    KN_STE_JID_MALFORMED,
    KN_STE_NOT_ACCEPTABLE,
    KN_STE_NOT_ALLOWED,
    KN_STE_NOT_AUTHORIZED,
    KN_STE_POLICY_VIOLATION,
    KN_STE_RECIPIENT_UNAVAILABLE,
    KN_STE_REDIRECT,
    KN_STE_REGISTRATION_REQUIRED,
    KN_STE_REMOTE_SERVER_NOT_FOUND,
    KN_STE_REMOTE_SERVER_TIMEOUT,
    KN_STE_RESOURCE_CONSTRAINT,
    KN_STE_SERVICE_UNAVAILABLE,
    KN_STE_SUBSCRIPTION_REQUIRED,
    KN_STE_UNDEFINED_CONDITION,
    KN_STE_UNEXPECTED_REQUEST,
    KN_STE_COUNT_
} kn_stanza_err_t;

/* The RFC element name ("service-unavailable"). Asserts cond is valid. */
const char *kn_stanza_err_name(kn_stanza_err_t cond);
/* The error type RFC 6120 recommends for cond: "auth", "cancel", "modify"
 * or "wait". */
const char *kn_stanza_err_type(kn_stanza_err_t cond);

/* Build the error bounce for orig (RFC 6120 8.3): same element name and
 * namespace, to and from swapped, id and other root attributes kept,
 * type='error', then <error type='...'><COND xmlns='...stanzas'/>
 * [<text xmlns='...stanzas'>text</text>]</error>. For message and presence
 * the original children are copied in front of <error/>; for an iq they
 * are dropped. Returns a new stanza (caller owns), or NULL when orig is
 * itself of type 'error': errors are never bounced. */
kn_stanza_t *kn_stanza_error_reply(const kn_stanza_t *orig,
                                   kn_stanza_err_t cond, const char *text);

/* kn_stanza_error_reply() with the error's type attribute given (NULL:
 * the one RFC 6120 recommends for cond) and an application-specific
 * condition <app_name xmlns='app_ns'/> after the defined one (RFC 6120
 * 8.3.2; app_name NULL: none), e.g. XEP-0191's <blocked/>. */
kn_stanza_t *kn_stanza_error_reply_ext(const kn_stanza_t *orig,
                                       kn_stanza_err_t cond, const char *etype,
                                       const char *text, const char *app_name,
                                       const char *app_ns);

#endif
