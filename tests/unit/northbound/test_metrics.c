/* Unit tests of northbound/metrics.c: counting, label mapping, histogram
 * buckets and the exposition text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static const char *const routes[] = {"/api/v1/tenants", "/api/v1/tenants/{id}"};

static void expect_line(const struct cairn_buf *b, const char *line)
{
    if (strstr(b->data, line) == NULL) {
        fail_msg("missing line: %s\n--- in:\n%s", line, b->data);
    }
}

static void test_counts_and_labels(void **state)
{
    struct metrics *m;
    struct cairn_buf b;
    (void)state;
    assert_int_equal(metrics_create(routes, 2, &m), 0);
    metrics_observe(m, 0, "POST", 201, 0.0008);
    metrics_observe(m, 0, "POST", 201, 0.003);
    metrics_observe(m, 1, "GET", 404, 0.0001);
    metrics_observe(m, 7, "PATCH", 299, 2.0); /* other route, method, class */
    metrics_observe(m, 1, "GET", 404, -1.0);  /* clamped to 0 */
    cairn_buf_init(&b);
    assert_int_equal(metrics_render(m, &b), 0);
    expect_line(&b, "# TYPE cairn_http_requests_total counter\n");
    expect_line(
        &b,
        "cairn_http_requests_total{route=\"/api/v1/tenants\",method=\"POST\",status=\"201\"} 2\n");
    expect_line(&b,
                "cairn_http_requests_total{route=\"/api/v1/tenants/"
                "{id}\",method=\"GET\",status=\"404\"} 2\n");
    expect_line(&b,
                "cairn_http_requests_total{route=\"other\",method=\"OTHER\",status=\"2xx\"} 1\n");
    /* Buckets are cumulative: 0.0008 falls in le=0.001, 0.003 in le=0.005. */
    expect_line(&b,
                "cairn_http_request_duration_seconds_bucket{route=\"/api/v1/tenants\","
                "method=\"POST\",le=\"0.0005\"} 0\n");
    expect_line(&b,
                "cairn_http_request_duration_seconds_bucket{route=\"/api/v1/tenants\","
                "method=\"POST\",le=\"0.001\"} 1\n");
    expect_line(&b,
                "cairn_http_request_duration_seconds_bucket{route=\"/api/v1/tenants\","
                "method=\"POST\",le=\"0.005\"} 2\n");
    expect_line(&b,
                "cairn_http_request_duration_seconds_bucket{route=\"/api/v1/tenants\","
                "method=\"POST\",le=\"+Inf\"} 2\n");
    expect_line(&b,
                "cairn_http_request_duration_seconds_count{route=\"/api/v1/tenants\","
                "method=\"POST\"} 2\n");
    expect_line(&b,
                "cairn_http_request_duration_seconds_sum{route=\"/api/v1/tenants\","
                "method=\"POST\"} 0.003800\n");
    expect_line(&b,
                "cairn_http_request_duration_seconds_bucket{route=\"other\","
                "method=\"OTHER\",le=\"2.5\"} 1\n");
    /* Series never observed are not printed. */
    assert_null(strstr(b.data, "method=\"DELETE\""));
    cairn_buf_close(&b);
    metrics_destroy(m);
    metrics_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
