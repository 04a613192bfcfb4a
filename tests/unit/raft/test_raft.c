/*
 * Unit tests of raft/ on libraft's raft_fixture: deterministic in-memory
 * clusters (simulated time, network and disk) whose servers each run the
 * real store-backed FSM of fsm.c and the proposal, barrier and membership
 * code of consensus.c and membership.c on a real store in a temp dir.
 * The packing of snapshots on a worker (io.c) needs libraft's uv io: those
 * tests run one node on 127.0.0.1 (node1_setup).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <raft/fixture.h>

#include "consensus_int.h"
#include "store_int.h"

#define MAX_SERVERS 5

struct server {
    struct consensus c;
    struct store *store;
    char dir[64];
};

struct cluster {
    struct raft_fixture f;
    struct server s[MAX_SERVERS];
    unsigned n;
};

/* What a proposal's or a barrier's callback saw. */
struct outcome {
    bool fired;
    int status;
    uint64_t index;
    struct store_result res;
    char message[256];
};

static void fatal_cb(void *arg, const char *message)
{
    (void)arg;
    fail_msg("fatal: %s", message);
}

static void apply_cb(void *arg, int status, uint64_t index, const struct store_result *res)
{
    struct outcome *o = arg;
    assert_false(o->fired);
    o->fired = true;
    o->status = status;
    o->index = index;
    if (res != NULL) {
        o->res = *res;
    }
}

static void index_cb(void *arg, int status, uint64_t index)
{
    struct outcome *o = arg;
    assert_false(o->fired);
    o->fired = true;
    o->status = status;
    o->index = index;
}

static void done_cb(void *arg, int status, const char *message)
{
    struct outcome *o = arg;
    assert_false(o->fired);
    o->fired = true;
    o->status = status;
    snprintf(o->message, sizeof o->message, "%s", message != NULL ? message : "");
}

/* Adds server i (not started) with a fresh store. */
static void server_grow(struct cluster *cl)
{
    struct server *s = &cl->s[cl->n];
    char err[CAIRN_ERRMSG_SIZE];
    snprintf(s->dir, sizeof s->dir, "/tmp/cairn-test-raft-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    assert_int_equal(store_open(s->dir, &s->store, err, sizeof err), 0);
    memset(&s->c, 0, sizeof s->c);
    s->c.store = s->store;
    s->c.cfg.fatal_cb = fatal_cb;
    s->c.read_queue_tail = &s->c.read_queue;
    consensus_fsm_init(&s->c);
    assert_int_equal(raft_fixture_grow(&cl->f, &s->c.fsm), 0);
    s->c.r = raft_fixture_get(&cl->f, cl->n);
    cl->n++;
}

static int setup(void **state)
{
    struct cluster *cl = calloc(1, sizeof *cl);
    struct raft_configuration conf;
    assert_int_equal(raft_fixture_initialize(&cl->f), 0);
    for (unsigned i = 0; i < 3; i++) {
        server_grow(cl);
    }
    assert_int_equal(raft_fixture_configuration(&cl->f, 3, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&cl->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&cl->f), 0);
    assert_true(raft_fixture_step_until_has_leader(&cl->f, 10000));
    *state = cl;
    return 0;
}

static int teardown(void **state)
{
    struct cluster *cl = *state;
    char cmd[128];
    raft_fixture_close(&cl->f);
    for (unsigned i = 0; i < cl->n; i++) {
        store_destroy(cl->s[i].store);
        snprintf(cmd, sizeof cmd, "rm -rf %s", cl->s[i].dir);
        assert_int_equal(system(cmd), 0);
    }
    free(cl);
    return 0;
}

static struct consensus *leader(struct cluster *cl)
{
    unsigned i = raft_fixture_leader_index(&cl->f);
    assert_true(i < cl->n);
    return &cl->s[i].c;
}

static unsigned follower_index(struct cluster *cl)
{
    unsigned l = raft_fixture_leader_index(&cl->f);
    return l == 0 ? 1 : 0;
}

/* Encodes a tenant command. */
static void tenant_cmd(enum store_op op, const char *id, const char *name, void **buf, size_t *len)
{
    char body[128];
    struct store_command cmd = {.version = STORE_COMMAND_VERSION,
                                .op = op,
                                .kind = STORE_KIND_TENANT,
                                .id = id,
                                .name = name,
                                .time_ms = 1700000000000};
    if (name != NULL) {
        snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
        cmd.body = body;
        cmd.body_len = strlen(body);
    }
    assert_int_equal(store_command_encode(&cmd, buf, len), 0);
}

static int propose(struct consensus *c, enum store_op op, const char *id, const char *name,
                   struct outcome *o)
{
    void *buf;
    size_t len;
    int rv;
    tenant_cmd(op, id, name, &buf, &len);
    rv = consensus_apply(c, buf, len, apply_cb, o);
    free(buf);
    return rv;
}

static void step_until_fired(struct cluster *cl, struct outcome *o)
{
    for (unsigned i = 0; i < 100000 && !o->fired; i++) {
        raft_fixture_step(&cl->f);
    }
    assert_true(o->fired);
}

static void step_until_all_applied(struct cluster *cl, uint64_t index)
{
    assert_true(raft_fixture_step_until_applied(&cl->f, cl->n, index, 20000));
}

/* A proposal is applied on every server and its own result reaches it. */
static void test_apply_replicates(void **state)
{
    struct cluster *cl = *state;
    struct outcome o = {0};
    struct store_object obj;

    assert_int_equal(propose(leader(cl), STORE_OP_CREATE, "t1", "acme", &o), 0);
    step_until_fired(cl, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.res.status, 0);
    assert_int_equal(o.res.mod_rev, 1);
    assert_string_equal(o.res.id, "t1");
    step_until_all_applied(cl, o.index);
    for (unsigned i = 0; i < cl->n; i++) {
        assert_int_equal(store_object_get(cl->s[i].store, STORE_KIND_TENANT, "t1", &obj), 0);
        assert_string_equal(obj.name, "acme");
        assert_int_equal(obj.mod_rev, 1);
        store_object_release(&obj);
        assert_int_equal(store_revision(cl->s[i].store), 1);
    }
}

static void test_apply_on_follower_refused(void **state)
{
    struct cluster *cl = *state;
    struct outcome o = {0};
    struct consensus *f = &cl->s[follower_index(cl)].c;
    assert_int_equal(propose(f, STORE_OP_CREATE, "t1", "acme", &o), CAIRN_ENOTLEADER);
    assert_int_equal(consensus_barrier(f, index_cb, &o), CAIRN_ENOTLEADER);
    assert_false(o.fired);
}

/* Callbacks fire in a batch after several entries were applied: each
 * proposal must still get the result of its own entry. */
static void test_results_matched_by_index(void **state)
{
    struct cluster *cl = *state;
    struct consensus *l = leader(cl);
    struct outcome a = {0}, dup = {0}, missing = {0}, b = {0};

    assert_int_equal(propose(l, STORE_OP_CREATE, "t1", "acme", &a), 0);
    assert_int_equal(propose(l, STORE_OP_CREATE, "t2", "acme", &dup), 0);
    assert_int_equal(propose(l, STORE_OP_UPDATE, "t9", "nine", &missing), 0);
    assert_int_equal(propose(l, STORE_OP_CREATE, "t3", "beta", &b), 0);
    step_until_fired(cl, &b);
    step_until_fired(cl, &a);
    step_until_fired(cl, &dup);
    step_until_fired(cl, &missing);
    assert_int_equal(a.res.status, 0);
    assert_int_equal(dup.res.status, CAIRN_EEXIST);
    assert_int_equal(missing.res.status, CAIRN_ENOTFOUND);
    assert_int_equal(b.res.status, 0);
    assert_int_equal(b.res.mod_rev, 2);
    assert_true(a.index < dup.index && dup.index < missing.index && missing.index < b.index);
    assert_null(l->pending);
}

/* Read-index requests that arrive while a barrier is in flight wait for the
 * next barrier (one proposed after they arrived, as linearizability
 * requires), and all of them share that one barrier. */
static void test_barrier_batches(void **state)
{
    struct cluster *cl = *state;
    struct consensus *l = leader(cl);
    struct outcome w = {0}, r1 = {0}, r2 = {0}, r3 = {0};

    assert_int_equal(propose(l, STORE_OP_CREATE, "t1", "acme", &w), 0);
    assert_int_equal(consensus_barrier(l, index_cb, &r1), 0);
    assert_true(l->barrier_inflight);
    assert_non_null(l->read_inflight);
    assert_int_equal(consensus_barrier(l, index_cb, &r2), 0);
    assert_int_equal(consensus_barrier(l, index_cb, &r3), 0);
    assert_non_null(l->read_queue); /* queued for the next barrier */
    step_until_fired(cl, &r1);
    assert_false(r2.fired);
    assert_int_equal(r1.status, 0);
    assert_true(w.fired);
    assert_true(r1.index > w.index);
    assert_true(l->barrier_inflight); /* the next one started at once */
    assert_null(l->read_queue);
    step_until_fired(cl, &r2);
    assert_true(r3.fired);
    assert_int_equal(r2.status, 0);
    assert_int_equal(r2.index, r3.index);
    assert_true(r2.index > r1.index);
    assert_false(l->barrier_inflight);
}

/* A proposal whose leader is deposed before commit fails with
 * CAIRN_ENOTLEADER (the caller retries with the same request id). */
static void test_leadership_lost(void **state)
{
    struct cluster *cl = *state;
    unsigned li = raft_fixture_leader_index(&cl->f);
    struct outcome o = {0}, r = {0};

    for (unsigned i = 0; i < cl->n; i++) {
        if (i != li) {
            raft_fixture_disconnect(&cl->f, li, i);
        }
    }
    assert_int_equal(propose(&cl->s[li].c, STORE_OP_CREATE, "t1", "acme", &o), 0);
    assert_int_equal(consensus_barrier(&cl->s[li].c, index_cb, &r), 0);
    step_until_fired(cl, &o);
    step_until_fired(cl, &r);
    assert_int_equal(o.status, CAIRN_ENOTLEADER);
    assert_int_equal(r.status, CAIRN_ENOTLEADER);
    assert_null(cl->s[li].c.pending);
}

/* Creates tenants t00..t(n-1) through server li, one committed after the
 * other. */
static void create_tenants(struct cluster *cl, unsigned li, struct outcome *o, unsigned n)
{
    char id[16], name[16];
    for (unsigned i = 0; i < n; i++) {
        memset(&o[i], 0, sizeof o[i]);
        snprintf(id, sizeof id, "t%02u", i);
        snprintf(name, sizeof name, "n%02u", i);
        assert_int_equal(propose(&cl->s[li].c, STORE_OP_CREATE, id, name, &o[i]), 0);
        step_until_fired(cl, &o[i]);
        assert_int_equal(o[i].res.status, 0);
    }
}

/* A follower that missed entries compacted away catches up by installing a
 * snapshot: a packed RocksDB checkpoint restored into its store. */
static void test_snapshot_install(void **state)
{
    struct cluster *cl = *state;
    unsigned li = raft_fixture_leader_index(&cl->f);
    unsigned lag = (li + 1) % cl->n;
    struct outcome o[20];
    struct store_list list;

    for (unsigned i = 0; i < cl->n; i++) {
        raft_set_snapshot_threshold(cl->s[i].c.r, 4);
        raft_set_snapshot_trailing(cl->s[i].c.r, 1);
    }
    raft_fixture_kill(&cl->f, lag);
    create_tenants(cl, li, o, 20);
    raft_fixture_revive(&cl->f, lag);
    step_until_all_applied(cl, o[19].index);
    assert_true(raft_fixture_n_recv(&cl->f, lag, RAFT_INSTALL_SNAPSHOT) > 0);
    assert_int_equal(store_object_list(cl->s[lag].store, STORE_KIND_TENANT, NULL, 100, &list), 0);
    assert_int_equal(list.n, 20);
    assert_int_equal(list.revision, 20);
    store_list_release(&list);
    assert_int_equal(store_revision(cl->s[lag].store), store_revision(cl->s[li].store));
}

/* Snapshots by the log's size: with a threshold of 1,000 entries, a log
 * of more than 256 bytes (12 small creates are about 770) is compacted
 * after a few entries, and the threshold is back afterwards; without a
 * size limit nothing is. */
static void test_snapshot_by_log_bytes(void **state)
{
    struct cluster *cl = *state;
    unsigned li = raft_fixture_leader_index(&cl->f);
    struct outcome o[12];

    for (unsigned i = 0; i < cl->n; i++) {
        cl->s[i].c.cfg.snapshot_threshold = 1000;
        cl->s[i].c.cfg.snapshot_log_bytes = i == li ? 256 : 0;
        cl->s[i].c.flush_ahead_min = 0;
        raft_set_snapshot_threshold(cl->s[i].c.r, 1000);
    }
    create_tenants(cl, li, o, 12);
    step_until_all_applied(cl, o[11].index);
    assert_true(cl->s[li].c.snapshot_index > 0);
    assert_true(cl->s[li].c.snapshot_index <= o[11].index);
    assert_true(cl->s[li].c.log_bytes < 256);
    assert_int_equal(cl->s[li].c.r->legacy.snapshot_threshold, 1000);
    /* The memtables' flush was started ahead of it (at 192 and 240 bytes,
     * unless one entry passed both). */
    assert_true(cl->s[li].c.flushes_ahead >= 1);
    for (unsigned i = 0; i < cl->n; i++) {
        if (i != li) {
            assert_int_equal(cl->s[i].c.snapshot_index, 0);
            assert_true(cl->s[i].c.log_bytes >= 256);
            assert_int_equal(cl->s[i].c.flushes_ahead, 0); /* 12 of 1,000 entries */
        }
    }
}

/* A new server joins as a spare, catches up and becomes a voter. */
static void test_member_add(void **state)
{
    struct cluster *cl = *state;
    struct outcome w = {0}, add = {0}, again = {0};
    struct consensus *l = leader(cl);
    struct consensus_status st;
    struct store_object obj;

    assert_int_equal(propose(l, STORE_OP_CREATE, "t1", "acme", &w), 0);
    step_until_fired(cl, &w);
    server_grow(cl);
    assert_int_equal(raft_start(cl->s[3].c.r), 0);
    assert_int_equal(consensus_member_add(l, 4, "4", done_cb, &add), 0);
    assert_int_equal(consensus_member_add(l, 5, "5", done_cb, &again), CAIRN_EBUSY);
    step_until_fired(cl, &add);
    assert_int_equal(add.status, 0);
    consensus_status(l, &st);
    assert_int_equal(st.n_members, 4);
    assert_int_equal(st.members[3].id, 4);
    assert_int_equal(st.members[3].role, CONSENSUS_VOTER);
    step_until_all_applied(cl, w.index);
    assert_int_equal(store_object_get(cl->s[3].store, STORE_KIND_TENANT, "t1", &obj), 0);
    store_object_release(&obj);
    memset(&again, 0, sizeof again);
    assert_int_equal(consensus_member_add(l, 4, "4", done_cb, &again), CAIRN_EEXIST);
}

/* Removal: unknown ids are refused, and so is removing the last voter. */
static void test_member_remove(void **state)
{
    struct cluster *cl = *state;
    struct consensus *l = leader(cl);
    struct outcome o = {0};
    struct consensus_status st;
    uint64_t self = cl->s[raft_fixture_leader_index(&cl->f)].c.r->id;

    assert_int_equal(consensus_member_remove(l, 42, done_cb, &o), CAIRN_ENOTFOUND);
    for (uint64_t id = 1; id <= 3; id++) {
        if (id == self) {
            continue;
        }
        memset(&o, 0, sizeof o);
        assert_int_equal(consensus_member_remove(l, id, done_cb, &o), 0);
        step_until_fired(cl, &o);
        assert_int_equal(o.status, 0);
    }
    consensus_status(l, &st);
    assert_int_equal(st.n_members, 1);
    assert_int_equal(consensus_member_remove(l, self, done_cb, &o), CAIRN_ECONFLICT);
}

/* Leadership moves to the chosen voter; no membership change may overlap a
 * transfer in flight. */
static void test_transfer(void **state)
{
    struct cluster *cl = *state;
    unsigned li = raft_fixture_leader_index(&cl->f);
    unsigned target = (li + 1) % cl->n;
    struct consensus *l = &cl->s[li].c;
    struct outcome t = {0}, busy = {0}, w = {0};
    struct consensus_status st;

    assert_int_equal(consensus_transfer(l, target + 1, done_cb, &t), 0);
    assert_int_equal(consensus_member_remove(l, target + 1, done_cb, &busy), CAIRN_EBUSY);
    assert_int_equal(consensus_transfer(l, target + 1, done_cb, &busy), CAIRN_EBUSY);
    step_until_fired(cl, &t);
    assert_int_equal(t.status, 0);
    assert_true(raft_fixture_step_until_has_leader(&cl->f, 10000));
    assert_int_equal(raft_fixture_leader_index(&cl->f), target);
    consensus_status(&cl->s[target].c, &st);
    assert_int_equal(st.state, CONSENSUS_LEADER);
    assert_int_equal(consensus_transfer(&cl->s[li].c, 0, done_cb, &busy), CAIRN_ENOTLEADER);
    /* The new leader serves writes. */
    assert_int_equal(propose(&cl->s[target].c, STORE_OP_CREATE, "t1", "acme", &w), 0);
    step_until_fired(cl, &w);
    assert_int_equal(w.res.status, 0);
    assert_false(busy.fired);
}

/* After a nudge the followers learn the commit of an entry within a round
 * trip instead of the leader's next heartbeat (simulated time, so the
 * comparison is deterministic). */
static void test_nudge(void **state)
{
    struct cluster *cl = *state;
    unsigned li = raft_fixture_leader_index(&cl->f);
    unsigned fi = follower_index(cl);
    struct consensus *l = &cl->s[li].c;
    struct outcome w = {0};
    raft_time start;

    for (unsigned i = 0; i < cl->n; i++) {
        raft_set_heartbeat_timeout(cl->s[i].c.r, 450);
    }
    assert_int_equal(propose(l, STORE_OP_CREATE, "t1", "acme", &w), 0);
    step_until_fired(cl, &w);
    assert_true(raft_last_applied(cl->s[fi].c.r) < w.index);
    start = raft_fixture_time(&cl->f);
    consensus_nudge(l);
    assert_true(l->nudge_inflight);
    assert_true(raft_fixture_step_until_applied(&cl->f, fi, w.index, 1000));
    /* Network 15 ms and disk 10 ms per hop in the fixture: well under the
     * 450 ms heartbeat. */
    assert_true(raft_fixture_time(&cl->f) - start < 200);
    consensus_nudge(&cl->s[fi].c); /* a no-op on a follower */
    assert_false(cl->s[fi].c.nudge_inflight);
}

static bool nudge_idle(struct raft_fixture *f, void *arg)
{
    const struct consensus *c = arg;
    (void)f;
    return !c->nudge_inflight;
}

static bool log_grew(struct raft_fixture *f, void *arg)
{
    const struct consensus *c = arg;
    (void)f;
    return raft_last_index(c->r) > c->nudge_last;
}

/* A nudge while a barrier is in flight (that barrier went out before the
 * commit nudged for) gets one more barrier once it is done; unless an
 * entry was appended meanwhile, whose replication carries the commit
 * index by itself. */
static void test_nudge_again(void **state)
{
    struct cluster *cl = *state;
    unsigned li = raft_fixture_leader_index(&cl->f);
    struct consensus *l = &cl->s[li].c;
    struct outcome w1 = {0}, w2 = {0};
    raft_index last;

    for (unsigned i = 0; i < cl->n; i++) {
        raft_set_heartbeat_timeout(cl->s[i].c.r, 450);
    }
    /* 1. Nothing appended meanwhile: a second barrier. */
    assert_int_equal(propose(l, STORE_OP_CREATE, "t1", "acme", &w1), 0);
    step_until_fired(cl, &w1);
    consensus_nudge(l);
    assert_true(l->nudge_inflight);
    last = raft_last_index(l->r);
    consensus_nudge(l);
    assert_true(l->nudge_again);
    assert_true(raft_fixture_step_until(&cl->f, log_grew, l, 1000));
    assert_int_equal(raft_last_index(l->r), last + 1);
    assert_true(l->nudge_inflight);
    assert_false(l->nudge_again);
    assert_true(raft_fixture_step_until(&cl->f, nudge_idle, l, 1000));
    /* 2. An entry appended meanwhile: no second barrier. */
    consensus_nudge(l);
    consensus_nudge(l);
    assert_true(l->nudge_again);
    assert_int_equal(propose(l, STORE_OP_CREATE, "t2", "bolt", &w2), 0);
    last = raft_last_index(l->r);
    step_until_fired(cl, &w2);
    assert_true(raft_fixture_step_until(&cl->f, nudge_idle, l, 1000));
    assert_false(l->nudge_again);
    assert_int_equal(raft_last_index(l->r), last);
}

/* Entries are framed to a multiple of 8 bytes; a bad frame is refused. */
static void test_entry_framing(void **state)
{
    struct raft_buffer buf;
    struct store_slice got[STORE_BATCH_MAX];
    size_t n_got;
    bool batched;
    (void)state;
    for (size_t n = 0; n < 20; n++) {
        char data[20];
        memset(data, 'a' + (int)n, n);
        assert_int_equal(consensus_entry_encode(data, n, &buf), 0);
        assert_int_equal(buf.len % 8, 0);
        assert_true(buf.len >= n + CONSENSUS_ENTRY_HEADER);
        assert_int_equal(consensus_entry_decode(&buf, got, &n_got, &batched), 0);
        assert_false(batched);
        assert_int_equal(n_got, 1);
        assert_int_equal(got[0].len, n);
        assert_memory_equal(got[0].buf, data, n);
        /* A frame cut short, or of framing 0, is malformed; a framing
         * newer than 2 is unsupported (the node must stop, not skip it). */
        buf.len = CONSENSUS_ENTRY_HEADER - 1;
        assert_int_equal(consensus_entry_decode(&buf, got, &n_got, &batched), CAIRN_EMALFORMED);
        if (n > 0) {
            buf.len = CONSENSUS_ENTRY_HEADER + n - 1;
            assert_int_equal(consensus_entry_decode(&buf, got, &n_got, &batched), CAIRN_EMALFORMED);
        }
        buf.len = CONSENSUS_ENTRY_HEADER + n;
        ((char *)buf.base)[2] = 0;
        assert_int_equal(consensus_entry_decode(&buf, got, &n_got, &batched), CAIRN_EMALFORMED);
        ((char *)buf.base)[2] = 3;
        assert_int_equal(consensus_entry_decode(&buf, got, &n_got, &batched), CAIRN_EUNSUPPORTED);
        raft_free(buf.base);
    }
}

/* A batch frame carries its commands in order, each with its length; a
 * count or a length that does not add up to the frame is refused. */
static void test_batch_framing(void **state)
{
    struct consensus_cmd cmds[STORE_BATCH_MAX + 1];
    char data[STORE_BATCH_MAX + 1][8];
    struct store_slice got[STORE_BATCH_MAX];
    struct raft_buffer buf;
    size_t n_got;
    bool batched;
    uint8_t *p;
    (void)state;
    for (size_t i = 0; i <= STORE_BATCH_MAX; i++) {
        snprintf(data[i], sizeof data[i], "c%zu", i);
        cmds[i].buf = data[i];
        cmds[i].len = strlen(data[i]) + (i % 2); /* with and without the NUL */
    }
    for (size_t n = 1; n <= STORE_BATCH_MAX; n += 21) {
        assert_int_equal(consensus_entry_encode_batch(cmds, n, &buf), 0);
        assert_int_equal(buf.len % 8, 0);
        assert_int_equal(consensus_entry_decode(&buf, got, &n_got, &batched), 0);
        assert_true(batched);
        assert_int_equal(n_got, n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(got[i].len, cmds[i].len);
            assert_memory_equal(got[i].buf, cmds[i].buf, cmds[i].len);
        }
        p = (uint8_t *)buf.base + CONSENSUS_ENTRY_HEADER;
        p[3]++; /* one command more than it holds */
        assert_int_equal(consensus_entry_decode(&buf, got, &n_got, &batched), CAIRN_EMALFORMED);
        p[3] = 0; /* none */
        assert_int_equal(consensus_entry_decode(&buf, got, &n_got, &batched), CAIRN_EMALFORMED);
        p[3] = (uint8_t)n;
        p[7]++; /* the first command longer than it is */
        assert_int_equal(consensus_entry_decode(&buf, got, &n_got, &batched), CAIRN_EMALFORMED);
        raft_free(buf.base);
    }
    assert_int_equal(consensus_entry_encode_batch(cmds, 0, &buf), CAIRN_EINVAL);
    assert_int_equal(consensus_entry_encode_batch(cmds, STORE_BATCH_MAX + 1, &buf), CAIRN_EINVAL);
}

/* A batch is one entry: every command is applied on every server in
 * order, each with its own result (a refusal among them refuses only
 * that command), and each callback fires once with the entry's index. */
static void test_apply_batch(void **state)
{
    struct cluster *cl = *state;
    struct consensus *l = leader(cl);
    struct outcome o[4] = {{0}};
    struct consensus_cmd cmds[4];
    void *bufs[4];
    size_t lens[4];
    struct store_object obj;
    uint64_t before = store_revision(l->store);

    tenant_cmd(STORE_OP_CREATE, "t1", "acme", &bufs[0], &lens[0]);
    tenant_cmd(STORE_OP_CREATE, "t2", "acme", &bufs[1], &lens[1]); /* name taken by t1 */
    tenant_cmd(STORE_OP_UPDATE, "t1", "acme2", &bufs[2], &lens[2]);
    tenant_cmd(STORE_OP_CREATE, "t2", "acme", &bufs[3], &lens[3]); /* free again */
    for (int i = 0; i < 4; i++) {
        cmds[i] = (struct consensus_cmd){bufs[i], lens[i], apply_cb, &o[i]};
    }
    assert_int_equal(consensus_apply_batch(l, cmds, 4), 0);
    for (int i = 0; i < 4; i++) {
        free(bufs[i]);
    }
    for (int i = 0; i < 4; i++) {
        step_until_fired(cl, &o[i]);
        assert_int_equal(o[i].status, 0);
        assert_int_equal(o[i].index, o[0].index);
    }
    assert_int_equal(o[0].res.status, 0);
    assert_int_equal(o[0].res.mod_rev, before + 1);
    assert_int_equal(o[1].res.status, CAIRN_EEXIST);
    assert_int_equal(o[2].res.status, 0);
    assert_int_equal(o[2].res.mod_rev, before + 2);
    assert_int_equal(o[3].res.status, 0);
    assert_int_equal(o[3].res.mod_rev, before + 3);
    assert_string_equal(o[3].res.id, "t2");
    step_until_all_applied(cl, o[0].index);
    for (unsigned i = 0; i < cl->n; i++) {
        assert_int_equal(store_revision(cl->s[i].store), before + 3);
        assert_int_equal(store_object_get(cl->s[i].store, STORE_KIND_TENANT, "t1", &obj), 0);
        assert_string_equal(obj.name, "acme2");
        store_object_release(&obj);
        assert_int_equal(store_object_get(cl->s[i].store, STORE_KIND_TENANT, "t2", &obj), 0);
        assert_string_equal(obj.name, "acme");
        store_object_release(&obj);
    }
    assert_null(l->pending);
}

/* A batch whose leader is cut off fails every one of its commands once. */
static void test_batch_leadership_lost(void **state)
{
    struct cluster *cl = *state;
    unsigned li = raft_fixture_leader_index(&cl->f);
    struct outcome o[3] = {{0}};
    struct consensus_cmd cmds[3];
    void *bufs[3];
    size_t lens[3];
    char id[16];

    for (unsigned i = 0; i < cl->n; i++) {
        if (i != li) {
            raft_fixture_disconnect(&cl->f, li, i);
        }
    }
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "t%d", i);
        tenant_cmd(STORE_OP_CREATE, id, id, &bufs[i], &lens[i]);
        cmds[i] = (struct consensus_cmd){bufs[i], lens[i], apply_cb, &o[i]};
    }
    assert_int_equal(consensus_apply_batch(&cl->s[li].c, cmds, 3), 0);
    for (int i = 0; i < 3; i++) {
        free(bufs[i]);
    }
    for (int i = 0; i < 3; i++) {
        step_until_fired(cl, &o[i]);
        assert_int_equal(o[i].status, CAIRN_ENOTLEADER);
    }
    assert_null(cl->s[li].c.pending);
}

/* An entry that is not a valid frame reaches the store as a malformed
 * command: the index moves, nothing else changes, the proposer is told. */
static void test_garbage_entry(void **state)
{
    struct cluster *cl = *state;
    struct consensus *l = leader(cl);
    struct outcome o = {0};
    struct raft_buffer buf = {.len = 16};

    buf.base = raft_calloc(1, 16);
    memcpy(buf.base, "garbage-garbage", 16);
    struct consensus_cmd cmd = {NULL, 0, apply_cb, &o};
    assert_int_equal(consensus_apply_entry(l, &buf, &cmd, 1), 0);
    step_until_fired(cl, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.res.status, CAIRN_EMALFORMED);
    step_until_all_applied(cl, o.index);
    for (unsigned i = 0; i < cl->n; i++) {
        assert_int_equal(store_revision(cl->s[i].store), 0);
        assert_true(store_applied_index(cl->s[i].store) >= o.index);
    }
}

static void test_error_translation(void **state)
{
    (void)state;
    assert_int_equal(consensus_error(0), 0);
    assert_int_equal(consensus_error(RAFT_NOTLEADER), CAIRN_ENOTLEADER);
    assert_int_equal(consensus_error(RAFT_LEADERSHIPLOST), CAIRN_ENOTLEADER);
    assert_int_equal(consensus_error(RAFT_CANTCHANGE), CAIRN_EBUSY);
    assert_int_equal(consensus_error(RAFT_SHUTDOWN), CAIRN_ESHUTDOWN);
    assert_int_equal(consensus_error(RAFT_IOERR), CAIRN_EIO);
    assert_int_equal(consensus_error(RAFT_NOSPACE), CAIRN_EIO);
}

/*
 * On libraft's real uv io: one voter on 127.0.0.1, whose snapshots of its
 * own are packed on a libuv worker (io.c). A test hook on the worker holds
 * the pack until the test lets it go, or fails it.
 */

struct node1 {
    uv_loop_t loop;
    uv_timer_t tick; /* wakes uv_run every few ms, so that polls see changes */
    struct store *store;
    struct consensus *c;
    char dir[64];
    char raft_dir[128];
    char address[32];
    bool closed;
    /* The hook: */
    atomic_bool entered;  /* the worker is in the hook */
    atomic_bool released; /* the test lets it go on */
    int hook_rv;          /* what it returns once released */
};

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

static int pack_hook(void *arg)
{
    struct node1 *n = arg;
    atomic_store(&n->entered, true);
    /* Bounded: 10 s, then packing goes on anyway (the test fails). */
    for (unsigned i = 0; i < 10000 && !atomic_load(&n->released); i++) {
        usleep(1000);
    }
    return n->hook_rv;
}

/* Runs the loop until cond(arg) or ms pass; returns cond(arg). */
static bool run_until(struct node1 *n, bool (*cond)(struct node1 *), unsigned ms)
{
    uint64_t deadline = cairn_now_ms() + ms;
    while (!cond(n) && cairn_now_ms() < deadline) {
        uv_run(&n->loop, UV_RUN_ONCE);
    }
    return cond(n);
}

static bool is_leader(struct node1 *n)
{
    struct consensus_status st;
    consensus_status(n->c, &st);
    return st.state == CONSENSUS_LEADER;
}

static bool in_hook(struct node1 *n)
{
    return atomic_load(&n->entered);
}

static bool put_done(struct node1 *n)
{
    return n->c->guard.put_req == NULL && !n->c->pack.working;
}

static bool closed(struct node1 *n)
{
    return n->closed;
}

static void node1_closed_cb(void *arg)
{
    ((struct node1 *)arg)->closed = true;
}

/* A free TCP port on 127.0.0.1 (the kernel's choice, released again). */
static unsigned free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int node1_setup(void **state)
{
    struct node1 *n = calloc(1, sizeof *n);
    char err[CAIRN_ERRMSG_SIZE];
    struct consensus_config cfg = {.id = 1,
                                   .election_timeout_ms = 100,
                                   .heartbeat_timeout_ms = 20,
                                   .snapshot_threshold = 8,
                                   .snapshot_trailing = 4,
                                   .fatal_cb = fatal_cb};
    struct consensus_member m = {.id = 1, .role = CONSENSUS_VOTER};

    assert_non_null(n);
    snprintf(n->dir, sizeof n->dir, "/tmp/cairn-test-pack-XXXXXX");
    assert_non_null(mkdtemp(n->dir));
    snprintf(n->raft_dir, sizeof n->raft_dir, "%s/raft", n->dir);
    snprintf(n->address, sizeof n->address, "127.0.0.1:%u", free_port());
    snprintf(m.address, sizeof m.address, "%s", n->address);
    cfg.address = n->address;
    cfg.dir = n->raft_dir;
    assert_int_equal(uv_loop_init(&n->loop), 0);
    assert_int_equal(uv_timer_init(&n->loop, &n->tick), 0);
    assert_int_equal(uv_timer_start(&n->tick, tick_cb, 5, 5), 0);
    assert_int_equal(store_open(n->dir, &n->store, err, sizeof err), 0);
    assert_int_equal(consensus_create(&n->loop, n->store, &cfg, &n->c, err, sizeof err), 0);
    assert_int_equal(consensus_bootstrap(n->c, &m, 1, err, sizeof err), 0);
    assert_int_equal(consensus_start(n->c, err, sizeof err), 0);
    assert_true(run_until(n, is_leader, 10000));
    n->c->pack.hook = pack_hook;
    n->c->pack.hook_arg = n;
    *state = n;
    return 0;
}

static int node1_teardown(void **state)
{
    struct node1 *n = *state;
    char cmd[128];
    atomic_store(&n->released, true);
    if (!n->closed) {
        consensus_close(n->c, node1_closed_cb, n);
        assert_true(run_until(n, closed, 10000));
    }
    consensus_destroy(n->c);
    uv_close((uv_handle_t *)&n->tick, NULL);
    uv_run(&n->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&n->loop), 0);
    store_destroy(n->store);
    snprintf(cmd, sizeof cmd, "rm -rf %s", n->dir);
    assert_int_equal(system(cmd), 0);
    free(n);
    return 0;
}

/* Proposes a tenant create and runs the loop until it is applied. */
static void node1_create(struct node1 *n, unsigned i)
{
    struct outcome o = {0};
    char id[16], name[16];
    snprintf(id, sizeof id, "t%03u", i);
    snprintf(name, sizeof name, "n%03u", i);
    assert_int_equal(propose(n->c, STORE_OP_CREATE, id, name, &o), 0);
    for (uint64_t deadline = cairn_now_ms() + 10000; !o.fired && cairn_now_ms() < deadline;) {
        uv_run(&n->loop, UV_RUN_ONCE);
    }
    assert_true(o.fired);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.res.status, 0);
}

static size_t tenant_count(struct store *s)
{
    struct store_list list;
    size_t count;
    assert_int_equal(store_object_list(s, STORE_KIND_TENANT, NULL, 1000, &list), 0);
    count = list.n;
    store_list_release(&list);
    return count;
}

/* Creates tenants until the worker is in the hook; returns how many. */
static unsigned node1_until_packing(struct node1 *n)
{
    unsigned i = 0;
    while (!atomic_load(&n->entered) && i < 100) {
        node1_create(n, i++);
    }
    assert_true(run_until(n, in_hook, 10000));
    assert_true(n->c->pack.working);
    assert_non_null(n->c->guard.put_req);
    return i;
}

/* The snapshot file libraft wrote at index, read whole, or NULL. */
static void *snapshot_file(struct node1 *n, uint64_t index, size_t *len)
{
    char pattern[256], path[512];
    FILE *ls;
    void *buf = NULL;

    snprintf(pattern, sizeof pattern, "ls %s/snapshot-*-%llu-* 2>/dev/null | grep -v meta",
             n->raft_dir, (unsigned long long)index);
    ls = popen(pattern, "r");
    assert_non_null(ls);
    if (fgets(path, sizeof path, ls) != NULL) {
        FILE *f;
        path[strcspn(path, "\n")] = '\0';
        f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        *len = (size_t)ftell(f);
        rewind(f);
        buf = malloc(*len);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, *len, f), *len);
        fclose(f);
    }
    pclose(ls);
    return buf;
}

/* The snapshot written at index holds the state of that index: restored
 * into a fresh store, it has tenants tenants. */
static void assert_snapshot_of(struct node1 *n, uint64_t index, size_t tenants)
{
    struct store_snap_header h;
    struct store *s;
    char err[CAIRN_ERRMSG_SIZE], dir[64], cmd[128];
    size_t len = 0;
    void *buf = snapshot_file(n, index, &len);

    assert_non_null(buf);
    assert_int_equal(store_snapshot_validate(buf, len, &h, err, sizeof err), 0);
    assert_int_equal(h.index, index);
    snprintf(dir, sizeof dir, "/tmp/cairn-test-unpack-XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(store_open(dir, &s, err, sizeof err), 0);
    assert_int_equal(store_snapshot_restore(s, buf, len, err, sizeof err), 0);
    assert_int_equal(store_applied_index(s), index);
    assert_int_equal(tenant_count(s), tenants);
    store_destroy(s);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(buf);
}

/* While the worker packs, the loop thread goes on: entries proposed then
 * are applied before the pack ends. The snapshot written afterwards holds
 * the state of its own index, not of the entries applied meanwhile. */
static void test_pack_on_worker(void **state)
{
    struct node1 *n = *state;
    unsigned made = node1_until_packing(n);
    uint64_t index = n->c->pack.cp.index;
    size_t before = n->c->pack.cp.revision; /* a create is one revision */
    uint64_t applied;

    for (unsigned i = 0; i < 5; i++) {
        node1_create(n, made + i);
    }
    applied = store_applied_index(n->store);
    assert_true(applied >= index + 5);
    assert_true(n->c->pack.working);
    atomic_store(&n->released, true);
    assert_true(run_until(n, put_done, 10000));
    assert_true(tenant_count(n->store) >= before + 5);
    assert_snapshot_of(n, index, before);
}

/* A pack that fails on the worker is done again on the loop thread. */
static void test_pack_failure_retried(void **state)
{
    struct node1 *n = *state;
    uint64_t index;

    n->hook_rv = -1;
    node1_until_packing(n);
    index = n->c->pack.cp.index;
    atomic_store(&n->released, true);
    assert_true(run_until(n, put_done, 10000));
    assert_snapshot_of(n, index, n->c->pack.cp.revision);
}

/* A close while the worker packs waits for it, cancels the snapshot and
 * removes its checkpoint. */
static void test_close_while_packing(void **state)
{
    struct node1 *n = *state;
    char path[128];
    uint64_t index;
    size_t len;
    struct stat st;

    node1_until_packing(n);
    index = n->c->pack.cp.index;
    consensus_close(n->c, node1_closed_cb, n);
    assert_false(run_until(n, closed, 200));
    atomic_store(&n->released, true);
    assert_true(run_until(n, closed, 10000));
    assert_null(snapshot_file(n, index, &len));
    snprintf(path, sizeof path, "%s/checkpoint-tmp", n->dir);
    assert_int_equal(stat(path, &st), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apply_replicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_on_follower_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_matched_by_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_barrier_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leadership_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_install, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_by_log_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_add, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nudge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nudge_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_leadership_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_on_worker, node1_setup, node1_teardown),
        cmocka_unit_test_setup_teardown(test_pack_failure_retried, node1_setup, node1_teardown),
        cmocka_unit_test_setup_teardown(test_close_while_packing, node1_setup, node1_teardown),
        cmocka_unit_test(test_entry_framing),
        cmocka_unit_test(test_batch_framing),
        cmocka_unit_test(test_error_translation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
