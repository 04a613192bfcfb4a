/* Unit tests of the /internal/v1/propose-batch and propose-objects formats
 * (node/rpc.c): a follower's combined forward and the leader's answer
 * round-trip, and anything cut short or miscounted is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node_int.h"

static void request_round_trip(bool objects)
{
    struct node_proposal in[STORE_BATCH_MAX], got[STORE_BATCH_MAX];
    char data[STORE_BATCH_MAX][16];
    struct cairn_buf b;
    size_t k = 0;
    for (size_t n = 1; n <= STORE_BATCH_MAX; n += 9) {
        for (size_t i = 0; i < n; i++) {
            snprintf(data[i], sizeof data[i], "cmd-%zu", i);
            in[i].cmd = data[i];
            in[i].len = i == 3 ? 0 : strlen(data[i]); /* an empty one too */
            in[i].kind = i % 2 == 0 ? STORE_KIND_TENANT : 0;
        }
        cairn_buf_init(&b);
        assert_int_equal(node_forward_encode(in, n, objects, &b), 0);
        assert_int_equal(node_forward_decode(b.data, b.len, objects, got, &k), 0);
        assert_int_equal(k, n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(got[i].len, in[i].len);
            assert_memory_equal(got[i].cmd, in[i].cmd, in[i].len);
            assert_int_equal(got[i].kind, objects ? in[i].kind : 0);
        }
        /* Read in the other format: refused (lengths and kinds disagree). */
        assert_int_equal(node_forward_decode(b.data, b.len, !objects, got, &k), CAIRN_EMALFORMED);
        /* Cut short, one byte too many, a count of 0 or too high. */
        assert_int_equal(node_forward_decode(b.data, b.len - 1, objects, got, &k),
                         CAIRN_EMALFORMED);
        assert_int_equal(cairn_buf_append(&b, "x", 1), 0);
        assert_int_equal(node_forward_decode(b.data, b.len, objects, got, &k), CAIRN_EMALFORMED);
        memset(b.data, 0, 4);
        assert_int_equal(node_forward_decode(b.data, b.len - 1, objects, got, &k),
                         CAIRN_EMALFORMED);
        ((unsigned char *)b.data)[3] = STORE_BATCH_MAX + 1;
        assert_int_equal(node_forward_decode(b.data, b.len - 1, objects, got, &k),
                         CAIRN_EMALFORMED);
        cairn_buf_close(&b);
    }
    assert_int_equal(node_forward_decode("", 0, objects, got, &k), CAIRN_EMALFORMED);
}

static void test_request_round_trip(void **state)
{
    (void)state;
    request_round_trip(false);
}

static void test_request_objects_round_trip(void **state)
{
    (void)state;
    request_round_trip(true);
}

static void answer_round_trip(bool objects)
{
    struct node_proposal out[3], got[3];
    struct cairn_buf b;
    memset(out, 0, sizeof out);
    out[0].rv = 0;
    out[0].index = 41;
    out[0].res.status = 0;
    out[0].res.revision = 7;
    out[0].res.mod_rev = 7;
    snprintf(out[0].res.id, sizeof out[0].res.id, "t1");
    out[0].obj = "stored-object";
    out[0].obj_len = strlen("stored-object");
    out[1].rv = CAIRN_ENOTLEADER;
    snprintf(out[1].errmsg, sizeof out[1].errmsg, "not the leader any more");
    out[2].rv = 0;
    out[2].index = 41;
    out[2].res.status = CAIRN_EEXIST;
    snprintf(out[2].res.message, sizeof out[2].res.message, "name taken");
    cairn_buf_init(&b);
    assert_int_equal(node_forward_answer_encode(out, 3, objects, &b), 0);
    assert_int_equal(node_forward_answer_decode(b.data, b.len, objects, got, 3), 0);
    assert_int_equal(got[0].rv, 0);
    assert_int_equal(got[0].index, 41);
    assert_int_equal(got[0].res.revision, 7);
    assert_string_equal(got[0].res.id, "t1");
    if (objects) {
        assert_int_equal(got[0].obj_len, strlen("stored-object"));
        assert_memory_equal(got[0].obj, "stored-object", got[0].obj_len);
    } else {
        assert_null(got[0].obj);
        assert_int_equal(got[0].obj_len, 0);
    }
    assert_int_equal(got[1].rv, CAIRN_ENOTLEADER);
    assert_string_equal(got[1].errmsg, "not the leader any more");
    assert_int_equal(got[1].obj_len, 0);
    assert_int_equal(got[2].rv, 0);
    assert_int_equal(got[2].res.status, CAIRN_EEXIST);
    assert_string_equal(got[2].res.message, "name taken");
    /* Read in the other format, fewer answers than commands, or trailing
     * bytes: refused. */
    assert_int_equal(node_forward_answer_decode(b.data, b.len, !objects, got, 3), CAIRN_EMALFORMED);
    assert_int_equal(node_forward_answer_decode(b.data, b.len - 1, objects, got, 3),
                     CAIRN_EMALFORMED);
    assert_int_equal(node_forward_answer_decode(b.data, b.len, objects, got, 2), CAIRN_EMALFORMED);
    cairn_buf_close(&b);
}

static void test_answer_round_trip(void **state)
{
    (void)state;
    answer_round_trip(false);
}

static void test_answer_objects_round_trip(void **state)
{
    (void)state;
    answer_round_trip(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_answer_round_trip),
        cmocka_unit_test(test_request_objects_round_trip),
        cmocka_unit_test(test_answer_objects_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
