/*
 * The msgpack codec of commands (what the leader proposes into the raft
 * log) and of results (what a follower forwards back to the node that took
 * the request).
 *
 * A command is a map with short keys:
 *   v   version (required)         rid  request id
 *   op  enum store_op (required)   fp   fingerprint
 *   k   enum store_kind (required) ts   time_ms, >= 0 (required)
 *   id  object id (required)       by   caller
 *   n   name                       if   if_match
 *   b   body (bin)
 * Absent optional fields decode as NULL or 0; the encoder leaves out NULL
 * strings and zero if/fp. Strings are msgpack str values whose last byte is
 * a NUL, so that a decoded command's strings can point into the entry's
 * buffer as C strings without a copy; the body is a bin of exactly body_len
 * bytes (not NUL-terminated).
 *
 * Decoding is strict because every node must reach the same verdict on the
 * same bytes, now and after an upgrade: the version is read first (a newer
 * command is CAIRN_EUNSUPPORTED, not malformed), then unknown, duplicate,
 * missing, mistyped or over-long fields are CAIRN_EMALFORMED with the
 * field named in errmsg.
 */
#include "store_int.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum field { F_V, F_OP, F_K, F_ID, F_N, F_B, F_IF, F_RID, F_FP, F_TS, F_BY, F_COUNT };

static const char *const field_keys[F_COUNT] = {"v",  "op",  "k",  "id", "n", "b",
                                                "if", "rid", "fp", "ts", "by"};

/* Length limits of the string fields, in bytes without the NUL. */
static const struct {
    enum field field;
    size_t min;
    size_t max;
} str_limits[] = {
    {F_ID, 1, STORE_ID_MAX},
    {F_N, 1, STORE_NAME_MAX},
    {F_RID, 1, STORE_REQUEST_ID_MAX},
    {F_BY, 0, STORE_CALLER_MAX},
};

static const char **str_field(struct store_command *cmd, enum field f)
{
    switch (f) {
        case F_ID:
            return &cmd->id;
        case F_N:
            return &cmd->name;
        case F_RID:
            return &cmd->request_id;
        default:
            return &cmd->caller;
    }
}

static bool op_valid(uint64_t op)
{
    return op >= STORE_OP_CREATE && op <= STORE_OP_PUT;
}

/* Checks what the encoder needs; returns the offending field's key. */
static const char *check_command(const struct store_command *cmd)
{
    struct store_command c = *cmd;
    if (cmd->version < 1 || cmd->version > STORE_COMMAND_VERSION) {
        return "v";
    }
    if (!op_valid(cmd->op)) {
        return "op";
    }
    if (store_kind_name(cmd->kind) == NULL) {
        return "k";
    }
    if (cmd->time_ms < 0) {
        return "ts";
    }
    if ((cmd->body == NULL && cmd->body_len != 0) || cmd->body_len > STORE_BODY_MAX) {
        return "b";
    }
    if (cmd->id == NULL) {
        return "id";
    }
    for (size_t i = 0; i < sizeof str_limits / sizeof str_limits[0]; i++) {
        const char *s = *str_field(&c, str_limits[i].field);
        size_t len;
        if (s == NULL) {
            continue;
        }
        len = strnlen(s, str_limits[i].max + 1);
        if (len < str_limits[i].min || len > str_limits[i].max) {
            return field_keys[str_limits[i].field];
        }
    }
    return NULL;
}

static int pack_zstr(msgpack_packer *pk, const char *key, const char *s)
{
    size_t len = strlen(s) + 1;
    return store_mp_pack_key(pk, key) | msgpack_pack_str(pk, len) |
           msgpack_pack_str_body(pk, s, len);
}

static int pack_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
    return store_mp_pack_key(pk, key) | msgpack_pack_uint64(pk, v);
}

int store_command_encode(const struct store_command *cmd, void **out, size_t *out_len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t count = 5;
    int e = 0;

    if (check_command(cmd) != NULL) {
        return CAIRN_EINVAL;
    }
    count += (cmd->name != NULL) + (cmd->body != NULL) + (cmd->if_match != 0) +
             (cmd->request_id != NULL) + (cmd->fingerprint != 0) + (cmd->caller != NULL);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    e |= msgpack_pack_map(&pk, count);
    e |= pack_u64(&pk, "v", cmd->version);
    e |= pack_u64(&pk, "op", (uint64_t)cmd->op);
    e |= pack_u64(&pk, "k", (uint64_t)cmd->kind);
    e |= pack_zstr(&pk, "id", cmd->id);
    if (cmd->name != NULL) {
        e |= pack_zstr(&pk, "n", cmd->name);
    }
    if (cmd->body != NULL) {
        e |= store_mp_pack_key(&pk, "b");
        e |= msgpack_pack_bin(&pk, cmd->body_len);
        e |= msgpack_pack_bin_body(&pk, cmd->body, cmd->body_len);
    }
    if (cmd->if_match != 0) {
        e |= pack_u64(&pk, "if", cmd->if_match);
    }
    if (cmd->request_id != NULL) {
        e |= pack_zstr(&pk, "rid", cmd->request_id);
    }
    if (cmd->fingerprint != 0) {
        e |= pack_u64(&pk, "fp", cmd->fingerprint);
    }
    e |= store_mp_pack_key(&pk, "ts");
    e |= msgpack_pack_int64(&pk, cmd->time_ms);
    if (cmd->caller != NULL) {
        e |= pack_zstr(&pk, "by", cmd->caller);
    }
    if (e != 0) {
        msgpack_sbuffer_destroy(&sb);
        return CAIRN_ENOMEM;
    }
    *out_len = sb.size;
    *out = msgpack_sbuffer_release(&sb);
    return 0;
}

/* Writes up to 32 bytes of an unknown key into out, printable. */
static void printable(const char *s, size_t len, char *out, size_t size)
{
    size_t i;
    for (i = 0; i < len && i < 32 && i + 1 < size; i++) {
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    }
    out[i] = '\0';
}

static int malformed(char *errmsg, size_t size, enum field f, const char *what)
{
    cairn_errmsg_set(errmsg, size, "command field \"%s\": %s", field_keys[f], what);
    return CAIRN_EMALFORMED;
}

static int read_u64(const struct store_mp *at, enum field f, uint64_t *v, char *errmsg, size_t size)
{
    struct store_mp r = *at;
    if (store_mp_uint(&r, v) != 0) {
        return malformed(errmsg, size, f, "expected an unsigned integer");
    }
    return 0;
}

/* Reads a NUL-terminated string field and checks its length. */
static int read_zstr(const struct store_mp *at, enum field f, size_t min, size_t max,
                     const char **out, char *errmsg, size_t size)
{
    struct store_mp r = *at;
    const char *s;
    size_t len;
    if (store_mp_peek(&r) != STORE_MP_STR || store_mp_str(&r, &s, &len) != 0) {
        return malformed(errmsg, size, f, "expected a string");
    }
    if (len == 0 || s[len - 1] != '\0') {
        return malformed(errmsg, size, f, "string is not NUL-terminated");
    }
    if (memchr(s, '\0', len - 1) != NULL) {
        return malformed(errmsg, size, f, "string contains a NUL byte");
    }
    if (len - 1 < min || len - 1 > max) {
        cairn_errmsg_set(errmsg, size, "command field \"%s\": length %zu is not within %zu..%zu",
                         field_keys[f], len - 1, min, max);
        return CAIRN_EMALFORMED;
    }
    *out = s;
    return 0;
}

/* Finds where each field's value starts; the values are read afterwards,
 * once the version says how. */
static int index_fields(struct store_mp *r, struct store_mp at[F_COUNT], unsigned *seen,
                        char *unknown, size_t unknown_size, char *errmsg, size_t size)
{
    uint32_t n;
    size_t f;
    const char *key;
    size_t key_len;
    if (store_mp_peek(r) != STORE_MP_MAP || store_mp_map(r, &n) != 0) {
        cairn_errmsg_set(errmsg, size, "command: not a msgpack map");
        return CAIRN_EMALFORMED;
    }
    if (n > 2 * F_COUNT) {
        cairn_errmsg_set(errmsg, size, "command: %" PRIu32 " fields", n);
        return CAIRN_EMALFORMED;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct store_mp k = *r;
        if (store_mp_key(r, field_keys, F_COUNT, &f) != 0) {
            cairn_errmsg_set(errmsg, size, "command: field %" PRIu32 " has no string key", i + 1);
            return CAIRN_EMALFORMED;
        }
        if (f < F_COUNT) {
            if ((*seen & (1u << f)) != 0) {
                return malformed(errmsg, size, (enum field)f, "appears twice");
            }
            *seen |= 1u << f;
            at[f] = *r;
        } else if (unknown[0] == '\0') {
            store_mp_str(&k, &key, &key_len);
            printable(key, key_len, unknown, unknown_size);
            if (unknown[0] == '\0') {
                snprintf(unknown, unknown_size, "?");
            }
        }
        if (store_mp_skip(r) != 0) {
            if (f < F_COUNT) {
                return malformed(errmsg, size, (enum field)f, "truncated or invalid value");
            }
            cairn_errmsg_set(errmsg, size, "command: truncated or invalid value");
            return CAIRN_EMALFORMED;
        }
    }
    if (r->left != 0) {
        cairn_errmsg_set(errmsg, size, "command: %zu bytes after the map", r->left);
        return CAIRN_EMALFORMED;
    }
    return 0;
}

static int read_header(const struct store_mp at[F_COUNT], unsigned seen, const char *unknown,
                       struct store_command *c, char *errmsg, size_t size)
{
    uint64_t v;
    int rv;
    if ((seen & (1u << F_V)) == 0) {
        return malformed(errmsg, size, F_V, "missing");
    }
    rv = read_u64(&at[F_V], F_V, &v, errmsg, size);
    if (rv != 0) {
        return rv;
    }
    if (v < 1 || v > STORE_COMMAND_VERSION) {
        cairn_errmsg_set(errmsg, size,
                         "command version %" PRIu64 " is not supported (this build reads 1..%d)", v,
                         STORE_COMMAND_VERSION);
        return CAIRN_EUNSUPPORTED;
    }
    c->version = (unsigned)v;
    if (unknown[0] != '\0') {
        cairn_errmsg_set(errmsg, size, "command: unknown field \"%s\"", unknown);
        return CAIRN_EMALFORMED;
    }
    if ((seen & (1u << F_OP)) == 0) {
        return malformed(errmsg, size, F_OP, "missing");
    }
    rv = read_u64(&at[F_OP], F_OP, &v, errmsg, size);
    if (rv != 0) {
        return rv;
    }
    if (!op_valid(v)) {
        cairn_errmsg_set(errmsg, size, "command operation %" PRIu64 " is not supported", v);
        return CAIRN_EUNSUPPORTED;
    }
    c->op = (enum store_op)v;
    if ((seen & (1u << F_K)) == 0) {
        return malformed(errmsg, size, F_K, "missing");
    }
    rv = read_u64(&at[F_K], F_K, &v, errmsg, size);
    if (rv != 0) {
        return rv;
    }
    if (store_kind_name(v) == NULL) {
        cairn_errmsg_set(errmsg, size, "object kind %" PRIu64 " is not supported", v);
        return CAIRN_EUNSUPPORTED;
    }
    c->kind = (enum store_kind)v;
    return 0;
}

static int read_body(const struct store_mp at[F_COUNT], unsigned seen, struct store_command *c,
                     char *errmsg, size_t size)
{
    struct store_mp r;
    const void *body;
    int rv;
    if ((seen & (1u << F_ID)) == 0) {
        return malformed(errmsg, size, F_ID, "missing");
    }
    if ((seen & (1u << F_TS)) == 0) {
        return malformed(errmsg, size, F_TS, "missing");
    }
    for (size_t i = 0; i < sizeof str_limits / sizeof str_limits[0]; i++) {
        enum field f = str_limits[i].field;
        if ((seen & (1u << f)) != 0) {
            rv = read_zstr(&at[f], f, str_limits[i].min, str_limits[i].max, str_field(c, f), errmsg,
                           size);
            if (rv != 0) {
                return rv;
            }
        }
    }
    if ((seen & (1u << F_B)) != 0) {
        r = at[F_B];
        if (store_mp_peek(&r) != STORE_MP_BIN || store_mp_bin(&r, &body, &c->body_len) != 0) {
            return malformed(errmsg, size, F_B, "expected binary data");
        }
        if (c->body_len > STORE_BODY_MAX) {
            cairn_errmsg_set(errmsg, size, "command field \"b\": %zu bytes, more than %u",
                             c->body_len, STORE_BODY_MAX);
            return CAIRN_EMALFORMED;
        }
        c->body = body;
    }
    if ((seen & (1u << F_IF)) != 0) {
        rv = read_u64(&at[F_IF], F_IF, &c->if_match, errmsg, size);
        if (rv != 0) {
            return rv;
        }
    }
    if ((seen & (1u << F_FP)) != 0) {
        rv = read_u64(&at[F_FP], F_FP, &c->fingerprint, errmsg, size);
        if (rv != 0) {
            return rv;
        }
    }
    r = at[F_TS];
    if (store_mp_int(&r, &c->time_ms) != 0 || c->time_ms < 0) {
        return malformed(errmsg, size, F_TS, "expected an integer >= 0");
    }
    return 0;
}

int store_command_decode(const void *buf, size_t len, struct store_command *cmd, char *errmsg,
                         size_t errmsg_size)
{
    struct store_command c = {0};
    struct store_mp r;
    struct store_mp at[F_COUNT];
    char unknown[40] = "";
    unsigned seen = 0;
    int rv;

    store_mp_init(&r, buf, len);
    rv = index_fields(&r, at, &seen, unknown, sizeof unknown, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    rv = read_header(at, seen, unknown, &c, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    rv = read_body(at, seen, &c, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    *cmd = c;
    return 0;
}

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
    e |= pack_u64(&pk, "r", res->revision);
    e |= store_mp_pack_key(&pk, "id");
    e |= msgpack_pack_str(&pk, id_len);
    e |= msgpack_pack_str_body(&pk, res->id, id_len);
    e |= pack_u64(&pk, "c", res->create_rev);
    e |= pack_u64(&pk, "m", res->mod_rev);
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
