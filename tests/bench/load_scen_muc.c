/*
 * load_scen_muc.c - scenario "muc": --occupants users spread over the
 * ports join one room (the first occupant creates it, then everyone else
 * joins), then occupants send groupchat messages at rising total rates.
 * Every message is delivered to every occupant, the sender included, so
 * deliveries = messages x occupants; a worker expects the total sent
 * times its own occupants.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kn_mem.h"
#include "load_scen.h"

int load_scen_muc(load_opts_t *opts)
{
    load_plan_t plan = {.unit = 1, .traffic = LOAD_TRAFFIC_MUC, .muc = true};
    load_counts_t login, join, per[LOAD_MAX_PROCS];
    opts->users = opts->occupants;
    load_parent_t *p = load_parent_start(opts, &plan);
    size_t n = load_parent_nworkers(p);
    int rc = load_scen_login(p, opts, &login);
    if (rc != LOAD_EXIT_OK) {
        load_parent_finish(&p);
        return rc;
    }
    /* The first occupant creates the room alone, then the others join. */
    uint64_t who[LOAD_MAX_PROCS];
    for (size_t w = 0; w < n; w++)
        who[w] = w == 0 ? 1 : 0;
    load_cmd_t cmd = {.phase = LOAD_PH_JOIN};
    uint64_t t0 = load_now_ns();
    if (load_parent_phase(p, &cmd, who, &join, NULL, NULL) < 0 ||
        join.joined != 1) {
        load_scen_print_error("could not create the room", &join);
        load_parent_finish(&p);
        return LOAD_EXIT_REFUSED;
    }
    for (size_t w = 0; w < n; w++)
        who[w] = 2;
    if (load_parent_phase(p, &cmd, who, &join, NULL, per) < 0) {
        load_parent_finish(&p);
        return LOAD_EXIT_FAIL;
    }
    double join_s = (double)(load_now_ns() - t0) / 1e9;
    uint64_t in_room = join.in_room;
    fprintf(stderr, "kiln-load: %" PRIu64 " occupants in %s (%.1f s)\n",
            in_room, opts->room, join_s);
    if (in_room != opts->occupants) {
        load_scen_print_error("not every occupant could join the room", &join);
        load_parent_finish(&p);
        return LOAD_EXIT_REFUSED;
    }
    uint64_t fanout[LOAD_MAX_PROCS];
    for (size_t w = 0; w < n; w++)
        fanout[w] = per[w].in_room;

    load_step_result_t res[LOAD_MAX_RATES];
    load_hist_t *hists = kn_calloc(opts->nrates, sizeof(load_hist_t));
    size_t nres = 0;
    double best = 0;
    uint64_t total_exp = 0, total_recv = 0, total_sent = 0, errors = 0;
    const char *why_stop = "all rates done";
    for (size_t k = 0; k < opts->nrates; k++) {
        load_step_result_t *r = &res[nres];
        load_hist_t *h = &hists[nres];
        r->hist = h;
        if (load_scen_step(p, opts, (uint32_t)(k + 1), opts->rates[k], fanout,
                           r) < 0) {
            rc = LOAD_EXIT_FAIL;
            why_stop = "a worker failed";
            break;
        }
        r->hist = h;
        nres++;
        total_exp += r->expected;
        total_recv += r->c.recv;
        total_sent += r->c.sent;
        errors += r->c.errors;
        double p99 = (double)load_hist_percentile(h, 99) / 1e6;
        double offered_deliv = r->sent_ps * (double)in_room;
        fprintf(stderr,
                "kiln-load: step %zu: %.0f msgs/s -> %.0f deliveries/s "
                "(of %.0f), p99 %.2f ms, lost %" PRIu64 "\n",
                k + 1, r->rate, r->delivered_ps, offered_deliv, p99, r->lost);
        if (r->lost == 0 && r->c.behind == 0 && p99 < opts->p99_limit_ms)
            best = r->rate;
        if (r->c.errors > 0) {
            why_stop = "errors";
            break;
        }
        if (r->lost > 0 || r->delivered_ps < 0.9 * offered_deliv) {
            why_stop = "delivery fell behind";
            break;
        }
        if (r->c.behind > 0) {
            why_stop = "the load tool could not keep up (add --procs)";
            break;
        }
    }
    uint64_t late = load_scen_settle(
        p, opts, total_exp > total_recv ? total_exp - total_recv : 0);
    if (load_parent_finish(&p) != 0 && rc == LOAD_EXIT_OK)
        rc = LOAD_EXIT_FAIL;
    uint64_t lost =
        total_exp > total_recv + late ? total_exp - total_recv - late : 0;

    load_print_title(opts, "muc");
    printf("room %s, %" PRIu64 " occupants (joined in %.1f s); stopped: %s\n",
           opts->room, in_room, join_s, why_stop);
    load_scen_step_header("deliveries/s");
    for (size_t k = 0; k < nres; k++)
        load_scen_step_row(&res[k]);
    printf("highest message rate with p99 < %.0f ms and nothing lost: %.0f "
           "msgs/s (%.0f deliveries/s)\n",
           opts->p99_limit_ms, best, best * (double)in_room);
    printf("messages sent %" PRIu64 ", deliveries expected %" PRIu64
           ", received %" PRIu64 " (+%" PRIu64 " late), lost %" PRIu64 "\n",
           total_sent, total_exp, total_recv, late, lost);
    const load_step_result_t *last = nres ? &res[nres - 1] : NULL;
    const load_step_result_t *b = NULL;
    for (size_t k = 0; k < nres; k++)
        if (res[k].rate == best)
            b = &res[k];
    load_result_line(
        "scenario=muc server=%s occupants=%" PRIu64 " best_rate=%.0f "
        "best_deliveries_per_s=%.0f best_p50_ms=%.2f best_p99_ms=%.2f "
        "best_cpu_us_per_delivery=%.1f max_deliveries_per_s=%.0f "
        "steps=%zu deliveries=%" PRIu64 " lost=%" PRIu64 " errors=%" PRIu64,
        load_server_label(opts), in_room, best, best * (double)in_room,
        b ? (double)load_hist_percentile(b->hist, 50) / 1e6 : 0,
        b ? (double)load_hist_percentile(b->hist, 99) / 1e6 : 0,
        b && b->c.recv ? (double)b->cpu_us / (double)b->c.recv : 0,
        last ? last->delivered_ps : 0, nres, total_exp, lost, errors);
    free(hists);
    if (lost > 0 && !opts->allow_loss) {
        char what[96];
        snprintf(what, sizeof(what), "%" PRIu64 " deliveries lost", lost);
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
