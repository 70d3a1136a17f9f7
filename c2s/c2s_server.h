/*
 * c2s_server.h - one kiln-c2s node: its connections, listeners, router
 * link, database pool, and the per-address SASL failure delay.
 *
 * Connections live in a slot array; a connection's node-local id is
 * (generation << 24) | slot, so the router's connection ids map back to
 * a connection with one array index and a compare, and a stale id (the
 * connection closed and the slot was reused) never matches.
 *
 * Nothing is freed inside its own callback: closing connections go on a
 * close queue, and pending output on a flush list; both are drained by
 * one ev_prepare watcher just before the loop sleeps (STYLE.md).
 */
#ifndef C2S_SERVER_H
#define C2S_SERVER_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "c2s_ack.h"
#include "c2s_conf.h"
#include "c2s_flood.h"
#include "c2s_lockout.h"
#include "c2s_stream.h"
#include "c2s_tls.h"
#include "c2s_upload.h"
#include "kn_config.h"
#include "kn_link.h"
#include "kn_pg.h"
#include "kn_redis.h"

#define C2S_SLOT_BITS 24
#define C2S_SLOT_MASK ((UINT64_C(1) << C2S_SLOT_BITS) - 1)

typedef struct c2s_conn c2s_conn_t;
typedef struct c2s_listener c2s_listener_t;
typedef struct c2s_addr_fail c2s_addr_fail_t;
typedef struct c2s_http c2s_http_t;
typedef struct c2s_comps c2s_comps_t;

typedef struct c2s_server {
    struct ev_loop *loop;
    const kn_common_conf_t *cc;
    const c2s_conf_t *conf;
    const char *node_name;
    c2s_stream_conf_t scf;
    c2s_extdisco_conf_t extdisco; /* scf.extdisco points here */
    c2s_upload_conf_t upload;     /* XEP-0363 (c2s_upload.c) */
    char *upload_service, *upload_url;
    kn_link_t *link;
    kn_pg_pool_t *pg;
    kn_redis_t *creds_redis; /* cached users rows (c2s_creds.c), or NULL */
    kn_redis_t *creds_sub;   /* their invalidation channel, or NULL */
    c2s_tls_ctx_t *tls;
    c2s_listener_t *listeners; /* NULL until the router accepted us */
    c2s_http_t *http;          /* HTTP connections (c2s_http.c) */
    size_t nhttp;
    struct c2s_bosh *bosh;       /* BOSH sessions by sid (uthash) */
    struct c2s_bosh *bosh_dirty; /* sessions to settle (c2s_bosh.c) */
    c2s_comps_t *comps;          /* XEP-0114 listener (c2s_component.c) */
    c2s_conn_t **slots;
    size_t nslots; /* slots in use or free, <= cap */
    size_t slots_cap;
    uint32_t *free_slots;
    size_t nfree;
    size_t nconns;
    uint64_t gen;
    c2s_conn_t *flush_list;
    c2s_conn_t *close_list;
    c2s_ack_ids_t acks_out; /* written offline messages, sent by drain */
    ev_prepare prepare;
    ev_timer sweep;         /* idle policy, parks idle streams' parsers */
    uint32_t ping_seq;      /* ids of server pings (kiln-ping-N) */
    c2s_addr_fail_t *fails; /* uthash by address */
    c2s_addr_fail_t *regs;  /* in-band registrations by address, per hour */
    c2s_flood_conf_t flood_cf;
    c2s_flood_t *flood;          /* connection floods (c2s_flood.h) */
    kn_redis_t *redis;           /* lock-out counters, session counts */
    c2s_lock_table_t lock_users; /* lock-out windows without Redis */
    c2s_lock_table_t lock_addrs;
    int reserve_fd; /* spare fd for EMFILE (ev.pod) */
    bool stopping;
    double refused_log_at;
    double trimmed_at; /* ev_now() of the last malloc_trim (malloc_trim) */
} c2s_server_t;

/* The TLS context conf's `tls` group describes (start, SIGHUP reload,
 * --check); NULL with a reason in err. */
c2s_tls_ctx_t *c2s_server_tls_new(const c2s_conf_t *conf, char *err,
                                  size_t errlen);

/* Set up a server on loop (nothing listens yet). conf, cc and node_name
 * are borrowed. Returns 0 or -KN_E* after logging. */
int c2s_server_init(c2s_server_t *srv, struct ev_loop *loop,
                    const kn_common_conf_t *cc, const c2s_conf_t *conf,
                    const char *node_name);

/* SIGTERM: <system-shutdown/> to every client, SESSION_DOWN (shutdown)
 * for each session, close everything. Called from the signal callback. */
void c2s_server_shutdown(c2s_server_t *srv);
/* For the stop drain (kn_daemon_signals_drain): frames the router has not
 * acknowledged yet, the stop marker among them (kn_link_unacked). */
size_t c2s_server_pending(void *arg);

/* Free everything (after the loop ended). */
void c2s_server_free(c2s_server_t *srv);

/* Raise RLIMIT_NOFILE to the hard limit; warn when it is below
 * max_connections + a margin (R-PERF-2). */
void c2s_server_rlimit(const c2s_conf_t *conf);

/* ---- c2s_listen.c -------------------------------------------------------- */

/* Open the configured listeners. Returns 0 or -KN_EIO after logging. */
int c2s_listen_start(c2s_server_t *srv);
void c2s_listen_stop(c2s_server_t *srv);

/* ---- c2s_conn.c ---------------------------------------------------------- */

/* A new connection on an accepted, non-blocking fd (taken). */
void c2s_conn_accept(c2s_server_t *srv, int fd, const struct sockaddr *sa,
                     bool direct_tls);
/* A connection whose transport is already set up (WebSocket after the
 * HTTP upgrade, c2s_http.c; a BOSH session, c2s_bosh.c, with fd -1: no
 * socket, woken by c2s_conn_wake): tr and its state trs are taken;
 * flags: C2S_STREAM_F_*. */
struct c2s_transport;
c2s_conn_t *c2s_conn_adopt(c2s_server_t *srv, int fd, const struct sockaddr *sa,
                           const struct c2s_transport *tr, void *trs,
                           unsigned flags);
/* The transport of a connection without a socket has input or can take
 * output now: read and flush from the loop. */
void c2s_conn_wake(c2s_conn_t *c);
/* The connection with this cluster-wide id, or NULL (gone, closing). */
c2s_conn_t *c2s_conn_find(c2s_server_t *srv, uint64_t conn_id);
/* The bound connection with this full JID (slow: a scan; only for
 * bounces whose connection id is not ours). */
c2s_conn_t *c2s_conn_find_jid(c2s_server_t *srv, const char *jid, size_t len);
c2s_stream_t *c2s_conn_stream(c2s_conn_t *c);
/* The stream wrote into the connection's output: schedule a flush and
 * enforce out_buffer_max. */
void c2s_conn_output(c2s_conn_t *c);
/* The stanza just appended to c's output carries ack id (KN_F_ACK_WANTED):
 * acknowledge it once it is written (R-PRES-5, c2s_ack.h). */
void c2s_conn_ack_mark(c2s_conn_t *c, uint64_t ack_id);
/* End the connection: err (KN_SE_NONE: none) and the close tag to the
 * client, SESSION_DOWN with reason, free from the close queue. */
void c2s_conn_close(c2s_conn_t *c, kn_stream_err_t err, kn_env_reason_t reason);
/* Flush pending output, drain the close queue, then send one ACK for
 * the offline messages written meanwhile (the ev_prepare). */
void c2s_conn_drain(c2s_server_t *srv);
/* The idle sweep: apply the idle policy (c2s_idle.c: ping, or close with
 * <connection-timeout/>) and park the XML parser of every connection
 * silent for park seconds. Returns the earliest time a policy step falls
 * due (HUGE_VAL: none). */
double c2s_conn_sweep_idle(c2s_server_t *srv, double now, double park);
/* Act on what a call into c's stream returned (flush, close, read on). */
void c2s_conn_after(c2s_conn_t *c, c2s_act_t act);
/* Free a connection right away (shutdown path, and the close queue). */
void c2s_conn_free(c2s_conn_t *c);

/* ---- c2s_http.c ---------------------------------------------------------- */

/* A new HTTP connection on an accepted, non-blocking fd (taken); tls: the
 * HTTPS port. */
void c2s_http_accept(c2s_server_t *srv, int fd, const struct sockaddr *sa,
                     bool tls);
/* Close every HTTP connection (shutdown). */
void c2s_http_close_all(c2s_server_t *srv);
/* Free the HTTP connections that ended (the ev_prepare). */
void c2s_http_drain(c2s_server_t *srv);

/* ---- c2s_router.c -------------------------------------------------------- */

extern const kn_link_ops_t c2s_link_ops;

/* ---- c2s_component.c (XEP-0114) --------------------------------------- */

/* Component connection ids have this bit set in their node-local part
 * (client connections' generations stay below it). */
#define C2S_COMP_LOCAL_BIT (UINT64_C(1) << 47)

/* Open the component listener (component_port; 0: none). 0 or -KN_E*. */
int c2s_comp_start(c2s_server_t *srv);
/* The router (re)accepted us: register every connected component again. */
void c2s_comp_on_ready(c2s_server_t *srv);
/* A STANZA or BOUNCE from the router for a component connection: handled
 * (true), or not one (false). */
bool c2s_comp_on_message(c2s_server_t *srv, const kn_env_t *env, const void *pl,
                         size_t len);
bool c2s_comp_is_conn(uint64_t conn_id);
/* Close every component stream (system-shutdown) and the listener. */
void c2s_comp_stop(c2s_server_t *srv);
/* ---- c2s_sm_node.c ------------------------------------------------------- */

/* An SM envelope from the router (XEP-0198 resumption, kn_proto.h). */
void c2s_sm_on_router(c2s_server_t *srv, const kn_env_t *env,
                      const void *payload, size_t len);

/* ---- c2s_authdelay.c ----------------------------------------------------- */

/* A SASL failure from the address key (c2s_conn_addr_key): the delay in ms
 * before <failure/> is sent. */
unsigned c2s_authdelay_fail(c2s_server_t *srv, const uint8_t key[16]);
/* A success from that address: forget its failures. */
void c2s_authdelay_ok(c2s_server_t *srv, const uint8_t key[16]);
void c2s_authdelay_free(c2s_server_t *srv);
/* In-band registration (XEP-0077): count one account creation from the
 * address key; false when it already created registration_per_hour
 * accounts in the last hour. */
bool c2s_authdelay_register(c2s_server_t *srv, const uint8_t key[16]);

#endif
