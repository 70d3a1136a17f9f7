/*
 * load_scen_conn.c - scenario "connections": log N users in, hold them
 * idle, report logins per second and the server's resident memory per
 * session (private resident memory, RssAnon, summed over the server
 * pids, after the hold minus before the logins, divided by the
 * sessions).
 */
#include <inttypes.h>
#include <stdio.h>

#include "load_scen.h"

int load_scen_connections(load_opts_t *opts)
{
    load_plan_t plan = {.unit = 1};
    load_srv_sample_t s0, s1, s2;
    load_counts_t login, hold;

    load_proc_sample(opts, &s0);
    load_parent_t *p = load_parent_start(opts, &plan);
    int rc = load_scen_login(p, opts, &login);
    load_proc_sample(opts, &s1);
    if (rc == LOAD_EXIT_FAIL) {
        load_parent_finish(&p);
        return rc;
    }
    load_cmd_t cmd = {.phase = LOAD_PH_HOLD, .arg = opts->hold};
    if (load_parent_phase(p, &cmd, NULL, &hold, NULL, NULL) < 0)
        rc = LOAD_EXIT_FAIL;
    load_proc_sample(opts, &s2);
    if (load_parent_finish(&p) != 0 && rc == LOAD_EXIT_OK)
        rc = LOAD_EXIT_FAIL;

    double rate = load_scen_login_rate(&login);
    double rss_per = 0;
    if (login.logins > 0 && s2.nprocs > 0 && s2.rss_kib > s0.rss_kib)
        rss_per = (double)(s2.rss_kib - s0.rss_kib) / (double)login.logins;
    double cpu_per =
        login.logins && s1.nprocs
            ? (double)(s1.cpu_us - s0.cpu_us) / (double)login.logins
            : 0;
    uint64_t errors = login.login_errors + hold.errors;

    load_print_title(opts, "connections");
    printf("%-34s %12zu\n", "users", opts->users);
    printf("%-34s %12" PRIu64 "\n", "logged in", login.logins);
    printf("%-34s %12" PRIu64 "\n", "refused or failed logins",
           login.login_errors);
    printf("%-34s %12.0f\n", "logins per second", rate);
    printf("%-34s %12.1f\n", "server CPU per login (us)", cpu_per);
    printf("%-34s %12" PRIu64 "\n", "still online after hold", hold.online);
    printf("%-34s %12" PRIu64 "\n", "disconnects during hold", hold.errors);
    if (s0.nprocs > 0) {
        printf("%-34s %12" PRIu64 " (%zu processes)\n",
               "server RssAnon before (KiB)", s0.rss_kib, s0.nprocs);
        printf("%-34s %12" PRIu64 "\n", "server RssAnon logged in (KiB)",
               s1.rss_kib);
        printf("%-34s %12" PRIu64 "\n", "server RssAnon after hold (KiB)",
               s2.rss_kib);
        printf("%-34s %12.1f\n", "server RssAnon per session (KiB)", rss_per);
    } else {
        printf("%-34s %12s\n", "server RssAnon per session (KiB)",
               "n/a (no --server-pids)");
    }
    /* CPU per login of each server process (pid:us), for a split by
     * process. */
    char split[LOAD_MAX_PIDS * 32] = "";
    size_t off = 0;
    for (size_t i = 0; i < opts->nserver_pids && login.logins > 0; i++) {
        double us = (double)(s1.cpu_pid_us[i] - s0.cpu_pid_us[i]) /
                    (double)login.logins;
        if (s1.cpu_pid_us[i] < s0.cpu_pid_us[i])
            us = 0;
        int n = snprintf(split + off, sizeof(split) - off, "%s%d:%.1f",
                         off ? "," : "", (int)opts->server_pids[i], us);
        if (n < 0 || (size_t)n >= sizeof(split) - off)
            break;
        off += (size_t)n;
    }
    load_result_line(
        "scenario=connections server=%s users=%zu logins=%" PRIu64
        " logins_per_s=%.0f rss_per_session_kib=%.1f "
        "cpu_us_per_login=%.1f hold_s=%.0f errors=%" PRIu64 " cpu_by_pid=%s",
        load_server_label(opts), opts->users, login.logins, rate, rss_per,
        cpu_per, opts->hold, errors, split[0] ? split : "-");
    if (rc == LOAD_EXIT_OK && hold.errors > 0) {
        load_scen_print_error("sessions dropped during the hold", &hold);
        rc = LOAD_EXIT_FAIL;
    }
    return rc;
}
