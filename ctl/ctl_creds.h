/*
 * ctl_creds.h - drop a user from the cluster's credential cache after
 * kilnctl changed the users row (kn_credcache.h).
 */
#ifndef CTL_CREDS_H
#define CTL_CREDS_H

#include "ctl_ctx.h"

/* Tombstone local's cached row in Redis and tell every c2s node
 * (KN_CREDCACHE_CHANNEL). 0, or -KN_EIO after a warning on stderr (the
 * change in PostgreSQL stands). No Redis configured: 0. */
int ctl_creds_invalidate(ctl_ctx_t *ctx, const char *local);

#endif
