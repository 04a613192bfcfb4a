/*
 * Authentication, users, access control and the tenants' new fields over
 * real HTTP (the in-process node of fixture.c): 401 on every /api/v1
 * route without a valid token, login (argon2id, the same answer for an
 * unknown user and a wrong password), the login throttle, logout and
 * whoami, a token the replica learns only through a read barrier, users
 * (the password hash never leaves the server), roles and tenant isolation
 * (another tenant's objects answer exactly like missing ones), the audit
 * record of a refused write, quotas, allowed templates and cascade delete.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "tests.h"

#define LOGIN "/api/v1/auth/login"

#define USER_A_ADMIN "00000000-0000-4000-8000-0000000000a1"
#define USER_A_OPER  "00000000-0000-4000-8000-0000000000a2"
#define USER_B_ADMIN "00000000-0000-4000-8000-0000000000b1"
#define USER_SP_OPER "00000000-0000-4000-8000-0000000000c1"

/* --- helpers ----------------------------------------------------------------- */

static void login(struct fx *f, const char *name, const char *password, struct hc_response *r)
{
    char body[512];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"}", name, password);
    request_as(f, "", "POST", LOGIN, JSON_CT, body, r);
}

/* Logs in; fills auth with the new token's Authorization line. */
static void login_ok(struct fx *f, const char *name, const char *password, char auth[FX_AUTH_SIZE])
{
    struct hc_response r;
    json_t *j;
    login(f, name, password, &r);
    if (r.status != 200) {
        fail_msg("login %s: %d %s", name, r.status, r.body);
    }
    j = body_json(&r);
    snprintf(auth, FX_AUTH_SIZE, "Authorization: Bearer %s\r\n",
             json_string_value(json_object_get(j, "token")));
    json_decref(j);
    hc_response_free(&r);
}

/* Creates a user through the API as auth; writes its id. */
static void create_user(struct fx *f, const char *auth, const char *body, char id[CAIRN_UUID_SIZE])
{
    struct hc_response r;
    json_t *j;
    request_as(f, auth, "POST", "/api/v1/users", JSON_CT, body, &r);
    if (r.status != 201) {
        fail_msg("create user %s: %d %s", body, r.status, r.body);
    }
    j = body_json(&r);
    snprintf(id, CAIRN_UUID_SIZE, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    hc_response_free(&r);
}

static int status_as(struct fx *f, const char *auth, const char *method, const char *path,
                     const char *body)
{
    struct hc_response r;
    int status;
    request_as(f, auth, method, path, body != NULL ? JSON_CT : NULL, body, &r);
    status = r.status;
    hc_response_free(&r);
    return status;
}

/* The answer's body with every occurrence of id replaced by "ID". */
static char *masked(const struct hc_response *r, const char *id)
{
    char *out = calloc(1, r->body_len + 1);
    const char *p = r->body;
    size_t n = 0;
    assert_non_null(out);
    while (*p != '\0') {
        if (strncmp(p, id, strlen(id)) == 0) {
            memcpy(out + n, "ID", 2);
            n += 2;
            p += strlen(id);
        } else {
            out[n++] = *p++;
        }
    }
    return out;
}

/* A request as auth on a hidden object answers exactly like the same
 * request on a missing one: status, headers that matter, body. */
static void expect_like_missing(struct fx *f, const char *auth, const char *method,
                                const char *prefix, const char *hidden_id, const char *body)
{
    char missing_id[CAIRN_UUID_SIZE];
    char hidden_path[256];
    char missing_path[256];
    struct hc_response h;
    struct hc_response m;
    char *hb;
    char *mb;

    cairn_uuid(missing_id);
    snprintf(hidden_path, sizeof hidden_path, "%s%s", prefix, hidden_id);
    snprintf(missing_path, sizeof missing_path, "%s%s", prefix, missing_id);
    request_as(f, auth, method, hidden_path, body != NULL ? JSON_CT : NULL, body, &h);
    request_as(f, auth, method, missing_path, body != NULL ? JSON_CT : NULL, body, &m);
    expect_problem(&h, 404, "not-found", NULL, hidden_path);
    expect_problem(&m, 404, "not-found", NULL, missing_path);
    hb = masked(&h, hidden_id);
    mb = masked(&m, missing_id);
    if (strcmp(hb, mb) != 0) {
        fail_msg("%s %s: hidden and missing differ:\n%s\n%s", method, prefix, hb, mb);
    }
    assert_int_equal(header_u64(&h, "X-Cairn-Revision") > 0,
                     header_u64(&m, "X-Cairn-Revision") > 0);
    free(hb);
    free(mb);
    hc_response_free(&h);
    hc_response_free(&m);
}

/* Two tenants, A and B, with a tenant admin and operator in A and an admin
 * in B, written straight into the store, and an SP operator. */
struct world {
    char a[CAIRN_UUID_SIZE];
    char b[CAIRN_UUID_SIZE];
    char a_admin[FX_AUTH_SIZE];
    char a_oper[FX_AUTH_SIZE];
    char b_admin[FX_AUTH_SIZE];
    char sp_oper[FX_AUTH_SIZE];
};

static void world_make(struct fx *f, struct world *w)
{
    create_tenant(f, "tenant-a", w->a);
    create_tenant(f, "tenant-b", w->b);
    fx_user(f, USER_A_ADMIN, "a-admin", "tenant_admin", w->a, w->a_admin);
    fx_user(f, USER_A_OPER, "a-oper", "tenant_operator", w->a, w->a_oper);
    fx_user(f, USER_B_ADMIN, "b-admin", "tenant_admin", w->b, w->b_admin);
    fx_user(f, USER_SP_OPER, "sp-oper", "sp_operator", NULL, w->sp_oper);
}

/* --- authentication ---------------------------------------------------------- */

static void test_unauthenticated(void **state)
{
    static const struct {
        const char *method;
        const char *path;
    } routes[] = {
        {"GET", "/api/v1/tenants"},
        {"POST", "/api/v1/tenants"},
        {"GET", "/api/v1/tenants/00000000-0000-4000-8000-000000000001"},
        {"PUT", "/api/v1/tenants/00000000-0000-4000-8000-000000000001"},
        {"DELETE", "/api/v1/tenants/00000000-0000-4000-8000-000000000001"},
        {"GET", "/api/v1/users"},
        {"POST", "/api/v1/users"},
        {"GET", "/api/v1/users/" USER_A_ADMIN},
        {"PUT", "/api/v1/users/" USER_A_ADMIN},
        {"DELETE", "/api/v1/users/" USER_A_ADMIN},
        {"GET", "/api/v1/cluster"},
        {"POST", "/api/v1/cluster/members"},
        {"DELETE", "/api/v1/cluster/members/2"},
        {"POST", "/api/v1/auth/logout"},
        {"GET", "/api/v1/auth/whoami"},
        {"GET", "/api/v1"},
        {"GET", "/api/v1/no-such-route"},
        {"PATCH", "/api/v1/tenants"},
    };
    static const char *const bad_auth[] = {
        "",
        "Authorization: Basic YWRtaW46YWRtaW4=\r\n",
        "Authorization: Bearer\r\n",
        "Authorization: Bearer short\r\n",
        "Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA x\r\n",
        /* Well formed, but no session has it. */
        "Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n",
    };
    struct fx *f = *state;
    struct hc_response r;
    char buf[128];
    uint64_t before = store_revision(f->store);

    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        for (size_t j = 0; j < sizeof bad_auth / sizeof bad_auth[0]; j++) {
            request_as(f, bad_auth[j], routes[i].method, routes[i].path, JSON_CT, "{}", &r);
            expect_problem(&r, 401, "unauthorized", NULL, routes[i].path);
            assert_non_null(hc_header(&r, "WWW-Authenticate", buf, sizeof buf));
            assert_true(strncmp(buf, "Bearer", 6) == 0);
            hc_response_free(&r);
        }
    }
    assert_int_equal(store_revision(f->store), before);
    /* The probes and the login need no token; the scheme is case-blind. */
    assert_int_equal(status_as(f, "", "GET", "/healthz", NULL), 200);
    assert_int_equal(status_as(f, "", "GET", "/readyz", NULL), 200);
    assert_int_equal(status_as(f, "", "GET", LOGIN, NULL), 405);
    snprintf(buf, sizeof buf, "authorization: bearer %s",
             f->auth + strlen("Authorization: Bearer "));
    assert_int_equal(status_as(f, buf, "GET", "/api/v1/tenants", NULL), 200);
}

static void test_login(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    struct hc_response u;
    char auth[FX_AUTH_SIZE];
    char *wrong;
    char *unknown;
    json_t *j;
    const char *expires;

    login(f, FX_ADMIN, FX_PASSWORD, &r);
    assert_int_equal(r.status, 200);
    expect_header(&r, "Cache-Control", "no-store");
    j = body_json(&r);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "token"))), 43);
    expires = json_string_value(json_object_get(j, "expires_at"));
    assert_non_null(expires);
    assert_int_equal(strlen(expires), 20);
    assert_int_equal(expires[19], 'Z');
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "user"), "username")),
                        FX_ADMIN);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "user"), "role")),
                        "sp_admin");
    assert_null(strstr(r.body, "password"));
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n",
             json_string_value(json_object_get(j, "token")));
    json_decref(j);
    hc_response_free(&r);
    /* The session is committed: one more revision. */
    assert_int_equal(store_revision(f->store), R0 + 1);

    request_as(f, auth, "GET", "/api/v1/auth/whoami", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "user"), "username")),
                        FX_ADMIN);
    assert_non_null(json_object_get(j, "expires_at"));
    assert_null(json_object_get(j, "token"));
    json_decref(j);
    hc_response_free(&r);

    /* A wrong password and an unknown user: the same answer. */
    login(f, FX_ADMIN, "not the password", &r);
    login(f, "nobody-here", "not the password", &u);
    expect_problem(&r, 401, "unauthorized", NULL, LOGIN);
    expect_problem(&u, 401, "unauthorized", NULL, LOGIN);
    wrong = masked(&r, "\x01");
    unknown = masked(&u, "\x01");
    assert_string_equal(wrong, unknown);
    free(wrong);
    free(unknown);
    hc_response_free(&r);
    hc_response_free(&u);

    /* Bad bodies are 400 like anywhere else. */
    request_as(f, "", "POST", LOGIN, JSON_CT, "{\"username\":\"admin\"}", &r);
    expect_problem(&r, 400, "missing-field", "password", LOGIN);
    hc_response_free(&r);
    request_as(f, "", "POST", LOGIN, JSON_CT, "{\"username\":\"admin\",\"password\":1}", &r);
    expect_problem(&r, 400, "invalid-field", "password", LOGIN);
    hc_response_free(&r);

    /* Logout revokes the token, and only it. */
    assert_int_equal(status_as(f, auth, "POST", "/api/v1/auth/logout", NULL), 204);
    assert_int_equal(status_as(f, auth, "GET", "/api/v1/auth/whoami", NULL), 401);
    assert_int_equal(status_as(f, auth, "GET", "/api/v1/tenants", NULL), 401);
    assert_int_equal(status_as(f, f->auth, "GET", "/api/v1/tenants", NULL), 200);
}

static void test_login_throttle(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    char buf[16];
    uint64_t retry;

    for (int i = 0; i < API_LOGIN_MAX_FAILURES; i++) {
        login(f, FX_ADMIN, "wrong password!", &r);
        expect_problem(&r, 401, "unauthorized", NULL, LOGIN);
        hc_response_free(&r);
    }
    /* Now even the right password is refused, without being checked. */
    login(f, FX_ADMIN, FX_PASSWORD, &r);
    expect_problem(&r, 429, "too-many-requests", NULL, LOGIN);
    retry = header_u64(&r, "Retry-After");
    assert_true(retry >= 1 && retry <= 60);
    hc_response_free(&r);
    /* From the same address, for another user too. */
    login(f, "someone-else", "whatever password", &r);
    expect_problem(&r, 429, "too-many-requests", NULL, LOGIN);
    assert_non_null(hc_header(&r, "Retry-After", buf, sizeof buf));
    hc_response_free(&r);
    /* Tokens still work. */
    assert_int_equal(status_as(f, f->auth, "GET", "/api/v1/auth/whoami", NULL), 200);
    /* Another node keeps its own count. */
    {
        struct fx *g = fx_start(2);
        char auth[FX_AUTH_SIZE];
        login_ok(g, FX_ADMIN, FX_PASSWORD, auth);
        fx_stop(g);
    }
}

/* A token minted elsewhere that this replica has not applied yet works
 * through one read barrier. */
static void test_token_from_elsewhere(void **state)
{
    struct fx *f = *state;
    char auth[FX_AUTH_SIZE];
    unsigned before;

    fx_user_lagging(f, USER_SP_OPER, "sp-oper", "sp_operator", NULL, auth);
    before = barriers(f);
    assert_int_equal(status_as(f, auth, "GET", "/api/v1/auth/whoami", NULL), 200);
    assert_int_equal(barriers(f), before + 1);
    /* Known now: no barrier. */
    assert_int_equal(status_as(f, auth, "GET", "/api/v1/auth/whoami", NULL), 200);
    assert_int_equal(barriers(f), before + 1);
    /* An unknown token costs one barrier too, then 401; without a leader
     * it cannot be decided: 503. */
    assert_int_equal(
        status_as(f, "Authorization: Bearer BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\r\n", "GET",
                  "/api/v1/auth/whoami", NULL),
        401);
    assert_int_equal(barriers(f), before + 2);
    pthread_mutex_lock(&f->mu);
    f->barrier_rv = CAIRN_ENOLEADER;
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(
        status_as(f, "Authorization: Bearer BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\r\n", "GET",
                  "/api/v1/auth/whoami", NULL),
        503);
    /* A known token needs no leader. */
    assert_int_equal(status_as(f, auth, "GET", "/api/v1/auth/whoami", NULL), 200);
}

/* --- users ------------------------------------------------------------------- */

static void test_users_crud(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    char tenant[CAIRN_UUID_SIZE];
    char id[CAIRN_UUID_SIZE];
    char path[128];
    char body[512];
    char auth[FX_AUTH_SIZE];
    char session[FX_AUTH_SIZE];
    json_t *j;

    create_tenant(f, "acme", tenant);
    snprintf(body, sizeof body,
             "{\"username\":\"jane.doe\",\"password\":\"twelve-chars\",\"role\":\"tenant_admin\","
             "\"tenant_id\":\"%s\",\"display_name\":\"Jane\",\"email\":\"jane@acme.example\"}",
             tenant);
    request(f, "POST", "/api/v1/users", JSON_CT, body, &r);
    assert_int_equal(r.status, 201);
    expect_etag(&r, 2);
    assert_null(strstr(r.body, "password"));
    j = body_json(&r);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    assert_string_equal(json_string_value(json_object_get(j, "tenant_id")), tenant);
    assert_true(json_is_false(json_object_get(j, "disabled")));
    assert_int_equal(json_object_size(j), 9);
    json_decref(j);
    hc_response_free(&r);
    snprintf(path, sizeof path, "/api/v1/users/%s", id);

    request(f, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "password"));
    assert_non_null(strstr(r.body, "\"display_name\":\"Jane\""));
    hc_response_free(&r);
    request(f, "GET", "/api/v1/users?name=jane.doe", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, id));
    assert_null(strstr(r.body, "password"));
    hc_response_free(&r);
    request(f, "GET", "/api/v1/users", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 2); /* and the admin */
    json_decref(j);
    assert_null(strstr(r.body, "password"));
    hc_response_free(&r);

    login_ok(f, "jane.doe", "twelve-chars", session);
    /* A PUT without password keeps it. */
    snprintf(body, sizeof body,
             "{\"username\":\"jane.doe\",\"role\":\"tenant_operator\",\"tenant_id\":\"%s\"}",
             tenant);
    request(f, "PUT", path, JSON_CT, body, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "display_name"));
    assert_non_null(strstr(r.body, "tenant_operator"));
    hc_response_free(&r);
    login_ok(f, "jane.doe", "twelve-chars", auth);
    /* With one, it changes. */
    snprintf(body, sizeof body,
             "{\"username\":\"jane.doe\",\"role\":\"tenant_operator\",\"tenant_id\":\"%s\","
             "\"password\":\"another-secret\"}",
             tenant);
    assert_int_equal(status_as(f, f->auth, "PUT", path, body), 200);
    login(f, "jane.doe", "twelve-chars", &r);
    assert_int_equal(r.status, 401);
    hc_response_free(&r);
    login_ok(f, "jane.doe", "another-secret", auth);
    /* The tenant of a user never changes. */
    snprintf(body, sizeof body, "{\"username\":\"jane.doe\",\"role\":\"sp_operator\"}");
    expect_refused(f, "PUT", path, JSON_CT, body, 422, "invalid-field", "tenant_id");
    /* Disabled: no login, and its sessions stop working. */
    snprintf(body, sizeof body,
             "{\"username\":\"jane.doe\",\"role\":\"tenant_operator\",\"tenant_id\":\"%s\","
             "\"disabled\":true}",
             tenant);
    assert_int_equal(status_as(f, f->auth, "PUT", path, body), 200);
    assert_int_equal(status_as(f, session, "GET", "/api/v1/auth/whoami", NULL), 401);
    login(f, "jane.doe", "another-secret", &r);
    expect_problem(&r, 401, "unauthorized", NULL, LOGIN);
    hc_response_free(&r);
    /* Deleted: gone, with its sessions. */
    assert_int_equal(status_as(f, f->auth, "DELETE", path, NULL), 204);
    expect_refused(f, "GET", path, NULL, NULL, 404, "not-found", NULL);
    assert_int_equal(status_as(f, auth, "GET", "/api/v1/auth/whoami", NULL), 401);
    expect_refused(f, "DELETE", path, NULL, NULL, 404, "not-found", NULL);
}

static void test_users_invalid(void **state)
{
    struct fx *f = *state;
    char tenant[CAIRN_UUID_SIZE];
    char missing[CAIRN_UUID_SIZE];
    char body[512];

    create_tenant(f, "acme", tenant);
    cairn_uuid(missing);
    expect_refused(f, "POST", "/api/v1/users", JSON_CT,
                   "{\"username\":\"bob\",\"role\":\"sp_admin\"}", 400, "missing-field",
                   "password");
    expect_refused(f, "POST", "/api/v1/users", JSON_CT,
                   "{\"username\":\"bob\",\"password\":\"short\",\"role\":\"sp_admin\"}", 422,
                   "invalid-field", "password");
    expect_refused(f, "POST", "/api/v1/users", JSON_CT,
                   "{\"username\":\"Bob\",\"password\":\"long enough pw\",\"role\":\"sp_admin\"}",
                   422, "invalid-field", "username");
    expect_refused(f, "POST", "/api/v1/users", JSON_CT,
                   "{\"username\":\"bob\",\"password\":\"long enough pw\",\"role\":\"root\"}", 422,
                   "invalid-field", "role");
    expect_refused(f, "POST", "/api/v1/users", JSON_CT,
                   "{\"username\":\"bob\",\"password\":\"long enough pw\",\"role\":\"sp_admin\","
                   "\"password_hash\":\"$argon2id$x\"}",
                   400, "unknown-field", "password_hash");
    expect_refused(f, "POST", "/api/v1/users", JSON_CT,
                   "{\"username\":\"bob\",\"password\":\"long enough pw\",\"role\":"
                   "\"tenant_admin\"}",
                   422, "invalid-field", "tenant_id");
    snprintf(body, sizeof body,
             "{\"username\":\"bob\",\"password\":\"long enough pw\",\"role\":\"sp_admin\","
             "\"tenant_id\":\"%s\"}",
             tenant);
    expect_refused(f, "POST", "/api/v1/users", JSON_CT, body, 422, "invalid-field", "tenant_id");
    snprintf(body, sizeof body,
             "{\"username\":\"bob\",\"password\":\"long enough pw\",\"role\":\"tenant_admin\","
             "\"tenant_id\":\"%s\"}",
             missing);
    expect_refused(f, "POST", "/api/v1/users", JSON_CT, body, 422, "invalid-field", "tenant_id");
    expect_refused(f, "POST", "/api/v1/users", JSON_CT,
                   "{\"username\":\"admin\",\"password\":\"long enough pw\",\"role\":"
                   "\"sp_admin\"}",
                   409, "conflict", NULL);
    expect_refused(f, "GET", "/api/v1/users/nope", NULL, NULL, 400, "invalid-field", "id");
    expect_refused(f, "GET", "/api/v1/users?tenant_id=nope", NULL, NULL, 400, "invalid-parameter",
                   "tenant_id");
    expect_refused(f, "GET", "/api/v1/users/" USER_A_ADMIN, NULL, NULL, 404, "not-found", NULL);
}

/* --- access control ---------------------------------------------------------- */

static void test_tenant_isolation(void **state)
{
    struct fx *f = *state;
    struct world w;
    struct hc_response r;
    char path[128];
    char body[512];
    char b_user[CAIRN_UUID_SIZE];
    json_t *j;

    world_make(f, &w);
    /* A's admin lists one tenant, its own, and A's users only. */
    request_as(f, w.a_admin, "GET", "/api/v1/tenants", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "items"), 0), "id")),
        w.a);
    json_decref(j);
    hc_response_free(&r);
    request_as(f, w.a_admin, "GET", "/api/v1/tenants?name=tenant-b", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, w.b));
    hc_response_free(&r);
    request_as(f, w.a_admin, "GET", "/api/v1/users?limit=1000", NULL, NULL, &r);
    j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 2);
    json_decref(j);
    assert_null(strstr(r.body, "b-admin"));
    assert_null(strstr(r.body, "sp-oper"));
    hc_response_free(&r);
    snprintf(path, sizeof path, "/api/v1/users?tenant_id=%s", w.b);
    request_as(f, w.a_admin, "GET", path, NULL, NULL, &r);
    j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);
    hc_response_free(&r);
    request_as(f, w.a_admin, "GET", "/api/v1/users?name=b-admin", NULL, NULL, &r);
    assert_null(strstr(r.body, "b-admin"));
    hc_response_free(&r);

    /* Probing B's objects answers like missing ones, for every method. */
    expect_like_missing(f, w.a_admin, "GET", "/api/v1/tenants/", w.b, NULL);
    expect_like_missing(f, w.a_admin, "PUT", "/api/v1/tenants/", w.b, "{\"name\":\"x\"}");
    expect_like_missing(f, w.a_admin, "DELETE", "/api/v1/tenants/", w.b, NULL);
    expect_like_missing(f, w.a_oper, "GET", "/api/v1/tenants/", w.b, NULL);
    expect_like_missing(f, w.a_admin, "GET", "/api/v1/users/", USER_B_ADMIN, NULL);
    expect_like_missing(f, w.a_admin, "DELETE", "/api/v1/users/", USER_B_ADMIN, NULL);
    snprintf(body, sizeof body,
             "{\"username\":\"b-admin\",\"role\":\"tenant_admin\",\"tenant_id\":\"%s\"}", w.b);
    expect_like_missing(f, w.a_admin, "PUT", "/api/v1/users/", USER_B_ADMIN, body);
    /* SP users are provider-level: hidden too. */
    expect_like_missing(f, w.a_admin, "GET", "/api/v1/users/", USER_SP_OPER, NULL);
    /* Creating a user in B looks like naming a tenant that does not exist. */
    snprintf(body, sizeof body,
             "{\"username\":\"sneaky\",\"password\":\"long enough pw\",\"role\":"
             "\"tenant_admin\",\"tenant_id\":\"%s\"}",
             w.b);
    request_as(f, w.a_admin, "POST", "/api/v1/users", JSON_CT, body, &r);
    expect_problem(&r, 422, "invalid-field", "tenant_id", NULL);
    hc_response_free(&r);
    /* The cluster does not exist for tenant users. */
    request_as(f, w.a_admin, "GET", "/api/v1/cluster", NULL, NULL, &r);
    expect_problem(&r, 404, "not-found", NULL, "/api/v1/cluster");
    hc_response_free(&r);
    assert_int_equal(status_as(f, w.a_oper, "DELETE", "/api/v1/cluster/members/2", NULL), 404);

    /* B's admin still manages its own. */
    snprintf(body, sizeof body,
             "{\"username\":\"b-user\",\"password\":\"long enough pw\",\"role\":"
             "\"tenant_operator\",\"tenant_id\":\"%s\"}",
             w.b);
    create_user(f, w.b_admin, body, b_user);
    snprintf(path, sizeof path, "/api/v1/users/%s", b_user);
    assert_int_equal(status_as(f, w.b_admin, "GET", path, NULL), 200);
    expect_like_missing(f, w.a_oper, "GET", "/api/v1/users/", b_user, NULL);
}

static void test_roles(void **state)
{
    struct fx *f = *state;
    struct world w;
    char path[128];
    char body[512];
    char id[CAIRN_UUID_SIZE];
    uint64_t before;

    world_make(f, &w);
    snprintf(path, sizeof path, "/api/v1/tenants/%s", w.a);
    /* SP operator: reads everything, changes nothing. */
    assert_int_equal(status_as(f, w.sp_oper, "GET", "/api/v1/tenants", NULL), 200);
    assert_int_equal(status_as(f, w.sp_oper, "GET", path, NULL), 200);
    assert_int_equal(status_as(f, w.sp_oper, "GET", "/api/v1/users/" USER_B_ADMIN, NULL), 200);
    assert_int_equal(status_as(f, w.sp_oper, "GET", "/api/v1/cluster", NULL), 200);
    before = store_revision(f->store);
    assert_int_equal(status_as(f, w.sp_oper, "POST", "/api/v1/tenants", "{\"name\":\"c\"}"), 403);
    assert_int_equal(status_as(f, w.sp_oper, "PUT", path, "{\"name\":\"c\"}"), 403);
    assert_int_equal(status_as(f, w.sp_oper, "DELETE", path, NULL), 403);
    assert_int_equal(status_as(f, w.sp_oper, "DELETE", "/api/v1/users/" USER_A_OPER, NULL), 403);
    assert_int_equal(status_as(f, w.sp_oper, "POST", "/api/v1/users",
                               "{\"username\":\"x\",\"password\":\"long enough pw\",\"role\":"
                               "\"sp_admin\"}"),
                     403);
    assert_int_equal(status_as(f, w.sp_oper, "POST", "/api/v1/cluster/members",
                               "{\"id\":4,\"raft_address\":\"a:1\",\"api_address\":\"a:2\"}"),
                     403);
    assert_int_equal(status_as(f, w.sp_oper, "DELETE", "/api/v1/cluster/members/2", NULL), 403);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->member_calls, 0);
    pthread_mutex_unlock(&f->mu);

    /* Tenant admin: its tenant read-only, its users read-write. */
    assert_int_equal(status_as(f, w.a_admin, "GET", path, NULL), 200);
    assert_int_equal(status_as(f, w.a_admin, "PUT", path, "{\"name\":\"c\"}"), 403);
    assert_int_equal(status_as(f, w.a_admin, "DELETE", path, NULL), 403);
    assert_int_equal(status_as(f, w.a_admin, "POST", "/api/v1/tenants", "{\"name\":\"c\"}"), 403);
    assert_int_equal(status_as(f, w.a_admin, "POST", "/api/v1/users",
                               "{\"username\":\"x\",\"password\":\"long enough pw\",\"role\":"
                               "\"sp_admin\"}"),
                     403);
    assert_int_equal(store_revision(f->store), before);
    snprintf(body, sizeof body,
             "{\"username\":\"a-new\",\"password\":\"long enough pw\",\"role\":\"tenant_operator\","
             "\"tenant_id\":\"%s\"}",
             w.a);
    create_user(f, w.a_admin, body, id);
    snprintf(path, sizeof path, "/api/v1/users/%s", id);
    assert_int_equal(status_as(f, w.a_oper, "GET", path, NULL), 200);
    /* Tenant operator: reads its tenant's users, changes none. */
    assert_int_equal(status_as(f, w.a_oper, "DELETE", path, NULL), 403);
    assert_int_equal(status_as(f, w.a_oper, "POST", "/api/v1/users", body), 403);
    assert_int_equal(status_as(f, w.a_admin, "DELETE", path, NULL), 204);
}

/* A refused write leaves a record in the audit log, with the caller. */
static void test_refusals_audited(void **state)
{
    struct fx *f = *state;
    struct world w;
    struct store_audit_query q;
    struct store_audit_list list;
    char path[128];
    bool forbidden = false;
    bool hidden = false;

    world_make(f, &w);
    snprintf(path, sizeof path, "/api/v1/tenants/%s", w.a);
    assert_int_equal(status_as(f, w.a_admin, "DELETE", path, NULL), 403);
    snprintf(path, sizeof path, "/api/v1/tenants/%s", w.b);
    assert_int_equal(status_as(f, w.a_admin, "DELETE", path, NULL), 404);
    memset(&q, 0, sizeof q);
    q.caller = "a-admin";
    q.limit = 10;
    assert_int_equal(store_audit_query(f->store, &q, &list), 0);
    for (size_t i = 0; i < list.n; i++) {
        assert_string_equal(list.items[i].caller, "a-admin");
        assert_int_equal(list.items[i].op, STORE_OP_AUDIT);
        assert_int_equal(list.items[i].kind, STORE_KIND_TENANT);
        forbidden = forbidden || (list.items[i].status != 0 && list.items[i].message != NULL &&
                                  strstr(list.items[i].message, "forbidden") != NULL);
        hidden = hidden || list.items[i].status == CAIRN_ENOTFOUND;
    }
    assert_int_equal(list.n, 2);
    assert_true(forbidden);
    assert_true(hidden);
    store_audit_list_release(&list);
    /* Successful writes name their caller too. */
    memset(&q, 0, sizeof q);
    q.caller = FX_ADMIN;
    q.limit = 10;
    assert_int_equal(store_audit_query(f->store, &q, &list), 0);
    assert_int_equal(list.n, 2); /* the two tenants */
    assert_int_equal(list.items[0].status, 0);
    store_audit_list_release(&list);
}

/* --- tenants: quotas, allowed templates, cascade ------------------------------ */

static void test_tenant_fields(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    char path[128];
    char id[CAIRN_UUID_SIZE];
    json_t *j;

    request(f, "POST", "/api/v1/tenants", JSON_CT,
            "{\"name\":\"acme\",\"quotas\":{\"sites\":10,\"devices\":0},"
            "\"allowed_templates\":[\"325902ee-b80c-4adc-b3f5-d68392fe1975\"]}",
            &r);
    assert_int_equal(r.status, 201);
    j = body_json(&r);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "quotas"), "sites")),
                     10);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "quotas"), "devices")),
                     0);
    assert_null(json_object_get(json_object_get(j, "quotas"), "services"));
    assert_int_equal(json_array_size(json_object_get(j, "allowed_templates")), 1);
    /* The documented order. */
    assert_true(strstr(r.body, "\"name\"") < strstr(r.body, "\"quotas\""));
    assert_true(strstr(r.body, "\"quotas\"") < strstr(r.body, "\"allowed_templates\""));
    assert_true(strstr(r.body, "\"allowed_templates\"") < strstr(r.body, "\"create_revision\""));
    json_decref(j);
    hc_response_free(&r);
    snprintf(path, sizeof path, "/api/v1/tenants/%s", id);
    request(f, "GET", path, NULL, NULL, &r);
    assert_non_null(strstr(r.body, "\"quotas\":{\"sites\":10,\"devices\":0}"));
    hc_response_free(&r);
    /* A PUT without quotas removes them. */
    request(f, "PUT", path, JSON_CT, "{\"name\":\"acme\"}", &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "quotas"));
    assert_null(strstr(r.body, "allowed_templates"));
    hc_response_free(&r);

    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT,
                   "{\"name\":\"b\",\"quotas\":{\"sites\":-1}}", 422, "invalid-field",
                   "quotas.sites");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT,
                   "{\"name\":\"b\",\"quotas\":{\"services\":1000001}}", 422, "invalid-field",
                   "quotas.services");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT,
                   "{\"name\":\"b\",\"quotas\":{\"vpns\":1}}", 400, "unknown-field", "quotas.vpns");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT,
                   "{\"name\":\"b\",\"quotas\":{\"sites\":1.5}}", 400, "invalid-field",
                   "quotas.sites");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT,
                   "{\"name\":\"b\",\"allowed_templates\":[\"x\"]}", 422, "invalid-field",
                   "allowed_templates[0]");
    expect_refused(
        f, "POST", "/api/v1/tenants", JSON_CT,
        "{\"name\":\"b\",\"allowed_templates\":[\"325902ee-b80c-4adc-b3f5-d68392fe1975\","
        "\"325902ee-b80c-4adc-b3f5-d68392fe1975\"]}",
        422, "invalid-field", "allowed_templates[1]");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT,
                   "{\"name\":\"b\",\"allowed_templates\":[7]}", 400, "invalid-field",
                   "allowed_templates[0]");
    expect_refused(f, "POST", "/api/v1/tenants", JSON_CT,
                   "{\"name\":\"b\",\"allowed_templates\":\"all\"}", 400, "invalid-field",
                   "allowed_templates");
}

static void test_tenant_cascade(void **state)
{
    struct fx *f = *state;
    struct hc_response r;
    char tenant[CAIRN_UUID_SIZE];
    char user[CAIRN_UUID_SIZE];
    char path[256];
    char body[512];
    char auth[FX_AUTH_SIZE];

    create_tenant(f, "acme", tenant);
    snprintf(body, sizeof body,
             "{\"username\":\"acme-admin\",\"password\":\"long enough pw\",\"role\":"
             "\"tenant_admin\",\"tenant_id\":\"%s\"}",
             tenant);
    create_user(f, f->auth, body, user);
    login_ok(f, "acme-admin", "long enough pw", auth);
    snprintf(path, sizeof path, "/api/v1/tenants/%s", tenant);
    expect_refused(f, "DELETE", path, NULL, NULL, 409, "conflict", NULL);
    snprintf(path, sizeof path, "/api/v1/tenants/%s?cascade=maybe", tenant);
    expect_refused(f, "DELETE", path, NULL, NULL, 400, "invalid-parameter", "cascade");
    snprintf(path, sizeof path, "/api/v1/tenants/%s?cascade=true", tenant);
    request(f, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    hc_response_free(&r);
    /* Its users and their sessions went with it. */
    snprintf(path, sizeof path, "/api/v1/users/%s", user);
    expect_refused(f, "GET", path, NULL, NULL, 404, "not-found", NULL);
    assert_int_equal(status_as(f, auth, "GET", "/api/v1/auth/whoami", NULL), 401);
    /* cascade=false is the default. */
    create_tenant(f, "empty", tenant);
    snprintf(path, sizeof path, "/api/v1/tenants/%s?cascade=false", tenant);
    assert_int_equal(status_as(f, f->auth, "DELETE", path, NULL), 204);
}

int test_users_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unauthenticated, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_login, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_login_throttle, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_token_from_elsewhere, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_users_crud, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_users_invalid, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_isolation, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_roles, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_refusals_audited, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_fields, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_cascade, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests_name("northbound users", tests, NULL, NULL);
}
