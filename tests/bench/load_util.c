/*
 * load_util.c - small helpers shared by the parent and the workers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "load.h"

uint64_t load_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t util_min_nonzero(uint64_t a, uint64_t b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

void load_counts_add(load_counts_t *sum, const load_counts_t *c)
{
    sum->t_begin = util_min_nonzero(sum->t_begin, c->t_begin);
    sum->t_first_login_start =
        util_min_nonzero(sum->t_first_login_start, c->t_first_login_start);
    if (c->t_end > sum->t_end)
        sum->t_end = c->t_end;
    if (c->t_last_presence > sum->t_last_presence)
        sum->t_last_presence = c->t_last_presence;
    if (c->t_last_login > sum->t_last_login)
        sum->t_last_login = c->t_last_login;
    sum->users += c->users;
    sum->online += c->online;
    sum->logins += c->logins;
    sum->logouts += c->logouts;
    sum->login_errors += c->login_errors;
    sum->errors += c->errors;
    sum->sent += c->sent;
    sum->recv += c->recv;
    sum->recv_window += c->recv_window;
    sum->late += c->late;
    sum->presence += c->presence;
    sum->pres_self += c->pres_self;
    sum->pres_repeat += c->pres_repeat;
    sum->pres_leaving += c->pres_leaving;
    sum->joined += c->joined;
    sum->in_room += c->in_room;
    sum->incomplete += c->incomplete;
    sum->behind += c->behind;
    sum->due += c->due;
    if (sum->first_error[0] == '\0' && c->first_error[0] != '\0')
        memcpy(sum->first_error, c->first_error, sizeof(sum->first_error));
}

void load_fmt_user(char *out, size_t outsz, const char *fmt, size_t n)
{
    /* fmt holds at most one %d, checked by load_main.c. */
    const char *p = strstr(fmt, "%d");
    if (p == NULL) {
        snprintf(out, outsz, "%s", fmt);
        return;
    }
    snprintf(out, outsz, "%.*s%zu%s", (int)(p - fmt), fmt, n, p + 2);
}

const char *load_server_label(const load_opts_t *opts)
{
    return opts->label ? opts->label : "server";
}

void load_print_title(const load_opts_t *opts, const char *what)
{
    printf("\n== %s: %s (%s:", what, load_server_label(opts), opts->host);
    for (size_t i = 0; i < opts->nports; i++)
        printf("%s%d", i ? "," : "", opts->ports[i]);
    printf(", %s, SASL %s, %zu procs) ==\n",
           opts->ws ? (opts->direct_tls ? "WebSocket over TLS" : "WebSocket")
           : opts->direct_tls ? "direct TLS"
                              : "STARTTLS",
           opts->sasl == LOAD_SASL_PLAIN ? "PLAIN" : "SCRAM-SHA-1",
           opts->procs);
}

void load_result_line(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("RESULT ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}
