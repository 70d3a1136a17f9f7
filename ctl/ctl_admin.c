/*
 * ctl_admin.c - session list/kick, stats, announce (see ctl_admin.h).
 *
 * Redis is read with a synchronous hiredis connection; every SCAN loop is
 * bounded (CTL_SCAN_MAX rounds).
 */
#include "ctl_admin.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_buf.h"
#include "kn_err.h"
#include "kn_mem.h"

#define CTL_SCAN_MAX 100000 /* SCAN rounds: far more than any cluster */

redisContext *ctl_redis_connect(const ctl_ctx_t *ctx)
{
    const char *a = ctx->cc.redis_address;
    redisContext *rc = NULL;
    struct timeval tv = {5, 0};
    if (strncmp(a, "unix:", 5) == 0) {
        rc = redisConnectUnixWithTimeout(a + 5, tv);
    } else if (strncmp(a, "tcp:", 4) == 0) {
        const char *colon = strrchr(a + 4, ':');
        if (colon != NULL) {
            char *host = kn_strndup(a + 4, (size_t)(colon - (a + 4)));
            rc = redisConnectWithTimeout(host, atoi(colon + 1), tv);
            free(host);
        }
    }
    if (rc == NULL) {
        ctl_err("redis.address %s: expected unix:PATH or tcp:HOST:PORT", a);
        return NULL;
    }
    if (rc->err) {
        ctl_err("redis %s: %s", a, rc->errstr);
        redisFree(rc);
        return NULL;
    }
    return rc;
}

static redisReply *admin_cmd(redisContext *r, const char *fmt, const char *arg)
{
    redisReply *rep = redisCommand(r, fmt, arg);
    if (rep == NULL) {
        ctl_err("redis: %s", r->errstr);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        ctl_err("redis: %s", rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* The bare JID for arg ("user" or "user@domain", a full JID's resource
 * dropped), in a new string. */
static char *admin_bare(const ctl_ctx_t *ctx, const char *arg)
{
    kn_buf_t b = KN_BUF_INIT;
    const char *slash = strchr(arg, '/');
    size_t n = slash ? (size_t)(slash - arg) : strlen(arg);
    kn_buf_append(&b, arg, n);
    if (memchr(arg, '@', n) == NULL)
        kn_buf_printf(&b, "@%s", ctx->cc.domain);
    kn_buf_append_byte(&b, 0);
    return kn_buf_release(&b, NULL);
}

/* Print the sessions of one sessions:<bare> hash; returns how many. */
static long admin_print_user(redisContext *r, const char *key, FILE *out)
{
    redisReply *rep = admin_cmd(r, "HGETALL %s", key);
    if (rep == NULL)
        return -1;
    long n = 0;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements;
         i += 2) {
        /* value: node|conn hex|priority|available */
        char node[128] = "", conn[64] = "", prio[16] = "", avail[8] = "";
        sscanf(rep->element[i + 1]->str, "%127[^|]|%63[^|]|%15[^|]|%7s", node,
               conn, prio, avail);
        fprintf(out, "%s\t%s\t%s\t%s\n", rep->element[i]->str, node, prio,
                strcmp(avail, "1") == 0 ? "available" : "unavailable");
        n++;
    }
    freeReplyObject(rep);
    return n;
}

int ctl_session_list(ctl_ctx_t *ctx, const char *user)
{
    if (ctl_ctx_load(ctx) < 0)
        return CTL_EXIT_FAIL;
    redisContext *r = ctl_redis_connect(ctx);
    if (r == NULL)
        return CTL_EXIT_FAIL;
    int rc = CTL_EXIT_FAIL;
    if (user != NULL) {
        char *bare = admin_bare(ctx, user);
        kn_buf_t key = KN_BUF_INIT;
        kn_buf_printf(&key, "sessions:%s", bare);
        long n = admin_print_user(r, key.data, stdout);
        kn_buf_free(&key);
        free(bare);
        rc = n < 0 ? CTL_EXIT_FAIL : CTL_EXIT_OK;
        goto out;
    }
    char cursor[32] = "0";
    for (int round = 0; round < CTL_SCAN_MAX; round++) {
        redisReply *rep =
            redisCommand(r, "SCAN %s MATCH sessions:* COUNT 500", cursor);
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
            rep->elements != 2) {
            ctl_err("redis: SCAN failed");
            if (rep)
                freeReplyObject(rep);
            goto out;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements; i++)
            if (admin_print_user(r, keys->element[i]->str, stdout) < 0) {
                freeReplyObject(rep);
                goto out;
            }
        freeReplyObject(rep);
        if (strcmp(cursor, "0") == 0) {
            rc = CTL_EXIT_OK;
            break;
        }
    }
out:
    redisFree(r);
    return rc;
}

static int admin_queue(ctl_ctx_t *ctx, const char *kind, const char *arg)
{
    PGconn *db = ctl_db_connect(ctx);
    if (db == NULL)
        return CTL_EXIT_FAIL;
    const char *v[2] = {kind, arg};
    PGresult *res = PQexecParams(db,
                                 "insert into admin_commands (kind, arg)"
                                 " values ($1, $2)",
                                 2, NULL, v, NULL, NULL, 0);
    int rc = CTL_EXIT_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ctl_db_err("queueing the command", res);
        rc = CTL_EXIT_FAIL;
    }
    PQclear(res);
    PQfinish(db);
    return rc;
}

int ctl_session_kick(ctl_ctx_t *ctx, const char *jid)
{
    if (ctl_ctx_load(ctx) < 0)
        return CTL_EXIT_FAIL;
    redisContext *r = ctl_redis_connect(ctx);
    if (r == NULL)
        return CTL_EXIT_FAIL;
    char *bare = admin_bare(ctx, jid);
    const char *slash = strchr(jid, '/');
    kn_buf_t key = KN_BUF_INIT, target = KN_BUF_INIT;
    kn_buf_printf(&key, "sessions:%s", bare);
    kn_buf_printf(&target, "%s%s", bare, slash ? slash : "");
    int rc = CTL_EXIT_FAIL;
    redisReply *rep =
        slash ? redisCommand(r, "HEXISTS %s %s", key.data, target.data)
              : redisCommand(r, "HLEN %s", key.data);
    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        ctl_err("redis: lookup of %s failed", target.data);
    } else if (rep->integer == 0) {
        ctl_err("%s is not online", target.data);
    } else {
        rc = admin_queue(ctx, "kick", target.data);
        if (rc == CTL_EXIT_OK)
            printf("kick of %s queued\n", target.data);
    }
    if (rep)
        freeReplyObject(rep);
    kn_buf_free(&key);
    kn_buf_free(&target);
    free(bare);
    redisFree(r);
    return rc;
}

/* Add name to the list unless it is there. */
static void admin_name_add(char ***names, size_t *n, const char *name,
                           size_t len)
{
    for (size_t i = 0; i < *n; i++)
        if (strlen((*names)[i]) == len && memcmp((*names)[i], name, len) == 0)
            return;
    *names = kn_realloc(*names, (*n + 1) * sizeof(**names));
    (*names)[(*n)++] = kn_strndup(name, len);
}

int ctl_stats(ctl_ctx_t *ctx)
{
    if (ctl_ctx_load(ctx) < 0)
        return CTL_EXIT_FAIL;
    redisContext *r = ctl_redis_connect(ctx);
    if (r == NULL)
        return CTL_EXIT_FAIL;
    int rc = CTL_EXIT_FAIL;
    char **names = NULL;
    size_t nnames = 0;
    char cursor[32] = "0";
    for (int round = 0; round < CTL_SCAN_MAX; round++) {
        redisReply *rep =
            redisCommand(r, "SCAN %s MATCH node:* COUNT 500", cursor);
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
            rep->elements != 2) {
            ctl_err("redis: SCAN failed");
            if (rep)
                freeReplyObject(rep);
            goto out;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            /* node:<name>:alive, node:<name>:sessions */
            const char *k = keys->element[i]->str + 5;
            const char *colon = strrchr(k, ':');
            if (colon != NULL && colon > k)
                admin_name_add(&names, &nnames, k, (size_t)(colon - k));
        }
        freeReplyObject(rep);
        if (strcmp(cursor, "0") == 0) {
            rc = CTL_EXIT_OK;
            break;
        }
    }
    if (rc != CTL_EXIT_OK)
        goto out;
    long long total = 0, alive = 0;
    printf("node\talive\tsessions\n");
    for (size_t i = 0; i < nnames; i++) {
        redisReply *a = redisCommand(r, "EXISTS node:%s:alive", names[i]);
        redisReply *c = redisCommand(r, "SCARD node:%s:sessions", names[i]);
        bool up = a && a->type == REDIS_REPLY_INTEGER && a->integer > 0;
        long long n = c && c->type == REDIS_REPLY_INTEGER ? c->integer : 0;
        printf("%s\t%s\t%lld\n", names[i], up ? "yes" : "no", n);
        alive += up;
        total += n;
        if (a)
            freeReplyObject(a);
        if (c)
            freeReplyObject(c);
    }
    printf("total\t%lld/%zu alive\t%lld\n", alive, nnames, total);
out:
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    redisFree(r);
    return rc;
}

int ctl_announce(ctl_ctx_t *ctx, const char *text)
{
    if (ctl_ctx_load(ctx) < 0)
        return CTL_EXIT_FAIL;
    if (text[0] == '\0') {
        ctl_err("announce: empty text");
        return CTL_EXIT_USAGE;
    }
    int rc = admin_queue(ctx, "announce", text);
    if (rc == CTL_EXIT_OK)
        printf("announcement queued\n");
    return rc;
}
