/*
 * The event stream, GET /api/v1/events: Server-Sent Events of object
 * changes read from the store's change log, from a revision on, filtered to
 * what the caller may read. It also holds the one place that knows how each
 * kind of object is named and rendered (api_kind_name, api_object_json), so
 * that an event carries an object exactly as its GET answers it, and the
 * audit log names kinds as the API does.
 *
 * A stream, step by step (api_events_stream, then stream_run):
 *   1. find the start: ?from_revision=N, else the Last-Event-ID header,
 *      else the revision of a linearizable read point ("from now");
 *   2. refuse a start older than the change log keeps with 410
 *      "events-expired" (the client re-lists, then streams from the
 *      list's revision), one ahead of the cluster with 400;
 *   3. take one of the node's event_streams_max slots, or answer 503 with
 *      Retry-After: each stream holds one HTTP worker for its life;
 *   4. loop: note the applied index, read a page of changes after the last
 *      revision sent, send the visible ones, and when there was nothing,
 *      wait for the next apply (the backend's wait_applied: a condition
 *      variable, no polling) for at most API_EVENTS_CHECK_MS; every
 *      API_EVENTS_HEARTBEAT_MS of silence send a comment line;
 *   5. end when the client goes away (a write fails), the caller's session
 *      ends (logout, expiry) or its user changes role or tenant or is
 *      disabled or deleted (checked every API_EVENTS_CHECK_MS),
 *      the node stops (wait_applied says CAIRN_ESHUTDOWN, or api_destroy
 *      set stopping), or the change log was pruned past the stream (a slow
 *      client: a final "expired" event tells it to re-list).
 *
 * Lossless resumption: an event's "id:" is its revision. One revision may
 * change several objects (a cascade); only the last event of a revision
 * that the caller sees carries the id, so a client that loses the
 * connection in the middle of a revision resumes (Last-Event-ID) from the
 * revision before it and gets that revision again whole.
 */
#include "api_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <civetweb.h>

/* The API's names of the store's kinds (also in the audit log). */
static const struct {
    enum store_kind kind;
    const char *name;
} kinds[] = {
    {STORE_KIND_TENANT, "tenant"},     {STORE_KIND_USER, "user"},
    {STORE_KIND_SITE, "site"},         {STORE_KIND_DEVICE, "device"},
    {STORE_KIND_TEMPLATE, "template"}, {STORE_KIND_SERVICE, "service"},
    {STORE_KIND_JOB, "job"},           {STORE_KIND_MEMBER, "member"},
    {STORE_KIND_SESSION, "session"},   {STORE_KIND_SYSTEM, "setting"},
};

#define N_KINDS (sizeof kinds / sizeof kinds[0])

const char *api_kind_name(enum store_kind kind)
{
    for (size_t i = 0; i < N_KINDS; i++) {
        if (kinds[i].kind == kind) {
            return kinds[i].name;
        }
    }
    return NULL;
}

int api_kind_parse(const char *name, enum store_kind *out)
{
    for (size_t i = 0; i < N_KINDS; i++) {
        if (strcmp(kinds[i].name, name) == 0) {
            *out = kinds[i].kind;
            return 0;
        }
    }
    return CAIRN_EINVAL;
}

/* The kinds a stream carries: those a GET renders (api_object_json).
 * Sessions (their id is a token's hash), members and settings never. */
static bool kind_streamed(enum store_kind kind)
{
    return kind == STORE_KIND_TENANT || kind == STORE_KIND_USER || api_resource_of(kind) != NULL;
}

const char *api_object_scope(const struct store_object *o)
{
    return o->kind == STORE_KIND_TENANT ? o->id : o->tenant;
}

/* True if the caller may read the changed object: rbac.c's decision, then
 * the resource's own visibility (a tenant user sees only the published
 * templates offered to it). A deleted object is judged by its kind and
 * scope alone: its body is gone. */
static bool visible(struct api_req *req, const struct store_change *c)
{
    struct rbac_principal p = api_rbac_principal(req);
    const struct api_resource *r = api_resource_of(c->object.kind);
    if (!kind_streamed(c->object.kind) ||
        rbac_decide(&p, RBAC_READ, c->object.kind, api_object_scope(&c->object)) != RBAC_ALLOW) {
        return false;
    }
    if (r == NULL || r->visible == NULL) {
        return true;
    }
    /* A deleted object's body is gone, so its own visibility cannot be
     * judged: only callers for whom the hook never hides see it. */
    return c->deleted ? !rbac_role_is_tenant(p.role) : r->visible(req, &c->object);
}

/* Writes all of text; false if the client is gone. */
static bool send_text(struct api_req *req, const char *text, size_t len)
{
    return mg_write(req->conn, text, len) == (int)len;
}

/* One event: "id:" only when with_id (see the file comment). */
static int event_send(struct api_req *req, const struct store_change *c, bool with_id)
{
    const char *type = c->deleted                            ? "deleted"
                       : c->object.create_rev == c->revision ? "created"
                                                             : "updated";
    json_t *data = json_pack("{s:s, s:s, s:I}", "kind", api_kind_name(c->object.kind), "id",
                             c->object.id, "revision", (json_int_t)c->revision);
    struct cairn_buf b;
    char *text = NULL;
    int rv = CAIRN_ENOMEM;

    if (data != NULL && !c->deleted) {
        json_t *obj = api_object_json(req->api, &c->object);
        if (obj == NULL || json_object_set_new(data, "object", obj) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    if (data != NULL) {
        text = json_dumps(data, JSON_COMPACT);
        json_decref(data);
    }
    if (text == NULL) {
        return CAIRN_ENOMEM;
    }
    cairn_buf_init(&b);
    if (with_id) {
        rv = cairn_buf_printf(&b, "id: %llu\n", (unsigned long long)c->revision);
    } else {
        rv = 0;
    }
    if (rv == 0) {
        /* Compact JSON has no newline, so one data line holds it. */
        rv = cairn_buf_printf(&b, "event: %s\ndata: %s\n\n", type, text);
    }
    free(text);
    if (rv == 0 && !send_text(req, b.data, b.len)) {
        rv = CAIRN_EIO;
    }
    cairn_buf_close(&b);
    return rv;
}

/* Sends the visible changes of a page (whole revisions); *sent counts
 * them. */
static int page_send(struct api_req *req, const struct store_change_list *l, size_t *sent)
{
    size_t last = l->n; /* the previous visible item, or l->n for none */
    *sent = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (!visible(req, &l->items[i])) {
            continue;
        }
        if (last < l->n) {
            bool ends = l->items[last].revision != l->items[i].revision;
            int rv = event_send(req, &l->items[last], ends);
            if (rv != 0) {
                return rv;
            }
            (*sent)++;
        }
        last = i;
    }
    /* A page ends with a whole revision. */
    if (last == l->n) {
        return 0;
    }
    (*sent)++;
    return event_send(req, &l->items[last], true);
}

/* Waits for an apply above index, at most until deadline_ms. Returns
 * CAIRN_ESHUTDOWN when the node stops. */
static int wait_change(struct api *api, uint64_t index, uint64_t deadline_ms)
{
    if (api->backend.wait_applied != NULL) {
        int rv = api->backend.wait_applied(api->backend.data, index, deadline_ms);
        return rv == CAIRN_ESHUTDOWN ? rv : 0;
    }
    /* Without the backend's wait (unit tests): short steps, bounded by the
     * deadline. */
    for (unsigned i = 0; i < 1000 && store_applied_index(api->store) <= index &&
                         cairn_now_ms() < deadline_ms && !atomic_load(&api->stopping);
         i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Step 4 and 5 of the file comment: the stream after its headers. */
static void stream_run(struct api_req *req, uint64_t from)
{
    struct api *api = req->api;
    uint64_t last_sent = cairn_now_ms();
    uint64_t last_check = last_sent;

    while (!atomic_load(&api->stopping)) {
        uint64_t seen = store_applied_index(api->store);
        uint64_t now;
        struct store_change_list l;
        int rv = store_changes_read(api->store, from, API_EVENTS_PAGE, &l);

        if (rv == CAIRN_ENOTFOUND) {
            static const char expired[] =
                "event: expired\ndata: {\"type\":\"events-expired\",\"detail\":\"the change log "
                "no longer holds the next revision; list the objects again and stream from the "
                "list's revision\"}\n\n";
            send_text(req, expired, sizeof expired - 1);
            return;
        }
        if (rv != 0) {
            CAIRN_WARN("msg=\"event stream ends\" user=%s error=\"%s\"", req->who.username,
                       cairn_strerror(rv));
            return;
        }
        if (l.n > 0) {
            size_t sent;
            rv = page_send(req, &l, &sent);
            from = l.items[l.n - 1].revision;
            if (sent > 0) {
                last_sent = cairn_now_ms();
            }
        }
        store_change_list_release(&l);
        if (rv != 0) {
            return; /* the client is gone */
        }
        now = cairn_now_ms();
        if (now - last_check >= API_EVENTS_CHECK_MS) {
            last_check = now;
            if (!api_principal_unchanged(req)) {
                static const char ended[] = "event: session-ended\ndata: {}\n\n";
                send_text(req, ended, sizeof ended - 1);
                return;
            }
        }
        if (now - last_sent >= API_EVENTS_HEARTBEAT_MS) {
            static const char beat[] = ": heartbeat\n\n";
            if (!send_text(req, beat, sizeof beat - 1)) {
                return;
            }
            last_sent = now;
        }
        if (store_applied_index(api->store) == seen &&
            wait_change(api, seen, now + API_EVENTS_CHECK_MS) == CAIRN_ESHUTDOWN) {
            return;
        }
    }
}

/* Steps 1 and 2: the revision to stream after. Returns 0 or the status
 * answered. */
static int start_revision(struct api_req *req, uint64_t *from)
{
    const char *param = api_param(req, "from_revision");
    const char *header = mg_get_header(req->conn, "Last-Event-ID");
    const char *value = param != NULL ? param : header;
    const char *what = param != NULL ? "from_revision" : "Last-Event-ID";
    struct store_change_list l;
    uint64_t revision;
    int rv;

    /* A read point first: "now", and a node that lags learns the newest
     * revision before it judges a start. */
    rv = api_read_point(req);
    if (rv != 0) {
        return rv;
    }
    revision = store_revision(req->api->store);
    if (value == NULL) {
        *from = revision;
        return 0;
    }
    if (cairn_parse_u64(value, from) != 0) {
        return api_problem(req, 400, param != NULL ? "invalid-parameter" : "invalid-header", what,
                           NULL, "%s must be a revision: a decimal integer from 0", what);
    }
    if (*from > revision) {
        return api_problem(req, 400, param != NULL ? "invalid-parameter" : "invalid-header", what,
                           NULL, "%s %llu is ahead of the cluster's revision %llu", what,
                           (unsigned long long)*from, (unsigned long long)revision);
    }
    rv = store_changes_read(req->api->store, *from, 1, &l);
    if (rv == CAIRN_ENOTFOUND) {
        return api_problem(req, 410, "events-expired", what, NULL,
                           "revision %llu is older than the change log keeps; list the objects "
                           "again and stream from the list's revision",
                           (unsigned long long)*from + 1);
    }
    if (rv != 0) {
        return api_fail(req, rv, "read the change log", NULL);
    }
    store_change_list_release(&l);
    return 0;
}

int api_events_stream(struct api_req *req)
{
    struct api *api = req->api;
    char revision[32];
    uint64_t from;
    unsigned open;
    int rc = start_revision(req, &from);

    if (rc != 0) {
        return rc;
    }
    open = atomic_fetch_add(&api->streams, 1);
    if (open >= api->cfg.event_streams_max) {
        atomic_fetch_sub(&api->streams, 1);
        return api_problem(req, 503, "unavailable", NULL, "Retry-After: 5\r\n",
                           "this node already serves %u event streams, its limit "
                           "(event_streams_max); retry later or on another node",
                           api->cfg.event_streams_max);
    }
    /* The stream has no length: it ends when the connection closes. */
    mg_disable_connection_keep_alive(req->conn);
    snprintf(revision, sizeof revision, "%llu", (unsigned long long)from);
    mg_response_header_start(req->conn, 200);
    mg_response_header_add(req->conn, "Content-Type", "text/event-stream", -1);
    mg_response_header_add(req->conn, "Cache-Control", "no-store", -1);
    mg_response_header_add(req->conn, "X-Cairn-Revision", revision, -1);
    mg_response_header_send(req->conn);
    /* Tells the client at once that the stream is open (and from where),
     * before the first change. */
    {
        char hello[64];
        int n = snprintf(hello, sizeof hello, ": from revision %s\n\n", revision);
        if (send_text(req, hello, (size_t)n)) {
            stream_run(req, from);
        }
    }
    atomic_fetch_sub(&api->streams, 1);
    return 200;
}
