/*
 * Unit tests of api_auth.c's pieces that need no server: password hashing
 * (argon2id) and verification, the KDF turns, bearer tokens and session
 * ids, the login throttle (with an injected clock), and RFC 3339 times.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "api_int.h"
#include "tests.h"

static void test_password(void **state)
{
    char hash[API_PASSWORD_HASH_SIZE];
    char again[API_PASSWORD_HASH_SIZE];
    (void)state;
    assert_int_equal(api_password_hash("s3cret-passw0rd", 15, hash), 0);
    assert_non_null(strstr(hash, "$argon2id$"));
    assert_true(api_password_verify(hash, "s3cret-passw0rd", 15));
    assert_false(api_password_verify(hash, "s3cret-passw0rD", 15));
    assert_false(api_password_verify(hash, "s3cret-passw0r", 14));
    assert_false(api_password_verify(hash, "", 0));
    /* Salted: the same password hashes differently each time. */
    assert_int_equal(api_password_hash("s3cret-passw0rd", 15, again), 0);
    assert_string_not_equal(hash, again);
    assert_true(api_password_verify(again, "s3cret-passw0rd", 15));
    /* Garbage and absent hashes never match. */
    assert_false(api_password_verify("not a hash", "x", 1));
    assert_false(api_password_verify("", "", 0));
    assert_false(api_password_verify(NULL, "x", 1));
}

/* The KDF turns: with every turn taken, a hash waits until its deadline. */
static void test_kdf_turns(void **state)
{
    struct api api;
    char hash[API_PASSWORD_HASH_SIZE];
    pthread_condattr_t attr;
    uint64_t start;
    (void)state;
    memset(&api, 0, sizeof api);
    pthread_mutex_init(&api.kdf_mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&api.kdf_cv, &attr);
    pthread_condattr_destroy(&attr);

    api.kdf_running = API_KDF_CONCURRENCY;
    start = cairn_now_ms();
    assert_int_equal(api_kdf_hash(&api, "password-1234", 13, start + 50, hash), CAIRN_ETIMEDOUT);
    assert_true(cairn_now_ms() >= start + 50);
    assert_int_equal(api_kdf_verify(&api, "x", "y", 1, cairn_now_ms()), CAIRN_ETIMEDOUT);
    assert_int_equal(api.kdf_running, API_KDF_CONCURRENCY);

    api.kdf_running = API_KDF_CONCURRENCY - 1;
    assert_int_equal(api_kdf_hash(&api, "password-1234", 13, cairn_now_ms() + 5000, hash), 0);
    assert_int_equal(api_kdf_verify(&api, hash, "password-1234", 13, cairn_now_ms() + 5000), 0);
    assert_int_equal(api_kdf_verify(&api, hash, "password-1235", 13, cairn_now_ms() + 5000),
                     CAIRN_ENOTFOUND);
    /* Turns are given back. */
    assert_int_equal(api.kdf_running, API_KDF_CONCURRENCY - 1);
    pthread_mutex_destroy(&api.kdf_mu);
    pthread_cond_destroy(&api.kdf_cv);
}

static void test_tokens(void **state)
{
    char a[API_TOKEN_SIZE];
    char b[API_TOKEN_SIZE];
    char bad[API_TOKEN_SIZE];
    (void)state;
    api_token_new(a);
    api_token_new(b);
    assert_int_equal(strlen(a), 43);
    assert_string_not_equal(a, b);
    assert_true(api_token_well_formed(a, strlen(a)));
    for (size_t i = 0; i < 43; i++) {
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", a[i]));
    }
    assert_false(api_token_well_formed(a, 42));
    assert_false(api_token_well_formed("", 0));
    memcpy(bad, a, sizeof bad);
    bad[10] = '+';
    assert_false(api_token_well_formed(bad, 43));
    bad[10] = '=';
    assert_false(api_token_well_formed(bad, 43));
    bad[10] = ' ';
    assert_false(api_token_well_formed(bad, 43));
}

static void test_session_id(void **state)
{
    char sid[API_SESSION_ID_SIZE];
    char other[API_SESSION_ID_SIZE];
    (void)state;
    /* SHA-256("abc"), FIPS 180-2 appendix B.1. */
    api_session_id("abc", 3, sid);
    assert_string_equal(sid, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    api_session_id("abd", 3, other);
    assert_string_not_equal(sid, other);
    assert_int_equal(strlen(other), 64);
}

static void test_throttle(void **state)
{
    struct api_throttle *t;
    uint64_t now = 1000000;
    (void)state;
    assert_int_equal(api_throttle_create(0, 5, 60000, &t), CAIRN_EINVAL);
    assert_int_equal(api_throttle_create(16, 5, 60000, &t), 0);
    assert_int_equal(api_throttle_wait(t, "u:bob", now), 0);
    /* Four failures: still allowed. */
    for (int i = 0; i < 4; i++) {
        api_throttle_fail(t, "u:bob", now + (uint64_t)i * 1000);
        assert_int_equal(api_throttle_wait(t, "u:bob", now + (uint64_t)i * 1000), 0);
    }
    /* The fifth within the window blocks until the first leaves it. */
    api_throttle_fail(t, "u:bob", now + 4000);
    assert_int_equal(api_throttle_wait(t, "u:bob", now + 4000), 56);
    assert_int_equal(api_throttle_wait(t, "u:bob", now + 4001), 56); /* 55.999 s rounds up */
    assert_int_equal(api_throttle_wait(t, "u:bob", now + 59000), 1);
    assert_int_equal(api_throttle_wait(t, "u:bob", now + 60000), 0);
    /* Others are not affected. */
    assert_int_equal(api_throttle_wait(t, "u:alice", now + 4000), 0);
    assert_int_equal(api_throttle_wait(t, "a:10.0.0.1", now + 4000), 0);
    /* Sliding: one more failure at +60 s, and the window now starts at the
     * second failure (+1 s). */
    api_throttle_fail(t, "u:bob", now + 60000);
    assert_int_equal(api_throttle_wait(t, "u:bob", now + 60000), 1);
    assert_int_equal(api_throttle_wait(t, "u:bob", now + 61000), 0);
    /* Spread-out failures never block. */
    for (int i = 0; i < 20; i++) {
        api_throttle_fail(t, "u:carol", now + (uint64_t)i * 20000);
        assert_int_equal(api_throttle_wait(t, "u:carol", now + (uint64_t)i * 20000), 0);
    }
    /* A success forgets the failures. */
    api_throttle_reset(t, "u:bob");
    assert_int_equal(api_throttle_wait(t, "u:bob", now + 60000), 0);
    api_throttle_reset(t, "u:nobody");
    assert_int_equal(api_throttle_count(t), 1);
    api_throttle_destroy(t);
    api_throttle_destroy(NULL);
}

/* The table is bounded: the least recently failed key goes first. */
static void test_throttle_bound(void **state)
{
    struct api_throttle *t;
    char key[32];
    (void)state;
    assert_int_equal(api_throttle_create(4, 2, 60000, &t), 0);
    for (int i = 0; i < 2; i++) {
        api_throttle_fail(t, "u:victim", 100 + (uint64_t)i);
    }
    assert_int_equal(api_throttle_wait(t, "u:victim", 200), 60);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "a:10.0.0.%d", i);
        api_throttle_fail(t, key, 1000 + (uint64_t)i);
        assert_true(api_throttle_count(t) <= 4);
    }
    assert_int_equal(api_throttle_count(t), 4);
    /* The victim was evicted; the newest keys are kept. */
    assert_int_equal(api_throttle_wait(t, "u:victim", 2000), 0);
    api_throttle_fail(t, "a:10.0.0.99", 1200);
    assert_int_equal(api_throttle_wait(t, "a:10.0.0.99", 1200), 60);
    api_throttle_destroy(t);
}

static void test_time_format(void **state)
{
    char out[API_TIME_SIZE];
    (void)state;
    api_time_format(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    api_time_format(1767323045999, out);
    assert_string_equal(out, "2026-01-02T03:04:05Z");
}

int test_auth_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password),    cmocka_unit_test(test_kdf_turns),
        cmocka_unit_test(test_tokens),      cmocka_unit_test(test_session_id),
        cmocka_unit_test(test_throttle),    cmocka_unit_test(test_throttle_bound),
        cmocka_unit_test(test_time_format),
    };
    return cmocka_run_group_tests_name("northbound auth", tests, NULL, NULL);
}
