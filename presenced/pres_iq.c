/*
 * pres_iq.c - the small per-user and server IQs: software version
 * (XEP-0092), entity time (XEP-0202), private XML storage (XEP-0049),
 * blocking (XEP-0191) and vCards (XEP-0054); and the dispatch of every IQ
 * we registered (PEP and account disco go to pres_pep.c, push
 * notifications and the app servers' answers to pres_push.c).
 *
 * Blocking (XEP-0191) lives in pres_block.c; here an IQ from a JID the
 * addressed user blocked gets <service-unavailable/> before any handler
 * sees it (the user looks offline, as XEP-0191 asks).
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
#include "pres_mam.h"
#include "pres_pep.h"
#include "pres_push.h"

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

char *pres_iq_own_bare(pres_t *p, const kn_stanza_t *st)
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

/* A stored fragment over its limit (issue 16): <not-acceptable/> with a
 * text naming the limit; nothing is stored, the old value stays. */
static bool iq_too_big(pres_t *p, const kn_stanza_t *st, const kn_buf_t *xml,
                       long long max, const char *what)
{
    if ((long long)xml->len <= max)
        return false;
    char text[128];
    snprintf(text, sizeof(text), "%s too large: %zu bytes (at most %lld)", what,
             xml->len, max);
    pres_send_error_text(p, st, KN_STE_NOT_ACCEPTABLE, text);
    return true;
}

static void iq_private(pres_t *p, const kn_stanza_t *st)
{
    char *bare = pres_iq_own_bare(p, st);
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
        if (iq_too_big(p, st, &xml, p->conf.private_max_bytes,
                       "Private XML element")) {
            kn_buf_free(&xml);
            iq_job_free(j);
            free(local);
            free(bare);
            return;
        }
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
    char *own = pres_iq_own_bare(p, st);
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
        if (iq_too_big(p, st, &xml, p->conf.vcard_max_bytes, "vCard")) {
            kn_buf_free(&xml);
            iq_job_free(j);
            free(local);
            free(target);
            return;
        }
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

/* ---- dispatch ------------------------------------------------------------ */

static void iq_dispatch(pres_t *p, const kn_env_t *env, const kn_stanza_t *st)
{
    const char *type = kn_stanza_type(st);
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
        pres_block_iq(p, st);
    } else if (strcmp(ns, NS_VCARD) == 0 && p->pg != NULL) {
        iq_vcard(p, st);
    } else if (to_server && (strcmp(ns, PEP_NS_DISCO_INFO) == 0 ||
                             strcmp(ns, PEP_NS_DISCO_ITEMS) == 0)) {
        pres_adhoc_disco(p, st); /* a commands node (router_disco.c) */
    } else if (strcmp(ns, "http://jabber.org/protocol/commands") == 0 &&
               to_server) {
        pres_adhoc_iq(p, st); /* XEP-0133 */
    } else if (strcmp(ns, PEP_NS) == 0 || strcmp(ns, PEP_NS_OWNER) == 0 ||
               strcmp(ns, PEP_NS_DISCO_INFO) == 0 ||
               strcmp(ns, PEP_NS_DISCO_ITEMS) == 0) {
        pres_pep_iq(p, env, st);
    } else if (strcmp(ns, PUSH_NS) == 0 && p->pg != NULL) {
        pres_push_iq(p, st);
    } else if (strcmp(ns, "jabber:iq:register") == 0 && to_server) {
        pres_register_iq(p, st);
    } else if (strcmp(ns, MAM_NS) == 0) {
        pres_mam_iq(p, st); /* XEP-0313 */
    } else {
        pres_send_error(p, st, KN_STE_SERVICE_UNAVAILABLE);
    }
}

static void iq_block_checked(pres_t *p, bool blocked, int err, void *arg)
{
    kn_stanza_t *st = arg;
    if (err != 0)
        pres_send_error(p, st, KN_STE_INTERNAL_SERVER_ERROR);
    else if (blocked)
        pres_send_error(p, st, KN_STE_SERVICE_UNAVAILABLE);
    else
        iq_dispatch(p, NULL, st);
    kn_stanza_unref(&st);
}

void pres_iq_handle(pres_t *p, const kn_env_t *env, const kn_stanza_t *st)
{
    const char *type = kn_stanza_type(st);
    if (type == NULL ||
        (strcmp(type, "get") != 0 && strcmp(type, "set") != 0)) {
        /* Results and errors: a client's answer to our caps disco#info
         * (XEP-0115) or an app server's answer to a push publish
         * (XEP-0357) is ours; nothing else is. */
        if (!pres_caps_reply(p, st))
            pres_push_reply(p, st);
        return;
    }
    /* XEP-0191: an IQ to a user's account from a JID that user blocked. */
    const char *to = kn_stanza_to(st);
    const char *from = kn_stanza_from(st);
    if (to != NULL && from != NULL && pres_is_local(p, to)) {
        size_t tl = strcspn(to, "/"), fl = strcspn(from, "/");
        if (tl != fl || memcmp(to, from, tl) != 0) {
            char *owner = kn_strndup(to, tl);
            pres_block_check(p, owner, from, iq_block_checked,
                             kn_stanza_ref((kn_stanza_t *)st));
            free(owner);
            return;
        }
    }
    iq_dispatch(p, env, st);
}
