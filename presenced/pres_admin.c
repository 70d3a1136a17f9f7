/*
 * pres_admin.c - operator commands queued by kilnctl (issue 14).
 *
 * kilnctl appends rows to admin_commands (sql/0030_admin.sql); on each
 * poll (the shared-group timer) we take up to 100 of them with one
 * `delete ... returning` and act on them:
 *   kick JID      a KICK to the router for each session of JID (bare: all
 *                 of them); the client gets <policy-violation/>
 *   disable BARE  the same with reason "removed" (<not-authorized/>); the
 *                 account's disabled flag already refuses new logins
 *   announce TEXT a headline message from the domain to every online
 *                 session, on every node (our session table is the
 *                 cluster's: SESSION_UP/DOWN from every c2s node)
 * A row is taken once: if we die between taking and acting it is lost,
 * which an operator sees (nothing happened) and repeats.
 */
#include <stdlib.h>
#include <string.h>

#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "pres.h"

#define ADMIN_BATCH "100"

void pres_admin_kick(pres_t *p, const char *jid, kn_env_reason_t reason)
{
    const char *slash = strchr(jid, '/');
    size_t blen = slash != NULL ? (size_t)(slash - jid) : strlen(jid);
    char *bare = kn_strndup(jid, blen);
    pres_user_t *u = pres_user_find(p, bare);
    size_t n = 0;
    for (pres_sess_t *s = u != NULL ? u->sessions : NULL; s != NULL;
         s = s->next) {
        if (slash != NULL && strcmp(s->full, jid) != 0)
            continue;
        kn_env_t e = {0};
        e.kind = KN_ENV_KICK;
        e.reason = reason;
        e.conn_id = s->conn;
        e.from = s->full;
        e.from_len = strlen(s->full);
        p->sink.send(p->sink.ud, &e, NULL, 0);
        n++;
    }
    kn_log_info("admin: kick %s (%s): %zu session(s)", jid,
                kn_env_reason_name(reason), n);
    free(bare);
}

size_t pres_admin_announce(pres_t *p, const char *text, const char *subject)
{
    size_t n = 0;
    for (pres_user_t *u = p->users; u != NULL; u = u->hh.next) {
        for (pres_sess_t *s = u->sessions; s != NULL; s = s->next) {
            kn_stanza_builder_t *b = p->b;
            kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
            kn_stanza_builder_attr(b, "from", p->domain);
            kn_stanza_builder_attr(b, "to", s->full);
            kn_stanza_builder_attr(b, "type", "headline");
            if (subject != NULL && *subject != '\0') {
                kn_stanza_builder_start(b, "subject", NULL);
                kn_stanza_builder_text(b, subject, strlen(subject));
                kn_stanza_builder_end(b);
            }
            kn_stanza_builder_start(b, "body", NULL);
            kn_stanza_builder_text(b, text, strlen(text));
            kn_stanza_t *st = kn_stanza_builder_finish(b);
            pres_send(p, st, 0);
            kn_stanza_unref(&st);
            n++;
        }
    }
    kn_log_info("admin: announcement sent to %zu session(s)", n);
    return n;
}

static void admin_rows(const PGresult *res, int err, void *arg)
{
    pres_t **slot = arg;
    pres_t *p = *slot;
    free(slot);
    if (p == NULL)
        return;
    p->admin_inflight = NULL;
    if (err != 0) {
        kn_log_debug("admin: poll failed (%s)",
                     res ? PQresultErrorMessage(res) : "no result");
        return;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        const char *kind = PQgetvalue(res, i, 0);
        const char *a = PQgetvalue(res, i, 1);
        if (strcmp(kind, "kick") == 0)
            pres_admin_kick(p, a, KN_ENV_REASON_NONE);
        else if (strcmp(kind, "disable") == 0)
            pres_admin_kick(p, a, KN_ENV_REASON_REMOVED);
        else if (strcmp(kind, "announce") == 0)
            pres_admin_announce(p, a, NULL);
    }
}

void pres_admin_poll(pres_t *p)
{
    if (p->pg == NULL || p->admin_inflight != NULL)
        return;
    pres_t **slot = kn_malloc(sizeof(*slot));
    *slot = p;
    p->admin_inflight = slot;
    kn_pg_query(p->pg,
                "delete from admin_commands where id in (select id from "
                "admin_commands order by id limit " ADMIN_BATCH
                ") returning kind, arg",
                0, NULL, admin_rows, slot);
}
