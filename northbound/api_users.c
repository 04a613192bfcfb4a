/*
 * The users resource: /api/v1/users (list, create) and /api/v1/users/{id}
 * (read, replace, delete), and the bootstrap of the first SP administrator.
 *
 * A user is a store object of kind STORE_KIND_USER: a server-assigned uuid,
 * its user name as the store's unique name (so names are unique
 * cluster-wide, decided in apply), and a body with the validated fields
 * plus "password_hash", the argon2id hash of its password. The hash is
 * made on the HTTP worker before proposing; no table lists it, so no
 * answer, list or error ever carries it. A tenant user (tenant_admin,
 * tenant_operator) is scoped to its tenant, is a child of it (deleting the
 * tenant needs ?cascade=true while it has users) and references it (so it
 * must exist when the user is written). A user's sessions are its
 * children: deleting a user deletes them, which logs it out everywhere.
 *
 * Rules beyond the field table: tenant roles need a tenant_id, SP roles
 * must not have one; a user's tenant_id never changes (create another
 * user instead); a PUT without "password" keeps the current one.
 *
 * Access (rbac.c): SP admins manage every user; tenant admins manage the
 * users of their own tenant, with tenant roles only; operators read. What
 * a caller may not see answers exactly like a missing user (404).
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>
#include <sodium.h>

#define USERS_PATH "/api/v1/users"

/* How often a PUT or DELETE without If-Match is retried when the user
 * changed between the read its access check used and the commit. */
#define WRITE_ATTEMPTS 3

/* The caller of commands that no user asked for. */
#define BOOTSTRAP_CALLER "system:bootstrap"

int api_user_fields(const struct store_object *o, json_t **doc, struct api_user_fields *out)
{
    json_t *body = json_loadb(o->body, o->body_len, 0, NULL);
    const char *role = json_string_value(json_object_get(body, "role"));
    const char *tenant = json_string_value(json_object_get(body, "tenant_id"));
    const char *username = json_string_value(json_object_get(body, "username"));

    memset(out, 0, sizeof *out);
    if (body == NULL || role == NULL || username == NULL ||
        rbac_role_parse(role, &out->role) != 0 ||
        (tenant != NULL && strlen(tenant) >= sizeof out->tenant)) {
        json_decref(body);
        return CAIRN_EMALFORMED;
    }
    snprintf(out->tenant, sizeof out->tenant, "%s", tenant != NULL ? tenant : "");
    out->disabled = json_is_true(json_object_get(body, "disabled"));
    out->password_hash = json_string_value(json_object_get(body, "password_hash"));
    out->username = username;
    *doc = body;
    return 0;
}

json_t *api_user_json(struct api *api, const struct store_object *o)
{
    json_t *body = json_loadb(o->body, o->body_len, 0, NULL);
    json_t *fields;
    json_t *out;

    (void)api; /* tenants and users show no server fields */

    if (body == NULL) {
        return NULL;
    }
    fields = api_schema_project(&api_user_schema, body);
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

/* The stored body: the fields as sent without the password, "disabled"
 * always present, and the hash. Compact JSON with sorted keys. */
static char *stored_body(const json_t *fields, const char *password_hash)
{
    json_t *body = json_deep_copy(fields);
    char *text = NULL;
    if (body != NULL) {
        json_object_del(body, "password");
        if (json_object_get(body, "disabled") == NULL) {
            json_object_set_new(body, "disabled", json_false());
        }
        if (json_object_set_new(body, "password_hash", json_string(password_hash)) == 0) {
            text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        }
        json_decref(body);
    }
    return text;
}

int api_user_command(struct store_command *cmd, const char *id, const json_t *fields,
                     const char *password_hash, char **body_out)
{
    const char *tenant = json_string_value(json_object_get(fields, "tenant_id"));
    char *body = stored_body(fields, password_hash);
    if (body == NULL) {
        return CAIRN_ENOMEM;
    }
    cmd->kind = STORE_KIND_USER;
    cmd->id = id;
    cmd->name = json_string_value(json_object_get(fields, "username"));
    cmd->body = body;
    cmd->body_len = strlen(body);
    cmd->tenant = tenant;
    if (tenant != NULL) {
        cmd->parent_kind = STORE_KIND_TENANT;
        cmd->parent_id = tenant;
        cmd->refs[0].kind = STORE_KIND_TENANT;
        cmd->refs[0].id = tenant;
        cmd->n_refs = 1;
    }
    *body_out = body;
    return 0;
}

/* The fingerprint of a user write: the request without its password, so
 * that no fast hash of a password is ever stored. */
static uint64_t fingerprint(const struct api_req *req)
{
    json_t *copy = json_deep_copy(req->body);
    char *text;
    uint64_t h;
    json_object_del(copy, "password");
    text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    h = api_fingerprint(req->method, req->path, text != NULL ? text : "",
                        text != NULL ? strlen(text) : 0);
    free(text);
    json_decref(copy);
    return h;
}

/* Tenant roles need a tenant, SP roles must not have one. */
static int check_role_tenant(const json_t *body, struct api_error *err)
{
    const char *role_name = json_string_value(json_object_get(body, "role"));
    bool has_tenant = json_object_get(body, "tenant_id") != NULL;
    enum rbac_role role;

    if (rbac_role_parse(role_name, &role) != 0) {
        return api_error_set(err, 422, "invalid-field", "role", "unknown role");
    }
    if (rbac_role_is_tenant(role) && !has_tenant) {
        return api_error_set(err, 422, "invalid-field", "tenant_id",
                             "field \"tenant_id\" is required for role %s: name the tenant "
                             "the user belongs to",
                             role_name);
    }
    if (!rbac_role_is_tenant(role) && has_tenant) {
        return api_error_set(err, 422, "invalid-field", "tenant_id",
                             "field \"tenant_id\" must be left out for role %s, which belongs "
                             "to the service provider",
                             role_name);
    }
    return 0;
}

/* The 422 of a user in a tenant that does not exist, or that the caller
 * may not see: one answer for both. */
static int no_such_tenant(struct api_req *req, const char *tenant)
{
    return api_problem(req, 422, "invalid-field", "tenant_id", NULL,
                       "field \"tenant_id\": no tenant with id %s", tenant);
}

/* The user's halves of the shared helpers. */
static int check_path_id(struct api_req *req)
{
    return api_check_path_id(req, "user", USERS_PATH);
}

static int answer_written(struct api_req *req, int status, const struct store_result *res,
                          const char *extra_headers)
{
    return api_answer_written(req, status, STORE_KIND_USER, api_user_json, res, extra_headers);
}

/* Hashes the body's password on this worker; returns 0 or the status
 * answered. */
static int hash_password(struct api_req *req, char hash[API_PASSWORD_HASH_SIZE])
{
    const json_t *pw = json_object_get(req->body, "password");
    int rv = api_kdf_hash(req->api, json_string_value(pw), json_string_length(pw), req->deadline_ms,
                          hash);
    if (rv == CAIRN_ETIMEDOUT) {
        return api_fail(req, rv, "no turn to hash the password in time; retry", NULL);
    }
    if (rv != 0) {
        return api_problem(req, 500, "internal", NULL, NULL, "hash the password: %s",
                           cairn_strerror(rv));
    }
    return 0;
}

int api_users_create(struct api_req *req)
{
    const char *key = mg_get_header(req->conn, "Idempotency-Key");
    struct rbac_principal p = api_rbac_principal(req);
    char request_id[API_REQUEST_ID_SIZE];
    char id[CAIRN_UUID_SIZE];
    char hash[API_PASSWORD_HASH_SIZE];
    char location[256];
    struct store_command cmd;
    struct store_result res;
    struct api_error err;
    const char *tenant;
    char *body = NULL;
    int rc;

    /* Only who may create some user learns anything about the body. */
    rc = api_authorize(req, RBAC_CREATE, STORE_KIND_USER, p.tenant, "user", "-");
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
    if (api_validate(&api_user_schema, req->body, &err) != 0) {
        return api_error_send(req, &err);
    }
    if (json_object_get(req->body, "password") == NULL) {
        return api_problem(req, 400, "missing-field", "password", NULL,
                           "field \"password\" is required to create a user");
    }
    if (check_role_tenant(req->body, &err) != 0) {
        return api_error_send(req, &err);
    }
    tenant = json_string_value(json_object_get(req->body, "tenant_id"));
    switch (rbac_decide(&p, RBAC_CREATE, STORE_KIND_USER, tenant)) {
        case RBAC_ALLOW:
            break;
        case RBAC_FORBIDDEN:
            return api_forbidden(req, STORE_KIND_USER, "-", tenant,
                                 "role %s may create only users of its own tenant, with "
                                 "tenant roles",
                                 rbac_role_name(p.role));
        case RBAC_HIDDEN:
            api_audit_refusal(req, STORE_KIND_USER, "-", tenant, CAIRN_ENOTFOUND,
                              "hidden: %s %s: tenant %s not visible to role %s", req->method,
                              req->path, tenant, rbac_role_name(p.role));
            return no_such_tenant(req, tenant);
    }
    rc = hash_password(req, hash);
    if (rc != 0) {
        return rc;
    }
    cairn_uuid(id);
    api_command_init(req, &cmd, STORE_OP_CREATE, STORE_KIND_USER);
    if (api_user_command(&cmd, id, req->body, hash, &body) != 0) {
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory");
    }
    cmd.request_id = request_id;
    cmd.fingerprint = fingerprint(req);
    rc = api_propose(req, &cmd, &res);
    sodium_memzero(body, strlen(body));
    free(body);
    if (rc != 0) {
        return rc;
    }
    if (res.status == CAIRN_ENOTFOUND && tenant != NULL) {
        return no_such_tenant(req, tenant);
    }
    if (res.status != 0) {
        return api_result_failed(req, &res);
    }
    snprintf(location, sizeof location, "Location: " USERS_PATH "/%s\r\n%s", res.id,
             res.replayed ? "Idempotent-Replayed: true\r\n" : "");
    return answer_written(req, 201, &res, location);
}

/* The user of the path as it is now (linearizable), checked for action.
 * Returns 0 with *o and *f filled (free *doc and release *o), or the
 * status answered: 404 if it is missing or hidden (a write is audited),
 * 403 if forbidden. */
static int load_for(struct api_req *req, enum rbac_action action, struct store_object *o,
                    json_t **doc, struct api_user_fields *f)
{
    const struct api_backend *b = &req->api->backend;
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    int rv;

    rv = b->read_barrier(b->data, req->deadline_ms, errmsg, sizeof errmsg);
    if (rv != 0) {
        cairn_errmsg_wrap(errmsg, sizeof errmsg, "read user %s", req->path_id);
        return api_fail(req, rv, errmsg, NULL);
    }
    rv = store_object_get(req->api->store, STORE_KIND_USER, req->path_id, o);
    if (rv == CAIRN_ENOTFOUND) {
        api_audit_refusal(req, STORE_KIND_USER, req->path_id, NULL, CAIRN_ENOTFOUND,
                          "not found: %s %s", req->method, req->path);
        return api_not_found(req, "user", req->path_id);
    }
    if (rv != 0) {
        return api_problem(req, 500, "internal", NULL, NULL, "read user %s: %s", req->path_id,
                           cairn_strerror(rv));
    }
    if (api_user_fields(o, doc, f) != 0) {
        store_object_release(o);
        return api_problem(req, 500, "internal", NULL, NULL, "user %s: unreadable stored body",
                           req->path_id);
    }
    rv = api_authorize(req, action, STORE_KIND_USER, f->tenant[0] != '\0' ? f->tenant : NULL,
                       "user", req->path_id);
    if (rv != 0) {
        json_decref(*doc);
        store_object_release(o);
    }
    return rv;
}

/* Proposes the update of user id to fields with password hash, pinned to
 * if_match. Returns 0 with *res filled, or the status answered. */
static int propose_update(struct api_req *req, const char *id, const json_t *fields,
                          const char *hash, uint64_t if_match, uint64_t fp,
                          struct store_result *res)
{
    char request_id[API_REQUEST_ID_SIZE];
    struct store_command cmd;
    char *body = NULL;
    int rc;

    api_request_id_fresh(request_id);
    api_command_init(req, &cmd, STORE_OP_UPDATE, STORE_KIND_USER);
    if (api_user_command(&cmd, id, fields, hash, &body) != 0) {
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory");
    }
    cmd.if_match = if_match;
    cmd.request_id = request_id;
    cmd.fingerprint = fp;
    rc = api_propose(req, &cmd, res);
    sodium_memzero(body, strlen(body));
    free(body);
    return rc;
}

/* One attempt at a PUT: reads, checks, proposes. Returns 0 with *res
 * filled, or the status answered. */
static int replace_once(struct api_req *req, uint64_t if_match, struct store_result *res)
{
    char hash[API_PASSWORD_HASH_SIZE];
    struct api_user_fields f;
    struct store_object o;
    struct api_error err;
    const char *tenant;
    json_t *doc = NULL;
    int rc;

    rc = load_for(req, RBAC_UPDATE, &o, &doc, &f);
    if (rc != 0) {
        return rc;
    }
    rc = -1;
    tenant = json_string_value(json_object_get(req->body, "tenant_id"));
    if (api_validate(&api_user_schema, req->body, &err) != 0 ||
        check_role_tenant(req->body, &err) != 0) {
        rc = api_error_send(req, &err);
    } else if (strcmp(tenant != NULL ? tenant : "", f.tenant) != 0) {
        rc = api_problem(req, 422, "invalid-field", "tenant_id", NULL,
                         "a user's tenant_id cannot change (it is %s); create another user",
                         f.tenant[0] != '\0' ? f.tenant : "absent");
    } else if (json_object_get(req->body, "password") != NULL) {
        rc = hash_password(req, hash);
    } else if (f.password_hash != NULL && strlen(f.password_hash) < sizeof hash) {
        snprintf(hash, sizeof hash, "%s", f.password_hash);
        rc = 0;
    } else {
        rc = api_problem(req, 500, "internal", NULL, NULL, "user %s has no password hash",
                         req->path_id);
    }
    if (rc == 0) {
        /* Pinned to what the access check saw, unless the client pinned
         * it itself. */
        rc = propose_update(req, req->path_id, req->body, hash,
                            if_match != 0 ? if_match : o.mod_rev, fingerprint(req), res);
    }
    sodium_memzero(hash, sizeof hash);
    json_decref(doc);
    store_object_release(&o);
    return rc;
}

int api_user_replace(struct api_req *req)
{
    struct store_result res;
    uint64_t if_match;
    int rc = check_path_id(req);

    if (rc == 0) {
        rc = api_if_match(req, &if_match);
    }
    for (int attempt = 0; rc == 0 && attempt < WRITE_ATTEMPTS; attempt++) {
        rc = replace_once(req, if_match, &res);
        if (rc == 0 && res.status == CAIRN_EPRECONDITION && if_match == 0 &&
            attempt + 1 < WRITE_ATTEMPTS) {
            continue; /* changed since our read: read again */
        }
        if (rc != 0) {
            return rc;
        }
        if (res.status != 0) {
            return api_result_failed(req, &res);
        }
        return answer_written(req, 200, &res, NULL);
    }
    return rc;
}

static int delete_once(struct api_req *req, uint64_t if_match, struct store_result *res)
{
    char request_id[API_REQUEST_ID_SIZE];
    struct api_user_fields f;
    struct store_command cmd;
    struct store_object o;
    json_t *doc = NULL;
    int rc = load_for(req, RBAC_DELETE, &o, &doc, &f);

    if (rc != 0) {
        return rc;
    }
    api_request_id_fresh(request_id);
    api_command_init(req, &cmd, STORE_OP_DELETE, STORE_KIND_USER);
    cmd.id = req->path_id;
    cmd.if_match = if_match != 0 ? if_match : o.mod_rev;
    cmd.request_id = request_id;
    cmd.fingerprint = api_fingerprint(req->method, req->path, NULL, 0);
    cmd.tenant = f.tenant[0] != '\0' ? f.tenant : NULL;
    cmd.cascade = true; /* its sessions: a deleted user is logged out */
    rc = api_propose(req, &cmd, res);
    json_decref(doc);
    store_object_release(&o);
    return rc;
}

int api_user_delete(struct api_req *req)
{
    struct store_result res;
    char headers[128];
    uint64_t if_match;
    int rc = check_path_id(req);

    if (rc == 0) {
        rc = api_if_match(req, &if_match);
    }
    for (int attempt = 0; rc == 0 && attempt < WRITE_ATTEMPTS; attempt++) {
        rc = delete_once(req, if_match, &res);
        if (rc == 0 && res.status == CAIRN_EPRECONDITION && if_match == 0 &&
            attempt + 1 < WRITE_ATTEMPTS) {
            continue;
        }
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
    return rc;
}

int api_user_get(struct api_req *req)
{
    struct api_user_fields f;
    struct store_object o;
    char headers[128];
    uint64_t revision;
    json_t *doc = NULL;
    json_t *obj;
    int rc = check_path_id(req);

    if (rc == 0) {
        rc = api_read_point(req);
    }
    if (rc != 0) {
        return rc;
    }
    rc = store_object_get(req->api->store, STORE_KIND_USER, req->path_id, &o);
    if (rc == CAIRN_ENOTFOUND) {
        return api_not_found(req, "user", req->path_id);
    }
    if (rc != 0) {
        return api_problem(req, 500, "internal", NULL, NULL, "read user %s: %s", req->path_id,
                           cairn_strerror(rc));
    }
    revision = store_revision(req->api->store);
    if (api_user_fields(&o, &doc, &f) != 0) {
        store_object_release(&o);
        return api_problem(req, 500, "internal", NULL, NULL, "user %s: unreadable stored body",
                           req->path_id);
    }
    rc = api_authorize(req, RBAC_READ, STORE_KIND_USER, f.tenant[0] != '\0' ? f.tenant : NULL,
                       "user", req->path_id);
    json_decref(doc);
    if (rc != 0) {
        store_object_release(&o);
        return rc;
    }
    obj = api_user_json(req->api, &o);
    snprintf(headers, sizeof headers, "ETag: \"%llu\"\r\nX-Cairn-Revision: %llu\r\n",
             (unsigned long long)o.mod_rev, (unsigned long long)revision);
    store_object_release(&o);
    return api_reply_json(req, 200, obj, headers);
}

/* The page of a name-filtered list: the one user of that name, if the
 * caller may see it, it is in the tenant filter and after the cursor. */
static int list_by_name(struct api_req *req, const char *name, const char *tenant,
                        const char *cursor, json_t *items)
{
    struct store_object o;
    char *id = NULL;
    int rv = store_name_lookup(req->api->store, STORE_KIND_USER, name, &id);

    if (rv == 0 && (cursor == NULL || strcmp(id, cursor) > 0)) {
        rv = store_object_get(req->api->store, STORE_KIND_USER, id, &o);
        if (rv == 0) {
            if (tenant == NULL || (o.tenant != NULL && strcmp(o.tenant, tenant) == 0)) {
                json_t *obj = api_user_json(req->api, &o);
                rv = obj == NULL ? CAIRN_ENOMEM : json_array_append_new(items, obj);
            }
            store_object_release(&o);
        }
    }
    free(id);
    return rv == CAIRN_ENOTFOUND ? 0 : rv;
}

int api_users_list(struct api_req *req)
{
    struct rbac_principal p = api_rbac_principal(req);
    const char *name = api_param(req, "name");
    const char *tenant = api_param(req, "tenant_id");
    struct store_query q;
    struct store_list list;
    const char *cursor;
    char headers[128];
    json_t *items;
    json_t *next = NULL;
    uint64_t revision = 0;
    bool empty = false;
    size_t limit;
    int rv;

    rv = api_list_params(req, &limit, &cursor);
    if (rv == 0 && tenant != NULL && !cairn_uuid_valid(tenant)) {
        rv = api_problem(req, 400, "invalid-parameter", "tenant_id", NULL,
                         "tenant_id must be a tenant's lower-case uuid");
    }
    if (rv == 0) {
        rv = api_read_point(req);
    }
    if (rv != 0) {
        return rv;
    }
    /* A tenant user sees its own tenant's users, whatever it asks for. */
    if (rbac_role_is_tenant(p.role)) {
        empty = tenant != NULL && strcmp(tenant, p.tenant) != 0;
        tenant = p.tenant;
    }
    items = json_array();
    if (items == NULL) {
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory");
    }
    if (empty) {
        revision = store_revision(req->api->store);
    } else if (name != NULL) {
        rv = list_by_name(req, name, tenant, cursor, items);
        revision = store_revision(req->api->store);
    } else {
        memset(&q, 0, sizeof q);
        q.kind = STORE_KIND_USER;
        q.tenant = tenant;
        q.after = cursor;
        q.limit = limit;
        q.now_ms = cairn_wall_ms();
        rv = store_object_query(req->api->store, &q, &list);
        if (rv == 0) {
            rv = api_list_render(req->api, &list, api_user_json, items, &next);
            revision = list.revision;
            store_list_release(&list);
        }
    }
    if (rv != 0) {
        json_decref(items);
        json_decref(next);
        return api_problem(req, 500, "internal", NULL, NULL, "list users: %s", cairn_strerror(rv));
    }
    snprintf(headers, sizeof headers, "X-Cairn-Revision: %llu\r\n", (unsigned long long)revision);
    return api_reply_json(
        req, 200,
        json_pack("{s:o, s:o, s:I}", "items", items, "next_cursor",
                  next != NULL ? next : json_null(), "revision", (json_int_t)revision),
        headers);
}

/* --- the first administrator ----------------------------------------------- */

int api_admin_bootstrap(struct api *api, const char *username, const char *password,
                        size_t password_len, uint64_t deadline_ms, char *errmsg, size_t errmsg_size)
{
    const struct api_backend *b = &api->backend;
    char request_id[API_REQUEST_ID_SIZE];
    char hash[API_PASSWORD_HASH_SIZE];
    char id[CAIRN_UUID_SIZE];
    char why[256];
    struct store_command cmd;
    struct store_result res;
    char *existing = NULL;
    char *body = NULL;
    json_t *fields;
    int rv;

    if (strlen(username) > API_USERNAME_MAX ||
        !api_format_username(username, strlen(username), why, sizeof why)) {
        cairn_errmsg_set(errmsg, errmsg_size, "admin user \"%s\": 1 to %d bytes that %s", username,
                         API_USERNAME_MAX, why);
        return CAIRN_EINVAL;
    }
    if (password_len < API_PASSWORD_MIN || password_len > API_PASSWORD_MAX) {
        cairn_errmsg_set(errmsg, errmsg_size, "admin password: must be %d to %d bytes, not %zu",
                         API_PASSWORD_MIN, API_PASSWORD_MAX, password_len);
        return CAIRN_EINVAL;
    }
    rv = b->read_barrier(b->data, deadline_ms, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    rv = store_name_lookup(api->store, STORE_KIND_USER, username, &existing);
    free(existing);
    if (rv == 0) {
        return 0;
    }
    if (rv != CAIRN_ENOTFOUND) {
        cairn_errmsg_set(errmsg, errmsg_size, "look up user %s: %s", username, cairn_strerror(rv));
        return rv;
    }
    rv = api_kdf_hash(api, password, password_len, deadline_ms, hash);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "hash the admin password: %s", cairn_strerror(rv));
        return rv;
    }
    fields = json_pack("{s:s, s:s}", "username", username, "role", "sp_admin");
    memset(&cmd, 0, sizeof cmd);
    cmd.version = STORE_COMMAND_VERSION;
    cmd.op = STORE_OP_CREATE;
    cmd.time_ms = cairn_wall_ms();
    cmd.caller = BOOTSTRAP_CALLER;
    cairn_uuid(id);
    if (fields == NULL || api_user_command(&cmd, id, fields, hash, &body) != 0) {
        json_decref(fields);
        cairn_errmsg_set(errmsg, errmsg_size, "out of memory");
        return CAIRN_ENOMEM;
    }
    /* The same request id and fingerprint on every node: whichever node
     * commits first creates the user, the others get its outcome. */
    snprintf(request_id, sizeof request_id, "bootstrap-admin:%s", username);
    cmd.request_id = request_id;
    cmd.fingerprint = api_fnv1a(API_FNV_OFFSET, request_id, strlen(request_id));
    rv = api_propose_quiet(api, &cmd, deadline_ms, &res, errmsg, errmsg_size);
    sodium_memzero(body, strlen(body));
    sodium_memzero(hash, sizeof hash);
    free(body);
    json_decref(fields);
    if (rv == 0 && res.status != 0 && res.status != CAIRN_EEXIST) {
        cairn_errmsg_set(errmsg, errmsg_size, "create user %s: %s", username, res.message);
        rv = res.status;
    }
    return rv;
}

/* Ends every session of user_id but keep (best effort: a failure leaves a
 * session to expire by itself, and is logged). */
static void sessions_end(struct api_req *req, const char *user_id, const char *keep)
{
    char after[API_SESSION_ID_SIZE] = "";
    struct store_query q;
    struct store_list list;

    memset(&q, 0, sizeof q);
    q.kind = STORE_KIND_SESSION;
    q.parent_kind = STORE_KIND_USER;
    q.parent_id = user_id;
    q.limit = 100;
    q.now_ms = cairn_wall_ms();
    for (int page = 0; page < 100; page++) {
        q.after = after[0] != '\0' ? after : NULL;
        if (store_object_query(req->api->store, &q, &list) != 0) {
            return;
        }
        for (size_t i = 0; i < list.n; i++) {
            char request_id[API_REQUEST_ID_SIZE];
            char errmsg[CAIRN_ERRMSG_SIZE] = "";
            struct store_command cmd;
            struct store_result res;
            const char *sid = list.items[i].id;
            snprintf(after, sizeof after, "%s", sid);
            if (strcmp(sid, keep) == 0) {
                continue;
            }
            api_request_id_fresh(request_id);
            api_command_init(req, &cmd, STORE_OP_DELETE, STORE_KIND_SESSION);
            cmd.id = sid;
            cmd.request_id = request_id;
            cmd.fingerprint = api_fingerprint(req->method, req->path, sid, strlen(sid));
            cmd.tenant = list.items[i].tenant;
            if (api_propose_quiet(req->api, &cmd, req->deadline_ms, &res, errmsg, sizeof errmsg) !=
                0) {
                CAIRN_WARN("msg=\"session not ended\" user=%s error=\"%s\"", req->who.username,
                           errmsg);
            }
        }
        bool more = list.more;
        store_list_release(&list);
        if (!more) {
            return;
        }
    }
}

/* One attempt: verify the current password, write the new hash pinned to
 * the user as read. */
static int password_once(struct api_req *req, struct store_result *res)
{
    const json_t *cur = json_object_get(req->body, "current_password");
    const json_t *new_pw = json_object_get(req->body, "new_password");
    char hash[API_PASSWORD_HASH_SIZE];
    struct api_user_fields f;
    struct store_object o;
    json_t *doc = NULL;
    int rc = api_read_point(req);

    if (rc != 0) {
        return rc;
    }
    if (store_object_get(req->api->store, STORE_KIND_USER, req->who.user_id, &o) != 0) {
        return api_problem(req, 401, "unauthorized", NULL, NULL, "log in again");
    }
    if (api_user_fields(&o, &doc, &f) != 0 || f.password_hash == NULL) {
        store_object_release(&o);
        return api_problem(req, 500, "internal", NULL, NULL, "user %s: unreadable stored body",
                           o.id);
    }
    rc = api_kdf_verify(req->api, f.password_hash, json_string_value(cur), json_string_length(cur),
                        req->deadline_ms);
    if (rc == CAIRN_ENOTFOUND) {
        char key[300];
        snprintf(key, sizeof key, "u:%s", f.username);
        api_throttle_fail(req->api->throttle, key, cairn_now_ms());
        rc = api_problem(req, 422, "invalid-field", "current_password", NULL,
                         "the current password is wrong");
    } else if (rc != 0) {
        rc = api_fail(req, rc, "no turn to check the password in time; retry", NULL);
    } else {
        rc = api_kdf_hash(req->api, json_string_value(new_pw), json_string_length(new_pw),
                          req->deadline_ms, hash);
        if (rc != 0) {
            rc = api_fail(req, rc, "no turn to hash the password in time; retry", NULL);
        }
    }
    if (rc == 0) {
        json_object_del(doc, "password_hash");
        rc = propose_update(req, o.id, doc, hash, o.mod_rev,
                            api_fingerprint(req->method, req->path, NULL, 0), res);
    }
    sodium_memzero(hash, sizeof hash);
    json_decref(doc);
    store_object_release(&o);
    return rc;
}

int api_auth_password(struct api_req *req)
{
    struct store_result res;
    struct api_error err;
    char key[300];
    unsigned wait;
    int rc;

    if (api_validate(&api_password_change_schema, req->body, &err) != 0) {
        return api_error_send(req, &err);
    }
    snprintf(key, sizeof key, "u:%s", req->who.username);
    wait = api_throttle_wait(req->api->throttle, key, cairn_now_ms());
    if (wait > 0) {
        char retry[64];
        snprintf(retry, sizeof retry, "Retry-After: %u\r\n", wait);
        return api_problem(req, 429, "too-many-requests", NULL, retry,
                           "too many wrong passwords for this user; try again in %u s", wait);
    }
    for (int attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
        rc = password_once(req, &res);
        if (rc == 0 && res.status == CAIRN_EPRECONDITION && attempt + 1 < WRITE_ATTEMPTS) {
            continue; /* the user changed since our read */
        }
        if (rc != 0) {
            return rc;
        }
        if (res.status != 0) {
            return api_result_failed(req, &res);
        }
        break;
    }
    sessions_end(req, req->who.user_id, req->who.session_id);
    CAIRN_INFO("msg=\"password changed\" user=%s", req->who.username);
    http_reply(req->conn, 204, NULL, NULL, NULL, 0);
    return 204;
}
