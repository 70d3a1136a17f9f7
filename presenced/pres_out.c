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
 *
 * Bundles. A login sends the new resource the presence of each available
 * contact resource and the last presence of each offline contact: with
 * 100-contact rosters about a hundred stanzas, each its own envelope
 * (serialise, ZeroMQ in three processes, a route lookup). The login flow
 * collects them (pres_bundle_*) into one MULTICAST to the session's
 * connection with KN_F_BUNDLE, whose payload carries each stanza with
 * its own STANZA envelope (kn_env_bundle_add); the router routes it as
 * any multicast (to the node owning the connection), and c2s hands each
 * item to the session as if it had come alone (XEP-0191 filter, XEP-0352,
 * XEP-0198 counting). Items keep their `to`: the bundle is for one
 * account.
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

static void bundle_flush(pres_t *p);

static void send_raw(pres_t *p, const kn_stanza_t *st, uint16_t flags)
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

void pres_send(pres_t *p, const kn_stanza_t *st, uint16_t flags)
{
    bundle_flush(p);
    send_raw(p, st, flags);
}

void pres_send_row(pres_t *p, const kn_stanza_t *st, uint64_t conn,
                   uint64_t row)
{
    bundle_flush(p);
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
    bundle_flush(p);
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

/* ---- bundles ------------------------------------------------------------ */

/* Send what the open bundle holds (it stays open, empty). */
static void bundle_flush(pres_t *p)
{
    if (p->bundle_n == 0)
        return;
    size_t n = p->bundle_n;
    p->bundle_n = 0;
    if (n == 1) {
        send_raw(p, p->bundle_one, 0);
    } else {
        kn_env_t e = {0};
        e.kind = KN_ENV_MULTICAST;
        e.flags = KN_F_BUNDLE;
        e.targets = &p->bundle_conn;
        e.ntargets = 1;
        p->sink.send(p->sink.ud, &e, p->bundle.data, p->bundle.len);
        p->stats.bundles++;
        p->stats.bundled += n;
    }
    kn_stanza_unref(&p->bundle_one);
    kn_buf_reset(&p->bundle);
}

void pres_bundle_begin(pres_t *p, uint64_t conn)
{
    bundle_flush(p);
    p->bundle_conn = conn;
}

void pres_bundle_add_to(pres_t *p, const kn_stanza_t *st, const char *to)
{
    if (p->bundle_conn == 0) {
        if (to != NULL)
            pres_send_to(p, st, to);
        else
            pres_send(p, st, 0);
        return;
    }
    kn_stanza_t *t = to != NULL ? kn_stanza_with_attr(st, 0, "to", to)
                                : kn_stanza_ref((kn_stanza_t *)st);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    if (kn_env_from_stanza(&e, t) < 0) {
        kn_stanza_unref(&t);
        return;
    }
    kn_buf_reset(&p->out);
    kn_stanza_serialize(t, &p->out, NULL);
    if (kn_env_bundle_add(&p->bundle, &e, p->out.data, p->out.len) < 0) {
        kn_stanza_unref(&t); /* a JID past KN_ENV_STR_MAX: never sent */
        return;
    }
    if (p->bundle_n++ == 0)
        p->bundle_one = kn_stanza_ref(t);
    kn_stanza_unref(&t);
    if (p->bundle.len > PRES_BUNDLE_MAX)
        bundle_flush(p);
}

void pres_bundle_end(pres_t *p)
{
    bundle_flush(p);
    p->bundle_conn = 0;
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
