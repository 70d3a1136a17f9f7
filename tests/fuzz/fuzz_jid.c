/*
 * fuzz_jid.c - libFuzzer entry point for JID parsing.
 *
 * Built by `make fuzz-bin` (build/fuzz/bin), run by `make fuzz` and
 * `make fuzz-check`.
 *
 * Besides "no crash, no out-of-bounds read", it checks the invariants
 * the router relies on: the canonical form of an accepted JID parses back
 * to itself (preparation is idempotent), its bare form is a prefix, and
 * kn_jid_prepare_str() agrees with kn_jid_parse().
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kn_buf.h"
#include "kn_jid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_jid_t j, k, b;
    kn_buf_t out = KN_BUF_INIT;
    int rc = kn_jid_parse(&j, (const char *)data, size);
    int rc2 = kn_jid_prepare_str((const char *)data, size, &out);
    if (rc != rc2)
        abort();
    if (rc < 0) {
        if (out.len != 0)
            abort();
        kn_buf_free(&out);
        return 0;
    }
    if (out.len != kn_jid_len(&j) || memcmp(out.data, kn_jid_str(&j), out.len))
        abort();
    if (kn_jid_len(&j) > KN_JID_MAX || strlen(kn_jid_str(&j)) != j.len)
        abort();
    if (kn_jid_parse(&k, kn_jid_str(&j), kn_jid_len(&j)) != 0 ||
        !kn_jid_eq(&j, &k))
        abort();
    kn_jid_bare(&b, &j);
    if (!kn_jid_is_bare(&b) || !kn_jid_eq_bare(&b, &j))
        abort();
    kn_jid_free(&b);
    kn_jid_free(&k);
    kn_jid_free(&j);
    kn_buf_free(&out);
    return 0;
}
