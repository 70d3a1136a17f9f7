/*
 * test_c2s_smq.c - XEP-0198 counters and the unacknowledged queue
 * (c2s_smq.c, R-DROP-5): h acknowledges exactly the oldest stanzas, in
 * order, once; counters wrap at 2^32 (canned values around the wrap); an
 * h above what was sent is refused and changes nothing; a repeated h
 * acknowledges nothing; the ring survives growth after partial acks;
 * the handover encoding round-trips and a damaged buffer is refused.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_smq.h"
#include "kn_err.h"
#include "kn_proto.h"

static c2s_smq_item_t *item(const char *body, uint64_t ack_id)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.from = "b@localhost/x";
    e.from_len = strlen(e.from);
    e.to = "a@localhost/y";
    e.to_len = strlen(e.to);
    e.ack_id = ack_id;
    e.flags = ack_id ? KN_F_ACK_WANTED : 0;
    return c2s_smq_item_new(&e, body, strlen(body));
}

typedef struct seen {
    char got[64][16];
    uint64_t ids[64];
    size_t n;
} seen_t;

static void on_done(void *ud, const c2s_smq_item_t *it)
{
    seen_t *s = ud;
    snprintf(s->got[s->n], sizeof(s->got[0]), "%.*s", (int)it->len,
             c2s_smq_item_bytes(it));
    s->ids[s->n++] = it->ack_id;
}

START_TEST(ack_removes_oldest_in_order_R_DROP_5)
{
    c2s_smq_t q;
    c2s_smq_init(&q, 0);
    seen_t s = {0};
    c2s_smq_push(&q, item("m1", 0));
    c2s_smq_push(&q, item("m2", 42));
    c2s_smq_push(&q, item("m3", 0));
    ck_assert_uint_eq(q.sent, 3);
    ck_assert_uint_eq(c2s_smq_pending(&q), 3);
    ck_assert_int_eq(c2s_smq_ack(&q, 2, on_done, &s), 2);
    ck_assert_uint_eq(s.n, 2);
    ck_assert_str_eq(s.got[0], "m1");
    ck_assert_str_eq(s.got[1], "m2");
    ck_assert(s.ids[1] == 42);
    ck_assert_uint_eq(q.acked, 2);
    /* A repeated h acknowledges nothing again. */
    ck_assert_int_eq(c2s_smq_ack(&q, 2, on_done, &s), 0);
    ck_assert_uint_eq(s.n, 2);
    /* h above what was sent: refused, nothing changes. */
    ck_assert_int_eq(c2s_smq_ack(&q, 4, on_done, &s), -KN_EPROTO);
    ck_assert_uint_eq(c2s_smq_pending(&q), 1);
    ck_assert_uint_eq(q.acked, 2);
    ck_assert_int_eq(c2s_smq_ack(&q, 3, on_done, &s), 1);
    ck_assert_str_eq(s.got[2], "m3");
    ck_assert_uint_eq(c2s_smq_pending(&q), 0);
    ck_assert_ptr_null(q.v);
    ck_assert_uint_eq(q.bytes, 0);
    c2s_smq_clear(&q);
}
END_TEST

START_TEST(counters_wrap_at_2_32_R_DROP_5)
{
    c2s_smq_t q;
    c2s_smq_init(&q, UINT32_MAX - 1); /* 4294967294 */
    seen_t s = {0};
    for (int i = 0; i < 5; i++) {
        char b[16];
        snprintf(b, sizeof(b), "w%d", i);
        c2s_smq_push(&q, item(b, 0));
    }
    /* 4294967294 + 5 = 3 (mod 2^32). */
    ck_assert_uint_eq(q.sent, 3);
    ck_assert_uint_eq(c2s_smq_pending(&q), 5);
    /* The client handled two: 4294967294 + 2 = 0 (mod 2^32). */
    ck_assert_int_eq(c2s_smq_ack(&q, 0, on_done, &s), 2);
    ck_assert_str_eq(s.got[0], "w0");
    ck_assert_str_eq(s.got[1], "w1");
    /* One below the last h (an old ack, wrapped): it would acknowledge
     * 2^32 - 1 stanzas, more than were sent. */
    ck_assert_int_eq(c2s_smq_ack(&q, UINT32_MAX, on_done, &s), -KN_EPROTO);
    ck_assert_int_eq(c2s_smq_ack(&q, 4, on_done, &s), -KN_EPROTO);
    ck_assert_int_eq(c2s_smq_ack(&q, 3, on_done, &s), 3);
    ck_assert_str_eq(s.got[4], "w4");
    ck_assert_uint_eq(c2s_smq_pending(&q), 0);
    /* The incoming counter wraps the same way. */
    q.in = UINT32_MAX;
    q.in++;
    ck_assert_uint_eq(q.in, 0);
    c2s_smq_clear(&q);
}
END_TEST

START_TEST(ring_grows_after_partial_acks_R_DROP_5)
{
    c2s_smq_t q;
    c2s_smq_init(&q, 1000);
    uint32_t next_ack = 1000;
    int pushed = 0, acked = 0;
    seen_t s = {0};
    for (int round = 0; round < 40; round++) {
        for (int k = 0; k < 7; k++) {
            char b[16];
            snprintf(b, sizeof(b), "%d", pushed++);
            c2s_smq_push(&q, item(b, 0));
        }
        next_ack += 5;
        s.n = 0;
        ck_assert_int_eq(c2s_smq_ack(&q, next_ack, on_done, &s), 5);
        for (size_t i = 0; i < 5; i++) {
            char b[16];
            snprintf(b, sizeof(b), "%d", acked++);
            ck_assert_str_eq(s.got[i], b);
        }
        ck_assert_uint_eq(c2s_smq_pending(&q), (size_t)(pushed - acked));
        ck_assert_uint_eq((uint32_t)(q.sent - q.acked), pushed - acked);
    }
    /* The oldest pending item is the first unacked one. */
    const c2s_smq_item_t *it = c2s_smq_at(&q, 0);
    char b[16];
    snprintf(b, sizeof(b), "%d", acked);
    ck_assert_int_eq(memcmp(c2s_smq_item_bytes(it), b, it->len), 0);
    ck_assert_ptr_null(c2s_smq_at(&q, c2s_smq_pending(&q)));
    c2s_smq_clear(&q);
    ck_assert_uint_eq(q.bytes, 0);
}
END_TEST

START_TEST(handover_encoding_round_trips_R_DROP_5)
{
    c2s_smq_t q, r;
    c2s_smq_init(&q, 7);
    c2s_smq_push(&q, item("<message>1</message>", 0));
    c2s_smq_push(&q, item("<message>2</message>", 99));
    c2s_smq_push(&q, c2s_smq_item_new(NULL, "<iq/>", 5));
    seen_t s = {0};
    ck_assert_int_eq(c2s_smq_ack(&q, 8, on_done, &s), 1);
    kn_buf_t b = KN_BUF_INIT;
    c2s_smq_encode(&q, &b);
    /* The receiving node counts from the client's h. */
    c2s_smq_init(&r, 8);
    ck_assert_int_eq(c2s_smq_decode(&r, b.data, b.len), 2);
    ck_assert_uint_eq(r.sent, 10);
    ck_assert_uint_eq(c2s_smq_pending(&r), 2);
    const c2s_smq_item_t *a = c2s_smq_at(&r, 0);
    ck_assert_int_eq(a->len, 20);
    ck_assert_int_eq(memcmp(c2s_smq_item_bytes(a), "<message>2</message>", 20),
                     0);
    ck_assert(a->ack_id == 99);
    kn_env_t e;
    c2s_smq_item_env(a, &e);
    ck_assert_int_eq(e.stanza, KN_ENV_ST_MESSAGE);
    ck_assert_int_eq(e.type, KN_ENV_TYPE_CHAT);
    ck_assert(e.flags & KN_F_ACK_WANTED);
    ck_assert_int_eq((int)e.to_len, 13);
    ck_assert_int_eq(memcmp(e.to, "a@localhost/y", 13), 0);
    const c2s_smq_item_t *l = c2s_smq_at(&r, 1);
    ck_assert_int_eq(l->stanza, KN_ENV_ST_NONE);
    ck_assert_int_eq(l->from_len, 0);
    /* Damaged: truncated in the middle of the last item. */
    c2s_smq_t d;
    c2s_smq_init(&d, 0);
    ck_assert_int_eq(c2s_smq_decode(&d, b.data, b.len - 2), -KN_EPROTO);
    ck_assert_uint_eq(c2s_smq_pending(&d), 1);
    /* Damaged: a length that runs past the end. */
    c2s_smq_clear(&d);
    kn_buf_t bad = KN_BUF_INIT;
    kn_buf_append(&bad, b.data, b.len);
    c2s_smq_item_t h;
    memcpy(&h, bad.data, sizeof(h));
    h.len = 1u << 30;
    memcpy(bad.data, &h, sizeof(h));
    ck_assert_int_eq(c2s_smq_decode(&d, bad.data, bad.len), -KN_EPROTO);
    ck_assert_uint_eq(c2s_smq_pending(&d), 0);
    kn_buf_free(&bad);
    kn_buf_free(&b);
    c2s_smq_clear(&q);
    c2s_smq_clear(&r);
    c2s_smq_clear(&d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_smq");
    TCase *t = tcase_create("core");
    tcase_add_test(t, ack_removes_oldest_in_order_R_DROP_5);
    tcase_add_test(t, counters_wrap_at_2_32_R_DROP_5);
    tcase_add_test(t, ring_grows_after_partial_acks_R_DROP_5);
    tcase_add_test(t, handover_encoding_round_trips_R_DROP_5);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
