/*
 * Internals shared by the REST API's files (api.c: dispatch and request
 * helpers; api_fields.c: the field tables and their validator; api_auth.c:
 * passwords, tokens, the login throttle, authentication and the auth
 * routes; api_access.c: authorization and the audit of refusals;
 * api_tenants.c, api_users.c, api_cluster.c: the resources). Not a public
 * header: only northbound/ and its unit tests include it.
 *
 * Conventions: a function that may answer the request itself returns the
 * HTTP status it sent (> 0), or 0 if it answered nothing and the caller
 * goes on. Handlers always answer and return the status.
 */
#ifndef CAIRN_API_INT_H
#define CAIRN_API_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "cairn.h"
#include "http.h"
#include "rbac.h"

struct mg_connection;
struct api_throttle;
struct metrics;
struct api_resource;
struct api_jobs;

/* User names: 1..64 of a-z 0-9 . _ - (the store's unique name of a user). */
#define API_USERNAME_MAX 64
/* crypto_pwhash_STRBYTES: an argon2id hash string with its NUL. */
#define API_PASSWORD_HASH_SIZE 128
/* A bearer token: 32 random bytes in unpadded base64url (43) and a NUL. */
#define API_TOKEN_SIZE 44
/* A session's id: the hex SHA-256 of its token, and a NUL. */
#define API_SESSION_ID_SIZE 65
/* Passwords of users: 12 to 256 bytes. */
#define API_PASSWORD_MIN 12
#define API_PASSWORD_MAX 256

/* Failed logins: after API_LOGIN_MAX_FAILURES within API_LOGIN_WINDOW_MS
 * for one user name or one client address, further attempts are refused
 * (429) until the oldest of them leaves the window. The table holds
 * API_LOGIN_THROTTLE_SLOTS keys per node; the least recently failed is
 * forgotten first. */
#define API_LOGIN_MAX_FAILURES   5
#define API_LOGIN_WINDOW_MS      60000
#define API_LOGIN_THROTTLE_SLOTS 4096
/* At most this many password hashes (64 MiB of memory each) run at once
 * per node; other logins wait for a turn within their deadline. */
#define API_KDF_CONCURRENCY 4

/* The authenticated caller of a request. */
struct api_principal {
    char user_id[CAIRN_UUID_SIZE];
    char username[API_USERNAME_MAX + 1];
    enum rbac_role role;
    char tenant[CAIRN_UUID_SIZE];         /* tenant roles: their tenant; else "" */
    char session_id[API_SESSION_ID_SIZE]; /* the session the token names */
    int64_t expires_ms;                   /* when the session ends (wall clock) */
};

/* Sessions this node verified (api_auth.c): slot by session id. An entry
 * holds while the store's auth generation has not moved since it was read
 * (no session or user changed anywhere) and the session has not expired. */
#define API_AUTH_CACHE_SLOTS 1024
struct api_auth_cached {
    uint64_t generation; /* store_auth_generation before the reads; 0: empty */
    struct api_principal who;
};

struct api {
    struct http_server *srv;                 /* where the routes are registered */
    struct store *store;                     /* local replica, read directly */
    struct api_backend backend;              /* the node's services (a copy) */
    struct api_config cfg;                   /* node id, request timeout, token lifetime */
    struct api_throttle *throttle;           /* failed logins, per user name and address */
    pthread_mutex_t kdf_mu;                  /* guards the two fields below */
    pthread_cond_t kdf_cv;                   /* signalled when a hash finishes */
    unsigned kdf_running;                    /* password hashes running now */
    char dummy_hash[API_PASSWORD_HASH_SIZE]; /* verified for unknown users; "" until needed */
    struct metrics *metrics;                 /* request counts and latencies by route */
    char **route_names;                      /* metric labels: patterns with {id} */
    char *openapi;                           /* the OpenAPI document, made at create */
    size_t openapi_len;
    atomic_uint streams;     /* event streams open now */
    atomic_bool stopping;    /* set by api_destroy: streams end */
    struct api_jobs *jobs;   /* the job runner, or NULL */
    pthread_mutex_t auth_mu; /* guards auth_cache */
    struct api_auth_cached auth_cache[API_AUTH_CACHE_SLOTS];
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
    const struct api_resource *resource; /* the route's resource, for the generic handlers */
    bool authenticated;                  /* who is valid */
    struct api_principal who;            /* the caller, once authenticated */
    bool audited;                        /* proposed, or its refusal audited: problem_va
                                            files no refusal of its own */
    struct api_build *dry_run;           /* set: a create/update hands its checked build
                                            here (the caller frees its stored body)
                                            instead of proposing it */
    /* Set by a handler that reads its write back only through
     * api_answer_written: a forwarded write is then answered with the
     * object the leader stored (written) without waiting for this node to
     * apply it. A later linearizable read here waits for it (read index). */
    bool written_from_leader;
    struct store_object written; /* the last proposal's object, id NULL if none */
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
/* Checks the {id} of an object path: a lower-case uuid as POST collection
 * returned; noun names the kind in the message. Returns 0 or the status
 * answered (400 naming "id"). */
int api_check_path_id(struct api_req *req, const char *noun, const char *collection);

/* Answers a successful create or replace (status 201 or 200) with the
 * object of kind res->id as now stored, rendered by to_json, with its ETag
 * and X-Cairn-Revision. If it is already gone again (a concurrent delete),
 * the answer still names its id and revisions. */
int api_answer_written(struct api_req *req, int status, enum store_kind kind,
                       json_t *(*to_json)(struct api *api, const struct store_object *o),
                       const struct store_result *res, const char *extra_headers);

/* Appends every object of list, rendered by to_json, to the items array,
 * and sets *next to the cursor of the following page (the last id) when
 * more follow. Returns 0 or CAIRN_ENOMEM. */
int api_list_render(struct api *api, const struct store_list *list,
                    json_t *(*to_json)(struct api *api, const struct store_object *o),
                    json_t *items, json_t **next);

/* Finds the route of path and method as a request would: 0 if it exists,
 * 404 if no route matches the path, 405 if the path has no such method; id
 * gets the {id} segment. For tests and the routing fuzzer. */
#define API_PATH_ID_MAX 256
int api_route_lookup(const char *path, const char *method, char id[API_PATH_ID_MAX]);

int api_body_parse(const char *data, size_t len, json_t **out, struct api_error *err);

/* Encodes cmd, proposes it through the backend and waits for its outcome.
 * Returns 0 with *res filled (res->status may itself be a failure), or the
 * HTTP status it answered when the command could not be committed. */
int api_propose(struct api_req *req, const struct store_command *cmd, struct store_result *res);

/* Encodes and proposes cmd without answering anything: 0 with *res
 * filled, CAIRN_EMALFORMED if cmd cannot be encoded (a bug), or the
 * backend's code, with errmsg. For work that is not the request's own
 * answer (the audit of a refusal, the bootstrap admin). */
int api_propose_quiet(struct api *api, const struct store_command *cmd, uint64_t deadline_ms,
                      struct store_result *res, char *errmsg, size_t errmsg_size);

/* Writes "req:" + a fresh uuid: the request id of a write without an
 * Idempotency-Key, so that the node's internal retries stay exactly-once. */
void api_request_id_fresh(char request_id[API_REQUEST_ID_SIZE]);

/* Starts a command of the current version: op, kind, the proposer's clock
 * and the caller (the authenticated user's name, or NULL). */
void api_command_init(const struct api_req *req, struct store_command *cmd, enum store_op op,
                      enum store_kind kind);

/* The same for work no request asked for: caller names who it acts for
 * (the user a job runs for), or NULL. */
void api_command_init_as(struct store_command *cmd, enum store_op op, enum store_kind kind,
                         const char *caller);

/* Checks a list's limit and cursor parameters (cursor: a uuid); returns 0
 * or the status answered. */
#define API_LIST_LIMIT_DEFAULT 100
#define API_LIST_LIMIT_MAX     1000
int api_list_params(struct api_req *req, size_t *limit, const char **cursor);

/* Reads a boolean query parameter ("true" or "false", absent: false);
 * returns 0 or the status answered. */
int api_bool_param(struct api_req *req, const char *name, bool *out);

/* Reads the If-Match header; returns 0 or the status answered. */
int api_if_match(struct api_req *req, uint64_t *if_match);

/* Answers 404 for an object that does not exist or that the caller may not
 * see, in the one shape both have: "no NOUN with id ID", with the store's
 * revision. */
int api_not_found(struct api_req *req, const char *noun, const char *id);

/* Answers a store result whose status is a failure, with its revision. */
int api_result_failed(struct api_req *req, const struct store_result *res);

/* Formats a wall-clock time in ms as RFC 3339 UTC ("2026-01-02T03:04:05Z",
 * whole seconds, rounded down). */
#define API_TIME_SIZE 32
void api_time_format(int64_t ms, char out[API_TIME_SIZE]);

/* The route table (api.c), as the OpenAPI generator and the tests see
 * it. A pattern is matched segment by segment; "*" matches one non-empty
 * segment, which the handler finds in req->path_id. */
#define API_METHOD_BODY     0x1u  /* the request carries a JSON object (request) */
#define API_METHOD_LIST     0x2u  /* answers a list page of response objects */
#define API_METHOD_STREAM   0x4u  /* answers text/event-stream */
#define API_METHOD_TEXT     0x8u  /* answers text/plain (metrics) */
#define API_METHOD_CREATE   0x10u /* answers 201 with the new object */
#define API_METHOD_ACCEPTED 0x20u /* answers 202 with the object and a job's Location */

struct api_route_method {
    const char *method;
    int (*handler)(struct api_req *req);
    unsigned flags;                      /* API_METHOD_* */
    const char *const *params;           /* allowed query parameters, or NULL */
    const struct api_resource *resource; /* for the generic handlers, or NULL */
    const char *summary;                 /* one line for the OpenAPI document */
    const struct api_schema *request;    /* the body's fields (API_METHOD_BODY); NULL:
                                          * the resource's schema */
    const struct api_schema *response;   /* the answered object's fields; NULL: the
                                          * resource's schema, if any */
};

#define API_ROUTE_METHODS_MAX 4

struct api_route {
    const char *pattern;
    struct api_route_method methods[API_ROUTE_METHODS_MAX]; /* ends at a NULL method */
};

/* The routes, in table order; any thread. */
size_t api_route_count(void);
const struct api_route *api_route_at(size_t i);

/* True for the paths answered without a token: the probes, /metrics and
 * the login. */
bool api_path_public(const char *path);

/* Writes pattern with each "*" replaced by "{id}" (the OpenAPI and metrics
 * form) into out; the result is cut to size. */
void api_pattern_name(const char *pattern, char *out, size_t size);

/* api_access.c ----------------------------------------------------------- */

/* The caller as rbac.c sees it. */
struct rbac_principal api_rbac_principal(const struct api_req *req);

/* Checks that the caller may do action on an object of kind with tenant
 * scope (see rbac_decide); noun and id name the object in answers ("user",
 * its id) and in the audit. Returns 0 if allowed; otherwise answers 403
 * (forbidden) or the 404 of api_not_found (hidden) and, for any action but
 * a read, records the refusal in the audit log first. */
int api_authorize(struct api_req *req, enum rbac_action action, enum store_kind kind,
                  const char *scope, const char *noun, const char *id);

/* Records a refused write in the audit log (a STORE_OP_AUDIT command with
 * the caller, the object and why), best effort: a failure is logged and
 * changes nothing for the request. status is the CAIRN_E* code of the
 * refusal. */
void api_audit_refusal(struct api_req *req, enum store_kind kind, const char *id, const char *scope,
                       int status, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Answers 403 for a refused write, after auditing it. */
int api_forbidden(struct api_req *req, enum store_kind kind, const char *id, const char *scope,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* api_fields.c ----------------------------------------------------------- */

enum api_json {
    API_JSON_STRING,
    API_JSON_INTEGER,
    API_JSON_BOOLEAN,
    API_JSON_OBJECT,
    API_JSON_ARRAY,  /* of strings (each checked by format) or, with object set, of
                      * objects (each checked by that table); max items */
    API_JSON_NUMBER, /* integer or fraction, from min to max */
    API_JSON_ANY,    /* any JSON value; the resource checks it (template parameters) */
};

/* Checks a string's format; on failure writes what is expected into why. */
typedef bool (*api_format_cb)(const char *s, size_t len, char *why, size_t why_size);

#define API_FIELD_REQUIRED  0x1u /* must be present in a body */
#define API_FIELD_READONLY  0x2u /* set by the server; rejected in a body */
#define API_FIELD_WRITEONLY 0x4u /* accepted in a body, never in an answer */
#define API_FIELD_UNIQUE    0x8u /* arrays: no item twice */

struct api_schema;

/* One field of an object, as clients send and receive it. */
struct api_field {
    const char *name;
    enum api_json type;
    unsigned flags;                  /* API_FIELD_* */
    long long min;                   /* string: least bytes; integer: least value */
    long long max;                   /* string: most bytes; integer: largest value;
                                      * array: most items */
    api_format_cb format;            /* string (array: item) format check, or NULL */
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

/* A new object with the fields of src that schema lists and that are
 * neither read-only nor write-only, in the table's order (nested objects
 * likewise), for answers with a stable field order. NULL if out of
 * memory. */
json_t *api_schema_project(const struct api_schema *schema, const json_t *src);

/* Like api_schema_project, but with the read-only fields too (an answer's
 * form of a stored body that holds server-set fields): every field but
 * write-only ones. */
json_t *api_schema_render(const struct api_schema *schema, const json_t *src);

/* "a string", "an integer", ... as used in messages. */
const char *api_json_type_name(const json_t *value);

/* Format checks used by the tables (exposed for the unit tests). */
bool api_format_name(const char *s, size_t len, char *why, size_t why_size);
bool api_format_email(const char *s, size_t len, char *why, size_t why_size);
bool api_format_phone(const char *s, size_t len, char *why, size_t why_size);
bool api_format_host_port(const char *s, size_t len, char *why, size_t why_size);
bool api_format_uuid(const char *s, size_t len, char *why, size_t why_size);
bool api_format_username(const char *s, size_t len, char *why, size_t why_size);
bool api_format_role(const char *s, size_t len, char *why, size_t why_size);

bool api_format_site_role(const char *s, size_t len, char *why, size_t why_size);
bool api_format_wan_type(const char *s, size_t len, char *why, size_t why_size);
bool api_format_device_family(const char *s, size_t len, char *why, size_t why_size);
bool api_format_device_state(const char *s, size_t len, char *why, size_t why_size);
bool api_format_template_type(const char *s, size_t len, char *why, size_t why_size);
bool api_format_service_state(const char *s, size_t len, char *why, size_t why_size);
bool api_format_drift_policy(const char *s, size_t len, char *why, size_t why_size);
bool api_format_ipv4(const char *s, size_t len, char *why, size_t why_size);
bool api_format_ipv4_prefix(const char *s, size_t len, char *why, size_t why_size);
bool api_format_host(const char *s, size_t len, char *why, size_t why_size);
bool api_format_serial(const char *s, size_t len, char *why, size_t why_size);
bool api_format_version(const char *s, size_t len, char *why, size_t why_size);

/* Most devices, and most sites, one service may name in its targets. */
#define API_SERVICE_TARGETS_MAX 10000

extern const struct api_schema api_site_schema;
extern const struct api_schema api_device_schema;
extern const struct api_schema api_template_schema;
extern const struct api_schema api_service_schema;
extern const struct api_schema api_job_schema;
extern const struct api_schema api_tenant_schema;
extern const struct api_schema api_member_schema;
extern const struct api_schema api_user_schema;
extern const struct api_schema api_login_schema;
extern const struct api_schema api_password_change_schema;
extern const struct api_schema api_import_schema; /* api_imports.c */

/* Quotas of a tenant: the JSON field and the store kind it limits. */
struct api_quota {
    const char *field; /* "sites", ... */
    enum store_kind kind;
};
extern const struct api_quota api_quotas[];
extern const size_t api_n_quotas;
#define API_QUOTA_MAX 1000000

/* api_auth.c ------------------------------------------------------------- */

/* Hashes a password with argon2id (libsodium's crypto_pwhash_str,
 * interactive limits). CAIRN_ENOMEM if the 64 MiB could not be had. Any
 * thread; takes about 0.1 s. */
int api_password_hash(const char *password, size_t len, char out[API_PASSWORD_HASH_SIZE]);

/* True if password matches hash (a crypto_pwhash_str string). */
bool api_password_verify(const char *hash, const char *password, size_t len);

/* The same two, waiting for one of the API_KDF_CONCURRENCY turns of api
 * until deadline_ms (CAIRN_ETIMEDOUT if none came). verify returns 0 on a
 * match and CAIRN_ENOTFOUND on a mismatch. */
int api_kdf_hash(struct api *api, const char *password, size_t len, uint64_t deadline_ms,
                 char out[API_PASSWORD_HASH_SIZE]);
int api_kdf_verify(struct api *api, const char *hash, const char *password, size_t len,
                   uint64_t deadline_ms);

/* A new bearer token: 32 random bytes, unpadded base64url. */
void api_token_new(char out[API_TOKEN_SIZE]);

/* True if token has the form api_token_new writes (43 base64url chars). */
bool api_token_well_formed(const char *token, size_t len);

/* The session id of a token: the hex SHA-256 of its text. */
void api_session_id(const char *token, size_t len, char out[API_SESSION_ID_SIZE]);

/* The login throttle (see API_LOGIN_*): a bounded table of keys ("u:NAME",
 * "a:ADDRESS") and the times of their recent failures, guarded by its own
 * mutex. Times are ms on any monotonic clock. */
int api_throttle_create(size_t slots, unsigned max_failures, uint64_t window_ms,
                        struct api_throttle **out);
void api_throttle_destroy(struct api_throttle *t);
/* 0 if key may try now, else the whole seconds until it may (>= 1). */
unsigned api_throttle_wait(struct api_throttle *t, const char *key, uint64_t now_ms);
/* Records a failure of key at now_ms. */
void api_throttle_fail(struct api_throttle *t, const char *key, uint64_t now_ms);
/* Forgets key's failures (a successful login). */
void api_throttle_reset(struct api_throttle *t, const char *key);
/* Keys in the table (for tests). */
size_t api_throttle_count(struct api_throttle *t);

/* Authenticates the request from its Authorization header, filling
 * req->who. Returns 0, or the status answered (401 with WWW-Authenticate,
 * or 503 if the cluster could not be asked in time). */
int api_authenticate(struct api_req *req);

/* For a long request (an event stream): true if the caller's session is
 * still valid in the local store and its user still enabled with the same
 * role and tenant; req->who is refreshed. False after a logout, an expiry,
 * or a change of the user that would alter what it may see. */
bool api_principal_unchanged(struct api_req *req);

int api_auth_login(struct api_req *req);
int api_auth_logout(struct api_req *req);
int api_auth_whoami(struct api_req *req);

/* api_tenants.c ---------------------------------------------------------- */

/* The answer's form of a stored tenant (quotas from its limits). */
json_t *api_tenant_json(struct api *api, const struct store_object *o);

int api_tenants_list(struct api_req *req);
int api_tenants_create(struct api_req *req);
int api_tenant_get(struct api_req *req);
int api_tenant_replace(struct api_req *req);
int api_tenant_delete(struct api_req *req);

/* api_users.c ------------------------------------------------------------ */

/* The answer's form of a stored user: never its password hash. */
json_t *api_user_json(struct api *api, const struct store_object *o);

/* A user's fields from its stored body: role, tenant ("" for none),
 * disabled, and a borrowed pointer to the password hash (NULL if absent).
 * CAIRN_EMALFORMED if the body is not what api_users.c writes. The caller
 * frees *doc (json_decref), which owns *hash. */
struct api_user_fields {
    enum rbac_role role;
    char tenant[CAIRN_UUID_SIZE];
    bool disabled;
    const char *password_hash;
    const char *username;
};
int api_user_fields(const struct store_object *o, json_t **doc, struct api_user_fields *out);

/* Builds the store command creating a user: the stored body (with the
 * hash), scope, parent and refs. body_out is malloc'ed JSON that cmd
 * borrows; free it after proposing. */
int api_user_command(struct store_command *cmd, const char *id, const json_t *fields,
                     const char *password_hash, char **body_out);

int api_users_list(struct api_req *req);
int api_users_create(struct api_req *req);
int api_user_get(struct api_req *req);
int api_user_replace(struct api_req *req);
int api_user_delete(struct api_req *req);
/* POST /api/v1/auth/password: the caller changes its own password (the
 * current one verified, throttled like logins); its other sessions end. */
int api_auth_password(struct api_req *req);

/* api_events.c ----------------------------------------------------------- */

/* The API's name of a kind ("tenant", "user", "site", ...); NULL for a
 * kind it does not name. */
const char *api_kind_name(enum store_kind kind);

/* Parses a kind's API name; CAIRN_EINVAL if it names none. */
int api_kind_parse(const char *name, enum store_kind *out);

/* The scope rbac_decide takes for o: a tenant's own id, else its tenant
 * (NULL for a provider-level object). */
const char *api_object_scope(const struct store_object *o);

/* GET /api/v1/events: Server-Sent Events of object changes. */
int api_events_stream(struct api_req *req);

/* Revisions between the heartbeats of an idle stream, and the longest
 * wait between two checks of the caller's session and of shutdown. */
#define API_EVENTS_HEARTBEAT_MS 15000
#define API_EVENTS_CHECK_MS     1000
/* Changes read from the log per page. */
#define API_EVENTS_PAGE 256
/* Default bound on a node's concurrent event streams. */
#define API_EVENT_STREAMS_DEFAULT 64

/* api_audit.c ------------------------------------------------------------ */

/* GET /api/v1/audit: the audit log, newest first, SP roles only. */
int api_audit_list(struct api_req *req);

/* Parses an RFC 3339 date-time ("2026-01-02T03:04:05Z", fractions and
 * numeric offsets allowed) into ms since the epoch. CAIRN_EINVAL if bad. */
int api_time_parse(const char *s, int64_t *ms);

/* api_openapi.c ---------------------------------------------------------- */

/* The OpenAPI 3.0 document of the route table and the field tables. NULL
 * if out of memory. */
json_t *api_openapi_document(void);

/* What the document says of a route method: whether it has a summary (its
 * own or made from its resource's noun) and which request field table it
 * documents (its own, else its resource's; NULL for none). For the unit
 * test that checks the route table. */
bool api_openapi_summarized(const struct api_route_method *m);
const struct api_schema *api_openapi_request(const struct api_route_method *m);

/* GET /api/v1/openapi.json */
int api_openapi_get(struct api_req *req);

/* GET /metrics: Prometheus text format, no authentication (counts and
 * raft indexes only, never an object). */
int api_metrics_get(struct api_req *req);

/* api_cluster.c ---------------------------------------------------------- */

int api_healthz(struct api_req *req);
int api_readyz(struct api_req *req);
int api_cluster_get(struct api_req *req);
int api_members_add(struct api_req *req);
int api_member_remove(struct api_req *req);
/* Checks the caller's right to do action on the cluster's kind (members:
 * its membership; system: backups): SP roles read it, SP admins change it,
 * tenant users get the 404 of a route that does not exist. id names the
 * member of a membership change, or NULL; what says what a forbidden write
 * would have done. Returns 0 or the status answered. */
int api_cluster_authorize(struct api_req *req, enum rbac_action action, enum store_kind kind,
                          const char *id, const char *what);
int api_cluster_backup(struct api_req *req);
int api_leader_transfer(struct api_req *req);

/* api_ownership.c -------------------------------------------------------- */

int api_ownership_get(struct api_req *req);

/* api_resource.c --------------------------------------------------------- */

/* What a create or replace will write, as the generic handlers and a
 * resource's build hook assemble it. */
struct api_build {
    json_t *stored;                  /* the body to store (owned) */
    char name[129];                  /* unique name within the kind, "" for none */
    char tenant[CAIRN_UUID_SIZE];    /* scope, "" for none */
    enum store_kind parent_kind;     /* 0 for none (a replace keeps the parent) */
    char parent_id[CAIRN_UUID_SIZE]; /* the parent, at create */
    struct store_ref refs[STORE_MAX_REFS];
    char ref_ids[STORE_MAX_REFS][CAIRN_UUID_SIZE];
    size_t n_refs;
};

/* Adds a reference that must exist when the command applies. */
void api_build_ref(struct api_build *b, enum store_kind kind, const char *id);

enum api_scope_from {
    API_SCOPE_NONE,   /* the provider's (templates) */
    API_SCOPE_FIELD,  /* "tenant_id" in the body; the parent is the tenant */
    API_SCOPE_PARENT, /* parent_field names the parent, whose tenant it inherits */
};

/* One kind of stored object served by the generic handlers. */
struct api_resource {
    enum store_kind kind;
    const char *noun; /* "site", in messages */
    const char *path; /* "/api/v1/sites" */
    const struct api_schema *schema;
    enum api_scope_from scope_from;
    const char *parent_field;    /* API_SCOPE_PARENT: "site_id"; also a list filter */
    enum store_kind parent_kind; /* API_SCOPE_PARENT */
    const char *parent_noun;     /* API_SCOPE_PARENT: "site" */
    const char *const *filters;  /* top-level string fields a list filters on exactly */
    bool cascade;                /* DELETE takes ?cascade=true (it has children) */
    /* Completes b for a create (old NULL) or a replace of old: the unique
     * name, refs, server-set fields; checks what the table cannot. Runs
     * after the read point, so what it reads holds at apply (the write is
     * pinned). Returns 0, or CAIRN_EINVAL with err filled. May be NULL. */
    int (*build)(struct api *api, const struct store_object *old, struct api_build *b,
                 struct api_error *err);
    /* Adds server fields to the answer's form of o (the body, with id and
     * revisions set); 0 or CAIRN_ENOMEM. May be NULL. */
    int (*decorate)(struct api *api, const struct store_object *o, json_t *body);
    /* False if the caller may not know o exists (beyond rbac_decide). */
    bool (*visible)(struct api_req *req, const struct store_object *o);
    /* 0 if o may be deleted now, else the status answered. May be NULL. */
    int (*deletable)(struct api_req *req, const struct store_object *o);
};

extern const struct api_resource api_site_resource;
extern const struct api_resource api_device_resource;
extern const struct api_resource api_template_resource;
extern const struct api_resource api_service_resource;
extern const struct api_resource api_job_resource;

/* The resource of kind, or NULL. */
const struct api_resource *api_resource_of(enum store_kind kind);

/* The answer's form of a stored object of r. NULL if its body is
 * unreadable or memory ran out. api (for server fields such as a device's
 * owner) may be NULL. */
json_t *api_resource_json(struct api *api, const struct api_resource *r,
                          const struct store_object *o);

/* The answer's form of any stored object a client may see, by its kind;
 * NULL for kinds never shown (sessions, members, settings). */
json_t *api_object_json(struct api *api, const struct store_object *o);

/* Reads the object of the path at a read point (linearizable for writes)
 * and checks the caller's right to do action on it. Returns 0 with *o
 * filled (release it), or the status answered (404 for missing or hidden,
 * 403, 400 for a bad id). */
int api_resource_load(struct api_req *req, const struct api_resource *r, enum rbac_action action,
                      struct store_object *o);

/* The steps of the generic handlers, for resources that answer otherwise
 * (202 with a job): each returns 0 with a successful *res, or the status
 * answered. With req->dry_run set, create and update check everything as
 * for real and hand the build over instead of proposing it (*res is not
 * written). */
int api_resource_create(struct api_req *req, const struct api_resource *r,
                        struct store_result *res);
int api_resource_replace(struct api_req *req, const struct api_resource *r,
                         struct store_result *res);
int api_resource_remove(struct api_req *req, const struct api_resource *r,
                        struct store_result *res);
/* A read-check-write of the path's object: change edits b (whose stored
 * body starts as a copy of changes, or of the stored body if changes is
 * NULL) after the object was read and authorized for action; the write is
 * pinned to the read and retried on a race. */
int api_resource_update(struct api_req *req, const struct api_resource *r, enum rbac_action action,
                        const json_t *changes,
                        int (*change)(struct api_req *req, const struct store_object *old,
                                      struct api_build *b, void *arg),
                        void *arg, struct store_result *res);
/* Answers a create: status (201, 202), Location, the object as stored. */
int api_resource_created(struct api_req *req, const struct api_resource *r,
                         const struct store_result *res, int status, const char *extra_headers);

/* api_catalog.c: validates a service's parameters against a template's
 * parameter schema, filling in defaults (0 or CAIRN_EINVAL with err). */
int api_template_params_check(const json_t *schema, json_t *params, struct api_error *err);
/* True if tmpl is published and offered to tenant (public, or named in the
 * tenant's allowed_templates). */
bool api_template_offered(struct api *api, const struct store_object *tmpl, const char *tenant);
int api_template_publish(struct api_req *req);

/* api_services.c: queues a job (state queued, one task per device id) with
 * the given id; target_id may be NULL (a dry run's new service), extra
 * (may be NULL) holds more fields of the job's body. 0 with *res filled
 * or the status answered. */
int api_job_queue(struct api_req *req, const char *job_id, const char *type,
                  enum store_kind target_kind, const char *target_id, const char *tenant,
                  const json_t *device_ids, const json_t *extra, struct store_result *res);
/* Answers 202 with the job res wrote and its Location. */
int api_job_accepted(struct api_req *req, const struct store_result *res);
/* Job types: run by the devices' owners (service jobs, dry runs, drift
 * checks, sync-froms), and those of them that realize a service write. */
bool api_job_on_devices(const char *type);
/* The devices a service's targets name now: its device_ids and every
 * device of its site_ids, and those of also (another version's targets, or
 * NULL), each once. *out is a new array, the caller's. */
int api_service_devices(struct api *api, const char *tenant, const json_t *targets,
                        const json_t *also, json_t **out);
bool api_job_service_write(const char *type);
int api_services_post(struct api_req *req);
int api_service_put(struct api_req *req);
int api_service_delete(struct api_req *req);
int api_job_cancel(struct api_req *req);
/* api_device_ops.c: POST /api/v1/devices/{id}/onboard, /check-drift and
 * /sync-from: 202 and a job run by the device's owner. */
int api_device_onboard(struct api_req *req);
int api_device_check_drift(struct api_req *req);
int api_device_sync_from(struct api_req *req);
/* POST /api/v1/imports: a bulk import of sites and devices, run as a job. */
int api_imports_post(struct api_req *req);

/* jobs.c: the job runner thread (see there). */
int api_jobs_start(struct api *api, struct api_jobs **out);
void api_jobs_stop(struct api_jobs *j);

/* The handlers (req->resource says which resource). */
int api_resource_list(struct api_req *req);
int api_resource_post(struct api_req *req);
int api_resource_get(struct api_req *req);
int api_resource_put(struct api_req *req);
int api_resource_delete(struct api_req *req);

#endif /* CAIRN_API_INT_H */
