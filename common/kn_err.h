/*
 * kn_err.h - error codes and assertions shared by every Kiln module.
 *
 * Three kinds of error, one mechanism each (docs/STYLE in shared/):
 *   - programmer error: KN_ASSERT(), always compiled in, prints file:line
 *     and aborts;
 *   - out of memory: the kn_malloc() family aborts (kn_mem.h);
 *   - peer or environment: functions return -KN_E* (a negative int), and
 *     the edge converts it once into an XMPP stream or stanza error.
 * "Would block" (KN_EAGAIN) is a normal result, not a failure.
 */
#ifndef KN_ERR_H
#define KN_ERR_H

#include <stdio.h>
#include <stdlib.h>

enum {
    KN_OK = 0,
    KN_EAGAIN = 1,  /* would block / need more input: not an error */
    KN_EPROTO = 2,  /* peer violated a protocol */
    KN_ETOOBIG = 3, /* a limit was exceeded */
    KN_EAUTH = 4,   /* authentication failed */
    KN_EIO = 5,     /* socket or file error */
    KN_EDB = 6,     /* database error */
    KN_EINVAL = 7,  /* invalid value from the environment (config, JID) */
    KN_ENOENT = 8,  /* no such thing */
    KN_ECLOSED = 9, /* the other end went away */
    KN_EEXIST = 10, /* already exists (e.g. an account name) */
};

/* Human-readable name of a KN_E* code (positive or negative). Never NULL. */
static inline const char *kn_strerror(int err)
{
    switch (err < 0 ? -err : err) {
    case KN_OK:
        return "ok";
    case KN_EAGAIN:
        return "would block";
    case KN_EPROTO:
        return "protocol error";
    case KN_ETOOBIG:
        return "limit exceeded";
    case KN_EAUTH:
        return "authentication failed";
    case KN_EIO:
        return "i/o error";
    case KN_EDB:
        return "database error";
    case KN_EINVAL:
        return "invalid value";
    case KN_ENOENT:
        return "not found";
    case KN_ECLOSED:
        return "closed";
    case KN_EEXIST:
        return "already exists";
    default:
        return "unknown error";
    }
}

#define KN_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "<2>%s:%d: assertion failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define KN_UNUSED(x)    ((void)(x))
#define KN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
