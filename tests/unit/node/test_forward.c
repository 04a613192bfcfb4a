/* Unit tests of the /internal/v1/propose-batch formats (node/rpc.c): a
 * follower's combined forward and the leader's answer round-trip, and
 * anything cut short or miscounted is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node_int.h"

static void test_request_round_trip(void **state)
{
    struct node_proposal in[STORE_BATCH_MAX], got[STORE_BATCH_MAX];
    char data[STORE_BATCH_MAX][16];
    struct cairn_buf b;
    size_t k = 0;
    (void)state;
    for (size_t n = 1; n <= STORE_BATCH_MAX; n += 9) {
        for (size_t i = 0; i < n; i++) {
            snprintf(data[i], sizeof data[i], "cmd-%zu", i);
            in[i].cmd = data[i];
            in[i].len = i == 3 ? 0 : strlen(data[i]); /* an empty one too */
        }
        cairn_buf_init(&b);
        assert_int_equal(node_forward_encode(in, n, &b), 0);
        assert_int_equal(node_forward_decode(b.data, b.len, got, &k), 0);
        assert_int_equal(k, n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(got[i].len, in[i].len);
            assert_memory_equal(got[i].cmd, in[i].cmd, in[i].len);
        }
        /* Cut short, one byte too many, a count of 0 or too high. */
        assert_int_equal(node_forward_decode(b.data, b.len - 1, got, &k), CAIRN_EMALFORMED);
        assert_int_equal(cairn_buf_append(&b, "x", 1), 0);
        assert_int_equal(node_forward_decode(b.data, b.len, got, &k), CAIRN_EMALFORMED);
        memset(b.data, 0, 4);
        assert_int_equal(node_forward_decode(b.data, b.len - 1, got, &k), CAIRN_EMALFORMED);
        ((unsigned char *)b.data)[3] = STORE_BATCH_MAX + 1;
        assert_int_equal(node_forward_decode(b.data, b.len - 1, got, &k), CAIRN_EMALFORMED);
        cairn_buf_close(&b);
    }
    assert_int_equal(node_forward_decode("", 0, got, &k), CAIRN_EMALFORMED);
}

static void test_answer_round_trip(void **state)
{
    struct node_proposal out[3], got[3];
    struct cairn_buf b;
    (void)state;
    memset(out, 0, sizeof out);
    out[0].rv = 0;
    out[0].index = 41;
    out[0].res.status = 0;
    out[0].res.revision = 7;
    out[0].res.mod_rev = 7;
    snprintf(out[0].res.id, sizeof out[0].res.id, "t1");
    out[1].rv = CAIRN_ENOTLEADER;
    snprintf(out[1].errmsg, sizeof out[1].errmsg, "not the leader any more");
    out[2].rv = 0;
    out[2].index = 41;
    out[2].res.status = CAIRN_EEXIST;
    snprintf(out[2].res.message, sizeof out[2].res.message, "name taken");
    cairn_buf_init(&b);
    assert_int_equal(node_forward_answer_encode(out, 3, &b), 0);
    assert_int_equal(node_forward_answer_decode(b.data, b.len, got, 3), 0);
    assert_int_equal(got[0].rv, 0);
    assert_int_equal(got[0].index, 41);
    assert_int_equal(got[0].res.revision, 7);
    assert_string_equal(got[0].res.id, "t1");
    assert_int_equal(got[1].rv, CAIRN_ENOTLEADER);
    assert_string_equal(got[1].errmsg, "not the leader any more");
    assert_int_equal(got[2].rv, 0);
    assert_int_equal(got[2].res.status, CAIRN_EEXIST);
    assert_string_equal(got[2].res.message, "name taken");
    /* Fewer answers than commands, or trailing bytes: refused. */
    assert_int_equal(node_forward_answer_decode(b.data, b.len - 1, got, 3), CAIRN_EMALFORMED);
    assert_int_equal(node_forward_answer_decode(b.data, b.len, got, 2), CAIRN_EMALFORMED);
    cairn_buf_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_answer_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
