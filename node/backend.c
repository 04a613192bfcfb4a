/*
 * The API's backend (api.h): every write and every linearizable read point
 * comes from the leader. On the leader the work goes through the submit
 * queue to raft; on a follower it is forwarded to the leader's
 * /internal/v1 endpoints (rpc.c) and the answer waits until this node has
 * applied the same index, so a client reads its own writes on any node.
 *
 * leader_call is the one retry loop for all of them: it follows the
 * published view (who leads), retries on "not the leader" and on an
 * unreachable leader until the deadline, and gives up early with
 * CAIRN_ENOLEADER once no leader has been known for two election timeouts
 * (a cluster without quorum answers quickly instead of hanging). Retrying a
 * write is safe: every command carries a request id that the store uses to
 * answer a repeat with the first outcome.
 */
#include "node_int.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct call {
    /* Runs the operation on this node, which is the leader. */
    int (*local)(struct node *n, struct call *c, uint64_t deadline_ms);
    /* Asks the leader at address; CAIRN_ENOTLEADER if it is not (any
     * more), CAIRN_EUNAVAILABLE if it cannot be reached. */
    int (*remote)(struct node *n, struct call *c, const char *address, uint64_t deadline_ms);
    char *errmsg;
    size_t errmsg_size;
    /* Arguments and results. */
    const void *cmd;
    size_t len;
    unsigned kind;            /* propose: of the object to answer with, or 0 */
    struct store_object *obj; /* propose: filled if answered (or NULL) */
    bool answered;            /* obj filled: not applied here yet, maybe */
    uint64_t id;
    const char *raft_address;
    const char *api_address;
    uint64_t index;
    struct store_result *res;
    bool force; /* member removal: skip the quorum check */
};

/* How long one forwarded attempt may take before the loop re-checks who
 * leads: long enough for a commit, short enough to notice a new leader. */
static uint64_t attempt_deadline(struct node *n, uint64_t deadline_ms)
{
    uint64_t d = cairn_now_ms() + 2ull * n->cfg.election_timeout_ms;
    return d < deadline_ms ? d : deadline_ms;
}

static int leader_call(struct node *n, struct call *c, uint64_t deadline_ms)
{
    struct consensus_status v;
    char address[64];
    uint64_t no_leader_since = 0;
    int rv = CAIRN_ENOLEADER;

    c->errmsg[0] = '\0';
    /* Bounded by the deadline; the count bound is a second guard. */
    for (unsigned attempt = 0; attempt < 100000; attempt++) {
        uint64_t now = cairn_now_ms();
        node_view(n, &v);
        if (n->shutting_down) {
            cairn_errmsg_set(c->errmsg, c->errmsg_size, "the node is shutting down");
            return CAIRN_ESHUTDOWN;
        }
        if (v.state == CONSENSUS_LEADER) {
            no_leader_since = 0;
            rv = c->local(n, c, deadline_ms);
            if (rv != CAIRN_ENOTLEADER) {
                return rv;
            }
        } else if (v.leader_id != 0 &&
                   node_api_address(n, v.leader_id, address, sizeof address) == 0) {
            no_leader_since = 0;
            rv = c->remote(n, c, address, attempt_deadline(n, deadline_ms));
            if (rv != CAIRN_ENOTLEADER && rv != CAIRN_EUNAVAILABLE &&
                !(rv == CAIRN_ETIMEDOUT && cairn_now_ms() < deadline_ms)) {
                return rv;
            }
        } else {
            if (no_leader_since == 0) {
                no_leader_since = now;
            } else if (now - no_leader_since > 2ull * n->cfg.election_timeout_ms) {
                rv = CAIRN_ENOLEADER;
                break;
            }
            rv = CAIRN_ENOLEADER;
        }
        if (cairn_now_ms() >= deadline_ms) {
            break;
        }
        /* Wait for the view to change (new leader, new term), briefly. */
        node_view_wait(n, cairn_now_ms() + 50 < deadline_ms ? cairn_now_ms() + 50 : deadline_ms);
    }
    if (rv == CAIRN_ENOTLEADER || rv == CAIRN_EUNAVAILABLE) {
        rv = CAIRN_ENOLEADER;
    }
    if (rv == CAIRN_ENOLEADER) {
        cairn_errmsg_set(c->errmsg, c->errmsg_size,
                         "no leader: the cluster has no quorum of reachable voters; retry later");
    } else if (c->errmsg[0] == '\0') {
        cairn_errmsg_set(c->errmsg, c->errmsg_size, "the cluster did not answer in time");
    }
    return rv;
}

/* Reads the {"code","message"} body of a failed internal call. */
static int remote_error(int status, const struct cairn_buf *body, char *errmsg, size_t size)
{
    json_t *doc;
    int code = CAIRN_EUNAVAILABLE;
    if (status == 421) {
        return CAIRN_ENOTLEADER;
    }
    /* Internal endpoints answer {"code","message"}; anything else (a peer
     * still starting, a peer of another build) is retried elsewhere. */
    doc = body->data != NULL ? json_loadb(body->data, body->len, 0, NULL) : NULL;
    if (json_is_integer(json_object_get(doc, "code"))) {
        code = (int)json_integer_value(json_object_get(doc, "code"));
    }
    if (json_is_string(json_object_get(doc, "message"))) {
        cairn_errmsg_set(errmsg, size, "%s", json_string_value(json_object_get(doc, "message")));
    } else {
        cairn_errmsg_set(errmsg, size, "leader answered HTTP %d", status);
    }
    json_decref(doc);
    if (code == 0) {
        code = CAIRN_EUNAVAILABLE;
    }
    return code;
}

/* Submits op and waits for it; the op's message goes to errmsg on failure. */
static int submit_wait(struct node *n, struct op *op, uint64_t deadline_ms, char *errmsg,
                       size_t size)
{
    int rv = node_submit(n, op);
    if (rv == 0) {
        rv = node_op_wait(n, op, deadline_ms);
    } else {
        snprintf(op->message, sizeof op->message, "the node is shutting down");
    }
    if (rv != 0 && rv != CAIRN_ENOTLEADER) {
        cairn_errmsg_set(errmsg, size, "%s", op->message);
    }
    return rv;
}

/* Encodes cmd at the cluster's command version and queues it for the
 * loop thread; *out is the operation to wait for (node_op_wait, then
 * node_op_unref). */
static int propose_start(struct node *n, const void *cmd, size_t len, bool forwarded,
                         struct op **out, char *errmsg, size_t size)
{
    struct op *op;
    void *encoded = NULL;
    size_t encoded_len = 0;
    int rv;

    /* At the cluster's command version, or refused (versions.c). */
    rv = node_versions_encode(n, cmd, len, &encoded, &encoded_len, errmsg, size);
    if (rv != 0) {
        return rv;
    }
    if (encoded != NULL) {
        cmd = encoded;
        len = encoded_len;
    }
    op = node_op_new(n, OP_APPLY);
    if (op == NULL || (op->buf = malloc(len > 0 ? len : 1)) == NULL) {
        if (op != NULL) {
            node_op_unref(op);
            node_op_unref(op);
        }
        free(encoded);
        cairn_errmsg_set(errmsg, size, "out of memory");
        return CAIRN_ENOMEM;
    }
    memcpy(op->buf, cmd, len);
    op->len = len;
    free(encoded);
    op->nudge = forwarded;
    rv = node_submit(n, op);
    if (rv != 0) {
        node_op_unref(op); /* node_submit dropped the loop's reference */
        cairn_errmsg_set(errmsg, size, "the node is shutting down");
        return rv;
    }
    *out = op;
    return 0;
}

/* Waits for a started proposal and releases it. */
static int propose_finish(struct node *n, struct op *op, uint64_t deadline_ms, uint64_t *index,
                          struct store_result *res, char *errmsg, size_t size)
{
    int rv = node_op_wait(n, op, deadline_ms);
    if (rv == 0) {
        *index = op->index;
        *res = op->result;
    } else if (rv != CAIRN_ENOTLEADER) {
        cairn_errmsg_set(errmsg, size, "%s", op->message);
    }
    node_op_unref(op);
    return rv;
}

int node_leader_propose(struct node *n, const void *cmd, size_t len, bool forwarded,
                        uint64_t deadline_ms, uint64_t *index, struct store_result *res,
                        char *errmsg, size_t size)
{
    struct op *op;
    int rv = propose_start(n, cmd, len, forwarded, &op, errmsg, size);
    return rv != 0 ? rv : propose_finish(n, op, deadline_ms, index, res, errmsg, size);
}

void node_leader_propose_many(struct node *n, struct node_proposal *p, size_t k, bool forwarded,
                              uint64_t deadline_ms)
{
    struct op *ops[STORE_BATCH_MAX];
    assert(k <= STORE_BATCH_MAX);
    /* All queued before any is waited for: the loop thread finds them
     * together and puts them in one entry. */
    for (size_t i = 0; i < k; i++) {
        p[i].errmsg[0] = '\0';
        p[i].rv = propose_start(n, p[i].cmd, p[i].len, forwarded, &ops[i], p[i].errmsg,
                                sizeof p[i].errmsg);
    }
    for (size_t i = 0; i < k; i++) {
        if (p[i].rv == 0) {
            p[i].rv = propose_finish(n, ops[i], deadline_ms, &p[i].index, &p[i].res, p[i].errmsg,
                                     sizeof p[i].errmsg);
        }
    }
}

int node_leader_read_index(struct node *n, bool forwarded, uint64_t deadline_ms, uint64_t *index,
                           char *errmsg, size_t size)
{
    struct op *op = node_op_new(n, OP_BARRIER);
    int rv;
    if (op == NULL) {
        return CAIRN_ENOMEM;
    }
    op->nudge = forwarded;
    rv = submit_wait(n, op, deadline_ms, errmsg, size);
    if (rv == 0) {
        *index = op->index;
    }
    node_op_unref(op);
    return rv;
}

/* --- propose --------------------------------------------------------------- */

static int propose_local(struct node *n, struct call *c, uint64_t deadline_ms)
{
    return node_leader_propose(n, c->cmd, c->len, false, deadline_ms, &c->index, c->res, c->errmsg,
                               c->errmsg_size);
}

/* Forwarded writes, combined: concurrent writes on a follower share one
 * /internal/v1/propose-batch call to the leader, which proposes them
 * together (one raft entry), as concurrent follower reads share one
 * read-index call.
 *   1. A write joins the queue (fw_head) with the leader's address.
 *   2. While fewer than FORWARD_CALLS calls are out, a waiting write whose
 *      forward nobody took makes a call itself: it takes its own and up to
 *      propose_batch_max - 1 more queued for the same address, oldest
 *      first, and drops the lock meanwhile.
 *   3. The caller fills each taken write's outcome, wakes the oldest write
 *      still queued (which may now make a call), waits until this node
 *      applied the entries of the writes it took, and wakes each of them.
 * Each write waits on a condition variable of its own: with hundreds of
 * writes waiting, one shared variable woke them all at every call's end
 * (measured: 23,000 context switches a second on a follower at 256
 * writers, docs/benchmarks.md). A write gives up at its deadline only
 * while nobody took it (the taker holds a pointer to it until step 3; its
 * call has a deadline too), and then wakes the oldest queued write in its
 * place. Each outcome is handled by leader_call as a call of its own:
 * "not the leader" retries that write on the next leader. */
#define FORWARD_CALLS 4

struct forward {
    const void *cmd;
    size_t len;
    unsigned kind;            /* of the object to answer with, or 0 */
    struct store_object *obj; /* where, if kind is not 0 */
    bool answered;            /* obj filled from the leader's answer */
    const char *address;
    bool taken;
    bool done;
    struct node_proposal out;
    pthread_cond_t cv; /* signalled when done, or when a call may start */
    struct forward *next;
};

static void forward_unlink(struct node *n, struct forward *f)
{
    struct forward **pp = &n->fw_head;
    while (*pp != NULL && *pp != f) {
        pp = &(*pp)->next;
    }
    if (*pp == f) {
        *pp = f->next;
    }
}

/* True if the leader at address serves propose-objects, as far as known. */
static bool forward_objects(struct node *n, const char *address)
{
    bool objects;
    pthread_mutex_lock(&n->fwmu);
    objects = strcmp(n->fw_plain, address) != 0;
    pthread_mutex_unlock(&n->fwmu);
    return objects;
}

/* One propose-batch or propose-objects call; *status its HTTP status. */
static int forward_send(struct node *n, struct node_proposal *p, size_t k, const char *address,
                        bool objects, uint64_t deadline_ms, int *status, struct cairn_buf *resp,
                        char *err, size_t err_size)
{
    struct cairn_buf req;
    int rv;
    cairn_buf_init(&req);
    rv = node_forward_encode(p, k, objects, &req);
    if (rv == 0) {
        rv = peer_call(n->peers, address, "POST",
                       objects ? "/internal/v1/propose-objects" : "/internal/v1/propose-batch",
                       "application/octet-stream", req.data, req.len, deadline_ms, status, resp,
                       err, err_size);
    }
    cairn_buf_close(&req);
    return rv;
}

/* Fills the taken writes' objects from the leader's answer; a write whose
 * object does not decode is answered after this node applied it. */
static void forward_take_objects(struct forward **fs, const struct node_proposal *p, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        fs[i]->answered = fs[i]->kind != 0 && p[i].rv == 0 && p[i].res.status == 0 &&
                          p[i].obj_len > 0 &&
                          store_object_decode((enum store_kind)fs[i]->kind, p[i].res.id, p[i].obj,
                                              p[i].obj_len, fs[i]->obj) == 0;
    }
}

/* Makes one call for the taken writes; fills their outcomes. */
static void forward_call(struct node *n, struct forward **fs, size_t k, const char *address,
                         uint64_t deadline_ms)
{
    /* On the heap: 64 proposals are 46 KB, and this runs on civetweb's
     * 100 KB worker stacks. */
    struct node_proposal *p = calloc(k, sizeof *p);
    bool objects = forward_objects(n, address);
    struct cairn_buf resp;
    char err[256] = "";
    int status = 0;
    int rv;

    if (p == NULL) {
        for (size_t i = 0; i < k; i++) {
            fs[i]->out.rv = CAIRN_ENOMEM;
            snprintf(fs[i]->out.errmsg, sizeof fs[i]->out.errmsg, "out of memory");
        }
        return;
    }
    for (size_t i = 0; i < k; i++) {
        p[i].cmd = fs[i]->cmd;
        p[i].len = fs[i]->len;
        p[i].kind = fs[i]->kind;
    }
    cairn_buf_init(&resp);
    rv = forward_send(n, p, k, address, objects, deadline_ms, &status, &resp, err, sizeof err);
    if (rv == 0 && status == 404 && objects) {
        /* A leader of an older build: it knows only propose-batch. */
        CAIRN_INFO(
            "msg=\"leader serves no propose-objects: forwarding with propose-batch\" "
            "leader=%s",
            address);
        pthread_mutex_lock(&n->fwmu);
        snprintf(n->fw_plain, sizeof n->fw_plain, "%s", address);
        pthread_mutex_unlock(&n->fwmu);
        objects = false;
        cairn_buf_close(&resp);
        cairn_buf_init(&resp);
        rv = forward_send(n, p, k, address, objects, deadline_ms, &status, &resp, err, sizeof err);
    }
    if (rv == 0 && status != 200) {
        rv = remote_error(status, &resp, err, sizeof err);
    } else if (rv == 0 && node_forward_answer_decode(resp.data, resp.len, objects, p, k) != 0) {
        snprintf(err, sizeof err, "garbled answer from leader %s", address);
        rv = CAIRN_EMALFORMED;
    } else if (rv == 0 && objects) {
        forward_take_objects(fs, p, k);
    }
    for (size_t i = 0; i < k; i++) {
        if (rv != 0) {
            p[i].rv = rv;
            snprintf(p[i].errmsg, sizeof p[i].errmsg, "%s", err);
        }
        p[i].obj = NULL; /* pointed into resp */
        fs[i]->out = p[i];
    }
    free(p);
    cairn_buf_close(&resp);
}

/* Wakes the oldest queued write if another call may start. fwmu held. */
static void forward_wake_next(struct node *n)
{
    if (n->fw_head != NULL && n->fw_calls < FORWARD_CALLS) {
        pthread_cond_signal(&n->fw_head->cv);
    }
}

/* Waits, once for the whole call, until this node applied the entries
 * its writes went into, so that each write, woken after, finds its entry
 * applied (propose_remote) and sleeps once, not twice. A write whose entry
 * is not applied by this deadline waits on by its own. */
static void forward_wait_applied(struct node *n, struct forward **fs, size_t k,
                                 uint64_t deadline_ms)
{
    uint64_t index = 0;
    for (size_t i = 0; i < k; i++) {
        if (fs[i]->out.rv == 0 && !fs[i]->answered && fs[i]->out.index > index) {
            index = fs[i]->out.index;
        }
    }
    if (index > 0) {
        (void)node_wait_applied(n, index, deadline_ms);
    }
}

static int forward_combined(struct node *n, struct call *c, const char *address,
                            uint64_t deadline_ms)
{
    struct forward f = {.cmd = c->cmd,
                        .len = c->len,
                        .kind = c->obj != NULL ? c->kind : 0,
                        .obj = c->obj,
                        .address = address};
    struct forward **tail;
    struct timespec ts;
    int rv;

    node_abs_deadline(deadline_ms, &ts);
    node_cond_init(&f.cv);
    pthread_mutex_lock(&n->fwmu);
    for (tail = &n->fw_head; *tail != NULL; tail = &(*tail)->next) {
    }
    *tail = &f;
    while (!f.done) {
        if (!f.taken && n->fw_calls < FORWARD_CALLS) {
            struct forward *fs[STORE_BATCH_MAX];
            size_t k = 0;
            fs[k++] = &f;
            f.taken = true;
            forward_unlink(n, &f);
            for (struct forward *o = n->fw_head; o != NULL && k < n->cfg.propose_batch_max;) {
                struct forward *next = o->next;
                if (strcmp(o->address, address) == 0) {
                    o->taken = true;
                    forward_unlink(n, o);
                    fs[k++] = o;
                }
                o = next;
            }
            n->fw_calls++;
            forward_wake_next(n); /* two calls that ended at once woke one write */
            pthread_mutex_unlock(&n->fwmu);
            forward_call(n, fs, k, address, deadline_ms);
            pthread_mutex_lock(&n->fwmu);
            n->fw_calls--;
            forward_wake_next(n);
            pthread_mutex_unlock(&n->fwmu);
            forward_wait_applied(n, fs, k, deadline_ms);
            pthread_mutex_lock(&n->fwmu);
            for (size_t i = 0; i < k; i++) {
                fs[i]->done = true;
                if (fs[i] != &f) {
                    pthread_cond_signal(&fs[i]->cv);
                }
            }
        } else if (f.taken) {
            /* Until the taker's call ends, which has a deadline of its own
             * (waiting with this one's could spin once it has passed). */
            pthread_cond_wait(&f.cv, &n->fwmu);
        } else if (pthread_cond_timedwait(&f.cv, &n->fwmu, &ts) == ETIMEDOUT && !f.taken) {
            forward_unlink(n, &f);
            f.out.rv = CAIRN_ETIMEDOUT;
            snprintf(f.out.errmsg, sizeof f.out.errmsg, "no answer from the leader in time");
            /* A wake-up meant for this write may have come with the
             * timeout: pass it on. */
            forward_wake_next(n);
            break;
        }
    }
    pthread_mutex_unlock(&n->fwmu);
    pthread_cond_destroy(&f.cv);
    rv = f.out.rv;
    if (rv == 0) {
        c->index = f.out.index;
        *c->res = f.out.res;
        c->answered = f.answered;
    } else {
        cairn_errmsg_set(c->errmsg, c->errmsg_size, "%s", f.out.errmsg);
    }
    return rv;
}

static int propose_remote(struct node *n, struct call *c, const char *address, uint64_t deadline_ms)
{
    struct cairn_buf resp;
    uint64_t lowest;
    uint64_t be;
    int status = 0;
    int rv;

    if (n->cfg.propose_batch_max > 1 &&
        node_cluster_version(n, &lowest) >= STORE_COMMAND_VERSION_BATCH) {
        /* Every voter, the leader too, serves propose-batch. */
        rv = forward_combined(n, c, address, deadline_ms);
        goto applied;
    }
    cairn_buf_init(&resp);
    rv = peer_call(n->peers, address, "POST", "/internal/v1/propose", "application/msgpack", c->cmd,
                   c->len, deadline_ms, &status, &resp, c->errmsg, c->errmsg_size);
    if (rv == 0 && status != 200) {
        rv = remote_error(status, &resp, c->errmsg, c->errmsg_size);
    } else if (rv == 0) {
        if (resp.len < sizeof be ||
            store_result_decode(resp.data + sizeof be, resp.len - sizeof be, c->res) != 0) {
            cairn_errmsg_set(c->errmsg, c->errmsg_size, "garbled answer from leader %s", address);
            rv = CAIRN_EMALFORMED;
        } else {
            memcpy(&be, resp.data, sizeof be);
            c->index = be64toh(be);
        }
    }
    cairn_buf_close(&resp);
applied:
    if (rv == 0 && !c->answered) {
        /* The caller reads what it wrote from this node's store next. */
        rv = node_wait_applied(n, c->index, deadline_ms);
        if (rv != 0) {
            cairn_errmsg_set(c->errmsg, c->errmsg_size,
                             "committed at index %llu but not yet applied on this node",
                             (unsigned long long)c->index);
        }
    }
    return rv;
}

static int backend_propose(void *data, const void *cmd, size_t len, enum store_kind kind,
                           struct store_object *obj, uint64_t deadline_ms, struct store_result *res,
                           char *errmsg, size_t size)
{
    struct call c = {.local = propose_local,
                     .remote = propose_remote,
                     .errmsg = errmsg,
                     .errmsg_size = size,
                     .cmd = cmd,
                     .len = len,
                     .kind = (unsigned)kind,
                     .obj = obj,
                     .res = res};
    return leader_call(data, &c, deadline_ms);
}

int node_propose(struct node *n, const void *cmd, size_t len, uint64_t deadline_ms,
                 struct store_result *res, char *errmsg, size_t size)
{
    return backend_propose(n, cmd, len, 0, NULL, deadline_ms, res, errmsg, size);
}

/* --- read barrier -------------------------------------------------------- */

static int read_local(struct node *n, struct call *c, uint64_t deadline_ms)
{
    return node_leader_read_index(n, false, deadline_ms, &c->index, c->errmsg, c->errmsg_size);
}

/* One POST /internal/v1/readindex to the leader at address. */
static int readindex_call(struct node *n, const char *address, uint64_t deadline_ms,
                          uint64_t *index, char *errmsg, size_t size)
{
    struct cairn_buf resp;
    uint64_t be;
    int status = 0;
    int rv;

    cairn_buf_init(&resp);
    rv = peer_call(n->peers, address, "POST", "/internal/v1/readindex", NULL, NULL, 0, deadline_ms,
                   &status, &resp, errmsg, size);
    if (rv == 0 && status != 200) {
        rv = remote_error(status, &resp, errmsg, size);
    } else if (rv == 0 && resp.len != sizeof be) {
        cairn_errmsg_set(errmsg, size, "garbled read index from leader %s", address);
        rv = CAIRN_EMALFORMED;
    } else if (rv == 0) {
        memcpy(&be, resp.data, sizeof be);
        *index = be64toh(be);
    }
    cairn_buf_close(&resp);
    return rv;
}

/* A follower's linearizable read point, shared: concurrent reads share one
 * readindex call, as concurrent reads on the leader share one barrier.
 *   1. A read notes the number of the next call to start (ri_started + 1):
 *      a call already out may have reached the leader before a write this
 *      reader has seen completed, so only a later one will do.
 *   2. If no call is out, the read makes that call itself (read_remote
 *      drops the lock meanwhile); otherwise it waits for calls to finish.
 *   3. Once a call numbered at least that high has finished, its outcome is
 *      the read's: its index (then wait to apply it) or its error, which
 *      leader_call handles as for a call of its own (retry on a new leader
 *      or until the deadline).
 * Invariant: at most one call is out (ri_inflight), so calls finish in the
 * order they started and ri_done only grows. Any leader's read index is a
 * valid point: it comes from a barrier that leader committed in its term,
 * after the call started. */
static int read_remote(struct node *n, struct call *c, const char *address, uint64_t deadline_ms)
{
    struct timespec ts;
    uint64_t need, index = 0;
    int rv = 0;

    node_abs_deadline(deadline_ms, &ts);
    pthread_mutex_lock(&n->rimu);
    need = n->ri_started + 1;
    while (n->ri_done < need && rv == 0) {
        if (!n->ri_inflight) {
            char err[sizeof n->ri_errmsg] = "";
            uint64_t mine = ++n->ri_started;
            n->ri_inflight = true;
            pthread_mutex_unlock(&n->rimu);
            rv = readindex_call(n, address, deadline_ms, &index, err, sizeof err);
            pthread_mutex_lock(&n->rimu);
            n->ri_inflight = false;
            n->ri_done = mine;
            n->ri_status = rv;
            n->ri_index = index;
            snprintf(n->ri_errmsg, sizeof n->ri_errmsg, "%s", err);
            pthread_cond_broadcast(&n->ricv);
            rv = 0;
        } else if (pthread_cond_timedwait(&n->ricv, &n->rimu, &ts) == ETIMEDOUT &&
                   n->ri_done < need) {
            rv = CAIRN_ETIMEDOUT;
        }
    }
    if (rv == 0) {
        rv = n->ri_status;
        index = n->ri_index;
        if (rv != 0) {
            cairn_errmsg_set(c->errmsg, c->errmsg_size, "%s", n->ri_errmsg);
        }
    }
    pthread_mutex_unlock(&n->rimu);
    if (rv == 0) {
        c->index = index;
        rv = node_wait_applied(n, c->index, deadline_ms);
    }
    return rv;
}

static int backend_read_barrier(void *data, uint64_t deadline_ms, char *errmsg, size_t size)
{
    struct node *n = data;
    if (n->cfg.debug_stale_reads) {
        return 0; /* broken on purpose: see debug_stale_reads */
    }
    struct call c = {
        .local = read_local, .remote = read_remote, .errmsg = errmsg, .errmsg_size = size};
    return leader_call(data, &c, deadline_ms);
}

int node_read_barrier(struct node *n, uint64_t deadline_ms, char *errmsg, size_t size)
{
    return backend_read_barrier(n, deadline_ms, errmsg, size);
}

/* --- backup -------------------------------------------------------------- */

static int backend_backup(void *data, uint64_t deadline_ms, struct store_backup **out, char *errmsg,
                          size_t size)
{
    struct node *n = data;
    struct op *op;
    int rv = backend_read_barrier(data, deadline_ms, errmsg, size);
    if (rv != 0) {
        return rv;
    }
    op = node_op_new(n, OP_BACKUP);
    if (op == NULL) {
        return CAIRN_ENOMEM;
    }
    rv = submit_wait(n, op, deadline_ms, errmsg, size);
    if (rv == 0) {
        *out = op->backup;
        op->backup = NULL;
    }
    node_op_unref(op);
    return rv;
}

/* --- membership ---------------------------------------------------------- */

static int member_record(struct node *n, enum store_op op, uint64_t id, const char *raft_address,
                         const char *api_address, uint64_t deadline_ms, char *errmsg, size_t size)
{
    char key[24], rid[CAIRN_UUID_SIZE + 8], body[256];
    struct store_command cmd = {.version = STORE_COMMAND_VERSION,
                                .op = op,
                                .kind = STORE_KIND_MEMBER,
                                .id = key,
                                .time_ms = cairn_wall_ms()};
    struct store_result res;
    uint64_t index;
    void *buf;
    size_t len;
    int rv;

    snprintf(key, sizeof key, "%llu", (unsigned long long)id);
    memcpy(rid, "member:", 7);
    cairn_uuid(rid + 7);
    cmd.request_id = rid;
    if (op == STORE_OP_PUT) {
        snprintf(body, sizeof body, "{\"api_address\":\"%s\",\"raft_address\":\"%s\"}", api_address,
                 raft_address);
        cmd.body = body;
        cmd.body_len = strlen(body);
    }
    rv = store_command_encode(&cmd, &buf, &len);
    if (rv != 0) {
        return rv;
    }
    rv = node_leader_propose(n, buf, len, false, deadline_ms, &index, &res, errmsg, size);
    free(buf);
    if (rv == 0 && res.status != 0 && !(op == STORE_OP_DELETE && res.status == CAIRN_ENOTFOUND)) {
        cairn_errmsg_set(errmsg, size, "%s", res.message);
        rv = res.status;
    }
    return rv;
}

static int change_op(struct node *n, enum op_type type, uint64_t id, const char *raft_address,
                     uint64_t deadline_ms, char *errmsg, size_t size)
{
    struct op *op = node_op_new(n, type);
    int rv;
    if (op == NULL) {
        return CAIRN_ENOMEM;
    }
    op->id = id;
    if (raft_address != NULL) {
        snprintf(op->address, sizeof op->address, "%s", raft_address);
    }
    rv = submit_wait(n, op, deadline_ms, errmsg, size);
    node_op_unref(op);
    return rv;
}

int node_leader_member_add(struct node *n, uint64_t id, const char *raft_address,
                           const char *api_address, uint64_t deadline_ms, char *errmsg, size_t size)
{
    struct consensus_status v;
    int rv;

    node_view(n, &v);
    for (size_t i = 0; i < v.n_members; i++) {
        if (v.members[i].id == id && v.members[i].role == CONSENSUS_VOTER) {
            cairn_errmsg_set(errmsg, size, "node %llu is already a voter", (unsigned long long)id);
            return CAIRN_EEXIST;
        }
        if (v.members[i].id != id && strcmp(v.members[i].address, raft_address) == 0) {
            cairn_errmsg_set(errmsg, size, "raft address %s is used by node %llu", raft_address,
                             (unsigned long long)v.members[i].id);
            return CAIRN_EEXIST;
        }
    }
    /* Record the addresses first, so every node can reach the new member's
     * API (to forward to it once it leads) as soon as it is in raft. */
    rv = member_record(n, STORE_OP_PUT, id, raft_address, api_address, deadline_ms, errmsg, size);
    if (rv == 0) {
        rv = change_op(n, OP_MEMBER_ADD, id, raft_address, deadline_ms, errmsg, size);
    }
    if (rv == 0) {
        CAIRN_INFO("msg=\"member added\" id=%llu raft=%s api=%s", (unsigned long long)id,
                   raft_address, api_address);
    }
    return rv;
}

static void peer_status(struct node *n, struct api_member_status *m, uint64_t deadline_ms);

/* Refuses (CAIRN_ECONFLICT) to remove the last voter, and, unless force,
 * a voter without which fewer voters than a quorum of the new
 * configuration answer now: the cluster would stop taking writes. This
 * node (the leader) counts as answering; the others are asked for their
 * status, for at most a second in all. Non-voters never count toward a
 * quorum: removing one is always safe. */
static int removal_check(struct node *n, uint64_t id, bool force, uint64_t deadline_ms,
                         char *errmsg, size_t size)
{
    struct consensus_status v;
    unsigned voters = 0, reachable = 0, quorum;
    bool voter = false;
    uint64_t peer_deadline = cairn_now_ms() + 1000;

    if (peer_deadline > deadline_ms) {
        peer_deadline = deadline_ms;
    }
    node_view(n, &v);
    for (size_t i = 0; i < v.n_members; i++) {
        struct api_member_status m = {.id = v.members[i].id};
        if (v.members[i].role != CONSENSUS_VOTER) {
            continue;
        }
        if (m.id == id) {
            voter = true;
            continue;
        }
        voters++;
        if (m.id == n->cfg.node_id || force) {
            reachable++;
        } else if (node_api_address(n, m.id, m.api_address, sizeof m.api_address) == 0) {
            peer_status(n, &m, peer_deadline);
            reachable += m.reachable;
        }
    }
    if (!voter) {
        return 0;
    }
    if (voters == 0) {
        cairn_errmsg_set(errmsg, size,
                         "node %llu is the last voter: a cluster without voters cannot decide "
                         "anything",
                         (unsigned long long)id);
        return CAIRN_ECONFLICT;
    }
    quorum = voters / 2 + 1;
    if (reachable < quorum) {
        cairn_errmsg_set(errmsg, size,
                         "without node %llu the cluster has %u voters, of which %u answer now: "
                         "fewer than the quorum of %u; bring voters back first, or pass "
                         "force=true to remove it anyway",
                         (unsigned long long)id, voters, reachable, quorum);
        return CAIRN_ECONFLICT;
    }
    return 0;
}

int node_leader_member_remove(struct node *n, uint64_t id, bool force, uint64_t deadline_ms,
                              char *errmsg, size_t size)
{
    int rv;
    rv = removal_check(n, id, force, deadline_ms, errmsg, size);
    if (rv != 0) {
        return rv;
    }
    if (id == n->cfg.node_id) {
        /* The leader removes itself by first handing leadership over; the
         * caller's retry loop then forwards the removal to the new
         * leader. */
        rv = change_op(n, OP_TRANSFER, 0, NULL, deadline_ms, errmsg, size);
        return rv == 0 ? CAIRN_ENOTLEADER : rv;
    }
    rv = change_op(n, OP_MEMBER_REMOVE, id, NULL, deadline_ms, errmsg, size);
    if (rv == CAIRN_ENOTFOUND) {
        cairn_errmsg_set(errmsg, size, "node %llu is not a member", (unsigned long long)id);
    } else if (rv == CAIRN_ECONFLICT) {
        cairn_errmsg_set(errmsg, size,
                         "node %llu is the last voter: a cluster without voters cannot decide "
                         "anything",
                         (unsigned long long)id);
    }
    if (rv == 0) {
        rv = member_record(n, STORE_OP_DELETE, id, NULL, NULL, deadline_ms, errmsg, size);
        CAIRN_INFO("msg=\"member removed\" id=%llu", (unsigned long long)id);
    }
    return rv;
}

/* Hands leadership to another voter; libraft picks the most caught up. */
int node_leader_transfer(struct node *n, uint64_t deadline_ms, char *errmsg, size_t size)
{
    int rv = change_op(n, OP_TRANSFER, 0, NULL, deadline_ms, errmsg, size);
    if (rv == CAIRN_ENOTFOUND) {
        cairn_errmsg_set(errmsg, size, "node %llu is the only voter: no node can take over",
                         (unsigned long long)n->cfg.node_id);
        rv = CAIRN_ECONFLICT;
    }
    if (rv == 0) {
        /* libraft ends a transfer whether or not another node took over
         * (the target may not catch up in time under load): look. */
        struct consensus_status v;
        for (;;) {
            node_view(n, &v);
            if (v.state != CONSENSUS_LEADER || cairn_now_ms() >= deadline_ms) {
                break;
            }
            node_view_wait(n, deadline_ms);
        }
        if (v.state == CONSENSUS_LEADER) {
            cairn_errmsg_set(errmsg, size,
                             "leadership did not move: no voter caught up in time; retry");
            CAIRN_WARN("msg=\"leadership transfer did not complete\" from=%llu",
                       (unsigned long long)n->cfg.node_id);
            return CAIRN_EBUSY;
        }
        CAIRN_INFO("msg=\"leadership transferred\" from=%llu", (unsigned long long)n->cfg.node_id);
    }
    return rv;
}

static int transfer_local(struct node *n, struct call *c, uint64_t deadline_ms)
{
    return node_leader_transfer(n, deadline_ms, c->errmsg, c->errmsg_size);
}

static int add_local(struct node *n, struct call *c, uint64_t deadline_ms)
{
    return node_leader_member_add(n, c->id, c->raft_address, c->api_address, deadline_ms, c->errmsg,
                                  c->errmsg_size);
}

static int remove_local(struct node *n, struct call *c, uint64_t deadline_ms)
{
    return node_leader_member_remove(n, c->id, c->force, deadline_ms, c->errmsg, c->errmsg_size);
}

static int change_remote(struct node *n, struct call *c, const char *address, uint64_t deadline_ms)
{
    struct cairn_buf resp;
    char path[64], body[256] = "";
    int status = 0;
    int rv;

    if (c->local == transfer_local) {
        snprintf(path, sizeof path, "/internal/v1/leader/transfer");
    } else if (c->raft_address != NULL) {
        snprintf(path, sizeof path, "/internal/v1/members");
        snprintf(body, sizeof body, "{\"id\":%llu,\"raft_address\":\"%s\",\"api_address\":\"%s\"}",
                 (unsigned long long)c->id, c->raft_address, c->api_address);
    } else {
        snprintf(path, sizeof path, "/internal/v1/members/%llu%s", (unsigned long long)c->id,
                 c->force ? "?force=true" : "");
    }
    cairn_buf_init(&resp);
    rv = peer_call(n->peers, address,
                   c->raft_address != NULL || c->local == transfer_local ? "POST" : "DELETE", path,
                   "application/json", body, strlen(body), deadline_ms, &status, &resp, c->errmsg,
                   c->errmsg_size);
    if (rv == 0 && status != 200 && status != 201 && status != 204) {
        rv = remote_error(status, &resp, c->errmsg, c->errmsg_size);
    }
    cairn_buf_close(&resp);
    return rv;
}

static int backend_member_add(void *data, uint64_t id, const char *raft_address,
                              const char *api_address, uint64_t deadline_ms, char *errmsg,
                              size_t size)
{
    struct call c = {.local = add_local,
                     .remote = change_remote,
                     .errmsg = errmsg,
                     .errmsg_size = size,
                     .id = id,
                     .raft_address = raft_address,
                     .api_address = api_address};
    return leader_call(data, &c, deadline_ms);
}

static int backend_member_remove(void *data, uint64_t id, bool force, uint64_t deadline_ms,
                                 char *errmsg, size_t size)
{
    struct call c = {.local = remove_local,
                     .remote = change_remote,
                     .errmsg = errmsg,
                     .errmsg_size = size,
                     .id = id,
                     .force = force};
    return leader_call(data, &c, deadline_ms);
}

static int backend_leader_transfer(void *data, uint64_t deadline_ms, char *errmsg, size_t size)
{
    struct call c = {
        .local = transfer_local, .remote = change_remote, .errmsg = errmsg, .errmsg_size = size};
    return leader_call(data, &c, deadline_ms);
}

/* --- status -------------------------------------------------------------- */

static const char *role_name(int role)
{
    switch (role) {
        case CONSENSUS_VOTER:
            return "voter";
        case CONSENSUS_STANDBY:
            return "standby";
        default:
            return "spare";
    }
}

static uint64_t json_u64(json_t *doc, const char *key)
{
    json_t *v = json_object_get(doc, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

/* Asks a peer for its own view (GET /internal/v1/status). */
static void peer_status(struct node *n, struct api_member_status *m, uint64_t deadline_ms)
{
    struct cairn_buf resp;
    char err[256];
    int status = 0;
    json_t *doc = NULL;

    cairn_buf_init(&resp);
    if (peer_call(n->peers, m->api_address, "GET", "/internal/v1/status", NULL, NULL, 0,
                  deadline_ms, &status, &resp, err, sizeof err) == 0 &&
        status == 200) {
        doc = json_loadb(resp.data, resp.len, 0, NULL);
    }
    cairn_buf_close(&resp);
    if (doc == NULL) {
        return;
    }
    m->reachable = true;
    snprintf(m->state, sizeof m->state, "%s",
             json_is_string(json_object_get(doc, "state"))
                 ? json_string_value(json_object_get(doc, "state"))
                 : "unavailable");
    m->term = json_u64(doc, "term");
    m->commit_index = json_u64(doc, "commit_index");
    m->applied_index = json_u64(doc, "applied_index");
    m->last_index = json_u64(doc, "last_index");
    json_decref(doc);
}

static int backend_cluster_status(void *data, uint64_t deadline_ms, struct api_cluster_status *out)
{
    struct node *n = data;
    struct consensus_status v;
    uint64_t peer_deadline;
    uint64_t lowest;

    node_view(n, &v);
    memset(out, 0, sizeof *out);
    out->node_id = n->cfg.node_id;
    out->leader_id = v.leader_id;
    out->term = v.term;
    out->command_version = node_cluster_version(n, &lowest);
    out->members = calloc(v.n_members > 0 ? v.n_members : 1, sizeof *out->members);
    if (out->members == NULL) {
        return CAIRN_ENOMEM;
    }
    /* A silent (paused) peer must not hold the answer for long. */
    peer_deadline = cairn_now_ms() + 1000;
    if (peer_deadline > deadline_ms) {
        peer_deadline = deadline_ms;
    }
    for (size_t i = 0; i < v.n_members; i++) {
        struct api_member_status *m = &out->members[out->n_members++];
        m->id = v.members[i].id;
        snprintf(m->raft_address, sizeof m->raft_address, "%s", v.members[i].address);
        snprintf(m->role, sizeof m->role, "%s", role_name(v.members[i].role));
        snprintf(m->state, sizeof m->state, "unavailable");
        m->command_version_max = m->id == n->cfg.node_id ? store_command_version_max(n->store)
                                                         : node_member_version(n, m->id);
        if (node_api_address(n, m->id, m->api_address, sizeof m->api_address) != 0) {
            m->api_address[0] = '\0';
        }
        if (m->id == n->cfg.node_id) {
            m->reachable = true;
            snprintf(m->state, sizeof m->state, "%s", consensus_state_name(v.state));
            m->term = v.term;
            m->commit_index = v.commit_index;
            m->applied_index = v.applied_index;
            m->last_index = v.last_index;
        } else if (m->api_address[0] != '\0') {
            peer_status(n, m, peer_deadline);
        }
    }
    return 0;
}

static bool backend_ready(void *data, char *why, size_t size)
{
    struct node *n = data;
    struct consensus_status v;
    bool member = false;

    node_view(n, &v);
    for (size_t i = 0; i < v.n_members; i++) {
        member = member || v.members[i].id == n->cfg.node_id;
    }
    if (!member) {
        snprintf(why, size, "node %llu is not a member of the cluster configuration yet",
                 (unsigned long long)n->cfg.node_id);
        return false;
    }
    if (v.leader_id == 0) {
        snprintf(why, size, "no leader is known (term %llu)", (unsigned long long)v.term);
        return false;
    }
    if (v.applied_index < v.commit_index) {
        snprintf(why, size, "catching up: applied %llu of %llu committed entries",
                 (unsigned long long)v.applied_index, (unsigned long long)v.commit_index);
        return false;
    }
    return true;
}

static int backend_wait_applied(void *data, uint64_t index, uint64_t deadline_ms)
{
    return node_wait_applied(data, index + 1, deadline_ms);
}

static void backend_raft_status(void *data, struct api_raft_status *out)
{
    struct node *n = data;
    pthread_mutex_lock(&n->vmu);
    out->term = n->view.term;
    out->commit_index = n->view.commit_index;
    out->applied_index = n->view.applied_index;
    out->last_index = n->view.last_index;
    out->leader_id = n->view.leader_id;
    out->leader_changes = n->leader_changes;
    out->proposed_entries = atomic_load(&n->proposed_entries);
    out->proposed_commands = atomic_load(&n->proposed_commands);
    out->leader = n->view.state == CONSENSUS_LEADER;
    pthread_mutex_unlock(&n->vmu);
    if (n->owner != NULL) {
        struct owner_stats st;
        owner_stats(n->owner, &st);
        out->ownership_epoch = st.epoch;
        out->leased = st.leased;
        out->handoffs_in = st.handoffs_in;
        out->handoffs_out = st.handoffs_out;
        out->lease_lapses = st.lease_lapses;
        out->epoch_changes = st.epoch_changes;
    }
    {
        struct node_callhome_stats ch;
        node_callhome_stats(n, &ch);
        out->callhome_bound = ch.bound;
        out->callhome_known = ch.known;
        out->callhome_refused = ch.refused;
        out->callhome_throttled = ch.throttled;
        out->callhome_failed = ch.failed;
    }
    out->device_sessions = atomic_load(&n->device_sessions);
}

static bool backend_is_leader(void *data)
{
    struct node *n = data;
    struct consensus_status v;
    node_view(n, &v);
    return v.state == CONSENSUS_LEADER;
}

static uint64_t backend_device_owner(void *data, const char *device_id)
{
    struct node *n = data;
    struct owner_stats st;
    if (n->owner == NULL) {
        return 0;
    }
    owner_stats(n->owner, &st);
    return st.epoch != 0 ? ring_owner_of(&st.ring, device_id) : 0;
}

void node_backend_init(struct node *n, struct api_backend *b)
{
    b->data = n;
    b->propose = backend_propose;
    b->read_barrier = backend_read_barrier;
    b->cluster_status = backend_cluster_status;
    b->member_add = backend_member_add;
    b->member_remove = backend_member_remove;
    b->leader_transfer = backend_leader_transfer;
    b->backup = backend_backup;
    b->ready = backend_ready;
    b->wait_applied = backend_wait_applied;
    b->raft_status = backend_raft_status;
    b->is_leader = backend_is_leader;
    b->device_owner = backend_device_owner;
}
