/* Unit tests of common/: error table, message chains, ids, buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn.h"

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(cairn_strerror(0), "success");
    assert_string_equal(cairn_strerror(CAIRN_ENOTFOUND), "not found");
    assert_string_equal(cairn_strerror(-5), "unknown error");
    assert_string_equal(cairn_strerror(CAIRN_ERROR_LAST_), "unknown error");
}

static void test_errmsg_chain(void **state)
{
    char msg[64] = "";
    (void)state;
    cairn_errmsg_set(msg, sizeof msg, "IO error");
    cairn_errmsg_wrap(msg, sizeof msg, "rocksdb %s", "get");
    cairn_errmsg_wrap(msg, sizeof msg, "load tenant %s", "t1");
    assert_string_equal(msg, "load tenant t1: rocksdb get: IO error");
    /* Truncation keeps the buffer terminated. */
    cairn_errmsg_wrap(msg, 8, "%s", "a-much-longer-prefix");
    assert_int_equal(strlen(msg), 7);
}

static void test_uuid(void **state)
{
    char a[CAIRN_UUID_SIZE];
    char b[CAIRN_UUID_SIZE];
    (void)state;
    cairn_uuid(a);
    cairn_uuid(b);
    assert_true(cairn_uuid_valid(a));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '7');
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_false(cairn_uuid_valid("not-a-uuid"));
    assert_false(cairn_uuid_valid("0123456789abcdef0123456789abcdef0123"));
    assert_false(cairn_uuid_valid("01234567-89ab-4def-8123-456789ABCDEF"));
    assert_false(cairn_uuid_valid(""));
}

/* The first 48 bits of a uuid as a number: its Unix time in ms. */
static uint64_t uuid_ms(const char *u)
{
    char hex[13];
    memcpy(hex, u, 8);
    memcpy(hex + 8, u + 9, 4);
    hex[12] = '\0';
    return strtoull(hex, NULL, 16);
}

/* Ids carry the wall clock: one made in a later millisecond sorts after. */
static void test_uuid_time_ordered(void **state)
{
    char a[CAIRN_UUID_SIZE];
    char b[CAIRN_UUID_SIZE];
    int64_t before, after;
    (void)state;
    before = cairn_wall_ms();
    cairn_uuid(a);
    after = cairn_wall_ms();
    assert_true(uuid_ms(a) >= (uint64_t)before && uuid_ms(a) <= (uint64_t)after);
    /* Until the clock moves on (polled, at most 5 s). */
    do {
        cairn_uuid(b);
    } while (uuid_ms(b) == uuid_ms(a) && cairn_wall_ms() < after + 5000);
    assert_true(uuid_ms(b) > uuid_ms(a));
    assert_true(strcmp(a, b) < 0);
}

static void test_parse_u64(void **state)
{
    uint64_t v = 7;
    (void)state;
    assert_int_equal(cairn_parse_u64("42", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cairn_parse_u64("18446744073709551615", &v), 0);
    assert_int_equal(cairn_parse_u64("18446744073709551616", &v), CAIRN_EINVAL);
    assert_int_equal(cairn_parse_u64("-1", &v), CAIRN_EINVAL);
    assert_int_equal(cairn_parse_u64("12x", &v), CAIRN_EINVAL);
    assert_int_equal(cairn_parse_u64("", &v), CAIRN_EINVAL);
    assert_int_equal(v, 18446744073709551615ull);
}

static void test_buf(void **state)
{
    struct cairn_buf b;
    (void)state;
    cairn_buf_init(&b);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(cairn_buf_printf(&b, "%d,", i % 10), 0);
    }
    assert_int_equal(b.len, 2000);
    assert_int_equal(cairn_buf_append(&b, "end", 3), 0);
    assert_int_equal(strncmp(b.data + 2000, "end", 4), 0);
    cairn_buf_close(&b);
    assert_null(b.data);
}

/* A log line is one line, whatever its values hold (journald keeps lines). */
static void test_log_one_line(void **state)
{
    char out[512] = "";
    FILE *f = tmpfile();
    int saved = dup(STDERR_FILENO);
    size_t len;
    (void)state;

    assert_non_null(f);
    assert_true(saved >= 0);
    fflush(stderr);
    assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
    cairn_log_setup(CAIRN_LOG_INFO, "node=7");
    CAIRN_INFO("msg=\"bad input\" detail=\"%s\"", "line one\nline two\r\tend");
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(f);
    len = fread(out, 1, sizeof out - 1, f);
    fclose(f);
    out[len] = '\0';
    assert_non_null(
        strstr(out, " level=info node=7 msg=\"bad input\" detail=\"line one line two  end\""));
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
}

/* Doubling from min, capped at max, and +-25% jitter at the extremes of
 * the random value and for many random values. */
static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(cairn_backoff_ms(1000, 300000, 1, 500), 1000);
    assert_int_equal(cairn_backoff_ms(1000, 300000, 0, 500), 1000); /* 0 counts as 1 */
    assert_int_equal(cairn_backoff_ms(1000, 300000, 2, 500), 2000);
    assert_int_equal(cairn_backoff_ms(1000, 300000, 4, 500), 8000);
    assert_int_equal(cairn_backoff_ms(1000, 300000, 9, 500), 256000);
    assert_int_equal(cairn_backoff_ms(1000, 300000, 10, 500), 300000);
    assert_int_equal(cairn_backoff_ms(1000, 300000, 4000000000U, 500), 300000);
    assert_int_equal(cairn_backoff_ms(5000, 2000, 1, 500), 2000); /* min above max */
    assert_int_equal(cairn_backoff_ms(1000, 300000, 1, 0), 750);
    assert_int_equal(cairn_backoff_ms(1000, 300000, 1, 1000), 1250);
    assert_int_equal(cairn_backoff_ms(1000, 300000, 1, 1001), 750); /* wraps */
    assert_int_equal(cairn_backoff_ms(1000, 300000, 30, UINT32_MAX),
                     300000 * 3 / 4 + 150000 * (UINT32_MAX % 1001) / 1000);
    for (unsigned i = 0; i < 1000; i++) {
        uint32_t r;
        unsigned failures = 1 + i % 12;
        uint64_t base = failures >= 10 ? 300000 : 1000ULL << (failures - 1);
        cairn_random_bytes(&r, sizeof r);
        assert_in_range(cairn_backoff_ms(1000, 300000, failures, r), base * 3 / 4, base * 5 / 4);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror),     cmocka_unit_test(test_errmsg_chain),
        cmocka_unit_test(test_uuid),         cmocka_unit_test(test_uuid_time_ordered),
        cmocka_unit_test(test_parse_u64),    cmocka_unit_test(test_buf),
        cmocka_unit_test(test_log_one_line), cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
