/*
 * test_c2s_ack.c - the marks of written offline messages (c2s_ack.c,
 * R-PRES-5): an id is acknowledged exactly when the written offset
 * reaches the end of its stanza, in order, once; a partial write of a
 * stanza acknowledges nothing; dropped output acknowledges nothing; the
 * queue survives interleaved appends and writes (sliding and growing),
 * checked against a simple model over random runs.
 */
#include <check.h>
#include <stdlib.h>

#include "c2s_ack.h"

START_TEST(ack_only_when_whole_stanza_written_R_PRES_5)
{
    c2s_acks_t a = {0};
    c2s_ack_ids_t out = {0};
    /* Output: a 100-byte presence (no mark), then rows 7 (ends at 250)
     * and 8 (ends at 400). */
    c2s_acks_add(&a, 7, 250);
    c2s_acks_add(&a, 8, 400);
    ck_assert_uint_eq(c2s_acks_pending(&a), 2);
    ck_assert_uint_eq(c2s_acks_written(&a, 0, &out), 0);
    ck_assert_uint_eq(c2s_acks_written(&a, 249, &out), 0);
    ck_assert_uint_eq(out.n, 0);
    ck_assert_uint_eq(c2s_acks_written(&a, 250, &out), 1);
    ck_assert_uint_eq(out.n, 1);
    ck_assert(out.ids[0] == 7);
    /* Asking again for the same offset acknowledges nothing twice. */
    ck_assert_uint_eq(c2s_acks_written(&a, 250, &out), 0);
    ck_assert_uint_eq(c2s_acks_written(&a, 399, &out), 0);
    ck_assert_uint_eq(c2s_acks_pending(&a), 1);
    ck_assert_uint_eq(c2s_acks_written(&a, 400, &out), 1);
    ck_assert_uint_eq(out.n, 2);
    ck_assert(out.ids[1] == 8);
    /* Emptied: the array is given back. */
    ck_assert_ptr_null(a.v);
    ck_assert_uint_eq(c2s_acks_pending(&a), 0);
    c2s_ack_ids_free(&out);
}
END_TEST

START_TEST(one_write_acks_several_and_buffer_restarts_R_PRES_5)
{
    c2s_acks_t a = {0};
    c2s_ack_ids_t out = {0};
    for (uint64_t id = 1; id <= 5; id++)
        c2s_acks_add(&a, id, 100 * id);
    ck_assert_uint_eq(c2s_acks_written(&a, 500, &out), 5);
    for (size_t i = 0; i < 5; i++)
        ck_assert(out.ids[i] == i + 1);
    /* The output buffer drained and starts at 0 again: new marks may
     * have smaller ends than the old ones. */
    c2s_acks_add(&a, 6, 10);
    ck_assert_uint_eq(c2s_acks_written(&a, 10, &out), 1);
    ck_assert(out.ids[5] == 6);
    /* Two stanzas ending at the same offset (an empty one cannot exist,
     * but equal ends must not be refused). */
    c2s_acks_add(&a, 9, 50);
    c2s_acks_add(&a, 10, 50);
    ck_assert_uint_eq(c2s_acks_written(&a, 50, &out), 2);
    ck_assert_uint_eq(out.n, 8);
    c2s_ack_ids_free(&out);
    ck_assert_ptr_null(out.ids);
}
END_TEST

START_TEST(dropped_output_acks_nothing_R_PRES_5)
{
    c2s_acks_t a = {0};
    c2s_ack_ids_t out = {0};
    c2s_acks_add(&a, 1, 100);
    c2s_acks_add(&a, 2, 200);
    c2s_acks_add(&a, 3, 300);
    ck_assert_uint_eq(c2s_acks_written(&a, 150, &out), 1);
    ck_assert_uint_eq(c2s_acks_drop(&a), 2);
    ck_assert_uint_eq(c2s_acks_pending(&a), 0);
    ck_assert_ptr_null(a.v);
    /* Nothing of the dropped output is acknowledged later. */
    ck_assert_uint_eq(c2s_acks_written(&a, 1000, &out), 0);
    ck_assert_uint_eq(out.n, 1);
    ck_assert_uint_eq(c2s_acks_drop(&a), 0);
    c2s_ack_ids_free(&out);
}
END_TEST

/* Random appends (some marked) and partial writes against a model: the
 * acknowledged ids are exactly the marked stanzas fully inside the
 * written prefix, in append order. */
START_TEST(model_random_runs_R_PRES_5)
{
    srandom(12345);
    for (int run = 0; run < 50; run++) {
        c2s_acks_t a = {0};
        c2s_ack_ids_t out = {0};
        size_t len = 0, written = 0;
        uint64_t next_id = 1;
        uint64_t marked_ids[600];
        size_t marked_end[600], nmarked = 0, acked = 0;
        for (int step = 0; step < 400; step++) {
            if (random() % 3 != 0) {
                len += 1 + (size_t)(random() % 300);
                if (random() % 2 && nmarked < 600) {
                    c2s_acks_add(&a, next_id, len);
                    marked_ids[nmarked] = next_id++;
                    marked_end[nmarked++] = len;
                }
            } else if (written < len) {
                written += 1 + (size_t)random() % (len - written);
                c2s_acks_written(&a, written, &out);
                size_t was = acked;
                while (acked < nmarked && marked_end[acked] <= written)
                    acked++;
                ck_assert_uint_eq(out.n, acked);
                for (size_t i = was; i < acked; i++)
                    ck_assert(out.ids[i] == marked_ids[i]);
                ck_assert_uint_eq(c2s_acks_pending(&a), nmarked - acked);
            }
        }
        c2s_acks_written(&a, len, &out);
        ck_assert_uint_eq(out.n, nmarked);
        ck_assert_uint_eq(c2s_acks_pending(&a), 0);
        ck_assert_ptr_null(a.v);
        c2s_ack_ids_free(&out);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_ack");
    TCase *t = tcase_create("core");
    tcase_add_test(t, ack_only_when_whole_stanza_written_R_PRES_5);
    tcase_add_test(t, one_write_acks_several_and_buffer_restarts_R_PRES_5);
    tcase_add_test(t, dropped_output_acks_nothing_R_PRES_5);
    tcase_add_test(t, model_random_runs_R_PRES_5);
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
