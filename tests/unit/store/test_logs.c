/*
 * Tests of the change log and the audit log: what each change and each
 * command records, order, pages, pruning and the compacted revisions a
 * reader is told about, audit filters, pages and the scan bound, and that
 * a snapshot carries every column family (indexes, counts, both logs).
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct store_change_list changes(struct fix *f, uint64_t from, size_t limit)
{
    struct store_change_list l;
    assert_int_equal(store_changes_read(f->s, from, limit, &l), 0);
    return l;
}

static void test_changes_content(void **state)
{
    struct fix *f = *state;
    struct store_change_list l;
    struct store_command c;
    const struct store_object *o;

    l = changes(f, 0, 10);
    assert_int_equal(l.n, 0);
    assert_int_equal(l.oldest, 1);
    assert_int_equal(l.revision, 0);
    store_change_list_release(&l);

    c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t1");
    c.name = "acme";
    c.body = "{\"x\":1}";
    c.body_len = 7;
    c.n_limits = 1;
    c.limits[0] = (struct store_limit){STORE_KIND_SITE, 3};
    assert_int_equal(fix_apply(f, &c).status, 0); /* r1 */
    c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_SITE, "s1", "t1", STORE_KIND_TENANT, "t1");
    c.expires_ms = 99999;
    assert_int_equal(fix_apply(f, &c).status, 0); /* r2 */
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "t1");
    c.body = "{}";
    c.body_len = 2;
    assert_int_equal(fix_apply(f, &c).status, 0); /* r3 */
    c = cmd_make(STORE_OP_DELETE, STORE_KIND_SITE, "s1");
    assert_int_equal(fix_apply(f, &c).status, 0); /* r4 */
    /* Failures, audits and no-ops log nothing. */
    assert_int_equal(fix_create(f, "t1", NULL).status, CAIRN_EEXIST);
    c = cmd_make(STORE_OP_AUDIT, STORE_KIND_SITE, "s2");
    c.caller = "u";
    assert_int_equal(fix_apply(f, &c).status, 0);
    assert_int_equal(store_revision(f->s), 4);

    l = changes(f, 0, 100);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.revision, 4);
    assert_int_equal(l.oldest, 1);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(l.items[i].revision, i + 1);
        assert_int_equal(l.items[i].deleted, i == 3);
    }
    o = &l.items[0].object;
    assert_int_equal(o->kind, STORE_KIND_TENANT);
    assert_string_equal(o->id, "t1");
    assert_string_equal(o->name, "acme");
    assert_string_equal(o->body, "{\"x\":1}");
    assert_int_equal(o->create_rev, 1);
    assert_int_equal(o->mod_rev, 1);
    assert_int_equal(o->n_limits, 1);
    assert_int_equal(o->limits[0].max, 3);
    o = &l.items[1].object;
    assert_string_equal(o->tenant, "t1");
    assert_int_equal(o->parent_kind, STORE_KIND_TENANT);
    assert_string_equal(o->parent_id, "t1");
    assert_int_equal(o->expires_ms, 99999);
    o = &l.items[2].object;
    assert_null(o->name);
    assert_string_equal(o->body, "{}");
    assert_int_equal(o->create_rev, 1);
    assert_int_equal(o->mod_rev, 3);
    assert_int_equal(o->n_limits, 0);
    o = &l.items[3].object; /* a delete: which, and where it was */
    assert_int_equal(o->kind, STORE_KIND_SITE);
    assert_string_equal(o->id, "s1");
    assert_string_equal(o->tenant, "t1");
    assert_string_equal(o->parent_id, "t1");
    assert_null(o->name);
    assert_null(o->body);
    assert_int_equal(o->mod_rev, 4);
    store_change_list_release(&l);

    /* From a revision on; past the end; no room. */
    l = changes(f, 2, 100);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.items[0].revision, 3);
    store_change_list_release(&l);
    l = changes(f, 4, 100);
    assert_int_equal(l.n, 0);
    assert_int_equal(l.revision, 4);
    store_change_list_release(&l);
    l = changes(f, 1000, 100);
    assert_int_equal(l.n, 0);
    store_change_list_release(&l);
    l = changes(f, UINT64_MAX, 100);
    assert_int_equal(l.n, 0);
    store_change_list_release(&l);
    l = changes(f, 0, 0);
    assert_int_equal(l.n, 0);
    store_change_list_release(&l);

    /* Pages end at revision boundaries: a revision of three changes (a
     * cascade) comes whole, even past the limit. */
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "a", "t1", STORE_KIND_TENANT, "t1", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "b", "t1", STORE_KIND_SITE, "a", 0);
    c = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, "t1");
    c.cascade = true;
    assert_int_equal(fix_apply(f, &c).revision, 7);
    l = changes(f, 6, 1);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0].object.id, "b");
    assert_string_equal(l.items[1].object.id, "a");
    assert_string_equal(l.items[2].object.id, "t1");
    store_change_list_release(&l);
    l = changes(f, 0, 6);
    assert_int_equal(l.n, 6); /* r1..r6 */
    store_change_list_release(&l);
    l = changes(f, 0, 7);
    assert_int_equal(l.n, 9); /* r1..r6 and all of r7 */
    store_change_list_release(&l);
    /* It survives a restart. */
    fix_reopen(f);
    l = changes(f, 0, 100);
    assert_int_equal(l.n, 9);
    store_change_list_release(&l);
}

static void test_changes_pruned(void **state)
{
    struct fix *f = *state;
    struct store_change_list l;
    struct store_command c;
    char *err = NULL;

    for (int i = 0; i < 100; i++) {
        char id[16];
        snprintf(id, sizeof id, "t%03d", i);
        fix_create(f, id, NULL);
    }
    assert_int_equal(cf_count(f->s, STORE_CF_CHANGES), 100);
    /* Keep 3 revisions: one apply prunes at most 64 records, but readers
     * are told at once what is gone. */
    f->s->changes_kept = 3;
    fix_create(f, "x", NULL); /* r101: keeps 99..101 */
    assert_int_equal(cf_count(f->s, STORE_CF_CHANGES), 37);
    assert_int_equal(store_changes_read(f->s, 97, 10, &l), CAIRN_ENOTFOUND);
    l = changes(f, 98, 10);
    assert_int_equal(l.oldest, 99);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.items[0].revision, 99);
    store_change_list_release(&l);
    assert_int_equal(store_changes_read(f->s, 0, 10, &l), CAIRN_ENOTFOUND);
    /* Any entry goes on pruning, even one that changes nothing. */
    c = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, "none");
    assert_int_equal(fix_apply(f, &c).status, CAIRN_ENOTFOUND);
    assert_int_equal(cf_count(f->s, STORE_CF_CHANGES), 3);
    fix_create(f, "y", NULL); /* r102 */
    assert_int_equal(cf_count(f->s, STORE_CF_CHANGES), 3);
    assert_int_equal(store_changes_read(f->s, 98, 10, &l), CAIRN_ENOTFOUND);
    l = changes(f, 99, 10);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.oldest, 100);
    store_change_list_release(&l);

    /* A database whose revisions were never logged (written before the
     * change log existed): only what comes after is readable. */
    rocksdb_delete_cf(f->s->db.db, f->s->db.wopts, f->s->db.cf[STORE_CF_META],
                      STORE_META_CHANGES_FLOOR, strlen(STORE_META_CHANGES_FLOOR), &err);
    assert_null(err);
    for (uint64_t r = 100; r <= 102; r++) {
        char key[STORE_KEY_CHANGE_LEN];
        rocksdb_delete_cf(f->s->db.db, f->s->db.wopts, f->s->db.cf[STORE_CF_CHANGES], key,
                          store_key_change(r, 0, key), &err);
        assert_null(err);
    }
    fix_reopen(f); /* as a node opens such a database */
    assert_int_equal(store_changes_read(f->s, 101, 10, &l), CAIRN_ENOTFOUND);
    l = changes(f, 102, 10);
    assert_int_equal(l.oldest, 103);
    assert_int_equal(l.n, 0);
    store_change_list_release(&l);
    f->s->changes_kept = STORE_CHANGES_KEPT;
    fix_create(f, "z", NULL); /* r103 */
    l = changes(f, 102, 10);
    assert_int_equal(l.oldest, 103);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].object.id, "z");
    store_change_list_release(&l);
}

/* The newest audit records, as a query returns them. */
static struct store_audit_list audit(struct fix *f, const struct store_audit_query *q)
{
    struct store_audit_list l;
    assert_int_equal(store_audit_query(f->s, q, &l), 0);
    return l;
}

static void test_audit_records(void **state)
{
    struct fix *f = *state;
    struct store_audit_query q = {0};
    struct store_audit_list l;
    struct store_command c;
    struct store_result r;
    static const unsigned char garbage[] = {0xc1};

    c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t1");
    c.caller = "alice";
    c.time_ms = 1001;
    assert_int_equal(fix_apply(f, &c).status, 0);
    c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_SITE, "s1", "t1", STORE_KIND_TENANT, "t1");
    c.caller = "bob";
    assert_int_equal(fix_apply(f, &c).status, 0);
    c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t1"); /* refused by apply */
    c.caller = "alice";
    assert_int_equal(fix_apply(f, &c).status, CAIRN_EEXIST);
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_SITE, "s1"); /* scope as stored */
    c.caller = "bob";
    assert_int_equal(fix_apply(f, &c).status, 0);
    /* No caller, or no command: no record. */
    fix_create(f, "t2", NULL);
    fix_apply_raw(f, garbage, sizeof garbage);
    /* An audit changes nothing, and never touches the request table. */
    c = cmd_scoped(STORE_OP_AUDIT, STORE_KIND_SITE, "s9", "t1", 0, NULL);
    c.caller = "carol";
    c.audit_status = CAIRN_ECONFLICT;
    c.audit_message = "quota exceeded: tenant t1 allows at most 1 sites";
    c.request_id = "rq";
    c.name = "ignored";
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.revision, 4);
    assert_int_equal(store_revision(f->s), 4);
    assert_int_equal(cf_count(f->s, STORE_CF_REQUESTS), 0);
    assert_int_equal(cf_count(f->s, STORE_CF_OBJECTS), 3);
    /* A replay adds no record; a reused request id with another request
     * does. */
    c = cmd_make(STORE_OP_CREATE, STORE_KIND_USER, "u1");
    c.caller = "dave";
    c.request_id = "rq";
    c.fingerprint = 1;
    assert_int_equal(fix_apply(f, &c).status, 0);
    assert_true(fix_apply(f, &c).replayed);
    c.fingerprint = 2;
    assert_int_equal(fix_apply(f, &c).status, CAIRN_EIDEMPOTENCY);

    q.limit = 100;
    l = audit(f, &q);
    assert_int_equal(l.n, 7);
    assert_false(l.more);
    /* Newest first. */
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(l.items[i].seq, 7 - i);
    }
    const struct store_audit *a = &l.items[6];
    assert_int_equal(a->time_ms, 1001);
    assert_string_equal(a->caller, "alice");
    assert_string_equal(a->tenant, "t1"); /* a tenant is its own scope */
    assert_int_equal(a->op, STORE_OP_CREATE);
    assert_int_equal(a->kind, STORE_KIND_TENANT);
    assert_string_equal(a->id, "t1");
    assert_int_equal(a->status, 0);
    assert_null(a->message);
    assert_int_equal(a->revision, 1);
    a = &l.items[5];
    assert_string_equal(a->caller, "bob");
    assert_string_equal(a->tenant, "t1");
    assert_int_equal(a->revision, 2);
    a = &l.items[4];
    assert_int_equal(a->status, CAIRN_EEXIST);
    assert_string_equal(a->message, "tenant t1 already exists");
    assert_int_equal(a->revision, 2);
    a = &l.items[3];
    assert_int_equal(a->op, STORE_OP_UPDATE);
    assert_string_equal(a->tenant, "t1");
    assert_int_equal(a->revision, 3);
    a = &l.items[2];
    assert_int_equal(a->op, STORE_OP_AUDIT);
    assert_string_equal(a->caller, "carol");
    assert_string_equal(a->id, "s9");
    assert_int_equal(a->kind, STORE_KIND_SITE);
    assert_int_equal(a->status, CAIRN_ECONFLICT);
    assert_string_equal(a->message, "quota exceeded: tenant t1 allows at most 1 sites");
    assert_int_equal(a->revision, 4);
    a = &l.items[1];
    assert_string_equal(a->caller, "dave");
    assert_null(a->tenant);
    assert_int_equal(a->status, 0);
    a = &l.items[0];
    assert_int_equal(a->status, CAIRN_EIDEMPOTENCY);
    assert_non_null(a->message);
    store_audit_list_release(&l);
    /* The log survives a restart and goes on from its last seq. */
    fix_reopen(f);
    c = cmd_make(STORE_OP_DELETE, STORE_KIND_USER, "u1");
    c.caller = "erin";
    assert_int_equal(fix_apply(f, &c).status, 0);
    q.limit = 1;
    l = audit(f, &q);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.items[0].seq, 8);
    assert_true(l.more);
    assert_int_equal(l.next, 8);
    store_audit_list_release(&l);
}

/* Expects the seqs a query returns, and more. */
static void expect_seqs(struct fix *f, const struct store_audit_query *q, const char *seqs,
                        bool more)
{
    struct store_audit_list l = audit(f, q);
    char got[512] = "";
    size_t len = 0;
    for (size_t i = 0; i < l.n; i++) {
        len += (size_t)snprintf(got + len, sizeof got - len, "%s%llu", i > 0 ? " " : "",
                                (unsigned long long)l.items[i].seq);
    }
    if (strcmp(got, seqs) != 0 || l.more != more) {
        fail_msg("audit: got \"%s\" more=%d, want \"%s\" more=%d", got, l.more, seqs, more);
    }
    store_audit_list_release(&l);
}

static void test_audit_query(void **state)
{
    struct fix *f = *state;
    struct store_audit_query q = {0};
    struct store_audit_list l;
    struct store_command c;
    static const char *const callers[] = {"ann", "ben", "cat"};

    fix_create(f, "t1", NULL);
    fix_create(f, "t2", NULL);
    /* 30 records: seq i+1 by callers[i % 3], tenant t1 for even i, a site
     * for i % 5 == 0 else a device, at time 1000 + 10 i. */
    for (int i = 0; i < 30; i++) {
        char id[16];
        snprintf(id, sizeof id, "o%02d", i);
        c = cmd_scoped(STORE_OP_AUDIT, i % 5 == 0 ? STORE_KIND_SITE : STORE_KIND_DEVICE, id,
                       i % 2 == 0 ? "t1" : "t2", 0, NULL);
        c.caller = callers[i % 3];
        c.time_ms = 1000 + 10 * i;
        c.audit_status = CAIRN_ECONFLICT;
        assert_int_equal(fix_apply(f, &c).status, 0);
    }
    q.limit = 4;
    expect_seqs(f, &q, "30 29 28 27", true);
    q.after = 27;
    expect_seqs(f, &q, "26 25 24 23", true);
    q.after = 3;
    expect_seqs(f, &q, "2 1", false);
    q.after = 1;
    expect_seqs(f, &q, "", false);
    q.after = 1000; /* past the newest: from the newest */
    expect_seqs(f, &q, "30 29 28 27", true);
    /* Filters, alone and together. */
    q.after = 0;
    q.limit = 100;
    q.caller = "ben";
    expect_seqs(f, &q, "29 26 23 20 17 14 11 8 5 2", false);
    q.tenant = "t1";
    expect_seqs(f, &q, "29 23 17 11 5", false);
    q.kind = STORE_KIND_SITE;
    expect_seqs(f, &q, "11", false);
    q.caller = NULL;
    q.tenant = NULL;
    expect_seqs(f, &q, "26 21 16 11 6 1", false);
    q.kind = 0;
    q.from_ms = 1200; /* seq 21.. */
    q.to_ms = 1250;   /* ..seq 26 */
    expect_seqs(f, &q, "26 25 24 23 22 21", false);
    q.limit = 2;
    expect_seqs(f, &q, "26 25", true);
    q.after = 25;
    expect_seqs(f, &q, "24 23", true);
    q.after = 23;
    expect_seqs(f, &q, "22 21", false);
    q.from_ms = 0;
    q.to_ms = 0;
    q.after = 0;
    q.tenant = "t3";
    expect_seqs(f, &q, "", false);
    q.tenant = NULL;
    q.kind = (enum store_kind)'x';
    assert_int_equal(store_audit_query(f->s, &q, &l), CAIRN_EINVAL);
    assert_int_equal(store_audit_query(f->s, NULL, &l), CAIRN_EINVAL);

    /* The scan bound: 7 records examined at most per query; a query that
     * matches nothing in them says more, and where to go on. */
    f->s->audit_scan_max = 7;
    q.kind = 0;
    q.limit = 100;
    q.caller = "ann"; /* seqs 28 25 22 ... 1 */
    l = audit(f, &q);
    assert_int_equal(l.n, 2); /* 28 and 25 among 30..24 */
    assert_true(l.more);
    assert_int_equal(l.next, 24);
    store_audit_list_release(&l);
    q.caller = "nobody";
    l = audit(f, &q);
    assert_int_equal(l.n, 0);
    assert_true(l.more);
    assert_int_equal(l.next, 24);
    /* Walking on with next reaches the end in bounded steps. */
    for (int i = 0; i < 10 && l.more; i++) {
        q.after = l.next;
        store_audit_list_release(&l);
        l = audit(f, &q);
        assert_int_equal(l.n, 0);
    }
    assert_false(l.more);
    store_audit_list_release(&l);
    f->s->audit_scan_max = STORE_AUDIT_SCAN_MAX;

    /* Pruning keeps the newest audit_kept records. */
    f->s->audit_kept = 10;
    c = cmd_make(STORE_OP_AUDIT, STORE_KIND_TENANT, "t1");
    c.caller = "ann";
    assert_int_equal(fix_apply(f, &c).status, 0); /* seq 31 */
    assert_int_equal(cf_count(f->s, STORE_CF_AUDIT), 10);
    q.caller = NULL;
    q.after = 0;
    q.limit = 100;
    l = audit(f, &q);
    assert_int_equal(l.n, 10);
    assert_int_equal(l.items[0].seq, 31);
    assert_int_equal(l.items[9].seq, 22);
    assert_false(l.more);
    store_audit_list_release(&l);
}

static void take_restore(struct fix *from, struct fix *to)
{
    char msg[CAIRN_ERRMSG_SIZE] = "";
    void *buf;
    size_t len;
    if (store_snapshot_take(from->s, &buf, &len, msg, sizeof msg) != 0) {
        fail_msg("take: %s", msg);
    }
    if (store_snapshot_restore(to->s, buf, len, msg, sizeof msg) != 0) {
        fail_msg("restore: %s", msg);
    }
    to->index = store_applied_index(to->s);
    free(buf);
}

/* Everything a reader sees: objects, logs, counts and queries. */
static char *dump_all(struct store *s)
{
    char *objects = dump(s);
    char *logs = dump_logs(s);
    struct cairn_buf b;
    struct store_query q = {0};
    struct store_list l;
    uint64_t n;
    cairn_buf_init(&b);
    assert_int_equal(cairn_buf_printf(&b, "%s%s", objects, logs), 0);
    for (size_t k = 0; k < 10; k++) {
        assert_int_equal(store_count(s, "t1", all_kinds[k], &n), 0);
        assert_int_equal(
            cairn_buf_printf(&b, "count %c=%llu\n", (char)all_kinds[k], (unsigned long long)n), 0);
    }
    q.kind = STORE_KIND_DEVICE;
    q.tenant = "t1";
    q.limit = 100;
    q.now_ms = 1500;
    assert_int_equal(store_object_query(s, &q, &l), 0);
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(cairn_buf_printf(&b, "scoped %s\n", l.items[i].id), 0);
    }
    store_list_release(&l);
    q.tenant = NULL;
    q.parent_kind = STORE_KIND_SITE;
    q.parent_id = "s1";
    assert_int_equal(store_object_query(s, &q, &l), 0);
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(cairn_buf_printf(&b, "child %s\n", l.items[i].id), 0);
    }
    store_list_release(&l);
    free(objects);
    free(logs);
    return b.data;
}

/* Two stores hold the same keys and values in cf. */
static void cf_same(struct store *a, struct store *b, enum store_cf cf)
{
    rocksdb_iterator_t *x = rocksdb_create_iterator_cf(a->db.db, a->db.ropts, a->db.cf[cf]);
    rocksdb_iterator_t *y = rocksdb_create_iterator_cf(b->db.db, b->db.ropts, b->db.cf[cf]);
    rocksdb_iter_seek_to_first(x);
    rocksdb_iter_seek_to_first(y);
    while (rocksdb_iter_valid(x) && rocksdb_iter_valid(y)) {
        size_t xl, yl, xvl, yvl;
        const char *xk = rocksdb_iter_key(x, &xl);
        const char *yk = rocksdb_iter_key(y, &yl);
        const char *xv = rocksdb_iter_value(x, &xvl);
        const char *yv = rocksdb_iter_value(y, &yvl);
        assert_int_equal(xl, yl);
        assert_memory_equal(xk, yk, xl);
        assert_int_equal(xvl, yvl);
        if (xvl > 0) {
            assert_memory_equal(xv, yv, xvl);
        }
        rocksdb_iter_next(x);
        rocksdb_iter_next(y);
    }
    assert_int_equal(rocksdb_iter_valid(x), rocksdb_iter_valid(y));
    rocksdb_iter_destroy(x);
    rocksdb_iter_destroy(y);
}

/* A random mix of commands: creates with request ids, sessions that
 * expire, deletes, and time that jumps past the request lifetime. */
struct mix {
    uint64_t rng;
    int64_t now;
    int step;
    uint64_t requests;
    uint64_t sessions;
    char id[16];
    char rid[32];
};

static struct store_command mix_next(struct mix *m)
{
    struct store_command c;
    uint64_t r = prng_next(&m->rng);
    int n = (int)(r % 40);

    m->now += (int64_t)(r >> 8) % 50;
    if (r % 97 == 0) {
        m->now += STORE_REQUEST_TTL_MS / 3; /* requests start to expire */
    }
    snprintf(m->rid, sizeof m->rid, "req-%d", m->step);
    if (r % 5 < 2) {
        snprintf(m->id, sizeof m->id, "t%02d", n);
        c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, m->id);
        c.request_id = m->rid;
        m->requests++;
    } else if (r % 5 < 4) {
        m->sessions++;
        snprintf(m->id, sizeof m->id, "s%03d", m->step);
        c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_SESSION, m->id, "t00", 0, NULL);
        c.expires_ms = m->now + (int64_t)((r >> 16) % 400);
    } else {
        snprintf(m->id, sizeof m->id, "t%02d", n);
        c = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, m->id);
        c.request_id = m->rid;
        m->requests++;
    }
    c.time_ms = m->now;
    m->step++;
    return c;
}

/* The prune hints (apply_prune.c) and the cached meta values (apply.c)
 * change nothing: a store that uses them ends every entry in the same
 * state as one that forgets them before every entry (as after a restart),
 * through the random mix. */
static void test_prune_hints(void **state)
{
    struct fix *with = fix_new();
    struct fix *without = fix_new();
    struct mix m = {.rng = 0x9e3779b97f4a7c15ull, .now = 1000};
    (void)state;

    with->s->changes_kept = without->s->changes_kept = 7;
    with->s->audit_kept = without->s->audit_kept = 11;
    for (int step = 0; step < 600; step++) {
        struct store_command c = mix_next(&m);
        assert_int_equal(fix_apply(with, &c).status, fix_apply(without, &c).status);
        memset(without->s->db.hint, 0, sizeof without->s->db.hint);
        memset(without->s->db.meta, 0, sizeof without->s->db.meta);
        for (enum store_cf cf = STORE_CF_META; cf < STORE_CF_COUNT; cf++) {
            cf_same(with->s, without->s, cf);
        }
    }
    /* The mix did prune each kind of thing. */
    assert_true(cf_count(with->s, STORE_CF_CHANGES) <= 7 + 64);
    assert_true(m.requests > 100 && m.sessions > 100);
    assert_true(cf_count(with->s, STORE_CF_REQUEST_TIMES) < m.requests);
    assert_true(cf_count(with->s, STORE_CF_EXPIRY) < m.sessions);
    fix_free(with);
    fix_free(without);
}

/* A batched entry is its commands applied one by one: after every batch
 * (1 to 12 commands of the random mix, some with the same request id
 * twice) a store that applies batches holds exactly what a store that
 * applies each command as its own entry holds, but for the applied index,
 * and every command got the same result. */
static void test_batch_same_as_single(void **state)
{
    struct fix *batched = fix_new();
    struct fix *single = fix_new();
    struct mix m = {.rng = 0x2545f4914f6cdd1dull, .now = 1000};
    struct store_slice cmds[12];
    void *bufs[12];
    char msg[CAIRN_ERRMSG_SIZE];
    size_t lens[12];
    (void)state;

    batched->s->changes_kept = single->s->changes_kept = 9;
    batched->s->audit_kept = single->s->audit_kept = 13;
    for (int round = 0; round < 80; round++) {
        const struct store_result *res;
        size_t n = 1 + (size_t)(prng_next(&m.rng) % 12);
        for (size_t i = 0; i < n; i++) {
            struct store_command c = mix_next(&m);
            if (i > 0 && prng_next(&m.rng) % 8 == 0) {
                c.request_id = "again"; /* a retry within the batch */
            }
            assert_int_equal(store_command_encode(&c, &bufs[i], &lens[i]), 0);
            cmds[i] = (struct store_slice){bufs[i], lens[i]};
        }
        assert_int_equal(
            store_apply_batch(batched->s, ++batched->index, cmds, n, &res, msg, sizeof msg), 0);
        assert_non_null(res);
        for (size_t i = 0; i < n; i++) {
            struct store_result one = fix_apply_raw(single, bufs[i], lens[i]);
            assert_int_equal(res[i].status, one.status);
            assert_int_equal(res[i].revision, one.revision);
            assert_int_equal(res[i].mod_rev, one.mod_rev);
            assert_int_equal(res[i].replayed, one.replayed);
            assert_string_equal(res[i].message, one.message);
            free(bufs[i]);
        }
        assert_int_equal(store_applied_index(batched->s), batched->index);
        assert_int_equal(store_revision(batched->s), store_revision(single->s));
        for (enum store_cf cf = STORE_CF_META + 1; cf < STORE_CF_COUNT; cf++) {
            cf_same(batched->s, single->s, cf);
        }
    }
    assert_true(m.requests > 100 && m.sessions > 100);
    fix_free(batched);
    fix_free(single);
}

/* A store that applies only up to version 3 (an older build) refuses a
 * batched entry whole, as it refuses a newer command: nothing written,
 * "upgrade this node"; once it may, the same entry applies. */
static void test_batch_needs_version(void **state)
{
    struct fix *f = fix_new();
    struct store_command c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t1");
    const struct store_result *res = NULL;
    char msg[CAIRN_ERRMSG_SIZE] = "";
    struct store_slice one;
    void *buf;
    size_t len;
    (void)state;

    assert_int_equal(store_command_encode(&c, &buf, &len), 0);
    one = (struct store_slice){buf, len};
    assert_int_equal(store_command_version_limit(f->s, STORE_COMMAND_VERSION_BATCH - 1), 0);
    assert_int_equal(store_apply_batch(f->s, 1, &one, 1, &res, msg, sizeof msg),
                     CAIRN_EUNSUPPORTED);
    assert_non_null(strstr(msg, "upgrade this node"));
    assert_int_equal(store_applied_index(f->s), 0);
    assert_int_equal(store_revision(f->s), 0);
    assert_int_equal(store_apply_batch(f->s, 1, &one, 0, &res, msg, sizeof msg), CAIRN_EINVAL);
    assert_int_equal(store_command_version_limit(f->s, STORE_COMMAND_VERSION_BATCH), 0);
    assert_int_equal(store_apply_batch(f->s, 1, &one, 1, &res, msg, sizeof msg), 0);
    assert_int_equal(res[0].status, 0);
    assert_int_equal(store_revision(f->s), 1);
    free(buf);
    fix_free(f);
}

static void test_snapshot_new_cfs(void **state)
{
    struct fix *a = fix_new();
    struct fix *b = fix_new();
    struct store_command c;
    char *want;
    char *got;
    (void)state;

    c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t1");
    c.caller = "admin";
    c.n_limits = 1;
    c.limits[0] = (struct store_limit){STORE_KIND_DEVICE, 5};
    fix_apply(a, &c);
    fix_scoped(a, STORE_OP_CREATE, STORE_KIND_SITE, "s1", "t1", STORE_KIND_TENANT, "t1", 0);
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "d%d", i);
        c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_DEVICE, id, "t1", STORE_KIND_SITE, "s1");
        c.caller = "ops";
        c.expires_ms = i == 0 ? 1200 : 0; /* d0 expired for the query */
        fix_apply(a, &c);
    }
    c = cmd_make(STORE_OP_AUDIT, STORE_KIND_DEVICE, "d9");
    c.caller = "ops";
    c.audit_status = CAIRN_ECONFLICT;
    fix_apply(a, &c);
    fix_scoped(b, STORE_OP_CREATE, STORE_KIND_TENANT, "other", NULL, 0, NULL, 0);

    want = dump_all(a->s);
    take_restore(a, b);
    got = dump_all(b->s);
    assert_string_equal(got, want);
    free(got);
    free(want);

    /* Both go on the same way: quotas, expiry, logs. */
    b->index = a->index;
    for (int round = 0; round < 2; round++) {
        struct fix *f = round == 0 ? a : b;
        c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_DEVICE, "d5", "t1", STORE_KIND_SITE, "s1");
        c.caller = "ops";
        c.time_ms = 2000; /* prunes d0 */
        assert_int_equal(fix_apply(f, &c).status, 0);
        c.id = "d6";
        assert_int_equal(fix_apply(f, &c).status, 0);
        c.id = "d7"; /* over the quota */
        assert_int_equal(fix_apply(f, &c).status, CAIRN_ECONFLICT);
        c = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, "t1");
        c.cascade = true;
        c.caller = "admin";
        assert_int_equal(fix_apply(f, &c).status, 0);
    }
    want = dump_all(a->s);
    got = dump_all(b->s);
    assert_string_equal(got, want);
    assert_int_equal(cf_count(b->s, STORE_CF_COUNTS), 0);
    free(got);
    free(want);
    fix_free(a);
    fix_free(b);
}

int run_log_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_changes_content, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_changes_pruned, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_audit_records, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_audit_query, fix_setup, fix_teardown),
        cmocka_unit_test(test_prune_hints),
        cmocka_unit_test(test_batch_same_as_single),
        cmocka_unit_test(test_batch_needs_version),
        cmocka_unit_test(test_snapshot_new_cfs),
    };
    return cmocka_run_group_tests_name("store logs", tests, NULL, NULL);
}
