/*
 * kn_msgrules.c - carbons and archive eligibility, forged stanza-id
 * removal (kn_msgrules.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kn_msgrules.h"
#include "kn_proto.h"

static bool child_ns(const kn_stanza_t *st, int c, const char *name,
                     const char *ns)
{
    return strcmp(kn_stanza_ns(st, c), ns) == 0 &&
           (name == NULL || strcmp(kn_stanza_name(st, c), name) == 0);
}

uint16_t kn_msg_rules(const kn_stanza_t *st, kn_env_type_t type)
{
    if (type != KN_ENV_TYPE_NORMAL && type != KN_ENV_TYPE_CHAT &&
        type != KN_ENV_TYPE_ERROR)
        return 0;
    bool body = false, priv = false, nocopy = false, carbon = false;
    bool mucpm = false, im = false, store = false, nostore = false;
    bool call = false;
    for (int c = kn_stanza_first_child(st, 0); c >= 0;
         c = kn_stanza_next_sibling(st, c)) {
        const char *name = kn_stanza_name(st, c);
        const char *ns = kn_stanza_ns(st, c);
        if (strcmp(name, "body") == 0 && strcmp(ns, KN_NS_CLIENT) == 0)
            body = true;
        else if (strcmp(ns, KN_NS_CARBONS) == 0)
            *(strcmp(name, "private") == 0 ? &priv : &carbon) = true;
        else if (strcmp(ns, KN_NS_HINTS) == 0) {
            if (strcmp(name, "no-copy") == 0)
                nocopy = true;
            else if (strcmp(name, "store") == 0)
                store = true;
            else if (strcmp(name, "no-store") == 0 ||
                     strcmp(name, "no-permanent-store") == 0)
                nostore = true;
        } else if (child_ns(st, c, "x", KN_NS_MUC_USER))
            mucpm = true;
        else if (strcmp(ns, "http://jabber.org/protocol/chatstates") == 0 ||
                 strcmp(ns, "urn:xmpp:receipts") == 0 ||
                 strcmp(ns, "urn:xmpp:chat-markers:0") == 0)
            im = true;
        else if (strcmp(ns, KN_NS_JMI) == 0)
            /* XEP-0353: call history for every device and for a callee
             * who was away (a missed call), hint or not; "ringing" is
             * only for the caller's devices of the moment. */
            *(strcmp(name, "ringing") == 0 ? &im : &call) = true;
    }
    uint16_t f = 0;
    if (!priv && !nocopy && !carbon && !mucpm &&
        (type != KN_ENV_TYPE_NORMAL || body || im || call))
        f |= KN_F_CARBON_OK;
    if (type != KN_ENV_TYPE_ERROR && !carbon && !mucpm && !nostore &&
        (body || store || call))
        f |= KN_F_ARCHIVE_OK;
    return f;
}

/* Whether JID `by` is `domain` or at `domain` (user@domain[/res]). */
static bool by_ours(const char *by, const char *domain)
{
    size_t dl = strlen(domain);
    const char *slash = strchr(by, '/');
    size_t bl = slash ? (size_t)(slash - by) : strlen(by);
    const char *at = memchr(by, '@', bl);
    const char *d = at ? at + 1 : by;
    size_t dlen = bl - (size_t)(d - by);
    return dlen == dl && strncasecmp(d, domain, dl) == 0;
}

static bool is_forged(const kn_stanza_t *st, int c, const char *domain)
{
    if (!child_ns(st, c, "stanza-id", KN_NS_SID))
        return false;
    const char *by = kn_stanza_attr(st, c, "by", NULL);
    return by == NULL || by_ours(by, domain);
}

kn_stanza_t *kn_msg_strip_sid(const kn_stanza_t *st, const char *domain)
{
    bool any = false;
    for (int c = kn_stanza_first_child(st, 0); c >= 0 && !any;
         c = kn_stanza_next_sibling(st, c))
        any = is_forged(st, c, domain);
    if (!any)
        return NULL;
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, kn_stanza_name(st, 0), kn_stanza_ns(st, 0));
    size_t na = kn_stanza_attr_count(st, 0);
    for (size_t i = 0; i < na; i++) {
        const char *ns, *name, *value;
        kn_stanza_attr_at(st, 0, i, &ns, &name, &value);
        if (ns != NULL && strcmp(ns, KN_NS_XML) == 0) {
            char qn[64];
            snprintf(qn, sizeof(qn), "xml:%s", name);
            kn_stanza_builder_attr(b, qn, value);
        } else if (ns != NULL && *ns) {
            kn_stanza_builder_attr_n(b, ns, strlen(ns), "", 0, name,
                                     strlen(name), value, strlen(value));
        } else {
            kn_stanza_builder_attr(b, name, value);
        }
    }
    for (int c = kn_stanza_first_child(st, 0); c >= 0;
         c = kn_stanza_next_sibling(st, c))
        if (!is_forged(st, c, domain))
            kn_stanza_builder_copy(b, st, c);
    kn_stanza_t *out = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    return out;
}
