/*
 * ctl_admin.h - kilnctl's operator commands on the live cluster (issue
 * 14): sessions and nodes read from Redis (docs/ARCHITECTURE.md, "Redis
 * keys"), and actions queued in PostgreSQL's admin_commands for
 * kiln-presenced to carry out (pres_admin.c) since kilnctl is not on the
 * ZeroMQ bus.
 */
#ifndef CTL_ADMIN_H
#define CTL_ADMIN_H

#include "ctl_ctx.h"

/* A synchronous connection to redis.address, or NULL after ctl_err. */
struct redisContext;
struct redisContext *ctl_redis_connect(const ctl_ctx_t *ctx);

/* `session list [USER]`: one line per session: full JID, node,
 * priority, available (yes/no). */
int ctl_session_list(ctl_ctx_t *ctx, const char *user);
/* `session kick JID`: end the session (full JID) or every session of a
 * bare JID; the client gets <policy-violation/>. Fails when not online. */
int ctl_session_kick(ctl_ctx_t *ctx, const char *jid);
/* `stats`: nodes (alive or not), sessions per node, total. */
int ctl_stats(ctl_ctx_t *ctx);
/* `announce TEXT`: a headline message to every online session. */
int ctl_announce(ctl_ctx_t *ctx, const char *text);

#endif
