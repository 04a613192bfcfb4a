/*
 * Lifecycle of the raft instance (create, bootstrap, start, close),
 * proposals and batched read barriers, and status. See consensus.h.
 *
 * A proposal's life:
 *   1. consensus_apply (one command) or consensus_apply_batch (several in
 *      one entry) frames the commands and calls raft_apply; the proposal
 *      joins the pending list with the entry's index.
 *   2. When the entry is committed, fsm_apply (fsm.c) applies it to the
 *      store and copies the store's results into the pending proposal with
 *      that index (raft fires apply callbacks later, batched, so the store's
 *      result buffer may already hold a later entry's results by then).
 *   3. apply_cb leaves the pending list and calls each command's callback.
 * Invariant: a proposal is in the pending list exactly between steps 1
 * and 3, and each of its commands' callbacks fires exactly once.
 */
#include "consensus_int.h"

#include <limits.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int consensus_error(int raft_rv)
{
    switch (raft_rv) {
        case 0:
            return 0;
        case RAFT_NOMEM:
            return CAIRN_ENOMEM;
        case RAFT_NOTLEADER:
        case RAFT_LEADERSHIPLOST:
            return CAIRN_ENOTLEADER;
        case RAFT_SHUTDOWN:
        case RAFT_CANCELED:
            return CAIRN_ESHUTDOWN;
        case RAFT_CANTCHANGE:
        case RAFT_BUSY:
            return CAIRN_EBUSY;
        case RAFT_DUPLICATEID:
        case RAFT_DUPLICATEADDRESS:
            return CAIRN_EEXIST;
        case RAFT_BADID:
        case RAFT_NOTFOUND:
            return CAIRN_ENOTFOUND;
        case RAFT_BADROLE:
        case RAFT_INVALID:
            return CAIRN_EINVAL;
        case RAFT_NOCONNECTION:
            return CAIRN_EUNAVAILABLE;
        case RAFT_CORRUPT:
        case RAFT_MALFORMED:
            return CAIRN_ECORRUPT;
        case RAFT_TOOBIG:
            return CAIRN_ETOOBIG;
        default:
            return CAIRN_EIO;
    }
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof tmp) {
        return CAIRN_EINVAL;
    }
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) != 0 && errno != EEXIST) {
                return CAIRN_EIO;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST) {
        return CAIRN_EIO;
    }
    return 0;
}

int consensus_create(uv_loop_t *loop, struct store *store, const struct consensus_config *cfg,
                     struct consensus **out, char *errmsg, size_t errmsg_size)
{
    struct consensus *c;
    int rv;

    if (cfg->id == 0 || cfg->address == NULL || cfg->dir == NULL ||
        strlen(cfg->address) >= sizeof c->address) {
        cairn_errmsg_set(errmsg, errmsg_size, "raft: invalid id or address");
        return CAIRN_EINVAL;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "raft: out of memory");
        return CAIRN_ENOMEM;
    }
    c->loop = loop;
    c->store = store;
    c->cfg = *cfg;
    snprintf(c->address, sizeof c->address, "%s", cfg->address);
    snprintf(c->dir, sizeof c->dir, "%s", cfg->dir);
    c->cfg.address = c->address;
    c->cfg.dir = c->dir;
    c->read_queue_tail = &c->read_queue;
    c->flush_ahead_min = CONSENSUS_FLUSH_AHEAD_MIN;

    if (mkdir_p(c->dir) != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "raft: create directory %s: %s", c->dir,
                         strerror(errno));
        rv = CAIRN_EIO;
        goto err_after_alloc;
    }
    c->transport.version = 1;
    rv = raft_uv_tcp_init(&c->transport, loop);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "raft: tcp transport: %s", c->transport.errmsg);
        rv = consensus_error(rv);
        goto err_after_alloc;
    }
    c->transport_ready = true;
    consensus_transport_nodelay(c);
    rv = raft_uv_init(&c->io, loop, c->dir, &c->transport);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "raft: disk io in %s: %s", c->dir, c->io.errmsg);
        rv = consensus_error(rv);
        goto err_after_transport;
    }
    c->io_ready = true;
    consensus_io_guard(c);
    consensus_fsm_init(c);
    c->r = &c->raft;
    rv = raft_init(c->r, &c->io, &c->fsm, cfg->id, c->address);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "raft: init: %s", raft_errmsg(c->r));
        rv = consensus_error(rv);
        goto err_after_io;
    }
    c->raft_ready = true;
    c->r->data = c;
    raft_set_election_timeout(c->r, cfg->election_timeout_ms);
    raft_set_heartbeat_timeout(c->r, cfg->heartbeat_timeout_ms);
    c->compact_first = cfg->compact_first;
    raft_set_snapshot_threshold(c->r, c->compact_first ? 1 : cfg->snapshot_threshold);
    raft_set_snapshot_trailing(c->r, c->compact_first ? 0 : cfg->snapshot_trailing);
    /* Without pre-vote the survivors of a leader crash often split their
     * votes; with it a partitioned node cannot disrupt the cluster when it
     * comes back. */
    raft_set_pre_vote(c->r, true);
    *out = c;
    return 0;

err_after_io:
    raft_uv_close(&c->io);
err_after_transport:
    raft_uv_tcp_close(&c->transport);
err_after_alloc:
    free(c);
    assert(rv != 0);
    return rv;
}

int consensus_bootstrap(struct consensus *c, const struct consensus_member *members, size_t n,
                        char *errmsg, size_t errmsg_size)
{
    struct raft_configuration conf;
    int rv;

    raft_configuration_init(&conf);
    for (size_t i = 0; i < n; i++) {
        rv = raft_configuration_add(&conf, members[i].id, members[i].address, members[i].role);
        if (rv != 0) {
            cairn_errmsg_set(errmsg, errmsg_size, "raft: bootstrap member %llu at %s: %s",
                             (unsigned long long)members[i].id, members[i].address,
                             raft_strerror(rv));
            raft_configuration_close(&conf);
            return consensus_error(rv);
        }
    }
    rv = raft_bootstrap(c->r, &conf);
    raft_configuration_close(&conf);
    if (rv == RAFT_CANTBOOTSTRAP) {
        return CAIRN_EEXIST;
    }
    if (rv != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "raft: bootstrap: %s", raft_errmsg(c->r));
        return consensus_error(rv);
    }
    return 0;
}

int consensus_start(struct consensus *c, char *errmsg, size_t errmsg_size)
{
    int rv = raft_start(c->r);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "raft: start at %s: %s", c->address,
                         raft_errmsg(c->r)[0] != '\0' ? raft_errmsg(c->r) : raft_strerror(rv));
        return consensus_error(rv);
    }
    return 0;
}

static void fail_reads(struct read_waiter **list, int status)
{
    struct read_waiter *w = *list;
    *list = NULL;
    while (w != NULL) {
        struct read_waiter *next = w->next;
        w->cb(w->arg, status, 0);
        free(w);
        w = next;
    }
}

static void closed_cb(struct raft *r)
{
    struct consensus *c = r->data;
    raft_uv_close(&c->io);
    raft_uv_tcp_close(&c->transport);
    consensus_io_guard_close(c);
    c->io_ready = false;
    c->transport_ready = false;
    c->raft_ready = false;
    /* raft failed every request with its callback; what is still queued
     * here never reached raft. */
    fail_reads(&c->read_queue, CAIRN_ESHUTDOWN);
    c->read_queue_tail = &c->read_queue;
    if (c->close_cb != NULL) {
        c->close_cb(c->close_arg);
    }
}

void consensus_close(struct consensus *c, void (*cb)(void *arg), void *arg)
{
    assert(!c->closing);
    c->closing = true;
    c->close_cb = cb;
    c->close_arg = arg;
    /* raft_close fails every request in flight (applies, barriers, the
     * membership change, the transfer) through its callback. */
    raft_close(c->r, closed_cb);
}

const char *consensus_state_name(int state)
{
    switch (state) {
        case CONSENSUS_LEADER:
            return "leader";
        case CONSENSUS_FOLLOWER:
            return "follower";
        case CONSENSUS_CANDIDATE:
            return "candidate";
        default:
            return "unavailable";
    }
}

void consensus_destroy(struct consensus *c)
{
    if (c == NULL) {
        return;
    }
    assert(!c->raft_ready);
    assert(c->pending == NULL);
    free(c);
}

static void be32_put(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static size_t be32_get(const uint8_t *p)
{
    return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | (size_t)p[3];
}

/* A zeroed frame of framing version for a payload of len bytes; the
 * payload starts CONSENSUS_ENTRY_HEADER bytes in. */
static int frame_alloc(uint8_t version, size_t len, struct raft_buffer *out)
{
    size_t padded = CONSENSUS_ENTRY_HEADER + ((len + 7) & ~(size_t)7);
    uint8_t *p;
    if (len > UINT32_MAX) {
        return CAIRN_ETOOBIG;
    }
    p = raft_malloc(padded);
    if (p == NULL) {
        return CAIRN_ENOMEM;
    }
    memset(p, 0, padded);
    p[0] = 'C';
    p[1] = 'E';
    p[2] = version;
    be32_put(p + 4, len);
    out->base = p;
    out->len = padded;
    return 0;
}

int consensus_entry_encode(const void *payload, size_t len, struct raft_buffer *out)
{
    int rv = frame_alloc(1, len, out);
    if (rv == 0) {
        memcpy((uint8_t *)out->base + CONSENSUS_ENTRY_HEADER, payload, len);
    }
    return rv;
}

int consensus_entry_encode_batch(const struct consensus_cmd *cmds, size_t n,
                                 struct raft_buffer *out)
{
    size_t len = 4;
    uint8_t *p;
    int rv;
    if (n == 0 || n > STORE_BATCH_MAX) {
        return CAIRN_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].len > UINT32_MAX) {
            return CAIRN_ETOOBIG;
        }
        len += 4 + cmds[i].len;
    }
    rv = frame_alloc(2, len, out);
    if (rv != 0) {
        return rv;
    }
    p = (uint8_t *)out->base + CONSENSUS_ENTRY_HEADER;
    be32_put(p, n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        be32_put(p, cmds[i].len);
        memcpy(p + 4, cmds[i].buf, cmds[i].len);
        p += 4 + cmds[i].len;
    }
    return 0;
}

int consensus_entry_decode(const struct raft_buffer *buf, struct store_slice *cmds, size_t *n,
                           bool *batched)
{
    const uint8_t *p = buf->base;
    size_t len;
    size_t count;
    if (buf->len < CONSENSUS_ENTRY_HEADER || p[0] != 'C' || p[1] != 'E' || p[2] == 0) {
        return CAIRN_EMALFORMED;
    }
    if (p[2] > 2) {
        return CAIRN_EUNSUPPORTED;
    }
    *batched = p[2] == 2;
    len = be32_get(p + 4);
    if (len > buf->len - CONSENSUS_ENTRY_HEADER) {
        return CAIRN_EMALFORMED;
    }
    p += CONSENSUS_ENTRY_HEADER;
    if (!*batched) {
        cmds[0].buf = p;
        cmds[0].len = len;
        *n = 1;
        return 0;
    }
    if (len < 4) {
        return CAIRN_EMALFORMED;
    }
    count = be32_get(p);
    p += 4;
    len -= 4;
    if (count == 0 || count > STORE_BATCH_MAX) {
        return CAIRN_EMALFORMED;
    }
    for (size_t i = 0; i < count; i++) {
        size_t one;
        if (len < 4 || (one = be32_get(p)) > len - 4) {
            return CAIRN_EMALFORMED;
        }
        cmds[i].buf = p + 4;
        cmds[i].len = one;
        p += 4 + one;
        len -= 4 + one;
    }
    if (len != 0) {
        return CAIRN_EMALFORMED;
    }
    *n = count;
    return 0;
}

struct proposal *consensus_pending_find(struct consensus *c, uint64_t index)
{
    /* Oldest first: entries are applied in order, so the first usually is. */
    for (struct proposal *p = c->pending; p != NULL; p = p->next) {
        if (p->req.index == index) {
            return p;
        }
    }
    return NULL;
}

static void pending_remove(struct consensus *c, struct proposal *p)
{
    if (p->prev != NULL) {
        p->prev->next = p->next;
    } else {
        c->pending = p->next;
    }
    if (p->next != NULL) {
        p->next->prev = p->prev;
    } else {
        c->pending_tail = p->prev;
    }
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct proposal *p = req->data;
    struct consensus *c = p->c;
    int rv = consensus_error(status);
    (void)result;
    pending_remove(c, p);
    for (size_t i = 0; i < p->n; i++) {
        struct proposal_cmd *cmd = &p->cmds[i];
        /* Applied but the store skipped it: cannot happen for an entry
         * proposed in this process, whose index is above the stored one. */
        int one = rv == 0 && !cmd->have_result ? CAIRN_ECORRUPT : rv;
        cmd->cb(cmd->arg, one, p->req.index, one == 0 ? &cmd->result : NULL);
    }
    free(p);
}

int consensus_apply_entry(struct consensus *c, struct raft_buffer *entry,
                          const struct consensus_cmd *cmds, size_t n)
{
    struct proposal *p;
    int rv;

    rv = c->closing ? CAIRN_ESHUTDOWN : raft_state(c->r) != RAFT_LEADER ? CAIRN_ENOTLEADER : 0;
    p = rv == 0 ? calloc(1, sizeof *p + n * sizeof p->cmds[0]) : NULL;
    if (p == NULL) {
        raft_free(entry->base);
        return rv != 0 ? rv : CAIRN_ENOMEM;
    }
    p->c = c;
    p->n = n;
    for (size_t i = 0; i < n; i++) {
        p->cmds[i].cb = cmds[i].cb;
        p->cmds[i].arg = cmds[i].arg;
    }
    p->req.data = p;
    rv = raft_apply(c->r, &p->req, entry, 1, apply_cb);
    if (rv != 0) {
        CAIRN_WARN("msg=\"raft apply failed\" error=\"%s\" detail=\"%s\"", raft_strerror(rv),
                   raft_errmsg(c->r));
        free(p);
        return consensus_error(rv);
    }
    p->prev = c->pending_tail;
    if (c->pending_tail != NULL) {
        c->pending_tail->next = p;
    } else {
        c->pending = p;
    }
    c->pending_tail = p;
    return 0;
}

int consensus_apply(struct consensus *c, const void *buf, size_t len, consensus_apply_cb cb,
                    void *arg)
{
    struct consensus_cmd cmd = {buf, len, cb, arg};
    struct raft_buffer entry;
    int rv = consensus_entry_encode(buf, len, &entry);
    if (rv != 0) {
        return rv;
    }
    return consensus_apply_entry(c, &entry, &cmd, 1);
}

int consensus_apply_batch(struct consensus *c, const struct consensus_cmd *cmds, size_t n)
{
    struct raft_buffer entry;
    int rv = consensus_entry_encode_batch(cmds, n, &entry);
    if (rv != 0) {
        return rv;
    }
    return consensus_apply_entry(c, &entry, cmds, n);
}

static void barrier_start(struct consensus *c);

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct consensus *c = req->data;
    struct read_waiter *w = c->read_inflight;
    int rv = consensus_error(status);
    /* Everything committed before the barrier is applied once the barrier
     * itself is: the applied index is a linearizable read point for every
     * caller that queued before the barrier was proposed. */
    uint64_t index = raft_last_applied(c->r);

    c->read_inflight = NULL;
    c->barrier_inflight = false;
    while (w != NULL) {
        struct read_waiter *next = w->next;
        w->cb(w->arg, rv, rv == 0 ? index : 0);
        free(w);
        w = next;
    }
    if (!c->closing && c->read_queue != NULL) {
        barrier_start(c);
    }
}

static void barrier_start(struct consensus *c)
{
    int rv;
    assert(!c->barrier_inflight);
    c->read_inflight = c->read_queue;
    c->read_queue = NULL;
    c->read_queue_tail = &c->read_queue;
    c->barrier.data = c;
    rv = raft_barrier(c->r, &c->barrier, barrier_cb);
    if (rv != 0) {
        fail_reads(&c->read_inflight, consensus_error(rv));
        return;
    }
    c->barrier_inflight = true;
}

int consensus_barrier(struct consensus *c, consensus_index_cb cb, void *arg)
{
    struct read_waiter *w;
    if (c->closing) {
        return CAIRN_ESHUTDOWN;
    }
    if (raft_state(c->r) != RAFT_LEADER) {
        return CAIRN_ENOTLEADER;
    }
    w = calloc(1, sizeof *w);
    if (w == NULL) {
        return CAIRN_ENOMEM;
    }
    w->cb = cb;
    w->arg = arg;
    *c->read_queue_tail = w;
    c->read_queue_tail = &w->next;
    if (!c->barrier_inflight) {
        barrier_start(c);
    }
    return 0;
}

static void nudge_barrier(struct consensus *c);

/* True if an entry was appended since the latest nudge: it is sent with a
 * commit index at least as high as the one nudged for. */
static bool nudge_carried(struct consensus *c)
{
    return raft_last_index(c->r) > c->nudge_last;
}

static void nudge_cb(struct raft_barrier *req, int status)
{
    struct consensus *c = req->data;
    (void)status;
    c->nudge_inflight = false;
    if (c->nudge_again) {
        c->nudge_again = false;
        if (!c->closing && raft_state(c->r) == RAFT_LEADER && !nudge_carried(c)) {
            nudge_barrier(c);
        }
    }
}

/* The barrier; or, with one in flight (it went out before the commit
 * nudged for), another once it is done unless an entry was appended
 * meanwhile. Dropping the nudge instead, as before, left a follower's
 * write waiting for the next heartbeat whenever a barrier was in flight. */
static void nudge_barrier(struct consensus *c)
{
    if (c->nudge_inflight) {
        c->nudge_again = true;
        return;
    }
    c->nudge.data = c;
    if (raft_barrier(c->r, &c->nudge, nudge_cb) == 0) {
        c->nudge_inflight = true;
    }
}

void consensus_nudge(struct consensus *c)
{
    if (c->closing || raft_state(c->r) != RAFT_LEADER) {
        return;
    }
    c->nudge_last = raft_last_index(c->r);
    nudge_barrier(c);
}

void consensus_status(struct consensus *c, struct consensus_status *out)
{
    const char *address;
    raft_id leader = 0;
    const struct raft_configuration *conf = &c->r->configuration;

    memset(out, 0, sizeof *out);
    switch (raft_state(c->r)) {
        case RAFT_LEADER:
            out->state = CONSENSUS_LEADER;
            break;
        case RAFT_CANDIDATE:
            out->state = CONSENSUS_CANDIDATE;
            break;
        case RAFT_FOLLOWER:
            out->state = CONSENSUS_FOLLOWER;
            break;
        default:
            out->state = CONSENSUS_UNAVAILABLE;
            break;
    }
    out->term = raft_current_term(c->r);
    out->commit_index = raft_commit_index(c->r);
    out->applied_index = raft_last_applied(c->r);
    out->last_index = raft_last_index(c->r);
    raft_leader(c->r, &leader, &address);
    out->leader_id = leader;
    out->config_index = c->r->configuration_uncommitted_index != 0
                            ? c->r->configuration_uncommitted_index
                            : c->r->configuration_committed_index;
    for (unsigned i = 0; i < conf->n && out->n_members < CONSENSUS_MAX_MEMBERS; i++) {
        struct consensus_member *m = &out->members[out->n_members++];
        m->id = conf->servers[i].id;
        snprintf(m->address, sizeof m->address, "%s", conf->servers[i].address);
        m->role = conf->servers[i].role;
    }
}
