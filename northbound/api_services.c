/*
 * Services (/api/v1/services) and jobs (/api/v1/jobs).
 *
 * A service is an instance of a published service template for one
 * tenant: its parameters, validated against the template's parameter
 * schema (defaults filled in), and its targets: devices and sites of the
 * same tenant, a site standing for every device in it. Realizing it on
 * devices is a long operation, so every write of
 * a service answers 202 with the Location of the job that realizes it:
 * POST and PUT store the service (its "generation" counts the writes) and
 * queue a "service-deploy" job; DELETE marks it "deleted" and queues a
 * "service-delete" job, which removes the object once the devices are
 * clean. The job's id is chosen with the service write and stored in the
 * service ("job_id"), so a retried request (Idempotency-Key) finds and
 * creates the same job even if the first attempt died between the two
 * commands. A job's tasks are the devices the service targets when the job
 * is queued (api_service_devices); a device added to a targeted site later
 * gets the site's services from its owner once it is onboarded
 * (node/devices.c).
 *
 * A job: type, state (queued, running, succeeded, failed, cancelled),
 * progress (done/total), one task per device with its state and message,
 * who asked and when. Jobs are written by the server only; a caller who
 * may operate in the job's scope may cancel it: a queued job ends at once,
 * a running one is asked to stop at its next task. The workers that run
 * jobs on devices are the southbound's.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#define JOBS_PATH "/api/v1/jobs"

/* Services --------------------------------------------------------------- */

/* The template a service of tenant may use, or the status answered. */
static int service_template(struct api *api, const char *tenant, const char *id, json_t **schema,
                            const char **type_out, json_t **tmpl_body, struct api_error *err)
{
    struct store_object t;
    int rv = store_object_get(api->store, STORE_KIND_TEMPLATE, id, &t);
    bool offered = rv == 0 && api_template_offered(api, &t, tenant);

    if (rv != 0 && rv != CAIRN_ENOTFOUND) {
        return api_error_set(err, 500, "internal", NULL, "read template %s: %s", id,
                             cairn_strerror(rv));
    }
    if (offered) {
        *tmpl_body = json_loadb(t.body, t.body_len, 0, NULL);
    }
    if (rv == 0) {
        store_object_release(&t);
    }
    if (!offered) {
        return api_error_set(err, 422, "invalid-reference", "template_id",
                             "no published template with id %s is offered to this tenant", id);
    }
    if (*tmpl_body == NULL) {
        return api_error_set(err, 500, "internal", NULL, "template %s: unreadable body", id);
    }
    *schema = json_object_get(*tmpl_body, "parameters");
    *type_out = json_string_value(json_object_get(*tmpl_body, "type"));
    return 0;
}

/* What a service's targets name (each list in "targets"), and the kind of
 * object each id must be. */
static const struct {
    const char *key;
    enum store_kind kind;
    const char *noun;
} target_kinds[] = {
    {"device_ids", STORE_KIND_DEVICE, "device"},
    {"site_ids", STORE_KIND_SITE, "site"},
};

/* Every target is an object of the tenant: a missing one and another
 * tenant's are answered alike, so nothing is learnt of other tenants. */
static int service_targets(struct api *api, const char *tenant, const json_t *targets,
                           struct api_error *err)
{
    for (size_t k = 0; k < sizeof target_kinds / sizeof target_kinds[0]; k++) {
        size_t i;
        const json_t *id;
        json_array_foreach(json_object_get(targets, target_kinds[k].key), i, id)
        {
            struct store_object o;
            int rv = store_object_get(api->store, target_kinds[k].kind, json_string_value(id), &o);
            bool ok = rv == 0 && o.tenant != NULL && strcmp(o.tenant, tenant) == 0;
            if (rv == 0) {
                store_object_release(&o);
            }
            if (!ok) {
                char field[64];
                snprintf(field, sizeof field, "targets.%s[%zu]", target_kinds[k].key, i);
                return api_error_set(err, 422, "invalid-reference", field,
                                     "no %s with id %s in the service's tenant",
                                     target_kinds[k].noun, json_string_value(id));
            }
        }
    }
    return 0;
}

static int service_build(struct api *api, const struct store_object *old, struct api_build *b,
                         struct api_error *err)
{
    const char *tmpl_id = json_string_value(json_object_get(b->stored, "template_id"));
    json_t *params = json_object_get(b->stored, "parameters");
    json_t *tmpl_body = NULL;
    json_t *schema = NULL;
    json_t *prev = NULL;
    const char *type = NULL;
    char job_id[CAIRN_UUID_SIZE];
    json_int_t generation = 1;
    int rc;

    if (old != NULL) {
        prev = json_loadb(old->body, old->body_len, 0, NULL);
        if (prev == NULL) {
            return api_error_set(err, 500, "internal", NULL, "service %s: unreadable stored body",
                                 old->id);
        }
        generation = json_integer_value(json_object_get(prev, "generation")) + 1;
        if (strcmp(json_string_value(json_object_get(prev, "desired_state")), "deleted") == 0) {
            json_decref(prev);
            return api_error_set(err, 409, "service-deleting", NULL, "service %s is being deleted",
                                 old->id);
        }
    }
    rc = service_template(api, b->tenant, tmpl_id, &schema, &type, &tmpl_body, err);
    if (rc == 0 && params == NULL) {
        params = json_object();
        json_object_set_new(b->stored, "parameters", params);
    }
    if (rc == 0 && schema == NULL) {
        schema = json_object();
        json_object_set_new(tmpl_body, "parameters", schema); /* owned by tmpl_body */
    }
    if (rc == 0) {
        rc = api_template_params_check(schema, params, err);
    }
    if (rc == 0) {
        rc = service_targets(api, b->tenant, json_object_get(b->stored, "targets"), err);
    }
    if (rc == 0) {
        snprintf(b->name, sizeof b->name, "%s/%s", b->tenant,
                 json_string_value(json_object_get(b->stored, "name")));
        if (json_object_get(b->stored, "desired_state") == NULL) {
            json_object_set_new(b->stored, "desired_state", json_string("active"));
        }
        json_object_set_new(b->stored, "type", json_string(type));
        json_object_set_new(b->stored, "generation", json_integer(generation));
        cairn_uuid(job_id);
        json_object_set_new(b->stored, "job_id", json_string(job_id));
        if (prev != NULL && json_object_get(prev, "targets") != NULL) {
            json_object_set(b->stored, "previous_targets", json_object_get(prev, "targets"));
        } else {
            json_object_del(b->stored, "previous_targets");
        }
        if (prev != NULL && json_object_get(prev, "realization") != NULL) {
            json_object_set(b->stored, "realization", json_object_get(prev, "realization"));
        } else {
            json_object_set_new(b->stored, "realization", json_object());
        }
        api_build_ref(b, STORE_KIND_TEMPLATE, tmpl_id);
    }
    json_decref(tmpl_body);
    json_decref(prev);
    return rc;
}

static const char *const service_filters[] = {"name", "template_id", "desired_state", "type", NULL};

const struct api_resource api_service_resource = {
    .kind = STORE_KIND_SERVICE,
    .noun = "service",
    .path = "/api/v1/services",
    .schema = &api_service_schema,
    .scope_from = API_SCOPE_FIELD,
    .filters = service_filters,
    .build = service_build,
};

/* Jobs ------------------------------------------------------------------- */

static const char *const job_filters[] = {"type", "state", NULL};

const struct api_resource api_job_resource = {
    .kind = STORE_KIND_JOB,
    .noun = "job",
    .path = JOBS_PATH,
    .schema = &api_job_schema,
    .scope_from = API_SCOPE_FIELD,
    .filters = job_filters,
};

/* The request id of the job a request queues: derived from the request's
 * own when the client gave an Idempotency-Key, so a retry finds the same
 * job. A job that is the request's whole effect (a dry run, a device
 * operation) mixes in its type: its key never names a service write's
 * job. */
static void job_request_id(struct api_req *req, const char *type, char out[API_REQUEST_ID_SIZE])
{
    const char *key = mg_get_header(req->conn, "Idempotency-Key");
    char rid[API_REQUEST_ID_SIZE];
    if (key != NULL && api_idempotency_parse(key, rid) == 0) {
        uint64_t h = api_fnv1a(API_FNV_OFFSET, rid, strlen(rid));
        if (!api_job_service_write(type)) {
            h = api_fnv1a(h, type, strlen(type));
        }
        snprintf(out, API_REQUEST_ID_SIZE, "job:%016llx", (unsigned long long)h);
    } else {
        api_request_id_fresh(out);
    }
}

bool api_job_service_write(const char *type)
{
    return type != NULL &&
           (strcmp(type, "service-deploy") == 0 || strcmp(type, "service-delete") == 0);
}

bool api_job_on_devices(const char *type)
{
    return api_job_service_write(type) ||
           (type != NULL &&
            (strcmp(type, "service-dry-run") == 0 || strcmp(type, "device-check-drift") == 0 ||
             strcmp(type, "device-sync-from") == 0 || strcmp(type, "device-onboard") == 0));
}

int api_job_queue(struct api_req *req, const char *job_id, const char *type,
                  enum store_kind target_kind, const char *target_id, const char *tenant,
                  const json_t *device_ids, const json_t *extra, struct store_result *res)
{
    char request_id[API_REQUEST_ID_SIZE];
    char when[API_TIME_SIZE];
    struct store_command cmd;
    json_t *tasks = json_array();
    json_t *job;
    char *body;
    size_t i;
    const json_t *id;
    int rc;

    json_array_foreach(device_ids, i, id)
    {
        json_array_append_new(tasks, json_pack("{s:O, s:s}", "device_id", id, "state", "queued"));
    }
    api_time_format(cairn_wall_ms(), when);
    job = json_pack("{s:s, s:s, s:{s:s, s:s?}, s:{s:i, s:I}, s:o, s:s, s:s, s:b}", "type", type,
                    "state", "queued", "target", "kind", store_kind_name(target_kind), "id",
                    target_id, "progress", "done", 0, "total", (json_int_t)json_array_size(tasks),
                    "tasks", tasks, "created_by", req->who.username, "created_at", when,
                    "cancel_requested", 0);
    if (job != NULL && extra != NULL) {
        json_object_update(job, (json_t *)extra);
    }
    body = job != NULL ? json_dumps(job, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(job);
    if (body == NULL) {
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory");
    }
    job_request_id(req, type, request_id);
    api_command_init(req, &cmd, STORE_OP_CREATE, STORE_KIND_JOB);
    cmd.id = job_id;
    cmd.body = body;
    cmd.body_len = strlen(body);
    cmd.request_id = request_id;
    /* A service write's job id is stored with the service (a retry brings
     * the same one); any other job is the request itself, and a retry is
     * the same request. */
    cmd.fingerprint = api_job_service_write(type)
                          ? api_fnv1a(API_FNV_OFFSET, job_id, strlen(job_id))
                          : api_fingerprint(req->method, req->path, req->raw.data, req->raw.len);
    cmd.tenant = tenant;
    cmd.parent_kind = tenant != NULL ? STORE_KIND_TENANT : 0;
    cmd.parent_id = tenant;
    rc = api_propose(req, &cmd, res);
    free(body);
    if (rc == 0 && res->status != 0) {
        return api_result_failed(req, res);
    }
    return rc;
}

/* Adds id to devices (an array of ids) unless seen (an object used as a
 * set of ids: a site may hold thousands of devices) has it. */
static void add_id(json_t *devices, json_t *seen, const char *id)
{
    if (id != NULL && json_object_get(seen, id) == NULL) {
        json_object_set_new(seen, id, json_true());
        json_array_append_new(devices, json_string(id));
    }
}

#define SITE_PAGE      200   /* devices read at once (with their bodies) */
#define SITE_PAGES_MAX 10000 /* only a broken store reaches it: quotas bound a site */

/* Adds the devices that site (of tenant) holds now. */
static int site_devices(struct api *api, const char *tenant, const char *site, json_t *devices,
                        json_t *seen)
{
    struct store_query q;
    char after[CAIRN_UUID_SIZE] = "";
    memset(&q, 0, sizeof q);
    q.kind = STORE_KIND_DEVICE;
    q.tenant = tenant;
    q.parent_kind = STORE_KIND_SITE;
    q.parent_id = site;
    q.limit = SITE_PAGE;
    q.now_ms = cairn_wall_ms();
    for (int page = 0; page < SITE_PAGES_MAX; page++) {
        struct store_list list;
        bool more;
        int rv;
        q.after = after[0] != '\0' ? after : NULL;
        rv = store_object_query(api->store, &q, &list);
        if (rv != 0) {
            return rv;
        }
        for (size_t i = 0; i < list.n; i++) {
            add_id(devices, seen, list.items[i].id);
        }
        if (list.n > 0) {
            snprintf(after, sizeof after, "%s", list.items[list.n - 1].id);
        }
        more = list.more;
        store_list_release(&list);
        if (!more) {
            break;
        }
    }
    return 0;
}

/* The devices a service's job has tasks for: those targets (a service's
 * "targets") name now, its device_ids and every device of its site_ids,
 * and those of also (another version of the service's targets, or NULL),
 * each once. On success *out is a new array, the caller's. */
int api_service_devices(struct api *api, const char *tenant, const json_t *targets,
                        const json_t *also, json_t **out)
{
    const json_t *all[] = {targets, also};
    json_t *devices = json_array();
    json_t *seen = json_object();
    int rv = devices != NULL && seen != NULL ? 0 : CAIRN_ENOMEM;

    for (size_t t = 0; t < sizeof all / sizeof all[0] && rv == 0; t++) {
        size_t i;
        const json_t *id;
        json_array_foreach(json_object_get(all[t], "device_ids"), i, id)
        {
            add_id(devices, seen, json_string_value(id));
        }
        json_array_foreach(json_object_get(all[t], "site_ids"), i, id)
        {
            if (rv == 0) {
                rv = site_devices(api, tenant, json_string_value(id), devices, seen);
            }
        }
    }
    json_decref(seen);
    if (rv != 0) {
        json_decref(devices);
        return rv;
    }
    *out = devices;
    return 0;
}

/* After a service write: queue its job and answer 202 with the service
 * and the job's Location. */
static int service_accepted(struct api_req *req, const struct store_result *written,
                            const char *type)
{
    struct store_object o;
    struct store_result res;
    char headers[256];
    json_t *body;
    json_t *devices = NULL;
    int rc = store_object_get(req->api->store, STORE_KIND_SERVICE, written->id, &o);

    if (rc != 0) {
        return api_problem(req, 500, "internal", NULL, NULL, "read back service %s: %s",
                           written->id, cairn_strerror(rc));
    }
    body = json_loadb(o.body, o.body_len, 0, NULL);
    if (body == NULL) {
        rc = api_problem(req, 500, "internal", NULL, NULL, "unreadable service");
    } else if ((rc = api_service_devices(req->api, o.tenant, json_object_get(body, "targets"),
                                         json_object_get(body, "previous_targets"), &devices)) !=
               0) {
        rc = api_problem(req, 500, "internal", NULL, NULL,
                         "list the devices of service %s's sites: %s", o.id, cairn_strerror(rc));
    } else {
        rc = api_job_queue(req, json_string_value(json_object_get(body, "job_id")), type,
                           STORE_KIND_SERVICE, o.id, o.tenant, devices, NULL, &res);
    }
    if (rc == 0) {
        snprintf(headers, sizeof headers, "Location: " JOBS_PATH "/%s\r\n%s", res.id,
                 written->replayed ? "Idempotent-Replayed: true\r\n" : "");
        rc = api_answer_written(req, 202, STORE_KIND_SERVICE, api_object_json, written, headers);
    }
    json_decref(devices);
    json_decref(body);
    store_object_release(&o);
    return rc;
}

int api_job_accepted(struct api_req *req, const struct store_result *res)
{
    char headers[256];
    snprintf(headers, sizeof headers, "Location: " JOBS_PATH "/%s\r\n%s", res->id,
             res->replayed ? "Idempotent-Replayed: true\r\n" : "");
    return api_answer_written(req, 202, STORE_KIND_JOB, api_object_json, res, headers);
}

/* A dry run of a service create (old_id NULL) or replace: b is the
 * checked build of the would-be service; the job diffs every device it
 * would target, and those it targets now (a replace may drop them). No
 * service is written. */
static int service_dry_run(struct api_req *req, struct api_build *b, const char *old_id)
{
    json_t *devices = NULL;
    json_t *prev = NULL;
    json_t *extra;
    char job_id[CAIRN_UUID_SIZE];
    char *found = NULL;
    struct store_result res;
    struct store_object old;
    int rc = 0;

    if (store_name_lookup(req->api->store, STORE_KIND_SERVICE, b->name, &found) == 0 &&
        (old_id == NULL || strcmp(found, old_id) != 0)) {
        rc = api_problem(req, 409, "conflict", "name", NULL,
                         "a service named %s already exists in the tenant",
                         json_string_value(json_object_get(b->stored, "name")));
    }
    free(found);
    if (rc != 0) {
        return rc;
    }
    if (old_id != NULL &&
        store_object_get(req->api->store, STORE_KIND_SERVICE, old_id, &old) == 0) {
        prev = json_loadb(old.body, old.body_len, 0, NULL);
        store_object_release(&old);
    }
    rc = api_service_devices(req->api, b->tenant, json_object_get(b->stored, "targets"),
                             json_object_get(prev, "targets"), &devices);
    json_decref(prev);
    if (rc != 0) {
        return api_problem(req, 500, "internal", NULL, NULL,
                           "list the devices of the service's sites: %s", cairn_strerror(rc));
    }
    extra = json_pack("{s:b, s:{s:s?, s:O?, s:O?, s:O?, s:O?}}", "dry_run", 1, "service", "id",
                      old_id, "type", json_object_get(b->stored, "type"), "desired_state",
                      json_object_get(b->stored, "desired_state"), "parameters",
                      json_object_get(b->stored, "parameters"), "targets",
                      json_object_get(b->stored, "targets"));
    cairn_uuid(job_id);
    rc = extra == NULL ? api_problem(req, 500, "internal", NULL, NULL, "out of memory")
                       : api_job_queue(req, job_id, "service-dry-run", STORE_KIND_SERVICE, old_id,
                                       b->tenant, devices, extra, &res);
    if (rc == 0) {
        rc = api_job_accepted(req, &res);
    }
    json_decref(extra);
    json_decref(devices);
    return rc;
}

/* A service write, or its dry run (?dry_run=true): checked the same way,
 * by the same code, up to the proposal. */
static int service_write(struct api_req *req, bool create)
{
    struct store_result res;
    struct api_build b;
    bool dry = false;
    int rc = api_bool_param(req, "dry_run", &dry);

    if (rc != 0) {
        return rc;
    }
    memset(&b, 0, sizeof b);
    req->dry_run = dry ? &b : NULL;
    rc = create ? api_resource_create(req, &api_service_resource, &res)
                : api_resource_replace(req, &api_service_resource, &res);
    req->dry_run = NULL;
    if (rc != 0 || !dry) {
        return rc != 0 ? rc : service_accepted(req, &res, "service-deploy");
    }
    rc = service_dry_run(req, &b, create ? NULL : req->path_id);
    json_decref(b.stored);
    return rc;
}

int api_services_post(struct api_req *req)
{
    return service_write(req, true);
}

int api_service_put(struct api_req *req)
{
    return service_write(req, false);
}

static int delete_change(struct api_req *req, const struct store_object *old, struct api_build *b,
                         void *arg)
{
    char job_id[CAIRN_UUID_SIZE];
    (void)arg;
    if (strcmp(json_string_value(json_object_get(b->stored, "desired_state")), "deleted") == 0) {
        return api_problem(req, 409, "service-deleting", NULL, NULL,
                           "service %s is already being deleted", old->id);
    }
    cairn_uuid(job_id);
    /* The delete's job is for the devices it targets now. */
    json_object_del(b->stored, "previous_targets");
    json_object_set_new(b->stored, "desired_state", json_string("deleted"));
    json_object_set_new(b->stored, "job_id", json_string(job_id));
    json_object_set_new(
        b->stored, "generation",
        json_integer(json_integer_value(json_object_get(b->stored, "generation")) + 1));
    return 0;
}

int api_service_delete(struct api_req *req)
{
    struct store_result res;
    int rc = api_resource_update(req, &api_service_resource, RBAC_DELETE, NULL, delete_change, NULL,
                                 &res);
    return rc != 0 ? rc : service_accepted(req, &res, "service-delete");
}

/* Job cancel ------------------------------------------------------------- */

static int cancel_change(struct api_req *req, const struct store_object *old, struct api_build *b,
                         void *arg)
{
    const char *state = json_string_value(json_object_get(b->stored, "state"));
    char when[API_TIME_SIZE];
    size_t i;
    json_t *task;

    (void)arg;
    if (state == NULL) {
        return api_problem(req, 500, "internal", NULL, NULL, "job %s has no state", old->id);
    }
    if (strcmp(state, "queued") == 0) {
        api_time_format(cairn_wall_ms(), when);
        json_object_set_new(b->stored, "state", json_string("cancelled"));
        json_object_set_new(b->stored, "finished_at", json_string(when));
        json_object_set_new(b->stored, "message",
                            json_sprintf("cancelled by %s before it started", req->who.username));
        json_array_foreach(json_object_get(b->stored, "tasks"), i, task)
        {
            json_object_set_new(task, "state", json_string("cancelled"));
        }
    } else if (strcmp(state, "running") == 0) {
        json_object_set_new(b->stored, "cancel_requested", json_true());
    } else {
        return api_problem(req, 409, "job-finished", NULL, NULL, "job %s has already ended (%s)",
                           old->id, state);
    }
    return 0;
}

int api_job_cancel(struct api_req *req)
{
    struct store_result res;
    int rc =
        api_resource_update(req, &api_job_resource, RBAC_OPERATE, NULL, cancel_change, NULL, &res);
    return rc != 0 ? rc : api_answer_written(req, 200, STORE_KIND_JOB, api_object_json, &res, NULL);
}
