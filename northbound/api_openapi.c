/*
 * The OpenAPI 3.0 document of the REST API, generated from the route table
 * (paths, methods, summaries, query parameters, request and response
 * field tables) and the field tables (api_fields.c), so that it cannot
 * drift from what the dispatcher routes and the validator accepts. api.c
 * builds it once at api_create; GET /api/v1/openapi.json serves that text.
 *
 * Field flags map to JSON Schema: API_FIELD_REQUIRED to "required",
 * API_FIELD_READONLY to "readOnly" (answered, rejected in a body),
 * API_FIELD_WRITEONLY to "writeOnly" (accepted, never answered).
 */
#include "api_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "civetweb.h"

#define PROBLEM_REF "#/components/schemas/Problem"

static json_t *schema_json(const struct api_schema *schema);

static json_t *field_json(const struct api_field *f)
{
    json_t *s = NULL;
    switch (f->type) {
        case API_JSON_STRING:
            s = json_pack("{s:s}", "type", "string");
            if (s != NULL && f->max > 0) {
                json_object_set_new(s, "minLength", json_integer(f->min));
                json_object_set_new(s, "maxLength", json_integer(f->max));
            }
            break;
        case API_JSON_INTEGER:
            s = json_pack("{s:s}", "type", "integer");
            if (s != NULL && f->max > 0) {
                json_object_set_new(s, "minimum", json_integer(f->min));
                json_object_set_new(s, "maximum", json_integer(f->max));
            }
            break;
        case API_JSON_BOOLEAN:
            s = json_pack("{s:s}", "type", "boolean");
            break;
        case API_JSON_OBJECT:
            s = f->object != NULL ? schema_json(f->object) : json_pack("{s:s}", "type", "object");
            break;
        case API_JSON_NUMBER:
            s = json_pack("{s:s, s:I, s:I}", "type", "number", "minimum", (json_int_t)f->min,
                          "maximum", (json_int_t)f->max);
            break;
        case API_JSON_ANY:
            s = json_object(); /* any JSON value: the resource checks it */
            break;
        case API_JSON_ARRAY:
            s = json_pack(
                "{s:s, s:o, s:I}", "type", "array", "items",
                f->object != NULL ? schema_json(f->object) : json_pack("{s:s}", "type", "string"),
                "maxItems", (json_int_t)f->max);
            if (s != NULL && (f->flags & API_FIELD_UNIQUE) != 0) {
                json_object_set_new(s, "uniqueItems", json_true());
            }
            break;
    }
    if (s != NULL && (f->flags & API_FIELD_READONLY) != 0) {
        json_object_set_new(s, "readOnly", json_true());
    }
    if (s != NULL && (f->flags & API_FIELD_WRITEONLY) != 0) {
        json_object_set_new(s, "writeOnly", json_true());
    }
    return s;
}

static json_t *schema_json(const struct api_schema *schema)
{
    json_t *props = json_object();
    json_t *required = json_array();
    json_t *s = json_pack("{s:s, s:b}", "type", "object", "additionalProperties", 0);
    if (props == NULL || required == NULL || s == NULL) {
        goto fail;
    }
    for (size_t i = 0; i < schema->n; i++) {
        const struct api_field *f = &schema->fields[i];
        json_t *fs = field_json(f);
        if (fs == NULL || json_object_set_new(props, f->name, fs) != 0) {
            goto fail;
        }
        if ((f->flags & API_FIELD_REQUIRED) != 0 &&
            json_array_append_new(required, json_string(f->name)) != 0) {
            goto fail;
        }
    }
    json_object_set_new(s, "properties", props);
    if (json_array_size(required) > 0) {
        json_object_set_new(s, "required", required);
    } else {
        json_decref(required);
    }
    return s;

fail:
    json_decref(props);
    json_decref(required);
    json_decref(s);
    return NULL;
}

static json_t *content(const char *media_type, json_t *schema)
{
    return json_pack("{s:{s:o}}", media_type, "schema", schema);
}

/* Query parameters: integers for limit and from_revision, booleans for
 * cascade, force and dry_run, strings for the rest. */
static json_t *parameter_json(const char *name)
{
    const char *type = "string";
    if (strcmp(name, "limit") == 0 || strcmp(name, "from_revision") == 0) {
        type = "integer";
    } else if (strcmp(name, "cascade") == 0 || strcmp(name, "force") == 0 ||
               strcmp(name, "dry_run") == 0) {
        type = "boolean";
    }
    return json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", name, "in", "query", "required", 0,
                     "schema", "type", type);
}

/* The field tables of m's body and answer: its own, else its resource's. */
static const struct api_schema *request_schema(const struct api_route_method *m)
{
    return m->request != NULL ? m->request : m->resource != NULL ? m->resource->schema : NULL;
}

static const struct api_schema *response_schema(const struct api_route_method *m)
{
    return m->response != NULL ? m->response : m->resource != NULL ? m->resource->schema : NULL;
}

/* The summary of m: its own, else one made from its resource's noun
 * ("List sites", "Read a site", ...). */
static void summary_of(const struct api_route *r, const struct api_route_method *m, char *out,
                       size_t size)
{
    const char *noun = m->resource != NULL ? m->resource->noun : NULL;
    const char *verb = strcmp(m->method, "POST") == 0     ? "Create"
                       : strcmp(m->method, "PUT") == 0    ? "Replace"
                       : strcmp(m->method, "DELETE") == 0 ? "Delete"
                                                          : "Read";
    if (m->summary != NULL) {
        snprintf(out, size, "%s", m->summary);
    } else if (noun != NULL && (m->flags & API_METHOD_LIST) != 0) {
        snprintf(out, size, "List %ss", noun);
    } else if (noun != NULL) {
        snprintf(out, size, "%s a%s %s", verb, strchr("aeiou", noun[0]) != NULL ? "n" : "", noun);
    } else {
        snprintf(out, size, "%s %s", m->method, r->pattern);
    }
}

bool api_openapi_summarized(const struct api_route_method *m)
{
    return (m->summary != NULL && m->summary[0] != '\0') || m->resource != NULL;
}

const struct api_schema *api_openapi_request(const struct api_route_method *m)
{
    return request_schema(m);
}

/* The success answer of m. */
static json_t *success_json(const struct api_route_method *m, const char **status)
{
    const struct api_schema *response = response_schema(m);
    json_t *object =
        response != NULL ? schema_json(response) : json_pack("{s:s}", "type", "object");
    if (object == NULL) {
        return NULL;
    }
    *status = (m->flags & API_METHOD_ACCEPTED) != 0 ? "202"
              : strcmp(m->method, "DELETE") == 0    ? "204"
              : (m->flags & API_METHOD_CREATE) != 0 ? "201"
                                                    : "200";
    if (strcmp(*status, "204") == 0) {
        json_decref(object);
        return json_pack("{s:s}", "description", "Deleted");
    }
    if ((m->flags & API_METHOD_STREAM) != 0) {
        json_decref(object);
        return json_pack("{s:s, s:o}", "description", "An event stream", "content",
                         content("text/event-stream", json_pack("{s:s}", "type", "string")));
    }
    if ((m->flags & API_METHOD_TEXT) != 0) {
        json_decref(object);
        return json_pack("{s:s, s:o}", "description", "Prometheus text format 0.0.4", "content",
                         content("text/plain", json_pack("{s:s}", "type", "string")));
    }
    if ((m->flags & API_METHOD_LIST) != 0) {
        object = json_pack("{s:s, s:{s:{s:s, s:o}, s:{s:s, s:b}, s:{s:s}}, s:[s, s, s]}", "type",
                           "object", "properties", "items", "type", "array", "items", object,
                           "next_cursor", "type", "string", "nullable", 1, "revision", "type",
                           "integer", "required", "items", "next_cursor", "revision");
    }
    return json_pack("{s:s, s:o}", "description", "Success", "content",
                     content("application/json", object));
}

static json_t *operation_json(const struct api_route *r, const struct api_route_method *m)
{
    const char *status = "200";
    const struct api_schema *request = request_schema(m);
    json_t *success = success_json(m, &status);
    json_t *params = json_array();
    char summary[160];
    json_t *op;
    json_t *responses;

    summary_of(r, m, summary, sizeof summary);
    op = json_pack("{s:s, s:{}}", "summary", summary, "responses");
    responses = json_object_get(op, "responses");

    if (success == NULL || params == NULL || op == NULL) {
        json_decref(success);
        json_decref(params);
        json_decref(op);
        return NULL;
    }
    json_object_set_new(responses, status, success);
    json_object_set_new(
        responses, "default",
        json_pack("{s:s, s:o}", "description", "An error (RFC 9457)", "content",
                  content("application/problem+json", json_pack("{s:s}", "$ref", PROBLEM_REF))));
    if (strchr(r->pattern, '*') != NULL) {
        json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", "id", "in",
                                                "path", "required", 1, "schema", "type", "string"));
    }
    for (size_t i = 0; m->params != NULL && m->params[i] != NULL; i++) {
        json_array_append_new(params, parameter_json(m->params[i]));
    }
    if (json_array_size(params) > 0) {
        json_object_set_new(op, "parameters", params);
    } else {
        json_decref(params);
    }
    if ((m->flags & API_METHOD_BODY) != 0 && request != NULL) {
        json_object_set_new(op, "requestBody",
                            json_pack("{s:b, s:o}", "required", 1, "content",
                                      content("application/json", schema_json(request))));
    }
    if (api_path_public(r->pattern)) {
        json_object_set_new(op, "security", json_array());
    }
    return op;
}

json_t *api_openapi_document(void)
{
    json_t *paths = json_object();
    json_t *doc;

    if (paths == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < api_route_count(); i++) {
        const struct api_route *r = api_route_at(i);
        char name[256];
        json_t *item = json_object();
        if (item == NULL) {
            json_decref(paths);
            return NULL;
        }
        for (size_t k = 0; k < API_ROUTE_METHODS_MAX && r->methods[k].method != NULL; k++) {
            char lower[16];
            json_t *op = operation_json(r, &r->methods[k]);
            snprintf(lower, sizeof lower, "%s", r->methods[k].method);
            for (char *c = lower; *c != '\0'; c++) {
                *c = (char)(*c - 'A' + 'a');
            }
            if (op == NULL || json_object_set_new(item, lower, op) != 0) {
                json_decref(item);
                json_decref(paths);
                return NULL;
            }
        }
        api_pattern_name(r->pattern, name, sizeof name);
        json_object_set_new(paths, name, item);
    }
    doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:o, s:{s:{s:{s:s, s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, "
        "s:{s:s}, s:{s:s}}, s:[s, s, s]}}, s:{s:{s:s, s:s}}}, s:[{s:[]}]}",
        "openapi", "3.0.3", "info", "title", "Cairn orchestration API", "version", "1",
        "description",
        "Tenants, users, sites, devices, the service catalog, services and jobs of a Cairn "
        "cluster; every node serves all of it. Generated from the server's route and field "
        "tables.",
        "paths", paths, "components", "schemas", "Problem", "type", "object", "description",
        "RFC 9457 problem details; type is urn:cairn:problem:NAME", "properties", "type", "type",
        "string", "title", "type", "string", "status", "type", "integer", "detail", "type",
        "string", "field", "type", "string", "required", "type", "title", "status",
        "securitySchemes", "bearer", "type", "http", "scheme", "bearer", "security", "bearer");
    return doc;
}

int api_openapi_get(struct api_req *req)
{
    http_reply(req->conn, 200, "application/json", NULL, req->api->openapi, req->api->openapi_len);
    return 200;
}
