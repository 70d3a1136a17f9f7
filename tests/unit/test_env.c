/*
 * test_env.c - the router-wire envelope codec: exact bytes of a known
 * frame, round trips of every kind, every truncation, bad magic and
 * version, enum ranges, trailing bytes, size limits, and the name and
 * type-attribute helpers.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kn_env.h"
#include "kn_err.h"
#include "kn_proto.h"

static void expect_same(const kn_env_t *a, const kn_env_t *b)
{
    ck_assert_int_eq(a->kind, b->kind);
    ck_assert_int_eq(a->stanza, b->stanza);
    ck_assert_int_eq(a->type, b->type);
    ck_assert_int_eq(a->reason, b->reason);
    ck_assert_uint_eq(a->flags, b->flags);
    ck_assert_int_eq(a->priority, b->priority);
    ck_assert(a->conn_id == b->conn_id);
    ck_assert_uint_eq(a->seq, b->seq);
    ck_assert(a->ack_id == b->ack_id);
    ck_assert_uint_eq(a->from_len, b->from_len);
    ck_assert_uint_eq(a->to_len, b->to_len);
    ck_assert_uint_eq(a->node_len, b->node_len);
    if (a->from_len)
        ck_assert_int_eq(memcmp(a->from, b->from, a->from_len), 0);
    if (a->to_len)
        ck_assert_int_eq(memcmp(a->to, b->to, a->to_len), 0);
    if (a->node_len)
        ck_assert_int_eq(memcmp(a->node, b->node, a->node_len), 0);
    ck_assert_uint_eq(a->ntargets, b->ntargets);
    for (size_t i = 0; i < a->ntargets; i++)
        ck_assert(kn_env_target(a, i) == kn_env_target(b, i));
}

/* Encode, decode, compare, re-encode to the same bytes; check that
 * every proper prefix fails with -KN_EPROTO (ASan watches the reads:
 * each prefix is copied to its own exact-size allocation). */
static void round_trip(const kn_env_t *in, int check_prefixes)
{
    kn_buf_t b = KN_BUF_INIT, b2 = KN_BUF_INIT;
    ck_assert_int_eq(kn_env_encode(in, &b), 0);
    ck_assert_uint_eq(b.len, KN_ENV_MIN_BYTES + in->from_len + in->to_len +
                                 in->node_len + 8 * in->ntargets);
    char *frame = malloc(b.len);
    memcpy(frame, b.data, b.len);
    kn_env_t out;
    ck_assert_int_eq(kn_env_decode(frame, b.len, &out), 0);
    expect_same(in, &out);
    ck_assert_ptr_null(out.targets);
    ck_assert_int_eq(kn_env_encode(&out, &b2), 0);
    ck_assert_uint_eq(b2.len, b.len);
    ck_assert_int_eq(memcmp(b.data, b2.data, b.len), 0);

    if (check_prefixes) {
        for (size_t n = 0; n < b.len; n++) {
            char *p = malloc(n ? n : 1);
            memcpy(p, b.data, n);
            ck_assert_msg(kn_env_decode(p, n, &out) == -KN_EPROTO,
                          "prefix %zu of %zu accepted", n, b.len);
            ck_assert_int_eq(out.kind, 0);
            free(p);
        }
    }
    free(frame);
    kn_buf_free(&b);
    kn_buf_free(&b2);
}

static const uint64_t some_targets[] = {1, 0, UINT64_MAX, 0x0102030405060708ull,
                                        42};

START_TEST(exact_bytes)
{
    const uint64_t t[] = {0x1122334455667788ull};
    kn_env_t e = {
        .kind = KN_ENV_MULTICAST,
        .stanza = KN_ENV_ST_PRESENCE,
        .type = KN_ENV_TYPE_UNAVAILABLE,
        .reason = KN_ENV_REASON_DROPPED,
        .flags = 0xABCD,
        .priority = -2,
        .conn_id = 0x0102030405060708ull,
        .seq = 0xDEADBEEF,
        .ack_id = 0x8877665544332211ull,
        .link = 0x0003000000000102ull,
        .from = "a@b/c",
        .from_len = 5,
        .to = "d@e",
        .to_len = 3,
        .node = "c2s-a",
        .node_len = 5,
        .ntargets = 1,
        .targets = t,
    };
    /* clang-format off */
    static const unsigned char want[] = {
        'K', 3,                         /* magic, version */
        2, 2, 6, 2,                     /* multicast presence unavail. dropped */
        0xAB, 0xCD,                     /* flags */
        0xFF, 0xFE,                     /* priority -2 */
        1, 2, 3, 4, 5, 6, 7, 8,         /* conn id */
        0xDE, 0xAD, 0xBE, 0xEF,         /* seq */
        0x88, 0x77, 0x66, 0x55,         /* ack id */
        0x44, 0x33, 0x22, 0x11,
        0, 3, 0, 0, 0, 0, 1, 2,         /* link */
        0, 5, 'a', '@', 'b', '/', 'c',  /* from */
        0, 3, 'd', '@', 'e',            /* to */
        0, 5, 'c', '2', 's', '-', 'a',  /* node */
        0, 0, 0, 1,                     /* one target */
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    };
    /* clang-format on */
    kn_buf_t b = KN_BUF_INIT;
    kn_buf_append_str(&b, "xy"); /* encode appends */
    ck_assert_int_eq(kn_env_encode(&e, &b), 0);
    ck_assert_uint_eq(b.len, 2 + sizeof(want));
    ck_assert_int_eq(memcmp(b.data + 2, want, sizeof(want)), 0);
    kn_env_t d;
    ck_assert_int_eq(kn_env_decode(want, sizeof(want), &d), 0);
    ck_assert_int_eq(d.priority, -2);
    ck_assert_ptr_eq(d.from, (const char *)want + 40);
    ck_assert(d.link == 0x0003000000000102ull);
    ck_assert(d.ack_id == 0x8877665544332211ull);
    ck_assert(kn_env_target(&d, 0) == 0x1122334455667788ull);
    kn_buf_free(&b);

    /* The smallest frame: all fields zero or empty. */
    kn_env_t z = {.kind = KN_ENV_HEARTBEAT};
    ck_assert_int_eq(kn_env_encode(&z, &b), 0);
    ck_assert_uint_eq(b.len, KN_ENV_MIN_BYTES);
    ck_assert_uint_eq(KN_ENV_MIN_BYTES, 48);
    ck_assert_int_eq(kn_env_decode(b.data, b.len, &d), 0);
    ck_assert_ptr_null(d.from);
    ck_assert_ptr_null(d.targets_wire);
    kn_buf_free(&b);
}
END_TEST

START_TEST(every_kind_round_trips)
{
    static const struct {
        kn_env_stanza_t st;
        kn_env_type_t ty;
    } shapes[] = {
        {KN_ENV_ST_NONE, KN_ENV_TYPE_NONE},
        {KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT},
        {KN_ENV_ST_PRESENCE, KN_ENV_TYPE_PROBE},
        {KN_ENV_ST_IQ, KN_ENV_TYPE_ERROR},
    };
    for (int k = KN_ENV_STANZA; k <= KN_ENV_KIND_MAX; k++) {
        for (size_t s = 0; s < KN_ARRAY_LEN(shapes); s++) {
            kn_env_t e = {
                .kind = (kn_env_kind_t)k,
                .stanza = shapes[s].st,
                .type = shapes[s].ty,
                .reason = (kn_env_reason_t)(k % (KN_ENV_REASON_MAX + 1)),
                .flags = (uint16_t)(0xFFFF - k),
                .priority = (int16_t)(s & 1 ? -128 + k : 127 - k),
                .conn_id = UINT64_MAX - (uint64_t)k,
                .seq = (uint32_t)k * 0x01000193u,
                .ack_id = (uint64_t)k << (8 * s),
                .from = "juliet@example.com/balcony",
                .from_len = 26,
                .to = "romeo@example.net",
                .to_len = 17,
                .node = "c2s-a",
                .node_len = 5,
                .ntargets = s,
                .targets = some_targets,
            };
            round_trip(&e, 1);
            /* Empty strings and no targets. */
            e.from_len = e.to_len = e.node_len = 0;
            e.ntargets = 0;
            round_trip(&e, 1);
        }
    }
}
END_TEST

START_TEST(extremes_round_trip)
{
    char *big = malloc(KN_ENV_STR_MAX);
    memset(big, 'x', KN_ENV_STR_MAX);
    kn_env_t e = {
        .kind = KN_ENV_MULTICAST,
        .stanza = KN_ENV_ST_MESSAGE,
        .type = KN_ENV_TYPE_GROUPCHAT,
        .priority = INT16_MIN,
        .from = big,
        .from_len = KN_ENV_STR_MAX,
        .to = big,
        .to_len = KN_ENV_STR_MAX,
        .node = big,
        .node_len = KN_ENV_STR_MAX,
    };
    round_trip(&e, 1);
    e.priority = INT16_MAX;
    round_trip(&e, 0);

    /* The largest target list that fits. */
    uint64_t *t = malloc(KN_ENV_TARGETS_MAX * sizeof(*t));
    for (size_t i = 0; i < KN_ENV_TARGETS_MAX; i++)
        t[i] = i * 0x9E3779B97F4A7C15ull;
    e.targets = t;
    e.ntargets = KN_ENV_TARGETS_MAX;
    round_trip(&e, 0);

    /* One more target is too big; the buffer is left alone. */
    uint64_t *t2 = malloc((KN_ENV_TARGETS_MAX + 1) * sizeof(*t2));
    memset(t2, 0, (KN_ENV_TARGETS_MAX + 1) * sizeof(*t2));
    e.targets = t2;
    e.ntargets = KN_ENV_TARGETS_MAX + 1;
    kn_buf_t b = KN_BUF_INIT;
    ck_assert_int_eq(kn_env_encode(&e, &b), -KN_ETOOBIG);
    ck_assert_uint_eq(b.len, 0);
    e.ntargets = 0;
    e.from_len = KN_ENV_STR_MAX + 1;
    ck_assert_int_eq(kn_env_encode(&e, &b), -KN_ETOOBIG);
    ck_assert_uint_eq(b.len, 0);
    kn_buf_free(&b);
    free(t);
    free(t2);
    free(big);
}
END_TEST

/* R-PRES-5: an offline row id rides in a STANZA's ack id, unchanged at
 * both ends of the u64 range; the ACK that comes back carries a batch of
 * them in its target list. */
START_TEST(ack_id_and_ack_batch)
{
    static const uint64_t ids[] = {1, 2, 0x7FFFFFFFFFFFFFFFull, UINT64_MAX};
    for (size_t i = 0; i < KN_ARRAY_LEN(ids); i++) {
        kn_env_t e = {
            .kind = KN_ENV_STANZA,
            .stanza = KN_ENV_ST_MESSAGE,
            .type = KN_ENV_TYPE_CHAT,
            .flags = KN_F_ACK_WANTED,
            .conn_id = 0x0001000000000005ull,
            .ack_id = ids[i],
            .from = "a@b/c",
            .from_len = 5,
            .to = "d@e/f",
            .to_len = 5,
        };
        round_trip(&e, 1);
        kn_buf_t b = KN_BUF_INIT;
        ck_assert_int_eq(kn_env_encode(&e, &b), 0);
        /* Big-endian at offset 22, right after seq. */
        for (int k = 0; k < 8; k++)
            ck_assert_uint_eq((unsigned char)b.data[22 + k],
                              (unsigned)(ids[i] >> (56 - 8 * k)) & 0xFF);
        kn_buf_free(&b);
    }
    uint64_t *batch = malloc(1000 * sizeof(*batch));
    for (size_t i = 0; i < 1000; i++)
        batch[i] = 1000000000000ull + i;
    kn_env_t a = {
        .kind = KN_ENV_ACK,
        .conn_id = 0x0002000000000009ull,
        .from = "d@e/f",
        .from_len = 5,
        .ntargets = 1000,
        .targets = batch,
    };
    round_trip(&a, 0);
    free(batch);
}
END_TEST

/* A valid frame to corrupt: MULTICAST, message/chat, 2 targets. */
static void sample(kn_buf_t *b)
{
    kn_env_t e = {
        .kind = KN_ENV_MULTICAST,
        .stanza = KN_ENV_ST_MESSAGE,
        .type = KN_ENV_TYPE_CHAT,
        .from = "a@b",
        .from_len = 3,
        .to = "c@d",
        .to_len = 3,
        .node = "n",
        .node_len = 1,
        .ntargets = 2,
        .targets = some_targets,
    };
    kn_buf_reset(b);
    ck_assert_int_eq(kn_env_encode(&e, b), 0);
}

static int decode_copy(const kn_buf_t *b)
{
    char *p = malloc(b->len ? b->len : 1);
    memcpy(p, b->data, b->len);
    kn_env_t e;
    int rc = kn_env_decode(p, b->len, &e);
    free(p);
    return rc;
}

START_TEST(bad_frames)
{
    kn_buf_t b = KN_BUF_INIT;
    sample(&b);
    ck_assert_int_eq(decode_copy(&b), 0);

    b.data[0] = 'k';
    ck_assert_int_eq(decode_copy(&b), -KN_EPROTO);
    sample(&b);
    b.data[1] = 4; /* future version */
    ck_assert_int_eq(decode_copy(&b), -KN_EPROTO);
    b.data[1] = 0;
    ck_assert_int_eq(decode_copy(&b), -KN_EPROTO);
    b.data[1] = 1; /* version 1 had no ack id */
    ck_assert_int_eq(decode_copy(&b), -KN_EPROTO);
    b.data[1] = 2; /* version 2 had no link sequence */
    ck_assert_int_eq(decode_copy(&b), -KN_EPROTO);

    /* Trailing garbage, one byte and one whole target. */
    sample(&b);
    kn_buf_append_byte(&b, 0);
    ck_assert_int_eq(decode_copy(&b), -KN_EPROTO);
    sample(&b);
    kn_buf_append(&b, "\0\0\0\0\0\0\0\0", 8);
    ck_assert_int_eq(decode_copy(&b), -KN_EPROTO);

    /* Target count larger than the frame, including one that would
     * overflow a 32-bit multiplication. */
    sample(&b);
    size_t cnt_off = b.len - 16 - 4;
    b.data[cnt_off + 3] = 3;
    ck_assert_int_eq(decode_copy(&b), -KN_EPROTO);
    memset(b.data + cnt_off, 0xFF, 4);
    ck_assert_int_eq(decode_copy(&b), -KN_EPROTO);
    b.data[cnt_off] = 0x20; /* 0x20ffffff * 8 wraps to < 2^32 */
    ck_assert_int_eq(decode_copy(&b), -KN_EPROTO);

    /* A string length past the end, and one over the string limit. */
    sample(&b);
    b.data[KN_ENV_HEADER_BYTES + 1] = 100;
    ck_assert_int_eq(decode_copy(&b), -KN_EPROTO);
    b.data[KN_ENV_HEADER_BYTES] = (char)((KN_ENV_STR_MAX + 1) >> 8);
    b.data[KN_ENV_HEADER_BYTES + 1] = (char)((KN_ENV_STR_MAX + 1) & 0xFF);
    ck_assert_int_eq(decode_copy(&b), -KN_ETOOBIG);

    /* Whole frame over the limit. */
    kn_buf_t big = KN_BUF_INIT;
    sample(&big);
    kn_buf_reserve(&big, KN_ENV_MAX_BYTES);
    memset(big.data + big.len, 0, KN_ENV_MAX_BYTES + 1 - big.len);
    big.len = KN_ENV_MAX_BYTES + 1;
    ck_assert_int_eq(decode_copy(&big), -KN_ETOOBIG);
    kn_buf_free(&big);

    /* Empty and NULL. */
    kn_env_t e;
    ck_assert_int_eq(kn_env_decode(NULL, 0, &e), -KN_EPROTO);
    kn_buf_free(&b);
}
END_TEST

START_TEST(enum_ranges)
{
    kn_buf_t b = KN_BUF_INIT;
    /* Every value of every enum byte: accepted iff in range and the
     * stanza type fits the stanza name. */
    for (int v = 0; v < 256; v++) {
        sample(&b);
        b.data[2] = (char)v;
        ck_assert_int_eq(decode_copy(&b) == 0,
                         v >= KN_ENV_STANZA && v <= KN_ENV_KIND_MAX);
        sample(&b);
        b.data[5] = (char)v;
        ck_assert_int_eq(decode_copy(&b) == 0, v <= KN_ENV_REASON_MAX);
        for (int st = 0; st < 256; st++) {
            sample(&b);
            b.data[3] = (char)st;
            b.data[4] = (char)v;
            int ok = st <= KN_ENV_ST_MAX && v <= KN_ENV_TYPE_MAX &&
                     kn_env_type_fits((kn_env_stanza_t)st, (kn_env_type_t)v);
            ck_assert_int_eq(decode_copy(&b) == 0, ok);
        }
    }
    /* Spot checks of the fit table. */
    ck_assert(kn_env_type_fits(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_ERROR));
    ck_assert(!kn_env_type_fits(KN_ENV_ST_MESSAGE, KN_ENV_TYPE_GET));
    ck_assert(!kn_env_type_fits(KN_ENV_ST_IQ, KN_ENV_TYPE_CHAT));
    ck_assert(!kn_env_type_fits(KN_ENV_ST_PRESENCE, KN_ENV_TYPE_NONE));
    ck_assert(!kn_env_type_fits(KN_ENV_ST_NONE, KN_ENV_TYPE_ERROR));
    ck_assert(kn_env_type_fits(KN_ENV_ST_NONE, KN_ENV_TYPE_NONE));
    /* Flags and priority take any value. */
    sample(&b);
    memset(b.data + 6, 0xFF, 4);
    ck_assert_int_eq(decode_copy(&b), 0);
    kn_buf_free(&b);
}
END_TEST

START_TEST(names)
{
    ck_assert_str_eq(kn_env_kind_name(KN_ENV_STANZA), "stanza");
    ck_assert_str_eq(kn_env_kind_name(KN_ENV_SESSION_DOWN), "session_down");
    ck_assert_str_eq(kn_env_kind_name(KN_ENV_KICK), "kick");
    ck_assert_str_eq(kn_env_kind_name(KN_ENV_ACK), "ack");
    ck_assert_str_eq(kn_env_kind_name((kn_env_kind_t)0), "?");
    ck_assert_str_eq(kn_env_kind_name((kn_env_kind_t)99), "?");
    ck_assert_str_eq(kn_env_reason_name(KN_ENV_REASON_NODE_LOST), "node_lost");
    ck_assert_str_eq(kn_env_reason_name(KN_ENV_REASON_CONFLICT), "conflict");
    ck_assert_str_eq(kn_env_reason_name(KN_ENV_REASON_REMOVED), "removed");
    ck_assert_str_eq(kn_env_reason_name((kn_env_reason_t)8), "?");
    ck_assert_str_eq(kn_env_stanza_name(KN_ENV_ST_PRESENCE), "presence");
    ck_assert_str_eq(kn_env_stanza_name((kn_env_stanza_t)4), "?");
    ck_assert_str_eq(kn_env_type_name(KN_ENV_TYPE_GROUPCHAT), "groupchat");
    ck_assert_str_eq(kn_env_type_name(KN_ENV_TYPE_AVAILABLE), "");
    ck_assert_str_eq(kn_env_type_name((kn_env_type_t)16), "?");
    for (int k = KN_ENV_STANZA; k <= KN_ENV_KIND_MAX; k++)
        ck_assert_str_ne(kn_env_kind_name((kn_env_kind_t)k), "?");
    for (int r = 0; r <= KN_ENV_REASON_MAX; r++)
        ck_assert_str_ne(kn_env_reason_name((kn_env_reason_t)r), "?");
}
END_TEST

START_TEST(type_attributes)
{
    kn_env_type_t t;
    ck_assert_int_eq(kn_env_stanza_from_name("message"), KN_ENV_ST_MESSAGE);
    ck_assert_int_eq(kn_env_stanza_from_name("presence"), KN_ENV_ST_PRESENCE);
    ck_assert_int_eq(kn_env_stanza_from_name("iq"), KN_ENV_ST_IQ);
    ck_assert_int_eq(kn_env_stanza_from_name("Message"), KN_ENV_ST_NONE);
    ck_assert_int_eq(kn_env_stanza_from_name("stream"), KN_ENV_ST_NONE);
    ck_assert_int_eq(kn_env_stanza_from_name(NULL), KN_ENV_ST_NONE);

    /* message: absent or unknown is normal */
    static const char *msg[] = {"normal", "chat", "groupchat", "headline",
                                "error"};
    for (size_t i = 0; i < KN_ARRAY_LEN(msg); i++) {
        ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_MESSAGE, msg[i], &t),
                         0);
        ck_assert_str_eq(kn_env_type_name(t), msg[i]);
    }
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_MESSAGE, NULL, &t), 0);
    ck_assert_int_eq(t, KN_ENV_TYPE_NORMAL);
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_MESSAGE, "bogus", &t), 0);
    ck_assert_int_eq(t, KN_ENV_TYPE_NORMAL);
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_MESSAGE, "get", &t), 0);
    ck_assert_int_eq(t, KN_ENV_TYPE_NORMAL);
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_MESSAGE, "", &t), 0);
    ck_assert_int_eq(t, KN_ENV_TYPE_NORMAL);

    /* presence: absent is available, unknown is an error */
    static const char *pres[] = {"unavailable", "subscribe",    "subscribed",
                                 "unsubscribe", "unsubscribed", "probe",
                                 "error"};
    for (size_t i = 0; i < KN_ARRAY_LEN(pres); i++) {
        ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_PRESENCE, pres[i], &t),
                         0);
        ck_assert_str_eq(kn_env_type_name(t), pres[i]);
    }
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_PRESENCE, NULL, &t), 0);
    ck_assert_int_eq(t, KN_ENV_TYPE_AVAILABLE);
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_PRESENCE, "available", &t),
                     -KN_EPROTO);
    ck_assert_int_eq(t, KN_ENV_TYPE_NONE);
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_PRESENCE, "chat", &t),
                     -KN_EPROTO);
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_PRESENCE, "", &t),
                     -KN_EPROTO);

    /* iq: type required */
    static const char *iq[] = {"get", "set", "result", "error"};
    for (size_t i = 0; i < KN_ARRAY_LEN(iq); i++) {
        ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_IQ, iq[i], &t), 0);
        ck_assert_str_eq(kn_env_type_name(t), iq[i]);
    }
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_IQ, NULL, &t), -KN_EPROTO);
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_IQ, "GET", &t), -KN_EPROTO);
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_IQ, "normal", &t),
                     -KN_EPROTO);
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_NONE, "chat", &t),
                     -KN_EPROTO);
    ck_assert_int_eq(kn_env_type_from_str(KN_ENV_ST_NONE, NULL, &t),
                     -KN_EPROTO);
}
END_TEST

/* Bundles (KN_F_BUNDLE): items come back in order with their envelopes
 * and payloads; every truncation of the bundle is refused at the bad
 * item, never read past. */
START_TEST(bundle_roundtrip_and_truncation)
{
    kn_buf_t b = KN_BUF_INIT;
    const char *from[3] = {"a@x/1", "b@x/2", "c@x"};
    const char *pl[3] = {"<presence from='a@x/1' to='z@x/r'/>",
                         "<presence from='b@x/2' to='z@x/r'><show>away</show>"
                         "</presence>",
                         ""};
    for (int i = 0; i < 3; i++) {
        kn_env_t e = {0};
        e.kind = KN_ENV_STANZA;
        e.stanza = KN_ENV_ST_PRESENCE;
        e.type = i == 2 ? KN_ENV_TYPE_UNAVAILABLE : KN_ENV_TYPE_AVAILABLE;
        e.from = from[i];
        e.from_len = strlen(from[i]);
        e.to = "z@x/r";
        e.to_len = 5;
        ck_assert_int_eq(kn_env_bundle_add(&b, &e, pl[i], strlen(pl[i])), 0);
    }
    size_t off = 0;
    kn_env_t e;
    const void *p;
    size_t len;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(kn_env_bundle_next(b.data, b.len, &off, &e, &p, &len),
                         1);
        ck_assert_int_eq(e.kind, KN_ENV_STANZA);
        ck_assert_int_eq(e.type, i == 2 ? KN_ENV_TYPE_UNAVAILABLE
                                        : KN_ENV_TYPE_AVAILABLE);
        ck_assert_uint_eq(e.from_len, strlen(from[i]));
        ck_assert(memcmp(e.from, from[i], e.from_len) == 0);
        ck_assert_uint_eq(len, strlen(pl[i]));
        ck_assert(memcmp(p, pl[i], len) == 0);
    }
    ck_assert_int_eq(kn_env_bundle_next(b.data, b.len, &off, &e, &p, &len), 0);
    ck_assert_uint_eq(off, b.len);
    /* Every shorter bundle: the items before the cut, then an error
     * (or the clean end exactly at an item boundary). */
    for (size_t cut = 0; cut < b.len; cut++) {
        char *copy = malloc(cut + 1); /* exact size: ASan sees overreads */
        memcpy(copy, b.data, cut);
        off = 0;
        int rc, n = 0;
        while ((rc = kn_env_bundle_next(copy, cut, &off, &e, &p, &len)) > 0)
            n++;
        ck_assert(rc == 0 || rc == -KN_EPROTO);
        ck_assert_int_lt(n, 3);
        if (rc == 0)
            ck_assert_uint_eq(off, cut);
        free(copy);
    }
    /* A length field past the end. */
    unsigned char bad[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    off = 0;
    ck_assert_int_eq(kn_env_bundle_next(bad, sizeof(bad), &off, &e, &p, &len),
                     -KN_EPROTO);
    kn_buf_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("env");
    TCase *tc = tcase_create("env");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, exact_bytes);
    tcase_add_test(tc, every_kind_round_trips);
    tcase_add_test(tc, extremes_round_trip);
    tcase_add_test(tc, ack_id_and_ack_batch);
    tcase_add_test(tc, bad_frames);
    tcase_add_test(tc, enum_ranges);
    tcase_add_test(tc, names);
    tcase_add_test(tc, type_attributes);
    tcase_add_test(tc, bundle_roundtrip_and_truncation);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
