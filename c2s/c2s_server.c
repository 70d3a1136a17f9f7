/*
 * c2s_server.c - the node: set-up (TLS context, PostgreSQL pool, router
 * link, the ev_prepare that flushes output and frees closed connections),
 * shutdown, and the file-descriptor headroom check (R-PERF-2).
 *
 * Listeners open only when the router has accepted us (c2s_router.c's
 * on_ready): before that no connection id can be given to a session.
 */
#include "c2s_server.h"
#include "c2s_creds.h"
#include "c2s_bosh.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"

#define C2S_FD_MARGIN 64 /* listeners, router, database, logs, reserve */

void c2s_server_rlimit(const c2s_conf_t *conf)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        kn_log_warn("c2s: getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            kn_log_warn("c2s: cannot raise RLIMIT_NOFILE to %llu: %s",
                        (unsigned long long)rl.rlim_max, strerror(errno));
            rl.rlim_cur = old;
        }
    }
    unsigned long long need =
        (unsigned long long)conf->max_connections + C2S_FD_MARGIN;
    if (rl.rlim_cur != RLIM_INFINITY && (unsigned long long)rl.rlim_cur < need)
        kn_log_warn("c2s: RLIMIT_NOFILE is %llu, below max_connections %lld "
                    "+ %d: connections beyond the limit will be refused",
                    (unsigned long long)rl.rlim_cur, conf->max_connections,
                    C2S_FD_MARGIN);
    else
        kn_log_info("c2s: RLIMIT_NOFILE %llu for max_connections %lld",
                    (unsigned long long)rl.rlim_cur, conf->max_connections);
}

static void server_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    c2s_conn_drain(w->data);
    c2s_bosh_settle(w->data);
    c2s_http_drain(w->data);
}

/* Seconds of silence after which a stream's parser is parked. */
#define C2S_IDLE_PARK_S 5.0

/* Sweeps never come closer together than this (each walks every slot). */
#define C2S_SWEEP_MIN_S 0.25

/* One timer for every connection's idle policy: it runs at least every
 * min(idle_timeout / 4, 5 s) and otherwise when the earliest ping or
 * close falls due, so the steps are late by C2S_SWEEP_MIN_S at most. */
static void server_on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    c2s_server_t *srv = w->data;
    double now = ev_now(loop);
    double next = c2s_conn_sweep_idle(srv, now, C2S_IDLE_PARK_S);
    c2s_flood_gc(srv->flood, now);
    double period = c2s_idle_period((double)srv->conf->idle_timeout);
    double delay = next - now;
    if (delay > period)
        delay = period;
    if (delay < C2S_SWEEP_MIN_S)
        delay = period < C2S_SWEEP_MIN_S ? period : C2S_SWEEP_MIN_S;
    w->repeat = delay;
    ev_timer_again(loop, w);
}

c2s_tls_ctx_t *c2s_server_tls_new(const c2s_conf_t *conf, char *err,
                                  size_t errlen)
{
    c2s_tls_opts_t o = {conf->tls_cert,    conf->tls_key,
                        conf->tls_ciphers, conf->tls_ciphersuites,
                        conf->tls_groups,  conf->tls_min_version};
    return c2s_tls_ctx_new(&o, err, errlen);
}

int c2s_server_init(c2s_server_t *srv, struct ev_loop *loop,
                    const kn_common_conf_t *cc, const c2s_conf_t *conf,
                    const char *node_name)
{
    char err[512];
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->cc = cc;
    srv->conf = conf;
    srv->node_name = node_name;
    srv->reserve_fd = -1;
    srv->scf.domain = cc->domain;
    if (*conf->upload_dir != '\0') {
        kn_buf_t b = KN_BUF_INIT;
        kn_buf_printf(&b, "upload.%s", cc->domain);
        srv->upload_service = kn_buf_release(&b, NULL);
        if (*conf->upload_url != '\0')
            kn_buf_append_str(&b, conf->upload_url);
        else if (conf->https_port != 0)
            kn_buf_printf(&b,
                          strchr(conf->bind, ':') ? "https://[%s]:%lld"
                                                  : "https://%s:%lld",
                          conf->bind, conf->https_port);
        else
            kn_buf_printf(&b,
                          strchr(conf->bind, ':') ? "http://[%s]:%lld"
                                                  : "http://%s:%lld",
                          conf->bind, conf->http_port);
        while (b.len > 0 && b.data[b.len - 1] == '/')
            b.data[--b.len] = '\0';
        srv->upload_url = kn_buf_release(&b, NULL);
        srv->upload.service = srv->upload_service;
        srv->upload.dir = conf->upload_dir;
        srv->upload.secret = conf->upload_secret;
        srv->upload.url = srv->upload_url;
        srv->upload.types = conf->upload_types;
        srv->upload.max_bytes = (uint64_t)conf->upload_max_bytes;
        srv->upload.quota_bytes = (uint64_t)conf->upload_quota_bytes;
        srv->upload.slot_ttl = (long)conf->upload_slot_ttl;
        srv->scf.upload = &srv->upload;
        if (mkdir(conf->upload_dir, 0750) < 0 && errno != EEXIST)
            kn_log_warn("upload_dir %s: %s", conf->upload_dir, strerror(errno));
    }
    srv->scf.limits.max_stanza = (size_t)conf->max_stanza_bytes;
    srv->scf.limits.max_depth = (size_t)conf->max_depth;
    srv->scf.limits.max_attrs = (size_t)conf->max_attrs;
    srv->scf.limits.max_header = KN_XML_MAX_HEADER_DEFAULT;
    srv->scf.hold_max = (size_t)conf->out_buffer_max;
    srv->scf.sm_max_unacked = (size_t)conf->sm_max_unacked;
    srv->scf.sm_request_after = (size_t)conf->sm_request_after;
    srv->scf.sm_resume_timeout = (unsigned)conf->sm_resume_timeout;
    srv->scf.registration = conf->registration != 0;
    srv->scf.lockout = conf->auth_lockout_window > 0 &&
                       (conf->auth_lockout_user_failures > 0 ||
                        conf->auth_lockout_addr_failures > 0);
    srv->scf.max_sessions = (size_t)conf->max_sessions;
    srv->scf.csi_max_stanzas = (size_t)conf->csi_max_stanzas;
    /* a flush must never push a client over out_buffer_max */
    srv->scf.csi_max_bytes =
        (size_t)(conf->csi_max_bytes < conf->out_buffer_max / 2
                     ? conf->csi_max_bytes
                     : conf->out_buffer_max / 2);
    srv->extdisco.host = conf->extdisco_host;
    srv->extdisco.stun_port = conf->extdisco_stun_port;
    srv->extdisco.turn_port = conf->extdisco_turn_port;
    srv->extdisco.secret = conf->extdisco_secret;
    srv->extdisco.ttl = conf->extdisco_ttl;
    srv->scf.extdisco = &srv->extdisco;
    srv->tls = c2s_server_tls_new(conf, err, sizeof(err));
    if (srv->tls == NULL) {
        kn_log_err("c2s: %s", err);
        return -KN_EINVAL;
    }
    c2s_tls_ctx_set_own_records(srv->tls, conf->tls_own_records != 0);
    kn_pg_config_t pc = {0};
    pc.conninfo = cc->db_conninfo;
    pc.pool_min = (size_t)cc->db_pool_min;
    pc.pool_max = (size_t)cc->db_pool_max;
    pc.checkout_timeout_ms = (unsigned)cc->db_checkout_timeout_ms;
    if (kn_pg_pool_new(loop, &pc, &srv->pg) < 0) {
        kn_log_err("c2s: bad database pool settings");
        return -KN_EINVAL;
    }
    if (c2s_creds_start(srv) < 0)
        return -KN_EINVAL;
    if (c2s_lockout_init(srv) < 0)
        return -KN_EINVAL;
    srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    srv->flood_cf.addr_rate = (double)conf->accept_addr_rate;
    srv->flood_cf.addr_burst = (double)conf->accept_addr_burst;
    srv->flood_cf.global_rate = (double)conf->accept_node_rate;
    srv->flood_cf.global_burst = (double)conf->accept_node_burst;
    srv->flood_cf.addr_unauth = (size_t)conf->accept_addr_unauth;
    srv->flood_cf.global_unauth = (size_t)conf->accept_node_unauth;
    srv->flood = c2s_flood_new(&srv->flood_cf, ev_now(loop));
    ev_prepare_init(&srv->prepare, server_on_prepare);
    srv->prepare.data = srv;
    ev_prepare_start(loop, &srv->prepare);
    double period = c2s_idle_period((double)conf->idle_timeout);
    ev_timer_init(&srv->sweep, server_on_sweep, period, period);
    srv->sweep.data = srv;
    ev_timer_start(loop, &srv->sweep);
    ev_unref(loop); /* the sweep alone does not keep the loop alive */
    srv->link =
        kn_link_new(loop, cc, node_name, KN_F_ROLE_C2S, &c2s_link_ops, srv);
    if (srv->link == NULL)
        return -KN_EIO;
    if (conf->extdisco_host != NULL && *conf->extdisco_host)
        kn_link_register(srv->link, KN_REG_FEATURE, C2S_NS_EXTDISCO);
    if (srv->upload.service != NULL) /* listed in the server's disco#items */
        kn_link_register(srv->link, KN_REG_DOMAIN, srv->upload.service);
    return 0;
}

void c2s_server_shutdown(c2s_server_t *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    c2s_listen_stop(srv);
    c2s_http_close_all(srv);
    c2s_comp_stop(srv);
    size_t n = 0;
    for (size_t i = 0; i < srv->nslots; i++) {
        c2s_conn_t *c = srv->slots[i];
        if (c == NULL)
            continue;
        c2s_conn_close(c, KN_SE_SYSTEM_SHUTDOWN, KN_ENV_REASON_SHUTDOWN);
        n++;
    }
    c2s_conn_drain(srv);
    kn_log_info("c2s: shut down %zu connections", n);
    /* The router may have sent stanzas to these sessions before it read
     * their SESSION_DOWNs: they are still on the way to us, and the
     * router, seeing clean session ends, keeps no copy. An empty ACK (a
     * data frame the router routes nowhere) after the SESSION_DOWNs: once
     * the router acknowledges its link sequence it has read them, and all
     * it sent us before is read too (one ordered pipe). Until then main's
     * drain keeps the loop running and c2s_on_message reroutes what still
     * comes (c2s_server_pending). */
    if (srv->link != NULL && kn_link_ready(srv->link)) {
        kn_env_t e = {0};
        e.kind = KN_ENV_ACK;
        int rc = kn_link_send(srv->link, &e, NULL, 0);
        if (rc < 0)
            kn_log_warn("c2s: stop marker not sent: %s", kn_strerror(rc));
    }
}

size_t c2s_server_pending(void *arg)
{
    c2s_server_t *srv = arg;
    return srv->link != NULL ? kn_link_unacked(srv->link) : 0;
}

void c2s_server_free(c2s_server_t *srv)
{
    c2s_server_shutdown(srv);
    c2s_conn_drain(srv);
    c2s_lockout_free(srv);
    ev_prepare_stop(srv->loop, &srv->prepare);
    ev_ref(srv->loop);
    ev_timer_stop(srv->loop, &srv->sweep);
    kn_link_free(&srv->link);
    c2s_creds_stop(srv);
    kn_pg_pool_free(&srv->pg);
    c2s_tls_ctx_free(&srv->tls);
    free(srv->upload_service);
    free(srv->upload_url);
    c2s_authdelay_free(srv);
    c2s_flood_free(&srv->flood);
    if (srv->reserve_fd >= 0)
        close(srv->reserve_fd);
    free(srv->slots);
    free(srv->free_slots);
    c2s_ack_ids_free(&srv->acks_out);
}
