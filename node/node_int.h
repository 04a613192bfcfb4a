/*
 * Internal state of a node, shared by node.c (lifecycle, loop thread,
 * submit queue, published view), backend.c (the API's backend: forwarding
 * to the leader) and rpc.c (the /internal/v1 endpoints).
 */
#ifndef CAIRN_NODE_INT_H
#define CAIRN_NODE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <jansson.h>
#include <uv.h>

#include "api.h"
#include "cairn.h"
#include "consensus.h"
#include "http.h"
#include "node.h"
#include "owner.h"
#include "peer.h"
#include "store.h"

/* Work submitted to the loop thread. */
enum op_type {
    OP_APPLY = 1,
    OP_BARRIER,
    OP_MEMBER_ADD,
    OP_MEMBER_REMOVE,
    OP_TRANSFER,
    OP_BACKUP,
    OP_STOP
};

/* One submitted operation. Two references: the waiting thread's and the
 * loop's; whoever drops the last frees it, so a waiter that gives up at its
 * deadline never frees what the loop still uses. */
struct op {
    enum op_type type;
    void *buf; /* OP_APPLY: the encoded command (owned) */
    size_t len;
    uint64_t id;       /* OP_MEMBER_*, OP_TRANSFER */
    char address[64];  /* OP_MEMBER_ADD: raft address */
    bool nudge;        /* for a follower: propagate the commit at once */
    struct node *node; /* owner */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int status;                  /* outcome, CAIRN_E* */
    uint64_t index;              /* OP_APPLY, OP_BARRIER: raft index */
    struct store_result result;  /* OP_APPLY */
    struct store_backup *backup; /* OP_BACKUP: the waiter takes it (else freed with the op) */
    char message[256];           /* failure detail */
    atomic_int refs;
    struct op *next;
};

struct applied_waiter {
    uint64_t index;
    pthread_cond_t cv;
    bool woken; /* unlinked: applied, or shutting down */
    struct applied_waiter *next;
};

struct node {
    struct config cfg;
    char errmsg[CAIRN_ERRMSG_SIZE];
    int lock_fd; /* holds the data directory's lock */
    struct store *store;
    struct peer_pool *peers;
    struct http_server *http;
    struct api *api;

    /* Loop thread and what only it touches. */
    pthread_t thread;
    bool thread_started;
    uv_loop_t loop;
    uv_async_t async;
    uv_check_t check;
    uv_timer_t timer;
    struct consensus *consensus;

    /* Submit queue (guarded by qmu). */
    pthread_mutex_t qmu;
    struct op *q_head;
    struct op *q_tail;
    bool q_closed;

    /* Start-up handshake between the main and the loop thread. */
    pthread_mutex_t smu;
    pthread_cond_t scv;
    bool started;
    int start_rv;
    char start_err[CAIRN_ERRMSG_SIZE];

    /* The view: the loop thread publishes raft's state after every loop
     * iteration; other threads read it and wait on vcv for it to change
     * (publish_view says which changes wake them). */
    pthread_mutex_t vmu;
    pthread_cond_t vcv;
    struct consensus_status view;
    uint64_t view_system; /* store_system_generation when view was published */
    /* Threads waiting until an index is applied (node_wait_applied), each
     * woken alone once its index is (not by every change of the view: with
     * hundreds of writers waiting through a follower, that broadcast woke
     * them all for every loop iteration). Guarded by vmu. */
    struct applied_waiter *applied_waiters;
    uint64_t leader_changes; /* times a new leader became known (for /metrics) */
    /* Entries this node proposed as leader, and the commands they carried
     * (node.c, run_applies; more commands than entries: batches). */
    atomic_uint_fast64_t proposed_entries;
    atomic_uint_fast64_t proposed_commands;
    /* The cluster version as last computed (versions.c), trusted while
     * the configuration and the member records are as they were then.
     * Guarded by cvmu. */
    pthread_mutex_t cvmu;
    struct {
        bool valid;
        uint64_t config_index;      /* of the configuration it read */
        uint64_t member_generation; /* store_member_generation before */
        unsigned version;
        uint64_t lowest;
    } cv;
    /* The API address node_api_address found last, trusted while the
     * member records are as they were then (every forwarded call asks for
     * the leader's). Guarded by cvmu. */
    struct {
        bool valid;
        uint64_t id;
        uint64_t member_generation; /* store_member_generation before */
        char address[64];
    } aa;
    atomic_bool shutting_down; /* set once, at node_destroy */

    /* Follower read points (backend.c, read_remote): one
     * /internal/v1/readindex call in flight serves every read that arrived
     * before it was sent. Guarded by rimu; calls are numbered from 1. */
    pthread_mutex_t rimu;
    pthread_cond_t ricv;
    bool ri_inflight;    /* a call is out */
    uint64_t ri_started; /* number of the last call started */
    uint64_t ri_done;    /* number of the last call finished */
    int ri_status;       /* its outcome */
    uint64_t ri_index;   /* its read index, if ri_status is 0 */
    char ri_errmsg[256]; /* its failure detail */

    /* Forwarded writes waiting to share a propose-batch call (backend.c,
     * forward_combined), and the calls out. Guarded by fwmu. */
    pthread_mutex_t fwmu;
    struct forward *fw_head;
    unsigned fw_calls;
    char fw_plain[256]; /* a leader that answered propose-objects 404 (an
                         * older build): forwarded to with propose-batch */

    /* The first administrator's creation (bootstrap.c). */
    pthread_t bootstrap_thread;
    bool bootstrap_started;
    atomic_bool bootstrap_done; /* the admin user is confirmed (or needs no bootstrap) */
    /* backend.c's readiness check, which node.c's adds the bootstrap to. */
    bool (*backend_ready)(void *data, char *why, size_t why_size);

    /* Device ownership (liveness.c): the thread and this node's view. */
    struct liveness *liveness;
    struct owner *owner;

    /* The device controller (devices.c). */
    struct node_devices *devices;
    atomic_size_t device_sessions; /* its NETCONF sessions open, as of its last turn */

    /* The call-home listener (callhome.c), NULL when off, and its
     * counters (here, so /metrics may read them while it stops). */
    struct node_callhome *callhome;
    atomic_uint_fast64_t ch_bound, ch_known, ch_refused, ch_throttled, ch_failed;
};

/* node.c */
struct op *node_op_new(struct node *n, enum op_type type);
void node_op_unref(struct op *op);
/* Queues op for the loop thread (takes the loop's reference). */
int node_submit(struct node *n, struct op *op);
/* Waits for op until deadline; CAIRN_ETIMEDOUT or CAIRN_ESHUTDOWN if it did
 * not complete. Drops the waiter's reference. */
int node_op_wait(struct node *n, struct op *op, uint64_t deadline_ms);
/* Copies the published view. */
void node_view(struct node *n, struct consensus_status *out);
/* The CLOCK_MONOTONIC time of deadline_ms, for pthread_cond_timedwait on a
 * condition variable made with node_cond_init. */
void node_abs_deadline(uint64_t deadline_ms, struct timespec *ts);
void node_cond_init(pthread_cond_t *cv);
/* Waits until the role, leader, term or configuration in the view changes,
 * or a system object (store_system_generation), or until deadline; not
 * woken by entries applied (node_wait_applied is). */
void node_view_wait(struct node *n, uint64_t deadline_ms);
/* Waits until raft's applied index here is at least index. */
int node_wait_applied(struct node *n, uint64_t index, uint64_t deadline_ms);
/* The API address of member id (from the replicated member records, else
 * the configured initial members). */
int node_api_address(struct node *n, uint64_t id, char *out, size_t size);

/* backend.c */
void node_backend_init(struct node *n, struct api_backend *b);
/* Leader-side halves, also used by rpc.c for forwarded requests. */
/* forwarded: the request came from a follower, which waits until it has
 * applied the index too: the leader then propagates its commit at once. */
/* One of several commands proposed together (node_leader_propose_many). */
struct node_proposal {
    const void *cmd; /* in */
    size_t len;
    unsigned kind; /* in: of the object to answer with (propose-objects), or 0 */
    int rv;        /* out: as node_leader_propose returns */
    uint64_t index;
    struct store_result res;
    char errmsg[256];
    const void *obj; /* out (propose-objects): the object as stored, or NULL */
    size_t obj_len;
};
/* Leader: proposes k (<= STORE_BATCH_MAX) commands at once, so that they
 * share an entry, and waits for each; each gets its own outcome. */
void node_leader_propose_many(struct node *n, struct node_proposal *p, size_t k, bool forwarded,
                              uint64_t deadline_ms);
/* rpc.c: the /internal/v1/propose-batch request and answer, or with
 * objects those of /internal/v1/propose-objects. decode points into buf;
 * answer_decode fills rv, index, res, errmsg (and obj, pointing into buf)
 * of k. */
int node_forward_encode(const struct node_proposal *p, size_t k, bool objects,
                        struct cairn_buf *out);
int node_forward_decode(const void *buf, size_t len, bool objects, struct node_proposal *p,
                        size_t *k);
int node_forward_answer_encode(const struct node_proposal *p, size_t k, bool objects,
                               struct cairn_buf *out);
int node_forward_answer_decode(const void *buf, size_t len, bool objects, struct node_proposal *p,
                               size_t k);
int node_leader_propose(struct node *n, const void *cmd, size_t len, bool forwarded,
                        uint64_t deadline_ms, uint64_t *index, struct store_result *res,
                        char *errmsg, size_t size);
int node_leader_read_index(struct node *n, bool forwarded, uint64_t deadline_ms, uint64_t *index,
                           char *errmsg, size_t size);
int node_leader_member_add(struct node *n, uint64_t id, const char *raft_address,
                           const char *api_address, uint64_t deadline_ms, char *errmsg,
                           size_t size);
/* Refuses (CAIRN_ECONFLICT, errmsg says why) to remove the last voter or,
 * unless force, a voter without which fewer voters than a quorum answer. */
int node_leader_member_remove(struct node *n, uint64_t id, bool force, uint64_t deadline_ms,
                              char *errmsg, size_t size);
int node_leader_transfer(struct node *n, uint64_t deadline_ms, char *errmsg, size_t size);

/* Returns once the local store reflects every write acknowledged before
 * the call (a read index from the leader); the API's read_barrier. */
int node_read_barrier(struct node *n, uint64_t deadline_ms, char *errmsg, size_t size);

/* Proposes an encoded command through the leader (forwarding it from a
 * follower) and waits until it is applied here; the API's propose. */
int node_propose(struct node *n, const void *cmd, size_t len, uint64_t deadline_ms,
                 struct store_result *res, char *errmsg, size_t size);

/* versions.c: command versions across the cluster (see its header). */
/* The lowest command version the voters apply; *lowest names one voter
 * that applies no more. */
unsigned node_cluster_version(struct node *n, uint64_t *lowest);
/* The newest version member id published, or the baseline. */
unsigned node_member_version(struct node *n, uint64_t id);
/* Leader: re-encodes cmd at the lowest version that carries it into *out
 * (malloc'ed; NULL if cmd is fine as is), or refuses it with
 * CAIRN_EUNSUPPORTED if that is above the cluster version. */
int node_versions_encode(struct node *n, const void *cmd, size_t len, void **out, size_t *out_len,
                         char *errmsg, size_t size);
/* Writes this node's member record with its addresses and the newest
 * command version it applies. */
int node_versions_publish(struct node *n, uint64_t deadline_ms, char *errmsg, size_t size);

/* liveness.c: start creates n->owner and the liveness thread; stop joins
 * the thread (before the loop stops); destroy frees both (after HTTP
 * stopped, since the heartbeat route uses them). */
int node_liveness_start(struct node *n, char *errmsg, size_t size);
void node_liveness_stop(struct node *n);
void node_liveness_destroy(struct node *n);
/* The leader's half of a heartbeat from node id (rpc.c): confirms the
 * leadership with a read index, then records it; *epoch is the ownership
 * epoch the sender must have applied to renew its lease. */
int node_liveness_heard(struct node *n, uint64_t id, uint64_t applied, uint64_t deadline_ms,
                        uint64_t *epoch, char *errmsg, size_t size);
/* The API backend's ownership (api.h). */
int node_liveness_ownership(void *data, struct api_ownership *out, char *errmsg, size_t size);

/* devices.c: proposes an update of device o with body, pinned to o's
 * revision (res->status CAIRN_EPRECONDITION if it changed meanwhile); any
 * thread but the loop's. A non-zero epoch fences the write to that
 * ownership epoch once the cluster runs command version 3: every replica
 * refuses it (CAIRN_EPRECONDITION, "fenced: ...") if the epoch moved on. */
int node_device_write(struct node *n, const struct store_object *o, json_t *body, uint64_t epoch,
                      struct store_result *res);
/* Sets obj[key] to the current UTC time, "YYYY-MM-DDTHH:MM:SSZ". */
void node_set_now(json_t *obj, const char *key);

/* callhome.c: the zero-touch call-home listener (callhome_listen); start
 * after the device controller, stop before it. */
struct node_callhome;
int node_callhome_start(struct node *n, char *errmsg, size_t size);
void node_callhome_stop(struct node *n);
/* Its counters for /metrics (all 0 when it is off). */
struct node_callhome_stats {
    uint64_t bound;     /* devices bound to their records */
    uint64_t known;     /* calls from devices already bound */
    uint64_t refused;   /* wrong or unknown activation code */
    uint64_t throttled; /* calls refused unread: too many bad attempts */
    uint64_t failed;    /* SSH or NETCONF set-up failed */
};
void node_callhome_stats(struct node *n, struct node_callhome_stats *out);

/* devices.c: the device controller; start after liveness (it needs
 * n->owner), stop before the loop stops (its writes go through it). */
int node_devices_start(struct node *n, char *errmsg, size_t size);
void node_devices_stop(struct node *n);

/* rpc.c */
void node_rpc_register(struct node *n);

/* bootstrap.c: starts the thread that creates the configured admin user
 * (nothing if no admin_password_file is set, and bootstrap_done is set at
 * once); stop joins it and must run after shutting_down is set and the
 * loop thread stopped. */
int node_bootstrap_start(struct node *n, char *errmsg, size_t size);
void node_bootstrap_stop(struct node *n);

#endif /* CAIRN_NODE_INT_H */
