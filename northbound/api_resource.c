/*
 * The generic resource: list, create, read, replace and delete of one kind
 * of stored object, described by a struct api_resource (its field table,
 * where its tenant scope comes from, and a few hooks), so that sites,
 * devices, service templates, services and jobs share one implementation
 * of every rule the API promises: field validation, tenant isolation (a
 * hidden object answers exactly like a missing one), If-Match,
 * Idempotency-Key, pinned read-check-write (a check made on a read holds
 * at apply, because the write carries the mod revision that was read),
 * cursor pages with filters, ETags and revisions.
 *
 * Scope: API_SCOPE_FIELD resources (sites, services) name their tenant in
 * "tenant_id" and hang under it (parent = the tenant, so a tenant with them
 * cannot be deleted without cascade); API_SCOPE_PARENT resources (devices)
 * hang under a parent object named by a field ("site_id") and inherit its
 * tenant; API_SCOPE_NONE resources (templates) belong to the provider.
 * Tenant users may omit tenant_id: it is theirs.
 *
 * The stored body is the validated request body plus the fields the build
 * hook adds (server-set ones such as "state"); ids, tenants and revisions
 * come from the object's metadata when answering.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

/* A read-check-write raced with another write: read again, this often. */
#define WRITE_ATTEMPTS 3
/* A filtered list examines at most this many objects per page. */
#define LIST_SCAN_MAX 10000
/* An object id and its NUL. */
#define ID_BUF 129

/* The resources, for api_object_json. */
static const struct api_resource *const resources[] = {
    &api_site_resource,    &api_device_resource, &api_template_resource,
    &api_service_resource, &api_job_resource,
};

const struct api_resource *api_resource_of(enum store_kind kind)
{
    for (size_t i = 0; i < sizeof resources / sizeof resources[0]; i++) {
        if (resources[i]->kind == kind) {
            return resources[i];
        }
    }
    return NULL;
}

json_t *api_resource_json(struct api *api, const struct api_resource *r,
                          const struct store_object *o)
{
    json_t *body = json_loadb(o->body, o->body_len, 0, NULL);
    json_t *out = NULL;

    if (body == NULL || !json_is_object(body)) {
        json_decref(body);
        return NULL;
    }
    if (o->tenant != NULL && r->scope_from != API_SCOPE_NONE) {
        json_object_set_new(body, "tenant_id", json_string(o->tenant));
    }
    json_object_set_new(body, "id", json_string(o->id));
    json_object_set_new(body, "create_revision", json_integer((json_int_t)o->create_rev));
    json_object_set_new(body, "mod_revision", json_integer((json_int_t)o->mod_rev));
    if (r->decorate == NULL || r->decorate(api, o, body) == 0) {
        out = api_schema_render(r->schema, body);
    }
    json_decref(body);
    return out;
}

json_t *api_object_json(struct api *api, const struct store_object *o)
{
    const struct api_resource *r;
    switch (o->kind) {
        case STORE_KIND_TENANT:
            return api_tenant_json(api, o);
        case STORE_KIND_USER:
            return api_user_json(api, o);
        default:
            r = api_resource_of(o->kind);
            return r != NULL ? api_resource_json(api, r, o) : NULL;
    }
}

/* The decision on o for the caller, the visible hook included. */
static enum rbac_decision decide(struct api_req *req, const struct api_resource *r,
                                 enum rbac_action action, const struct store_object *o)
{
    struct rbac_principal p = api_rbac_principal(req);
    enum rbac_decision d = rbac_decide(&p, action, r->kind, o->tenant);
    if (d != RBAC_HIDDEN && r->visible != NULL && !r->visible(req, o)) {
        d = RBAC_HIDDEN;
    }
    return d;
}

int api_resource_load(struct api_req *req, const struct api_resource *r, enum rbac_action action,
                      struct store_object *o)
{
    const struct api_backend *b = &req->api->backend;
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    char scope[CAIRN_UUID_SIZE] = "";
    enum rbac_decision d;
    int rv = api_check_path_id(req, r->noun, r->path);

    if (rv != 0) {
        return rv;
    }
    if (action == RBAC_READ) {
        rv = api_read_point(req);
        if (rv != 0) {
            return rv;
        }
    } else {
        rv = b->read_barrier(b->data, req->deadline_ms, errmsg, sizeof errmsg);
        if (rv != 0) {
            cairn_errmsg_wrap(errmsg, sizeof errmsg, "read %s %s", r->noun, req->path_id);
            return api_fail(req, rv, errmsg, NULL);
        }
    }
    rv = store_object_get(req->api->store, r->kind, req->path_id, o);
    if (rv != 0 && rv != CAIRN_ENOTFOUND) {
        return api_problem(req, 500, "internal", NULL, NULL, "read %s %s: %s", r->noun,
                           req->path_id, cairn_strerror(rv));
    }
    d = rv == 0 ? decide(req, r, action, o) : RBAC_HIDDEN;
    if (d == RBAC_ALLOW) {
        return 0;
    }
    if (rv == 0) {
        snprintf(scope, sizeof scope, "%s", o->tenant != NULL ? o->tenant : "");
        store_object_release(o);
    }
    if (d == RBAC_FORBIDDEN) {
        return api_forbidden(req, r->kind, req->path_id, scope[0] != '\0' ? scope : NULL,
                             "%s may not %s %s %s", rbac_role_name(req->who.role),
                             rbac_action_name(action), r->noun, req->path_id);
    }
    if (action != RBAC_READ) {
        api_audit_refusal(req, r->kind, req->path_id, NULL, CAIRN_ENOTFOUND, "not found: %s %s",
                          req->method, req->path);
    }
    return api_not_found(req, r->noun, req->path_id);
}

int api_resource_get(struct api_req *req)
{
    const struct api_resource *r = req->resource;
    struct store_object o;
    char headers[128];
    uint64_t revision;
    json_t *obj;
    int rc = api_resource_load(req, r, RBAC_READ, &o);

    if (rc != 0) {
        return rc;
    }
    revision = store_revision(req->api->store);
    obj = api_resource_json(req->api, r, &o);
    snprintf(headers, sizeof headers, "ETag: \"%llu\"\r\nX-Cairn-Revision: %llu\r\n",
             (unsigned long long)o.mod_rev, (unsigned long long)revision);
    store_object_release(&o);
    if (obj == NULL) {
        return api_problem(req, 500, "internal", NULL, NULL, "%s %s: unreadable stored body",
                           r->noun, req->path_id);
    }
    return api_reply_json(req, 200, obj, headers);
}

/* True if o's body matches every filter parameter of the request. */
static bool filters_match(struct api_req *req, const struct api_resource *r,
                          const struct store_object *o)
{
    json_t *body = NULL;
    bool ok = true;
    for (size_t i = 0; ok && r->filters != NULL && r->filters[i] != NULL; i++) {
        const char *want = api_param(req, r->filters[i]);
        const char *have;
        if (want == NULL) {
            continue;
        }
        if (body == NULL) {
            body = json_loadb(o->body, o->body_len, 0, NULL);
        }
        have = json_string_value(json_object_get(body, r->filters[i]));
        ok = have != NULL && strcmp(have, want) == 0;
    }
    json_decref(body);
    return ok;
}

int api_resource_list(struct api_req *req)
{
    const struct api_resource *r = req->resource;
    struct rbac_principal p = api_rbac_principal(req);
    const char *tenant = api_param(req, "tenant_id");
    const char *parent = r->parent_field != NULL ? api_param(req, r->parent_field) : NULL;
    struct store_query q;
    struct store_list list;
    const char *cursor;
    char last[ID_BUF] = "";
    char headers[128];
    json_t *items;
    uint64_t revision = 0;
    size_t limit;
    size_t scanned = 0;
    bool more = false;
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
    memset(&q, 0, sizeof q);
    q.kind = r->kind;
    q.tenant = tenant;
    q.now_ms = cairn_wall_ms();
    if (rbac_role_is_tenant(p.role) && r->scope_from != API_SCOPE_NONE) {
        /* A tenant user lists its own tenant's objects, whatever it asks. */
        if (tenant != NULL && strcmp(tenant, p.tenant) != 0) {
            goto answer;
        }
        q.tenant = p.tenant;
    }
    if (parent != NULL) {
        q.parent_kind = r->parent_kind;
        q.parent_id = parent;
    }
    if (cursor != NULL) {
        snprintf(last, sizeof last, "%s", cursor);
    }
    while (json_array_size(items) < limit && scanned < LIST_SCAN_MAX) {
        q.after = last[0] != '\0' ? last : NULL;
        q.limit = limit - json_array_size(items);
        rv = store_object_query(req->api->store, &q, &list);
        if (rv != 0) {
            break;
        }
        if (revision == 0) {
            revision = list.revision;
        }
        for (size_t i = 0; i < list.n && rv == 0; i++) {
            const struct store_object *o = &list.items[i];
            snprintf(last, sizeof last, "%s", o->id);
            scanned++;
            if (decide(req, r, RBAC_READ, o) != RBAC_ALLOW || !filters_match(req, r, o)) {
                continue;
            }
            json_t *obj = api_resource_json(req->api, r, o);
            rv = obj == NULL ? CAIRN_ENOMEM : json_array_append_new(items, obj);
        }
        more = list.more;
        store_list_release(&list);
        if (!more || rv != 0) {
            break;
        }
    }
answer:
    if (rv != 0) {
        json_decref(items);
        return api_problem(req, 500, "internal", NULL, NULL, "list %ss: %s", r->noun,
                           cairn_strerror(rv));
    }
    if (revision == 0) {
        revision = store_revision(req->api->store);
    }
    snprintf(headers, sizeof headers, "X-Cairn-Revision: %llu\r\n", (unsigned long long)revision);
    return api_reply_json(req, 200,
                          json_pack("{s:o, s:o, s:I}", "items", items, "next_cursor",
                                    more && last[0] != '\0' ? json_string(last) : json_null(),
                                    "revision", (json_int_t)revision),
                          headers);
}

void api_build_ref(struct api_build *b, enum store_kind kind, const char *id)
{
    if (b->n_refs < STORE_MAX_REFS) {
        snprintf(b->ref_ids[b->n_refs], sizeof b->ref_ids[0], "%s", id);
        b->refs[b->n_refs].kind = kind;
        b->refs[b->n_refs].id = b->ref_ids[b->n_refs];
        b->n_refs++;
    }
}

/* The tenant a create lands in, and the right to create there. For
 * API_SCOPE_PARENT the parent is read (the caller has a read point). */
static int create_scope(struct api_req *req, const struct api_resource *r, struct api_build *b)
{
    struct rbac_principal p = api_rbac_principal(req);
    const char *field = r->scope_from == API_SCOPE_PARENT ? r->parent_field : "tenant_id";
    const char *id = json_string_value(json_object_get(req->body, field));
    const char *parent_noun = r->scope_from == API_SCOPE_PARENT ? r->parent_noun : "tenant";
    enum rbac_decision d;
    struct store_object parent;
    int rv;

    if (r->scope_from == API_SCOPE_NONE) {
        d = rbac_decide(&p, RBAC_CREATE, r->kind, NULL);
    } else {
        if (id == NULL && r->scope_from == API_SCOPE_FIELD && p.tenant != NULL) {
            id = p.tenant; /* a tenant user's objects are its tenant's */
        }
        if (id == NULL) {
            return api_problem(req, 400, "missing-field", field, NULL,
                               "field \"%s\" is required: name the %s the %s belongs to", field,
                               parent_noun, r->noun);
        }
        rv = store_object_get(
            req->api->store, r->scope_from == API_SCOPE_PARENT ? r->parent_kind : STORE_KIND_TENANT,
            id, &parent);
        if (rv == 0) {
            snprintf(b->tenant, sizeof b->tenant, "%s",
                     r->scope_from == API_SCOPE_PARENT ? (parent.tenant ? parent.tenant : "")
                                                       : parent.id);
            store_object_release(&parent);
            d = b->tenant[0] != '\0' ? rbac_decide(&p, RBAC_CREATE, r->kind, b->tenant)
                                     : RBAC_HIDDEN;
        } else if (rv == CAIRN_ENOTFOUND) {
            d = RBAC_HIDDEN;
        } else {
            return api_problem(req, 500, "internal", NULL, NULL, "read %s %s: %s", parent_noun, id,
                               cairn_strerror(rv));
        }
        if (d == RBAC_HIDDEN) {
            /* Missing and hidden are one answer. */
            api_audit_refusal(req, r->kind, "-", NULL, CAIRN_ENOTFOUND, "no %s %s: %s %s",
                              parent_noun, id, req->method, req->path);
            return api_problem(req, 422, "invalid-reference", field, NULL, "no %s with id %s",
                               parent_noun, id);
        }
        b->parent_kind = r->scope_from == API_SCOPE_PARENT ? r->parent_kind : STORE_KIND_TENANT;
        snprintf(b->parent_id, sizeof b->parent_id, "%s", id);
        if (r->scope_from == API_SCOPE_FIELD) {
            json_object_del(b->stored, "tenant_id");
        }
    }
    if (d != RBAC_ALLOW) {
        return api_forbidden(req, r->kind, "-", b->tenant[0] != '\0' ? b->tenant : NULL,
                             "%s may not create %ss here", rbac_role_name(req->who.role), r->noun);
    }
    return 0;
}

static void build_free(struct api_build *b)
{
    json_decref(b->stored);
    b->stored = NULL;
}

/* Proposes the command of b. Returns 0 with *res filled or the status
 * answered. */
static int build_propose(struct api_req *req, const struct api_resource *r, enum store_op op,
                         const char *id, const struct api_build *b, uint64_t if_match,
                         const char *request_id, struct store_result *res)
{
    struct store_command cmd;
    char *body = json_dumps(b->stored, JSON_COMPACT | JSON_SORT_KEYS);
    int rc;

    if (body == NULL) {
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory");
    }
    api_command_init(req, &cmd, op, r->kind);
    cmd.id = id;
    cmd.name = b->name[0] != '\0' ? b->name : NULL;
    cmd.body = body;
    cmd.body_len = strlen(body);
    cmd.if_match = if_match;
    cmd.request_id = request_id;
    cmd.fingerprint = api_fingerprint(req->method, req->path, req->raw.data, req->raw.len);
    cmd.tenant = b->tenant[0] != '\0' ? b->tenant : NULL;
    cmd.parent_kind = b->parent_kind;
    cmd.parent_id = b->parent_id[0] != '\0' ? b->parent_id : NULL;
    memcpy(cmd.refs, b->refs, sizeof b->refs);
    cmd.n_refs = b->n_refs;
    rc = api_propose(req, &cmd, res);
    free(body);
    return rc;
}

int api_resource_create(struct api_req *req, const struct api_resource *r, struct store_result *res)
{
    const char *key = mg_get_header(req->conn, "Idempotency-Key");
    const struct api_backend *be = &req->api->backend;
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    char request_id[API_REQUEST_ID_SIZE];
    char id[CAIRN_UUID_SIZE];
    struct api_build b;
    struct api_error err;
    int rc;

    if (api_validate(r->schema, req->body, &err) != 0) {
        return api_error_send(req, &err);
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
    rc = be->read_barrier(be->data, req->deadline_ms, errmsg, sizeof errmsg);
    if (rc != 0) {
        cairn_errmsg_wrap(errmsg, sizeof errmsg, "create %s", r->noun);
        return api_fail(req, rc, errmsg, NULL);
    }
    memset(&b, 0, sizeof b);
    b.stored = json_deep_copy(req->body);
    if (b.stored == NULL) {
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory");
    }
    rc = create_scope(req, r, &b);
    if (rc == 0 && r->build != NULL && r->build(req->api, NULL, &b, &err) != 0) {
        rc = api_error_send(req, &err);
    }
    if (rc == 0 && req->dry_run != NULL) {
        *req->dry_run = b; /* checked, not proposed: the caller's now */
        return 0;
    }
    if (rc == 0) {
        cairn_uuid(id);
        rc = build_propose(req, r, STORE_OP_CREATE, id, &b, 0, request_id, res);
    }
    build_free(&b);
    if (rc == 0 && res->status != 0) {
        /* A parent or reference that vanished since the read. */
        if (res->status == CAIRN_ENOTFOUND) {
            return api_problem(req, 422, "invalid-reference", NULL, NULL, "%s", res->message);
        }
        return api_result_failed(req, res);
    }
    return rc;
}

int api_resource_created(struct api_req *req, const struct api_resource *r,
                         const struct store_result *res, int status, const char *extra_headers)
{
    char location[512];
    snprintf(location, sizeof location, "Location: %s/%s\r\n%s%s", r->path, res->id,
             res->replayed ? "Idempotent-Replayed: true\r\n" : "",
             extra_headers != NULL ? extra_headers : "");
    return api_answer_written(req, status, r->kind, api_object_json, res, location);
}

int api_resource_post(struct api_req *req)
{
    struct store_result res;
    int rc;
    req->written_from_leader = true; /* read back by api_resource_created only */
    rc = api_resource_create(req, req->resource, &res);
    return rc != 0 ? rc : api_resource_created(req, req->resource, &res, 201, NULL);
}

/* Checks that a replace does not try to move the object: a scope or parent
 * field in the body must name what the object has. */
static int fixed_fields(struct api_req *req, const struct api_resource *r,
                        const struct store_object *old, struct api_build *b)
{
    const char *field = r->scope_from == API_SCOPE_PARENT ? r->parent_field : "tenant_id";
    const char *have = r->scope_from == API_SCOPE_PARENT ? old->parent_id : old->tenant;
    const char *want;

    if (r->scope_from == API_SCOPE_NONE) {
        return 0;
    }
    want = json_string_value(json_object_get(req->body, field));
    if (want != NULL && (have == NULL || strcmp(want, have) != 0)) {
        return api_problem(req, 422, "immutable-field", field, NULL,
                           "the %s of a %s is fixed when it is created; create another %s", field,
                           r->noun, r->noun);
    }
    if (r->scope_from == API_SCOPE_PARENT && have != NULL) {
        json_object_set_new(b->stored, field, json_string(have));
    } else {
        json_object_del(b->stored, "tenant_id");
    }
    return 0;
}

int api_resource_update(struct api_req *req, const struct api_resource *r, enum rbac_action action,
                        const json_t *changes,
                        int (*change)(struct api_req *req, const struct store_object *old,
                                      struct api_build *b, void *arg),
                        void *arg, struct store_result *res)
{
    char request_id[API_REQUEST_ID_SIZE];
    struct store_object old;
    struct api_build b;
    uint64_t if_match;
    int rc = api_if_match(req, &if_match);

    for (int attempt = 0; rc == 0 && attempt < WRITE_ATTEMPTS; attempt++) {
        rc = api_resource_load(req, r, action, &old);
        if (rc != 0) {
            return rc;
        }
        memset(&b, 0, sizeof b);
        b.stored =
            changes != NULL ? json_deep_copy(changes) : json_loadb(old.body, old.body_len, 0, NULL);
        if (b.stored == NULL) {
            rc = api_problem(req, 500, "internal", NULL, NULL, "out of memory");
        } else {
            rc = changes != NULL ? fixed_fields(req, r, &old, &b) : 0;
            snprintf(b.tenant, sizeof b.tenant, "%s", old.tenant != NULL ? old.tenant : "");
            snprintf(b.name, sizeof b.name, "%s", old.name != NULL ? old.name : "");
        }
        if (rc == 0) {
            rc = change(req, &old, &b, arg);
        }
        if (rc == 0 && req->dry_run != NULL && if_match != 0 && if_match != old.mod_rev) {
            rc = api_problem(req, 412, "precondition-failed", NULL, NULL,
                             "%s %s is at revision %llu, not %llu", r->noun, old.id,
                             (unsigned long long)old.mod_rev, (unsigned long long)if_match);
        }
        if (rc == 0 && req->dry_run != NULL) {
            *req->dry_run = b; /* checked, not proposed: the caller's now */
            store_object_release(&old);
            return 0;
        }
        if (rc == 0) {
            api_request_id_fresh(request_id);
            /* Pinned to what the checks saw, unless the client pinned it. */
            rc = build_propose(req, r, STORE_OP_UPDATE, old.id, &b,
                               if_match != 0 ? if_match : old.mod_rev, request_id, res);
        }
        build_free(&b);
        store_object_release(&old);
        if (rc == 0 && res->status == CAIRN_EPRECONDITION && if_match == 0) {
            continue; /* changed since our read: read and check again */
        }
        if (rc == 0 && res->status != 0) {
            return api_result_failed(req, res);
        }
        return rc;
    }
    return rc != 0 ? rc : api_result_failed(req, res);
}

/* The build hook as an update's change. */
static int change_by_build(struct api_req *req, const struct store_object *old, struct api_build *b,
                           void *arg)
{
    const struct api_resource *r = arg;
    struct api_error err;
    if (r->build != NULL && r->build(req->api, old, b, &err) != 0) {
        return api_error_send(req, &err);
    }
    return 0;
}

int api_resource_replace(struct api_req *req, const struct api_resource *r,
                         struct store_result *res)
{
    struct api_error err;
    if (api_validate(r->schema, req->body, &err) != 0) {
        return api_error_send(req, &err);
    }
    return api_resource_update(req, r, RBAC_UPDATE, req->body, change_by_build, (void *)r, res);
}

int api_resource_put(struct api_req *req)
{
    struct store_result res;
    int rc;
    req->written_from_leader = true; /* read back by api_answer_written only */
    rc = api_resource_replace(req, req->resource, &res);
    return rc != 0 ? rc
                   : api_answer_written(req, 200, req->resource->kind, api_object_json, &res, NULL);
}

int api_resource_remove(struct api_req *req, const struct api_resource *r, struct store_result *res)
{
    char request_id[API_REQUEST_ID_SIZE];
    struct store_command cmd;
    struct store_object old;
    uint64_t if_match;
    bool cascade = false;
    int rc = api_if_match(req, &if_match);

    if (rc == 0 && r->cascade) {
        rc = api_bool_param(req, "cascade", &cascade);
    }
    for (int attempt = 0; rc == 0 && attempt < WRITE_ATTEMPTS; attempt++) {
        rc = api_resource_load(req, r, RBAC_DELETE, &old);
        if (rc != 0) {
            return rc;
        }
        if (r->deletable != NULL) {
            rc = r->deletable(req, &old);
        }
        if (rc == 0) {
            api_request_id_fresh(request_id);
            api_command_init(req, &cmd, STORE_OP_DELETE, r->kind);
            cmd.id = old.id;
            cmd.if_match = if_match != 0 ? if_match : old.mod_rev;
            cmd.request_id = request_id;
            cmd.fingerprint =
                api_fingerprint(req->method, req->path, cascade ? "cascade" : "", cascade ? 7 : 0);
            cmd.tenant = old.tenant;
            cmd.cascade = cascade;
            rc = api_propose(req, &cmd, res);
        }
        store_object_release(&old);
        if (rc == 0 && res->status == CAIRN_EPRECONDITION && if_match == 0) {
            continue;
        }
        if (rc == 0 && res->status != 0) {
            return api_result_failed(req, res);
        }
        return rc;
    }
    return rc != 0 ? rc : api_result_failed(req, res);
}

int api_resource_delete(struct api_req *req)
{
    struct store_result res;
    char headers[128];
    int rc = api_resource_remove(req, req->resource, &res);
    if (rc != 0) {
        return rc;
    }
    snprintf(headers, sizeof headers, "X-Cairn-Revision: %llu\r\n",
             (unsigned long long)res.revision);
    http_reply(req->conn, 204, NULL, headers, NULL, 0);
    return 204;
}
