/* Unit tests of node/config.c: defaults, every key's checks, and errors that
 * name the file, line and key. */
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
#include "config.h"

#define BASE                          \
    "cluster_id = demo\n"             \
    "node_id = 1\n"                   \
    "data_dir = /var/lib/cairn\n"     \
    "raft_address = 127.0.0.1:7001\n" \
    "api_address = 127.0.0.1:8001\n"  \
    "member = 1 127.0.0.1:7001 127.0.0.1:8001\n"

static struct config cfg;
static char err[CAIRN_ERRMSG_SIZE];

static int parse(const char *text)
{
    err[0] = '\0';
    return config_parse("t.conf", text, &cfg, err, sizeof err);
}

static void test_defaults(void **state)
{
    (void)state;
    assert_int_equal(parse(BASE "# a comment\n\n   \n"), 0);
    assert_string_equal(cfg.cluster_id, "demo");
    assert_int_equal(cfg.node_id, 1);
    assert_int_equal(cfg.election_timeout_ms, 1000);
    assert_int_equal(cfg.heartbeat_timeout_ms, 50);
    assert_int_equal(cfg.snapshot_threshold, 131072);
    assert_int_equal(cfg.snapshot_trailing, 4096);
    assert_int_equal(cfg.snapshot_log_mb, 64);
    assert_int_equal(cfg.http_threads, 16);
    assert_int_equal(cfg.max_body_bytes, 1048576);
    assert_int_equal(cfg.request_timeout_ms, 5000);
    assert_string_equal(cfg.cluster_secret, "");
    assert_string_equal(cfg.log_level, "info");
    assert_int_equal(cfg.n_members, 1);
    assert_string_equal(cfg.admin_user, "admin");
    assert_int_equal(cfg.liveness_heartbeat_ms, 250);
    assert_int_equal(cfg.ownership_lease_ms, 2000);
    assert_int_equal(cfg.liveness_down_ms, 3000);
    assert_string_equal(cfg.admin_password_file, "");
    assert_string_equal(cfg.admin_password, "");
    assert_int_equal(cfg.session_ttl_s, 28800);
    assert_int_equal(cfg.onboard_retry_min_ms, 5000);
    assert_int_equal(cfg.onboard_retry_max_ms, 300000);
}

/* Writes text to a fresh temporary file; returns its path (static). */
static const char *temp_file(const char *text, size_t len)
{
    static char path[64];
    FILE *f;
    int fd;
    snprintf(path, sizeof path, "/tmp/cairn-pw-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
    return path;
}

static int parse_with_password(const char *text, size_t len)
{
    char conf[8192];
    const char *path = temp_file(text, len);
    int rv;
    snprintf(conf, sizeof conf, BASE "admin_user = root.admin\nadmin_password_file = %s\n", path);
    rv = parse(conf);
    unlink(path);
    return rv;
}

static void test_admin_password(void **state)
{
    char long_pw[300];
    (void)state;
    /* The file's content, one trailing newline stripped. */
    assert_int_equal(parse_with_password("correct horse\n", 14), 0);
    assert_string_equal(cfg.admin_user, "root.admin");
    assert_string_equal(cfg.admin_password, "correct horse");
    assert_int_equal(parse_with_password("correct horse\r\n", 15), 0);
    assert_string_equal(cfg.admin_password, "correct horse");
    assert_int_equal(parse_with_password("correct horse", 13), 0);
    assert_string_equal(cfg.admin_password, "correct horse");
    /* Only one newline goes; spaces are part of the password. */
    assert_int_equal(parse_with_password(" twelve bytes\n\n", 15), 0);
    assert_string_equal(cfg.admin_password, " twelve bytes\n");
    /* 12 to 256 bytes. */
    assert_int_equal(parse_with_password("eleven char\n", 12), CAIRN_EINVAL);
    assert_non_null(strstr(err, "admin_password_file"));
    assert_non_null(strstr(err, "12 to 256 bytes"));
    assert_null(strstr(err, "eleven"));
    memset(long_pw, 'p', sizeof long_pw);
    assert_int_equal(parse_with_password(long_pw, 256), 0);
    assert_int_equal(strlen(cfg.admin_password), 256);
    assert_int_equal(parse_with_password(long_pw, 257), CAIRN_EINVAL);
    assert_int_equal(parse_with_password(long_pw, sizeof long_pw), CAIRN_EINVAL);
    assert_int_equal(parse_with_password("", 0), CAIRN_EINVAL);
    assert_int_equal(parse_with_password("twelve\0bytes!!", 15), CAIRN_EINVAL);
    /* A file that cannot be read. */
    assert_int_equal(parse(BASE "admin_password_file = /nonexistent/admin.pw\n"), CAIRN_EINVAL);
    assert_non_null(
        strstr(err, "t.conf: admin_password_file: /nonexistent/admin.pw: No such file"));
    /* No file: no password, whatever the user. */
    assert_int_equal(parse(BASE "admin_user = ops\nsession_ttl_s = 60\n"), 0);
    assert_string_equal(cfg.admin_password, "");
    assert_int_equal(cfg.session_ttl_s, 60);
}

static void test_members(void **state)
{
    (void)state;
    assert_int_equal(parse(BASE "member = 2 10.0.0.2:7001 10.0.0.2:8001\n"
                                "member = 3 host-3:7001 host-3:8001  # trailing comment\n"),
                     0);
    assert_int_equal(cfg.n_members, 3);
    assert_int_equal(cfg.members[2].id, 3);
    assert_string_equal(cfg.members[2].raft_address, "host-3:7001");
    assert_string_equal(cfg.members[2].api_address, "host-3:8001");
    assert_non_null(config_member_find(&cfg, 2));
    assert_null(config_member_find(&cfg, 9));
}

/* Each bad input, and the fragment its message must contain. */
static const struct {
    const char *text;
    const char *want;
} bad[] = {
    {BASE "bogus = 1\n", "t.conf:7: bogus: unknown key"},
    {BASE "node_id = 2\n", "t.conf:7: node_id: set twice"},
    {BASE "election_timeout_ms = 10\n", "election_timeout_ms: must be an integer from 50"},
    {BASE "election_timeout_ms = 1e3\n", "got \"1e3\""},
    {BASE "heartbeat_timeout_ms = 600\n", "heartbeat_timeout_ms: must be at most half"},
    {BASE "log_level = loud\n", "log_level: must be error, warn, info or debug"},
    {BASE "member = 2 127.0.0.1:7002\n", "must be \"ID RAFT_ADDRESS API_ADDRESS\""},
    {BASE "member = 0 a:1 b:2\n", "member id must be an integer"},
    {BASE "member = 1 a:1 b:2\n", "member 1 is listed twice"},
    {BASE "member = 2 127.0.0.1:7001 b:2\n", "reuses an address of member 1"},
    {BASE "member = 2 a:70000 b:2\n", "host:port"},
    {BASE "max_body_bytes = 10\n", "max_body_bytes: must be an integer from 1024"},
    {BASE "just some words\n", "t.conf:7: expected \"key = value\""},
    {"cluster_id = demo\nnode_id = 1\n", "data_dir: required key is missing"},
    {"cluster_id = bad/id\n", "t.conf:1: cluster_id: may contain only"},
    {"cluster_id = demo\nnode_id = 1\ndata_dir = /d\nraft_address = a:1\napi_address = a:1\n"
     "member = 1 a:1 a:2\n",
     "api_address: must differ from raft_address"},
    {"cluster_id = demo\nnode_id = 1\ndata_dir = /d\nraft_address = a:1\napi_address = a:2\n",
     "at least one initial member"},
    {"cluster_id = demo\nnode_id = 1\ndata_dir = /d\nraft_address = a:1\napi_address = a:2\n"
     "member = 1 a:9 a:2\n",
     "the entry for node 1 must use raft_address and api_address"},
    {"raft_address = nohost\n", "raft_address: must be host:port"},
    {"raft_address = :80\n", "raft_address: must be host:port"},
    {"node_id = 9223372036854775808\n", "node_id: must be an integer"},
    {BASE "admin_user = Admin\n", "t.conf:7: admin_user: must be 1 to 64 of a-z 0-9 . _ -"},
    {BASE "admin_user = \n", "admin_user: must be 1 to 64"},
    {BASE "session_ttl_s = 59\n", "session_ttl_s: must be an integer from 60 to 2592000"},
    {BASE "session_ttl_s = 2592001\n", "session_ttl_s: must be an integer from 60"},
    {BASE "liveness_heartbeat_ms = 1000\n", "liveness_heartbeat_ms: must be at most a third"},
    {BASE "ownership_lease_ms = 2600\n", "liveness_down_ms: must be at least ownership_lease_ms"},
    {BASE "liveness_down_ms = 2400\n", "must be at least ownership_lease_ms + 500 ms (2500)"},
    {BASE "onboard_retry_min_ms = 6000\nonboard_retry_max_ms = 5000\n",
     "onboard_retry_min_ms: must be at most onboard_retry_max_ms (5000)"},
    {BASE "onboard_retry_min_ms = 99\n", "onboard_retry_min_ms"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rv = parse(bad[i].text);
        if (rv == 0 || strstr(err, bad[i].want) == NULL) {
            fail_msg("case %zu: rv %d, message \"%s\", wanted \"%s\"", i, rv, err, bad[i].want);
        }
    }
}

static void test_address_parse(void **state)
{
    char host[64];
    unsigned port = 0;
    (void)state;
    assert_int_equal(config_address_parse("127.0.0.1:8001", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8001);
    assert_int_not_equal(config_address_parse("127.0.0.1:0", host, sizeof host, &port), 0);
    assert_int_not_equal(config_address_parse("127.0.0.1:65536", host, sizeof host, &port), 0);
    assert_int_not_equal(config_address_parse("a b:1", host, sizeof host, &port), 0);
    assert_int_not_equal(config_address_parse("a:1x", host, sizeof host, &port), 0);
}

static void test_load_missing_file(void **state)
{
    (void)state;
    assert_int_equal(config_load("/nonexistent/cairnd.conf", &cfg, err, sizeof err), CAIRN_EIO);
    assert_non_null(strstr(err, "/nonexistent/cairnd.conf: No such file"));
}

static void test_callhome(void **state)
{
    (void)state;
    assert_int_equal(parse(BASE), 0);
    assert_string_equal(cfg.callhome_listen, ""); /* off by default */
    assert_int_equal(parse(BASE "callhome_listen = 0.0.0.0:4334\n"
                                "callhome_username = zt\n"
                                "callhome_password = secret\n"),
                     0);
    assert_string_equal(cfg.callhome_listen, "0.0.0.0:4334");
    assert_string_equal(cfg.callhome_username, "zt");
    assert_string_equal(cfg.callhome_password, "secret");
    /* A listener needs the zero-touch login. */
    assert_int_equal(parse(BASE "callhome_listen = 0.0.0.0:4334\ncallhome_username = zt\n"),
                     CAIRN_EINVAL);
    assert_non_null(strstr(err, "callhome_listen: needs callhome_username and callhome_password"));
    assert_int_equal(parse(BASE "callhome_listen = nowhere\n"), CAIRN_EINVAL);
    assert_non_null(strstr(err, "t.conf:7: callhome_listen: must be host:port"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),       cmocka_unit_test(test_members),
        cmocka_unit_test(test_admin_password), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_address_parse),  cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_callhome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
