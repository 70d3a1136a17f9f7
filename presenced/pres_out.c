/*
 * pres_out.c - what presenced sends, and small JID helpers.
 *
 * A note on multicast addressing. A MULTICAST payload is written as-is to
 * every target, so it cannot carry a per-recipient `to`. Presence
 * broadcasts and roster pushes therefore go out WITHOUT a `to` attribute
 * (RFC 6120 8.1.1.1: a stanza with no `to` is addressed to the
 * receiving account), in ONE multicast for all recipients, which the
 * router splits per c2s node: the wire cost grows with nodes touched,
 * not with recipients (R-PERF). Stanzas for one session (probe answers,
 * contacts' presence on login, offline messages) are STANZA envelopes to
 * the full JID, with `to` set; offline messages also name the connection
 * and their row (pres_send_row, KN_F_ACK_WANTED).
 */
#include <string.h>
#include <time.h>

#include "kn_env_stanza.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "kn_xmpp_err.h"
#include "pres.h"

void pres_send(pres_t *p, const kn_stanza_t *st, uint16_t flags)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    if (kn_env_from_stanza(&e, st) < 0)
        return;
    e.flags = flags;
    kn_buf_reset(&p->out);
    kn_stanza_serialize(st, &p->out, NULL);
    p->sink.send(p->sink.ud, &e, p->out.data, p->out.len);
}

void pres_send_row(pres_t *p, const kn_stanza_t *st, uint64_t conn,
                   uint64_t row)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    if (kn_env_from_stanza(&e, st) < 0)
        return;
    e.flags = KN_F_ACK_WANTED;
    e.conn_id = conn;
    e.ack_id = row;
    kn_buf_reset(&p->out);
    kn_stanza_serialize(st, &p->out, NULL);
    p->sink.send(p->sink.ud, &e, p->out.data, p->out.len);
}

void pres_send_to(pres_t *p, const kn_stanza_t *st, const char *to)
{
    kn_stanza_t *t = kn_stanza_with_attr(st, 0, "to", to);
    pres_send(p, t, 0);
    kn_stanza_unref(&t);
}

void pres_multicast(pres_t *p, const kn_stanza_t *st, const uint64_t *targets,
                    size_t n)
{
    pres_multicast_flags(p, st, targets, n, 0);
}

void pres_multicast_flags(pres_t *p, const kn_stanza_t *st,
                          const uint64_t *targets, size_t n, uint16_t flags)
{
    if (n == 0)
        return;
    kn_stanza_t *t = NULL;
    if (kn_stanza_to(st) != NULL) {
        t = kn_stanza_without_attr(st, 0, "to");
        st = t;
    }
    kn_env_t e = {0};
    e.kind = KN_ENV_MULTICAST;
    if (kn_env_from_stanza(&e, st) < 0) {
        kn_stanza_unref(&t);
        return;
    }
    e.flags = flags;
    e.targets = targets;
    e.ntargets = n;
    kn_buf_reset(&p->out);
    kn_stanza_serialize(st, &p->out, NULL);
    p->sink.send(p->sink.ud, &e, p->out.data, p->out.len);
    p->stats.multicast_targets += n;
    kn_stanza_unref(&t);
}

void pres_send_error(pres_t *p, const kn_stanza_t *orig, kn_stanza_err_t cond)
{
    pres_send_error_text(p, orig, cond, NULL);
}

void pres_send_error_text(pres_t *p, const kn_stanza_t *orig,
                          kn_stanza_err_t cond, const char *text)
{
    kn_stanza_t *e = kn_stanza_error_reply(orig, cond, text);
    if (e == NULL)
        return;
    pres_send(p, e, KN_F_NO_OFFLINE);
    kn_stanza_unref(&e);
}

void pres_send_result(pres_t *p, const kn_stanza_t *iq)
{
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_iq_result(b, iq);
    kn_stanza_t *r = kn_stanza_builder_finish(b);
    pres_send(p, r, 0);
    kn_stanza_unref(&r);
}

void pres_target_add(pres_t *p, size_t *n, uint64_t conn)
{
    for (size_t i = 0; i < *n; i++)
        if (p->targets[i] == conn)
            return;
    if (*n == p->targets_cap) {
        p->targets_cap = p->targets_cap ? 2 * p->targets_cap : 64;
        p->targets =
            kn_realloc(p->targets, p->targets_cap * sizeof(*p->targets));
    }
    p->targets[(*n)++] = conn;
}

size_t pres_user_targets(pres_t *p, const pres_user_t *u, bool avail_only)
{
    size_t n = 0;
    for (const pres_sess_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->avail || !avail_only)
            pres_target_add(p, &n, s->conn);
    return n;
}

void pres_stamp(double t, char *buf, size_t size)
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

bool pres_is_local(const pres_t *p, const char *jid)
{
    const char *at = strchr(jid, '@');
    if (at == NULL)
        return false;
    const char *d = at + 1;
    size_t dl = strcspn(d, "/");
    return dl == strlen(p->domain) && memcmp(d, p->domain, dl) == 0;
}

char *pres_localpart(const char *bare)
{
    const char *at = strchr(bare, '@');
    return at ? kn_strndup(bare, (size_t)(at - bare)) : kn_strdup(bare);
}

char *pres_bare_of(const char *jid)
{
    return kn_strndup(jid, strcspn(jid, "/"));
}

void pres_pg_ignore(const PGresult *res, int err, void *arg)
{
    if (err != 0)
        kn_log_warn("%s: %s%s", arg ? (const char *)arg : "query",
                    kn_strerror(err), res ? PQresultErrorMessage(res) : "");
}
