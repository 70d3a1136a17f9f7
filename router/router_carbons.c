/*
 * router_carbons.c - XEP-0280 message carbons.
 *
 * A note on where carbons live. The carbons flag of a session is in the
 * router's table (router_sess_t.carbons), next to the session's
 * connection: the router sees every message and knows every resource of a
 * bare JID on every node, so it makes the copies itself, one STANZA per
 * carbons-enabled session (its node writes it without parsing). The
 * enable/disable IQ is answered here: the flag is set before the client
 * can see the result, so a message routed after the answer is copied.
 * The answer carries KN_F_CARBONS_SET (+ KN_F_CARBONS when on) and c2s
 * keeps the state on its stream, so it re-announces it (SESSION_UP with
 * KN_F_CARBONS) after a router restart.
 *
 * Which messages: c2s decides with kn_msg_rules() on the parsed stanza
 * (XEP-0280 section 6, XEP-0334 <no-copy/>) and sets KN_F_CARBON_OK; the
 * router never parses a message. Copies are <message from=bare to=full>
 * <sent|received xmlns='urn:xmpp:carbons:2'><forwarded
 * xmlns='urn:xmpp:forward:0'>original</forwarded>...; they carry
 * KN_F_EXTRA_COPY | KN_F_NO_OFFLINE so a vanished target drops them
 * (never stored offline, never rerouted, never answered).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kn_log.h"
#include "kn_msgrules.h"
#include "kn_proto.h"
#include "kn_stanza.h"
#include "kn_xml.h"
#include "router.h"

static void carbons_reply(router_t *r, router_node_t *n, const router_sess_t *s,
                          const kn_stanza_t *q, bool on)
{
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_iq_result(b, q);
    kn_stanza_t *res = kn_stanza_builder_finish(b);
    kn_stanza_builder_free(&b);
    kn_buf_t out = KN_BUF_INIT;
    kn_stanza_serialize(res, &out, NULL);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_IQ;
    e.type = KN_ENV_TYPE_RESULT;
    e.to = s->full;
    e.to_len = strlen(s->full);
    e.conn_id = s->conn;
    e.flags = KN_F_CARBONS_SET | (on ? KN_F_CARBONS : 0);
    router_payload_t rp = {out.data, out.len, NULL};
    router_emit(r, n, &e, &rp);
    kn_buf_free(&out);
    kn_stanza_unref(&res);
}

bool router_carbons_iq(router_t *r, router_node_t *src, const kn_env_t *env,
                       const router_payload_t *pl)
{
    if (env->node_len != strlen(KN_NS_CARBONS) ||
        memcmp(env->node, KN_NS_CARBONS, env->node_len) != 0)
        return false;
    kn_stanza_t *q = NULL;
    if (kn_xml_parse_stanza(pl->data, pl->len, NULL, &q) < 0)
        return false;
    int c = kn_stanza_first_child(q, 0);
    const char *name = c >= 0 ? kn_stanza_name(q, c) : "";
    bool on = strcmp(name, "enable") == 0;
    router_sess_t *s = router_sess_find(r, env->from, env->from_len);
    /* Only the session itself, to its own account or the server. */
    bool own = (env->to_len == strlen(r->domain) &&
                memcmp(env->to, r->domain, env->to_len) == 0) ||
               (s != NULL && env->to_len == s->bare_len &&
                memcmp(env->to, s->full, s->bare_len) == 0);
    if (env->type != KN_ENV_TYPE_SET || (!on && strcmp(name, "disable"))) {
        router_bounce(r, src, env, pl, KN_STE_BAD_REQUEST);
    } else if (s == NULL || s->conn != env->conn_id || !own) {
        router_bounce(r, src, env, pl, KN_STE_FORBIDDEN);
    } else {
        s->carbons = on;
        router_node_t *n = r->nodes[kn_conn_node(s->conn)];
        if (n != NULL && n->alive)
            carbons_reply(r, n, s, q, on);
        kn_log_debug("carbons %s for %s", on ? "on" : "off", s->full);
    }
    kn_stanza_unref(&q);
    return true;
}

/* One copy of pl (with the stanza-id of `by` when sid != 0) wrapped in
 * <kind/> to session s. */
static void carbons_copy(router_t *r, const kn_env_t *env,
                         const router_payload_t *pl, const router_sess_t *s,
                         const char *kind, uint64_t sid)
{
    router_node_t *n = r->nodes[kn_conn_node(s->conn)];
    if (n == NULL || !n->alive)
        return;
    kn_buf_t *o = &r->carbon_scratch;
    kn_buf_reset(o);
    kn_buf_append_str(o, "<message xmlns='jabber:client' from='");
    kn_buf_append_xml_escaped(o, s->full, s->bare_len);
    kn_buf_append_str(o, "' to='");
    kn_buf_append_xml_escaped(o, s->full, strlen(s->full));
    kn_buf_append_str(o, "'");
    if (env->type != KN_ENV_TYPE_NORMAL) {
        kn_buf_append_str(o, " type='");
        kn_buf_append_str(o, kn_env_type_name(env->type));
        kn_buf_append_str(o, "'");
    }
    kn_buf_append_str(o, "><");
    kn_buf_append_str(o, kind);
    kn_buf_append_str(o, " xmlns='" KN_NS_CARBONS
                         "'><forwarded xmlns='" KN_NS_FORWARD "'>");
    if (sid == 0 ||
        !router_sid_insert(o, pl->data, pl->len, s->full, s->bare_len, sid))
        kn_buf_append(o, pl->data, pl->len);
    kn_buf_append_str(o, "</forwarded></");
    kn_buf_append_str(o, kind);
    kn_buf_append_str(o, "></message>");
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = env->type;
    e.from = s->full;
    e.from_len = s->bare_len;
    e.to = s->full;
    e.to_len = strlen(s->full);
    e.conn_id = s->conn;
    e.flags = KN_F_EXTRA_COPY | KN_F_NO_OFFLINE;
    router_payload_t cp = {o->data, o->len, NULL};
    router_emit(r, n, &e, &cp);
    r->stats.routed++;
}

void router_carbons_sent(router_t *r, const kn_env_t *env,
                         const router_payload_t *pl, uint64_t sid)
{
    router_sess_t *self = router_sess_find(r, env->from, env->from_len);
    if (self == NULL)
        return;
    for (const router_sess_t *s = self->bare->sessions; s; s = s->next) {
        if (s == self || !s->carbons)
            continue;
        if (env->to_len == strlen(s->full) &&
            memcmp(env->to, s->full, env->to_len) == 0)
            continue; /* to that very resource: it gets the message */
        carbons_copy(r, env, pl, s, "sent", sid);
    }
}

void router_carbons_received(router_t *r, const kn_env_t *env,
                             const router_payload_t *pl, const router_bare_t *b,
                             const router_sess_t *direct, int best)
{
    if (b == NULL)
        return;
    /* To oneself: the <sent/> copies already reached the other resources. */
    size_t fb = env->from_len;
    const char *slash = memchr(env->from, '/', env->from_len);
    if (slash != NULL)
        fb = (size_t)(slash - env->from);
    if (fb == strlen(b->bare) && memcmp(env->from, b->bare, fb) == 0)
        return;
    for (const router_sess_t *s = b->sessions; s; s = s->next) {
        if (!s->carbons || s == direct)
            continue;
        if (direct == NULL && best >= 0 && s->avail && s->prio == best)
            continue; /* got the message itself */
        carbons_copy(r, env, pl, s, "received", 0);
    }
}
