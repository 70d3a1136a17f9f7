/*
 * kn_block.h - XEP-0191 block lists: a compact set of prepared JIDs and
 * the JID matching rules of XEP-0191 (the XEP-0016 order).
 *
 * A block item is a prepared JID of one of four forms, and matches:
 *   user@domain/resource   only that full JID
 *   user@domain            that bare JID with any resource
 *   domain/resource        that resource at the domain, any user or none
 *   domain                 the domain itself and every JID at it
 * So a JID X is blocked when the list holds one of X's four "keys": X
 * itself, its bare JID, domain/resource, domain. Each key is a substring
 * of X ("domain/resource" is X after its '@'), so matching needs no
 * copy: at most four binary searches in a sorted array.
 *
 * The list is one allocation (count, sorted index, the strings), and the
 * empty list is the NULL pointer: a holder without a list pays one
 * pointer and a matching call on NULL returns at once. Changes rebuild
 * the allocation; they are rare (a user's block or unblock command)
 * next to matching, which runs for every stanza a blocking user gets.
 */
#ifndef KN_BLOCK_H
#define KN_BLOCK_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kn_blocklist kn_blocklist_t;

/* One key of a JID: jid[off..off+len). */
typedef struct kn_block_key {
    size_t off, len;
} kn_block_key_t;

/* The keys of the prepared JID jid[0..len) in XEP-0191 order (full,
 * bare, domain/resource, domain), duplicates left out: one for a domain,
 * two for a bare JID or domain/resource, four for a full JID. Returns
 * their number (0 for len 0). Pure; never allocates. */
size_t kn_block_keys(const char *jid, size_t len, kn_block_key_t keys[4]);

/* Whether the block item item[0..ilen) matches the JID jid[0..jlen)
 * (both prepared). */
bool kn_block_item_matches(const char *item, size_t ilen, const char *jid,
                           size_t jlen);

/* A new list of the n prepared JIDs jids[i][0..lens[i]) (copied;
 * duplicates kept once). NULL when n is 0. Caller frees. */
kn_blocklist_t *kn_blocklist_new(const char *const *jids, const size_t *lens,
                                 size_t n);

/* A copy of l (NULL for NULL). */
kn_blocklist_t *kn_blocklist_dup(const kn_blocklist_t *l);

/* Free *lp and set it to NULL; idempotent. */
void kn_blocklist_free(kn_blocklist_t **lp);

/* Add jid[0..len) to *lp (which may be NULL). Returns true if it was not
 * there. */
bool kn_blocklist_add(kn_blocklist_t **lp, const char *jid, size_t len);

/* Remove jid[0..len) from *lp; *lp becomes NULL when the list empties.
 * Returns true if it was there. */
bool kn_blocklist_del(kn_blocklist_t **lp, const char *jid, size_t len);

/* Number of items (0 for NULL). */
size_t kn_blocklist_count(const kn_blocklist_t *l);

/* Item i (< count), NUL-terminated, in byte order; *len gets its length
 * (len may be NULL). Borrowed: valid until the list changes. */
const char *kn_blocklist_item(const kn_blocklist_t *l, size_t i, size_t *len);

/* Whether the list holds exactly jid[0..len) (an item, not a match). */
bool kn_blocklist_has(const kn_blocklist_t *l, const char *jid, size_t len);

/* Whether an item of l matches the prepared JID jid[0..len) (see the
 * rules above). False for a NULL list or an empty JID. No allocation. */
bool kn_blocklist_match(const kn_blocklist_t *l, const char *jid, size_t len);

#endif
