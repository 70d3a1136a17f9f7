/*
 * load_scen.h - pieces shared by the scenario drivers (load_scen_*.c).
 */
#ifndef LOAD_SCEN_H
#define LOAD_SCEN_H

#include "load.h"

/* Exit statuses of a scenario. */
enum {
    LOAD_EXIT_OK = 0,
    LOAD_EXIT_FAIL = 1,    /* lost messages, disconnects, tool failure */
    LOAD_EXIT_REFUSED = 2, /* the server refused logins */
};

/* Run the LOGIN phase and print its line. Returns LOAD_EXIT_OK, or
 * LOAD_EXIT_REFUSED (message printed) when any login failed, or
 * LOAD_EXIT_FAIL when a worker failed. */
int load_scen_login(load_parent_t *p, const load_opts_t *o, load_counts_t *sum);
/* Logins per second between the first login start and the last login
 * completed. */
double load_scen_login_rate(const load_counts_t *c);
/* One step's delivery: sending window, then drain until every worker
 * has its expected count (expected[] from the STEP reports, scaled by
 * fanout per worker) or --drain seconds. */
typedef struct load_step_result {
    double rate;     /* offered, msgs/s */
    load_counts_t c; /* after drain */
    load_hist_t *hist;
    uint64_t cpu_us;     /* server CPU over step + drain */
    uint64_t expected;   /* deliveries expected */
    double sent_ps;      /* messages sent per second */
    double delivered_ps; /* deliveries inside the window per second */
    uint64_t lost;       /* expected - received after the drain */
} load_step_result_t;

/* fanout[w]: deliveries per message sent anywhere, for worker w (NULL for
 * one-to-one traffic, where each worker receives what it sent). */
int load_scen_step(load_parent_t *p, const load_opts_t *o, uint32_t step,
                   double rate, const uint64_t *fanout, load_step_result_t *r);
void load_scen_step_header(const char *unit);
void load_scen_step_row(const load_step_result_t *r);
/* When messages are missing, wait --drain seconds more for stragglers;
 * returns how many came in late. */
uint64_t load_scen_settle(load_parent_t *p, const load_opts_t *o,
                          uint64_t missing);
/* Print why the run failed, if the counts say it did. */
void load_scen_print_error(const char *what, const load_counts_t *c);

#endif
