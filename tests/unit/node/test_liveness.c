/*
 * Unit tests of node/liveness.c's per-node half on a real store: installing
 * applied ownership records (refresh: epochs, handoff counts, the owner
 * view) and the census behind GET /api/v1/cluster/ownership (devices per
 * node, movements). The leader's decisions need raft and are covered by
 * tests/integration/test_ownership.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "../../../node/liveness.c"

#define DEVICES 300

struct fix {
    char dir[64];
    struct node n;
    struct liveness l;
    uint64_t index;
};

static void apply(struct fix *f, const struct store_command *cmd)
{
    const struct store_result *res;
    char err[256];
    void *buf;
    size_t len;
    assert_int_equal(store_command_encode(cmd, &buf, &len), 0);
    assert_int_equal(store_apply(f->n.store, ++f->index, buf, len, &res, err, sizeof err), 0);
    free(buf);
    assert_non_null(res);
    assert_int_equal(res->status, 0);
}

static void put_record(struct fix *f, const uint64_t *down, size_t n_down)
{
    struct ring_state s = {.members = {1, 2, 3}, .n_members = 3, .changed_ms = 1};
    struct ring_state cur;
    struct store_command cmd = {.version = STORE_COMMAND_VERSION,
                                .op = STORE_OP_PUT,
                                .kind = STORE_KIND_SYSTEM,
                                .id = RING_STATE_ID,
                                .time_ms = 1};
    char *body;
    if (record_read(&f->n, &cur) == 0) {
        struct ring prev;
        ring_state_live(&cur, &prev);
        memcpy(s.previous, prev.nodes, prev.n * sizeof prev.nodes[0]);
        s.n_previous = prev.n;
    }
    for (size_t i = 0; i < n_down; i++) {
        s.down[s.n_down++] = down[i];
    }
    assert_int_equal(ring_state_format(&s, &body), 0);
    cmd.body = body;
    cmd.body_len = strlen(body);
    apply(f, &cmd);
    free(body);
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    char err[256];
    snprintf(f->dir, sizeof f->dir, "/tmp/cairn-liveness-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(store_open(f->dir, &f->n.store, err, sizeof err), 0);
    f->n.cfg.node_id = 1;
    assert_int_equal(owner_create(1, 60000, 60500, &f->n.owner), 0);
    f->l.n = &f->n;
    for (int i = 0; i < DEVICES; i++) {
        char id[32];
        struct store_command cmd = {.version = STORE_COMMAND_VERSION,
                                    .op = STORE_OP_CREATE,
                                    .kind = STORE_KIND_DEVICE,
                                    .id = id,
                                    .body = "{}",
                                    .body_len = 2,
                                    .time_ms = 1};
        snprintf(id, sizeof id, "dev-%03d", i);
        apply(f, &cmd);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    char cmd[128];
    store_destroy(f->n.store);
    owner_destroy(f->n.owner);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* How many of the devices node id owns among the live nodes. */
static uint64_t owned_by(const uint64_t *live, size_t n, uint64_t id)
{
    struct ring r;
    uint64_t count = 0;
    assert_int_equal(ring_init(&r, live, n), 0);
    for (int i = 0; i < DEVICES; i++) {
        char dev[32];
        snprintf(dev, sizeof dev, "dev-%03d", i);
        count += ring_owner_of(&r, dev) == id;
    }
    return count;
}

static void test_no_record(void **state)
{
    struct fix *f = *state;
    struct api_ownership o;
    char err[256];
    refresh(&f->l);
    assert_int_equal(node_liveness_ownership(&f->n, &o, err, sizeof err), 0);
    assert_int_equal(o.epoch, 0);
    assert_int_equal(o.n_nodes, 0);
    assert_int_equal(o.applied_epoch, 0);
    assert_false(owner_owns(f->n.owner, "dev-000", NULL));
}

static void test_epochs_and_handoffs(void **state)
{
    struct fix *f = *state;
    const uint64_t all[] = {1, 2, 3}, without1[] = {2, 3}, one = 1;
    uint64_t mine = owned_by(all, 3, 1), epoch = 0;
    struct api_ownership o;
    struct owner_stats st;
    char err[256];

    /* All live. */
    put_record(f, NULL, 0);
    refresh(&f->l);
    assert_int_equal(node_liveness_ownership(&f->n, &o, err, sizeof err), 0);
    assert_int_equal(o.epoch, store_revision(f->n.store));
    assert_int_equal(o.applied_epoch, o.epoch);
    assert_int_equal(o.devices, DEVICES);
    assert_int_equal(o.n_nodes, 3);
    assert_int_equal(o.nodes[0].devices + o.nodes[1].devices + o.nodes[2].devices, DEVICES);
    for (size_t i = 0; i < 3; i++) {
        assert_true(o.nodes[i].live);
        assert_int_equal(o.nodes[i].devices, owned_by(all, 3, o.nodes[i].id));
    }
    assert_int_equal(o.moved, 0);
    assert_int_equal(o.handoffs_in, mine);
    owner_lease_extend(f->n.owner, cairn_now_ms());
    for (int i = 0, seen = 0; i < DEVICES; i++) {
        char dev[32];
        snprintf(dev, sizeof dev, "dev-%03d", i);
        if (owner_owns(f->n.owner, dev, &epoch)) {
            seen++;
            assert_int_equal(epoch, o.epoch);
        }
        if (i == DEVICES - 1) {
            assert_int_equal(seen, mine);
        }
    }

    /* Node 1 down: exactly its devices move, it owns nothing. */
    put_record(f, &one, 1);
    assert_true(owner_epoch_current(f->n.owner, epoch)); /* not applied here yet */
    refresh(&f->l);
    assert_false(owner_epoch_current(f->n.owner, epoch));
    assert_int_equal(node_liveness_ownership(&f->n, &o, err, sizeof err), 0);
    assert_false(o.nodes[0].live);
    assert_int_equal(o.nodes[0].devices, 0);
    assert_int_equal(o.nodes[1].devices, owned_by(without1, 2, 2));
    assert_int_equal(o.moved, mine);
    assert_int_equal(o.n_moved_ids,
                     mine < API_OWNERSHIP_MOVED_SHOWN ? mine : API_OWNERSHIP_MOVED_SHOWN);
    assert_int_equal(o.handoffs_out, mine);
    assert_false(owner_owns(f->n.owner, o.moved_ids[0], NULL));
    for (size_t i = 1; i < o.n_moved_ids; i++) {
        assert_true(strcmp(o.moved_ids[i - 1], o.moved_ids[i]) < 0);
    }

    /* Back again: the same devices move back, but node 1 drives them only
     * after the handoff wait (nodes 2 and 3 may still be driving them). */
    put_record(f, NULL, 0);
    refresh(&f->l);
    assert_int_equal(node_liveness_ownership(&f->n, &o, err, sizeof err), 0);
    assert_int_equal(o.moved, mine);
    owner_stats(f->n.owner, &st);
    assert_int_equal(st.epoch_changes, 3);
    assert_int_equal(st.handoffs_in, 2 * mine);
    assert_int_equal(st.handoffs_out, mine);
    assert_true(o.settling_ms > 0);
    assert_false(owner_owns(f->n.owner, o.moved_ids[0], NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epochs_and_handoffs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
