/*
 * pres_probe.c - presence probes (RFC 6121 4.3), answered from
 * presenced's table (mirrored in Redis pres:<bare>, R-PRES-1): no round
 * trip to a c2s node.
 *
 * Authorisation (R-PRES-8): only the user itself and contacts with
 * subscription from/both (shared-group members count as both) get an
 * answer; anyone else gets nothing at all, not even the last unavailable
 * presence. An authorised prober of an offline user gets the stored last
 * unavailable presence when there is one. A prober the user blocked
 * (XEP-0191) gets nothing either: the cached list while the user is
 * online, the table for the stored presence (pres_last.c).
 */
#include <stdlib.h>
#include <string.h>

#include "kn_mem.h"
#include "pres.h"

typedef struct probe_job {
    char *from;
} probe_job_t;

static void probe_done(pres_t *p, void *arg)
{
    (void)p;
    (void)arg;
}

static void probe_roster_cb(pres_t *p, const char *bare, const pres_roster_t *r,
                            int err, void *arg)
{
    probe_job_t *j = arg;
    char *asker = pres_bare_of(j->from);
    const pres_item_t *it = err == 0 ? pres_roster_find(r, asker) : NULL;
    bool ok = it != NULL && (pres_item_sub(it) & PRES_SUB_FROM) &&
              !pres_block_between(p, bare, j->from);
    if (ok && pres_send_presences_of(p, bare, j->from) == 0) {
        char *one[] = {(char *)bare};
        pres_last_send_stored(p, one, 1, j->from, probe_done, NULL);
    }
    free(asker);
    free(j->from);
    free(j);
}

void pres_probe_handle(pres_t *p, const kn_stanza_t *st, const char *from,
                       const char *to)
{
    (void)st;
    if (from == NULL || to == NULL || !pres_is_local(p, to))
        return;
    char *bare = pres_bare_of(to);
    char *fbare = pres_bare_of(from);
    if (strcmp(bare, fbare) == 0) {
        pres_send_presences_of(p, bare, from);
    } else {
        probe_job_t *j = kn_malloc(sizeof(*j));
        j->from = kn_strdup(from);
        pres_roster_get(p, bare, probe_roster_cb, j);
    }
    free(fbare);
    free(bare);
}
