/*
 * pres_push.c - push notifications (XEP-0357): <enable/> and <disable/>
 * from a user's resources, the publish to each app server when a message
 * is stored offline, and the app servers' answers.
 *
 * A note on order. Registrations are written through the ordered pool
 * (pres_pg_ordered), as offline messages are; the offline insert reads
 * the user's registrations in the same statement, so a message stored
 * after the enable's result went out is always notified, and none after
 * the disable's.
 *
 * A note on answers. A publish is an IQ from the user's bare JID; the
 * router hands the app server's result or error (to that bare JID) back
 * to us. Publishes in flight are kept by id in insertion order (uthash
 * keeps it), at most PUSH_PENDING_MAX of them and none older than
 * PUSH_PENDING_TTL seconds: the oldest are forgotten first, so an app
 * server that never answers costs nothing lasting. An error whose type and
 * condition are final (push_error_is_transient) deletes that registration
 * (XEP-0357 section 6); a transient one, a result, or no answer at all
 * keeps it. A publish the router could not deliver (the app server's
 * session or node is gone) comes back as a BOUNCE and also keeps it: the
 * app server may come back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_xml.h"
#include "pres.h"
#include "pres_push.h"

#define PUSH_PENDING_MAX 4096
#define PUSH_PENDING_TTL 300.0

struct pres_push_pending {
    char *id;   /* key: the publish's iq id */
    char *bare; /* the user */
    char *jid;  /* the registration */
    char *node;
    double at; /* when sent */
    UT_hash_handle hh;
};

static void push_pending_del(pres_t *p, pres_push_pending_t *e)
{
    HASH_DEL(p->push_pending, e);
    p->push_npending--;
    free(e->id);
    free(e->bare);
    free(e->jid);
    free(e->node);
    free(e);
}

void pres_push_free(pres_t *p)
{
    pres_push_pending_t *e, *tmp;
    HASH_ITER(hh, p->push_pending, e, tmp)
    {
        push_pending_del(p, e);
    }
}

static double push_now(const pres_t *p)
{
    return p->loop != NULL ? ev_now(p->loop) : 0.0;
}

/* Forget the oldest entries beyond the bound or the age limit. */
static void push_pending_trim(pres_t *p)
{
    double now = push_now(p);
    while (p->push_pending != NULL &&
           (p->push_npending >= PUSH_PENDING_MAX ||
            now - p->push_pending->at > PUSH_PENDING_TTL))
        push_pending_del(p, p->push_pending);
}

/* ---- enable, disable ------------------------------------------------------
 */

typedef struct push_job {
    pres_t *p;
    kn_stanza_t *iq;
    char *bare;
} push_job_t;

static void push_job_free(push_job_t *j)
{
    kn_stanza_unref(&j->iq);
    free(j->bare);
    free(j);
}

static void push_enabled(const PGresult *res, int err, void *arg)
{
    push_job_t *j = arg;
    if (err != 0) {
        kn_log_warn("push enable for %s failed: %s", j->bare,
                    res ? PQresultErrorMessage(res) : kn_strerror(err));
        pres_send_error(j->p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
    } else if (PQntuples(res) == 0) {
        /* presenced.push_max_registrations reached. */
        pres_send_error(j->p, j->iq, KN_STE_POLICY_VIOLATION);
    } else {
        pres_send_result(j->p, j->iq);
    }
    push_job_free(j);
}

static void push_disabled(const PGresult *res, int err, void *arg)
{
    push_job_t *j = arg;
    if (err != 0) {
        kn_log_warn("push disable for %s failed: %s", j->bare,
                    res ? PQresultErrorMessage(res) : kn_strerror(err));
        pres_send_error(j->p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
    } else {
        pres_send_result(j->p, j->iq);
    }
    push_job_free(j);
}

void pres_push_iq(pres_t *p, const kn_stanza_t *st)
{
    char *bare = pres_iq_own_bare(p, st);
    if (bare == NULL) {
        /* Only the account's own resources manage its registrations. */
        pres_send_error(p, st, KN_STE_FORBIDDEN);
        return;
    }
    push_req_t req;
    kn_stanza_err_t cond;
    if (push_req_parse(st, &req, &cond) < 0) {
        pres_send_error(p, st, cond);
        free(bare);
        return;
    }
    push_job_t *j = kn_calloc(1, sizeof(*j));
    j->p = p;
    j->iq = kn_stanza_ref((kn_stanza_t *)st);
    j->bare = bare;
    char *local = pres_localpart(bare);
    if (req.op == PUSH_OP_ENABLE) {
        char max[24];
        snprintf(max, sizeof(max), "%lld", p->conf.push_max_registrations);
        const char *params[] = {local,       req.jid,   req.node,
                                req.options, req.muted, max};
        kn_pg_query(pres_pg_ordered(p),
                    "insert into push_registrations (username, jid, node,"
                    " options, muted) select $1, $2, $3, $4,"
                    " coalesce(string_to_array(nullif($5, ''), E'\\n'),"
                    " '{}') where (select count(*) from push_registrations"
                    " where username = $1 and not (jid = $2 and node = $3))"
                    " < $6::int on conflict (username, jid, node) do update"
                    " set options = excluded.options, muted ="
                    " excluded.muted returning 1",
                    6, params, push_enabled, j);
        kn_log_info("push: %s enables %s node %s", bare, req.jid, req.node);
    } else {
        const char *params[] = {local, req.jid, req.node ? req.node : ""};
        kn_pg_query(pres_pg_ordered(p),
                    "delete from push_registrations where username = $1 and"
                    " jid = $2 and ($3 = '' or node = $3)",
                    3, params, push_disabled, j);
        kn_log_info("push: %s disables %s node %s", bare, req.jid,
                    req.node ? req.node : "(all)");
    }
    free(local);
    push_req_free(&req);
}

/* ---- notifications --------------------------------------------------------
 */

/* The text of msg's first <body/> into out (cut at PUSH_BODY_MAX). */
static bool push_body(const kn_stanza_t *msg, kn_buf_t *out)
{
    int b = kn_stanza_child(msg, 0, "body", NULL);
    if (b < 0)
        return false;
    kn_stanza_text(msg, b, out);
    out->len =
        push_utf8_cut(out->data ? out->data : "", out->len, PUSH_BODY_MAX);
    return true;
}

void pres_push_stored(pres_t *p, const char *bare, const kn_stanza_t *msg,
                      const PGresult *res, int col)
{
    int n = PQntuples(res);
    kn_buf_t body = KN_BUF_INIT;
    bool has_body = p->conf.push_include_body && push_body(msg, &body);
    for (int i = 0; i < n; i++) {
        if (PQgetisnull(res, i, col))
            continue;
        const char *jid = PQgetvalue(res, i, col);
        const char *node = PQgetvalue(res, i, col + 1);
        kn_stanza_t *opts = NULL;
        if (!PQgetisnull(res, i, col + 2)) {
            const char *xml = PQgetvalue(res, i, col + 2);
            if (kn_xml_parse_stanza(xml, strlen(xml), NULL, &opts) < 0)
                opts = NULL; /* cannot happen: we serialized it */
        }
        char id[40];
        snprintf(id, sizeof(id), "push-%lu", ++p->push_seq);
        push_note_t note = {
            .id = id,
            .from = bare,
            .to = jid,
            .node = node,
            .count = strtoll(PQgetvalue(res, i, col + 3), NULL, 10),
            .sender = kn_stanza_from(msg),
            .body = has_body ? (body.data ? body.data : "") : NULL,
            .body_len = body.len,
            .options = opts,
        };
        kn_stanza_t *st = push_note_build(p->b, &note);
        pres_send(p, st, 0);
        kn_stanza_unref(&st);
        kn_stanza_unref(&opts);
        push_pending_trim(p);
        pres_push_pending_t *e = kn_calloc(1, sizeof(*e));
        e->id = kn_strdup(id);
        e->bare = kn_strdup(bare);
        e->jid = kn_strdup(jid);
        e->node = kn_strdup(node);
        e->at = push_now(p);
        HASH_ADD_KEYPTR(hh, p->push_pending, e->id, strlen(e->id), e);
        p->push_npending++;
        p->stats.push_sent++;
        kn_log_debug("push: %s -> %s node %s (%s)", bare, jid, node, id);
    }
    kn_buf_free(&body);
}

/* ---- answers --------------------------------------------------------------
 */

/* Whether from (as stamped by the app server's c2s node or server) is
 * the registration's JID: the same JID, or a full JID of it. */
static bool push_from_matches(const char *from, const char *jid)
{
    size_t n = strlen(jid);
    return strncmp(from, jid, n) == 0 && (from[n] == '\0' || from[n] == '/');
}

static void push_removed(const PGresult *res, int err, void *arg)
{
    char *what = arg;
    if (err != 0)
        kn_log_warn("push: removing %s failed: %s", what,
                    res ? PQresultErrorMessage(res) : kn_strerror(err));
    free(what);
}

bool pres_push_reply(pres_t *p, const kn_stanza_t *st)
{
    const char *id = kn_stanza_id(st);
    const char *from = kn_stanza_from(st);
    if (id == NULL || from == NULL || strncmp(id, "push-", 5) != 0)
        return false;
    pres_push_pending_t *e = NULL;
    HASH_FIND_STR(p->push_pending, id, e);
    if (e == NULL || !push_from_matches(from, e->jid))
        return false;
    const char *type = kn_stanza_type(st);
    if (type != NULL && strcmp(type, "error") == 0) {
        if (push_error_is_transient(st)) {
            kn_log_info("push: %s node %s for %s: transient error, kept",
                        e->jid, e->node, e->bare);
        } else {
            kn_log_info("push: %s node %s for %s answered an error: "
                        "registration removed",
                        e->jid, e->node, e->bare);
            p->stats.push_removed++;
            char *local = pres_localpart(e->bare);
            const char *params[] = {local, e->jid, e->node};
            kn_buf_t what = KN_BUF_INIT;
            kn_buf_printf(&what, "%s node %s of %s", e->jid, e->node, e->bare);
            kn_pg_query(pres_pg_ordered(p),
                        "delete from push_registrations where username = $1"
                        " and jid = $2 and node = $3",
                        3, params, push_removed, kn_strdup(what.data));
            kn_buf_free(&what);
            free(local);
        }
    }
    push_pending_del(p, e);
    return true;
}
