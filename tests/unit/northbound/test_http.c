/*
 * The API over real HTTP: each test starts the in-process node of
 * fixture.c (http_server on 127.0.0.1 with a kernel-chosen port, a real
 * store in a temporary directory, a single-node backend that applies
 * commands with store_apply, and an administrator's session), then drives
 * it with the small client of http_client.c. Every bad request is checked
 * to leave the store at the revision it had. Revisions are counted from
 * R0, the fixture's own writes.
 */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "tests.h"

/* civetweb's file lookups, watched: this program's stat64 comes before the
 * C library's for libcivetweb too (symbol interposition). */
static atomic_int htpasswd_lookups;

int stat64(const char *restrict path, struct stat64 *restrict st)
{
    if (strstr(path, ".htpasswd") != NULL) {
        atomic_fetch_add(&htpasswd_lookups, 1);
    }
    return fstatat64(AT_FDCWD, path, st, 0);
}

/* --- tests ------------------------------------------------------------------- */

static void test_healthz(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    request(f, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    expect_header(&r, "Content-Type", "application/json");
    expect_header(&r, "Cache-Control", "no-store");
    assert_string_equal(r.body, "{\"status\":\"ok\",\"node_id\":1}");
    assert_int_equal(header_u64(&r, "Content-Length"), r.body_len);
    hc_response_free(&r);

    request(f, "GET", "/readyz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"ready\":true,\"node_id\":1}");
    hc_response_free(&r);

    pthread_mutex_lock(&f->mu);
    f->ready = false;
    pthread_mutex_unlock(&f->mu);
    request(f, "GET", "/readyz", NULL, NULL, &r);
    expect_problem(&r, 503, "not-ready", NULL, "/readyz");
    assert_non_null(strstr(r.body, "no leader known"));
    hc_response_free(&r);

    expect_refused(f, "GET", "/healthz?verbose=1", NULL, NULL, 400, "unknown-parameter", "verbose");
}

static void test_not_found(void **state)
{
    static const char *const paths[] = {"/nope",
                                        "/",
                                        "/api/v1",
                                        "/api/v1/nope",
                                        "/api/v1/tenantsx",
                                        "/api/v1/tenants/a/b",
                                        "/api/v1/tenants/",
                                        "/healthz/x",
                                        "/api/v1/cluster/members/1/x"};
    struct fx *f = *state;
    struct hc_response r;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        request(f, "GET", paths[i], NULL, NULL, &r);
        expect_problem(&r, 404, "not-found", NULL, paths[i]);
        hc_response_free(&r);
    }
}

static void test_method_not_allowed(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    char path[128];
    char id[CAIRN_UUID_SIZE];

    request(f, "DELETE", "/api/v1/tenants", NULL, NULL, &r);
    expect_problem(&r, 405, "method-not-allowed", NULL, "/api/v1/tenants");
    expect_header(&r, "Allow", "GET, POST");
    hc_response_free(&r);

    cairn_uuid(id);
    snprintf(path, sizeof path, "/api/v1/tenants/%s", id);
    request(f, "PATCH", path, JSON_CT, "{}", &r);
    expect_problem(&r, 405, "method-not-allowed", NULL, path);
    expect_header(&r, "Allow", "GET, PUT, DELETE");
    hc_response_free(&r);

    request(f, "POST", "/healthz", JSON_CT, "{}", &r);
    expect_problem(&r, 405, "method-not-allowed", NULL, NULL);
    expect_header(&r, "Allow", "GET");
    hc_response_free(&r);

    expect_refused(f, "PUT", "/api/v1/tenants", JSON_CT, "{\"name\":\"a\"}", 405,
                   "method-not-allowed", NULL);
    assert_int_equal(store_revision(f->store), R0);
}

static void test_create_get(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    struct hc_response g;
    char path[128];
    char location[256];
    char etag[32];
    const char *id;
    json_t *created;
    json_t *got;
    unsigned before;

    request(f, "POST", "/api/v1/tenants", JSON_CT,
            "{\"contact\":{\"email\":\"noc@acme.example\"},\"description\":\"first\","
            "\"name\":\"acme\"}",
            &r);
    assert_int_equal(r.status, 201);
    expect_header(&r, "Content-Type", "application/json");
    expect_header(&r, "Cache-Control", "no-store");
    expect_etag(&r, 1);
    assert_int_equal(header_u64(&r, "X-Cairn-Revision"), R0 + 1);
    assert_null(hc_header(&r, "Idempotent-Replayed", etag, sizeof etag));
    created = body_json(&r);
    id = json_string_value(json_object_get(created, "id"));
    assert_non_null(id);
    assert_true(cairn_uuid_valid(id));
    snprintf(path, sizeof path, "/api/v1/tenants/%s", id);
    assert_non_null(hc_header(&r, "Location", location, sizeof location));
    assert_string_equal(location, path);
    assert_string_equal(json_string_value(json_object_get(created, "name")), "acme");
    assert_string_equal(json_string_value(json_object_get(created, "description")), "first");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(created, "contact"), "email")),
        "noc@acme.example");
    assert_int_equal(json_integer_value(json_object_get(created, "create_revision")), R0 + 1);
    assert_int_equal(json_integer_value(json_object_get(created, "mod_revision")), R0 + 1);
    assert_int_equal(json_object_size(created), 6);
    /* The documented field order. */
    assert_true(strstr(r.body, "\"id\"") < strstr(r.body, "\"name\""));
    assert_true(strstr(r.body, "\"name\"") < strstr(r.body, "\"description\""));
    assert_true(strstr(r.body, "\"description\"") < strstr(r.body, "\"contact\""));
    assert_true(strstr(r.body, "\"contact\"") < strstr(r.body, "\"create_revision\""));
    assert_true(strstr(r.body, "\"create_revision\"") < strstr(r.body, "\"mod_revision\""));
    assert_int_equal(store_revision(f->store), R0 + 1);

    /* A linearizable read (the default) goes through the read barrier. */
    before = barriers(f);
    request(f, "GET", path, NULL, NULL, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(barriers(f), before + 1);
    expect_etag(&g, 1);
    assert_int_equal(header_u64(&g, "X-Cairn-Revision"), R0 + 1);
    got = body_json(&g);
    assert_true(json_equal(created, got));
    json_decref(got);
    hc_response_free(&g);

    snprintf(location, sizeof location, "%s?consistency=linearizable", path);
    request(f, "GET", location, NULL, NULL, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(barriers(f), before + 2);
    hc_response_free(&g);

    /* A stale read does not. */
    snprintf(location, sizeof location, "%s?consistency=stale", path);
    request(f, "GET", location, NULL, NULL, &g);
    assert_int_equal(g.status, 200);
    assert_int_equal(barriers(f), before + 2);
    expect_etag(&g, 1);
    hc_response_free(&g);

    snprintf(location, sizeof location, "%s?consistency=eventual", path);
    expect_refused(f, "GET", location, NULL, NULL, 400, "invalid-parameter", "consistency");
    snprintf(location, sizeof location, "%s?fields=name", path);
    expect_refused(f, "GET", location, NULL, NULL, 400, "unknown-parameter", "fields");

    json_decref(created);
    hc_response_free(&r);
}

/* A write answered with the object as the leader stored it (a follower's
 * forwarded write, answered before the follower applies it) gives the same
 * answer as one read back from the local store; only handlers that read
 * their write back through api_answer_written ask for it. */
static void test_answered_by_leader(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    struct hc_response g;
    char path[128];
    json_t *created;
    json_t *got;

    f->answer_objects = true;
    request(f, "POST", "/api/v1/tenants", JSON_CT,
            "{\"name\":\"acme\",\"description\":\"first\",\"quotas\":{\"devices\":5}}", &r);
    assert_int_equal(r.status, 201);
    assert_int_equal(f->answered, 1);
    expect_etag(&r, 1);
    created = body_json(&r);
    snprintf(path, sizeof path, "/api/v1/tenants/%s",
             json_string_value(json_object_get(created, "id")));
    request(f, "GET", path, NULL, NULL, &g);
    assert_int_equal(g.status, 200);
    got = body_json(&g);
    assert_true(json_equal(created, got));
    json_decref(got);
    json_decref(created);
    hc_response_free(&g);
    hc_response_free(&r);

    request(f, "PUT", path, JSON_CT "If-Match: \"" R0_PLUS_1 "\"\r\n", "{\"name\":\"acme-2\"}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(f->answered, 2);
    expect_etag(&r, 2);
    got = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(got, "name")), "acme-2");
    assert_null(json_object_get(got, "description"));
    json_decref(got);
    hc_response_free(&r);

    /* A refused write has no object; a delete asks for none. */
    request(f, "PUT", path, JSON_CT "If-Match: \"" R0_PLUS_1 "\"\r\n", "{\"name\":\"acme-3\"}", &r);
    assert_int_equal(r.status, 412);
    hc_response_free(&r);
    request(f, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(f->answered, 2);
    hc_response_free(&r);
}

static void test_get_errors(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    char id[CAIRN_UUID_SIZE];
    char path[128];

    create_tenant(f, "acme", id);
    cairn_uuid(id);
    snprintf(path, sizeof path, "/api/v1/tenants/%s", id);
    request(f, "GET", path, NULL, NULL, &r);
    expect_problem(&r, 404, "not-found", NULL, path);
    assert_int_equal(header_u64(&r, "X-Cairn-Revision"), R0 + 1);
    hc_response_free(&r);

    expect_refused(f, "GET", "/api/v1/tenants/not-a-uuid", NULL, NULL, 400, "invalid-field", "id");
    /* Upper case is not how ids are written. */
    for (char *p = id; *p != '\0'; p++) {
        if (*p >= 'a' && *p <= 'f') {
            *p = (char)(*p - 'a' + 'A');
        }
    }
    snprintf(path, sizeof path, "/api/v1/tenants/%s", id);
    expect_refused(f, "GET", path, NULL, NULL, 400, "invalid-field", "id");
}

/* Reads one list page; returns the parsed answer. */
static json_t *list_page(struct fx *f, const char *query, uint64_t *revision)
{
    struct hc_response r;
    char path[256];
    json_t *j;
    snprintf(path, sizeof path, "/api/v1/tenants%s", query);
    request(f, "GET", path, NULL, NULL, &r);
    if (r.status != 200) {
        fail_msg("GET %s: %d %s", path, r.status, r.body);
    }
    j = body_json(&r);
    *revision = header_u64(&r, "X-Cairn-Revision");
    assert_int_equal(json_integer_value(json_object_get(j, "revision")), *revision);
    assert_true(json_is_array(json_object_get(j, "items")));
    hc_response_free(&r);
    return j;
}

static void test_list(void **state)
{
    struct fx *f = *state;
    char ids[5][CAIRN_UUID_SIZE];
    char seen[5][CAIRN_UUID_SIZE];
    char query[128];
    char cursor[CAIRN_UUID_SIZE] = "";
    size_t n_seen = 0;
    uint64_t revision;
    json_t *page;

    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        create_tenant(f, name, ids[i]);
    }

    /* Pages of two, following next_cursor; at most 5 pages. */
    for (int pages = 0; pages < 5; pages++) {
        json_t *items;
        json_t *next;
        snprintf(query, sizeof query, "?limit=2%s%s", cursor[0] != '\0' ? "&cursor=" : "", cursor);
        page = list_page(f, query, &revision);
        assert_int_equal(revision, R0 + 5);
        items = json_object_get(page, "items");
        assert_true(json_array_size(items) <= 2);
        for (size_t i = 0; i < json_array_size(items); i++) {
            const char *id = json_string_value(json_object_get(json_array_get(items, i), "id"));
            assert_true(n_seen < 5);
            if (n_seen > 0) {
                assert_true(strcmp(seen[n_seen - 1], id) < 0);
            }
            snprintf(seen[n_seen++], CAIRN_UUID_SIZE, "%s", id);
        }
        next = json_object_get(page, "next_cursor");
        assert_non_null(next);
        if (json_is_null(next)) {
            json_decref(page);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(page);
    }
    assert_int_equal(n_seen, 5);
    for (int i = 0; i < 5; i++) {
        bool found = false;
        for (size_t j = 0; j < n_seen; j++) {
            found = found || strcmp(ids[i], seen[j]) == 0;
        }
        assert_true(found);
    }

    /* Default limit: everything, no next page. */
    page = list_page(f, "", &revision);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 5);
    assert_true(json_is_null(json_object_get(page, "next_cursor")));
    json_decref(page);

    /* Name filter. */
    page = list_page(f, "?name=t3", &revision);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(page, "items"), 0), "id")),
        ids[3]);
    json_decref(page);
    page = list_page(f, "?name=nobody&consistency=stale", &revision);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    json_decref(page);
    snprintf(query, sizeof query, "?name=t3&cursor=%s", ids[3]);
    page = list_page(f, query, &revision);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    json_decref(page);
    page = list_page(f, "?limit=1000", &revision);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 5);
    json_decref(page);

    static const char *const bad_limits[] = {"0", "1001", "abc", "-1", "", "1e3"};
    for (size_t i = 0; i < sizeof bad_limits / sizeof bad_limits[0]; i++) {
        snprintf(query, sizeof query, "/api/v1/tenants?limit=%s", bad_limits[i]);
        expect_refused(f, "GET", query, NULL, NULL, 400, "invalid-parameter", "limit");
    }
    expect_refused(f, "GET", "/api/v1/tenants?cursor=t3", NULL, NULL, 400, "invalid-parameter",
                   "cursor");
    expect_refused(f, "GET", "/api/v1/tenants?cursor=%ff%fe", NULL, NULL, 400, "invalid-parameter",
                   "cursor");
    expect_refused(f, "GET", "/api/v1/tenants?cursor=%zz", NULL, NULL, 400, "invalid-parameter",
                   "cursor");
    expect_refused(f, "GET", "/api/v1/tenants?sort=name", NULL, NULL, 400, "unknown-parameter",
                   "sort");
    expect_refused(f, "GET", "/api/v1/tenants?consistency=fast", NULL, NULL, 400,
                   "invalid-parameter", "consistency");
}

static void test_replace(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    char id[CAIRN_UUID_SIZE];
    char other[CAIRN_UUID_SIZE];
    char path[128];
    json_t *j;

    create_tenant(f, "acme", id);
    create_tenant(f, "globex", other);
    snprintf(path, sizeof path, "/api/v1/tenants/%s", id);

    /* The first tenant was created at R0 + 1. */
    request(f, "PUT", path, JSON_CT "If-Match: \"" R0_PLUS_1 "\"\r\n",
            "{\"name\":\"acme-2\",\"description\":\"renamed\"}", &r);
    assert_int_equal(r.status, 200);
    expect_etag(&r, 3);
    assert_int_equal(header_u64(&r, "X-Cairn-Revision"), R0 + 3);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "id")), id);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "acme-2");
    assert_int_equal(json_integer_value(json_object_get(j, "create_revision")), R0 + 1);
    assert_int_equal(json_integer_value(json_object_get(j, "mod_revision")), R0 + 3);
    json_decref(j);
    hc_response_free(&r);

    /* A stale ETag is refused by the store. */
    expect_refused(f, "PUT", path, JSON_CT "If-Match: \"1\"\r\n", "{\"name\":\"acme-3\"}", 412,
                   "precondition-failed", NULL);
    request(f, "GET", path, NULL, NULL, &r);
    assert_non_null(strstr(r.body, "\"acme-2\""));
    hc_response_free(&r);

    static const char *const bad_if_match[] = {"3", "W/\"3\"", "\"3\", \"4\"", "\"0\"", "x"};
    for (size_t i = 0; i < sizeof bad_if_match / sizeof bad_if_match[0]; i++) {
        char headers[128];
        snprintf(headers, sizeof headers, JSON_CT "If-Match: %s\r\n", bad_if_match[i]);
        expect_refused(f, "PUT", path, headers, "{\"name\":\"acme-3\"}", 400, "invalid-header",
                       "If-Match");
    }

    /* "*" and no If-Match: no revision check. The description is dropped:
     * PUT replaces the whole object. */
    request(f, "PUT", path, JSON_CT "If-Match: *\r\n", "{\"name\":\"acme-3\"}", &r);
    assert_int_equal(r.status, 200);
    expect_etag(&r, 4);
    assert_null(strstr(r.body, "description"));
    hc_response_free(&r);
    request(f, "PUT", path, JSON_CT, "{\"name\":\"acme-4\"}", &r);
    assert_int_equal(r.status, 200);
    expect_etag(&r, 5);
    hc_response_free(&r);

    /* Taking another tenant's name, a missing tenant, bad bodies. */
    expect_refused(f, "PUT", path, JSON_CT, "{\"name\":\"globex\"}", 409, "conflict", NULL);
    expect_refused(f, "PUT", path, JSON_CT, "{\"name\":\"acme\",\"id\":\"x\"}", 400,
                   "read-only-field", "id");
    expect_refused(f, "PUT", path, "Content-Type: text/plain\r\n", "{\"name\":\"acme\"}", 415,
                   "unsupported-media-type", "Content-Type");
    expect_refused(f, "PUT", "/api/v1/tenants/nope", JSON_CT, "{\"name\":\"acme\"}", 400,
                   "invalid-field", "id");
    cairn_uuid(other);
    snprintf(path, sizeof path, "/api/v1/tenants/%s", other);
    expect_refused(f, "PUT", path, JSON_CT, "{\"name\":\"acme\"}", 404, "not-found", NULL);
}

static void test_delete(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    char id[CAIRN_UUID_SIZE];
    char again[CAIRN_UUID_SIZE];
    char path[128];
    uint64_t revision;
    json_t *page;

    create_tenant(f, "acme", id);
    snprintf(path, sizeof path, "/api/v1/tenants/%s", id);
    expect_refused(f, "DELETE", path, "If-Match: \"7\"\r\n", NULL, 412, "precondition-failed",
                   NULL);
    expect_refused(f, "DELETE", path, "If-Match: 1\r\n", NULL, 400, "invalid-header", "If-Match");

    request(f, "DELETE", path, "If-Match: \"" R0_PLUS_1 "\"\r\n", NULL, &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(header_u64(&r, "X-Cairn-Revision"), R0 + 2);
    hc_response_free(&r);
    assert_int_equal(store_revision(f->store), R0 + 2);

    request(f, "GET", path, NULL, NULL, &r);
    expect_problem(&r, 404, "not-found", NULL, path);
    hc_response_free(&r);
    expect_refused(f, "DELETE", path, NULL, NULL, 404, "not-found", NULL);
    page = list_page(f, "", &revision);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    json_decref(page);

    /* The name is free again. */
    create_tenant(f, "acme", again);
    assert_string_not_equal(id, again);
}

static void test_duplicate_name(void **state)
{
    struct fx *f = *state;
    char id[CAIRN_UUID_SIZE];
    struct hc_response r;
    create_tenant(f, "acme", id);
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "{\"name\":\"acme\"}", 409, "conflict",
                   NULL);
    request(f, "POST", "/api/v1/tenants", JSON_CT, "{\"name\":\"acme\"}", &r);
    assert_non_null(strstr(r.body, "acme"));
    assert_int_equal(header_u64(&r, "X-Cairn-Revision"), R0 + 1);
    hc_response_free(&r);
}

static void test_too_big(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    struct cairn_buf b;
    char head[512];
    uint64_t before;

    /* A body over the limit, with its Content-Length. */
    cairn_buf_init(&b);
    cairn_buf_printf(&b, "{\"name\":\"big\",\"description\":\"");
    while (b.len < MAX_BODY + 10) {
        cairn_buf_append(&b, "x", 1);
    }
    cairn_buf_printf(&b, "\"}");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, b.data, 413, "body-too-large", NULL);

    /* Refused on the announced length, before any byte of the body. */
    before = store_revision(f->store);
    snprintf(head, sizeof head,
             "POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\n%s" JSON_CT
             "Content-Length: 100000000\r\n\r\n",
             f->auth);
    assert_int_equal(hc_raw(f->port, head, strlen(head), &r), 0);
    expect_problem(&r, 413, "body-too-large", NULL, "/api/v1/tenants");
    expect_header(&r, "Connection", "close");
    hc_response_free(&r);

    /* Chunked, without a length: counted as it arrives. */
    {
        struct cairn_buf c;
        cairn_buf_init(&c);
        cairn_buf_printf(&c,
                         "POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\n%s" JSON_CT
                         "Transfer-Encoding: chunked\r\n\r\n",
                         f->auth);
        for (size_t sent = 0; sent <= MAX_BODY; sent += 1000) {
            cairn_buf_printf(&c, "3e8\r\n");
            for (int i = 0; i < 1000; i++) {
                cairn_buf_append(&c, " ", 1);
            }
            cairn_buf_printf(&c, "\r\n");
        }
        cairn_buf_printf(&c, "0\r\n\r\n");
        assert_int_equal(hc_raw(f->port, c.data, c.len, &r), 0);
        expect_problem(&r, 413, "body-too-large", NULL, NULL);
        hc_response_free(&r);
        cairn_buf_close(&c);
    }
    assert_int_equal(store_revision(f->store), before);

    /* A small chunked body is read whole. */
    snprintf(head, sizeof head,
             "POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s" JSON_CT
             "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"nam\r\n9\r\ne\":\"acme\"\r\n1\r\n}\r\n"
             "0\r\n\r\n",
             f->auth);
    assert_int_equal(hc_raw(f->port, head, strlen(head), &r), 0);
    assert_int_equal(r.status, 201);
    hc_response_free(&r);
    cairn_buf_close(&b);
}

static void test_media_type(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    expect_refused(f, "POST", "/api/v1/tenants", "Content-Type: text/plain\r\n",
                   "{\"name\":\"acme\"}", 415, "unsupported-media-type", "Content-Type");
    expect_refused(f, "POST", "/api/v1/tenants", NULL, "{\"name\":\"acme\"}", 415,
                   "unsupported-media-type", "Content-Type");
    expect_refused(f, "POST", "/api/v1/tenants",
                   "Content-Type: application/json; charset=iso-8859-1\r\n", "{\"name\":\"acme\"}",
                   415, "unsupported-media-type", "Content-Type");
    request(f, "POST", "/api/v1/tenants", "Content-Type: application/json; charset=UTF-8\r\n",
            "{\"name\":\"acme\"}", &r);
    assert_int_equal(r.status, 201);
    hc_response_free(&r);
}

static void test_malformed_json(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "{\"name\":", 400, "malformed-json",
                   NULL);
    request(f, "POST", "/api/v1/tenants", JSON_CT, "{\n\"name\": acme}", &r);
    expect_problem(&r, 400, "malformed-json", NULL, "/api/v1/tenants");
    assert_non_null(strstr(r.body, "line 2, column"));
    hc_response_free(&r);
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "{\"name\":\"a\",\"name\":\"b\"}", 400,
                   "malformed-json", NULL);
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "", 400, "malformed-json", NULL);
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "\"acme\"", 400, "invalid-body", NULL);
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "[{\"name\":\"acme\"}]", 400,
                   "invalid-body", NULL);
    /* Invalid UTF-8 is malformed JSON, and the problem is still valid JSON. */
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "{\"name\":\"\xff\"}", 400,
                   "malformed-json", NULL);
}

static void test_bad_fields(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "{\"name\":\"acme\",\"fax\":\"1\"}", 400,
                   "unknown-field", "fax");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT,
                   "{\"name\":\"acme\",\"contact\":{\"fax\":\"1\"}}", 400, "unknown-field",
                   "contact.fax");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT,
                   "{\"name\":\"acme\",\"id\":\"00000000-0000-4000-8000-000000000000\"}", 400,
                   "read-only-field", "id");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "{\"name\":\"acme\",\"mod_revision\":3}",
                   400, "read-only-field", "mod_revision");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "{\"name\":42}", 400, "invalid-field",
                   "name");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "{\"description\":\"x\"}", 400,
                   "missing-field", "name");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "{\"name\":\"Acme\"}", 422,
                   "invalid-field", "name");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT,
                   "{\"name\":\"acme\",\"contact\":{\"email\":\"nobody\"}}", 422, "invalid-field",
                   "contact.email");
    request(f, "POST", "/api/v1/tenants", JSON_CT, "{\"name\":7}", &r);
    assert_non_null(strstr(r.body, "must be a string"));
    hc_response_free(&r);
    assert_int_equal(store_revision(f->store), R0);
}

static void test_idempotency(void **state)
{
    struct fx *f = *state;
    static const char body[] = "{\"name\":\"acme\"}";
    struct hc_response r1;
    struct hc_response r2;
    char l1[128];
    char l2[128];
    char buf[16];
    char path[128];
    char headers[512];
    uint64_t revision;
    json_t *j1;
    json_t *j2;
    json_t *page;
    char *key;

    request(f, "POST", "/api/v1/tenants", JSON_CT "Idempotency-Key: k-1\r\n", body, &r1);
    assert_int_equal(r1.status, 201);
    assert_null(hc_header(&r1, "Idempotent-Replayed", buf, sizeof buf));
    request(f, "POST", "/api/v1/tenants", JSON_CT "Idempotency-Key: k-1\r\n", body, &r2);
    assert_int_equal(r2.status, 201);
    expect_header(&r2, "Idempotent-Replayed", "true");
    hc_header(&r1, "Location", l1, sizeof l1);
    hc_header(&r2, "Location", l2, sizeof l2);
    assert_string_equal(l1, l2);
    j1 = body_json(&r1);
    j2 = body_json(&r2);
    assert_true(json_equal(j1, j2));
    json_decref(j2);
    hc_response_free(&r2);
    assert_int_equal(store_revision(f->store), R0 + 1);
    page = list_page(f, "", &revision);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 1);
    json_decref(page);

    /* The same key with another body, or on another path, is refused. */
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT "Idempotency-Key: k-1\r\n",
                   "{\"name\":\"globex\"}", 422, "idempotency-key-reused", NULL);
    /* Without the key, the same body is a new request: the name is taken. */
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, body, 409, "conflict", NULL);
    key = calloc(1, 300);
    memset(key, 'k', 256);
    snprintf(headers, sizeof headers, JSON_CT "Idempotency-Key: %s\r\n", key);
    free(key);
    expect_refused(f, "POST", "/api/v1/tenants", headers, "{\"name\":\"globex\"}", 400,
                   "invalid-header", "Idempotency-Key");

    /* A replay after the tenant was deleted still answers the first
     * outcome, from the stored result. */
    snprintf(path, sizeof path, "/api/v1/tenants/%s", json_string_value(json_object_get(j1, "id")));
    request(f, "DELETE", path, NULL, NULL, &r2);
    assert_int_equal(r2.status, 204);
    hc_response_free(&r2);
    request(f, "POST", "/api/v1/tenants", JSON_CT "Idempotency-Key: k-1\r\n", body, &r2);
    assert_int_equal(r2.status, 201);
    expect_header(&r2, "Idempotent-Replayed", "true");
    j2 = body_json(&r2);
    assert_string_equal(json_string_value(json_object_get(j2, "id")),
                        json_string_value(json_object_get(j1, "id")));
    assert_int_equal(json_integer_value(json_object_get(j2, "create_revision")), R0 + 1);
    json_decref(j2);
    hc_response_free(&r2);
    assert_int_equal(store_revision(f->store), R0 + 2);

    json_decref(j1);
    hc_response_free(&r1);
}

static void test_unavailable(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    char id[CAIRN_UUID_SIZE];

    create_tenant(f, "acme", id);
    pthread_mutex_lock(&f->mu);
    f->barrier_rv = CAIRN_ENOLEADER;
    pthread_mutex_unlock(&f->mu);
    request(f, "GET", "/api/v1/tenants", NULL, NULL, &r);
    expect_problem(&r, 503, "unavailable", NULL, "/api/v1/tenants");
    expect_header(&r, "Retry-After", "1");
    assert_non_null(strstr(r.body, "no leader known"));
    hc_response_free(&r);
    /* A stale read needs no leader. */
    request(f, "GET", "/api/v1/tenants?consistency=stale", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    hc_response_free(&r);

    pthread_mutex_lock(&f->mu);
    f->propose_rv = CAIRN_ETIMEDOUT;
    pthread_mutex_unlock(&f->mu);
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT, "{\"name\":\"globex\"}", 503,
                   "unavailable", NULL);
    request(f, "POST", "/api/v1/tenants", JSON_CT, "{\"name\":\"globex\"}", &r);
    expect_header(&r, "Retry-After", "1");
    assert_non_null(strstr(r.body, "no quorum"));
    hc_response_free(&r);
}

static void test_cluster(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    json_t *j;
    json_t *m;

    request(f, "GET", "/api/v1/cluster", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "node_id")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "leader_id")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "term")), 3);
    assert_int_equal(json_array_size(json_object_get(j, "members")), 2);
    m = json_array_get(json_object_get(j, "members"), 0);
    assert_int_equal(json_integer_value(json_object_get(m, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(m, "raft_address")), "127.0.0.1:7001");
    assert_string_equal(json_string_value(json_object_get(m, "api_address")), "127.0.0.1:8001");
    assert_string_equal(json_string_value(json_object_get(m, "role")), "voter");
    assert_string_equal(json_string_value(json_object_get(m, "state")), "leader");
    assert_true(json_is_true(json_object_get(m, "reachable")));
    assert_true(json_is_true(json_object_get(m, "leader")));
    assert_int_equal(json_integer_value(json_object_get(m, "commit_index")), 10);
    assert_int_equal(json_integer_value(json_object_get(m, "applied_index")), 9);
    assert_int_equal(json_integer_value(json_object_get(m, "last_index")), 11);
    assert_int_equal(json_integer_value(json_object_get(m, "term")), 3);
    m = json_array_get(json_object_get(j, "members"), 1);
    assert_true(json_is_false(json_object_get(m, "leader")));
    assert_true(json_is_false(json_object_get(m, "reachable")));
    json_decref(j);
    hc_response_free(&r);

    pthread_mutex_lock(&f->mu);
    f->leader_id = 0;
    pthread_mutex_unlock(&f->mu);
    request(f, "GET", "/api/v1/cluster", NULL, NULL, &r);
    j = body_json(&r);
    assert_true(json_is_null(json_object_get(j, "leader_id")));
    assert_true(
        json_is_false(json_object_get(json_array_get(json_object_get(j, "members"), 0), "leader")));
    json_decref(j);
    hc_response_free(&r);

    request(f, "POST", "/api/v1/cluster/members", JSON_CT,
            "{\"id\":4,\"raft_address\":\"10.0.0.4:7001\",\"api_address\":\"10.0.0.4:8001\"}", &r);
    assert_int_equal(r.status, 201);
    expect_header(&r, "Location", "/api/v1/cluster/members/4");
    assert_string_equal(r.body,
                        "{\"id\":4,\"raft_address\":\"10.0.0.4:7001\",\"api_address\":"
                        "\"10.0.0.4:8001\"}");
    hc_response_free(&r);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->added_id, 4);
    assert_string_equal(f->added_api, "10.0.0.4:8001");
    f->member_calls = 0;
    pthread_mutex_unlock(&f->mu);

    expect_refused(f, "POST", "/api/v1/cluster/members", JSON_CT,
                   "{\"id\":4,\"raft_address\":\"10.0.0.4:0\",\"api_address\":\"10.0.0.4:8001\"}",
                   422, "invalid-field", "raft_address");
    expect_refused(f, "POST", "/api/v1/cluster/members", JSON_CT,
                   "{\"id\":4,\"raft_address\":\"10.0.0.4:1\",\"api_address\":\"10.0.0.4:8001\","
                   "\"role\":\"voter\"}",
                   400, "unknown-field", "role");
    expect_refused(f, "POST", "/api/v1/cluster/members", JSON_CT,
                   "{\"id\":0,\"raft_address\":\"a:1\",\"api_address\":\"a:2\"}", 422,
                   "invalid-field", "id");
    expect_refused(f, "POST", "/api/v1/cluster/members", JSON_CT, "{\"id\":4}", 400,
                   "missing-field", "raft_address");
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->member_calls, 0);
    pthread_mutex_unlock(&f->mu);
    expect_refused(f, "POST", "/api/v1/cluster/members", JSON_CT,
                   "{\"id\":5,\"raft_address\":\"a:1\",\"api_address\":\"a:2\"}", 409, "busy",
                   NULL);

    request(f, "DELETE", "/api/v1/cluster/members/2", NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    hc_response_free(&r);
    request(f, "DELETE", "/api/v1/cluster/members/99", NULL, NULL, &r);
    expect_problem(&r, 404, "not-found", NULL, "/api/v1/cluster/members/99");
    assert_non_null(strstr(r.body, "no member 99"));
    hc_response_free(&r);
    static const char *const bad_ids[] = {"abc", "0", "-1", "1.0", "9223372036854775808"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/cluster/members/%s", bad_ids[i]);
        expect_refused(f, "DELETE", path, NULL, NULL, 400, "invalid-field", "id");
    }
    expect_refused(f, "GET", "/api/v1/cluster/members", NULL, NULL, 405, "method-not-allowed",
                   NULL);
}

static void test_listen_errors(void **state)
{
    struct fx *f = *state;
    struct http_server *srv = NULL;
    char listen[64];
    char want[128];
    char errmsg[CAIRN_ERRMSG_SIZE];
    struct http_config cfg = {listen, 2, MAX_BODY, 1000, false};

    snprintf(listen, sizeof listen, "127.0.0.1:%d", f->port);
    assert_int_not_equal(http_server_start(&cfg, &srv, errmsg, sizeof errmsg), 0);
    assert_null(srv);
    snprintf(want, sizeof want, "listen on 127.0.0.1:%d: address already in use", f->port);
    assert_string_equal(errmsg, want);

    snprintf(listen, sizeof listen, "127.0.0.1");
    assert_int_equal(http_server_start(&cfg, &srv, errmsg, sizeof errmsg), CAIRN_EINVAL);
    assert_non_null(strstr(errmsg, "listen on 127.0.0.1: invalid address"));
    snprintf(listen, sizeof listen, "127.0.0.1:70000");
    assert_int_equal(http_server_start(&cfg, &srv, errmsg, sizeof errmsg), CAIRN_EINVAL);
    snprintf(listen, sizeof listen, "localhost:0");
    assert_int_equal(http_server_start(&cfg, &srv, errmsg, sizeof errmsg), 0);
    assert_true(http_server_port(srv) > 0);
    http_server_destroy(srv);
    http_server_destroy(NULL);
}

static int custom_cb(struct mg_connection *conn, void *data)
{
    (void)data;
    http_reply(conn, 200, "text/plain", "Cache-Control: max-age=60\r\n", "custom", 6);
    return 200;
}

/* Routes other modules register after the API (node/'s RPC uses a
 * pattern-matched "/internal/v1/") still win over the 404 catch-all, and
 * can be removed again. */
static void test_routes(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    http_server_route(f->srv, "/internal/v1/", custom_cb, NULL);
    request(f, "GET", "/internal/v1/status", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "custom");
    expect_header(&r, "Cache-Control", "max-age=60");
    hc_response_free(&r);
    request(f, "GET", "/internal/v2/status", NULL, NULL, &r);
    expect_problem(&r, 404, "not-found", NULL, "/internal/v2/status");
    hc_response_free(&r);
    /* The API's routes are unaffected. */
    request(f, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    hc_response_free(&r);
    http_server_route(f->srv, "/internal/v1/", NULL, NULL);
    request(f, "GET", "/internal/v1/status", NULL, NULL, &r);
    expect_problem(&r, 404, "not-found", NULL, "/internal/v1/status");
    hc_response_free(&r);
}

/* No request makes civetweb look for an htpasswd file: the API does its
 * own authentication, and a stray /.htpasswd must not put it behind
 * digest authentication. */
static void test_no_htpasswd(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    atomic_store(&htpasswd_lookups, 0);
    request(f, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    hc_response_free(&r);
    request(f, "GET", "/api/v1/tenants", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    hc_response_free(&r);
    request(f, "GET", "/nope", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    hc_response_free(&r);
    assert_int_equal(atomic_load(&htpasswd_lookups), 0);
}

static void test_keep_alive(void **state)
{
    static const char get[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    struct fx *f = *state;
    struct hc_response r;
    int fd = hc_connect(f->port);
    assert_true(fd >= 0);
    for (int i = 0; i < 3; i++) {
        hc_send(fd, get, sizeof get - 1);
        assert_int_equal(hc_read(fd, &r), 0);
        assert_int_equal(r.status, 200);
        expect_header(&r, "Connection", "keep-alive");
        hc_response_free(&r);
    }
    /* An error answer on the same connection, then a success. */
    char bad[256];
    snprintf(bad, sizeof bad, "GET /api/v1/tenants?x=1 HTTP/1.1\r\nHost: x\r\n%s\r\n", f->auth);
    hc_send(fd, bad, strlen(bad));
    assert_int_equal(hc_read(fd, &r), 0);
    assert_int_equal(r.status, 400);
    hc_response_free(&r);
    hc_send(fd, get, sizeof get - 1);
    assert_int_equal(hc_read(fd, &r), 0);
    assert_int_equal(r.status, 200);
    hc_response_free(&r);
    close(fd);
}

/* Two nodes in one process share nothing. */
static void test_two_nodes(void **state)
{
    struct fx *a = *state;
    struct fx *b = fx_start(2);
    struct hc_response r;
    char id[CAIRN_UUID_SIZE];
    char path[128];
    uint64_t revision;
    json_t *page;

    create_tenant(a, "acme", id);
    snprintf(path, sizeof path, "/api/v1/tenants/%s", id);
    request(b, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    hc_response_free(&r);
    page = list_page(b, "", &revision);
    assert_int_equal(revision, R0);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    json_decref(page);
    request(b, "GET", "/healthz", NULL, NULL, &r);
    assert_string_equal(r.body, "{\"status\":\"ok\",\"node_id\":2}");
    hc_response_free(&r);
    create_tenant(b, "acme", id);
    assert_int_equal(store_revision(a->store), R0 + 1);
    assert_int_equal(store_revision(b->store), R0 + 1);
    fx_stop(b);
    /* a still serves once b is gone. */
    request(a, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    hc_response_free(&r);
}

/* Requests in flight from several threads at once. */
struct burst {
    struct fx *f;
    int first;
    int ok;
};

static void *burst_thread(void *data)
{
    struct burst *b = data;
    for (int i = 0; i < 10; i++) {
        struct hc_response r;
        char body[64];
        snprintf(body, sizeof body, "{\"name\":\"t-%d\"}", b->first + i);
        char headers[256];
        snprintf(headers, sizeof headers, "%s" JSON_CT, b->f->auth);
        if (hc_request(b->f->port, "POST", "/api/v1/tenants", headers, body, &r) == 0 &&
            r.status == 201) {
            b->ok++;
        }
        hc_response_free(&r);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    struct fx *f = *state;
    struct burst bursts[4];
    pthread_t threads[4];
    uint64_t revision;
    json_t *page;
    for (int i = 0; i < 4; i++) {
        bursts[i].f = f;
        bursts[i].first = i * 100;
        bursts[i].ok = 0;
        assert_int_equal(pthread_create(&threads[i], NULL, burst_thread, &bursts[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(bursts[i].ok, 10);
    }
    assert_int_equal(store_revision(f->store), R0 + 40);
    page = list_page(f, "?limit=1000", &revision);
    assert_int_equal(json_array_size(json_object_get(page, "items")), 40);
    json_decref(page);
}

int test_http_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_healthz, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_no_htpasswd, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_not_found, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_create_get, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_answered_by_leader, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_get_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_list, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_replace, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_name, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_too_big, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_media_type, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_json, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_fields, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unavailable, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cluster, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_listen_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_routes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_two_nodes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests_name("northbound http", tests, NULL, NULL);
}
