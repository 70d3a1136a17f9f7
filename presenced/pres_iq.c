/*
 * pres_iq.c - the small per-user and server IQs: software version
 * (XEP-0092), entity time (XEP-0202), private XML storage (XEP-0049),
 * blocking (XEP-0191) and vCards (XEP-0054); and the dispatch of every IQ
 * we registered (PEP and account disco go to pres_pep.c).
 *
 * A note on the block list. It lives in PostgreSQL (blocklist), is cached
 * on the pres_user_t while the user is online (loaded at SESSION_UP) and
 * mirrored in the Redis set blocklist:<bare> for c2s, which owns refusing
 * blocked senders' messages on the delivery path. presenced applies it to
 * presence: blocked contacts get no presence from the user and the user
 * gets none from them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kn_err.h"
#include "kn_jid.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_xml.h"
#include "pres.h"
#include "pres_pep.h"

#define NS_VERSION  "jabber:iq:version"
#define NS_TIME     "urn:xmpp:time"
#define NS_PRIVATE  "jabber:iq:private"
#define NS_BLOCKING "urn:xmpp:blocking"
#define NS_VCARD    "vcard-temp"
#define NS_LAST     "jabber:iq:last"
#define NS_ROSTER   "jabber:iq:roster"

typedef struct iq_job {
    pres_t *p;
    kn_stanza_t *iq;
    char *bare;
    int op;
    char photo[41]; /* vCard set: the XEP-0153 hash stored with it */
} iq_job_t;

static iq_job_t *iq_job_new(pres_t *p, const kn_stanza_t *iq, const char *bare)
{
    iq_job_t *j = kn_calloc(1, sizeof(*j));
    j->p = p;
    j->iq = kn_stanza_ref((kn_stanza_t *)iq);
    j->bare = bare ? kn_strdup(bare) : NULL;
    return j;
}

static void iq_job_free(iq_job_t *j)
{
    kn_stanza_unref(&j->iq);
    free(j->bare);
    free(j);
}

/* Start a result for iq in p->b (root left open). */
static kn_stanza_builder_t *iq_result_start(pres_t *p, const kn_stanza_t *iq)
{
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_iq_result(b, iq);
    return b;
}

static void iq_finish_send(pres_t *p)
{
    kn_stanza_t *st = kn_stanza_builder_finish(p->b);
    pres_send(p, st, 0);
    kn_stanza_unref(&st);
}

static void text_el(kn_stanza_builder_t *b, const char *name, const char *v)
{
    kn_stanza_builder_start(b, name, NULL);
    kn_stanza_builder_text(b, v, strlen(v));
    kn_stanza_builder_end(b);
}

/* The user's own bare JID if the IQ is to the account (no to, own bare
 * JID or the server), else NULL. Caller frees. */
static char *iq_own_bare(pres_t *p, const kn_stanza_t *st)
{
    const char *from = kn_stanza_from(st);
    if (from == NULL || !pres_is_local(p, from))
        return NULL;
    char *bare = pres_bare_of(from);
    const char *to = kn_stanza_to(st);
    if (to == NULL || strcmp(to, bare) == 0 || strcmp(to, p->domain) == 0)
        return bare;
    free(bare);
    return NULL;
}

/* ---- version, time ------------------------------------------------------ */

static void iq_version(pres_t *p, const kn_stanza_t *st)
{
    kn_stanza_builder_t *b = iq_result_start(p, st);
    kn_stanza_builder_start(b, "query", NS_VERSION);
    text_el(b, "name", "Kiln");
    text_el(b, "version", "0.1");
    kn_stanza_builder_end(b);
    iq_finish_send(p);
}

static void iq_time(pres_t *p, const kn_stanza_t *st)
{
    char stamp[32];
    pres_stamp((double)time(NULL), stamp, sizeof(stamp));
    kn_stanza_builder_t *b = iq_result_start(p, st);
    kn_stanza_builder_start(b, "time", NS_TIME);
    text_el(b, "tzo", "+00:00");
    text_el(b, "utc", stamp);
    kn_stanza_builder_end(b);
    iq_finish_send(p);
}

/* ---- stored XML fragments (private storage, vCard) ---------------------- */

static void xml_get_rows(const PGresult *res, int err, void *arg)
{
    iq_job_t *j = arg;
    pres_t *p = j->p;
    if (err != 0) {
        pres_send_error(p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
        iq_job_free(j);
        return;
    }
    kn_stanza_t *frag = NULL;
    if (PQntuples(res) > 0) {
        const char *xml = PQgetvalue(res, 0, 0);
        if (kn_xml_parse_stanza(xml, strlen(xml), NULL, &frag) < 0)
            frag = NULL;
    }
    kn_stanza_builder_t *b = iq_result_start(p, j->iq);
    int q = kn_stanza_first_child(j->iq, 0);
    if (j->op == 1) { /* private: <query><frag/></query> */
        kn_stanza_builder_start(b, "query", NS_PRIVATE);
        if (frag != NULL) {
            kn_stanza_builder_copy(b, frag, 0);
        } else {
            int c = kn_stanza_first_child(j->iq, q);
            kn_stanza_builder_copy(b, j->iq, c);
        }
        kn_stanza_builder_end(b);
    } else if (frag != NULL) { /* vCard */
        kn_stanza_builder_copy(b, frag, 0);
    } else {
        kn_stanza_builder_start(b, "vCard", NS_VCARD);
        kn_stanza_builder_end(b);
    }
    iq_finish_send(p);
    kn_stanza_unref(&frag);
    iq_job_free(j);
}

static void xml_set_done(const PGresult *res, int err, void *arg)
{
    iq_job_t *j = arg;
    (void)res;
    if (err != 0) {
        pres_send_error(j->p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
    } else {
        pres_send_result(j->p, j->iq);
        if (j->op == 2) /* vCard: new avatar hash (XEP-0153) */
            pres_avatar_set(j->p, j->bare, j->photo);
    }
    iq_job_free(j);
}

static void iq_private(pres_t *p, const kn_stanza_t *st)
{
    char *bare = iq_own_bare(p, st);
    int q = kn_stanza_child(st, 0, "query", NS_PRIVATE);
    int c = q >= 0 ? kn_stanza_first_child(st, q) : -1;
    if (bare == NULL) {
        pres_send_error(p, st, KN_STE_FORBIDDEN);
        return;
    }
    const char *ns = c >= 0 ? kn_stanza_ns(st, c) : "";
    if (c < 0 || *ns == '\0' || strncmp(ns, "jabber:", 7) == 0) {
        free(bare);
        pres_send_error(p, st, KN_STE_NOT_ACCEPTABLE);
        return;
    }
    char *local = pres_localpart(bare);
    iq_job_t *j = iq_job_new(p, st, bare);
    j->op = 1;
    const char *type = kn_stanza_type(st);
    if (type != NULL && strcmp(type, "set") == 0) {
        kn_buf_t xml = KN_BUF_INIT;
        /* Serialize the fragment as a standalone element. */
        kn_stanza_builder_t *fb = kn_stanza_builder_new();
        kn_stanza_builder_copy(fb, st, c);
        kn_stanza_t *frag = kn_stanza_builder_finish(fb);
        kn_stanza_builder_free(&fb);
        kn_stanza_serialize(frag, &xml, NULL);
        kn_stanza_unref(&frag);
        const char *params[] = {local, ns, kn_stanza_name(st, c), xml.data};
        kn_pg_query(p->pg,
                    "insert into private_storage (username, namespace, name,"
                    " xml) values ($1, $2, $3, $4) on conflict (username,"
                    " namespace, name) do update set xml = excluded.xml",
                    4, params, xml_set_done, j);
        kn_buf_free(&xml);
    } else {
        const char *params[] = {local, ns, kn_stanza_name(st, c)};
        kn_pg_query(p->pg,
                    "select xml from private_storage where username = $1 and"
                    " namespace = $2 and name = $3",
                    3, params, xml_get_rows, j);
    }
    free(local);
    free(bare);
}

static void iq_vcard(pres_t *p, const kn_stanza_t *st)
{
    const char *type = kn_stanza_type(st);
    bool set = type != NULL && strcmp(type, "set") == 0;
    char *own = iq_own_bare(p, st);
    char *target = own;
    if (target == NULL) {
        const char *to = kn_stanza_to(st);
        if (set || to == NULL || !pres_is_local(p, to)) {
            pres_send_error(
                p, st, set ? KN_STE_FORBIDDEN : KN_STE_SERVICE_UNAVAILABLE);
            return;
        }
        target = pres_bare_of(to);
    }
    char *local = pres_localpart(target);
    iq_job_t *j = iq_job_new(p, st, target);
    j->op = 2;
    if (set) {
        int v = kn_stanza_child(st, 0, "vCard", NS_VCARD);
        if (v < 0) {
            pres_send_error(p, st, KN_STE_BAD_REQUEST);
            iq_job_free(j);
            free(local);
            free(target);
            return;
        }
        kn_stanza_builder_t *fb = kn_stanza_builder_new();
        kn_stanza_builder_copy(fb, st, v);
        kn_stanza_t *frag = kn_stanza_builder_finish(fb);
        kn_stanza_builder_free(&fb);
        kn_buf_t xml = KN_BUF_INIT;
        kn_stanza_serialize(frag, &xml, NULL);
        kn_stanza_unref(&frag);
        /* XEP-0153: bad base64 counts as no photo. */
        if (pres_avatar_hash_vcard(st, v, j->photo, sizeof(j->photo)) < 0)
            j->photo[0] = '\0';
        const char *params[] = {local, xml.data, j->photo};
        kn_pg_query(p->pg,
                    "insert into vcards (username, xml, photo_hash) values"
                    " ($1, $2, $3) on conflict (username) do update set xml ="
                    " excluded.xml, photo_hash = excluded.photo_hash,"
                    " updated_at = now()",
                    3, params, xml_set_done, j);
        kn_buf_free(&xml);
    } else {
        const char *params[] = {local};
        kn_pg_query(p->pg, "select xml from vcards where username = $1", 1,
                    params, xml_get_rows, j);
    }
    free(local);
    free(target);
}

/* ---- blocking ------------------------------------------------------------ */

bool pres_is_blocked(pres_t *p, const char *bare, const char *jid)
{
    pres_user_t *u = pres_user_find(p, bare);
    if (u == NULL)
        return false;
    for (size_t i = 0; i < u->nblocked; i++)
        if (strcmp(u->blocked[i], jid) == 0)
            return true;
    return false;
}

static void block_add(pres_user_t *u, const char *jid)
{
    for (size_t i = 0; i < u->nblocked; i++)
        if (strcmp(u->blocked[i], jid) == 0)
            return;
    u->blocked = kn_realloc(u->blocked, (u->nblocked + 1) * sizeof(char *));
    u->blocked[u->nblocked++] = kn_strdup(jid);
}

static void block_del(pres_user_t *u, const char *jid)
{
    for (size_t i = 0; i < u->nblocked; i++) {
        if (jid == NULL || strcmp(u->blocked[i], jid) == 0) {
            free(u->blocked[i]);
            u->blocked[i] = u->blocked[--u->nblocked];
            if (jid != NULL)
                return;
            i--;
        }
    }
}

typedef struct block_load {
    pres_t *p;
    char *bare;
} block_load_t;

static void block_loaded(const PGresult *res, int err, void *arg)
{
    block_load_t *l = arg;
    pres_user_t *u = pres_user_find(l->p, l->bare);
    if (u != NULL && err == 0) {
        for (int i = 0; i < PQntuples(res); i++)
            block_add(u, PQgetvalue(res, i, 0));
        u->blocked_loaded = true;
    }
    free(l->bare);
    free(l);
}

void pres_block_load(pres_t *p, pres_user_t *u)
{
    if (p->pg == NULL || !pres_is_local(p, u->bare))
        return;
    u->blocked_loaded = true; /* in flight counts: load once */
    block_load_t *l = kn_malloc(sizeof(*l));
    l->p = p;
    l->bare = kn_strdup(u->bare);
    char *local = pres_localpart(u->bare);
    const char *params[] = {local};
    kn_pg_query(p->pg, "select jid from blocklist where username = $1", 1,
                params, block_loaded, l);
    free(local);
}

static void block_list_rows(const PGresult *res, int err, void *arg)
{
    iq_job_t *j = arg;
    pres_t *p = j->p;
    if (err != 0) {
        pres_send_error(p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
        iq_job_free(j);
        return;
    }
    kn_stanza_builder_t *b = iq_result_start(p, j->iq);
    kn_stanza_builder_start(b, "blocklist", NS_BLOCKING);
    for (int i = 0; i < PQntuples(res); i++) {
        kn_stanza_builder_start(b, "item", NULL);
        kn_stanza_builder_attr(b, "jid", PQgetvalue(res, i, 0));
        kn_stanza_builder_end(b);
    }
    kn_stanza_builder_end(b);
    iq_finish_send(p);
    iq_job_free(j);
}

static void block_push(pres_t *p, const char *bare, const kn_stanza_t *st,
                       int op)
{
    pres_user_t *u = pres_user_find(p, bare);
    if (u == NULL)
        return;
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "iq", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "type", "set");
    kn_stanza_builder_attr(b, "id", "block-push");
    kn_stanza_builder_copy(b, st, op);
    kn_stanza_t *push = kn_stanza_builder_finish(b);
    size_t n = 0;
    for (pres_sess_t *s = u->sessions; s; s = s->next)
        pres_target_add(p, &n, s->conn);
    pres_multicast(p, push, p->targets, n);
    kn_stanza_unref(&push);
}

static void iq_blocking(pres_t *p, const kn_stanza_t *st)
{
    char *bare = iq_own_bare(p, st);
    if (bare == NULL) {
        pres_send_error(p, st, KN_STE_FORBIDDEN);
        return;
    }
    const char *type = kn_stanza_type(st);
    char *local = pres_localpart(bare);
    if (type != NULL && strcmp(type, "get") == 0) {
        const char *params[] = {local};
        kn_pg_query(p->pg,
                    "select jid from blocklist where username = $1"
                    " order by jid",
                    1, params, block_list_rows, iq_job_new(p, st, bare));
        goto out;
    }
    int op = kn_stanza_child(st, 0, "block", NS_BLOCKING);
    bool block = op >= 0;
    if (op < 0)
        op = kn_stanza_child(st, 0, "unblock", NS_BLOCKING);
    if (op < 0) {
        pres_send_error(p, st, KN_STE_BAD_REQUEST);
        goto out;
    }
    pres_user_t *u = pres_user_get(p, bare);
    size_t nitems = 0;
    for (int it = kn_stanza_first_child(st, op); it >= 0;
         it = kn_stanza_next_sibling(st, it)) {
        const char *jid = kn_stanza_attr(st, it, "jid", NULL);
        kn_jid_t j = KN_JID_INIT;
        if (jid == NULL || kn_jid_parse(&j, jid, strlen(jid)) < 0) {
            pres_send_error(p, st, KN_STE_JID_MALFORMED);
            pres_user_maybe_free(p, u);
            goto out;
        }
        const char *params[] = {local, kn_jid_str(&j)};
        if (block) {
            block_add(u, kn_jid_str(&j));
            kn_pg_query(p->pg,
                        "insert into blocklist (username, jid) values ($1,"
                        " $2) on conflict do nothing",
                        2, params, pres_pg_ignore, (void *)"block");
            if (p->redis)
                kn_redis_command(p->redis, NULL, NULL, "SADD blocklist:%s %s",
                                 bare, kn_jid_str(&j));
        } else {
            block_del(u, kn_jid_str(&j));
            kn_pg_query(p->pg,
                        "delete from blocklist where username = $1 and"
                        " jid = $2",
                        2, params, pres_pg_ignore, (void *)"unblock");
            if (p->redis)
                kn_redis_command(p->redis, NULL, NULL, "SREM blocklist:%s %s",
                                 bare, kn_jid_str(&j));
        }
        kn_jid_free(&j);
        nitems++;
    }
    if (nitems == 0) {
        if (block) {
            pres_send_error(p, st, KN_STE_BAD_REQUEST);
            pres_user_maybe_free(p, u);
            goto out;
        }
        block_del(u, NULL); /* unblock everything */
        const char *params[] = {local};
        kn_pg_query(p->pg, "delete from blocklist where username = $1", 1,
                    params, pres_pg_ignore, (void *)"unblock all");
        if (p->redis)
            kn_redis_command(p->redis, NULL, NULL, "DEL blocklist:%s", bare);
    }
    pres_send_result(p, st);
    block_push(p, bare, st, op);
    pres_user_maybe_free(p, u);
out:
    free(local);
    free(bare);
}

/* ---- dispatch ------------------------------------------------------------ */

void pres_iq_handle(pres_t *p, const kn_env_t *env, const kn_stanza_t *st)
{
    const char *type = kn_stanza_type(st);
    if (type == NULL || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
        return; /* results and errors to the server: nothing to do */
    int c = kn_stanza_first_child(st, 0);
    const char *ns = c >= 0 ? kn_stanza_ns(st, c) : "";
    const char *to = kn_stanza_to(st);
    bool to_server = to == NULL || strchr(to, '@') == NULL;
    (void)env;
    if (strcmp(ns, NS_ROSTER) == 0) {
        pres_roster_iq(p, env, st);
    } else if (strcmp(ns, NS_LAST) == 0) {
        pres_last_iq(p, env, st);
    } else if (strcmp(ns, NS_VERSION) == 0 && to_server &&
               strcmp(type, "get") == 0) {
        iq_version(p, st);
    } else if (strcmp(ns, NS_TIME) == 0 && to_server &&
               strcmp(type, "get") == 0) {
        iq_time(p, st);
    } else if (strcmp(ns, NS_PRIVATE) == 0 && p->pg != NULL) {
        iq_private(p, st);
    } else if (strcmp(ns, NS_BLOCKING) == 0 && p->pg != NULL) {
        iq_blocking(p, st);
    } else if (strcmp(ns, NS_VCARD) == 0 && p->pg != NULL) {
        iq_vcard(p, st);
    } else if (strcmp(ns, PEP_NS) == 0 || strcmp(ns, PEP_NS_OWNER) == 0 ||
               strcmp(ns, PEP_NS_DISCO_INFO) == 0 ||
               strcmp(ns, PEP_NS_DISCO_ITEMS) == 0) {
        pres_pep_iq(p, env, st);
    } else {
        pres_send_error(p, st, KN_STE_SERVICE_UNAVAILABLE);
    }
}
