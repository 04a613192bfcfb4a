/*
 * Bulk import: POST /api/v1/imports {"tenant_id": T, "sites": [...],
 * "devices": [...]} creates many sites and devices of one tenant as one
 * job (202 + Location of the job), which the leader's job runner
 * (jobs.c) carries out item by item, sites first.
 *
 * Everything that can be checked before the job starts is checked here,
 * and any fault refuses the whole import with nothing written: each item
 * against its table (the problem's field names it: "devices[3].serial"),
 * names and serials repeated within the import, and every device's site,
 * given by "site_id" or by "site" (the name of a site of the import or of
 * the tenant). What can only fail as an item applies (a name taken
 * meanwhile, a full quota) fails that item's task, with the cluster's
 * message; the job then ends "failed" and says how many.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

/* Most items one import may carry. */
#define IMPORT_MAX 5000

/* A valid uuid standing in for a site named by "site" while validating. */
#define PLACEHOLDER_ID "00000000-0000-4000-8000-000000000000"

static const struct api_field import_fields[] = {
    {"tenant_id", API_JSON_STRING, 0, 1, CAIRN_UUID_SIZE - 1, api_format_uuid, NULL},
    {"sites", API_JSON_ANY, 0, 0, 0, NULL, NULL},
    {"devices", API_JSON_ANY, 0, 0, 0, NULL, NULL},
};

const struct api_schema api_import_schema = {import_fields,
                                             sizeof import_fields / sizeof import_fields[0]};

/* Validates items (an array of objects) against schema, naming faults
 * "what[i].field"; a device's "site" is checked by name later. */
static int check_items(const json_t *items, const char *what, const struct api_schema *schema,
                       struct api_error *err)
{
    size_t i;
    const json_t *item;

    if (items != NULL && !json_is_array(items)) {
        return api_error_set(err, 400, "invalid-field", what, "field \"%s\" must be an array",
                             what);
    }
    json_array_foreach(items, i, item)
    {
        json_t *copy;
        int rv;
        if (!json_is_object(item)) {
            char field[64];
            snprintf(field, sizeof field, "%s[%zu]", what, i);
            return api_error_set(err, 400, "invalid-field", field, "each item must be an object");
        }
        copy = json_deep_copy(item);
        json_object_del(copy, "tenant_id");
        if (json_object_get(copy, "site") != NULL) {
            if (json_object_get(copy, "site_id") != NULL ||
                !json_is_string(json_object_get(copy, "site"))) {
                json_decref(copy);
                char field[64];
                snprintf(field, sizeof field, "%s[%zu].site", what, i);
                return api_error_set(err, 400, "invalid-field", field,
                                     "name the site by \"site\" (a name) or \"site_id\", not both");
            }
            json_object_del(copy, "site");
            json_object_set_new(copy, "site_id", json_string(PLACEHOLDER_ID));
        }
        rv = api_validate(schema, copy, err);
        json_decref(copy);
        if (rv != 0) {
            char inner[sizeof err->field];
            int n = snprintf(inner, sizeof inner, "%s[%zu]%s%s", what, i,
                             err->field[0] != '\0' ? "." : "", err->field);
            if (n > 0 && (size_t)n < sizeof inner) {
                memcpy(err->field, inner, (size_t)n + 1);
            }
            return rv;
        }
    }
    return 0;
}

/* No key value twice among items. */
static int check_unique(const json_t *items, const char *what, const char *key,
                        struct api_error *err)
{
    size_t i;
    const json_t *item;
    json_array_foreach(items, i, item)
    {
        for (size_t k = 0; k < i; k++) {
            if (json_equal(json_object_get(item, key),
                           json_object_get(json_array_get(items, k), key))) {
                char field[64];
                snprintf(field, sizeof field, "%s[%zu].%s", what, i, key);
                return api_error_set(err, 422, "invalid-field", field, "%s \"%s\" repeats %s[%zu]",
                                     key, json_string_value(json_object_get(item, key)), what, k);
            }
        }
    }
    return 0;
}

/* Every device's site: one of the import's, or the tenant's. */
static int check_sites(struct api *api, const char *tenant, const json_t *sites,
                       const json_t *devices, struct api_error *err)
{
    size_t i;
    const json_t *d;
    json_array_foreach(devices, i, d)
    {
        const char *name = json_string_value(json_object_get(d, "site"));
        const char *id = json_string_value(json_object_get(d, "site_id"));
        bool found = false;
        char field[64];
        if (name != NULL) {
            size_t k;
            const json_t *s;
            char key[129];
            char *sid = NULL;
            json_array_foreach(sites, k, s)
            {
                found = found || strcmp(json_string_value(json_object_get(s, "name")), name) == 0;
            }
            snprintf(key, sizeof key, "%s/%s", tenant, name);
            found = found || store_name_lookup(api->store, STORE_KIND_SITE, key, &sid) == 0;
            free(sid);
        } else {
            struct store_object o;
            if (store_object_get(api->store, STORE_KIND_SITE, id, &o) == 0) {
                found = o.tenant != NULL && strcmp(o.tenant, tenant) == 0;
                store_object_release(&o);
            }
        }
        if (!found) {
            snprintf(field, sizeof field, "devices[%zu].%s", i, name != NULL ? "site" : "site_id");
            return api_error_set(err, 422, "invalid-reference", field,
                                 "no site %s in the import or the tenant",
                                 name != NULL ? name : id);
        }
    }
    return 0;
}

int api_imports_post(struct api_req *req)
{
    const json_t *sites = json_object_get(req->body, "sites");
    const json_t *devices = json_object_get(req->body, "devices");
    const char *key = mg_get_header(req->conn, "Idempotency-Key");
    struct rbac_principal p = api_rbac_principal(req);
    const char *tenant = json_string_value(json_object_get(req->body, "tenant_id"));
    char request_id[API_REQUEST_ID_SIZE];
    char job_id[CAIRN_UUID_SIZE];
    char location[256];
    struct store_command cmd;
    struct store_result res;
    struct store_object t;
    struct api_error err;
    json_t *tasks;
    json_t *job;
    char *text;
    size_t n;
    bool hidden;
    int rc;

    if (api_validate(&api_import_schema, req->body, &err) != 0 ||
        check_items(sites, "sites", &api_site_schema, &err) != 0 ||
        check_items(devices, "devices", &api_device_schema, &err) != 0 ||
        check_unique(sites, "sites", "name", &err) != 0 ||
        check_unique(devices, "devices", "serial", &err) != 0) {
        return api_error_send(req, &err);
    }
    n = json_array_size(sites) + json_array_size(devices);
    if (n == 0 || n > IMPORT_MAX) {
        return api_problem(req, 422, "invalid-field", "sites", NULL,
                           "an import holds 1 to %d sites and devices, not %zu", IMPORT_MAX, n);
    }
    if (tenant == NULL) {
        tenant = p.tenant;
    }
    if (tenant == NULL) {
        return api_problem(req, 400, "missing-field", "tenant_id", NULL,
                           "field \"tenant_id\" is required: name the tenant to import into");
    }
    rc = api_read_point(req);
    if (rc != 0) {
        return rc;
    }
    rc = store_object_get(req->api->store, STORE_KIND_TENANT, tenant, &t);
    hidden = rc != 0 || rbac_decide(&p, RBAC_READ, STORE_KIND_TENANT, tenant) == RBAC_HIDDEN;
    if (rc == 0) {
        store_object_release(&t);
    }
    if (hidden) {
        api_audit_refusal(req, STORE_KIND_JOB, "-", NULL, CAIRN_ENOTFOUND, "no tenant %s: %s %s",
                          tenant, req->method, req->path);
        return api_problem(req, 422, "invalid-reference", "tenant_id", NULL, "no tenant with id %s",
                           tenant);
    }
    if (rbac_decide(&p, RBAC_CREATE, STORE_KIND_SITE, tenant) != RBAC_ALLOW ||
        rbac_decide(&p, RBAC_CREATE, STORE_KIND_DEVICE, tenant) != RBAC_ALLOW) {
        return api_forbidden(req, STORE_KIND_JOB, "-", tenant, "%s may not import into tenant %s",
                             rbac_role_name(req->who.role), tenant);
    }
    if (check_sites(req->api, tenant, sites, devices, &err) != 0) {
        return api_error_send(req, &err);
    }
    if (key != NULL) {
        if (api_idempotency_parse(key, request_id) != 0) {
            return api_problem(req, 400, "invalid-header", "Idempotency-Key", NULL,
                               "Idempotency-Key must be 1 to 255 printable ASCII characters");
        }
    } else {
        api_request_id_fresh(request_id);
    }
    tasks = json_array();
    for (size_t i = 0; i < n; i++) {
        bool dev = i >= json_array_size(sites);
        json_array_append_new(tasks, json_pack("{s:o, s:s}", "item",
                                               json_sprintf("%s[%zu]", dev ? "devices" : "sites",
                                                            dev ? i - json_array_size(sites) : i),
                                               "state", "queued"));
    }
    job = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:i, s:I}, s:o, s:s, s:b, s:{s:o, s:o}}", "type",
                    "import", "state", "queued", "target", "kind", "tenant", "id", tenant,
                    "progress", "done", 0, "total", (json_int_t)n, "tasks", tasks, "created_by",
                    req->who.username, "cancel_requested", 0, "input", "sites",
                    sites != NULL ? json_deep_copy(sites) : json_array(), "devices",
                    devices != NULL ? json_deep_copy(devices) : json_array());
    if (job == NULL) {
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory");
    }
    {
        char when[API_TIME_SIZE];
        api_time_format(cairn_wall_ms(), when);
        json_object_set_new(job, "created_at", json_string(when));
    }
    text = json_dumps(job, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(job);
    if (text == NULL) {
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory");
    }
    cairn_uuid(job_id);
    api_command_init(req, &cmd, STORE_OP_CREATE, STORE_KIND_JOB);
    cmd.id = job_id;
    cmd.body = text;
    cmd.body_len = strlen(text);
    cmd.request_id = request_id;
    cmd.fingerprint = api_fingerprint(req->method, req->path, req->raw.data, req->raw.len);
    cmd.tenant = tenant;
    cmd.parent_kind = STORE_KIND_TENANT;
    cmd.parent_id = tenant;
    rc = api_propose(req, &cmd, &res);
    free(text);
    if (rc != 0) {
        return rc;
    }
    if (res.status != 0) {
        return api_result_failed(req, &res);
    }
    snprintf(location, sizeof location, "Location: /api/v1/jobs/%s\r\n%s", res.id,
             res.replayed ? "Idempotent-Replayed: true\r\n" : "");
    return api_answer_written(req, 202, STORE_KIND_JOB, api_object_json, &res, location);
}
