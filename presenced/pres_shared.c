/*
 * pres_shared.c - shared roster groups going live (R-ROSTER-2,
 * R-CACHE-3).
 *
 * A note on invalidation. kilnctl edits shared_groups and
 * shared_group_members and, in the same transaction, appends a row to
 * shared_group_changes. We poll that table every presenced.shared_poll_ms
 * (an indexed "id > last" read): a new row bumps p->shared_ver (part of
 * every roster version), and every online user's cached roster is
 * reloaded and compared with the old one. What differs is pushed at once
 * (R-ROSTER-1), and presence follows the new subscriptions: an item that
 * gained "to" brings the contact's presence, one that lost it brings
 * unavailable. No daemon restarts, no stale cache.
 */
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "pres.h"

static bool item_same(const pres_item_t *a, const pres_item_t *b)
{
    if (pres_item_sub(a) != pres_item_sub(b) || a->in_roster != b->in_roster ||
        a->st.out != b->st.out || a->ngroups != b->ngroups)
        return false;
    if ((a->name == NULL) != (b->name == NULL) ||
        (a->name && strcmp(a->name, b->name) != 0))
        return false;
    for (size_t i = 0; i < a->ngroups; i++)
        if (strcmp(a->groups[i], b->groups[i]) != 0)
            return false;
    return true;
}

static void shared_diff_cb(pres_t *p, const char *bare, const pres_roster_t *r,
                           int err, void *arg)
{
    pres_roster_t *old = arg;
    if (err == 0 && r != NULL) {
        for (size_t i = 0; i < r->n; i++) {
            const pres_item_t *it = &r->items[i];
            const pres_item_t *o = pres_roster_find(old, it->jid);
            if (o != NULL && item_same(o, it))
                continue;
            if (it->in_roster || (o != NULL && o->in_roster))
                pres_roster_push(p, bare, it, it->jid, r->ver);
            bool had = o != NULL && (pres_item_sub(o) & PRES_SUB_TO);
            bool has = (pres_item_sub(it) & PRES_SUB_TO) != 0;
            if (has && !had)
                pres_presence_flow(p, it->jid, bare, true);
            else if (had && !has)
                pres_presence_flow(p, it->jid, bare, false);
        }
        for (size_t i = 0; old != NULL && i < old->n; i++) {
            const pres_item_t *o = &old->items[i];
            if (pres_roster_find(r, o->jid) != NULL)
                continue;
            if (o->in_roster)
                pres_roster_push(p, bare, NULL, o->jid, r->ver);
            if (pres_item_sub(o) & PRES_SUB_TO)
                pres_presence_flow(p, o->jid, bare, false);
        }
    }
    pres_roster_free(&old);
}

static void shared_changed(pres_t *p)
{
    /* Steal every online user's roster, reload, diff. */
    size_t n = HASH_COUNT(p->users);
    char **bares = kn_calloc(n + 1, sizeof(char *));
    pres_roster_t **olds = kn_calloc(n + 1, sizeof(*olds));
    size_t k = 0;
    for (pres_user_t *u = p->users; u; u = u->hh.next) {
        if (u->sessions == NULL)
            continue;
        bares[k] = kn_strdup(u->bare);
        olds[k] = u->roster;
        u->roster = NULL;
        if (u->loading)
            u->reload = true;
        k++;
    }
    pres_roster_invalidate_all(p);
    for (size_t i = 0; i < k; i++) {
        pres_roster_get(p, bares[i], shared_diff_cb, olds[i]);
        free(bares[i]);
    }
    free(bares);
    free(olds);
}

/* arg: a pres_t * slot that pres_free clears when it frees p while the
 * query is in flight (the pool answers it afterwards, with an error). */
static void shared_rows(const PGresult *res, int err, void *arg)
{
    pres_t **slot = arg;
    pres_t *p = *slot;
    free(slot);
    if (p == NULL)
        return;
    p->shared_inflight = NULL;
    p->shared_polling = false;
    if (err != 0 || PQntuples(res) == 0)
        return;
    long long max = atoll(PQgetvalue(res, 0, 0));
    if (max <= p->shared_ver)
        return;
    bool first = p->shared_ver < 0;
    p->shared_ver = max;
    if (!first) {
        kn_log_info("shared groups changed (version %lld): refreshing "
                    "online rosters",
                    max);
        shared_changed(p);
    }
}

void pres_shared_poll(pres_t *p)
{
    if (p->pg == NULL || p->shared_polling)
        return;
    p->shared_polling = true;
    pres_t **slot = kn_malloc(sizeof(*slot));
    *slot = p;
    p->shared_inflight = slot;
    kn_pg_query(p->pg, "select coalesce(max(id), 0) from shared_group_changes",
                0, NULL, shared_rows, slot);
}
