/*
 * c2s_extdisco.c - XEP-0215 external service discovery, answered by the
 * client's own node (R-AV-2): the STUN/TURN server of the `c2s.extdisco`
 * settings, with TURN credentials in coturn's REST form (use-auth-secret):
 * username = "<expiry unix time>:<user's bare JID>", password =
 * base64(HMAC-SHA1(secret, username)), expires = the same time (ISO 8601),
 * valid for extdisco.ttl seconds. TURN entries need a secret; without a
 * host nothing is configured and the answer is service-unavailable.
 *
 * <services/> (optionally type='stun'|'turn') lists the services;
 * <credentials><service type host/></credentials> answers with the
 * matching services and fresh credentials. Pure stream logic: bytes out
 * to the stream's buffer, the clock passed in by the caller.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "c2s_stream.h"
#include "kn_digest.h"

static void ext_attr(kn_buf_t *o, const char *name, const char *v)
{
    kn_buf_append_str(o, " ");
    kn_buf_append_str(o, name);
    kn_buf_append_str(o, "='");
    kn_buf_append_xml_escaped(o, v, strlen(v));
    kn_buf_append_str(o, "'");
}

static void ext_service(c2s_stream_t *s, const c2s_extdisco_conf_t *x,
                        const char *type, long long port, const char *transport,
                        long long now)
{
    kn_buf_t *o = s->out;
    char pbuf[16];
    snprintf(pbuf, sizeof(pbuf), "%lld", port);
    kn_buf_append_str(o, "<service");
    ext_attr(o, "type", type);
    ext_attr(o, "host", x->host);
    ext_attr(o, "port", pbuf);
    ext_attr(o, "transport", transport);
    if (strcmp(type, "turn") == 0) {
        long long exp = now + x->ttl;
        char user[1200];
        snprintf(user, sizeof(user), "%lld:%.*s", exp,
                 (int)kn_jid_bare_len(&s->jid), kn_jid_str(&s->jid));
        kn_buf_t pw = KN_BUF_INIT;
        kn_hmac_sha1_b64(x->secret, strlen(x->secret), user, strlen(user), &pw);
        time_t t = (time_t)exp;
        struct tm tm;
        gmtime_r(&t, &tm);
        char iso[32];
        strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
        ext_attr(o, "username", user);
        ext_attr(o, "password", pw.data);
        ext_attr(o, "expires", iso);
        ext_attr(o, "restricted", "1");
        kn_buf_free(&pw);
    }
    kn_buf_append_str(o, "/>");
}

/* Whether a service of type (and host, NULL: any) is wanted. */
static bool ext_wants(const char *want_type, const char *want_host,
                      const char *type, const c2s_extdisco_conf_t *x)
{
    if (want_type != NULL && *want_type && strcmp(want_type, type) != 0)
        return false;
    return want_host == NULL || !*want_host || strcmp(want_host, x->host) == 0;
}

bool c2s_extdisco_handle(c2s_stream_t *s, const kn_stanza_t *st, int q,
                         long long now)
{
    const c2s_extdisco_conf_t *x = s->cf->extdisco;
    const char *name = kn_stanza_name(st, q);
    bool creds = strcmp(name, "credentials") == 0;
    if (!creds && strcmp(name, "services") != 0)
        return false;
    bool turn = x != NULL && x->host != NULL && *x->host && x->secret != NULL &&
                *x->secret && x->turn_port > 0;
    bool stun = x != NULL && x->host != NULL && *x->host && x->stun_port > 0;
    const char *want_type = NULL, *want_host = NULL;
    if (creds) {
        int sv = kn_stanza_child(st, q, "service", NULL);
        if (sv >= 0) {
            want_type = kn_stanza_attr(st, sv, "type", NULL);
            want_host = kn_stanza_attr(st, sv, "host", NULL);
        }
    } else {
        want_type = kn_stanza_attr(st, q, "type", NULL);
    }
    bool any = (stun && !creds && ext_wants(want_type, want_host, "stun", x)) ||
               (turn && ext_wants(want_type, want_host, "turn", x));
    if (!any) {
        kn_stanza_t *r = kn_stanza_error_reply(
            st,
            stun || turn ? KN_STE_ITEM_NOT_FOUND : KN_STE_SERVICE_UNAVAILABLE,
            NULL);
        if (r != NULL)
            c2s_stream_write_stanza(s, r);
        kn_stanza_unref(&r);
        return true;
    }
    kn_buf_t *o = s->out;
    kn_buf_append_str(o, "<iq type='result'");
    const char *id = kn_stanza_id(st);
    if (id != NULL)
        ext_attr(o, "id", id);
    ext_attr(o, "from", s->cf->domain);
    kn_buf_append_str(o, " to='");
    kn_buf_append_xml_escaped(o, kn_jid_str(&s->jid), kn_jid_len(&s->jid));
    kn_buf_append_str(o, "'><");
    kn_buf_append_str(o, name);
    kn_buf_append_str(o, " xmlns='" C2S_NS_EXTDISCO "'>");
    if (stun && !creds && ext_wants(want_type, want_host, "stun", x))
        ext_service(s, x, "stun", x->stun_port, "udp", now);
    if (turn && ext_wants(want_type, want_host, "turn", x)) {
        ext_service(s, x, "turn", x->turn_port, "udp", now);
        ext_service(s, x, "turn", x->turn_port, "tcp", now);
    }
    kn_buf_append_str(o, "</");
    kn_buf_append_str(o, name);
    kn_buf_append_str(o, "></iq>");
    return true;
}
