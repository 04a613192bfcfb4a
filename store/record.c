/*
 * What the store keeps in RocksDB and how: the key encodings of the
 * "objects", "names" and "request_times" column families, and the msgpack
 * records stored as values in "objects" and "requests".
 *
 * Keys start with the kind byte so that one kind's keys are contiguous and
 * sorted by id (RocksDB compares keys bytewise), which makes a list one
 * range scan. Request times are big-endian so that the oldest sorts first.
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
        default:
            return NULL;
    }
}

static void packer_init(msgpack_packer *pk, msgpack_sbuffer *sb)
{
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

int store_value_encode(const struct store_value *v, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    int e = 0;
    packer_init(&pk, sb);
    e |= msgpack_pack_map(&pk, 4);
    e |= store_mp_pack_key(&pk, "c");
    e |= msgpack_pack_uint64(&pk, v->create_rev);
    e |= store_mp_pack_key(&pk, "m");
    e |= msgpack_pack_uint64(&pk, v->mod_rev);
    e |= store_mp_pack_key(&pk, "n");
    if (v->name != NULL) {
        e |= msgpack_pack_str(&pk, v->name_len);
        e |= msgpack_pack_str_body(&pk, v->name, v->name_len);
    } else {
        e |= msgpack_pack_nil(&pk);
    }
    e |= store_mp_pack_key(&pk, "b");
    e |= msgpack_pack_bin(&pk, v->body_len);
    e |= msgpack_pack_bin_body(&pk, v->body, v->body_len);
    return e != 0 ? CAIRN_ENOMEM : 0;
}

int store_value_decode(const void *buf, size_t len, struct store_value *out)
{
    static const char *const keys[] = {"c", "m", "n", "b"};
    struct store_value v = {0};
    struct store_mp r;
    unsigned seen = 0;
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
                rv = store_mp_uint(&r, &v.create_rev);
                break;
            case 1:
                rv = store_mp_uint(&r, &v.mod_rev);
                break;
            case 2:
                if (store_mp_peek(&r) == STORE_MP_NIL) {
                    rv = store_mp_nil(&r);
                } else {
                    rv = store_mp_str(&r, &v.name, &v.name_len);
                }
                break;
            default:
                if (store_mp_peek(&r) == STORE_MP_STR) {
                    rv = store_mp_str(&r, &v.body, &v.body_len);
                } else {
                    const void *body = NULL;
                    rv = store_mp_bin(&r, &body, &v.body_len);
                    v.body = body;
                }
                break;
        }
    }
    if (rv != 0 || r.left != 0) {
        return CAIRN_ECORRUPT;
    }
    *out = v;
    return 0;
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
