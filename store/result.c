/*
 * The msgpack codec of results: the outcome of one applied command, which
 * a follower forwards back to the node that took the request, and which
 * the "requests" table keeps so that a retried request gets the first
 * outcome again. Decoding is strict and bounded like that of commands
 * (command.c): a result comes from another node.
 */
#include "store_int.h"

#include <limits.h>
#include <string.h>

/* Results: {"s": status, "msg": message, "r": revision, "id": id,
 * "c": create_rev, "m": mod_rev, "rp": replayed}, every key present. */

enum { R_S, R_MSG, R_R, R_ID, R_C, R_M, R_RP, R_COUNT };

static const char *const result_keys[R_COUNT] = {"s", "msg", "r", "id", "c", "m", "rp"};

int store_result_encode(const struct store_result *res, void **out, size_t *out_len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t msg_len = strnlen(res->message, sizeof res->message - 1);
    size_t id_len = strnlen(res->id, sizeof res->id - 1);
    int e = 0;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    e |= msgpack_pack_map(&pk, R_COUNT);
    e |= store_mp_pack_key(&pk, "s");
    e |= msgpack_pack_int64(&pk, res->status);
    e |= store_mp_pack_key(&pk, "msg");
    e |= msgpack_pack_str(&pk, msg_len);
    e |= msgpack_pack_str_body(&pk, res->message, msg_len);
    e |= store_mp_pack_key(&pk, "r") | msgpack_pack_uint64(&pk, res->revision);
    e |= store_mp_pack_key(&pk, "id");
    e |= msgpack_pack_str(&pk, id_len);
    e |= msgpack_pack_str_body(&pk, res->id, id_len);
    e |= store_mp_pack_key(&pk, "c") | msgpack_pack_uint64(&pk, res->create_rev);
    e |= store_mp_pack_key(&pk, "m") | msgpack_pack_uint64(&pk, res->mod_rev);
    e |= store_mp_pack_key(&pk, "rp");
    e |= res->replayed ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    if (e != 0) {
        msgpack_sbuffer_destroy(&sb);
        return CAIRN_ENOMEM;
    }
    *out_len = sb.size;
    *out = msgpack_sbuffer_release(&sb);
    return 0;
}

/* Copies a string value into a fixed array, NUL-terminated. */
static int read_into(struct store_mp *r, char *out, size_t size)
{
    const char *s;
    size_t len;
    if (store_mp_peek(r) != STORE_MP_STR || store_mp_str(r, &s, &len) != 0 || len >= size ||
        memchr(s, '\0', len) != NULL) {
        return CAIRN_EMALFORMED;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

int store_result_decode(const void *buf, size_t len, struct store_result *out)
{
    struct store_result res;
    struct store_mp r;
    unsigned seen = 0;
    int64_t status;
    uint32_t n;
    size_t k;
    int rv = 0;

    memset(&res, 0, sizeof res);
    store_mp_init(&r, buf, len);
    if (store_mp_peek(&r) != STORE_MP_MAP || store_mp_map(&r, &n) != 0 || n != R_COUNT) {
        return CAIRN_EMALFORMED;
    }
    for (uint32_t i = 0; i < n && rv == 0; i++) {
        if (store_mp_key(&r, result_keys, R_COUNT, &k) != 0 || k == R_COUNT ||
            (seen & (1u << k)) != 0) {
            return CAIRN_EMALFORMED;
        }
        seen |= 1u << k;
        switch (k) {
            case R_S:
                rv = store_mp_int(&r, &status);
                if (rv == 0 && (status < 0 || status > INT_MAX)) {
                    rv = CAIRN_EMALFORMED;
                }
                res.status = (int)status;
                break;
            case R_MSG:
                rv = read_into(&r, res.message, sizeof res.message);
                break;
            case R_R:
                rv = store_mp_uint(&r, &res.revision);
                break;
            case R_ID:
                rv = read_into(&r, res.id, sizeof res.id);
                break;
            case R_C:
                rv = store_mp_uint(&r, &res.create_rev);
                break;
            case R_M:
                rv = store_mp_uint(&r, &res.mod_rev);
                break;
            default:
                rv = store_mp_bool(&r, &res.replayed);
                break;
        }
    }
    if (rv != 0 || r.left != 0) {
        return CAIRN_EMALFORMED;
    }
    *out = res;
    return 0;
}
