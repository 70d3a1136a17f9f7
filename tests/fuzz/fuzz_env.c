/*
 * fuzz_env.c - libFuzzer entry point for the router-wire envelope codec.
 *
 * Built by `make fuzz-bin` (build/fuzz/bin), run by `make fuzz` and
 * `make fuzz-check`.
 *
 * The encoding is canonical, so any frame the decoder accepts must
 * re-encode to exactly the same bytes. The same bytes are also walked as
 * a bundle (KN_F_BUNDLE payload, kn_env_bundle_next): a bundle read to
 * its end must be rebuilt, item by item, to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kn_buf.h"
#include "kn_env.h"
#include "kn_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_bundle(const uint8_t *data, size_t size)
{
    kn_buf_t re = KN_BUF_INIT;
    size_t off = 0;
    kn_env_t e;
    const void *pl;
    size_t len;
    int rc;
    while ((rc = kn_env_bundle_next(data, size, &off, &e, &pl, &len)) > 0) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < len; i++)
            sink += ((const uint8_t *)pl)[i];
        (void)sink;
        if (kn_env_bundle_add(&re, &e, pl, len) != 0)
            abort();
    }
    if (rc == 0 &&
        (re.len != size || (size > 0 && memcmp(re.data, data, size) != 0)))
        abort();
    kn_buf_free(&re);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    walk_bundle(data, size);
    kn_env_t e;
    int rc = kn_env_decode(data, size, &e);
    if (rc == -KN_EPROTO || rc == -KN_ETOOBIG)
        return 0;
    if (rc != 0)
        abort();
    /* Touch every borrowed byte so ASan sees any bad pointer. */
    volatile uint64_t sink = 0;
    for (size_t i = 0; i < e.ntargets; i++)
        sink += kn_env_target(&e, i);
    for (size_t i = 0; i < e.from_len; i++)
        sink += (uint8_t)e.from[i];
    for (size_t i = 0; i < e.to_len; i++)
        sink += (uint8_t)e.to[i];
    for (size_t i = 0; i < e.node_len; i++)
        sink += (uint8_t)e.node[i];
    (void)sink;
    (void)kn_env_kind_name(e.kind);
    (void)kn_env_reason_name(e.reason);

    kn_buf_t out = KN_BUF_INIT;
    if (kn_env_encode(&e, &out) != 0 || out.len != size ||
        memcmp(out.data, data, size) != 0)
        abort();
    kn_buf_free(&out);
    return 0;
}
