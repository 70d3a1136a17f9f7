/*
 * pres_register.c - account self-service for a logged-in user (XEP-0077
 * jabber:iq:register addressed to the server): the registration query,
 * password change (§3.3) and account removal (§3.2).
 *
 * A password change derives fresh SCRAM credentials with the rule kilnctl
 * uses (kn_scram_creds_from_password) and updates the users row, then
 * tombstones the row's copy in the credential cache and tells every c2s
 * node (kn_credcache.h) before answering, so the new password works at
 * once and the old one no longer does, on every node. Sessions stay up
 * (as in Prosody and ejabberd).
 *
 * Removal deletes the users row (every per-user table cascades), drops
 * the cached copy the same way, answers
 * the IQ, then asks the router to end each of the account's sessions on
 * any node with reason "removed", which c2s turns into a <not-authorized/>
 * stream error (what Prosody sends). The result is routed before the
 * kicks on the same path, so the client sees it first.
 *
 * Creating accounts (before authentication) is c2s's business; here a
 * set that names another user is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_scram.h"
#include "pres.h"

#define NS_REGISTER "jabber:iq:register"

typedef struct reg_job {
    pres_t *p;
    kn_stanza_t *iq;
    char *bare;
} reg_job_t;

static void reg_job_free(reg_job_t *j)
{
    kn_stanza_unref(&j->iq);
    free(j->bare);
    free(j);
}

/* Child element text of query q named name, or NULL when absent. */
static char *reg_field(const kn_stanza_t *st, int q, const char *name)
{
    int c = kn_stanza_child(st, q, name, NS_REGISTER);
    if (c < 0)
        return NULL;
    size_t len;
    const char *t = kn_stanza_cdata(st, c, &len);
    return kn_strndup(t ? t : "", t ? len : 0);
}

static void reg_get(pres_t *p, const kn_stanza_t *st, const char *bare)
{
    char *local = pres_localpart(bare);
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_iq_result(b, st);
    kn_stanza_builder_start(b, "query", NS_REGISTER);
    kn_stanza_builder_start(b, "registered", NULL);
    kn_stanza_builder_end(b);
    kn_stanza_builder_start(b, "username", NULL);
    kn_stanza_builder_text(b, local, strlen(local));
    kn_stanza_builder_end(b);
    kn_stanza_builder_start(b, "password", NULL);
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
    kn_stanza_t *r = kn_stanza_builder_finish(b);
    pres_send(p, r, 0);
    kn_stanza_unref(&r);
    free(local);
}

static void reg_passwd_changed(void *arg)
{
    reg_job_t *j = arg;
    kn_log_info("register: password of %s changed", j->bare);
    pres_send_result(j->p, j->iq);
    reg_job_free(j);
}

static void reg_passwd_done(const PGresult *res, int err, void *arg)
{
    reg_job_t *j = arg;
    if (err != 0) {
        pres_send_error(j->p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
    } else if (atoi(PQcmdTuples((PGresult *)res)) != 1) {
        /* removed meanwhile */
        pres_send_error(j->p, j->iq, KN_STE_ITEM_NOT_FOUND);
    } else {
        pres_creds_invalidate(j->p, &j->bare, 1, reg_passwd_changed, j);
        return;
    }
    reg_job_free(j);
}

static void reg_passwd(pres_t *p, const kn_stanza_t *st, const char *bare,
                       const char *password)
{
    kn_scram_creds_t c[2];
    int rc = kn_scram_creds_from_password(password, &c[0], &c[1]);
    if (rc < 0) {
        pres_send_error(p, st,
                        rc == -KN_EINVAL ? KN_STE_NOT_ACCEPTABLE
                                         : KN_STE_INTERNAL_SERVER_ERROR);
        return;
    }
    kn_scram_sql_t q;
    kn_scram_creds_sql(&c[0], &c[1], &q);
    char *local = pres_localpart(bare);
    const char *params[] = {local,  q.p[0], q.p[1], q.p[2],
                            q.p[3], q.p[4], q.p[5], q.p[6]};
    reg_job_t *j = kn_calloc(1, sizeof(*j));
    j->p = p;
    j->iq = kn_stanza_ref((kn_stanza_t *)st);
    j->bare = kn_strdup(bare);
    kn_pg_query(p->pg, KN_SQL_USER_SET_CREDS, 8, params, reg_passwd_done, j);
    free(local);
    OPENSSL_cleanse(c, sizeof(c));
    OPENSSL_cleanse(&q, sizeof(q));
}

static void reg_removed(void *arg)
{
    reg_job_t *j = arg;
    pres_send_result(j->p, j->iq);
    pres_roster_invalidate(j->p, j->bare);
    pres_admin_kick(j->p, j->bare, KN_ENV_REASON_REMOVED);
    reg_job_free(j);
}

static void reg_remove_done(const PGresult *res, int err, void *arg)
{
    reg_job_t *j = arg;
    if (err != 0) {
        pres_send_error(j->p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
    } else {
        if (atoi(PQcmdTuples((PGresult *)res)) == 1)
            kn_log_info("register: account %s removed by its owner", j->bare);
        pres_creds_invalidate(j->p, &j->bare, 1, reg_removed, j);
        return;
    }
    reg_job_free(j);
}

static void reg_remove(pres_t *p, const kn_stanza_t *st, const char *bare)
{
    char *local = pres_localpart(bare);
    const char *params[] = {local};
    reg_job_t *j = kn_calloc(1, sizeof(*j));
    j->p = p;
    j->iq = kn_stanza_ref((kn_stanza_t *)st);
    j->bare = kn_strdup(bare);
    kn_pg_query(p->pg, "delete from users where username = $1", 1, params,
                reg_remove_done, j);
    free(local);
}

void pres_register_iq(pres_t *p, const kn_stanza_t *st)
{
    char *bare = pres_iq_own_bare(p, st);
    const char *to = kn_stanza_to(st);
    /* Only the account's own server answers (to = domain or none). */
    if (bare == NULL || (to != NULL && strcmp(to, p->domain) != 0)) {
        free(bare);
        pres_send_error(p, st, KN_STE_FORBIDDEN);
        return;
    }
    int q = kn_stanza_child(st, 0, "query", NS_REGISTER);
    const char *type = kn_stanza_type(st);
    if (q < 0) {
        pres_send_error(p, st, KN_STE_BAD_REQUEST);
    } else if (strcmp(type, "get") == 0) {
        reg_get(p, st, bare);
    } else if (p->pg == NULL) {
        pres_send_error(p, st, KN_STE_SERVICE_UNAVAILABLE);
    } else if (kn_stanza_child(st, q, "remove", NS_REGISTER) >= 0) {
        reg_remove(p, st, bare);
    } else {
        char *user = reg_field(st, q, "username");
        char *pw = reg_field(st, q, "password");
        char *local = pres_localpart(bare);
        if (pw == NULL || user == NULL) {
            pres_send_error(p, st, KN_STE_BAD_REQUEST);
        } else if (strcmp(user, local) != 0 && strcmp(user, bare) != 0) {
            /* §3.3: only one's own password; other accounts need kilnctl */
            pres_send_error(p, st, KN_STE_NOT_AUTHORIZED);
        } else {
            reg_passwd(p, st, bare, pw);
        }
        if (pw != NULL) {
            OPENSSL_cleanse(pw, strlen(pw));
            free(pw);
        }
        free(user);
        free(local);
    }
    free(bare);
}
