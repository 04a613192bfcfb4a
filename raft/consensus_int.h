/*
 * Internal state of the consensus module, shared by its files: the raft
 * instance with its io and transport, the proposals waiting for their
 * entries to be applied, the read-barrier batches and the membership change
 * in progress.
 */
#ifndef CAIRN_CONSENSUS_INT_H
#define CAIRN_CONSENSUS_INT_H

#include <raft.h>
#include <raft/uv.h>

#include "cairn.h"
#include "consensus.h"

/* One command of a proposal: whom to tell, and what its apply said. */
struct proposal_cmd {
    consensus_apply_cb cb;      /* user callback */
    void *arg;                  /* its argument */
    struct store_result result; /* filled by fsm_apply */
    bool have_result;           /* result is set */
};

/* A proposal from raft_apply until its callback: one entry, of one command
 * or a batch of them. Its results are filled by the FSM apply of its index
 * (raft fires apply callbacks later, in a batch, after further entries may
 * have been applied). */
struct proposal {
    struct raft_apply req; /* req.index is the entry's index */
    struct consensus *c;   /* owner */
    struct proposal *prev; /* pending list links (oldest first) */
    struct proposal *next;
    size_t n;                   /* commands */
    struct proposal_cmd cmds[]; /* n of them, in the entry's order */
};

/* A caller waiting for a read barrier. */
struct read_waiter {
    consensus_index_cb cb;
    void *arg;
    struct read_waiter *next;
};

/* A membership change in progress (one at a time). Steps of an add:
 *   1. raft_add(id) as spare, unless id is already a non-voter;
 *   2. raft_assign(id, voter): libraft catches it up, then commits;
 *   3. the user callback. A removal is one raft_remove. */
struct member_change {
    struct consensus *c;
    struct raft_change req;
    uint64_t id;
    bool promote_next; /* after step 1, go on with step 2 */
    consensus_done_cb cb;
    void *arg;
};

/* Log bytes since the last snapshot below which fsm.c flushes nothing
 * ahead of the next one: the memtables then hold so little that the
 * snapshot's own flush is quick. */
#define CONSENSUS_FLUSH_AHEAD_MIN ((uint64_t)1 << 20)

struct consensus {
    uv_loop_t *loop;
    struct store *store;
    struct consensus_config cfg;
    char address[64];
    char dir[4096];
    struct raft raft; /* the instance, when created here */
    struct raft *r;   /* the instance used: &raft, or a test fixture's */
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;
    bool io_ready;        /* raft_uv_init done */
    bool transport_ready; /* raft_uv_tcp_init done */
    bool raft_ready;      /* raft_init done */
    bool closing;
    bool compact_first; /* cfg.compact_first, until the first snapshot */
    bool compact_taken; /* a snapshot was taken (fsm_snapshot) */
    /* fsm.c: the log's size, for cfg.snapshot_log_bytes. */
    uint64_t log_bytes;       /* of the entries applied since the last snapshot (or start) */
    uint64_t snapshot_index;  /* the last snapshot taken or restored, 0: none */
    unsigned threshold_kept;  /* libraft's threshold before log_bytes lowered it, 0: not lowered */
    unsigned flush_stage;     /* the memtables' flushes ahead of the next snapshot started */
    uint64_t flush_ahead_min; /* log bytes below which none is (CONSENSUS_FLUSH_AHEAD_MIN) */
    uint64_t flushes_ahead;   /* such flushes started (consensus_status) */
    /* io.c: holds an InstallSnapshot back while a snapshot of our own is
     * written (libraft 0.22.1 crashes on one that arrives then). */
    struct {
        int (*start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                     raft_io_recv_cb recv);
        int (*snapshot_put)(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                            const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);
        raft_io_recv_cb recv;            /* libraft's receive callback */
        struct raft_io_snapshot_put put; /* our own snapshot's write */
        /* libraft's request for it: not NULL while ours is written */
        struct raft_io_snapshot_put *put_req;
        bool receiving_install;   /* libraft handles an InstallSnapshot */
        bool holding;             /* held is set */
        struct raft_message held; /* the InstallSnapshot held back */
        char *held_address;       /* its sender's address (owned) */
        void (*close)(struct raft_io *io, raft_io_close_cb cb);
    } guard;
    /* io.c: our own snapshot is packed on a libuv worker thread, between
     * fsm_snapshot (which only makes the checkpoint) and the write. */
    struct {
        bool enabled;      /* the uv io is guarded (not a test fixture's io) */
        bool checkpointed; /* fsm_snapshot made cp for the snapshot_put to come */
        bool working;      /* the work is queued and its after callback has not run */
        struct store_checkpoint cp;
        struct raft_buffer *bufs; /* the snapshot's buffer array, filled once packed */
        const struct raft_snapshot *snapshot;
        unsigned trailing;
        uv_work_t work;
        uint64_t started_ms;
        void *data; /* the worker's result */
        size_t len;
        int rv;
        char errmsg[CAIRN_ERRMSG_SIZE];
        raft_io_close_cb close_cb; /* a close of the io waiting for the work */
        /* Tests only: runs on the worker before packing; nonzero fails it. */
        int (*hook)(void *arg);
        void *hook_arg;
    } pack;
    /* Proposals waiting for their callback. */
    struct proposal *pending;      /* proposals waiting for their entry, oldest first */
    struct proposal *pending_tail; /* the newest */
    /* Read barriers: callers queued for the next barrier, and the callers
     * the barrier in flight will answer. */
    struct read_waiter *read_queue;
    struct read_waiter **read_queue_tail;
    struct read_waiter *read_inflight;
    struct raft_barrier barrier;
    bool barrier_inflight;
    /* The commit-propagating barrier of consensus_nudge (consensus.c). */
    struct raft_barrier nudge;
    bool nudge_inflight;
    bool nudge_again;      /* look again once the barrier in flight is done */
    raft_index nudge_last; /* the log's last index at the latest nudge */
    /* Membership change and leadership transfer in progress, or NULL. */
    struct member_change *change;
    struct raft_transfer transfer;
    bool transferring;
    consensus_done_cb transfer_cb;
    void *transfer_arg;
    /* Close. */
    void (*close_cb)(void *arg);
    void *close_arg;
    char errmsg[CAIRN_ERRMSG_SIZE];
};

/* Raft entries must be multiples of 8 bytes (libraft's uv io), so commands
 * travel in a frame: "CE", the framing version, a zero byte, the payload
 * length (32-bit big-endian), the payload, zero padding. Framing 1 carries
 * one command; framing 2 (a batch, STORE_COMMAND_VERSION_BATCH) carries a
 * count (32-bit big-endian, 1..STORE_BATCH_MAX) and as many commands, each
 * its length (32-bit big-endian) and bytes. encode_batch frames n commands
 * (framing 2 even for one). decode gives the commands: CAIRN_EMALFORMED
 * for a bad frame, CAIRN_EUNSUPPORTED for a framing newer than 2. */
#define CONSENSUS_ENTRY_HEADER 8
int consensus_entry_encode(const void *payload, size_t len, struct raft_buffer *out);
int consensus_entry_encode_batch(const struct consensus_cmd *cmds, size_t n,
                                 struct raft_buffer *out);
int consensus_entry_decode(const struct raft_buffer *buf, struct store_slice *cmds, size_t *n,
                           bool *batched);

/* Proposes an already framed entry and always takes its memory: freed here
 * on a failure before raft_apply, and owned by libraft from raft_apply on,
 * even when it reports an error (libraft 0.22's log takes the batch, so
 * freeing it then would be a double free). consensus_apply frames and calls
 * this. */
int consensus_apply_entry(struct consensus *c, struct raft_buffer *entry,
                          const struct consensus_cmd *cmds, size_t n);

/* fsm.c: fills c->fsm with the store-backed state machine. */
void consensus_fsm_init(struct consensus *c);

/* Finds the pending proposal whose entry is at index, or NULL. */
struct proposal *consensus_pending_find(struct consensus *c, uint64_t index);

/* io.c: installs the InstallSnapshot guard and the packing of our own
 * snapshots on a worker thread on c->io (after raft_uv_init), and frees
 * what the guard holds (after raft_close). */
void consensus_io_guard(struct consensus *c);
void consensus_io_guard_close(struct consensus *c);
/* io.c: sets TCP_NODELAY on every raft connection this node opens. */
void consensus_transport_nodelay(struct consensus *c);

#endif /* CAIRN_CONSENSUS_INT_H */
