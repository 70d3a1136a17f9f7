/*
 * kn_log.c - one formatted write(2) per line to stderr, so lines from
 * several processes sharing a terminal or journal do not interleave.
 */
#include "kn_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int kn_log_level = KN_LOG_INFO;
const char *const kn_log_level_names[] = {"error", "warning", "info", "debug",
                                          NULL};
static char log_ident[64] = "kiln";
static const char log_prio[] = {'3', '4', '6', '7'};
/* Under systemd (JOURNAL_STREAM set) journald stamps each line itself;
 * elsewhere (files, terminals) we add a wall-clock time. */
static int log_stamp = -1;

void kn_log_init(const char *ident, int level)
{
    if (ident != NULL)
        snprintf(log_ident, sizeof(log_ident), "%s", ident);
    if (level < KN_LOG_ERR)
        level = KN_LOG_ERR;
    if (level > KN_LOG_DEBUG)
        level = KN_LOG_DEBUG;
    kn_log_level = level;
}

void kn_log_write(int level, const char *fmt, ...)
{
    char line[2048];
    int lv = level < 0 ? 0 : level > KN_LOG_DEBUG ? KN_LOG_DEBUG : level;
    if (log_stamp < 0)
        log_stamp = getenv("JOURNAL_STREAM") == NULL;
    int n;
    if (log_stamp) {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        localtime_r(&tv.tv_sec, &tm);
        n = snprintf(line, sizeof(line),
                     "<%c>%02d:%02d:%02d.%03d %s: ", log_prio[lv], tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000), log_ident);
    } else {
        n = snprintf(line, sizeof(line), "<%c>%s: ", log_prio[lv], log_ident);
    }
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
