/*
 * muc_listen.c - LISTEN kiln_muc on its own libpq connection (see
 * muc_listen.h). States: connecting (PQconnectPoll driven by the socket),
 * listening (LISTEN sent, notifications read with PQconsumeInput and
 * PQnotifies), waiting (backoff timer after a failure).
 */
#include "muc_listen.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <string.h>

#include "kn_log.h"
#include "kn_mem.h"

struct muc_listen {
    struct ev_loop *loop;
    char *conninfo;
    muc_listen_cb cb;
    void *arg;
    PGconn *pg;
    bool connecting;
    bool listening;
    unsigned backoff_ms;
    ev_io io;
    ev_timer retry;
};

static void listen_start(muc_listen_t *l);

static void listen_fail(muc_listen_t *l, const char *why)
{
    kn_log_warn("mucd listen: %s", why);
    ev_io_stop(l->loop, &l->io);
    if (l->pg) {
        PQfinish(l->pg);
        l->pg = NULL;
    }
    l->connecting = l->listening = false;
    l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : 200;
    if (l->backoff_ms > 5000)
        l->backoff_ms = 5000;
    ev_timer_set(&l->retry, l->backoff_ms / 1000.0, 0.);
    ev_timer_start(l->loop, &l->retry);
}

static void listen_watch(muc_listen_t *l, int events)
{
    ev_io_stop(l->loop, &l->io);
    ev_io_set(&l->io, PQsocket(l->pg), events);
    ev_io_start(l->loop, &l->io);
}

static void listen_drain(muc_listen_t *l)
{
    if (!PQconsumeInput(l->pg)) {
        listen_fail(l, PQerrorMessage(l->pg));
        return;
    }
    PGresult *res;
    while (!PQisBusy(l->pg) && (res = PQgetResult(l->pg)) != NULL)
        PQclear(res);
    PGnotify *n;
    while ((n = PQnotifies(l->pg)) != NULL) {
        l->cb(n->extra, l->arg);
        PQfreemem(n);
    }
}

static void listen_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    muc_listen_t *l = w->data;
    (void)loop;
    (void)revents;
    if (l->connecting) {
        switch (PQconnectPoll(l->pg)) {
        case PGRES_POLLING_READING:
            listen_watch(l, EV_READ);
            return;
        case PGRES_POLLING_WRITING:
            listen_watch(l, EV_WRITE);
            return;
        case PGRES_POLLING_FAILED:
            listen_fail(l, PQerrorMessage(l->pg));
            return;
        default:
            break;
        }
        l->connecting = false;
        PQsetnonblocking(l->pg, 1);
        if (!PQsendQuery(l->pg, "LISTEN kiln_muc")) {
            listen_fail(l, PQerrorMessage(l->pg));
            return;
        }
        PQflush(l->pg);
        l->listening = true;
        l->backoff_ms = 0;
        listen_watch(l, EV_READ);
        kn_log_info("mucd listening for room invalidations");
        l->cb(NULL, l->arg);
        return;
    }
    listen_drain(l);
}

static void listen_on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    listen_start(t->data);
}

static void listen_start(muc_listen_t *l)
{
    l->pg = PQconnectStart(l->conninfo);
    if (l->pg == NULL || PQstatus(l->pg) == CONNECTION_BAD) {
        listen_fail(l, l->pg ? PQerrorMessage(l->pg) : "out of memory");
        return;
    }
    l->connecting = true;
    listen_watch(l, EV_WRITE);
}

muc_listen_t *muc_listen_new(struct ev_loop *loop, const char *conninfo,
                             muc_listen_cb cb, void *arg)
{
    muc_listen_t *l = kn_calloc(1, sizeof(*l));
    l->loop = loop;
    l->conninfo = kn_strdup(conninfo);
    l->cb = cb;
    l->arg = arg;
    ev_init(&l->io, listen_on_io);
    l->io.data = l;
    ev_timer_init(&l->retry, listen_on_retry, 0., 0.);
    l->retry.data = l;
    listen_start(l);
    return l;
}

void muc_listen_free(muc_listen_t **lp)
{
    muc_listen_t *l = *lp;
    if (l == NULL)
        return;
    ev_io_stop(l->loop, &l->io);
    ev_timer_stop(l->loop, &l->retry);
    if (l->pg)
        PQfinish(l->pg);
    free(l->conninfo);
    free(l);
    *lp = NULL;
}
