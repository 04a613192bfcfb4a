/*
 * Unit tests of sb_manager that need no device: reconnect backoff against
 * a closed loopback port (real sockets), jobs for unknown devices, and
 * shutdown answering queued jobs. Devices that answer are covered by
 * tests/southbound/test_southbound.py against cairn-devsim.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "southbound.h"

#define MAX_RESULTS 16

/* Results collected from the worker threads. */
struct collect {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int n;                          /* results so far */
    int rv[MAX_RESULTS];            /* their codes */
    enum sb_step step[MAX_RESULTS]; /* failed steps */
    unsigned attempts[MAX_RESULTS]; /* connection attempts */
    char message[MAX_RESULTS][CAIRN_ERRMSG_SIZE];
    pthread_t thread[MAX_RESULTS]; /* the callback's thread */
};

static void collect_cb(const struct sb_result *r, void *data)
{
    struct collect *c = data;
    pthread_mutex_lock(&c->mu);
    if (c->n < MAX_RESULTS) {
        c->rv[c->n] = r->rv;
        c->step[c->n] = r->step;
        c->attempts[c->n] = r->attempts;
        strncpy(c->message[c->n], r->message, CAIRN_ERRMSG_SIZE - 1);
        c->thread[c->n] = pthread_self();
        c->n++;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

/* Waits (bounded) until n results arrived; returns how many did. */
static int collect_wait(struct collect *c, int n, unsigned timeout_ms)
{
    uint64_t deadline = cairn_now_ms() + timeout_ms;
    int got;
    pthread_mutex_lock(&c->mu);
    while (c->n < n && cairn_now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cond, &c->mu, &ts);
    }
    got = c->n;
    pthread_mutex_unlock(&c->mu);
    return got;
}

/* A loopback port nothing listens on: bound, then closed. */
static uint16_t closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static struct sb_manager *manager_backoff(struct collect *c, unsigned deadline_ms,
                                          unsigned backoff_min_ms, unsigned backoff_max_ms)
{
    struct sb_manager_config cfg = {.threads = 2,
                                    .cb = collect_cb,
                                    .cb_data = c,
                                    .timeout_ms = 1000,
                                    .backoff_min_ms = backoff_min_ms,
                                    .backoff_max_ms = backoff_max_ms,
                                    .job_deadline_ms = deadline_ms};
    struct sb_manager *m = NULL;
    char errmsg[CAIRN_ERRMSG_SIZE];
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    assert_int_equal(sb_manager_create(&cfg, &m, errmsg, sizeof(errmsg)), 0);
    assert_int_equal(sb_manager_threads(m), 2);
    return m;
}

static struct sb_manager *manager(struct collect *c, unsigned deadline_ms)
{
    return manager_backoff(c, deadline_ms, 50, 200);
}

static void test_backoff_until_deadline(void **state)
{
    struct collect c;
    struct sb_manager *m = manager(&c, 1000);
    struct sb_connect conn = {"127.0.0.1", closed_port(), "admin", "pw", NULL, 0};
    struct sb_device_status st;
    uint64_t t0 = cairn_now_ms();
    (void)state;

    assert_int_equal(sb_manager_device_set(m, "r1", &conn, NULL), 0);
    assert_int_equal(sb_manager_submit(m, "r1", SB_OP_CHECK_DRIFT, NULL, 0, NULL), 0);
    assert_true(cairn_now_ms() - t0 < 100); /* submit does not wait for the device */
    assert_int_equal(collect_wait(&c, 1, 10000), 1);
    assert_int_equal(c.rv[0], CAIRN_EUNAVAILABLE);
    assert_int_equal(c.step[0], SB_STEP_CONNECT);
    assert_non_null(strstr(c.message[0], "Connection refused"));
    assert_false(pthread_equal(c.thread[0], pthread_self()));
    /* 50, 100, 200, 200... ms +-25% within 1 s: at least 4 attempts, and
     * far fewer than a retry loop without backoff would make. */
    assert_in_range(c.attempts[0], 4, 12);
    assert_true(cairn_now_ms() - t0 >= 600);
    assert_int_equal(sb_manager_device_status(m, "r1", &st), 0);
    assert_int_equal(st.reach, SB_REACH_UNREACHABLE);
    assert_int_equal(st.failures, c.attempts[0]);
    assert_true(st.next_attempt_ms > 0);
    assert_non_null(strstr(st.last_error, "Connection refused"));
    assert_int_equal(sb_manager_sessions(m), 0);
    sb_manager_destroy(m);
}

/* An onboarding makes one attempt (its submitter schedules the next);
 * sb_manager_device_retry forgets the backoff, so a job that waits for it
 * runs at once. */
static void test_onboard_once_and_retry(void **state)
{
    struct collect c;
    struct sb_manager *m = manager_backoff(&c, 60000, 5000, 5000);
    struct sb_connect conn = {"127.0.0.1", closed_port(), "admin", "pw", NULL, 0};
    struct sb_device_status st;
    uint64_t t0;
    (void)state;

    assert_int_equal(sb_manager_device_set(m, "r1", &conn, NULL), 0);
    assert_int_equal(sb_manager_submit(m, "r1", SB_OP_ONBOARD, NULL, 0, NULL), 0);
    assert_int_equal(collect_wait(&c, 1, 10000), 1);
    assert_int_equal(c.rv[0], CAIRN_EUNAVAILABLE);
    assert_int_equal(c.step[0], SB_STEP_CONNECT);
    assert_int_equal(c.attempts[0], 1);
    assert_int_equal(sb_manager_device_status(m, "r1", &st), 0);
    assert_int_equal(st.failures, 1);
    assert_true(st.next_attempt_ms >= cairn_now_ms() + 3000); /* 5 s - 25%, less time spent */

    /* The next job waits for the backoff (3.75 s at least) until told. */
    t0 = cairn_now_ms();
    assert_int_equal(sb_manager_submit(m, "r1", SB_OP_ONBOARD, NULL, 0, NULL), 0);
    assert_int_equal(collect_wait(&c, 2, 200), 1);
    assert_int_equal(sb_manager_device_retry(m, "r1"), 0);
    assert_int_equal(collect_wait(&c, 2, 10000), 2);
    assert_true(cairn_now_ms() - t0 < 3000);
    assert_int_equal(c.attempts[1], 1);
    assert_int_equal(sb_manager_device_status(m, "r1", &st), 0);
    assert_int_equal(st.failures, 1); /* counted afresh */
    assert_int_equal(sb_manager_device_retry(m, "nope"), CAIRN_ENOTFOUND);
    sb_manager_destroy(m);
}

static void test_unknown_device_and_bad_input(void **state)
{
    struct collect c;
    struct sb_manager *m = manager(&c, 1000);
    struct sb_connect nohost = {NULL, 830, "admin", "pw", NULL, 0};
    struct sb_device_status st;
    (void)state;
    assert_int_equal(sb_manager_submit(m, "nope", SB_OP_PUSH, NULL, 0, NULL), CAIRN_ENOTFOUND);
    assert_int_equal(sb_manager_device_status(m, "nope", &st), CAIRN_ENOTFOUND);
    assert_int_equal(sb_manager_device_set(m, "r1", &nohost, NULL), CAIRN_EINVAL);
    sb_manager_destroy(m);
    assert_int_equal(c.n, 0);
}

static void test_destroy_answers_queued_jobs(void **state)
{
    struct collect c;
    struct sb_manager *m = manager(&c, 60000);
    struct sb_connect conn = {"127.0.0.1", closed_port(), "admin", "pw", NULL, 0};
    int i;
    (void)state;
    assert_int_equal(sb_manager_device_set(m, "r1", &conn, NULL), 0);
    for (i = 0; i < 3; i++) {
        assert_int_equal(sb_manager_submit(m, "r1", SB_OP_CHECK_DRIFT, NULL, 0, NULL), 0);
    }
    sb_manager_destroy(m); /* the first job waits in backoff; all end now */
    assert_int_equal(c.n, 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(c.rv[i], CAIRN_ESHUTDOWN);
    }
}

int manager_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_until_deadline),
        cmocka_unit_test(test_onboard_once_and_retry),
        cmocka_unit_test(test_unknown_device_and_bad_input),
        cmocka_unit_test(test_destroy_answers_queued_jobs),
    };
    return cmocka_run_group_tests_name("manager", tests, NULL, NULL);
}
