/*
 * The device manager: a fixed pool of worker threads serving thousands of
 * devices, each with at most one NETCONF session and a FIFO of jobs.
 *
 * Scheduling. A device with queued jobs and no running job sits in one
 * min-heap ordered by `not_before` (monotonic ms): now for a reachable
 * device, the next reconnect time for one in backoff. A worker pops the
 * earliest due device, runs its first job with the manager lock released,
 * then puts the device back if more jobs wait. So a device runs one job at
 * a time, many devices run in parallel, and no thread ever waits for one
 * device while another is due. Nothing here runs on the submitter's
 * thread: sb_manager_submit only queues.
 *
 * A device's job, step by step (job_run):
 *  1. ensure_session: reuse the open session, or connect (host key pinned
 *     on first contact, verified afterwards); a failed connect counts a
 *     failure, sets the device unreachable and schedules the next attempt
 *     after min(max, min * 2^(failures-1)) ms with +-25% jitter
 *     (cairn_backoff_ms). The job waits for that attempt if its deadline
 *     allows, else fails. An onboarding never waits: it makes one attempt
 *     and its submitter schedules the next (node/devices.c records each
 *     one, so an operator sees every failed first contact). A host key
 *     mismatch or a refused login fails at once (retrying cannot fix
 *     them). sb_manager_device_retry forgets the backoff and the session
 *     (new address or credentials).
 *  2. the operation (onboard, push, dry-run, check-drift, sync-from);
 *  3. a session that died during the operation is closed; the next job
 *     reconnects at once. A job whose session was lost (not timed out)
 *     runs again once, on a new session, while its deadline allows: a
 *     reset connection is the transient failure a reconnect fixes, and
 *     every operation is safe to repeat (a push's confirmed commit rolls
 *     back with the session that made it; the rerun asks the fence again).
 *  4. the result goes to the callback, on the worker thread.
 *
 * libyang contexts. libnetconf2 modifies the context a session connects
 * with, and parses every reply with it. Each worker owns one context,
 * guarded by a read-write lock: a connect takes it for writing; every use
 * of a session (whose context is that of the worker that connected it,
 * its `home`) takes it for reading. No thread holds two of these locks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "southbound.h"

struct job {
    struct job *next;        /* queue link */
    enum sb_op op;           /* what to do */
    void *data;              /* submitter's pointer */
    struct sb_service *svcs; /* copies of the services (push, dry-run) */
    size_t nsvcs;            /* their number */
    uint64_t deadline_ms;    /* monotonic: give up connecting after this */
    unsigned attempts;       /* connection attempts made */
    bool rerun;              /* run again once already, its session lost */
    bool release;            /* sb_manager_device_release: close the session, report nothing */
};

struct worker;

struct device {
    struct device *hnext;                  /* hash chain */
    char *id;                              /* device id */
    char *host, *user, *password;          /* connection (mu) */
    uint16_t port;                         /* (mu) */
    char *site, *site_role, *site_address; /* site facts for renderers (mu) */
    struct sb_device_status st;            /* status (mu) */
    struct sb_facts facts;                 /* from the last connect (mu) */
    struct job *head, *tail;               /* queued jobs (mu) */
    size_t heap_pos;                       /* index in the heap, or SIZE_MAX (mu) */
    uint64_t not_before;                   /* heap key (mu) */
    bool stale;                            /* the session predates sb_manager_device_retry (mu) */
    /* Used only by the worker running this device's job: */
    struct sb_session *sess; /* open session or NULL (pointer also read under mu) */
    struct worker *home;     /* the worker whose context sess uses */
    char *base_json;         /* adopted device config */
    char *intended_json;     /* last pushed intended config */
};

struct worker {
    struct sb_manager *m;      /* owner */
    pthread_t thread;          /* the thread */
    struct ly_ctx *ctx;        /* this worker's libyang context */
    pthread_rwlock_t ctx_lock; /* write: connect; read: any other use */
};

#define BUCKETS 8192

struct sb_manager {
    struct sb_manager_config cfg;    /* copied, defaults applied */
    char *node_id;                   /* copy of cfg.node_id */
    pthread_mutex_t mu;              /* guards everything below and device fields marked (mu) */
    pthread_cond_t cond;             /* work is due, or stop */
    bool stop;                       /* destroy began */
    struct device *buckets[BUCKETS]; /* id -> device */
    struct device **heap;            /* devices with due jobs, min-heap on not_before */
    size_t heap_len, heap_cap;
    size_t sessions;        /* devices with an open session */
    struct worker *workers; /* cfg.threads workers */
    unsigned nworkers;      /* started */
};

const char *sb_op_name(enum sb_op op)
{
    static const char *const names[] = {"onboard", "push", "dry-run", "check-drift", "sync-from"};
    return (unsigned)op < 5 ? names[op] : "?";
}

/* Heap (manager lock held). */

static bool heap_less(struct sb_manager *m, size_t a, size_t b)
{
    return m->heap[a]->not_before < m->heap[b]->not_before;
}

static void heap_swap(struct sb_manager *m, size_t a, size_t b)
{
    struct device *t = m->heap[a];
    m->heap[a] = m->heap[b];
    m->heap[b] = t;
    m->heap[a]->heap_pos = a;
    m->heap[b]->heap_pos = b;
}

/* Moves entry i up to its place after its key went down, and wakes a
 * worker: the entry may be due earlier than the one it waited for. */
static void heap_up(struct sb_manager *m, size_t i)
{
    while (i > 0 && heap_less(m, i, (i - 1) / 2)) {
        heap_swap(m, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    pthread_cond_signal(&m->cond);
}

static int heap_push(struct sb_manager *m, struct device *d, uint64_t not_before)
{
    size_t i;
    if (m->heap_len == m->heap_cap) {
        size_t cap = m->heap_cap ? m->heap_cap * 2 : 256;
        struct device **h = realloc(m->heap, cap * sizeof(*h));
        if (!h) {
            return CAIRN_ENOMEM;
        }
        m->heap = h;
        m->heap_cap = cap;
    }
    d->not_before = not_before;
    i = m->heap_len++;
    m->heap[i] = d;
    d->heap_pos = i;
    heap_up(m, i);
    return 0;
}

static struct device *heap_pop(struct sb_manager *m)
{
    struct device *top = m->heap[0];
    size_t i = 0;
    heap_swap(m, 0, --m->heap_len);
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;
        if (l < m->heap_len && heap_less(m, l, min)) {
            min = l;
        }
        if (r < m->heap_len && heap_less(m, r, min)) {
            min = r;
        }
        if (min == i) {
            break;
        }
        heap_swap(m, i, min);
        i = min;
    }
    top->heap_pos = SIZE_MAX;
    return top;
}

/* Devices. */

static size_t hash(const char *s)
{
    size_t h = 5381;
    while (*s) {
        h = h * 33 + (unsigned char)*s++;
    }
    return h % BUCKETS;
}

static struct device *device_find(struct sb_manager *m, const char *id)
{
    struct device *d;
    for (d = m->buckets[hash(id)]; d && strcmp(d->id, id); d = d->hnext) {
    }
    return d;
}

/* Replaces *field with a copy of value (NULL stays NULL). */
static int set_str(char **field, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = strdup(value))) {
        return CAIRN_ENOMEM;
    }
    free(*field);
    *field = copy;
    return 0;
}

static void job_free(struct job *j)
{
    size_t i;
    for (i = 0; i < j->nsvcs; i++) {
        free((char *)j->svcs[i].id);
        free((char *)j->svcs[i].type);
        json_decref(j->svcs[i].parameters);
    }
    free(j->svcs);
    free(j);
}

static void device_free(struct device *d)
{
    struct job *j;
    while ((j = d->head)) {
        d->head = j->next;
        job_free(j);
    }
    free(d->id);
    free(d->host);
    free(d->user);
    free(d->password);
    free(d->site);
    free(d->site_role);
    free(d->site_address);
    free(d->base_json);
    free(d->intended_json);
    free(d);
}

int sb_manager_device_set(struct sb_manager *m, const char *id, const struct sb_connect *conn,
                          const struct sb_target *target)
{
    struct device *d;
    bool created = false;
    int rv = 0;

    if (!id || !conn->host || !conn->username || !conn->password) {
        return CAIRN_EINVAL;
    }
    pthread_mutex_lock(&m->mu);
    d = device_find(m, id);
    if (!d) {
        d = calloc(1, sizeof(*d));
        if (!d || !(d->id = strdup(id))) {
            free(d);
            pthread_mutex_unlock(&m->mu);
            return CAIRN_ENOMEM;
        }
        d->heap_pos = SIZE_MAX;
        created = true;
    }
    rv = rv ? rv : set_str(&d->host, conn->host);
    rv = rv ? rv : set_str(&d->user, conn->username);
    rv = rv ? rv : set_str(&d->password, conn->password);
    rv = rv ? rv : set_str(&d->site, target ? target->site : NULL);
    rv = rv ? rv : set_str(&d->site_role, target ? target->site_role : NULL);
    rv = rv ? rv : set_str(&d->site_address, target ? target->site_address : NULL);
    d->port = conn->port;
    if (conn->fingerprint) {
        snprintf(d->st.fingerprint, sizeof(d->st.fingerprint), "%s", conn->fingerprint);
    }
    if (rv && created) {
        device_free(d);
    } else if (created) {
        d->hnext = m->buckets[hash(id)];
        m->buckets[hash(id)] = d;
    }
    pthread_mutex_unlock(&m->mu);
    return rv;
}

int sb_manager_device_retry(struct sb_manager *m, const char *id)
{
    struct device *d;
    pthread_mutex_lock(&m->mu);
    d = device_find(m, id);
    if (d) {
        d->st.failures = 0;
        d->st.next_attempt_ms = 0;
        d->stale = true;
        if (d->heap_pos != SIZE_MAX && d->not_before > cairn_now_ms()) {
            d->not_before = cairn_now_ms(); /* a job waiting for its backoff runs now */
            heap_up(m, d->heap_pos);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return d ? 0 : CAIRN_ENOTFOUND;
}

int sb_manager_device_configs(struct sb_manager *m, const char *id, const char *base_json,
                              const char *intended_json)
{
    struct device *d;
    int rv = 0;
    pthread_mutex_lock(&m->mu);
    d = device_find(m, id);
    if (d == NULL) {
        rv = CAIRN_ENOTFOUND;
    } else if (d->st.busy) {
        rv = CAIRN_EBUSY; /* the worker owns these fields while it runs */
    } else {
        char *b = base_json != NULL ? strdup(base_json) : NULL;
        char *i = intended_json != NULL ? strdup(intended_json) : NULL;
        if ((base_json != NULL && b == NULL) || (intended_json != NULL && i == NULL)) {
            free(b);
            free(i);
            rv = CAIRN_ENOMEM;
        } else {
            free(d->base_json);
            free(d->intended_json);
            d->base_json = b;
            d->intended_json = i;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rv;
}

int sb_manager_device_status(struct sb_manager *m, const char *id, struct sb_device_status *out)
{
    struct device *d;
    struct job *j;
    pthread_mutex_lock(&m->mu);
    d = device_find(m, id);
    if (d) {
        *out = d->st;
        out->queued = 0;
        for (j = d->head; j; j = j->next) {
            out->queued++;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return d ? 0 : CAIRN_ENOTFOUND;
}

unsigned sb_manager_threads(const struct sb_manager *m)
{
    return m->nworkers;
}

size_t sb_manager_sessions(struct sb_manager *m)
{
    size_t n;
    pthread_mutex_lock(&m->mu);
    n = m->sessions;
    pthread_mutex_unlock(&m->mu);
    return n;
}

/* Copies services into a job. */
static int job_copy_services(struct job *j, const struct sb_service *svcs, size_t n)
{
    size_t i;
    if (!n) {
        return 0;
    }
    j->svcs = calloc(n, sizeof(*j->svcs));
    if (!j->svcs) {
        return CAIRN_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        j->nsvcs++;
        j->svcs[i].id = strdup(svcs[i].id);
        j->svcs[i].type = strdup(svcs[i].type);
        j->svcs[i].parameters = json_deep_copy(svcs[i].parameters);
        if (!j->svcs[i].id || !j->svcs[i].type || (svcs[i].parameters && !j->svcs[i].parameters)) {
            return CAIRN_ENOMEM;
        }
    }
    return 0;
}

/* Queues j (owned from here) behind the device's other jobs. */
static int job_queue(struct sb_manager *m, const char *device_id, struct job *j)
{
    struct device *d;
    int rv = 0;

    pthread_mutex_lock(&m->mu);
    d = device_find(m, device_id);
    if (!d || m->stop) {
        pthread_mutex_unlock(&m->mu);
        job_free(j);
        return d ? CAIRN_ESHUTDOWN : CAIRN_ENOTFOUND;
    }
    if (d->tail) {
        d->tail->next = j;
    } else {
        d->head = j;
    }
    d->tail = j;
    if (!d->st.busy && d->heap_pos == SIZE_MAX) {
        uint64_t now = cairn_now_ms();
        rv = heap_push(m, d, d->st.next_attempt_ms > now ? d->st.next_attempt_ms : now);
    }
    pthread_mutex_unlock(&m->mu);
    return rv;
}

int sb_manager_submit(struct sb_manager *m, const char *device_id, enum sb_op op,
                      const struct sb_service *services, size_t nservices, void *job_data)
{
    struct job *j = calloc(1, sizeof(*j));
    int rv;

    if (!j) {
        return CAIRN_ENOMEM;
    }
    j->op = op;
    j->data = job_data;
    j->deadline_ms = cairn_now_ms() + m->cfg.job_deadline_ms;
    rv = job_copy_services(j, services, nservices);
    if (rv) {
        job_free(j);
        return rv;
    }
    return job_queue(m, device_id, j);
}

int sb_manager_device_release(struct sb_manager *m, const char *id)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j) {
        return CAIRN_ENOMEM;
    }
    j->release = true;
    j->deadline_ms = cairn_now_ms() + m->cfg.job_deadline_ms;
    return job_queue(m, id, j);
}

/* Job execution (worker thread, manager lock not held). */

struct run {
    struct worker *w;     /* this worker */
    struct device *d;     /* the device, busy */
    struct job *j;        /* the job */
    struct sb_result res; /* what the callback gets */
    char msg[CAIRN_ERRMSG_SIZE];
    char *diff; /* owned strings the result points to */
    char *config;
    char fingerprint[SB_FINGERPRINT_SIZE];
    struct sb_facts facts;
};

static unsigned backoff_ms(const struct sb_manager *m, unsigned failures)
{
    uint32_t r;
    cairn_random_bytes(&r, sizeof(r));
    return (unsigned)cairn_backoff_ms(m->cfg.backoff_min_ms, m->cfg.backoff_max_ms, failures, r);
}

/* Closes the device's session under its context's read lock. */
static void session_drop(struct sb_manager *m, struct device *d)
{
    struct sb_session *s = d->sess;
    if (!s) {
        return;
    }
    pthread_rwlock_rdlock(&d->home->ctx_lock);
    sb_session_close(s);
    pthread_rwlock_unlock(&d->home->ctx_lock);
    pthread_mutex_lock(&m->mu);
    d->sess = NULL;
    m->sessions--;
    pthread_mutex_unlock(&m->mu);
}

/* Step 1. 0: a session is open; CAIRN_EAGAIN-like 1: requeue; else fail. */
static int ensure_session(struct run *r)
{
    struct sb_manager *m = r->w->m;
    struct device *d = r->d;
    struct sb_connect c;
    struct sb_session *s = NULL;
    char pinned[SB_FINGERPRINT_SIZE];
    char *host, *user, *password;
    bool stale;
    int rv;

    pthread_mutex_lock(&m->mu);
    stale = d->stale;
    d->stale = false;
    pthread_mutex_unlock(&m->mu);
    if (d->sess && sb_session_alive(d->sess) && !stale) {
        return 0;
    }
    session_drop(m, d);
    pthread_mutex_lock(&m->mu);
    host = strdup(d->host);
    user = strdup(d->user);
    password = strdup(d->password);
    snprintf(pinned, sizeof(pinned), "%s", d->st.fingerprint);
    pthread_mutex_unlock(&m->mu);
    c = (struct sb_connect){host, d->port, user, password, pinned, m->cfg.timeout_ms};
    r->j->attempts++;
    if (!host || !user || !password) {
        rv = CAIRN_ENOMEM;
        cairn_errmsg_set(r->msg, sizeof(r->msg), "connect: %s", cairn_strerror(rv));
    } else {
        pthread_rwlock_wrlock(&r->w->ctx_lock);
        rv = sb_session_open(r->w->ctx, &c, &s, r->msg, sizeof(r->msg));
        pthread_rwlock_unlock(&r->w->ctx_lock);
    }
    free(host);
    free(user);
    free(password);

    pthread_mutex_lock(&m->mu);
    if (!rv) {
        d->sess = s;
        d->home = r->w;
        m->sessions++;
        d->st.reach = SB_REACH_REACHABLE;
        d->st.failures = 0;
        d->st.next_attempt_ms = 0;
        d->st.last_seen_ms = cairn_wall_ms();
        snprintf(d->st.fingerprint, sizeof(d->st.fingerprint), "%s", sb_session_fingerprint(s));
        d->facts = *sb_session_facts(s);
    } else {
        uint64_t next = cairn_now_ms() + backoff_ms(m, ++d->st.failures);
        d->st.reach = SB_REACH_UNREACHABLE;
        d->st.next_attempt_ms = next;
        snprintf(d->st.last_error, sizeof(d->st.last_error), "%s", r->msg);
        if (rv != CAIRN_EPRECONDITION && r->j->op != SB_OP_ONBOARD && next < r->j->deadline_ms) {
            rv = 1; /* wait for the next attempt */
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rv;
}

/* Onboard and sync-from: adopt running as the base config. */
static int op_adopt(struct run *r)
{
    struct lyd_node *running = NULL;
    int rv;

    if (r->j->op == SB_OP_ONBOARD && r->d->base_json != NULL) {
        /* Known already (sb_manager_device_configs: another owner adopted
         * it): reconnecting does not adopt what services pushed since. */
        snprintf(r->fingerprint, sizeof(r->fingerprint), "%s", sb_session_fingerprint(r->d->sess));
        r->facts = *sb_session_facts(r->d->sess);
        r->res.fingerprint = r->fingerprint;
        r->res.facts = &r->facts;
        return 0;
    }
    rv = sb_session_get_running(r->d->sess, &running, r->msg, sizeof(r->msg));
    if (!rv) {
        rv = sb_schema_print_json(running, &r->config);
    }
    lyd_free_all(running);
    if (rv) {
        r->res.step = SB_STEP_GET_RUNNING;
        return rv;
    }
    free(r->d->base_json);
    r->d->base_json = strdup(r->config);
    free(r->d->intended_json); /* adopted: the device is in sync by definition */
    r->d->intended_json = NULL;
    r->res.config_json = r->config;
    if (r->j->op == SB_OP_ONBOARD) {
        snprintf(r->fingerprint, sizeof(r->fingerprint), "%s", sb_session_fingerprint(r->d->sess));
        r->facts = *sb_session_facts(r->d->sess);
        r->res.fingerprint = r->fingerprint;
        r->res.facts = &r->facts;
    }
    return r->d->base_json ? 0 : CAIRN_ENOMEM;
}

/* Push and dry-run: render, merge, validate, then push or diff. */
static int op_push(struct run *r)
{
    struct sb_manager *m = r->w->m;
    struct ly_ctx *ctx = r->d->home->ctx;
    struct lyd_node *base = NULL, *intended = NULL;
    struct sb_push_result pr = {0};
    struct sb_push_opts po = {.epoch = m->cfg.epoch,
                              .node_id = m->node_id,
                              .confirm_timeout = m->cfg.confirm_timeout,
                              .dry_run = r->j->op == SB_OP_DRY_RUN,
                              .fence = m->cfg.fence,
                              .fence_data = m->cfg.cb_data,
                              .device_id = r->d->id};
    struct sb_target t;
    int rv = 0;

    pthread_mutex_lock(&m->mu);
    t = (struct sb_target){r->d->facts.serial, r->d->facts.model, r->d->site, r->d->site_role,
                           r->d->site_address};
    pthread_mutex_unlock(&m->mu);
    r->res.step = SB_STEP_RENDER;
    if (r->d->base_json) {
        rv = sb_schema_parse_json(ctx, r->d->base_json, &base, r->msg, sizeof(r->msg));
    }
    if (!rv) {
        rv = sb_render_merge(ctx, base, r->j->svcs, r->j->nsvcs, &t, &intended, r->msg,
                             sizeof(r->msg));
    }
    lyd_free_all(base);
    if (!rv) {
        r->res.step = SB_STEP_VALIDATE;
        rv = sb_schema_validate(ctx, &intended, r->msg, sizeof(r->msg));
    }
    if (!rv) {
        rv = sb_schema_check_modules(intended, sb_session_modules(r->d->sess), r->msg,
                                     sizeof(r->msg));
    }
    if (!rv && r->j->op == SB_OP_PUSH && m->cfg.fence != NULL &&
        !m->cfg.fence(m->cfg.cb_data, r->d->id, &po.epoch)) {
        /* Checked before the push reads the device, and the epoch it
         * gives is the one the edit carries; sb_session_push asks again
         * before each step that writes. */
        cairn_errmsg_set(r->msg, sizeof(r->msg),
                         "this node does not own the device in the current epoch");
        rv = CAIRN_EPRECONDITION;
    }
    if (!rv) {
        rv = sb_session_push(r->d->sess, intended, &po, &pr, r->msg, sizeof(r->msg));
        r->res.step = pr.failed_step;
        r->res.changed = pr.changed;
        r->res.rolled_back = pr.rolled_back;
        r->diff = pr.diff;
        pr.diff = NULL;
    }
    if (!rv && r->j->op == SB_OP_PUSH) {
        free(r->d->intended_json);
        r->d->intended_json = NULL;
        rv = sb_schema_print_json(intended, &r->d->intended_json);
        r->res.intended_json = r->d->intended_json;
    }
    sb_push_result_free(&pr);
    lyd_free_all(intended);
    return rv;
}

/* Check-drift: running against the last pushed (or adopted) config. */
static int op_drift(struct run *r)
{
    const char *want = r->d->intended_json ? r->d->intended_json : r->d->base_json;
    struct lyd_node *intended = NULL, *running = NULL;
    int rv;
    if (!want) {
        cairn_errmsg_set(r->msg, sizeof(r->msg), "the device has no intended config: onboard it");
        return CAIRN_EPRECONDITION;
    }
    r->res.step = SB_STEP_GET_RUNNING;
    rv = sb_schema_parse_json(r->d->home->ctx, want, &intended, r->msg, sizeof(r->msg));
    rv = rv ? rv : sb_session_get_running(r->d->sess, &running, r->msg, sizeof(r->msg));
    rv = rv ? rv
            : sb_schema_diff(running, intended, &r->diff, &r->res.changed, r->msg, sizeof(r->msg));
    lyd_free_all(running);
    lyd_free_all(intended);
    return rv;
}

/* Runs one job; returns true when the job must wait for a reconnect. */
static bool job_run(struct run *r)
{
    struct sb_manager *m = r->w->m;
    int rv = ensure_session(r);
    if (rv == 1) {
        return true;
    }
    r->res.step = rv ? SB_STEP_CONNECT : SB_STEP_NONE;
    if (!rv) {
        pthread_rwlock_rdlock(&r->d->home->ctx_lock);
        switch (r->j->op) {
            case SB_OP_ONBOARD:
            case SB_OP_SYNC_FROM:
                rv = op_adopt(r);
                break;
            case SB_OP_PUSH:
            case SB_OP_DRY_RUN:
                rv = op_push(r);
                break;
            case SB_OP_CHECK_DRIFT:
                rv = op_drift(r);
                break;
        }
        pthread_rwlock_unlock(&r->d->home->ctx_lock);
        if (!rv) {
            r->res.step = SB_STEP_NONE;
        }
        if (!sb_session_alive(r->d->sess)) {
            session_drop(m, r->d);
            pthread_mutex_lock(&m->mu);
            r->d->st.reach = SB_REACH_UNREACHABLE;
            snprintf(r->d->st.last_error, sizeof(r->d->st.last_error), "%s", r->msg);
            pthread_mutex_unlock(&m->mu);
            if (rv == CAIRN_EUNAVAILABLE && !r->j->rerun && cairn_now_ms() < r->j->deadline_ms) {
                CAIRN_INFO(
                    "msg=\"session lost during a job: running it again on a new "
                    "session\" device=%s op=%s error=\"%s\"",
                    r->d->id, sb_op_name(r->j->op), r->msg);
                r->j->rerun = true;
                return true;
            }
        } else {
            pthread_mutex_lock(&m->mu);
            r->d->st.last_seen_ms = cairn_wall_ms();
            pthread_mutex_unlock(&m->mu);
        }
    }
    if (rv) {
        pthread_mutex_lock(&m->mu);
        snprintf(r->d->st.last_error, sizeof(r->d->st.last_error), "%s", r->msg);
        pthread_mutex_unlock(&m->mu);
    }
    r->res.rv = rv;
    return false;
}

static void *worker_main(void *arg)
{
    static uint32_t log_opts = LY_LOSTORE_LAST; /* libyang errors are returned, not printed */
    struct worker *w = arg;
    struct sb_manager *m = w->m;

    ly_temp_log_options(&log_opts);
    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        struct device *d;
        struct run r;
        uint64_t now = cairn_now_ms();
        bool requeue;

        if (!m->heap_len) {
            pthread_cond_wait(&m->cond, &m->mu);
            continue;
        }
        if (m->heap[0]->not_before > now) {
            uint64_t until = m->heap[0]->not_before;
            struct timespec ts = {(time_t)(until / 1000), (long)(until % 1000) * 1000000L};
            pthread_cond_timedwait(&m->cond, &m->mu, &ts);
            continue;
        }
        d = heap_pop(m);
        d->st.busy = true;
        memset(&r, 0, sizeof(r));
        r.w = w;
        r.d = d;
        r.j = d->head;
        d->head = r.j->next;
        if (!d->head) {
            d->tail = NULL;
        }
        pthread_mutex_unlock(&m->mu);

        requeue = !r.j->release && job_run(&r);
        if (r.j->release) {
            session_drop(m, d);
            job_free(r.j);
        } else if (!requeue) {
            r.res.device_id = d->id;
            r.res.op = r.j->op;
            r.res.job_data = r.j->data;
            r.res.message = r.res.rv ? r.msg : "";
            r.res.diff = r.diff ? r.diff : "";
            r.res.attempts = r.j->attempts;
            m->cfg.cb(&r.res, m->cfg.cb_data);
            job_free(r.j);
        }
        free(r.diff);
        free(r.config);

        pthread_mutex_lock(&m->mu);
        if (requeue) {
            r.j->next = d->head;
            d->head = r.j;
            if (!d->tail) {
                d->tail = r.j;
            }
        }
        d->st.busy = false;
        if (d->head) {
            now = cairn_now_ms();
            heap_push(m, d, d->st.next_attempt_ms > now ? d->st.next_attempt_ms : now);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

int sb_manager_create(const struct sb_manager_config *cfg, struct sb_manager **out, char *errmsg,
                      size_t size)
{
    struct sb_manager *m = calloc(1, sizeof(*m));
    pthread_condattr_t attr;
    pthread_rwlockattr_t rwattr;
    unsigned i;
    int rv = 0;

    if (!m || !cfg->cb) {
        free(m);
        cairn_errmsg_set(errmsg, size, "manager: %s",
                         m ? "a result callback is required" : cairn_strerror(CAIRN_ENOMEM));
        return m ? CAIRN_EINVAL : CAIRN_ENOMEM;
    }
    m->cfg = *cfg;
    m->cfg.threads = cfg->threads ? cfg->threads : 8;
    m->cfg.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 10000;
    m->cfg.confirm_timeout = cfg->confirm_timeout ? cfg->confirm_timeout : 60;
    m->cfg.backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : 500;
    m->cfg.backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : 60000;
    m->cfg.job_deadline_ms = cfg->job_deadline_ms ? cfg->job_deadline_ms : 30000;
    m->node_id = cfg->node_id ? strdup(cfg->node_id) : NULL;
    m->cfg.node_id = m->node_id;
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_rwlockattr_init(&rwattr);
    pthread_rwlockattr_setkind_np(&rwattr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    m->workers = calloc(m->cfg.threads, sizeof(*m->workers));
    if (!m->workers) {
        rv = CAIRN_ENOMEM;
        cairn_errmsg_set(errmsg, size, "manager: %s", cairn_strerror(rv));
    }
    for (i = 0; !rv && i < m->cfg.threads; i++) {
        struct worker *w = &m->workers[i];
        w->m = m;
        rv = sb_schema_ctx_create(cfg->yang_dir, &w->ctx, errmsg, size);
        if (rv) {
            break;
        }
        pthread_rwlock_init(&w->ctx_lock, &rwattr);
        if (pthread_create(&w->thread, NULL, worker_main, w)) {
            pthread_rwlock_destroy(&w->ctx_lock);
            ly_ctx_destroy(w->ctx);
            rv = CAIRN_ENOMEM;
            cairn_errmsg_set(errmsg, size, "manager: start worker %u: %s", i, strerror(errno));
            break;
        }
        m->nworkers++;
    }
    pthread_rwlockattr_destroy(&rwattr);
    if (rv) {
        sb_manager_destroy(m);
        return rv;
    }
    *out = m;
    return 0;
}

void sb_manager_destroy(struct sb_manager *m)
{
    unsigned i;
    size_t b;
    if (!m) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->mu);
    for (i = 0; i < m->nworkers; i++) {
        pthread_join(m->workers[i].thread, NULL);
    }
    /* Queued jobs end with CAIRN_ESHUTDOWN, on this thread. */
    for (b = 0; b < BUCKETS; b++) {
        struct device *d;
        while ((d = m->buckets[b])) {
            struct job *j;
            m->buckets[b] = d->hnext;
            while ((j = d->head)) {
                if (j->release) {
                    d->head = j->next;
                    job_free(j);
                    continue;
                }
                struct sb_result res = {.device_id = d->id,
                                        .op = j->op,
                                        .job_data = j->data,
                                        .rv = CAIRN_ESHUTDOWN,
                                        .message = "the manager stopped",
                                        .diff = ""};
                d->head = j->next;
                m->cfg.cb(&res, m->cfg.cb_data);
                job_free(j);
            }
            if (d->sess) {
                sb_session_close(d->sess);
            }
            device_free(d);
        }
    }
    for (i = 0; i < m->nworkers; i++) {
        pthread_rwlock_destroy(&m->workers[i].ctx_lock);
        ly_ctx_destroy(m->workers[i].ctx);
    }
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->mu);
    free(m->workers);
    free(m->heap);
    free(m->node_id);
    free(m);
}
