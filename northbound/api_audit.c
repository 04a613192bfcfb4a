/*
 * The audit log, GET /api/v1/audit: every applied write that had a caller
 * (successful or refused by the state machine) and every write the API
 * refused before proposing it (api_access.c), newest first, with filters
 * and cursor paging over the store's audit sequence.
 *
 * Only the service provider's roles read it: the route is not an object, so
 * a tenant user gets 403 (the route's existence is public in the OpenAPI
 * document), never a 404. The decision is rbac.c's, for a read of a
 * provider-level setting.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int api_time_parse(const char *s, int64_t *ms)
{
    int year, mon, day, hour, min, sec, off_h = 0, off_m = 0;
    long frac_ms = 0;
    const char *p = s + 19;
    struct tm tm;
    int64_t secs;

    if (strlen(s) < 20 || !digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &mon) ||
        s[7] != '-' || !digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s + 11, 2, &hour) || s[13] != ':' || !digits(s + 14, 2, &min) || s[16] != ':' ||
        !digits(s + 17, 2, &sec)) {
        return CAIRN_EINVAL;
    }
    if (*p == '.') {
        long scale = 100;
        p++;
        if (*p < '0' || *p > '9') {
            return CAIRN_EINVAL;
        }
        for (; *p >= '0' && *p <= '9'; p++) {
            frac_ms += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && digits(p + 1, 2, &off_h) && p[3] == ':' &&
               digits(p + 4, 2, &off_m)) {
        if (*p == '-') {
            off_h = -off_h;
            off_m = -off_m;
        }
        p += 6;
    } else {
        return CAIRN_EINVAL;
    }
    if (*p != '\0' || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
        sec > 60 || off_h > 23 || off_h < -23 || off_m > 59 || off_m < -59) {
        return CAIRN_EINVAL;
    }
    memset(&tm, 0, sizeof tm);
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    secs = (int64_t)timegm(&tm);
    if (tm.tm_mday != day) {
        return CAIRN_EINVAL; /* 31 April and the like */
    }
    secs -= (int64_t)off_h * 3600 + (int64_t)off_m * 60;
    *ms = secs * 1000 + frac_ms;
    return 0;
}

/* "create", "update", ...; a write the API refused is "refused". */
static const char *action_name(enum store_op op)
{
    switch (op) {
        case STORE_OP_CREATE:
            return "create";
        case STORE_OP_UPDATE:
            return "update";
        case STORE_OP_DELETE:
            return "delete";
        case STORE_OP_PUT:
            return "put";
        case STORE_OP_AUDIT:
            return "refused";
    }
    return "unknown";
}

/* The answer's status of a record: the HTTP status the caller got, and
 * the problem type for a failure ("ok" for a success). */
static struct api_status record_status(const struct store_audit *a)
{
    struct api_status ok = {a->op == STORE_OP_CREATE   ? 201
                            : a->op == STORE_OP_DELETE ? 204
                                                       : 200,
                            "ok"};
    return a->status == 0 ? ok : api_status_of(a->status);
}

static json_t *record_json(const struct store_audit *a)
{
    char time[API_TIME_SIZE];
    const char *kind = api_kind_name(a->kind);
    struct api_status st = record_status(a);
    api_time_format(a->time_ms, time);
    return json_pack("{s:I, s:s, s:s?, s:s?, s:s, s:s?, s:s?, s:i, s:s, s:s?, s:I}", "seq",
                     (json_int_t)a->seq, "time", time, "user", a->caller, "tenant", a->tenant,
                     "action", action_name(a->op), "kind", kind, "id", a->id, "status", st.status,
                     "result", st.type, "message", a->message, "revision", (json_int_t)a->revision);
}

/* Fills q from the request's filters; returns 0 or the status answered. */
static int filters_parse(struct api_req *req, struct store_audit_query *q)
{
    static const struct {
        const char *name;
        size_t offset;
    } times[] = {{"since", offsetof(struct store_audit_query, from_ms)},
                 {"until", offsetof(struct store_audit_query, to_ms)}};
    const char *kind = api_param(req, "kind");
    const char *tenant = api_param(req, "tenant");
    const char *cursor = api_param(req, "cursor");
    const char *limit = api_param(req, "limit");
    uint64_t n = API_LIST_LIMIT_DEFAULT;

    memset(q, 0, sizeof *q);
    q->caller = api_param(req, "user");
    if (limit != NULL && (cairn_parse_u64(limit, &n) != 0 || n < 1 || n > API_LIST_LIMIT_MAX)) {
        return api_problem(req, 400, "invalid-parameter", "limit", NULL,
                           "limit must be an integer from 1 to %d", API_LIST_LIMIT_MAX);
    }
    q->limit = (size_t)n;
    if (cursor != NULL && (cairn_parse_u64(cursor, &q->after) != 0 || q->after == 0)) {
        return api_problem(req, 400, "invalid-parameter", "cursor", NULL,
                           "cursor must be the next_cursor of a previous page, unchanged");
    }
    if (kind != NULL && api_kind_parse(kind, &q->kind) != 0) {
        return api_problem(req, 400, "invalid-parameter", "kind", NULL,
                           "kind must be an object kind as the API names it (tenant, user, "
                           "site, device, template, service, job, member, session, setting)");
    }
    if (tenant != NULL && !cairn_uuid_valid(tenant)) {
        return api_problem(req, 400, "invalid-parameter", "tenant", NULL,
                           "tenant must be a tenant's id (a lower-case uuid)");
    }
    q->tenant = tenant;
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        const char *value = api_param(req, times[i].name);
        int64_t *ms = (int64_t *)(void *)((char *)q + times[i].offset);
        if (value != NULL && (api_time_parse(value, ms) != 0 || *ms <= 0)) {
            return api_problem(req, 400, "invalid-parameter", times[i].name, NULL,
                               "%s must be an RFC 3339 time after 1970, for example "
                               "\"2026-01-02T03:04:05Z\"",
                               times[i].name);
        }
    }
    if (q->from_ms != 0 && q->to_ms != 0 && q->from_ms > q->to_ms) {
        return api_problem(req, 400, "invalid-parameter", "until", NULL,
                           "until must not be before since");
    }
    return 0;
}

int api_audit_list(struct api_req *req)
{
    struct rbac_principal p = api_rbac_principal(req);
    struct store_audit_query q;
    struct store_audit_list l;
    char headers[64];
    uint64_t revision;
    json_t *items;
    json_t *next = json_null();
    int rc;

    if (rbac_decide(&p, RBAC_READ, STORE_KIND_SYSTEM, NULL) != RBAC_ALLOW) {
        return api_problem(req, 403, "forbidden", NULL, NULL,
                           "role %s may not read the audit log; only the service provider's "
                           "roles may",
                           rbac_role_name(p.role));
    }
    rc = filters_parse(req, &q);
    if (rc == 0) {
        rc = api_read_point(req);
    }
    if (rc != 0) {
        return rc;
    }
    revision = store_revision(req->api->store);
    rc = store_audit_query(req->api->store, &q, &l);
    if (rc != 0) {
        return api_fail(req, rc, "read the audit log", NULL);
    }
    items = json_array();
    for (size_t i = 0; items != NULL && i < l.n; i++) {
        if (json_array_append_new(items, record_json(&l.items[i])) != 0) {
            json_decref(items);
            items = NULL;
        }
    }
    if (l.more) {
        char cursor[32];
        snprintf(cursor, sizeof cursor, "%llu", (unsigned long long)l.next);
        next = json_string(cursor);
    }
    store_audit_list_release(&l);
    if (items == NULL) {
        json_decref(next);
    }
    snprintf(headers, sizeof headers, "X-Cairn-Revision: %llu\r\n", (unsigned long long)revision);
    return api_reply_json(req, 200,
                          items != NULL
                              ? json_pack("{s:o, s:o, s:I}", "items", items, "next_cursor", next,
                                          "revision", (json_int_t)revision)
                              : NULL,
                          headers);
}
