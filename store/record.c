/*
 * What the store keeps in RocksDB and how: the key encodings of every
 * column family, and the msgpack records stored as values in "objects",
 * "requests", "changes" and "audit".
 *
 * Keys start with the kind byte so that one kind's keys are contiguous and
 * sorted by id (RocksDB compares keys bytewise), which makes a list one
 * range scan. The indexes put the group they are read by first (a kind in
 * a tenant, a parent), then a 0 byte, which no id contains, so that one
 * group's keys never interleave with another's. Times, revisions and
 * sequence numbers are big-endian so that the oldest sorts first.
 * Values are decoded strictly: anything not made by the encoders here is
 * CAIRN_ECORRUPT, since only this file writes them.
 */
#include "store_int.h"

#include <string.h>

static size_t key_with_kind(enum store_kind kind, const char *s, size_t len, char *out)
{
    out[0] = (char)kind;
    memcpy(out + 1, s, len);
    return 1 + len;
}

size_t store_key_object(enum store_kind kind, const char *id, size_t id_len, char *out)
{
    return key_with_kind(kind, id, id_len, out);
}

size_t store_key_name(enum store_kind kind, const char *name, size_t name_len, char *out)
{
    return key_with_kind(kind, name, name_len, out);
}

void store_key_range(enum store_kind kind, char *lo, char *hi)
{
    /* Kinds are ASCII letters, so kind + 1 never wraps. */
    lo[0] = (char)kind;
    hi[0] = (char)(kind + 1);
}

size_t store_key_scoped_prefix(enum store_kind kind, const char *tenant, size_t tenant_len,
                               char *out)
{
    size_t n = key_with_kind(kind, tenant, tenant_len, out);
    out[n] = '\0';
    return n + 1;
}

size_t store_key_scoped(enum store_kind kind, const char *tenant, size_t tenant_len, const char *id,
                        size_t id_len, char *out)
{
    size_t n = store_key_scoped_prefix(kind, tenant, tenant_len, out);
    memcpy(out + n, id, id_len);
    return n + id_len;
}

size_t store_key_children_prefix(enum store_kind parent_kind, const char *parent_id,
                                 size_t parent_id_len, char *out)
{
    return store_key_scoped_prefix(parent_kind, parent_id, parent_id_len, out);
}

size_t store_key_child(enum store_kind parent_kind, const char *parent_id, size_t parent_id_len,
                       enum store_kind kind, const char *id, size_t id_len, char *out)
{
    size_t n = store_key_children_prefix(parent_kind, parent_id, parent_id_len, out);
    return n + key_with_kind(kind, id, id_len, out + n);
}

size_t store_key_count(const char *tenant, size_t tenant_len, enum store_kind kind, char *out)
{
    memcpy(out, tenant, tenant_len);
    out[tenant_len] = '\0';
    out[tenant_len + 1] = (char)kind;
    return tenant_len + 2;
}

size_t store_key_expiry(int64_t expires_ms, enum store_kind kind, const char *id, size_t id_len,
                        char *out)
{
    store_be64_put((uint64_t)expires_ms, (unsigned char *)out);
    return 8 + key_with_kind(kind, id, id_len, out + 8);
}

size_t store_key_change(uint64_t revision, uint32_t seq, char *out)
{
    unsigned char *p = (unsigned char *)out;
    store_be64_put(revision, p);
    p[8] = (unsigned char)(seq >> 24);
    p[9] = (unsigned char)(seq >> 16);
    p[10] = (unsigned char)(seq >> 8);
    p[11] = (unsigned char)seq;
    return STORE_KEY_CHANGE_LEN;
}

size_t store_key_audit(uint64_t seq, char *out)
{
    store_be64_put(seq, (unsigned char *)out);
    return STORE_KEY_AUDIT_LEN;
}

size_t store_key_request_time(int64_t time_ms, const char *rid, size_t rid_len, char *out)
{
    store_be64_put((uint64_t)time_ms, (unsigned char *)out);
    memcpy(out + 8, rid, rid_len);
    return 8 + rid_len;
}

void store_be64_put(uint64_t v, unsigned char out[8])
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

uint64_t store_be64_get(const unsigned char in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | in[i];
    }
    return v;
}

const char *store_kind_name(uint64_t kind)
{
    switch (kind) {
        case STORE_KIND_TENANT:
            return "tenant";
        case STORE_KIND_MEMBER:
            return "member";
        case STORE_KIND_USER:
            return "user";
        case STORE_KIND_SESSION:
            return "session";
        case STORE_KIND_SITE:
            return "site";
        case STORE_KIND_DEVICE:
            return "device";
        case STORE_KIND_TEMPLATE:
            return "template";
        case STORE_KIND_SERVICE:
            return "service";
        case STORE_KIND_JOB:
            return "job";
        case STORE_KIND_SYSTEM:
            return "system";
        default:
            return NULL;
    }
}

static void packer_init(msgpack_packer *pk, msgpack_sbuffer *sb)
{
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

static int pack_str(msgpack_packer *pk, const char *key, const char *str, size_t len)
{
    return store_mp_pack_key(pk, key) | msgpack_pack_str(pk, len) |
           msgpack_pack_str_body(pk, str, len);
}

/* Limits as an array of [kind, max] pairs. */
static int pack_limits(msgpack_packer *pk, const char *key, const struct store_limit *l, size_t n)
{
    int e = store_mp_pack_key(pk, key) | msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        e |= msgpack_pack_array(pk, 2) | msgpack_pack_uint64(pk, (uint64_t)l[i].kind) |
             msgpack_pack_uint64(pk, l[i].max);
    }
    return e;
}

static int read_limits(struct store_mp *r, struct store_limit *l, size_t *n)
{
    uint32_t count;
    uint32_t pair;
    uint64_t kind;
    if (store_mp_array(r, &count) != 0 || count > STORE_MAX_LIMITS) {
        return CAIRN_EMALFORMED;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (store_mp_array(r, &pair) != 0 || pair != 2 || store_mp_uint(r, &kind) != 0 ||
            store_kind_name(kind) == NULL || store_mp_uint(r, &l[i].max) != 0) {
            return CAIRN_EMALFORMED;
        }
        l[i].kind = (enum store_kind)kind;
    }
    *n = count;
    return 0;
}

int store_value_encode(const struct store_value *v, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    uint32_t count = 4;
    int e = 0;
    packer_init(&pk, sb);
    count +=
        (v->tenant != NULL) + 2 * (v->parent_id != NULL) + (v->expires_ms != 0) + (v->n_limits > 0);
    e |= msgpack_pack_map(&pk, count);
    e |= store_mp_pack_key(&pk, "c");
    e |= msgpack_pack_uint64(&pk, v->create_rev);
    e |= store_mp_pack_key(&pk, "m");
    e |= msgpack_pack_uint64(&pk, v->mod_rev);
    if (v->name != NULL) {
        e |= pack_str(&pk, "n", v->name, v->name_len);
    } else {
        e |= store_mp_pack_key(&pk, "n");
        e |= msgpack_pack_nil(&pk);
    }
    e |= store_mp_pack_key(&pk, "b");
    e |= msgpack_pack_bin(&pk, v->body_len);
    e |= msgpack_pack_bin_body(&pk, v->body, v->body_len);
    if (v->tenant != NULL) {
        e |= pack_str(&pk, "t", v->tenant, v->tenant_len);
    }
    if (v->parent_id != NULL) {
        e |= store_mp_pack_key(&pk, "pk");
        e |= msgpack_pack_uint64(&pk, (uint64_t)v->parent_kind);
        e |= pack_str(&pk, "pi", v->parent_id, v->parent_id_len);
    }
    if (v->expires_ms != 0) {
        e |= store_mp_pack_key(&pk, "x");
        e |= msgpack_pack_int64(&pk, v->expires_ms);
    }
    if (v->n_limits > 0) {
        e |= pack_limits(&pk, "l", v->limits, v->n_limits);
    }
    return e != 0 ? CAIRN_ENOMEM : 0;
}

int store_value_decode(const void *buf, size_t len, struct store_value *out)
{
    enum { V_C, V_M, V_N, V_B, V_T, V_PK, V_PI, V_X, V_L, V_COUNT };
    static const char *const keys[V_COUNT] = {"c", "m", "n", "b", "t", "pk", "pi", "x", "l"};
    const unsigned required = (1u << V_C) | (1u << V_M) | (1u << V_N) | (1u << V_B);
    struct store_value v = {0};
    struct store_mp r;
    unsigned seen = 0;
    uint64_t kind;
    uint32_t n;
    size_t k;
    int rv = 0;

    store_mp_init(&r, buf, len);
    if (store_mp_map(&r, &n) != 0 || n < 4 || n > V_COUNT) {
        return CAIRN_ECORRUPT;
    }
    for (uint32_t i = 0; i < n && rv == 0; i++) {
        if (store_mp_key(&r, keys, V_COUNT, &k) != 0 || k == V_COUNT || (seen & (1u << k)) != 0) {
            return CAIRN_ECORRUPT;
        }
        seen |= 1u << k;
        switch (k) {
            case V_C:
                rv = store_mp_uint(&r, &v.create_rev);
                break;
            case V_M:
                rv = store_mp_uint(&r, &v.mod_rev);
                break;
            case V_N:
                if (store_mp_peek(&r) == STORE_MP_NIL) {
                    rv = store_mp_nil(&r);
                } else {
                    rv = store_mp_str(&r, &v.name, &v.name_len);
                }
                break;
            case V_B:
                if (store_mp_peek(&r) == STORE_MP_STR) {
                    rv = store_mp_str(&r, &v.body, &v.body_len);
                } else {
                    const void *body = NULL;
                    rv = store_mp_bin(&r, &body, &v.body_len);
                    v.body = body;
                }
                break;
            case V_T:
                rv = store_mp_str(&r, &v.tenant, &v.tenant_len);
                break;
            case V_PK:
                rv = store_mp_uint(&r, &kind);
                if (rv == 0 && store_kind_name(kind) == NULL) {
                    rv = CAIRN_ECORRUPT;
                }
                v.parent_kind = (enum store_kind)kind;
                break;
            case V_PI:
                rv = store_mp_str(&r, &v.parent_id, &v.parent_id_len);
                break;
            case V_X:
                rv = store_mp_int(&r, &v.expires_ms);
                if (rv == 0 && v.expires_ms <= 0) {
                    rv = CAIRN_ECORRUPT;
                }
                break;
            default:
                rv = read_limits(&r, v.limits, &v.n_limits);
                break;
        }
    }
    /* The parent is both its kind and its id, or neither. */
    if (rv != 0 || r.left != 0 || (seen & required) != required ||
        ((seen >> V_PK) & 1u) != ((seen >> V_PI) & 1u)) {
        return CAIRN_ECORRUPT;
    }
    *out = v;
    return 0;
}

bool store_value_expired(const struct store_value *v, int64_t now)
{
    return v->expires_ms != 0 && v->expires_ms <= now;
}

int store_request_encode(const struct store_request *req, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    int e = 0;
    packer_init(&pk, sb);
    e |= msgpack_pack_map(&pk, 3);
    e |= store_mp_pack_key(&pk, "ts");
    e |= msgpack_pack_int64(&pk, req->time_ms);
    e |= store_mp_pack_key(&pk, "fp");
    e |= msgpack_pack_uint64(&pk, req->fingerprint);
    e |= store_mp_pack_key(&pk, "r");
    e |= msgpack_pack_bin(&pk, req->result_len);
    e |= msgpack_pack_bin_body(&pk, req->result, req->result_len);
    return e != 0 ? CAIRN_ENOMEM : 0;
}

int store_request_decode(const void *buf, size_t len, struct store_request *out)
{
    static const char *const keys[] = {"ts", "fp", "r"};
    struct store_request req = {0};
    struct store_mp r;
    unsigned seen = 0;
    uint32_t n;
    size_t k;
    int rv = 0;

    store_mp_init(&r, buf, len);
    if (store_mp_map(&r, &n) != 0 || n != 3) {
        return CAIRN_ECORRUPT;
    }
    for (uint32_t i = 0; i < n && rv == 0; i++) {
        if (store_mp_key(&r, keys, 3, &k) != 0 || k == 3 || (seen & (1u << k)) != 0) {
            return CAIRN_ECORRUPT;
        }
        seen |= 1u << k;
        switch (k) {
            case 0:
                rv = store_mp_int(&r, &req.time_ms);
                break;
            case 1:
                rv = store_mp_uint(&r, &req.fingerprint);
                break;
            default:
                rv = store_mp_bin(&r, &req.result, &req.result_len);
                break;
        }
    }
    if (rv != 0 || r.left != 0) {
        return CAIRN_ECORRUPT;
    }
    *out = req;
    return 0;
}

int store_change_encode(const struct store_change_rec *c, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    int e = 0;
    packer_init(&pk, sb);
    e |= msgpack_pack_map(&pk, 4);
    e |= store_mp_pack_key(&pk, "k");
    e |= msgpack_pack_uint64(&pk, (uint64_t)c->kind);
    e |= pack_str(&pk, "id", c->id, c->id_len);
    e |= store_mp_pack_key(&pk, "d");
    e |= c->deleted ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    e |= store_mp_pack_key(&pk, "v");
    e |= msgpack_pack_bin(&pk, c->value_len);
    e |= msgpack_pack_bin_body(&pk, c->value, c->value_len);
    return e != 0 ? CAIRN_ENOMEM : 0;
}

int store_change_decode(const void *buf, size_t len, struct store_change_rec *out)
{
    static const char *const keys[] = {"k", "id", "d", "v"};
    struct store_change_rec c = {0};
    struct store_mp r;
    unsigned seen = 0;
    uint64_t kind;
    uint32_t n;
    size_t k;
    int rv = 0;

    store_mp_init(&r, buf, len);
    if (store_mp_map(&r, &n) != 0 || n != 4) {
        return CAIRN_ECORRUPT;
    }
    for (uint32_t i = 0; i < n && rv == 0; i++) {
        if (store_mp_key(&r, keys, 4, &k) != 0 || k == 4 || (seen & (1u << k)) != 0) {
            return CAIRN_ECORRUPT;
        }
        seen |= 1u << k;
        switch (k) {
            case 0:
                rv = store_mp_uint(&r, &kind);
                if (rv == 0 && store_kind_name(kind) == NULL) {
                    rv = CAIRN_ECORRUPT;
                }
                c.kind = (enum store_kind)kind;
                break;
            case 1:
                rv = store_mp_str(&r, &c.id, &c.id_len);
                break;
            case 2:
                rv = store_mp_bool(&r, &c.deleted);
                break;
            default:
                rv = store_mp_bin(&r, &c.value, &c.value_len);
                break;
        }
    }
    if (rv != 0 || r.left != 0) {
        return CAIRN_ECORRUPT;
    }
    *out = c;
    return 0;
}

/* A string or nil (NULL). */
static int pack_opt_str(msgpack_packer *pk, const char *key, const char *s, size_t len)
{
    if (s == NULL) {
        return store_mp_pack_key(pk, key) | msgpack_pack_nil(pk);
    }
    return pack_str(pk, key, s, len);
}

static int read_opt_str(struct store_mp *r, const char **s, size_t *len)
{
    if (store_mp_peek(r) == STORE_MP_NIL) {
        *s = NULL;
        *len = 0;
        return store_mp_nil(r);
    }
    return store_mp_str(r, s, len);
}

int store_audit_encode(const struct store_audit_rec *a, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    int e = 0;
    packer_init(&pk, sb);
    e |= msgpack_pack_map(&pk, 9);
    e |= store_mp_pack_key(&pk, "ts");
    e |= msgpack_pack_int64(&pk, a->time_ms);
    e |= pack_str(&pk, "by", a->caller, a->caller_len);
    e |= pack_opt_str(&pk, "tn", a->tenant, a->tenant_len);
    e |= store_mp_pack_key(&pk, "op");
    e |= msgpack_pack_uint64(&pk, (uint64_t)a->op);
    e |= store_mp_pack_key(&pk, "k");
    e |= msgpack_pack_uint64(&pk, (uint64_t)a->kind);
    e |= pack_str(&pk, "id", a->id, a->id_len);
    e |= store_mp_pack_key(&pk, "s");
    e |= msgpack_pack_int64(&pk, a->status);
    e |= pack_opt_str(&pk, "msg", a->message, a->message_len);
    e |= store_mp_pack_key(&pk, "r");
    e |= msgpack_pack_uint64(&pk, a->revision);
    return e != 0 ? CAIRN_ENOMEM : 0;
}

int store_audit_decode(const void *buf, size_t len, struct store_audit_rec *out)
{
    enum { A_TS, A_BY, A_TN, A_OP, A_K, A_ID, A_S, A_MSG, A_R, A_COUNT };
    static const char *const keys[A_COUNT] = {"ts", "by", "tn", "op", "k", "id", "s", "msg", "r"};
    struct store_audit_rec a = {0};
    struct store_mp r;
    unsigned seen = 0;
    uint64_t u;
    int64_t i64;
    uint32_t n;
    size_t k;
    int rv = 0;

    store_mp_init(&r, buf, len);
    if (store_mp_map(&r, &n) != 0 || n != A_COUNT) {
        return CAIRN_ECORRUPT;
    }
    for (uint32_t i = 0; i < n && rv == 0; i++) {
        if (store_mp_key(&r, keys, A_COUNT, &k) != 0 || k == A_COUNT || (seen & (1u << k)) != 0) {
            return CAIRN_ECORRUPT;
        }
        seen |= 1u << k;
        switch (k) {
            case A_TS:
                rv = store_mp_int(&r, &a.time_ms);
                break;
            case A_BY:
                rv = store_mp_str(&r, &a.caller, &a.caller_len);
                break;
            case A_TN:
                rv = read_opt_str(&r, &a.tenant, &a.tenant_len);
                break;
            case A_OP:
                rv = store_mp_uint(&r, &u);
                if (rv == 0 && (u < STORE_OP_CREATE || u > STORE_OP_AUDIT)) {
                    rv = CAIRN_ECORRUPT;
                }
                a.op = (enum store_op)u;
                break;
            case A_K:
                rv = store_mp_uint(&r, &u);
                if (rv == 0 && store_kind_name(u) == NULL) {
                    rv = CAIRN_ECORRUPT;
                }
                a.kind = (enum store_kind)u;
                break;
            case A_ID:
                rv = store_mp_str(&r, &a.id, &a.id_len);
                break;
            case A_S:
                rv = store_mp_int(&r, &i64);
                if (rv == 0 && (i64 < 0 || i64 >= CAIRN_ERROR_LAST_)) {
                    rv = CAIRN_ECORRUPT;
                }
                a.status = (int)i64;
                break;
            case A_MSG:
                rv = read_opt_str(&r, &a.message, &a.message_len);
                break;
            default:
                rv = store_mp_uint(&r, &a.revision);
                break;
        }
    }
    if (rv != 0 || r.left != 0) {
        return CAIRN_ECORRUPT;
    }
    *out = a;
    return 0;
}
