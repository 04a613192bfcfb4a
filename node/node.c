/*
 * Node lifecycle, the libuv loop thread that owns raft, the submit queue
 * other threads use to reach it, and the published view of raft's state.
 *
 * Start-up (node_create, in order; each step undone in reverse on failure):
 *   1. check or write the data directory's identity (cluster id, node id);
 *   2. open the store;
 *   3. start HTTP (a busy port fails here, before raft touches the disk),
 *      closed: every request is answered 503 "starting" until step 5;
 *   4. start the loop thread: it creates raft, bootstraps a pristine
 *      directory if this node is an initial member, starts raft, and
 *      reports back through the start-up handshake;
 *   5. register the API and internal RPC routes, and open HTTP;
 *   6. start the admin bootstrap thread if a password file is configured
 *      (bootstrap.c).
 * Between 4 and 5 the liveness thread starts (liveness.c: leases,
 * committed liveness, this node's ownership view); it stops before the
 * loop does and is freed once HTTP has stopped.
 * Shutdown (node_destroy): mark shutting down (waiters give up), queue
 * OP_STOP (the loop closes raft, failing what is in flight, then its
 * handles, and the thread ends), join, join the bootstrap thread, remove
 * the API's routes (/api/v1 answers 503 from then on, not_serving_cb),
 * stop HTTP (waits for handlers), close the store.
 */
#include "node_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

/* The REST API's routes (api.c registers its handler on the same prefix). */
#define API_PREFIX "/api/v1"

void node_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

struct op *node_op_new(struct node *n, enum op_type type)
{
    struct op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        return NULL;
    }
    op->type = type;
    op->node = n;
    pthread_mutex_init(&op->mu, NULL);
    node_cond_init(&op->cv);
    atomic_init(&op->refs, 2);
    return op;
}

void node_op_unref(struct op *op)
{
    if (atomic_fetch_sub(&op->refs, 1) != 1) {
        return;
    }
    pthread_mutex_destroy(&op->mu);
    pthread_cond_destroy(&op->cv);
    store_backup_end(op->backup);
    free(op->buf);
    free(op);
}

void node_abs_deadline(uint64_t deadline_ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(deadline_ms / 1000);
    ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
}

/* Called on the loop thread when an op is finished. */
static void op_complete(struct op *op, int status, const char *message)
{
    pthread_mutex_lock(&op->mu);
    op->status = status;
    if (message != NULL) {
        /* Cut to fit (a copy the compiler can see is bounded). */
        size_t len = strnlen(message, sizeof op->message - 1);
        memcpy(op->message, message, len);
        op->message[len] = '\0';
    }
    op->done = true;
    pthread_cond_signal(&op->cv);
    pthread_mutex_unlock(&op->mu);
    node_op_unref(op);
}

int node_submit(struct node *n, struct op *op)
{
    pthread_mutex_lock(&n->qmu);
    if (n->q_closed) {
        pthread_mutex_unlock(&n->qmu);
        node_op_unref(op); /* the loop's reference */
        return CAIRN_ESHUTDOWN;
    }
    op->next = NULL;
    if (n->q_tail != NULL) {
        n->q_tail->next = op;
    } else {
        n->q_head = op;
    }
    n->q_tail = op;
    pthread_mutex_unlock(&n->qmu);
    uv_async_send(&n->async);
    return 0;
}

int node_op_wait(struct node *n, struct op *op, uint64_t deadline_ms)
{
    struct timespec ts;
    int rv;
    (void)n;
    /* cairn_now_ms and the condvar both use CLOCK_MONOTONIC. */
    node_abs_deadline(deadline_ms, &ts);
    pthread_mutex_lock(&op->mu);
    while (!op->done) {
        if (pthread_cond_timedwait(&op->cv, &op->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    rv = op->done ? op->status : CAIRN_ETIMEDOUT;
    if (!op->done) {
        snprintf(op->message, sizeof op->message, "no answer from the cluster in time");
    }
    pthread_mutex_unlock(&op->mu);
    return rv;
}

void node_view(struct node *n, struct consensus_status *out)
{
    pthread_mutex_lock(&n->vmu);
    *out = n->view;
    pthread_mutex_unlock(&n->vmu);
}

void node_view_wait(struct node *n, uint64_t deadline_ms)
{
    struct timespec ts;
    node_abs_deadline(deadline_ms, &ts);
    pthread_mutex_lock(&n->vmu);
    if (!n->shutting_down) {
        pthread_cond_timedwait(&n->vcv, &n->vmu, &ts);
    }
    pthread_mutex_unlock(&n->vmu);
}

/* Wakes the applied waiters whose index is applied (all of them when
 * shutting down). vmu held. */
static void applied_waiters_wake(struct node *n)
{
    struct applied_waiter **pp = &n->applied_waiters;
    while (*pp != NULL) {
        struct applied_waiter *w = *pp;
        if (w->index <= n->view.applied_index || n->shutting_down) {
            *pp = w->next;
            w->woken = true;
            pthread_cond_signal(&w->cv);
        } else {
            pp = &w->next;
        }
    }
}

int node_wait_applied(struct node *n, uint64_t index, uint64_t deadline_ms)
{
    struct applied_waiter w = {.index = index};
    struct timespec ts;
    int rv = 0;
    node_abs_deadline(deadline_ms, &ts);
    pthread_mutex_lock(&n->vmu);
    if (n->view.applied_index >= index) {
        pthread_mutex_unlock(&n->vmu);
        return 0;
    }
    node_cond_init(&w.cv);
    w.next = n->applied_waiters;
    n->applied_waiters = &w;
    while (n->view.applied_index < index) {
        if (n->shutting_down) {
            rv = CAIRN_ESHUTDOWN;
            break;
        }
        if (pthread_cond_timedwait(&w.cv, &n->vmu, &ts) == ETIMEDOUT) {
            rv = n->view.applied_index >= index ? 0 : CAIRN_ETIMEDOUT;
            break;
        }
    }
    if (!w.woken) {
        struct applied_waiter **pp = &n->applied_waiters;
        while (*pp != &w) {
            pp = &(*pp)->next;
        }
        *pp = w.next;
    }
    pthread_mutex_unlock(&n->vmu);
    pthread_cond_destroy(&w.cv);
    return rv;
}

/* From the member record, else the configuration file. */
static int api_address_lookup(struct node *n, uint64_t id, char *out, size_t size)
{
    struct store_object obj;
    char key[24];
    const struct config_member *m;
    int rv;

    snprintf(key, sizeof key, "%llu", (unsigned long long)id);
    rv = store_object_get(n->store, STORE_KIND_MEMBER, key, &obj);
    if (rv == 0) {
        json_t *doc = json_loadb(obj.body, obj.body_len, 0, NULL);
        const char *api = json_string_value(json_object_get(doc, "api_address"));
        rv = CAIRN_ENOTFOUND;
        if (api != NULL && strlen(api) < size) {
            snprintf(out, size, "%s", api);
            rv = 0;
        }
        json_decref(doc);
        store_object_release(&obj);
        if (rv == 0) {
            return 0;
        }
    }
    m = config_member_find(&n->cfg, id);
    if (m == NULL) {
        return CAIRN_ENOTFOUND;
    }
    snprintf(out, size, "%s", m->api_address);
    return 0;
}

int node_api_address(struct node *n, uint64_t id, char *out, size_t size)
{
    uint64_t generation = store_member_generation(n->store);
    char found[sizeof n->aa.address];
    int rv;

    pthread_mutex_lock(&n->cvmu);
    if (n->aa.valid && n->aa.id == id && n->aa.member_generation == generation &&
        strlen(n->aa.address) < size) {
        snprintf(out, size, "%s", n->aa.address);
        pthread_mutex_unlock(&n->cvmu);
        return 0;
    }
    pthread_mutex_unlock(&n->cvmu);
    rv = api_address_lookup(n, id, found, sizeof found);
    if (rv != 0 || strlen(found) >= size) {
        return rv != 0 ? rv : CAIRN_ENOTFOUND;
    }
    snprintf(out, size, "%s", found);
    pthread_mutex_lock(&n->cvmu);
    n->aa.valid = true;
    n->aa.id = id;
    n->aa.member_generation = generation;
    snprintf(n->aa.address, sizeof n->aa.address, "%s", found);
    pthread_mutex_unlock(&n->cvmu);
    return 0;
}

/* --- loop thread --------------------------------------------------------- */

static void apply_done_cb(void *arg, int status, uint64_t index, const struct store_result *res)
{
    struct op *op = arg;
    op->index = index;
    if (res != NULL) {
        op->result = *res;
    }
    if (status == 0 && op->nudge) {
        consensus_nudge(op->node->consensus);
    }
    op_complete(op, status, status != 0 ? cairn_strerror(status) : NULL);
}

static void index_done_cb(void *arg, int status, uint64_t index)
{
    struct op *op = arg;
    op->index = index;
    if (status == 0 && op->nudge) {
        consensus_nudge(op->node->consensus);
    }
    op_complete(op, status, status != 0 ? cairn_strerror(status) : NULL);
}

static void change_done_cb(void *arg, int status, const char *message)
{
    op_complete(arg, status, message);
}

static void loop_closed_cb(uv_handle_t *h)
{
    (void)h;
}

static void consensus_closed_cb(void *arg)
{
    struct node *n = arg;
    uv_close((uv_handle_t *)&n->async, loop_closed_cb);
    uv_close((uv_handle_t *)&n->check, loop_closed_cb);
    uv_close((uv_handle_t *)&n->timer, loop_closed_cb);
}

static void run_op(struct node *n, struct op *op)
{
    char msg[CAIRN_ERRMSG_SIZE];
    int rv;
    if (n->consensus == NULL) {
        op_complete(op, CAIRN_ESHUTDOWN, "raft is not running");
        return;
    }
    switch (op->type) {
        case OP_APPLY:
            rv = consensus_apply(n->consensus, op->buf, op->len, apply_done_cb, op);
            break;
        case OP_BARRIER:
            rv = consensus_barrier(n->consensus, index_done_cb, op);
            break;
        case OP_MEMBER_ADD:
            rv = consensus_member_add(n->consensus, op->id, op->address, change_done_cb, op);
            break;
        case OP_MEMBER_REMOVE:
            rv = consensus_member_remove(n->consensus, op->id, change_done_cb, op);
            break;
        case OP_TRANSFER:
            rv = consensus_transfer(n->consensus, op->id, change_done_cb, op);
            break;
        case OP_BACKUP:
            /* A checkpoint here, where apply runs, is at one applied index;
             * it flushes the memtable and links files (tens of ms). */
            rv = store_backup_begin(n->store, &op->backup, msg, sizeof msg);
            op_complete(op, rv, rv != 0 ? msg : NULL);
            return;
        default:
            rv = CAIRN_EINVAL;
            break;
    }
    if (rv != 0) {
        op_complete(op, rv, cairn_strerror(rv));
    }
}

/* Bytes of commands one batched entry carries at most (a single larger
 * command still goes alone). */
#define BATCH_BYTES (1u << 20)

/* Proposes k queued OP_APPLY operations, in order: as batched entries of
 * up to propose_batch_max commands each while every voter applies them
 * (versions.c), else one entry each. Writes that arrive together then
 * share one raft entry: one append, one replication message per follower,
 * one store write on every node. */
static void run_applies(struct node *n, struct op **ops, size_t k)
{
    struct consensus_cmd cmds[STORE_BATCH_MAX];
    uint64_t lowest;
    size_t i = 0;

    if (k < 2 || n->consensus == NULL || n->cfg.propose_batch_max < 2 ||
        node_cluster_version(n, &lowest) < STORE_COMMAND_VERSION_BATCH) {
        for (; i < k; i++) {
            atomic_fetch_add(&n->proposed_entries, 1);
            atomic_fetch_add(&n->proposed_commands, 1);
            run_op(n, ops[i]);
        }
        return;
    }
    while (i < k) {
        size_t m = 0;
        size_t bytes = 0;
        int rv;
        while (i + m < k && m < n->cfg.propose_batch_max &&
               (m == 0 || bytes + ops[i + m]->len <= BATCH_BYTES)) {
            struct op *op = ops[i + m];
            cmds[m] = (struct consensus_cmd){op->buf, op->len, apply_done_cb, op};
            bytes += op->len;
            m++;
        }
        atomic_fetch_add(&n->proposed_entries, 1);
        atomic_fetch_add(&n->proposed_commands, m);
        rv = m == 1 ? consensus_apply(n->consensus, cmds[0].buf, cmds[0].len, apply_done_cb, ops[i])
                    : consensus_apply_batch(n->consensus, cmds, m);
        for (size_t j = 0; rv != 0 && j < m; j++) {
            op_complete(ops[i + j], rv, cairn_strerror(rv));
        }
        i += m;
    }
}

static void async_cb(uv_async_t *a)
{
    struct node *n = a->data;
    struct op *applies[STORE_BATCH_MAX];
    size_t k = 0;
    struct op *op;
    bool stop = false;

    pthread_mutex_lock(&n->qmu);
    op = n->q_head;
    n->q_head = n->q_tail = NULL;
    pthread_mutex_unlock(&n->qmu);
    while (op != NULL) {
        struct op *next = op->next;
        if (op->type == OP_STOP) {
            stop = true;
            op_complete(op, 0, NULL);
        } else if (stop) {
            op_complete(op, CAIRN_ESHUTDOWN, "shutting down");
        } else if (op->type == OP_APPLY) {
            /* Gathered; the other operations keep their place after them. */
            applies[k++] = op;
            if (k == STORE_BATCH_MAX) {
                run_applies(n, applies, k);
                k = 0;
            }
        } else {
            run_applies(n, applies, k);
            k = 0;
            run_op(n, op);
        }
        op = next;
    }
    run_applies(n, applies, k);
    if (stop && n->consensus != NULL) {
        consensus_close(n->consensus, consensus_closed_cb, n);
    } else if (stop) {
        consensus_closed_cb(n);
    }
}

/* Publishes raft's state for other threads after every loop iteration,
 * and logs every change of role, term or leader.
 * node_view_wait wakes for a change of role, leader, term or
 * configuration, or of a system object (the ownership record the liveness
 * thread follows), not for every entry applied: under load that woke every
 * waiter thousands of times a second for nothing. Applied-index waiters
 * have their own wake-ups. */
static void publish_view(struct node *n)
{
    struct consensus_status s;
    uint64_t system = store_system_generation(n->store);
    bool changed, wake, role;
    if (n->consensus == NULL) {
        return;
    }
    consensus_status(n->consensus, &s);
    pthread_mutex_lock(&n->vmu);
    role = s.state != n->view.state || s.leader_id != n->view.leader_id || s.term != n->view.term;
    wake = role || s.config_index != n->view.config_index || system != n->view_system;
    changed = wake || s.applied_index != n->view.applied_index ||
              s.commit_index != n->view.commit_index || s.last_index != n->view.last_index;
    if (changed) {
        if (s.leader_id != 0 && s.leader_id != n->view.leader_id) {
            n->leader_changes++;
        }
        n->view = s;
        n->view_system = system;
        applied_waiters_wake(n);
    }
    if (wake) {
        pthread_cond_broadcast(&n->vcv);
    }
    pthread_mutex_unlock(&n->vmu);
    if (role) {
        /* Elections and leader changes, for whoever reads the log after
         * an outage (a few lines per election). */
        CAIRN_INFO("msg=\"raft role\" state=%s term=%llu leader=%llu",
                   consensus_state_name(s.state), (unsigned long long)s.term,
                   (unsigned long long)s.leader_id);
    }
}

static void check_cb(uv_check_t *c)
{
    publish_view(c->data);
}

static void timer_cb(uv_timer_t *t)
{
    publish_view(t->data);
}

static void fatal_cb(void *arg, const char *message)
{
    (void)arg;
    /* The state machine cannot go on; raft's log is intact, so a restart
     * replays what was not applied. No clean-up runs: other threads may be
     * using what it would free. */
    CAIRN_ERROR("msg=\"fatal: stopping\" error=\"%s\"", message);
    _exit(1);
}

static int start_raft(struct node *n, char *errmsg, size_t size)
{
    struct consensus_config cc = {
        .id = n->cfg.node_id,
        .address = n->cfg.raft_address,
        .election_timeout_ms = n->cfg.election_timeout_ms,
        .heartbeat_timeout_ms = n->cfg.heartbeat_timeout_ms,
        .snapshot_threshold = n->cfg.snapshot_threshold,
        .snapshot_trailing = n->cfg.snapshot_trailing,
        .snapshot_log_bytes = (uint64_t)n->cfg.snapshot_log_mb << 20,
        .compact_first = store_applied_index(n->store) == 0 && store_revision(n->store) > 0,
        .fatal_cb = fatal_cb,
        .fatal_arg = n,
    };
    char dir[4200];
    int rv;

    snprintf(dir, sizeof dir, "%s/raft", n->cfg.data_dir);
    cc.dir = dir;
    rv = consensus_create(&n->loop, n->store, &cc, &n->consensus, errmsg, size);
    if (rv != 0) {
        return rv;
    }
    if (config_member_find(&n->cfg, n->cfg.node_id) != NULL) {
        struct consensus_member members[CONFIG_MAX_MEMBERS];
        for (size_t i = 0; i < n->cfg.n_members; i++) {
            members[i].id = n->cfg.members[i].id;
            snprintf(members[i].address, sizeof members[i].address, "%s",
                     n->cfg.members[i].raft_address);
            members[i].role = CONSENSUS_VOTER;
        }
        rv = consensus_bootstrap(n->consensus, members, n->cfg.n_members, errmsg, size);
        if (rv == 0) {
            CAIRN_INFO("msg=\"bootstrapped a new cluster\" members=%zu", n->cfg.n_members);
        } else if (rv != CAIRN_EEXIST) {
            return rv;
        }
    }
    rv = consensus_start(n->consensus, errmsg, size);
    if (rv != 0) {
        /* A failed start leaves raft initialized: close it on the loop. */
        return rv;
    }
    publish_view(n);
    return 0;
}

static void start_report(struct node *n, int rv)
{
    pthread_mutex_lock(&n->smu);
    n->started = true;
    n->start_rv = rv;
    pthread_cond_signal(&n->scv);
    pthread_mutex_unlock(&n->smu);
}

static void *loop_main(void *arg)
{
    struct node *n = arg;
    char err[CAIRN_ERRMSG_SIZE] = "";
    int rv = start_raft(n, err, sizeof err);

    if (rv != 0) {
        snprintf(n->start_err, sizeof n->start_err, "%s", err);
        pthread_mutex_lock(&n->qmu);
        n->q_closed = true;
        pthread_mutex_unlock(&n->qmu);
        if (n->consensus != NULL) {
            consensus_close(n->consensus, consensus_closed_cb, n);
        } else {
            consensus_closed_cb(n);
        }
        start_report(n, rv);
    } else {
        start_report(n, 0);
    }
    uv_run(&n->loop, UV_RUN_DEFAULT);
    consensus_destroy(n->consensus);
    n->consensus = NULL;
    return NULL;
}

static int loop_start(struct node *n, char *errmsg, size_t size)
{
    int rv = uv_loop_init(&n->loop);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, size, "libuv loop: %s", uv_strerror(rv));
        return CAIRN_EIO;
    }
    uv_async_init(&n->loop, &n->async, async_cb);
    n->async.data = n;
    uv_check_init(&n->loop, &n->check);
    n->check.data = n;
    uv_check_start(&n->check, check_cb);
    uv_timer_init(&n->loop, &n->timer);
    n->timer.data = n;
    uv_timer_start(&n->timer, timer_cb, n->cfg.heartbeat_timeout_ms, n->cfg.heartbeat_timeout_ms);
    if (pthread_create(&n->thread, NULL, loop_main, n) != 0) {
        cairn_errmsg_set(errmsg, size, "start loop thread: %s", strerror(errno));
        return CAIRN_EIO;
    }
    n->thread_started = true;
    pthread_mutex_lock(&n->smu);
    while (!n->started) {
        pthread_cond_wait(&n->scv, &n->smu);
    }
    rv = n->start_rv;
    pthread_mutex_unlock(&n->smu);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, size, "%s", n->start_err);
    }
    return rv;
}

static void loop_stop(struct node *n)
{
    struct op *op;
    if (!n->thread_started) {
        return;
    }
    op = node_op_new(n, OP_STOP);
    if (op != NULL && node_submit(n, op) == 0) {
        node_op_unref(op); /* nobody waits: the join below does */
    } else if (op != NULL) {
        node_op_unref(op);
    }
    pthread_join(n->thread, NULL);
    n->thread_started = false;
    uv_loop_close(&n->loop);
    /* Fail what was queued after the loop stopped reading the queue. */
    pthread_mutex_lock(&n->qmu);
    n->q_closed = true;
    op = n->q_head;
    n->q_head = n->q_tail = NULL;
    pthread_mutex_unlock(&n->qmu);
    while (op != NULL) {
        struct op *next = op->next;
        op_complete(op, CAIRN_ESHUTDOWN, "shutting down");
        op = next;
    }
}

/* --- data directory identity -------------------------------------------- */

static int identity_check(const struct config *cfg, char *errmsg, size_t size)
{
    char path[4200], raft_dir[4200], want[256], have[256] = "";
    FILE *f;
    struct stat st;
    size_t len;

    if (mkdir(cfg->data_dir, 0750) != 0 && errno != EEXIST) {
        cairn_errmsg_set(errmsg, size, "data_dir %s: %s", cfg->data_dir, strerror(errno));
        return CAIRN_EINVAL;
    }
    snprintf(path, sizeof path, "%s/identity", cfg->data_dir);
    snprintf(want, sizeof want, "cluster_id=%s\nnode_id=%llu\n", cfg->cluster_id,
             (unsigned long long)cfg->node_id);
    f = fopen(path, "r");
    if (f != NULL) {
        len = fread(have, 1, sizeof have - 1, f);
        have[len] = '\0';
        fclose(f);
        if (strcmp(have, want) != 0) {
            char *nl;
            while ((nl = strchr(have, '\n')) != NULL) {
                *nl = ' ';
            }
            cairn_errmsg_set(
                errmsg, size,
                "data_dir %s belongs to another cluster or node (%s), not cluster_id=%s "
                "node_id=%llu: use another data_dir",
                cfg->data_dir, have, cfg->cluster_id, (unsigned long long)cfg->node_id);
            return CAIRN_EWRONGCLUSTER;
        }
        return 0;
    }
    snprintf(raft_dir, sizeof raft_dir, "%s/raft", cfg->data_dir);
    if (stat(raft_dir, &st) == 0) {
        cairn_errmsg_set(errmsg, size,
                         "data_dir %s holds raft data but no identity file: refusing to guess "
                         "whose it is",
                         cfg->data_dir);
        return CAIRN_EWRONGCLUSTER;
    }
    f = fopen(path, "w");
    if (f == NULL || fputs(want, f) == EOF || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        cairn_errmsg_set(errmsg, size, "write %s: %s", path, strerror(errno));
        if (f != NULL) {
            fclose(f);
        }
        return CAIRN_EIO;
    }
    fclose(f);
    return 0;
}

/* Holds an exclusive lock on DATA_DIR/lock for the node's life, so a second
 * cairnd on the same directory stops with a clear message instead of
 * failing somewhere inside RocksDB or raft. */
static int data_dir_lock(const struct config *cfg, int *out, char *errmsg, size_t size)
{
    char path[4200];
    int fd;
    snprintf(path, sizeof path, "%s/lock", cfg->data_dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        cairn_errmsg_set(errmsg, size, "open %s: %s", path, strerror(errno));
        return CAIRN_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        cairn_errmsg_set(errmsg, size,
                         "data_dir %s is in use by another cairnd process: stop it or use "
                         "another data_dir",
                         cfg->data_dir);
        close(fd);
        return CAIRN_EWRONGCLUSTER;
    }
    *out = fd;
    return 0;
}

/* --- lifecycle ------------------------------------------------------------ */

/* Answers /api/v1 once the API's routes are gone (the node is stopping):
 * 503 with Retry-After, as for any moment the node cannot serve, rather
 * than the 404 of a path nobody routes. */
static int unavailable(struct mg_connection *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int unavailable(struct mg_connection *conn, const char *fmt, ...)
{
    va_list ap;
    int rv;
    va_start(ap, fmt);
    rv = http_problem_va(conn, 503, "Retry-After: 1\r\n", "unavailable", "Service unavailable",
                         NULL, fmt, ap);
    va_end(ap);
    return rv;
}

static int not_serving_cb(struct mg_connection *conn, void *data)
{
    (void)data;
    return unavailable(conn, "the node is stopping; retry on another node");
}

/* Ready as backend.c sees it, and with the configured admin user confirmed
 * (bootstrap.c): a client that waited for /readyz can log in. */
static bool node_ready(void *data, char *why, size_t size)
{
    struct node *n = data;
    if (!n->backend_ready(data, why, size)) {
        return false;
    }
    if (!atomic_load(&n->bootstrap_done)) {
        snprintf(why, size, "the admin user %s is not confirmed yet (admin_password_file)",
                 n->cfg.admin_user);
        return false;
    }
    return true;
}

int node_create(const struct config *cfg, struct node **out, char *errmsg, size_t size)
{
    struct node *n;
    struct api_backend backend;
    struct api_config acfg;
    struct http_config hcfg;
    char path[4200];
    int rv;

    n = calloc(1, sizeof *n);
    if (n == NULL) {
        cairn_errmsg_set(errmsg, size, "out of memory");
        return CAIRN_ENOMEM;
    }
    n->cfg = *cfg;
    pthread_mutex_init(&n->qmu, NULL);
    pthread_mutex_init(&n->smu, NULL);
    pthread_cond_init(&n->scv, NULL);
    pthread_mutex_init(&n->vmu, NULL);
    pthread_mutex_init(&n->cvmu, NULL);
    pthread_mutex_init(&n->fwmu, NULL);
    node_cond_init(&n->vcv);
    pthread_mutex_init(&n->rimu, NULL);
    node_cond_init(&n->ricv);

    /* Busy ports are found before anything is written to the data dir. */
    if (cairn_listen_check(cfg->raft_address, errmsg, size) == CAIRN_EIO ||
        cairn_listen_check(cfg->api_address, errmsg, size) == CAIRN_EIO) {
        rv = CAIRN_EEXIST;
        goto err_after_alloc;
    }
    rv = identity_check(cfg, errmsg, size);
    if (rv != 0) {
        goto err_after_alloc;
    }
    rv = data_dir_lock(cfg, &n->lock_fd, errmsg, size);
    if (rv != 0) {
        goto err_after_alloc;
    }
    snprintf(path, sizeof path, "%s/store", cfg->data_dir);
    rv = store_open(path, &n->store, errmsg, size);
    if (rv != 0) {
        goto err_after_lock;
    }
    if (cfg->debug_command_version_max != 0) {
        store_command_version_limit(n->store, cfg->debug_command_version_max);
        CAIRN_WARN("msg=\"debug: acting as a build that applies command versions 1..%u\"",
                   cfg->debug_command_version_max);
    }
    rv = peer_pool_create(cfg->cluster_secret, &n->peers);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, size, "out of memory");
        goto err_after_store;
    }
    hcfg.listen = cfg->api_address;
    /* Each event stream holds a worker for its life: streams get their own
     * on top of http_threads, so they never starve other requests. */
    hcfg.threads = cfg->http_threads + cfg->event_streams_max;
    hcfg.max_body = (size_t)cfg->max_body_bytes;
    hcfg.request_timeout_ms = cfg->request_timeout_ms * 2;
    hcfg.start_closed = true; /* opened once every route is registered */
    rv = http_server_start(&hcfg, &n->http, errmsg, size);
    if (rv != 0) {
        rv = CAIRN_EEXIST;
        goto err_after_peers;
    }
    rv = loop_start(n, errmsg, size);
    if (rv != 0) {
        goto err_after_http;
    }
    rv = node_liveness_start(n, errmsg, size);
    if (rv != 0) {
        goto err_after_loop;
    }
    rv = node_devices_start(n, errmsg, size);
    if (rv != 0) {
        goto err_after_liveness;
    }
    rv = node_callhome_start(n, errmsg, size);
    if (rv != 0) {
        goto err_after_liveness;
    }
    node_backend_init(n, &backend);
    backend.ownership = node_liveness_ownership;
    n->backend_ready = backend.ready;
    backend.ready = node_ready;
    memset(&acfg, 0, sizeof acfg);
    acfg.node_id = cfg->node_id;
    acfg.request_timeout_ms = cfg->request_timeout_ms;
    acfg.session_ttl_ms = (uint64_t)cfg->session_ttl_s * 1000;
    acfg.event_streams_max = cfg->event_streams_max;
    rv = api_create(n->http, n->store, &backend, &acfg, &n->api);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, size, "register API routes: %s", cairn_strerror(rv));
        goto err_after_liveness;
    }
    node_rpc_register(n);
    http_server_open(n->http);
    rv = node_bootstrap_start(n, errmsg, size);
    if (rv != 0) {
        goto err_after_api;
    }
    *out = n;
    return 0;

err_after_api:
    http_server_route(n->http, "/internal/v1/", NULL, NULL);
    api_destroy(n->api);
err_after_liveness:
    node_callhome_stop(n);
    node_devices_stop(n);
    node_liveness_stop(n);
err_after_loop:
    loop_stop(n);
err_after_http:
    http_server_destroy(n->http);
    node_liveness_destroy(n);
err_after_peers:
    peer_pool_destroy(n->peers);
err_after_store:
    store_destroy(n->store);
err_after_lock:
    close(n->lock_fd);
err_after_alloc:
    free(n);
    assert(rv != 0);
    return rv;
}

void node_destroy(struct node *n)
{
    if (n == NULL) {
        return;
    }
    pthread_mutex_lock(&n->vmu);
    n->shutting_down = true;
    pthread_cond_broadcast(&n->vcv);
    applied_waiters_wake(n);
    pthread_mutex_unlock(&n->vmu);
    /* Raft first: closing it fails every operation in flight, which wakes
     * the HTTP handlers waiting on them, so stopping HTTP does not wait for
     * their deadlines. */
    node_callhome_stop(n);
    node_devices_stop(n);
    node_liveness_stop(n);
    loop_stop(n);
    node_bootstrap_stop(n);
    api_destroy(n->api);
    http_server_route(n->http, API_PREFIX, not_serving_cb, n);
    http_server_destroy(n->http);
    node_liveness_destroy(n);
    peer_pool_destroy(n->peers);
    store_destroy(n->store);
    close(n->lock_fd);
    pthread_mutex_destroy(&n->qmu);
    pthread_mutex_destroy(&n->smu);
    pthread_cond_destroy(&n->scv);
    pthread_mutex_destroy(&n->vmu);
    pthread_mutex_destroy(&n->cvmu);
    pthread_mutex_destroy(&n->fwmu);
    pthread_cond_destroy(&n->vcv);
    pthread_mutex_destroy(&n->rimu);
    pthread_cond_destroy(&n->ricv);
    free(n);
}
