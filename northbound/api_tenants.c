/*
 * The tenants resource: /api/v1/tenants (list, create) and
 * /api/v1/tenants/{id} (read, replace, delete).
 *
 * A tenant is stored as a store object of kind STORE_KIND_TENANT: its id is
 * a server-assigned uuid, its unique name is the tenant's "name" (so the
 * store enforces uniqueness, deterministically, in apply), and its body is
 * the validated user fields as compact JSON with sorted keys, except the
 * quotas: those are the object's limits (the store counts scoped sites,
 * devices and services against them in apply) and are merged into answers
 * from there. Ids and revisions are not in the body either: they are
 * merged in when answering, so the stored body never disagrees with the
 * object's metadata.
 *
 * Writes are store commands proposed through the backend; the answer comes
 * from the command's result and, for a successful create or replace, from
 * reading the object back (the propose guarantees it is applied locally).
 * Every answer carries X-Cairn-Revision, and every single-object answer the
 * object's ETag (its mod revision).
 *
 * Access (rbac.c): only SP admins write tenants; every SP role reads them
 * all; a tenant user reads its own tenant and, for any other id, gets the
 * answer of a missing tenant. A tenant's scope is its own id.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#define TENANTS_PATH "/api/v1/tenants"

/* The quotas of o's limits as the JSON object clients send; NULL if it has
 * none. */
static json_t *quotas_json(const struct store_object *o)
{
    json_t *q = NULL;
    for (size_t i = 0; i < api_n_quotas; i++) {
        for (size_t j = 0; j < o->n_limits; j++) {
            if (o->limits[j].kind != api_quotas[i].kind) {
                continue;
            }
            if (q == NULL && (q = json_object()) == NULL) {
                return NULL;
            }
            json_object_set_new(q, api_quotas[i].field, json_integer((json_int_t)o->limits[j].max));
        }
    }
    return q;
}

/* The answer's form of a stored tenant: id, the user fields in table
 * order (quotas from the limits), then the revisions. */
json_t *api_tenant_json(struct api *api, const struct store_object *o)
{
    json_t *body = json_loadb(o->body, o->body_len, 0, NULL);
    json_t *quotas;
    json_t *fields;
    json_t *out;

    (void)api; /* tenants and users show no server fields */

    if (body == NULL) {
        return NULL;
    }
    quotas = quotas_json(o);
    if (quotas != NULL) {
        json_object_set_new(body, "quotas", quotas);
    }
    fields = api_schema_project(&api_tenant_schema, body);
    json_decref(body);
    out = json_object();
    if (fields == NULL || out == NULL || json_object_set_new(out, "id", json_string(o->id)) != 0 ||
        json_object_update(out, fields) != 0 ||
        json_object_set_new(out, "create_revision", json_integer((json_int_t)o->create_rev)) != 0 ||
        json_object_set_new(out, "mod_revision", json_integer((json_int_t)o->mod_rev)) != 0) {
        json_decref(fields);
        json_decref(out);
        return NULL;
    }
    json_decref(fields);
    return out;
}

/* The tenant's halves of the shared helpers. */
static int check_path_id(struct api_req *req)
{
    return api_check_path_id(req, "tenant", TENANTS_PATH);
}

static int answer_written(struct api_req *req, int status, const struct store_result *res,
                          const char *extra_headers)
{
    return api_answer_written(req, status, STORE_KIND_TENANT, api_tenant_json, res, extra_headers);
}

/* Validates the body and proposes a create or an update of it. Returns 0
 * with *res filled, or the status answered. */
static int propose_tenant(struct api_req *req, enum store_op op, const char *id, uint64_t if_match,
                          const char *request_id, struct store_result *res)
{
    const json_t *quotas = json_object_get(req->body, "quotas");
    struct store_command cmd;
    struct api_error err;
    json_t *stored;
    char *body;
    int rc;

    if (api_validate(&api_tenant_schema, req->body, &err) != 0) {
        return api_error_send(req, &err);
    }
    api_command_init(req, &cmd, op, STORE_KIND_TENANT);
    /* Quotas become the object's limits; absent ones are unlimited. */
    for (size_t i = 0; i < api_n_quotas && quotas != NULL; i++) {
        const json_t *max = json_object_get(quotas, api_quotas[i].field);
        if (max != NULL) {
            cmd.limits[cmd.n_limits].kind = api_quotas[i].kind;
            cmd.limits[cmd.n_limits].max = (uint64_t)json_integer_value(max);
            cmd.n_limits++;
        }
    }
    stored = json_deep_copy(req->body);
    if (stored != NULL) {
        json_object_del(stored, "quotas");
    }
    body = stored != NULL ? json_dumps(stored, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(stored);
    if (body == NULL) {
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory");
    }
    cmd.id = id;
    cmd.name = json_string_value(json_object_get(req->body, "name"));
    cmd.body = body;
    cmd.body_len = strlen(body);
    cmd.if_match = if_match;
    cmd.request_id = request_id;
    cmd.fingerprint = api_fingerprint(req->method, req->path, req->raw.data, req->raw.len);
    req->written_from_leader = true; /* both callers read it back by answer_written only */
    rc = api_propose(req, &cmd, res);
    free(body);
    return rc;
}

int api_tenants_create(struct api_req *req)
{
    const char *key = mg_get_header(req->conn, "Idempotency-Key");
    char request_id[API_REQUEST_ID_SIZE];
    char id[CAIRN_UUID_SIZE];
    char location[256];
    struct store_result res;
    int rc;

    rc = api_authorize(req, RBAC_CREATE, STORE_KIND_TENANT, NULL, "tenant", "-");
    if (rc != 0) {
        return rc;
    }
    if (key != NULL) {
        if (api_idempotency_parse(key, request_id) != 0) {
            return api_problem(req, 400, "invalid-header", "Idempotency-Key", NULL,
                               "Idempotency-Key must be 1 to 255 printable ASCII characters "
                               "(a uuid is a good choice)");
        }
    } else {
        api_request_id_fresh(request_id);
    }
    cairn_uuid(id);
    rc = propose_tenant(req, STORE_OP_CREATE, id, 0, request_id, &res);
    if (rc != 0) {
        return rc;
    }
    if (res.status != 0) {
        return api_result_failed(req, &res);
    }
    /* A replayed create names the id the first attempt chose, not ours. */
    snprintf(location, sizeof location, "Location: " TENANTS_PATH "/%s\r\n%s", res.id,
             res.replayed ? "Idempotent-Replayed: true\r\n" : "");
    return answer_written(req, 201, &res, location);
}

/* The common start of a PUT or DELETE on one tenant: a valid path id, the
 * caller's right to do action on it, If-Match, and a fresh request id. */
static int prepare_change(struct api_req *req, enum rbac_action action, uint64_t *if_match,
                          char *request_id)
{
    int rc = check_path_id(req);
    if (rc == 0) {
        rc = api_authorize(req, action, STORE_KIND_TENANT, req->path_id, "tenant", req->path_id);
    }
    if (rc == 0) {
        rc = api_if_match(req, if_match);
    }
    if (rc == 0) {
        api_request_id_fresh(request_id);
    }
    return rc;
}

int api_tenant_replace(struct api_req *req)
{
    char request_id[API_REQUEST_ID_SIZE];
    struct store_result res;
    uint64_t if_match;
    int rc;

    rc = prepare_change(req, RBAC_UPDATE, &if_match, request_id);
    if (rc != 0) {
        return rc;
    }
    rc = propose_tenant(req, STORE_OP_UPDATE, req->path_id, if_match, request_id, &res);
    if (rc != 0) {
        return rc;
    }
    if (res.status != 0) {
        return api_result_failed(req, &res);
    }
    return answer_written(req, 200, &res, NULL);
}

int api_tenant_delete(struct api_req *req)
{
    char request_id[API_REQUEST_ID_SIZE];
    char headers[128];
    struct store_command cmd;
    struct store_result res;
    uint64_t if_match;
    bool cascade;
    int rc;

    rc = prepare_change(req, RBAC_DELETE, &if_match, request_id);
    if (rc == 0) {
        rc = api_bool_param(req, "cascade", &cascade);
    }
    if (rc != 0) {
        return rc;
    }
    api_command_init(req, &cmd, STORE_OP_DELETE, STORE_KIND_TENANT);
    cmd.id = req->path_id;
    cmd.if_match = if_match;
    cmd.request_id = request_id;
    /* The query is part of the request: with or without cascade are two. */
    cmd.fingerprint =
        api_fingerprint(req->method, req->path, cascade ? "cascade" : "", cascade ? 7 : 0);
    cmd.cascade = cascade;
    rc = api_propose(req, &cmd, &res);
    if (rc != 0) {
        return rc;
    }
    if (res.status != 0) {
        return api_result_failed(req, &res);
    }
    snprintf(headers, sizeof headers, "X-Cairn-Revision: %llu\r\n",
             (unsigned long long)res.revision);
    http_reply(req->conn, 204, NULL, headers, NULL, 0);
    return 204;
}

int api_tenant_get(struct api_req *req)
{
    struct store_object o;
    char headers[128];
    uint64_t revision;
    json_t *obj;
    int rc;

    rc = check_path_id(req);
    if (rc == 0) {
        rc = api_authorize(req, RBAC_READ, STORE_KIND_TENANT, req->path_id, "tenant", req->path_id);
    }
    if (rc == 0) {
        rc = api_read_point(req);
    }
    if (rc != 0) {
        return rc;
    }
    rc = store_object_get(req->api->store, STORE_KIND_TENANT, req->path_id, &o);
    /* Read after the object, so the object is never newer than it. */
    revision = store_revision(req->api->store);
    if (rc == CAIRN_ENOTFOUND) {
        return api_not_found(req, "tenant", req->path_id);
    }
    if (rc != 0) {
        return api_problem(req, 500, "internal", NULL, NULL, "read tenant %s: %s", req->path_id,
                           cairn_strerror(rc));
    }
    obj = api_tenant_json(req->api, &o);
    snprintf(headers, sizeof headers, "ETag: \"%llu\"\r\nX-Cairn-Revision: %llu\r\n",
             (unsigned long long)o.mod_rev, (unsigned long long)revision);
    store_object_release(&o);
    return api_reply_json(req, 200, obj, headers);
}

/* The page of a name-filtered list: the one tenant of that name, if any
 * (and if it comes after the cursor and is the only one the caller may
 * see, when it may see only one). */
static int list_by_name(struct api_req *req, const char *name, const char *only, const char *cursor,
                        json_t *items)
{
    struct store_object o;
    char *id = NULL;
    int rv;

    rv = store_name_lookup(req->api->store, STORE_KIND_TENANT, name, &id);
    if (rv == 0 && (cursor == NULL || strcmp(id, cursor) > 0) &&
        (only == NULL || strcmp(id, only) == 0)) {
        rv = store_object_get(req->api->store, STORE_KIND_TENANT, id, &o);
        if (rv == 0) {
            json_t *obj = api_tenant_json(req->api, &o);
            store_object_release(&o);
            rv = obj == NULL ? CAIRN_ENOMEM : json_array_append_new(items, obj);
        }
    }
    free(id);
    return rv == CAIRN_ENOTFOUND ? 0 : rv;
}

/* The page of a tenant user: its own tenant, if after the cursor. */
static int list_own(struct api_req *req, const char *own, const char *cursor, json_t *items)
{
    struct store_object o;
    int rv = 0;
    if (cursor == NULL || strcmp(own, cursor) > 0) {
        rv = store_object_get(req->api->store, STORE_KIND_TENANT, own, &o);
        if (rv == 0) {
            json_t *obj = api_tenant_json(req->api, &o);
            store_object_release(&o);
            rv = obj == NULL ? CAIRN_ENOMEM : json_array_append_new(items, obj);
        }
    }
    return rv == CAIRN_ENOTFOUND ? 0 : rv;
}

int api_tenants_list(struct api_req *req)
{
    struct rbac_principal p = api_rbac_principal(req);
    struct store_list list;
    const char *cursor;
    const char *name = api_param(req, "name");
    char headers[128];
    json_t *items;
    json_t *next = NULL;
    uint64_t revision = 0;
    size_t limit;
    int rv;

    rv = api_list_params(req, &limit, &cursor);
    if (rv == 0) {
        rv = api_read_point(req);
    }
    if (rv != 0) {
        return rv;
    }
    items = json_array();
    if (items == NULL) {
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory");
    }
    if (name != NULL) {
        rv = list_by_name(req, name, p.tenant, cursor, items);
        revision = store_revision(req->api->store);
    } else if (rbac_role_is_tenant(p.role)) {
        /* A tenant user sees one tenant: its own. */
        rv = list_own(req, p.tenant, cursor, items);
        revision = store_revision(req->api->store);
    } else {
        rv = store_object_list(req->api->store, STORE_KIND_TENANT, cursor, limit, &list);
        if (rv == 0) {
            rv = api_list_render(req->api, &list, api_tenant_json, items, &next);
            revision = list.revision;
            store_list_release(&list);
        }
    }
    if (rv != 0) {
        json_decref(items);
        json_decref(next);
        return api_problem(req, 500, "internal", NULL, NULL, "list tenants: %s",
                           cairn_strerror(rv));
    }
    snprintf(headers, sizeof headers, "X-Cairn-Revision: %llu\r\n", (unsigned long long)revision);
    return api_reply_json(
        req, 200,
        json_pack("{s:o, s:o, s:I}", "items", items, "next_cursor",
                  next != NULL ? next : json_null(), "revision", (json_int_t)revision),
        headers);
}
