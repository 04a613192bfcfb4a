/*
 * The REST API's front door: the route table, the dispatcher that every API
 * request goes through, and the helpers all resources share. The dispatcher
 * does, in order, everything that does not depend on the resource: find the
 * route (404) and the method (405 + Allow), check the query parameters
 * against the route's list (400), and for a body-carrying method check the
 * media type (415), read the body within the size limit (413) and parse it
 * as one JSON object with duplicate keys rejected (400). Before all that,
 * every route under /api/v1 but the login authenticates its caller (401),
 * so that nothing about the API, not even which routes exist, is told to a
 * client without a valid token. Only then does a resource handler
 * (api_tenants.c, api_users.c, api_auth.c, api_cluster.c, api_ownership.c) see the request,
 * so each handler authorizes, validates fields and talks to the store and
 * the backend, nothing else.
 *
 * The shared helpers map CAIRN_E* codes to HTTP statuses and problem types
 * (one table), parse If-Match and Idempotency-Key, compute request
 * fingerprints, establish the read point a GET asks for, and propose store
 * commands through the backend.
 *
 * An api instance holds only its configuration and borrowed pointers;
 * requests keep their state on the worker's stack, so several instances
 * (several nodes in one test process) never share anything.
 */
#include "api_int.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <civetweb.h>
#include <sodium.h>

#include "metrics.h"

/* Problem types and their titles (the title is the same for every
 * occurrence of a type, as RFC 9457 asks). `audit`: a write refused with
 * this type is refused by the API before anything is proposed, so nothing
 * else records it: problem_va files it in the audit log with this code.
 * Refusals that other paths already record (403, the 404 of a hidden
 * object, a state machine's refusal after a proposal) have 0. */
static const struct {
    const char *type;
    const char *title;
    int audit;
} problem_titles[] = {
    {"unauthorized", "Authentication required", 0},
    {"forbidden", "Forbidden", 0},
    {"too-many-requests", "Too many failed logins", 0},
    {"not-found", "Resource not found", 0},
    {"events-expired", "Events no longer kept", 0},
    {"method-not-allowed", "Method not allowed", 0},
    {"conflict", "Conflict with the current state", 0},
    {"busy", "Another operation is in progress", 0},
    {"precondition-failed", "Precondition failed", 0},
    {"idempotency-key-reused", "Idempotency key reused with a different request", 0},
    {"invalid-request", "Request rejected", 0},
    {"unavailable", "Service unavailable", 0},
    {"body-too-large", "Request body too large", 0},
    {"unsupported-media-type", "Unsupported media type", CAIRN_EINVAL},
    {"malformed-json", "Malformed JSON", CAIRN_EINVAL},
    {"invalid-body", "Invalid request body", CAIRN_EINVAL},
    {"unknown-field", "Unknown field", CAIRN_EINVAL},
    {"read-only-field", "Read-only field", CAIRN_EINVAL},
    {"missing-field", "Missing field", CAIRN_EINVAL},
    {"invalid-field", "Invalid field", CAIRN_EINVAL},
    {"unknown-parameter", "Unknown query parameter", CAIRN_EINVAL},
    {"invalid-parameter", "Invalid query parameter", CAIRN_EINVAL},
    {"invalid-header", "Invalid header", CAIRN_EINVAL},
    {"not-ready", "Not ready", 0},
    {"not-implemented", "Not implemented", 0},
    {"internal", "Internal error", 0},
    {"unsafe-membership-change", "Membership change would leave the cluster without quorum",
     CAIRN_ECONFLICT},
    {"cluster-version", "The cluster's command version is too old for this write", 0},
    {"device-unmanaged", "The device is unmanaged", CAIRN_ECONFLICT},
    {"device-not-onboarded", "The device is not onboarded", CAIRN_ECONFLICT},
};

static size_t problem_index(const char *type)
{
    size_t i;
    for (i = 0; i < sizeof problem_titles / sizeof problem_titles[0]; i++) {
        if (strcmp(problem_titles[i].type, type) == 0) {
            break;
        }
    }
    return i;
}

/* How each backend or store error is answered; anything else is a 500. */
static const struct {
    int code;
    struct api_status answer;
} error_statuses[] = {
    {CAIRN_ENOTFOUND, {404, "not-found"}},
    {CAIRN_EEXIST, {409, "conflict"}},
    {CAIRN_ECONFLICT, {409, "conflict"}},
    {CAIRN_EBUSY, {409, "busy"}},
    {CAIRN_EPRECONDITION, {412, "precondition-failed"}},
    {CAIRN_ETOOBIG, {413, "body-too-large"}},
    {CAIRN_EIDEMPOTENCY, {422, "idempotency-key-reused"}},
    {CAIRN_EINVAL, {422, "invalid-request"}},
    {CAIRN_ENOLEADER, {503, "unavailable"}},
    {CAIRN_ENOTLEADER, {503, "unavailable"}},
    {CAIRN_ETIMEDOUT, {503, "unavailable"}},
    {CAIRN_EUNAVAILABLE, {503, "unavailable"}},
    {CAIRN_EFORBIDDEN, {403, "forbidden"}},
    {CAIRN_ESHUTDOWN, {503, "unavailable"}},
    {CAIRN_EUNSUPPORTED, {409, "cluster-version"}},
};

struct api_status api_status_of(int code)
{
    struct api_status internal = {500, "internal"};
    for (size_t i = 0; i < sizeof error_statuses / sizeof error_statuses[0]; i++) {
        if (error_statuses[i].code == code) {
            return error_statuses[i].answer;
        }
    }
    return internal;
}

static int problem_va(struct api_req *req, int status, const char *type, const char *field,
                      const char *extra_headers, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

static bool method_writes(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

/* The kind of object a refused write was about, for its audit record: the
 * route's resource, else the first segment after /api/v1/. */
static enum store_kind refused_kind(const struct api_req *req)
{
    static const struct {
        const char *prefix;
        enum store_kind kind;
    } kinds[] = {
        {"/api/v1/tenants", STORE_KIND_TENANT}, {"/api/v1/users", STORE_KIND_USER},
        {"/api/v1/auth", STORE_KIND_SESSION},   {"/api/v1/cluster/members", STORE_KIND_MEMBER},
        {"/api/v1/imports", STORE_KIND_JOB},    {"/api/v1/jobs", STORE_KIND_JOB},
        {"/api/v1/devices", STORE_KIND_DEVICE}, {"/api/v1/services", STORE_KIND_SERVICE},
    };
    if (req->resource != NULL) {
        return req->resource->kind;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strncmp(req->path, kinds[i].prefix, strlen(kinds[i].prefix)) == 0) {
            return kinds[i].kind;
        }
    }
    return STORE_KIND_SYSTEM;
}

static int problem_va(struct api_req *req, int status, const char *type, const char *field,
                      const char *extra_headers, const char *fmt, va_list ap)
{
    size_t i = problem_index(type);
    bool known = i < sizeof problem_titles / sizeof problem_titles[0];
    char detail[256];
    va_list copy;

    if (known && problem_titles[i].audit != 0 && req->authenticated && method_writes(req->method)) {
        va_copy(copy, ap);
        vsnprintf(detail, sizeof detail, fmt, copy);
        va_end(copy);
        api_audit_refusal(req, refused_kind(req), req->path_id, NULL, problem_titles[i].audit,
                          "%s: %s %s: %s%s%s", type, req->method, req->path,
                          field != NULL ? field : "", field != NULL ? ": " : "", detail);
    }
    return http_problem_va(req->conn, status, extra_headers, type,
                           known ? problem_titles[i].title : NULL, field, fmt, ap);
}

int api_problem(struct api_req *req, int status, const char *type, const char *field,
                const char *extra_headers, const char *fmt, ...)
{
    va_list ap;
    int rv;
    va_start(ap, fmt);
    rv = problem_va(req, status, type, field, extra_headers, fmt, ap);
    va_end(ap);
    return rv;
}

int api_error_send(struct api_req *req, const struct api_error *err)
{
    return api_problem(req, err->status, err->type, err->field[0] != '\0' ? err->field : NULL, NULL,
                       "%s", err->detail);
}

int api_error_set(struct api_error *err, int status, const char *type, const char *field,
                  const char *fmt, ...)
{
    va_list ap;
    if (err == NULL) {
        return CAIRN_EINVAL;
    }
    err->status = status;
    err->type = type;
    snprintf(err->field, sizeof err->field, "%s", field != NULL ? field : "");
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
    return CAIRN_EINVAL;
}

int api_fail(struct api_req *req, int code, const char *detail, const char *extra_headers)
{
    struct api_status answer = api_status_of(code);
    char headers[512];
    snprintf(headers, sizeof headers, "%s%s", answer.status == 503 ? "Retry-After: 1\r\n" : "",
             extra_headers != NULL ? extra_headers : "");
    return api_problem(req, answer.status, answer.type, NULL, headers, "%s",
                       detail != NULL && detail[0] != '\0' ? detail : cairn_strerror(code));
}

int api_reply_json(struct api_req *req, int status, json_t *obj, const char *extra_headers)
{
    char *text;
    if (obj == NULL) {
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory building the answer");
    }
    text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (text == NULL) {
        return api_problem(req, 500, "internal", NULL, NULL, "out of memory building the answer");
    }
    http_reply(req->conn, status, "application/json", extra_headers, text, strlen(text));
    free(text);
    return status;
}

const char *api_param(const struct api_req *req, const char *name)
{
    for (size_t i = 0; i < req->n_params; i++) {
        if (strcmp(req->params[i].name, name) == 0) {
            return req->params[i].value;
        }
    }
    return NULL;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes %XX escapes and '+' (form encoding) in place. A NUL produced by
 * "%00" or a broken escape fails: neither belongs in a parameter. */
static bool url_decode(char *s)
{
    char *out = s;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '%') {
            int hi = hex_value(p[1]);
            int lo = hi < 0 ? -1 : hex_value(p[2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return false;
            }
            *out++ = (char)(hi * 16 + lo);
            p += 2;
        } else if (*p == '+') {
            *out++ = ' ';
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
    return true;
}

static bool name_allowed(const char *const *allowed, const char *name)
{
    for (size_t i = 0; allowed != NULL && allowed[i] != NULL; i++) {
        if (strcmp(allowed[i], name) == 0) {
            return true;
        }
    }
    return false;
}

int api_query_parse(struct api_req *req, const char *query, const char *const *allowed,
                    struct api_error *err)
{
    char *save = NULL;
    req->n_params = 0;
    if (query == NULL || query[0] == '\0') {
        return 0;
    }
    free(req->query);
    req->query = strdup(query);
    if (req->query == NULL) {
        return api_error_set(err, 500, "internal", NULL, "out of memory");
    }
    for (char *pair = strtok_r(req->query, "&", &save); pair != NULL;
         pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        const char *value = "";
        if (eq != NULL) {
            *eq = '\0';
            value = eq + 1;
        }
        if (!url_decode(pair)) {
            return api_error_set(err, 400, "invalid-parameter", NULL,
                                 "the query string has a bad %%-escape; encode parameters "
                                 "as application/x-www-form-urlencoded");
        }
        if (eq != NULL && !url_decode(eq + 1)) {
            return api_error_set(err, 400, "invalid-parameter", pair,
                                 "query parameter \"%s\" has a bad %%-escape; encode "
                                 "parameters as application/x-www-form-urlencoded",
                                 pair);
        }
        if (!name_allowed(allowed, pair)) {
            char names[128] = "";
            for (size_t i = 0; allowed != NULL && allowed[i] != NULL; i++) {
                strncat(names, i > 0 ? ", " : "", sizeof names - strlen(names) - 1);
                strncat(names, allowed[i], sizeof names - strlen(names) - 1);
            }
            return api_error_set(err, 400, "unknown-parameter", pair,
                                 "unknown query parameter \"%s\"; this route takes %s%s", pair,
                                 names[0] != '\0' ? "only " : "no parameters", names);
        }
        if (api_param(req, pair) != NULL) {
            return api_error_set(err, 400, "invalid-parameter", pair,
                                 "query parameter \"%s\" is given more than once", pair);
        }
        if (req->n_params == API_MAX_PARAMS) {
            return api_error_set(err, 400, "invalid-parameter", pair, "too many parameters");
        }
        req->params[req->n_params].name = pair;
        req->params[req->n_params].value = value;
        req->n_params++;
    }
    return 0;
}

int api_read_point(struct api_req *req)
{
    const char *consistency = api_param(req, "consistency");
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    int rv;

    if (consistency != NULL && strcmp(consistency, "stale") == 0) {
        return 0;
    }
    if (consistency != NULL && strcmp(consistency, "linearizable") != 0) {
        return api_problem(req, 400, "invalid-parameter", "consistency", NULL,
                           "consistency must be \"linearizable\" (the default) or \"stale\"");
    }
    rv = req->api->backend.read_barrier(req->api->backend.data, req->deadline_ms, errmsg,
                                        sizeof errmsg);
    if (rv != 0) {
        cairn_errmsg_wrap(errmsg, sizeof errmsg, "linearizable read");
        return api_fail(req, rv, errmsg, NULL);
    }
    return 0;
}

int api_if_match_parse(const char *value, uint64_t *if_match)
{
    char digits[32];
    size_t len;
    uint64_t n;

    if (value == NULL) {
        *if_match = 0;
        return 0;
    }
    while (*value == ' ' || *value == '\t') {
        value++;
    }
    len = strlen(value);
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t')) {
        len--;
    }
    if (len == 1 && value[0] == '*') {
        *if_match = 0;
        return 0;
    }
    if (len < 3 || len - 2 >= sizeof digits || value[0] != '"' || value[len - 1] != '"') {
        return CAIRN_EINVAL;
    }
    memcpy(digits, value + 1, len - 2);
    digits[len - 2] = '\0';
    if (cairn_parse_u64(digits, &n) != 0 || n == 0) {
        return CAIRN_EINVAL;
    }
    *if_match = n;
    return 0;
}

uint64_t api_fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t api_fingerprint(const char *method, const char *path, const void *body, size_t len)
{
    uint64_t h = API_FNV_OFFSET;
    h = api_fnv1a(h, method, strlen(method) + 1);
    h = api_fnv1a(h, path, strlen(path) + 1);
    return api_fnv1a(h, body, len);
}

/* The store keeps request ids of at most 256 bytes. */
#define STORE_REQUEST_ID_MAX 256
#define IDEM_PREFIX          "idem:"

int api_idempotency_parse(const char *key, char request_id[API_REQUEST_ID_SIZE])
{
    size_t len = key != NULL ? strlen(key) : 0;
    size_t prefix = sizeof IDEM_PREFIX - 1;
    if (len < 1 || len > 255) {
        return CAIRN_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (key[i] < 0x20 || key[i] > 0x7e) {
            return CAIRN_EINVAL;
        }
    }
    if (prefix + len <= STORE_REQUEST_ID_MAX) {
        snprintf(request_id, API_REQUEST_ID_SIZE, IDEM_PREFIX "%s", key);
    } else {
        /* Keep the id within the store's limit: the head of the key, '~'
         * and a hash of the whole key. The fingerprint still guards a
         * (most unlikely) collision of two such keys. */
        size_t head = STORE_REQUEST_ID_MAX - prefix - 1 - 16;
        snprintf(request_id, API_REQUEST_ID_SIZE, IDEM_PREFIX "%.*s~%016llx", (int)head, key,
                 (unsigned long long)api_fnv1a(API_FNV_OFFSET, key, len));
    }
    return 0;
}

void api_request_id_fresh(char request_id[API_REQUEST_ID_SIZE])
{
    char uuid[CAIRN_UUID_SIZE];
    cairn_uuid(uuid);
    snprintf(request_id, API_REQUEST_ID_SIZE, "req:%s", uuid);
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    return p;
}

bool api_content_type_ok(const char *value)
{
    static const char json[] = "application/json";
    const char *p;
    if (value == NULL) {
        return false;
    }
    p = skip_space(value);
    if (strncasecmp(p, json, sizeof json - 1) != 0) {
        return false;
    }
    p = skip_space(p + sizeof json - 1);
    /* Parameters: only charset, and JSON is UTF-8 (RFC 8259 §8.1). */
    while (*p == ';') {
        static const char charset[] = "charset=";
        static const char utf8[] = "utf-8";
        p = skip_space(p + 1);
        if (strncasecmp(p, charset, sizeof charset - 1) != 0) {
            return false;
        }
        p += sizeof charset - 1;
        if (*p == '"') {
            if (strncasecmp(p + 1, utf8, sizeof utf8 - 1) != 0 || p[sizeof utf8] != '"') {
                return false;
            }
            p += sizeof utf8 + 1;
        } else {
            if (strncasecmp(p, utf8, sizeof utf8 - 1) != 0) {
                return false;
            }
            p += sizeof utf8 - 1;
        }
        p = skip_space(p);
    }
    return *p == '\0';
}

int api_body_parse(const char *data, size_t len, json_t **out, struct api_error *err)
{
    json_error_t jerr;
    json_t *body =
        json_loadb(data != NULL ? data : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (body == NULL) {
        return api_error_set(err, 400, "malformed-json", NULL,
                             "the body is not valid JSON: line %d, column %d: %s", jerr.line,
                             jerr.column, jerr.text);
    }
    if (!json_is_object(body)) {
        api_error_set(err, 400, "invalid-body", NULL, "the body must be a JSON object, not %s",
                      api_json_type_name(body));
        json_decref(body);
        return CAIRN_EINVAL;
    }
    *out = body;
    return 0;
}

static int propose_encoded(struct api *api, const struct store_command *cmd,
                           struct store_object *obj, uint64_t deadline_ms, struct store_result *res,
                           char *errmsg, size_t errmsg_size)
{
    const struct api_backend *b = &api->backend;
    void *buf;
    size_t len;
    int rv;

    rv = store_command_encode(cmd, &buf, &len);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "encode the store command: %s", cairn_strerror(rv));
        return rv == CAIRN_EINVAL ? CAIRN_EMALFORMED : rv;
    }
    memset(res, 0, sizeof *res);
    rv = b->propose(b->data, buf, len, cmd->kind, obj, deadline_ms, res, errmsg, errmsg_size);
    free(buf);
    return rv;
}

int api_propose_quiet(struct api *api, const struct store_command *cmd, uint64_t deadline_ms,
                      struct store_result *res, char *errmsg, size_t errmsg_size)
{
    return propose_encoded(api, cmd, NULL, deadline_ms, res, errmsg, errmsg_size);
}

int api_propose(struct api_req *req, const struct store_command *cmd, struct store_result *res)
{
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    struct store_object *obj = NULL;
    int rv;
    if (req->written_from_leader) {
        store_object_release(&req->written);
        obj = &req->written;
    }
    rv = propose_encoded(req->api, cmd, obj, req->deadline_ms, res, errmsg, sizeof errmsg);
    /* Applied, the command is audited with its caller, refused or not; a
     * problem answered from here on is not audited a second time. */
    req->audited = true;
    if (rv == CAIRN_EMALFORMED || rv == CAIRN_ENOMEM) {
        return api_problem(req, 500, "internal", NULL, NULL, "%s", errmsg);
    }
    if (rv != 0) {
        return api_fail(req, rv, errmsg, NULL);
    }
    return 0;
}

void api_command_init_as(struct store_command *cmd, enum store_op op, enum store_kind kind,
                         const char *caller)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->version = STORE_COMMAND_VERSION;
    cmd->op = op;
    cmd->kind = kind;
    cmd->time_ms = cairn_wall_ms();
    cmd->caller = caller;
}

void api_command_init(const struct api_req *req, struct store_command *cmd, enum store_op op,
                      enum store_kind kind)
{
    api_command_init_as(cmd, op, kind, req->authenticated ? req->who.username : NULL);
}

int api_list_params(struct api_req *req, size_t *limit, const char **cursor)
{
    const char *value = api_param(req, "limit");
    uint64_t n = API_LIST_LIMIT_DEFAULT;

    if (value != NULL && (cairn_parse_u64(value, &n) != 0 || n < 1 || n > API_LIST_LIMIT_MAX)) {
        return api_problem(req, 400, "invalid-parameter", "limit", NULL,
                           "limit must be an integer from 1 to %d", API_LIST_LIMIT_MAX);
    }
    *limit = (size_t)n;
    *cursor = api_param(req, "cursor");
    if (*cursor != NULL && !cairn_uuid_valid(*cursor)) {
        return api_problem(req, 400, "invalid-parameter", "cursor", NULL,
                           "cursor must be the next_cursor of a previous page, unchanged");
    }
    return 0;
}

int api_bool_param(struct api_req *req, const char *name, bool *out)
{
    const char *value = api_param(req, name);
    if (value == NULL || strcmp(value, "false") == 0) {
        *out = false;
        return 0;
    }
    if (strcmp(value, "true") == 0) {
        *out = true;
        return 0;
    }
    return api_problem(req, 400, "invalid-parameter", name, NULL,
                       "%s must be \"true\" or \"false\"", name);
}

int api_if_match(struct api_req *req, uint64_t *if_match)
{
    if (api_if_match_parse(mg_get_header(req->conn, "If-Match"), if_match) != 0) {
        return api_problem(req, 400, "invalid-header", "If-Match", NULL,
                           "If-Match must be an ETag as returned by a read (for example "
                           "\"\\\"12\\\"\") or *");
    }
    return 0;
}

int api_not_found(struct api_req *req, const char *noun, const char *id)
{
    char headers[128];
    snprintf(headers, sizeof headers, "X-Cairn-Revision: %llu\r\n",
             (unsigned long long)store_revision(req->api->store));
    return api_problem(req, 404, "not-found", NULL, headers, "no %s with id %s", noun, id);
}

int api_result_failed(struct api_req *req, const struct store_result *res)
{
    char headers[128];
    snprintf(headers, sizeof headers, "X-Cairn-Revision: %llu\r\n%s",
             (unsigned long long)res->revision,
             res->replayed ? "Idempotent-Replayed: true\r\n" : "");
    return api_fail(req, res->status, res->message, headers);
}

void api_time_format(int64_t ms, char out[API_TIME_SIZE])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL ||
        strftime(out, API_TIME_SIZE, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, API_TIME_SIZE, "1970-01-01T00:00:00Z");
    }
}

/* The routes (struct api_route in api_int.h). */
#define METHOD_BODY API_METHOD_BODY

#define ROUTE_METHODS_MAX API_ROUTE_METHODS_MAX

static const char *const read_params[] = {"consistency", NULL};
static const char *const list_params[] = {"consistency", "limit", "cursor", "name", NULL};
static const char *const user_list_params[] = {"consistency", "limit",     "cursor",
                                               "name",        "tenant_id", NULL};
static const char *const cascade_params[] = {"cascade", NULL};
static const char *const site_list_params[] = {"consistency", "limit", "cursor", "tenant_id",
                                               "name",        "role",  NULL};
static const char *const device_list_params[] = {"consistency", "limit",  "cursor", "tenant_id",
                                                 "site_id",     "serial", "family", "desired_state",
                                                 "name",        NULL};
static const char *const template_list_params[] = {"consistency", "limit", "cursor", "name",
                                                   "version",     "type",  "state",  NULL};
static const char *const service_list_params[] = {"consistency",   "limit", "cursor",
                                                  "tenant_id",     "name",  "template_id",
                                                  "desired_state", "type",  NULL};
static const char *const job_list_params[] = {"consistency", "limit", "cursor", "tenant_id",
                                              "type",        "state", NULL};
static const char *const audit_params[] = {"consistency", "limit", "cursor", "user", "tenant",
                                           "kind",        "since", "until",  NULL};
static const char *const events_params[] = {"from_revision", NULL};
static const char *const force_params[] = {"force", NULL};
static const char *const dry_run_params[] = {"dry_run", NULL};

/* The one route that needs no token. */
#define LOGIN_PATH "/api/v1/auth/login"

/* Each method's trailing fields (summary, request and response field
 * tables) document it in the OpenAPI document; a resource route may leave
 * out its schemas (the resource's are used) and even its summary (one is
 * made from the resource's noun). The OpenAPI unit test names a route that
 * stays undocumented, hence no warning for missing initializers here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct api_route routes[] = {
    {"/healthz", {{"GET", api_healthz, 0, NULL, NULL, "Liveness of this node"}}},
    {"/readyz", {{"GET", api_readyz, 0, NULL, NULL, "Readiness of this node to serve the API"}}},
    {LOGIN_PATH,
     {{"POST", api_auth_login, METHOD_BODY, NULL, NULL,
       "Log in: user name and password for a token", &api_login_schema}}},
    {"/api/v1/auth/logout",
     {{"POST", api_auth_logout, 0, NULL, NULL, "Revoke the caller's token"}}},
    {"/api/v1/auth/password",
     {{"POST", api_auth_password, METHOD_BODY, NULL, NULL,
       "Change one's own password (ends one's other sessions)", &api_password_change_schema}}},
    {"/api/v1/auth/whoami", {{"GET", api_auth_whoami, 0, NULL, NULL, "The caller and its role"}}},
    {"/api/v1/cluster",
     {{"GET", api_cluster_get, 0, NULL, NULL, "The cluster's members and leader"}}},
    {"/api/v1/cluster/members",
     {{"POST", api_members_add, METHOD_BODY, NULL, NULL, "Add a node to the cluster",
       &api_member_schema}}},
    {"/api/v1/cluster/members/*",
     {{"DELETE", api_member_remove, 0, force_params, NULL, "Remove a node from the cluster"}}},
    {"/api/v1/cluster/leader/transfer",
     {{"POST", api_leader_transfer, 0, NULL, NULL,
       "Hand leadership to another voter (before restarting the leader)"}}},
    {"/api/v1/cluster/backup",
     {{"GET", api_cluster_backup, 0, NULL, NULL,
       "A consistent backup of the replicated state (application/octet-stream)"}}},
    {"/api/v1/cluster/ownership",
     {{"GET", api_ownership_get, 0, read_params, NULL,
       "Device ownership: epoch, live nodes, devices per node, movements"}}},
    {"/api/v1/tenants",
     {{"GET", api_tenants_list, API_METHOD_LIST, list_params, NULL, "List tenants", NULL,
       &api_tenant_schema},
      {"POST", api_tenants_create, METHOD_BODY | API_METHOD_CREATE, NULL, NULL, "Create a tenant",
       &api_tenant_schema, &api_tenant_schema}}},
    {"/api/v1/tenants/*",
     {{"GET", api_tenant_get, 0, read_params, NULL, "Read a tenant", NULL, &api_tenant_schema},
      {"PUT", api_tenant_replace, METHOD_BODY, NULL, NULL, "Replace a tenant", &api_tenant_schema,
       &api_tenant_schema},
      {"DELETE", api_tenant_delete, 0, cascade_params, NULL, "Delete a tenant"}}},
    {"/api/v1/users",
     {{"GET", api_users_list, API_METHOD_LIST, user_list_params, NULL, "List users", NULL,
       &api_user_schema},
      {"POST", api_users_create, METHOD_BODY | API_METHOD_CREATE, NULL, NULL, "Create a user",
       &api_user_schema, &api_user_schema}}},
    {"/api/v1/users/*",
     {{"GET", api_user_get, 0, read_params, NULL, "Read a user", NULL, &api_user_schema},
      {"PUT", api_user_replace, METHOD_BODY, NULL, NULL, "Replace a user", &api_user_schema,
       &api_user_schema},
      {"DELETE", api_user_delete, 0, NULL, NULL, "Delete a user"}}},
    {"/api/v1/sites",
     {{"GET", api_resource_list, API_METHOD_LIST, site_list_params, &api_site_resource},
      {"POST", api_resource_post, METHOD_BODY | API_METHOD_CREATE, NULL, &api_site_resource}}},
    {"/api/v1/sites/*",
     {{"GET", api_resource_get, 0, read_params, &api_site_resource},
      {"PUT", api_resource_put, METHOD_BODY, NULL, &api_site_resource},
      {"DELETE", api_resource_delete, 0, cascade_params, &api_site_resource}}},
    {"/api/v1/devices",
     {{"GET", api_resource_list, API_METHOD_LIST, device_list_params, &api_device_resource},
      {"POST", api_resource_post, METHOD_BODY | API_METHOD_CREATE, NULL, &api_device_resource}}},
    {"/api/v1/devices/*",
     {{"GET", api_resource_get, 0, read_params, &api_device_resource},
      {"PUT", api_resource_put, METHOD_BODY, NULL, &api_device_resource},
      {"DELETE", api_resource_delete, 0, NULL, &api_device_resource}}},
    {"/api/v1/devices/*/onboard",
     {{"POST", api_device_onboard, API_METHOD_ACCEPTED, NULL, NULL,
       "Onboard the device now (reconnect and re-read it if it was onboarded), without waiting "
       "for its owner's next retry; answers 202 with the job",
       NULL, &api_job_schema}}},
    {"/api/v1/devices/*/check-drift",
     {{"POST", api_device_check_drift, API_METHOD_ACCEPTED, NULL, NULL,
       "Check the device's running config against its intended one now; answers 202 with the "
       "job",
       NULL, &api_job_schema}}},
    {"/api/v1/devices/*/sync-from",
     {{"POST", api_device_sync_from, API_METHOD_ACCEPTED, NULL, NULL,
       "Adopt the device's running config as its base config; answers 202 with the job", NULL,
       &api_job_schema}}},
    {"/api/v1/templates",
     {{"GET", api_resource_list, API_METHOD_LIST, template_list_params, &api_template_resource},
      {"POST", api_resource_post, METHOD_BODY | API_METHOD_CREATE, NULL, &api_template_resource}}},
    {"/api/v1/templates/*",
     {{"GET", api_resource_get, 0, read_params, &api_template_resource},
      {"PUT", api_resource_put, METHOD_BODY, NULL, &api_template_resource},
      {"DELETE", api_resource_delete, 0, NULL, &api_template_resource}}},
    {"/api/v1/templates/*/publish",
     {{"POST", api_template_publish, 0, NULL, NULL, "Publish a draft template (immutable after)"}}},
    {"/api/v1/services",
     {{"GET", api_resource_list, API_METHOD_LIST, service_list_params, &api_service_resource},
      {"POST", api_services_post, METHOD_BODY | API_METHOD_ACCEPTED, dry_run_params,
       &api_service_resource,
       "Create a service; answers 202 with the job that deploys it (dry_run=true: a job "
       "that only diffs its devices, no service written)"}}},
    {"/api/v1/services/*",
     {{"GET", api_resource_get, 0, read_params, &api_service_resource},
      {"PUT", api_service_put, METHOD_BODY | API_METHOD_ACCEPTED, dry_run_params,
       &api_service_resource,
       "Replace a service; answers 202 with the job that deploys it (dry_run=true: a job "
       "that only diffs its devices, the service unchanged)"},
      {"DELETE", api_service_delete, API_METHOD_ACCEPTED, NULL, &api_service_resource,
       "Delete a service; answers 202 with the job that removes it"}}},
    {"/api/v1/jobs",
     {{"GET", api_resource_list, API_METHOD_LIST, job_list_params, &api_job_resource}}},
    {"/api/v1/jobs/*", {{"GET", api_resource_get, 0, read_params, &api_job_resource}}},
    {"/api/v1/jobs/*/cancel",
     {{"POST", api_job_cancel, 0, NULL, NULL, "Cancel a queued or running job"}}},
    {"/api/v1/imports",
     {{"POST", api_imports_post, METHOD_BODY | API_METHOD_ACCEPTED, NULL, NULL,
       "Import sites and devices in bulk; answers 202 with the job", &api_import_schema}}},
    {"/api/v1/audit",
     {{"GET", api_audit_list, API_METHOD_LIST, audit_params, NULL,
       "The audit log, newest first (SP roles only)"}}},
    {"/api/v1/events",
     {{"GET", api_events_stream, API_METHOD_STREAM, events_params, NULL,
       "Server-Sent Events of object changes from a revision on"}}},
    {"/api/v1/openapi.json", {{"GET", api_openapi_get, 0, NULL, NULL, "This OpenAPI document"}}},
    {"/metrics", {{"GET", api_metrics_get, API_METHOD_TEXT, NULL, NULL, "Prometheus metrics"}}},
};
#pragma GCC diagnostic pop

#define N_ROUTES (sizeof routes / sizeof routes[0])

size_t api_route_count(void)
{
    return N_ROUTES;
}

const struct api_route *api_route_at(size_t i)
{
    return i < N_ROUTES ? &routes[i] : NULL;
}

void api_pattern_name(const char *pattern, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = pattern; *p != '\0' && n + 1 < size; p++) {
        if (*p == '*') {
            n += (size_t)snprintf(out + n, size - n, "{id}");
            n = n < size ? n : size - 1;
        } else {
            out[n++] = *p;
        }
    }
    out[n < size ? n : size - 1] = '\0';
}

/* What is registered with the HTTP server: each covers its own path and
 * everything below it (civetweb prefix matching), so that every path under
 * /api/v1, routed or not, is authenticated before it is answered. */
static const char *const route_prefixes[] = {"/healthz", "/readyz", "/metrics", "/api/v1"};

bool api_path_public(const char *path)
{
    return strncmp(path, "/api/v1", 7) != 0 || (path[7] != '\0' && path[7] != '/') ||
           strcmp(path, LOGIN_PATH) == 0;
}

#define PATH_ID_MAX API_PATH_ID_MAX

static bool route_match(const char *pattern, const char *path, char id[PATH_ID_MAX])
{
    const char *p = pattern;
    const char *s = path;
    id[0] = '\0';
    while (*p != '\0' && *s != '\0') {
        if (*p == '*') {
            size_t len = strcspn(s, "/");
            if (len == 0) {
                return false;
            }
            /* A longer id is cut; it fails the handler's check anyway. */
            snprintf(id, PATH_ID_MAX, "%.*s", (int)(len < PATH_ID_MAX ? len : PATH_ID_MAX - 1), s);
            p++;
            s += len;
            continue;
        }
        if (*p != *s) {
            return false;
        }
        p++;
        s++;
    }
    return *p == '\0' && *s == '\0';
}

static const struct api_route *route_find(const char *path, char id[PATH_ID_MAX])
{
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (route_match(routes[i].pattern, path, id)) {
            return &routes[i];
        }
    }
    return NULL;
}

static int method_not_allowed(struct api_req *req, const struct api_route *route)
{
    char allow[128] = "Allow: ";
    for (size_t i = 0; i < ROUTE_METHODS_MAX && route->methods[i].method != NULL; i++) {
        if (i > 0) {
            strncat(allow, ", ", sizeof allow - strlen(allow) - 1);
        }
        strncat(allow, route->methods[i].method, sizeof allow - strlen(allow) - 1);
    }
    strncat(allow, "\r\n", sizeof allow - strlen(allow) - 1);
    return api_problem(req, 405, "method-not-allowed", NULL, allow,
                       "%s is not allowed on %s; see the Allow header", req->method, req->path);
}

/* Everything before the handler that a body-carrying method needs. */
static int body_prepare(struct api_req *req)
{
    size_t max = http_server_max_body(req->api->srv);
    struct api_error err;
    int rv;

    if (!api_content_type_ok(mg_get_header(req->conn, "Content-Type"))) {
        return api_problem(req, 415, "unsupported-media-type", "Content-Type", NULL,
                           "send the body as Content-Type: application/json");
    }
    rv = http_body_read(req->conn, max, &req->raw);
    if (rv == CAIRN_ETOOBIG) {
        return api_problem(req, 413, "body-too-large", NULL, NULL,
                           "the body is larger than the limit of %zu bytes", max);
    }
    if (rv != 0) {
        return api_problem(req, 400, "invalid-body", NULL, NULL, "reading the body failed: %s",
                           cairn_strerror(rv));
    }
    if (api_body_parse(req->raw.data, req->raw.len, &req->body, &err) != 0) {
        return api_error_send(req, &err);
    }
    return 0;
}

static int serve(struct api_req *req, const struct api_route_method *m, const char *query)
{
    struct api_error err;
    int rc;
    if (api_query_parse(req, query, m->params, &err) != 0) {
        return api_error_send(req, &err);
    }
    req->resource = m->resource;
    if ((m->flags & METHOD_BODY) != 0) {
        rc = body_prepare(req);
        if (rc != 0) {
            return rc;
        }
    }
    return m->handler(req);
}

/* Seconds on the monotonic clock, for latencies finer than a ms. */
static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dispatch_cb(struct mg_connection *conn, void *data)
{
    double started = now_seconds();
    const struct mg_request_info *ri = mg_get_request_info(conn);
    uint64_t start = cairn_now_ms();
    const struct api_route *route = NULL;
    const struct api_route_method *m = NULL;
    struct api_req req;
    char id[PATH_ID_MAX];
    int status;

    memset(&req, 0, sizeof req);
    req.api = data;
    req.conn = conn;
    req.method = ri->request_method;
    req.path = ri->local_uri;
    cairn_buf_init(&req.raw);
    req.deadline_ms = start + req.api->cfg.request_timeout_ms;

    if (!api_path_public(req.path)) {
        status = api_authenticate(&req);
        if (status != 0) {
            goto done;
        }
    }
    route = route_find(req.path, id);
    if (route == NULL) {
        status = api_problem(&req, 404, "not-found", NULL, NULL, "no resource at %s", req.path);
        goto done;
    }
    req.path_id = id[0] != '\0' ? id : NULL;
    for (size_t i = 0; i < ROUTE_METHODS_MAX && route->methods[i].method != NULL; i++) {
        if (strcmp(route->methods[i].method, req.method) == 0) {
            m = &route->methods[i];
        }
    }
    if (m == NULL) {
        status = method_not_allowed(&req, route);
        goto done;
    }
    status = serve(&req, m, ri->query_string);

done:
    json_decref(req.body);
    store_object_release(&req.written);
    cairn_buf_close(&req.raw);
    free(req.query);
    metrics_observe(req.api->metrics, route != NULL ? (size_t)(route - routes) : N_ROUTES,
                    req.method, status, now_seconds() - started);
    CAIRN_DEBUG("msg=request method=%s path=%s status=%d ms=%llu user=%s", req.method, req.path,
                status, (unsigned long long)(cairn_now_ms() - start),
                req.authenticated ? req.who.username : "-");
    return status;
}

/* The metrics registry (labelled by the route patterns) and the OpenAPI
 * document, both made once from the route table. */
static int observability_init(struct api *api)
{
    json_t *doc;
    api->route_names = calloc(N_ROUTES, sizeof *api->route_names);
    if (api->route_names == NULL) {
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < N_ROUTES; i++) {
        char name[256];
        api_pattern_name(routes[i].pattern, name, sizeof name);
        api->route_names[i] = strdup(name);
        if (api->route_names[i] == NULL) {
            return CAIRN_ENOMEM;
        }
    }
    if (metrics_create((const char *const *)api->route_names, N_ROUTES, &api->metrics) != 0) {
        return CAIRN_ENOMEM;
    }
    doc = api_openapi_document();
    api->openapi = doc != NULL ? json_dumps(doc, JSON_INDENT(1)) : NULL;
    json_decref(doc);
    if (api->openapi == NULL) {
        return CAIRN_ENOMEM;
    }
    api->openapi_len = strlen(api->openapi);
    return 0;
}

/* Frees what api_create made, in reverse order; every part may be NULL. */
static void api_destroy_parts(struct api *api)
{
    free(api->openapi);
    metrics_destroy(api->metrics);
    for (size_t i = 0; api->route_names != NULL && i < N_ROUTES; i++) {
        free(api->route_names[i]);
    }
    free(api->route_names);
    api_throttle_destroy(api->throttle);
    pthread_mutex_destroy(&api->kdf_mu);
    pthread_mutex_destroy(&api->auth_mu);
    pthread_cond_destroy(&api->kdf_cv);
    sodium_memzero(api->dummy_hash, sizeof api->dummy_hash);
    free(api);
}

int api_create(struct http_server *srv, struct store *store, const struct api_backend *backend,
               const struct api_config *cfg, struct api **out)
{
    struct api *api;
    if (srv == NULL || store == NULL || backend == NULL || cfg == NULL ||
        backend->propose == NULL || backend->read_barrier == NULL) {
        return CAIRN_EINVAL;
    }
    /* Idempotent and thread-safe; fails only without a random source. */
    if (sodium_init() < 0) {
        return CAIRN_EIO;
    }
    api = calloc(1, sizeof *api);
    if (api == NULL) {
        return CAIRN_ENOMEM;
    }
    if (api_throttle_create(API_LOGIN_THROTTLE_SLOTS, API_LOGIN_MAX_FAILURES, API_LOGIN_WINDOW_MS,
                            &api->throttle) != 0) {
        free(api);
        return CAIRN_ENOMEM;
    }
    pthread_mutex_init(&api->kdf_mu, NULL);
    pthread_mutex_init(&api->auth_mu, NULL);
    {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&api->kdf_cv, &attr);
        pthread_condattr_destroy(&attr);
    }
    api->srv = srv;
    api->store = store;
    api->backend = *backend;
    api->cfg = *cfg;
    if (api->cfg.session_ttl_ms == 0) {
        api->cfg.session_ttl_ms = API_SESSION_TTL_MS;
    }
    if (api->cfg.event_streams_max == 0) {
        api->cfg.event_streams_max = API_EVENT_STREAMS_DEFAULT;
    }
    atomic_init(&api->streams, 0);
    atomic_init(&api->stopping, false);
    if (observability_init(api) != 0) {
        api_destroy_parts(api);
        return CAIRN_ENOMEM;
    }
    if (api->backend.is_leader != NULL && api_jobs_start(api, &api->jobs) != 0) {
        api_destroy_parts(api);
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < sizeof route_prefixes / sizeof route_prefixes[0]; i++) {
        http_server_route(srv, route_prefixes[i], dispatch_cb, api);
    }
    *out = api;
    return 0;
}

void api_destroy(struct api *api)
{
    if (api == NULL) {
        return;
    }
    /* Event streams see the flag within API_EVENTS_CHECK_MS and end;
     * removing a route waits for the requests running on it, so nothing
     * uses api once it is freed. */
    atomic_store(&api->stopping, true);
    for (size_t i = 0; i < sizeof route_prefixes / sizeof route_prefixes[0]; i++) {
        http_server_route(api->srv, route_prefixes[i], NULL, NULL);
    }
    api_jobs_stop(api->jobs);
    api_destroy_parts(api);
}

int api_route_lookup(const char *path, const char *method, char id[API_PATH_ID_MAX])
{
    const struct api_route *route = route_find(path, id);
    if (route == NULL) {
        return 404;
    }
    for (size_t i = 0; i < ROUTE_METHODS_MAX && route->methods[i].method != NULL; i++) {
        if (strcmp(route->methods[i].method, method) == 0) {
            return 0;
        }
    }
    return 405;
}

int api_check_path_id(struct api_req *req, const char *noun, const char *collection)
{
    if (req->path_id == NULL || !cairn_uuid_valid(req->path_id)) {
        return api_problem(req, 400, "invalid-field", "id", NULL,
                           "the %s id in the path must be a lower-case uuid as returned by POST %s",
                           noun, collection);
    }
    return 0;
}

int api_answer_written(struct api_req *req, int status, enum store_kind kind,
                       json_t *(*to_json)(struct api *api, const struct store_object *o),
                       const struct store_result *res, const char *extra_headers)
{
    struct store_object o;
    char headers[768];
    json_t *obj;
    uint64_t etag;
    int rv = 0;

    if (req->written.id != NULL && req->written.kind == kind &&
        strcmp(req->written.id, res->id) == 0) {
        /* As the leader stored it: this node may not have applied it yet. */
        obj = to_json(req->api, &req->written);
        etag = req->written.mod_rev;
    } else if ((rv = store_object_get(req->api->store, kind, res->id, &o)) == 0) {
        obj = to_json(req->api, &o);
        etag = o.mod_rev;
        store_object_release(&o);
    } else if (rv == CAIRN_ENOTFOUND) {
        obj = json_pack("{s:s, s:I, s:I}", "id", res->id, "create_revision",
                        (json_int_t)res->create_rev, "mod_revision", (json_int_t)res->mod_rev);
        etag = res->mod_rev;
    } else {
        return api_problem(req, 500, "internal", NULL, NULL, "read back %s: %s", res->id,
                           cairn_strerror(rv));
    }
    snprintf(headers, sizeof headers, "ETag: \"%llu\"\r\nX-Cairn-Revision: %llu\r\n%s",
             (unsigned long long)etag, (unsigned long long)res->revision,
             extra_headers != NULL ? extra_headers : "");
    return api_reply_json(req, status, obj, headers);
}

int api_list_render(struct api *api, const struct store_list *list,
                    json_t *(*to_json)(struct api *api, const struct store_object *o),
                    json_t *items, json_t **next)
{
    int rv = 0;
    for (size_t i = 0; i < list->n && rv == 0; i++) {
        json_t *obj = to_json(api, &list->items[i]);
        rv = obj == NULL ? CAIRN_ENOMEM : json_array_append_new(items, obj);
    }
    if (rv == 0 && list->more && list->n > 0) {
        *next = json_string(list->items[list->n - 1].id);
    }
    return rv;
}
