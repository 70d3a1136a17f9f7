/*
 * load_worker.c - one worker process: its share of the users, one libev
 * loop, and the phases the parent orders (load.h).
 *
 * The worker owns users [first, first + count) as a table of connection
 * objects indexed from 0; users are dealt to workers in whole blocks (a
 * pair, a roster clique), so a pair's partner or a contact in the same
 * clique is found by arithmetic on user numbers.
 *
 * A phase starts when a load_cmd_t arrives on the command pipe and ends
 * when worker_done() writes a DONE report; in between, a one-second tick
 * writes PROGRESS reports and enforces per-connection timeouts (a login,
 * a join or a logout that takes longer than --login-timeout fails), and
 * the phase's own timer bounds HOLD, STEP, DRAIN and PRESWAIT. Counters
 * are reset by the phases that start a measurement (LOGIN, HOLD, STEP,
 * LOGOUT, JOIN) and carried on by the ones that finish it (DRAIN,
 * PRESWAIT), so a step's received count includes its drain.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "kn_err.h"
#include "kn_mem.h"
#include "load.h"
#include "load_conn.h"
#include "load_scache.h"

#define WORKER_TICK_S      0.2
#define WORKER_SEND_TICK_S 0.001

typedef struct worker {
    const load_opts_t *o;
    const load_plan_t *plan;
    size_t widx;
    size_t first; /* absolute number of local user 0 */
    size_t count;
    struct ev_loop *loop;
    load_client_t cl;
    load_conn_t *conns;
    int cmd_fd;
    int rep_fd;
    ev_io cmd_w;
    ev_timer tick;
    ev_timer phase_timer;
    ev_timer send_timer;
    load_cmd_t cmd;
    bool active; /* a phase is running */
    load_counts_t c;
    load_hist_t hist;
    uint64_t last_progress;
    /* LOGIN, JOIN */
    size_t cursor;
    size_t inflight;
    /* STEP */
    uint32_t step; /* tag of messages being counted */
    bool sending;
    uint64_t step_t0;
    double rate;    /* local msgs/s */
    size_t rr;      /* round-robin sender cursor */
    size_t closing; /* LOGOUT: sessions still closing */
    /* presence */
    size_t clique;
    size_t complete; /* online users that see all their contacts */
    /* muc */
    size_t room_len;
    size_t fmt_pre_len; /* user_fmt split around %d */
    const char *fmt_suffix;
    int exit_code;
} worker_t;

static worker_t *worker_of(load_conn_t *c)
{
    return c->cl->owner;
}

static void worker_report(worker_t *w, uint32_t kind)
{
    load_report_t *r = kn_calloc(1, sizeof(*r));
    r->kind = kind;
    r->phase = w->cmd.phase;
    r->c = w->c;
    r->c.users = w->count;
    r->c.in_room = 0;
    if (w->plan->muc)
        for (size_t i = 0; i < w->count; i++)
            r->c.in_room += w->conns[i].joined;
    size_t len = sizeof(*r);
    if (kind == LOAD_REP_DONE)
        r->hist = w->hist;
    else
        len = offsetof(load_report_t, hist);
    const char *p = (const char *)r;
    while (len > 0) {
        ssize_t n = write(w->rep_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* The parent is gone: nobody to report to. */
            ev_break(w->loop, EVBREAK_ALL);
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    free(r);
}

static void worker_error(worker_t *w, const load_conn_t *c, const char *why)
{
    if (w->c.first_error[0] == '\0') {
        char user[128];
        load_fmt_user(user, sizeof(user), w->o->user_fmt, c->user);
        snprintf(w->c.first_error, sizeof(w->c.first_error), "%s: %s", user,
                 why);
    }
    if (w->o->verbose > 0)
        fprintf(stderr, "kiln-load[%zu]: user %zu: %s\n", w->widx, c->user,
                why);
}

static void worker_done(worker_t *w)
{
    if (!w->active)
        return;
    w->active = false;
    w->sending = false;
    ev_timer_stop(w->loop, &w->phase_timer);
    ev_timer_stop(w->loop, &w->send_timer);
    w->c.t_end = load_now_ns();
    if (w->plan->presence)
        w->c.incomplete = w->c.online - w->complete;
    worker_report(w, LOAD_REP_DONE);
}

/* ---- presence tracking ------------------------------------------------ */

static size_t worker_contacts_of(const worker_t *w, size_t user)
{
    size_t base = w->o->first + (user - w->o->first) / w->clique * w->clique;
    size_t end = w->o->first + w->o->users;
    size_t size = end - base < w->clique ? end - base : w->clique;
    return size - 1;
}

/* Absolute user number in a JID "PREFIX<n>SUFFIX@domain/..."; -1 if the
 * JID is not one of ours. */
static long worker_user_of_jid(const worker_t *w, const char *jid, size_t len)
{
    const char *fmt = w->o->user_fmt;
    size_t pre = w->fmt_pre_len;
    if (len <= pre || memcmp(jid, fmt, pre) != 0)
        return -1;
    size_t i = pre;
    long n = 0;
    if (i >= len || jid[i] < '0' || jid[i] > '9')
        return -1;
    while (i < len && jid[i] >= '0' && jid[i] <= '9')
        n = n * 10 + (jid[i++] - '0');
    size_t sl = strlen(w->fmt_suffix);
    if (len - i < sl || memcmp(jid + i, w->fmt_suffix, sl) != 0)
        return -1;
    i += sl;
    if (i < len && jid[i] != '@')
        return -1;
    return n;
}

static void worker_seen_reset(worker_t *w, load_conn_t *c)
{
    if (!w->plan->presence)
        return;
    if (c->seen == NULL)
        c->seen = kn_calloc((w->clique + 7) / 8, 1);
    else
        memset(c->seen, 0, (w->clique + 7) / 8);
    c->nseen = 0;
}

static void worker_presence_track(worker_t *w, load_conn_t *c, long from,
                                  bool available)
{
    size_t need = worker_contacts_of(w, c->user);
    size_t base = w->o->first + (c->user - w->o->first) / w->clique * w->clique;
    if (from < (long)base || from >= (long)(base + w->clique) ||
        (size_t)from == c->user || c->seen == NULL)
        return;
    size_t j = (size_t)from - base;
    bool was = (c->seen[j / 8] >> (j % 8)) & 1;
    bool complete_before = c->nseen == need;
    if (available == was)
        w->c.pres_repeat++; /* nothing new for a one-resource contact */
    if (available && !was) {
        c->seen[j / 8] |= (uint8_t)(1u << (j % 8));
        c->nseen++;
    } else if (!available && was) {
        c->seen[j / 8] &= (uint8_t) ~(1u << (j % 8));
        c->nseen--;
    }
    bool complete_after = c->nseen == need;
    if (complete_after && !complete_before)
        w->complete++;
    else if (complete_before && !complete_after)
        w->complete--;
}

/* ---- phases ----------------------------------------------------------- */

static void worker_check_done(worker_t *w)
{
    if (!w->active)
        return;
    switch (w->cmd.phase) {
    case LOAD_PH_LOGIN:
    case LOAD_PH_JOIN:
        if (w->cursor >= w->count && w->inflight == 0)
            worker_done(w);
        break;
    case LOAD_PH_DRAIN:
        if (w->c.recv >= w->cmd.expected)
            worker_done(w);
        break;
    case LOAD_PH_PRESWAIT:
        if (w->complete >= w->c.online)
            worker_done(w);
        break;
    case LOAD_PH_LOGOUT:
        if (w->closing == 0)
            worker_done(w);
        break;
    default:
        break;
    }
}

static void worker_login_more(worker_t *w)
{
    while (w->active && w->cmd.phase == LOAD_PH_LOGIN &&
           w->inflight < w->o->concurrency && w->cursor < w->count) {
        load_conn_t *c = &w->conns[w->cursor++];
        if (c->state != LOAD_CONN_IDLE)
            continue;
        if (w->c.t_first_login_start == 0)
            w->c.t_first_login_start = load_now_ns();
        w->inflight++;
        worker_seen_reset(w, c);
        load_conn_login(c);
    }
}

static void worker_join_one(worker_t *w, load_conn_t *c)
{
    char nick[128], buf[512];
    load_fmt_user(nick, sizeof(nick), w->o->user_fmt, c->user);
    int n = snprintf(buf, sizeof(buf),
                     "<presence to='%s/%s'><x "
                     "xmlns='http://jabber.org/protocol/muc'><history "
                     "maxstanzas='0'/></x></presence>",
                     w->o->room, nick);
    c->t_start = load_now_ns();
    c->join_pending = true;
    load_conn_send(c, buf, (size_t)n);
}

static void worker_join_more(worker_t *w)
{
    /* expected: 0 none, 1 only the first user, 2 everyone */
    size_t limit = w->cmd.expected == 0   ? 0
                   : w->cmd.expected == 1 ? 1
                                          : w->count;
    if (limit > w->count)
        limit = w->count;
    while (w->active && w->cmd.phase == LOAD_PH_JOIN &&
           w->inflight < w->o->concurrency && w->cursor < limit) {
        load_conn_t *c = &w->conns[w->cursor++];
        if (c->state != LOAD_CONN_ONLINE || c->joined)
            continue;
        w->inflight++;
        worker_join_one(w, c);
    }
    if (w->cursor >= limit)
        w->cursor = w->count;
}

static void worker_send_one(worker_t *w, load_conn_t *c, const char *to,
                            const char *type)
{
    char buf[4096];
    uint64_t now = load_now_ns();
    size_t pad = w->o->body_size;
    if (pad > 2048)
        pad = 2048;
    int n =
        snprintf(buf, sizeof(buf),
                 "<message to='%s' type='%s'><body>kl %" PRIu32 " %" PRIu64 " ",
                 to, type, w->step, now);
    if (n < 0 || (size_t)n + pad + 32 > sizeof(buf))
        return;
    memset(buf + n, 'x', pad);
    n += (int)pad;
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "</body></message>");
    load_conn_send(c, buf, (size_t)n);
    w->c.sent++;
}

/* Status wave: c broadcasts a presence that toggles between away and
 * available, tagged "kl STEP T_NS" in its status; each of its contacts
 * online now owes one delivery (the clique is in this worker: users are
 * dealt in whole cliques). */
static void worker_send_status(worker_t *w, load_conn_t *c)
{
    char buf[256];
    c->away = !c->away;
    int n = snprintf(
        buf, sizeof(buf),
        "<presence>%s<status>kl %" PRIu32 " %" PRIu64 "</status></presence>",
        c->away ? "<show>away</show>" : "", w->step, load_now_ns());
    if (n < 0 || (size_t)n >= sizeof(buf))
        return;
    load_conn_send(c, buf, (size_t)n);
    w->c.sent++;
    size_t base = w->o->first + (c->user - w->o->first) / w->clique * w->clique;
    size_t end = base + w->clique;
    if (end > w->first + w->count)
        end = w->first + w->count;
    for (size_t u = base; u < end; u++)
        if (u != c->user && w->conns[u - w->first].state == LOAD_CONN_ONLINE)
            w->c.due++;
}

/* Send one message from the next eligible sender; false when none. */
static bool worker_send_next(worker_t *w)
{
    for (size_t tries = 0; tries < w->count; tries++) {
        load_conn_t *c = &w->conns[w->rr];
        w->rr = (w->rr + 1) % w->count;
        if (c->state != LOAD_CONN_ONLINE)
            continue;
        if (w->plan->traffic == LOAD_TRAFFIC_PAIRS) {
            size_t pi = c->idx ^ 1u;
            if (pi >= w->count)
                continue;
            load_conn_t *p = &w->conns[pi];
            if (p->state != LOAD_CONN_ONLINE || p->jid == NULL)
                continue;
            worker_send_one(w, c, p->jid, "chat");
            return true;
        }
        if (w->plan->traffic == LOAD_TRAFFIC_STATUS) {
            worker_send_status(w, c);
            return true;
        }
        if (w->plan->traffic == LOAD_TRAFFIC_MUC) {
            if (!c->joined)
                continue;
            worker_send_one(w, c, w->o->room, "groupchat");
            return true;
        }
    }
    return false;
}

static void worker_send_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(revents);
    worker_t *w = t->data;
    if (!w->sending)
        return;
    double el = (double)(load_now_ns() - w->step_t0) / 1e9;
    uint64_t due = (uint64_t)(w->rate * el);
    /* At most 20 ms worth per tick: if the tool itself is late, the
     * deficit shows as "behind" instead of a burst. */
    uint64_t cap = (uint64_t)(w->rate * 0.02) + 1;
    uint64_t n = 0;
    while (w->c.sent < due && n < cap) {
        if (!worker_send_next(w))
            break;
        n++;
    }
}

static void worker_phase_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(revents);
    worker_t *w = t->data;
    if (w->active && w->cmd.phase == LOAD_PH_STEP) {
        double el = (double)(load_now_ns() - w->step_t0) / 1e9;
        uint64_t due = (uint64_t)(w->rate * el);
        w->c.behind = due > w->c.sent ? due - w->c.sent : 0;
        if (w->c.behind <= (uint64_t)(w->rate * 0.01) + 1)
            w->c.behind = 0; /* timer granularity, not lateness */
    }
    worker_done(w);
}

static void worker_start_phase(worker_t *w, const load_cmd_t *cmd)
{
    uint64_t online = w->c.online;
    w->cmd = *cmd;
    w->active = true;
    if (cmd->phase != LOAD_PH_STEP && cmd->phase != LOAD_PH_DRAIN)
        w->step = 0;
    switch (cmd->phase) {
    case LOAD_PH_LOGIN:
    case LOAD_PH_HOLD:
    case LOAD_PH_STEP:
    case LOAD_PH_LOGOUT:
    case LOAD_PH_JOIN:
        memset(&w->c, 0, sizeof(w->c));
        w->c.online = online;
        w->c.t_begin = load_now_ns();
        break;
    default:
        break;
    }
    switch (cmd->phase) {
    case LOAD_PH_LOGIN:
        w->cursor = 0;
        w->inflight = 0;
        worker_login_more(w);
        break;
    case LOAD_PH_HOLD:
        ev_timer_set(&w->phase_timer, cmd->arg, 0);
        ev_timer_start(w->loop, &w->phase_timer);
        break;
    case LOAD_PH_STEP:
        load_hist_reset(&w->hist);
        w->step = cmd->step;
        /* arg is the total offered rate: each worker takes its share */
        w->rate = cmd->arg * (double)w->count / (double)w->o->users;
        w->step_t0 = load_now_ns();
        w->sending = w->rate > 0;
        ev_timer_set(&w->phase_timer, cmd->arg2, 0);
        ev_timer_start(w->loop, &w->phase_timer);
        if (w->sending)
            ev_timer_again(w->loop, &w->send_timer);
        break;
    case LOAD_PH_DRAIN:
    case LOAD_PH_PRESWAIT:
        ev_timer_set(&w->phase_timer, cmd->arg, 0);
        ev_timer_start(w->loop, &w->phase_timer);
        break;
    case LOAD_PH_LOGOUT:
        /* expected: 0 everyone; 1 the first half of each clique; 2 the
         * rest (so the half still online sees the first half leave) */
        w->closing = 0;
        for (size_t i = 0; i < w->count; i++) {
            load_conn_t *c = &w->conns[i];
            size_t pos = (c->user - w->o->first) % w->clique;
            bool first_half = pos < (w->clique + 1) / 2;
            if (c->state == LOAD_CONN_IDLE ||
                (cmd->expected == 1 && !first_half) ||
                (cmd->expected == 2 && first_half))
                continue;
            load_conn_logout(c);
            w->closing++;
        }
        break;
    case LOAD_PH_JOIN:
        w->cursor = 0;
        w->inflight = 0;
        worker_join_more(w);
        break;
    case LOAD_PH_QUIT:
        w->active = false;
        ev_break(w->loop, EVBREAK_ALL);
        return;
    default:
        fprintf(stderr, "kiln-load[%zu]: unknown phase %u\n", w->widx,
                cmd->phase);
        w->exit_code = 1;
        ev_break(w->loop, EVBREAK_ALL);
        return;
    }
    worker_check_done(w);
}

static void worker_cmd_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    KN_UNUSED(revents);
    worker_t *w = io->data;
    load_cmd_t cmd;
    ssize_t n = read(w->cmd_fd, &cmd, sizeof(cmd));
    if (n < 0 && errno == EINTR)
        return;
    if (n != (ssize_t)sizeof(cmd)) {
        /* The parent went away. */
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    worker_start_phase(w, &cmd);
}

/* ---- connection callbacks --------------------------------------------- */

static void worker_on_online(load_conn_t *c)
{
    worker_t *w = worker_of(c);
    w->c.online++;
    w->c.logins++;
    w->c.t_last_login = load_now_ns();
    if (w->active && w->cmd.phase == LOAD_PH_LOGIN && w->inflight > 0)
        w->inflight--;
    worker_login_more(w);
    worker_check_done(w);
}

static void worker_on_closed(load_conn_t *c, int err, const char *why)
{
    worker_t *w = worker_of(c);
    bool logging_out = w->active && w->cmd.phase == LOAD_PH_LOGOUT;
    c->joined = false;
    if (c->join_pending) {
        c->join_pending = false;
        if (w->active && w->cmd.phase == LOAD_PH_JOIN && w->inflight > 0)
            w->inflight--;
    }
    if (c->counted_online) {
        c->counted_online = false;
        w->c.online--;
        if (w->plan->presence && c->nseen == worker_contacts_of(w, c->user))
            w->complete--;
        if (c->seen != NULL)
            memset(c->seen, 0, (w->clique + 7) / 8);
        c->nseen = 0;
        if (logging_out && w->closing > 0) {
            w->closing--;
            if (err == 0)
                w->c.logouts++;
        }
        if (err != 0) {
            w->c.errors++;
            worker_error(w, c, why);
        }
    } else {
        /* it failed while logging in (or closed before online) */
        if (logging_out && w->closing > 0)
            w->closing--;
        if (err != 0) {
            w->c.login_errors++;
            worker_error(w, c, why);
        }
        if (w->active && w->cmd.phase == LOAD_PH_LOGIN && w->inflight > 0)
            w->inflight--;
    }
    worker_login_more(w);
    worker_check_done(w);
}

static void worker_on_conn_online(load_conn_t *c)
{
    worker_t *w = worker_of(c);
    c->counted_online = true;
    if (w->plan->presence && worker_contacts_of(w, c->user) == 0)
        w->complete++;
    worker_on_online(c);
}

/* A tagged arrival "kl STEP T_NS" (a message body, or a status wave's
 * status text): counted against its step with its latency, or as late.
 * w->step stays set from the STEP order until another phase than DRAIN
 * starts, so arrivals while the parent turns a STEP into a DRAIN still
 * count for their step. */
static void worker_count_tagged(worker_t *w, const char *text, size_t len)
{
    char tag[64];
    size_t n = len < sizeof(tag) - 1 ? len : sizeof(tag) - 1;
    memcpy(tag, text, n);
    tag[n] = '\0';
    char *end;
    unsigned long step = strtoul(tag + 3, &end, 10);
    uint64_t t = strtoull(end, NULL, 10);
    uint64_t now = load_now_ns();
    if (step == w->step && w->step != 0) {
        w->c.recv++;
        if (w->active && w->cmd.phase == LOAD_PH_STEP)
            w->c.recv_window++;
        load_hist_record(&w->hist, now > t ? now - t : 0);
        if (w->active && w->cmd.phase == LOAD_PH_DRAIN)
            worker_check_done(w);
    } else {
        w->c.late++;
    }
}
static void worker_on_message(worker_t *w, const char *el, size_t len)
{
    size_t tl;
    const char *type = load_xml_attr(el, len, "type", &tl);
    if (type != NULL && tl == 5 && memcmp(type, "error", 5) == 0) {
        w->c.errors++;
        if (w->c.first_error[0] == '\0')
            snprintf(w->c.first_error, sizeof(w->c.first_error),
                     "message bounced: %.150s", el);
        return;
    }
    size_t bl;
    const char *body = load_xml_child_text(el, len, "body", &bl);
    if (body == NULL || bl < 5 || memcmp(body, "kl ", 3) != 0)
        return;
    if (load_xml_has(el, len, "<delay"))
        return; /* room history or offline storage, not live traffic */
    worker_count_tagged(w, body, bl);
}

static void worker_on_presence(worker_t *w, load_conn_t *c, const char *el,
                               size_t len)
{
    size_t fl, tl;
    const char *from = load_xml_attr(el, len, "from", &fl);
    const char *type = load_xml_attr(el, len, "type", &tl);
    if (from == NULL)
        return;
    if (w->plan->muc && fl > w->room_len &&
        memcmp(from, w->o->room, w->room_len) == 0 &&
        from[w->room_len] == '/') {
        char nick[128];
        load_fmt_user(nick, sizeof(nick), w->o->user_fmt, c->user);
        bool own = fl - w->room_len - 1 == strlen(nick) &&
                   memcmp(from + w->room_len + 1, nick, strlen(nick)) == 0;
        if (type != NULL && tl == 5 && memcmp(type, "error", 5) == 0) {
            if (!c->join_pending)
                return;
            c->join_pending = false;
            if (w->active && w->cmd.phase == LOAD_PH_JOIN && w->inflight)
                w->inflight--;
            w->c.login_errors++;
            char why[200];
            snprintf(why, sizeof(why), "room join refused: %.150s", el);
            worker_error(w, c, why);
            worker_join_more(w);
            worker_check_done(w);
            return;
        }
        if (own) {
            if (!c->joined && type == NULL) {
                c->joined = true;
                w->c.joined++;
                if (c->join_pending && w->active &&
                    w->cmd.phase == LOAD_PH_JOIN && w->inflight)
                    w->inflight--;
                c->join_pending = false;
                worker_join_more(w);
                worker_check_done(w);
            }
            return;
        }
        w->c.presence++;
        return;
    }
    if (c->state == LOAD_CONN_CLOSING) {
        /* Sent to us before the server processed our unavailable
         * presence: legitimate, but not what the watchers receive. */
        w->c.pres_leaving++;
        return;
    }
    long u = worker_user_of_jid(w, from, fl);
    size_t sl;
    const char *st = load_xml_child_text(el, len, "status", &sl);
    if (st != NULL && sl >= 5 && memcmp(st, "kl ", 3) == 0) {
        /* A status wave's change (worker_send_status): counted against
         * its step with its latency, never as a login or logout presence;
         * the sender's own copy (RFC 6121 4.4.2) is not a delivery. */
        if (u >= 0 && (size_t)u == c->user)
            return;
        worker_count_tagged(w, st, sl);
        return;
    }
    if (u >= 0 && (size_t)u == c->user) {
        /* Our own presence reflected (RFC 6121 4.2.2, 4.4.2): counted
         * apart, never as a contact's. */
        w->c.pres_self++;
        return;
    }
    w->c.presence++;
    w->c.t_last_presence = load_now_ns();
    if (w->plan->presence && u >= 0) {
        bool avail = type == NULL;
        bool unavail =
            type != NULL && tl == 11 && memcmp(type, "unavailable", 11) == 0;
        if (avail || unavail) {
            worker_presence_track(w, c, u, avail);
            if (w->active && w->cmd.phase == LOAD_PH_PRESWAIT)
                worker_check_done(w);
        }
    }
}

static void worker_on_stanza(load_conn_t *c, const char *el, size_t len)
{
    worker_t *w = worker_of(c);
    if (load_xml_is(el, len, "message"))
        worker_on_message(w, el, len);
    else if (load_xml_is(el, len, "presence"))
        worker_on_presence(w, c, el, len);
}

/* ---- tick: progress and timeouts -------------------------------------- */

static void worker_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    KN_UNUSED(loop);
    KN_UNUSED(revents);
    worker_t *w = t->data;
    uint64_t now = load_now_ns();
    uint64_t limit = (uint64_t)(w->o->login_timeout * 1e9);
    for (size_t i = 0; i < w->count; i++) {
        load_conn_t *c = &w->conns[i];
        if (c->state == LOAD_CONN_IDLE || now - c->t_start < limit)
            continue;
        if (c->state == LOAD_CONN_ONLINE) {
            if (c->join_pending) {
                c->join_pending = false;
                w->c.login_errors++;
                worker_error(w, c, "room join timed out");
                if (w->inflight)
                    w->inflight--;
                worker_join_more(w);
                worker_check_done(w);
            }
            continue;
        }
        char why[80];
        snprintf(why, sizeof(why), "%s timed out (%s)",
                 c->state == LOAD_CONN_CLOSING ? "logout" : "login",
                 load_conn_state_name(c->state));
        load_conn_abort(c, -KN_EIO, why);
    }
    if (now - w->last_progress >= 1000000000ull) {
        w->last_progress = now;
        if (w->active)
            worker_report(w, LOAD_REP_PROGRESS);
    }
}

/* ---- main ------------------------------------------------------------- */

int load_worker_main(const load_opts_t *opts, const load_plan_t *plan,
                     size_t widx, size_t first, size_t count, int cmd_fd,
                     int rep_fd)
{
    static worker_t wk;
    worker_t *w = &wk;
    memset(w, 0, sizeof(*w));
    w->o = opts;
    w->plan = plan;
    w->widx = widx;
    w->first = first;
    w->count = count;
    w->cmd_fd = cmd_fd;
    w->rep_fd = rep_fd;
    w->clique = opts->roster + 1;
    w->room_len = opts->room ? strlen(opts->room) : 0;
    const char *pct = strstr(opts->user_fmt, "%d");
    w->fmt_pre_len = pct ? (size_t)(pct - opts->user_fmt) : 0;
    w->fmt_suffix = pct ? pct + 2 : "";
    signal(SIGPIPE, SIG_IGN);

    w->loop = ev_loop_new(EVFLAG_AUTO);
    if (w->loop == NULL) {
        fprintf(stderr, "kiln-load[%zu]: no event loop\n", widx);
        return 1;
    }
    if (load_client_init(&w->cl, w->loop, opts) < 0)
        return 1;
    w->cl.owner = w;
    w->cl.on_online = worker_on_conn_online;
    w->cl.on_stanza = worker_on_stanza;
    w->cl.on_closed = worker_on_closed;

    w->conns = kn_calloc(count ? count : 1, sizeof(load_conn_t));
    for (size_t i = 0; i < count; i++) {
        load_conn_t *c = &w->conns[i];
        size_t g = first + i - opts->first; /* offset in the whole range */
        c->cl = &w->cl;
        c->idx = i;
        c->user = first + i;
        c->fd = -1;
        c->dst.sin_family = AF_INET;
        c->dst.sin_port = htons((uint16_t)opts->ports[g % opts->nports]);
        inet_pton(AF_INET, opts->host, &c->dst.sin_addr);
        if (opts->nsrc > 0) {
            c->src.sin_family = AF_INET;
            c->src.sin_addr.s_addr = htonl(
                0x7f000001u + (uint32_t)((g / opts->nports) % opts->nsrc));
        }
    }

    if (opts->scram_cache != NULL &&
        load_scache_load(opts->scram_cache, opts, w->conns, count) < 0)
        return 2;

    ev_io_init(&w->cmd_w, worker_cmd_cb, cmd_fd, EV_READ);
    w->cmd_w.data = w;
    ev_io_start(w->loop, &w->cmd_w);
    ev_timer_init(&w->tick, worker_tick_cb, WORKER_TICK_S, WORKER_TICK_S);
    w->tick.data = w;
    ev_timer_start(w->loop, &w->tick);
    ev_timer_init(&w->phase_timer, worker_phase_timeout, 1, 0);
    w->phase_timer.data = w;
    ev_init(&w->send_timer, worker_send_cb);
    w->send_timer.repeat = WORKER_SEND_TICK_S;
    w->send_timer.data = w;
    w->last_progress = load_now_ns();

    ev_run(w->loop, 0);

    if (opts->scram_cache != NULL &&
        load_scache_save(opts->scram_cache, opts, w->conns, count) < 0 &&
        w->exit_code == 0)
        w->exit_code = 2;

    for (size_t i = 0; i < count; i++) {
        load_conn_t *c = &w->conns[i];
        if (c->state != LOAD_CONN_IDLE) {
            c->cl->on_closed = NULL;
            ev_io_stop(w->loop, &c->rio);
            ev_io_stop(w->loop, &c->wio);
            if (c->ssl)
                SSL_free(c->ssl);
            if (c->fd >= 0)
                close(c->fd);
        }
        free(c->seen);
        free(c->jid);
        kn_buf_free(&c->in);
        kn_buf_free(&c->out);
        load_scram_clear(&c->scram);
    }
    free(w->conns);
    load_client_free(&w->cl);
    ev_loop_destroy(w->loop);
    return w->exit_code;
}
