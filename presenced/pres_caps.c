/*
 * pres_caps.c - entity capabilities (XEP-0115) for PEP (XEP-0163 4.3):
 * resolving each session's caps once per ver, the PEP notifications to
 * interested contacts, and the last items for a session that comes
 * online. Model in pres_caps.h.
 *
 * A note on resolution. The cache (p->caps, uthash in insertion order:
 * a hit moves the entry to the end, the head is evicted beyond
 * CAPS_CACHE_MAX) holds, per "hash ver", the nodes of its +notify
 * features; sessions hold references, so an evicted entry lives on while
 * a session uses it. A miss asks Redis (caps:<hash>:<ver>, features one
 * a line, CAPS_REDIS_TTL), then one session that claimed the ver: an iq
 * get from its bare JID to its full JID, id "kncaps-N", which the router
 * hands back to us as a result to a bare JID. Other sessions claiming the
 * same ver meanwhile wait on the same resolution (at most
 * CAPS_WAITERS_MAX); an answer that does not hash to the ver (a forged or
 * stale ver), an error or no answer within CAPS_QUERY_TIMEOUT is not
 * trusted: the next waiting session is asked, and when none is left the
 * ver stays unknown (a later presence claiming it tries again). At most
 * CAPS_PENDING_MAX vers are being resolved at once.
 *
 * A note on delivery. Who may get a node's events is the node's access
 * model applied to the owner's roster: `presence` the contacts with a
 * from/both subscription, `open` also any other roster contact,
 * `whitelist` nobody but the owner (whose resources pres_pep.c notifies
 * itself). For the last items at login the session's own roster stands
 * in for the owners' (a to/both item there is a from/both item in the
 * owner's: presenced writes both sides), so one query serves every
 * contact.
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
#include "pres_caps.h"
#include "pres_pep.h"

#define CAPS_CACHE_MAX     1024    /* resolved vers kept in memory */
#define CAPS_PENDING_MAX   256     /* vers being resolved at once */
#define CAPS_WAITERS_MAX   64      /* sessions waiting on one resolution */
#define CAPS_QUERY_TIMEOUT 10.0    /* seconds for a client's answer */
#define CAPS_FEATURES_MAX  1024    /* features kept of one answer */
#define CAPS_REDIS_TTL     2592000 /* 30 days */
#define CAPS_LAST_ROWS_MAX 4096    /* last items sent at one login */
#define CAPS_ID_PREFIX     "kncaps-"

struct pres_caps {
    char *key;     /* "hash ver" */
    char **notify; /* nodes of the NODE+notify features, sorted */
    size_t nnotify;
    size_t nfeatures;
    unsigned refs; /* the cache's and each session's */
    UT_hash_handle hh;
};

typedef struct caps_pending {
    pres_t *p; /* NULL: orphaned by pres_free, the Redis callback frees */
    char *key, *hash, *ver, *node;
    char id[32]; /* the disco#info in flight ("": none) */
    char *asked; /* the full JID it went to */
    char *waiters[CAPS_WAITERS_MAX];
    size_t nwait;
    bool redis; /* the GET is in flight */
    bool timer_on;
    ev_timer timer;
    struct caps_pending *next;
} caps_pending_t;

/* ---- the cache ------------------------------------------------------ */

static void caps_unref(pres_caps_t **ep)
{
    pres_caps_t *e = *ep;
    *ep = NULL;
    if (e == NULL || --e->refs > 0)
        return;
    for (size_t i = 0; i < e->nnotify; i++)
        free(e->notify[i]);
    free(e->notify);
    free(e->key);
    free(e);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A new entry (one reference, not cached) from feats[0..n). */
static pres_caps_t *caps_make(const char *key, const char *const *feats,
                              size_t n)
{
    static const char sfx[] = "+notify";
    const size_t sl = sizeof(sfx) - 1;
    pres_caps_t *e = kn_calloc(1, sizeof(*e));
    e->key = kn_strdup(key);
    e->refs = 1;
    e->nfeatures = n;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(feats[i]);
        if (len <= sl || strcmp(feats[i] + len - sl, sfx) != 0)
            continue;
        e->notify = kn_realloc(e->notify, (e->nnotify + 1) * sizeof(char *));
        e->notify[e->nnotify++] = kn_strndup(feats[i], len - sl);
    }
    if (e->nnotify > 1)
        qsort(e->notify, e->nnotify, sizeof(char *), str_cmp);
    return e;
}

static bool caps_has(const pres_caps_t *e, const char *node)
{
    return e != NULL && e->nnotify > 0 &&
           bsearch(&node, e->notify, e->nnotify, sizeof(char *), str_cmp) !=
               NULL;
}

/* Take e (its reference becomes the cache's); evict the oldest beyond the
 * bound. */
static void cache_add(pres_t *p, pres_caps_t *e)
{
    pres_caps_t *old = NULL;
    HASH_FIND_STR(p->caps, e->key, old);
    if (old != NULL) { /* resolved twice meanwhile: keep the newer */
        HASH_DEL(p->caps, old);
        caps_unref(&old);
    }
    HASH_ADD_KEYPTR(hh, p->caps, e->key, strlen(e->key), e);
    if (HASH_COUNT(p->caps) > CAPS_CACHE_MAX) {
        pres_caps_t *head = p->caps;
        HASH_DEL(p->caps, head);
        caps_unref(&head);
    }
}

static pres_caps_t *cache_find(pres_t *p, const char *key)
{
    pres_caps_t *e = NULL;
    HASH_FIND_STR(p->caps, key, e);
    if (e != NULL) { /* most recently used: to the end */
        HASH_DEL(p->caps, e);
        HASH_ADD_KEYPTR(hh, p->caps, e->key, strlen(e->key), e);
    }
    return e;
}

/* ---- last items for a session whose caps became known --------------- */

typedef enum caps_cls {
    CAPS_CLS_OWNER = 0, /* the session's own account */
    CAPS_CLS_SUB,       /* a contact it is subscribed to (to/both) */
    CAPS_CLS_CONTACT,   /* another roster contact (open nodes only) */
} caps_cls_t;

typedef struct caps_owner {
    char *local;
    caps_cls_t cls;
} caps_owner_t;

typedef struct caps_last {
    pres_t *p; /* NULL: orphaned by pres_free, the query callback frees */
    char *full;
    caps_owner_t *owners;
    size_t nowners;
    struct caps_last *next, **prev; /* in p's list of jobs */
} caps_last_t;

static void last_free(caps_last_t *j)
{
    if (j->prev != NULL) {
        *j->prev = j->next;
        if (j->next != NULL)
            j->next->prev = j->prev;
    }
    for (size_t i = 0; i < j->nowners; i++)
        free(j->owners[i].local);
    free(j->owners);
    free(j->full);
    free(j);
}

static int owner_cmp(const void *a, const void *b)
{
    return strcmp(((const caps_owner_t *)a)->local,
                  ((const caps_owner_t *)b)->local);
}

static bool access_allows(int access, caps_cls_t cls)
{
    switch (access) {
    case PEP_ACCESS_OPEN:
        return true;
    case PEP_ACCESS_PRESENCE:
        return cls == CAPS_CLS_OWNER || cls == CAPS_CLS_SUB;
    default:
        return cls == CAPS_CLS_OWNER;
    }
}

static void last_send(pres_t *p, const char *owner, const char *full,
                      const char *node, const char *item_id,
                      const char *payload)
{
    kn_stanza_t *frag = NULL;
    if (kn_xml_parse_stanza(payload, strlen(payload), NULL, &frag) < 0) {
        kn_log_warn("pep %s: unparsable item %s in %s", owner, item_id, node);
        return;
    }
    char id[48];
    snprintf(id, sizeof(id), "pep-last-%lu", ++p->pep_seq);
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "message", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "from", owner);
    kn_stanza_builder_attr(b, "to", full);
    kn_stanza_builder_attr(b, "type", "headline");
    kn_stanza_builder_attr(b, "id", id);
    kn_stanza_builder_start(b, "event", PEP_NS_EVENT);
    kn_stanza_builder_start(b, "items", NULL);
    kn_stanza_builder_attr(b, "node", node);
    kn_stanza_builder_start(b, "item", NULL);
    kn_stanza_builder_attr(b, "id", item_id);
    kn_stanza_builder_copy(b, frag, 0);
    kn_stanza_unref(&frag);
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    pres_send(p, st, KN_F_NO_OFFLINE);
    kn_stanza_unref(&st);
    p->stats.pep_last_sent++;
}

static void last_rows(const PGresult *res, int err, void *arg)
{
    caps_last_t *j = arg;
    pres_t *p = j->p;
    if (p == NULL || err != 0) {
        if (err != 0 && p != NULL)
            kn_log_warn("caps %s: last items: %s%s", j->full, kn_strerror(err),
                        res ? PQresultErrorMessage(res) : "");
        last_free(j);
        return;
    }
    pres_sess_t *s = pres_sess_find(p, j->full);
    for (int i = 0; s != NULL && s->avail && i < PQntuples(res); i++) {
        caps_owner_t key = {PQgetvalue(res, i, 0), CAPS_CLS_OWNER};
        caps_owner_t *o =
            bsearch(&key, j->owners, j->nowners, sizeof(key), owner_cmp);
        int access = pep_access_parse(PQgetvalue(res, i, 2));
        if (o == NULL || !access_allows(access, o->cls))
            continue;
        char owner[KN_ENV_STR_MAX + 1];
        snprintf(owner, sizeof(owner), "%s@%s", o->local, p->domain);
        if (o->cls != CAPS_CLS_OWNER && pres_block_between(p, owner, j->full))
            continue;
        last_send(p, owner, j->full, PQgetvalue(res, i, 1),
                  PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
    }
    last_free(j);
}

static void last_roster(pres_t *p, const char *bare, const pres_roster_t *r,
                        int err, void *arg)
{
    caps_last_t *j = arg;
    pres_sess_t *s = pres_sess_find(p, j->full);
    if (s == NULL || s->caps == NULL || s->caps->nnotify == 0) {
        last_free(j);
        return;
    }
    size_t cap = 1 + (err == 0 && r != NULL ? r->n : 0);
    j->owners = kn_calloc(cap, sizeof(*j->owners));
    j->owners[j->nowners].local = pres_localpart(bare);
    j->owners[j->nowners++].cls = CAPS_CLS_OWNER;
    for (size_t i = 0; err == 0 && r != NULL && i < r->n; i++) {
        const pres_item_t *it = &r->items[i];
        if (!pres_is_local(p, it->jid) || strcmp(it->jid, bare) == 0)
            continue;
        if (pres_item_sub(it) & PRES_SUB_TO)
            j->owners[j->nowners].cls = CAPS_CLS_SUB;
        else if (it->in_roster)
            j->owners[j->nowners].cls = CAPS_CLS_CONTACT;
        else
            continue;
        j->owners[j->nowners++].local = pres_localpart(it->jid);
    }
    qsort(j->owners, j->nowners, sizeof(*j->owners), owner_cmp);
    kn_buf_t users = KN_BUF_INIT, nodes = KN_BUF_INIT;
    for (size_t i = 0; i < j->nowners; i++) {
        if (i > 0)
            kn_buf_append(&users, "\x01", 1);
        kn_buf_append_str(&users, j->owners[i].local);
    }
    for (size_t i = 0; i < s->caps->nnotify; i++) {
        if (i > 0)
            kn_buf_append(&nodes, "\x01", 1);
        kn_buf_append_str(&nodes, s->caps->notify[i]);
    }
    char limit[24];
    snprintf(limit, sizeof(limit), "%d", CAPS_LAST_ROWS_MAX);
    const char *params[] = {users.data, nodes.data, limit};
    j->p = p;
    j->next = p->caps_last;
    if (j->next != NULL)
        j->next->prev = &j->next;
    j->prev = &p->caps_last;
    p->caps_last = j;
    /* The newest item of each node the session asked for, of each owner,
     * unless the node never sends its last item. */
    kn_pg_query(
        p->pg,
        /* The owners split once (unnest in FROM) and joined on
         * the key, not split again for every row scanned. */
        "select n.username, n.node, n.access_model, i.item_id,"
        " i.payload from unnest(string_to_array($1, chr(1))) as"
        " o(username) join pep_nodes n on n.username = o.username"
        " cross join lateral (select"
        " item_id, payload from pep_items t where t.username ="
        " n.username and t.node = n.node order by t.seq desc limit 1)"
        " i where n.node = any(string_to_array($2, chr(1))) and n.send_last ="
        " 'on_sub_and_presence' order by n.username, n.node limit $3",
        3, params, last_rows, j);
    kn_buf_free(&users);
    kn_buf_free(&nodes);
}

/* s's caps are known: the last items it asked for (XEP-0163 4.3.2). */
static void caps_session_ready(pres_t *p, pres_sess_t *s)
{
    if (s->caps->nnotify == 0 || p->pg == NULL || !s->avail)
        return;
    caps_last_t *j = kn_calloc(1, sizeof(*j));
    j->full = kn_strdup(s->full);
    pres_roster_get(p, s->user->bare, last_roster, j);
}

/* The resolution of key reached full's session. */
static void caps_resolve(pres_t *p, pres_caps_t *e, const char *full)
{
    pres_sess_t *s = pres_sess_find(p, full);
    if (s == NULL || s->caps != NULL || s->caps_key == NULL ||
        strcmp(s->caps_key, e->key) != 0)
        return;
    s->caps = e;
    e->refs++;
    kn_log_info("caps %s: %s resolved (%zu features, %zu +notify)", full,
                e->key, e->nfeatures, e->nnotify);
    caps_session_ready(p, s);
}

/* ---- resolutions in flight ------------------------------------------ */

static void pending_free(caps_pending_t *pd)
{
    for (size_t i = 0; i < pd->nwait; i++)
        free(pd->waiters[i]);
    free(pd->asked);
    free(pd->key);
    free(pd->hash);
    free(pd->ver);
    free(pd->node);
    free(pd);
}

static void pending_del(pres_t *p, caps_pending_t *pd)
{
    for (caps_pending_t **pp = &p->caps_pending; *pp; pp = &(*pp)->next) {
        if (*pp == pd) {
            *pp = pd->next;
            break;
        }
    }
    p->caps_npending--;
    if (pd->timer_on && p->loop != NULL)
        ev_timer_stop(p->loop, &pd->timer);
    pd->timer_on = false;
    if (pd->redis) {
        pd->p = NULL; /* the GET's callback frees it */
        return;
    }
    pending_free(pd);
}

/* e resolves pd: every session waiting on it, then pd goes. */
static void pending_resolved(pres_t *p, caps_pending_t *pd, pres_caps_t *e)
{
    cache_add(p, e);
    if (pd->asked != NULL)
        caps_resolve(p, e, pd->asked);
    for (size_t i = 0; i < pd->nwait; i++)
        caps_resolve(p, e, pd->waiters[i]);
    pending_del(p, pd);
}

static void caps_query_next(pres_t *p, caps_pending_t *pd);

static void caps_on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    caps_pending_t *pd = t->data;
    pd->timer_on = false;
    kn_log_info("caps: %s did not answer for %s in time", pd->asked, pd->key);
    caps_query_next(pd->p, pd);
}

/* Ask the next waiting session that still claims pd's ver. */
static void caps_query_next(pres_t *p, caps_pending_t *pd)
{
    if (pd->timer_on && p->loop != NULL)
        ev_timer_stop(p->loop, &pd->timer);
    pd->timer_on = false;
    free(pd->asked);
    pd->asked = NULL;
    pd->id[0] = '\0';
    while (pd->nwait > 0 && pd->asked == NULL) {
        char *full = pd->waiters[0];
        memmove(pd->waiters, pd->waiters + 1, (pd->nwait - 1) * sizeof(char *));
        pd->nwait--;
        pres_sess_t *s = pres_sess_find(p, full);
        if (s != NULL && s->caps == NULL && s->caps_key != NULL &&
            strcmp(s->caps_key, pd->key) == 0)
            pd->asked = full;
        else
            free(full);
    }
    if (pd->asked == NULL) {
        pending_del(p, pd);
        return;
    }
    snprintf(pd->id, sizeof(pd->id), CAPS_ID_PREFIX "%lu", ++p->caps_seq);
    char *bare = pres_bare_of(pd->asked);
    kn_buf_t node = KN_BUF_INIT;
    kn_buf_printf(&node, "%s#%s", pd->node, pd->ver);
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "iq", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "from", bare);
    kn_stanza_builder_attr(b, "to", pd->asked);
    kn_stanza_builder_attr(b, "type", "get");
    kn_stanza_builder_attr(b, "id", pd->id);
    kn_stanza_builder_start(b, "query", PEP_NS_DISCO_INFO);
    kn_stanza_builder_attr(b, "node", node.data);
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    pres_send(p, st, 0);
    kn_stanza_unref(&st);
    kn_buf_free(&node);
    free(bare);
    p->stats.caps_queries++;
    kn_log_info("caps: disco#info to %s for %s", pd->asked, pd->key);
    if (p->loop != NULL) {
        ev_timer_init(&pd->timer, caps_on_timeout, CAPS_QUERY_TIMEOUT, 0.);
        pd->timer.data = pd;
        ev_timer_start(p->loop, &pd->timer);
        pd->timer_on = true;
    }
}

static void caps_redis_cb(kn_redis_t *r, redisReply *reply, int err, void *arg)
{
    (void)r;
    caps_pending_t *pd = arg;
    pd->redis = false;
    pres_t *p = pd->p;
    if (p == NULL) {
        pending_free(pd);
        return;
    }
    if (err == 0 && reply != NULL && reply->type == REDIS_REPLY_STRING) {
        const char *feats[CAPS_FEATURES_MAX];
        size_t n = 0;
        char *copy = kn_strndup(reply->str, reply->len);
        for (char *save = NULL, *f = strtok_r(copy, "\n", &save);
             f != NULL && n < CAPS_FEATURES_MAX;
             f = strtok_r(NULL, "\n", &save))
            feats[n++] = f;
        pres_caps_t *e = caps_make(pd->key, feats, n);
        free(copy);
        kn_log_info("caps: %s from redis", pd->key);
        pending_resolved(p, pd, e);
        return;
    }
    caps_query_next(p, pd);
}

bool pres_caps_reply(pres_t *p, const kn_stanza_t *st)
{
    const char *id = kn_stanza_id(st);
    if (id == NULL || strncmp(id, CAPS_ID_PREFIX, strlen(CAPS_ID_PREFIX)) != 0)
        return false;
    caps_pending_t *pd = p->caps_pending;
    while (pd != NULL && strcmp(pd->id, id) != 0)
        pd = pd->next;
    const char *from = kn_stanza_from(st);
    if (pd == NULL || from == NULL || pd->asked == NULL ||
        strcmp(from, pd->asked) != 0)
        return true; /* late, or not from whom we asked: ignored */
    const char *type = kn_stanza_type(st);
    int q = kn_stanza_child(st, 0, "query", PEP_NS_DISCO_INFO);
    char ver[64] = "";
    int rc = -KN_EPROTO;
    if (type != NULL && strcmp(type, "result") == 0 && q >= 0)
        rc = pres_caps_ver(st, q, pd->hash, ver, sizeof(ver));
    if (rc < 0 || strcmp(ver, pd->ver) != 0) {
        p->stats.caps_bad++;
        kn_log_info("caps: %s answered for %s with %s: not trusted", from,
                    pd->key, rc < 0 ? "an error or an ill-formed answer" : ver);
        caps_query_next(p, pd);
        return true;
    }
    const char *feats[CAPS_FEATURES_MAX];
    size_t n = 0;
    kn_buf_t val = KN_BUF_INIT;
    for (int c = kn_stanza_first_child(st, q); c >= 0 && n < CAPS_FEATURES_MAX;
         c = kn_stanza_next_sibling(st, c)) {
        const char *var = kn_stanza_attr(st, c, "var", NULL);
        if (strcmp(kn_stanza_name(st, c), "feature") != 0 || var == NULL ||
            strchr(var, '\n') != NULL)
            continue;
        feats[n++] = var;
        if (val.len > 0)
            kn_buf_append(&val, "\n", 1);
        kn_buf_append_str(&val, var);
    }
    pres_caps_t *e = caps_make(pd->key, feats, n);
    if (p->redis != NULL) {
        char ttl[24];
        snprintf(ttl, sizeof(ttl), "%d", CAPS_REDIS_TTL);
        kn_buf_t k = KN_BUF_INIT;
        kn_buf_printf(&k, "caps:%s:%s", pd->hash, pd->ver);
        const char *argv[] = {"SET", k.data, val.len ? val.data : "", "EX",
                              ttl};
        kn_redis_command_argv(p->redis, NULL, NULL, 5, argv, NULL);
        kn_buf_free(&k);
    }
    kn_buf_free(&val);
    pending_resolved(p, pd, e);
    return true;
}

/* ---- sessions ------------------------------------------------------- */

void pres_caps_presence(pres_t *p, pres_sess_t *s, const kn_stanza_t *st,
                        bool first)
{
    pres_caps_claim_t c;
    if (pres_caps_claim(st, &c) < 0)
        return; /* no caps (or legacy ones): what we knew stays */
    kn_buf_t key = KN_BUF_INIT;
    kn_buf_printf(&key, "%s %s", c.hash, c.ver);
    bool same = s->caps_key != NULL && strcmp(s->caps_key, key.data) == 0;
    if (same && s->caps != NULL) {
        kn_buf_free(&key);
        if (first)
            caps_session_ready(p, s); /* available again */
        return;
    }
    /* New caps, or the same ones still unknown (being resolved: it waits
     * below; given up on: tried again). */
    free(s->caps_key);
    s->caps_key = kn_strdup(key.data);
    kn_buf_free(&key);
    caps_unref(&s->caps);
    pres_caps_t *e = cache_find(p, s->caps_key);
    if (e != NULL) {
        p->stats.caps_hits++;
        s->caps = e;
        e->refs++;
        kn_log_info("caps %s: %s known (%zu +notify)", s->full, e->key,
                    e->nnotify);
        caps_session_ready(p, s);
        return;
    }
    if (!pres_caps_hash_known(c.hash)) {
        kn_log_debug("caps %s: hash %s not supported", s->full, c.hash);
        return;
    }
    caps_pending_t *pd = p->caps_pending;
    while (pd != NULL && strcmp(pd->key, s->caps_key) != 0)
        pd = pd->next;
    if (pd != NULL) {
        bool listed = pd->asked != NULL && strcmp(pd->asked, s->full) == 0;
        for (size_t i = 0; i < pd->nwait && !listed; i++)
            listed = strcmp(pd->waiters[i], s->full) == 0;
        if (!listed && pd->nwait < CAPS_WAITERS_MAX)
            pd->waiters[pd->nwait++] = kn_strdup(s->full);
        return;
    }
    if (p->caps_npending >= CAPS_PENDING_MAX) {
        kn_log_warn("caps %s: %zu vers being resolved: %s not now", s->full,
                    p->caps_npending, s->caps_key);
        return;
    }
    pd = kn_calloc(1, sizeof(*pd));
    pd->p = p;
    pd->key = kn_strdup(s->caps_key);
    pd->hash = kn_strdup(c.hash);
    pd->ver = kn_strdup(c.ver);
    pd->node = kn_strdup(c.node);
    pd->waiters[pd->nwait++] = kn_strdup(s->full);
    pd->next = p->caps_pending;
    p->caps_pending = pd;
    p->caps_npending++;
    if (p->redis != NULL) {
        pd->redis = true;
        kn_buf_t k = KN_BUF_INIT;
        kn_buf_printf(&k, "caps:%s:%s", c.hash, c.ver);
        const char *argv[] = {"GET", k.data};
        kn_redis_command_argv(p->redis, caps_redis_cb, pd, 2, argv, NULL);
        kn_buf_free(&k);
    } else {
        caps_query_next(p, pd);
    }
}

void pres_caps_sess_gone(pres_t *p, pres_sess_t *s)
{
    (void)p;
    caps_unref(&s->caps);
    free(s->caps_key);
    s->caps_key = NULL;
}

/* ---- notifications to contacts -------------------------------------- */

typedef struct caps_notify {
    kn_stanza_t *ev;
    char *node;
    int access;
} caps_notify_t;

static void notify_roster(pres_t *p, const char *owner, const pres_roster_t *r,
                          int err, void *arg)
{
    caps_notify_t *j = arg;
    size_t n = 0;
    for (size_t i = 0; err == 0 && r != NULL && i < r->n; i++) {
        const pres_item_t *it = &r->items[i];
        caps_cls_t cls = (pres_item_sub(it) & PRES_SUB_FROM) ? CAPS_CLS_SUB
                                                             : CAPS_CLS_CONTACT;
        if (cls == CAPS_CLS_CONTACT && !it->in_roster)
            continue;
        if (!access_allows(j->access, cls) || strcmp(it->jid, owner) == 0)
            continue;
        pres_user_t *c = pres_user_find(p, it->jid);
        if (c == NULL || pres_is_blocked(p, owner, it->jid))
            continue;
        for (pres_sess_t *s = c->sessions; s; s = s->next)
            if (s->avail && caps_has(s->caps, j->node) &&
                !pres_block_between(p, owner, s->full))
                pres_target_add(p, &n, s->conn);
    }
    if (n > 0) {
        pres_multicast(p, j->ev, p->targets, n);
        p->stats.pep_contact_notified += n;
    }
    kn_stanza_unref(&j->ev);
    free(j->node);
    free(j);
}

void pres_caps_notify(pres_t *p, const char *owner, const char *node,
                      int access, const kn_stanza_t *ev)
{
    if (access == PEP_ACCESS_WHITELIST)
        return;
    caps_notify_t *j = kn_calloc(1, sizeof(*j));
    j->ev = kn_stanza_ref((kn_stanza_t *)ev);
    j->node = kn_strdup(node);
    j->access = access;
    pres_roster_get(p, owner, notify_roster, j);
}

/* ---- shutdown ------------------------------------------------------- */

void pres_caps_free(pres_t *p)
{
    while (p->caps_pending != NULL)
        pending_del(p, p->caps_pending);
    pres_caps_t *e, *tmp;
    HASH_ITER(hh, p->caps, e, tmp)
    {
        HASH_DEL(p->caps, e);
        caps_unref(&e);
    }
    /* Queries in flight: their callbacks free them. */
    caps_last_t *j = p->caps_last;
    while (j != NULL) {
        caps_last_t *next = j->next;
        j->p = NULL;
        j->prev = NULL;
        j->next = NULL;
        j = next;
    }
    p->caps_last = NULL;
}
