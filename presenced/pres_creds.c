/*
 * pres_creds.c - after presenced changed users rows in PostgreSQL (an
 * XEP-0077 password change or removal, the XEP-0133 admin commands):
 * tombstone each row's copy in the credential cache and tell every c2s
 * node (kn_credcache.h), then call done. The answer to the client waits
 * for this, so the old password no longer works anywhere once it is
 * answered. Without Redis, or when Redis fails, done comes anyway (a
 * warning: logins may use the old row for up to c2s.creds_cache_ttl).
 */
#include <stdlib.h>

#include "kn_credcache.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "pres.h"
#include "pres_mam.h"

typedef struct creds_job {
    size_t wait; /* tombstones not answered yet */
    void (*done)(void *arg);
    void *arg;
} creds_job_t;

typedef struct creds_one {
    creds_job_t *job;
    char *local;
} creds_one_t;

static void creds_on_tombstone(kn_redis_t *r, redisReply *reply, int err,
                               void *arg)
{
    creds_one_t *one = arg;
    creds_job_t *job = one->job;
    if (err == 0) {
        kn_redis_command(r, NULL, NULL, "PUBLISH %s %s", KN_CREDCACHE_CHANNEL,
                         one->local);
    } else {
        kn_log_warn("cached credentials of %s not dropped (%s); logins may "
                    "use the old ones for up to c2s.creds_cache_ttl seconds",
                    one->local,
                    err == -KN_EDB && reply ? reply->str : "no Redis");
    }
    free(one->local);
    free(one);
    if (--job->wait == 0) {
        job->done(job->arg);
        free(job);
    }
}

void pres_creds_invalidate(pres_t *p, char *const *bares, size_t n,
                           void (*done)(void *arg), void *arg)
{
    /* The archive's cached preferences of these accounts (pres_mam.c);
     * the published name reaches it again through main.c's subscription,
     * which matters only for kilnctl's changes. */
    for (size_t i = 0; i < n; i++) {
        char *local = pres_localpart(bares[i]);
        pres_mam_account_changed(p, local);
        free(local);
    }
    if (p->redis == NULL || n == 0) {
        done(arg);
        return;
    }
    creds_job_t *job = kn_calloc(1, sizeof(*job));
    job->wait = n;
    job->done = done;
    job->arg = arg;
    for (size_t i = 0; i < n; i++) {
        creds_one_t *one = kn_calloc(1, sizeof(*one));
        one->job = job;
        one->local = pres_localpart(bares[i]);
        kn_redis_command(p->redis, creds_on_tombstone, one,
                         "SET " KN_CREDCACHE_PREFIX "%s %s EX %d", one->local,
                         KN_CREDCACHE_TOMBSTONE, KN_CREDCACHE_TOMBSTONE_TTL);
    }
}
