/*
 * kn_metrics.c - the metrics registry, the exposition format and a
 * minimal HTTP/1.x responder (see kn_metrics.h).
 *
 * The responder reads one request head (at most 4 KiB, 10 s), answers it
 * and closes the connection (Connection: close): scrapers open one
 * connection per scrape, so keep-alive would buy nothing here.
 */
#include "kn_metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"

enum metric_src { SRC_OWN, SRC_PTR, SRC_FN };

struct kn_metric {
    char *name, *help, *labels;
    kn_metric_type_t type;
    enum metric_src src;
    double value;
    const uint64_t *ptr;
    kn_metric_fn_t fn;
    void *arg;
    /* histogram */
    double *bounds;
    uint64_t *buckets; /* nbounds + 1, not cumulative */
    size_t nbounds;
    double sum;
    uint64_t count;
    struct kn_metric *next;
};

static kn_metric_t *g_head, *g_tail;
static char *g_allow; /* metrics.allow */

#define METRICS_RENDERERS_MAX 8
static struct {
    kn_metrics_render_fn_t fn;
    void *arg;
} g_renderers[METRICS_RENDERERS_MAX];
static size_t g_nrenderers;

void kn_metrics_add_renderer(kn_metrics_render_fn_t fn, void *arg)
{
    KN_ASSERT(g_nrenderers < METRICS_RENDERERS_MAX);
    g_renderers[g_nrenderers].fn = fn;
    g_renderers[g_nrenderers].arg = arg;
    g_nrenderers++;
}

const double kn_metric_latency_bounds[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
const size_t kn_metric_latency_nbounds =
    sizeof(kn_metric_latency_bounds) / sizeof(kn_metric_latency_bounds[0]);

const double kn_metric_loop_bounds[] = {
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01,    0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5};
const size_t kn_metric_loop_nbounds =
    sizeof(kn_metric_loop_bounds) / sizeof(kn_metric_loop_bounds[0]);

static kn_metric_t *metric_find(const char *name, const char *labels)
{
    for (kn_metric_t *m = g_head; m != NULL; m = m->next)
        if (strcmp(m->name, name) == 0 && strcmp(m->labels, labels) == 0)
            return m;
    return NULL;
}

static kn_metric_t *metric_new(kn_metric_type_t type, const char *name,
                               const char *help, const char *labels)
{
    KN_ASSERT(name != NULL && help != NULL);
    if (labels == NULL)
        labels = "";
    kn_metric_t *m = metric_find(name, labels);
    if (m != NULL)
        return m;
    m = kn_calloc(1, sizeof(*m));
    m->name = kn_strdup(name);
    m->help = kn_strdup(help);
    m->labels = kn_strdup(labels);
    m->type = type;
    m->src = SRC_OWN;
    if (g_tail != NULL)
        g_tail->next = m;
    else
        g_head = m;
    g_tail = m;
    return m;
}

kn_metric_t *kn_metric_counter(const char *name, const char *help,
                               const char *labels)
{
    return metric_new(KN_METRIC_COUNTER, name, help, labels);
}

kn_metric_t *kn_metric_gauge(const char *name, const char *help,
                             const char *labels)
{
    return metric_new(KN_METRIC_GAUGE, name, help, labels);
}

kn_metric_t *kn_metric_histogram(const char *name, const char *help,
                                 const char *labels, const double *bounds,
                                 size_t nbounds)
{
    kn_metric_t *m = metric_new(KN_METRIC_HISTOGRAM, name, help, labels);
    if (m->buckets == NULL) {
        m->bounds = kn_calloc(nbounds + 1, sizeof(double));
        memcpy(m->bounds, bounds, nbounds * sizeof(double));
        m->buckets = kn_calloc(nbounds + 1, sizeof(uint64_t));
        m->nbounds = nbounds;
    }
    return m;
}

kn_metric_t *kn_metric_ptr(kn_metric_type_t type, const char *name,
                           const char *help, const char *labels,
                           const uint64_t *p)
{
    KN_ASSERT(type != KN_METRIC_HISTOGRAM);
    kn_metric_t *m = metric_new(type, name, help, labels);
    m->src = SRC_PTR;
    m->ptr = p;
    return m;
}

kn_metric_t *kn_metric_fn(kn_metric_type_t type, const char *name,
                          const char *help, const char *labels,
                          kn_metric_fn_t fn, void *arg)
{
    KN_ASSERT(type != KN_METRIC_HISTOGRAM);
    kn_metric_t *m = metric_new(type, name, help, labels);
    m->src = SRC_FN;
    m->fn = fn;
    m->arg = arg;
    return m;
}

void kn_metric_inc(kn_metric_t *m)
{
    kn_metric_add(m, 1);
}

void kn_metric_dec(kn_metric_t *m)
{
    kn_metric_add(m, -1);
}

void kn_metric_add(kn_metric_t *m, double v)
{
    if (m != NULL && m->src == SRC_OWN)
        m->value += v;
}

void kn_metric_set(kn_metric_t *m, double v)
{
    if (m != NULL && m->src == SRC_OWN)
        m->value = v;
}

void kn_metric_observe(kn_metric_t *m, double v)
{
    if (m == NULL || m->buckets == NULL)
        return;
    size_t i = 0;
    while (i < m->nbounds && v > m->bounds[i])
        i++;
    m->buckets[i]++;
    m->sum += v;
    m->count++;
}

double kn_metric_value(const kn_metric_t *m)
{
    switch (m->src) {
    case SRC_PTR:
        return (double)*m->ptr;
    case SRC_FN:
        return m->fn(m->arg);
    default:
        return m->type == KN_METRIC_HISTOGRAM ? (double)m->count : m->value;
    }
}

/* ---- exposition ------------------------------------------------------------
 */

static void metrics_num(kn_buf_t *out, double v)
{
    if (isnan(v))
        kn_buf_append_str(out, "NaN");
    else if (isinf(v))
        kn_buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(long long)v && fabs(v) < 9e15)
        kn_buf_printf(out, "%lld", (long long)v);
    else
        kn_buf_printf(out, "%.17g", v);
}

static void metrics_help(kn_buf_t *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            kn_buf_append_str(out, "\\\\");
        else if (*s == '\n')
            kn_buf_append_str(out, "\\n");
        else
            kn_buf_append_byte(out, (uint8_t)*s);
    }
}

static void metrics_series(kn_buf_t *out, const char *name, const char *suffix,
                           const char *labels, const char *extra)
{
    kn_buf_append_str(out, name);
    kn_buf_append_str(out, suffix);
    bool l = labels[0] != '\0', e = extra != NULL;
    if (l || e) {
        kn_buf_append_byte(out, '{');
        if (l)
            kn_buf_append_str(out, labels);
        if (l && e)
            kn_buf_append_byte(out, ',');
        if (e)
            kn_buf_append_str(out, extra);
        kn_buf_append_byte(out, '}');
    }
    kn_buf_append_byte(out, ' ');
}

static const char *metrics_type_name(kn_metric_type_t t)
{
    return t == KN_METRIC_COUNTER ? "counter"
           : t == KN_METRIC_GAUGE ? "gauge"
                                  : "histogram";
}

static void metrics_render_one(kn_buf_t *out, const kn_metric_t *m)
{
    if (m->type != KN_METRIC_HISTOGRAM) {
        metrics_series(out, m->name, "", m->labels, NULL);
        metrics_num(out, kn_metric_value(m));
        kn_buf_append_byte(out, '\n');
        return;
    }
    uint64_t cum = 0;
    char le[64];
    for (size_t i = 0; i <= m->nbounds; i++) {
        cum += m->buckets[i];
        if (i < m->nbounds)
            snprintf(le, sizeof(le), "le=\"%g\"", m->bounds[i]);
        else
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        metrics_series(out, m->name, "_bucket", m->labels, le);
        kn_buf_printf(out, "%llu\n", (unsigned long long)cum);
    }
    metrics_series(out, m->name, "_sum", m->labels, NULL);
    metrics_num(out, m->sum);
    kn_buf_append_byte(out, '\n');
    metrics_series(out, m->name, "_count", m->labels, NULL);
    kn_buf_printf(out, "%llu\n", (unsigned long long)m->count);
}

void kn_metrics_render(kn_buf_t *out)
{
    /* Group the series of one name under one HELP/TYPE, in the order the
     * names were first registered. */
    for (const kn_metric_t *m = g_head; m != NULL; m = m->next) {
        bool seen = false;
        for (const kn_metric_t *p = g_head; p != m; p = p->next)
            if (strcmp(p->name, m->name) == 0) {
                seen = true;
                break;
            }
        if (seen)
            continue;
        kn_buf_printf(out, "# HELP %s ", m->name);
        metrics_help(out, m->help);
        kn_buf_printf(out, "\n# TYPE %s %s\n", m->name,
                      metrics_type_name(m->type));
        for (const kn_metric_t *s = m; s != NULL; s = s->next)
            if (strcmp(s->name, m->name) == 0)
                metrics_render_one(out, s);
    }
    for (size_t i = 0; i < g_nrenderers; i++)
        g_renderers[i].fn(out, g_renderers[i].arg);
}

/* ---- event-loop iteration times ------------------------------------------
 */

static struct {
    ev_check check;
    ev_prepare prepare;
    struct ev_loop *loop;
    kn_metric_t *hist, *max;
    struct timespec start;
    bool started; /* a check ran since the last prepare */
} g_loop;

static void loop_on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(w);
    KN_UNUSED(revents);
    clock_gettime(CLOCK_MONOTONIC, &g_loop.start);
    g_loop.started = true;
}

static void loop_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(w);
    KN_UNUSED(revents);
    if (!g_loop.started)
        return; /* the first iteration: nothing polled yet */
    g_loop.started = false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double d = (double)(now.tv_sec - g_loop.start.tv_sec) +
               (double)(now.tv_nsec - g_loop.start.tv_nsec) / 1e9;
    if (d < 0)
        d = 0;
    kn_metric_observe(g_loop.hist, d);
    if (g_loop.max != NULL && d > kn_metric_value(g_loop.max))
        kn_metric_set(g_loop.max, d);
}

void kn_metrics_watch_loop(struct ev_loop *loop)
{
    if (g_loop.loop != NULL)
        return;
    g_loop.hist = kn_metric_histogram(
        "kiln_loop_iteration_seconds",
        "time one event-loop iteration spends in callbacks, from the "
        "poll's return to the next poll (a stall shows as a slow bucket)",
        "", kn_metric_loop_bounds, kn_metric_loop_nbounds);
    g_loop.max = kn_metric_gauge("kiln_loop_iteration_max_seconds",
                                 "the longest event-loop iteration since "
                                 "the process started",
                                 "");
    g_loop.loop = loop;
    g_loop.started = false;
    ev_check_init(&g_loop.check, loop_on_check);
    ev_set_priority(&g_loop.check, EV_MAXPRI);
    ev_check_start(loop, &g_loop.check);
    ev_unref(loop);
    ev_prepare_init(&g_loop.prepare, loop_on_prepare);
    ev_set_priority(&g_loop.prepare, EV_MINPRI);
    ev_prepare_start(loop, &g_loop.prepare);
    ev_unref(loop);
}

void kn_metrics_unwatch_loop(struct ev_loop *loop)
{
    if (g_loop.loop != loop || loop == NULL)
        return;
    ev_ref(loop);
    ev_check_stop(loop, &g_loop.check);
    ev_ref(loop);
    ev_prepare_stop(loop, &g_loop.prepare);
    g_loop.loop = NULL;
}

void kn_metrics_reset(void)
{
    kn_metric_t *m = g_head;
    while (m != NULL) {
        kn_metric_t *n = m->next;
        free(m->name);
        free(m->help);
        free(m->labels);
        free(m->bounds);
        free(m->buckets);
        free(m);
        m = n;
    }
    g_head = g_tail = NULL;
    g_nrenderers = 0;
    g_loop.hist = g_loop.max = NULL;
    free(g_allow);
    g_allow = NULL;
}

/* ---- HTTP ------------------------------------------------------------------
 */

#define METRICS_REQ_MAX 4096
#define METRICS_TIMEOUT 10.0

static void metrics_reply(kn_buf_t *out, int status, const char *reason,
                          const char *ctype, const kn_buf_t *body, bool head,
                          const char *extra)
{
    kn_buf_printf(out,
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
                  status, reason, ctype, body->len, extra ? extra : "");
    if (!head)
        kn_buf_append(out, body->data, body->len);
}

void kn_metrics_http_answer(const char *req, size_t len, kn_buf_t *out)
{
    kn_buf_t body = KN_BUF_INIT;
    const char *sp = memchr(req, ' ', len);
    const char *tgt = sp != NULL ? sp + 1 : NULL;
    const char *sp2 =
        tgt != NULL ? memchr(tgt, ' ', len - (size_t)(tgt - req)) : NULL;
    if (sp == NULL || sp2 == NULL) {
        kn_buf_append_str(&body, "bad request\n");
        metrics_reply(out, 400, "Bad Request", "text/plain", &body, false,
                      NULL);
        goto out;
    }
    size_t mlen = (size_t)(sp - req), tlen = (size_t)(sp2 - tgt);
    const char *q = memchr(tgt, '?', tlen);
    if (q != NULL)
        tlen = (size_t)(q - tgt);
    bool get = mlen == 3 && memcmp(req, "GET", 3) == 0;
    bool head = mlen == 4 && memcmp(req, "HEAD", 4) == 0;
    if (tlen != 8 || memcmp(tgt, "/metrics", 8) != 0) {
        kn_buf_append_str(&body, "not found: try /metrics\n");
        metrics_reply(out, 404, "Not Found", "text/plain", &body, head, NULL);
    } else if (!get && !head) {
        kn_buf_append_str(&body, "method not allowed\n");
        metrics_reply(out, 405, "Method Not Allowed", "text/plain", &body,
                      false, "Allow: GET, HEAD\r\n");
    } else {
        kn_metrics_render(&body);
        metrics_reply(out, 200, "OK", "text/plain; version=0.0.4", &body, head,
                      NULL);
    }
out:
    kn_buf_free(&body);
}

typedef struct metrics_conn {
    ev_io io;
    ev_timer timer;
    kn_buf_t in, out;
    bool answered;
} metrics_conn_t;

static ev_io g_listen;
static int g_listen_fd = -1;
static kn_metric_t *g_start_time;

static void metrics_conn_close(struct ev_loop *loop, metrics_conn_t *c)
{
    ev_io_stop(loop, &c->io);
    ev_timer_stop(loop, &c->timer);
    close(c->io.fd);
    kn_buf_free(&c->in);
    kn_buf_free(&c->out);
    free(c);
}

static void metrics_on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    metrics_conn_close(
        loop, (metrics_conn_t *)((char *)w - offsetof(metrics_conn_t, timer)));
}

static void metrics_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    metrics_conn_t *c = (metrics_conn_t *)w;
    if (!c->answered) {
        char buf[1024];
        ssize_t n = read(w->fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            metrics_conn_close(loop, c);
            return;
        }
        kn_buf_append(&c->in, buf, (size_t)n);
        kn_buf_append_byte(&c->in, 0);
        c->in.len--;
        bool done = strstr((char *)c->in.data, "\r\n\r\n") != NULL ||
                    strstr((char *)c->in.data, "\n\n") != NULL;
        if (!done && c->in.len < METRICS_REQ_MAX)
            return;
        if (done)
            kn_metrics_http_answer((char *)c->in.data, c->in.len, &c->out);
        else
            kn_buf_append_str(&c->out, "HTTP/1.1 431 Request Header Fields "
                                       "Too Large\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n");
        c->answered = true;
        ev_io_stop(loop, w);
        ev_io_set(w, w->fd, EV_WRITE);
        ev_io_start(loop, w);
        return;
    }
    ssize_t n = write(w->fd, c->out.data, c->out.len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        metrics_conn_close(loop, c);
        return;
    }
    kn_buf_consume(&c->out, (size_t)n);
    if (c->out.len == 0) {
        shutdown(w->fd, SHUT_WR);
        metrics_conn_close(loop, c);
    }
}

static void metrics_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (int i = 0; i < 16; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(w->fd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (!kn_metrics_peer_allowed((struct sockaddr *)&ss)) {
            close(fd); /* not in metrics.allow */
            continue;
        }
        metrics_conn_t *c = kn_calloc(1, sizeof(*c));
        c->in = (kn_buf_t)KN_BUF_INIT;
        c->out = (kn_buf_t)KN_BUF_INIT;
        ev_io_init(&c->io, metrics_on_io, fd, EV_READ);
        ev_io_start(loop, &c->io);
        ev_timer_init(&c->timer, metrics_on_timeout, METRICS_TIMEOUT, 0);
        ev_timer_start(loop, &c->timer);
    }
}

static bool metrics_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
                in6->sin6_addr.s6_addr[12] == 127);
    }
    return sa->sa_family == AF_UNIX;
}

bool kn_metrics_peer_allowed(const struct sockaddr *sa)
{
    if (sa == NULL || metrics_loopback(sa))
        return true;
    if (g_allow == NULL || g_allow[0] == '\0')
        return false;
    if (strcmp(g_allow, "*") == 0)
        return true;
    char ip[INET6_ADDRSTRLEN] = "";
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET,
                  &((const struct sockaddr_in *)(const void *)sa)->sin_addr, ip,
                  sizeof(ip));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6,
                  &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                  ip, sizeof(ip));
    size_t il = strlen(ip);
    const char *p = g_allow;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        const char *b = p;
        while (*p != '\0' && *p != ',' && *p != ' ')
            p++;
        if (il > 0 && (size_t)(p - b) == il && memcmp(b, ip, il) == 0)
            return true;
    }
    return false;
}

typedef struct metrics_conf {
    char *bind;
    char *allow;
    long long router_port, presenced_port, mucd_port;
} metrics_conf_t;

#define MC_OFF(f) offsetof(metrics_conf_t, f)
static const kn_conf_def_t metrics_defs[] = {
    {"bind", KN_CONF_STR, MC_OFF(bind), 0, "127.0.0.1", 0, 0, NULL,
     "address the metrics ports listen on"},
    {"allow", KN_CONF_STR, MC_OFF(allow), 0, "", 0, 0, NULL,
     "comma list of addresses, besides loopback, that may read /metrics"},
    {"router_port", KN_CONF_INT, MC_OFF(router_port), 0, NULL, 0, 65535, NULL,
     "kiln-router's /metrics port (0: none)"},
    {"presenced_port", KN_CONF_INT, MC_OFF(presenced_port), 0, NULL, 0, 65535,
     NULL, "kiln-presenced's /metrics port (0: none)"},
    {"mucd_port", KN_CONF_INT, MC_OFF(mucd_port), 0, NULL, 0, 65535, NULL,
     "kiln-mucd's /metrics port (0: none)"},
    {NULL, KN_CONF_END, 0, 0, NULL, 0, 0, NULL, NULL},
};

static double metrics_one(void *arg)
{
    (void)arg;
    return 1;
}

int kn_metrics_serve(struct ev_loop *loop, const kn_conf_t *cf,
                     const char *proc)
{
    kn_metric_fn(KN_METRIC_GAUGE, "kiln_up", "1 while the process runs", "",
                 metrics_one, NULL);
    g_start_time = kn_metric_gauge("kiln_start_time_seconds",
                                   "Unix time the process started", "");
    kn_metric_set(g_start_time, (double)time(NULL));
    kn_metrics_watch_loop(loop);
    metrics_conf_t mc;
    char err[256];
    memset(&mc, 0, sizeof(mc));
    if (kn_conf_apply(cf, "metrics", metrics_defs, &mc, err, sizeof(err)) < 0) {
        kn_log_err("metrics: %s", err);
        kn_conf_free_fields(metrics_defs, &mc);
        return -KN_EINVAL;
    }
    free(g_allow);
    g_allow = kn_strdup(mc.allow != NULL ? mc.allow : "");
    long long port = strcmp(proc, "router") == 0      ? mc.router_port
                     : strcmp(proc, "presenced") == 0 ? mc.presenced_port
                     : strcmp(proc, "mucd") == 0      ? mc.mucd_port
                                                      : 0;
    int rc = 0;
    if (port == 0)
        goto out;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    char ps[16];
    snprintf(ps, sizeof(ps), "%lld", port);
    if (getaddrinfo(mc.bind, ps, &hints, &ai) != 0 || ai == NULL) {
        kn_log_err("metrics: bad bind address %s", mc.bind);
        rc = -KN_EINVAL;
        goto out;
    }
    int fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        kn_log_err("metrics: cannot listen on %s:%lld: %s", mc.bind, port,
                   strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        rc = -KN_EIO;
        goto out;
    }
    freeaddrinfo(ai);
    g_listen_fd = fd;
    ev_io_init(&g_listen, metrics_on_accept, fd, EV_READ);
    ev_io_start(loop, &g_listen);
    ev_unref(loop); /* the metrics port alone keeps no loop running */
    kn_log_info("metrics: http://%s:%lld/metrics", mc.bind, port);
out:
    kn_conf_free_fields(metrics_defs, &mc);
    return rc;
}

void kn_metrics_serve_stop(struct ev_loop *loop)
{
    kn_metrics_unwatch_loop(loop);
    if (g_listen_fd < 0)
        return;
    ev_ref(loop);
    ev_io_stop(loop, &g_listen);
    close(g_listen_fd);
    g_listen_fd = -1;
}
