/*
 * c2s_listen.c - the listening sockets (STARTTLS port, direct TLS port,
 * XEP-0368, HTTP and HTTPS ports: c2s_http.c) and accept.
 *
 * Accept drains up to a batch per wake-up. Out of file descriptors
 * (EMFILE/ENFILE), the reserve fd is closed, the pending connection
 * accepted and closed at once, and the reserve reopened (ev.pod's
 * recipe), so the listener does not spin. Above max_connections a new
 * connection is closed at once: refused cleanly, the node stays up
 * (R-PERF-2).
 *
 * Floods (issue 16): every new connection on the client ports (STARTTLS,
 * direct TLS, HTTP, HTTPS) passes c2s_flood_admit (per-address and node
 * connection rates, per-address and node caps on unauthenticated
 * connections). A refused one is closed right after accept, before any
 * TLS, HTTP or XML work and without a word: no stream header was sent,
 * so there is no stream to carry an error, and writing one would cost
 * the flood's victim more than the flooder. One log line per reason per
 * second names the address (fail2ban can match it), and
 * kiln_c2s_refused_total counts every refusal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "c2s_metrics.h"
#include "c2s_server.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"

#define LISTEN_BACKLOG      1024
#define LISTEN_ACCEPT_BATCH 64

enum listen_kind { LISTEN_STARTTLS, LISTEN_TLS, LISTEN_HTTP, LISTEN_HTTPS };

static const char *const listen_kind_names[] = {"STARTTLS", "direct TLS",
                                                "HTTP", "HTTPS"};

struct c2s_listener {
    c2s_server_t *srv;
    ev_io io;
    enum listen_kind kind;
    c2s_listener_t *next;
};

static void listen_refuse_log(c2s_server_t *srv, const char *why)
{
    double now = ev_now(srv->loop);
    if (now - srv->refused_log_at >= 1.0) {
        srv->refused_log_at = now;
        kn_log_warn("c2s: refusing connections: %s", why);
    }
}

/* When each refusal reason was last logged, per listener kind. */
static double listen_flood_log_at[C2S_FLOOD_COUNT_][4];

/* One line per refusal reason and port kind per second, naming the
 * address. */
static void listen_flood_log(c2s_server_t *srv, c2s_flood_verdict_t v,
                             const struct sockaddr_storage *ss,
                             enum listen_kind kind)
{
    kn_metric_add(c2s_metrics.refused[v], 1);
    double now = ev_now(srv->loop);
    if (now - listen_flood_log_at[v][kind] < 1.0)
        return;
    listen_flood_log_at[v][kind] = now;
    char a[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, a,
                  sizeof(a));
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, a,
                  sizeof(a));
    kn_log_warn("c2s: refused connection from %s (%s port): %s", a,
                listen_kind_names[kind], c2s_flood_verdict_name(v));
}

static void listen_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    c2s_listener_t *l = w->data;
    c2s_server_t *srv = l->srv;
    for (int i = 0; i < LISTEN_ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(w->fd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                listen_refuse_log(srv, "out of file descriptors");
                if (srv->reserve_fd >= 0) {
                    close(srv->reserve_fd);
                    int fd2 = accept(w->fd, NULL, NULL);
                    if (fd2 >= 0)
                        close(fd2);
                    srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                }
            }
            return; /* EAGAIN and the rest */
        }
        if (srv->stopping ||
            srv->nconns + srv->nhttp >= (size_t)srv->conf->max_connections) {
            listen_refuse_log(srv, "max_connections reached");
            close(fd);
            continue;
        }
        uint8_t key[16];
        c2s_flood_key((struct sockaddr *)&ss, key);
        c2s_flood_verdict_t v = c2s_flood_admit(srv->flood, key, ev_now(loop));
        if (v != C2S_FLOOD_OK) {
            listen_flood_log(srv, v, &ss, l->kind);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (l->kind == LISTEN_HTTP || l->kind == LISTEN_HTTPS)
            c2s_http_accept(srv, fd, (struct sockaddr *)&ss,
                            l->kind == LISTEN_HTTPS);
        else
            c2s_conn_accept(srv, fd, (struct sockaddr *)&ss,
                            l->kind == LISTEN_TLS);
    }
}

static int listen_open(c2s_server_t *srv, const char *addr, long long port,
                       enum listen_kind kind)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        sl = sizeof(*in);
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*in6);
    } else {
        kn_log_err("c2s: bad bind address %s", addr);
        return -KN_EINVAL;
    }
    int fd =
        socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        kn_log_err("c2s: socket: %s", strerror(errno));
        return -KN_EIO;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0) {
        kn_log_err("c2s: cannot listen on %s port %lld: %s", addr, port,
                   strerror(errno));
        close(fd);
        return -KN_EIO;
    }
    c2s_listener_t *l = kn_calloc(1, sizeof(*l));
    l->srv = srv;
    l->kind = kind;
    ev_io_init(&l->io, listen_on_accept, fd, EV_READ);
    l->io.data = l;
    ev_io_start(srv->loop, &l->io);
    l->next = srv->listeners;
    srv->listeners = l;
    kn_log_info("c2s: listening on %s port %lld (%s)", addr, port,
                listen_kind_names[kind]);
    return 0;
}

int c2s_listen_start(c2s_server_t *srv)
{
    const c2s_conf_t *cf = srv->conf;
    if (cf->starttls_port > 0 &&
        listen_open(srv, cf->bind, cf->starttls_port, LISTEN_STARTTLS) < 0)
        goto err_stop;
    if (cf->tls_port > 0 &&
        listen_open(srv, cf->bind, cf->tls_port, LISTEN_TLS) < 0)
        goto err_stop;
    if (cf->http_port > 0 &&
        listen_open(srv, cf->bind, cf->http_port, LISTEN_HTTP) < 0)
        goto err_stop;
    if (cf->https_port > 0 &&
        listen_open(srv, cf->bind, cf->https_port, LISTEN_HTTPS) < 0)
        goto err_stop;
    return 0;
err_stop:
    c2s_listen_stop(srv);
    return -KN_EIO;
}

void c2s_listen_stop(c2s_server_t *srv)
{
    while (srv->listeners != NULL) {
        c2s_listener_t *l = srv->listeners;
        srv->listeners = l->next;
        ev_io_stop(srv->loop, &l->io);
        close(l->io.fd);
        free(l);
    }
}
