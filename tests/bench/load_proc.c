/*
 * load_proc.c - resident memory and CPU time of the server under test,
 * summed over its processes, from /proc/PID/status (RssAnon) and
 * /proc/PID/stat (utime + stime, in clock ticks: 10 ms granularity, so
 * CPU figures are meaningful over steps of seconds).
 */
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load.h"

void load_proc_resolve(load_opts_t *opts)
{
    if (opts->server_pidfile_glob == NULL)
        return;
    glob_t g;
    if (glob(opts->server_pidfile_glob, 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        FILE *f = fopen(g.gl_pathv[i], "r");
        long pid = 0;
        if (f == NULL)
            continue;
        if (fscanf(f, "%ld", &pid) == 1 && pid > 0 &&
            opts->nserver_pids < LOAD_MAX_PIDS)
            opts->server_pids[opts->nserver_pids++] = (pid_t)pid;
        fclose(f);
    }
    globfree(&g);
}

/* Private resident memory (RssAnon: heap, stacks, anonymous mappings).
 * VmRSS would also count file pages (the binary and its libraries, the
 * same pages in every process of a multi-process server) and shared
 * memory (PostgreSQL's buffer pool, again in every backend touching it),
 * neither of which grows with sessions. */
static int proc_rss(pid_t pid, uint64_t *kib)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    *kib = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "RssAnon:", 8) == 0) {
            *kib = strtoull(line + 8, NULL, 10);
            break;
        }
    }
    fclose(f);
    return 0;
}

static int proc_cpu(pid_t pid, uint64_t *us, uint64_t *user, uint64_t *sys)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* comm may hold spaces: fields restart after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* after ')': state(3) ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime(14) stime(15) */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    uint64_t div = (uint64_t)(hz > 0 ? hz : 100);
    *us = (ut + st) * 1000000ull / div;
    *user = ut * 1000000ull / div;
    *sys = st * 1000000ull / div;
    return 0;
}

void load_proc_sample(const load_opts_t *opts, load_srv_sample_t *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < opts->nserver_pids; i++) {
        uint64_t rss, cpu;
        if (proc_rss(opts->server_pids[i], &rss) < 0 ||
            proc_cpu(opts->server_pids[i], &cpu, &s->user_us[i],
                     &s->sys_us[i]) < 0)
            continue;
        s->rss_kib += rss;
        s->cpu_us += cpu;
        s->cpu_pid_us[i] = cpu;
        s->nprocs++;
    }
}

void load_proc_print_split(const load_opts_t *opts, size_t step,
                           const load_srv_sample_t *s0,
                           const load_srv_sample_t *s1)
{
    for (size_t i = 0; i < opts->nserver_pids; i++)
        fprintf(stderr,
                "STEPCPU step=%zu pid=%d user_us=%" PRIu64 " sys_us=%" PRIu64
                "\n",
                step, (int)opts->server_pids[i],
                s1->user_us[i] - s0->user_us[i], s1->sys_us[i] - s0->sys_us[i]);
}
