/*
 * The job runner: runs the jobs that the cluster itself carries out (bulk
 * imports today), on the leader, one at a time, resumable.
 *
 * Every node has a runner thread; only the one whose node leads acts. It
 * knows the jobs to run from the store: a full scan of the jobs when it
 * starts leading, then the change log (store_changes_read) from the scan's
 * revision on, so that it never rescans history. A job moves queued ->
 * running -> succeeded | failed | cancelled; each step, and the progress
 * in between, is a write pinned to the job's revision as the runner last
 * saw it, so a concurrent cancel (which bumps the revision) is never
 * overwritten: the runner reads the job again, sees cancel_requested, and
 * ends it as cancelled.
 *
 * Exactly-once: item i of job J is written with the request id
 * "job:J:i", so a runner that resumes a job after a leader change (or a
 * crash) replays the items already applied instead of applying them
 * twice, and records the same outcome.
 *
 * Import items are built by the same hooks as the API's creates (site and
 * device build), so an imported object is exactly what a POST would have
 * made.
 */
#include "api_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long the runner sleeps between looks when it has nothing to do. */
#define RUNNER_TICK_MS 200
/* Deadline of one write of the runner. */
#define RUNNER_WRITE_MS 3000
/* Progress is written after this many items, or this often. */
#define PROGRESS_ITEMS 200
#define PROGRESS_MS    1000
/* Most active jobs the runner tracks at once (more wait for a rescan). */
#define ACTIVE_MAX 1024
/* Changes read from the log per page, and most pages per look. */
#define CHANGES_PAGE  1000
#define CHANGES_PAGES 20
/* Bytes of diffs (and adopted configs) an on-demand job's tasks carry;
 * past that, a task says its result is in the device's status.jobs. */
#define JOB_RESULTS_MAX (1024 * 1024)

struct api_jobs {
    struct api *api;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;         /* guarded by mu */
    bool leading;      /* the node led at the last look */
    uint64_t revision; /* changes up to here are known */
    struct active_job {
        char id[CAIRN_UUID_SIZE];
        bool import;      /* an import (run here); else a service job (polled) */
        bool fresh;       /* not polled yet: look at every open task's device */
    } * active, *polling; /* polling: the copy one look goes through */
    size_t n_active;
    /* Devices whose record changed since the last look (sorted before the
     * polls): a device job looks only at these devices' outcomes, unless
     * all_dirty (a scan: the change log was not followed). */
    char (*dirty)[CAIRN_UUID_SIZE];
    size_t n_dirty;
    size_t cap_dirty;
    bool all_dirty;
};

static bool runner_stopping(struct api_jobs *j)
{
    bool stop;
    pthread_mutex_lock(&j->mu);
    stop = j->stop;
    pthread_mutex_unlock(&j->mu);
    return stop;
}

/* The body of a job the runner runs: its type is one of ours and it has
 * not ended. */
static bool runnable(const char *body, size_t len, bool *import)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    const char *type = json_string_value(json_object_get(doc, "type"));
    const char *state = json_string_value(json_object_get(doc, "state"));
    bool ok = type != NULL && state != NULL &&
              (strcmp(type, "import") == 0 || api_job_on_devices(type)) &&
              (strcmp(state, "queued") == 0 || strcmp(state, "running") == 0);
    *import = ok && strcmp(type, "import") == 0;
    json_decref(doc);
    return ok;
}

static void active_add(struct api_jobs *j, const char *id, bool import)
{
    for (size_t i = 0; i < j->n_active; i++) {
        if (strcmp(j->active[i].id, id) == 0) {
            return;
        }
    }
    if (j->n_active < ACTIVE_MAX) {
        snprintf(j->active[j->n_active].id, CAIRN_UUID_SIZE, "%s", id);
        j->active[j->n_active].fresh = true;
        j->active[j->n_active++].import = import;
    }
}

static void active_remove(struct api_jobs *j, const char *id)
{
    for (size_t i = 0; i < j->n_active; i++) {
        if (strcmp(j->active[i].id, id) == 0) {
            memmove(&j->active[i], &j->active[i + 1], (j->n_active - i - 1) * sizeof *j->active);
            j->n_active--;
            return;
        }
    }
}

static int scan_one(const struct store_object *o, void *arg)
{
    bool import;
    if (runnable(o->body, o->body_len, &import)) {
        active_add(arg, o->id, import);
    }
    return 0;
}

/* Finds every runnable job: a scan of all jobs, remembering its revision
 * (every later change is in the change log). */
static int scan(struct api_jobs *j)
{
    j->n_active = 0;
    j->all_dirty = true;
    return store_object_foreach(j->api->store, STORE_KIND_JOB, scan_one, j, &j->revision);
}

static void dirty_add(struct api_jobs *j, const char *id)
{
    if (j->all_dirty || strlen(id) >= CAIRN_UUID_SIZE) {
        return; /* every device is looked at anyway; no job names such an id */
    }
    if (j->n_dirty == j->cap_dirty) {
        size_t cap = j->cap_dirty != 0 ? 2 * j->cap_dirty : 256;
        void *p = realloc(j->dirty, cap * sizeof *j->dirty);
        if (p == NULL) {
            j->all_dirty = true; /* cannot remember: look at all of them */
            return;
        }
        j->dirty = p;
        j->cap_dirty = cap;
    }
    snprintf(j->dirty[j->n_dirty++], CAIRN_UUID_SIZE, "%s", id);
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static bool dirty_has(const struct api_jobs *j, const char *id)
{
    return j->all_dirty ||
           (j->n_dirty > 0 && bsearch(id, j->dirty, j->n_dirty, sizeof *j->dirty, id_cmp) != NULL);
}

static void follow_page(struct api_jobs *j, const struct store_change_list *changes)
{
    for (size_t i = 0; i < changes->n; i++) {
        const struct store_change *c = &changes->items[i];
        bool import;
        if (c->object.kind == STORE_KIND_DEVICE) {
            dirty_add(j, c->object.id);
        }
        if (c->object.kind != STORE_KIND_JOB) {
            continue;
        }
        if (!c->deleted && runnable(c->object.body, c->object.body_len, &import)) {
            active_add(j, c->object.id, import);
        } else {
            active_remove(j, c->object.id);
        }
    }
}

/* Follows the change log: jobs that became runnable or ended, and devices
 * whose record changed (an outcome may have come). */
static int follow(struct api_jobs *j)
{
    for (int page = 0; page < CHANGES_PAGES; page++) {
        struct store_change_list changes;
        int rv = store_changes_read(j->api->store, j->revision, CHANGES_PAGE, &changes);
        if (rv == CAIRN_ENOTFOUND) {
            return scan(j); /* fell behind the kept log */
        }
        if (rv != 0) {
            return rv;
        }
        if (changes.n == 0) {
            store_change_list_release(&changes);
            return 0;
        }
        follow_page(j, &changes);
        j->revision = changes.items[changes.n - 1].revision;
        store_change_list_release(&changes);
    }
    return 0;
}

/* A job being run: its id, its body as last written, the revision of that
 * write, and when progress was last written. */
struct run {
    struct api_jobs *j;
    char id[CAIRN_UUID_SIZE];
    json_t *body;
    uint64_t mod_rev;
    char tenant[CAIRN_UUID_SIZE];
    char caller[API_USERNAME_MAX + 16];
    uint64_t written_ms;
    size_t since_write;
};

static void command_init(const struct run *r, struct store_command *cmd, enum store_op op,
                         enum store_kind kind)
{
    api_command_init_as(cmd, op, kind, r->caller);
}

/* Reads the job as it is now into r. CAIRN_ENOTFOUND if it is gone. */
static int run_load(struct run *r)
{
    struct store_object o;
    const struct api_backend *b = &r->j->api->backend;
    char errmsg[CAIRN_ERRMSG_SIZE];
    int rv = b->read_barrier(b->data, cairn_now_ms() + RUNNER_WRITE_MS, errmsg, sizeof errmsg);
    if (rv == 0) {
        rv = store_object_get(r->j->api->store, STORE_KIND_JOB, r->id, &o);
    }
    if (rv != 0) {
        return rv;
    }
    json_decref(r->body);
    r->body = json_loadb(o.body, o.body_len, 0, NULL);
    r->mod_rev = o.mod_rev;
    snprintf(r->tenant, sizeof r->tenant, "%s", o.tenant != NULL ? o.tenant : "");
    store_object_release(&o);
    if (r->body == NULL) {
        return CAIRN_ECORRUPT;
    }
    snprintf(r->caller, sizeof r->caller, "%s",
             json_string_value(json_object_get(r->body, "created_by")) != NULL
                 ? json_string_value(json_object_get(r->body, "created_by"))
                 : "system:jobs");
    return 0;
}

/* Writes r->body pinned to r->mod_rev. CAIRN_EPRECONDITION if the job
 * changed since (a cancel); other codes if the write could not be made. */
static int run_write(struct run *r)
{
    char request_id[API_REQUEST_ID_SIZE];
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    struct store_command cmd;
    struct store_result res;
    char *text = json_dumps(r->body, JSON_COMPACT | JSON_SORT_KEYS);
    int rv;

    if (text == NULL) {
        return CAIRN_ENOMEM;
    }
    api_request_id_fresh(request_id);
    command_init(r, &cmd, STORE_OP_UPDATE, STORE_KIND_JOB);
    cmd.id = r->id;
    cmd.body = text;
    cmd.body_len = strlen(text);
    cmd.if_match = r->mod_rev;
    cmd.request_id = request_id;
    cmd.fingerprint = api_fnv1a(API_FNV_OFFSET, text, cmd.body_len);
    cmd.tenant = r->tenant[0] != '\0' ? r->tenant : NULL;
    rv = api_propose_quiet(r->j->api, &cmd, cairn_now_ms() + RUNNER_WRITE_MS, &res, errmsg,
                           sizeof errmsg);
    free(text);
    if (rv == 0 && res.status == 0) {
        r->mod_rev = res.mod_rev;
        r->written_ms = cairn_now_ms();
        r->since_write = 0;
    }
    if (rv != 0) {
        CAIRN_WARN("msg=\"job write failed\" job=%s error=\"%s\"", r->id, errmsg);
        return rv;
    }
    return res.status;
}

static void set_time(json_t *body, const char *field)
{
    char when[API_TIME_SIZE];
    api_time_format(cairn_wall_ms(), when);
    json_object_set_new(body, field, json_string(when));
}

/* Counts the tasks that ended, and those that failed. */
static void tally(const json_t *body, size_t *done, size_t *failed)
{
    size_t i;
    const json_t *t;
    *done = 0;
    *failed = 0;
    json_array_foreach(json_object_get(body, "tasks"), i, t)
    {
        const char *s = json_string_value(json_object_get(t, "state"));
        if (s != NULL && strcmp(s, "queued") != 0 && strcmp(s, "running") != 0) {
            (*done)++;
            *failed += strcmp(s, "failed") == 0;
        }
    }
}

/* What a succeeded job of type did to its items or devices. */
static const char *done_verb(const char *type)
{
    static const char *const verbs[][2] = {
        {"import", "imported"},
        {"service-dry-run", "diffed (dry run: nothing changed)"},
        {"device-check-drift", "checked for drift"},
        {"device-sync-from", "synced from"},
        {"device-onboard", "onboarded"},
    };
    for (size_t i = 0; type != NULL && i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strcmp(type, verbs[i][0]) == 0) {
            return verbs[i][1];
        }
    }
    return "configured";
}

/* Ends the job: cancelled (every queued task too), or by its tasks. */
static void finish(struct run *r, bool cancelled)
{
    size_t done, failed, total = json_array_size(json_object_get(r->body, "tasks"));
    const char *type = json_string_value(json_object_get(r->body, "type"));
    bool import = type != NULL && strcmp(type, "import") == 0;
    const char *noun = import ? "items" : "devices";
    size_t i;
    json_t *t;

    if (cancelled) {
        json_array_foreach(json_object_get(r->body, "tasks"), i, t)
        {
            const char *s = json_string_value(json_object_get(t, "state"));
            if (s != NULL && strcmp(s, "queued") == 0) {
                json_object_set_new(t, "state", json_string("cancelled"));
            }
        }
    }
    tally(r->body, &done, &failed);
    json_object_set_new(json_object_get(r->body, "progress"), "done",
                        json_integer((json_int_t)done));
    if (cancelled) {
        json_object_set_new(r->body, "state", json_string("cancelled"));
        json_object_set_new(r->body, "message",
                            json_sprintf("cancelled after %zu of %zu %s", done, total, noun));
    } else if (failed > 0) {
        json_object_set_new(r->body, "state", json_string("failed"));
        json_object_set_new(
            r->body, "message",
            json_sprintf("%zu of %zu %s failed; see the tasks", failed, total, noun));
    } else {
        json_object_set_new(r->body, "state", json_string("succeeded"));
        json_object_set_new(r->body, "message",
                            json_sprintf("%zu %s %s", total, noun, done_verb(type)));
    }
    set_time(r->body, "finished_at");
}

/* Takes our task outcomes into the job as it is now (after a concurrent
 * write): tasks that ended here replace theirs. */
static void merge_tasks(json_t *fresh, const json_t *ours)
{
    json_t *ft = json_object_get(fresh, "tasks");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(ours, "tasks"), i, t)
    {
        const char *s = json_string_value(json_object_get(t, "state"));
        if (s != NULL && strcmp(s, "queued") != 0 && i < json_array_size(ft)) {
            json_array_set(ft, i, t);
        }
    }
}

/* Writes progress (or the end); on a concurrent change re-reads the job,
 * merges, and reports whether a cancel came in. Returns 0, or a code that
 * stops this run (it resumes at the next look). */
static int checkpoint(struct run *r, bool end, bool *cancel)
{
    size_t done, failed;
    for (int attempt = 0; attempt < 3; attempt++) {
        int rv;
        if (end) {
            finish(r, *cancel);
        } else {
            tally(r->body, &done, &failed);
            json_object_set_new(json_object_get(r->body, "progress"), "done",
                                json_integer((json_int_t)done));
        }
        rv = run_write(r);
        if (rv != CAIRN_EPRECONDITION) {
            return rv;
        }
        json_t *ours = json_incref(r->body);
        rv = run_load(r);
        if (rv != 0) {
            json_decref(ours);
            return rv;
        }
        merge_tasks(r->body, ours);
        json_decref(ours);
        if (json_is_true(json_object_get(r->body, "cancel_requested"))) {
            *cancel = true;
            end = true;
        }
    }
    return CAIRN_EBUSY;
}

/* Builds and proposes item i: a site or a device of the import. */
static int import_item(struct run *r, size_t i, const json_t *item, bool device, json_t *task)
{
    struct api *api = r->j->api;
    const struct api_resource *res = device ? &api_device_resource : &api_site_resource;
    char request_id[API_REQUEST_ID_SIZE];
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    char id[CAIRN_UUID_SIZE];
    struct store_command cmd;
    struct store_result out;
    struct api_build b;
    struct api_error err;
    char *text = NULL;
    int rv = 0;

    memset(&b, 0, sizeof b);
    memset(&err, 0, sizeof err);
    b.stored = json_deep_copy(item);
    snprintf(b.tenant, sizeof b.tenant, "%s", r->tenant);
    if (device) {
        /* The site by id, or by name within the tenant. */
        const char *site_id = json_string_value(json_object_get(item, "site_id"));
        char *found = NULL;
        struct store_object site;
        if (site_id == NULL) {
            char name[129];
            snprintf(name, sizeof name, "%s/%s", r->tenant,
                     json_string_value(json_object_get(item, "site")));
            if (store_name_lookup(api->store, STORE_KIND_SITE, name, &found) == 0) {
                site_id = found;
            }
            json_object_del(b.stored, "site");
        }
        if (site_id == NULL || store_object_get(api->store, STORE_KIND_SITE, site_id, &site) != 0) {
            rv =
                api_error_set(&err, 422, "invalid-reference", "site", "no such site in the tenant");
        } else {
            if (site.tenant == NULL || strcmp(site.tenant, r->tenant) != 0) {
                rv = api_error_set(&err, 422, "invalid-reference", "site_id", "no site with id %s",
                                   site_id);
            }
            store_object_release(&site);
            json_object_set_new(b.stored, "site_id", json_string(site_id));
            b.parent_kind = STORE_KIND_SITE;
            snprintf(b.parent_id, sizeof b.parent_id, "%s", site_id);
        }
        free(found);
    } else {
        json_object_del(b.stored, "tenant_id");
        b.parent_kind = STORE_KIND_TENANT;
        snprintf(b.parent_id, sizeof b.parent_id, "%s", r->tenant);
    }
    if (rv == 0) {
        rv = res->build(api, NULL, &b, &err);
    }
    if (rv == 0) {
        text = json_dumps(b.stored, JSON_COMPACT | JSON_SORT_KEYS);
        rv = text == NULL ? api_error_set(&err, 500, "internal", NULL, "out of memory") : 0;
    }
    if (rv == 0) {
        cairn_uuid(id);
        snprintf(request_id, sizeof request_id, "job:%s:%zu", r->id, i);
        command_init(r, &cmd, STORE_OP_CREATE, res->kind);
        cmd.id = id;
        cmd.name = b.name;
        cmd.body = text;
        cmd.body_len = strlen(text);
        cmd.request_id = request_id;
        cmd.fingerprint = api_fnv1a(API_FNV_OFFSET, request_id, strlen(request_id));
        cmd.tenant = r->tenant;
        cmd.parent_kind = b.parent_kind;
        cmd.parent_id = b.parent_id;
        rv = api_propose_quiet(api, &cmd, cairn_now_ms() + RUNNER_WRITE_MS, &out, errmsg,
                               sizeof errmsg);
        if (rv != 0) {
            /* Not an outcome of the item: stop, and try again later. */
            free(text);
            json_decref(b.stored);
            return rv;
        }
        if (out.status == 0) {
            json_object_set_new(task, "state", json_string("succeeded"));
            json_object_set_new(task, "object_id", json_string(out.id));
        } else {
            json_object_set_new(task, "state", json_string("failed"));
            json_object_set_new(task, "message", json_string(out.message));
        }
    } else {
        json_object_set_new(task, "state", json_string("failed"));
        json_object_set_new(
            task, "message",
            json_sprintf("%s%s%s", err.field, err.field[0] ? ": " : "", err.detail));
    }
    free(text);
    json_decref(b.stored);
    return 0;
}

/* Import items proposed at once: each waits for its own commit, so
 * several in flight share the leader's appends and fsyncs (sequential
 * proposals made an import of 10,000 devices take about two minutes).
 * Items of one chunk are all sites or all devices: a device may name a
 * site of the same import, created by an earlier chunk. */
#define IMPORT_WORKERS 16
#define IMPORT_CHUNK   64

struct import_chunk {
    struct run *r;
    const json_t *input;
    size_t n_sites;
    size_t items[IMPORT_CHUNK]; /* task indexes */
    size_t n;
    pthread_mutex_t mu; /* guards next and rv */
    size_t next;
    int rv; /* the first failure to propose (the item stays queued) */
};

static void *import_worker(void *arg)
{
    struct import_chunk *c = arg;
    for (;;) {
        size_t i;
        bool device;
        int rv;
        pthread_mutex_lock(&c->mu);
        if (c->next == c->n || c->rv != 0) {
            pthread_mutex_unlock(&c->mu);
            return NULL;
        }
        i = c->items[c->next++];
        pthread_mutex_unlock(&c->mu);
        device = i >= c->n_sites;
        rv = import_item(c->r, i,
                         json_array_get(json_object_get(c->input, device ? "devices" : "sites"),
                                        device ? i - c->n_sites : i),
                         device, json_array_get(json_object_get(c->r->body, "tasks"), i));
        if (rv != 0) {
            pthread_mutex_lock(&c->mu);
            if (c->rv == 0) {
                c->rv = rv;
            }
            pthread_mutex_unlock(&c->mu);
        }
    }
}

/* Whether the tenant's quota for the chunk's kind (if it has one) leaves
 * room for all of its items. When it does not, which items fail must not
 * depend on which commit first: the chunk goes one item at a time, in
 * order, as the documentation promises. */
static bool import_room(const struct import_chunk *c)
{
    struct store *s = c->r->j->api->store;
    enum store_kind kind = c->items[0] >= c->n_sites ? STORE_KIND_DEVICE : STORE_KIND_SITE;
    struct store_object t;
    uint64_t count = 0;
    bool room = true;

    if (store_object_get(s, STORE_KIND_TENANT, c->r->tenant, &t) != 0) {
        return false; /* gone or unreadable: each item will say why */
    }
    for (size_t i = 0; i < t.n_limits && room; i++) {
        if (t.limits[i].kind == kind) {
            room =
                store_count(s, c->r->tenant, kind, &count) == 0 && count + c->n <= t.limits[i].max;
        }
    }
    store_object_release(&t);
    return room;
}

/* Proposes the chunk's items with up to IMPORT_WORKERS threads (each
 * changes only its items' tasks), or one at a time if the tenant's quota
 * is nearly full; returns the first failure to propose. */
static int import_chunk_run(struct import_chunk *c)
{
    pthread_t threads[IMPORT_WORKERS];
    size_t started = 0;
    size_t want = !import_room(c) ? 0 : c->n < IMPORT_WORKERS ? c->n : IMPORT_WORKERS;

    pthread_mutex_init(&c->mu, NULL);
    c->next = 0;
    c->rv = 0;
    while (started < want && pthread_create(&threads[started], NULL, import_worker, c) == 0) {
        started++;
    }
    if (started == 0) {
        import_worker(c); /* one at a time, here */
    }
    for (size_t t = 0; t < started; t++) {
        pthread_join(threads[t], NULL);
    }
    pthread_mutex_destroy(&c->mu);
    return c->rv;
}

/* Starts a look at job id: loads it into *r (a job that vanished leaves
 * the active set) and marks a queued one running. Returns false if there
 * is nothing to do; *started says whether it was queued. */
static bool run_open(struct api_jobs *j, const char *id, struct run *r, bool *started)
{
    const char *state;

    memset(r, 0, sizeof *r);
    r->j = j;
    snprintf(r->id, sizeof r->id, "%s", id);
    if (run_load(r) != 0) {
        json_decref(r->body);
        active_remove(j, id);
        return false;
    }
    state = json_string_value(json_object_get(r->body, "state"));
    if (state == NULL || (strcmp(state, "queued") != 0 && strcmp(state, "running") != 0)) {
        /* Ended meanwhile: the change log re-added it from an older write. */
        json_decref(r->body);
        active_remove(j, id);
        return false;
    }
    *started = strcmp(state, "queued") == 0;
    if (*started) {
        json_object_set_new(r->body, "state", json_string("running"));
        set_time(r->body, "started_at");
    }
    return true;
}

/* Runs one import job from where it stands. */
static void run_import(struct api_jobs *j, const char *id)
{
    struct run r;
    bool cancel = false;
    bool started;
    const json_t *input;
    size_t n_sites;
    size_t i;
    json_t *tasks;
    struct import_chunk chunk;
    int rv;

    if (!run_open(j, id, &r, &started)) {
        return;
    }
    if (started) {
        rv = run_write(&r);
        if (rv == CAIRN_EPRECONDITION) {
            json_decref(r.body);
            return; /* changed (cancelled?): the next look sees it */
        }
        if (rv != 0) {
            json_decref(r.body);
            return;
        }
        CAIRN_INFO("msg=\"job started\" job=%s type=import", r.id);
    }
    cancel = json_is_true(json_object_get(r.body, "cancel_requested"));
    input = json_object_get(r.body, "input");
    n_sites = json_array_size(json_object_get(input, "sites"));
    rv = 0;
    r.written_ms = cairn_now_ms();
    chunk.r = &r;
    chunk.input = input;
    chunk.n_sites = n_sites;
    tasks = json_object_get(r.body, "tasks");
    for (i = 0; i < json_array_size(tasks) && !cancel && rv == 0;) {
        chunk.n = 0;
        /* Queued items of one kind, from i on. */
        for (; i < json_array_size(tasks) && chunk.n < IMPORT_CHUNK; i++) {
            const char *s = json_string_value(json_object_get(json_array_get(tasks, i), "state"));
            if (chunk.n > 0 && (chunk.items[0] < n_sites) != (i < n_sites)) {
                break;
            }
            if (s != NULL && strcmp(s, "queued") == 0) {
                chunk.items[chunk.n++] = i;
            }
        }
        if (chunk.n == 0) {
            continue;
        }
        if (runner_stopping(j) || !j->api->backend.is_leader(j->api->backend.data)) {
            rv = CAIRN_ENOTLEADER;
            break;
        }
        rv = import_chunk_run(&chunk);
        r.since_write += chunk.n;
        if (rv == 0 && r.since_write >= PROGRESS_ITEMS) {
            rv = checkpoint(&r, false, &cancel);
            tasks = json_object_get(r.body, "tasks"); /* the body may be a new one */
            chunk.input = json_object_get(r.body, "input");
        } else if (rv == 0 && cairn_now_ms() - r.written_ms >= PROGRESS_MS) {
            rv = checkpoint(&r, false, &cancel);
            tasks = json_object_get(r.body, "tasks"); /* the body may be a new one */
            chunk.input = json_object_get(r.body, "input");
        }
    }
    if (rv == 0 || cancel) {
        rv = checkpoint(&r, true, &cancel);
        if (rv == 0) {
            CAIRN_INFO("msg=\"job ended\" job=%s state=%s", r.id,
                       json_string_value(json_object_get(r.body, "state")));
            active_remove(j, id);
        }
    }
    json_decref(r.body);
}

/* The outcome a device recorded for job id (status.jobs), or NULL. */
static json_t *device_outcome(struct api *api, const char *device, const char *job, bool *gone)
{
    struct store_object o;
    json_t *body;
    json_t *out;
    int rv = store_object_get(api->store, STORE_KIND_DEVICE, device, &o);
    *gone = rv == CAIRN_ENOTFOUND;
    if (rv != 0) {
        return NULL;
    }
    if (memmem(o.body, o.body_len, job, strlen(job)) == NULL) {
        store_object_release(&o); /* no outcome yet: not worth parsing */
        return NULL;
    }
    body = json_loadb(o.body, o.body_len, 0, NULL);
    store_object_release(&o);
    out =
        json_incref(json_object_get(json_object_get(json_object_get(body, "status"), "jobs"), job));
    json_decref(body);
    return out;
}

/* The JSON array of strings ids as an object with those keys, for look-ups
 * (a job may have 10,000 tasks). NULL when out of memory. */
static json_t *id_set(const json_t *ids)
{
    json_t *set = json_object();
    size_t i;
    const json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (set != NULL && json_object_set_new(set, json_string_value(v), json_true()) != 0) {
            json_decref(set);
            set = NULL;
        }
    }
    return set;
}

/* The end of a service job: the service records what is realized where
 * (if the job is still its latest), and a deleted service whose devices
 * are clean goes. */
static void service_finish(struct run *r)
{
    const json_t *target = json_object_get(r->body, "target");
    const char *sid = json_string_value(json_object_get(target, "id"));
    const char *type = json_string_value(json_object_get(r->body, "type"));
    bool ok = strcmp(json_string_value(json_object_get(r->body, "state")), "succeeded") == 0;
    char request_id[API_REQUEST_ID_SIZE];
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    struct store_command cmd;
    struct store_result res;
    struct store_object o;
    json_t *body;
    char *text = NULL;
    size_t i;
    json_t *t;

    if (sid == NULL || store_object_get(r->j->api->store, STORE_KIND_SERVICE, sid, &o) != 0) {
        return;
    }
    body = json_loadb(o.body, o.body_len, 0, NULL);
    if (body == NULL || strcmp(json_string_value(json_object_get(body, "job_id")) != NULL
                                   ? json_string_value(json_object_get(body, "job_id"))
                                   : "",
                               r->id) != 0) {
        json_decref(body);
        store_object_release(&o);
        return; /* a newer write of the service has its own job */
    }
    api_request_id_fresh(request_id);
    if (strcmp(type, "service-delete") == 0 && ok) {
        command_init(r, &cmd, STORE_OP_DELETE, STORE_KIND_SERVICE);
    } else {
        json_t *real = json_object();
        json_t *devices = NULL;
        json_t *targeted = NULL;
        /* A replace's job also pushed to the devices the new version no
         * longer targets (they lost its config): they are not where the
         * service is realized. */
        if (api_service_devices(r->j->api, o.tenant, json_object_get(body, "targets"), NULL,
                                &devices) == 0) {
            targeted = id_set(devices);
            json_decref(devices);
        }
        json_array_foreach(json_object_get(r->body, "tasks"), i, t)
        {
            const char *dev = json_string_value(json_object_get(t, "device_id"));
            if (dev != NULL && (targeted == NULL || json_object_get(targeted, dev) != NULL)) {
                json_object_set(real, dev, json_object_get(t, "state"));
            }
        }
        json_decref(targeted);
        json_object_set_new(body, "realization", real);
        text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        command_init(r, &cmd, STORE_OP_UPDATE, STORE_KIND_SERVICE);
        cmd.name = o.name;
        cmd.body = text;
        cmd.body_len = text != NULL ? strlen(text) : 0;
    }
    cmd.id = sid;
    cmd.if_match = o.mod_rev;
    cmd.request_id = request_id;
    cmd.fingerprint = api_fnv1a(API_FNV_OFFSET, request_id, strlen(request_id));
    cmd.tenant = o.tenant;
    if (cmd.op == STORE_OP_DELETE || text != NULL) {
        api_propose_quiet(r->j->api, &cmd, cairn_now_ms() + RUNNER_WRITE_MS, &res, errmsg,
                          sizeof errmsg);
    }
    free(text);
    json_decref(body);
    store_object_release(&o);
}

/* The bytes of diffs and adopted configs a job's tasks hold. */
static size_t results_size(const json_t *body)
{
    size_t n = 0;
    size_t i;
    const json_t *t;
    json_array_foreach(json_object_get(body, "tasks"), i, t)
    {
        n += json_string_length(json_object_get(t, "diff")) +
             json_string_length(json_object_get(t, "adopted"));
    }
    return n;
}

/* Copies what an on-demand task is for (changed, the diff, what was
 * adopted) from the device's outcome into the task. A service job's diff
 * stays in the device's status.jobs, and so does an on-demand job's once
 * its tasks hold JOB_RESULTS_MAX bytes: a dry run of 10,000 devices would
 * not fit in one job record. */
static void take_result(json_t *task, const json_t *out, size_t *bytes)
{
    const json_t *diff = json_object_get(out, "diff");
    const json_t *adopted = json_object_get(out, "adopted");
    size_t len = json_string_length(diff) + json_string_length(adopted);

    json_object_set(task, "changed", json_object_get(out, "changed"));
    if (*bytes + len > JOB_RESULTS_MAX) {
        json_object_set_new(task, "result_in_device", json_true());
        return;
    }
    *bytes += len;
    if (diff != NULL) {
        json_object_set(task, "diff", (json_t *)diff);
    }
    if (adopted != NULL) {
        json_object_set(task, "adopted", (json_t *)adopted);
    }
}

/* One look at a job run on devices (a service job, a dry run, a drift
 * check, a sync-from): the outcomes its devices recorded become its
 * tasks; it ends when every task has one (or was cancelled). The owners of
 * the devices do the work (node/devices.c). */
/* Looks at the outcomes of a device job's open tasks: every one when full
 * (the job's first poll, or after a scan), else only on the devices whose
 * record changed since the last look. */
static void poll_device_job(struct api_jobs *j, const char *id, bool full)
{
    struct run r;
    bool cancel = false;
    bool changed = false;
    bool on_demand;
    char type[32];
    size_t result_bytes;
    size_t open = 0;
    size_t i;
    json_t *task;

    if (!run_open(j, id, &r, &changed)) {
        return;
    }
    /* A copy: a checkpoint may read the body again. */
    snprintf(type, sizeof type, "%s",
             json_string_value(json_object_get(r.body, "type")) != NULL
                 ? json_string_value(json_object_get(r.body, "type"))
                 : "");
    on_demand = !api_job_service_write(type);
    result_bytes = on_demand ? results_size(r.body) : 0;
    cancel = json_is_true(json_object_get(r.body, "cancel_requested"));
    json_array_foreach(json_object_get(r.body, "tasks"), i, task)
    {
        const char *s = json_string_value(json_object_get(task, "state"));
        const char *device = json_string_value(json_object_get(task, "device_id"));
        bool gone = false;
        json_t *out;
        if (s == NULL || device == NULL ||
            (strcmp(s, "queued") != 0 && strcmp(s, "running") != 0)) {
            continue;
        }
        if (!full && !dirty_has(j, device)) {
            open++;
            continue;
        }
        out = device_outcome(j->api, device, id, &gone);
        if (gone) {
            json_object_set_new(task, "state", json_string("failed"));
            json_object_set_new(task, "message", json_string("the device was deleted"));
            changed = true;
        } else if (out != NULL) {
            json_object_set(task, "state", json_object_get(out, "state"));
            json_object_set(task, "message", json_object_get(out, "message"));
            if (strcmp(json_string_value(json_object_get(out, "state")), "failed") == 0) {
                json_object_set(task, "step", json_object_get(out, "step"));
            }
            if (on_demand) {
                take_result(task, out, &result_bytes);
            }
            changed = true;
        } else {
            open++;
        }
        json_decref(out);
    }
    if (open == 0 || cancel) {
        if (checkpoint(&r, true, &cancel) == 0) {
            CAIRN_INFO("msg=\"job ended\" job=%s state=%s", r.id,
                       json_string_value(json_object_get(r.body, "state")));
            if (api_job_service_write(type)) {
                service_finish(&r);
            }
            active_remove(j, id);
        }
    } else if (changed && cairn_now_ms() - r.written_ms >= PROGRESS_MS) {
        checkpoint(&r, false, &cancel);
    }
    json_decref(r.body);
}

static void *runner_main(void *arg)
{
    struct api_jobs *j = arg;
    for (;;) {
        struct timespec until;
        bool leading = j->api->backend.is_leader(j->api->backend.data);
        size_t n;
        int rv = 0;

        if (leading && !j->leading) {
            rv = scan(j); /* a new leader: learn what is left to run */
        } else if (leading) {
            rv = follow(j);
        }
        j->leading = leading && rv == 0;
        if (j->n_dirty > 1) {
            qsort(j->dirty, j->n_dirty, sizeof *j->dirty, id_cmp);
        }
        /* A copy of the list: a job that ends leaves it meanwhile, and
         * each job must see this look's changed devices. */
        n = j->leading ? j->n_active : 0;
        memcpy(j->polling, j->active, n * sizeof *j->active);
        for (size_t i = 0; i < n; i++) {
            j->active[i].fresh = false;
        }
        for (size_t i = 0; i < n && !runner_stopping(j); i++) {
            if (j->polling[i].import) {
                run_import(j, j->polling[i].id);
            } else {
                poll_device_job(j, j->polling[i].id, j->polling[i].fresh);
            }
        }
        /* Every job looked at the devices that changed: start over. */
        j->n_dirty = 0;
        j->all_dirty = false;
        pthread_mutex_lock(&j->mu);
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += RUNNER_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!j->stop && pthread_cond_timedwait(&j->cv, &j->mu, &until) != ETIMEDOUT) {
        }
        bool stop = j->stop;
        pthread_mutex_unlock(&j->mu);
        if (stop) {
            return NULL;
        }
    }
}

int api_jobs_start(struct api *api, struct api_jobs **out)
{
    struct api_jobs *j = calloc(1, sizeof *j);
    pthread_condattr_t attr;

    if (j == NULL || (j->active = calloc(ACTIVE_MAX, sizeof *j->active)) == NULL ||
        (j->polling = calloc(ACTIVE_MAX, sizeof *j->polling)) == NULL) {
        if (j != NULL) {
            free(j->active);
        }
        free(j);
        return CAIRN_ENOMEM;
    }
    j->api = api;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&j->thread, NULL, runner_main, j) != 0) {
        pthread_cond_destroy(&j->cv);
        pthread_mutex_destroy(&j->mu);
        free(j->active);
        free(j->polling);
        free(j);
        return CAIRN_ENOMEM;
    }
    *out = j;
    return 0;
}

void api_jobs_stop(struct api_jobs *j)
{
    if (j == NULL) {
        return;
    }
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->active);
    free(j->polling);
    free(j->dirty);
    free(j);
}
