/*
 * Unit tests of cairnctl's pieces that need no server: the command line
 * parser, exit codes, problem rendering, tables, the config file,
 * credential precedence, endpoint lists and query escaping. The whole tool
 * against a real cluster is tests/integration/test_cairnctl.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "ctl.h"

/* Parses a NULL-terminated list of words (argv[0] is added). */
static int parse(struct ctl_opts *o, char *err, size_t n, ...)
{
    char *argv[32] = {"cairnctl"};
    int argc = 1;
    va_list ap;
    va_start(ap, n);
    for (char *a = va_arg(ap, char *); a != NULL && argc < 31; a = va_arg(ap, char *)) {
        argv[argc++] = a;
    }
    va_end(ap);
    return ctl_opts_parse(o, argc, argv, err, n);
}

static void test_parse_options_anywhere(void **state)
{
    (void)state;
    struct ctl_opts o;
    char err[256];
    assert_int_equal(
        parse(&o, err, sizeof(err), "-o", "json", "tenant", "list", "--filter", "name=acme",
              "--endpoints", "a:1,b:2", "--limit=5", "--filter", "x=y=z", "--all", NULL),
        0);
    assert_string_equal(o.res->word, "tenant");
    assert_string_equal(o.verb->word, "list");
    assert_int_equal(o.output, CTL_OUTPUT_JSON);
    assert_string_equal(o.endpoints, "a:1,b:2");
    assert_int_equal(o.limit, 5);
    assert_int_equal(o.nfilters, 2);
    assert_string_equal(o.filters[0], "name=acme");
    assert_string_equal(o.filters[1], "x=y=z");
    assert_true(o.all);
    assert_int_equal(o.nargs, 0);
}

static void test_parse_args_and_values(void **state)
{
    (void)state;
    struct ctl_opts o;
    char err[256];
    assert_int_equal(parse(&o, err, sizeof(err), "tenant", "replace", "id-1", "-f", "-",
                           "--if-match", "\"7\"", NULL),
                     0);
    assert_int_equal(o.nargs, 1);
    assert_string_equal(o.args[0], "id-1");
    assert_string_equal(o.file, "-");
    assert_int_equal(o.if_match, 7);
    assert_int_equal(parse(&o, err, sizeof(err), "user", "delete", "u", "--if-match=*", NULL), 0);
    assert_int_equal(o.if_match, -1);
    assert_int_equal(parse(&o, err, sizeof(err), "member", "add", "4", "h:1", "h:2", NULL), 0);
    assert_int_equal(o.nargs, 3);
    /* "--" ends the options: an id may start with a dash. */
    assert_int_equal(parse(&o, err, sizeof(err), "tenant", "get", "--", "-odd", NULL), 0);
    assert_string_equal(o.args[0], "-odd");
}

static void test_parse_device_operations(void **state)
{
    (void)state;
    struct ctl_opts o;
    char err[256];
    assert_int_equal(parse(&o, err, sizeof(err), "device", "check-drift", "d-1", "--wait", NULL),
                     0);
    assert_string_equal(o.verb->word, "check-drift");
    assert_string_equal(o.args[0], "d-1");
    assert_true(o.wait);
    assert_int_equal(parse(&o, err, sizeof(err), "device", "sync-from", "d-2", NULL), 0);
    assert_string_equal(o.verb->word, "sync-from");
    assert_false(o.wait);
    assert_int_equal(
        parse(&o, err, sizeof(err), "service", "replace", "s-1", "-f", "-", "--dry-run", NULL), 0);
    assert_true(o.dry_run);
    assert_int_equal(parse(&o, err, sizeof(err), "service", "create", "-f", "-", NULL), 0);
    assert_false(o.dry_run);
}

static void test_parse_audit_user(void **state)
{
    (void)state;
    struct ctl_opts o;
    char err[256];
    assert_int_equal(parse(&o, err, sizeof(err), "--user", "admin", "audit", "--user", "bob",
                           "--since", "2026-01-01T00:00:00Z", NULL),
                     0);
    assert_string_equal(o.user, "admin");
    assert_string_equal(o.audit_user, "bob");
    assert_string_equal(o.since, "2026-01-01T00:00:00Z");
    assert_null(o.verb->word);
    /* Elsewhere --user is the credential. */
    assert_int_equal(parse(&o, err, sizeof(err), "tenant", "list", "--user", "bob", NULL), 0);
    assert_string_equal(o.user, "bob");
    assert_null(o.audit_user);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *words[6];
        const char *message;
    } cases[] = {
        {{NULL}, "no command given"},
        {{"frobnicate", NULL}, "unknown command 'frobnicate'"},
        {{"tenant", NULL}, "'tenant' needs a verb"},
        {{"tenant", "publish", "x", NULL}, "'tenant' takes no verb 'publish'"},
        {{"tenant", "get", NULL}, "usage: cairnctl tenant get ID"},
        {{"tenant", "get", "a", "b", NULL}, "usage: cairnctl tenant get ID"},
        {{"tenant", "get", "a", "--cascade", NULL}, "'tenant get' takes no option --cascade"},
        {{"tenant", "list", "--bogus", NULL}, "unknown option '--bogus'"},
        {{"tenant", "list", "--limit", NULL}, "option '--limit' needs a value"},
        {{"tenant", "list", "--limit", "0", NULL}, "--limit must be"},
        {{"tenant", "list", "--all=yes", NULL}, "option '--all=yes' takes no value"},
        {{"tenant", "list", "--filter", "=x", NULL}, "--filter takes KEY=VALUE"},
        {{"tenant", "list", "-o", "yaml", NULL}, "-o must be table or json"},
        {{"tenant", "delete", "a", "--if-match", "0", NULL}, "--if-match takes a revision"},
        {{"tenant", "delete", "a", "--if-match", "W/\"3\"", NULL}, "--if-match takes"},
        {{"member", "remove", "2", "--cascade", NULL}, "takes no option --cascade"},
        {{"tenant", "check-drift", "a", NULL}, "'tenant' takes no verb 'check-drift'"},
        {{"device", "sync-from", NULL}, "usage: cairnctl device sync-from ID"},
        {{"device", "check-drift", "a", "--dry-run", NULL}, "takes no option --dry-run"},
        {{"service", "delete", "a", "--dry-run", NULL}, "takes no option --dry-run"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[8] = {"cairnctl"};
        int argc = 1;
        for (int k = 0; cases[i].words[k] != NULL; k++) {
            argv[argc++] = (char *)cases[i].words[k];
        }
        struct ctl_opts o;
        char err[256];
        assert_int_equal(ctl_opts_parse(&o, argc, argv, err, sizeof(err)), CTL_EXIT_USAGE);
        if (strstr(err, cases[i].message) == NULL) {
            fail_msg("case %zu: '%s' does not contain '%s'", i, err, cases[i].message);
        }
    }
}

static void test_parse_help(void **state)
{
    (void)state;
    struct ctl_opts o;
    char err[256];
    char *text;
    size_t len;

    assert_int_equal(parse(&o, err, sizeof(err), "--help", NULL), 0);
    assert_true(o.help);
    assert_null(o.res);
    FILE *f = open_memstream(&text, &len);
    ctl_help_print(f, &o);
    fclose(f);
    /* Every resource and verb is listed. */
    assert_non_null(strstr(text, "  tenant create -f FILE|-"));
    assert_non_null(strstr(text, "  template publish ID"));
    assert_non_null(strstr(text, "  device check-drift ID"));
    assert_non_null(strstr(text, "  device sync-from ID"));
    assert_non_null(strstr(text, "  member remove ID"));
    assert_non_null(strstr(text, "  backup -f FILE"));
    free(text);

    assert_int_equal(parse(&o, err, sizeof(err), "user", "-h", NULL), 0);
    assert_non_null(o.res);
    assert_null(o.verb);
    assert_int_equal(parse(&o, err, sizeof(err), "job", "wait", "--help", NULL), 0);
    f = open_memstream(&text, &len);
    ctl_help_print(f, &o);
    fclose(f);
    assert_non_null(strstr(text, "usage: cairnctl job wait ID [--wait-timeout S]"));
    assert_non_null(strstr(text, "--wait-timeout SECONDS"));
    assert_null(strstr(text, "--cascade"));
    free(text);
}

static void test_exit_codes(void **state)
{
    (void)state;
    static const struct {
        long status;
        int code;
    } cases[] = {
        {200, 0}, {201, 0}, {202, 0}, {204, 0}, {400, 2}, {401, 6}, {403, 6}, {404, 3}, {405, 2},
        {409, 4}, {412, 4}, {413, 2}, {415, 2}, {422, 2}, {429, 2}, {500, 7}, {501, 7}, {503, 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(ctl_exit_for_status(cases[i].status), cases[i].code);
    }
}

static void test_problem_format(void **state)
{
    (void)state;
    char out[512];
    const char *p =
        "{\"type\":\"urn:cairn:problem:invalid-field\",\"title\":\"Invalid field\","
        "\"status\":422,\"detail\":\"must be an e-mail address\","
        "\"field\":\"contact.email\",\"instance\":\"/api/v1/tenants\"}";
    ctl_problem_format(out, sizeof(out), 422, "application/problem+json", p, strlen(p));
    assert_string_equal(out, "422 invalid-field (contact.email): must be an e-mail address");

    p = "{\"type\":\"urn:cairn:problem:not-found\",\"title\":\"Not found\",\"status\":404,"
        "\"detail\":\"no tenant\\nwith id x\"}";
    ctl_problem_format(out, sizeof(out), 404, "application/problem+json", p, strlen(p));
    assert_string_equal(out, "404 not-found: no tenant with id x");

    p = "{\"type\":\"https://example.com/x\",\"title\":\"Teapot\",\"status\":418}";
    ctl_problem_format(out, sizeof(out), 418, "application/problem+json", p, strlen(p));
    assert_string_equal(out, "418 https://example.com/x: Teapot");

    p = "<html>\r\n<body>Bad Gateway</body>\n</html>";
    ctl_problem_format(out, sizeof(out), 502, "text/html", p, strlen(p));
    assert_string_equal(out, "502: <html> <body>Bad Gateway</body> </html>");

    ctl_problem_format(out, sizeof(out), 500, "", NULL, 0);
    assert_string_equal(out, "500 (no details in the answer)");

    /* Truncated to the buffer, never past it. */
    char small[10];
    const char *body = "{\"detail\":\"abcdefghijkl\"}";
    ctl_problem_format(small, sizeof(small), 422, "", body, strlen(body));
    assert_string_equal(small, "422: abcd");
}

/* The text ctl_table_print writes. */
static char *table_text(const struct ctl_column *cols, const char *items_json)
{
    json_t *items = json_loads(items_json, 0, NULL);
    assert_non_null(items);
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(ctl_table_print(f, cols, items), 0);
    fclose(f);
    json_decref(items);
    return text;
}

static void test_table(void **state)
{
    (void)state;
    static const struct ctl_column cols[] = {
        {"ID", "id"}, {"EMAIL", "contact.email"}, {"OK", "ok"}, {"N", "n"}, {NULL, NULL}};
    char *text = table_text(cols,
                            "[{\"id\":\"a\",\"contact\":{\"email\":\"x@y.z\"},\"ok\":true,"
                            "\"n\":12},"
                            "{\"id\":\"bbbb\",\"ok\":false,\"n\":null},"
                            "{\"id\":\"\xc3\xa9t\xc3\xa9\\n2\",\"n\":[1,2]}]");
    assert_string_equal(text,
                        "ID     EMAIL  OK     N\n"
                        "a      x@y.z  true   12\n"
                        "bbbb   -      false  -\n"
                        "\xc3\xa9t\xc3\xa9 2  -      -      [1,2]\n");
    free(text);

    text = table_text(cols, "[]");
    assert_string_equal(text, "ID  EMAIL  OK  N\n");
    free(text);
}

static void test_object_print(void **state)
{
    (void)state;
    json_t *obj = json_loads(
        "{\"id\":\"t1\",\"contact\":{\"email\":\"a@b\",\"name\":\"N\"},"
        "\"tags\":[\"x\"],\"quotas\":{},\"mod_revision\":3}",
        JSON_PRESERVE_ORDER, NULL);
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(ctl_object_print(f, obj), 0);
    fclose(f);
    assert_string_equal(text,
                        "FIELD          VALUE\n"
                        "id             t1\n"
                        "contact.email  a@b\n"
                        "contact.name   N\n"
                        "tags           [\"x\"]\n"
                        "quotas         {}\n"
                        "mod_revision   3\n");
    free(text);
    json_decref(obj);
}

static void test_json_path(void **state)
{
    (void)state;
    json_t *obj = json_loads("{\"a\":{\"b\":{\"c\":5}},\"x\":[1]}", 0, NULL);
    assert_int_equal(json_integer_value(ctl_json_path(obj, "a.b.c")), 5);
    assert_null(ctl_json_path(obj, "a.c"));
    assert_null(ctl_json_path(obj, "x.0"));
    assert_null(ctl_json_path(NULL, "a"));
    json_decref(obj);
}

static void test_config(void **state)
{
    (void)state;
    struct ctl_config cfg;
    char err[256];
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(
        ctl_config_parse(&cfg, "c.conf",
                         "# comment\n\n endpoints = http://a:1, http://b:2 \n"
                         "user=ops\npassword_file = /p\noutput = json\ntimeout = 2.5\n",
                         err, sizeof(err)),
        0);
    assert_string_equal(cfg.endpoints, "http://a:1, http://b:2");
    assert_string_equal(cfg.user, "ops");
    assert_string_equal(cfg.password_file, "/p");
    assert_string_equal(cfg.output, "json");
    assert_true(cfg.timeout_s == 2.5);
    ctl_config_close(&cfg);

    assert_int_equal(ctl_config_parse(&cfg, "c.conf", "user = a\nendpont = x\n", err, sizeof(err)),
                     CTL_EXIT_USAGE);
    assert_non_null(strstr(err, "c.conf:2: unknown key 'endpont'"));
    ctl_config_close(&cfg);
    assert_int_equal(ctl_config_parse(&cfg, "c.conf", "just words\n", err, sizeof(err)),
                     CTL_EXIT_USAGE);
    assert_non_null(strstr(err, "c.conf:1: expected 'key = value'"));
    ctl_config_close(&cfg);
    assert_int_equal(ctl_config_parse(&cfg, "c.conf", "output = yaml\n", err, sizeof(err)),
                     CTL_EXIT_USAGE);
    ctl_config_close(&cfg);

    /* A file holding a secret that others may read is flagged. */
    char conf[] = "/tmp/cairnctl-conf-XXXXXX";
    int fd = mkstemp(conf);
    assert_true(fd >= 0);
    assert_int_equal(ctl_write_all(fd, "password = pw\n", 14), 0);
    close(fd);
    assert_int_equal(ctl_config_load(&cfg, conf, true, err, sizeof(err)), 0);
    assert_false(cfg.exposed);
    ctl_config_close(&cfg);
    chmod(conf, 0644);
    assert_int_equal(ctl_config_load(&cfg, conf, true, err, sizeof(err)), 0);
    assert_true(cfg.exposed);
    ctl_config_close(&cfg);
    unlink(conf);

    /* A missing default file is fine, a missing named one is not. */
    assert_int_equal(ctl_config_load(&cfg, "/nonexistent/c.conf", false, err, sizeof(err)), 0);
    assert_int_equal(ctl_config_load(&cfg, "/nonexistent/c.conf", true, err, sizeof(err)),
                     CTL_EXIT_USAGE);
    assert_non_null(strstr(err, "/nonexistent/c.conf: No such file"));
}

static void test_creds(void **state)
{
    (void)state;
    char dir[] = "/tmp/cairnctl-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char pw[64], tok[64], err[512];
    snprintf(pw, sizeof(pw), "%s/pw", dir);
    snprintf(tok, sizeof(tok), "%s/token", dir);
    assert_int_equal(ctl_file_write_atomic(pw, "secret-pw\n", 10, 0600, err, sizeof(err)), 0);
    assert_int_equal(ctl_file_write_atomic(tok, "file-token\n", 11, 0600, err, sizeof(err)), 0);

    struct ctl_opts o;
    struct ctl_config cfg;
    struct ctl_creds c;
    memset(&o, 0, sizeof(o));
    memset(&cfg, 0, sizeof(cfg));
    unsetenv("CAIRN_TOKEN");
    unsetenv("CAIRN_USER");
    unsetenv("CAIRN_PASSWORD");

    /* Nothing but the token file. */
    assert_int_equal(ctl_creds_resolve(&c, &o, &cfg, tok, false, err, sizeof(err)), 0);
    assert_string_equal(c.token, "file-token");
    ctl_creds_close(&c);

    /* The config file beats the token file. */
    cfg.token = strdup("cfg-token");
    assert_int_equal(ctl_creds_resolve(&c, &o, &cfg, tok, false, err, sizeof(err)), 0);
    assert_string_equal(c.token, "cfg-token");
    ctl_creds_close(&c);

    /* The environment beats the config file; CAIRN_PASSWORD goes with it. */
    setenv("CAIRN_USER", "envuser", 1);
    setenv("CAIRN_PASSWORD", "env-pw", 1);
    assert_int_equal(ctl_creds_resolve(&c, &o, &cfg, tok, false, err, sizeof(err)), 0);
    assert_null(c.token);
    assert_string_equal(c.user, "envuser");
    assert_string_equal(c.password, "env-pw");
    ctl_creds_close(&c);

    /* Flags beat everything; --password-file beats CAIRN_PASSWORD. */
    o.user = "flaguser";
    o.password_file = pw;
    assert_int_equal(ctl_creds_resolve(&c, &o, &cfg, tok, false, err, sizeof(err)), 0);
    assert_string_equal(c.user, "flaguser");
    assert_string_equal(c.password, "secret-pw");
    ctl_creds_close(&c);
    o.token = "flag-token";
    assert_int_equal(ctl_creds_resolve(&c, &o, &cfg, tok, false, err, sizeof(err)), 0);
    assert_string_equal(c.token, "flag-token");
    ctl_creds_close(&c);
    /* login needs a user, whatever tokens there are. */
    assert_int_equal(ctl_creds_resolve(&c, &o, &cfg, tok, true, err, sizeof(err)), 0);
    assert_string_equal(c.user, "flaguser");
    ctl_creds_close(&c);

    /* A user without any password is an error saying what to give. */
    unsetenv("CAIRN_PASSWORD");
    o.token = NULL;
    o.password_file = NULL;
    assert_int_equal(ctl_creds_resolve(&c, &o, &cfg, tok, false, err, sizeof(err)), CTL_EXIT_USAGE);
    assert_non_null(strstr(err, "has no password"));
    unsetenv("CAIRN_USER");
    free(cfg.token);
    unlink(pw);
    unlink(tok);
    rmdir(dir);
}

/* The number of entries in dir besides . and .. */
static int entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    closedir(d);
    return n;
}

static void test_atomic_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/cairnctl-atomic-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/out", dir);

    /* Aborted: nothing is left. */
    struct ctl_atomic a;
    assert_int_equal(ctl_atomic_open(&a, path, err, sizeof(err)), 0);
    assert_int_equal(ctl_write_all(a.fd, "half", 4), 0);
    assert_int_equal(entries(dir), 1);
    ctl_atomic_abort(&a);
    ctl_atomic_abort(&a);
    assert_int_equal(entries(dir), 0);

    /* Committed: the whole file under its name, with the mode, alone. */
    assert_int_equal(ctl_atomic_open(&a, path, err, sizeof(err)), 0);
    assert_int_equal(ctl_write_all(a.fd, "whole", 5), 0);
    assert_int_equal(ctl_atomic_commit(&a, 0640, err, sizeof(err)), 0);
    ctl_atomic_abort(&a);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(st.st_size, 5);
    assert_int_equal(entries(dir), 1);

    /* Replaced whole, parents made. */
    char deep[160];
    snprintf(deep, sizeof(deep), "%s/a/b/token", dir);
    assert_int_equal(ctl_file_write_atomic(deep, "t\n", 2, 0600, err, sizeof(err)), 0);
    char *text;
    size_t len;
    assert_int_equal(ctl_file_read(deep, &text, &len, err, sizeof(err)), 0);
    assert_string_equal(text, "t\n");
    free(text);

    /* A folder that cannot be made: an error naming the file. */
    assert_int_equal(ctl_atomic_open(&a, "/nonexistent/x/out", err, sizeof(err)), CTL_EXIT_USAGE);
    assert_non_null(strstr(err, "/nonexistent/x/out.tmp"));

    unlink(deep);
    snprintf(deep, sizeof(deep), "%s/a/b", dir);
    rmdir(deep);
    snprintf(deep, sizeof(deep), "%s/a", dir);
    rmdir(deep);
    unlink(path);
    rmdir(dir);
}

static void test_endpoints(void **state)
{
    (void)state;
    struct ctl_client c;
    char err[256];
    assert_int_equal(
        ctl_client_init(&c, " 127.0.0.1:8001/, https://n2:8443 ,,http://n3", 0, err, sizeof(err)),
        0);
    assert_int_equal(c.nendpoints, 3);
    assert_string_equal(c.endpoints[0], "http://127.0.0.1:8001");
    assert_string_equal(c.endpoints[1], "https://n2:8443");
    assert_string_equal(c.endpoints[2], "http://n3");
    assert_int_equal(c.timeout_ms, 15000);
    ctl_client_close(&c);
    assert_int_equal(ctl_client_init(&c, "", 0, err, sizeof(err)), CTL_EXIT_USAGE);
    assert_non_null(strstr(err, "no endpoints"));
    assert_int_equal(ctl_client_init(&c, "ftp://x", 0, err, sizeof(err)), CTL_EXIT_USAGE);
    assert_non_null(strstr(err, "not an http:// or https:// URL"));
}

static void test_query(void **state)
{
    (void)state;
    char p[64] = "/api/v1/users";
    assert_int_equal(ctl_query_add(p, sizeof(p), "name", "a b&c"), 0);
    assert_int_equal(ctl_query_add(p, sizeof(p), "limit", "5"), 0);
    assert_string_equal(p, "/api/v1/users?name=a%20b%26c&limit=5");
    char small[24] = "/api/v1/users";
    assert_int_equal(ctl_query_add(small, sizeof(small), "name", "much-too-long"), -1);
}

/* The audit filters become the parameters GET /api/v1/audit takes
 * (audit_params in northbound/api.c): tenant, not tenant_id. */
static void test_audit_query(void **state)
{
    (void)state;
    struct ctl_opts o;
    char err[256];
    assert_int_equal(
        parse(&o, err, sizeof(err), "audit", "--user", "bob", "--tenant", "t-1", "--kind", "tenant",
              "--since", "2026-01-01T00:00:00+01:00", "--until", "2026-01-02T00:00:00Z", NULL),
        0);
    char p[256] = "/api/v1/audit";
    assert_int_equal(ctl_audit_query_add(p, sizeof(p), &o), 0);
    assert_string_equal(p,
                        "/api/v1/audit?user=bob&tenant=t-1&kind=tenant"
                        "&since=2026-01-01T00%3A00%3A00%2B01%3A00&until=2026-01-02T00%3A00%3A00Z");
    /* Only what was given; after the list's own parameters. */
    assert_int_equal(parse(&o, err, sizeof(err), "audit", "--until", "2026-01-02T00:00:00Z", NULL),
                     0);
    char q[64] = "/api/v1/audit?limit=5";
    assert_int_equal(ctl_audit_query_add(q, sizeof(q), &o), 0);
    assert_string_equal(q, "/api/v1/audit?limit=5&until=2026-01-02T00%3A00%3A00Z");
    char small[24] = "/api/v1/audit";
    assert_int_equal(ctl_audit_query_add(small, sizeof(small), &o), -1);
    /* --until is the audit's only. */
    assert_int_equal(parse(&o, err, sizeof(err), "tenant", "list", "--until", "x", NULL),
                     CTL_EXIT_USAGE);
    assert_non_null(strstr(err, "takes no option --until"));
}

static void test_jobs(void **state)
{
    (void)state;
    json_t *job = json_loads(
        "{\"id\":\"j1\",\"state\":\"running\","
        "\"progress\":{\"done\":5,\"total\":10}}",
        0, NULL);
    char line[256];
    ctl_job_progress_format(line, sizeof(line), job, false);
    assert_string_equal(line, "job j1: running 5/10");
    ctl_job_progress_format(line, sizeof(line), job, true);
    assert_string_equal(line, "job j1 [###############...............] 5/10 running");
    json_decref(job);

    bool ok;
    assert_false(ctl_job_state_final("running", &ok));
    assert_false(ctl_job_state_final("queued", &ok));
    assert_false(ctl_job_state_final(NULL, &ok));
    assert_true(ctl_job_state_final("succeeded", &ok));
    assert_true(ok);
    assert_true(ctl_job_state_final("failed", &ok));
    assert_false(ok);
    assert_true(ctl_job_state_final("cancelled", &ok));
    assert_false(ok);
}

static void test_crc32c(void **state)
{
    (void)state;
    /* The check value of CRC-32C (RFC 3720, B.4) and incremental use. */
    const unsigned char *v = (const unsigned char *)"123456789";
    assert_int_equal(ctl_crc32c(0, v, 9), 0xe3069283u);
    assert_int_equal(ctl_crc32c(ctl_crc32c(0, v, 4), v + 4, 5), 0xe3069283u);
    assert_int_equal(ctl_crc32c(0, v, 0), 0);
}

static void test_resource_table(void **state)
{
    (void)state;
    /* Every resource's verbs exist, and listable ones have columns. */
    for (const struct ctl_resource *r = ctl_resources; r->word != NULL; r++) {
        assert_non_null(r->path);
        assert_true(r->verbs != 0);
        if (r->verbs & CTL_VERB_BIT(CTL_VERB_LIST)) {
            assert_non_null(r->columns);
            assert_non_null(r->list_key);
        }
        assert_ptr_equal(ctl_resource_find(r->word), r);
    }
    assert_null(ctl_resource_find("tenants"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_options_anywhere),
        cmocka_unit_test(test_parse_args_and_values),
        cmocka_unit_test(test_parse_audit_user),
        cmocka_unit_test(test_parse_device_operations),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_help),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_problem_format),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_object_print),
        cmocka_unit_test(test_json_path),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_creds),
        cmocka_unit_test(test_atomic_files),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_audit_query),
        cmocka_unit_test(test_jobs),
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_resource_table),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
