/*
 * load_scen.c - the phases every scenario strings together: log in,
 * send a step and drain it, settle (load_scen.h).
 */
#include "load_scen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_mem.h"

void load_scen_print_error(const char *what, const load_counts_t *c)
{
    fprintf(stderr, "kiln-load: ERROR: %s%s%s\n", what,
            c->first_error[0] ? ": first failure: " : "", c->first_error);
}

double load_scen_login_rate(const load_counts_t *c)
{
    if (c->logins == 0 || c->t_last_login <= c->t_first_login_start)
        return 0;
    return (double)c->logins /
           ((double)(c->t_last_login - c->t_first_login_start) / 1e9);
}

int load_scen_login(load_parent_t *p, const load_opts_t *o, load_counts_t *sum)
{
    load_cmd_t cmd = {.phase = LOAD_PH_LOGIN};
    if (load_parent_phase(p, &cmd, NULL, sum, NULL, NULL) < 0)
        return LOAD_EXIT_FAIL;
    fprintf(stderr,
            "kiln-load: %" PRIu64 "/%zu logged in (%.0f logins/s), %" PRIu64
            " refused or failed\n",
            sum->logins, o->users, load_scen_login_rate(sum),
            sum->login_errors);
    if (sum->login_errors > 0 || sum->logins < o->users) {
        char what[160];
        snprintf(what, sizeof(what),
                 "the server refused or failed %" PRIu64 " of %zu logins",
                 sum->login_errors +
                     (o->users - sum->logins - sum->login_errors),
                 o->users);
        load_scen_print_error(what, sum);
        return LOAD_EXIT_REFUSED;
    }
    return LOAD_EXIT_OK;
}

int load_scen_step(load_parent_t *p, const load_opts_t *o, uint32_t step,
                   double rate, const uint64_t *fanout, load_step_result_t *r)
{
    size_t n = load_parent_nworkers(p);
    load_counts_t per[LOAD_MAX_PROCS], sum;
    uint64_t expected[LOAD_MAX_PROCS];
    load_srv_sample_t s0, s1;

    load_hist_t *hist = r->hist;
    memset(r, 0, sizeof(*r));
    r->hist = hist;
    r->rate = rate;
    load_proc_sample(o, &s0);
    load_cmd_t cmd = {.phase = LOAD_PH_STEP,
                      .step = step,
                      .arg = rate,
                      .arg2 = o->step_seconds};
    if (load_parent_phase(p, &cmd, NULL, &sum, NULL, per) < 0)
        return -1;
    r->expected = 0;
    for (size_t w = 0; w < n; w++) {
        expected[w] = fanout ? sum.sent * fanout[w] : per[w].sent;
        r->expected += expected[w];
    }
    load_cmd_t drain = {
        .phase = LOAD_PH_DRAIN, .step = step, .arg = o->drain_seconds};
    if (load_parent_phase(p, &drain, expected, &r->c, r->hist, NULL) < 0)
        return -1;
    load_proc_sample(o, &s1);
    r->cpu_us = s1.cpu_us - s0.cpu_us;
    load_proc_print_split(o, step, &s0, &s1);
    r->delivered_ps = (double)r->c.recv_window / o->step_seconds;
    r->sent_ps = (double)r->c.sent / o->step_seconds;
    r->lost = r->expected > r->c.recv ? r->expected - r->c.recv : 0;
    return 0;
}

void load_scen_step_header(const char *unit)
{
    printf("%10s %10s %12s %9s %9s %9s %9s %9s %8s %8s %9s\n", "offered",
           "sent/s", unit, "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
           "lost", "late", "cpu us");
}

static double scen_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

void load_scen_step_row(const load_step_result_t *r)
{
    const load_hist_t *h = r->hist;
    double cpu = r->c.recv ? (double)r->cpu_us / (double)r->c.recv : 0;
    printf("%10.0f %10.0f %12.0f %9.2f %9.2f %9.2f %9.2f %9.2f %8" PRIu64
           " %8" PRIu64 " %9.1f%s\n",
           r->rate, r->sent_ps, r->delivered_ps,
           scen_ms(load_hist_percentile(h, 50)),
           scen_ms(load_hist_percentile(h, 90)),
           scen_ms(load_hist_percentile(h, 99)),
           scen_ms(load_hist_percentile(h, 99.9)),
           scen_ms(load_hist_percentile(h, 100)), r->lost, r->c.late, cpu,
           r->c.behind ? "  (tool behind)" : "");
    fflush(stdout);
}

uint64_t load_scen_settle(load_parent_t *p, const load_opts_t *o,
                          uint64_t missing)
{
    load_counts_t sum;
    if (missing == 0)
        return 0;
    fprintf(stderr,
            "kiln-load: %" PRIu64 " messages missing, waiting %.0f s "
            "more for stragglers\n",
            missing, o->drain_seconds);
    load_cmd_t cmd = {.phase = LOAD_PH_HOLD, .arg = o->drain_seconds};
    if (load_parent_phase(p, &cmd, NULL, &sum, NULL, NULL) < 0)
        return 0;
    return sum.late;
}
