/*
 * The northbound tests' in-process node (fixture.h): the single-node
 * backend over a real store, the server and API around it, the fixture's
 * administrator, and the request and assertion helpers.
 */
#include <ftw.h>
#include <pthread.h>
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

/* The hash of FX_PASSWORD, made once (fx_init). */
static char password_hash[API_PASSWORD_HASH_SIZE];

/* --- the single-node backend ---------------------------------------------- */

/* Fills obj as a leader does for a forwarded write: the stored encoding,
 * decoded. f->mu held. */
static void fx_answer_object(struct fx *f, enum store_kind kind, const char *id,
                             struct store_object *obj)
{
    struct cairn_buf b;
    cairn_buf_init(&b);
    if (store_object_value(f->store, kind, id, &b) == 0 &&
        store_object_decode(kind, id, b.data, b.len, obj) == 0) {
        f->answered++;
    }
    cairn_buf_close(&b);
}

static int fx_propose(void *data, const void *cmd, size_t len, enum store_kind kind,
                      struct store_object *obj, uint64_t deadline_ms, struct store_result *res,
                      char *errmsg, size_t errmsg_size)
{
    struct fx *f = data;
    const struct store_result *result = NULL;
    int rv;
    (void)deadline_ms;
    pthread_mutex_lock(&f->mu);
    f->proposals++;
    rv = f->propose_rv;
    if (rv != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "test: no quorum");
    } else {
        f->index++;
        rv = store_apply(f->store, f->index, cmd, len, &result, errmsg, errmsg_size);
        if (rv == 0 && result == NULL) {
            cairn_errmsg_set(errmsg, errmsg_size, "test: entry skipped");
            rv = CAIRN_EIO;
        }
        if (rv == 0) {
            *res = *result;
        }
        if (rv == 0 && obj != NULL && res->status == 0 && f->answer_objects) {
            /* As a leader answers a forwarded write: the stored object. */
            fx_answer_object(f, kind, res->id, obj);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return rv;
}

static int fx_read_barrier(void *data, uint64_t deadline_ms, char *errmsg, size_t errmsg_size)
{
    struct fx *f = data;
    int rv;
    (void)deadline_ms;
    pthread_mutex_lock(&f->mu);
    f->barriers++;
    rv = f->barrier_rv;
    if (rv == 0 && f->lagging != NULL) {
        const struct store_result *result = NULL;
        f->index++;
        rv = store_apply(f->store, f->index, f->lagging, f->lagging_len, &result, errmsg,
                         errmsg_size);
        free(f->lagging);
        f->lagging = NULL;
    }
    pthread_mutex_unlock(&f->mu);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "test: no leader known");
    }
    return rv;
}

static int fx_cluster_status(void *data, uint64_t deadline_ms, struct api_cluster_status *out)
{
    struct fx *f = data;
    (void)deadline_ms;
    out->members = calloc(2, sizeof *out->members);
    if (out->members == NULL) {
        return CAIRN_ENOMEM;
    }
    pthread_mutex_lock(&f->mu);
    out->node_id = f->node_id;
    out->leader_id = f->leader_id;
    pthread_mutex_unlock(&f->mu);
    out->term = 3;
    out->n_members = 2;
    for (size_t i = 0; i < 2; i++) {
        struct api_member_status *m = &out->members[i];
        m->id = i + 1;
        snprintf(m->raft_address, sizeof m->raft_address, "127.0.0.1:%zu", 7001 + i);
        snprintf(m->api_address, sizeof m->api_address, "127.0.0.1:%zu", 8001 + i);
        snprintf(m->role, sizeof m->role, "voter");
        m->reachable = i == 0;
        snprintf(m->state, sizeof m->state, "%s", i == 0 ? "leader" : "unavailable");
        m->term = 3;
        m->commit_index = 10;
        m->applied_index = 9;
        m->last_index = 11;
    }
    return 0;
}

static int fx_member_add(void *data, uint64_t id, const char *raft_address, const char *api_address,
                         uint64_t deadline_ms, char *errmsg, size_t errmsg_size)
{
    struct fx *f = data;
    (void)raft_address;
    (void)deadline_ms;
    pthread_mutex_lock(&f->mu);
    f->member_calls++;
    f->added_id = id;
    snprintf(f->added_api, sizeof f->added_api, "%s", api_address);
    pthread_mutex_unlock(&f->mu);
    if (id == 5) {
        cairn_errmsg_set(errmsg, errmsg_size, "a membership change is in progress");
        return CAIRN_EBUSY;
    }
    return 0;
}

static int fx_member_remove(void *data, uint64_t id, bool force, uint64_t deadline_ms, char *errmsg,
                            size_t errmsg_size)
{
    struct fx *f = data;
    (void)deadline_ms;
    (void)force;
    pthread_mutex_lock(&f->mu);
    f->member_calls++;
    pthread_mutex_unlock(&f->mu);
    if (id == 99) {
        cairn_errmsg_set(errmsg, errmsg_size, "no member 99");
        return CAIRN_ENOTFOUND;
    }
    return 0;
}

static bool fx_ready(void *data, char *why, size_t why_size)
{
    struct fx *f = data;
    bool ready;
    pthread_mutex_lock(&f->mu);
    ready = f->ready;
    pthread_mutex_unlock(&f->mu);
    if (!ready) {
        snprintf(why, why_size, "no leader known");
    }
    return ready;
}

/* --- fixture users ------------------------------------------------------------ */

void fx_init(void)
{
    if (password_hash[0] == '\0') {
        assert_int_equal(api_password_hash(FX_PASSWORD, strlen(FX_PASSWORD), password_hash), 0);
    }
}

/* Applies cmd now, or keeps it for the next read barrier. */
static int apply_or_keep(struct fx *f, const struct store_command *cmd, bool keep)
{
    const struct store_result *result = NULL;
    char errmsg[CAIRN_ERRMSG_SIZE];
    void *buf;
    size_t len;
    int rv;

    assert_int_equal(store_command_encode(cmd, &buf, &len), 0);
    if (keep) {
        pthread_mutex_lock(&f->mu);
        free(f->lagging);
        f->lagging = buf;
        f->lagging_len = len;
        pthread_mutex_unlock(&f->mu);
        return 0;
    }
    pthread_mutex_lock(&f->mu);
    f->index++;
    rv = store_apply(f->store, f->index, buf, len, &result, errmsg, sizeof errmsg);
    pthread_mutex_unlock(&f->mu);
    free(buf);
    if (rv != 0) {
        fail_msg("store_apply: %s", errmsg);
    }
    assert_non_null(result);
    return result->status;
}

int fx_apply(struct fx *f, const struct store_command *cmd)
{
    return apply_or_keep(f, cmd, false);
}

static void user_write(struct fx *f, const char *id, const char *name, const char *role,
                       const char *tenant, char auth[FX_AUTH_SIZE], bool lagging)
{
    struct store_command cmd;
    char token[API_TOKEN_SIZE];
    char sid[API_SESSION_ID_SIZE];
    char session_body[128];
    char *body = NULL;
    json_t *fields;

    fx_init();
    fields = tenant != NULL
                 ? json_pack("{s:s, s:s, s:s}", "username", name, "role", role, "tenant_id", tenant)
                 : json_pack("{s:s, s:s}", "username", name, "role", role);
    memset(&cmd, 0, sizeof cmd);
    cmd.version = STORE_COMMAND_VERSION;
    cmd.op = STORE_OP_CREATE;
    cmd.time_ms = cairn_wall_ms();
    cmd.caller = "test";
    assert_int_equal(api_user_command(&cmd, id, fields, password_hash, &body), 0);
    assert_int_equal(fx_apply(f, &cmd), 0);
    free(body);
    json_decref(fields);

    api_token_new(token);
    api_session_id(token, strlen(token), sid);
    snprintf(session_body, sizeof session_body, "{\"user_id\":\"%s\"}", id);
    memset(&cmd, 0, sizeof cmd);
    cmd.version = STORE_COMMAND_VERSION;
    cmd.op = STORE_OP_CREATE;
    cmd.kind = STORE_KIND_SESSION;
    cmd.id = sid;
    cmd.body = session_body;
    cmd.body_len = strlen(session_body);
    cmd.time_ms = cairn_wall_ms();
    cmd.caller = "test";
    cmd.tenant = tenant;
    cmd.parent_kind = STORE_KIND_USER;
    cmd.parent_id = id;
    cmd.expires_ms = cairn_wall_ms() + 3600 * 1000;
    assert_int_equal(apply_or_keep(f, &cmd, lagging), 0);
    snprintf(auth, FX_AUTH_SIZE, "Authorization: Bearer %s\r\n", token);
}

void fx_user(struct fx *f, const char *id, const char *name, const char *role, const char *tenant,
             char auth[FX_AUTH_SIZE])
{
    user_write(f, id, name, role, tenant, auth, false);
}

void fx_user_lagging(struct fx *f, const char *id, const char *name, const char *role,
                     const char *tenant, char auth[FX_AUTH_SIZE])
{
    user_write(f, id, name, role, tenant, auth, true);
}

/* --- fixture ----------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

struct fx *fx_start(uint64_t node_id)
{
    struct fx *f = calloc(1, sizeof *f);
    struct http_config hcfg = {"127.0.0.1:0", 4, MAX_BODY, 10000, false};
    struct api_config acfg;
    struct api_backend backend = {
        .propose = fx_propose,
        .read_barrier = fx_read_barrier,
        .cluster_status = fx_cluster_status,
        .member_add = fx_member_add,
        .member_remove = fx_member_remove,
        .ready = fx_ready,
    };
    char errmsg[CAIRN_ERRMSG_SIZE];

    assert_non_null(f);
    pthread_mutex_init(&f->mu, NULL);
    f->node_id = node_id;
    f->ready = true;
    f->leader_id = 1;
    snprintf(f->dir, sizeof f->dir, "/tmp/cairn-nb-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    if (store_open(f->dir, &f->store, errmsg, sizeof errmsg) != 0) {
        fail_msg("store_open: %s", errmsg);
    }
    if (http_server_start(&hcfg, &f->srv, errmsg, sizeof errmsg) != 0) {
        fail_msg("http_server_start: %s", errmsg);
    }
    f->port = http_server_port(f->srv);
    assert_true(f->port > 0);
    backend.data = f;
    memset(&acfg, 0, sizeof acfg);
    acfg.node_id = node_id;
    acfg.request_timeout_ms = 5000;
    assert_int_equal(api_create(f->srv, f->store, &backend, &acfg, &f->api), 0);
    fx_user(f, "00000000-0000-4000-8000-00000000a001", FX_ADMIN, "sp_admin", NULL, f->auth);
    assert_int_equal(store_revision(f->store), R0);
    return f;
}

void fx_stop(struct fx *f)
{
    api_destroy(f->api);
    http_server_destroy(f->srv);
    store_destroy(f->store);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f->lagging);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

int fx_setup(void **state)
{
    *state = fx_start(1);
    return 0;
}

int fx_teardown(void **state)
{
    fx_stop(*state);
    return 0;
}

/* --- helpers ----------------------------------------------------------------- */

void request_as(struct fx *f, const char *auth, const char *method, const char *path,
                const char *headers, const char *body, struct hc_response *r)
{
    char all[2048];
    snprintf(all, sizeof all, "%s%s", auth, headers != NULL ? headers : "");
    if (hc_request(f->port, method, path, all[0] != '\0' ? all : NULL, body, r) != 0) {
        fail_msg("%s %s: no complete answer", method, path);
    }
}

void request(struct fx *f, const char *method, const char *path, const char *headers,
             const char *body, struct hc_response *r)
{
    request_as(f, f->auth, method, path, headers, body, r);
}

void expect_etag(const struct hc_response *r, uint64_t n)
{
    char want[32];
    snprintf(want, sizeof want, "\"%llu\"", (unsigned long long)(R0 + n));
    expect_header(r, "ETag", want);
}

json_t *body_json(const struct hc_response *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->body_len, 0, &jerr);
    if (j == NULL) {
        fail_msg("answer is not JSON (%s): %s", jerr.text, r->body);
    }
    return j;
}

void expect_header(const struct hc_response *r, const char *name, const char *value)
{
    char buf[512];
    const char *got = hc_header(r, name, buf, sizeof buf);
    if (got == NULL || strcmp(got, value) != 0) {
        fail_msg("header %s: got \"%s\", want \"%s\"\n%s", name, got != NULL ? got : "(none)",
                 value, r->head);
    }
}

uint64_t header_u64(const struct hc_response *r, const char *name)
{
    char buf[64];
    uint64_t v;
    if (hc_header(r, name, buf, sizeof buf) == NULL || cairn_parse_u64(buf, &v) != 0) {
        fail_msg("header %s missing or not a number\n%s", name, r->head);
    }
    return v;
}

/* Asserts a problem answer: status, type, field (NULL: none) and instance. */
void expect_problem(const struct hc_response *r, int status, const char *type, const char *field,
                    const char *instance)
{
    char want_type[128];
    json_t *p;
    if (r->status != status) {
        fail_msg("status %d, want %d: %s", r->status, status, r->body);
    }
    expect_header(r, "Content-Type", "application/problem+json");
    expect_header(r, "Cache-Control", "no-store");
    p = body_json(r);
    snprintf(want_type, sizeof want_type, "urn:cairn:problem:%s", type);
    assert_string_equal(json_string_value(json_object_get(p, "type")), want_type);
    assert_int_equal(json_integer_value(json_object_get(p, "status")), status);
    assert_non_null(json_string_value(json_object_get(p, "title")));
    assert_non_null(json_string_value(json_object_get(p, "detail")));
    if (field != NULL) {
        assert_non_null(json_object_get(p, "field"));
        assert_string_equal(json_string_value(json_object_get(p, "field")), field);
    } else {
        assert_null(json_object_get(p, "field"));
    }
    if (instance != NULL) {
        assert_string_equal(json_string_value(json_object_get(p, "instance")), instance);
    }
    json_decref(p);
}

/* Creates a tenant; writes its id (CAIRN_UUID_SIZE bytes) and returns its
 * mod revision. */
uint64_t create_tenant(struct fx *f, const char *name, char *id)
{
    struct hc_response r;
    char body[256];
    json_t *j;
    uint64_t rev;
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
    request(f, "POST", "/api/v1/tenants", JSON_CT, body, &r);
    if (r.status != 201) {
        fail_msg("create %s: %d %s", name, r.status, r.body);
    }
    j = body_json(&r);
    snprintf(id, CAIRN_UUID_SIZE, "%s", json_string_value(json_object_get(j, "id")));
    rev = (uint64_t)json_integer_value(json_object_get(j, "mod_revision"));
    json_decref(j);
    hc_response_free(&r);
    return rev;
}

/* Sends a request that must be refused and leave the store unchanged. */
void expect_refused(struct fx *f, const char *method, const char *path, const char *headers,
                    const char *body, int status, const char *type, const char *field)
{
    uint64_t before = store_revision(f->store);
    uint64_t applied = store_applied_index(f->store);
    struct hc_response r;
    request(f, method, path, headers, body, &r);
    expect_problem(&r, status, type, field, NULL);
    hc_response_free(&r);
    assert_int_equal(store_revision(f->store), before);
    /* A refusal by the API proposes nothing but its audit record (after
     * the barrier of a linearizable read it may have made); one by the
     * store changes only the applied index. Neither moves the revision. */
    assert_true(store_applied_index(f->store) <= applied + 2);
}

unsigned barriers(struct fx *f)
{
    unsigned n;
    pthread_mutex_lock(&f->mu);
    n = f->barriers;
    pthread_mutex_unlock(&f->mu);
    return n;
}
