/*
 * Codec tests: key encodings (contiguity and order), the command and result
 * msgpack codecs (round trips, limits, every truncation, garbage), the
 * bounded msgpack reader, stored records and CRC-32C.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

/* Bytewise comparison as RocksDB's default comparator does it. */
static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0) {
        return c < 0 ? -1 : 1;
    }
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static void test_key_order(void **state)
{
    static const char *ids[] = {"a", "a\x01", "ab",   "abc",  "b",        "z",
                                "0", "A",     "\x7f", "\x80", "\xff\xff", "\xff"};
    enum { N = sizeof ids / sizeof ids[0] };
    static const enum store_kind kinds[] = {STORE_KIND_TENANT, STORE_KIND_MEMBER};
    char keys[2][N][1 + STORE_ID_MAX];
    size_t lens[2][N];
    char names[N][1 + STORE_NAME_MAX];
    (void)state;

    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < N; i++) {
            lens[k][i] = store_key_object(kinds[k], ids[i], strlen(ids[i]), keys[k][i]);
            assert_int_equal(lens[k][i], 1 + strlen(ids[i]));
            assert_int_equal((unsigned char)keys[k][i][0], kinds[k]);
        }
    }
    for (int k = 0; k < 2; k++) {
        char lo[1];
        char hi[1];
        store_key_range(kinds[k], lo, hi);
        for (int i = 0; i < N; i++) {
            /* Inside its kind's range... */
            assert_true(bytes_cmp(keys[k][i], lens[k][i], lo, 1) >= 0);
            assert_true(bytes_cmp(keys[k][i], lens[k][i], hi, 1) < 0);
            /* ...and no key of the other kind is. */
            assert_true(bytes_cmp(keys[1 - k][i], lens[1 - k][i], lo, 1) < 0 ||
                        bytes_cmp(keys[1 - k][i], lens[1 - k][i], hi, 1) >= 0);
            /* Key order is id order. */
            for (int j = 0; j < N; j++) {
                assert_int_equal(bytes_cmp(keys[k][i], lens[k][i], keys[k][j], lens[k][j]),
                                 bytes_cmp(ids[i], strlen(ids[i]), ids[j], strlen(ids[j])));
            }
        }
    }
    /* Name keys follow the same rules. */
    for (int i = 0; i < N; i++) {
        size_t len = store_key_name(STORE_KIND_TENANT, ids[i], strlen(ids[i]), names[i]);
        assert_int_equal(bytes_cmp(names[i], len, keys[0][i], lens[0][i]), 0);
    }
}

static void test_key_request_time(void **state)
{
    char a[8 + 4];
    char b[8 + 4];
    size_t alen;
    size_t blen;
    (void)state;
    /* Time first, then id; big-endian so 255 < 256. */
    alen = store_key_request_time(255, "z", 1, a);
    blen = store_key_request_time(256, "a", 1, b);
    assert_int_equal(alen, 9);
    assert_true(bytes_cmp(a, alen, b, blen) < 0);
    alen = store_key_request_time(5, "a", 1, a);
    blen = store_key_request_time(5, "ab", 2, b);
    assert_true(bytes_cmp(a, alen, b, blen) < 0);
    alen = store_key_request_time(INT64_MAX, "a", 1, a);
    assert_true(bytes_cmp(b, blen, a, alen) < 0);
    assert_int_equal(store_be64_get((const unsigned char *)a), (uint64_t)INT64_MAX);
}

/* Keys of one group (a prefix) are exactly the group's, in id order. */
static void test_key_indexes(void **state)
{
    static const char *names[] = {"a", "a\x01", "ab", "b", "\xff", "A"};
    enum { N = sizeof names / sizeof names[0] };
    static const enum store_kind kinds[] = {STORE_KIND_SITE, STORE_KIND_DEVICE};
    char key[STORE_KEY_CHILD_MAX];
    char other[STORE_KEY_CHILD_MAX];
    char prefix[STORE_KEY_CHILD_MAX];
    (void)state;

    for (int k = 0; k < 2; k++) {
        for (int t = 0; t < N; t++) {
            size_t plen = store_key_scoped_prefix(kinds[k], names[t], strlen(names[t]), prefix);
            size_t cplen = store_key_children_prefix(kinds[k], names[t], strlen(names[t]), other);
            assert_int_equal(plen, 2 + strlen(names[t]));
            assert_int_equal(cplen, plen);
            for (int k2 = 0; k2 < 2; k2++) {
                for (int t2 = 0; t2 < N; t2++) {
                    for (int i = 0; i < N; i++) {
                        /* A scoped key is in the group of its kind and
                         * tenant, and in no other. */
                        size_t len = store_key_scoped(kinds[k2], names[t2], strlen(names[t2]),
                                                      names[i], strlen(names[i]), key);
                        bool in = len >= plen && memcmp(key, prefix, plen) == 0;
                        assert_int_equal(in, k == k2 && t == t2);
                        /* The same for a child under parent kinds[k]/names[t]. */
                        len = store_key_child(kinds[k2], names[t2], strlen(names[t2]),
                                              STORE_KIND_DEVICE, names[i], strlen(names[i]), key);
                        in = len >= cplen && memcmp(key, other, cplen) == 0;
                        assert_int_equal(in, k == k2 && t == t2);
                        if (in) {
                            assert_int_equal((unsigned char)key[cplen], STORE_KIND_DEVICE);
                        }
                    }
                }
            }
            /* Within a group, key order is id order. */
            for (int i = 0; i < N; i++) {
                for (int j = 0; j < N; j++) {
                    size_t a_len = store_key_scoped(kinds[k], names[t], strlen(names[t]), names[i],
                                                    strlen(names[i]), key);
                    size_t b_len = store_key_scoped(kinds[k], names[t], strlen(names[t]), names[j],
                                                    strlen(names[j]), other);
                    assert_int_equal(
                        bytes_cmp(key, a_len, other, b_len),
                        bytes_cmp(names[i], strlen(names[i]), names[j], strlen(names[j])));
                }
            }
        }
    }
    /* Counts: one key per tenant and kind. */
    for (int t = 0; t < N; t++) {
        for (int t2 = 0; t2 < N; t2++) {
            for (int k = 0; k < 2; k++) {
                size_t a_len = store_key_count(names[t], strlen(names[t]), kinds[k], key);
                size_t b_len = store_key_count(names[t2], strlen(names[t2]), kinds[0], other);
                assert_int_equal(bytes_cmp(key, a_len, other, b_len) == 0, t == t2 && k == 0);
            }
        }
    }
    /* Expiry: time first (big-endian), then kind and id. */
    size_t a_len = store_key_expiry(255, STORE_KIND_USER, "z", 1, key);
    size_t b_len = store_key_expiry(256, STORE_KIND_DEVICE, "a", 1, other);
    assert_int_equal(a_len, 10);
    assert_true(bytes_cmp(key, a_len, other, b_len) < 0);
    b_len = store_key_expiry(255, STORE_KIND_USER, "za", 2, other);
    assert_true(bytes_cmp(key, a_len, other, b_len) < 0);
    /* Changes: revision, then sequence; audit: sequence. */
    a_len = store_key_change(1, 0xffffffffu, key);
    b_len = store_key_change(2, 0, other);
    assert_int_equal(a_len, STORE_KEY_CHANGE_LEN);
    assert_true(bytes_cmp(key, a_len, other, b_len) < 0);
    b_len = store_key_change(1, 0x100, other);
    assert_true(bytes_cmp(other, b_len, key, a_len) < 0);
    a_len = store_key_audit(255, key);
    b_len = store_key_audit(256, other);
    assert_int_equal(a_len, STORE_KEY_AUDIT_LEN);
    assert_true(bytes_cmp(key, a_len, other, b_len) < 0);
    assert_int_equal(store_be64_get((const unsigned char *)other), 256);
    /* Every kind has a name; others have none. */
    for (int k = 0; k < 10; k++) {
        assert_non_null(store_kind_name(all_kinds[k]));
    }
    assert_null(store_kind_name(0));
    assert_null(store_kind_name('x'));
    assert_null(store_kind_name('t' + 256));
}

static void assert_str_eq_or_null(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        assert_null(a);
        assert_null(b);
    } else {
        assert_string_equal(a, b);
    }
}

static void assert_command_equal(const struct store_command *a, const struct store_command *b)
{
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->op, b->op);
    assert_int_equal(a->kind, b->kind);
    assert_string_equal(a->id, b->id);
    assert_str_eq_or_null(a->name, b->name);
    assert_int_equal(a->body_len, b->body_len);
    if (a->body == NULL || b->body == NULL) {
        assert_null(a->body);
        assert_null(b->body);
    } else {
        assert_memory_equal(a->body, b->body, a->body_len);
    }
    assert_int_equal(a->if_match, b->if_match);
    assert_str_eq_or_null(a->request_id, b->request_id);
    assert_int_equal(a->fingerprint, b->fingerprint);
    assert_int_equal(a->time_ms, b->time_ms);
    assert_str_eq_or_null(a->caller, b->caller);
    assert_str_eq_or_null(a->tenant, b->tenant);
    assert_int_equal(a->parent_kind, b->parent_kind);
    assert_str_eq_or_null(a->parent_id, b->parent_id);
    assert_int_equal(a->n_refs, b->n_refs);
    for (size_t i = 0; i < a->n_refs; i++) {
        assert_int_equal(a->refs[i].kind, b->refs[i].kind);
        assert_string_equal(a->refs[i].id, b->refs[i].id);
    }
    assert_int_equal(a->n_limits, b->n_limits);
    for (size_t i = 0; i < a->n_limits; i++) {
        assert_int_equal(a->limits[i].kind, b->limits[i].kind);
        assert_true(a->limits[i].max == b->limits[i].max);
    }
    assert_int_equal(a->cascade, b->cascade);
    assert_true(a->expires_ms == b->expires_ms);
    assert_int_equal(a->audit_status, b->audit_status);
    assert_str_eq_or_null(a->audit_message, b->audit_message);
    assert_int_equal(a->fence.kind, b->fence.kind);
    assert_str_eq_or_null(a->fence.id, b->fence.id);
    assert_int_equal(a->fence.revision, b->fence.revision);
}

/* Encodes, decodes from an exactly sized copy, compares. */
static void round_trip(const struct store_command *c)
{
    struct store_command d;
    char msg[256] = "";
    void *buf;
    size_t len;
    assert_int_equal(store_command_encode(c, &buf, &len), 0);
    if (store_command_decode(buf, len, &d, msg, sizeof msg) != 0) {
        fail_msg("decode: %s", msg);
    }
    assert_command_equal(c, &d);
    free(buf);
}

static struct store_command full_command(void)
{
    struct store_command c = cmd_make(STORE_OP_UPDATE, STORE_KIND_MEMBER, "node-1");
    c.name = "acme";
    c.body = "{\"a\":1,\"b\":\"x\"}";
    c.body_len = strlen(c.body);
    c.if_match = 42;
    c.request_id = "req-7f3a";
    c.fingerprint = 0xdeadbeefcafef00dULL;
    c.time_ms = 1700000000123LL;
    c.caller = "alice";
    return c;
}

static void test_command_round_trip(void **state)
{
    struct store_command c = full_command();
    char *big = malloc(STORE_BODY_MAX);
    char id[STORE_ID_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char rid[STORE_REQUEST_ID_MAX + 1];
    char caller[STORE_CALLER_MAX + 1];
    (void)state;

    round_trip(&c);
    /* Only the required fields. */
    c = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, "t");
    c.time_ms = 0;
    round_trip(&c);
    /* Every operation and kind; a body with a NUL inside; empty caller. */
    for (int op = STORE_OP_CREATE; op <= STORE_OP_PUT; op++) {
        c = cmd_make((enum store_op)op, op % 2 ? STORE_KIND_TENANT : STORE_KIND_MEMBER, "x");
        c.body = "a\0b";
        c.body_len = 3;
        c.caller = "";
        round_trip(&c);
    }
    /* Every field at its limit. */
    assert_non_null(big);
    memset(big, 'b', STORE_BODY_MAX);
    memset(id, 'i', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    memset(rid, 'r', sizeof rid - 1);
    rid[sizeof rid - 1] = '\0';
    memset(caller, 'c', sizeof caller - 1);
    caller[sizeof caller - 1] = '\0';
    c = cmd_make(STORE_OP_PUT, STORE_KIND_TENANT, id);
    c.name = name;
    c.request_id = rid;
    c.caller = caller;
    c.body = big;
    c.body_len = STORE_BODY_MAX;
    c.if_match = UINT64_MAX;
    c.fingerprint = UINT64_MAX;
    c.time_ms = INT64_MAX;
    round_trip(&c);
    free(big);
}

/* A version 2 command with every field set. */
static struct store_command full_v2(void)
{
    struct store_command c = full_command();
    c.kind = STORE_KIND_DEVICE;
    c.tenant = "t1";
    c.parent_kind = STORE_KIND_SITE;
    c.parent_id = "s1";
    c.refs[0] = (struct store_ref){STORE_KIND_TEMPLATE, "tpl"};
    c.refs[1] = (struct store_ref){STORE_KIND_USER, "u1"};
    c.n_refs = 2;
    c.cascade = true;
    c.expires_ms = 1700000060000LL;
    return c;
}

static void test_command_v2_round_trip(void **state)
{
    struct store_command c = full_v2();
    char id[STORE_ID_MAX + 1];
    char ids[STORE_MAX_REFS][STORE_ID_MAX + 1];
    char msg[STORE_AUDIT_MSG_MAX + 1];
    (void)state;

    round_trip(&c);
    /* A tenant with limits; an audit. */
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "t1");
    c.limits[0] = (struct store_limit){STORE_KIND_SITE, 0};
    c.limits[1] = (struct store_limit){STORE_KIND_DEVICE, 1000};
    c.n_limits = 2;
    round_trip(&c);
    c = cmd_make(STORE_OP_AUDIT, STORE_KIND_SITE, "s1");
    c.caller = "bob";
    c.audit_status = CAIRN_ECONFLICT;
    c.audit_message = "quota exceeded";
    c.tenant = "t1";
    round_trip(&c);
    c.audit_status = 0;
    c.audit_message = "";
    round_trip(&c);
    /* Every new kind, as object, parent and ref. */
    for (int k = 0; k < 10; k++) {
        c = cmd_scoped(STORE_OP_CREATE, all_kinds[k], "x", NULL, all_kinds[(k + 1) % 10], "p");
        c.refs[0] = (struct store_ref){all_kinds[(k + 2) % 10], "r"};
        c.n_refs = 1;
        round_trip(&c);
    }
    /* Version 1 commands still encode and decode, with every kind. */
    for (int k = 0; k < 10; k++) {
        c = full_command();
        c.version = 1;
        c.kind = all_kinds[k];
        round_trip(&c);
    }
    /* Every field at its limit. */
    memset(id, 'i', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    memset(msg, 'm', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    c = full_v2();
    c.tenant = id;
    c.parent_id = id;
    for (int i = 0; i < STORE_MAX_REFS; i++) {
        memset(ids[i], 'a' + i, STORE_ID_MAX);
        ids[i][STORE_ID_MAX] = '\0';
        c.refs[i] = (struct store_ref){all_kinds[i % 10], ids[i]};
    }
    c.n_refs = STORE_MAX_REFS;
    c.expires_ms = INT64_MAX;
    round_trip(&c);
    c = cmd_make(STORE_OP_PUT, STORE_KIND_TENANT, id);
    for (int i = 0; i < STORE_MAX_LIMITS; i++) {
        c.limits[i] = (struct store_limit){all_kinds[i], UINT64_MAX - (uint64_t)i};
    }
    c.n_limits = STORE_MAX_LIMITS;
    round_trip(&c);
    c = cmd_make(STORE_OP_AUDIT, STORE_KIND_TENANT, id);
    c.caller = "c";
    c.audit_status = CAIRN_ERROR_LAST_ - 1;
    c.audit_message = msg;
    round_trip(&c);
}

static void test_command_v2_encode_invalid(void **state)
{
    struct store_command c;
    char long_s[STORE_AUDIT_MSG_MAX + 2];
    void *buf = NULL;
    size_t len = 0;
    (void)state;

    memset(long_s, 'x', sizeof long_s - 1);
    long_s[sizeof long_s - 1] = '\0';
#define EXPECT_EINVAL(base, stmt)                                             \
    do {                                                                      \
        c = base;                                                             \
        stmt;                                                                 \
        assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL); \
    } while (0)
    /* Version 1 has none of the new fields, nor audits. */
    EXPECT_EINVAL(full_v2(), c.version = 1);
    EXPECT_EINVAL(full_command(), (c.version = 1, c.tenant = "t"));
    EXPECT_EINVAL(full_command(), (c.version = 1, c.parent_kind = 't', c.parent_id = "t"));
    EXPECT_EINVAL(full_command(),
                  (c.version = 1, c.n_refs = 1, c.refs[0].kind = 't', c.refs[0].id = "t"));
    EXPECT_EINVAL(full_command(),
                  (c.version = 1, c.kind = 't', c.n_limits = 1, c.limits[0].kind = 'S'));
    EXPECT_EINVAL(full_command(), (c.version = 1, c.cascade = true));
    EXPECT_EINVAL(full_command(), (c.version = 1, c.expires_ms = 5));
    EXPECT_EINVAL(full_command(), (c.version = 1, c.op = STORE_OP_AUDIT));
    /* Version 2 limits. */
    EXPECT_EINVAL(full_v2(), c.tenant = "");
    EXPECT_EINVAL(full_v2(), c.tenant = long_s);
    EXPECT_EINVAL(full_v2(), c.parent_id = NULL);
    EXPECT_EINVAL(full_v2(), c.parent_kind = 0);
    EXPECT_EINVAL(full_v2(), c.parent_kind = (enum store_kind)'x');
    EXPECT_EINVAL(full_v2(), c.parent_id = "");
    EXPECT_EINVAL(full_v2(), c.n_refs = STORE_MAX_REFS + 1);
    EXPECT_EINVAL(full_v2(), c.refs[1].kind = (enum store_kind)0);
    EXPECT_EINVAL(full_v2(), c.refs[1].id = NULL);
    EXPECT_EINVAL(full_v2(), c.refs[1].id = long_s);
    EXPECT_EINVAL(full_v2(), (c.n_limits = 1, c.limits[0].kind = 'S')); /* not a tenant */
    EXPECT_EINVAL(full_v2(), c.expires_ms = -1);
    EXPECT_EINVAL(full_v2(), c.audit_status = CAIRN_ECONFLICT); /* not an audit */
    EXPECT_EINVAL(full_v2(), c.audit_message = "no");
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "t");
    c.n_limits = 2;
    c.limits[0] = (struct store_limit){STORE_KIND_SITE, 1};
    c.limits[1] = (struct store_limit){STORE_KIND_SITE, 2};
    assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL); /* twice a kind */
    c.limits[1].kind = (enum store_kind)'x';
    assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL);
    c.n_limits = STORE_MAX_LIMITS + 1;
    assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL);
    c = cmd_make(STORE_OP_AUDIT, STORE_KIND_TENANT, "t");
    assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL); /* no caller */
    c.caller = "a";
    c.audit_status = 5;
    assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL);
    c.audit_status = CAIRN_ERROR_LAST_;
    assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL);
    c.audit_status = CAIRN_ECONFLICT;
    c.audit_message = long_s;
    assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL);
#undef EXPECT_EINVAL
    assert_null(buf);
}

static void test_command_encode_invalid(void **state)
{
    struct store_command c;
    char long_id[STORE_ID_MAX + 2];
    void *buf = NULL;
    size_t len = 0;
    (void)state;

    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
#define EXPECT_EINVAL(stmt)                                                   \
    do {                                                                      \
        c = full_command();                                                   \
        stmt;                                                                 \
        assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL); \
    } while (0)
    EXPECT_EINVAL(c.id = NULL);
    EXPECT_EINVAL(c.id = "");
    EXPECT_EINVAL(c.id = long_id);
    EXPECT_EINVAL(c.name = "");
    EXPECT_EINVAL(c.request_id = "");
    EXPECT_EINVAL(c.version = 0);
    EXPECT_EINVAL(c.version = STORE_COMMAND_VERSION + 1);
    EXPECT_EINVAL(c.op = (enum store_op)0);
    EXPECT_EINVAL(c.op = (enum store_op)(STORE_OP_AUDIT + 1));
    EXPECT_EINVAL(c.kind = (enum store_kind)'x');
    EXPECT_EINVAL(c.time_ms = -1);
    EXPECT_EINVAL(c.body = NULL);
    EXPECT_EINVAL(c.body_len = STORE_BODY_MAX + 1);
#undef EXPECT_EINVAL
    assert_null(buf);
}

/* Crafted commands, field by field, to reach what the encoder refuses. */
enum ftype { T_UINT, T_INT, T_ZSTR, T_RAW, T_BIN, T_NIL, T_BOOL, T_FLOAT, T_MAP, T_MP };

struct field {
    const char *key;
    enum ftype type;
    uint64_t u;    /* T_UINT, T_BOOL, T_MAP (entries, all nil) */
    int64_t i;     /* T_INT */
    const char *s; /* T_ZSTR (NUL added), T_RAW, T_BIN and T_MP (len bytes) */
    size_t len;
};

#define F_UINT(k, v)             \
    {                            \
        k, T_UINT, v, 0, NULL, 0 \
    }
#define F_ZSTR(k, v)          \
    {                         \
        k, T_ZSTR, 0, 0, v, 0 \
    }

static const struct field base_fields[] = {
    F_UINT("v", 1),     F_UINT("op", STORE_OP_CREATE), F_UINT("k", 't'), F_ZSTR("id", "t1"),
    F_UINT("ts", 1000),
};
enum { BASE_N = sizeof base_fields / sizeof base_fields[0] };

static void pack_field(msgpack_packer *pk, const struct field *f)
{
    size_t len;
    store_mp_pack_key(pk, f->key);
    switch (f->type) {
        case T_UINT:
            msgpack_pack_uint64(pk, f->u);
            break;
        case T_INT:
            msgpack_pack_int64(pk, f->i);
            break;
        case T_ZSTR:
            len = strlen(f->s) + 1;
            msgpack_pack_str(pk, len);
            msgpack_pack_str_body(pk, f->s, len);
            break;
        case T_RAW:
            msgpack_pack_str(pk, f->len);
            msgpack_pack_str_body(pk, f->s, f->len);
            break;
        case T_BIN:
            msgpack_pack_bin(pk, f->len);
            msgpack_pack_bin_body(pk, f->s, f->len);
            break;
        case T_NIL:
            msgpack_pack_nil(pk);
            break;
        case T_BOOL:
            f->u != 0 ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
            break;
        case T_FLOAT:
            msgpack_pack_double(pk, 1.5);
            break;
        case T_MAP:
            msgpack_pack_map(pk, (size_t)f->u);
            for (uint64_t j = 0; j < f->u; j++) {
                msgpack_pack_nil(pk);
                msgpack_pack_nil(pk);
            }
            break;
        case T_MP: /* already msgpack */
            msgpack_sbuffer_write(pk->data, f->s, f->len);
            break;
    }
}

/* Decodes the base command with edits: each entry of edits replaces the
 * base field of the same key, or is added; a key prefixed by '-' removes
 * the field. With out set, the decoded command points into *keep, which
 * the caller frees. */
static int decode_edited(const struct field *edits, size_t n, char *msg, size_t size,
                         struct store_command *out, char **keep)
{
    struct field all[BASE_N + 8];
    size_t count = 0;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct store_command c;
    char *copy;
    int rv;

    for (size_t i = 0; i < BASE_N; i++) {
        all[count++] = base_fields[i];
    }
    for (size_t e = 0; e < n; e++) {
        bool remove = edits[e].key[0] == '-';
        const char *key = remove ? edits[e].key + 1 : edits[e].key;
        size_t i;
        for (i = 0; i < count; i++) {
            if (strcmp(all[i].key, key) == 0) {
                break;
            }
        }
        if (remove) {
            assert_true(i < count);
            all[i] = all[--count];
        } else if (i < count) {
            all[i] = edits[e];
        } else {
            assert_true(count < sizeof all / sizeof all[0]);
            all[count++] = edits[e];
        }
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, count);
    for (size_t i = 0; i < count; i++) {
        pack_field(&pk, &all[i]);
    }
    /* An exactly sized copy, so that ASan sees any over-read. */
    copy = malloc(sb.size);
    assert_non_null(copy);
    memcpy(copy, sb.data, sb.size);
    msg[0] = '\0';
    rv = store_command_decode(copy, sb.size, out != NULL ? out : &c, msg, size);
    if (keep != NULL) {
        *keep = copy;
    } else {
        free(copy);
    }
    msgpack_sbuffer_destroy(&sb);
    return rv;
}

/* Expects rv and, if field is set, a message naming it. */
static void expect_edit(const struct field *edit, int rv, const char *needle)
{
    char msg[256];
    int got = decode_edited(edit, 1, msg, sizeof msg, NULL, NULL);
    if (got != rv) {
        fail_msg("edit of \"%s\": got %d (%s), want %d", edit->key, got, msg, rv);
    }
    if (needle != NULL && strstr(msg, needle) == NULL) {
        fail_msg("edit of \"%s\": message \"%s\" does not name %s", edit->key, msg, needle);
    }
}

static void test_command_decode_malformed(void **state)
{
    char long_s[STORE_REQUEST_ID_MAX + 2];
    char *big;
    (void)state;

    memset(long_s, 'x', sizeof long_s - 1);
    long_s[sizeof long_s - 1] = '\0';
    big = calloc(1, STORE_BODY_MAX + 1);
    assert_non_null(big);

    const struct {
        struct field edit;
        const char *needle;
    } cases[] = {
        {{"-v", T_NIL, 0, 0, NULL, 0}, "\"v\""},
        {{"-op", T_NIL, 0, 0, NULL, 0}, "\"op\""},
        {{"-k", T_NIL, 0, 0, NULL, 0}, "\"k\""},
        {{"-id", T_NIL, 0, 0, NULL, 0}, "\"id\""},
        {{"-ts", T_NIL, 0, 0, NULL, 0}, "\"ts\""},
        {F_ZSTR("v", "1"), "\"v\""},
        {{"op", T_INT, 0, -1, NULL, 0}, "\"op\""},
        {{"k", T_FLOAT, 0, 0, NULL, 0}, "\"k\""},
        {F_UINT("id", 5), "\"id\""},
        {{"id", T_RAW, 0, 0, "t1", 2}, "\"id\""},     /* no NUL */
        {{"id", T_RAW, 0, 0, "t\0x\0", 4}, "\"id\""}, /* NUL inside */
        {{"id", T_BIN, 0, 0, "t1\0", 3}, "\"id\""},   /* bin, not str */
        {F_ZSTR("id", ""), "\"id\""},
        {F_ZSTR("id", long_s + (sizeof long_s - 1 - (STORE_ID_MAX + 1))), "\"id\""},
        {F_ZSTR("n", ""), "\"n\""},
        {F_ZSTR("n", long_s + (sizeof long_s - 1 - (STORE_NAME_MAX + 1))), "\"n\""},
        {{"n", T_NIL, 0, 0, NULL, 0}, "\"n\""},
        {F_ZSTR("rid", ""), "\"rid\""},
        {F_ZSTR("rid", long_s), "\"rid\""},
        {F_ZSTR("by", long_s + (sizeof long_s - 1 - (STORE_CALLER_MAX + 1))), "\"by\""},
        {{"b", T_RAW, 0, 0, "{}", 2}, "\"b\""},
        {{"b", T_BIN, 0, 0, big, STORE_BODY_MAX + 1}, "\"b\""},
        {{"if", T_INT, 0, -5, NULL, 0}, "\"if\""},
        {{"if", T_BOOL, 1, 0, NULL, 0}, "\"if\""},
        {{"fp", T_ZSTR, 0, 0, "x", 0}, "\"fp\""},
        {{"ts", T_INT, 0, -1, NULL, 0}, "\"ts\""},
        {F_ZSTR("ts", "now"), "\"ts\""},
        {F_UINT("zz", 1), "\"zz\""},
        {{"k2", T_MAP, 2, 0, NULL, 0}, "\"k2\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_edit(&cases[i].edit, CAIRN_EMALFORMED, cases[i].needle);
    }
    free(big);
}

#define F_MP(k, bytes)                          \
    {                                           \
        k, T_MP, 0, 0, bytes, sizeof(bytes) - 1 \
    }
#define F_INT(k, v)             \
    {                           \
        k, T_INT, 0, v, NULL, 0 \
    }

/* Decodes base_fields with edits: v is set to 2 first. */
static void expect_v2(const struct field *edit, int rv, const char *needle)
{
    struct field edits[3] = {F_UINT("v", 2), *edit};
    size_t n = 2;
    char msg[256];
    int got;
    /* Audit fields need an audit with a caller; kinds other than tenant
     * are set by the case itself. */
    got = decode_edited(edits, n, msg, sizeof msg, NULL, NULL);
    if (got != rv) {
        fail_msg("v2 edit of \"%s\": got %d (%s), want %d", edit->key, got, msg, rv);
    }
    if (needle != NULL && strstr(msg, needle) == NULL) {
        fail_msg("v2 edit of \"%s\": message \"%s\" does not name %s", edit->key, msg, needle);
    }
}

/* Like expect_v2 with several edits. */
static void expect_v2_edits(const struct field *edits, size_t n, int rv, const char *needle)
{
    struct field all[8] = {F_UINT("v", 2)};
    char msg[256];
    int got;
    assert_true(n < 8);
    memcpy(all + 1, edits, n * sizeof *edits);
    got = decode_edited(all, n + 1, msg, sizeof msg, NULL, NULL);
    if (got != rv) {
        fail_msg("v2 edits of \"%s\": got %d (%s), want %d", edits[0].key, got, msg, rv);
    }
    if (needle != NULL && strstr(msg, needle) == NULL) {
        fail_msg("v2 edits of \"%s\": message \"%s\" does not name %s", edits[0].key, msg, needle);
    }
}

static void test_command_v2_decode(void **state)
{
    char long_s[STORE_AUDIT_MSG_MAX + 2];
    char msg[256];
    struct store_command c;
    char *keep;
    (void)state;

    memset(long_s, 'x', sizeof long_s - 1);
    long_s[sizeof long_s - 1] = '\0';
    /* A version 1 command with a version 2 field is malformed, naming it. */
    static const struct field v2_fields[] = {
        F_ZSTR("tn", "t1"), F_UINT("pk", 't'),  F_ZSTR("pi", "t1"),
        F_MP("rf", "\x90"), F_MP("lm", "\x90"), {"cc", T_BOOL, 1, 0, NULL, 0},
        F_UINT("ex", 5),    F_UINT("as", 0),    F_ZSTR("am", "x"),
    };
    for (size_t i = 0; i < sizeof v2_fields / sizeof v2_fields[0]; i++) {
        char needle[16];
        snprintf(needle, sizeof needle, "\"%s\"", v2_fields[i].key);
        expect_edit(&v2_fields[i], CAIRN_EMALFORMED, needle);
    }
    /* An audit is an operation of version 2 only. */
    expect_edit(&(struct field)F_UINT("op", STORE_OP_AUDIT), CAIRN_EUNSUPPORTED, "operation 5");

    /* Version 2: each field checked. */
    const struct {
        struct field edit;
        int rv;
        const char *needle;
    } cases[] = {
        {F_ZSTR("tn", ""), CAIRN_EMALFORMED, "\"tn\""},
        {F_ZSTR("tn", long_s + (sizeof long_s - 1 - (STORE_ID_MAX + 1))), CAIRN_EMALFORMED,
         "\"tn\""},
        {F_UINT("tn", 1), CAIRN_EMALFORMED, "\"tn\""},
        {{"tn", T_RAW, 0, 0, "t1", 2}, CAIRN_EMALFORMED, "\"tn\""},
        {F_UINT("pk", 't'), CAIRN_EMALFORMED, "\"pi\""},  /* no pi */
        {F_ZSTR("pi", "t1"), CAIRN_EMALFORMED, "\"pk\""}, /* no pk */
        {F_MP("rf", "\x81\xc0\xc0"), CAIRN_EMALFORMED, "\"rf\""},
        {F_MP("rf", "\x91\x91\x74"), CAIRN_EMALFORMED, "\"rf\" entry 1"},
        {F_MP("rf", "\x91\x93\x74\xa2t\x00\xc0"), CAIRN_EMALFORMED, "\"rf\" entry 1"},
        {F_MP("rf", "\x91\x92\x78\xa2t\x00"), CAIRN_EUNSUPPORTED, "kind 120"},
        {F_MP("rf", "\x91\x92\xa1t\xa2t\x00"), CAIRN_EMALFORMED, "\"rf\" entry 1"},
        {F_MP("rf", "\x92\x92\x74\xa2t\x00\x92\x74\xa1t"), CAIRN_EMALFORMED, "\"rf\" entry 2"},
        {F_MP("rf", "\x92\x92\x74\xa2t\x00\x92\x74\xa1\x00"), CAIRN_EMALFORMED, "\"rf\" entry 2"},
        {F_MP("rf",
              "\xdc\x00\x11"
              "\x92\x74\xa1\x00\x92\x74\xa1\x00\x92\x74\xa1\x00\x92\x74\xa1\x00"
              "\x92\x74\xa1\x00\x92\x74\xa1\x00\x92\x74\xa1\x00\x92\x74\xa1\x00"
              "\x92\x74\xa1\x00\x92\x74\xa1\x00\x92\x74\xa1\x00\x92\x74\xa1\x00"
              "\x92\x74\xa1\x00\x92\x74\xa1\x00\x92\x74\xa1\x00\x92\x74\xa1\x00"
              "\x92\x74\xa1\x00"),
         CAIRN_EMALFORMED, "more than 16"},
        {F_MP("lm", "\xa1x"), CAIRN_EMALFORMED, "\"lm\""},
        {F_MP("lm", "\x91\x92\x53\xff"), CAIRN_EMALFORMED, "\"lm\" entry 1"},
        {F_MP("lm", "\x91\x92\x01\x05"), CAIRN_EUNSUPPORTED, "kind 1 "},
        {F_MP("lm", "\x92\x92\x53\x05\x92\x53\x06"), CAIRN_EMALFORMED, "second limit for sites"},
        {F_MP("lm",
              "\x99\x92\x53\x01\x92\x54\x01\x92\x64\x01\x92\x6a\x01\x92\x6d\x01"
              "\x92\x73\x01\x92\x74\x01\x92\x75\x01\x92\x76\x01"),
         CAIRN_EMALFORMED, "more than 8"},
        {{"cc", T_UINT, 1, 0, NULL, 0}, CAIRN_EMALFORMED, "\"cc\""},
        {F_INT("ex", -1), CAIRN_EMALFORMED, "\"ex\""},
        {F_ZSTR("ex", "soon"), CAIRN_EMALFORMED, "\"ex\""},
        {F_UINT("as", CAIRN_ECONFLICT), CAIRN_EMALFORMED, "\"as\""}, /* not an audit */
        {F_ZSTR("am", "why"), CAIRN_EMALFORMED, "\"am\""},           /* not an audit */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_v2(&cases[i].edit, cases[i].rv, cases[i].needle);
    }
    /* A parent or limit kind that does not exist is unsupported. */
    const struct field bad_parent[] = {F_UINT("pk", 'x'), F_ZSTR("pi", "p")};
    expect_v2_edits(bad_parent, 2, CAIRN_EUNSUPPORTED, "kind 120");
    /* Limits only on tenants. */
    const struct field site_limits[] = {F_UINT("k", 'S'), F_MP("lm", "\x91\x92\x64\x05")};
    expect_v2_edits(site_limits, 2, CAIRN_EMALFORMED, "only tenants");
    /* Audits: a caller, a status that is 0 or an error, a short message. */
    const struct field audit_no_by[] = {F_UINT("op", STORE_OP_AUDIT)};
    expect_v2_edits(audit_no_by, 1, CAIRN_EMALFORMED, "\"by\"");
    const struct field audit_bad_status[] = {F_UINT("op", STORE_OP_AUDIT), F_ZSTR("by", "u"),
                                             F_UINT("as", 7)};
    expect_v2_edits(audit_bad_status, 3, CAIRN_EMALFORMED, "\"as\"");
    const struct field audit_long[] = {F_UINT("op", STORE_OP_AUDIT), F_ZSTR("by", "u"),
                                       F_ZSTR("am", long_s)};
    expect_v2_edits(audit_long, 3, CAIRN_EMALFORMED, "\"am\"");

    /* What decodes: an audit at its limits, an empty refs array, a parent. */
    long_s[STORE_AUDIT_MSG_MAX] = '\0';
    const struct field ok[] = {F_UINT("v", 2),       F_UINT("op", STORE_OP_AUDIT),
                               F_ZSTR("by", "u"),    F_UINT("as", CAIRN_ERROR_LAST_ - 1),
                               F_ZSTR("am", long_s), F_MP("rf", "\x90"),
                               F_UINT("pk", 'S'),    F_ZSTR("pi", "s1")};
    assert_int_equal(decode_edited(ok, sizeof ok / sizeof ok[0], msg, sizeof msg, &c, &keep), 0);
    assert_int_equal(c.version, 2);
    assert_int_equal(c.op, STORE_OP_AUDIT);
    assert_int_equal(c.audit_status, CAIRN_ERROR_LAST_ - 1);
    assert_int_equal(strlen(c.audit_message), STORE_AUDIT_MSG_MAX);
    assert_int_equal(c.n_refs, 0);
    assert_int_equal(c.parent_kind, STORE_KIND_SITE);
    assert_string_equal(c.parent_id, "s1");
    free(keep);
}

static void test_command_decode_structure(void **state)
{
    char msg[256];
    struct store_command c;
    /* {"v":1,"v":1,...}: a duplicate key. */
    static const unsigned char dup[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 'v', 0x01};
    static const unsigned char array[] = {0x91, 0x01};
    static const unsigned char nested_deep[] = {
        0x81, 0xa1, 'x',  0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
        0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
        0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0xc0};
    /* A map32 header claiming 2^32-1 entries in 5 bytes. */
    static const unsigned char huge[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    void *buf;
    size_t len;
    char *longer;
    (void)state;

    assert_int_equal(store_command_decode(dup, sizeof dup, &c, msg, sizeof msg), CAIRN_EMALFORMED);
    assert_non_null(strstr(msg, "\"v\""));
    assert_int_equal(store_command_decode(array, sizeof array, &c, msg, sizeof msg),
                     CAIRN_EMALFORMED);
    assert_int_equal(store_command_decode(nested_deep, sizeof nested_deep, &c, msg, sizeof msg),
                     CAIRN_EMALFORMED);
    assert_int_equal(store_command_decode(huge, sizeof huge, &c, msg, sizeof msg),
                     CAIRN_EMALFORMED);
    assert_int_equal(store_command_decode(NULL, 0, &c, msg, sizeof msg), CAIRN_EMALFORMED);
    assert_int_equal(store_command_decode("", 0, &c, msg, sizeof msg), CAIRN_EMALFORMED);

    /* A valid command followed by one more byte. */
    struct store_command full = full_command();
    assert_int_equal(store_command_encode(&full, &buf, &len), 0);
    longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, buf, len);
    longer[len] = 0x00;
    assert_int_equal(store_command_decode(longer, len + 1, &c, msg, sizeof msg), CAIRN_EMALFORMED);
    free(longer);
    free(buf);

    /* Fields at their limits decode; an empty caller is allowed. */
    char s[STORE_REQUEST_ID_MAX + 1];
    memset(s, 'y', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    const struct field ok[] = {
        F_ZSTR("id", s + (sizeof s - 1 - STORE_ID_MAX)),
        F_ZSTR("n", s + (sizeof s - 1 - STORE_NAME_MAX)),
        F_ZSTR("rid", s),
        F_ZSTR("by", ""),
        {"ts", T_INT, 0, 0, NULL, 0},
    };
    char *keep;
    assert_int_equal(decode_edited(ok, sizeof ok / sizeof ok[0], msg, sizeof msg, &c, &keep), 0);
    assert_int_equal(strlen(c.id), STORE_ID_MAX);
    assert_int_equal(strlen(c.name), STORE_NAME_MAX);
    assert_int_equal(strlen(c.request_id), STORE_REQUEST_ID_MAX);
    assert_string_equal(c.caller, "");
    assert_int_equal(c.time_ms, 0);
    free(keep);
}

/* Version 3: the fence. */
static void test_command_v3_fence(void **state)
{
    struct store_command c =
        cmd_scoped(STORE_OP_UPDATE, STORE_KIND_DEVICE, "d1", "t1", STORE_KIND_SITE, "s1");
    char msg[256];
    void *buf;
    size_t len;
    (void)state;

    c.fence = (struct store_fence){STORE_KIND_SYSTEM, "ownership", 12345};
    assert_int_equal(store_command_version_needed(&c), 3);
    c.version = 3;
    round_trip(&c);
    /* The encoder refuses a fence below version 3, without an id, at
     * revision 0, with an unknown kind, or on an audit. */
    c.version = 2;
    assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL);
    c.version = 3;
    c.fence.id = NULL;
    assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL);
    c.fence.id = "ownership";
    c.fence.revision = 0;
    assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL);
    c.fence.revision = 1;
    c.fence.kind = (enum store_kind)'x';
    assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL);
    c = cmd_make(STORE_OP_AUDIT, STORE_KIND_SITE, "s1");
    c.version = 3;
    c.caller = "bob";
    c.fence = (struct store_fence){STORE_KIND_SYSTEM, "ownership", 1};
    assert_int_equal(store_command_encode(&c, &buf, &len), CAIRN_EINVAL);

    /* The decoder: "fe" in a version 2 command, or malformed. */
    const struct field v2_fe[] = {F_UINT("v", 2), F_UINT("fe", 1)};
    assert_int_equal(decode_edited(v2_fe, 2, msg, sizeof msg, NULL, NULL), CAIRN_EMALFORMED);
    assert_non_null(strstr(msg, "\"fe\""));
    const struct field v3_fe[] = {F_UINT("v", 3), F_UINT("fe", 1)};
    assert_int_equal(decode_edited(v3_fe, 2, msg, sizeof msg, NULL, NULL), CAIRN_EMALFORMED);
    assert_non_null(strstr(msg, "\"fe\""));
}

static void test_command_unsupported(void **state)
{
    char msg[256];
    (void)state;
    expect_edit(&(struct field)F_UINT("v", 5), CAIRN_EUNSUPPORTED, "version 5");
    expect_edit(&(struct field)F_UINT("v", 0), CAIRN_EUNSUPPORTED, "version 0");
    expect_edit(&(struct field)F_UINT("op", 0), CAIRN_EUNSUPPORTED, "operation 0");
    expect_edit(&(struct field)F_UINT("op", STORE_OP_PUT + 1), CAIRN_EUNSUPPORTED, "operation");
    expect_edit(&(struct field)F_UINT("k", 'x'), CAIRN_EUNSUPPORTED, "kind 120");
    expect_edit(&(struct field)F_UINT("k", 't' + 256), CAIRN_EUNSUPPORTED, "kind");
    /* A newer version is unsupported even with fields this build does not
     * know or reads differently. */
    const struct field newer[] = {F_UINT("v", 5), F_UINT("new", 1), F_UINT("id", 7)};
    assert_int_equal(decode_edited(newer, 3, msg, sizeof msg, NULL, NULL), CAIRN_EUNSUPPORTED);
}

/* A full command with a body long enough for a bin16 header; v2 adds every
 * version 2 field. */
static void *long_command_v(size_t *len, bool v2)
{
    static char body[300];
    struct store_command c = v2 ? full_v2() : full_command();
    void *buf;
    memset(body, 'q', sizeof body);
    c.body = body;
    c.body_len = sizeof body;
    assert_int_equal(store_command_encode(&c, &buf, len), 0);
    return buf;
}

static void truncations(bool v2)
{
    size_t len;
    void *buf = long_command_v(&len, v2);
    for (size_t n = 0; n < len; n++) {
        struct store_command c;
        char msg[256] = "";
        char *copy = malloc(n > 0 ? n : 1);
        assert_non_null(copy);
        memcpy(copy, buf, n);
        if (store_command_decode(copy, n, &c, msg, sizeof msg) != CAIRN_EMALFORMED) {
            fail_msg("a command truncated to %zu of %zu bytes decoded", n, len);
        }
        assert_true(msg[0] != '\0');
        free(copy);
    }
    free(buf);
}

static void test_command_truncated(void **state)
{
    (void)state;
    truncations(false);
    truncations(true);
}

/* A command that decodes must satisfy every limit. */
static void check_decoded(const struct store_command *c)
{
    assert_true(c->version >= 1 && c->version <= STORE_COMMAND_VERSION);
    assert_non_null(store_kind_name(c->kind));
    assert_true(c->op >= STORE_OP_CREATE && c->op <= STORE_OP_AUDIT);
    assert_true(c->version >= 2 || c->op <= STORE_OP_PUT);
    assert_true(strlen(c->id) >= 1 && strlen(c->id) <= STORE_ID_MAX);
    assert_true(c->name == NULL || strlen(c->name) <= STORE_NAME_MAX);
    assert_true(c->request_id == NULL || strlen(c->request_id) <= STORE_REQUEST_ID_MAX);
    assert_true(c->caller == NULL || strlen(c->caller) <= STORE_CALLER_MAX);
    assert_true(c->body_len <= STORE_BODY_MAX);
    assert_true(c->time_ms >= 0);
    assert_true(c->tenant == NULL || (strlen(c->tenant) >= 1 && strlen(c->tenant) <= STORE_ID_MAX));
    assert_true((c->parent_kind == 0) == (c->parent_id == NULL));
    assert_true(c->parent_kind == 0 || store_kind_name(c->parent_kind) != NULL);
    assert_true(c->n_refs <= STORE_MAX_REFS && c->n_limits <= STORE_MAX_LIMITS);
    for (size_t i = 0; i < c->n_refs; i++) {
        assert_non_null(store_kind_name(c->refs[i].kind));
        assert_true(strlen(c->refs[i].id) >= 1 && strlen(c->refs[i].id) <= STORE_ID_MAX);
    }
    for (size_t i = 0; i < c->n_limits; i++) {
        assert_non_null(store_kind_name(c->limits[i].kind));
    }
    assert_true(c->n_limits == 0 || c->kind == STORE_KIND_TENANT);
    assert_true(c->expires_ms >= 0);
    assert_true(c->op == STORE_OP_AUDIT || (c->audit_status == 0 && c->audit_message == NULL));
    assert_true(c->op != STORE_OP_AUDIT || c->caller != NULL);
    assert_true(c->version >= 2 || (c->tenant == NULL && c->parent_kind == 0 && c->n_refs == 0 &&
                                    !c->cascade && c->expires_ms == 0));
}

static void garbage(bool v2, uint64_t seed)
{
    size_t valid_len;
    unsigned char *valid = long_command_v(&valid_len, v2);

    /* Random bytes, half of them behind a map header. */
    for (int i = 0; i < 4000; i++) {
        size_t len = prng_next(&seed) % 96;
        unsigned char *buf = malloc(len > 0 ? len : 1);
        struct store_command c;
        char msg[256];
        int rv;
        assert_non_null(buf);
        for (size_t j = 0; j < len; j++) {
            buf[j] = (unsigned char)prng_next(&seed);
        }
        if (len > 0 && i % 2 == 0) {
            buf[0] = (unsigned char)(0x80 | (prng_next(&seed) % 16));
        }
        rv = store_command_decode(buf, len, &c, msg, sizeof msg);
        assert_true(rv == CAIRN_EMALFORMED || rv == CAIRN_EUNSUPPORTED);
        free(buf);
    }
    /* A valid command with a few bytes changed, sometimes cut short. */
    for (int i = 0; i < 4000; i++) {
        size_t len = valid_len;
        unsigned char *buf = malloc(len);
        struct store_command c;
        char msg[256];
        int flips = 1 + (int)(prng_next(&seed) % 4);
        int rv;
        assert_non_null(buf);
        memcpy(buf, valid, len);
        for (int j = 0; j < flips; j++) {
            buf[prng_next(&seed) % len] = (unsigned char)prng_next(&seed);
        }
        if (i % 3 == 0) {
            len = prng_next(&seed) % len;
        }
        rv = store_command_decode(buf, len, &c, msg, sizeof msg);
        assert_true(rv == 0 || rv == CAIRN_EMALFORMED || rv == CAIRN_EUNSUPPORTED);
        if (rv == 0) {
            /* What decodes is within the encoder's limits, and says the
             * same once encoded again. */
            check_decoded(&c);
            round_trip(&c);
        }
        free(buf);
    }
    free(valid);
}

static void test_command_garbage(void **state)
{
    (void)state;
    garbage(false, 0x5eed5eed12345678ULL);
    garbage(true, 0x0badc0ffee123457ULL);
}

static void test_result_codec(void **state)
{
    struct store_result r;
    struct store_result d;
    void *buf;
    size_t len;
    uint64_t seed = 42;
    (void)state;

    memset(&r, 0, sizeof r);
    r.status = CAIRN_EEXIST;
    snprintf(r.message, sizeof r.message, "name \"acme\" is taken by tenant t1");
    r.revision = UINT64_MAX;
    memset(r.id, 'i', sizeof r.id - 1);
    r.create_rev = 3;
    r.mod_rev = 9;
    r.replayed = true;
    assert_int_equal(store_result_encode(&r, &buf, &len), 0);
    memset(&d, 0x55, sizeof d);
    assert_int_equal(store_result_decode(buf, len, &d), 0);
    assert_int_equal(d.status, r.status);
    assert_string_equal(d.message, r.message);
    assert_int_equal(d.revision, r.revision);
    assert_string_equal(d.id, r.id);
    assert_int_equal(d.create_rev, 3);
    assert_int_equal(d.mod_rev, 9);
    assert_true(d.replayed);

    /* Every truncation fails; the output is untouched. */
    for (size_t n = 0; n < len; n++) {
        char *copy = malloc(n > 0 ? n : 1);
        assert_non_null(copy);
        memcpy(copy, buf, n);
        memset(&d, 0x55, sizeof d);
        assert_int_equal(store_result_decode(copy, n, &d), CAIRN_EMALFORMED);
        assert_int_equal(d.status, 0x55555555);
        free(copy);
    }
    /* Changed bytes never crash. */
    for (int i = 0; i < 2000; i++) {
        unsigned char *copy = malloc(len);
        int rv;
        assert_non_null(copy);
        memcpy(copy, buf, len);
        copy[prng_next(&seed) % len] = (unsigned char)prng_next(&seed);
        rv = store_result_decode(copy, len, &d);
        assert_true(rv == 0 || rv == CAIRN_EMALFORMED);
        if (rv == 0) {
            assert_true(strlen(d.message) < sizeof d.message);
            assert_true(strlen(d.id) < sizeof d.id);
        }
        free(copy);
    }
    free(buf);

    /* A success with empty strings. */
    memset(&r, 0, sizeof r);
    assert_int_equal(store_result_encode(&r, &buf, &len), 0);
    assert_int_equal(store_result_decode(buf, len, &d), 0);
    assert_int_equal(d.status, 0);
    assert_string_equal(d.message, "");
    assert_false(d.replayed);
    free(buf);
}

static void test_mp_ints(void **state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct store_mp r;
    int64_t i;
    uint64_t u;
    (void)state;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_int64(&pk, -1);
    msgpack_pack_int64(&pk, INT64_MIN);
    msgpack_pack_int64(&pk, -200);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_int8(&pk, -32);
    store_mp_init(&r, sb.data, sb.size);
    assert_int_equal(store_mp_int(&r, &i), 0);
    assert_int_equal(i, -1);
    assert_int_equal(store_mp_int(&r, &i), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(store_mp_int(&r, &i), 0);
    assert_int_equal(i, -200);
    assert_int_equal(store_mp_peek(&r), STORE_MP_INT);
    {
        struct store_mp copy = r;
        assert_int_equal(store_mp_int(&copy, &i), CAIRN_EMALFORMED); /* > INT64_MAX */
    }
    assert_int_equal(store_mp_uint(&r, &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(store_mp_uint(&r, &u), CAIRN_EMALFORMED); /* negative */
    assert_int_equal(store_mp_peek(&r), STORE_MP_END);
    msgpack_sbuffer_destroy(&sb);

    /* Non-negative values in signed formats are unsigned values too. */
    static const unsigned char int16_300[] = {0xd1, 0x01, 0x2c};
    store_mp_init(&r, int16_300, sizeof int16_300);
    assert_int_equal(store_mp_uint(&r, &u), 0);
    assert_int_equal(u, 300);
}

static void test_records(void **state)
{
    struct store_value v = {.create_rev = 3,
                            .mod_rev = 7,
                            .name = "acme",
                            .name_len = 4,
                            .body = "{\"x\":1}",
                            .body_len = 7};
    struct store_value d;
    struct store_request q = {1234, 99, "res", 3};
    struct store_request e;
    msgpack_sbuffer sb;
    (void)state;

    msgpack_sbuffer_init(&sb);
    assert_int_equal(store_value_encode(&v, &sb), 0);
    assert_int_equal(store_value_decode(sb.data, sb.size, &d), 0);
    assert_int_equal(d.create_rev, 3);
    assert_int_equal(d.mod_rev, 7);
    assert_int_equal(d.name_len, 4);
    assert_memory_equal(d.name, "acme", 4);
    assert_int_equal(d.body_len, 7);
    assert_memory_equal(d.body, "{\"x\":1}", 7);
    assert_int_equal(store_value_decode(sb.data, sb.size - 1, &d), CAIRN_ECORRUPT);
    msgpack_sbuffer_clear(&sb);
    v.name = NULL;
    v.name_len = 0;
    assert_int_equal(store_value_encode(&v, &sb), 0);
    assert_int_equal(store_value_decode(sb.data, sb.size, &d), 0);
    assert_null(d.name);
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(store_request_encode(&q, &sb), 0);
    assert_int_equal(store_request_decode(sb.data, sb.size, &e), 0);
    assert_int_equal(e.time_ms, 1234);
    assert_int_equal(e.fingerprint, 99);
    assert_int_equal(e.result_len, 3);
    assert_memory_equal(e.result, "res", 3);
    assert_int_equal(store_request_decode(sb.data, 1, &e), CAIRN_ECORRUPT);
    msgpack_sbuffer_destroy(&sb);
}

/* Packs a map of the given keys with values that make a valid value. */
static void pack_value_keys(msgpack_sbuffer *sb, const char *const *keys, size_t n)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n);
    for (size_t i = 0; i < n; i++) {
        store_mp_pack_key(&pk, keys[i]);
        if (strcmp(keys[i], "b") == 0) {
            msgpack_pack_bin(&pk, 2);
            msgpack_pack_bin_body(&pk, "{}", 2);
        } else if (strcmp(keys[i], "n") == 0 || strcmp(keys[i], "t") == 0 ||
                   strcmp(keys[i], "pi") == 0) {
            msgpack_pack_str(&pk, 1);
            msgpack_pack_str_body(&pk, "x", 1);
        } else if (strcmp(keys[i], "pk") == 0) {
            msgpack_pack_uint64(&pk, 'S');
        } else if (strcmp(keys[i], "l") == 0) {
            msgpack_pack_array(&pk, 0);
        } else {
            msgpack_pack_uint64(&pk, 5);
        }
    }
}

static int decode_value_keys(const char *const *keys, size_t n)
{
    msgpack_sbuffer sb;
    struct store_value v;
    int rv;
    msgpack_sbuffer_init(&sb);
    pack_value_keys(&sb, keys, n);
    rv = store_value_decode(sb.data, sb.size, &v);
    msgpack_sbuffer_destroy(&sb);
    return rv;
}

static void test_records_v2(void **state)
{
    struct store_value v = {0};
    struct store_value d;
    msgpack_sbuffer sb;
    (void)state;

    /* Every field of a version 2 value. */
    v.create_rev = 1;
    v.mod_rev = 2;
    v.body = "{}";
    v.body_len = 2;
    v.tenant = "t1";
    v.tenant_len = 2;
    v.parent_kind = STORE_KIND_SITE;
    v.parent_id = "s1";
    v.parent_id_len = 2;
    v.expires_ms = INT64_MAX;
    v.n_limits = STORE_MAX_LIMITS;
    for (int i = 0; i < STORE_MAX_LIMITS; i++) {
        v.limits[i] = (struct store_limit){all_kinds[i], UINT64_MAX - (uint64_t)i};
    }
    msgpack_sbuffer_init(&sb);
    assert_int_equal(store_value_encode(&v, &sb), 0);
    assert_int_equal(store_value_decode(sb.data, sb.size, &d), 0);
    assert_null(d.name);
    assert_int_equal(d.tenant_len, 2);
    assert_memory_equal(d.tenant, "t1", 2);
    assert_int_equal(d.parent_kind, STORE_KIND_SITE);
    assert_memory_equal(d.parent_id, "s1", 2);
    assert_true(d.expires_ms == INT64_MAX);
    assert_int_equal(d.n_limits, STORE_MAX_LIMITS);
    for (int i = 0; i < STORE_MAX_LIMITS; i++) {
        assert_int_equal(d.limits[i].kind, all_kinds[i]);
        assert_true(d.limits[i].max == UINT64_MAX - (uint64_t)i);
    }
    for (size_t n = 0; n < sb.size; n++) {
        assert_int_equal(store_value_decode(sb.data, n, &d), CAIRN_ECORRUPT);
    }
    msgpack_sbuffer_destroy(&sb);

    /* The four keys of version 1 in any order, optional keys, and what is
     * corrupt: a missing required key, half a parent, unknown or repeated
     * keys, too many. */
    static const char *const v1[] = {"b", "n", "m", "c"};
    static const char *const all[] = {"c", "m", "n", "b", "t", "pk", "pi", "x", "l"};
    static const char *const half_parent[] = {"c", "m", "n", "b", "pk"};
    static const char *const no_body[] = {"c", "m", "n", "t"};
    static const char *const unknown[] = {"c", "m", "n", "b", "zz"};
    static const char *const twice[] = {"c", "m", "n", "b", "t", "t"};
    static const char *const ten[] = {"c", "m", "n", "b", "t", "pk", "pi", "x", "l", "l"};
    assert_int_equal(decode_value_keys(v1, 4), 0);
    assert_int_equal(decode_value_keys(all, 9), 0);
    assert_int_equal(decode_value_keys(half_parent, 5), CAIRN_ECORRUPT);
    assert_int_equal(decode_value_keys(no_body, 4), CAIRN_ECORRUPT);
    assert_int_equal(decode_value_keys(unknown, 5), CAIRN_ECORRUPT);
    assert_int_equal(decode_value_keys(twice, 6), CAIRN_ECORRUPT);
    assert_int_equal(decode_value_keys(ten, 10), CAIRN_ECORRUPT);

    /* Change and audit records. */
    struct store_change_rec c = {STORE_KIND_DEVICE, "d1", 2, true, "val", 3};
    struct store_change_rec ce;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(store_change_encode(&c, &sb), 0);
    assert_int_equal(store_change_decode(sb.data, sb.size, &ce), 0);
    assert_int_equal(ce.kind, STORE_KIND_DEVICE);
    assert_int_equal(ce.id_len, 2);
    assert_memory_equal(ce.id, "d1", 2);
    assert_true(ce.deleted);
    assert_int_equal(ce.value_len, 3);
    for (size_t n = 0; n < sb.size; n++) {
        assert_int_equal(store_change_decode(sb.data, n, &ce), CAIRN_ECORRUPT);
    }
    msgpack_sbuffer_destroy(&sb);

    struct store_audit_rec a = {0};
    struct store_audit_rec ae;
    a.time_ms = 77;
    a.caller = "alice";
    a.caller_len = 5;
    a.op = STORE_OP_AUDIT;
    a.kind = STORE_KIND_SITE;
    a.id = "s1";
    a.id_len = 2;
    a.status = CAIRN_ECONFLICT;
    a.revision = 9;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(store_audit_encode(&a, &sb), 0);
    assert_int_equal(store_audit_decode(sb.data, sb.size, &ae), 0);
    assert_int_equal(ae.time_ms, 77);
    assert_memory_equal(ae.caller, "alice", 5);
    assert_null(ae.tenant);
    assert_null(ae.message);
    assert_int_equal(ae.op, STORE_OP_AUDIT);
    assert_int_equal(ae.kind, STORE_KIND_SITE);
    assert_int_equal(ae.status, CAIRN_ECONFLICT);
    assert_int_equal(ae.revision, 9);
    for (size_t n = 0; n < sb.size; n++) {
        assert_int_equal(store_audit_decode(sb.data, n, &ae), CAIRN_ECORRUPT);
    }
    msgpack_sbuffer_clear(&sb);
    a.tenant = "t1";
    a.tenant_len = 2;
    a.message = "full";
    a.message_len = 4;
    assert_int_equal(store_audit_encode(&a, &sb), 0);
    assert_int_equal(store_audit_decode(sb.data, sb.size, &ae), 0);
    assert_memory_equal(ae.tenant, "t1", 2);
    assert_memory_equal(ae.message, "full", 4);
    msgpack_sbuffer_destroy(&sb);
}

static void test_crc32c(void **state)
{
    (void)state;
    /* The check value of CRC-32C (RFC 3720, and every implementation). */
    assert_int_equal(store_crc32c(0, "123456789", 9), 0xe3069283);
    assert_int_equal(store_crc32c(0, "", 0), 0);
    /* Incremental equals one pass. */
    assert_int_equal(store_crc32c(store_crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
    assert_int_equal(store_crc32c_table(0, "123456789", 9), 0xe3069283);
    /* The CPU's instruction (where used) and the table agree at every
     * length and alignment. */
    unsigned char buf[512];
    uint64_t rng = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (unsigned char)prng_next(&rng);
    }
    for (size_t off = 0; off < 8; off++) {
        for (size_t len = 0; len + off <= sizeof buf; len += 7) {
            assert_int_equal(store_crc32c(0x1234, buf + off, len),
                             store_crc32c_table(0x1234, buf + off, len));
        }
    }
}

int run_codec_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_order),
        cmocka_unit_test(test_key_request_time),
        cmocka_unit_test(test_key_indexes),
        cmocka_unit_test(test_command_round_trip),
        cmocka_unit_test(test_command_encode_invalid),
        cmocka_unit_test(test_command_v2_round_trip),
        cmocka_unit_test(test_command_v3_fence),
        cmocka_unit_test(test_command_v2_encode_invalid),
        cmocka_unit_test(test_command_v2_decode),
        cmocka_unit_test(test_command_decode_malformed),
        cmocka_unit_test(test_command_decode_structure),
        cmocka_unit_test(test_command_unsupported),
        cmocka_unit_test(test_command_truncated),
        cmocka_unit_test(test_command_garbage),
        cmocka_unit_test(test_result_codec),
        cmocka_unit_test(test_mp_ints),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_records_v2),
        cmocka_unit_test(test_crc32c),
    };
    return cmocka_run_group_tests_name("store codec", tests, NULL, NULL);
}
