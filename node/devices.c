/*
 * The device controller: this node's half of device management. It drives
 * the devices this node owns (owner.h) through the southbound's manager
 * (southbound.h) and records what happened in the device objects.
 *
 * One thread. It knows the devices and jobs from the store: a full scan of
 * the devices at start and at every new ownership epoch, then the change
 * log from there. For every device it owns and that is to be managed it
 *   - registers the device with the manager (address, credentials, the
 *     pinned host key, the base and intended configs another owner
 *     recorded) and onboards it: at its first contact (status "new"),
 *     whenever this node gains it (the new owner reconnects and re-reads
 *     the device; a known base config is kept, not re-adopted), when an
 *     operator changes how to reach it, and again with backoff while a
 *     first onboarding keeps failing (see consider);
 *   - pushes the intended config for each task of a running service job
 *     (service-deploy, service-delete) that names the device: the device's
 *     config rendered from every active service that targets it, by its
 *     id or its site's (targets.h); and once, with no job, right after
 *     its first successful onboarding if services target it already (a
 *     device added to a site gets the site's services: push_after_onboard);
 *   - runs the tasks of the on-demand jobs the same way: a service dry run
 *     (service-dry-run: the diff the would-be service set would make, the
 *     device untouched), a drift check (device-check-drift: recorded as
 *     the periodic check records it) and a sync-from (device-sync-from:
 *     running adopted as the base config, as onboarding does);
 *   - checks drift every drift_interval_s on devices onboarded once and,
 *     for devices whose policy is "reconcile", pushes the intended config
 *     back.
 * The manager's workers report on their threads; the controller's thread
 * writes the outcomes into the device objects (status, the job's outcome
 * under status.jobs, the pinned host key, the adopted and intended
 * configs), each a write pinned to the object's revision.
 *
 * Fencing: a push checks ownership before it reads the device and again
 * before each step that writes (the manager's fence callback: owner_owns,
 * see southbound/push.c) and carries the epoch it got in the edit; an
 * outcome is recorded only if that epoch is still current and this node
 * still holds its lease (owner_epoch_current). The job runner on the
 * leader (northbound/jobs.c) collects the outcomes into the job.
 */
#include "node_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "southbound.h"
#include "targets.h"

#define TICK_MS           200
#define WRITE_MS          5000
#define CHANGES_PAGE      1000
#define BUCKETS           4096
#define JOBS_KEPT         8    /* outcomes of jobs kept in a device's status */
#define DIFF_KEPT         8192 /* bytes of a diff kept in a status */
#define ACTIVE_JOBS_MAX   256
#define CALLER            "system:devices"
#define LAST_SEEN_STEP_MS 60000 /* status.last_seen is refreshed this often */

/* What the controller knows of one device. */
struct dev {
    struct dev *next;
    char id[CAIRN_UUID_SIZE];
    char site[CAIRN_UUID_SIZE];            /* its site when registered */
    bool owned;                            /* at the last look */
    bool registered;                       /* given to the manager */
    uint64_t registered_rev;               /* the record's revision when registered */
    bool inflight;                         /* a job of the manager runs or waits */
    char done[JOBS_KEPT][CAIRN_UUID_SIZE]; /* jobs handled here (a ring) */
    unsigned n_done;
    uint64_t next_drift_ms;    /* cairn_now_ms of its next drift check */
    bool managed;              /* desired_state "managed", and not deleted, at the last look */
    bool has_base;             /* the record holds an adopted config: onboarded once */
    bool pushed;               /* the record holds a pushed config or a push's outcome */
    uint64_t conn_hash;        /* address, port and credentials when registered */
    bool look_again;           /* the record changed while a job ran: consider it once free */
    unsigned onboard_failures; /* onboardings failed in a row, on this owner */
    uint64_t next_onboard_ms;  /* cairn_now_ms of the next onboarding attempt, 0: none */
    bool onboard_due;          /* next_onboard_ms came: onboard at the next look */
};

/* An outcome of the manager, queued for the controller's thread. */
struct outcome {
    struct outcome *next;
    char device[CAIRN_UUID_SIZE];
    char job[CAIRN_UUID_SIZE]; /* the service job of a push, "" for none */
    const char *trigger;       /* what asked for a push of no job (static), or NULL */
    enum sb_op op;
    uint64_t epoch;
    int rv;
    enum sb_step step;
    bool changed, rolled_back;
    char *message, *diff, *config_json, *intended_json;
    char fingerprint[SB_FINGERPRINT_SIZE];
    struct sb_facts facts;
    bool has_facts;
    int64_t next_attempt_ms; /* a failed onboarding: wall ms of the next, 0: none */
    bool first_onboard;      /* onboarded, and nothing pushed to the device yet */
};

/* What a submitted job carries to its outcome. */
struct ticket {
    char job[CAIRN_UUID_SIZE];
    const char *trigger; /* see struct outcome */
    uint64_t epoch;
};

struct node_devices {
    struct node *n;
    struct sb_manager *sb;
    pthread_t thread;
    pthread_mutex_t mu; /* guards stop and the outcome queue */
    pthread_cond_t cv;
    bool stop;
    struct outcome *head, *tail;
    /* Owned by the thread: */
    struct dev *buckets[BUCKETS];
    uint64_t revision; /* changes up to here are known */
    uint64_t epoch;    /* the ownership epoch of the last scan */
    bool scanned;
    char active[ACTIVE_JOBS_MAX][CAIRN_UUID_SIZE]; /* service jobs to run */
    size_t n_active;
};

static unsigned hash_id(const char *id)
{
    return (unsigned)(ring_hash64(id, strlen(id)) % BUCKETS);
}

static struct dev *dev_get(struct node_devices *c, const char *id, bool create)
{
    unsigned h = hash_id(id);
    struct dev *d;
    for (d = c->buckets[h]; d != NULL; d = d->next) {
        if (strcmp(d->id, id) == 0) {
            return d;
        }
    }
    if (!create || (d = calloc(1, sizeof *d)) == NULL) {
        return NULL;
    }
    snprintf(d->id, sizeof d->id, "%s", id);
    d->next = c->buckets[h];
    c->buckets[h] = d;
    return d;
}

static bool dev_done(const struct dev *d, const char *job)
{
    for (unsigned i = 0; i < JOBS_KEPT; i++) {
        if (strcmp(d->done[i], job) == 0) {
            return true;
        }
    }
    return false;
}

/* Forgets that job was handled here: its outcome could not be recorded,
 * so the task must run again (here, or on the device's next owner). */
static void dev_unmark(struct dev *d, const char *job)
{
    for (unsigned i = 0; i < JOBS_KEPT; i++) {
        if (strcmp(d->done[i], job) == 0) {
            d->done[i][0] = '\0';
        }
    }
}

static void dev_mark(struct dev *d, const char *job)
{
    if (!dev_done(d, job)) {
        snprintf(d->done[d->n_done++ % JOBS_KEPT], CAIRN_UUID_SIZE, "%s", job);
    }
}

static bool stopping(struct node_devices *c)
{
    bool stop;
    pthread_mutex_lock(&c->mu);
    stop = c->stop;
    pthread_mutex_unlock(&c->mu);
    return stop || c->n->shutting_down;
}

/* The manager's side ------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void outcome_free(struct outcome *o)
{
    free(o->message);
    free(o->diff);
    free(o->config_json);
    free(o->intended_json);
    free(o);
}

/* A worker's report: copied and queued for the controller's thread. */
static void on_result(const struct sb_result *res, void *data)
{
    struct node_devices *c = data;
    struct ticket *t = res->job_data;
    struct outcome *o = calloc(1, sizeof *o);

    if (o != NULL) {
        snprintf(o->device, sizeof o->device, "%s", res->device_id);
        snprintf(o->job, sizeof o->job, "%s", t != NULL ? t->job : "");
        o->trigger = t != NULL ? t->trigger : NULL;
        o->op = res->op;
        o->epoch = t != NULL ? t->epoch : 0;
        o->rv = res->rv;
        o->step = res->step;
        o->changed = res->changed;
        o->rolled_back = res->rolled_back;
        o->message = dup_or_null(res->message);
        o->diff = dup_or_null(res->diff);
        o->config_json = dup_or_null(res->config_json);
        o->intended_json = dup_or_null(res->intended_json);
        snprintf(o->fingerprint, sizeof o->fingerprint, "%s",
                 res->fingerprint != NULL ? res->fingerprint : "");
        if (res->facts != NULL) {
            o->facts = *res->facts;
            o->has_facts = true;
        }
    }
    free(t);
    pthread_mutex_lock(&c->mu);
    if (o != NULL) {
        if (c->tail != NULL) {
            c->tail->next = o;
        } else {
            c->head = o;
        }
        c->tail = o;
    }
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* The last check before a push writes: this node owns the device now. */
static bool fence(void *data, const char *device_id, uint64_t *epoch)
{
    struct node_devices *c = data;
    return owner_owns(c->n->owner, device_id, epoch);
}

/* Store access ------------------------------------------------------------ */

int node_device_write(struct node *n, const struct store_object *o, json_t *body, uint64_t epoch,
                      struct store_result *res)
{
    uint64_t lowest;
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    char request_id[64];
    struct store_command cmd;
    char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    void *buf = NULL;
    size_t len = 0;
    int rv;

    if (text == NULL) {
        return CAIRN_ENOMEM;
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.version = STORE_COMMAND_VERSION;
    cmd.op = STORE_OP_UPDATE;
    cmd.kind = o->kind;
    cmd.id = o->id;
    cmd.name = o->name;
    cmd.body = text;
    cmd.body_len = strlen(text);
    cmd.if_match = o->mod_rev;
    cairn_uuid(request_id + snprintf(request_id, sizeof request_id, "dev:"));
    cmd.request_id = request_id;
    cmd.fingerprint = ring_hash64(text, cmd.body_len);
    cmd.time_ms = cairn_wall_ms();
    cmd.caller = CALLER;
    cmd.tenant = o->tenant;
    if (epoch != 0 && node_cluster_version(n, &lowest) >= 3) {
        cmd.fence = (struct store_fence){STORE_KIND_SYSTEM, RING_STATE_ID, epoch};
    }
    rv = store_command_encode(&cmd, &buf, &len);
    if (rv == 0) {
        rv = node_propose(n, buf, len, cairn_now_ms() + WRITE_MS, res, errmsg, sizeof errmsg);
    }
    if (rv != 0) {
        CAIRN_WARN("msg=\"device record not written\" device=%s error=\"%s\"", o->id, errmsg);
    }
    free(buf);
    free(text);
    return rv;
}

static const char *str_of(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* Sets obj[key] to wall_ms (ms since the epoch) as an RFC 3339 UTC time. */
static void set_time(json_t *obj, const char *key, int64_t wall_ms)
{
    char when[32];
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(obj, key, json_string(when));
}

void node_set_now(json_t *obj, const char *key)
{
    set_time(obj, key, cairn_wall_ms());
}

/* Adds or removes an alarm in status.alarms. */
static void set_alarm(json_t *status, const char *name, bool on)
{
    json_t *alarms = json_object_get(status, "alarms");
    size_t i;
    json_t *a;
    if (alarms == NULL) {
        alarms = json_array();
        json_object_set_new(status, "alarms", alarms);
    }
    json_array_foreach(alarms, i, a)
    {
        if (strcmp(json_string_value(a), name) == 0) {
            if (!on) {
                json_array_remove(alarms, i);
            }
            return;
        }
    }
    if (on) {
        json_array_append_new(alarms, json_string(name));
    }
}

static json_t *truncated(const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    return json_stringn(s != NULL ? s : "", len > DIFF_KEPT ? DIFF_KEPT : len);
}

/* What a successful job of o's operation did, in words. */
static const char *success_message(const struct outcome *o)
{
    switch (o->op) {
        case SB_OP_PUSH:
            return o->changed ? "config pushed" : "already in sync";
        case SB_OP_DRY_RUN:
            return o->changed ? "the device would change" : "the device would not change";
        case SB_OP_CHECK_DRIFT:
            return o->changed ? "drift detected" : "no drift";
        case SB_OP_SYNC_FROM:
            return "running config adopted as the base config";
        case SB_OP_ONBOARD:
            break;
    }
    return "onboarded";
}

/* Records the outcome of job o->job in status.jobs (the job runner
 * collects it from there), keeping the last JOBS_KEPT. */
static void record_job(json_t *status, const struct outcome *o)
{
    json_t *jobs = json_object_get(status, "jobs");
    json_t *out;
    if (!json_is_object(jobs)) {
        jobs = json_object();
        json_object_set_new(status, "jobs", jobs);
    }
    out = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:o, s:I}", "op", sb_op_name(o->op), "state",
                    o->rv == 0 ? "succeeded" : "failed", "message",
                    o->rv == 0 ? success_message(o) : o->message, "step", sb_step_name(o->step),
                    "changed", o->changed, "rolled_back", o->rolled_back, "diff",
                    truncated(o->diff), "epoch", (json_int_t)o->epoch);
    if (o->op == SB_OP_SYNC_FROM && o->rv == 0) {
        json_object_set_new(out, "adopted", truncated(o->config_json));
    }
    json_object_set_new(jobs, o->job, out);
    while (json_object_size(jobs) > JOBS_KEPT) {
        json_object_del(jobs, json_object_iter_key(json_object_iter(jobs)));
    }
}

/* Writes outcome o into the device's body: the status and what goes with
 * the operation. */
static void apply_outcome(json_t *body, const struct outcome *o)
{
    json_t *status = json_object_get(body, "status");
    /* Only a failed connection says the device is out of reach; any other
     * failure came from a device that answered (or from this side). */
    bool reached = o->rv == 0 || o->step != SB_STEP_CONNECT;

    if (!json_is_object(status)) {
        status = json_object();
        json_object_set_new(body, "status", status);
    }
    json_object_set_new(status, "reachable", json_boolean(reached));
    if (reached && cairn_wall_ms() - json_integer_value(json_object_get(status, "last_seen_ms")) >=
                       LAST_SEEN_STEP_MS) {
        /* Coarse on purpose: a record written for every exchange would
         * cost a raft entry per drift check. */
        node_set_now(status, "last_seen");
        json_object_set_new(status, "last_seen_ms", json_integer(cairn_wall_ms()));
    }
    set_alarm(status, "unreachable", !reached);
    if (o->rv != 0) {
        json_object_set_new(status, "last_error",
                            json_sprintf("%s: %s", sb_op_name(o->op), o->message));
    }
    switch (o->op) {
        case SB_OP_ONBOARD:
            if (o->rv == 0) {
                json_object_set_new(status, "state", json_string("onboarded"));
                json_object_del(status, "last_error");
                if (o->has_facts) {
                    json_object_set_new(
                        status, "facts",
                        json_pack("{s:s, s:s, s:s}", "serial", o->facts.serial, "model",
                                  o->facts.model, "software", o->facts.software));
                }
                if (o->fingerprint[0] != '\0') {
                    json_object_set_new(body, "host_key", json_string(o->fingerprint));
                }
                if (o->config_json != NULL) {
                    json_object_set_new(body, "base_config", json_string(o->config_json));
                }
            } else if (strcmp(str_of(status, "state") != NULL ? str_of(status, "state") : "",
                              "onboarded") != 0) {
                json_object_set_new(status, "state", json_string("unreachable"));
            }
            if (o->next_attempt_ms != 0) {
                set_time(status, "next_attempt_at", o->next_attempt_ms);
            } else {
                json_object_del(status, "next_attempt_at");
            }
            set_alarm(status, "host-key-mismatch", o->rv == CAIRN_EPRECONDITION);
            break;
        case SB_OP_PUSH:
            set_alarm(status, "commit-failed", o->rv != 0 && o->step >= SB_STEP_LOCK);
            if (o->rv == 0) {
                set_alarm(status, "drift", false);
                json_object_del(status, "drift");
                if (o->intended_json != NULL) {
                    json_object_set_new(body, "intended_config", json_string(o->intended_json));
                }
            }
            if (o->trigger != NULL) {
                /* No job reports this push: the device's record does. */
                json_t *last = json_pack("{s:s, s:s, s:s?}", "trigger", o->trigger, "state",
                                         o->rv == 0 ? "succeeded" : "failed", "message",
                                         o->rv == 0 ? success_message(o) : o->message);
                node_set_now(last, "at");
                json_object_set_new(status, "last_push", last);
            }
            break;
        case SB_OP_CHECK_DRIFT:
            if (o->rv == 0) {
                json_t *drift =
                    json_pack("{s:b, s:o}", "detected", o->changed, "diff", truncated(o->diff));
                json_t *prev = json_object_get(status, "drift");
                if (json_equal(json_object_get(prev, "detected"),
                               json_object_get(drift, "detected")) &&
                    json_equal(json_object_get(prev, "diff"), json_object_get(drift, "diff"))) {
                    json_decref(drift); /* no news: the record stays as it is */
                } else {
                    node_set_now(drift, "since");
                    json_object_set_new(status, "drift", drift);
                }
                set_alarm(status, "drift", o->changed);
            }
            break;
        case SB_OP_SYNC_FROM:
            if (o->rv == 0 && o->config_json != NULL) {
                json_object_set_new(body, "base_config", json_string(o->config_json));
                json_object_del(body, "intended_config");
                json_object_del(status, "drift");
                set_alarm(status, "drift", false);
            }
            break;
        case SB_OP_DRY_RUN:
            break;
    }
    if (o->job[0] != '\0') {
        record_job(status, o);
    }
}

/* Records an outcome in its device, if this node may still speak for it. */
static void record(struct node_devices *c, struct outcome *o)
{
    struct dev *d = dev_get(c, o->device, false);

    if (d != NULL) {
        d->inflight = false;
    }
    if (!owner_epoch_current(c->n->owner, o->epoch)) {
        CAIRN_WARN(
            "msg=\"device outcome dropped: the epoch moved on or the lease lapsed\" device=%s "
            "op=%s epoch=%" PRIu64,
            o->device, sb_op_name(o->op), o->epoch);
        if (d != NULL && o->job[0] != '\0') {
            dev_unmark(d, o->job); /* to be done again by whoever owns it now */
        }
        return;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        struct store_object obj;
        struct store_result res;
        json_t *body;
        int rv = store_object_get(c->n->store, STORE_KIND_DEVICE, o->device, &obj);
        if (rv != 0) {
            return; /* deleted meanwhile */
        }
        body = json_loadb(obj.body, obj.body_len, 0, NULL);
        if (body != NULL) {
            json_t *before = json_deep_copy(body);
            apply_outcome(body, o);
            if (json_equal(before, body)) {
                res.status = 0; /* nothing new to record */
            } else {
                rv = node_device_write(c->n, &obj, body, o->epoch, &res);
            }
            json_decref(before);
            json_decref(body);
        }
        store_object_release(&obj);
        if (rv == 0 && res.status == CAIRN_EPRECONDITION &&
            strncmp(res.message, "fenced:", 7) == 0) {
            CAIRN_WARN(
                "msg=\"device outcome refused by the fence: the epoch moved on\" "
                "device=%s op=%s epoch=%" PRIu64 " detail=\"%s\"",
                o->device, sb_op_name(o->op), o->epoch, res.message);
            if (d != NULL && o->job[0] != '\0') {
                dev_unmark(d, o->job); /* to be done again by whoever owns it now */
            }
            return;
        }
        if (body == NULL || rv != 0 || res.status != CAIRN_EPRECONDITION) {
            if (d != NULL && o->job[0] != '\0' && rv == 0 && res.status == 0) {
                dev_mark(d, o->job);
            }
            if (d != NULL && rv == 0 && res.status == 0 && o->op == SB_OP_PUSH &&
                (o->rv == 0 || o->trigger != NULL)) {
                d->pushed = true; /* as the record now says */
            }
            return;
        }
    }
}

/* Submitting -------------------------------------------------------------- */

/* Submits op for d, on behalf of job (NULL for none; then trigger says
 * what asked for a push, for its record in status.last_push). */
static int submit(struct node_devices *c, struct dev *d, enum sb_op op, const char *job,
                  const char *trigger, uint64_t epoch, const struct sb_service *svcs, size_t n)
{
    struct ticket *t = calloc(1, sizeof *t);
    int rv;
    if (t == NULL) {
        return CAIRN_ENOMEM;
    }
    snprintf(t->job, sizeof t->job, "%s", job != NULL ? job : "");
    t->trigger = trigger;
    t->epoch = epoch;
    rv = sb_manager_submit(c->sb, d->id, op, svcs, n, t);
    if (rv != 0) {
        free(t);
        return rv;
    }
    d->inflight = true;
    return 0;
}

/* What identifies how the device is reached: a change is an operator's
 * fix (a wrong address or password) that deserves an attempt at once. */
static uint64_t conn_hash(const struct sb_connect *conn)
{
    const char *parts[] = {conn->host, conn->username, conn->password};
    uint64_t h = conn->port;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        h = h * 1000003u ^ ring_hash64(parts[i], strlen(parts[i]));
    }
    return h;
}

/* Gives the manager what it needs to reach the device. */
static int register_device(struct node_devices *c, struct dev *d, const struct store_object *o,
                           const json_t *body)
{
    const json_t *mgmt = json_object_get(body, "management");
    const json_t *creds = json_object_get(body, "credentials");
    struct store_object site;
    struct sb_connect conn;
    struct sb_target target;
    const json_t *status = json_object_get(body, "status");
    const char *key;
    const json_t *v;
    json_t *site_body = NULL;
    int rv;

    memset(&conn, 0, sizeof conn);
    memset(&target, 0, sizeof target);
    conn.host = str_of(mgmt, "host");
    conn.port = (uint16_t)json_integer_value(json_object_get(mgmt, "port"));
    conn.username = str_of(creds, "username");
    conn.password = str_of(creds, "password");
    conn.fingerprint = str_of(body, "host_key");
    conn.timeout_ms = c->n->cfg.device_timeout_ms;
    if (conn.host == NULL || conn.username == NULL || conn.password == NULL) {
        return CAIRN_EINVAL; /* not manageable: no address or credentials */
    }
    target.serial = str_of(body, "serial");
    if (o->parent_id != NULL &&
        store_object_get(c->n->store, STORE_KIND_SITE, o->parent_id, &site) == 0) {
        site_body = json_loadb(site.body, site.body_len, 0, NULL);
        store_object_release(&site);
        target.site = str_of(site_body, "name");
        target.site_role = str_of(site_body, "role");
        target.site_address =
            str_of(json_array_get(json_object_get(site_body, "wan_links"), 0), "public_address");
    }
    rv = sb_manager_device_set(c->sb, d->id, &conn, &target);
    json_decref(site_body);
    if (rv == 0) {
        sb_manager_device_configs(c->sb, d->id, str_of(body, "base_config"),
                                  str_of(body, "intended_config"));
        /* Jobs already recorded in the device need no second push. */
        json_object_foreach((json_t *)json_object_get(status, "jobs"), key, v)
        {
            dev_mark(d, key);
        }
        d->registered = true;
        d->registered_rev = o->mod_rev;
        snprintf(d->site, sizeof d->site, "%s", o->parent_id != NULL ? o->parent_id : "");
        d->has_base = str_of(body, "base_config") != NULL;
        d->pushed =
            str_of(body, "intended_config") != NULL || json_object_get(status, "last_push") != NULL;
        d->conn_hash = conn_hash(&conn);
    }
    return rv;
}

/* Onboarding, per device on its owner (the backoff state is this node's
 * memory: a new owner starts afresh):
 *  1. consider() submits an onboarding when the device is new ("new" or
 *     no state: created, or set back by a call home), when this node gains
 *     it or starts, and when an operator makes it managed again or changes
 *     its address, port or credentials; each forgets the backoff, here and
 *     in the manager, so that a fix takes effect at once.
 *  2. A failed onboarding of a device never onboarded (no base config)
 *     schedules the next attempt, cairn_backoff_ms after the failures so
 *     far (onboard_schedule); status.next_attempt_at says when.
 *  3. timers() finds it due and looks at the record again (look()), which
 *     submits it if the device is still managed and owned here.
 *  4. A success ends the retries; so does the device becoming unmanaged
 *     or deleted (nothing is submitted for it).
 * A device that was onboarded once is not retried this way: its jobs and
 * drift checks reconnect (the manager's backoff). */
static void consider(struct node_devices *c, const struct store_object *o)
{
    struct dev *d = dev_get(c, o->id, true);
    json_t *body;
    uint64_t epoch = 0;
    bool owned = owner_owns(c->n->owner, o->id, &epoch);
    bool gained, was_managed, due, afresh = false;
    const char *state;

    if (d == NULL) {
        return;
    }
    gained = owned && !d->owned;
    if (!owned && d->owned && d->registered) {
        /* Another node drives it now: its session here would only idle
         * (and count against the device's session limit). */
        sb_manager_device_release(c->sb, d->id);
    }
    d->owned = owned;
    due = d->onboard_due;
    d->onboard_due = false;
    if (gained) {
        /* What was handled here before is the device record's to say. */
        memset(d->done, 0, sizeof d->done);
        d->n_done = 0;
        d->registered = false;
    }
    if (!owned) {
        return;
    }
    body = json_loadb(o->body, o->body_len, 0, NULL);
    was_managed = d->managed;
    d->managed = body != NULL &&
                 strcmp(str_of(body, "desired_state") != NULL ? str_of(body, "desired_state") : "",
                        "managed") == 0;
    if (!d->managed) {
        if (was_managed && d->registered) {
            sb_manager_device_release(c->sb, d->id);
        }
        json_decref(body);
        return;
    }
    if (!d->registered || d->registered_rev != o->mod_rev) {
        if (d->inflight) {
            d->look_again = true; /* registered once the job ends (timers) */
        } else {
            bool first = !d->registered;
            uint64_t before = d->conn_hash;
            if (register_device(c, d, o, body) == 0) {
                afresh = first || gained || !was_managed || d->conn_hash != before;
            }
        }
    }
    state = str_of(json_object_get(body, "status"), "state");
    /* "new": just created, or a call home proved the device alive. */
    afresh = afresh || state == NULL || strcmp(state, "new") == 0;
    if (afresh) {
        d->onboard_failures = 0;
        d->next_onboard_ms = 0;
    }
    if (d->registered && !d->inflight && (afresh || due)) {
        /* This node's schedule (or the operator) decides: the manager's
         * own reconnect backoff would only add to it. */
        sb_manager_device_retry(c->sb, d->id);
        submit(c, d, SB_OP_ONBOARD, NULL, NULL, epoch, NULL, 0);
    } else if (due) {
        d->onboard_due = d->inflight; /* a job runs: onboard after it */
    }
    json_decref(body);
}

/* A device deleted: nothing more to retry or check, no session to keep. */
static void dev_deleted(struct node_devices *c, struct dev *d)
{
    if (d->managed && d->registered) {
        sb_manager_device_release(c->sb, d->id);
    }
    d->managed = false;
    d->next_onboard_ms = 0;
    d->onboard_due = false;
}

/* Looks at a device's record again (a retry is due, or it changed while
 * a job ran); a deleted device is forgotten as managed. */
static void look(struct node_devices *c, struct dev *d)
{
    struct store_object o;
    d->look_again = false;
    if (store_object_get(c->n->store, STORE_KIND_DEVICE, d->id, &o) != 0) {
        dev_deleted(c, d);
        return;
    }
    consider(c, &o);
    store_object_release(&o);
}

/* Step 2 of onboarding: after an onboarding's outcome, the next attempt
 * of a device never onboarded, and when (o->next_attempt_ms, recorded in
 * its status). */
static void onboard_schedule(struct node_devices *c, struct outcome *o)
{
    struct dev *d = dev_get(c, o->device, false);
    uint64_t delay;
    uint32_t r;

    if (d == NULL || o->op != SB_OP_ONBOARD || o->rv == CAIRN_ESHUTDOWN) {
        return;
    }
    if (o->rv == 0 || d->has_base) {
        /* Not "the first success": a device whose owner changed between
         * its first onboarding and the push after it is pushed to by the
         * new owner, after its own onboarding (the record says none came). */
        o->first_onboard = o->rv == 0 && !d->pushed;
        d->has_base = d->has_base || o->config_json != NULL;
        d->onboard_failures = 0;
        d->next_onboard_ms = 0;
        return;
    }
    cairn_random_bytes(&r, sizeof r);
    delay = cairn_backoff_ms(c->n->cfg.onboard_retry_min_ms, c->n->cfg.onboard_retry_max_ms,
                             ++d->onboard_failures, r);
    d->next_onboard_ms = cairn_now_ms() + delay;
    o->next_attempt_ms = cairn_wall_ms() + (int64_t)delay;
    CAIRN_INFO(
        "msg=\"onboarding failed: trying again later\" device=%s failures=%u delay_ms=%" PRIu64
        " error=\"%s\"",
        o->device, d->onboard_failures, delay, o->message != NULL ? o->message : "");
}

static int consider_cb(const struct store_object *o, void *arg)
{
    consider(arg, o);
    return 0;
}

/* Every device, at start and at each new epoch. */
static int scan_devices(struct node_devices *c)
{
    uint64_t revision = 0;
    int rv = store_object_foreach(c->n->store, STORE_KIND_DEVICE, consider_cb, c, &revision);
    if (rv == 0 && !c->scanned) {
        c->revision = revision;
        c->scanned = true;
    }
    return rv;
}

/* The job types whose tasks the devices' owners run, and how. */
static const struct {
    const char *type;
    enum sb_op op;
} job_ops[] = {
    {"service-deploy", SB_OP_PUSH},        {"service-delete", SB_OP_PUSH},
    {"service-dry-run", SB_OP_DRY_RUN},    {"device-check-drift", SB_OP_CHECK_DRIFT},
    {"device-sync-from", SB_OP_SYNC_FROM}, {"device-onboard", SB_OP_ONBOARD},
};

/* Whether body is a job whose tasks run here that has not ended; sets
 * *op to what its tasks do. */
static bool device_job(const json_t *body, enum sb_op *op)
{
    const char *type = str_of(body, "type");
    const char *state = str_of(body, "state");
    if (type == NULL || state == NULL ||
        (strcmp(state, "queued") != 0 && strcmp(state, "running") != 0)) {
        return false;
    }
    for (size_t i = 0; i < sizeof job_ops / sizeof job_ops[0]; i++) {
        if (strcmp(type, job_ops[i].type) == 0) {
            *op = job_ops[i].op;
            return true;
        }
    }
    return false;
}

static bool job_runs_here(const json_t *body)
{
    enum sb_op op;
    return device_job(body, &op);
}

static void active_set(struct node_devices *c, const char *id, bool on)
{
    for (size_t i = 0; i < c->n_active; i++) {
        if (strcmp(c->active[i], id) == 0) {
            if (!on) {
                memmove(c->active[i], c->active[i + 1], (c->n_active - i - 1) * CAIRN_UUID_SIZE);
                c->n_active--;
            }
            return;
        }
    }
    if (on && c->n_active < ACTIVE_JOBS_MAX) {
        snprintf(c->active[c->n_active++], CAIRN_UUID_SIZE, "%s", id);
    }
}

static int scan_job(const struct store_object *o, void *arg)
{
    json_t *body = json_loadb(o->body, o->body_len, 0, NULL);
    if (job_runs_here(body)) {
        active_set(arg, o->id, true);
    }
    json_decref(body);
    return 0;
}

static int scan_jobs(struct node_devices *c)
{
    c->n_active = 0;
    return store_object_foreach(c->n->store, STORE_KIND_JOB, scan_job, c, NULL);
}

/* Follows the change log: devices to look at, jobs to run. */
static int follow(struct node_devices *c)
{
    struct store_change_list ch;
    int rv = store_changes_read(c->n->store, c->revision, CHANGES_PAGE, &ch);
    if (rv == CAIRN_ENOTFOUND) {
        c->scanned = false; /* too far behind: scan again */
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < ch.n; i++) {
        const struct store_change *x = &ch.items[i];
        if (x->object.kind == STORE_KIND_DEVICE && !x->deleted) {
            consider(c, &x->object);
        } else if (x->object.kind == STORE_KIND_DEVICE) {
            struct dev *d = dev_get(c, x->object.id, false);
            if (d != NULL) {
                dev_deleted(c, d);
            }
        } else if (x->object.kind == STORE_KIND_JOB) {
            json_t *body =
                x->deleted ? NULL : json_loadb(x->object.body, x->object.body_len, 0, NULL);
            active_set(c, x->object.id, job_runs_here(body));
            json_decref(body);
        }
    }
    if (ch.n > 0) {
        c->revision = ch.items[ch.n - 1].revision;
    }
    store_change_list_release(&ch);
    return 0;
}

/* The services that configure device d: active ones of its tenant that
 * target it, by its id or its site's. Fills svcs (up to max) and keeps
 * their bodies in *keep. */
static size_t services_of(struct node_devices *c, const char *tenant, const struct dev *d,
                          struct sb_service *svcs, size_t max, json_t *keep)
{
    struct store_query q;
    char after[CAIRN_UUID_SIZE] = "";
    size_t n = 0;
    memset(&q, 0, sizeof q);
    q.kind = STORE_KIND_SERVICE;
    q.tenant = tenant;
    q.limit = 200;
    q.now_ms = cairn_wall_ms();
    for (int page = 0; page < 100; page++) {
        struct store_list list;
        bool more;
        q.after = after[0] ? after : NULL;
        if (store_object_query(c->n->store, &q, &list) != 0) {
            return n;
        }
        for (size_t i = 0; i < list.n; i++) {
            json_t *body = json_loadb(list.items[i].body, list.items[i].body_len, 0, NULL);
            bool targets = targets_match(json_object_get(body, "targets"), d->id,
                                         d->site[0] != '\0' ? d->site : NULL);
            snprintf(after, sizeof after, "%s", list.items[i].id);
            if (targets && n < max &&
                strcmp(str_of(body, "desired_state") != NULL ? str_of(body, "desired_state") : "",
                       "active") == 0) {
                json_object_set_new(body, "id", json_string(list.items[i].id));
                json_array_append(keep, body);
                svcs[n].id = str_of(body, "id");
                svcs[n].type = str_of(body, "type");
                svcs[n].parameters = json_object_get(body, "parameters");
                n++;
            }
            json_decref(body);
        }
        more = list.more;
        store_list_release(&list);
        if (!more) {
            break;
        }
    }
    return n;
}

/* A task for a device this node owns but cannot drive (unmanaged, or no
 * address or credentials): it fails at once, saying why, rather than
 * waiting for ever. */
static void unmanageable(struct node_devices *c, const char *device, const char *job, enum sb_op op,
                         uint64_t epoch)
{
    struct store_object o;
    struct outcome out;
    json_t *body;
    const char *state;

    if (store_object_get(c->n->store, STORE_KIND_DEVICE, device, &o) != 0) {
        return; /* gone: the job runner fails the task */
    }
    body = json_loadb(o.body, o.body_len, 0, NULL);
    state = str_of(body, "desired_state");
    memset(&out, 0, sizeof out);
    snprintf(out.device, sizeof out.device, "%s", device);
    snprintf(out.job, sizeof out.job, "%s", job);
    out.op = op;
    out.epoch = epoch;
    out.rv = CAIRN_EPRECONDITION;
    out.step = SB_STEP_CONNECT;
    if (state != NULL && strcmp(state, "managed") != 0) {
        out.message = strdup("the device is unmanaged (desired_state); nothing was done");
    } else if (str_of(json_object_get(body, "management"), "host") == NULL ||
               str_of(json_object_get(body, "credentials"), "password") == NULL) {
        out.message = strdup("the device has no management address or credentials");
    }
    json_decref(body);
    store_object_release(&o);
    if (out.message != NULL && dev_get(c, device, true) != NULL) {
        record(c, &out); /* marks the job handled here */
        free(out.message);
    }
}

#define SERVICES_PER_DEVICE_MAX 64

/* A dry run's would-be service set for device d: svcs[0..n) are the
 * active services that target it now; the job's service (new, or a
 * replacement of one of them) takes its place, or joins, if it would
 * target the device (by its id or its site's). Returns the new count. */
static size_t dry_run_services(const json_t *job, const struct dev *d, struct sb_service *svcs,
                               size_t n, size_t max)
{
    const json_t *svc = json_object_get(job, "service");
    const char *id = str_of(svc, "id");
    const char *state = str_of(svc, "desired_state");
    bool targets =
        targets_match(json_object_get(svc, "targets"), d->id, d->site[0] != '\0' ? d->site : NULL);
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        if (id == NULL || strcmp(svcs[i].id, id) != 0) {
            svcs[k++] = svcs[i];
        }
    }
    if (targets && k < max && (state == NULL || strcmp(state, "active") == 0)) {
        svcs[k].id = id != NULL ? id : "(new service)";
        svcs[k].type = str_of(svc, "type");
        svcs[k].parameters = json_object_get(svc, "parameters");
        k++;
    }
    return k;
}

/* Submits the tasks of one job (service push, dry run, drift check,
 * sync-from) for the devices this node owns. */
static void dispatch_job(struct node_devices *c, const char *job_id)
{
    struct store_object o;
    json_t *body;
    size_t i;
    json_t *task;
    enum sb_op op;

    if (store_object_get(c->n->store, STORE_KIND_JOB, job_id, &o) != 0) {
        active_set(c, job_id, false);
        return;
    }
    body = json_loadb(o.body, o.body_len, 0, NULL);
    if (!device_job(body, &op) || json_is_true(json_object_get(body, "cancel_requested"))) {
        json_decref(body);
        store_object_release(&o);
        return;
    }
    json_array_foreach(json_object_get(body, "tasks"), i, task)
    {
        const char *device = str_of(task, "device_id");
        struct dev *d = device != NULL ? dev_get(c, device, false) : NULL;
        struct sb_service svcs[SERVICES_PER_DEVICE_MAX];
        uint64_t epoch;
        json_t *keep;
        size_t n;

        if (device == NULL ||
            strcmp(str_of(task, "state") != NULL ? str_of(task, "state") : "", "queued") != 0 ||
            (d != NULL && (d->inflight || dev_done(d, job_id))) ||
            !owner_owns(c->n->owner, device, &epoch)) {
            continue;
        }
        if (d == NULL || !d->registered) {
            unmanageable(c, device, job_id, op, epoch);
            continue;
        }
        keep = json_array();
        n = 0;
        if (op == SB_OP_PUSH || op == SB_OP_DRY_RUN) {
            n = services_of(c, o.tenant, d, svcs, SERVICES_PER_DEVICE_MAX, keep);
        }
        if (op == SB_OP_DRY_RUN) {
            n = dry_run_services(body, d, svcs, n, SERVICES_PER_DEVICE_MAX);
        }
        if (op == SB_OP_ONBOARD) {
            /* The operator asked for it now: no backoff of ours or the
             * manager's stands in the way. */
            d->onboard_failures = 0;
            d->next_onboard_ms = 0;
            sb_manager_device_retry(c->sb, d->id);
        }
        if (submit(c, d, op, job_id, NULL, epoch, svcs, n) == 0) {
            dev_mark(d, job_id);
        }
        json_decref(keep);
    }
    json_decref(body);
    store_object_release(&o);
}

/* What is due on the devices this node drives: a second look at a record
 * that changed while a job ran, an onboarding retry (step 3 above), a
 * drift check. Drift is checked only on devices onboarded once: one with
 * no adopted config has nothing to compare, and its failed connections
 * are the onboarding's to report. A drifted device under the "reconcile"
 * policy gets its intended config back (reconcile). */
static void timers(struct node_devices *c)
{
    uint64_t now = cairn_now_ms();
    for (unsigned b = 0; b < BUCKETS; b++) {
        for (struct dev *d = c->buckets[b]; d != NULL; d = d->next) {
            uint64_t epoch;
            if (d->inflight || !d->owned) {
                continue;
            }
            if (d->next_onboard_ms != 0 && now >= d->next_onboard_ms) {
                d->next_onboard_ms = 0;
                d->onboard_due = true;
                look(c, d);
            } else if (d->look_again) {
                look(c, d);
            }
            if (d->inflight || !d->registered || !d->managed || !d->has_base ||
                c->n->cfg.drift_interval_s == 0 || now < d->next_drift_ms ||
                !owner_owns(c->n->owner, d->id, &epoch)) {
                continue;
            }
            if (d->next_drift_ms != 0) {
                submit(c, d, SB_OP_CHECK_DRIFT, NULL, NULL, epoch, NULL, 0);
            }
            d->next_drift_ms = now + (uint64_t)c->n->cfg.drift_interval_s * 1000;
        }
    }
}

/* Pushes d's intended config, rendered from the services of tenant that
 * target it, outside any job; trigger says why (status.last_push). With
 * only_if_targeted, a device no active service targets is left alone. */
static void push_intended(struct node_devices *c, struct dev *d, const char *tenant, uint64_t epoch,
                          const char *trigger, bool only_if_targeted)
{
    struct sb_service svcs[SERVICES_PER_DEVICE_MAX];
    json_t *keep = json_array();
    size_t n = services_of(c, tenant, d, svcs, SERVICES_PER_DEVICE_MAX, keep);
    if (n > 0 || !only_if_targeted) {
        CAIRN_INFO("msg=\"pushing the intended config\" device=%s trigger=\"%s\" services=%zu",
                   d->id, trigger, n);
        submit(c, d, SB_OP_PUSH, NULL, trigger, epoch, svcs, n);
    }
    json_decref(keep);
}

/* A drift outcome under the reconcile policy: push the intended config. */
static void reconcile(struct node_devices *c, const struct outcome *o)
{
    struct store_object obj;
    struct dev *d = dev_get(c, o->device, false);
    uint64_t epoch;
    json_t *body;

    if (o->op != SB_OP_CHECK_DRIFT || o->rv != 0 || !o->changed || d == NULL || d->inflight ||
        store_object_get(c->n->store, STORE_KIND_DEVICE, o->device, &obj) != 0) {
        return;
    }
    body = json_loadb(obj.body, obj.body_len, 0, NULL);
    if (strcmp(str_of(body, "drift_policy") != NULL ? str_of(body, "drift_policy") : "",
               "reconcile") == 0 &&
        owner_owns(c->n->owner, o->device, &epoch)) {
        push_intended(c, d, obj.tenant, epoch, "drift reconcile", false);
    }
    json_decref(body);
    store_object_release(&obj);
}

/* A device onboarded that nothing was ever pushed to (its record has no
 * intended config and no status.last_push): if active services target it
 * already (those of its site, typically: a branch device added after
 * they were deployed), it gets its intended config now instead of at the
 * next write of one of them. Runs after record(), which freed the device;
 * the push's outcome is recorded in status.last_push. */
static void push_after_onboard(struct node_devices *c, const struct outcome *o)
{
    struct store_object obj;
    struct dev *d = dev_get(c, o->device, false);
    uint64_t epoch;

    if (!o->first_onboard || d == NULL || d->inflight || !d->registered ||
        !owner_owns(c->n->owner, o->device, &epoch) ||
        store_object_get(c->n->store, STORE_KIND_DEVICE, o->device, &obj) != 0) {
        return;
    }
    push_intended(c, d, obj.tenant, epoch, "first onboarding", true);
    store_object_release(&obj);
}

static void *controller_main(void *arg)
{
    struct node_devices *c = arg;
    while (!stopping(c)) {
        struct owner_stats st;
        struct outcome *o;
        struct timespec until;

        /* Outcomes first: they free devices for their next job. */
        pthread_mutex_lock(&c->mu);
        o = c->head;
        c->head = c->tail = NULL;
        pthread_mutex_unlock(&c->mu);
        while (o != NULL) {
            struct outcome *next = o->next;
            onboard_schedule(c, o);
            record(c, o);
            reconcile(c, o);
            push_after_onboard(c, o);
            outcome_free(o);
            o = next;
        }
        atomic_store(&c->n->device_sessions, sb_manager_sessions(c->sb));
        owner_stats(c->n->owner, &st);
        if (!c->scanned || st.epoch != c->epoch) {
            c->epoch = st.epoch;
            if (scan_devices(c) == 0) {
                scan_jobs(c);
            }
        } else {
            follow(c);
        }
        for (size_t i = 0; i < c->n_active && !stopping(c); i++) {
            char id[CAIRN_UUID_SIZE];
            snprintf(id, sizeof id, "%s", c->active[i]);
            dispatch_job(c, id);
        }
        timers(c);
        pthread_mutex_lock(&c->mu);
        if (c->head == NULL && !c->stop) {
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += TICK_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&c->cv, &c->mu, &until);
        }
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

int node_devices_start(struct node *n, char *errmsg, size_t size)
{
    struct node_devices *c = calloc(1, sizeof *c);
    struct sb_manager_config mc;
    pthread_condattr_t attr;
    char node_id[32];
    int rv;

    if (c == NULL) {
        cairn_errmsg_set(errmsg, size, "out of memory");
        return CAIRN_ENOMEM;
    }
    c->n = n;
    snprintf(node_id, sizeof node_id, "%" PRIu64, n->cfg.node_id);
    memset(&mc, 0, sizeof mc);
    mc.threads = n->cfg.southbound_threads;
    mc.yang_dir = n->cfg.yang_dir[0] != '\0' ? n->cfg.yang_dir : NULL;
    mc.node_id = node_id;
    mc.timeout_ms = n->cfg.device_timeout_ms;
    mc.confirm_timeout = n->cfg.confirm_timeout_s;
    mc.cb = on_result;
    mc.cb_data = c;
    mc.fence = fence;
    rv = sb_manager_create(&mc, &c->sb, errmsg, size);
    if (rv != 0) {
        cairn_errmsg_wrap(errmsg, size, "start the southbound");
        free(c);
        return rv;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&c->thread, NULL, controller_main, c) != 0) {
        sb_manager_destroy(c->sb);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        cairn_errmsg_set(errmsg, size, "start the device controller thread");
        return CAIRN_ENOMEM;
    }
    n->devices = c;
    return 0;
}

void node_devices_stop(struct node *n)
{
    struct node_devices *c = n->devices;
    struct outcome *o;
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    /* The workers finish their jobs; their outcomes are not recorded. */
    sb_manager_destroy(c->sb);
    for (o = c->head; o != NULL;) {
        struct outcome *next = o->next;
        outcome_free(o);
        o = next;
    }
    for (unsigned b = 0; b < BUCKETS; b++) {
        for (struct dev *d = c->buckets[b]; d != NULL;) {
            struct dev *next = d->next;
            free(d);
            d = next;
        }
    }
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
    n->devices = NULL;
}
