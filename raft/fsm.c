/*
 * The raft FSM over store/: libraft calls these on the loop thread.
 *
 * apply: libraft does not pass the entry's index, but applies entries in
 * order right after setting last_applied for the previous one, so the
 * entry's index is raft_last_applied() + 1. The store uses it to skip
 * entries it already holds (replay after a restart) and to record the
 * applied index in the same WriteBatch as the change.
 *
 * snapshot: a RocksDB checkpoint packed by the store. libraft records the
 * snapshot at its commit index, which equals its applied index here (the
 * legacy layer applies synchronously as the commit index moves); a mismatch
 * is refused rather than producing a snapshot that lies. The store's own
 * applied index may be lower: barrier and configuration entries do not
 * reach it.
 *
 * A store seeded from a backup (consensus_config.compact_first) is
 * snapshotted after the first entry, with no trailing log, so that a node
 * that joins later is sent that snapshot instead of a log from index 1
 * that lacks the seeded state.
 *
 * When to snapshot: libraft counts entries (snapshot_threshold), but what
 * a long log costs is memory (libraft keeps every entry since the last
 * snapshot) and what a snapshot costs grows with the database, not with
 * the entries. So apply also counts the bytes of the entries since the
 * last snapshot, and once they reach snapshot_log_bytes it lowers libraft's
 * threshold to the entries applied so far, which makes libraft take the
 * snapshot after this apply; fsm_snapshot puts the threshold it lowered
 * back. Batched entries of 64 writes are tens of KB, a single write's a
 * few hundred bytes: a count of entries alone either snapshots a big
 * database far too often under light load or lets the log grow to
 * gigabytes under heavy load.
 *
 * restore: called at start-up with the latest local snapshot and when a
 * leader installs one. The store keeps its own state when it is already at
 * or past the snapshot. On success the FSM owns and frees buf->base.
 */
#include "consensus_int.h"

#include <stdlib.h>

/* Three quarters of the way to the next snapshot (by entries or by log
 * bytes), and again at fifteen sixteenths, starts flushing the memtables
 * in the background: the snapshot's checkpoint flushes them on the loop
 * thread, and with 64 MB of them that held the loop thread a second or
 * more, on every node at once (they reach the threshold at the same
 * entry), so the whole cluster stood still (docs/benchmarks.md, session
 * 8). Flushed ahead, the checkpoint flushes only the last sixteenth's
 * writes. The fraction of the way, in sixteenths, of flush stage i. */
static const unsigned flush_ahead_at[] = {12, 15};

static void flush_ahead(struct consensus *c, uint64_t index)
{
    uint64_t since = index > c->snapshot_index ? index - c->snapshot_index : 0;
    uint64_t entries = c->r->legacy.snapshot_threshold;
    uint64_t bytes = c->cfg.snapshot_log_bytes;
    unsigned at;
    char msg[CAIRN_ERRMSG_SIZE];
    if (c->flush_stage >= sizeof flush_ahead_at / sizeof flush_ahead_at[0] || c->compact_first ||
        c->log_bytes < c->flush_ahead_min) {
        return;
    }
    at = flush_ahead_at[c->flush_stage];
    if (since * 16 < entries * at && (bytes == 0 || c->log_bytes * 16 < bytes * at)) {
        return;
    }
    c->flush_stage++;
    c->flushes_ahead++;
    if (store_flush_start(c->store, msg, sizeof msg) != 0) {
        /* Only slower: the snapshot flushes what is left. */
        CAIRN_WARN("msg=\"flush ahead of a snapshot failed\" error=\"%s\"", msg);
    } else {
        CAIRN_DEBUG("msg=\"flushing memtables ahead of a snapshot\" index=%llu log_bytes=%llu",
                    (unsigned long long)index, (unsigned long long)c->log_bytes);
    }
}

/* Counts an applied entry toward snapshot_log_bytes (see above). */
static void log_size_count(struct consensus *c, uint64_t index, size_t len)
{
    uint64_t since;
    c->log_bytes += len;
    flush_ahead(c, index);
    if (c->cfg.snapshot_log_bytes == 0 || c->log_bytes < c->cfg.snapshot_log_bytes ||
        c->compact_first || index <= c->snapshot_index) {
        return;
    }
    since = index - c->snapshot_index;
    if (since > 0 && since < c->r->legacy.snapshot_threshold) {
        if (c->threshold_kept == 0) {
            c->threshold_kept = c->r->legacy.snapshot_threshold;
        }
        raft_set_snapshot_threshold(c->r, (unsigned)since);
    }
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct consensus *c = fsm->data;
    const struct store_result *res = NULL;
    uint64_t index = raft_last_applied(c->r) + 1;
    struct store_slice cmds[STORE_BATCH_MAX];
    size_t n = 1;
    bool batched = false;
    struct proposal *p;
    int rv;

    *result = NULL;
    log_size_count(c, index, buf->len);
    if (c->compact_first && c->compact_taken && !c->r->legacy.snapshot_taking) {
        /* The first snapshot is persisted and the log before it is gone:
         * libraft 0.22's legacy layer truncates in its put callback, with
         * the trailing count of that moment, after snapshot_finalize, so the
         * count may only change now. Back to the configured rhythm. */
        c->compact_first = false;
        raft_set_snapshot_threshold(c->r, c->cfg.snapshot_threshold);
        raft_set_snapshot_trailing(c->r, c->cfg.snapshot_trailing);
        CAIRN_INFO(
            "msg=\"restored state snapshotted: configured snapshot rhythm\" "
            "threshold=%u trailing=%u",
            c->cfg.snapshot_threshold, c->cfg.snapshot_trailing);
    }
    rv = consensus_entry_decode(buf, cmds, &n, &batched);
    if (rv == CAIRN_EUNSUPPORTED) {
        /* A framing a newer build wrote: skipping it would make this
         * replica diverge from those that apply it. */
        cairn_errmsg_set(c->errmsg, sizeof c->errmsg,
                         "apply entry %llu: framing version %u is newer than this build (1..2): "
                         "upgrade this node",
                         (unsigned long long)index, ((const unsigned char *)buf->base)[2]);
        c->cfg.fatal_cb(c->cfg.fatal_arg, c->errmsg);
        return RAFT_IOERR;
    }
    if (rv != 0) {
        /* An unframed entry reaches the store as an empty command, which
         * it rejects as malformed without touching state (but the index
         * moves). */
        cmds[0].buf = "";
        cmds[0].len = 0;
        n = 1;
        batched = false;
    }
    rv = batched ? store_apply_batch(c->store, index, cmds, n, &res, c->errmsg, sizeof c->errmsg)
                 : store_apply(c->store, index, cmds[0].buf, cmds[0].len, &res, c->errmsg,
                               sizeof c->errmsg);
    if (rv != 0) {
        cairn_errmsg_wrap(c->errmsg, sizeof c->errmsg, "apply entry %llu",
                          (unsigned long long)index);
        c->cfg.fatal_cb(c->cfg.fatal_arg, c->errmsg);
        return RAFT_IOERR;
    }
    if (res != NULL && c->pending != NULL) {
        p = consensus_pending_find(c, index);
        for (size_t i = 0; p != NULL && i < n && i < p->n; i++) {
            p->cmds[i].result = res[i];
            p->cmds[i].have_result = true;
        }
    }
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct consensus *c = fsm->data;
    uint64_t applied = raft_last_applied(c->r);
    uint64_t commit = raft_commit_index(c->r);
    uint64_t started;
    void *data = NULL;
    size_t len = 0;
    int rv;

    if (c->guard.receiving_install) {
        /* See io.c: libraft 0.22.1 would park the install it is about to
         * handle behind this snapshot, and crash when the snapshot is
         * written. It asks again at a later step. */
        return RAFT_BUSY;
    }
    if (applied != commit) {
        CAIRN_WARN("msg=\"snapshot skipped\" applied=%llu commit=%llu", (unsigned long long)applied,
                   (unsigned long long)commit);
        return RAFT_BUSY;
    }
    started = cairn_now_ms();
    /* With the uv io, only the checkpoint is made here: the guarded
     * snapshot_put that libraft calls next packs it on a worker (io.c). */
    rv = c->pack.enabled
             ? store_snapshot_checkpoint(c->store, &c->pack.cp, c->errmsg, sizeof c->errmsg)
             : store_snapshot_take(c->store, &data, &len, c->errmsg, sizeof c->errmsg);
    if (rv != 0) {
        CAIRN_ERROR("msg=\"snapshot failed\" error=\"%s\"", c->errmsg);
        return rv == CAIRN_ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
    }
    *bufs = malloc(sizeof **bufs);
    if (*bufs == NULL) {
        if (c->pack.enabled) {
            store_snapshot_checkpoint_drop(c->store);
        }
        free(data);
        return RAFT_NOMEM;
    }
    (*bufs)[0].base = data;
    (*bufs)[0].len = len;
    *n_bufs = 1;
    c->pack.checkpointed = c->pack.enabled;
    c->pack.bufs = *bufs;
    c->compact_taken = true;
    /* ms: how long the loop thread stood still for it. Packed on a
     * worker, its size is logged then ("snapshot packed", io.c). */
    if (c->pack.enabled) {
        CAIRN_INFO("msg=\"snapshot taken\" index=%llu log_bytes=%llu ms=%llu packing=worker",
                   (unsigned long long)applied, (unsigned long long)c->log_bytes,
                   (unsigned long long)(cairn_now_ms() - started));
    } else {
        CAIRN_INFO("msg=\"snapshot taken\" index=%llu bytes=%zu log_bytes=%llu ms=%llu",
                   (unsigned long long)applied, len, (unsigned long long)c->log_bytes,
                   (unsigned long long)(cairn_now_ms() - started));
    }
    c->snapshot_index = applied;
    c->log_bytes = 0;
    c->flush_stage = 0;
    if (c->threshold_kept != 0) {
        raft_set_snapshot_threshold(c->r, c->threshold_kept);
        c->threshold_kept = 0;
    }
    return 0;
}

/* With snapshot_finalize set, raft leaves the buffers to the FSM: they were
 * allocated here with malloc, so they are freed here. */
static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    (void)fsm;
    for (unsigned i = 0; i < *n_bufs; i++) {
        free((*bufs)[i].base);
    }
    free(*bufs);
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct consensus *c = fsm->data;
    uint64_t index = 0;
    int rv;

    store_snapshot_index(buf->base, buf->len, &index);
    rv = store_snapshot_restore(c->store, buf->base, buf->len, c->errmsg, sizeof c->errmsg);
    if (rv != 0) {
        cairn_errmsg_wrap(c->errmsg, sizeof c->errmsg, "restore snapshot at %llu",
                          (unsigned long long)index);
        CAIRN_ERROR("msg=\"%s\"", c->errmsg);
        return rv == CAIRN_ENOMEM ? RAFT_NOMEM : RAFT_CORRUPT;
    }
    CAIRN_INFO("msg=\"snapshot restored\" index=%llu bytes=%zu", (unsigned long long)index,
               buf->len);
    c->snapshot_index = index;
    c->log_bytes = 0;
    c->flush_stage = 0;
    raft_free(buf->base);
    return 0;
}

void consensus_fsm_init(struct consensus *c)
{
    c->fsm.version = 2;
    c->fsm.data = c;
    c->fsm.apply = fsm_apply;
    c->fsm.snapshot = fsm_snapshot;
    c->fsm.restore = fsm_restore;
    c->fsm.snapshot_finalize = fsm_snapshot_finalize;
    c->fsm.snapshot_async = NULL;
}
