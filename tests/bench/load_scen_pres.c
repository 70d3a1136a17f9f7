/*
 * load_scen_pres.c - scenario "presence": users are provisioned in
 * cliques of R+1 mutual contacts (tests/bench/provision --roster R), so
 * each user has R contacts with subscription "both". Each round logs
 * every user in (initial presence: the server broadcasts it to online
 * contacts and answers with theirs), waits until every user has seen
 * every contact available (or --drain seconds), then logs the first half
 * of each clique out (the other half receives their unavailable
 * presence), then the rest. Reported per
 * round: logins per second and presence stanzas delivered per second
 * over the login wave; a user that never saw one of its contacts online
 * counts as incomplete, which is a failure.
 *
 * --status-rate R adds a status wave to each round once every user sees
 * its contacts: for --step-seconds, online users in turn broadcast a
 * presence toggling between away and available (R changes per second in
 * all), each tagged "kl STEP T_NS" in its status, then up to --drain
 * seconds for the rest. Each change owes one delivery to every contact
 * online when it was sent; reported: deliveries expected and received,
 * lost (a failure unless --allow-loss) and the latency histogram
 * (p50/p99/max) from the send to each contact's receipt. Counted against the
 * exact expectation (one presence per contact resource, RFC 6121), with the
 * user's own presence (self), what a leaving session still received
 * (leaving) and repeated states (repeats) apart; those are reported, not
 * failures, since servers differ (tests/bench/README.md).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kn_mem.h"
#include "load_scen.h"

typedef struct pres_wave {
    uint64_t sent, due, recv, late, behind, cpu_us;
    load_hist_t *hist; /* every round's deliveries */
} pres_wave_t;

/* The status wave of round r (see the top comment); -1 when a worker
 * failed. */
static int pres_status_wave(load_parent_t *p, const load_opts_t *o, size_t r,
                            pres_wave_t *wv, load_hist_t *h)
{
    size_t n = load_parent_nworkers(p);
    load_counts_t per[LOAD_MAX_PROCS], sum, dr;
    uint64_t due[LOAD_MAX_PROCS], total = 0;
    load_srv_sample_t s0, s1;
    load_proc_sample(o, &s0);
    load_cmd_t step = {.phase = LOAD_PH_STEP,
                       .step = (uint32_t)(r + 1),
                       .arg = o->status_rate,
                       .arg2 = o->step_seconds};
    if (load_parent_phase(p, &step, NULL, &sum, NULL, per) < 0)
        return -1;
    for (size_t w = 0; w < n; w++) {
        due[w] = per[w].due;
        total += due[w];
    }
    load_cmd_t drain = {.phase = LOAD_PH_DRAIN,
                        .step = (uint32_t)(r + 1),
                        .arg = o->drain_seconds};
    if (load_parent_phase(p, &drain, due, &dr, h, NULL) < 0)
        return -1;
    load_proc_sample(o, &s1);
    wv->sent += sum.sent;
    wv->due += total;
    wv->recv += dr.recv;
    wv->late += dr.late;
    wv->behind += sum.behind;
    wv->cpu_us += s1.cpu_us - s0.cpu_us;
    load_hist_merge(wv->hist, h);
    fprintf(stderr,
            "kiln-load: status wave %zu: %" PRIu64 " changes (%.0f/s), %" PRIu64
            " deliveries due, %" PRIu64 " received, p99 %.2f ms%s\n",
            r + 1, sum.sent, (double)sum.sent / o->step_seconds, total, dr.recv,
            (double)load_hist_percentile(h, 99) / 1e6,
            sum.behind ? " (tool behind)" : "");
    return 0;
}

int load_scen_presence(load_opts_t *opts)
{
    load_plan_t plan = {.unit = opts->roster + 1, .presence = true};
    load_counts_t login, wait, out;
    double sum_lps = 0, sum_pps = 0, sum_ops = 0;
    uint64_t incomplete = 0, errors = 0, presences = 0;
    size_t rounds = 0;
    int rc = LOAD_EXIT_OK;

    /* Every user sees each of its contacts available exactly once per
     * login wave; each user of the half of a clique that stays sees each
     * of the half that leaves go, exactly once (RFC 6121 4.2.2, 4.5.2:
     * one presence per contact resource). */
    uint64_t expected = 0, expected_out = 0;
    for (size_t b = 0; b < opts->users; b += opts->roster + 1) {
        size_t size = opts->users - b < opts->roster + 1 ? opts->users - b
                                                         : opts->roster + 1;
        size_t first = (opts->roster + 1 + 1) / 2; /* as LOAD_PH_LOGOUT */
        if (first > size)
            first = size;
        expected += (uint64_t)size * (size - 1);
        expected_out += (uint64_t)first * (size - first);
    }
    uint64_t repeats = 0, self = 0, leaving = 0, unavail = 0;
    pres_wave_t wave_sum = {0};
    load_hist_t *wave_h = NULL;
    if (opts->status_rate > 0) {
        plan.traffic = LOAD_TRAFFIC_STATUS;
        wave_sum.hist = kn_calloc(2, sizeof(load_hist_t));
        wave_h = &wave_sum.hist[1];
        load_hist_reset(wave_sum.hist);
    }
    load_parent_t *p = load_parent_start(opts, &plan);
    load_print_title(opts, "presence");
    printf("%zu users, %zu contacts each (cliques of %zu)\n", opts->users,
           opts->roster, opts->roster + 1);
    printf("%6s %10s %12s %12s %12s %11s %12s %8s %8s %8s %9s\n", "round",
           "logins/s", "presence", "presence/s", "login wave s", "incomplete",
           "unavail pres", "repeats", "self", "leaving", "errors");
    fflush(stdout);
    for (size_t r = 0; r < opts->rounds; r++) {
        rc = load_scen_login(p, opts, &login);
        if (rc != LOAD_EXIT_OK)
            break;
        load_cmd_t cmd = {.phase = LOAD_PH_PRESWAIT,
                          .arg = opts->drain_seconds};
        if (load_parent_phase(p, &cmd, NULL, &wait, NULL, NULL) < 0) {
            rc = LOAD_EXIT_FAIL;
            break;
        }
        if (opts->status_rate > 0 && wait.incomplete == 0 &&
            pres_status_wave(p, opts, r, &wave_sum, wave_h) < 0) {
            rc = LOAD_EXIT_FAIL;
            break;
        }
        /* Half of each clique leaves while the other half watches, then
         * the other half leaves. */
        load_counts_t out2;
        load_cmd_t lo = {.phase = LOAD_PH_LOGOUT, .expected = 1};
        if (load_parent_phase(p, &lo, NULL, &out, NULL, NULL) < 0) {
            rc = LOAD_EXIT_FAIL;
            break;
        }
        /* A DRAIN that nothing can satisfy: one second more to collect
         * the unavailable presences, counters carried on from LOGOUT. */
        load_cmd_t settle = {
            .phase = LOAD_PH_DRAIN, .arg = 1, .expected = UINT64_MAX};
        uint64_t t_begin = out.t_begin;
        if (load_parent_phase(p, &settle, NULL, &out, NULL, NULL) < 0) {
            rc = LOAD_EXIT_FAIL;
            break;
        }
        out.t_begin = t_begin;
        uint64_t t_last = out.t_last_presence;
        lo.expected = 2;
        if (load_parent_phase(p, &lo, NULL, &out2, NULL, NULL) < 0) {
            rc = LOAD_EXIT_FAIL;
            break;
        }
        out.errors += out2.errors;
        out.logouts += out2.logouts;
        double wave = (double)(wait.t_end - login.t_first_login_start) / 1e9;
        double lps = load_scen_login_rate(&login);
        double pps = wave > 0 ? (double)wait.presence / wave : 0;
        double out_s =
            t_last > out.t_begin ? (double)(t_last - out.t_begin) / 1e9 : 0;
        rounds++;
        sum_lps += lps;
        sum_pps += pps;
        sum_ops += out_s > 0 ? (double)out.presence / out_s : 0;
        incomplete += wait.incomplete;
        presences += wait.presence;
        errors += wait.errors + out.errors;
        repeats += wait.pres_repeat + out.pres_repeat;
        self += wait.pres_self + out.pres_self;
        leaving += out.pres_leaving + out2.pres_leaving;
        unavail += out.presence;
        printf(
            "%6zu %10.0f %12" PRIu64 " %12.0f %12.2f %11" PRIu64 " %12" PRIu64
            " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %9" PRIu64 "\n",
            r + 1, lps, wait.presence, pps, wave, wait.incomplete, out.presence,
            wait.pres_repeat + out.pres_repeat, wait.pres_self + out.pres_self,
            out.pres_leaving + out2.pres_leaving, wait.errors + out.errors);
        fflush(stdout);
        if (wait.incomplete > 0) {
            char what[160];
            snprintf(what, sizeof(what),
                     "%" PRIu64 " users did not see all their contacts "
                     "online within %.0f s (presence lost)",
                     wait.incomplete, opts->drain_seconds);
            load_scen_print_error(what, &wait);
            rc = LOAD_EXIT_FAIL;
            break;
        }
    }
    if (load_parent_finish(&p) != 0 && rc == LOAD_EXIT_OK)
        rc = LOAD_EXIT_FAIL;
    double n = rounds ? (double)rounds : 1;
    printf("per round: %" PRIu64 " presence stanzas expected in the login "
           "wave (each user sees each contact once), %" PRIu64
           " unavailable in the first logout (each staying user sees each "
           "leaving contact go once); repeats: a contact's presence that "
           "repeated its known state; self: the user's own presence "
           "reflected (counted apart); leaving: received by a session "
           "after it sent its unavailable (counted apart)\n",
           expected, expected_out);
    load_result_line(
        "scenario=presence server=%s users=%zu roster=%zu "
        "rounds=%zu logins_per_s=%.0f presence_per_s=%.0f "
        "logout_presence_per_s=%.0f presence=%" PRIu64
        " presence_expected=%" PRIu64 " unavail=%" PRIu64
        " unavail_expected=%" PRIu64 " repeats=%" PRIu64 " self=%" PRIu64
        " leaving=%" PRIu64 " incomplete=%" PRIu64 " errors=%" PRIu64,
        load_server_label(opts), opts->users, opts->roster, rounds, sum_lps / n,
        sum_pps / n, sum_ops / n, presences, expected * rounds, unavail,
        expected_out * rounds, repeats, self, leaving, incomplete, errors);
    if (opts->status_rate > 0) {
        const load_hist_t *h = wave_sum.hist;
        uint64_t lost =
            wave_sum.due > wave_sum.recv ? wave_sum.due - wave_sum.recv : 0;
        printf("status waves: %" PRIu64 " changes at %.0f/s offered, %" PRIu64
               " deliveries due (one per contact online), %" PRIu64
               " received, %" PRIu64 " lost, %" PRIu64
               " late; latency p50 %.2f p99 %.2f max %.2f ms; server CPU "
               "%.1f us per delivery%s\n",
               wave_sum.sent, opts->status_rate, wave_sum.due, wave_sum.recv,
               lost, wave_sum.late, (double)load_hist_percentile(h, 50) / 1e6,
               (double)load_hist_percentile(h, 99) / 1e6,
               (double)load_hist_percentile(h, 100) / 1e6,
               wave_sum.recv ? (double)wave_sum.cpu_us / (double)wave_sum.recv
                             : 0,
               wave_sum.behind ? " (tool behind)" : "");
        load_result_line(
            "scenario=presence-status server=%s users=%zu roster=%zu "
            "rate=%.0f status_sent=%" PRIu64 " due=%" PRIu64 " recv=%" PRIu64
            " lost=%" PRIu64 " late=%" PRIu64
            " p50_ms=%.2f p99_ms=%.2f max_ms=%.2f behind=%" PRIu64,
            load_server_label(opts), opts->users, opts->roster,
            opts->status_rate, wave_sum.sent, wave_sum.due, wave_sum.recv, lost,
            wave_sum.late, (double)load_hist_percentile(h, 50) / 1e6,
            (double)load_hist_percentile(h, 99) / 1e6,
            (double)load_hist_percentile(h, 100) / 1e6, wave_sum.behind);
        if (lost > 0 && !opts->allow_loss) {
            char what[96];
            snprintf(what, sizeof(what), "%" PRIu64 " status deliveries lost",
                     lost);
            load_counts_t none = {0};
            load_scen_print_error(what, &none);
            if (rc == LOAD_EXIT_OK)
                rc = LOAD_EXIT_FAIL;
        }
        free(wave_sum.hist);
    }
    if (rc == LOAD_EXIT_OK && errors > 0)
        rc = LOAD_EXIT_FAIL;
    return rc;
}
