/*
 * pres_roster.c - rosters (RFC 6121 section 2): the cache of effective
 * rosters, roster get/set/remove, pushes, versioning (XEP-0237).
 *
 * A note on the effective roster. A user's roster is the rosteritems rows
 * (personal items, with the subscription state of pres_subscr.c) merged
 * with the members of the shared groups the user can see (R-ROSTER-2:
 * subscription both, group = the shared group's display name, no
 * handshake). One query returns both, plus the user's version, so a
 * login costs one round trip. The merged roster is cached on the
 * pres_user_t while the user has sessions; every write drops it
 * (pres_roster_invalidate), and a write that races a load makes the load
 * run again (u->reload), so a cached roster is never older than the last
 * write we made. Shared-group edits by kilnctl drop every cached roster
 * (pres_shared.c).
 *
 * Versions (XEP-0237): "<user version>-<shared version>", the first
 * counting writes to the user's rows (roster_versions), the second the
 * last shared_group_changes id seen. A get with the current version gets
 * an empty result, and the changes then arrive as pushes.
 *
 * Pushes go to every session of the user (bound resources, available or
 * not), as one multicast without `to` (see pres_out.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_jid.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_xmpp_err.h"
#include "pres.h"

#define NS_ROSTER "jabber:iq:roster"

/* ---- items -------------------------------------------------------------- */

pres_sub_t pres_item_sub(const pres_item_t *it)
{
    return it->shared ? PRES_SUB_BOTH : it->st.sub;
}

pres_item_t *pres_roster_find(const pres_roster_t *r, const char *jid)
{
    for (size_t i = 0; r != NULL && i < r->n; i++)
        if (strcmp(r->items[i].jid, jid) == 0)
            return &r->items[i];
    return NULL;
}

static void item_free(pres_item_t *it)
{
    free(it->jid);
    free(it->name);
    for (size_t i = 0; i < it->ngroups; i++)
        free(it->groups[i]);
    free(it->groups);
    free(it->pending_status);
}

void pres_roster_free(pres_roster_t **rp)
{
    pres_roster_t *r = *rp;
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        item_free(&r->items[i]);
    free(r->items);
    free(r);
    *rp = NULL;
}

static pres_item_t *roster_add(pres_roster_t *r, const char *jid)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->items = kn_realloc(r->items, r->cap * sizeof(*r->items));
    }
    pres_item_t *it = &r->items[r->n++];
    memset(it, 0, sizeof(*it));
    it->jid = kn_strdup(jid);
    return it;
}

static void item_add_group(pres_item_t *it, const char *g)
{
    for (size_t i = 0; i < it->ngroups; i++)
        if (strcmp(it->groups[i], g) == 0)
            return;
    it->groups = kn_realloc(it->groups, (it->ngroups + 1) * sizeof(char *));
    it->groups[it->ngroups++] = kn_strdup(g);
}

void pres_roster_merge_shared(pres_roster_t *r, const char *jid,
                              const char *group)
{
    pres_item_t *it = pres_roster_find(r, jid);
    if (it == NULL)
        it = roster_add(r, jid);
    it->shared = true;
    it->in_roster = true;
    item_add_group(it, group);
}

void pres_groups_join(char *const *groups, size_t n, kn_buf_t *out)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            kn_buf_append_byte(out, 0x01);
        kn_buf_append_str(out, groups[i]);
    }
    if (out->data == NULL)
        kn_buf_append(out, "", 0);
}

size_t pres_groups_split(const char *s, char ***out)
{
    *out = NULL;
    if (s == NULL || *s == '\0')
        return 0;
    size_t n = 0;
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, 0x01);
        size_t len = e ? (size_t)(e - p) : strlen(p);
        *out = kn_realloc(*out, (n + 1) * sizeof(char *));
        (*out)[n++] = kn_strndup(p, len);
        if (e == NULL)
            break;
        p = e + 1;
    }
    return n;
}

void pres_roster_ver_str(long long user_ver, long long shared_ver, char *buf,
                         size_t size)
{
    snprintf(buf, size, "%lld-%lld", user_ver, shared_ver);
}

void pres_item_build(kn_stanza_builder_t *b, const pres_item_t *it)
{
    kn_stanza_builder_start(b, "item", NULL);
    kn_stanza_builder_attr(b, "jid", it->jid);
    if (it->name != NULL && *it->name)
        kn_stanza_builder_attr(b, "name", it->name);
    kn_stanza_builder_attr(b, "subscription", pres_sub_name(pres_item_sub(it)));
    if (it->st.out && !it->shared)
        kn_stanza_builder_attr(b, "ask", "subscribe");
    if (it->st.pre && !it->shared)
        kn_stanza_builder_attr(b, "approved", "true");
    for (size_t i = 0; i < it->ngroups; i++) {
        kn_stanza_builder_start(b, "group", NULL);
        kn_stanza_builder_text(b, it->groups[i], strlen(it->groups[i]));
        kn_stanza_builder_end(b);
    }
    kn_stanza_builder_end(b);
}

/* ---- loading and the cache ----------------------------------------------- */

static const char roster_sql[] =
    "select 0, jid, name, array_to_string(groups, E'\\x01'), subscription,"
    " ask_out, pending_in, preapproved, in_roster, pending_status, ver"
    " from rosteritems where username = $1"
    " union all"
    " select 1, m.username || '@' || $2, null, g.display_name, 3, false,"
    " false, false, true, null, 0"
    " from shared_groups g join shared_group_members m"
    " on m.group_name = g.name"
    /* The groups this user sees first (index on the user's memberships),
     * then their members: a login of someone outside a large group costs
     * nothing for that group. */
    " where m.username <> $1 and g.name in (select name from shared_groups"
    " where visibility = 'everybody' union all select x.group_name from"
    " shared_group_members x join shared_groups y on y.name = x.group_name"
    " where x.username = $1 and y.visibility = 'only_group')"
    " union all"
    " select 2, '', null, null, 0, false, false, false, false, null,"
    " coalesce((select version from roster_versions where username = $1),"
    " 0)";

/* A load that found every pooled connection busy for
 * db.checkout_timeout_ms (-KN_EAGAIN: never sent) is queued again this
 * many times before its waiters get the error: a login burst waits a
 * bounded while for the pool instead of failing at the first timeout. */
#define ROSTER_LOAD_RETRIES 5

typedef struct roster_load {
    pres_t *p;
    char *bare;
    unsigned tries;
} roster_load_t;

static bool pg_bool(const PGresult *res, int row, int col)
{
    const char *v = PQgetvalue(res, row, col);
    return v != NULL && v[0] == 't';
}

static pres_roster_t *roster_from_result(const PGresult *res)
{
    pres_roster_t *r = kn_calloc(1, sizeof(*r));
    int rows = PQntuples(res);
    /* Personal rows first, so shared rows merge into them. */
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < rows; i++) {
            int kind = atoi(PQgetvalue(res, i, 0));
            if (kind != pass)
                continue;
            if (kind == 2) {
                r->ver = atoll(PQgetvalue(res, i, 10));
                continue;
            }
            const char *jid = PQgetvalue(res, i, 1);
            if (kind == 1) {
                pres_roster_merge_shared(r, jid, PQgetvalue(res, i, 3));
                continue;
            }
            pres_item_t *it = roster_add(r, jid);
            it->personal = true;
            if (!PQgetisnull(res, i, 2))
                it->name = kn_strdup(PQgetvalue(res, i, 2));
            it->ngroups = pres_groups_split(PQgetvalue(res, i, 3), &it->groups);
            it->st.sub = (pres_sub_t)(atoi(PQgetvalue(res, i, 4)) & 3);
            it->st.out = pg_bool(res, i, 5);
            it->st.in = pg_bool(res, i, 6);
            it->st.pre = pg_bool(res, i, 7);
            it->in_roster = pg_bool(res, i, 8);
            if (!PQgetisnull(res, i, 9))
                it->pending_status = kn_strdup(PQgetvalue(res, i, 9));
        }
    }
    return r;
}

static void roster_issue(pres_t *p, pres_user_t *u, unsigned tries);

static void roster_loaded(const PGresult *res, int err, void *arg)
{
    roster_load_t *l = arg;
    pres_t *p = l->p;
    pres_user_t *u = pres_user_find(p, l->bare);
    unsigned tries = l->tries;
    free(l->bare);
    free(l);
    if (u == NULL)
        return;
    if (err == 0 && u->reload) {
        u->reload = false;
        roster_issue(p, u, 0);
        return;
    }
    if (err == -KN_EAGAIN && tries < ROSTER_LOAD_RETRIES) {
        u->reload = false; /* the next load reads it all again */
        kn_log_info("roster of %s: no database connection free in time,"
                    " queued again",
                    u->bare);
        roster_issue(p, u, tries + 1);
        return;
    }
    u->loading = false;
    pres_roster_t *r = NULL;
    if (err == 0) {
        r = roster_from_result(res);
        pres_roster_free(&u->roster);
        u->roster = r;
    } else {
        kn_log_warn("roster of %s: %s", u->bare, kn_strerror(err));
    }
    /* Waiters may add waiters or free u: detach the list first, and keep
     * u alive by marking it loading while we call them. */
    pres_roster_waiter_t *w = u->waiters;
    u->waiters = NULL;
    u->loading = true;
    char *bare = kn_strdup(u->bare);
    while (w != NULL) {
        pres_roster_waiter_t *next = w->next;
        if (w->cb)
            w->cb(p, bare, u->roster, err == 0 ? 0 : err, w->arg);
        free(w);
        w = next;
    }
    u->loading = false;
    free(bare);
    pres_user_maybe_free(p, u);
}

static void roster_issue(pres_t *p, pres_user_t *u, unsigned tries)
{
    roster_load_t *l = kn_malloc(sizeof(*l));
    l->p = p;
    l->tries = tries;
    l->bare = kn_strdup(u->bare);
    char *local = pres_localpart(u->bare);
    const char *params[] = {local, p->domain};
    u->loading = true;
    kn_pg_query(p->pg, roster_sql, 2, params, roster_loaded, l);
    free(local);
}

void pres_roster_get(pres_t *p, const char *bare, pres_roster_cb cb, void *arg)
{
    pres_user_t *u = pres_user_get(p, bare);
    if (u->roster != NULL && !u->loading) {
        if (cb != NULL)
            cb(p, bare, u->roster, 0, arg);
        pres_user_maybe_free(p, u);
        return;
    }
    if (p->pg == NULL || !pres_is_local(p, bare)) {
        /* No database (unit tests) or not ours: an empty roster. */
        pres_roster_t empty = {0};
        if (cb != NULL)
            cb(p, bare, &empty, 0, arg);
        pres_user_maybe_free(p, u);
        return;
    }
    if (cb != NULL) {
        pres_roster_waiter_t *w = kn_calloc(1, sizeof(*w));
        w->cb = cb;
        w->arg = arg;
        pres_roster_waiter_t **pp = &u->waiters;
        while (*pp)
            pp = &(*pp)->next;
        *pp = w;
    }
    if (!u->loading)
        roster_issue(p, u, 0);
}

void pres_roster_invalidate(pres_t *p, const char *bare)
{
    pres_user_t *u = pres_user_find(p, bare);
    if (u == NULL)
        return;
    pres_roster_free(&u->roster);
    if (u->loading)
        u->reload = true;
}

void pres_roster_invalidate_all(pres_t *p)
{
    for (pres_user_t *u = p->users; u; u = u->hh.next) {
        pres_roster_free(&u->roster);
        if (u->loading)
            u->reload = true;
    }
}

/* ---- pushes ------------------------------------------------------------- */

void pres_roster_push(pres_t *p, const char *bare, const pres_item_t *it,
                      const char *jid, long long ver)
{
    pres_user_t *u = pres_user_find(p, bare);
    if (u == NULL || u->sessions == NULL)
        return;
    static unsigned long seq;
    char id[32], vs[64];
    snprintf(id, sizeof(id), "push%lu", ++seq);
    pres_roster_ver_str(ver, p->shared_ver, vs, sizeof(vs));
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "iq", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "type", "set");
    kn_stanza_builder_attr(b, "id", id);
    kn_stanza_builder_start(b, "query", NS_ROSTER);
    kn_stanza_builder_attr(b, "ver", vs);
    if (it != NULL && it->in_roster) {
        pres_item_build(b, it);
    } else {
        kn_stanza_builder_start(b, "item", NULL);
        kn_stanza_builder_attr(b, "jid", it ? it->jid : jid);
        kn_stanza_builder_attr(b, "subscription", "remove");
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    size_t n = pres_user_targets(p, u, false);
    pres_multicast(p, st, p->targets, n);
    p->stats.pushes++;
    kn_stanza_unref(&st);
}

typedef struct push_job {
    char *jid;
} push_job_t;

static void push_jid_cb(pres_t *p, const char *bare, const pres_roster_t *r,
                        int err, void *arg)
{
    push_job_t *j = arg;
    if (err == 0 && r != NULL) {
        const pres_item_t *it = pres_roster_find(r, j->jid);
        pres_roster_push(p, bare, it, j->jid, r->ver);
    }
    free(j->jid);
    free(j);
}

void pres_roster_push_jid(pres_t *p, const char *bare, const char *jid)
{
    pres_roster_invalidate(p, bare);
    pres_user_t *u = pres_user_find(p, bare);
    if (u == NULL || u->sessions == NULL)
        return;
    push_job_t *j = kn_malloc(sizeof(*j));
    j->jid = kn_strdup(jid);
    pres_roster_get(p, bare, push_jid_cb, j);
}

/* ---- roster get --------------------------------------------------------- */

typedef struct iq_job {
    kn_stanza_t *iq;
    char *ver; /* the client's ver, or NULL */
    char *jid;
    char *bare;
} iq_job_t;

static void iq_job_free(iq_job_t *j)
{
    kn_stanza_unref(&j->iq);
    free(j->ver);
    free(j->jid);
    free(j->bare);
    free(j);
}

static void roster_get_cb(pres_t *p, const char *bare, const pres_roster_t *r,
                          int err, void *arg)
{
    (void)bare;
    iq_job_t *j = arg;
    if (err != 0 || r == NULL) {
        pres_send_error(p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
        iq_job_free(j);
        return;
    }
    char vs[64];
    pres_roster_ver_str(r->ver, p->shared_ver, vs, sizeof(vs));
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "iq", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "type", "result");
    if (kn_stanza_id(j->iq))
        kn_stanza_builder_attr(b, "id", kn_stanza_id(j->iq));
    kn_stanza_builder_attr(b, "to", kn_stanza_from(j->iq));
    if (j->ver == NULL || strcmp(j->ver, vs) != 0) {
        kn_stanza_builder_start(b, "query", NS_ROSTER);
        kn_stanza_builder_attr(b, "ver", vs);
        for (size_t i = 0; i < r->n; i++)
            if (r->items[i].in_roster)
                pres_item_build(b, &r->items[i]);
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    pres_send(p, st, 0);
    kn_stanza_unref(&st);
    iq_job_free(j);
}

/* ---- roster set --------------------------------------------------------- */

/* A new item only while the user has fewer than $5 rows (roster_max_items,
 * 0: no limit); an existing item is always updated. No row back: full. */
static const char roster_upsert_sql[] =
    "with ok as (select $5::int = 0 or exists (select 1 from rosteritems"
    " where username = $1 and jid = $2) or (select count(*) from rosteritems"
    " where username = $1) < $5::int as ok),"
    " v as (insert into roster_versions (username, version)"
    " select $1, 1 from ok where ok.ok on conflict (username) do update"
    " set version = roster_versions.version + 1 returning version)"
    " insert into rosteritems (username, jid, name, groups, in_roster, ver)"
    " select $1, $2, $3, string_to_array($4, E'\\x01'), true, v.version"
    " from v on conflict (username, jid) do update set name = excluded.name,"
    " groups = excluded.groups, in_roster = true, ver = excluded.ver"
    " returning ver";

static const char roster_delete_sql[] =
    "with d as (delete from rosteritems where username = $1 and jid = $2"
    " returning subscription, ask_out, pending_in),"
    " v as (update roster_versions set version = version + 1"
    " where username = $1 and exists (select 1 from d) returning version)"
    " select d.subscription, d.ask_out, d.pending_in from d";

typedef struct set_ctx {
    pres_t *p;
    iq_job_t *j;
    bool remove;
} set_ctx_t;

static void roster_write_cb(const PGresult *res, int err, void *arg)
{
    set_ctx_t *c = arg;
    pres_t *p = c->p;
    iq_job_t *j = c->j;
    free(c);
    if (err != 0) {
        kn_log_warn("roster write for %s: %s", j->bare, kn_strerror(err));
        pres_send_error(p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
        iq_job_free(j);
        return;
    }
    if (j->ver != NULL && PQntuples(res) == 0) {
        /* j->ver marks a remove here: nothing was there. */
        pres_send_error(p, j->iq, KN_STE_ITEM_NOT_FOUND);
        iq_job_free(j);
        return;
    }
    if (PQntuples(res) == 0) {
        /* roster_max_items reached (issue 16): RFC 6121 2.3.3 leaves the
         * condition to us; not-allowed (cancel), with the limit. */
        char text[96];
        snprintf(text, sizeof(text), "Roster full (at most %lld items)",
                 p->conf.roster_max_items);
        pres_send_error_text(p, j->iq, KN_STE_NOT_ALLOWED, text);
        iq_job_free(j);
        return;
    }
    pres_send_result(p, j->iq);
    if (j->ver != NULL) {
        /* RFC 6121 2.5.2: removing cancels both directions. */
        pres_sub_t sub = (pres_sub_t)(atoi(PQgetvalue(res, 0, 0)) & 3);
        bool out = PQgetvalue(res, 0, 1)[0] == 't';
        bool in = PQgetvalue(res, 0, 2)[0] == 't';
        pres_subscr_cancel_on_remove(p, j->bare, j->jid, sub, out, in);
    }
    pres_roster_push_jid(p, j->bare, j->jid);
    iq_job_free(j);
}

static void roster_set(pres_t *p, iq_job_t *j, const kn_stanza_t *st, int q)
{
    int item = kn_stanza_child(st, q, "item", NULL);
    if (item < 0 || kn_stanza_next_sibling(st, item) >= 0) {
        pres_send_error(p, st, KN_STE_BAD_REQUEST);
        iq_job_free(j);
        return;
    }
    const char *jid = kn_stanza_attr(st, item, "jid", NULL);
    kn_jid_t cj = KN_JID_INIT;
    if (jid == NULL || kn_jid_parse(&cj, jid, strlen(jid)) < 0) {
        pres_send_error(p, st, KN_STE_JID_MALFORMED);
        iq_job_free(j);
        return;
    }
    j->jid = kn_strndup(kn_jid_str(&cj), kn_jid_bare_len(&cj));
    kn_jid_free(&cj);
    if (strcmp(j->jid, j->bare) == 0) {
        pres_send_error(p, st, KN_STE_NOT_ALLOWED);
        iq_job_free(j);
        return;
    }
    const char *subattr = kn_stanza_attr(st, item, "subscription", NULL);
    char *local = pres_localpart(j->bare);
    set_ctx_t *c = kn_malloc(sizeof(*c));
    c->p = p;
    c->j = j;
    if (subattr != NULL && strcmp(subattr, "remove") == 0) {
        c->remove = true;
        j->ver = kn_strdup("remove");
        const char *params[] = {local, j->jid};
        kn_pg_query(p->pg, roster_delete_sql, 2, params, roster_write_cb, c);
        free(local);
        return;
    }
    /* Groups: non-empty, no duplicates (RFC 6121 2.3.3). */
    char **groups = NULL;
    size_t ng = 0;
    bool bad = false;
    for (int g = kn_stanza_first_child(st, item); g >= 0;
         g = kn_stanza_next_sibling(st, g)) {
        if (strcmp(kn_stanza_name(st, g), "group") != 0)
            continue;
        kn_buf_t t = KN_BUF_INIT;
        kn_stanza_text(st, g, &t);
        if (t.len == 0 || memchr(t.data, 0x01, t.len) != NULL)
            bad = true;
        for (size_t i = 0; i < ng && !bad; i++)
            if (t.data && strcmp(groups[i], t.data) == 0)
                bad = true;
        groups = kn_realloc(groups, (ng + 1) * sizeof(char *));
        groups[ng++] = t.data ? kn_buf_release(&t, NULL) : kn_strdup("");
        kn_buf_free(&t);
    }
    if (bad) {
        for (size_t i = 0; i < ng; i++)
            free(groups[i]);
        free(groups);
        free(c);
        free(local);
        pres_send_error(p, st, KN_STE_NOT_ACCEPTABLE);
        iq_job_free(j);
        return;
    }
    kn_buf_t gs = KN_BUF_INIT;
    pres_groups_join(groups, ng, &gs);
    const char *name = kn_stanza_attr(st, item, "name", NULL);
    char max[24];
    snprintf(max, sizeof(max), "%lld", p->conf.roster_max_items);
    const char *params[] = {local, j->jid, name, gs.data, max};
    kn_pg_query(p->pg, roster_upsert_sql, 5, params, roster_write_cb, c);
    for (size_t i = 0; i < ng; i++)
        free(groups[i]);
    free(groups);
    kn_buf_free(&gs);
    free(local);
}

void pres_roster_iq(pres_t *p, const kn_env_t *env, const kn_stanza_t *st)
{
    (void)env;
    const char *from = kn_stanza_from(st);
    const char *to = kn_stanza_to(st);
    int q = kn_stanza_child(st, 0, "query", NS_ROSTER);
    if (from == NULL || q < 0 || !pres_is_local(p, from)) {
        pres_send_error(p, st, KN_STE_SERVICE_UNAVAILABLE);
        return;
    }
    char *bare = pres_bare_of(from);
    /* Only the user's own roster (to absent, the user's bare JID or the
     * server). */
    if (to != NULL && strcmp(to, bare) != 0 && strcmp(to, p->domain) != 0) {
        free(bare);
        pres_send_error(p, st, KN_STE_FORBIDDEN);
        return;
    }
    iq_job_t *j = kn_calloc(1, sizeof(*j));
    j->iq = kn_stanza_ref((kn_stanza_t *)st);
    j->bare = bare;
    const char *type = kn_stanza_type(st);
    if (type != NULL && strcmp(type, "get") == 0) {
        const char *ver = kn_stanza_attr(st, q, "ver", NULL);
        j->ver = ver ? kn_strdup(ver) : NULL;
        pres_roster_get(p, bare, roster_get_cb, j);
    } else if (type != NULL && strcmp(type, "set") == 0) {
        if (p->pg == NULL) {
            pres_send_error(p, st, KN_STE_SERVICE_UNAVAILABLE);
            iq_job_free(j);
            return;
        }
        roster_set(p, j, st, q);
    } else {
        iq_job_free(j);
    }
}
