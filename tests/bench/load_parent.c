/*
 * load_parent.c - fork the workers, order phases, merge their reports
 * (load.h).
 *
 * Each worker has two pipes: commands (parent writes a load_cmd_t, small
 * enough to be atomic) and reports (worker writes load_report_t: the
 * counters, and the histogram only in a DONE report). The parent blocks
 * in poll() on the report pipes with a one-second timeout and prints the
 * merged progress line on stderr each second. A worker that exits early
 * shows as end-of-file on its report pipe and fails the phase; a phase
 * whose counters stop moving for longer than the login timeout plus a
 * margin (the workers enforce per-connection timeouts themselves, so this
 * means a bug) fails too, and every phase is bounded.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kn_mem.h"
#include "load.h"

struct load_parent {
    const load_opts_t *o;
    size_t n;
    pid_t pids[LOAD_MAX_PROCS];
    int cmd_fd[LOAD_MAX_PROCS];
    int rep_fd[LOAD_MAX_PROCS];
    load_counts_t last[LOAD_MAX_PROCS];
    bool done[LOAD_MAX_PROCS];
    load_report_t *rep; /* scratch for one report */
    uint64_t t0;
};

static const char *const parent_phase_names[] = {
    "?", "login", "hold", "step", "drain", "presence", "logout", "join", "quit",
};

size_t load_parent_nworkers(const load_parent_t *p)
{
    return p->n;
}

load_parent_t *load_parent_start(const load_opts_t *opts,
                                 const load_plan_t *plan)
{
    load_parent_t *p = kn_calloc(1, sizeof(*p));
    p->o = opts;
    p->rep = kn_calloc(1, sizeof(*p->rep));
    p->t0 = load_now_ns();
    size_t unit = plan->unit ? plan->unit : 1;
    size_t nunits = (opts->users + unit - 1) / unit;
    p->n = opts->procs;
    if (p->n > nunits)
        p->n = nunits ? nunits : 1;
    if (p->n > LOAD_MAX_PROCS)
        p->n = LOAD_MAX_PROCS;
    fflush(stdout);
    fflush(stderr);
    for (size_t w = 0; w < p->n; w++) {
        size_t ub = w * nunits / p->n, ue = (w + 1) * nunits / p->n;
        size_t beg = ub * unit, end = ue * unit;
        if (end > opts->users)
            end = opts->users;
        int cp[2], rp[2];
        if (pipe(cp) < 0 || pipe(rp) < 0) {
            fprintf(stderr, "kiln-load: pipe: %s\n", strerror(errno));
            exit(1);
        }
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "kiln-load: fork: %s\n", strerror(errno));
            exit(1);
        }
        if (pid == 0) {
            /* Keep only this worker's ends: an inherited write end of
             * another worker's pipe would hide its end-of-file. */
            for (size_t j = 0; j < w; j++) {
                close(p->cmd_fd[j]);
                close(p->rep_fd[j]);
            }
            close(cp[1]);
            close(rp[0]);
            int rc = load_worker_main(opts, plan, w, opts->first + beg,
                                      end - beg, cp[0], rp[1]);
            fflush(stdout);
            fflush(stderr);
            _exit(rc);
        }
        close(cp[0]);
        close(rp[1]);
        p->pids[w] = pid;
        p->cmd_fd[w] = cp[1];
        p->rep_fd[w] = rp[0];
    }
    signal(SIGPIPE, SIG_IGN);
    return p;
}

static int parent_read_full(int fd, void *buf, size_t len)
{
    char *b = buf;
    while (len > 0) {
        ssize_t n = read(fd, b, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

static uint64_t parent_motion(const load_counts_t *c)
{
    return c->logins + c->login_errors + c->errors + c->joined + c->logouts +
           c->sent + c->recv + c->presence;
}

static void parent_progress(load_parent_t *p, const load_cmd_t *cmd,
                            const load_counts_t *prev, load_counts_t *now,
                            double dt)
{
    memset(now, 0, sizeof(*now));
    for (size_t w = 0; w < p->n; w++)
        load_counts_add(now, &p->last[w]);
    double el = (double)(load_now_ns() - p->t0) / 1e9;
    const char *ph =
        cmd->phase < sizeof(parent_phase_names) / sizeof(parent_phase_names[0])
            ? parent_phase_names[cmd->phase]
            : "?";
    double r = dt > 0 ? 1.0 / dt : 0;
    fprintf(stderr,
            "kiln-load %7.1fs %-8s online=%-7llu logins=%llu (%.0f/s) "
            "sent=%llu (%.0f/s) recv=%llu (%.0f/s) presence=%llu "
            "errors=%llu\n",
            el, ph, (unsigned long long)now->online,
            (unsigned long long)now->logins,
            (double)(now->logins - prev->logins) * r,
            (unsigned long long)now->sent, (double)(now->sent - prev->sent) * r,
            (unsigned long long)now->recv, (double)(now->recv - prev->recv) * r,
            (unsigned long long)now->presence,
            (unsigned long long)(now->errors + now->login_errors));
}

int load_parent_phase(load_parent_t *p, const load_cmd_t *cmd,
                      const uint64_t *expected, load_counts_t *sum,
                      load_hist_t *hist, load_counts_t *per_worker)
{
    const load_opts_t *o = p->o;
    for (size_t w = 0; w < p->n; w++) {
        load_cmd_t c = *cmd;
        if (expected != NULL)
            c.expected = expected[w];
        p->done[w] = false;
        memset(&p->last[w], 0, sizeof(p->last[w]));
        if (write(p->cmd_fd[w], &c, sizeof(c)) != (ssize_t)sizeof(c)) {
            fprintf(stderr, "kiln-load: worker %zu is gone\n", w);
            return -1;
        }
    }
    if (sum != NULL)
        memset(sum, 0, sizeof(*sum));
    if (hist != NULL)
        load_hist_reset(hist);
    bool timed = cmd->phase == LOAD_PH_HOLD || cmd->phase == LOAD_PH_STEP ||
                 cmd->phase == LOAD_PH_DRAIN || cmd->phase == LOAD_PH_PRESWAIT;
    uint64_t t_start = load_now_ns();
    uint64_t deadline =
        timed ? t_start + (uint64_t)((cmd->arg + cmd->arg2 + 30) * 1e9) : 0;
    uint64_t stall_limit = (uint64_t)((o->login_timeout + 15) * 1e9);
    uint64_t last_motion = 0, t_motion = t_start, t_print = t_start;
    load_counts_t prev = {0}, now;
    size_t remaining = p->n;
    while (remaining > 0) {
        struct pollfd pf[LOAD_MAX_PROCS];
        size_t map[LOAD_MAX_PROCS], np = 0;
        for (size_t w = 0; w < p->n; w++) {
            if (p->done[w])
                continue;
            pf[np].fd = p->rep_fd[w];
            pf[np].events = POLLIN;
            pf[np].revents = 0;
            map[np++] = w;
        }
        int r = poll(pf, np, 250);
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "kiln-load: poll: %s\n", strerror(errno));
            return -1;
        }
        for (size_t i = 0; r > 0 && i < np; i++) {
            if (pf[i].revents == 0)
                continue;
            size_t w = map[i];
            load_report_t *rep = p->rep;
            if (parent_read_full(p->rep_fd[w], rep,
                                 offsetof(load_report_t, hist)) < 0) {
                fprintf(stderr, "kiln-load: worker %zu exited during %s\n", w,
                        parent_phase_names[cmd->phase]);
                return -1;
            }
            if (rep->kind == LOAD_REP_DONE &&
                parent_read_full(p->rep_fd[w], &rep->hist, sizeof(rep->hist)) <
                    0) {
                fprintf(stderr, "kiln-load: worker %zu: short report\n", w);
                return -1;
            }
            p->last[w] = rep->c;
            if (rep->kind == LOAD_REP_DONE) {
                p->done[w] = true;
                remaining--;
                if (sum != NULL)
                    load_counts_add(sum, &rep->c);
                if (hist != NULL)
                    load_hist_merge(hist, &rep->hist);
                if (per_worker != NULL)
                    per_worker[w] = rep->c;
            }
        }
        uint64_t t = load_now_ns();
        if (t - t_print >= 1000000000ull) {
            parent_progress(p, cmd, &prev, &now, (double)(t - t_print) / 1e9);
            prev = now;
            t_print = t;
            uint64_t m = parent_motion(&now);
            if (m != last_motion) {
                last_motion = m;
                t_motion = t;
            }
        }
        if (deadline != 0 && t > deadline) {
            fprintf(stderr, "kiln-load: %s phase overran its deadline\n",
                    parent_phase_names[cmd->phase]);
            return -1;
        }
        if (!timed && t - t_motion > stall_limit) {
            fprintf(stderr,
                    "kiln-load: %s phase stalled (no progress for "
                    "%.0f s)\n",
                    parent_phase_names[cmd->phase], (double)stall_limit / 1e9);
            return -1;
        }
    }
    return 0;
}

int load_parent_finish(load_parent_t **pp)
{
    load_parent_t *p = *pp;
    if (p == NULL)
        return 0;
    load_cmd_t quit = {.phase = LOAD_PH_QUIT};
    int rc = 0;
    for (size_t w = 0; w < p->n; w++) {
        if (write(p->cmd_fd[w], &quit, sizeof(quit)) < 0) {
            /* already gone: waitpid tells */
        }
        close(p->cmd_fd[w]);
        close(p->rep_fd[w]);
    }
    for (size_t w = 0; w < p->n; w++) {
        int st = 0;
        if (waitpid(p->pids[w], &st, 0) < 0 || !WIFEXITED(st) ||
            WEXITSTATUS(st) != 0) {
            fprintf(stderr, "kiln-load: worker %zu ended abnormally\n", w);
            rc = 1;
        }
    }
    free(p->rep);
    free(p);
    *pp = NULL;
    return rc;
}
