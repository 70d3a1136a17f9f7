/*
 * load_main.c - kiln-load: parse the command line, raise the open-file
 * limit, run one scenario (load_scen_*.c). See usage() below, and
 * tests/bench/README.md.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "load.h"

static void usage(FILE *f)
{
    fputs("usage: kiln-load SCENARIO [options]\n"
          "       kiln-load selftest\n"
          "scenarios:\n"
          "  connections   log N users in, hold them --hold s; logins/s and "
          "server RssAnon per session\n"
          "  throughput    pairs exchange chat messages at --rates; latency, "
          "losses, server CPU/msg\n"
          "  presence      roster cliques of --roster R log in and out "
          "--rounds times; presence/s\n"
          "  muc           --occupants join --room and post at --rates; "
          "deliveries/s, latency\n"
          "connection:\n"
          "  --host ADDR            server address (127.0.0.1)\n"
          "  --port P[,P...]        c2s ports, users spread over them (5222)\n"
          "  --src-addrs N          bind to 127.0.0.1..127.0.0.N (auto: one "
          "per 25000 users per port)\n"
          "  --direct-tls           TLS from the first byte (default: "
          "STARTTLS)\n"
          "  --ws                   XMPP over WebSocket (RFC 7395) at "
          "/xmpp-websocket\n"
          "                         of the HTTP port(s); with --direct-tls: "
          "wss on the HTTPS port(s)\n"
          "  --sasl scram|plain     SCRAM-SHA-1 (default) or PLAIN\n"
          "  --scram-cache FILE     keep the users' SCRAM keys (PBKDF2 "
          "results) in FILE between runs\n"
          "  --domain D             (localhost)\n"
          "  --user-fmt F           user name pattern, one %d (user%d)\n"
          "  --password-fmt F       password pattern (default: the user "
          "name)\n"
          "  --users N --first K    users K .. K+N-1 (1000, 1)\n"
          "  --procs N              worker processes (1)\n"
          "  --concurrency N        logins in flight per worker (200)\n"
          "  --login-timeout S      per login, join or logout (30)\n"
          "scenario:\n"
          "  --hold S               connections: idle time (10)\n"
          "  --pairs P              throughput: pairs (default users/2)\n"
          "  --rates R[,R...]       total offered msgs/s per step "
          "(1000,2000,5000,10000,20000,50000)\n"
          "  --step-seconds S       sending window per step (5)\n"
          "  --drain S              wait for stragglers per step (5)\n"
          "  --p99-limit-ms MS      latency bound of the best rate (50)\n"
          "  --body-size N          extra bytes per message body (0)\n"
          "  --roster R             presence: contacts per user (10)\n"
          "  --rounds N             presence: login/logout rounds (2)\n"
          "  --status-rate R        presence: after each login wave, online "
          "users change\n"
          "                         status (away/available) at R/s in all "
          "for --step-seconds;\n"
          "                         latency and losses of the deliveries "
          "to contacts (0)\n"
          "  --occupants N          muc: occupants (200)\n"
          "  --room JID             muc: room (bench@conference.localhost)\n"
          "reporting:\n"
          "  --server-pids P[,P...]     server processes to sample in /proc\n"
          "  --server-pidfile-glob G    ... or their pid files\n"
          "  --label NAME           server name in the RESULT line\n"
          "  --allow-loss           exit 0 even when messages were lost\n"
          "  -v                     log each failed connection\n"
          "Ends with one line 'RESULT scenario=... key=value ...' on stdout.\n"
          "Exit status: 0 ok, 1 lost messages or errors, 2 refused logins or "
          "usage.\n",
          f);
}

static int parse_list(const char *s, double *out, size_t max, size_t *n)
{
    char *end;
    *n = 0;
    while (*s) {
        if (*n >= max)
            return -1;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno != 0 || v < 0)
            return -1;
        out[(*n)++] = v;
        s = end;
        if (*s == ',')
            s++;
        else if (*s != '\0')
            return -1;
    }
    return *n > 0 ? 0 : -1;
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return end == s || *end != '\0' || errno != 0 || *out < 0 ? -1 : 0;
}

static int fmt_ok(const char *fmt)
{
    const char *p = strstr(fmt, "%d");
    if (p == NULL)
        return 0;
    const char *q = fmt;
    while ((q = strchr(q, '%')) != NULL) {
        if (q != p)
            return 0;
        q++;
    }
    return 1;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_SRC,
    OPT_DIRECT,
    OPT_SASL,
    OPT_DOMAIN,
    OPT_USERFMT,
    OPT_PASSFMT,
    OPT_USERS,
    OPT_FIRST,
    OPT_PROCS,
    OPT_CONC,
    OPT_LTIMEOUT,
    OPT_HOLD,
    OPT_PAIRS,
    OPT_RATES,
    OPT_STEP,
    OPT_DRAIN,
    OPT_P99,
    OPT_BODY,
    OPT_ROSTER,
    OPT_ROUNDS,
    OPT_STATUS,
    OPT_OCC,
    OPT_ROOM,
    OPT_PIDS,
    OPT_PIDGLOB,
    OPT_LABEL,
    OPT_ALLOWLOSS,
    OPT_RESOURCE,
    OPT_SCACHE,
    OPT_WS,
    OPT_HELP,
};

static const struct option long_opts[] = {
    {"host", 1, NULL, OPT_HOST},
    {"port", 1, NULL, OPT_PORT},
    {"src-addrs", 1, NULL, OPT_SRC},
    {"direct-tls", 0, NULL, OPT_DIRECT},
    {"ws", 0, NULL, OPT_WS},
    {"sasl", 1, NULL, OPT_SASL},
    {"domain", 1, NULL, OPT_DOMAIN},
    {"user-fmt", 1, NULL, OPT_USERFMT},
    {"password-fmt", 1, NULL, OPT_PASSFMT},
    {"users", 1, NULL, OPT_USERS},
    {"first", 1, NULL, OPT_FIRST},
    {"procs", 1, NULL, OPT_PROCS},
    {"concurrency", 1, NULL, OPT_CONC},
    {"login-timeout", 1, NULL, OPT_LTIMEOUT},
    {"hold", 1, NULL, OPT_HOLD},
    {"pairs", 1, NULL, OPT_PAIRS},
    {"rates", 1, NULL, OPT_RATES},
    {"step-seconds", 1, NULL, OPT_STEP},
    {"drain", 1, NULL, OPT_DRAIN},
    {"p99-limit-ms", 1, NULL, OPT_P99},
    {"body-size", 1, NULL, OPT_BODY},
    {"roster", 1, NULL, OPT_ROSTER},
    {"rounds", 1, NULL, OPT_ROUNDS},
    {"status-rate", 1, NULL, OPT_STATUS},
    {"occupants", 1, NULL, OPT_OCC},
    {"room", 1, NULL, OPT_ROOM},
    {"server-pids", 1, NULL, OPT_PIDS},
    {"server-pidfile-glob", 1, NULL, OPT_PIDGLOB},
    {"label", 1, NULL, OPT_LABEL},
    {"allow-loss", 0, NULL, OPT_ALLOWLOSS},
    {"resource", 1, NULL, OPT_RESOURCE},
    {"scram-cache", 1, NULL, OPT_SCACHE},
    {"help", 0, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int bad(const char *opt, const char *val)
{
    fprintf(stderr, "kiln-load: bad value for --%s: '%s'\n", opt, val);
    return 2;
}

int main(int argc, char **argv)
{
    static load_opts_t o;
    size_t pairs = 0;
    bool users_set = false;
    double tmp[LOAD_MAX_PIDS];
    size_t ntmp;

    o.host = "127.0.0.1";
    o.ports[0] = 5222;
    o.nports = 1;
    o.nsrc = (size_t)-1;
    o.user_fmt = "user%d";
    o.domain = "localhost";
    o.resource = "kl";
    o.users = 1000;
    o.first = 1;
    o.procs = 1;
    o.concurrency = 200;
    o.login_timeout = 30;
    o.hold = 10;
    const double def_rates[] = {1000, 2000, 5000, 10000, 20000, 50000};
    memcpy(o.rates, def_rates, sizeof(def_rates));
    o.nrates = sizeof(def_rates) / sizeof(def_rates[0]);
    o.step_seconds = 5;
    o.drain_seconds = 5;
    o.p99_limit_ms = 50;
    o.roster = 10;
    o.rounds = 2;
    o.occupants = 200;
    o.room = "bench@conference.localhost";

    if (argc < 2 || argv[1][0] == '-') {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    o.scenario = argv[1];
    if (strcmp(o.scenario, "selftest") == 0)
        return load_selftest() ? 1 : 0;

    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "v", long_opts, NULL)) != -1) {
        const char *name = "";
        for (const struct option *lo = long_opts; lo->name; lo++)
            if (lo->val == c)
                name = lo->name;
        switch (c) {
        case OPT_HOST:
            o.host = optarg;
            break;
        case OPT_PORT:
            if (parse_list(optarg, tmp, LOAD_MAX_PORTS, &ntmp) < 0)
                return bad(name, optarg);
            for (size_t i = 0; i < ntmp; i++) {
                if (tmp[i] < 1 || tmp[i] > 65535)
                    return bad(name, optarg);
                o.ports[i] = (int)tmp[i];
            }
            o.nports = ntmp;
            break;
        case OPT_SRC:
            if (parse_size(optarg, &o.nsrc) < 0 || o.nsrc > 250)
                return bad(name, optarg);
            break;
        case OPT_DIRECT:
            o.direct_tls = true;
            break;
        case OPT_WS:
            o.ws = true;
            break;
        case OPT_SASL:
            if (strcmp(optarg, "scram") == 0)
                o.sasl = LOAD_SASL_SCRAM;
            else if (strcmp(optarg, "plain") == 0)
                o.sasl = LOAD_SASL_PLAIN;
            else
                return bad(name, optarg);
            break;
        case OPT_DOMAIN:
            o.domain = optarg;
            break;
        case OPT_USERFMT:
            if (!fmt_ok(optarg))
                return bad(name, optarg);
            o.user_fmt = optarg;
            break;
        case OPT_PASSFMT:
            if (strchr(optarg, '%') != NULL && !fmt_ok(optarg))
                return bad(name, optarg);
            o.password_fmt = optarg;
            break;
        case OPT_USERS:
            if (parse_size(optarg, &o.users) < 0 || o.users == 0)
                return bad(name, optarg);
            users_set = true;
            break;
        case OPT_FIRST:
            if (parse_size(optarg, &o.first) < 0)
                return bad(name, optarg);
            break;
        case OPT_PROCS:
            if (parse_size(optarg, &o.procs) < 0 || o.procs == 0 ||
                o.procs > LOAD_MAX_PROCS)
                return bad(name, optarg);
            break;
        case OPT_CONC:
            if (parse_size(optarg, &o.concurrency) < 0 || o.concurrency == 0)
                return bad(name, optarg);
            break;
        case OPT_LTIMEOUT:
            if (parse_double(optarg, &o.login_timeout) < 0)
                return bad(name, optarg);
            break;
        case OPT_HOLD:
            if (parse_double(optarg, &o.hold) < 0)
                return bad(name, optarg);
            break;
        case OPT_PAIRS:
            if (parse_size(optarg, &pairs) < 0 || pairs == 0)
                return bad(name, optarg);
            break;
        case OPT_RATES:
            if (parse_list(optarg, o.rates, LOAD_MAX_RATES, &o.nrates) < 0)
                return bad(name, optarg);
            break;
        case OPT_STEP:
            if (parse_double(optarg, &o.step_seconds) < 0 ||
                o.step_seconds <= 0)
                return bad(name, optarg);
            break;
        case OPT_DRAIN:
            if (parse_double(optarg, &o.drain_seconds) < 0)
                return bad(name, optarg);
            break;
        case OPT_P99:
            if (parse_double(optarg, &o.p99_limit_ms) < 0)
                return bad(name, optarg);
            break;
        case OPT_BODY:
            if (parse_size(optarg, &o.body_size) < 0 || o.body_size > 2048)
                return bad(name, optarg);
            break;
        case OPT_ROSTER:
            if (parse_size(optarg, &o.roster) < 0 || o.roster > 10000)
                return bad(name, optarg);
            break;
        case OPT_ROUNDS:
            if (parse_size(optarg, &o.rounds) < 0 || o.rounds == 0)
                return bad(name, optarg);
            break;
        case OPT_STATUS:
            if (parse_double(optarg, &o.status_rate) < 0)
                return bad(name, optarg);
            break;
        case OPT_OCC:
            if (parse_size(optarg, &o.occupants) < 0 || o.occupants == 0)
                return bad(name, optarg);
            break;
        case OPT_ROOM:
            o.room = optarg;
            break;
        case OPT_PIDS:
            if (parse_list(optarg, tmp, LOAD_MAX_PIDS, &ntmp) < 0)
                return bad(name, optarg);
            for (size_t i = 0; i < ntmp; i++)
                o.server_pids[o.nserver_pids++] = (pid_t)tmp[i];
            break;
        case OPT_PIDGLOB:
            o.server_pidfile_glob = optarg;
            break;
        case OPT_LABEL:
            o.label = optarg;
            break;
        case OPT_ALLOWLOSS:
            o.allow_loss = true;
            break;
        case OPT_RESOURCE:
            o.resource = optarg;
            break;
        case OPT_SCACHE:
            o.scram_cache = optarg;
            break;
        case 'v':
            o.verbose++;
            break;
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kiln-load: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (strcmp(o.scenario, "throughput") == 0 && pairs > 0)
        o.users = 2 * pairs;
    else if (strcmp(o.scenario, "muc") == 0)
        o.users = o.occupants;
    (void)users_set;
    if (o.nsrc == (size_t)-1) {
        size_t per_port = (o.users + o.nports - 1) / o.nports;
        o.nsrc = strncmp(o.host, "127.", 4) == 0 ? 1 + per_port / 25000 : 0;
    }

    raise_nofile();
    struct rlimit rl;
    size_t per_proc = (o.users + o.procs - 1) / o.procs;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        per_proc + 64 > rl.rlim_cur) {
        fprintf(stderr,
                "kiln-load: %zu connections per process exceed the open-file "
                "limit (%llu): use --procs %zu or more\n",
                per_proc, (unsigned long long)rl.rlim_cur,
                (o.users + (size_t)rl.rlim_cur - 65) /
                    ((size_t)rl.rlim_cur - 64));
        return 2;
    }
    load_proc_resolve(&o);

    if (strcmp(o.scenario, "connections") == 0)
        return load_scen_connections(&o);
    if (strcmp(o.scenario, "throughput") == 0)
        return load_scen_throughput(&o);
    if (strcmp(o.scenario, "presence") == 0)
        return load_scen_presence(&o);
    if (strcmp(o.scenario, "muc") == 0)
        return load_scen_muc(&o);
    fprintf(stderr, "kiln-load: unknown scenario '%s'\n", o.scenario);
    usage(stderr);
    return 2;
}
