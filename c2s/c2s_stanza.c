/*
 * c2s_stanza.c - stanzas of a bound client, out to the router, and
 * stanzas from the router, in to the client.
 *
 * Outbound (RFC 6120 8.1): a 'from' that is neither the session's full
 * nor bare JID is an invalid-from stream error; otherwise the full JID is
 * stamped. A 'to' is prepared (invalid: <jid-malformed/> back, the stream
 * stays); none means the user's own account for message and iq (the
 * envelope's to is the bare JID; the XML keeps no 'to' attribute, so the
 * answer of a server-side handler comes back without 'from', as RFC 6120
 * 10.3.3 wants) and a broadcast for presence (the envelope's to is empty:
 * the router hands it to the presence daemon). Available/unavailable
 * broadcasts also update the router's priority table (PRIORITY). IQ
 * pings to the server and session establishment are answered here, and
 * the answer to the server's own idle ping (c2s_idle.c) is swallowed;
 * a stanza to a JID the user blocked is refused (XEP-0191, c2s_block.c);
 * everything else goes to the router once, serialised with
 * xmlns='jabber:client' explicit (the process boundary is a document
 * boundary).
 *
 * Inbound: the router's payload is written as received: no parse on the
 * delivery path (c2s_stream_inbound in c2s_block.c decides first whether
 * it is delivered at all).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "c2s_sm.h"
#include "c2s_metrics.h"
#include "c2s_stream.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_msgrules.h"
#include "kn_proto.h"

/* One scratch buffer for serialising outbound stanzas: a single loop per
 * process, and the router copies the bytes before we return. */
static kn_buf_t stanza_scratch;

static void stanza_reply_error(c2s_stream_t *s, const kn_stanza_t *st,
                               kn_stanza_err_t cond, bool strip_from)
{
    kn_stanza_t *r = kn_stanza_error_reply(st, cond, NULL);
    if (r == NULL)
        return;
    if (strip_from && kn_stanza_from(r) != NULL) {
        kn_stanza_t *r2 = kn_stanza_without_attr(r, 0, "from");
        kn_stanza_unref(&r);
        r = r2;
    }
    c2s_stream_write_stanza(s, r);
    kn_stanza_unref(&r);
}

/* <iq type='result'/> to an IQ answered by the server itself. */
static void stanza_iq_result(c2s_stream_t *s, const kn_stanza_t *iq)
{
    size_t off = s->out->len;
    kn_buf_append_str(s->out, "<iq type='result'");
    const char *id = kn_stanza_id(iq);
    if (id != NULL) {
        kn_buf_append_str(s->out, " id='");
        kn_buf_append_xml_escaped(s->out, id, strlen(id));
        kn_buf_append_str(s->out, "'");
    }
    const char *to = kn_stanza_to(iq);
    if (to != NULL) {
        kn_buf_append_str(s->out, " from='");
        kn_buf_append_xml_escaped(s->out, to, strlen(to));
        kn_buf_append_str(s->out, "'");
    }
    kn_buf_append_str(s->out, " to='");
    kn_buf_append_xml_escaped(s->out, kn_jid_str(&s->jid), kn_jid_len(&s->jid));
    kn_buf_append_str(s->out, "'/>");
    c2s_sm_sent(s, off, NULL);
}

static bool stanza_from_ok(const c2s_stream_t *s, const char *from)
{
    kn_jid_t f = KN_JID_INIT;
    if (kn_jid_parse(&f, from, strlen(from)) < 0)
        return false;
    bool ok = kn_jid_eq(&f, &s->jid) ||
              (kn_jid_is_bare(&f) && kn_jid_eq_bare(&f, &s->jid));
    kn_jid_free(&f);
    return ok;
}

static bool jid_is_domain(const c2s_stream_t *s, const kn_jid_t *j)
{
    return j->str == NULL || strcmp(kn_jid_str(j), s->cf->domain) == 0;
}

/* Presence broadcast: update the router's view of this resource. */
static void stanza_presence_state(c2s_stream_t *s, const kn_stanza_t *st,
                                  kn_env_type_t type)
{
    if (type != KN_ENV_TYPE_AVAILABLE && type != KN_ENV_TYPE_UNAVAILABLE)
        return;
    int16_t prio = 0;
    if (type == KN_ENV_TYPE_AVAILABLE) {
        int p = kn_stanza_child(st, 0, "priority", NULL);
        if (p >= 0) {
            long v = strtol(kn_stanza_cdata(st, p, NULL), NULL, 10);
            prio = (int16_t)(v < -128 ? -128 : v > 127 ? 127 : v);
        }
    }
    s->available = type == KN_ENV_TYPE_AVAILABLE;
    s->priority = s->available ? prio : 0;
    kn_env_t e = {0};
    e.kind = KN_ENV_PRIORITY;
    e.from = kn_jid_str(&s->jid);
    e.from_len = kn_jid_len(&s->jid);
    e.conn_id = s->ops->conn_id(s->ud);
    e.priority = s->priority;
    e.flags = s->available ? KN_F_AVAILABLE : 0;
    c2s_stream_route(s, &e, NULL, 0);
}

c2s_act_t c2s_stanza_handle(c2s_stream_t *s, const kn_stanza_t *st)
{
    kn_stanza_kind_t kind = kn_stanza_kind(st);
    if (kind == KN_STANZA_OTHER || strcmp(kn_stanza_ns(st, 0), KN_NS_CLIENT))
        return c2s_stream_fail(s, KN_SE_UNSUPPORTED_STANZA_TYPE,
                               kn_stanza_name(st, 0));
    const char *from = kn_stanza_from(st);
    if (from != NULL && !stanza_from_ok(s, from))
        return c2s_stream_fail(s, KN_SE_INVALID_FROM, from);

    kn_env_stanza_t est = kn_env_stanza_from_name(kn_stanza_name(st, 0));
    kn_env_type_t type;
    if (kn_env_type_from_str(est, kn_stanza_type(st), &type) < 0) {
        stanza_reply_error(s, st, KN_STE_BAD_REQUEST, false);
        return C2S_ACT_MORE;
    }
    kn_jid_t to = KN_JID_INIT;
    const char *to_attr = kn_stanza_to(st);
    if (to_attr != NULL && kn_jid_parse(&to, to_attr, strlen(to_attr)) < 0) {
        stanza_reply_error(s, st, KN_STE_JID_MALFORMED, true);
        return C2S_ACT_MORE;
    }

    if (est == KN_ENV_ST_IQ &&
        (type == KN_ENV_TYPE_RESULT || type == KN_ENV_TYPE_ERROR) &&
        jid_is_domain(s, &to) &&
        c2s_stream_is_ping_reply(s, kn_stanza_id(st))) {
        s->ping_id = 0; /* the answer to our idle ping: inbound bytes */
        goto out_free_to;
    }

    const char *iq_ns = NULL;
    if (est == KN_ENV_ST_IQ) {
        int c = kn_stanza_first_child(st, 0);
        if (c >= 0)
            iq_ns = kn_stanza_ns(st, c);
        bool req = type == KN_ENV_TYPE_GET || type == KN_ENV_TYPE_SET;
        if (req && (c < 0 || kn_stanza_next_sibling(st, c) >= 0)) {
            /* RFC 6120 8.2.3: exactly one payload element. */
            stanza_reply_error(s, st, KN_STE_BAD_REQUEST, false);
            goto out_free_to;
        }
        if (req && jid_is_domain(s, &to) &&
            ((type == KN_ENV_TYPE_GET && strcmp(iq_ns, C2S_NS_PING) == 0 &&
              strcmp(kn_stanza_name(st, c), "ping") == 0) ||
             (type == KN_ENV_TYPE_SET && strcmp(iq_ns, C2S_NS_SESSION) == 0))) {
            stanza_iq_result(s, st);
            goto out_free_to;
        }
        if (type == KN_ENV_TYPE_GET && jid_is_domain(s, &to) &&
            strcmp(iq_ns, C2S_NS_EXTDISCO) == 0 &&
            c2s_extdisco_handle(s, st, c, (long long)time(NULL)))
            goto out_free_to; /* XEP-0215, c2s_extdisco.c */
        if (req && to.str != NULL &&
            c2s_upload_iq(s, st, kn_jid_str(&to), type == KN_ENV_TYPE_GET, c))
            goto out_free_to; /* XEP-0363: this node answers */
    }
    if (s->blocked != NULL && c2s_block_outbound(s, st, &to, est, type))
        goto out_free_to; /* XEP-0191: to a JID the user blocked */
    if (est == KN_ENV_ST_PRESENCE && to.str == NULL)
        stanza_presence_state(s, st, type);

    uint16_t rules = 0;
    kn_stanza_t *clean = NULL;
    if (est == KN_ENV_ST_MESSAGE) {
        /* XEP-0280/0313 eligibility for the router; forged XEP-0359
         * stanza-ids out (kn_msgrules.h). */
        rules = kn_msg_rules(st, type);
        clean = kn_msg_strip_sid(st, s->cf->domain);
    }
    kn_stanza_t *stamped =
        kn_stanza_with_attr(clean ? clean : st, 0, "from", kn_jid_str(&s->jid));
    kn_stanza_unref(&clean);
    kn_buf_reset(&stanza_scratch);
    kn_stanza_serialize(stamped, &stanza_scratch, NULL);
    kn_stanza_unref(&stamped);

    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = est;
    e.type = type;
    e.from = kn_jid_str(&s->jid);
    e.from_len = kn_jid_len(&s->jid);
    if (to.str != NULL) {
        e.to = kn_jid_str(&to);
        e.to_len = kn_jid_len(&to);
    } else if (est != KN_ENV_ST_PRESENCE) {
        e.to = kn_jid_str(&s->jid);
        e.to_len = kn_jid_bare_len(&s->jid);
    }
    e.conn_id = s->ops->conn_id(s->ud);
    e.flags = rules;
    if (iq_ns != NULL) {
        e.node = iq_ns;
        e.node_len = strlen(iq_ns);
    }
    c2s_stream_route(s, &e, stanza_scratch.data, stanza_scratch.len);
    if (stanza_scratch.cap > 65536)
        kn_buf_free(&stanza_scratch);
out_free_to:
    kn_jid_free(&to);
    return C2S_ACT_MORE;
}

/* Whether the start tag of p[0..len) has a 'to' attribute; *name_end gets
 * the offset just after the element name. The payload was written by
 * kn_stanza_serialize, so it is well formed. */
static bool deliver_has_to(const char *p, size_t len, size_t *name_end)
{
    size_t i = 1;
    while (i < len && p[i] != ' ' && p[i] != '>' && p[i] != '/' &&
           p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
        i++;
    *name_end = i;
    for (;;) {
        while (i < len &&
               (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
            i++;
        if (i >= len || p[i] == '>' || p[i] == '/')
            return false;
        size_t ns = i;
        while (i < len && p[i] != '=' && p[i] != ' ')
            i++;
        size_t nl = i - ns;
        while (i < len && p[i] != '\'' && p[i] != '"')
            i++;
        if (i >= len)
            return false;
        char q = p[i++];
        const char *e = memchr(p + i, q, len - i);
        if (e == NULL)
            return false;
        if (nl == 2 && memcmp(p + ns, "to", 2) == 0)
            return true;
        i = (size_t)(e - p) + 1;
    }
}

void c2s_stanza_deliver(c2s_stream_t *s, const void *payload, size_t len)
{
    const char *p = payload;
    size_t name_end = 0;
    kn_metric_inc(c2s_metrics.stanzas_out);
    if (len < 2 || p[0] != '<' || s->jid.str == NULL ||
        deliver_has_to(p, len, &name_end)) {
        kn_buf_append(s->out, p, len);
        return;
    }
    kn_buf_append(s->out, p, name_end);
    kn_buf_append_str(s->out, " to='");
    kn_buf_append_xml_escaped(s->out, kn_jid_str(&s->jid), kn_jid_len(&s->jid));
    kn_buf_append_str(s->out, "'");
    kn_buf_append(s->out, p + name_end, len - name_end);
}
