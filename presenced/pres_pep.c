/*
 * pres_pep.c - the PEP service (XEP-0163 on XEP-0060; model and rules in
 * pres_pep.h): pubsub and pubsub#owner IQs to a local bare JID, and that
 * account's disco#info/#items, which the router hands us through
 * KN_REG_ACCOUNT_NS registrations.
 *
 * A note on ordering. Every request for one account becomes a job in that
 * account's FIFO (pep_queue_t, p->pep_queues); a job runs its statements
 * one after another and the next job starts only when it is done. So a
 * retract queued after a publish sees the published row, the node check of
 * a publish and its insert cannot interleave with a delete, and a client
 * that gets a publish result and then asks for the items sees them. Jobs
 * of different accounts run in parallel on the pool. presenced is the only
 * writer of pep_nodes and pep_items (a user's deletion cascades).
 *
 * A note on notifications. A publish, retract, purge or delete is answered
 * and notified only after PostgreSQL committed it: one headline message
 * with <event xmlns='...pubsub#event'/>, from the owner's bare JID, in one
 * MULTICAST to every available resource of the owner on any c2s node (the
 * router splits it per node). A publish or retract also goes, in a second
 * multicast, to the resources of the owner's contacts whose XEP-0115 caps
 * ask for NODE+notify and whom the node's access model allows
 * (pres_caps.c, which also sends the last items to a session that comes
 * online); purge and delete reach the owner's resources only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "kn_xml.h"
#include "pres.h"
#include "pres_pep.h"

/* A result over this many payload bytes keeps only the newest items that
 * fit: a router frame holds at most 1 MiB (XEP-0060 6.5.7 lets the service
 * return fewer items than there are). */
#define PEP_RESULT_BYTES_MAX (512 * 1024)

/* Who asks, as the node's access model sees it. */
typedef enum pep_viewer {
    PEP_VIEW_UNKNOWN = 0,
    PEP_VIEW_OWNER,      /* the account itself or the trusted publisher */
    PEP_VIEW_SUBSCRIBER, /* owner's roster item: subscription from/both */
    PEP_VIEW_OTHER,
} pep_viewer_t;

typedef struct pep_job pep_job_t;
typedef void (*pep_step_t)(pep_job_t *j, const PGresult *res);

struct pep_job {
    pres_t *p; /* NULL: orphaned by pres_free, the query callback frees */
    struct pep_queue *q;
    pep_job_t *next;
    kn_stanza_t *iq; /* the request, owned */
    pep_req_t req;   /* points into iq */
    char *owner;     /* bare JID of the account */
    char *local;     /* its username */
    char *from_bare;
    pep_viewer_t viewer;
    bool started, in_pg, node_created;
    pep_step_t step;    /* what the query in flight continues with */
    bool step_may_fail; /* a failed query still goes on with step */
    pep_conf_t conf;    /* the node's configuration, once read */
    char *id; /* publish: the item id (ours when the request had none) */
};

struct pep_queue {
    char *owner; /* key */
    pep_job_t *head, **tail;
    bool kicking; /* queue_kick is running jobs */
    UT_hash_handle hh;
};

static void job_run(pep_job_t *j);

/* ---- jobs and queues ------------------------------------------------ */

static void job_free(pep_job_t *j)
{
    kn_stanza_unref(&j->iq);
    free(j->owner);
    free(j->local);
    free(j->from_bare);
    free(j->id);
    free(j);
}

static void queue_kick(pres_t *p, struct pep_queue *q)
{
    if (q->kicking)
        return; /* the loop below picks the next job */
    q->kicking = true;
    while (q->head != NULL && !q->head->started) {
        q->head->started = true;
        job_run(q->head); /* may finish at once: head is then the next */
    }
    q->kicking = false;
    if (q->head == NULL) {
        HASH_DEL(p->pep_queues, q);
        free(q->owner);
        free(q);
    }
}

/* j (the head of its queue) is finished: free it, start the next. */
static void job_done(pep_job_t *j)
{
    pres_t *p = j->p;
    struct pep_queue *q = j->q;
    KN_ASSERT(q->head == j);
    q->head = j->next;
    if (q->head == NULL)
        q->tail = &q->head;
    job_free(j);
    queue_kick(p, q);
}

static void job_enqueue(pres_t *p, pep_job_t *j)
{
    struct pep_queue *q = NULL;
    HASH_FIND_STR(p->pep_queues, j->owner, q);
    if (q == NULL) {
        q = kn_calloc(1, sizeof(*q));
        q->owner = kn_strdup(j->owner);
        q->tail = &q->head;
        HASH_ADD_KEYPTR(hh, p->pep_queues, q->owner, strlen(q->owner), q);
    }
    j->q = q;
    *q->tail = j;
    q->tail = &j->next;
    queue_kick(p, q);
}

static void job_db_fail(pep_job_t *j, const PGresult *res);

static void job_pg_cb(const PGresult *res, int err, void *arg)
{
    pep_job_t *j = arg;
    if (j->p == NULL) {
        job_free(j);
        return;
    }
    j->in_pg = false;
    if (err != 0) {
        kn_log_warn("pep %s: %s%s", j->owner, kn_strerror(err),
                    res ? PQresultErrorMessage(res) : "");
        if (!j->step_may_fail) {
            job_db_fail(j, res);
            return;
        }
        res = NULL;
    }
    j->step(j, res);
}

static void job_query_as(pep_job_t *j, const char *sql, size_t n,
                         const char *const *params, pep_step_t step,
                         bool may_fail)
{
    j->step = step;
    j->step_may_fail = may_fail;
    j->in_pg = true;
    kn_pg_query(j->p->pg, sql, n, params, job_pg_cb, j);
}

static void job_query(pep_job_t *j, const char *sql, size_t n,
                      const char *const *params, pep_step_t step)
{
    job_query_as(j, sql, n, params, step, false);
}

void pres_pep_free(pres_t *p)
{
    struct pep_queue *q, *tmp;
    HASH_ITER(hh, p->pep_queues, q, tmp)
    {
        pep_job_t *j = q->head;
        while (j != NULL) {
            pep_job_t *next = j->next;
            if (j->in_pg) {
                j->p = NULL; /* its query callback frees it */
                j->q = NULL;
            } else {
                job_free(j);
            }
            j = next;
        }
        HASH_DEL(p->pep_queues, q);
        free(q->owner);
        free(q);
    }
    free(p->pep_trusted);
    p->pep_trusted = NULL;
}

void pres_pep_set_trusted(pres_t *p, const char *domain)
{
    free(p->pep_trusted);
    p->pep_trusted = domain && *domain ? kn_strdup(domain) : NULL;
}

/* ---- replies -------------------------------------------------------- */

static void pep_send_err(pres_t *p, const kn_stanza_t *iq, const pep_err_t *e)
{
    const char *type = kn_stanza_type(iq);
    if (type != NULL &&
        (strcmp(type, "error") == 0 || strcmp(type, "result") == 0))
        return;
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "iq", KN_NS_CLIENT);
    if (kn_stanza_id(iq) != NULL)
        kn_stanza_builder_attr(b, "id", kn_stanza_id(iq));
    if (kn_stanza_from(iq) != NULL)
        kn_stanza_builder_attr(b, "to", kn_stanza_from(iq));
    if (kn_stanza_to(iq) != NULL)
        kn_stanza_builder_attr(b, "from", kn_stanza_to(iq));
    kn_stanza_builder_attr(b, "type", "error");
    kn_stanza_builder_start(b, "error", NULL);
    kn_stanza_builder_attr(b, "type", kn_stanza_err_type(e->cond));
    kn_stanza_builder_start(b, kn_stanza_err_name(e->cond),
                            KN_NS_STANZA_ERRORS);
    kn_stanza_builder_end(b);
    if (e->app != NULL) {
        kn_stanza_builder_start(b, e->app, PEP_NS_ERRORS);
        if (e->feature != NULL)
            kn_stanza_builder_attr(b, "feature", e->feature);
        kn_stanza_builder_end(b);
    }
    if (e->text != NULL) {
        kn_stanza_builder_start(b, "text", KN_NS_STANZA_ERRORS);
        kn_stanza_builder_text(b, e->text, strlen(e->text));
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    pres_send(p, st, KN_F_NO_OFFLINE);
    kn_stanza_unref(&st);
}

static void job_fail(pep_job_t *j, kn_stanza_err_t cond, const char *app)
{
    pep_err_t e = {cond, app, NULL, NULL};
    pep_send_err(j->p, j->iq, &e);
    job_done(j);
}

/* A database error ends the job with internal-server-error; a missing
 * account (the foreign key to users) with service-unavailable (RFC 6121
 * 8.5.1). */
static void job_db_fail(pep_job_t *j, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strcmp(state, "23503") == 0)
        job_fail(j, KN_STE_SERVICE_UNAVAILABLE, NULL);
    else
        job_fail(j, KN_STE_INTERNAL_SERVER_ERROR, NULL);
}

static kn_stanza_builder_t *result_start(pep_job_t *j)
{
    kn_stanza_builder_t *b = j->p->b;
    kn_stanza_builder_iq_result(b, j->iq);
    return b;
}

static void result_send(pep_job_t *j)
{
    kn_stanza_t *st = kn_stanza_builder_finish(j->p->b);
    pres_send(j->p, st, 0);
    kn_stanza_unref(&st);
}

static void field(kn_stanza_builder_t *b, const char *var, const char *type,
                  const char *value)
{
    kn_stanza_builder_start(b, "field", NULL);
    kn_stanza_builder_attr(b, "var", var);
    if (type != NULL)
        kn_stanza_builder_attr(b, "type", type);
    kn_stanza_builder_start(b, "value", NULL);
    kn_stanza_builder_text(b, value, strlen(value));
    kn_stanza_builder_end(b);
}

static void field_options(kn_stanza_builder_t *b, const char *(*name)(int),
                          int n)
{
    for (int i = 0; i < n; i++) {
        kn_stanza_builder_start(b, "option", NULL);
        kn_stanza_builder_start(b, "value", NULL);
        kn_stanza_builder_text(b, name(i), strlen(name(i)));
        kn_stanza_builder_end(b);
        kn_stanza_builder_end(b);
    }
}

static const char *access_name_i(int i)
{
    return pep_access_name((pep_access_t)i);
}

static const char *send_last_name_i(int i)
{
    return pep_send_last_name((pep_send_last_t)i);
}

/* ---- notifications -------------------------------------------------- */

/* Start the event message from owner in p->b; the <event/> is left open. */
static kn_stanza_builder_t *event_start(pres_t *p, const char *owner)
{
    char id[48];
    snprintf(id, sizeof(id), "pep-%lu", ++p->pep_seq);
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "from", owner);
    kn_stanza_builder_attr(b, "type", "headline");
    kn_stanza_builder_attr(b, "id", id);
    kn_stanza_builder_start(b, "event", PEP_NS_EVENT);
    return b;
}

/* Finish the event in p->b and multicast it to owner's available
 * resources; with node, also to the contacts that asked for NODE+notify
 * and whom the node's access model allows (pres_caps.c). */
static void event_send_to(pres_t *p, const char *owner, const char *node,
                          pep_access_t access)
{
    kn_stanza_t *st = kn_stanza_builder_finish(p->b);
    size_t n = pres_user_targets(p, pres_user_find(p, owner), true);
    pres_multicast(p, st, p->targets, n);
    if (node != NULL)
        pres_caps_notify(p, owner, node, (int)access, st);
    kn_stanza_unref(&st);
}

static void event_send(pres_t *p, const char *owner)
{
    event_send_to(p, owner, NULL, PEP_ACCESS_WHITELIST);
}

static void notify_publish(pep_job_t *j)
{
    kn_stanza_builder_t *b = event_start(j->p, j->owner);
    kn_stanza_builder_start(b, "items", NULL);
    kn_stanza_builder_attr(b, "node", j->req.node);
    kn_stanza_builder_start(b, "item", NULL);
    kn_stanza_builder_attr(b, "id", j->id);
    kn_stanza_builder_copy(b, j->iq, j->req.payload);
    event_send_to(j->p, j->owner, j->req.node, j->conf.access);
}

static void notify_retract(pep_job_t *j)
{
    kn_stanza_builder_t *b = event_start(j->p, j->owner);
    kn_stanza_builder_start(b, "items", NULL);
    kn_stanza_builder_attr(b, "node", j->req.node);
    kn_stanza_builder_start(b, "retract", NULL);
    kn_stanza_builder_attr(b, "id", j->req.item_id);
    event_send_to(j->p, j->owner, j->req.node, j->conf.access);
}

/* <delete node/> or <purge node/>. */
static void notify_node(pep_job_t *j, const char *what)
{
    kn_stanza_builder_t *b = event_start(j->p, j->owner);
    kn_stanza_builder_start(b, what, NULL);
    kn_stanza_builder_attr(b, "node", j->req.node);
    event_send(j->p, j->owner);
}

/* ---- the node row --------------------------------------------------- */

#define SQL_NODE_GET                                                           \
    "select access_model, persist_items, max_items, send_last from pep_nodes"  \
    " where username = $1 and node = $2"

static void conf_from_row(const PGresult *res, pep_conf_t *c)
{
    pep_conf_default(c);
    int a = pep_access_parse(PQgetvalue(res, 0, 0));
    if (a >= 0)
        c->access = (pep_access_t)a;
    c->persist = PQgetvalue(res, 0, 1)[0] == 't';
    c->max_items = strtol(PQgetvalue(res, 0, 2), NULL, 10);
    if (c->max_items < 1)
        c->max_items = 1;
    int s = pep_send_last_parse(PQgetvalue(res, 0, 3));
    if (s >= 0)
        c->send_last = (pep_send_last_t)s;
}

static void node_get(pep_job_t *j, pep_step_t step)
{
    const char *params[] = {j->local, j->req.node};
    job_query(j, SQL_NODE_GET, 2, params, step);
}

/* Insert the node with j->conf (at most pep_max_nodes per account). */
static void node_insert(pep_job_t *j, pep_step_t step)
{
    char max[24], limit[24];
    snprintf(max, sizeof(max), "%ld", j->conf.max_items);
    snprintf(limit, sizeof(limit), "%lld", j->p->conf.pep_max_nodes);
    const char *params[] = {j->local,
                            j->req.node,
                            pep_access_name(j->conf.access),
                            j->conf.persist ? "true" : "false",
                            max,
                            pep_send_last_name(j->conf.send_last),
                            limit};
    job_query(j,
              "insert into pep_nodes (username, node, access_model,"
              " persist_items, max_items, send_last) select $1, $2, $3, $4,"
              " $5, $6 where (select count(*) from pep_nodes where username"
              " = $1) < $7",
              7, params, step);
}

/* Keep the node's max_items newest items (none when it does not persist). */
static void items_trim(pep_job_t *j, pep_step_t step, bool may_fail)
{
    char keep[24];
    snprintf(keep, sizeof(keep), "%ld",
             j->conf.persist ? j->conf.max_items : 0);
    const char *params[] = {j->local, j->req.node, keep};
    job_query_as(j,
                 "delete from pep_items where username = $1 and node = $2 and"
                 " seq <= coalesce((select seq from pep_items where username ="
                 " $1 and node = $2 order by seq desc offset $3 limit 1), -1)",
                 3, params, step, may_fail);
}

static size_t affected(const PGresult *res)
{
    return (size_t)strtoul(PQcmdTuples((PGresult *)res), NULL, 10);
}

/* ---- access --------------------------------------------------------- */

static bool access_ok(const pep_job_t *j)
{
    switch (j->conf.access) {
    case PEP_ACCESS_OPEN:
        return true;
    case PEP_ACCESS_PRESENCE:
        return j->viewer == PEP_VIEW_OWNER || j->viewer == PEP_VIEW_SUBSCRIBER;
    case PEP_ACCESS_WHITELIST:
    default:
        return j->viewer == PEP_VIEW_OWNER;
    }
}

/* The XEP-0060 6.5.9 error for a refused retrieval. */
static void access_fail(pep_job_t *j)
{
    if (j->conf.access == PEP_ACCESS_PRESENCE)
        job_fail(j, KN_STE_NOT_AUTHORIZED, "presence-subscription-required");
    else
        job_fail(j, KN_STE_NOT_ALLOWED, "closed-node");
}

static void viewer_roster(pres_t *p, const char *bare, const pres_roster_t *r,
                          int err, void *arg)
{
    (void)bare;
    pep_job_t *j = arg;
    const pres_item_t *it = err == 0 ? pres_roster_find(r, j->from_bare) : NULL;
    bool from = it != NULL && (pres_item_sub(it) & PRES_SUB_FROM);
    j->viewer = from && !pres_is_blocked(p, j->owner, j->from_bare)
                    ? PEP_VIEW_SUBSCRIBER
                    : PEP_VIEW_OTHER;
    job_run(j);
}

/* ---- publish -------------------------------------------------------- */

/* Sent with may_fail: a failed trim is logged, the item is stored and a
 * later publish trims again. */
static void publish_trimmed(pep_job_t *j, const PGresult *res)
{
    (void)res;
    job_done(j);
}

static void publish_finish(pep_job_t *j)
{
    kn_stanza_builder_t *b = result_start(j);
    kn_stanza_builder_start(b, "pubsub", PEP_NS);
    kn_stanza_builder_start(b, "publish", NULL);
    kn_stanza_builder_attr(b, "node", j->req.node);
    kn_stanza_builder_start(b, "item", NULL);
    kn_stanza_builder_attr(b, "id", j->id);
    result_send(j);
    notify_publish(j);
    kn_log_debug("pep %s: published %s in %s", j->owner, j->id, j->req.node);
}

static void publish_stored(pep_job_t *j, const PGresult *res)
{
    (void)res; /* the statement's success is all that matters */
    publish_finish(j);
    items_trim(j, publish_trimmed, true);
}

static void publish_store(pep_job_t *j)
{
    if (!j->conf.persist) {
        /* A transient node keeps nothing: notify only. */
        publish_finish(j);
        if (j->node_created) {
            job_done(j);
            return;
        }
        items_trim(j, publish_trimmed,
                   true); /* drop what an earlier config kept */
        return;
    }
    kn_stanza_builder_t *fb = kn_stanza_builder_new();
    kn_stanza_builder_copy(fb, j->iq, j->req.payload);
    kn_stanza_t *frag = kn_stanza_builder_finish(fb);
    kn_stanza_builder_free(&fb);
    kn_buf_t xml = KN_BUF_INIT;
    kn_stanza_serialize(frag, &xml, NULL);
    kn_stanza_unref(&frag);
    const char *params[] = {j->local, j->req.node, j->id, xml.data,
                            j->from_bare};
    job_query(j,
              "insert into pep_items (username, node, item_id, payload,"
              " publisher) values ($1, $2, $3, $4, $5) on conflict (username,"
              " node, item_id) do update set payload = excluded.payload,"
              " publisher = excluded.publisher, seq ="
              " nextval('pep_items_seq'), updated_at = now()",
              5, params, publish_stored);
    kn_buf_free(&xml);
}

static void publish_created(pep_job_t *j, const PGresult *res)
{
    if (affected(res) == 0) { /* pep_max_nodes reached */
        job_fail(j, KN_STE_POLICY_VIOLATION, NULL);
        return;
    }
    j->node_created = true;
    publish_store(j);
}

static void publish_node(pep_job_t *j, const PGresult *res)
{
    if (PQntuples(res) == 0) { /* auto-create, with the publish-options */
        pep_conf_default(&j->conf);
        if (j->req.has_opts)
            pep_conf_apply(&j->conf, &j->req.opts);
        node_insert(j, publish_created);
        return;
    }
    conf_from_row(res, &j->conf);
    if (j->req.has_opts && !pep_opts_match(&j->conf, &j->req.opts)) {
        job_fail(j, KN_STE_CONFLICT, "precondition-not-met");
        return;
    }
    publish_store(j);
}

/* ---- retract, purge, delete ----------------------------------------- */

/* res: the node's access model (NULL: no node) and how many items the
 * delete removed. */
static void retract_done(pep_job_t *j, const PGresult *res)
{
    if (PQntuples(res) == 0 || strtol(PQgetvalue(res, 0, 1), NULL, 10) == 0) {
        job_fail(j, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    int a = pep_access_parse(PQgetvalue(res, 0, 0));
    j->conf.access = a >= 0 ? (pep_access_t)a : PEP_ACCESS_WHITELIST;
    pres_send_result(j->p, j->iq);
    notify_retract(j);
    job_done(j);
}

static void purge_done(pep_job_t *j, const PGresult *res)
{
    if (PQntuples(res) == 0 || strtol(PQgetvalue(res, 0, 0), NULL, 10) == 0) {
        job_fail(j, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    pres_send_result(j->p, j->iq);
    notify_node(j, "purge");
    job_done(j);
}

static void delete_done(pep_job_t *j, const PGresult *res)
{
    if (affected(res) == 0) {
        job_fail(j, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    pres_send_result(j->p, j->iq);
    notify_node(j, "delete");
    job_done(j);
}

/* ---- create, configure ---------------------------------------------- */

static void create_done(pep_job_t *j, const PGresult *res)
{
    if (affected(res) == 0) {
        job_fail(j, KN_STE_POLICY_VIOLATION, NULL);
        return;
    }
    pres_send_result(j->p, j->iq);
    job_done(j);
}

static void create_node(pep_job_t *j, const PGresult *res)
{
    if (PQntuples(res) > 0) {
        job_fail(j, KN_STE_CONFLICT, NULL);
        return;
    }
    pep_conf_default(&j->conf);
    if (j->req.has_opts)
        pep_conf_apply(&j->conf, &j->req.opts);
    node_insert(j, create_done);
}

static void config_get(pep_job_t *j, const PGresult *res)
{
    if (PQntuples(res) == 0) {
        job_fail(j, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    conf_from_row(res, &j->conf);
    char max[24];
    snprintf(max, sizeof(max), "%ld", j->conf.max_items);
    kn_stanza_builder_t *b = result_start(j);
    kn_stanza_builder_start(b, "pubsub", PEP_NS_OWNER);
    kn_stanza_builder_start(b, "configure", NULL);
    kn_stanza_builder_attr(b, "node", j->req.node);
    kn_stanza_builder_start(b, "x", PEP_NS_DATA);
    kn_stanza_builder_attr(b, "type", "form");
    /* field() leaves the <field/> open for its options. */
    field(b, "FORM_TYPE", "hidden", PEP_NS_NODECONF);
    kn_stanza_builder_end(b);
    field(b, "pubsub#access_model", "list-single",
          pep_access_name(j->conf.access));
    field_options(b, access_name_i, PEP_ACCESS_WHITELIST + 1);
    kn_stanza_builder_end(b);
    field(b, "pubsub#persist_items", "boolean", j->conf.persist ? "1" : "0");
    kn_stanza_builder_end(b);
    field(b, "pubsub#max_items", "text-single", max);
    kn_stanza_builder_end(b);
    field(b, "pubsub#send_last_published_item", "list-single",
          pep_send_last_name(j->conf.send_last));
    field_options(b, send_last_name_i, PEP_SEND_LAST_ON_SUB_AND_PRESENCE + 1);
    kn_stanza_builder_end(b);
    result_send(j);
    job_done(j);
}

static void config_trimmed(pep_job_t *j, const PGresult *res)
{
    (void)res; /* the statement's success is all that matters */
    pres_send_result(j->p, j->iq);
    job_done(j);
}

static void config_updated(pep_job_t *j, const PGresult *res)
{
    (void)res; /* the statement's success is all that matters */
    items_trim(j, config_trimmed, false);
}

static void config_set(pep_job_t *j, const PGresult *res)
{
    if (PQntuples(res) == 0) {
        job_fail(j, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    conf_from_row(res, &j->conf);
    pep_conf_apply(&j->conf, &j->req.opts);
    char max[24];
    snprintf(max, sizeof(max), "%ld", j->conf.max_items);
    const char *params[] = {j->local,
                            j->req.node,
                            pep_access_name(j->conf.access),
                            j->conf.persist ? "true" : "false",
                            max,
                            pep_send_last_name(j->conf.send_last)};
    job_query(j,
              "update pep_nodes set access_model = $3, persist_items = $4,"
              " max_items = $5, send_last = $6 where username = $1 and node ="
              " $2",
              6, params, config_updated);
}

/* ---- retrieval: items, disco ---------------------------------------- */

static void items_rows(pep_job_t *j, const PGresult *res)
{
    /* Rows are oldest first; keep the newest that fit in a frame. */
    int n = PQntuples(res), first = n;
    size_t bytes = 0;
    while (first > 0) {
        size_t len = (size_t)PQgetlength(res, first - 1, 1);
        if (bytes + len > PEP_RESULT_BYTES_MAX)
            break;
        bytes += len;
        first--;
    }
    if (first > 0)
        kn_log_info("pep %s: items of %s cut to the newest %d of %d", j->owner,
                    j->req.node, n - first, n);
    kn_stanza_builder_t *b = result_start(j);
    bool disco = j->req.op == PEP_OP_DISCO_ITEMS;
    if (disco) {
        kn_stanza_builder_start(b, "query", PEP_NS_DISCO_ITEMS);
    } else {
        kn_stanza_builder_start(b, "pubsub", PEP_NS);
        kn_stanza_builder_start(b, "items", NULL);
    }
    kn_stanza_builder_attr(b, "node", j->req.node);
    for (int i = first; i < n; i++) {
        kn_stanza_builder_start(b, "item", NULL);
        if (disco) {
            kn_stanza_builder_attr(b, "jid", j->owner);
            kn_stanza_builder_attr(b, "name", PQgetvalue(res, i, 0));
            kn_stanza_builder_end(b);
            continue;
        }
        kn_stanza_builder_attr(b, "id", PQgetvalue(res, i, 0));
        const char *xml = PQgetvalue(res, i, 1);
        kn_stanza_t *frag = NULL;
        if (kn_xml_parse_stanza(xml, strlen(xml), NULL, &frag) == 0)
            kn_stanza_builder_copy(b, frag, 0);
        else
            kn_log_warn("pep %s: unparsable item %s in %s", j->owner,
                        PQgetvalue(res, i, 0), j->req.node);
        kn_stanza_unref(&frag);
        kn_stanza_builder_end(b);
    }
    result_send(j);
    job_done(j);
}

/* The node's items after access was granted. */
static void items_query(pep_job_t *j)
{
    if (j->req.op == PEP_OP_ITEMS && j->req.nids > 0) {
        kn_buf_t ids = KN_BUF_INIT;
        for (int c = kn_stanza_first_child(j->iq, j->req.items); c >= 0;
             c = kn_stanza_next_sibling(j->iq, c)) {
            if (ids.len > 0)
                kn_buf_append(&ids, "\x01", 1);
            kn_buf_append_str(&ids, kn_stanza_attr(j->iq, c, "id", NULL));
        }
        const char *params[] = {j->local, j->req.node, ids.data};
        job_query(j,
                  "select item_id, payload from pep_items where username ="
                  " $1 and node = $2 and item_id = any(string_to_array($3,"
                  " chr(1))) order by seq",
                  3, params, items_rows);
        kn_buf_free(&ids);
        return;
    }
    char max[24];
    snprintf(max, sizeof(max), "%ld", j->req.max_items);
    const char *params[] = {j->local, j->req.node,
                            j->req.max_items > 0 ? max : NULL};
    job_query(j,
              "select item_id, payload from (select item_id, payload, seq"
              " from pep_items where username = $1 and node = $2 order by"
              " seq desc limit $3) t order by seq",
              3, params, items_rows);
}

static void info_send(pep_job_t *j)
{
    kn_stanza_builder_t *b = result_start(j);
    kn_stanza_builder_start(b, "query", PEP_NS_DISCO_INFO);
    kn_stanza_builder_attr(b, "node", j->req.node);
    kn_stanza_builder_start(b, "identity", NULL);
    kn_stanza_builder_attr(b, "category", "pubsub");
    kn_stanza_builder_attr(b, "type", "leaf");
    kn_stanza_builder_end(b);
    kn_stanza_builder_start(b, "feature", NULL);
    kn_stanza_builder_attr(b, "var", PEP_NS);
    kn_stanza_builder_end(b);
    result_send(j);
    job_done(j);
}

/* The node row of a retrieval (items, node disco) arrived. */
static void retrieve_node(pep_job_t *j, const PGresult *res)
{
    bool disco = j->req.op != PEP_OP_ITEMS;
    if (PQntuples(res) == 0) {
        job_fail(j, KN_STE_ITEM_NOT_FOUND, NULL);
        return;
    }
    conf_from_row(res, &j->conf);
    if (!access_ok(j)) {
        if (disco) /* a node one may not see does not exist for one */
            job_fail(j, KN_STE_ITEM_NOT_FOUND, NULL);
        else
            access_fail(j);
        return;
    }
    if (j->req.op == PEP_OP_DISCO_INFO)
        info_send(j);
    else
        items_query(j);
}

static const char *const pep_features[] = {
    PEP_NS_DISCO_INFO,
    PEP_NS_DISCO_ITEMS,
    PEP_NS,
    PEP_NS "#access-open",
    PEP_NS "#access-presence",
    PEP_NS "#access-whitelist",
    PEP_NS "#auto-create",
    PEP_NS "#config-node",
    PEP_NS "#config-node-max", /* pubsub#max_items may be "max" */
    PEP_NS "#create-and-configure",
    PEP_NS "#create-nodes",
    PEP_NS "#delete-items",
    PEP_NS "#delete-nodes",
    PEP_NS "#item-ids",
    PEP_NS "#persistent-items",
    PEP_NS "#publish",
    PEP_NS "#publish-options",
    PEP_NS "#purge-nodes",
    PEP_NS "#retract-items",
    PEP_NS "#retrieve-items",
    "urn:xmpp:push:0", /* XEP-0357 registrations (pres_push.c) */
    "urn:xmpp:mam:2",  /* XEP-0313 archive (pres_mam.c) */
    NULL,
};

/* The account's own disco#info (XEP-0163 6.1). */
static void account_info_send(pres_t *p, const kn_stanza_t *iq)
{
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_iq_result(b, iq);
    kn_stanza_builder_start(b, "query", PEP_NS_DISCO_INFO);
    kn_stanza_builder_start(b, "identity", NULL);
    kn_stanza_builder_attr(b, "category", "account");
    kn_stanza_builder_attr(b, "type", "registered");
    kn_stanza_builder_end(b);
    kn_stanza_builder_start(b, "identity", NULL);
    kn_stanza_builder_attr(b, "category", "pubsub");
    kn_stanza_builder_attr(b, "type", "pep");
    kn_stanza_builder_end(b);
    for (size_t i = 0; pep_features[i] != NULL; i++) {
        kn_stanza_builder_start(b, "feature", NULL);
        kn_stanza_builder_attr(b, "var", pep_features[i]);
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    pres_send(p, st, 0);
    kn_stanza_unref(&st);
}

static void account_exists(pep_job_t *j, const PGresult *res)
{
    if (PQntuples(res) == 0) {
        job_fail(j, KN_STE_SERVICE_UNAVAILABLE, NULL);
        return;
    }
    account_info_send(j->p, j->iq);
    job_done(j);
}

static void nodes_rows(pep_job_t *j, const PGresult *res)
{
    kn_stanza_builder_t *b = result_start(j);
    kn_stanza_builder_start(b, "query", PEP_NS_DISCO_ITEMS);
    for (int i = 0; i < PQntuples(res); i++) {
        int a = pep_access_parse(PQgetvalue(res, i, 1));
        j->conf.access = a >= 0 ? (pep_access_t)a : PEP_ACCESS_WHITELIST;
        if (!access_ok(j))
            continue;
        kn_stanza_builder_start(b, "item", NULL);
        kn_stanza_builder_attr(b, "jid", j->owner);
        kn_stanza_builder_attr(b, "node", PQgetvalue(res, i, 0));
        kn_stanza_builder_end(b);
    }
    result_send(j);
    job_done(j);
}

/* ---- running a job -------------------------------------------------- */

static bool job_needs_viewer(const pep_job_t *j)
{
    switch (j->req.op) {
    case PEP_OP_ITEMS:
    case PEP_OP_DISCO_ITEMS:
        return true;
    case PEP_OP_DISCO_INFO:
        return j->req.node != NULL;
    default:
        return false;
    }
}

static void job_run(pep_job_t *j)
{
    pres_t *p = j->p;
    if (j->viewer == PEP_VIEW_UNKNOWN && job_needs_viewer(j)) {
        if (!pres_is_local(p, j->from_bare)) {
            j->viewer = PEP_VIEW_OTHER;
        } else {
            /* Comes back to job_run with the viewer known (at once when
             * the owner's roster is cached). */
            pres_roster_get(p, j->owner, viewer_roster, j);
            return;
        }
    }
    const char *params[] = {j->local, j->req.node};
    switch (j->req.op) {
    case PEP_OP_PUBLISH:
        node_get(j, publish_node);
        break;
    case PEP_OP_RETRACT:
        job_query(j,
                  "with d as (delete from pep_items where username = $1 and"
                  " node = $2 and item_id = $3 returning 1) select (select"
                  " access_model from pep_nodes where username = $1 and node"
                  " = $2), (select count(*) from d)",
                  3, (const char *[]){j->local, j->req.node, j->req.item_id},
                  retract_done);
        break;
    case PEP_OP_ITEMS:
        node_get(j, retrieve_node);
        break;
    case PEP_OP_CREATE:
        node_get(j, create_node);
        break;
    case PEP_OP_DELETE:
        job_query(j, "delete from pep_nodes where username = $1 and node = $2",
                  2, params, delete_done);
        break;
    case PEP_OP_PURGE:
        job_query(j,
                  "with n as (select 1 from pep_nodes where username = $1 and"
                  " node = $2), d as (delete from pep_items where username ="
                  " $1 and node = $2 and exists (select 1 from n)) select"
                  " count(*) from n",
                  2, params, purge_done);
        break;
    case PEP_OP_CONFIG_GET:
        node_get(j, config_get);
        break;
    case PEP_OP_CONFIG_SET:
        node_get(j, config_set);
        break;
    case PEP_OP_DISCO_INFO:
        if (j->req.node != NULL)
            node_get(j, retrieve_node);
        else
            job_query(j, "select 1 from users where username = $1", 1, params,
                      account_exists);
        break;
    case PEP_OP_DISCO_ITEMS:
        if (j->req.node != NULL)
            node_get(j, retrieve_node);
        else
            job_query(j,
                      "select node, access_model from pep_nodes where"
                      " username = $1 order by node",
                      1, params, nodes_rows);
        break;
    }
}

/* ---- entry ---------------------------------------------------------- */

static bool op_is_owners(pep_op_t op)
{
    return op != PEP_OP_ITEMS && op != PEP_OP_DISCO_INFO &&
           op != PEP_OP_DISCO_ITEMS;
}

/* Own the request in a job for owner's queue (j holds owner, from_bare). */
static void job_start_new(pres_t *p, pep_job_t *j, const kn_stanza_t *st,
                          const pep_req_t *req, bool as_owner)
{
    j->iq = kn_stanza_ref((kn_stanza_t *)st);
    j->req = *req;
    j->local = pres_localpart(j->owner);
    if (as_owner)
        j->viewer = PEP_VIEW_OWNER;
    if (req->op == PEP_OP_PUBLISH && req->item_id != NULL) {
        j->id = kn_strdup(req->item_id);
    } else if (req->op == PEP_OP_PUBLISH) {
        char id[48];
        snprintf(id, sizeof(id), "%llx-%lx",
                 (unsigned long long)(ev_time() * 1e6), ++p->pep_seq);
        j->id = kn_strdup(id);
    }
    job_enqueue(p, j);
}

/* A publish whose payload is over pep_item_max_bytes (issue 16): XEP-0060
 * 7.1.3.4's <not-acceptable/><payload-too-big/>, with a text. */
static bool pep_payload_too_big(pres_t *p, const kn_stanza_t *st,
                                const pep_req_t *req)
{
    if (req->op != PEP_OP_PUBLISH || req->payload < 0 ||
        p->conf.pep_item_max_bytes <= 0)
        return false;
    kn_stanza_builder_t *fb = kn_stanza_builder_new();
    kn_stanza_builder_copy(fb, st, req->payload);
    kn_stanza_t *frag = kn_stanza_builder_finish(fb);
    kn_stanza_builder_free(&fb);
    kn_buf_t xml = KN_BUF_INIT;
    kn_stanza_serialize(frag, &xml, NULL);
    kn_stanza_unref(&frag);
    size_t len = xml.len;
    kn_buf_free(&xml);
    if ((long long)len <= p->conf.pep_item_max_bytes)
        return false;
    char text[128];
    snprintf(text, sizeof(text),
             "Item payload too large: %zu bytes (at most "
             "%lld)",
             len, p->conf.pep_item_max_bytes);
    pep_err_t e = {KN_STE_NOT_ACCEPTABLE, "payload-too-big", NULL, text};
    pep_send_err(p, st, &e);
    return true;
}

void pres_pep_iq(pres_t *p, const kn_env_t *env, const kn_stanza_t *st)
{
    pep_req_t req;
    pep_err_t e = {KN_STE_BAD_REQUEST, NULL, NULL, NULL};
    const char *from = kn_stanza_from(st);
    if (from == NULL)
        return;
    if (pep_req_parse(st, (long)p->conf.pep_max_items, &req, &e) < 0) {
        pep_send_err(p, st, &e);
        return;
    }
    char tob[KN_ENV_STR_MAX + 1];
    const char *to = kn_stanza_to(st);
    if (to == NULL) {
        snprintf(tob, sizeof(tob), "%.*s", (int)env->to_len, env->to);
        to = tob;
    }
    pep_err_t e2 = {KN_STE_SERVICE_UNAVAILABLE, NULL, NULL, NULL};
    if (!pres_is_local(p, to)) {
        pep_send_err(p, st, &e2);
        return;
    }
    char *owner = pres_bare_of(to);
    char *from_bare = pres_bare_of(from);
    bool own = strcmp(from_bare, owner) == 0;
    bool trusted =
        p->pep_trusted != NULL && strcmp(from_bare, p->pep_trusted) == 0;
    bool may = own || (trusted &&
                       (req.op == PEP_OP_PUBLISH || req.op == PEP_OP_RETRACT));
    if (op_is_owners(req.op) && !may) {
        e2.cond = KN_STE_FORBIDDEN;
        pep_send_err(p, st, &e2);
    } else if (own && req.op == PEP_OP_DISCO_INFO && req.node == NULL) {
        account_info_send(p, st); /* no database needed */
    } else if (pep_payload_too_big(p, st, &req)) {
        /* answered: nothing stored, nobody notified */
    } else if (p->pg == NULL) {
        pep_send_err(p, st, &e2);
    } else {
        pep_job_t *j = kn_calloc(1, sizeof(*j));
        j->p = p;
        j->owner = owner;
        j->from_bare = from_bare;
        owner = from_bare = NULL;
        job_start_new(p, j, st, &req, own || trusted);
    }
    free(owner);
    free(from_bare);
}
