/*
 * Internals shared by the REST API's files (api.c: dispatch and request
 * helpers; api_fields.c: the field tables and their validator;
 * api_tenants.c, api_cluster.c: the resources). Not a public header: only
 * northbound/ and its unit tests include it.
 *
 * Conventions: a function that may answer the request itself returns the
 * HTTP status it sent (> 0), or 0 if it answered nothing and the caller
 * goes on. Handlers always answer and return the status.
 */
#ifndef CAIRN_API_INT_H
#define CAIRN_API_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "cairn.h"
#include "http.h"

struct mg_connection;

struct api {
    struct http_server *srv;    /* where the routes are registered */
    struct store *store;        /* local replica, read directly */
    struct api_backend backend; /* the node's services (a copy) */
    struct api_config cfg;      /* node id, request timeout */
};

/* Most query parameters a request may carry. */
#define API_MAX_PARAMS 8

/* One request being answered; lives on the worker's stack. */
struct api_req {
    struct api *api;
    struct mg_connection *conn;
    const char *method;   /* "GET", ... */
    const char *path;     /* decoded, normalised path */
    const char *path_id;  /* the {id} path segment, or NULL */
    uint64_t deadline_ms; /* for backend calls, on cairn_now_ms()'s clock */
    json_t *body;         /* parsed JSON object of a POST/PUT, or NULL */
    struct cairn_buf raw; /* the body's bytes as received */
    char *query;          /* decoded copy of the query string, or NULL */
    struct {
        const char *name;
        const char *value;
    } params[API_MAX_PARAMS]; /* query parameters, pointing into query */
    size_t n_params;
};

/* A request that failed validation, before anything is sent. */
struct api_error {
    int status;       /* 400, 413, 415, 422, ... */
    const char *type; /* problem type: "invalid-field", ... */
    char field[128];  /* offending input ("contact.email"), or "" */
    char detail[512]; /* what is wrong and what to do */
};

/* api.c ------------------------------------------------------------------ */

/* Sends a problem answer for req (title from the type) and returns status.
 * field may be NULL; extra_headers NULL or "Name: value\r\n" lines. */
int api_problem(struct api_req *req, int status, const char *type, const char *field,
                const char *extra_headers, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Sends err as a problem and returns its status. */
int api_error_send(struct api_req *req, const struct api_error *err);

/* Fills err (if non-NULL) and returns CAIRN_EINVAL, for validators. */
int api_error_set(struct api_error *err, int status, const char *type, const char *field,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* How a CAIRN_E* code from the backend or the store is answered. */
struct api_status {
    int status;       /* HTTP status */
    const char *type; /* problem type */
};
struct api_status api_status_of(int code);

/* Answers a failed backend call or store result: the mapped status, the
 * detail (or the code's message if detail is empty), "Retry-After: 1" on
 * 503, and extra_headers. Returns the status. */
int api_fail(struct api_req *req, int code, const char *detail, const char *extra_headers);

/* Sends obj (consumed) as application/json and returns status. */
int api_reply_json(struct api_req *req, int status, json_t *obj, const char *extra_headers);

/* The decoded value of query parameter name, or NULL if absent. */
const char *api_param(const struct api_req *req, const char *name);

/* Splits and decodes the query string into req->params, allowing only the
 * names in allowed (NULL-terminated, or NULL for none). On a bad query
 * returns CAIRN_EINVAL with err filled. */
int api_query_parse(struct api_req *req, const char *query, const char *const *allowed,
                    struct api_error *err);

/* Establishes the read point that the request's "consistency" parameter
 * asks for: linearizable (default) waits on the backend's read barrier,
 * stale reads the local store as it is. Returns 0 or the status answered. */
int api_read_point(struct api_req *req);

/* Parses an If-Match value: "\"N\"" (N >= 1) gives N; "*" or an absent
 * header gives 0 (no check). CAIRN_EINVAL for anything else. */
int api_if_match_parse(const char *value, uint64_t *if_match);

/* Checks an Idempotency-Key (1..255 printable ASCII) and derives the
 * store's request id from it ("idem:" + key, a hash standing in for the
 * tail when that exceeds the store's 256 bytes). CAIRN_EINVAL if bad. */
#define API_REQUEST_ID_SIZE 257
int api_idempotency_parse(const char *key, char request_id[API_REQUEST_ID_SIZE]);

/* 64-bit FNV-1a over method, path and body (a zero byte between the
 * parts), checked by the store when a request id is reused. */
uint64_t api_fingerprint(const char *method, const char *path, const void *body, size_t len);

/* FNV-1a continuing from h (start with API_FNV_OFFSET). */
#define API_FNV_OFFSET 0xcbf29ce484222325ull
uint64_t api_fnv1a(uint64_t h, const void *data, size_t len);

/* True if the Content-Type value is application/json, optionally with a
 * charset=utf-8 parameter. */
bool api_content_type_ok(const char *value);

/* Parses a request body: JSON with duplicate keys rejected, and an object.
 * On success *out is the new object; else err says why. */
int api_body_parse(const char *data, size_t len, json_t **out, struct api_error *err);

/* Encodes cmd, proposes it through the backend and waits for its outcome.
 * Returns 0 with *res filled (res->status may itself be a failure), or the
 * HTTP status it answered when the command could not be committed. */
int api_propose(struct api_req *req, const struct store_command *cmd, struct store_result *res);

/* Writes "req:" + a fresh uuid: the request id of a write without an
 * Idempotency-Key, so that the node's internal retries stay exactly-once. */
void api_request_id_fresh(char request_id[API_REQUEST_ID_SIZE]);

/* api_fields.c ----------------------------------------------------------- */

enum api_json {
    API_JSON_STRING,
    API_JSON_INTEGER,
    API_JSON_BOOLEAN,
    API_JSON_OBJECT,
};

/* Checks a string's format; on failure writes what is expected into why. */
typedef bool (*api_format_cb)(const char *s, size_t len, char *why, size_t why_size);

#define API_FIELD_REQUIRED 0x1u /* must be present in a body */
#define API_FIELD_READONLY 0x2u /* set by the server; rejected in a body */

struct api_schema;

/* One field of an object, as clients send and receive it. */
struct api_field {
    const char *name;
    enum api_json type;
    unsigned flags;                  /* API_FIELD_* */
    long long min;                   /* string: least bytes; integer: least value */
    long long max;                   /* string: most bytes; integer: largest value */
    api_format_cb format;            /* string format check, or NULL */
    const struct api_schema *object; /* fields of a nested object */
};

struct api_schema {
    const struct api_field *fields;
    size_t n;
};

/* Validates body against schema: unknown fields (400 unknown-field),
 * read-only fields (400 read-only-field), wrong JSON types (400
 * invalid-field), missing required fields (400 missing-field), then values
 * out of range or of the wrong format (422 invalid-field). Nested fields
 * are named "outer.inner". Returns 0 or CAIRN_EINVAL with err filled. */
int api_validate(const struct api_schema *schema, const json_t *body, struct api_error *err);

/* A new object with the fields of src that schema lists and that are not
 * read-only, in the table's order (nested objects likewise), for answers
 * with a stable field order. NULL if out of memory. */
json_t *api_schema_project(const struct api_schema *schema, const json_t *src);

/* "a string", "an integer", ... as used in messages. */
const char *api_json_type_name(const json_t *value);

/* Format checks used by the tables (exposed for the unit tests). */
bool api_format_name(const char *s, size_t len, char *why, size_t why_size);
bool api_format_email(const char *s, size_t len, char *why, size_t why_size);
bool api_format_phone(const char *s, size_t len, char *why, size_t why_size);
bool api_format_host_port(const char *s, size_t len, char *why, size_t why_size);

extern const struct api_schema api_tenant_schema;
extern const struct api_schema api_member_schema;

/* api_tenants.c ---------------------------------------------------------- */

int api_tenants_list(struct api_req *req);
int api_tenants_create(struct api_req *req);
int api_tenant_get(struct api_req *req);
int api_tenant_replace(struct api_req *req);
int api_tenant_delete(struct api_req *req);

/* api_cluster.c ---------------------------------------------------------- */

int api_healthz(struct api_req *req);
int api_readyz(struct api_req *req);
int api_cluster_get(struct api_req *req);
int api_members_add(struct api_req *req);
int api_member_remove(struct api_req *req);

#endif /* CAIRN_API_INT_H */
