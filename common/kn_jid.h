/*
 * kn_jid.h - Jabber IDs: parse, prepare, compare.
 *
 * Syntax is RFC 7622 (split at the first '/', then the first '@');
 * preparation is RFC 6122 stringprep through libidn (Nodeprep for the
 * local part, Nameprep plus host-name checks for the domain, Resourceprep
 * for the resource). Unassigned code points (Unicode 3.2 tables) are
 * allowed, so emoji resources work.
 *
 * A kn_jid_t is a small value struct (put it on the stack or embed it)
 * that owns one heap string: the canonical form "local@domain/resource",
 * NUL-terminated. The bare JID is always a prefix of the full form, so
 * routing on the bare JID needs no copy: kn_jid_str() with
 * kn_jid_bare_len() bytes.
 */
#ifndef KN_JID_H
#define KN_JID_H

#include <stdbool.h>
#include <stddef.h>

#include "kn_buf.h"

/* Maximum length of each part after preparation (RFC 7622 section 3). */
#define KN_JID_PART_MAX 1023
/* Maximum length of a canonical JID: three parts plus '@' and '/'. */
#define KN_JID_MAX (3 * KN_JID_PART_MAX + 2)
/* Maximum raw (unprepared) length of one part. Preparation may map
 * characters to nothing, so a raw part may exceed KN_JID_PART_MAX and
 * still be valid; this bounds the work done on hostile input. */
#define KN_JID_PART_RAW_MAX (4 * KN_JID_PART_MAX)

typedef struct kn_jid {
    char *str;         /* owned; canonical form, NUL-terminated */
    size_t len;        /* strlen(str) */
    size_t local_len;  /* local part is str[0..local_len); 0 if none */
    size_t domain_off; /* domain is str[domain_off..+domain_len) */
    size_t domain_len;
    size_t resource_off; /* resource is str[resource_off..+resource_len) */
    size_t resource_len; /* 0 for a bare JID */
} kn_jid_t;

#define KN_JID_INIT                                                            \
    {                                                                          \
        NULL, 0, 0, 0, 0, 0, 0                                                 \
    }

/* Parse and prepare s[0..len) (need not be NUL-terminated; may contain
 * any bytes) into *out. On success *out owns a new string; release it
 * with kn_jid_free(). On failure *out is left as KN_JID_INIT (nothing to
 * free, though kn_jid_free() is harmless). Whatever *out held before is
 * overwritten without being freed.
 * Returns 0, or -KN_EINVAL for any invalid JID: bad UTF-8, NUL bytes,
 * empty or over-long part, prohibited character, bad domain. Safe on
 * any peer input; never asserts on it. */
int kn_jid_parse(kn_jid_t *out, const char *s, size_t len);

/* Prepare s[0..len) as kn_jid_parse() does and append the canonical
 * string to *out (the buffer stays NUL-terminated). On failure *out is
 * unchanged. Returns 0 or -KN_EINVAL. */
int kn_jid_prepare_str(const char *s, size_t len, kn_buf_t *out);

/* Free the string a parsed JID owns and reset it to KN_JID_INIT.
 * Idempotent; NULL-safe. */
void kn_jid_free(kn_jid_t *j);

/* Copy *in into *out (new allocation; *out's previous contents are
 * overwritten, not freed). in must hold a parsed JID. */
void kn_jid_dup(kn_jid_t *out, const kn_jid_t *in);

/* Copy the bare part (local@domain) of *in into *out (new allocation, as
 * kn_jid_dup()). in must hold a parsed JID. */
void kn_jid_bare(kn_jid_t *out, const kn_jid_t *in);

/* Whole-JID equality of two parsed JIDs (byte comparison of canonical
 * forms: preparation already folded case where the RFC says to). */
bool kn_jid_eq(const kn_jid_t *a, const kn_jid_t *b);

/* Equality of the bare parts, ignoring resources. */
bool kn_jid_eq_bare(const kn_jid_t *a, const kn_jid_t *b);

/* True if the JID has no resource. */
bool kn_jid_is_bare(const kn_jid_t *j);

/* Canonical full form, NUL-terminated; borrowed from *j, valid until
 * kn_jid_free(j). */
const char *kn_jid_str(const kn_jid_t *j);

/* Length of kn_jid_str(). */
size_t kn_jid_len(const kn_jid_t *j);

/* Length of the bare prefix ("local@domain") of kn_jid_str(). */
size_t kn_jid_bare_len(const kn_jid_t *j);

/* Parts, borrowed from *j and NOT NUL-terminated (except the resource,
 * which ends the string); *len gets the length. kn_jid_local() and
 * kn_jid_resource() return NULL with *len = 0 when the part is absent. */
const char *kn_jid_local(const kn_jid_t *j, size_t *len);
const char *kn_jid_domain(const kn_jid_t *j, size_t *len);
const char *kn_jid_resource(const kn_jid_t *j, size_t *len);

#endif
