/*
 * c2s_sm_node.c - XEP-0198 resumption between connections and nodes: the
 * router's SM envelopes (kn_proto.h) carried to the right stream.
 *
 * RESUME (we own the session): the stream hands its session over
 * (c2s_sm_handover), the STATE goes back through the router, and the
 * connection goes away without SESSION_DOWN: the router moves the route
 * to the new connection when it sees the STATE. Anything that makes
 * resumption impossible is a FAILED with its condition.
 *
 * STATE or FAILED (we asked): the waiting stream writes <resumed/> and
 * the unacked stanzas, or <failed/>. When the asking connection is gone
 * by then, a moved session is ended at once (SESSION_DOWN, then its
 * queue is rerouted, c2s_sm_reroute_queue), so the route never points at
 * a connection that does not exist; a queue that came with a FAILED is
 * rerouted the same way.
 */
#include <string.h>

#include "c2s_server.h"
#include "c2s_sm.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_proto.h"

static int node_route(void *ud, const kn_env_t *env, const void *pl, size_t len)
{
    c2s_server_t *srv = ud;
    return srv->link ? kn_link_send(srv->link, env, pl, len) : -KN_EIO;
}

static bool node_ours(c2s_server_t *srv, uint64_t conn)
{
    return srv->link != NULL &&
           kn_conn_node(conn) == kn_conn_node(kn_link_conn_id(srv->link, 0));
}

static void node_give(c2s_server_t *srv, const kn_env_t *env)
{
    c2s_conn_t *c =
        node_ours(srv, env->conn_id) ? c2s_conn_find(srv, env->conn_id) : NULL;
    c2s_stream_t *st = c ? c2s_conn_stream(c) : NULL;
    kn_env_t out;
    kn_buf_t pl = KN_BUF_INIT;
    uint32_t h = 0;
    int rc = -1;
    if (st != NULL)
        rc = c2s_sm_handover(st, env->node, env->node_len, env->from,
                             env->from_len, env->seq, &out, &pl, &h);
    if (rc == 0) {
        out.ack_id = env->ack_id;
        int src = node_route(srv, &out, pl.data, pl.len);
        if (src < 0)
            kn_log_warn("c2s: XEP-0198 handover of %.*s not sent: %s",
                        (int)out.from_len, out.from, kn_strerror(src));
        kn_buf_free(&pl);
        /* No SESSION_DOWN: the session lives on elsewhere. */
        c2s_conn_close(c, KN_SE_NONE, KN_ENV_REASON_CONFLICT);
        return;
    }
    kn_buf_free(&pl);
    kn_env_t f = {0};
    f.kind = KN_ENV_SM;
    f.flags = KN_F_SM_FAILED | (rc > 0 ? KN_F_SM_H : 0);
    f.priority = (int16_t)(rc > 0 ? rc : KN_SM_FAIL_ITEM_NOT_FOUND);
    f.seq = h;
    f.conn_id = env->conn_id;
    f.ack_id = env->ack_id;
    if (st != NULL && st->jid.str != NULL) {
        f.from = kn_jid_str(&st->jid);
        f.from_len = kn_jid_len(&st->jid);
    } else {
        f.from = env->from;
        f.from_len = env->from_len;
    }
    f.node = env->node;
    f.node_len = env->node_len;
    node_route(srv, &f, NULL, 0);
}

static void node_take(c2s_server_t *srv, const kn_env_t *env, const void *pl,
                      size_t len)
{
    c2s_conn_t *c =
        node_ours(srv, env->ack_id) ? c2s_conn_find(srv, env->ack_id) : NULL;
    c2s_stream_t *st = c ? c2s_conn_stream(c) : NULL;
    if (st != NULL && c2s_sm_resuming(st)) {
        c2s_conn_after(c, c2s_sm_answer(st, env, pl, len));
        return;
    }
    if (env->flags & KN_F_SM_STATE) {
        /* The route moved to a connection that is gone: end it. */
        kn_log_info("c2s: %.*s moved here but its connection is gone: "
                    "ending the session",
                    (int)env->from_len, env->from);
        kn_env_t d = {0};
        d.kind = KN_ENV_SESSION_DOWN;
        d.reason = KN_ENV_REASON_DROPPED;
        d.from = env->from;
        d.from_len = env->from_len;
        d.conn_id = env->ack_id;
        node_route(srv, &d, NULL, 0);
    }
    c2s_sm_reroute_queue(pl, len, node_route, srv);
}

void c2s_sm_on_router(c2s_server_t *srv, const kn_env_t *env,
                      const void *payload, size_t len)
{
    if (env->flags & KN_F_SM_RESUME)
        node_give(srv, env);
    else if (env->flags & (KN_F_SM_STATE | KN_F_SM_FAILED))
        node_take(srv, env, payload, len);
    else
        kn_log_debug("c2s: SM envelope %04x from the router ignored",
                     env->flags);
}
