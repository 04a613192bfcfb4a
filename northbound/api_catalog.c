/*
 * The service catalog: service templates (/api/v1/templates), written by
 * the provider's administrators, read by everyone they are offered to.
 *
 * A template is a name, a version (MAJOR.MINOR.PATCH; name@version is
 * unique), a type (which renderer realizes its services on devices) and a
 * parameter schema: what a service of it must or may say, typed. It is
 * created as a draft, changed freely, and published with POST
 * .../publish; from then on it is immutable (a change is a new version)
 * and cannot be deleted, so a service's template never changes or
 * vanishes under it. Both rules hold against concurrent requests because
 * every write is pinned to the revision its check read.
 *
 * Availability: a published template is offered to every tenant if it is
 * "public", else to the tenants whose allowed_templates name it. Tenant
 * users see only the published templates offered to them; any other
 * answers as missing.
 *
 * The parameter schema: {"NAME": {"type": T, "required": bool, "default":
 * V, "description": S, "min": N, "max": N, "enum": [S...]}}, where T is
 * string, integer, boolean, ipv4, ipv4-prefix, port, string-list, list
 * (an array of anything, such as firewall rules) or object. api_template_params_check validates a
 * service's parameters against it and fills in defaults.
 */
#include "api_int.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Most parameters one template declares. */
#define PARAMS_MAX 64

static const char *const param_types[] = {
    "string", "integer",     "boolean", "ipv4",   "ipv4-prefix",
    "port",   "string-list", "list",    "object", NULL,
};

static bool format_param_type(const char *s, size_t len, char *why, size_t why_size)
{
    for (size_t i = 0; param_types[i] != NULL; i++) {
        if (strlen(param_types[i]) == len && memcmp(param_types[i], s, len) == 0) {
            return true;
        }
    }
    snprintf(why, why_size,
             "must be one of string, integer, boolean, ipv4, ipv4-prefix, port, string-list, list, "
             "object");
    return false;
}

/* Parameter names: a-z, then a-z 0-9 _, at most 63. */
static bool param_name_ok(const char *s)
{
    size_t len = strlen(s);
    bool ok = len >= 1 && len <= 63 && s[0] >= 'a' && s[0] <= 'z';
    for (size_t i = 1; ok && i < len; i++) {
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_';
    }
    return ok;
}

static const struct api_field param_fields[] = {
    {"type", API_JSON_STRING, API_FIELD_REQUIRED, 1, 16, format_param_type, NULL},
    {"required", API_JSON_BOOLEAN, 0, 0, 0, NULL, NULL},
    {"default", API_JSON_ANY, 0, 0, 0, NULL, NULL},
    {"description", API_JSON_STRING, 0, 0, 512, NULL, NULL},
    {"min", API_JSON_INTEGER, 0, LLONG_MIN, LLONG_MAX, NULL, NULL},
    {"max", API_JSON_INTEGER, 0, LLONG_MIN, LLONG_MAX, NULL, NULL},
    {"enum", API_JSON_ARRAY, API_FIELD_UNIQUE, 0, 256, NULL, NULL},
};

static const struct api_schema param_schema = {param_fields,
                                               sizeof param_fields / sizeof param_fields[0]};

/* Checks value against one parameter's spec; on failure writes why. */
static bool param_value_ok(const json_t *spec, const json_t *value, char *why, size_t why_size)
{
    const char *type = json_string_value(json_object_get(spec, "type"));
    const json_t *min = json_object_get(spec, "min");
    const json_t *max = json_object_get(spec, "max");
    const json_t *choices = json_object_get(spec, "enum");
    const char *s = json_string_value(value);
    size_t len = json_string_length(value);

    if (strcmp(type, "integer") == 0 || strcmp(type, "port") == 0) {
        json_int_t lo = strcmp(type, "port") == 0 ? 1 : LLONG_MIN;
        json_int_t hi = strcmp(type, "port") == 0 ? 65535 : LLONG_MAX;
        if (min != NULL && json_integer_value(min) > lo) {
            lo = json_integer_value(min);
        }
        if (max != NULL && json_integer_value(max) < hi) {
            hi = json_integer_value(max);
        }
        if (!json_is_integer(value) || json_integer_value(value) < lo ||
            json_integer_value(value) > hi) {
            snprintf(why, why_size, "must be an integer from %lld to %lld", (long long)lo,
                     (long long)hi);
            return false;
        }
        return true;
    }
    if (strcmp(type, "boolean") == 0) {
        snprintf(why, why_size, "must be a boolean");
        return json_is_boolean(value);
    }
    if (strcmp(type, "object") == 0) {
        snprintf(why, why_size, "must be an object");
        return json_is_object(value);
    }
    if (strcmp(type, "list") == 0) {
        snprintf(why, why_size, "must be an array");
        return json_is_array(value);
    }
    if (strcmp(type, "string-list") == 0) {
        size_t i;
        const json_t *item;
        snprintf(why, why_size, "must be an array of strings");
        if (!json_is_array(value)) {
            return false;
        }
        json_array_foreach(value, i, item)
        {
            if (!json_is_string(item)) {
                return false;
            }
        }
        return true;
    }
    if (s == NULL) {
        snprintf(why, why_size, "must be a string");
        return false;
    }
    if (strcmp(type, "ipv4") == 0) {
        return api_format_ipv4(s, len, why, why_size);
    }
    if (strcmp(type, "ipv4-prefix") == 0) {
        return api_format_ipv4_prefix(s, len, why, why_size);
    }
    if (choices != NULL) {
        size_t i;
        const json_t *c;
        json_array_foreach(choices, i, c)
        {
            if (json_equal(c, value)) {
                return true;
            }
        }
        snprintf(why, why_size, "must be one of the template's enum values");
        return false;
    }
    if ((min != NULL && (json_int_t)len < json_integer_value(min)) ||
        (max != NULL && (json_int_t)len > json_integer_value(max))) {
        snprintf(why, why_size, "must be %lld to %lld bytes long",
                 min != NULL ? (long long)json_integer_value(min) : 0LL,
                 max != NULL ? (long long)json_integer_value(max) : (long long)LLONG_MAX);
        return false;
    }
    return true;
}

/* Checks a template's parameter schema. */
static int params_schema_check(const json_t *params, struct api_error *err)
{
    const char *name;
    const json_t *spec;
    char path[128];
    char why[256];

    if (json_object_size(params) > PARAMS_MAX) {
        return api_error_set(err, 422, "invalid-field", "parameters",
                             "a template declares at most %d parameters", PARAMS_MAX);
    }
    json_object_foreach((json_t *)params, name, spec)
    {
        const json_t *def;
        snprintf(path, sizeof path, "parameters.%s", name);
        if (!param_name_ok(name)) {
            return api_error_set(err, 422, "invalid-field", path,
                                 "parameter names are a-z, then a-z, 0-9 and '_' (at most 63)");
        }
        if (!json_is_object(spec)) {
            return api_error_set(err, 400, "invalid-field", path,
                                 "parameter \"%s\" must be an object like {\"type\": \"string\"}",
                                 name);
        }
        if (api_validate(&param_schema, spec, err) != 0) {
            /* Name the field from the top: parameters.NAME.FIELD. */
            char inner[sizeof err->field];
            int n = snprintf(inner, sizeof inner, "%s.%s", path, err->field);
            if (n > 0 && (size_t)n < sizeof inner) {
                memcpy(err->field, inner, (size_t)n + 1);
            }
            return CAIRN_EINVAL;
        }
        def = json_object_get(spec, "default");
        if (def != NULL && !param_value_ok(spec, def, why, sizeof why)) {
            return api_error_set(err, 422, "invalid-field", path, "the default of \"%s\" %s", name,
                                 why);
        }
    }
    return 0;
}

int api_template_params_check(const json_t *schema, json_t *params, struct api_error *err)
{
    const char *name;
    const json_t *spec;
    json_t *value;
    char path[128];
    char why[256];

    json_object_foreach(params, name, value)
    {
        snprintf(path, sizeof path, "parameters.%s", name);
        spec = json_object_get(schema, name);
        if (spec == NULL) {
            return api_error_set(err, 400, "unknown-field", path,
                                 "the template declares no parameter \"%s\"", name);
        }
        if (!param_value_ok(spec, value, why, sizeof why)) {
            return api_error_set(err, 422, "invalid-field", path, "parameter \"%s\" %s", name, why);
        }
    }
    json_object_foreach((json_t *)schema, name, spec)
    {
        const json_t *def = json_object_get(spec, "default");
        if (json_object_get(params, name) != NULL) {
            continue;
        }
        if (def != NULL) {
            json_object_set(params, name, (json_t *)def);
        } else if (json_is_true(json_object_get(spec, "required"))) {
            snprintf(path, sizeof path, "parameters.%s", name);
            return api_error_set(err, 400, "missing-field", path,
                                 "the template requires parameter \"%s\"", name);
        }
    }
    return 0;
}

static bool template_published(const json_t *body)
{
    const char *state = json_string_value(json_object_get(body, "state"));
    return state != NULL && strcmp(state, "published") == 0;
}

bool api_template_offered(struct api *api, const struct store_object *tmpl, const char *tenant)
{
    json_t *body = json_loadb(tmpl->body, tmpl->body_len, 0, NULL);
    bool ok = body != NULL && template_published(body);
    bool offered = ok && json_is_true(json_object_get(body, "public"));
    json_decref(body);
    if (ok && !offered && tenant != NULL) {
        struct store_object t;
        if (store_object_get(api->store, STORE_KIND_TENANT, tenant, &t) == 0) {
            json_t *tb = json_loadb(t.body, t.body_len, 0, NULL);
            size_t i;
            json_t *id;
            json_array_foreach(json_object_get(tb, "allowed_templates"), i, id)
            {
                if (json_is_string(id) && strcmp(json_string_value(id), tmpl->id) == 0) {
                    offered = true;
                }
            }
            json_decref(tb);
            store_object_release(&t);
        }
    }
    return offered;
}

static int template_build(struct api *api, const struct store_object *old, struct api_build *b,
                          struct api_error *err)
{
    const json_t *params = json_object_get(b->stored, "parameters");

    if (old != NULL) {
        json_t *prev = json_loadb(old->body, old->body_len, 0, NULL);
        bool published = template_published(prev);
        json_decref(prev);
        if (published) {
            return api_error_set(err, 409, "template-immutable", NULL,
                                 "template %s is published and cannot change; create a new "
                                 "version",
                                 old->id);
        }
    }
    (void)api;
    if (params != NULL && params_schema_check(params, err) != 0) {
        return CAIRN_EINVAL;
    }
    json_object_set_new(b->stored, "state", json_string("draft"));
    snprintf(b->name, sizeof b->name, "%s@%s",
             json_string_value(json_object_get(b->stored, "name")),
             json_string_value(json_object_get(b->stored, "version")));
    return 0;
}

static bool template_visible(struct api_req *req, const struct store_object *o)
{
    if (!rbac_role_is_tenant(req->who.role)) {
        return true;
    }
    return api_template_offered(req->api, o, req->who.tenant);
}

static int template_deletable(struct api_req *req, const struct store_object *o)
{
    json_t *body = json_loadb(o->body, o->body_len, 0, NULL);
    bool published = template_published(body);
    json_decref(body);
    if (published) {
        return api_problem(req, 409, "template-immutable", NULL, NULL,
                           "template %s is published and cannot be deleted: services may use it",
                           o->id);
    }
    return 0;
}

static const char *const template_filters[] = {"name", "version", "type", "state", NULL};

const struct api_resource api_template_resource = {
    .kind = STORE_KIND_TEMPLATE,
    .noun = "template",
    .path = "/api/v1/templates",
    .schema = &api_template_schema,
    .scope_from = API_SCOPE_NONE,
    .filters = template_filters,
    .build = template_build,
    .visible = template_visible,
    .deletable = template_deletable,
};

static int publish_change(struct api_req *req, const struct store_object *old, struct api_build *b,
                          void *arg)
{
    char when[API_TIME_SIZE];
    (void)arg;
    if (template_published(b->stored)) {
        return api_problem(req, 409, "template-immutable", NULL, NULL,
                           "template %s is already published", old->id);
    }
    api_time_format(cairn_wall_ms(), when);
    json_object_set_new(b->stored, "state", json_string("published"));
    json_object_set_new(b->stored, "published_at", json_string(when));
    return 0;
}

int api_template_publish(struct api_req *req)
{
    struct store_result res;
    int rc = api_resource_update(req, &api_template_resource, RBAC_UPDATE, NULL, publish_change,
                                 NULL, &res);
    return rc != 0 ? rc
                   : api_answer_written(req, 200, STORE_KIND_TEMPLATE, api_object_json, &res, NULL);
}
