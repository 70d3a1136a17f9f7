/*
 * test_metrics.c - the metrics registry and exposition format, and the
 * metrics port's request answers (kn_metrics.h).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kn_metrics.h"

static uint64_t ext = 41;

static double seven(void *arg)
{
    (void)arg;
    return 7;
}

START_TEST(render_groups_series_and_histograms)
{
    kn_metric_t *a = kn_metric_counter("t_total", "a\\b\nc", "x=\"1\"");
    kn_metric_t *b = kn_metric_counter("t_total", "a\\b\nc", "x=\"2\"");
    kn_metric_gauge("g", "gauge", "");
    kn_metric_t *again = kn_metric_counter("t_total", "other", "x=\"1\"");
    ck_assert_ptr_eq(a, again);
    kn_metric_inc(a);
    kn_metric_add(b, 2.5);
    kn_metric_ptr(KN_METRIC_COUNTER, "p_total", "ptr", "", &ext);
    ext++;
    kn_metric_fn(KN_METRIC_GAUGE, "f", "fn", "", seven, NULL);
    static const double bounds[] = {0.1, 1};
    kn_metric_t *h = kn_metric_histogram("h_seconds", "h", "", bounds, 2);
    kn_metric_observe(h, 0.05);
    kn_metric_observe(h, 0.5);
    kn_metric_observe(h, 5);
    kn_buf_t out = KN_BUF_INIT;
    kn_metrics_render(&out);
    const char *want = "# HELP t_total a\\\\b\\nc\n"
                       "# TYPE t_total counter\n"
                       "t_total{x=\"1\"} 1\n"
                       "t_total{x=\"2\"} 2.5\n"
                       "# HELP g gauge\n# TYPE g gauge\ng 0\n"
                       "# HELP p_total ptr\n# TYPE p_total counter\n"
                       "p_total 42\n"
                       "# HELP f fn\n# TYPE f gauge\nf 7\n"
                       "# HELP h_seconds h\n# TYPE h_seconds histogram\n"
                       "h_seconds_bucket{le=\"0.1\"} 1\n"
                       "h_seconds_bucket{le=\"1\"} 2\n"
                       "h_seconds_bucket{le=\"+Inf\"} 3\n"
                       "h_seconds_sum 5.5499999999999998\n"
                       "h_seconds_count 3\n";
    ck_assert_str_eq(out.data, want);
    kn_buf_free(&out);
    kn_metrics_reset();
}
END_TEST

START_TEST(http_answers)
{
    kn_metric_gauge("one", "one", "");
    kn_buf_t out = KN_BUF_INIT;
    const char *get = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    kn_metrics_http_answer(get, strlen(get), &out);
    ck_assert_ptr_nonnull(strstr(out.data, "HTTP/1.1 200 OK\r\n"));
    ck_assert_ptr_nonnull(strstr(out.data, "\r\n\r\n# HELP one one\n"));
    kn_buf_reset(&out);
    const char *q = "GET /metrics?x=1 HTTP/1.0\r\n\r\n";
    kn_metrics_http_answer(q, strlen(q), &out);
    ck_assert_ptr_nonnull(strstr(out.data, " 200 OK"));
    kn_buf_reset(&out);
    const char *head = "HEAD /metrics HTTP/1.1\r\n\r\n";
    kn_metrics_http_answer(head, strlen(head), &out);
    ck_assert_ptr_null(strstr(out.data, "# HELP"));
    kn_buf_reset(&out);
    const char *nf = "GET /x HTTP/1.1\r\n\r\n";
    kn_metrics_http_answer(nf, strlen(nf), &out);
    ck_assert_ptr_nonnull(strstr(out.data, "HTTP/1.1 404 "));
    kn_buf_reset(&out);
    const char *post = "POST /metrics HTTP/1.1\r\n\r\n";
    kn_metrics_http_answer(post, strlen(post), &out);
    ck_assert_ptr_nonnull(strstr(out.data, "HTTP/1.1 405 "));
    kn_buf_reset(&out);
    const char *bad = "garbage\r\n\r\n";
    kn_metrics_http_answer(bad, strlen(bad), &out);
    ck_assert_ptr_nonnull(strstr(out.data, "HTTP/1.1 400 "));
    kn_buf_free(&out);
    kn_metrics_reset();
}
END_TEST

/* One slow callback (30 ms asleep) among quick iterations. */
static int loop_iters;

static void loop_on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)w;
    (void)revents;
    if (++loop_iters == 3) {
        struct timespec ts = {0, 30 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (loop_iters >= 6)
        ev_break(loop, EVBREAK_ALL);
}

static double series(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    ck_assert_msg(p != NULL, "%s not in:\n%s", key, text);
    return strtod(p + strlen(key), NULL);
}

START_TEST(loop_iterations_are_observed)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    kn_metrics_watch_loop(loop);
    ev_idle idle;
    ev_idle_init(&idle, loop_on_idle);
    ev_idle_start(loop, &idle);
    loop_iters = 0;
    ev_run(loop, 0);
    ev_idle_stop(loop, &idle);
    kn_metrics_unwatch_loop(loop);
    kn_buf_t out = KN_BUF_INIT;
    kn_metrics_render(&out);
    /* Six iterations ran their callbacks; the last one broke out before
     * the prepare, so at least five were observed. */
    double count = series(out.data, "\nkiln_loop_iteration_seconds_count ");
    ck_assert(count >= 5 && count <= 6);
    /* The slept one lies above the 25 ms bound, the others below it. */
    double le25 =
        series(out.data, "kiln_loop_iteration_seconds_bucket{le=\"0.025\"} ");
    ck_assert(le25 == count - 1);
    ck_assert(series(out.data, "\nkiln_loop_iteration_max_seconds ") >= 0.03);
    ck_assert(series(out.data, "\nkiln_loop_iteration_seconds_sum ") >= 0.03);
    kn_buf_free(&out);
    kn_metrics_reset();
    ev_loop_destroy(loop);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, render_groups_series_and_histograms);
    tcase_add_test(tc, http_answers);
    tcase_add_test(tc, loop_iterations_are_observed);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
