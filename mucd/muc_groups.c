/*
 * muc_groups.c - Kiln's legacy group-list IQ (R-GRP-6, last sentence):
 * for clients without XEP-0402 bookmarks, an iq get to the MUC service
 *
 *   <query xmlns='urn:kiln:groups:0'/>
 *
 * returns the groups (rooms with the group profile) in which the sender's
 * bare JID is owner, admin or member:
 *
 *   <query xmlns='urn:kiln:groups:0'>
 *     <item jid='team@conference.example' name='Team' affiliation='member'/>
 *   </query>
 *
 * ordered by room JID; name is the room's title, else its local part. The
 * answer comes from muc_affiliation, read on the ordered store queue (so
 * it includes this node's writes queued before it, and kilnctl's
 * committed ones even before their invalidation arrived). Without a store
 * (unit tests) the in-memory rooms answer.
 */
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_mem.h"
#include "muc_aff.h"
#include "muc_iq.h"
#include "muc_out.h"
#include "muc_room.h"
#include "muc_store.h"

typedef struct groups_req {
    muc_t *m;
    kn_stanza_t *iq;
} groups_req_t;

static void groups_item(kn_stanza_builder_t *b, const char *jid,
                        const char *name, const char *aff)
{
    kn_stanza_builder_start(b, "item", NULL);
    kn_stanza_builder_attr(b, "jid", jid);
    kn_stanza_builder_attr(b, "name", name);
    kn_stanza_builder_attr(b, "affiliation", aff);
    kn_stanza_builder_end(b);
}

static void groups_send(muc_t *m)
{
    kn_stanza_t *out = kn_stanza_builder_finish(m->b);
    muc_send(m, out);
    kn_stanza_unref(&out);
}

static void groups_on_rows(const PGresult *res, int err, void *arg)
{
    groups_req_t *r = arg;
    muc_t *m = r->m;
    if (err < 0) {
        muc_send_error(m, r->iq, KN_STE_INTERNAL_SERVER_ERROR,
                       "the group list could not be read");
    } else {
        muc_iq_result_start(m, r->iq);
        kn_stanza_builder_start(m->b, "query", MUC_NS_GROUPS);
        for (int i = 0; i < PQntuples(res); i++)
            groups_item(m->b, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                        PQgetvalue(res, i, 2));
        groups_send(m);
    }
    kn_stanza_unref(&r->iq);
    free(r);
}

static int groups_cmp(const void *a, const void *b)
{
    const muc_room_t *x = *(const muc_room_t *const *)a;
    const muc_room_t *y = *(const muc_room_t *const *)b;
    return strcmp(x->jid, y->jid);
}

static void groups_from_memory(muc_t *m, const muc_in_t *in)
{
    size_t n = 0, cap = HASH_COUNT(m->rooms);
    muc_room_t **list = kn_calloc(cap + 1, sizeof(*list));
    for (muc_room_t *r = m->rooms; r; r = r->hh.next)
        if (r->cfg.is_group && muc_room_aff(r, in->from_bare) >= MUC_AFF_MEMBER)
            list[n++] = r;
    qsort(list, n, sizeof(*list), groups_cmp);
    muc_iq_result_start(m, in->st);
    kn_stanza_builder_start(m->b, "query", MUC_NS_GROUPS);
    for (size_t i = 0; i < n; i++) {
        const muc_room_t *r = list[i];
        groups_item(m->b, r->jid, muc_room_name(r),
                    muc_aff_name(muc_room_aff(r, in->from_bare)));
    }
    free(list);
    groups_send(m);
}

void muc_groups_iq(muc_t *m, const muc_in_t *in)
{
    if (m->store == NULL) {
        groups_from_memory(m, in);
        return;
    }
    groups_req_t *r = kn_calloc(1, sizeof(*r));
    r->m = m;
    r->iq = kn_stanza_ref((kn_stanza_t *)in->st);
    const char *params[] = {in->from_bare, m->set.service};
    muc_store_query(m->store,
                    "select r.jid, coalesce(nullif(r.title, ''), r.node), "
                    "a.affiliation from muc_affiliation a join muc_room r on "
                    "r.id = a.room_id where a.bare_jid = $1 and r.service = "
                    "$2 and r.is_group and r.destroyed_at is null and "
                    "a.affiliation in ('owner', 'admin', 'member') order by "
                    "r.jid",
                    2, params, false, groups_on_rows, r);
}
