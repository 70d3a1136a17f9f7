/*
 * c2s_conn.c - one client connection: socket, transport (TCP, then TLS
 * after STARTTLS, or TLS from the start), input rate limit, output
 * buffer, and the glue between the stream state machine (c2s_stream.c)
 * and the world (router link, PostgreSQL, timers).
 *
 * A note on the watcher. One ev_io per connection whose event mask is
 * recomputed after every step (conn_update_io): EV_READ while the stream
 * wants input (not paused, not closing) or while TLS wants to read,
 * EV_WRITE only while output is stuck because the socket would block.
 * Output is not written where it is produced: the connection goes on the
 * server's flush list and is written from the ev_prepare hook, so a burst
 * of router deliveries becomes one write.
 *
 * A note on acknowledgements (R-PRES-5). A stored offline message
 * (KN_F_ACK_WANTED) is marked with its end offset in the output buffer
 * (c2s_ack.h). After every write the marks the written offset passed
 * move to the node's ACK batch, which the ev_prepare hook sends in one
 * ACK envelope: presenced deletes those rows. For TLS, a count returned
 * by SSL_write means the records holding those bytes were written to
 * the socket. Marks of output that is dropped (write error, slow
 * consumer, connection freed) are forgotten: the rows stay and are
 * delivered at the next login.
 *
 * A note on detaching (XEP-0198, R-DROP-5). When the socket of a
 * resumable session fails (read or write error, EOF, idle timeout), the
 * connection detaches instead of closing: socket and transport go, the
 * slot, the stream and its session stay, so the route, the presence and
 * every delivery to it stay too (queued by c2s_sm.c, nothing written).
 * It ends like a dropped connection when sm.resume_timeout passes, or
 * goes away without SESSION_DOWN when a <resume/> takes it over
 * (c2s_sm_node.c).
 *
 * A note on abuse (issue 16). Until it authenticates a connection counts
 * against the flood caps (c2s_flood.h: `unauth`) and runs against the
 * pre-auth deadlines, checked by the idle sweep: preauth.tls_timeout for
 * a TLS handshake, preauth.header_timeout for each stream header (from
 * accept, <proceed/> or SASL success), preauth.auth_timeout from accept
 * to SASL success; a missed header or authentication deadline ends the
 * stream with <connection-timeout/>, a stalled handshake just closes
 * (no stream to carry an error). Input is shaped like Prosody's
 * mod_limits and ejabberd's shapers: a token bucket of bytes and one of
 * top-level elements per session (c2s_bucket.h); a read that leaves
 * either in debt pauses reading until it is paid (TCP backpressure:
 * nothing is lost, the client is slowed), and a session still over its
 * rate rate_close_after seconds after it first went over is closed with
 * <policy-violation/>. A client that does not read: past out_buffer_max
 * of unwritten output the session ends with <policy-violation/> (best
 * effort: written only if nothing is stuck in the socket) as a dropped
 * connection, its session ending at once (no XEP-0198 detach).
 *
 * Memory of an idle authenticated session: this struct, the stream and
 * its XML parser, the JID, and the TLS session with released buffers.
 * The output buffer and the marks are freed whenever they drain; the
 * read buffer is one static array for the whole process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "c2s_bucket.h"
#include "c2s_creds.h"
#include "c2s_metrics.h"
#include "c2s_server.h"
#include "c2s_sm.h"
#include "c2s_transport.h"
#include "kn_err.h"
#include <malloc.h>

#include "kn_log.h"
#include "kn_xml.h"
#include "kn_mem.h"
#include "kn_proto.h"

#define CONN_READ_BATCH 8    /* reads per wake-up before yielding */
#define CONN_OUT_KEEP   4096 /* keep a drained output buffer this small */
#define CONN_ACK_MAX    8192 /* ack ids per ACK envelope */
#define C2S_TRIM_MIN_S  60.0 /* between two malloc_trim (conf malloc_trim) */

/* A PostgreSQL query in flight for a connection (credentials, or the
 * block list when presenced did not send it). */
typedef struct conn_creds_req {
    c2s_conn_t *c; /* NULL once the connection is gone */
} conn_creds_req_t;

struct c2s_conn {
    c2s_server_t *srv;
    c2s_stream_t *st;
    const c2s_transport_t *tr;
    void *trs;
    uint64_t local;
    kn_buf_t out;
    size_t out_off;
    c2s_acks_t acks; /* offline messages in out, not written yet */
    ev_io io;
    ev_timer *delay;
    ev_timer *sm_timer; /* XEP-0198 resume timeout while detached */
    ev_timer *throttle; /* reading paused for the input rate */
    conn_creds_req_t *creds;
    c2s_bucket_t rate_bytes, rate_stanzas;
    double over_since;     /* first read over the rate of this streak; 0 */
    double accepted_at;    /* pre-auth deadlines */
    double stage_at;       /* the current stream header or handshake began */
    double last_in;        /* ev_now() of the last bytes read: idle sweeps */
    uint32_t stanzas_seen; /* st->stanzas_in already charged */
    uint8_t stage_state;   /* st->state when stage_at was taken */
    c2s_conn_t *next_flush;
    c2s_conn_t *next_close;
    uint8_t addr[16];   /* IPv4-mapped or IPv6 /64: the auth-delay key */
    uint8_t read_want;  /* EV_* a blocked read waits for */
    uint8_t write_want; /* EV_* a blocked write waits for */
    bool closing : 1;
    bool in_flush : 1;
    bool handshaking : 1;
    bool starttls_pending : 1;
    bool parked : 1;   /* its XML parser is parked (idle sweep) */
    bool pinged : 1;   /* the idle ping went out during this silence */
    bool detached : 1; /* XEP-0198: no socket, the session waits */
    bool unauth : 1;   /* counted in srv->flood until authenticated */
    bool throttled : 1;
    bool stage_hs : 1; /* handshaking when stage_at was taken */
};

static char conn_rbuf[16384 + 512];

static void conn_on_io(struct ev_loop *loop, ev_io *w, int revents);
static void conn_read(c2s_conn_t *c);
static void conn_stage(c2s_conn_t *c);

/* ---- stream operations ---------------------------------------------------
 */

static int conn_op_route(void *ud, const kn_env_t *env, const void *payload,
                         size_t len)
{
    c2s_conn_t *c = ud;
    if (c->srv->link == NULL)
        return -KN_EIO;
    return kn_link_send(c->srv->link, env, payload, len);
}

static uint64_t conn_op_conn_id(void *ud)
{
    c2s_conn_t *c = ud;
    return c->srv->link ? kn_link_conn_id(c->srv->link, c->local) : c->local;
}

static void conn_after(c2s_conn_t *c, c2s_act_t act);

static void conn_on_creds(int rc, const c2s_creds_t *cr, void *arg)
{
    conn_creds_req_t *req = arg;
    c2s_conn_t *c = req->c;
    free(req);
    if (c == NULL)
        return; /* the connection went away meanwhile */
    c->creds = NULL;
    conn_after(c, c2s_stream_creds_done(c->st, rc, cr));
}

/* The users row from Redis or PostgreSQL (c2s_creds.c, R-PERF-5). */
static void conn_op_creds_lookup(void *ud, const char *username)
{
    c2s_conn_t *c = ud;
    conn_creds_req_t *req = kn_malloc(sizeof(*req));
    req->c = c;
    c->creds = req;
    c2s_creds_lookup(c->srv, username, conn_on_creds, req);
}

static void conn_on_delay(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    c2s_conn_t *c = t->data;
    conn_after(c, c2s_stream_resume(c->st));
}

static unsigned conn_op_auth_failed(void *ud)
{
    c2s_conn_t *c = ud;
    c2s_lockout_failed(c->srv, c->addr, c2s_stream_sasl_user(c->st),
                       c2s_stream_sasl_mech(c->st));
    unsigned ms = c2s_authdelay_fail(c->srv, c->addr);
    if (ms == 0)
        return 0;
    if (c->delay == NULL) {
        c->delay = kn_malloc(sizeof(*c->delay));
        ev_init(c->delay, conn_on_delay);
        c->delay->data = c;
    }
    ev_set_cb(c->delay, conn_on_delay);
    ev_timer_set(c->delay, ms / 1000.0, 0.);
    ev_timer_start(c->srv->loop, c->delay);
    return ms;
}

static void conn_op_auth_ok(void *ud)
{
    c2s_conn_t *c = ud;
    c2s_authdelay_ok(c->srv, c->addr);
    c2s_lockout_ok(c->srv, c->st->user);
}

/* ---- lock-out check and session count (c2s_lockout.c) -------------------
 */

static void conn_on_lock(unsigned remaining_s, void *arg)
{
    conn_creds_req_t *req = arg;
    c2s_conn_t *c = req->c;
    free(req);
    if (c == NULL)
        return; /* the connection went away meanwhile */
    c->creds = NULL;
    conn_after(c, c2s_stream_lock_done(c->st, remaining_s));
}

static void conn_op_lock_check(void *ud, const char *username, const char *mech)
{
    c2s_conn_t *c = ud;
    conn_creds_req_t *req = kn_malloc(sizeof(*req));
    req->c = c;
    c->creds = req;
    c2s_lockout_check(c->srv, c->addr, username, mech, conn_on_lock, req);
}

static void conn_on_count(long others, void *arg)
{
    conn_creds_req_t *req = arg;
    c2s_conn_t *c = req->c;
    free(req);
    if (c == NULL)
        return;
    c->creds = NULL;
    conn_after(c, c2s_stream_bind_done(c->st, others));
}

static void conn_op_session_count(void *ud, const char *bare, const char *full)
{
    c2s_conn_t *c = ud;
    conn_creds_req_t *req = kn_malloc(sizeof(*req));
    req->c = c;
    c->creds = req;
    c2s_sessions_count(c->srv, bare, full, conn_on_count, req);
}

static void conn_op_starttls(void *ud)
{
    c2s_conn_t *c = ud;
    c->starttls_pending = true;
    c2s_conn_output(c);
}

static int conn_op_cb_data(void *ud, kn_scram_cb_t type, uint8_t *out,
                           size_t cap)
{
    c2s_conn_t *c = ud;
    if (c->tr != &c2s_transport_tls || c->handshaking)
        return -KN_ENOENT;
    return c2s_tls_cb_data(c->trs, type, out, cap);
}

/* ---- the block list when presenced does not send it (XEP-0191) ---------
 */

static void conn_block_timer(c2s_conn_t *c, double after);

static void conn_on_block_rows(const PGresult *res, int err, void *arg)
{
    conn_creds_req_t *req = arg;
    c2s_conn_t *c = req->c;
    free(req);
    if (c == NULL)
        return;
    c->creds = NULL;
    if (c->closing || c->st->block_ready)
        return;
    if (err != 0) {
        kn_log_warn("c2s: %s: block list query failed: %s%s; retrying",
                    c->st->jid.str, kn_strerror(err),
                    res ? PQresultErrorMessage(res) : "");
        conn_block_timer(c, (double)c->srv->conf->blocklist_wait_ms / 1000.0);
        return;
    }
    int n = PQntuples(res);
    const char **jids = n > 0 ? kn_calloc((size_t)n, sizeof(*jids)) : NULL;
    size_t *lens = n > 0 ? kn_calloc((size_t)n, sizeof(*lens)) : NULL;
    for (int i = 0; i < n; i++) {
        jids[i] = PQgetvalue(res, i, 0);
        lens[i] = (size_t)PQgetlength(res, i, 0);
    }
    c2s_stream_block_loaded(c->st, jids, lens, (size_t)n);
    free(jids);
    free(lens);
    if (c->out.len > c->out_off)
        c2s_conn_output(c);
}

static void conn_on_block_wait(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    c2s_conn_t *c = t->data;
    if (c->closing || c->st->block_ready || c->creds != NULL)
        return;
    kn_log_info("c2s: %s: no block list from presenced after %lld ms, "
                "reading it from PostgreSQL",
                c->st->jid.str, c->srv->conf->blocklist_wait_ms);
    conn_creds_req_t *req = kn_malloc(sizeof(*req));
    req->c = c;
    c->creds = req;
    const char *params[1] = {c->st->user};
    kn_pg_query(c->srv->pg, "select jid from blocklist where username = $1", 1,
                params, conn_on_block_rows, req);
}

/* Arm the connection's one-shot timer (the SASL failure delay before
 * authentication, the block-list wait after bind) for after seconds. */
static void conn_block_timer(c2s_conn_t *c, double after)
{
    if (c->delay == NULL) {
        c->delay = kn_malloc(sizeof(*c->delay));
        ev_init(c->delay, conn_on_block_wait);
        c->delay->data = c;
    }
    ev_timer_stop(c->srv->loop, c->delay);
    ev_set_cb(c->delay, conn_on_block_wait);
    ev_timer_set(c->delay, after, 0.);
    ev_timer_start(c->srv->loop, c->delay);
}

static void conn_op_block_wait(void *ud)
{
    c2s_conn_t *c = ud;
    conn_block_timer(c, (double)c->srv->conf->blocklist_wait_ms / 1000.0);
}

static void conn_op_ack_mark(void *ud, uint64_t ack_id)
{
    c2s_conn_ack_mark(ud, ack_id);
}

static void conn_op_ack_done(void *ud, uint64_t ack_id)
{
    c2s_conn_t *c = ud;
    c2s_ack_ids_push(&c->srv->acks_out, ack_id);
}

/* ---- in-band registration (XEP-0077, c2s_register.c) ------------------ */

static bool conn_op_register_allowed(void *ud)
{
    c2s_conn_t *c = ud;
    return c2s_authdelay_register(c->srv, c->addr);
}

static void conn_on_registered(const PGresult *res, int err, void *arg)
{
    conn_creds_req_t *req = arg;
    c2s_conn_t *c = req->c;
    free(req);
    if (c == NULL)
        return; /* the connection went away meanwhile */
    c->creds = NULL;
    int rc = 0;
    if (err != 0) {
        kn_log_warn("c2s: registration failed: %s%s", kn_strerror(err),
                    res ? PQresultErrorMessage(res) : "");
        rc = err < 0 ? err : -KN_EDB;
    } else if (atoi(PQcmdTuples((PGresult *)res)) != 1) {
        rc = -KN_EEXIST;
    }
    conn_after(c, c2s_stream_register_done(c->st, rc));
}

static void conn_op_register_user(void *ud, const char *username,
                                  const c2s_creds_t *cr)
{
    c2s_conn_t *c = ud;
    kn_scram_sql_t q;
    kn_scram_creds_sql(&cr->sha1, &cr->sha256, &q);
    const char *params[8] = {username, q.p[0], q.p[1], q.p[2],
                             q.p[3],   q.p[4], q.p[5], q.p[6]};
    conn_creds_req_t *req = kn_malloc(sizeof(*req));
    req->c = c;
    c->creds = req;
    kn_log_info("c2s: in-band registration of %s@%s", username,
                c->srv->scf.domain);
    kn_pg_query(c->srv->pg, KN_SQL_USER_INSERT, 8, params, conn_on_registered,
                req);
    explicit_bzero(&q, sizeof(q));
}

static const c2s_stream_ops_t conn_stream_ops = {
    conn_op_route,         conn_op_creds_lookup,
    conn_op_auth_failed,   conn_op_auth_ok,
    conn_op_starttls,      conn_op_cb_data,
    conn_op_conn_id,       conn_op_block_wait,
    conn_op_ack_mark,      conn_op_register_allowed,
    conn_op_register_user, conn_op_ack_done,
    conn_op_lock_check,    conn_op_session_count,
};

/* ---- watcher, output -----------------------------------------------------
 */

static void conn_update_io(c2s_conn_t *c)
{
    if (c->io.fd < 0)
        return; /* no socket (BOSH): c2s_conn_wake() */
    int ev = 0;
    if (c->detached)
        return;
    if (c->handshaking) {
        ev = c->read_want ? c->read_want : EV_READ;
    } else if (!c->closing) {
        if (c->st->pause == C2S_PAUSE_NONE && !c->throttled)
            ev |= c->read_want ? c->read_want : EV_READ;
        if (c->write_want)
            ev |= c->write_want;
    }
    if (ev == (c->io.events & (EV_READ | EV_WRITE)) && ev_is_active(&c->io))
        return;
    ev_io_stop(c->srv->loop, &c->io);
    ev_io_set(&c->io, c->io.fd, ev);
    if (ev != 0)
        ev_io_start(c->srv->loop, &c->io);
}

/* The output up to out_off was written: queue the acks it covers. */
static void conn_acks_written(c2s_conn_t *c)
{
    c2s_acks_written(&c->acks, c->out_off, &c->srv->acks_out);
}

/* The unwritten output is dropped: so are its marks. */
static void conn_acks_drop(c2s_conn_t *c)
{
    conn_acks_written(c);
    size_t n = c2s_acks_drop(&c->acks);
    if (n > 0)
        kn_log_info("c2s: %s: %zu offline messages not written, kept for the "
                    "next login",
                    c->st->jid.str ? c->st->jid.str : "?", n);
}

void c2s_conn_ack_mark(c2s_conn_t *c, uint64_t ack_id)
{
    c2s_acks_add(&c->acks, ack_id, c->out.len);
}

void c2s_conn_output(c2s_conn_t *c)
{
    if (c->detached) {
        /* Nobody to write to: c2s_sm.c queued what matters. */
        kn_buf_reset(&c->out);
        c->out_off = 0;
        return;
    }
    if (c->out.len - c->out_off > (size_t)c->srv->conf->out_buffer_max &&
        !c->closing) {
        /* A client that does not read. Its unwritten output is whole
         * stanzas; when none of it is in flight (no partial write, no
         * TLS record waiting) it is dropped so that the stream error is
         * the next thing the client reads, else the error follows it
         * (best effort either way: the socket closes after one try). */
        kn_log_info("c2s: %s: output over %lld bytes (the client does not "
                    "read), closing with policy-violation",
                    c->st->jid.str ? c->st->jid.str : "unbound connection",
                    c->srv->conf->out_buffer_max);
        kn_metric_add(c2s_metrics.closed_output, 1);
        if (c->out_off == 0 && c->write_want == 0) {
            conn_acks_drop(c);
            kn_buf_free(&c->out);
        }
        c2s_conn_close(c, KN_SE_POLICY_VIOLATION, KN_ENV_REASON_DROPPED);
        return;
    }
    if (!c->in_flush) {
        c->in_flush = true;
        c->next_flush = c->srv->flush_list;
        c->srv->flush_list = c;
    }
}

static void conn_start_tls(c2s_conn_t *c)
{
    c->starttls_pending = false;
    c->trs = c2s_tls_new(c->srv->tls, c->io.fd);
    if (c->trs == NULL) {
        c2s_conn_close(c, KN_SE_NONE, KN_ENV_REASON_DROPPED);
        return;
    }
    c2s_tls_read_ahead(c->trs); /* conn_read feeds itself (see there) */
    c2s_tls_after_starttls(c->trs);
    c->tr = &c2s_transport_tls;
    c->handshaking = true;
    c->read_want = EV_READ;
    c->write_want = 0;
    conn_stage(c);
}

static void conn_flush(c2s_conn_t *c)
{
    if (c->detached) {
        kn_buf_reset(&c->out);
        c->out_off = 0;
        return;
    }
    while (c->out_off < c->out.len) {
        int want = EV_WRITE;
        ssize_t n = c->tr->write(c->trs, c->io.fd, c->out.data + c->out_off,
                                 c->out.len - c->out_off, &want);
        if (n == -KN_EAGAIN) {
            conn_acks_written(c);
            c->write_want = (uint8_t)want;
            conn_update_io(c);
            return;
        }
        if (n < 0) {
            conn_acks_drop(c);
            kn_buf_free(&c->out);
            c->out_off = 0;
            c->write_want = 0;
            c2s_conn_close(c, KN_SE_NONE, KN_ENV_REASON_DROPPED);
            return;
        }
        c->out_off += (size_t)n;
        kn_metric_add(c2s_metrics.bytes_out, (double)n);
    }
    conn_acks_written(c);
    c->out_off = 0;
    if (c->out.cap > CONN_OUT_KEEP)
        kn_buf_free(&c->out);
    else
        kn_buf_reset(&c->out);
    c->write_want = 0;
    if (c->starttls_pending && !c->closing)
        conn_start_tls(c);
    if (!c->closing)
        conn_update_io(c);
}

/* ---- input ---------------------------------------------------------------
 */

static void conn_on_throttle(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    c2s_conn_t *c = t->data;
    c->throttled = false;
    if (c->closing || c->detached)
        return;
    conn_update_io(c);
    /* TLS or a framing transport may hold input the socket won't signal;
     * a BOSH session has no socket at all. */
    ev_feed_event(loop, &c->io, EV_READ);
}

/* Stop reading for wait seconds. */
static void conn_throttle(c2s_conn_t *c, double wait)
{
    if (c->throttle == NULL) {
        c->throttle = kn_malloc(sizeof(*c->throttle));
        ev_init(c->throttle, conn_on_throttle);
        c->throttle->data = c;
    }
    if (wait < 0.001)
        wait = 0.001;
    if (!c->throttled)
        kn_metric_add(c2s_metrics.throttled, 1);
    c->throttled = true;
    ev_timer_stop(c->srv->loop, c->throttle);
    ev_timer_set(c->throttle, wait, 0.);
    ev_timer_start(c->srv->loop, c->throttle);
}

/* Charge n bytes read, and the top-level elements the stream parsed
 * since the last call, to the session's buckets. In debt: reading
 * pauses until it is paid. false: the session has been over its rate
 * for rate_close_after seconds and must close. */
static bool conn_shape(c2s_conn_t *c, size_t n)
{
    const c2s_conf_t *cf = c->srv->conf;
    double now = ev_now(c->srv->loop);
    uint32_t k = c->st->stanzas_in - c->stanzas_seen;
    c->stanzas_seen = c->st->stanzas_in;
    bool ok = true;
    double wait = 0;
    if (cf->rate_bytes_per_s > 0) {
        double r = (double)cf->rate_bytes_per_s;
        ok &= c2s_bucket_take(&c->rate_bytes, r, (double)cf->rate_burst_bytes,
                              (double)n, now);
        wait = c2s_bucket_wait(&c->rate_bytes, r);
    }
    if (cf->rate_stanzas_per_s > 0) {
        double r = (double)cf->rate_stanzas_per_s;
        ok &= c2s_bucket_take(&c->rate_stanzas, r,
                              (double)cf->rate_burst_stanzas, (double)k, now);
        double w = c2s_bucket_wait(&c->rate_stanzas, r);
        if (w > wait)
            wait = w;
    }
    if (ok) {
        c->over_since = 0;
        return true;
    }
    if (c->over_since == 0) {
        c->over_since = now;
        kn_log_info("c2s: %s: over its input rate, reading paused",
                    c->st->jid.str ? c->st->jid.str : "unbound connection");
    } else if (cf->rate_close_after > 0 &&
               now - c->over_since >= (double)cf->rate_close_after) {
        kn_log_info("c2s: %s: over its input rate for %.1f s, closing with "
                    "policy-violation",
                    c->st->jid.str ? c->st->jid.str : "unbound connection",
                    now - c->over_since);
        kn_metric_add(c2s_metrics.closed_rate, 1);
        return false;
    }
    conn_throttle(c, wait);
    return true;
}

static void conn_sweep_by(c2s_server_t *srv, double at);

/* After any step: note when a stream header or TLS handshake began (the
 * pre-auth deadlines), and stop counting the connection as
 * unauthenticated once it is. */
static void conn_stage(c2s_conn_t *c)
{
    if (c->unauth && c->st->user != NULL) {
        c->unauth = false;
        c2s_flood_unauth_done(c->srv->flood, c->addr);
    }
    if (c->st->state == c->stage_state && c->handshaking == c->stage_hs)
        return;
    c->stage_state = (uint8_t)c->st->state;
    c->stage_hs = c->handshaking;
    c->stage_at = ev_now(c->srv->loop);
    const c2s_conf_t *cf = c->srv->conf;
    if (c->handshaking && cf->preauth_tls_timeout > 0)
        conn_sweep_by(c->srv, c->stage_at + (double)cf->preauth_tls_timeout);
    else if (c->st->state == C2S_ST_HEADER && cf->preauth_header_timeout > 0)
        conn_sweep_by(c->srv, c->stage_at + (double)cf->preauth_header_timeout);
}

/* After any step of the stream: act on its verdict, send its output,
 * and read again if it can take input that may already be buffered. */
void c2s_conn_after(c2s_conn_t *c, c2s_act_t act)
{
    conn_after(c, act);
}

static void conn_after(c2s_conn_t *c, c2s_act_t act)
{
    if (c->out.len > c->out_off)
        c2s_conn_output(c);
    conn_stage(c);
    if (act == C2S_ACT_CLOSE) {
        c2s_conn_close(c, KN_SE_NONE, c->st->reason);
        return;
    }
    if (c->closing)
        return;
    conn_update_io(c);
    if (act == C2S_ACT_MORE && !c->handshaking)
        ev_feed_event(c->srv->loop, &c->io, EV_READ);
}

static void conn_read(c2s_conn_t *c)
{
    if (c->detached)
        return;
    int i;
    for (i = 0; i < CONN_READ_BATCH; i++) {
        if (c->closing || c->st->pause != C2S_PAUSE_NONE || c->handshaking ||
            c->throttled)
            break;
        int want = EV_READ;
        ssize_t n =
            c->tr->read(c->trs, c->io.fd, conn_rbuf, sizeof(conn_rbuf), &want);
        if (n == -KN_EAGAIN) {
            c->read_want = (uint8_t)want;
            break;
        }
        c->read_want = 0;
        if (n <= 0) {
            /* A framing transport (WebSocket) names the stream error
             * for input it refused. */
            int err = KN_SE_NONE;
            if (n == -KN_EPROTO && c->tr->stream_error != NULL)
                err = c->tr->stream_error(c->trs);
            c2s_conn_close(c, (kn_stream_err_t)err, KN_ENV_REASON_DROPPED);
            break;
        }
        kn_metric_add(c2s_metrics.bytes_in, (double)n);
        c->last_in = ev_now(c->srv->loop);
        c->parked = false;
        c->pinged = false;
        c2s_act_t act = c2s_stream_input(c->st, conn_rbuf, (size_t)n);
        if (c->out.len > c->out_off)
            c2s_conn_output(c);
        conn_stage(c);
        if (act == C2S_ACT_CLOSE) {
            c2s_conn_close(c, KN_SE_NONE, c->st->reason);
            break;
        }
        if (c->closing)
            break;
        if (!conn_shape(c, (size_t)n)) {
            c2s_conn_close(c, KN_SE_POLICY_VIOLATION, KN_ENV_REASON_DROPPED);
            break;
        }
    }
    if (c->closing)
        return;
    conn_update_io(c);
    /* Yielded with input perhaps still held by the transport (TLS read
     * ahead, WebSocket frames), which the socket will not signal. */
    if (i == CONN_READ_BATCH)
        ev_feed_event(c->srv->loop, &c->io, EV_READ);
}

static void conn_handshake(c2s_conn_t *c)
{
    int want = EV_READ;
    int rc = c->tr->handshake(c->trs, c->io.fd, &want);
    if (rc == -KN_EAGAIN) {
        c->read_want = (uint8_t)want;
        conn_update_io(c);
        return;
    }
    if (rc < 0) {
        c2s_conn_close(c, KN_SE_NONE, KN_ENV_REASON_DROPPED);
        return;
    }
    c->handshaking = false;
    c->read_want = 0;
    conn_stage(c);
    unsigned cb = c2s_tls_cb_types(c->trs);
    kn_log_debug("c2s: tls up (%s)", c2s_tls_version(c->trs));
    if (c->st->pause == C2S_PAUSE_TLS)
        conn_after(c, c2s_stream_tls_done(c->st, cb));
    else
        c2s_stream_set_tls(c->st, cb);
    if (!c->closing)
        conn_read(c);
}

static void conn_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    c2s_conn_t *c = w->data;
    if (c->closing || c->detached)
        return;
    if (c->handshaking) {
        conn_handshake(c);
        return;
    }
    if (c->write_want && (revents & c->write_want))
        conn_flush(c);
    if (!c->closing && (revents & (EV_READ | EV_WRITE)))
        conn_read(c);
}

/* ---- lifetime ------------------------------------------------------------
 */

static uint32_t conn_slot_alloc(c2s_server_t *srv)
{
    if (srv->nfree > 0)
        return srv->free_slots[--srv->nfree];
    if (srv->nslots == srv->slots_cap) {
        size_t cap = srv->slots_cap ? 2 * srv->slots_cap : 1024;
        srv->slots = kn_realloc(srv->slots, cap * sizeof(*srv->slots));
        srv->free_slots =
            kn_realloc(srv->free_slots, cap * sizeof(*srv->free_slots));
        srv->slots_cap = cap;
    }
    return (uint32_t)srv->nslots++;
}

/* The sweep timer fires by at (a pre-auth deadline) at the latest. */
static void conn_sweep_by(c2s_server_t *srv, double at)
{
    double left = at - ev_now(srv->loop);
    if (left < 0.25)
        left = 0.25;
    if (ev_is_active(&srv->sweep) &&
        ev_timer_remaining(srv->loop, &srv->sweep) <= left)
        return;
    srv->sweep.repeat = left;
    ev_timer_again(srv->loop, &srv->sweep);
}

static c2s_conn_t *conn_new(c2s_server_t *srv, int fd,
                            const struct sockaddr *sa, unsigned flags)
{
    c2s_conn_t *c = kn_calloc(1, sizeof(*c));
    c->srv = srv;
    uint32_t slot = conn_slot_alloc(srv);
    /* One bit short of the local part: C2S_COMP_LOCAL_BIT is components'. */
    srv->gen = (srv->gen + 1) & ((UINT64_C(1) << (47 - C2S_SLOT_BITS)) - 1);
    if (srv->gen == 0)
        srv->gen = 1;
    c->local = (srv->gen << C2S_SLOT_BITS) | slot;
    srv->slots[slot] = c;
    srv->nconns++;
    c2s_flood_key(sa, c->addr);
    double now = ev_now(srv->loop);
    c2s_bucket_init(&c->rate_bytes, (double)srv->conf->rate_burst_bytes, now);
    c2s_bucket_init(&c->rate_stanzas, (double)srv->conf->rate_burst_stanzas,
                    now);
    c->last_in = now;
    c->accepted_at = now;
    c->stage_at = now;
    c2s_flood_unauth_add(srv->flood, c->addr);
    c->unauth = true;
    c->st = c2s_stream_new(&srv->scf, &conn_stream_ops, c, &c->out, flags);
    if (srv->conf->preauth_header_timeout > 0)
        conn_sweep_by(srv, now + (double)srv->conf->preauth_header_timeout);
    ev_io_init(&c->io, conn_on_io, fd, EV_READ);
    c->io.data = c;
    c->tr = &c2s_transport_tcp;
    return c;
}

c2s_conn_t *c2s_conn_adopt(c2s_server_t *srv, int fd, const struct sockaddr *sa,
                           const c2s_transport_t *tr, void *trs, unsigned flags)
{
    c2s_conn_t *c = conn_new(srv, fd, sa, flags);
    c->tr = tr;
    c->trs = trs;
    if (fd >= 0)
        ev_io_start(srv->loop, &c->io);
    /* The transport may hold input already (sent with the upgrade). */
    ev_feed_event(srv->loop, &c->io, EV_READ);
    return c;
}

void c2s_conn_wake(c2s_conn_t *c)
{
    if (!c->closing)
        ev_feed_event(c->srv->loop, &c->io, EV_READ | EV_WRITE);
}

void c2s_conn_accept(c2s_server_t *srv, int fd, const struct sockaddr *sa,
                     bool direct_tls)
{
    c2s_conn_t *c =
        conn_new(srv, fd, sa, direct_tls ? 0 : C2S_STREAM_F_STARTTLS);
    if (direct_tls) {
        c->trs = c2s_tls_new(srv->tls, fd);
        if (c->trs == NULL) {
            c2s_conn_close(c, KN_SE_NONE, KN_ENV_REASON_DROPPED);
            return;
        }
        c2s_tls_read_ahead(c->trs);
        c->tr = &c2s_transport_tls;
        c->handshaking = true;
        conn_stage(c);
    }
    ev_io_start(srv->loop, &c->io);
}

c2s_conn_t *c2s_conn_find(c2s_server_t *srv, uint64_t conn_id)
{
    uint64_t local = conn_id & KN_CONN_LOCAL_MASK;
    uint64_t slot = local & C2S_SLOT_MASK;
    if (slot >= srv->nslots)
        return NULL;
    c2s_conn_t *c = srv->slots[slot];
    if (c == NULL || c->local != local || c->closing)
        return NULL;
    return c;
}

c2s_conn_t *c2s_conn_find_jid(c2s_server_t *srv, const char *jid, size_t len)
{
    for (size_t i = 0; i < srv->nslots; i++) {
        c2s_conn_t *c = srv->slots[i];
        if (c != NULL && !c->closing && c->st->jid.str != NULL &&
            c->st->jid.len == len && memcmp(c->st->jid.str, jid, len) == 0)
            return c;
    }
    return NULL;
}

c2s_stream_t *c2s_conn_stream(c2s_conn_t *c)
{
    return c->st;
}

static void conn_on_sm_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    c2s_conn_t *c = t->data;
    kn_log_info("c2s: %s: not resumed within %u s, ending the session",
                c->st->jid.str ? c->st->jid.str : "?",
                c->srv->scf.sm_resume_timeout);
    c2s_conn_close(c, KN_SE_NONE, KN_ENV_REASON_DROPPED);
}

/* A resumable session whose connection failed detaches instead of
 * ending (R-DROP-5): true when it did. */
static bool conn_detach(c2s_conn_t *c, kn_stream_err_t err,
                        kn_env_reason_t reason)
{
    /* A BOSH session (no socket) has its own lifetime (XEP-0124
     * inactivity) and its state lives in c2s_bosh.c: it never detaches. */
    if (c->detached || c->io.fd < 0 || c->srv->stopping ||
        !c2s_sm_resumable(c->st) ||
        (reason != KN_ENV_REASON_DROPPED && reason != KN_ENV_REASON_IDLE) ||
        (err != KN_SE_NONE && err != KN_SE_CONNECTION_TIMEOUT))
        return false;
    conn_acks_drop(c);
    kn_buf_free(&c->out);
    c->out_off = 0;
    ev_io_stop(c->srv->loop, &c->io);
    c->tr->free(&c->trs);
    c->tr = &c2s_transport_tcp;
    close(c->io.fd);
    ev_io_set(&c->io, -1, 0);
    c->read_want = c->write_want = 0;
    c->handshaking = false;
    c->starttls_pending = false;
    c->detached = true;
    if (c->throttle != NULL)
        ev_timer_stop(c->srv->loop, c->throttle);
    c->throttled = false;
    c2s_sm_detach(c->st);
    c->parked = kn_xml_park(c->st->xml); /* no input until it ends */
    if (c->sm_timer == NULL) {
        c->sm_timer = kn_malloc(sizeof(*c->sm_timer));
        ev_init(c->sm_timer, conn_on_sm_timeout);
        c->sm_timer->data = c;
    }
    ev_timer_set(c->sm_timer, (double)c->srv->scf.sm_resume_timeout, 0.);
    ev_timer_start(c->srv->loop, c->sm_timer);
    kn_log_info("c2s: %s: connection lost (%s), session detached for up to "
                "%u s (XEP-0198)",
                c->st->jid.str, kn_env_reason_name(reason),
                c->srv->scf.sm_resume_timeout);
    return true;
}

void c2s_conn_close(c2s_conn_t *c, kn_stream_err_t err, kn_env_reason_t reason)
{
    if (c->closing)
        return;
    if (conn_detach(c, err, reason))
        return;
    c2s_stream_close(c->st, err, reason);
    c->closing = true;
    c2s_stream_end(c->st); /* SESSION_DOWN now: the route goes at once */
    ev_io_stop(c->srv->loop, &c->io);
    if (c->delay != NULL)
        ev_timer_stop(c->srv->loop, c->delay);
    if (c->sm_timer != NULL)
        ev_timer_stop(c->srv->loop, c->sm_timer);
    if (c->throttle != NULL)
        ev_timer_stop(c->srv->loop, c->throttle);
    c->next_close = c->srv->close_list;
    c->srv->close_list = c;
    if (c->out.len > c->out_off)
        c2s_conn_output(c);
}

void c2s_conn_free(c2s_conn_t *c)
{
    c2s_server_t *srv = c->srv;
    c2s_stream_end(c->st);
    ev_io_stop(srv->loop, &c->io);
    if (c->delay != NULL) {
        ev_timer_stop(srv->loop, c->delay);
        free(c->delay);
    }
    if (c->sm_timer != NULL) {
        ev_timer_stop(srv->loop, c->sm_timer);
        free(c->sm_timer);
    }
    if (c->throttle != NULL) {
        ev_timer_stop(srv->loop, c->throttle);
        free(c->throttle);
    }
    if (c->unauth)
        c2s_flood_unauth_done(srv->flood, c->addr);
    if (c->creds != NULL)
        c->creds->c = NULL;
    c->tr->free(&c->trs);
    if (c->io.fd >= 0)
        close(c->io.fd);
    uint64_t slot = c->local & C2S_SLOT_MASK;
    srv->slots[slot] = NULL;
    srv->free_slots[srv->nfree++] = (uint32_t)slot;
    srv->nconns--;
    conn_acks_drop(c);
    c2s_stream_free(&c->st);
    kn_buf_free(&c->out);
    free(c);
}

/* One ACK envelope per CONN_ACK_MAX ids written since the last call. If
 * the router link drops it, the rows are delivered again (at least
 * once). */
static void conn_send_acks(c2s_server_t *srv)
{
    c2s_ack_ids_t *a = &srv->acks_out;
    for (size_t off = 0; off < a->n; off += CONN_ACK_MAX) {
        kn_env_t e = {0};
        e.kind = KN_ENV_ACK;
        e.targets = a->ids + off;
        e.ntargets = a->n - off < CONN_ACK_MAX ? a->n - off : CONN_ACK_MAX;
        int rc = srv->link ? kn_link_send(srv->link, &e, NULL, 0) : -KN_EIO;
        if (rc < 0)
            kn_log_warn("c2s: ACK of %zu offline messages not sent: %s",
                        e.ntargets, kn_strerror(rc));
    }
    if (a->cap > CONN_ACK_MAX)
        c2s_ack_ids_free(a);
    a->n = 0;
}

void c2s_conn_drain(c2s_server_t *srv)
{
    while (srv->flush_list != NULL) {
        c2s_conn_t *c = srv->flush_list;
        srv->flush_list = c->next_flush;
        c->in_flush = false;
        if (!c->handshaking)
            conn_flush(c);
    }
    while (srv->close_list != NULL) {
        c2s_conn_t *c = srv->close_list;
        srv->close_list = c->next_close;
        if (c->in_flush) {
            /* Closed after the flush pass: unlink from the flush list. */
            c2s_conn_t **pp = &srv->flush_list;
            while (*pp != NULL && *pp != c)
                pp = &(*pp)->next_flush;
            if (*pp == c)
                *pp = c->next_flush;
        }
        if (!c->handshaking && c->out.len > c->out_off)
            conn_flush(c); /* best effort: the socket closes next */
        c2s_conn_free(c);
    }
    conn_send_acks(srv);
}

/* The pre-auth deadlines of one connection (see the note on abuse):
 * close it when one passed, else lower *next to the earliest. */
static void conn_preauth(c2s_conn_t *c, double now, double *next)
{
    const c2s_conf_t *cf = c->srv->conf;
    if (!c->unauth && c->st->state != C2S_ST_HEADER)
        return;
    const char *what = NULL;
    kn_stream_err_t err = KN_SE_CONNECTION_TIMEOUT;
    double at = HUGE_VAL;
    if (c->handshaking && cf->preauth_tls_timeout > 0) {
        at = c->stage_at + (double)cf->preauth_tls_timeout;
        what = "TLS handshake";
        err = KN_SE_NONE; /* no stream to carry an error */
    } else if (!c->handshaking && c->st->state == C2S_ST_HEADER &&
               cf->preauth_header_timeout > 0) {
        at = c->stage_at + (double)cf->preauth_header_timeout;
        what = "stream header";
    }
    if (c->unauth && cf->preauth_auth_timeout > 0 &&
        c->accepted_at + (double)cf->preauth_auth_timeout < at) {
        at = c->accepted_at + (double)cf->preauth_auth_timeout;
        what = "authentication";
        err = c->handshaking ? KN_SE_NONE : KN_SE_CONNECTION_TIMEOUT;
    }
    if (what == NULL)
        return;
    if (now + 0.01 < at) {
        if (at < *next)
            *next = at;
        return;
    }
    kn_log_info("c2s: %s: %s not complete within %.0f s, closing "
                "(pre-auth timeout)",
                c->st->jid.str ? c->st->jid.str
                : c->unauth    ? "unauthenticated connection"
                               : "connection",
                what,
                at - (strcmp(what, "authentication") == 0 ? c->accepted_at
                                                          : c->stage_at));
    kn_metric_add(c2s_metrics.closed_preauth, 1);
    c2s_conn_close(c, err, KN_ENV_REASON_DROPPED);
}

/* The idle policy for one connection: ping or close. *next gets when
 * its next step falls due. */
static void conn_idle(c2s_conn_t *c, double now, double *next)
{
    c2s_server_t *srv = c->srv;
    bool bound = c->st->state == C2S_ST_SESSION;
    switch (c2s_idle_decide(now, c->last_in, bound, c->pinged,
                            (double)srv->conf->idle_timeout,
                            srv->conf->idle_ping != 0, next)) {
    case C2S_IDLE_NONE:
        break;
    case C2S_IDLE_PING:
        if (++srv->ping_seq == 0)
            srv->ping_seq = 1;
        c->pinged = true;
        c2s_stream_ping(c->st, srv->ping_seq);
        c2s_conn_output(c);
        break;
    case C2S_IDLE_CLOSE:
        kn_log_info("c2s: %s: silent for %.1f s, closing (idle)",
                    c->st->jid.str ? c->st->jid.str : "unbound connection",
                    now - c->last_in);
        c2s_conn_close(c, KN_SE_CONNECTION_TIMEOUT, KN_ENV_REASON_IDLE);
        break;
    }
}

double c2s_conn_sweep_idle(c2s_server_t *srv, double now, double park)
{
    /* Idle streams give back their XML parser (about 13 KB each) until
     * their next byte: most sessions are idle most of the time. */
    size_t parked = 0;
    double next = HUGE_VAL;
    for (size_t i = 0; i < srv->nslots; i++) {
        c2s_conn_t *c = srv->slots[i];
        if (c == NULL || c->closing || c->detached)
            continue;
        double at = HUGE_VAL, pre = HUGE_VAL;
        conn_preauth(c, now, &pre);
        if (c->closing)
            continue;
        conn_idle(c, now, &at);
        if (pre < at)
            at = pre;
        if (at < next)
            next = at;
        if (c->closing || c->parked || now - c->last_in < park)
            continue;
        if (kn_xml_park(c->st->xml)) {
            c->parked = true;
            parked++;
            if (c->tr->park != NULL)
                c->tr->park(c->trs); /* WebSocket: libwslay's context */
        }
    }
    /* Give the freed pages back to the kernel, or RSS stays at the
     * high-water mark of the last login burst. Off by default: glibc's
     * malloc_trim walks the whole heap, 100 ms per 2,000 sessions' worth
     * and 200-400 ms at 17,000 even with nothing to give back, a stall
     * of the loop every sweep (issue 15). */
    if (parked > 0 && srv->conf->malloc_trim &&
        now - srv->trimmed_at >= C2S_TRIM_MIN_S) {
        srv->trimmed_at = now;
        malloc_trim(0);
    }
    kn_log_debug("idle sweep: %zu streams parked", parked);
    return next;
}

/* Connections and bound sessions by transport (a scan at scrape time). */
void c2s_conn_metrics(kn_buf_t *out, void *arg)
{
    const c2s_server_t *srv = arg;
    static const char *const names[] = {"tcp", "tls", "websocket", "bosh"};
    size_t conns[4] = {0}, sess[4] = {0};
    for (size_t i = 0; i < srv->nslots; i++) {
        const c2s_conn_t *c = srv->slots[i];
        if (c == NULL || c->closing)
            continue;
        for (size_t t = 0; t < 4; t++)
            if (strcmp(c->tr->name, names[t]) == 0) {
                conns[t]++;
                if (c->st->state == C2S_ST_SESSION)
                    sess[t]++;
            }
    }
    kn_buf_append_str(out, "# HELP kiln_c2s_sessions bound client sessions "
                           "by transport\n# TYPE kiln_c2s_sessions gauge\n");
    for (size_t t = 0; t < 4; t++)
        kn_buf_printf(out, "kiln_c2s_sessions{transport=\"%s\"} %zu\n",
                      names[t], sess[t]);
    kn_buf_append_str(out, "# HELP kiln_c2s_connections client connections "
                           "by transport\n# TYPE kiln_c2s_connections "
                           "gauge\n");
    for (size_t t = 0; t < 4; t++)
        kn_buf_printf(out, "kiln_c2s_connections{transport=\"%s\"} %zu\n",
                      names[t], conns[t]);
}
