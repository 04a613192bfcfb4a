/*
 * Bounded msgpack reading for everything the store decodes: commands from
 * the raft log, results forwarded by other nodes, and its own records.
 *
 * msgpack-c's unpacker is not used for reading because it allocates a map's
 * or array's elements up front from the count in the header: five bytes of
 * garbage (a map32 header) make it reserve gigabytes. This reader walks the
 * buffer with a cursor, checks every length against the bytes left before
 * touching them, returns pointers into the caller's buffer and never
 * allocates. Writing uses msgpack-c's packer.
 */
#include "store_int.h"

#include <string.h>

/* Deepest nesting store_mp_skip follows; the store's own formats are flat. */
#define SKIP_DEPTH_MAX 32

void store_mp_init(struct store_mp *r, const void *buf, size_t len)
{
    r->p = buf;
    r->left = buf != NULL ? len : 0;
}

static bool take(struct store_mp *r, size_t n, const unsigned char **out)
{
    if (n > r->left) {
        return false;
    }
    *out = r->p;
    r->p += n;
    r->left -= n;
    return true;
}

static bool take_be(struct store_mp *r, size_t n, uint64_t *v)
{
    const unsigned char *p;
    uint64_t x = 0;
    if (!take(r, n, &p)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        x = (x << 8) | p[i];
    }
    *v = x;
    return true;
}

enum store_mp_type store_mp_peek(const struct store_mp *r)
{
    unsigned char b;
    if (r->left == 0) {
        return STORE_MP_END;
    }
    b = r->p[0];
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) {
        return STORE_MP_INT;
    }
    if ((b & 0xf0) == 0x80 || b == 0xde || b == 0xdf) {
        return STORE_MP_MAP;
    }
    if ((b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd) {
        return STORE_MP_ARRAY;
    }
    if ((b & 0xe0) == 0xa0 || (b >= 0xd9 && b <= 0xdb)) {
        return STORE_MP_STR;
    }
    if (b >= 0xc4 && b <= 0xc6) {
        return STORE_MP_BIN;
    }
    if (b == 0xc0) {
        return STORE_MP_NIL;
    }
    if (b == 0xc2 || b == 0xc3) {
        return STORE_MP_BOOL;
    }
    return STORE_MP_OTHER;
}

int store_mp_map(struct store_mp *r, uint32_t *n)
{
    const unsigned char *p;
    uint64_t v;
    if (!take(r, 1, &p)) {
        return CAIRN_EMALFORMED;
    }
    if ((p[0] & 0xf0) == 0x80) {
        *n = p[0] & 0x0f;
        return 0;
    }
    if ((p[0] == 0xde && take_be(r, 2, &v)) || (p[0] == 0xdf && take_be(r, 4, &v))) {
        *n = (uint32_t)v;
        return 0;
    }
    return CAIRN_EMALFORMED;
}

int store_mp_array(struct store_mp *r, uint32_t *n)
{
    const unsigned char *p;
    uint64_t v;
    if (!take(r, 1, &p)) {
        return CAIRN_EMALFORMED;
    }
    if ((p[0] & 0xf0) == 0x90) {
        *n = p[0] & 0x0f;
        return 0;
    }
    if ((p[0] == 0xdc && take_be(r, 2, &v)) || (p[0] == 0xdd && take_be(r, 4, &v))) {
        *n = (uint32_t)v;
        return 0;
    }
    return CAIRN_EMALFORMED;
}

/* Reads the length of a str (is_str) or bin value. */
static bool take_len(struct store_mp *r, bool is_str, size_t *len)
{
    const unsigned char *p;
    uint64_t v;
    size_t width;
    if (!take(r, 1, &p)) {
        return false;
    }
    if (is_str && (p[0] & 0xe0) == 0xa0) {
        *len = p[0] & 0x1f;
        return true;
    }
    if (is_str && p[0] >= 0xd9 && p[0] <= 0xdb) {
        width = (size_t)1 << (p[0] - 0xd9);
    } else if (!is_str && p[0] >= 0xc4 && p[0] <= 0xc6) {
        width = (size_t)1 << (p[0] - 0xc4);
    } else {
        return false;
    }
    if (!take_be(r, width, &v)) {
        return false;
    }
    *len = (size_t)v;
    return true;
}

int store_mp_str(struct store_mp *r, const char **s, size_t *len)
{
    const unsigned char *p;
    size_t n;
    if (!take_len(r, true, &n) || !take(r, n, &p)) {
        return CAIRN_EMALFORMED;
    }
    *s = (const char *)p;
    *len = n;
    return 0;
}

int store_mp_bin(struct store_mp *r, const void **b, size_t *len)
{
    const unsigned char *p;
    size_t n;
    if (!take_len(r, false, &n) || !take(r, n, &p)) {
        return CAIRN_EMALFORMED;
    }
    *b = p;
    *len = n;
    return 0;
}

/* Reads any integer format. *negative says whether the value is below
 * zero; *v holds it as an unsigned value or, if negative, as the two's
 * complement bit pattern of an int64. */
static int take_int(struct store_mp *r, bool *negative, uint64_t *v)
{
    const unsigned char *p;
    uint64_t x;
    size_t width;
    if (!take(r, 1, &p)) {
        return CAIRN_EMALFORMED;
    }
    if (p[0] <= 0x7f) {
        *negative = false;
        *v = p[0];
        return 0;
    }
    if (p[0] >= 0xe0) {
        *negative = true;
        *v = (uint64_t)p[0] | ~(uint64_t)0xff;
        return 0;
    }
    if (p[0] >= 0xcc && p[0] <= 0xcf) {
        width = (size_t)1 << (p[0] - 0xcc);
        if (!take_be(r, width, &x)) {
            return CAIRN_EMALFORMED;
        }
        *negative = false;
        *v = x;
        return 0;
    }
    if (p[0] >= 0xd0 && p[0] <= 0xd3) {
        width = (size_t)1 << (p[0] - 0xd0);
        if (!take_be(r, width, &x)) {
            return CAIRN_EMALFORMED;
        }
        /* Sign-extend from width bytes. */
        if (width < 8 && (x >> (width * 8 - 1)) != 0) {
            x |= ~(uint64_t)0 << (width * 8);
        }
        *negative = (x >> 63) != 0;
        *v = x;
        return 0;
    }
    return CAIRN_EMALFORMED;
}

int store_mp_uint(struct store_mp *r, uint64_t *v)
{
    bool negative;
    uint64_t x;
    if (take_int(r, &negative, &x) != 0 || negative) {
        return CAIRN_EMALFORMED;
    }
    *v = x;
    return 0;
}

int store_mp_int(struct store_mp *r, int64_t *v)
{
    bool negative;
    uint64_t x;
    if (take_int(r, &negative, &x) != 0 || (!negative && x > (uint64_t)INT64_MAX)) {
        return CAIRN_EMALFORMED;
    }
    /* Two's complement: the pattern of a negative value converts back. */
    *v = negative ? -(int64_t)(~x) - 1 : (int64_t)x;
    return 0;
}

int store_mp_bool(struct store_mp *r, bool *v)
{
    const unsigned char *p;
    if (!take(r, 1, &p) || (p[0] != 0xc2 && p[0] != 0xc3)) {
        return CAIRN_EMALFORMED;
    }
    *v = p[0] == 0xc3;
    return 0;
}

int store_mp_nil(struct store_mp *r)
{
    const unsigned char *p;
    if (!take(r, 1, &p) || p[0] != 0xc0) {
        return CAIRN_EMALFORMED;
    }
    return 0;
}

/* Bytes of payload after the first byte b for every fixed-size format, or
 * -1 for formats whose size depends on what follows. */
static int fixed_size(unsigned char b)
{
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        return 0;
    }
    switch (b) {
        case 0xcc:
        case 0xd0:
            return 1;
        case 0xcd:
        case 0xd1:
            return 2;
        case 0xca:
        case 0xce:
        case 0xd2:
            return 4;
        case 0xcb:
        case 0xcf:
        case 0xd3:
            return 8;
        case 0xd4: /* fixext: a type byte, then 1..16 bytes */
            return 2;
        case 0xd5:
            return 3;
        case 0xd6:
            return 5;
        case 0xd7:
            return 9;
        case 0xd8:
            return 17;
        default:
            return -1;
    }
}

static int skip(struct store_mp *r, unsigned depth)
{
    const unsigned char *p;
    uint64_t count = 0;
    uint64_t n;
    int fixed;
    if (depth > SKIP_DEPTH_MAX || r->left == 0) {
        return CAIRN_EMALFORMED;
    }
    fixed = fixed_size(r->p[0]);
    if (fixed >= 0) {
        return take(r, 1 + (size_t)fixed, &p) ? 0 : CAIRN_EMALFORMED;
    }
    switch (store_mp_peek(r)) {
        case STORE_MP_STR: {
            const char *s;
            size_t len;
            return store_mp_str(r, &s, &len);
        }
        case STORE_MP_BIN: {
            const void *b;
            size_t len;
            return store_mp_bin(r, &b, &len);
        }
        case STORE_MP_MAP: {
            uint32_t pairs;
            if (store_mp_map(r, &pairs) != 0) {
                return CAIRN_EMALFORMED;
            }
            count = (uint64_t)pairs * 2;
            break;
        }
        case STORE_MP_ARRAY:
            if (!take(r, 1, &p)) {
                return CAIRN_EMALFORMED;
            }
            if ((p[0] & 0xf0) == 0x90) {
                count = p[0] & 0x0f;
            } else if (!take_be(r, p[0] == 0xdc ? 2 : 4, &count)) {
                return CAIRN_EMALFORMED;
            }
            break;
        default:
            /* ext8/16/32: a length, a type byte, the data; or 0xc1. */
            if (!take(r, 1, &p)) {
                return CAIRN_EMALFORMED;
            }
            if (p[0] < 0xc7 || p[0] > 0xc9 || !take_be(r, (size_t)1 << (p[0] - 0xc7), &n) ||
                n > SIZE_MAX - 1 || !take(r, (size_t)n + 1, &p)) {
                return CAIRN_EMALFORMED;
            }
            return 0;
    }
    /* Every element takes at least one byte: a count larger than what is
     * left is garbage, and the loop below stays bounded by the input. */
    if (count > r->left) {
        return CAIRN_EMALFORMED;
    }
    for (uint64_t i = 0; i < count; i++) {
        if (skip(r, depth + 1) != 0) {
            return CAIRN_EMALFORMED;
        }
    }
    return 0;
}

int store_mp_skip(struct store_mp *r)
{
    return skip(r, 0);
}

int store_mp_pack_key(msgpack_packer *pk, const char *key)
{
    size_t len = strlen(key);
    return msgpack_pack_str(pk, len) != 0 || msgpack_pack_str_body(pk, key, len) != 0;
}

int store_mp_key(struct store_mp *r, const char *const *keys, size_t n, size_t *index)
{
    const char *s;
    size_t len;
    size_t i;
    if (store_mp_peek(r) != STORE_MP_STR || store_mp_str(r, &s, &len) != 0) {
        return CAIRN_EMALFORMED;
    }
    for (i = 0; i < n; i++) {
        if (strlen(keys[i]) == len && memcmp(keys[i], s, len) == 0) {
            break;
        }
    }
    *index = i;
    return 0;
}
