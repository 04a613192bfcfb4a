/*
 * The REST API (/api/v1, /healthz, /readyz) over the node's services. The API
 * never touches consensus itself: writes become store commands handed to the
 * backend's propose, reads wait on the backend's read barrier and then read
 * the local store.
 *
 * Threads: api_create/api_destroy on the main thread; everything else runs on
 * HTTP worker threads. Backend operations are called from those workers and
 * block them until done or until the deadline.
 */
#ifndef CAIRN_API_H
#define CAIRN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct http_server;

/* One member as seen by the answering node. */
struct api_member_status {
    uint64_t id;
    char raft_address[64]; /* host:port of raft's TCP transport */
    char api_address[64];  /* host:port of its REST API */
    char role[16];         /* "voter", "standby" or "spare" */
    bool reachable;        /* answered the status query in time */
    char state[16];        /* "leader", "follower", "candidate", "unavailable" */
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t last_index;          /* last index in its raft log */
    unsigned command_version_max; /* newest command version it applies (published) */
};

struct api_cluster_status {
    uint64_t node_id;                  /* the answering node */
    uint64_t leader_id;                /* 0 if no leader is known */
    uint64_t term;                     /* the answering node's term */
    unsigned command_version;          /* lowest command version the voters apply */
    struct api_member_status *members; /* malloc'ed; free() it */
    size_t n_members;
};

/* This node's raft state, for /metrics. */
struct api_raft_status {
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t last_index;
    uint64_t leader_id;         /* 0 if none is known */
    uint64_t leader_changes;    /* times a new leader became known since start */
    uint64_t proposed_entries;  /* raft entries this node proposed as leader */
    uint64_t proposed_commands; /* the writes they carried (more: batches) */
    bool leader;                /* this node leads */
    /* This node's ownership view (owner.h). */
    uint64_t ownership_epoch; /* the epoch it applied (0: none yet) */
    bool leased;              /* it may drive devices now */
    uint64_t handoffs_in;     /* devices it took over since it started */
    uint64_t handoffs_out;    /* devices it handed over since it started */
    uint64_t lease_lapses;    /* times its lease was found expired */
    uint64_t epoch_changes;   /* epochs it installed since it started */
    /* Zero-touch call home on this node since it started (node_callhome). */
    uint64_t callhome_bound;     /* devices bound to their records */
    uint64_t callhome_known;     /* calls from devices already bound */
    uint64_t callhome_refused;   /* wrong or unknown activation code */
    uint64_t callhome_throttled; /* refused unread after repeated bad attempts */
    uint64_t callhome_failed;    /* SSH/NETCONF set-up or the binding write failed */
    uint64_t device_sessions;    /* NETCONF sessions open to devices now */
};

/* Device ownership as the answering node computes it from the committed
 * ownership record (GET /api/v1/cluster/ownership). */
#define API_OWNERSHIP_MAX_NODES   32
#define API_OWNERSHIP_MOVED_SHOWN 20
struct api_ownership_node {
    uint64_t id;
    bool live;        /* not committed down */
    uint64_t devices; /* devices it owns in this epoch */
};
struct api_ownership {
    uint64_t epoch;     /* store revision of the record; 0: none yet */
    int64_t changed_ms; /* wall clock of the last change */
    char reason[128];   /* why the leader made it */
    struct api_ownership_node nodes[API_OWNERSHIP_MAX_NODES];
    size_t n_nodes;
    uint64_t devices;                               /* device objects counted */
    uint64_t moved;                                 /* changed owner at the last epoch */
    char moved_ids[API_OWNERSHIP_MOVED_SHOWN][129]; /* the first of them, in id order */
    size_t n_moved_ids;
    /* The answering node's own view. */
    uint64_t node_id;
    uint64_t applied_epoch; /* the epoch its owner view installed */
    bool leased;            /* it may drive devices now */
    uint64_t lease_remaining_ms;
    uint64_t epoch_changes; /* epochs installed since it started */
    uint64_t handoffs_in;   /* devices it took over since it started */
    uint64_t handoffs_out;  /* devices it handed over since it started */
    uint64_t lease_lapses;  /* times its lease was found expired */
    uint64_t settling_ms;   /* time left before it may drive devices taken
                             * from nodes not committed down (0: none) */
};

/* What the node provides to the API. deadline_ms is on cairn_now_ms()'s
 * clock. Each returns 0 or a CAIRN_E* code, with errmsg for the user. */
struct api_backend {
    void *data;
    /* Replicates the encoded command (store_command_encode) through the
     * leader, forwarding it if this node is not the leader, and waits until
     * it is applied here. On 0, *res holds the outcome (which may itself be
     * a failure such as CAIRN_ENOTFOUND). CAIRN_ENOLEADER/CAIRN_ETIMEDOUT if
     * no quorum could commit it by the deadline.
     * With obj not NULL (a zeroed object), a command that succeeded may be
     * answered without waiting for this node to apply it: obj then holds
     * the object of kind and res->id as the leader stored it (obj->id set;
     * the caller releases it). With obj->id NULL the command is applied
     * here, as without obj. */
    int (*propose)(void *data, const void *cmd, size_t len, enum store_kind kind,
                   struct store_object *obj, uint64_t deadline_ms, struct store_result *res,
                   char *errmsg, size_t errmsg_size);
    /* Returns once the local store reflects every write acknowledged before
     * the call (a linearizable read point). */
    int (*read_barrier)(void *data, uint64_t deadline_ms, char *errmsg, size_t errmsg_size);
    /* Fills *out; members that do not answer by the deadline are marked
     * unreachable. */
    int (*cluster_status)(void *data, uint64_t deadline_ms, struct api_cluster_status *out);
    /* Adds a node (as spare, caught up, then promoted to voter). */
    int (*member_add)(void *data, uint64_t id, const char *raft_address, const char *api_address,
                      uint64_t deadline_ms, char *errmsg, size_t errmsg_size);
    /* Removes a node from the configuration. CAIRN_ECONFLICT if id is the
     * last voter, or (unless force) if fewer voters of the new
     * configuration than its quorum answer now. */
    int (*member_remove)(void *data, uint64_t id, bool force, uint64_t deadline_ms, char *errmsg,
                         size_t errmsg_size);
    /* Makes the leader hand leadership to another voter (the most caught
     * up) and returns once it has; for a rolling restart. */
    int (*leader_transfer)(void *data, uint64_t deadline_ms, char *errmsg, size_t errmsg_size);
    /* Opens a backup of the replicated state that reflects every write
     * acknowledged before the call (a read index first); the caller streams
     * it with store_backup_read and frees it with store_backup_end. */
    int (*backup)(void *data, uint64_t deadline_ms, struct store_backup **out, char *errmsg,
                  size_t errmsg_size);
    /* True when the node is a member with a known leader and has applied up
     * to its commit index; otherwise why says what is missing. */
    bool (*ready)(void *data, char *why, size_t why_size);
    /* Optional: waits until the local store has applied an index above
     * index (0), until deadline_ms (CAIRN_ETIMEDOUT) or until the node
     * stops (CAIRN_ESHUTDOWN). Without it, event streams poll in short
     * steps. */
    int (*wait_applied)(void *data, uint64_t index, uint64_t deadline_ms);
    /* Optional: this node's raft state, read locally (no network). */
    void (*raft_status)(void *data, struct api_raft_status *out);
    /* True while this node is the raft leader (a cheap local look). The
     * job runner acts only there; NULL: this node runs no jobs. */
    bool (*is_leader)(void *data);
    /* The node that owns device_id in the epoch this node applied (0 if
     * none is known yet). Cheap and local; NULL: devices show no owner. */
    uint64_t (*device_owner)(void *data, const char *device_id);
    /* Fills *out from the local store (the caller establishes the read
     * point first) and the node's own ownership view. */
    int (*ownership)(void *data, struct api_ownership *out, char *errmsg, size_t errmsg_size);
};

struct api_config {
    uint64_t node_id;
    unsigned request_timeout_ms; /* deadline of one API request's backend calls */
    uint64_t session_ttl_ms;     /* lifetime of a login's token; 0: API_SESSION_TTL_MS */
    unsigned event_streams_max;  /* concurrent event streams; 0: the default (64) */
};

/* Default lifetime of a bearer token: 8 hours, one working day. */
#define API_SESSION_TTL_MS (8ull * 3600 * 1000)

struct api;

/* Registers the API's routes on srv. backend is copied; srv and store are
 * borrowed and must outlive the api. propose and read_barrier are
 * required (CAIRN_EINVAL otherwise); a NULL cluster_status, member_add,
 * member_remove, leader_transfer or ready makes its route answer 501. */
int api_create(struct http_server *srv, struct store *store, const struct api_backend *backend,
               const struct api_config *cfg, struct api **out);

/* Creates the first SP administrator: if no user is named username (a
 * linearizable read through the backend), hashes password (argon2id) and
 * proposes the creation of an sp_admin user with the request id
 * "bootstrap-admin:USERNAME", so that every node of a cluster may try it
 * at the same time and exactly one user results. Returns 0 if the user
 * exists afterwards (created now or before: its password is then left
 * alone), CAIRN_EINVAL for a bad name or password (errmsg says which),
 * and the backend's code (CAIRN_ENOLEADER, CAIRN_ETIMEDOUT, ...) when the
 * cluster could not answer by deadline_ms; the caller retries those.
 * Any thread but the node's loop thread; blocks. */
int api_admin_bootstrap(struct api *api, const char *username, const char *password,
                        size_t password_len, uint64_t deadline_ms, char *errmsg,
                        size_t errmsg_size);

/* Removes the API's routes from srv (waiting for requests in progress) and
 * frees the api. Call it before http_server_destroy, in the reverse order
 * of creation. NULL is a no-op. */
void api_destroy(struct api *api);

#endif /* CAIRN_API_H */
