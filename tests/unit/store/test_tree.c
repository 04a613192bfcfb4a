/*
 * Tests of the object tree: tenants, parents and refs that must exist, a
 * tenant and parent fixed at create, quotas and counts, deletes refused
 * over children and cascades, expiry (creates over expired objects, prune
 * order and bound, queries skipping them), queries by tenant and parent,
 * and values written before version 2.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void assert_contains(const char *s, const char *needle)
{
    if (strstr(s, needle) == NULL) {
        fail_msg("\"%s\" does not contain \"%s\"", s, needle);
    }
}

static uint64_t count(struct store *s, const char *tenant, enum store_kind kind)
{
    uint64_t n = 99;
    assert_int_equal(store_count(s, tenant, kind, &n), 0);
    return n;
}

static bool exists(struct store *s, enum store_kind kind, const char *id)
{
    struct store_object o;
    int rv = store_object_get(s, kind, id, &o);
    assert_true(rv == 0 || rv == CAIRN_ENOTFOUND);
    if (rv == 0) {
        store_object_release(&o);
    }
    return rv == 0;
}

/* A tenant with limits: pairs of kind and max, ended by 0. */
static struct store_result tenant_with(struct fix *f, enum store_op op, const char *id, ...)
{
    struct store_command c = cmd_make(op, STORE_KIND_TENANT, id);
    va_list ap;
    int kind;
    va_start(ap, id);
    while ((kind = va_arg(ap, int)) != 0) {
        c.limits[c.n_limits].kind = (enum store_kind)kind;
        c.limits[c.n_limits].max = va_arg(ap, uint64_t);
        c.n_limits++;
    }
    va_end(ap);
    return fix_apply(f, &c);
}

/* tenant t1 -> sites s1, s2 -> devices d1..d3 under s1, d4 under s2. */
static void tree(struct fix *f)
{
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TENANT, "t1", NULL, 0, NULL, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s1", "t1", STORE_KIND_TENANT, "t1", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s2", "t1", STORE_KIND_TENANT, "t1", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "d1", "t1", STORE_KIND_SITE, "s1", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "d2", "t1", STORE_KIND_SITE, "s1", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "d3", "t1", STORE_KIND_SITE, "s1", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "d4", "t1", STORE_KIND_SITE, "s2", 0);
}

static void test_parent_and_refs(void **state)
{
    struct fix *f = *state;
    struct store_command c;
    struct store_result r;
    struct store_object o;
    char *before;
    char *after;

    /* The tenant (scope) and the parent must exist. */
    r = fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s1", "t1", 0, NULL, CAIRN_ENOTFOUND);
    assert_string_equal(r.message, "tenant t1 does not exist");
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TENANT, "t1", NULL, 0, NULL, 0);
    r = fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "d1", "t1", STORE_KIND_SITE, "s1",
                   CAIRN_ENOTFOUND);
    assert_string_equal(r.message, "site s1 does not exist");
    r = fix_scoped(f, STORE_OP_PUT, STORE_KIND_DEVICE, "d1", "t1", STORE_KIND_SITE, "s1",
                   CAIRN_ENOTFOUND);
    assert_string_equal(r.message, "site s1 does not exist");
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s1", "t1", STORE_KIND_TENANT, "t1", 0);
    r = fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "d1", "t1", STORE_KIND_SITE, "s1", 0);
    assert_int_equal(r.revision, 3);
    assert_int_equal(store_object_get(f->s, STORE_KIND_DEVICE, "d1", &o), 0);
    assert_string_equal(o.tenant, "t1");
    assert_int_equal(o.parent_kind, STORE_KIND_SITE);
    assert_string_equal(o.parent_id, "s1");
    assert_int_equal(o.expires_ms, 0);
    assert_int_equal(o.n_limits, 0);
    store_object_release(&o);

    /* Every ref must exist, on create and on update; nothing changes when
     * one is missing. */
    before = dump(f->s);
    c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_SERVICE, "v1", "t1", STORE_KIND_TENANT, "t1");
    c.refs[0] = (struct store_ref){STORE_KIND_DEVICE, "d1"};
    c.refs[1] = (struct store_ref){STORE_KIND_TEMPLATE, "vpn"};
    c.n_refs = 2;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_ENOTFOUND);
    assert_string_equal(r.message, "template vpn does not exist");
    after = dump(f->s);
    assert_string_equal(before, after);
    free(before);
    free(after);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TEMPLATE, "vpn", NULL, 0, NULL, 0);
    assert_int_equal(fix_apply(f, &c).status, 0);
    c.op = STORE_OP_UPDATE;
    c.refs[1].id = "gone";
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_ENOTFOUND);
    assert_string_equal(r.message, "template gone does not exist");
    c.n_refs = 1;
    assert_int_equal(fix_apply(f, &c).status, 0);

    /* Kinds are separate: a device named like the site is no parent. */
    r = fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "d2", "t1", STORE_KIND_DEVICE, "s1",
                   CAIRN_ENOTFOUND);
    assert_string_equal(r.message, "device s1 does not exist");
    /* An expired parent or ref does not exist for apply. */
    c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_SESSION, "sess", NULL, 0, NULL);
    c.expires_ms = 1500;
    assert_int_equal(fix_apply(f, &c).status, 0);
    c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_JOB, "j1", NULL, 0, NULL);
    c.refs[0] = (struct store_ref){STORE_KIND_SESSION, "sess"};
    c.n_refs = 1;
    c.time_ms = 1499;
    assert_int_equal(fix_apply(f, &c).status, 0);
    c.id = "j2";
    c.time_ms = 1500;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_ENOTFOUND);
    assert_string_equal(r.message, "session sess does not exist");
}

static void test_tenant_parent_fixed(void **state)
{
    struct fix *f = *state;
    struct store_command c;
    struct store_result r;
    struct store_object o;

    tree(f);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TENANT, "t2", NULL, 0, NULL, 0);
    /* Another tenant or parent: refused. */
    r = fix_scoped(f, STORE_OP_UPDATE, STORE_KIND_DEVICE, "d1", "t2", 0, NULL, CAIRN_ECONFLICT);
    assert_contains(r.message, "cannot move device d1 to tenant t2");
    r = fix_scoped(f, STORE_OP_UPDATE, STORE_KIND_DEVICE, "d1", NULL, STORE_KIND_SITE, "s2",
                   CAIRN_ECONFLICT);
    assert_contains(r.message, "cannot move device d1 under site s2");
    r = fix_scoped(f, STORE_OP_PUT, STORE_KIND_DEVICE, "d1", "t1", STORE_KIND_TENANT, "t1",
                   CAIRN_ECONFLICT);
    assert_contains(r.message, "cannot move device d1 under tenant t1");
    /* A scope on an object created without one is a move too. */
    r = fix_scoped(f, STORE_OP_UPDATE, STORE_KIND_TENANT, "t2", "t1", 0, NULL, CAIRN_ECONFLICT);
    assert_contains(r.message, "cannot move tenant t2 to tenant t1");
    /* The same tenant and parent, or none named: kept. */
    fix_scoped(f, STORE_OP_UPDATE, STORE_KIND_DEVICE, "d1", "t1", STORE_KIND_SITE, "s1", 0);
    fix_scoped(f, STORE_OP_UPDATE, STORE_KIND_DEVICE, "d1", NULL, 0, NULL, 0);
    r = fix_scoped(f, STORE_OP_PUT, STORE_KIND_DEVICE, "d1", NULL, 0, NULL, 0);
    assert_int_equal(store_object_get(f->s, STORE_KIND_DEVICE, "d1", &o), 0);
    assert_string_equal(o.tenant, "t1");
    assert_string_equal(o.parent_id, "s1");
    assert_int_equal(o.mod_rev, r.revision);
    store_object_release(&o);
    assert_int_equal(count(f->s, "t1", STORE_KIND_DEVICE), 4);

    /* A version 1 update keeps expiry and limits too; version 2 sets them. */
    tenant_with(f, STORE_OP_UPDATE, "t2", STORE_KIND_SITE, (uint64_t)5, 0);
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "t2");
    c.version = 1;
    c.name = "renamed";
    assert_int_equal(fix_apply(f, &c).status, 0);
    assert_int_equal(store_object_get(f->s, STORE_KIND_TENANT, "t2", &o), 0);
    assert_string_equal(o.name, "renamed");
    assert_int_equal(o.n_limits, 1);
    assert_int_equal(o.limits[0].kind, STORE_KIND_SITE);
    assert_int_equal(o.limits[0].max, 5);
    store_object_release(&o);
    c.version = 2;
    assert_int_equal(fix_apply(f, &c).status, 0);
    assert_int_equal(store_object_get(f->s, STORE_KIND_TENANT, "t2", &o), 0);
    assert_int_equal(o.n_limits, 0);
    store_object_release(&o);

    /* Version 1 commands work on every kind; their objects have no scope. */
    c = cmd_make(STORE_OP_CREATE, STORE_KIND_USER, "u1");
    c.version = 1;
    assert_int_equal(fix_apply(f, &c).status, 0);
    assert_int_equal(store_object_get(f->s, STORE_KIND_USER, "u1", &o), 0);
    assert_null(o.tenant);
    assert_null(o.parent_id);
    store_object_release(&o);
}

static void test_quota(void **state)
{
    struct fix *f = *state;
    struct store_command c;
    struct store_result r;
    char *before;
    char *after;

    tenant_with(f, STORE_OP_CREATE, "t1", STORE_KIND_SITE, (uint64_t)2, STORE_KIND_DEVICE,
                (uint64_t)2, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TENANT, "t2", NULL, 0, NULL, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s1", "t1", STORE_KIND_TENANT, "t1", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s2", "t1", STORE_KIND_TENANT, "t1", 0);
    assert_int_equal(count(f->s, "t1", STORE_KIND_SITE), 2);
    before = dump(f->s);
    r = fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s3", "t1", STORE_KIND_TENANT, "t1",
                   CAIRN_ECONFLICT);
    assert_string_equal(r.message, "quota exceeded: tenant t1 allows at most 2 sites");
    r = fix_scoped(f, STORE_OP_PUT, STORE_KIND_SITE, "s3", "t1", 0, NULL, CAIRN_ECONFLICT);
    after = dump(f->s);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* Updates of existing objects are no new objects; other tenants and
     * unlimited kinds are not affected. */
    fix_scoped(f, STORE_OP_UPDATE, STORE_KIND_SITE, "s2", NULL, 0, NULL, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s3", "t2", STORE_KIND_TENANT, "t2", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SERVICE, "v1", "t1", STORE_KIND_TENANT, "t1", 0);
    assert_int_equal(count(f->s, "t2", STORE_KIND_SITE), 1);

    /* Lowering a limit below the count is allowed; it blocks creates. */
    tenant_with(f, STORE_OP_UPDATE, "t1", STORE_KIND_SITE, (uint64_t)1, STORE_KIND_DEVICE,
                (uint64_t)2, 0);
    assert_int_equal(count(f->s, "t1", STORE_KIND_SITE), 2);
    r = fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s4", "t1", 0, NULL, CAIRN_ECONFLICT);
    assert_string_equal(r.message, "quota exceeded: tenant t1 allows at most 1 sites");
    /* A delete frees room once the count is under the limit. */
    fix_scoped(f, STORE_OP_DELETE, STORE_KIND_SITE, "s1", NULL, 0, NULL, 0);
    assert_int_equal(count(f->s, "t1", STORE_KIND_SITE), 1);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s4", "t1", 0, NULL, CAIRN_ECONFLICT);
    tenant_with(f, STORE_OP_UPDATE, "t1", STORE_KIND_SITE, (uint64_t)2, STORE_KIND_DEVICE,
                (uint64_t)2, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s4", "t1", STORE_KIND_TENANT, "t1", 0);

    /* A cascade frees room for each object it removes. */
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "d1", "t1", STORE_KIND_SITE, "s4", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "d2", "t1", STORE_KIND_SITE, "s4", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "d3", "t1", STORE_KIND_SITE, "s2",
               CAIRN_ECONFLICT);
    c = cmd_make(STORE_OP_DELETE, STORE_KIND_SITE, "s4");
    c.cascade = true;
    assert_int_equal(fix_apply(f, &c).status, 0);
    assert_int_equal(count(f->s, "t1", STORE_KIND_DEVICE), 0);
    assert_int_equal(count(f->s, "t1", STORE_KIND_SITE), 1);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "d3", "t1", STORE_KIND_SITE, "s2", 0);
    /* No limits at all: a tenant without a quota for the kind. */
    tenant_with(f, STORE_OP_UPDATE, "t1", 0);
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "x%d", i);
        fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, id, "t1", STORE_KIND_SITE, "s2", 0);
    }
    assert_int_equal(count(f->s, "t1", STORE_KIND_DEVICE), 6);
    /* A zero limit allows none. */
    tenant_with(f, STORE_OP_UPDATE, "t2", STORE_KIND_JOB, (uint64_t)0, 0);
    r = fix_scoped(f, STORE_OP_CREATE, STORE_KIND_JOB, "j", "t2", 0, NULL, CAIRN_ECONFLICT);
    assert_string_equal(r.message, "quota exceeded: tenant t2 allows at most 0 jobs");
}

static void test_counts(void **state)
{
    struct fix *f = *state;
    uint64_t n;

    assert_int_equal(count(f->s, "t1", STORE_KIND_SITE), 0);
    tree(f);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_USER, "u1", "t1", 0, NULL, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_USER, "admin", NULL, 0, NULL, 0);
    assert_int_equal(count(f->s, "t1", STORE_KIND_SITE), 2);
    assert_int_equal(count(f->s, "t1", STORE_KIND_DEVICE), 4);
    assert_int_equal(count(f->s, "t1", STORE_KIND_USER), 1);
    assert_int_equal(count(f->s, "t1", STORE_KIND_TENANT), 0);
    assert_int_equal(count(f->s, "t", STORE_KIND_SITE), 0);
    assert_int_equal(count(f->s, "t10", STORE_KIND_SITE), 0);
    fix_scoped(f, STORE_OP_DELETE, STORE_KIND_DEVICE, "d2", NULL, 0, NULL, 0);
    assert_int_equal(count(f->s, "t1", STORE_KIND_DEVICE), 3);
    fix_scoped(f, STORE_OP_DELETE, STORE_KIND_USER, "u1", NULL, 0, NULL, 0);
    assert_int_equal(count(f->s, "t1", STORE_KIND_USER), 0);
    assert_int_equal(store_count(f->s, NULL, STORE_KIND_USER, &n), CAIRN_EINVAL);
    assert_int_equal(store_count(f->s, "t1", (enum store_kind)'x', &n), CAIRN_EINVAL);
    assert_int_equal(count(f->s, "", STORE_KIND_USER), 0);
    /* Counts and indexes survive a restart. */
    fix_reopen(f);
    assert_int_equal(count(f->s, "t1", STORE_KIND_DEVICE), 3);
    assert_int_equal(cf_count(f->s, STORE_CF_COUNTS), 2);
    assert_int_equal(cf_count(f->s, STORE_CF_SCOPED), 5);
    assert_int_equal(cf_count(f->s, STORE_CF_CHILDREN), 5);
}

static void test_delete_children(void **state)
{
    struct fix *f = *state;
    struct store_result r;
    char *before;
    char *after;

    tree(f);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SERVICE, "v1", "t1", STORE_KIND_TENANT, "t1", 0);
    before = dump(f->s);
    r = fix_scoped(f, STORE_OP_DELETE, STORE_KIND_TENANT, "t1", NULL, 0, NULL, CAIRN_ECONFLICT);
    assert_string_equal(r.message,
                        "tenant t1 has 3 children (sites, services); delete them "
                        "first or ask for a cascade");
    r = fix_scoped(f, STORE_OP_DELETE, STORE_KIND_SITE, "s2", NULL, 0, NULL, CAIRN_ECONFLICT);
    assert_string_equal(r.message,
                        "site s2 has 1 child (devices); delete them first or ask for a cascade");
    after = dump(f->s);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* Once the children are gone, the parent goes. */
    fix_scoped(f, STORE_OP_DELETE, STORE_KIND_DEVICE, "d4", NULL, 0, NULL, 0);
    fix_scoped(f, STORE_OP_DELETE, STORE_KIND_SITE, "s2", NULL, 0, NULL, 0);
    assert_false(exists(f->s, STORE_KIND_SITE, "s2"));
}

static void test_cascade(void **state)
{
    struct fix *f = *state;
    struct store_change_list cl;
    struct store_command c;
    struct store_result r;
    static const char *const order[] = {"d1", "d2", "d3", "s1", "d4", "s2", "t1"};
    static const enum store_kind kinds[] = {STORE_KIND_DEVICE, STORE_KIND_DEVICE, STORE_KIND_DEVICE,
                                            STORE_KIND_SITE,   STORE_KIND_DEVICE, STORE_KIND_SITE,
                                            STORE_KIND_TENANT};
    uint64_t rev;

    tree(f);
    /* Names, a user scoped to the tenant but not its child, and another
     * tenant's tree that stays. */
    c = cmd_scoped(STORE_OP_UPDATE, STORE_KIND_SITE, "s1", NULL, 0, NULL);
    c.name = "paris";
    assert_int_equal(fix_apply(f, &c).status, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_USER, "u1", "t1", 0, NULL, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TENANT, "t2", NULL, 0, NULL, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s9", "t2", STORE_KIND_TENANT, "t2", 0);

    /* Over the bound: refused, nothing changes. */
    f->s->cascade_max = 6;
    c = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, "t1");
    c.cascade = true;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_ETOOBIG);
    assert_string_equal(r.message,
                        "deleting tenant t1 would delete more than 6 objects; delete "
                        "part of what is under it first");
    assert_true(exists(f->s, STORE_KIND_DEVICE, "d1"));
    /* At the bound: the whole tree in one revision. */
    f->s->cascade_max = 7;
    rev = store_revision(f->s);
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.revision, rev + 1);
    assert_int_equal(r.mod_rev, rev + 1);
    assert_int_equal(store_revision(f->s), rev + 1);
    for (size_t i = 0; i < 7; i++) {
        assert_false(exists(f->s, kinds[i], order[i]));
    }
    /* Each object has its change record, children before parents. */
    assert_int_equal(store_changes_read(f->s, rev, 100, &cl), 0);
    assert_int_equal(cl.n, 7);
    assert_int_equal(cl.revision, rev + 1);
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(cl.items[i].revision, rev + 1);
        assert_true(cl.items[i].deleted);
        assert_string_equal(cl.items[i].object.id, order[i]);
        if (i < 6) {
            assert_string_equal(cl.items[i].object.tenant, "t1");
            assert_non_null(cl.items[i].object.parent_id);
        }
        assert_null(cl.items[i].object.body);
        assert_null(cl.items[i].object.name);
    }
    assert_string_equal(cl.items[0].object.parent_id, "s1");
    assert_int_equal(cl.items[3].object.parent_kind, STORE_KIND_TENANT);
    store_change_list_release(&cl);
    /* Counts, names and indexes follow; the scoped user and t2 stay. */
    assert_int_equal(count(f->s, "t1", STORE_KIND_DEVICE), 0);
    assert_int_equal(count(f->s, "t1", STORE_KIND_SITE), 0);
    assert_int_equal(count(f->s, "t1", STORE_KIND_USER), 1);
    assert_int_equal(cf_count(f->s, STORE_CF_NAMES), 0);
    assert_int_equal(cf_count(f->s, STORE_CF_CHILDREN), 1);
    assert_int_equal(cf_count(f->s, STORE_CF_SCOPED), 2);
    assert_true(exists(f->s, STORE_KIND_SITE, "s9"));
    /* A cascade of a leaf is a plain delete. */
    c = cmd_make(STORE_OP_DELETE, STORE_KIND_SITE, "s9");
    c.cascade = true;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_int_equal(cf_count(f->s, STORE_CF_CHILDREN), 0);
    /* Deep chains are collected without recursion. */
    f->s->cascade_max = STORE_CASCADE_MAX;
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_JOB, "j0", NULL, 0, NULL, 0);
    for (int i = 1; i < 200; i++) {
        char id[16];
        char parent[16];
        snprintf(id, sizeof id, "j%d", i);
        snprintf(parent, sizeof parent, "j%d", i - 1);
        fix_scoped(f, STORE_OP_CREATE, STORE_KIND_JOB, id, NULL, STORE_KIND_JOB, parent, 0);
    }
    c = cmd_make(STORE_OP_DELETE, STORE_KIND_JOB, "j0");
    c.cascade = true;
    assert_int_equal(fix_apply(f, &c).status, 0);
    assert_int_equal(cf_count(f->s, STORE_CF_OBJECTS), 2); /* t2, u1 */
}

/* Sessions s00..s(n-1) named n00.., expiring at base + i, scoped to t1. */
static void sessions(struct fix *f, int n, int64_t base)
{
    for (int i = 0; i < n; i++) {
        char id[16];
        char name[16];
        snprintf(id, sizeof id, "s%02d", i);
        snprintf(name, sizeof name, "n%02d", i);
        struct store_command c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_SESSION, id, "t1", 0, NULL);
        c.name = name;
        c.expires_ms = base + i;
        c.time_ms = 100;
        assert_int_equal(fix_apply(f, &c).status, 0);
    }
}

/* The auth generation moves with every session or user change (written,
 * deleted, pruned on expiry) and with a snapshot restore, and not with
 * changes to other kinds: the API's cache of verified sessions relies on
 * both. */
static void test_auth_generation(void **state)
{
    struct fix *f = *state;
    struct store_command c;
    uint64_t g = store_auth_generation(f->s);

    assert_int_not_equal(g, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TENANT, "t1", NULL, 0, NULL, 0);
    assert_int_equal(store_auth_generation(f->s), g);
    sessions(f, 2, 5000); /* expire at 5000 and 5001 */
    assert_int_equal(store_auth_generation(f->s), g + 2);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_USER, "u1", "t1", 0, NULL, 0);
    assert_int_equal(store_auth_generation(f->s), g + 3);
    fix_scoped(f, STORE_OP_UPDATE, STORE_KIND_TENANT, "t1", NULL, 0, NULL, 0);
    assert_int_equal(store_auth_generation(f->s), g + 3);
    fix_scoped(f, STORE_OP_DELETE, STORE_KIND_USER, "u1", "t1", 0, NULL, 0);
    assert_int_equal(store_auth_generation(f->s), g + 4);
    /* A tenant update at s00's expiry prunes it. */
    assert_true(exists(f->s, STORE_KIND_SESSION, "s00"));
    c = cmd_scoped(STORE_OP_UPDATE, STORE_KIND_TENANT, "t1", NULL, 0, NULL);
    c.time_ms = 5000;
    assert_int_equal(fix_apply(f, &c).status, 0);
    assert_false(exists(f->s, STORE_KIND_SESSION, "s00"));
    assert_int_equal(store_auth_generation(f->s), g + 5);
    /* A failed command changes nothing. */
    c = cmd_scoped(STORE_OP_DELETE, STORE_KIND_SESSION, "nope", "t1", 0, NULL);
    c.time_ms = 5000;
    assert_int_equal(fix_apply(f, &c).status, CAIRN_ENOTFOUND);
    assert_int_equal(store_auth_generation(f->s), g + 5);
}

/* The system generation moves with every system object change and not
 * with other kinds or a refused command: the liveness thread reads the
 * ownership record only after it moved. */
static void test_system_generation(void **state)
{
    struct fix *f = *state;
    struct store_command c;
    uint64_t g = store_system_generation(f->s);

    assert_int_not_equal(g, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TENANT, "t1", NULL, 0, NULL, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_MEMBER, "2", NULL, 0, NULL, 0);
    assert_int_equal(store_system_generation(f->s), g);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SYSTEM, "ring", NULL, 0, NULL, 0);
    assert_int_equal(store_system_generation(f->s), g + 1);
    fix_scoped(f, STORE_OP_UPDATE, STORE_KIND_SYSTEM, "ring", NULL, 0, NULL, 0);
    assert_int_equal(store_system_generation(f->s), g + 2);
    c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_SYSTEM, "ring", NULL, 0, NULL);
    assert_int_equal(fix_apply(f, &c).status, CAIRN_EEXIST);
    assert_int_equal(store_system_generation(f->s), g + 2);
    fix_scoped(f, STORE_OP_DELETE, STORE_KIND_SYSTEM, "ring", NULL, 0, NULL, 0);
    assert_int_equal(store_system_generation(f->s), g + 3);
}

static void test_expiry(void **state)
{
    struct fix *f = *state;
    struct store_change_list cl;
    struct store_command c;
    struct store_result r;
    struct store_object o;
    struct store_list l;
    struct store_query q = {0};
    uint64_t rev;
    char *id;

    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TENANT, "t1", NULL, 0, NULL, 0);
    sessions(f, 70, 1000);
    assert_int_equal(count(f->s, "t1", STORE_KIND_SESSION), 70);
    assert_int_equal(cf_count(f->s, STORE_CF_EXPIRY), 70);

    /* Readers: get returns an expired object, a query skips it. */
    assert_int_equal(store_object_get(f->s, STORE_KIND_SESSION, "s00", &o), 0);
    assert_int_equal(o.expires_ms, 1000);
    store_object_release(&o);
    q.kind = STORE_KIND_SESSION;
    q.limit = 100;
    q.now_ms = 1010; /* s00..s10 expired */
    assert_int_equal(store_object_query(f->s, &q, &l), 0);
    assert_int_equal(l.n, 59);
    assert_string_equal(l.items[0].id, "s11");
    store_list_release(&l);
    q.tenant = "t1";
    q.limit = 2;
    q.after = "s67";
    assert_int_equal(store_object_query(f->s, &q, &l), 0);
    assert_int_equal(l.n, 2);
    assert_false(l.more);
    store_list_release(&l);
    q.now_ms = 0; /* no time: nothing is skipped */
    q.after = NULL;
    q.limit = 100;
    assert_int_equal(store_object_query(f->s, &q, &l), 0);
    assert_int_equal(l.n, 70);
    store_list_release(&l);

    /* Apply treats an expired object as absent: no update, no delete. */
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_SESSION, "s69");
    c.time_ms = 1069;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_ENOTFOUND);
    assert_string_equal(r.message, "session s69 not found");
    /* ...and at that time pruning took s00..s31 (32, in expiry order) in
     * one revision, though the command failed. */
    rev = store_revision(f->s);
    assert_int_equal(r.revision, rev);
    assert_false(exists(f->s, STORE_KIND_SESSION, "s31"));
    assert_true(exists(f->s, STORE_KIND_SESSION, "s32"));
    assert_int_equal(count(f->s, "t1", STORE_KIND_SESSION), 38);
    assert_int_equal(store_changes_read(f->s, rev - 1, 100, &cl), 0);
    assert_int_equal(cl.n, 32);
    for (size_t i = 0; i < cl.n; i++) {
        char want[24];
        snprintf(want, sizeof want, "s%02zu", i);
        assert_string_equal(cl.items[i].object.id, want);
        assert_true(cl.items[i].deleted);
        assert_int_equal(cl.items[i].revision, rev);
    }
    store_change_list_release(&cl);
    assert_int_equal(store_name_lookup(f->s, STORE_KIND_SESSION, "n00", &id), CAIRN_ENOTFOUND);

    /* A create over an expired id that pruning has not reached replaces
     * it (and pruning takes s32..s63 in the same revision). */
    c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_SESSION, "s69", "t1", 0, NULL);
    c.name = "n69";
    c.expires_ms = 9000;
    c.time_ms = 2000;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.revision, rev + 1);
    assert_int_equal(r.create_rev, rev + 1);
    assert_int_equal(store_object_get(f->s, STORE_KIND_SESSION, "s69", &o), 0);
    assert_int_equal(o.expires_ms, 9000);
    store_object_release(&o);
    assert_false(exists(f->s, STORE_KIND_SESSION, "s63"));
    assert_true(exists(f->s, STORE_KIND_SESSION, "s64"));
    /* 32 pruned, the old s69 deleted and the new one created. */
    assert_int_equal(store_changes_read(f->s, rev, 100, &cl), 0);
    assert_int_equal(cl.n, 34);
    assert_string_equal(cl.items[32].object.id, "s69");
    assert_true(cl.items[32].deleted);
    assert_string_equal(cl.items[33].object.id, "s69");
    assert_false(cl.items[33].deleted);
    assert_string_equal(cl.items[33].object.name, "n69");
    store_change_list_release(&cl);
    assert_int_equal(count(f->s, "t1", STORE_KIND_SESSION), 6); /* s64..s68, s69 */

    /* A name held by an expired object is free: its holder goes. With a
     * budget of 4, pruning takes s64..s67 and leaves s68 (name n68). */
    f->s->cascade_max = 4;
    c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_SESSION, "new", "t1", 0, NULL);
    c.name = "n68";
    c.time_ms = 2000;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_false(exists(f->s, STORE_KIND_SESSION, "s68"));
    assert_int_equal(store_name_lookup(f->s, STORE_KIND_SESSION, "n68", &id), 0);
    assert_string_equal(id, "new");
    free(id);
    assert_int_equal(count(f->s, "t1", STORE_KIND_SESSION), 2);
    assert_int_equal(cf_count(f->s, STORE_CF_EXPIRY), 1);
    f->s->cascade_max = STORE_CASCADE_MAX;

    /* An expiry moves with an update; a version 2 update without one
     * makes the object permanent. */
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_SESSION, "s69");
    c.expires_ms = 9500;
    c.time_ms = 2000;
    assert_int_equal(fix_apply(f, &c).status, 0);
    assert_int_equal(cf_count(f->s, STORE_CF_EXPIRY), 1);
    c.expires_ms = 0;
    assert_int_equal(fix_apply(f, &c).status, 0);
    assert_int_equal(cf_count(f->s, STORE_CF_EXPIRY), 0);
    c.time_ms = 100000;
    assert_int_equal(fix_apply(f, &c).status, 0);
    assert_true(exists(f->s, STORE_KIND_SESSION, "s69"));
}

static void test_expiry_subtree(void **state)
{
    struct fix *f = *state;
    struct store_command c;
    struct store_result r;
    char *before;
    char *after;
    uint64_t rev;

    /* A job that expires, with two children that do not, and a session
     * that expires before it. */
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TENANT, "t1", NULL, 0, NULL, 0);
    c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_JOB, "j", "t1", 0, NULL);
    c.expires_ms = 5000;
    assert_int_equal(fix_apply(f, &c).status, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_JOB, "j.1", "t1", STORE_KIND_JOB, "j", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_JOB, "j.2", "t1", STORE_KIND_JOB, "j", 0);
    c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_SESSION, "x", NULL, 0, NULL);
    c.expires_ms = 4000;
    assert_int_equal(fix_apply(f, &c).status, 0);
    tenant_with(f, STORE_OP_UPDATE, "t1", STORE_KIND_JOB, (uint64_t)0, 0);
    assert_int_equal(count(f->s, "t1", STORE_KIND_JOB), 3);

    /* With a budget of 3, pruning takes the session and stops before the
     * job's subtree; the create removes that subtree itself, then fails on
     * the quota: rolled back, the subtree is there again. */
    f->s->cascade_max = 3;
    rev = store_revision(f->s);
    c = cmd_scoped(STORE_OP_CREATE, STORE_KIND_JOB, "j", "t1", 0, NULL);
    c.time_ms = 6000;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_ECONFLICT);
    assert_string_equal(r.message, "quota exceeded: tenant t1 allows at most 0 jobs");
    assert_int_equal(r.revision, rev + 1); /* the pruning */
    assert_false(exists(f->s, STORE_KIND_SESSION, "x"));
    assert_true(exists(f->s, STORE_KIND_JOB, "j"));
    assert_true(exists(f->s, STORE_KIND_JOB, "j.1"));
    assert_int_equal(count(f->s, "t1", STORE_KIND_JOB), 3);
    assert_int_equal(cf_count(f->s, STORE_CF_CHILDREN), 2);

    /* A subtree bigger than the budget: neither pruning nor the create may
     * remove it. */
    f->s->cascade_max = 2;
    before = dump(f->s);
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_ETOOBIG);
    assert_string_equal(r.message,
                        "expired job j has more than 2 objects under it to remove first");
    after = dump(f->s);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* With room, pruning removes it whole, and the create has its quota. */
    f->s->cascade_max = 3;
    tenant_with(f, STORE_OP_UPDATE, "t1", STORE_KIND_JOB, (uint64_t)1, 0);
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_false(exists(f->s, STORE_KIND_JOB, "j.1"));
    assert_false(exists(f->s, STORE_KIND_JOB, "j.2"));
    assert_int_equal(count(f->s, "t1", STORE_KIND_JOB), 1);
    assert_int_equal(cf_count(f->s, STORE_CF_CHILDREN), 0);
    assert_int_equal(cf_count(f->s, STORE_CF_EXPIRY), 0);
}

/* Expects one page of a query: the ids, and more. */
static void expect_page(struct fix *f, const struct store_query *q, const char *ids, bool more)
{
    struct store_list l;
    char got[256] = "";
    size_t len = 0;
    assert_int_equal(store_object_query(f->s, q, &l), 0);
    for (size_t i = 0; i < l.n; i++) {
        len +=
            (size_t)snprintf(got + len, sizeof got - len, "%s%s", i > 0 ? " " : "", l.items[i].id);
        assert_int_equal(l.items[i].kind, q->kind);
        assert_true(l.items[i].mod_rev <= l.revision);
    }
    assert_int_equal(l.revision, store_revision(f->s));
    if (strcmp(got, ids) != 0 || l.more != more) {
        fail_msg("query: got \"%s\" more=%d, want \"%s\" more=%d", got, l.more, ids, more);
    }
    store_list_release(&l);
}

static void test_query(void **state)
{
    struct fix *f = *state;
    struct store_query q = {0};
    struct store_list l;

    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TENANT, "t", NULL, 0, NULL, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TENANT, "t1", NULL, 0, NULL, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_TENANT, "t10", NULL, 0, NULL, 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "a", "t1", STORE_KIND_TENANT, "t1", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "b", "t1", STORE_KIND_TENANT, "t1", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "c", "t10", STORE_KIND_TENANT, "t10", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "d", "t", STORE_KIND_TENANT, "t", 0);
    for (int i = 9; i >= 0; i--) {
        char id[16];
        snprintf(id, sizeof id, "d%d", i);
        fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, id, i < 7 ? "t1" : "t10", STORE_KIND_SITE,
                   i < 7 ? "a" : "c", 0);
    }
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SERVICE, "v", "t1", STORE_KIND_SITE, "a", 0);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_DEVICE, "solo", NULL, 0, NULL, 0);

    /* By tenant: "t1" is neither "t" nor "t10". */
    q.kind = STORE_KIND_SITE;
    q.limit = 10;
    q.tenant = "t1";
    expect_page(f, &q, "a b", false);
    q.tenant = "t";
    expect_page(f, &q, "d", false);
    q.tenant = "t2";
    expect_page(f, &q, "", false);
    /* Pages of 3 of t1's devices. */
    q.kind = STORE_KIND_DEVICE;
    q.tenant = "t1";
    q.limit = 3;
    expect_page(f, &q, "d0 d1 d2", true);
    q.after = "d2";
    expect_page(f, &q, "d3 d4 d5", true);
    q.after = "d5";
    expect_page(f, &q, "d6", false);
    q.after = "d55"; /* a cursor between ids */
    expect_page(f, &q, "d6", false);
    q.after = "d6";
    expect_page(f, &q, "", false);
    /* By parent, of one kind: the service under site a is not a device. */
    q.tenant = NULL;
    q.after = NULL;
    q.parent_kind = STORE_KIND_SITE;
    q.parent_id = "a";
    q.limit = 4;
    expect_page(f, &q, "d0 d1 d2 d3", true);
    q.after = "d3";
    expect_page(f, &q, "d4 d5 d6", false);
    q.kind = STORE_KIND_SERVICE;
    q.after = NULL;
    expect_page(f, &q, "v", false);
    /* Both: the parent index, filtered by tenant. */
    q.kind = STORE_KIND_DEVICE;
    q.parent_id = "c";
    q.tenant = "t10";
    expect_page(f, &q, "d7 d8 d9", false);
    q.tenant = "t1";
    expect_page(f, &q, "", false);
    /* Neither: all of the kind, as a list. */
    q.parent_kind = 0;
    q.parent_id = NULL;
    q.tenant = NULL;
    q.limit = 10;
    expect_page(f, &q, "d0 d1 d2 d3 d4 d5 d6 d7 d8 d9", true);
    q.limit = 11;
    expect_page(f, &q, "d0 d1 d2 d3 d4 d5 d6 d7 d8 d9 solo", false);
    q.limit = 0;
    expect_page(f, &q, "", true);
    /* Bad queries. */
    q.kind = (enum store_kind)'x';
    assert_int_equal(store_object_query(f->s, &q, &l), CAIRN_EINVAL);
    q.kind = STORE_KIND_DEVICE;
    q.parent_kind = STORE_KIND_SITE;
    assert_int_equal(store_object_query(f->s, &q, &l), CAIRN_EINVAL); /* no parent id */
    q.parent_kind = 0;
    q.parent_id = "a";
    assert_int_equal(store_object_query(f->s, &q, &l), CAIRN_EINVAL);
    assert_int_equal(store_object_query(f->s, NULL, &l), CAIRN_EINVAL);
    q.parent_id = NULL;
    q.tenant = "";
    q.limit = 5;
    expect_page(f, &q, "", false);
}

/* A value as version 1 wrote it: the map of four. */
static void put_v1_value(struct fix *f, enum store_kind kind, const char *id, const char *name,
                         const char *body, uint64_t c, uint64_t m)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char key[1 + STORE_ID_MAX];
    char *err = NULL;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    store_mp_pack_key(&pk, "c");
    msgpack_pack_uint64(&pk, c);
    store_mp_pack_key(&pk, "m");
    msgpack_pack_uint64(&pk, m);
    store_mp_pack_key(&pk, "n");
    msgpack_pack_str(&pk, strlen(name));
    msgpack_pack_str_body(&pk, name, strlen(name));
    store_mp_pack_key(&pk, "b");
    msgpack_pack_bin(&pk, strlen(body));
    msgpack_pack_bin_body(&pk, body, strlen(body));
    rocksdb_put_cf(f->s->db.db, f->s->db.wopts, f->s->db.cf[STORE_CF_OBJECTS], key,
                   store_key_object(kind, id, strlen(id), key), sb.data, sb.size, &err);
    assert_null(err);
    rocksdb_put_cf(f->s->db.db, f->s->db.wopts, f->s->db.cf[STORE_CF_NAMES], key,
                   store_key_name(kind, name, strlen(name), key), id, strlen(id), &err);
    assert_null(err);
    msgpack_sbuffer_destroy(&sb);
}

static void test_old_values(void **state)
{
    struct fix *f = *state;
    struct store_command c;
    struct store_object o;
    struct store_list l;
    struct store_query q = {0};

    put_v1_value(f, STORE_KIND_TENANT, "old", "acme", "{\"a\":1}", 1, 1);
    assert_int_equal(store_object_get(f->s, STORE_KIND_TENANT, "old", &o), 0);
    assert_string_equal(o.name, "acme");
    assert_string_equal(o.body, "{\"a\":1}");
    assert_null(o.tenant);
    assert_int_equal(o.parent_kind, 0);
    assert_int_equal(o.expires_ms, 0);
    store_object_release(&o);
    assert_int_equal(store_object_list(f->s, STORE_KIND_TENANT, NULL, 10, &l), 0);
    assert_int_equal(l.n, 1);
    store_list_release(&l);
    q.kind = STORE_KIND_TENANT;
    q.limit = 10;
    q.now_ms = 5;
    assert_int_equal(store_object_query(f->s, &q, &l), 0);
    assert_int_equal(l.n, 1);
    store_list_release(&l);
    /* It can parent new objects and be updated by both versions. */
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s", "old", STORE_KIND_TENANT, "old", 0);
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "old");
    c.version = 1;
    c.name = "acme";
    assert_int_equal(fix_apply(f, &c).status, 0);
    tenant_with(f, STORE_OP_UPDATE, "old", STORE_KIND_SITE, (uint64_t)1, 0);
    assert_int_equal(store_object_get(f->s, STORE_KIND_TENANT, "old", &o), 0);
    assert_int_equal(o.create_rev, 1);
    assert_null(o.name); /* the last update named none */
    assert_int_equal(o.n_limits, 1);
    store_object_release(&o);
    fix_scoped(f, STORE_OP_CREATE, STORE_KIND_SITE, "s2", "old", 0, NULL, CAIRN_ECONFLICT);
    /* And deleted, with its child. */
    c = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, "old");
    c.cascade = true;
    assert_int_equal(fix_apply(f, &c).status, 0);
    assert_int_equal(cf_count(f->s, STORE_CF_OBJECTS), 0);
    assert_int_equal(cf_count(f->s, STORE_CF_COUNTS), 0);
}

int run_tree_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parent_and_refs, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_parent_fixed, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_quota, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_counts, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_delete_children, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_cascade, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_auth_generation, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_system_generation, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_expiry, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_expiry_subtree, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_query, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_old_values, fix_setup, fix_teardown),
    };
    return cmocka_run_group_tests_name("store tree", tests, NULL, NULL);
}
