/*
 * load_scen_tput.c - scenario "throughput": P online pairs (users 2i and
 * 2i+1, on different ports when there are several) exchange one-to-one
 * chat messages at fixed offered rates rising step by step. Each step is
 * a sending window of --step-seconds and a drain of up to --drain
 * seconds; the run stops after the first step where delivery falls
 * behind (less than 90 % delivered inside the window, or messages still
 * missing after the drain). Reported per step: offered and delivered
 * rates, latency percentiles, lost messages and server CPU per delivered
 * message; overall: the highest rate whose p99 stayed under
 * --p99-limit-ms with nothing lost.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kn_mem.h"
#include "load_scen.h"

int load_scen_throughput(load_opts_t *opts)
{
    load_plan_t plan = {.unit = 2, .traffic = LOAD_TRAFFIC_PAIRS};
    load_counts_t login;
    opts->users -= opts->users % 2;
    if (opts->users < 2) {
        fprintf(stderr, "kiln-load: throughput needs at least one pair\n");
        return LOAD_EXIT_REFUSED;
    }
    load_parent_t *p = load_parent_start(opts, &plan);
    int rc = load_scen_login(p, opts, &login);
    if (rc != LOAD_EXIT_OK) {
        load_parent_finish(&p);
        return rc;
    }

    load_step_result_t res[LOAD_MAX_RATES];
    load_hist_t *hists = kn_calloc(opts->nrates, sizeof(load_hist_t));
    size_t nres = 0;
    double best = 0;
    uint64_t total_sent = 0, total_recv = 0, errors = 0;
    const char *why_stop = "all rates done";
    for (size_t k = 0; k < opts->nrates; k++) {
        load_step_result_t *r = &res[nres];
        r->hist = &hists[nres];
        load_hist_t *h = r->hist;
        if (load_scen_step(p, opts, (uint32_t)(k + 1), opts->rates[k], NULL,
                           r) < 0) {
            rc = LOAD_EXIT_FAIL;
            why_stop = "a worker failed";
            break;
        }
        r->hist = h;
        nres++;
        total_sent += r->c.sent;
        total_recv += r->c.recv;
        errors += r->c.errors;
        double p99 = (double)load_hist_percentile(h, 99) / 1e6;
        fprintf(stderr,
                "kiln-load: step %zu: offered %.0f/s, delivered %.0f/s, "
                "p99 %.2f ms, lost %" PRIu64 "\n",
                k + 1, r->rate, r->delivered_ps, p99, r->lost);
        if (r->lost == 0 && r->c.behind == 0 && p99 < opts->p99_limit_ms)
            best = r->rate;
        if (r->c.errors > 0) {
            why_stop = "errors";
            break;
        }
        if (r->lost > 0 || r->delivered_ps < 0.9 * r->sent_ps) {
            why_stop = "delivery fell behind";
            break;
        }
        if (r->c.behind > 0) {
            why_stop = "the load tool could not keep up (add --procs)";
            break;
        }
    }
    uint64_t late = load_scen_settle(
        p, opts, total_sent > total_recv ? total_sent - total_recv : 0);
    if (load_parent_finish(&p) != 0 && rc == LOAD_EXIT_OK)
        rc = LOAD_EXIT_FAIL;
    uint64_t lost =
        total_sent > total_recv + late ? total_sent - total_recv - late : 0;

    load_print_title(opts, "throughput");
    printf("%zu pairs online (%.0f logins/s); stopped: %s\n", opts->users / 2,
           load_scen_login_rate(&login), why_stop);
    load_scen_step_header("delivered/s");
    for (size_t k = 0; k < nres; k++)
        load_scen_step_row(&res[k]);
    printf("highest rate with p99 < %.0f ms and nothing lost: %.0f msgs/s\n",
           opts->p99_limit_ms, best);
    printf("messages sent %" PRIu64 ", received %" PRIu64 " (+%" PRIu64
           " after their drain), lost %" PRIu64 "\n",
           total_sent, total_recv, late, lost);

    const load_step_result_t *last = nres ? &res[nres - 1] : NULL;
    const load_step_result_t *b = NULL;
    for (size_t k = 0; k < nres; k++)
        if (res[k].rate == best)
            b = &res[k];
    load_result_line(
        "scenario=throughput server=%s pairs=%zu best_rate=%.0f "
        "best_p50_ms=%.2f best_p99_ms=%.2f best_cpu_us_per_msg=%.1f "
        "max_delivered_per_s=%.0f max_p99_ms=%.2f steps=%zu sent=%" PRIu64
        " lost=%" PRIu64 " errors=%" PRIu64,
        load_server_label(opts), opts->users / 2, best,
        b ? (double)load_hist_percentile(b->hist, 50) / 1e6 : 0,
        b ? (double)load_hist_percentile(b->hist, 99) / 1e6 : 0,
        b && b->c.recv ? (double)b->cpu_us / (double)b->c.recv : 0,
        last ? last->delivered_ps : 0,
        last ? (double)load_hist_percentile(last->hist, 99) / 1e6 : 0, nres,
        total_sent, lost, errors);
    free(hists);
    if (lost > 0 && !opts->allow_loss) {
        char what[96];
        snprintf(what, sizeof(what), "%" PRIu64 " messages lost", lost);
        load_counts_t none = {0};
        load_scen_print_error(what, &none);
        if (rc == LOAD_EXIT_OK)
            rc = LOAD_EXIT_FAIL;
    }
    if (errors > 0 && rc == LOAD_EXIT_OK) {
        load_scen_print_error("errors during the steps", &res[nres - 1].c);
        rc = LOAD_EXIT_FAIL;
    }
    return rc;
}
