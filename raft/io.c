/*
 * A guard around libraft's uv io for one bug of libraft 0.22.1.
 *
 * When an InstallSnapshot arrives while the node is writing a snapshot of
 * its own, the legacy layer parks the install (snapshot_pending) until the
 * write completes. Its completion callback (takeSnapshotCb in legacy.c)
 * then clears snapshot_pending before reading it and starts the install
 * with NULL: the loop thread dies with SIGSEGV. It is unfixed upstream.
 *
 * The guard keeps libraft from ever parking an install, in two ways:
 * - while a snapshot of our own is being written, an InstallSnapshot from
 *   the transport is held here, and handed to libraft right after
 *   libraft's completion callback ran, as if it had arrived a moment
 *   later. At most one is held; a newer one replaces it (a leader resends
 *   the same snapshot or a newer one), the older one's memory is freed;
 * - while libraft handles an InstallSnapshot, the FSM refuses to take a
 *   snapshot (fsm.c): in that same step libraft checks whether to take one
 *   before it handles the install. A refused snapshot is simply taken at
 *   a later step; libraft cleans up after the refusal.
 *
 * It hooks two function pointers of the io: start (to see the receive
 * callback libraft passes) and snapshot_put (to see when a snapshot of our
 * own is written, and when that write completes). Both run on the loop
 * thread, as does everything here but pack_work. Hooking snapshot_put and
 * close also moves the packing of our own snapshots to a worker thread
 * (below guard_put_cb).
 */
#include "consensus_int.h"

#include <stdlib.h>
#include <string.h>

#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static struct consensus *io_consensus(struct raft_io *io)
{
    return CONTAINER_OF(io, struct consensus, io);
}

static void held_free(struct consensus *c)
{
    if (!c->guard.holding) {
        return;
    }
    raft_configuration_close(&c->guard.held.install_snapshot.conf);
    raft_free(c->guard.held.install_snapshot.data.base);
    free(c->guard.held_address);
    c->guard.held_address = NULL;
    c->guard.holding = false;
}

/* Hands a message to libraft. While it takes an InstallSnapshot, the FSM
 * refuses to take a snapshot of its own (fsm.c): libraft would start one
 * in the same step, before it handles the install, and park the install. */
static void deliver(struct consensus *c, struct raft_message *msg)
{
    bool install = msg->type == RAFT_INSTALL_SNAPSHOT;
    if (install) {
        c->guard.receiving_install = true;
    }
    c->guard.recv(&c->io, msg);
    if (install) {
        c->guard.receiving_install = false;
    }
}

static void guard_recv(struct raft_io *io, struct raft_message *msg)
{
    struct consensus *c = io_consensus(io);
    char *address;

    if (msg->type != RAFT_INSTALL_SNAPSHOT || c->guard.put_req == NULL) {
        deliver(c, msg);
        return;
    }
    /* The transport reuses its message struct and address after this call;
     * the configuration and the data are ours from now on. */
    address = strdup(msg->server_address != NULL ? msg->server_address : "");
    if (address == NULL) {
        /* Cannot hold it: drop it, the leader sends it again. */
        raft_configuration_close(&msg->install_snapshot.conf);
        raft_free(msg->install_snapshot.data.base);
        return;
    }
    held_free(c);
    c->guard.held = *msg;
    c->guard.held.server_address = address;
    c->guard.held_address = address;
    c->guard.holding = true;
    CAIRN_INFO(
        "msg=\"InstallSnapshot held until our own snapshot is written\" from=%llu "
        "last_index=%llu",
        (unsigned long long)msg->server_id, (unsigned long long)msg->install_snapshot.last_index);
}

static int guard_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                       raft_io_recv_cb recv)
{
    struct consensus *c = io_consensus(io);
    c->guard.recv = recv;
    return c->guard.start(io, msecs, tick, guard_recv);
}

/* Our own snapshot is written (or failed, or was cancelled by a close):
 * libraft's callback first, then the held install, if any. */
static void guard_put_cb(struct raft_io_snapshot_put *put, int status)
{
    struct consensus *c = CONTAINER_OF(put, struct consensus, guard.put);
    struct raft_io_snapshot_put *req = c->guard.put_req;
    struct raft_message msg;
    char *address;

    c->guard.put_req = NULL;
    req->cb(req, status);
    /* libraft's callback may have applied entries and started the next
     * snapshot of our own: the install waits for that one too. */
    if (!c->guard.holding || c->guard.put_req != NULL) {
        return;
    }
    if (status != 0 || c->closing || c->r->legacy.closing) {
        held_free(c);
        return;
    }
    msg = c->guard.held;
    address = c->guard.held_address;
    c->guard.holding = false;
    c->guard.held_address = NULL;
    deliver(c, &msg);
    free(address);
}

/*
 * Our own snapshot is packed on a worker thread.
 *
 * libraft 0.22.1's legacy layer asks the FSM for a snapshot's buffers on
 * the loop thread and hands them to snapshot_put right away. Reading a
 * 100 MB checkpoint into one buffer took 70-140 ms, on every node at the
 * same entry, so the whole cluster stood still. Now fsm_snapshot only
 * makes the checkpoint (11-68 ms in the benchmarks) and gives libraft an
 * empty buffer; the snapshot_put that follows packs the checkpoint on a
 * libuv worker and passes the filled buffer to the real snapshot_put from
 * the after callback. To libraft this is a slower write: it goes on applying entries
 * and takes no other snapshot meanwhile, and an InstallSnapshot is held as
 * during any write of ours (put_req is set).
 *
 * A close of the io waits for the work; the after callback then reports
 * the snapshot cancelled to libraft (which is closing) and closes the io.
 * A pack that fails on the worker is tried again on the loop thread. If
 * that fails too the node stops (fatal_cb, as for a failed apply): libraft
 * 0.22.1 accepts no failure of a write of our own snapshot once
 * snapshot_put has returned, except while it closes.
 */

/* Packs the checkpoint on this thread into the snapshot's buffer. */
static int pack_here(struct consensus *c)
{
    void *data = NULL;
    size_t len = 0;
    int rv = store_snapshot_pack(c->store, &c->pack.cp, &data, &len, c->pack.errmsg,
                                 sizeof c->pack.errmsg);
    if (rv != 0) {
        store_snapshot_checkpoint_drop(c->store);
        return rv;
    }
    c->pack.bufs[0].base = data;
    c->pack.bufs[0].len = len;
    return 0;
}

static void pack_work(uv_work_t *work)
{
    struct consensus *c = CONTAINER_OF(work, struct consensus, pack.work);

    c->pack.data = NULL;
    c->pack.len = 0;
    c->pack.rv = c->pack.hook != NULL ? c->pack.hook(c->pack.hook_arg) : 0;
    if (c->pack.rv != 0) {
        cairn_errmsg_set(c->pack.errmsg, sizeof c->pack.errmsg,
                         "pack snapshot at %llu: failed by a test hook",
                         (unsigned long long)c->pack.cp.index);
        return;
    }
    c->pack.rv = store_snapshot_pack(c->store, &c->pack.cp, &c->pack.data, &c->pack.len,
                                     c->pack.errmsg, sizeof c->pack.errmsg);
}

static void pack_after(uv_work_t *work, int status)
{
    struct consensus *c = CONTAINER_OF(work, struct consensus, pack.work);
    raft_io_close_cb close_cb = c->pack.close_cb;
    int rv;

    (void)status; /* nothing cancels it */
    c->pack.working = false;
    if (close_cb != NULL) {
        c->pack.close_cb = NULL;
        free(c->pack.data);
        c->pack.data = NULL;
        store_snapshot_checkpoint_drop(c->store);
        guard_put_cb(&c->guard.put, RAFT_CANCELED);
        c->guard.close(&c->io, close_cb);
        return;
    }
    if (c->pack.rv == 0) {
        c->pack.bufs[0].base = c->pack.data;
        c->pack.bufs[0].len = c->pack.len;
        c->pack.data = NULL;
    } else {
        CAIRN_WARN(
            "msg=\"snapshot not packed on a worker: packing on the loop thread\" "
            "error=\"%s\"",
            c->pack.errmsg);
        rv = pack_here(c);
        if (rv != 0) {
            c->cfg.fatal_cb(c->cfg.fatal_arg, c->pack.errmsg);
            return;
        }
    }
    CAIRN_INFO("msg=\"snapshot packed\" index=%llu bytes=%zu ms=%llu",
               (unsigned long long)c->pack.cp.index, c->pack.bufs[0].len,
               (unsigned long long)(cairn_now_ms() - c->pack.started_ms));
    rv = c->guard.snapshot_put(&c->io, c->pack.trailing, &c->guard.put, c->pack.snapshot,
                               guard_put_cb);
    if (rv != 0) {
        cairn_errmsg_set(c->errmsg, sizeof c->errmsg, "write snapshot at %llu: %s",
                         (unsigned long long)c->pack.cp.index, raft_strerror(rv));
        c->cfg.fatal_cb(c->cfg.fatal_arg, c->errmsg);
    }
}

/* Queues the packing of the checkpoint fsm_snapshot made; if the work
 * cannot be queued, packs it here, where a failure is still libraft's to
 * handle (it drops the snapshot and takes one later). */
static int pack_start(struct consensus *c, unsigned trailing, const struct raft_snapshot *snapshot)
{
    int rv;

    c->pack.checkpointed = false;
    c->pack.trailing = trailing;
    c->pack.snapshot = snapshot;
    c->pack.started_ms = cairn_now_ms();
    if (uv_queue_work(c->loop, &c->pack.work, pack_work, pack_after) == 0) {
        c->pack.working = true;
        return 0;
    }
    rv = pack_here(c);
    if (rv != 0) {
        CAIRN_ERROR("msg=\"snapshot failed\" error=\"%s\"", c->pack.errmsg);
        c->guard.put_req = NULL;
        return rv == CAIRN_ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
    }
    rv = c->guard.snapshot_put(&c->io, trailing, &c->guard.put, snapshot, guard_put_cb);
    if (rv != 0) {
        c->guard.put_req = NULL;
    }
    return rv;
}

static int guard_snapshot_put(struct raft_io *io, unsigned trailing,
                              struct raft_io_snapshot_put *req,
                              const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct consensus *c = io_consensus(io);
    int rv;

    /* libraft writes a leader's snapshot right as it handles the
     * InstallSnapshot (deliver); any other write is a snapshot of our own,
     * and there is one at a time. */
    if (c->guard.receiving_install) {
        return c->guard.snapshot_put(io, trailing, req, snapshot, cb);
    }
    req->cb = cb;
    c->guard.put_req = req;
    c->guard.put.data = c;
    if (c->pack.checkpointed) {
        return pack_start(c, trailing, snapshot);
    }
    rv = c->guard.snapshot_put(io, trailing, &c->guard.put, snapshot, guard_put_cb);
    if (rv != 0) {
        c->guard.put_req = NULL;
    }
    return rv;
}

/* libraft closes the io; while a pack is in progress, pack_after does. */
static void guard_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct consensus *c = io_consensus(io);
    if (c->pack.working) {
        c->pack.close_cb = cb;
        return;
    }
    c->guard.close(io, cb);
}

void consensus_io_guard(struct consensus *c)
{
    c->guard.start = c->io.start;
    c->guard.snapshot_put = c->io.snapshot_put;
    c->guard.close = c->io.close;
    c->io.start = guard_start;
    c->io.snapshot_put = guard_snapshot_put;
    c->io.close = guard_close;
    c->pack.enabled = true;
}

void consensus_io_guard_close(struct consensus *c)
{
    held_free(c);
}

/* Raft connections without Nagle's algorithm. libraft's TCP transport
 * leaves it on, and a connection carries messages one way only (each
 * node sends on the connections it opened and reads those it accepted),
 * so the peer's ACKs are all delayed ACKs: a message sent while the
 * previous one is unacknowledged waited for one, about 40 ms. Entries
 * that carry several writes made that the common case: at 16 writers, 90%
 * of the writes took 45 ms. */
static raft_uv_connect_cb libraft_connect_cb; /* its one connect callback (uv_send.c) */
static int (*tcp_connect)(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                          const char *address, raft_uv_connect_cb cb);

static void nodelay_connect_cb(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    if (status == 0 && stream != NULL && stream->type == UV_TCP) {
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    }
    libraft_connect_cb(req, stream, status);
}

/* libraft passes the same callback for every connection, and the TCP
 * transport's connect function is the same for every instance, so one
 * copy of each serves every consensus in the process. */
static int nodelay_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                           const char *address, raft_uv_connect_cb cb)
{
    libraft_connect_cb = cb;
    return tcp_connect(t, req, id, address, nodelay_connect_cb);
}

void consensus_transport_nodelay(struct consensus *c)
{
    tcp_connect = c->transport.connect;
    c->transport.connect = nodelay_connect;
}
