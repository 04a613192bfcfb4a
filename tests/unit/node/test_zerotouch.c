/* Unit tests of node/zerotouch.c: activation-code comparison, matching a
 * device that called home against device records, and the throttle of
 * bad attempts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "zerotouch.h"

static void test_code_equal(void **state)
{
    char long_a[ZT_CODE_MAX + 8], long_b[ZT_CODE_MAX + 8];
    (void)state;
    assert_true(zt_code_equal("ABCDE-FGHJK-LMNPQ-RSTUV", "ABCDE-FGHJK-LMNPQ-RSTUV"));
    assert_false(zt_code_equal("ABCDE-FGHJK-LMNPQ-RSTUV", "ABCDE-FGHJK-LMNPQ-RSTUW"));
    assert_false(zt_code_equal("ABCDE-FGHJK-LMNPQ-RSTUV", "BBCDE-FGHJK-LMNPQ-RSTUV"));
    /* A prefix is not the code, nor is the empty string. */
    assert_false(zt_code_equal("ABCDE-FGHJK-LMNPQ-RSTUV", "ABCDE-FGHJK"));
    assert_false(zt_code_equal("ABCDE", "ABCDE-FGHJK"));
    assert_false(zt_code_equal("ABCDE", ""));
    assert_true(zt_code_equal("", ""));
    /* Strings too long to compare whole never match, even when equal. */
    memset(long_a, 'A', sizeof long_a - 1);
    long_a[sizeof long_a - 1] = '\0';
    memcpy(long_b, long_a, sizeof long_b);
    assert_false(zt_code_equal(long_a, long_b));
    long_a[ZT_CODE_MAX - 1] = '\0';
    long_b[ZT_CODE_MAX - 1] = '\0';
    assert_true(zt_code_equal(long_a, long_b));
}

static json_t *record(const char *serial, const char *code, const char *key, bool bound)
{
    json_t *b = json_pack("{s:s, s:{s:s}}", "serial", serial, "status", "state", "new");
    if (code != NULL) {
        json_object_set_new(b, "activation_code", json_string(code));
    }
    if (key != NULL) {
        json_object_set_new(b, "host_key", json_string(key));
    }
    if (bound) {
        json_object_set_new(json_object_get(b, "status"), "zero_touch",
                            json_pack("{s:s}", "peer", "192.0.2.1"));
    }
    return b;
}

static void test_match(void **state)
{
    json_t *fresh = record("S1", "CODE-1", NULL, false);
    json_t *bound = record("S1", NULL, "SHA256:k1", true);
    json_t *pinned = record("S1", NULL, "SHA256:k1", false); /* onboarded by address */
    (void)state;

    assert_int_equal(zt_match(fresh, "S2", "CODE-1", "SHA256:k1"), ZT_OTHER);
    assert_int_equal(zt_match(fresh, "S1", "CODE-1", "SHA256:k1"), ZT_BIND);
    assert_int_equal(zt_match(fresh, "S1", "CODE-2", "SHA256:k1"), ZT_BAD_CODE);
    assert_int_equal(zt_match(fresh, "S1", "", "SHA256:k1"), ZT_BAD_CODE);
    assert_int_equal(zt_match(fresh, "S1", NULL, "SHA256:k1"), ZT_BAD_CODE);
    /* Consumed: the bound device is known again; a replay with the old
     * code from another host key is refused, and so is the same key with
     * any code. */
    assert_int_equal(zt_match(bound, "S1", "", "SHA256:k1"), ZT_KNOWN);
    assert_int_equal(zt_match(bound, "S1", "CODE-1", "SHA256:k2"), ZT_BAD_CODE);
    assert_int_equal(zt_match(bound, "S1", "CODE-1", "SHA256:k1"), ZT_KNOWN);
    /* A device onboarded by its address was never bound by call home. */
    assert_int_equal(zt_match(pinned, "S1", "", "SHA256:k1"), ZT_BAD_CODE);
    json_decref(fresh);
    json_decref(bound);
    json_decref(pinned);
}

static void test_throttle(void **state)
{
    struct zt_throttle *t = malloc(sizeof *t);
    uint64_t now = 1000000;
    (void)state;
    assert_non_null(t);
    zt_throttle_init(t);

    /* The first failures are free. */
    for (int i = 0; i < ZT_FREE_FAILURES; i++) {
        assert_true(zt_throttle_allowed(t, "a S1", now));
        assert_int_equal(zt_throttle_failed(t, "a S1", now), 0);
    }
    /* Then each blocks, doubling, up to the cap. */
    assert_int_equal(zt_throttle_failed(t, "a S1", now), ZT_BLOCK_MIN_MS);
    assert_false(zt_throttle_allowed(t, "a S1", now));
    assert_false(zt_throttle_allowed(t, "a S1", now + ZT_BLOCK_MIN_MS - 1));
    assert_true(zt_throttle_allowed(t, "a S1", now + ZT_BLOCK_MIN_MS));
    /* Other keys are not affected. */
    assert_true(zt_throttle_allowed(t, "a S2", now));
    assert_true(zt_throttle_allowed(t, "b S1", now));
    now += ZT_BLOCK_MIN_MS;
    assert_int_equal(zt_throttle_failed(t, "a S1", now), 2 * ZT_BLOCK_MIN_MS);
    for (int i = 0; i < 40; i++) {
        assert_true(zt_throttle_failed(t, "a S1", now) <= ZT_BLOCK_MAX_MS);
    }
    assert_int_equal(zt_throttle_failed(t, "a S1", now), ZT_BLOCK_MAX_MS);
    assert_false(zt_throttle_allowed(t, "a S1", now + ZT_BLOCK_MAX_MS - 1));
    /* A success clears the key. */
    zt_throttle_succeeded(t, "a S1");
    assert_true(zt_throttle_allowed(t, "a S1", now));
    assert_int_equal(zt_throttle_failed(t, "a S1", now), 0);

    /* The table is bounded: filling it with other keys evicts the
     * stalest, never failing. */
    for (int i = 0; i < ZT_THROTTLE_SLOTS + 10; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", i);
        zt_throttle_failed(t, key, now + 1 + (uint64_t)i);
    }
    for (int i = 0; i < ZT_FREE_FAILURES + 1; i++) {
        zt_throttle_failed(t, "last", now + 5000);
    }
    assert_false(zt_throttle_allowed(t, "last", now + 5000));
    zt_throttle_close(t);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_equal),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_throttle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
