/*
 * c2s_bind.c - resource binding (RFC 6120 7) on an authenticated stream,
 * and the SESSION_UP that tells the router about the new full JID.
 *
 * No resource (or an empty one) gets a server-generated one; a resource
 * that does not survive resourceprep gets <bad-request/>. A full JID that
 * is already bound somewhere in the cluster is the router's business: it
 * kicks the older session with <conflict/> when our SESSION_UP arrives
 * (R-DROP-7), so binding itself never fails with <conflict/>.
 *
 * With max_sessions set, the bind first asks the owner how many other
 * resources of the account are bound cluster-wide (the router's session
 * table in Redis, c2s_lockout.c); at the limit the client gets
 * <resource-constraint/> (RFC 6120 7.6.2.1: "the account has reached a
 * limit on the number of simultaneous connected resources") and stays
 * authenticated and unbound, so it may try again after closing another
 * session. Two binds racing on two nodes may both pass: the limit is a
 * bound against abuse, not an exact count.
 */
#include <stdio.h>
#include <string.h>

#include "c2s_stream.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"

static void bind_reply_error_text(c2s_stream_t *s, const kn_stanza_t *iq,
                                  kn_stanza_err_t cond, const char *text)
{
    kn_stanza_t *r = kn_stanza_error_reply(iq, cond, text);
    if (r != NULL) {
        c2s_stream_write_stanza(s, r);
        kn_stanza_unref(&r);
    }
}

static void bind_reply_error(c2s_stream_t *s, const kn_stanza_t *iq,
                             kn_stanza_err_t cond)
{
    bind_reply_error_text(s, iq, cond, NULL);
}

static void bind_finish(c2s_stream_t *s, const kn_stanza_t *st, kn_jid_t *j);

static void bind_write_result(c2s_stream_t *s, const kn_stanza_t *iq)
{
    kn_buf_append_str(s->out, "<iq type='result'");
    const char *id = kn_stanza_id(iq);
    if (id != NULL) {
        kn_buf_append_str(s->out, " id='");
        kn_buf_append_xml_escaped(s->out, id, strlen(id));
        kn_buf_append_str(s->out, "'");
    }
    kn_buf_append_str(s->out, "><bind xmlns='" C2S_NS_BIND "'><jid>");
    kn_buf_append_xml_escaped(s->out, kn_jid_str(&s->jid), kn_jid_len(&s->jid));
    kn_buf_append_str(s->out, "</jid></bind></iq>");
}

c2s_act_t c2s_bind_handle(c2s_stream_t *s, const kn_stanza_t *st)
{
    if (kn_stanza_kind(st) != KN_STANZA_IQ)
        return c2s_stream_fail(s, KN_SE_NOT_AUTHORIZED, "stanza before bind");
    const char *type = kn_stanza_type(st);
    int b = kn_stanza_child(st, 0, "bind", C2S_NS_BIND);
    if (b < 0 || type == NULL || strcmp(type, "set") != 0) {
        if (kn_stanza_child(st, 0, "session", C2S_NS_SESSION) >= 0 ||
            type == NULL || strcmp(type, "get") == 0 ||
            strcmp(type, "set") == 0) {
            bind_reply_error(s, st, KN_STE_NOT_ALLOWED);
            return C2S_ACT_MORE;
        }
        return C2S_ACT_MORE; /* a result or error: nothing to answer */
    }
    int r = kn_stanza_child(st, b, "resource", C2S_NS_BIND);
    size_t rlen = 0;
    const char *res = r >= 0 ? kn_stanza_cdata(st, r, &rlen) : "";
    char gen[32];
    if (rlen == 0) {
        unsigned char rnd[8];
        c2s_random(rnd, sizeof(rnd));
        int n = 0;
        n += snprintf(gen, sizeof(gen), "kiln-");
        for (size_t i = 0; i < sizeof(rnd); i++)
            n += snprintf(gen + n, sizeof(gen) - (size_t)n, "%02x", rnd[i]);
        res = gen;
        rlen = (size_t)n;
    }
    kn_buf_t raw = KN_BUF_INIT;
    kn_buf_printf(&raw, "%s@%s/", s->user, s->cf->domain);
    kn_buf_append(&raw, res, rlen);
    kn_jid_t j = KN_JID_INIT;
    int rc = memchr(res, '\0', rlen) ? -KN_EINVAL
                                     : kn_jid_parse(&j, raw.data, raw.len);
    kn_buf_free(&raw);
    if (rc < 0 || kn_jid_is_bare(&j)) {
        kn_jid_free(&j);
        bind_reply_error(s, st, KN_STE_BAD_REQUEST);
        return C2S_ACT_MORE;
    }
    if (s->cf->max_sessions > 0 && s->ops->session_count != NULL) {
        s->bind_iq = kn_stanza_ref((kn_stanza_t *)st);
        s->bind_jid = j;
        s->pause = C2S_PAUSE_BIND;
        char bare[KN_JID_MAX];
        snprintf(bare, sizeof(bare), "%s@%s", s->user, s->cf->domain);
        s->ops->session_count(s->ud, bare, kn_jid_str(&s->bind_jid));
        return C2S_ACT_PAUSED;
    }
    bind_finish(s, st, &j);
    return C2S_ACT_MORE;
}

void c2s_bind_done(c2s_stream_t *s, long others)
{
    kn_stanza_t *iq = s->bind_iq;
    kn_jid_t j = s->bind_jid;
    s->bind_iq = NULL;
    s->bind_jid = (kn_jid_t)KN_JID_INIT;
    KN_ASSERT(iq != NULL);
    if (others >= 0 && (size_t)others >= s->cf->max_sessions) {
        char text[96];
        snprintf(text, sizeof(text),
                 "Too many resources bound for this account (at most %zu)",
                 s->cf->max_sessions);
        kn_log_info("c2s: bind of %s refused: %ld resources bound already",
                    kn_jid_str(&j), others);
        kn_jid_free(&j);
        bind_reply_error_text(s, iq, KN_STE_RESOURCE_CONSTRAINT, text);
    } else {
        bind_finish(s, iq, &j);
    }
    kn_stanza_unref(&iq);
}

/* Bind *j (taken) and answer st. */
static void bind_finish(c2s_stream_t *s, const kn_stanza_t *st, kn_jid_t *j)
{
    s->jid = *j;
    *j = (kn_jid_t)KN_JID_INIT;
    s->state = C2S_ST_SESSION;
    bind_write_result(s, st);

    kn_env_t e = {0};
    e.kind = KN_ENV_SESSION_UP;
    e.from = kn_jid_str(&s->jid);
    e.from_len = kn_jid_len(&s->jid);
    e.conn_id = s->ops->conn_id(s->ud);
    e.priority = 0;
    e.flags = 0;
    c2s_stream_route(s, &e, NULL, 0);
    s->session_up = true;
    /* XEP-0191: deliveries wait for the block list (c2s_block.c). */
    s->block_ready = false;
    if (s->ops->block_wait != NULL)
        s->ops->block_wait(s->ud);
    kn_log_debug("c2s: bound %s", kn_jid_str(&s->jid));
}
