/*
 * The API side of the on-demand operations over HTTP, with a real store:
 * a service dry run is checked like the real write and writes nothing but
 * its job; device operations are refused, writing nothing, for devices
 * that cannot run them. Running the jobs on devices needs the device
 * controller and a device: tests/integration/test_ondemand.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "tests.h"

/* What the tests build on: a tenant, a site, a device, a published
 * firewall-policy template. */
struct world {
    char tenant[CAIRN_UUID_SIZE];
    char site[CAIRN_UUID_SIZE];
    char device[CAIRN_UUID_SIZE];
    char template[CAIRN_UUID_SIZE];
};

/* POSTs body to path as the administrator; it must answer status; the
 * answer's id goes to id (if not NULL). */
static void post(struct fx *f, const char *path, const char *body, int status, char *id)
{
    struct hc_response r;
    json_t *j;
    request(f, "POST", path, JSON_CT, body, &r);
    if (r.status != status) {
        fail_msg("POST %s: %d %s", path, r.status, r.body);
    }
    if (id != NULL) {
        j = body_json(&r);
        snprintf(id, CAIRN_UUID_SIZE, "%s", json_string_value(json_object_get(j, "id")));
        json_decref(j);
    }
    hc_response_free(&r);
}

static void world_make(struct fx *f, struct world *w, const char *device_extra)
{
    char body[1024];
    char path[128];

    create_tenant(f, "acme", w->tenant);
    snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"name\":\"hq\",\"role\":\"hub\"}",
             w->tenant);
    post(f, "/api/v1/sites", body, 201, w->site);
    snprintf(body, sizeof body,
             "{\"site_id\":\"%s\",\"serial\":\"CRN1\",\"family\":\"ucpe\","
             "\"management\":{\"host\":\"192.0.2.1\"}%s}",
             w->site, device_extra);
    post(f, "/api/v1/devices", body, 201, w->device);
    post(f, "/api/v1/templates",
         "{\"name\":\"fw\",\"version\":\"1.0.0\",\"type\":\"firewall-policy\",\"public\":true,"
         "\"parameters\":{\"rules\":{\"type\":\"list\",\"required\":true}}}",
         201, w->template);
    snprintf(path, sizeof path, "/api/v1/templates/%s/publish", w->template);
    post(f, path, NULL, 200, NULL);
}

static void service_body(const struct world *w, const char *name, int port, bool tenant, char *out,
                         size_t size)
{
    snprintf(out, size,
             "{%s%s%s\"name\":\"%s\",\"template_id\":\"%s\",\"parameters\":{\"rules\":[{\"name\":"
             "\"r\",\"from_zone\":\"trust\",\"to_zone\":\"untrust\",\"protocol\":\"tcp\","
             "\"port\":%d,\"action\":\"permit\"}]},\"targets\":{\"device_ids\":[\"%s\"]}}",
             tenant ? "\"tenant_id\":\"" : "", tenant ? w->tenant : "", tenant ? "\"," : "", name,
             w->template, port, w->device);
}

/* The number of objects a list answers. */
static size_t count(struct fx *f, const char *path)
{
    struct hc_response r;
    json_t *j;
    size_t n;
    request(f, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    n = json_array_size(json_object_get(j, "items"));
    json_decref(j);
    hc_response_free(&r);
    return n;
}

static void test_dry_run_create(void **state)
{
    struct fx *f = *state;
    struct world w;
    struct hc_response r;
    char body[1024];
    json_t *j;

    world_make(f, &w, "");
    service_body(&w, "web", 443, true, body, sizeof body);
    request(f, "POST", "/api/v1/services?dry_run=true", JSON_CT, body, &r);
    assert_int_equal(r.status, 202);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "service-dry-run");
    assert_true(json_is_true(json_object_get(j, "dry_run")));
    assert_string_equal(json_string_value(json_object_get(j, "state")), "queued");
    assert_string_equal(json_string_value(json_object_get(j, "tenant_id")), w.tenant);
    assert_true(json_is_null(json_object_get(json_object_get(j, "target"), "id")));
    assert_int_equal(json_array_size(json_object_get(
                         json_object_get(json_object_get(j, "service"), "parameters"), "rules")),
                     1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "service"), "type")),
                        "firewall-policy");
    assert_int_equal(json_array_size(json_object_get(j, "tasks")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "tasks"), 0), "device_id")),
                        w.device);
    json_decref(j);
    assert_non_null(strstr(r.head, "Location: /api/v1/jobs/"));
    hc_response_free(&r);
    assert_int_equal(count(f, "/api/v1/services"), 0);
    assert_int_equal(count(f, "/api/v1/jobs?type=service-dry-run"), 1);

    /* Refused as the real create is, with nothing written. */
    snprintf(body, sizeof body,
             "{\"tenant_id\":\"%s\",\"name\":\"bad\",\"template_id\":\"%s\","
             "\"parameters\":{},\"targets\":{\"device_ids\":[\"%s\"]}}",
             w.tenant, w.template, w.device);
    expect_refused(f, "POST", "/api/v1/services", JSON_CT, body, 400, "missing-field",
                   "parameters.rules");
    expect_refused(f, "POST", "/api/v1/services?dry_run=true", JSON_CT, body, 400, "missing-field",
                   "parameters.rules");
    snprintf(body, sizeof body,
             "{\"tenant_id\":\"%s\",\"name\":\"bad\",\"template_id\":\"%s\","
             "\"parameters\":{\"rules\":[{\"name\":\"r\"}]},\"targets\":{\"device_ids\":[\"%s\"]}}",
             w.tenant, w.template, w.tenant);
    expect_refused(f, "POST", "/api/v1/services?dry_run=true", JSON_CT, body, 422,
                   "invalid-reference", "targets.device_ids[0]");
    expect_refused(f, "POST", "/api/v1/services?dry_run=yes", JSON_CT, body, 400,
                   "invalid-parameter", "dry_run");
    /* A taken name is the conflict the real create would meet. */
    service_body(&w, "web", 443, true, body, sizeof body);
    post(f, "/api/v1/services", body, 202, NULL);
    expect_refused(f, "POST", "/api/v1/services?dry_run=true", JSON_CT, body, 409, "conflict",
                   "name");
}

static void test_dry_run_replace(void **state)
{
    struct fx *f = *state;
    struct world w;
    struct hc_response r;
    char body[1024];
    char id[CAIRN_UUID_SIZE];
    char path[160];
    json_t *j;
    uint64_t rev;

    world_make(f, &w, "");
    service_body(&w, "web", 443, true, body, sizeof body);
    post(f, "/api/v1/services", body, 202, id);
    snprintf(path, sizeof path, "/api/v1/services/%s", id);
    request(f, "GET", path, NULL, NULL, &r);
    j = body_json(&r);
    rev = (uint64_t)json_integer_value(json_object_get(j, "mod_revision"));
    json_decref(j);
    hc_response_free(&r);

    service_body(&w, "web", 8443, false, body, sizeof body);
    snprintf(path, sizeof path, "/api/v1/services/%s?dry_run=true", id);
    request(f, "PUT", path, JSON_CT, body, &r);
    assert_int_equal(r.status, 202);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "service-dry-run");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "target"), "id")), id);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "service"), "id")),
                        id);
    json_decref(j);
    hc_response_free(&r);
    /* The service is as it was. */
    snprintf(path, sizeof path, "/api/v1/services/%s", id);
    request(f, "GET", path, NULL, NULL, &r);
    j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "mod_revision")), rev);
    json_decref(j);
    assert_non_null(strstr(r.body, "\"generation\":1"));
    assert_non_null(strstr(r.body, "443"));
    assert_null(strstr(r.body, "8443"));
    hc_response_free(&r);
    /* A stale If-Match is refused as the real replace refuses it. */
    snprintf(path, sizeof path, "/api/v1/services/%s?dry_run=true", id);
    expect_refused(f, "PUT", path, JSON_CT "If-Match: \"1\"\r\n", body, 412, "precondition-failed",
                   NULL);
}

/* A service body of w's tenant with targets (the members of its
 * "targets" object, as JSON text). */
static void targets_body(const struct world *w, const char *name, const char *targets, char *out,
                         size_t size)
{
    snprintf(out, size,
             "{\"tenant_id\":\"%s\",\"name\":\"%s\",\"template_id\":\"%s\",\"parameters\":"
             "{\"rules\":[{\"name\":\"r\"}]},\"targets\":{%s}}",
             w->tenant, name, w->template, targets);
}

/* Creates a service (or its dry run: query) with targets (as for
 * targets_body); its job must have one task per device of want (n ids),
 * and no other. */
static void expect_tasks(struct fx *f, const struct world *w, const char *query,
                         const char *targets, const char *const *want, size_t n)
{
    static int serial;
    struct hc_response r;
    char body[1024];
    char name[16];
    char path[128];
    const char *loc;
    json_t *j;
    json_t *tasks;

    snprintf(name, sizeof name, "s%d", ++serial);
    targets_body(w, name, targets, body, sizeof body);
    snprintf(path, sizeof path, "/api/v1/services%s", query);
    request(f, "POST", path, JSON_CT, body, &r);
    if (r.status != 202) {
        fail_msg("POST %s %s: %d %s", path, body, r.status, r.body);
    }
    loc = strstr(r.head, "Location: ");
    assert_non_null(loc);
    snprintf(path, sizeof path, "%.*s", (int)strcspn(loc + 10, "\r\n"), loc + 10);
    hc_response_free(&r);
    request(f, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    tasks = json_object_get(j, "tasks");
    assert_int_equal(json_array_size(tasks), n);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "progress"), "total")),
                     n);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        size_t k;
        json_t *t;
        json_array_foreach(tasks, k, t)
        {
            found =
                found || strcmp(json_string_value(json_object_get(t, "device_id")), want[i]) == 0;
        }
        if (!found) {
            fail_msg("%s: no task for %s: %s", targets, want[i], r.body);
        }
    }
    json_decref(j);
    hc_response_free(&r);
}

/* Sites as targets: a job has a task for each device of each site and
 * each device named, once; a site must be the tenant's. */
static void test_site_targets(void **state)
{
    struct fx *f = *state;
    struct world w;
    char other[CAIRN_UUID_SIZE], foreign[CAIRN_UUID_SIZE], branch[CAIRN_UUID_SIZE];
    char b1[CAIRN_UUID_SIZE], b2[CAIRN_UUID_SIZE];
    char body[1024], targets[512];

    world_make(f, &w, "");
    snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"name\":\"branch\",\"role\":\"spoke\"}",
             w.tenant);
    post(f, "/api/v1/sites", body, 201, branch);
    snprintf(body, sizeof body, "{\"site_id\":\"%s\",\"serial\":\"CRN2\",\"family\":\"ucpe\"}",
             branch);
    post(f, "/api/v1/devices", body, 201, b1);
    snprintf(body, sizeof body, "{\"site_id\":\"%s\",\"serial\":\"CRN3\",\"family\":\"ucpe\"}",
             branch);
    post(f, "/api/v1/devices", body, 201, b2);
    create_tenant(f, "other", other);
    snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"name\":\"x\",\"role\":\"hub\"}", other);
    post(f, "/api/v1/sites", body, 201, foreign);

    {
        const char *want[] = {b1, b2};
        snprintf(targets, sizeof targets, "\"site_ids\":[\"%s\"]", branch);
        expect_tasks(f, &w, "", targets, want, 2);
        expect_tasks(f, &w, "?dry_run=true", targets, want, 2);
    }
    {
        /* A device named and also in a named site is one task. */
        const char *want[] = {w.device, b1, b2};
        snprintf(targets, sizeof targets, "\"site_ids\":[\"%s\",\"%s\"],\"device_ids\":[\"%s\"]",
                 branch, w.site, b1);
        expect_tasks(f, &w, "", targets, want, 3);
    }
    /* Another tenant's site is answered as a missing one; a site listed
     * twice is refused. Nothing is written. */
    snprintf(targets, sizeof targets, "\"site_ids\":[\"%s\",\"%s\"]", branch, foreign);
    targets_body(&w, "bad", targets, body, sizeof body);
    expect_refused(f, "POST", "/api/v1/services", JSON_CT, body, 422, "invalid-reference",
                   "targets.site_ids[1]");
    expect_refused(f, "POST", "/api/v1/services?dry_run=true", JSON_CT, body, 422,
                   "invalid-reference", "targets.site_ids[1]");
    snprintf(targets, sizeof targets, "\"site_ids\":[\"%s\",\"%s\"]", branch, branch);
    targets_body(&w, "bad", targets, body, sizeof body);
    expect_refused(f, "POST", "/api/v1/services", JSON_CT, body, 422, "invalid-field",
                   "targets.site_ids[1]");
    assert_int_equal(count(f, "/api/v1/services?name=bad"), 0);
}

static void test_device_operations_refused(void **state)
{
    struct fx *f = *state;
    struct world w;
    char path[160];
    char other[CAIRN_UUID_SIZE];
    char auth[FX_AUTH_SIZE];
    struct hc_response r;

    world_make(f, &w, "");
    /* Created, never reached: not onboarded. */
    snprintf(path, sizeof path, "/api/v1/devices/%s/check-drift", w.device);
    expect_refused(f, "POST", path, NULL, NULL, 409, "device-not-onboarded", NULL);
    snprintf(path, sizeof path, "/api/v1/devices/%s/sync-from", w.device);
    expect_refused(f, "POST", path, NULL, NULL, 409, "device-not-onboarded", NULL);
    expect_refused(f, "POST", path, "Idempotency-Key: \r\n", NULL, 400, "invalid-header",
                   "Idempotency-Key");
    expect_refused(f, "POST", "/api/v1/devices/00000000-0000-4000-8000-000000000000/sync-from",
                   NULL, NULL, 404, "not-found", NULL);
    expect_refused(f, "POST", "/api/v1/devices/nope/check-drift", NULL, NULL, 400, "invalid-field",
                   "id");
    /* Another tenant's user does not learn that it exists. */
    create_tenant(f, "other", other);
    fx_user(f, "6f0c1c2e-8f8e-4a55-9a39-2b2f0c3f1a01", "stranger", "tenant_admin", other, auth);
    request_as(f, auth, "POST", path, NULL, NULL, &r);
    expect_problem(&r, 404, "not-found", NULL, NULL);
    hc_response_free(&r);
    assert_int_equal(count(f, "/api/v1/jobs"), 0);
}

static void test_device_unmanaged(void **state)
{
    struct fx *f = *state;
    struct world w;
    char path[160];

    world_make(f, &w, ",\"desired_state\":\"unmanaged\"");
    snprintf(path, sizeof path, "/api/v1/devices/%s/check-drift", w.device);
    expect_refused(f, "POST", path, NULL, NULL, 409, "device-unmanaged", "desired_state");
    assert_int_equal(count(f, "/api/v1/jobs"), 0);
}

int test_ondemand_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dry_run_create, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dry_run_replace, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_site_targets, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_device_operations_refused, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_device_unmanaged, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests_name("northbound on-demand operations", tests, NULL, NULL);
}
