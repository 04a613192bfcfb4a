/*
 * Apply and read tests: every operation's success and failure, revisions,
 * unique names, request-id replay and expiry, skipped replays, storage
 * failure, persistence and list pages.
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

static void assert_object(struct store *s, enum store_kind kind, const char *id, const char *name,
                          const char *body, uint64_t c, uint64_t m)
{
    struct store_object o;
    assert_int_equal(store_object_get(s, kind, id, &o), 0);
    assert_int_equal(o.kind, kind);
    assert_string_equal(o.id, id);
    if (name == NULL) {
        assert_null(o.name);
    } else {
        assert_non_null(o.name);
        assert_string_equal(o.name, name);
    }
    assert_string_equal(o.body, body);
    assert_int_equal(o.body_len, strlen(body));
    assert_int_equal(o.create_rev, c);
    assert_int_equal(o.mod_rev, m);
    store_object_release(&o);
}

static void assert_name(struct store *s, enum store_kind kind, const char *name, const char *id)
{
    char *got = NULL;
    if (id == NULL) {
        assert_int_equal(store_name_lookup(s, kind, name, &got), CAIRN_ENOTFOUND);
        assert_null(got);
        return;
    }
    assert_int_equal(store_name_lookup(s, kind, name, &got), 0);
    assert_string_equal(got, id);
    free(got);
}

static void test_create(void **state)
{
    struct fix *f = *state;
    struct store_command c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t1");
    struct store_result r;
    struct store_object o;

    assert_int_equal(store_revision(f->s), 0);
    assert_int_equal(store_applied_index(f->s), 0);
    c.name = "acme";
    c.body = "{\"plan\":\"gold\"}";
    c.body_len = strlen(c.body);
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.message, "");
    assert_string_equal(r.id, "t1");
    assert_int_equal(r.revision, 1);
    assert_int_equal(r.create_rev, 1);
    assert_int_equal(r.mod_rev, 1);
    assert_false(r.replayed);
    assert_int_equal(store_revision(f->s), 1);
    assert_object(f->s, STORE_KIND_TENANT, "t1", "acme", "{\"plan\":\"gold\"}", 1, 1);
    assert_name(f->s, STORE_KIND_TENANT, "acme", "t1");

    /* No body and no name. */
    c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t2");
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_object(f->s, STORE_KIND_TENANT, "t2", NULL, "", 2, 2);

    /* Reads of what is not there. */
    assert_int_equal(store_object_get(f->s, STORE_KIND_TENANT, "t3", &o), CAIRN_ENOTFOUND);
    assert_int_equal(store_object_get(f->s, STORE_KIND_MEMBER, "t1", &o), CAIRN_ENOTFOUND);
    assert_int_equal(store_object_get(f->s, STORE_KIND_TENANT, "", &o), CAIRN_ENOTFOUND);
    assert_int_equal(store_object_get(f->s, (enum store_kind)'x', "t1", &o), CAIRN_EINVAL);
    assert_name(f->s, STORE_KIND_MEMBER, "acme", NULL);
    assert_name(f->s, STORE_KIND_TENANT, "nope", NULL);
}

static void test_create_conflicts(void **state)
{
    struct fix *f = *state;
    struct store_result r;
    char *before;
    char *after;

    fix_create(f, "t1", "acme");
    before = dump(f->s);
    r = fix_create(f, "t1", "other");
    assert_int_equal(r.status, CAIRN_EEXIST);
    assert_string_equal(r.message, "tenant t1 already exists");
    assert_string_equal(r.id, "t1");
    assert_int_equal(r.revision, 1);
    r = fix_create(f, "t2", "acme");
    assert_int_equal(r.status, CAIRN_EEXIST);
    assert_string_equal(r.message, "name \"acme\" is taken by tenant t1");
    assert_int_equal(r.revision, 1);
    after = dump(f->s);
    assert_string_equal(before, after);
    assert_int_equal(store_applied_index(f->s), 3);
    assert_name(f->s, STORE_KIND_TENANT, "other", NULL);
    free(before);
    free(after);

    /* Kinds are separate: same id and name as a member. */
    struct store_command c = cmd_make(STORE_OP_CREATE, STORE_KIND_MEMBER, "t1");
    c.name = "acme";
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_name(f->s, STORE_KIND_MEMBER, "acme", "t1");
    assert_name(f->s, STORE_KIND_TENANT, "acme", "t1");
}

static void test_update(void **state)
{
    struct fix *f = *state;
    struct store_command c;
    struct store_result r;

    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "t9");
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_ENOTFOUND);
    assert_string_equal(r.message, "tenant t9 not found");
    assert_string_equal(r.id, "t9");

    fix_create(f, "t1", "acme");  /* rev 1 */
    fix_create(f, "t2", "bravo"); /* rev 2 */

    /* If-Match against the wrong revision. */
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "t1");
    c.name = "acme";
    c.body = "{\"v\":2}";
    c.body_len = strlen(c.body);
    c.if_match = 5;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_EPRECONDITION);
    assert_contains(r.message, "If-Match revision 5 does not match current revision 1");
    assert_contains(r.message, "tenant t1");
    assert_int_equal(r.revision, 2);

    /* The right If-Match: mod_rev moves, create_rev stays. */
    c.if_match = 1;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.revision, 3);
    assert_int_equal(r.create_rev, 1);
    assert_int_equal(r.mod_rev, 3);
    assert_object(f->s, STORE_KIND_TENANT, "t1", "acme", "{\"v\":2}", 1, 3);

    /* Renaming onto another object's name fails. */
    c.if_match = 0;
    c.name = "bravo";
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_EEXIST);
    assert_string_equal(r.message, "name \"bravo\" is taken by tenant t2");
    assert_object(f->s, STORE_KIND_TENANT, "t1", "acme", "{\"v\":2}", 1, 3);

    /* A rename moves the name index. */
    c.name = "charlie";
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.mod_rev, 4);
    assert_name(f->s, STORE_KIND_TENANT, "acme", NULL);
    assert_name(f->s, STORE_KIND_TENANT, "charlie", "t1");
    /* The freed name can be taken. */
    r = fix_create(f, "t3", "acme");
    assert_int_equal(r.status, 0);
    assert_int_equal(r.revision, 5);

    /* An update without a name drops it. */
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "t1");
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_object(f->s, STORE_KIND_TENANT, "t1", NULL, "", 1, 6);
    assert_name(f->s, STORE_KIND_TENANT, "charlie", NULL);
    assert_int_equal(cf_count(f->s, STORE_CF_NAMES), 2);
}

static void test_delete(void **state)
{
    struct fix *f = *state;
    struct store_command c;
    struct store_result r;
    struct store_object o;

    c = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, "t1");
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_ENOTFOUND);
    assert_string_equal(r.message, "tenant t1 not found");

    fix_create(f, "t1", "acme"); /* rev 1 */
    c.if_match = 7;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_EPRECONDITION);
    assert_contains(r.message, "If-Match revision 7 does not match current revision 1");
    assert_int_equal(store_object_get(f->s, STORE_KIND_TENANT, "t1", &o), 0);
    store_object_release(&o);

    c.if_match = 1;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.revision, 2);
    assert_int_equal(r.create_rev, 0);
    assert_int_equal(r.mod_rev, 2);
    assert_int_equal(store_object_get(f->s, STORE_KIND_TENANT, "t1", &o), CAIRN_ENOTFOUND);
    assert_name(f->s, STORE_KIND_TENANT, "acme", NULL);
    assert_int_equal(cf_count(f->s, STORE_CF_NAMES), 0);
    assert_int_equal(cf_count(f->s, STORE_CF_OBJECTS), 0);

    /* The name is free again, and so is the id. */
    r = fix_create(f, "t1", "acme");
    assert_int_equal(r.status, 0);
    assert_int_equal(r.create_rev, 3);
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_EPRECONDITION); /* if_match 1 is stale now */
}

static void test_put(void **state)
{
    struct fix *f = *state;
    struct store_command c = cmd_make(STORE_OP_PUT, STORE_KIND_MEMBER, "1");
    struct store_result r;

    /* Creates; If-Match is not checked when there is nothing to match. */
    c.name = "node1";
    c.body = "{\"addr\":\"a\"}";
    c.body_len = strlen(c.body);
    c.if_match = 99;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.create_rev, 1);
    assert_int_equal(r.mod_rev, 1);

    /* Replaces, keeping create_rev; If-Match is checked. */
    c.body = "{\"addr\":\"b\"}";
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_EPRECONDITION);
    c.if_match = 1;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.create_rev, 1);
    assert_int_equal(r.mod_rev, 2);
    assert_object(f->s, STORE_KIND_MEMBER, "1", "node1", "{\"addr\":\"b\"}", 1, 2);

    /* Names stay unique through PUT, both creating and replacing. */
    c = cmd_make(STORE_OP_PUT, STORE_KIND_MEMBER, "2");
    c.name = "node1";
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_EEXIST);
    assert_string_equal(r.message, "name \"node1\" is taken by member 1");
    c.name = "node2";
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    c.name = "node1";
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_EEXIST);
    /* Renaming through PUT frees the old name. */
    c = cmd_make(STORE_OP_PUT, STORE_KIND_MEMBER, "1");
    c.name = "first";
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_name(f->s, STORE_KIND_MEMBER, "node1", NULL);
    assert_name(f->s, STORE_KIND_MEMBER, "first", "1");
    assert_name(f->s, STORE_KIND_MEMBER, "node2", "2");
}

static void test_revisions(void **state)
{
    struct fix *f = *state;
    struct store_command c;
    struct store_result r;

    assert_int_equal(fix_create(f, "a", NULL).revision, 1);
    assert_int_equal(fix_create(f, "b", NULL).revision, 2);
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "a");
    r = fix_apply(f, &c);
    assert_int_equal(r.revision, 3);
    /* Failures report the current revision and bump nothing. */
    r = fix_create(f, "a", NULL);
    assert_int_equal(r.status, CAIRN_EEXIST);
    assert_int_equal(r.revision, 3);
    assert_int_equal(store_revision(f->s), 3);
    c = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, "b");
    assert_int_equal(fix_apply(f, &c).revision, 4);
    c = cmd_make(STORE_OP_PUT, STORE_KIND_MEMBER, "1");
    assert_int_equal(fix_apply(f, &c).revision, 5);
    assert_object(f->s, STORE_KIND_TENANT, "a", NULL, "", 1, 3);
    assert_object(f->s, STORE_KIND_MEMBER, "1", NULL, "", 5, 5);
    assert_int_equal(store_revision(f->s), 5);
    assert_int_equal(store_applied_index(f->s), 6);
}

static void test_failures_change_nothing(void **state)
{
    struct fix *f = *state;
    static const unsigned char garbage[] = {0xc1, 0x00, 0x13};
    struct store_command c;
    struct store_result r;
    char *before;
    char *after;
    uint64_t requests;

    fix_create(f, "t1", "acme");
    fix_create(f, "t2", "bravo");
    c = cmd_make(STORE_OP_PUT, STORE_KIND_MEMBER, "1");
    c.request_id = "seed";
    fix_apply(f, &c);
    before = dump(f->s);
    requests = cf_count(f->s, STORE_CF_REQUESTS);

    struct store_command fails[6];
    fails[0] = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t1");
    fails[1] = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t3");
    fails[1].name = "acme";
    fails[2] = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "t9");
    fails[3] = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "t1");
    fails[3].name = "bravo";
    fails[4] = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, "t2");
    fails[4].if_match = 77;
    fails[5] = cmd_make(STORE_OP_PUT, STORE_KIND_TENANT, "t2");
    fails[5].if_match = 1;
    for (size_t i = 0; i < sizeof fails / sizeof fails[0]; i++) {
        uint64_t index = store_applied_index(f->s);
        r = fix_apply(f, &fails[i]);
        assert_int_not_equal(r.status, 0);
        assert_true(r.message[0] != '\0');
        assert_int_equal(store_applied_index(f->s), index + 1);
    }
    /* Undecodable entries are answered and consumed. */
    r = fix_apply_raw(f, garbage, sizeof garbage);
    assert_int_equal(r.status, CAIRN_EMALFORMED);
    assert_true(r.message[0] != '\0');
    assert_int_equal(r.revision, 3);
    r = fix_apply_raw(f, NULL, 0);
    assert_int_equal(r.status, CAIRN_EMALFORMED);

    after = dump(f->s);
    assert_string_equal(before, after);
    assert_int_equal(cf_count(f->s, STORE_CF_REQUESTS), requests);
    assert_int_equal(store_revision(f->s), 3);
    assert_int_equal(store_applied_index(f->s), 11);
    /* The applied index survives a restart, though nothing else changed. */
    fix_reopen(f);
    assert_int_equal(store_applied_index(f->s), 11);
    free(before);
    free(after);
}

/* A command of a version this store does not read is refused, not
 * consumed: nothing is written, the applied index stays, and the same
 * entry applies once the store reads its version (the node was upgraded).
 * Version 0 is garbage no build writes: it is consumed as before. */
static void test_newer_version_refused(void **state)
{
    struct fix *f = *state;
    /* {"v": 5, "op": 1, "k": 't', "id": "t9\0", "ts": 1000, "zz": 1}:
     * a future version with a field this build does not know. */
    static const unsigned char v5[] = {0x86, 0xa1, 'v',  0x05, 0xa2, 'o', 'p', 0x01, 0xa1, 'k',
                                       't',  0xa2, 'i',  'd',  0xa3, 't', '9', 0x00, 0xa2, 't',
                                       's',  0xcd, 0x03, 0xe8, 0xa2, 'z', 'z', 0x01};
    static const unsigned char v0[] = {0x81, 0xa1, 'v', 0x00};
    const struct store_result *res = NULL;
    char msg[CAIRN_ERRMSG_SIZE] = "";
    struct store_command c;
    struct store_result r;
    uint64_t version = 0;
    char *before;
    char *after;
    void *buf;
    size_t len;

    fix_create(f, "t1", "acme");
    before = dump(f->s);
    assert_int_equal(store_command_version(v5, sizeof v5, &version), 0);
    assert_int_equal(version, 5);
    assert_int_equal(store_apply(f->s, f->index + 1, v5, sizeof v5, &res, msg, sizeof msg),
                     CAIRN_EUNSUPPORTED);
    assert_contains(msg, "command version 5 is newer than this build (1..4): upgrade this node");
    assert_int_equal(store_applied_index(f->s), f->index);
    after = dump(f->s);
    assert_string_equal(before, after);
    free(after);

    /* A store limited to version 1 (an older build) refuses version 2 the
     * same way, and still applies version 1. */
    assert_int_equal(store_command_version_limit(f->s, 0), CAIRN_EINVAL);
    assert_int_equal(store_command_version_limit(f->s, 5), CAIRN_EINVAL);
    assert_int_equal(store_command_version_limit(f->s, 1), 0);
    c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t2");
    c.version = 2;
    assert_int_equal(store_command_encode(&c, &buf, &len), 0);
    msg[0] = '\0';
    assert_int_equal(store_apply(f->s, f->index + 1, buf, len, &res, msg, sizeof msg),
                     CAIRN_EUNSUPPORTED);
    assert_contains(msg, "command version 2 is newer than this build (1..1)");
    after = dump(f->s);
    assert_string_equal(before, after);
    free(after);
    c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t3");
    c.version = 1;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);

    /* Upgraded: the refused entry now applies. */
    assert_int_equal(store_command_version_limit(f->s, 2), 0);
    r = fix_apply_raw(f, buf, len);
    assert_int_equal(r.status, 0);
    assert_int_equal(store_command_version_max(f->s), 2);
    free(buf);
    assert_int_equal(store_command_version_limit(f->s, STORE_COMMAND_VERSION), 0);

    /* Garbage is consumed deterministically, as before. */
    r = fix_apply_raw(f, v0, sizeof v0);
    assert_int_equal(r.status, CAIRN_EUNSUPPORTED);

    /* The lowest version that carries a command. */
    c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t4");
    assert_int_equal(store_command_version_needed(&c), 1);
    c.tenant = "t1";
    assert_int_equal(store_command_version_needed(&c), 2);
    c = cmd_make(STORE_OP_AUDIT, STORE_KIND_TENANT, "t4");
    assert_int_equal(store_command_version_needed(&c), 2);
    c = cmd_make(STORE_OP_CREATE, STORE_KIND_SESSION, "s1");
    c.expires_ms = 5000;
    assert_int_equal(store_command_version_needed(&c), 2);
    free(before);
}

/* A fenced command applies only while its fence object is at the revision
 * it names; otherwise it fails with CAIRN_EPRECONDITION and changes
 * nothing. */
static void test_fence(void **state)
{
    struct fix *f = *state;
    struct store_command c;
    struct store_result r;
    uint64_t epoch;
    char *before;
    char *after;

    r = fix_scoped(f, STORE_OP_PUT, STORE_KIND_SYSTEM, "ownership", NULL, 0, NULL, 0);
    epoch = r.mod_rev;
    fix_create(f, "t1", "acme");
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "t1");
    c.version = 3;
    c.body = "{\"x\":1}";
    c.body_len = strlen(c.body);
    c.fence = (struct store_fence){STORE_KIND_SYSTEM, "ownership", epoch};
    assert_int_equal(fix_apply(f, &c).status, 0);

    /* The epoch moves on: the same write is refused. */
    fix_scoped(f, STORE_OP_PUT, STORE_KIND_SYSTEM, "ownership", NULL, 0, NULL, 0);
    before = dump(f->s);
    c.body = "{\"x\":2}";
    c.body_len = strlen(c.body);
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_EPRECONDITION);
    assert_non_null(strstr(r.message, "fenced: system ownership is at revision"));
    after = dump(f->s);
    assert_string_equal(before, after);
    free(after);

    /* A fence on an object that does not exist refuses too. */
    c.fence = (struct store_fence){STORE_KIND_SYSTEM, "nothing", 1};
    r = fix_apply(f, &c);
    assert_int_equal(r.status, CAIRN_EPRECONDITION);
    assert_string_equal(r.message, "fenced: system nothing does not exist");
    after = dump(f->s);
    assert_string_equal(before, after);
    free(after);
    free(before);
}

static void test_replay_skipped(void **state)
{
    struct fix *f = *state;
    const struct store_result *res = (const void *)1;
    char msg[CAIRN_ERRMSG_SIZE];
    struct store_command c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "late");
    char *before;
    char *after;
    void *buf;
    size_t len;

    f->index = 4; /* the log may start anywhere */
    fix_create(f, "t1", NULL);
    assert_int_equal(store_applied_index(f->s), 5);
    before = dump(f->s);
    assert_int_equal(store_command_encode(&c, &buf, &len), 0);
    for (uint64_t index = 0; index <= 5; index++) {
        res = (const void *)1;
        assert_int_equal(store_apply(f->s, index, buf, len, &res, msg, sizeof msg), 0);
        assert_null(res);
    }
    after = dump(f->s);
    assert_string_equal(before, after);
    assert_int_equal(store_applied_index(f->s), 5);
    /* Index 6 applies. */
    assert_int_equal(store_apply(f->s, 6, buf, len, &res, msg, sizeof msg), 0);
    assert_non_null(res);
    assert_int_equal(res->status, 0);
    free(buf);
    free(before);
    free(after);
}

static void test_request_replay(void **state)
{
    struct fix *f = *state;
    struct store_command c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t1");
    struct store_result first;
    struct store_result again;
    char *before;
    char *after;

    c.name = "acme";
    c.request_id = "req-1";
    c.fingerprint = 7;
    first = fix_apply(f, &c);
    assert_int_equal(first.status, 0);
    assert_false(first.replayed);
    fix_create(f, "t2", NULL); /* the revision moves on: rev 2 */
    before = dump(f->s);

    /* The same request again: the first answer, nothing applied. */
    again = fix_apply(f, &c);
    assert_true(again.replayed);
    assert_int_equal(again.status, first.status);
    assert_string_equal(again.message, first.message);
    assert_string_equal(again.id, first.id);
    assert_int_equal(again.revision, first.revision);
    assert_int_equal(again.create_rev, first.create_rev);
    assert_int_equal(again.mod_rev, first.mod_rev);
    after = dump(f->s);
    assert_string_equal(before, after);
    free(after);

    /* Same request id and fingerprint: the request, not the command, is
     * what the id names. */
    struct store_command other = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t3");
    other.request_id = "req-1";
    other.fingerprint = 7;
    again = fix_apply(f, &other);
    assert_true(again.replayed);
    assert_string_equal(again.id, "t1");

    /* A different fingerprint: the id was reused for another request. */
    other.fingerprint = 8;
    again = fix_apply(f, &other);
    assert_int_equal(again.status, CAIRN_EIDEMPOTENCY);
    assert_false(again.replayed);
    assert_contains(again.message, "req-1");
    assert_int_equal(again.revision, 2);
    after = dump(f->s);
    assert_string_equal(before, after);
    free(after);

    /* A failure is remembered too. */
    struct store_command bad = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, "nope");
    bad.request_id = "req-2";
    first = fix_apply(f, &bad);
    assert_int_equal(first.status, CAIRN_ENOTFOUND);
    again = fix_apply(f, &bad);
    assert_true(again.replayed);
    assert_int_equal(again.status, CAIRN_ENOTFOUND);
    assert_string_equal(again.message, first.message);

    /* And across a restart. */
    fix_reopen(f);
    again = fix_apply(f, &c);
    assert_true(again.replayed);
    assert_int_equal(again.revision, 1);
    assert_int_equal(cf_count(f->s, STORE_CF_REQUESTS), 2);
    assert_int_equal(cf_count(f->s, STORE_CF_REQUEST_TIMES), 2);
    after = dump(f->s);
    assert_string_equal(before, after);
    free(after);
    free(before);
}

static void test_request_prune(void **state)
{
    struct fix *f = *state;
    struct store_command c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t1");
    struct store_command tick = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, "none");
    struct store_result r;
    char rid[16];
    char id[16];
    const int64_t t0 = 5000;

    c.request_id = "old";
    c.fingerprint = 1;
    c.time_ms = t0;
    fix_apply(f, &c);

    /* Exactly 24 hours later the id still answers. */
    c.time_ms = t0 + STORE_REQUEST_TTL_MS;
    r = fix_apply(f, &c);
    assert_true(r.replayed);
    assert_int_equal(cf_count(f->s, STORE_CF_REQUESTS), 1);

    /* One millisecond more and any apply forgets it. */
    tick.time_ms = t0 + STORE_REQUEST_TTL_MS + 1;
    fix_apply(f, &tick);
    assert_int_equal(cf_count(f->s, STORE_CF_REQUESTS), 0);
    assert_int_equal(cf_count(f->s, STORE_CF_REQUEST_TIMES), 0);
    /* So the id is new again: a different fingerprint is no conflict. */
    c.fingerprint = 2;
    c.id = "t2";
    c.time_ms = tick.time_ms;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_false(r.replayed);
    assert_string_equal(r.id, "t2");

    /* 40 ids at t0 + 0..39 ms; at most 32 go per apply, oldest first. */
    for (int i = 0; i < 40; i++) {
        snprintf(rid, sizeof rid, "r%02d", i);
        snprintf(id, sizeof id, "x%02d", i);
        c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, id);
        c.request_id = rid;
        c.time_ms = 2 * STORE_REQUEST_TTL_MS + i;
        fix_apply(f, &c);
    }
    assert_int_equal(cf_count(f->s, STORE_CF_REQUESTS), 41);
    tick.time_ms = 3 * STORE_REQUEST_TTL_MS + 100;
    fix_apply(f, &tick); /* "old" reused at t2's time, r00..r30 */
    assert_int_equal(cf_count(f->s, STORE_CF_REQUESTS), 9);
    assert_int_equal(cf_count(f->s, STORE_CF_REQUEST_TIMES), 9);

    /* An expired id that pruning has not reached yet is already gone for
     * lookups: reusing r39 with another fingerprint applies. Pruning the
     * other 8 and the new entry share one batch. */
    c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "y");
    c.request_id = "r39";
    c.fingerprint = 99;
    c.time_ms = tick.time_ms;
    r = fix_apply(f, &c);
    assert_int_equal(r.status, 0);
    assert_false(r.replayed);
    assert_int_equal(cf_count(f->s, STORE_CF_REQUESTS), 1);
    assert_int_equal(cf_count(f->s, STORE_CF_REQUEST_TIMES), 1);
    r = fix_apply(f, &c);
    assert_true(r.replayed);
    assert_string_equal(r.id, "y");
}

static void test_write_failure(void **state)
{
    struct fix *f = *state;
    struct store_command c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t2");
    const struct store_result *res = (const void *)1;
    char msg[CAIRN_ERRMSG_SIZE] = "";
    struct store_object o;
    char *before;
    char *after;
    void *buf;
    size_t len;

    fix_create(f, "t1", NULL);
    before = dump(f->s);
    assert_int_equal(store_command_encode(&c, &buf, &len), 0);
    f->s->fail_writes = 1;
    assert_int_not_equal(store_apply(f->s, 2, buf, len, &res, msg, sizeof msg), 0);
    assert_contains(msg, "rocksdb write: ");
    assert_ptr_equal(res, (const void *)1); /* untouched on failure */
    assert_int_equal(store_applied_index(f->s), 1);
    assert_int_equal(store_revision(f->s), 1);
    assert_int_equal(store_object_get(f->s, STORE_KIND_TENANT, "t2", &o), CAIRN_ENOTFOUND);
    after = dump(f->s);
    assert_string_equal(before, after);
    /* The same entry applies once storage works. */
    assert_int_equal(store_apply(f->s, 2, buf, len, &res, msg, sizeof msg), 0);
    assert_int_equal(res->status, 0);
    assert_int_equal(res->revision, 2);
    free(buf);
    free(before);
    free(after);
}

static void test_persistence(void **state)
{
    struct fix *f = *state;
    struct store_command c;
    char *before;
    char *after;

    for (int i = 0; i < 20; i++) {
        char id[16];
        char name[16];
        snprintf(id, sizeof id, "t%02d", i);
        snprintf(name, sizeof name, "n%02d", i);
        fix_create(f, id, name);
    }
    c = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, "t05");
    fix_apply(f, &c);
    c = cmd_make(STORE_OP_PUT, STORE_KIND_MEMBER, "3");
    c.body = "{\"raft\":\"10.0.0.3:7000\"}";
    c.body_len = strlen(c.body);
    fix_apply(f, &c);
    before = dump(f->s);
    fix_reopen(f);
    after = dump(f->s);
    assert_string_equal(before, after);
    assert_int_equal(store_applied_index(f->s), 22);
    assert_int_equal(store_revision(f->s), 22);
    assert_name(f->s, STORE_KIND_TENANT, "n07", "t07");
    assert_name(f->s, STORE_KIND_TENANT, "n05", NULL);
    /* After a restart raft replays from its last snapshot: skipped. */
    {
        const struct store_result *res;
        char msg[CAIRN_ERRMSG_SIZE];
        void *buf;
        size_t len;
        assert_int_equal(store_command_encode(&c, &buf, &len), 0);
        assert_int_equal(store_apply(f->s, 22, buf, len, &res, msg, sizeof msg), 0);
        assert_null(res);
        free(buf);
    }
    free(before);
    free(after);
}

static void test_list_pages(void **state)
{
    struct fix *f = *state;
    struct store_list l;
    char after[16] = "";
    size_t total = 0;
    uint64_t rev;

    for (int i = 24; i >= 0; i--) { /* out of order on purpose */
        char id[16];
        snprintf(id, sizeof id, "t%02d", i);
        fix_create(f, id, NULL);
    }
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        struct store_command c = cmd_make(STORE_OP_PUT, STORE_KIND_MEMBER, id);
        fix_apply(f, &c);
    }
    rev = store_revision(f->s);
    assert_int_equal(rev, 28);

    /* Pages of 10: 10, 10, 5, each at the revision it was read at. */
    for (int page = 0; page < 3; page++) {
        assert_int_equal(
            store_object_list(f->s, STORE_KIND_TENANT, page == 0 ? NULL : after, 10, &l), 0);
        assert_int_equal(l.n, page < 2 ? 10 : 5);
        assert_int_equal(l.more, page < 2);
        assert_int_equal(l.revision, rev);
        for (size_t i = 0; i < l.n; i++) {
            char want[16];
            snprintf(want, sizeof want, "t%02zu", total + i);
            assert_string_equal(l.items[i].id, want);
            assert_int_equal(l.items[i].kind, STORE_KIND_TENANT);
            assert_true(l.items[i].mod_rev <= l.revision);
        }
        total += l.n;
        snprintf(after, sizeof after, "%s", l.items[l.n - 1].id);
        store_list_release(&l);
        /* Writes between pages show in the next page's revision. */
        struct store_command c = cmd_make(STORE_OP_PUT, STORE_KIND_MEMBER, "9");
        fix_apply(f, &c);
        rev++;
    }
    assert_int_equal(total, 25);

    /* Cursors between ids, past the end, and an empty page. */
    assert_int_equal(store_object_list(f->s, STORE_KIND_TENANT, "t10x", 2, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].id, "t11");
    store_list_release(&l);
    assert_int_equal(store_object_list(f->s, STORE_KIND_TENANT, "t24", 10, &l), 0);
    assert_int_equal(l.n, 0);
    assert_false(l.more);
    store_list_release(&l);
    assert_int_equal(store_object_list(f->s, STORE_KIND_TENANT, NULL, 0, &l), 0);
    assert_int_equal(l.n, 0);
    assert_true(l.more);
    store_list_release(&l);
    /* Members are their own range. */
    assert_int_equal(store_object_list(f->s, STORE_KIND_MEMBER, NULL, 100, &l), 0);
    assert_int_equal(l.n, 4);
    assert_false(l.more);
    assert_string_equal(l.items[0].id, "0");
    assert_string_equal(l.items[3].id, "9");
    store_list_release(&l);
    assert_int_equal(store_object_list(f->s, (enum store_kind)'x', NULL, 10, &l), CAIRN_EINVAL);
}

int run_apply_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_create_conflicts, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_update, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_delete, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_put, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_revisions, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_failures_change_nothing, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_newer_version_refused, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_fence, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_replay_skipped, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_request_replay, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_request_prune, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_write_failure, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_persistence, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_list_pages, fix_setup, fix_teardown),
    };
    return cmocka_run_group_tests_name("store apply", tests, NULL, NULL);
}
