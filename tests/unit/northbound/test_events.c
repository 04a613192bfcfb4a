/*
 * The event stream, the audit helpers and the OpenAPI document, in process
 * (test_northbound.c runs this group): the OpenAPI document covers every
 * route of the table with its methods and nothing else, and its request
 * schemas carry the field tables' required/readOnly/writeOnly flags; a
 * stream over a real socket carries changes as their GET renders them and
 * ends when the API is destroyed; a start older than the change log keeps
 * gets 410 "events-expired" (the change log is shortened to make that
 * reachable); RFC 3339 parsing; kind names.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "store_int.h"
#include "tests.h"

/* --- OpenAPI ----------------------------------------------------------- */

/* The flags of the field table match the schema's, recursively. */
static void expect_schema_flags(const struct api_schema *schema, const json_t *js,
                                const char *where)
{
    const json_t *props = json_object_get(js, "properties");
    const json_t *required = json_object_get(js, "required");
    size_t n_required = 0;

    assert_non_null(props);
    assert_int_equal(json_object_size(props), schema->n);
    for (size_t i = 0; i < schema->n; i++) {
        const struct api_field *f = &schema->fields[i];
        const json_t *p = json_object_get(props, f->name);
        bool in_required = false;
        size_t k;
        const json_t *v;
        if (p == NULL) {
            fail_msg("%s: field %s missing from the document", where, f->name);
        }
        json_array_foreach(required, k, v)
        {
            in_required = in_required || strcmp(json_string_value(v), f->name) == 0;
        }
        if (in_required != ((f->flags & API_FIELD_REQUIRED) != 0) ||
            json_is_true(json_object_get(p, "readOnly")) !=
                ((f->flags & API_FIELD_READONLY) != 0) ||
            json_is_true(json_object_get(p, "writeOnly")) !=
                ((f->flags & API_FIELD_WRITEONLY) != 0)) {
            fail_msg("%s: flags of field %s differ from the field table", where, f->name);
        }
        n_required += in_required;
        if (f->type == API_JSON_OBJECT && f->object != NULL) {
            expect_schema_flags(f->object, p, where);
        }
    }
    assert_int_equal(json_array_size(required), n_required);
}

static void test_openapi_matches_routes(void **state)
{
    json_t *doc = api_openapi_document();
    json_t *paths = json_object_get(doc, "paths");
    const char *path;
    json_t *item;
    size_t n_ops = 0;
    size_t n_table = 0;
    (void)state;

    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.0.3");
    /* Every route of the table, with each method, is documented. */
    for (size_t i = 0; i < api_route_count(); i++) {
        const struct api_route *r = api_route_at(i);
        char name[256];
        api_pattern_name(r->pattern, name, sizeof name);
        for (size_t k = 0; k < API_ROUTE_METHODS_MAX && r->methods[k].method != NULL; k++) {
            const struct api_route_method *m = &r->methods[k];
            char lower[16];
            const json_t *op;
            snprintf(lower, sizeof lower, "%s", m->method);
            for (char *c = lower; *c != '\0'; c++) {
                *c = (char)(*c - 'A' + 'a');
            }
            op = json_object_get(json_object_get(paths, name), lower);
            if (op == NULL) {
                fail_msg("%s %s is not in the OpenAPI document", m->method, r->pattern);
            }
            if (!api_openapi_summarized(m)) {
                fail_msg("%s %s has no summary in the route table", m->method, r->pattern);
            }
            if ((m->flags & API_METHOD_BODY) != 0) {
                const json_t *schema;
                const struct api_schema *request = api_openapi_request(m);
                if (request == NULL) {
                    fail_msg("%s %s takes a body but names no request field table", m->method,
                             r->pattern);
                }
                schema = json_object_get(
                    json_object_get(json_object_get(json_object_get(op, "requestBody"), "content"),
                                    "application/json"),
                    "schema");
                expect_schema_flags(request, schema, r->pattern);
            }
            assert_non_null(json_object_get(json_object_get(op, "responses"), "default"));
            n_table++;
        }
    }
    /* Every documented path and method is routable. */
    json_object_foreach(paths, path, item)
    {
        char concrete[256];
        char id[API_PATH_ID_MAX];
        const char *method;
        json_t *op;
        size_t n = 0;
        for (const char *p = path; *p != '\0' && n + 2 < sizeof concrete;) {
            if (strncmp(p, "{id}", 4) == 0) {
                concrete[n++] = '7';
                p += 4;
            } else {
                concrete[n++] = *p++;
            }
        }
        concrete[n] = '\0';
        json_object_foreach(item, method, op)
        {
            char upper[16];
            snprintf(upper, sizeof upper, "%s", method);
            for (char *c = upper; *c != '\0'; c++) {
                *c = (char)(*c - 'a' + 'A');
            }
            if (api_route_lookup(concrete, upper, id) != 0) {
                fail_msg("the document's %s %s is not routable", upper, path);
            }
            n_ops++;
        }
    }
    assert_int_equal(n_ops, n_table);
    json_decref(doc);
}

/* --- helpers of the audit and events files ----------------------------------- */

static void test_time_parse(void **state)
{
    int64_t ms;
    (void)state;
    assert_int_equal(api_time_parse("1970-01-01T00:00:01Z", &ms), 0);
    assert_int_equal(ms, 1000);
    assert_int_equal(api_time_parse("2026-01-02T03:04:05.25+02:00", &ms), 0);
    assert_int_equal(ms, 1767323045250LL - 2 * 3600 * 1000);
    assert_int_equal(api_time_parse("2026-01-02t03:04:05z", &ms), 0);
    assert_int_equal(api_time_parse("2026-01-02T03:04:05-00:30", &ms), 0);
    assert_int_equal(ms, 1767323045000LL + 30 * 60 * 1000);
    const char *bad[] = {"",
                         "2026-01-02",
                         "2026-01-02T03:04:05",
                         "2026-13-02T03:04:05Z",
                         "2026-04-31T03:04:05Z",
                         "2026-01-02T24:04:05Z",
                         "2026-01-02T03:04:05.Z",
                         "2026-01-02T03:04:05+0200",
                         "2026-01-02T03:04:05Zjunk",
                         "yesterday at noon ok"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (api_time_parse(bad[i], &ms) == 0) {
            fail_msg("accepted %s", bad[i]);
        }
    }
}

static void test_kinds(void **state)
{
    static const enum store_kind all[] = {
        STORE_KIND_TENANT, STORE_KIND_MEMBER, STORE_KIND_USER,     STORE_KIND_SESSION,
        STORE_KIND_SITE,   STORE_KIND_DEVICE, STORE_KIND_TEMPLATE, STORE_KIND_SERVICE,
        STORE_KIND_JOB,    STORE_KIND_SYSTEM,
    };
    struct store_object session = {0};
    enum store_kind k;
    (void)state;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *name = api_kind_name(all[i]);
        assert_non_null(name);
        assert_int_equal(api_kind_parse(name, &k), 0);
        assert_int_equal(k, all[i]);
    }
    assert_int_equal(api_kind_parse("widget", &k), CAIRN_EINVAL);
    /* Sessions are never rendered (their id is a token's hash). */
    session.kind = STORE_KIND_SESSION;
    session.id = "abc";
    session.body = "{}";
    session.body_len = 2;
    assert_null(api_object_json(NULL, &session));
}

/* --- the stream over a socket ------------------------------------------------- */

/* Reads from fd into buf until it holds want or the deadline passes; returns
 * true if found. */
static bool read_until(int fd, char *buf, size_t size, size_t *len, const char *want)
{
    uint64_t deadline = cairn_now_ms() + HC_TIMEOUT_MS;
    while (strstr(buf, want) == NULL) {
        struct pollfd p = {fd, POLLIN, 0};
        uint64_t now = cairn_now_ms();
        ssize_t got;
        if (now >= deadline || *len + 1 >= size) {
            return false;
        }
        if (poll(&p, 1, (int)(deadline - now)) <= 0) {
            return false;
        }
        got = read(fd, buf + *len, size - *len - 1);
        if (got <= 0) {
            return false;
        }
        *len += (size_t)got;
        buf[*len] = '\0';
    }
    return true;
}

static int open_stream(struct fx *f, const char *auth, const char *query)
{
    char req[512];
    int fd = hc_connect(f->port);
    int n = snprintf(req, sizeof req, "GET /api/v1/events%s HTTP/1.1\r\nHost: x\r\n%s\r\n", query,
                     auth);
    assert_true(fd >= 0);
    hc_send(fd, req, (size_t)n);
    return fd;
}

static void test_stream(void **state)
{
    struct fx *f = *state;
    static char buf[65536];
    size_t len = 0;
    char id[CAIRN_UUID_SIZE];
    char want[256];
    struct hc_response r;
    json_t *got;
    char *text;
    int fd = open_stream(f, f->auth, "");

    buf[0] = '\0';
    snprintf(want, sizeof want, ": from revision %d\n\n", R0);
    assert_true(read_until(fd, buf, sizeof buf, &len, want));
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "Content-Type: text/event-stream"));
    create_tenant(f, "streamed", id);
    snprintf(want, sizeof want, "id: %d\nevent: created\ndata: ", R0 + 1);
    assert_true(read_until(fd, buf, sizeof buf, &len, want));
    assert_true(read_until(fd, buf, sizeof buf, &len, "}}\n\n"));
    /* The object is the GET's rendering. */
    snprintf(want, sizeof want, "/api/v1/tenants/%s", id);
    request(f, "GET", want, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    got = json_loads(strstr(buf, "data: ") + 6, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(got);
    text = json_dumps(json_object_get(got, "object"), JSON_COMPACT | JSON_SORT_KEYS);
    {
        json_t *get = body_json(&r);
        char *get_text = json_dumps(get, JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(text, get_text);
        free(get_text);
        json_decref(get);
    }
    free(text);
    json_decref(got);
    hc_response_free(&r);
    /* A delete. */
    snprintf(want, sizeof want, "/api/v1/tenants/%s", id);
    request(f, "DELETE", want, NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    hc_response_free(&r);
    assert_true(read_until(fd, buf, sizeof buf, &len, "event: deleted\n"));
    close(fd);
}

static void test_stream_ends_at_shutdown(void **state)
{
    struct fx *f = fx_start(1);
    static char buf[4096];
    size_t len = 0;
    uint64_t started;
    int fd = open_stream(f, f->auth, "?from_revision=0");
    (void)state;
    buf[0] = '\0';
    assert_true(read_until(fd, buf, sizeof buf, &len, "event: created\n"));
    started = cairn_now_ms();
    fx_stop(f);
    /* Well within the one-second check interval plus the server's stop. */
    assert_true(cairn_now_ms() - started < 5000);
    close(fd);
}

static void test_expired_revision(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    char id[CAIRN_UUID_SIZE];
    char path[128];

    /* Keep only the newest 3 revisions in the change log. */
    f->store->changes_kept = 3;
    for (int i = 0; i < 8; i++) {
        char name[32];
        snprintf(name, sizeof name, "exp-%d", i);
        create_tenant(f, name, id);
    }
    request(f, "GET", "/api/v1/events?from_revision=1", NULL, NULL, &r);
    expect_problem(&r, 410, "events-expired", "from_revision", NULL);
    hc_response_free(&r);
    request(f, "GET", "/api/v1/events", "Last-Event-ID: 2\r\n", NULL, &r);
    expect_problem(&r, 410, "events-expired", "Last-Event-ID", NULL);
    hc_response_free(&r);
    snprintf(path, sizeof path, "/api/v1/events?from_revision=%llu",
             (unsigned long long)store_revision(f->store) + 1);
    request(f, "GET", path, NULL, NULL, &r);
    expect_problem(&r, 400, "invalid-parameter", "from_revision", NULL);
    hc_response_free(&r);
    f->store->changes_kept = STORE_CHANGES_KEPT;
}

static void test_stream_limit(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    static char buf[1024];

    /* The fixture's server has 4 workers; the API's default limit is far
     * above: fill the limit by hand and check the refusal. */
    atomic_store(&f->api->streams, f->api->cfg.event_streams_max);
    request(f, "GET", "/api/v1/events", NULL, NULL, &r);
    expect_problem(&r, 503, "unavailable", NULL, NULL);
    assert_non_null(hc_header(&r, "Retry-After", buf, sizeof buf));
    hc_response_free(&r);
    atomic_store(&f->api->streams, 0);
}

int test_events_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openapi_matches_routes),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test_setup_teardown(test_stream, fx_setup, fx_teardown),
        cmocka_unit_test(test_stream_ends_at_shutdown),
        cmocka_unit_test_setup_teardown(test_expired_revision, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stream_limit, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests_name("northbound events, audit, openapi", tests, NULL, NULL);
}
