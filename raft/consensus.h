/*
 * Glue between libraft (canonical raft 0.22, with its libuv disk io and TCP
 * transport) and the store: bootstrap, start, proposals whose store results
 * reach the proposer, batched read barriers, membership changes (add as
 * spare, catch up, promote to voter; remove), leadership transfer, and the
 * FSM hooks (apply, snapshot, restore) that drive store/.
 *
 * Threads: libraft is not thread-safe, so every function here is called on
 * the loop thread that runs the uv_loop given to consensus_create, and every
 * callback fires there. The node's submit queue brings other threads' work
 * to that thread.
 */
#ifndef CAIRN_CONSENSUS_H
#define CAIRN_CONSENSUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "store.h"

struct consensus;

struct consensus_config {
    uint64_t id;                   /* this node's raft id (> 0) */
    const char *address;           /* host:port of the raft transport */
    const char *dir;               /* directory of the raft log and snapshots */
    unsigned election_timeout_ms;  /* base election timeout */
    unsigned heartbeat_timeout_ms; /* leader heartbeat interval */
    unsigned snapshot_threshold;   /* entries between snapshots, at most */
    unsigned snapshot_trailing;    /* entries kept after a snapshot */
    uint64_t snapshot_log_bytes;   /* a snapshot once the entries applied since the last
                                      carry this many bytes (0: only the threshold) */
    /* The store was seeded from a backup (store_seed) and holds state that
     * the raft log does not: take the first snapshot at once and keep no
     * log before it, so that a node joining later gets the state as a
     * snapshot instead of replaying a log that lacks it. */
    bool compact_first;
    /* Called when the state machine cannot go on (a storage failure while
     * applying or restoring): the process must stop; the supervisor
     * restarts it and raft replays from its log. */
    void (*fatal_cb)(void *arg, const char *message);
    void *fatal_arg;
};

struct consensus_member {
    uint64_t id;
    char address[64]; /* raft transport address */
    int role;         /* CONSENSUS_VOTER, CONSENSUS_STANDBY or CONSENSUS_SPARE */
};

enum { CONSENSUS_STANDBY = 0, CONSENSUS_VOTER = 1, CONSENSUS_SPARE = 2 };
enum {
    CONSENSUS_UNAVAILABLE = 0,
    CONSENSUS_FOLLOWER = 1,
    CONSENSUS_CANDIDATE = 2,
    CONSENSUS_LEADER = 3
};

/* "leader", "follower", "candidate" or "unavailable" (any other value). */
const char *consensus_state_name(int state);

/* Largest configuration reported by consensus_status. */
#define CONSENSUS_MAX_MEMBERS 32

struct consensus_status {
    int state;              /* CONSENSUS_LEADER, ... */
    uint64_t term;          /* current term */
    uint64_t commit_index;  /* highest index known committed */
    uint64_t applied_index; /* highest index applied to the store */
    uint64_t last_index;    /* last index in the local log */
    uint64_t leader_id;     /* 0 if unknown */
    uint64_t config_index;  /* index of the configuration below */
    size_t n_members;       /* entries in members */
    struct consensus_member members[CONSENSUS_MAX_MEMBERS];
};

/* Creates the raft instance over store (borrowed; it must outlive the
 * consensus). Nothing runs until consensus_start. */
int consensus_create(uv_loop_t *loop, struct store *store, const struct consensus_config *cfg,
                     struct consensus **out, char *errmsg, size_t errmsg_size);

/* Writes the initial configuration into a pristine raft directory. Returns
 * CAIRN_EEXIST (and does nothing) if the directory already holds state. */
int consensus_bootstrap(struct consensus *c, const struct consensus_member *members, size_t n,
                        char *errmsg, size_t errmsg_size);

/* Loads the log and snapshot (restoring the store from it), starts the
 * transport listening, and begins taking part in elections. */
int consensus_start(struct consensus *c, char *errmsg, size_t errmsg_size);

/* Closes raft; cb fires on the loop thread once every pending callback has
 * fired (with CAIRN_ESHUTDOWN) and the memory may be freed with
 * consensus_destroy. */
void consensus_close(struct consensus *c, void (*cb)(void *arg), void *arg);
void consensus_destroy(struct consensus *c);

/* Proposes an encoded store command. buf is copied. On 0, cb fires exactly
 * once: status 0 with the store's result and the entry's index once it is
 * applied locally, or CAIRN_ENOTLEADER if leadership was lost first (the
 * entry may or may not commit later: retry with the same request id), or
 * CAIRN_ESHUTDOWN. Returns CAIRN_ENOTLEADER at once on a non-leader. */
typedef void (*consensus_apply_cb)(void *arg, int status, uint64_t index,
                                   const struct store_result *res);
int consensus_apply(struct consensus *c, const void *buf, size_t len, consensus_apply_cb cb,
                    void *arg);

/* Proposes n (1..STORE_BATCH_MAX, else CAIRN_EINVAL) encoded commands as
 * one raft entry, applied in this order. Each command's cb fires exactly
 * once as consensus_apply's would, all with the entry's index. Only for a
 * cluster whose voters all apply STORE_COMMAND_VERSION_BATCH: a node that
 * does not stops at the entry ("upgrade this node"). */
struct consensus_cmd {
    const void *buf;
    size_t len;
    consensus_apply_cb cb;
    void *arg;
};
int consensus_apply_batch(struct consensus *c, const struct consensus_cmd *cmds, size_t n);

/* Asks for a linearizable read point. Concurrent callers share one raft
 * barrier; a caller waits for a barrier started after its call. cb gets
 * the applied index that reflects every write committed before the call.
 * Returns CAIRN_ENOTLEADER at once on a non-leader. */
typedef void (*consensus_index_cb)(void *arg, int status, uint64_t index);
int consensus_barrier(struct consensus *c, consensus_index_cb cb, void *arg);

/* Makes the leader send its commit index to the followers now rather than
 * with its next heartbeat, by appending a barrier entry (whose replication
 * carries the commit index). Followers waiting to apply an index the leader
 * has committed (a forwarded write, a read index) then apply it within one
 * round trip. At most one such barrier is in flight; calls while one is
 * get one more barrier once it is done, unless an entry was appended
 * since the latest call (its replication carries the commit index). A
 * no-op on a non-leader. */
void consensus_nudge(struct consensus *c);

/* Membership. One change at a time: CAIRN_EBUSY while one is running.
 * member_add adds id as a spare (or reuses a non-voter entry), lets it catch
 * up and promotes it to voter; CAIRN_EEXIST if id is already a voter or the
 * address is used. member_remove refuses (CAIRN_ECONFLICT) to remove the
 * last voter and answers CAIRN_ENOTFOUND for an unknown id. */
typedef void (*consensus_done_cb)(void *arg, int status, const char *message);
int consensus_member_add(struct consensus *c, uint64_t id, const char *address,
                         consensus_done_cb cb, void *arg);
int consensus_member_remove(struct consensus *c, uint64_t id, consensus_done_cb cb, void *arg);

/* Transfers leadership to id (0: the most up-to-date voter). cb fires when
 * the transfer ended, successful or not (check consensus_status). */
int consensus_transfer(struct consensus *c, uint64_t id, consensus_done_cb cb, void *arg);

/* Fills *out with the current state. */
void consensus_status(struct consensus *c, struct consensus_status *out);

/* Translates a libraft error code into a CAIRN_E* code. */
int consensus_error(int raft_rv);

#endif /* CAIRN_CONSENSUS_H */
