/*
 * ctl_creds.c - after kilnctl changed a users row (password, deletion,
 * disabled flag): drop the row from the cluster's credential cache
 * (kn_credcache.h) before saying it is done, so the next login on any
 * node reads the new row from PostgreSQL and every c2s node forgets the
 * user's verified PLAIN password.
 */
#include "ctl_creds.h"

#include <hiredis/hiredis.h>
#include <stdio.h>

#include "ctl_admin.h"
#include "kn_buf.h"
#include "kn_credcache.h"
#include "kn_err.h"

int ctl_creds_invalidate(ctl_ctx_t *ctx, const char *local)
{
    const char *a = ctx->cc.redis_address;
    if (a == NULL || *a == '\0')
        return 0;
    redisContext *r = ctl_redis_connect(ctx);
    int rc = -KN_EIO;
    if (r == NULL)
        goto warn;
    kn_buf_t key = KN_BUF_INIT;
    kn_buf_printf(&key, KN_CREDCACHE_PREFIX "%s", local);
    redisReply *rep =
        redisCommand(r, "SET %s %s EX %d", key.data, KN_CREDCACHE_TOMBSTONE,
                     KN_CREDCACHE_TOMBSTONE_TTL);
    kn_buf_free(&key);
    if (rep != NULL && rep->type != REDIS_REPLY_ERROR) {
        freeReplyObject(rep);
        rep = redisCommand(r, "PUBLISH %s %s", KN_CREDCACHE_CHANNEL, local);
        if (rep != NULL && rep->type != REDIS_REPLY_ERROR)
            rc = 0;
    }
    if (rep != NULL)
        freeReplyObject(rep);
    redisFree(r);
    if (rc == 0)
        return 0;
warn:
    fprintf(stderr,
            "kilnctl: warning: the cached credentials of %s could not be "
            "dropped from Redis; logins may use the old ones for up to "
            "c2s.creds_cache_ttl seconds\n",
            local);
    return rc;
}
