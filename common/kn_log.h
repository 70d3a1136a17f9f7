/*
 * kn_log.h - levelled logging to stderr, journald-friendly.
 *
 * Each line starts with a syslog priority prefix ("<3>", "<4>", "<6>",
 * "<7>") that journald turns into the entry's priority, then the process
 * name and the message. A level that is off costs one integer compare:
 * the macros test kn_log_level before evaluating their arguments, so
 * serialising a stanza for a debug line happens only when debug is on
 * (R-PERF-4).
 */
#ifndef KN_LOG_H
#define KN_LOG_H

enum kn_log_level {
    KN_LOG_ERR = 0,
    KN_LOG_WARN = 1,
    KN_LOG_INFO = 2,
    KN_LOG_DEBUG = 3,
};

/* Current threshold; lines above it are skipped. Set with kn_log_init. */
extern int kn_log_level;

/* Names accepted in config ("error", "warning", "info", "debug"),
 * NULL-terminated, indexed by enum kn_log_level. */
extern const char *const kn_log_level_names[];

/* Set the process name shown on each line and the threshold. */
void kn_log_init(const char *ident, int level);

/* Write one line at level (use the macros instead). */
void kn_log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define kn_log_at(lvl, ...)                                                    \
    do {                                                                       \
        if ((lvl) <= kn_log_level)                                             \
            kn_log_write((lvl), __VA_ARGS__);                                  \
    } while (0)
#define kn_log_err(...)     kn_log_at(KN_LOG_ERR, __VA_ARGS__)
#define kn_log_warn(...)    kn_log_at(KN_LOG_WARN, __VA_ARGS__)
#define kn_log_info(...)    kn_log_at(KN_LOG_INFO, __VA_ARGS__)
#define kn_log_debug(...)   kn_log_at(KN_LOG_DEBUG, __VA_ARGS__)
#define kn_log_enabled(lvl) ((lvl) <= kn_log_level)

#endif
