/*
 * pres_adhoc.c - XEP-0133 service administration over XEP-0050 ad-hoc
 * commands, for the admins named in presenced.admins (bare JIDs).
 *
 * The commands are those of kilnctl (issue 14): add, delete, disable and
 * re-enable a user, change a user's password, end a user's sessions,
 * count the online users, announce to every online session. They act on
 * PostgreSQL and on our session table, which is the cluster's
 * (SESSION_UP/DOWN from every c2s node), so a command sent through any
 * node reaches every node.
 *
 * The router forwards the IQs for us: <command/> to the domain by its
 * namespace (KN_REG_IQ_NS), and disco#info/#items to the domain with a
 * node under http://jabber.org/protocol/commands or .../admin#
 * (router_disco.c). A non-admin sees an empty command list and gets
 * <forbidden/> on execution.
 *
 * Flow (XEP-0050 3.4): execute without a form answers the form (status
 * executing, a sessionid, the one action "complete"); the submitted form
 * (action complete or execute, or the first request if it carries a
 * submitted form already) runs the command, which answers status
 * completed with a <note/>. Cancel answers status canceled. Sessions live
 * here in a small table, bound to the requester's full JID and the node,
 * for ADHOC_TTL_S; an unknown one is <bad-request/><bad-sessionid/>.
 * A field that is missing or wrong is <bad-request/><bad-payload/> with a
 * text naming it; a user that does not exist is <item-not-found/>, one
 * that exists already <conflict/>.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "kn_buf.h"
#include "kn_err.h"
#include "kn_jid.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "kn_scram.h"
#include "pres.h"

#define NS_CMD       "http://jabber.org/protocol/commands"
#define NS_DATA      "jabber:x:data"
#define NS_ADMIN     "http://jabber.org/protocol/admin"
#define NS_INFO      "http://jabber.org/protocol/disco#info"
#define NS_ITEMS     "http://jabber.org/protocol/disco#items"
#define ADHOC_TTL_S  600
#define ADHOC_MAX    256
#define ADHOC_MAXJID 100 /* accountjids per request */

typedef enum {
    CMD_ADD,
    CMD_DELETE,
    CMD_DISABLE,
    CMD_REENABLE,
    CMD_PASSWD,
    CMD_END_SESSION,
    CMD_ONLINE_NUM,
    CMD_ANNOUNCE,
    CMD_N
} cmd_t;

static const struct {
    const char *node; /* after NS_ADMIN "#" */
    const char *name;
} cmds[CMD_N] = {
    [CMD_ADD] = {"add-user", "Add a User"},
    [CMD_DELETE] = {"delete-user", "Delete a User"},
    [CMD_DISABLE] = {"disable-user", "Disable a User"},
    [CMD_REENABLE] = {"reenable-user", "Re-Enable a User"},
    [CMD_PASSWD] = {"change-user-password", "Change User Password"},
    [CMD_END_SESSION] = {"end-user-session", "End User Session"},
    [CMD_ONLINE_NUM] = {"get-online-users-num", "Get Number of Online Users"},
    [CMD_ANNOUNCE] = {"announce", "Send Announcement to Online Users"},
};

typedef struct pres_adhoc {
    char id[33];
    char *requester; /* full JID */
    cmd_t cmd;
    time_t expires;
    struct pres_adhoc *next;
} adhoc_sess_t;

/* ---- helpers ------------------------------------------------------------- */

static cmd_t cmd_of(const char *node)
{
    size_t nl = sizeof(NS_ADMIN) - 1;
    if (node == NULL || strncmp(node, NS_ADMIN "#", nl + 1) != 0)
        return CMD_N;
    for (int i = 0; i < CMD_N; i++)
        if (strcmp(node + nl + 1, cmds[i].node) == 0)
            return (cmd_t)i;
    return CMD_N;
}

static void cmd_node(cmd_t c, char *buf, size_t size)
{
    snprintf(buf, size, "%s#%s", NS_ADMIN, cmds[c].node);
}

/* Whether the sender of st is an admin (its bare JID in
 * presenced.admins, a list separated by commas or spaces). */
bool pres_adhoc_is_admin(const pres_t *p, const char *from)
{
    const char *list = p->conf.admins;
    if (from == NULL || list == NULL)
        return false;
    size_t bl = strcspn(from, "/");
    const char *s = list;
    while (*s) {
        s += strspn(s, ", \t");
        size_t n = strcspn(s, ", \t");
        if (n > 0 && n == bl && strncasecmp(s, from, n) == 0)
            return true;
        s += n;
    }
    return false;
}

static void send_err(pres_t *p, const kn_stanza_t *st, kn_stanza_err_t cond,
                     const char *text, const char *app)
{
    kn_stanza_t *e = kn_stanza_error_reply_ext(st, cond, NULL, text, app,
                                               app ? NS_CMD : NULL);
    if (e == NULL)
        return;
    pres_send(p, e, KN_F_NO_OFFLINE);
    kn_stanza_unref(&e);
}

static void sess_expire(pres_t *p)
{
    time_t now = time(NULL);
    adhoc_sess_t **pp = &p->adhoc;
    while (*pp != NULL) {
        adhoc_sess_t *s = *pp;
        if (s->expires <= now) {
            *pp = s->next;
            free(s->requester);
            free(s);
            p->adhoc_n--;
        } else {
            pp = &s->next;
        }
    }
}

static adhoc_sess_t *sess_find(pres_t *p, const char *id, const char *from,
                               cmd_t c, bool unlink)
{
    sess_expire(p);
    for (adhoc_sess_t **pp = &p->adhoc; *pp != NULL; pp = &(*pp)->next) {
        adhoc_sess_t *s = *pp;
        if (strcmp(s->id, id) == 0 && strcmp(s->requester, from) == 0 &&
            s->cmd == c) {
            if (unlink) {
                *pp = s->next;
                p->adhoc_n--;
            }
            return s;
        }
    }
    return NULL;
}

static void new_id(char id[33])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof(r)) != 1)
        memset(r, 0, sizeof(r)); /* not secret: bound to the requester */
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(id + 2 * i, 3, "%02x", r[i]);
}

static adhoc_sess_t *sess_new(pres_t *p, const char *from, cmd_t c)
{
    sess_expire(p);
    while (p->adhoc_n >= ADHOC_MAX) { /* drop the oldest (the last) */
        adhoc_sess_t **pp = &p->adhoc;
        while ((*pp)->next != NULL)
            pp = &(*pp)->next;
        free((*pp)->requester);
        free(*pp);
        *pp = NULL;
        p->adhoc_n--;
    }
    adhoc_sess_t *s = kn_calloc(1, sizeof(*s));
    new_id(s->id);
    s->requester = kn_strdup(from);
    s->cmd = c;
    s->expires = time(NULL) + ADHOC_TTL_S;
    s->next = p->adhoc;
    p->adhoc = s;
    p->adhoc_n++;
    return s;
}

void pres_adhoc_free(pres_t *p)
{
    while (p->adhoc != NULL) {
        adhoc_sess_t *s = p->adhoc;
        p->adhoc = s->next;
        free(s->requester);
        free(s);
    }
    p->adhoc_n = 0;
}

/* ---- forms --------------------------------------------------------------- */

static void field(kn_stanza_builder_t *b, const char *var, const char *type,
                  const char *label, bool required)
{
    kn_stanza_builder_start(b, "field", NULL);
    kn_stanza_builder_attr(b, "var", var);
    kn_stanza_builder_attr(b, "type", type);
    if (label != NULL)
        kn_stanza_builder_attr(b, "label", label);
    if (required) {
        kn_stanza_builder_start(b, "required", NULL);
        kn_stanza_builder_end(b);
    }
    kn_stanza_builder_end(b);
}

static void form_type(kn_stanza_builder_t *b)
{
    kn_stanza_builder_start(b, "field", NULL);
    kn_stanza_builder_attr(b, "var", "FORM_TYPE");
    kn_stanza_builder_attr(b, "type", "hidden");
    kn_stanza_builder_start(b, "value", NULL);
    kn_stanza_builder_text(b, NS_ADMIN, sizeof(NS_ADMIN) - 1);
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
}

/* Open <iq result><command node sessionid status> in p->b. */
static kn_stanza_builder_t *cmd_reply(pres_t *p, const kn_stanza_t *st, cmd_t c,
                                      const char *sid, const char *status)
{
    char node[128];
    cmd_node(c, node, sizeof(node));
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_iq_result(b, st);
    kn_stanza_builder_start(b, "command", NS_CMD);
    kn_stanza_builder_attr(b, "node", node);
    kn_stanza_builder_attr(b, "sessionid", sid);
    kn_stanza_builder_attr(b, "status", status);
    return b;
}

static void cmd_send(pres_t *p)
{
    kn_stanza_t *r = kn_stanza_builder_finish(p->b);
    pres_send(p, r, 0);
    kn_stanza_unref(&r);
}

static void send_form(pres_t *p, const kn_stanza_t *st, cmd_t c,
                      const char *sid)
{
    kn_stanza_builder_t *b = cmd_reply(p, st, c, sid, "executing");
    kn_stanza_builder_start(b, "actions", NULL);
    kn_stanza_builder_attr(b, "execute", "complete");
    kn_stanza_builder_start(b, "complete", NULL);
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
    kn_stanza_builder_start(b, "x", NS_DATA);
    kn_stanza_builder_attr(b, "type", "form");
    kn_stanza_builder_start(b, "title", NULL);
    kn_stanza_builder_text(b, cmds[c].name, strlen(cmds[c].name));
    kn_stanza_builder_end(b);
    form_type(b);
    switch (c) {
    case CMD_ADD:
        field(b, "accountjid", "jid-single", "The Jabber ID for the account",
              true);
        field(b, "password", "text-private", "The password", true);
        field(b, "password-verify", "text-private", "Retype password", true);
        break;
    case CMD_DELETE:
    case CMD_DISABLE:
    case CMD_REENABLE:
    case CMD_END_SESSION:
        field(b, "accountjids", "jid-multi", "The Jabber ID(s)", true);
        break;
    case CMD_PASSWD:
        field(b, "accountjid", "jid-single", "The Jabber ID", true);
        field(b, "password", "text-private", "The new password", true);
        break;
    case CMD_ANNOUNCE:
        field(b, "subject", "text-single", "Subject", false);
        field(b, "body", "text-multi", "Announcement", true);
        break;
    default:
        break;
    }
    kn_stanza_builder_end(b);
    cmd_send(p);
}

static void send_done(pres_t *p, const kn_stanza_t *st, cmd_t c,
                      const char *sid, const char *note)
{
    kn_stanza_builder_t *b = cmd_reply(p, st, c, sid, "completed");
    kn_stanza_builder_start(b, "note", NULL);
    kn_stanza_builder_attr(b, "type", "info");
    kn_stanza_builder_text(b, note, strlen(note));
    kn_stanza_builder_end(b);
    cmd_send(p);
}

/* The submitted form's values of var, joined with sep (text-multi: "\n"),
 * appended to out; returns how many <value/>s, -1 when the field is
 * absent. */
static int form_values(const kn_stanza_t *st, int x, const char *var,
                       kn_buf_t *out, char sep)
{
    for (int f = kn_stanza_first_child(st, x); f >= 0;
         f = kn_stanza_next_sibling(st, f)) {
        const char *v = kn_stanza_attr(st, f, "var", NULL);
        if (strcmp(kn_stanza_name(st, f), "field") != 0 || v == NULL ||
            strcmp(v, var) != 0)
            continue;
        int n = 0;
        for (int c = kn_stanza_first_child(st, f); c >= 0;
             c = kn_stanza_next_sibling(st, c)) {
            if (strcmp(kn_stanza_name(st, c), "value") != 0)
                continue;
            if (n++ > 0)
                kn_buf_append(out, &sep, 1);
            kn_stanza_text(st, c, out);
        }
        return n;
    }
    return -1;
}

/* The localpart of one of our accounts named by a JID in a form, or
 * NULL (bad JID, another domain, a resource). */
static char *account_local(pres_t *p, const char *s, size_t len)
{
    kn_jid_t j = KN_JID_INIT;
    if (kn_jid_parse(&j, s, len) < 0)
        return NULL;
    size_t ll, dl, rl;
    const char *l = kn_jid_local(&j, &ll);
    const char *d = kn_jid_domain(&j, &dl);
    kn_jid_resource(&j, &rl);
    char *out = NULL;
    if (l != NULL && ll > 0 && rl == 0 && dl == strlen(p->domain) &&
        memcmp(d, p->domain, dl) == 0)
        out = kn_strndup(l, ll);
    kn_jid_free(&j);
    return out;
}

/* ---- running the commands ------------------------------------------------ */

typedef struct adhoc_job {
    pres_t *p;
    kn_stanza_t *iq;
    cmd_t cmd;
    char sid[33];
    char **bares; /* the accounts acted on (for kicks and the note) */
    size_t n;
    char note[256];
} adhoc_job_t;

static adhoc_job_t *job_new(pres_t *p, const kn_stanza_t *st, cmd_t c,
                            const char *sid)
{
    adhoc_job_t *j = kn_calloc(1, sizeof(*j));
    j->p = p;
    j->iq = kn_stanza_ref((kn_stanza_t *)st);
    j->cmd = c;
    snprintf(j->sid, sizeof(j->sid), "%s", sid);
    return j;
}

static void job_free(adhoc_job_t *j)
{
    for (size_t i = 0; i < j->n; i++)
        free(j->bares[i]);
    free(j->bares);
    kn_stanza_unref(&j->iq);
    free(j);
}

/* The answer, then (delete, disable) the accounts' sessions end with
 * reason "removed" (<not-authorized/>), as kilnctl's do. */
static void job_finish(void *arg)
{
    adhoc_job_t *j = arg;
    pres_t *p = j->p;
    const char *from = kn_stanza_from(j->iq);
    kn_log_info("adhoc: %s by %s: %s", cmds[j->cmd].node, from ? from : "?",
                j->note);
    send_done(p, j->iq, j->cmd, j->sid, j->note);
    if (j->cmd == CMD_DELETE || j->cmd == CMD_DISABLE) {
        for (size_t i = 0; i < j->n; i++) {
            if (j->cmd == CMD_DELETE)
                pres_roster_invalidate(p, j->bares[i]);
            pres_admin_kick(p, j->bares[i], KN_ENV_REASON_REMOVED);
        }
    }
    job_free(j);
}

static void job_done(const PGresult *res, int err, void *arg)
{
    adhoc_job_t *j = arg;
    pres_t *p = j->p;
    if (err != 0) {
        kn_log_warn("adhoc %s: %s", cmds[j->cmd].node,
                    res ? PQresultErrorMessage(res) : "no result");
        pres_send_error(p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
        job_free(j);
        return;
    }
    int rows = atoi(PQcmdTuples((PGresult *)res));
    switch (j->cmd) {
    case CMD_ADD:
        if (rows == 0) {
            send_err(p, j->iq, KN_STE_CONFLICT, "the account exists already",
                     NULL);
            job_free(j);
            return;
        }
        snprintf(j->note, sizeof(j->note), "User %s added", j->bares[0]);
        break;
    case CMD_PASSWD:
        if (rows == 0) {
            send_err(p, j->iq, KN_STE_ITEM_NOT_FOUND, "no such account", NULL);
            job_free(j);
            return;
        }
        snprintf(j->note, sizeof(j->note), "Password of %s changed",
                 j->bares[0]);
        break;
    case CMD_DELETE:
        snprintf(j->note, sizeof(j->note), "%d of %zu user(s) deleted", rows,
                 j->n);
        break;
    case CMD_DISABLE:
        snprintf(j->note, sizeof(j->note), "%d of %zu user(s) disabled", rows,
                 j->n);
        break;
    case CMD_REENABLE:
        snprintf(j->note, sizeof(j->note), "%d of %zu user(s) re-enabled", rows,
                 j->n);
        break;
    default:
        break;
    }
    if (j->cmd == CMD_ADD)
        job_finish(j);
    else /* the rows changed: the credential cache first, as kilnctl does */
        pres_creds_invalidate(p, j->bares, j->n, job_finish, j);
}

/* A PostgreSQL text[] literal of the localparts. */
static void pg_array(char *const *locals, size_t n, kn_buf_t *out)
{
    kn_buf_append_str(out, "{");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            kn_buf_append_str(out, ",");
        kn_buf_append_str(out, "\"");
        for (const char *c = locals[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                kn_buf_append_str(out, "\\");
            kn_buf_append(out, c, 1);
        }
        kn_buf_append_str(out, "\"");
    }
    kn_buf_append_str(out, "}");
}

/* The accountjids of a submitted form as localparts (and bare JIDs in
 * j->bares). Returns the count, or -1 after answering the error. */
static int form_accounts(pres_t *p, const kn_stanza_t *st, int x,
                         adhoc_job_t *j, char ***locals)
{
    kn_buf_t v = KN_BUF_INIT;
    int n = form_values(st, x, "accountjids", &v, '\n');
    if (n <= 0 || n > ADHOC_MAXJID) {
        kn_buf_free(&v);
        send_err(p, st, KN_STE_BAD_REQUEST,
                 n > ADHOC_MAXJID ? "accountjids: too many JIDs"
                                  : "accountjids: at least one JID is required",
                 "bad-payload");
        return -1;
    }
    *locals = kn_calloc((size_t)n, sizeof(char *));
    j->bares = kn_calloc((size_t)n, sizeof(char *));
    const char *s = v.data;
    for (int i = 0; i < n; i++) {
        size_t len = strcspn(s, "\n");
        char *l = account_local(p, s, len);
        if (l == NULL) {
            char text[160];
            snprintf(text, sizeof(text),
                     "accountjids: '%.*s' is not an account of %s",
                     (int)(len > 80 ? 80 : len), s, p->domain);
            send_err(p, st, KN_STE_BAD_REQUEST, text, "bad-payload");
            for (size_t k = 0; k < (size_t)i; k++)
                free((*locals)[k]);
            free(*locals);
            *locals = NULL;
            kn_buf_free(&v);
            return -1;
        }
        (*locals)[i] = l;
        kn_buf_t bare = KN_BUF_INIT;
        kn_buf_printf(&bare, "%s@%s", l, p->domain);
        j->bares[i] = kn_strndup(bare.data, bare.len);
        kn_buf_free(&bare);
        j->n++;
        s += len + (s[len] == '\n');
    }
    kn_buf_free(&v);
    return n;
}

static void run_accounts(pres_t *p, const kn_stanza_t *st, int x, cmd_t c,
                         const char *sid)
{
    adhoc_job_t *j = job_new(p, st, c, sid);
    char **locals = NULL;
    int n = form_accounts(p, st, x, j, &locals);
    if (n < 0) {
        job_free(j);
        return;
    }
    if (c == CMD_END_SESSION) {
        for (size_t i = 0; i < j->n; i++)
            pres_admin_kick(p, j->bares[i], KN_ENV_REASON_NONE);
        char note[64];
        snprintf(note, sizeof(note), "sessions of %zu user(s) ended", j->n);
        send_done(p, st, c, sid, note);
        job_free(j);
    } else {
        kn_buf_t arr = KN_BUF_INIT;
        pg_array(locals, (size_t)n, &arr);
        const char *params[] = {arr.data};
        const char *sql =
            c == CMD_DELETE
                ? "delete from users where username = any($1::text[])"
            : c == CMD_DISABLE
                ? "update users set disabled = true where username = "
                  "any($1::text[])"
                : "update users set disabled = false where username = "
                  "any($1::text[])";
        kn_pg_query(p->pg, sql, 1, params, job_done, j);
        kn_buf_free(&arr);
    }
    for (int i = 0; i < n; i++)
        free(locals[i]);
    free(locals);
}

static void run_creds(pres_t *p, const kn_stanza_t *st, int x, cmd_t c,
                      const char *sid)
{
    kn_buf_t jid = KN_BUF_INIT, pw = KN_BUF_INIT, pw2 = KN_BUF_INIT;
    char *local = NULL;
    int n = form_values(st, x, "accountjid", &jid, '\n');
    int npw = form_values(st, x, "password", &pw, '\n');
    kn_buf_append(&pw, "", 1); /* NUL */
    kn_buf_append(&jid, "", 1);
    if (n != 1 || (local = account_local(p, jid.data, jid.len - 1)) == NULL) {
        send_err(p, st, KN_STE_BAD_REQUEST,
                 "accountjid: one JID of an account of this server",
                 "bad-payload");
        goto out;
    }
    if (npw != 1 || pw.len <= 1) {
        send_err(p, st, KN_STE_BAD_REQUEST, "password: required",
                 "bad-payload");
        goto out;
    }
    if (c == CMD_ADD) {
        int nv = form_values(st, x, "password-verify", &pw2, '\n');
        kn_buf_append(&pw2, "", 1);
        if (nv == 1 && strcmp(pw.data, pw2.data) != 0) {
            send_err(p, st, KN_STE_BAD_REQUEST,
                     "password-verify: the passwords differ", "bad-payload");
            goto out;
        }
    }
    kn_scram_creds_t cr[2];
    int rc = kn_scram_creds_from_password(pw.data, &cr[0], &cr[1]);
    if (rc < 0) {
        send_err(p, st,
                 rc == -KN_EINVAL ? KN_STE_NOT_ACCEPTABLE
                                  : KN_STE_INTERNAL_SERVER_ERROR,
                 rc == -KN_EINVAL ? "password: not acceptable" : NULL, NULL);
        goto out;
    }
    kn_scram_sql_t q;
    kn_scram_creds_sql(&cr[0], &cr[1], &q);
    const char *params[] = {local,  q.p[0], q.p[1], q.p[2],
                            q.p[3], q.p[4], q.p[5], q.p[6]};
    adhoc_job_t *j = job_new(p, st, c, sid);
    j->bares = kn_calloc(1, sizeof(char *));
    kn_buf_t bare = KN_BUF_INIT;
    kn_buf_printf(&bare, "%s@%s", local, p->domain);
    j->bares[0] = kn_strndup(bare.data, bare.len);
    j->n = 1;
    kn_buf_free(&bare);
    kn_pg_query(p->pg,
                c == CMD_ADD ? KN_SQL_USER_INSERT : KN_SQL_USER_SET_CREDS, 8,
                params, job_done, j);
    OPENSSL_cleanse(cr, sizeof(cr));
    OPENSSL_cleanse(&q, sizeof(q));
out:
    OPENSSL_cleanse(pw.data, pw.len);
    if (pw2.data != NULL)
        OPENSSL_cleanse(pw2.data, pw2.len);
    kn_buf_free(&pw);
    kn_buf_free(&pw2);
    kn_buf_free(&jid);
    free(local);
}

static size_t online_users(pres_t *p)
{
    size_t n = 0;
    for (pres_user_t *u = p->users; u != NULL; u = u->hh.next)
        if (u->sessions != NULL)
            n++;
    return n;
}

static void run_online_num(pres_t *p, const kn_stanza_t *st, const char *sid)
{
    char num[32];
    snprintf(num, sizeof(num), "%zu", online_users(p));
    kn_stanza_builder_t *b = cmd_reply(p, st, CMD_ONLINE_NUM, sid, "completed");
    kn_stanza_builder_start(b, "x", NS_DATA);
    kn_stanza_builder_attr(b, "type", "result");
    form_type(b);
    kn_stanza_builder_start(b, "field", NULL);
    kn_stanza_builder_attr(b, "var", "onlineusersnum");
    kn_stanza_builder_attr(b, "type", "text-single");
    kn_stanza_builder_attr(b, "label", "The number of online users");
    kn_stanza_builder_start(b, "value", NULL);
    kn_stanza_builder_text(b, num, strlen(num));
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
    cmd_send(p);
}

static void run_announce(pres_t *p, const kn_stanza_t *st, int x,
                         const char *sid)
{
    kn_buf_t body = KN_BUF_INIT, subj = KN_BUF_INIT;
    int n = form_values(st, x, "body", &body, '\n');
    form_values(st, x, "subject", &subj, ' ');
    if (n <= 0 || body.len == 0) {
        send_err(p, st, KN_STE_BAD_REQUEST, "body: required", "bad-payload");
    } else {
        kn_buf_append(&body, "", 1);
        kn_buf_append(&subj, "", 1);
        size_t sent = pres_admin_announce(p, body.data, subj.data);
        char note[64];
        snprintf(note, sizeof(note), "announcement sent to %zu session(s)",
                 sent);
        send_done(p, st, CMD_ANNOUNCE, sid, note);
    }
    kn_buf_free(&body);
    kn_buf_free(&subj);
}

static void run(pres_t *p, const kn_stanza_t *st, int x, cmd_t c,
                const char *sid)
{
    if (p->pg == NULL && c != CMD_ONLINE_NUM && c != CMD_ANNOUNCE &&
        c != CMD_END_SESSION) {
        pres_send_error(p, st, KN_STE_SERVICE_UNAVAILABLE);
        return;
    }
    switch (c) {
    case CMD_ADD:
    case CMD_PASSWD:
        run_creds(p, st, x, c, sid);
        break;
    case CMD_DELETE:
    case CMD_DISABLE:
    case CMD_REENABLE:
    case CMD_END_SESSION:
        run_accounts(p, st, x, c, sid);
        break;
    case CMD_ONLINE_NUM:
        run_online_num(p, st, sid);
        break;
    case CMD_ANNOUNCE:
        run_announce(p, st, x, sid);
        break;
    default:
        pres_send_error(p, st, KN_STE_ITEM_NOT_FOUND);
        break;
    }
}

/* ---- entry points -------------------------------------------------------- */

void pres_adhoc_iq(pres_t *p, const kn_stanza_t *st)
{
    const char *from = kn_stanza_from(st);
    const char *type = kn_stanza_type(st);
    int cmd = kn_stanza_child(st, 0, "command", NS_CMD);
    if (cmd < 0 || strcmp(type, "set") != 0) {
        pres_send_error(p, st, KN_STE_BAD_REQUEST);
        return;
    }
    cmd_t c = cmd_of(kn_stanza_attr(st, cmd, "node", NULL));
    if (c == CMD_N) {
        send_err(p, st, KN_STE_ITEM_NOT_FOUND, "no such command", NULL);
        return;
    }
    if (!pres_adhoc_is_admin(p, from)) {
        kn_log_info("adhoc: %s refused to %s (not in presenced.admins)",
                    cmds[c].node, from ? from : "?");
        send_err(p, st, KN_STE_FORBIDDEN, "for administrators only", NULL);
        return;
    }
    const char *action = kn_stanza_attr(st, cmd, "action", NULL);
    if (action == NULL)
        action = "execute";
    const char *sid = kn_stanza_attr(st, cmd, "sessionid", NULL);
    int x = kn_stanza_child(st, cmd, "x", NS_DATA);
    const char *xtype = x >= 0 ? kn_stanza_attr(st, x, "type", NULL) : NULL;
    bool submitted = xtype != NULL && strcmp(xtype, "submit") == 0;
    if (strcmp(action, "execute") != 0 && strcmp(action, "complete") != 0 &&
        strcmp(action, "cancel") != 0) {
        send_err(p, st, KN_STE_BAD_REQUEST, NULL, "bad-action");
        return;
    }
    if (sid != NULL) {
        adhoc_sess_t *s = sess_find(p, sid, from, c, true);
        if (s == NULL) {
            send_err(p, st, KN_STE_BAD_REQUEST, "unknown or expired session",
                     "bad-sessionid");
            return;
        }
        char id[33];
        snprintf(id, sizeof(id), "%s", s->id);
        free(s->requester);
        free(s);
        if (strcmp(action, "cancel") == 0) {
            kn_stanza_builder_t *b = cmd_reply(p, st, c, id, "canceled");
            (void)b;
            cmd_send(p);
        } else if (!submitted) {
            send_err(p, st, KN_STE_BAD_REQUEST, "a submitted form is required",
                     "bad-payload");
        } else {
            run(p, st, x, c, id);
        }
        return;
    }
    if (strcmp(action, "cancel") == 0) {
        send_err(p, st, KN_STE_BAD_REQUEST, "no session to cancel",
                 "bad-sessionid");
        return;
    }
    if (c == CMD_ONLINE_NUM || submitted) {
        /* One stage: nothing to ask, or the form came with the request. */
        char id[33];
        new_id(id);
        run(p, st, x, c, id);
        return;
    }
    adhoc_sess_t *s = sess_new(p, from, c);
    send_form(p, st, c, s->id);
}

void pres_adhoc_disco(pres_t *p, const kn_stanza_t *st)
{
    int q = kn_stanza_first_child(st, 0);
    const char *ns = q >= 0 ? kn_stanza_ns(st, q) : "";
    const char *node = q >= 0 ? kn_stanza_attr(st, q, "node", NULL) : NULL;
    bool info = strcmp(ns, NS_INFO) == 0;
    bool admin = pres_adhoc_is_admin(p, kn_stanza_from(st));
    if (strcmp(kn_stanza_type(st), "get") != 0 || node == NULL) {
        pres_send_error(p, st, KN_STE_BAD_REQUEST);
        return;
    }
    cmd_t c = cmd_of(node);
    bool list = strcmp(node, NS_CMD) == 0;
    if (!list && c == CMD_N) {
        pres_send_error(p, st, KN_STE_ITEM_NOT_FOUND);
        return;
    }
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_iq_result(b, st);
    kn_stanza_builder_start(b, "query", info ? NS_INFO : NS_ITEMS);
    kn_stanza_builder_attr(b, "node", node);
    if (info) {
        kn_stanza_builder_start(b, "identity", NULL);
        kn_stanza_builder_attr(b, "category", "automation");
        kn_stanza_builder_attr(b, "type",
                               list ? "command-list" : "command-node");
        kn_stanza_builder_attr(b, "name", list ? "Commands" : cmds[c].name);
        kn_stanza_builder_end(b);
        const char *feats[] = {NS_CMD, "jabber:x:data"};
        for (size_t i = 0; i < (list ? 1u : 2u); i++) {
            kn_stanza_builder_start(b, "feature", NULL);
            kn_stanza_builder_attr(b, "var", feats[i]);
            kn_stanza_builder_end(b);
        }
    } else if (list && admin) {
        for (int i = 0; i < CMD_N; i++) {
            char n[128];
            cmd_node((cmd_t)i, n, sizeof(n));
            kn_stanza_builder_start(b, "item", NULL);
            kn_stanza_builder_attr(b, "jid", p->domain);
            kn_stanza_builder_attr(b, "node", n);
            kn_stanza_builder_attr(b, "name", cmds[i].name);
            kn_stanza_builder_end(b);
        }
    }
    kn_stanza_builder_end(b);
    cmd_send(p);
}
