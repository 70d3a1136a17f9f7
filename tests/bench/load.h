/*
 * load.h - shared types of kiln-load, the XMPP load generator.
 *
 * A run is one parent process and N forked workers (--procs). The parent
 * never touches a client socket: it splits the user range between the
 * workers, orders phases (log in, send at a rate, drain, hold, log out)
 * through a command pipe per worker, waits for every worker to report the
 * phase done, merges their figures and samples the server processes in
 * /proc around each phase. Each worker runs one libev loop holding its
 * share of the client connections (load_conn.c) and executes the phases
 * (load_worker.c). Scenarios (load_scen_*.c) are parent-side drivers: a
 * sequence of phases and a report.
 *
 * Every message carries "kl STEP T_NS" in its body (T_NS from
 * CLOCK_MONOTONIC, shared by all processes of one machine), so latency is
 * measured where the message arrives and a message is counted against the
 * step that sent it: sent and received totals are compared per step, and
 * any difference is reported as lost.
 */
#ifndef LOAD_H
#define LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "load_hist.h"

#define LOAD_MAX_PORTS 16
#define LOAD_MAX_RATES 64
#define LOAD_MAX_PIDS  64
#define LOAD_MAX_PROCS 64

enum load_sasl_mech {
    LOAD_SASL_SCRAM = 0,
    LOAD_SASL_PLAIN = 1,
};

/* Command-line options; filled by load_main.c, read-only afterwards. */
typedef struct load_opts {
    const char *scenario;
    const char *host; /* server address */
    int ports[LOAD_MAX_PORTS];
    size_t nports;
    size_t nsrc; /* source addresses 127.0.0.1 .. 127.0.0.nsrc */
    bool direct_tls;
    bool ws; /* RFC 7395 XMPP over WebSocket (with direct_tls: wss) */
    int sasl; /* enum load_sasl_mech */
    const char *user_fmt;
    const char *password_fmt; /* NULL: same as the user name */
    const char *domain;
    const char *resource;
    size_t users;
    size_t first;
    size_t procs;
    size_t concurrency;   /* logins in flight per worker */
    double login_timeout; /* seconds per login */
    double hold;          /* connections: idle seconds */
    double rates[LOAD_MAX_RATES];
    size_t nrates;
    double step_seconds;
    double drain_seconds;
    double p99_limit_ms;
    size_t roster;    /* presence: mutual contacts per user */
    size_t rounds;    /* presence: login/logout rounds */
    double status_rate; /* presence: status changes/s in a wave after the
                           login wave of each round (0: no wave) */
    size_t occupants; /* muc */
    const char *room;
    size_t body_size; /* padding added to each message body */
    pid_t server_pids[LOAD_MAX_PIDS];
    size_t nserver_pids;
    const char *server_pidfile_glob;
    const char *label; /* server name printed in the RESULT line */
    const char *scram_cache; /* --scram-cache file, or NULL */
    bool allow_loss;   /* exit 0 even if messages were lost */
    int verbose;
} load_opts_t;

/* Counters of one worker during one phase; summed by the parent. */
typedef struct load_counts {
    uint64_t t_begin;      /* monotonic ns, phase start */
    uint64_t t_end;        /* monotonic ns, phase done */
    uint64_t t_last_login; /* monotonic ns, last login completed */
    uint64_t t_first_login_start;
    uint64_t t_last_presence; /* monotonic ns, last presence received */
    uint64_t users;           /* users owned by the worker */
    uint64_t online;          /* sessions online now (not reset per phase) */
    uint64_t logins;          /* logins completed in this phase */
    uint64_t logouts;
    uint64_t login_errors; /* refused or failed logins */
    uint64_t errors;       /* other failures: disconnects, bounces */
    uint64_t sent;         /* messages sent in this step */
    uint64_t recv;         /* messages of this step received */
    uint64_t recv_window;  /* ... of which inside the sending window */
    uint64_t late;         /* messages of earlier steps received now */
    uint64_t presence;     /* presence stanzas received from others */
    uint64_t pres_self;    /* the user's own presence (RFC 6121 echo) */
    uint64_t pres_repeat;  /* a contact's presence repeating its state */
    uint64_t pres_leaving; /* received by a session logging out */
    uint64_t joined;       /* muc: joins completed in this phase */
    uint64_t in_room;      /* muc: occupants in the room now */
    uint64_t incomplete;   /* presence: users missing a contact */
    uint64_t behind;       /* sends the tool could not issue on time */
    uint64_t due;          /* status wave: deliveries the sends owe (one
                              per contact online when sent) */
    char first_error[200];
} load_counts_t;

/* Parent -> worker: start a phase. Small enough to be written atomically. */
enum load_phase {
    LOAD_PH_LOGIN = 1, /* log every user of the worker in */
    LOAD_PH_HOLD,      /* stay idle for arg seconds */
    LOAD_PH_STEP,      /* send at arg msgs/s for arg2 seconds */
    LOAD_PH_DRAIN,     /* wait until expected messages or arg seconds */
    LOAD_PH_PRESWAIT,  /* wait until every contact is seen, arg seconds */
    LOAD_PH_LOGOUT,    /* close sessions cleanly (expected: 0 all, 1 the
                          first half of each clique, 2 the others) */
    LOAD_PH_JOIN,      /* muc: join the room (expected: 0 nobody, 1 the
                          first user, 2 everyone) */
    LOAD_PH_QUIT,
};

typedef struct load_cmd {
    uint32_t phase;
    uint32_t step;
    double arg;
    double arg2;
    uint64_t expected;
} load_cmd_t;

/* Worker -> parent. */
enum load_report_kind {
    LOAD_REP_PROGRESS = 1,
    LOAD_REP_DONE = 2,
};

typedef struct load_report {
    uint32_t kind;
    uint32_t phase;
    load_counts_t c;
    load_hist_t hist; /* latency of this step's messages (DONE only) */
} load_report_t;

/* Which kind of message a step sends. */
enum load_traffic {
    LOAD_TRAFFIC_NONE = 0,
    LOAD_TRAFFIC_PAIRS, /* user 2i <-> 2i+1, type chat, to the full JID */
    LOAD_TRAFFIC_MUC,   /* occupants -> room, type groupchat */
    LOAD_TRAFFIC_STATUS, /* broadcast presence (show toggled), seen by the
                            roster clique */
};

/* How users are split between workers and what they do. */
typedef struct load_plan {
    size_t unit;   /* users are dealt to workers in blocks of unit */
    int traffic;   /* enum load_traffic */
    bool presence; /* track contacts' availability (roster cliques) */
    bool muc;      /* join the room after login */
} load_plan_t;

/* Parent side (load_parent.c). */
typedef struct load_parent load_parent_t;

/* Fork opts->procs workers for plan; returns NULL (with a message on
 * stderr) on failure. The workers log nobody in until ordered to. */
load_parent_t *load_parent_start(const load_opts_t *opts,
                                 const load_plan_t *plan);
/* Order phase cmd on every worker (per-worker expected counts from
 * expected[] when not NULL), print progress every second until all
 * report done, and merge their reports into *sum and *hist (may be NULL).
 * per_worker (may be NULL) receives each worker's counts. Returns 0, or
 * -1 when a worker died or the phase overran its deadline. */
int load_parent_phase(load_parent_t *p, const load_cmd_t *cmd,
                      const uint64_t *expected, load_counts_t *sum,
                      load_hist_t *hist, load_counts_t *per_worker);
size_t load_parent_nworkers(const load_parent_t *p);
/* Order QUIT, reap the workers, free p. Returns 0 when all exited 0. */
int load_parent_finish(load_parent_t **pp);

/* Worker side (load_worker.c): runs the loop; returns the exit status. */
int load_worker_main(const load_opts_t *opts, const load_plan_t *plan,
                     size_t widx, size_t first, size_t count, int cmd_fd,
                     int rep_fd);

/* Server processes (load_proc.c). */
typedef struct load_srv_sample {
    uint64_t rss_kib; /* sum of VmRSS */
    uint64_t cpu_us;  /* sum of utime + stime */
    size_t nprocs;    /* processes found alive */
    uint64_t cpu_pid_us[LOAD_MAX_PIDS]; /* per --server-pids entry */
    /* per --server-pids entry (same order): utime and stime, µs */
    uint64_t user_us[LOAD_MAX_PIDS], sys_us[LOAD_MAX_PIDS];
} load_srv_sample_t;

/* Resolve the server pids from --server-pids / --server-pidfile-glob into
 * opts (at start, so a pidfile written late is still read once). */
void load_proc_resolve(load_opts_t *opts);
void load_proc_sample(const load_opts_t *opts, load_srv_sample_t *s);
/* On stderr, one line per server pid: "STEPCPU step=K pid=P user_us=U
 * sys_us=S" for the CPU used between s0 and s1 (tests/bench/path_ab.sh
 * splits the server CPU per message by process and user/kernel). */
void load_proc_print_split(const load_opts_t *opts, size_t step,
                           const load_srv_sample_t *s0,
                           const load_srv_sample_t *s1);

/* Scenarios (load_scen_*.c): parent-side drivers; return the exit status
 * (0 success, 1 failure or loss, 2 usage or refused logins). */
int load_scen_connections(load_opts_t *opts);
int load_scen_throughput(load_opts_t *opts);
int load_scen_presence(load_opts_t *opts);
int load_scen_muc(load_opts_t *opts);

/* Built-in checks of the stream scanner, SCRAM and the histogram
 * (kiln-load selftest, load_selftest.c); returns the failure count. */
int load_selftest(void);

/* Shared helpers (load_util.c). */
uint64_t load_now_ns(void);
void load_counts_add(load_counts_t *sum, const load_counts_t *c);
/* Format user number n (absolute) with fmt ("user%d") into out. */
void load_fmt_user(char *out, size_t outsz, const char *fmt, size_t n);
/* Print the common part of a scenario's human table header. */
void load_print_title(const load_opts_t *opts, const char *what);
/* Write "RESULT scenario=... key=value ..." to stdout, one line. */
void load_result_line(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
const char *load_server_label(const load_opts_t *opts);

#endif
