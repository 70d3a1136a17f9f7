/*
 * kn_xmpp_err.c - stream and stanza error names, their XML, bounces.
 *
 * Two tables indexed by enum value keep the names and default types next to
 * each other; the enums are in RFC order so the tables read like the RFC.
 */
#include "kn_xmpp_err.h"

#include <string.h>

#include "kn_err.h"

static const char *const stream_err_names[KN_SE_COUNT_] = {
    [KN_SE_NONE] = "none",
    [KN_SE_BAD_FORMAT] = "bad-format",
    [KN_SE_BAD_NAMESPACE_PREFIX] = "bad-namespace-prefix",
    [KN_SE_CONFLICT] = "conflict",
    [KN_SE_CONNECTION_TIMEOUT] = "connection-timeout",
    [KN_SE_HOST_GONE] = "host-gone",
    [KN_SE_HOST_UNKNOWN] = "host-unknown",
    [KN_SE_IMPROPER_ADDRESSING] = "improper-addressing",
    [KN_SE_INTERNAL_SERVER_ERROR] = "internal-server-error",
    [KN_SE_INVALID_FROM] = "invalid-from",
    [KN_SE_INVALID_NAMESPACE] = "invalid-namespace",
    [KN_SE_INVALID_XML] = "invalid-xml",
    [KN_SE_NOT_AUTHORIZED] = "not-authorized",
    [KN_SE_NOT_WELL_FORMED] = "not-well-formed",
    [KN_SE_POLICY_VIOLATION] = "policy-violation",
    [KN_SE_REMOTE_CONNECTION_FAILED] = "remote-connection-failed",
    [KN_SE_RESET] = "reset",
    [KN_SE_RESOURCE_CONSTRAINT] = "resource-constraint",
    [KN_SE_RESTRICTED_XML] = "restricted-xml",
    [KN_SE_SEE_OTHER_HOST] = "see-other-host",
    [KN_SE_SYSTEM_SHUTDOWN] = "system-shutdown",
    [KN_SE_UNDEFINED_CONDITION] = "undefined-condition",
    [KN_SE_UNSUPPORTED_ENCODING] = "unsupported-encoding",
    [KN_SE_UNSUPPORTED_FEATURE] = "unsupported-feature",
    [KN_SE_UNSUPPORTED_STANZA_TYPE] = "unsupported-stanza-type",
    [KN_SE_UNSUPPORTED_VERSION] = "unsupported-version",
};

const char *kn_stream_err_name(kn_stream_err_t err)
{
    if ((unsigned)err >= KN_SE_COUNT_)
        return "undefined-condition";
    return stream_err_names[err];
}

void kn_stream_err_write(kn_buf_t *out, kn_stream_err_t err, const char *text)
{
    KN_ASSERT(out != NULL);
    const char *name = kn_stream_err_name(err);
    if (err == KN_SE_NONE)
        name = "undefined-condition";
    kn_buf_printf(out, "<stream:error><%s xmlns='" KN_NS_STREAM_ERRORS "'",
                  name);
    if (err == KN_SE_SEE_OTHER_HOST && text != NULL) {
        kn_buf_append_byte(out, '>');
        kn_buf_append_xml_escaped(out, text, strlen(text));
        kn_buf_printf(out, "</%s>", name);
    } else {
        kn_buf_append_str(out, "/>");
        if (text != NULL) {
            kn_buf_append_str(out, "<text xmlns='" KN_NS_STREAM_ERRORS "'>");
            kn_buf_append_xml_escaped(out, text, strlen(text));
            kn_buf_append_str(out, "</text>");
        }
    }
    kn_buf_append_str(out, "</stream:error>");
}

static const struct {
    const char *name;
    const char *type;
} stanza_errs[KN_STE_COUNT_] = {
    [KN_STE_BAD_REQUEST] = {"bad-request", "modify"},
    [KN_STE_CONFLICT] = {"conflict", "cancel"},
    [KN_STE_FEATURE_NOT_IMPLEMENTED] = {"feature-not-implemented", "cancel"},
    [KN_STE_FORBIDDEN] = {"forbidden", "auth"},
    [KN_STE_GONE] = {"gone", "cancel"},
    [KN_STE_INTERNAL_SERVER_ERROR] = {"internal-server-error", "cancel"},
    [KN_STE_ITEM_NOT_FOUND] = {"item-not-found", "cancel"},
    [KN_STE_JID_MALFORMED] = {"jid-malformed", "modify"},
    [KN_STE_NOT_ACCEPTABLE] = {"not-acceptable", "modify"},
    [KN_STE_NOT_ALLOWED] = {"not-allowed", "cancel"},
    [KN_STE_NOT_AUTHORIZED] = {"not-authorized", "auth"},
    [KN_STE_POLICY_VIOLATION] = {"policy-violation", "modify"},
    [KN_STE_RECIPIENT_UNAVAILABLE] = {"recipient-unavailable", "wait"},
    [KN_STE_REDIRECT] = {"redirect", "modify"},
    [KN_STE_REGISTRATION_REQUIRED] = {"registration-required", "auth"},
    [KN_STE_REMOTE_SERVER_NOT_FOUND] = {"remote-server-not-found", "cancel"},
    [KN_STE_REMOTE_SERVER_TIMEOUT] = {"remote-server-timeout", "wait"},
    [KN_STE_RESOURCE_CONSTRAINT] = {"resource-constraint", "wait"},
    [KN_STE_SERVICE_UNAVAILABLE] = {"service-unavailable", "cancel"},
    [KN_STE_SUBSCRIPTION_REQUIRED] = {"subscription-required", "auth"},
    [KN_STE_UNDEFINED_CONDITION] = {"undefined-condition", "cancel"},
    [KN_STE_UNEXPECTED_REQUEST] = {"unexpected-request", "wait"},
};

const char *kn_stanza_err_name(kn_stanza_err_t cond)
{
    KN_ASSERT((unsigned)cond < KN_STE_COUNT_);
    return stanza_errs[cond].name;
}

const char *kn_stanza_err_type(kn_stanza_err_t cond)
{
    KN_ASSERT((unsigned)cond < KN_STE_COUNT_);
    return stanza_errs[cond].type;
}

kn_stanza_t *kn_stanza_error_reply(const kn_stanza_t *orig,
                                   kn_stanza_err_t cond, const char *text)
{
    return kn_stanza_error_reply_ext(orig, cond, NULL, text, NULL, NULL);
}

kn_stanza_t *kn_stanza_error_reply_ext(const kn_stanza_t *orig,
                                       kn_stanza_err_t cond, const char *etype,
                                       const char *text, const char *app_name,
                                       const char *app_ns)
{
    KN_ASSERT(orig != NULL);
    const char *type = kn_stanza_type(orig);
    if (type != NULL && strcmp(type, "error") == 0)
        return NULL;
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, kn_stanza_name(orig, 0), kn_stanza_ns(orig, 0));
    for (size_t i = 0; i < kn_stanza_attr_count(orig, 0); i++) {
        const char *ns, *name, *value;
        kn_stanza_attr_at(orig, 0, i, &ns, &name, &value);
        if (ns[0] == '\0' &&
            (strcmp(name, "to") == 0 || strcmp(name, "from") == 0 ||
             strcmp(name, "type") == 0))
            continue;
        if (ns[0] == '\0')
            kn_stanza_builder_attr(b, name, value);
        else if (strcmp(ns, KN_NS_XML) == 0)
            kn_stanza_builder_attr_n(b, ns, strlen(ns), "xml", 3, name,
                                     strlen(name), value, strlen(value));
    }
    if (kn_stanza_from(orig) != NULL)
        kn_stanza_builder_attr(b, "to", kn_stanza_from(orig));
    if (kn_stanza_to(orig) != NULL)
        kn_stanza_builder_attr(b, "from", kn_stanza_to(orig));
    kn_stanza_builder_attr(b, "type", "error");
    if (kn_stanza_kind(orig) != KN_STANZA_IQ) {
        for (int c = kn_stanza_first_child(orig, 0); c >= 0;
             c = kn_stanza_next_sibling(orig, c))
            kn_stanza_builder_copy(b, orig, c);
    }
    kn_stanza_builder_start(b, "error", NULL);
    kn_stanza_builder_attr(b, "type", etype ? etype : kn_stanza_err_type(cond));
    kn_stanza_builder_start(b, kn_stanza_err_name(cond), KN_NS_STANZA_ERRORS);
    kn_stanza_builder_end(b);
    if (text != NULL) {
        kn_stanza_builder_start(b, "text", KN_NS_STANZA_ERRORS);
        kn_stanza_builder_text(b, text, strlen(text));
        kn_stanza_builder_end(b);
    }
    if (app_name != NULL) {
        kn_stanza_builder_start(b, app_name, app_ns);
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *reply = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    return reply;
}
