/*
 * The msgpack codec of commands: what the leader proposes into the raft
 * log (results are in result.c).
 *
 * A command is a map with short keys:
 *   v   version (required)         rid  request id
 *   op  enum store_op (required)   fp   fingerprint
 *   k   enum store_kind (required) ts   time_ms, >= 0 (required)
 *   id  object id (required)       by   caller
 *   n   name                       if   if_match
 *   b   body (bin)
 * and, from version 2:
 *   tn  tenant (scope)             lm   limits: [[kind, max], ...], tenants only
 *   pk  parent kind                cc   cascade (bool)
 *   pi  parent id (with pk)        ex   expires_ms, >= 0
 *   rf  refs: [[kind, id], ...]    as   audit_status (STORE_OP_AUDIT only)
 *                                  am   audit_message (STORE_OP_AUDIT only)
 * A version 1 command carrying a version 2 field is malformed, and
 * STORE_OP_AUDIT, which needs "by", is an operation of version 2 only.
 * Absent optional fields decode as NULL, 0 or false; the encoder leaves out
 * NULL strings, zeros, false and empty arrays. Strings are msgpack str
 * values whose last byte is a NUL, so that a decoded command's strings can
 * point into the entry's buffer as C strings without a copy; the body is a
 * bin of exactly body_len bytes (not NUL-terminated). Unknown kinds, also
 * as a parent, ref or limit, are CAIRN_EUNSUPPORTED.
 *
 * Decoding is strict because every node must reach the same verdict on the
 * same bytes, now and after an upgrade: the version is read first (a newer
 * command is CAIRN_EUNSUPPORTED, not malformed), then unknown, duplicate,
 * missing, mistyped or over-long fields are CAIRN_EMALFORMED with the
 * field named in errmsg.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum field {
    F_V,
    F_OP,
    F_K,
    F_ID,
    F_N,
    F_B,
    F_IF,
    F_RID,
    F_FP,
    F_TS,
    F_BY,
    F_TN, /* the first field of version 2 */
    F_PK,
    F_PI,
    F_RF,
    F_LM,
    F_CC,
    F_EX,
    F_AS,
    F_AM,
    F_FE,
    F_COUNT
};

static const char *const field_keys[F_COUNT] = {
    "v",  "op", "k",  "id", "n",  "b",  "if", "rid", "fp", "ts", "by",
    "tn", "pk", "pi", "rf", "lm", "cc", "ex", "as",  "am", "fe",
};

/* Length limits of the string fields, in bytes without the NUL. */
static const struct {
    enum field field;
    size_t min;
    size_t max;
} str_limits[] = {
    {F_ID, 1, STORE_ID_MAX},        {F_N, 1, STORE_NAME_MAX}, {F_RID, 1, STORE_REQUEST_ID_MAX},
    {F_BY, 0, STORE_CALLER_MAX},    {F_TN, 1, STORE_ID_MAX},  {F_PI, 1, STORE_ID_MAX},
    {F_AM, 0, STORE_AUDIT_MSG_MAX},
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
        case F_TN:
            return &cmd->tenant;
        case F_PI:
            return &cmd->parent_id;
        case F_AM:
            return &cmd->audit_message;
        default:
            return &cmd->caller;
    }
}

static bool op_valid(uint64_t op, unsigned version)
{
    return op >= STORE_OP_CREATE && op <= (version >= 2 ? STORE_OP_AUDIT : STORE_OP_PUT);
}

/* An audit status is 0 or a CAIRN_E* code. */
static bool status_valid(int64_t status)
{
    return status == 0 || (status > CAIRN_ERROR_FIRST_ && status < CAIRN_ERROR_LAST_);
}

static bool id_valid(const char *id)
{
    size_t len;
    if (id == NULL) {
        return false;
    }
    len = strnlen(id, STORE_ID_MAX + 1);
    return len >= 1 && len <= STORE_ID_MAX;
}

/* The key of the first version 2 field cmd sets, or NULL. */
static const char *v2_field_used(const struct store_command *cmd)
{
    if (cmd->tenant != NULL) {
        return "tn";
    }
    if (cmd->parent_kind != 0 || cmd->parent_id != NULL) {
        return "pk";
    }
    if (cmd->n_refs != 0) {
        return "rf";
    }
    if (cmd->n_limits != 0) {
        return "lm";
    }
    if (cmd->cascade) {
        return "cc";
    }
    if (cmd->expires_ms != 0) {
        return "ex";
    }
    if (cmd->audit_status != 0) {
        return "as";
    }
    return cmd->audit_message != NULL ? "am" : NULL;
}

static bool fence_used(const struct store_command *cmd)
{
    return cmd->fence.kind != 0 || cmd->fence.id != NULL || cmd->fence.revision != 0;
}

unsigned store_command_version_needed(const struct store_command *cmd)
{
    if (fence_used(cmd)) {
        return 3;
    }
    return cmd->op == STORE_OP_AUDIT || v2_field_used(cmd) != NULL ? 2 : 1;
}

/* The version 2 fields the encoder checks; returns the offending key. */
static const char *check_v2(const struct store_command *cmd)
{
    if (cmd->version < 2) {
        return v2_field_used(cmd);
    }
    if ((cmd->parent_kind != 0) != (cmd->parent_id != NULL) ||
        (cmd->parent_kind != 0 && store_kind_name(cmd->parent_kind) == NULL)) {
        return "pk";
    }
    if (cmd->n_refs > STORE_MAX_REFS) {
        return "rf";
    }
    for (size_t i = 0; i < cmd->n_refs; i++) {
        if (store_kind_name(cmd->refs[i].kind) == NULL || !id_valid(cmd->refs[i].id)) {
            return "rf";
        }
    }
    if (cmd->n_limits > STORE_MAX_LIMITS || (cmd->n_limits > 0 && cmd->kind != STORE_KIND_TENANT)) {
        return "lm";
    }
    for (size_t i = 0; i < cmd->n_limits; i++) {
        if (store_kind_name(cmd->limits[i].kind) == NULL) {
            return "lm";
        }
        for (size_t j = 0; j < i; j++) {
            if (cmd->limits[j].kind == cmd->limits[i].kind) {
                return "lm";
            }
        }
    }
    if (cmd->expires_ms < 0) {
        return "ex";
    }
    if (!status_valid(cmd->audit_status) || (cmd->audit_status != 0 && cmd->op != STORE_OP_AUDIT)) {
        return "as";
    }
    if (cmd->audit_message != NULL && cmd->op != STORE_OP_AUDIT) {
        return "am";
    }
    if (cmd->op == STORE_OP_AUDIT && cmd->caller == NULL) {
        return "by";
    }
    if (fence_used(cmd) &&
        (cmd->version < 3 || store_kind_name(cmd->fence.kind) == NULL || !id_valid(cmd->fence.id) ||
         cmd->fence.revision == 0 || cmd->op == STORE_OP_AUDIT)) {
        return "fe";
    }
    return NULL;
}

/* Checks what the encoder needs; returns the offending field's key. */
static const char *check_command(const struct store_command *cmd)
{
    struct store_command c = *cmd;
    const char *bad;
    if (cmd->version < 1 || cmd->version > STORE_COMMAND_VERSION) {
        return "v";
    }
    if (!op_valid(cmd->op, cmd->version)) {
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
    bad = check_v2(cmd);
    return bad;
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

static int pack_v2(msgpack_packer *pk, const struct store_command *cmd)
{
    int e = 0;
    if (cmd->tenant != NULL) {
        e |= pack_zstr(pk, "tn", cmd->tenant);
    }
    if (cmd->parent_id != NULL) {
        e |= pack_u64(pk, "pk", (uint64_t)cmd->parent_kind);
        e |= pack_zstr(pk, "pi", cmd->parent_id);
    }
    if (cmd->n_refs > 0) {
        e |= store_mp_pack_key(pk, "rf");
        e |= msgpack_pack_array(pk, cmd->n_refs);
        for (size_t i = 0; i < cmd->n_refs; i++) {
            size_t len = strlen(cmd->refs[i].id) + 1;
            e |= msgpack_pack_array(pk, 2);
            e |= msgpack_pack_uint64(pk, (uint64_t)cmd->refs[i].kind);
            e |= msgpack_pack_str(pk, len) | msgpack_pack_str_body(pk, cmd->refs[i].id, len);
        }
    }
    if (cmd->n_limits > 0) {
        e |= store_mp_pack_key(pk, "lm");
        e |= msgpack_pack_array(pk, cmd->n_limits);
        for (size_t i = 0; i < cmd->n_limits; i++) {
            e |= msgpack_pack_array(pk, 2);
            e |= msgpack_pack_uint64(pk, (uint64_t)cmd->limits[i].kind);
            e |= msgpack_pack_uint64(pk, cmd->limits[i].max);
        }
    }
    if (cmd->cascade) {
        e |= store_mp_pack_key(pk, "cc") | msgpack_pack_true(pk);
    }
    if (cmd->expires_ms != 0) {
        e |= store_mp_pack_key(pk, "ex") | msgpack_pack_int64(pk, cmd->expires_ms);
    }
    if (cmd->audit_status != 0) {
        e |= store_mp_pack_key(pk, "as") | msgpack_pack_int64(pk, cmd->audit_status);
    }
    if (cmd->audit_message != NULL) {
        e |= pack_zstr(pk, "am", cmd->audit_message);
    }
    if (fence_used(cmd)) {
        size_t len = strlen(cmd->fence.id) + 1;
        e |= store_mp_pack_key(pk, "fe") | msgpack_pack_array(pk, 3);
        e |= msgpack_pack_uint64(pk, (uint64_t)cmd->fence.kind);
        e |= msgpack_pack_str(pk, len) | msgpack_pack_str_body(pk, cmd->fence.id, len);
        e |= msgpack_pack_uint64(pk, cmd->fence.revision);
    }
    return e;
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
    count += (cmd->tenant != NULL) + 2 * (cmd->parent_id != NULL) + (cmd->n_refs > 0) +
             (cmd->n_limits > 0) + cmd->cascade + (cmd->expires_ms != 0) +
             (cmd->audit_status != 0) + (cmd->audit_message != NULL) + fence_used(cmd);
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
    e |= pack_v2(&pk, cmd);
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

/* Reads a NUL-terminated string at r and checks its length; what names
 * the value in a message ("command field \"id\"", "... reference 2"). */
static int read_zstr_at(struct store_mp *r, const char *what, size_t min, size_t max,
                        const char **out, char *errmsg, size_t size)
{
    const char *s;
    size_t len;
    if (store_mp_peek(r) != STORE_MP_STR || store_mp_str(r, &s, &len) != 0) {
        cairn_errmsg_set(errmsg, size, "%s: expected a string", what);
        return CAIRN_EMALFORMED;
    }
    if (len == 0 || s[len - 1] != '\0') {
        cairn_errmsg_set(errmsg, size, "%s: string is not NUL-terminated", what);
        return CAIRN_EMALFORMED;
    }
    if (memchr(s, '\0', len - 1) != NULL) {
        cairn_errmsg_set(errmsg, size, "%s: string contains a NUL byte", what);
        return CAIRN_EMALFORMED;
    }
    if (len - 1 < min || len - 1 > max) {
        cairn_errmsg_set(errmsg, size, "%s: length %zu is not within %zu..%zu", what, len - 1, min,
                         max);
        return CAIRN_EMALFORMED;
    }
    *out = s;
    return 0;
}

/* Reads a NUL-terminated string field and checks its length. */
static int read_zstr(const struct store_mp *at, enum field f, size_t min, size_t max,
                     const char **out, char *errmsg, size_t size)
{
    struct store_mp r = *at;
    char what[32];
    snprintf(what, sizeof what, "command field \"%s\"", field_keys[f]);
    return read_zstr_at(&r, what, min, max, out, errmsg, size);
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
    if (!op_valid(v, c->version)) {
        cairn_errmsg_set(errmsg, size,
                         "command operation %" PRIu64 " is not supported in version %u", v,
                         c->version);
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
    if (c->version < 2) {
        for (int f = F_TN; f < F_COUNT; f++) {
            if ((seen & (1u << f)) != 0) {
                return malformed(errmsg, size, (enum field)f, "not part of command version 1");
            }
        }
    }
    if (c->version < 3 && (seen & (1u << F_FE)) != 0) {
        return malformed(errmsg, size, F_FE, "not part of command version 2");
    }
    return 0;
}

/* Reads a kind; an unknown one is CAIRN_EUNSUPPORTED. */
static int read_kind(struct store_mp *r, const char *what, enum store_kind *kind, char *errmsg,
                     size_t size)
{
    uint64_t v;
    if (store_mp_uint(r, &v) != 0) {
        cairn_errmsg_set(errmsg, size, "%s: expected an unsigned integer", what);
        return CAIRN_EMALFORMED;
    }
    if (store_kind_name(v) == NULL) {
        cairn_errmsg_set(errmsg, size, "%s: object kind %" PRIu64 " is not supported", what, v);
        return CAIRN_EUNSUPPORTED;
    }
    *kind = (enum store_kind)v;
    return 0;
}

/* Reads the array header of "rf" or "lm" and of one [kind, x] pair. */
static int read_array(struct store_mp *r, const char *what, uint32_t max, uint32_t *n, char *errmsg,
                      size_t size)
{
    if (store_mp_peek(r) != STORE_MP_ARRAY || store_mp_array(r, n) != 0) {
        cairn_errmsg_set(errmsg, size, "%s: expected an array", what);
        return CAIRN_EMALFORMED;
    }
    if (*n > max) {
        cairn_errmsg_set(errmsg, size, "%s: %" PRIu32 " entries, more than %" PRIu32, what, *n,
                         max);
        return CAIRN_EMALFORMED;
    }
    return 0;
}

static int read_pair(struct store_mp *r, const char *field, uint32_t i, char *what,
                     size_t what_size, char *errmsg, size_t size)
{
    uint32_t n;
    int rv;
    snprintf(what, what_size, "command field \"%s\" entry %" PRIu32, field, i + 1);
    rv = read_array(r, what, 2, &n, errmsg, size);
    if (rv == 0 && n != 2) {
        cairn_errmsg_set(errmsg, size, "%s: expected [kind, value]", what);
        rv = CAIRN_EMALFORMED;
    }
    return rv;
}

static int read_refs(const struct store_mp *at, struct store_command *c, char *errmsg, size_t size)
{
    struct store_mp r = *at;
    char what[64];
    uint32_t n;
    int rv = read_array(&r, "command field \"rf\"", STORE_MAX_REFS, &n, errmsg, size);
    for (uint32_t i = 0; rv == 0 && i < n; i++) {
        rv = read_pair(&r, "rf", i, what, sizeof what, errmsg, size);
        if (rv == 0) {
            rv = read_kind(&r, what, &c->refs[i].kind, errmsg, size);
        }
        if (rv == 0) {
            rv = read_zstr_at(&r, what, 1, STORE_ID_MAX, &c->refs[i].id, errmsg, size);
        }
    }
    if (rv == 0) {
        c->n_refs = n;
    }
    return rv;
}

static int read_limits(const struct store_mp *at, struct store_command *c, char *errmsg,
                       size_t size)
{
    struct store_mp r = *at;
    char what[64];
    uint32_t n;
    int rv = read_array(&r, "command field \"lm\"", STORE_MAX_LIMITS, &n, errmsg, size);
    for (uint32_t i = 0; rv == 0 && i < n; i++) {
        struct store_limit *l = &c->limits[i];
        rv = read_pair(&r, "lm", i, what, sizeof what, errmsg, size);
        if (rv == 0) {
            rv = read_kind(&r, what, &l->kind, errmsg, size);
        }
        if (rv == 0 && store_mp_uint(&r, &l->max) != 0) {
            cairn_errmsg_set(errmsg, size, "%s: expected an unsigned integer", what);
            rv = CAIRN_EMALFORMED;
        }
        for (uint32_t j = 0; rv == 0 && j < i; j++) {
            if (c->limits[j].kind == l->kind) {
                cairn_errmsg_set(errmsg, size, "%s: a second limit for %ss", what,
                                 store_kind_name(l->kind));
                rv = CAIRN_EMALFORMED;
            }
        }
    }
    if (rv == 0 && n > 0 && c->kind != STORE_KIND_TENANT) {
        return malformed(errmsg, size, F_LM, "only tenants carry limits");
    }
    if (rv == 0) {
        c->n_limits = n;
    }
    return rv;
}

/* "fe": [kind, id, revision >= 1]. */
static int read_fence(const struct store_mp *at, struct store_command *c, char *errmsg, size_t size)
{
    static const char what[] = "command field \"fe\"";
    struct store_mp r = *at;
    uint32_t n;
    int rv = read_array(&r, what, 3, &n, errmsg, size);
    if (rv == 0 && n != 3) {
        cairn_errmsg_set(errmsg, size, "%s: expected [kind, id, revision]", what);
        rv = CAIRN_EMALFORMED;
    }
    if (rv == 0) {
        rv = read_kind(&r, what, &c->fence.kind, errmsg, size);
    }
    if (rv == 0) {
        rv = read_zstr_at(&r, what, 1, STORE_ID_MAX, &c->fence.id, errmsg, size);
    }
    if (rv == 0 && (store_mp_uint(&r, &c->fence.revision) != 0 || c->fence.revision == 0)) {
        cairn_errmsg_set(errmsg, size, "%s: expected a revision >= 1", what);
        rv = CAIRN_EMALFORMED;
    }
    if (rv == 0 && c->op == STORE_OP_AUDIT) {
        return malformed(errmsg, size, F_FE, "not for an audit command");
    }
    return rv;
}

/* The version 2 fields that are not plain strings. */
static int read_v2(const struct store_mp at[F_COUNT], unsigned seen, struct store_command *c,
                   char *errmsg, size_t size)
{
    struct store_mp r;
    int64_t status;
    int rv;
    if (((seen >> F_PK) & 1u) != ((seen >> F_PI) & 1u)) {
        return malformed(errmsg, size, (seen & (1u << F_PK)) != 0 ? F_PI : F_PK,
                         "missing (a parent is \"pk\" and \"pi\" together)");
    }
    if ((seen & (1u << F_PK)) != 0) {
        r = at[F_PK];
        rv = read_kind(&r, "command field \"pk\"", &c->parent_kind, errmsg, size);
        if (rv != 0) {
            return rv;
        }
    }
    if ((seen & (1u << F_RF)) != 0) {
        rv = read_refs(&at[F_RF], c, errmsg, size);
        if (rv != 0) {
            return rv;
        }
    }
    if ((seen & (1u << F_LM)) != 0) {
        rv = read_limits(&at[F_LM], c, errmsg, size);
        if (rv != 0) {
            return rv;
        }
    }
    if ((seen & (1u << F_CC)) != 0) {
        r = at[F_CC];
        if (store_mp_bool(&r, &c->cascade) != 0) {
            return malformed(errmsg, size, F_CC, "expected a boolean");
        }
    }
    if ((seen & (1u << F_EX)) != 0) {
        r = at[F_EX];
        if (store_mp_int(&r, &c->expires_ms) != 0 || c->expires_ms < 0) {
            return malformed(errmsg, size, F_EX, "expected an integer >= 0");
        }
    }
    if ((seen & (1u << F_AS)) != 0) {
        r = at[F_AS];
        if (store_mp_int(&r, &status) != 0 || !status_valid(status)) {
            return malformed(errmsg, size, F_AS, "expected 0 or an error code");
        }
        c->audit_status = (int)status;
    }
    if (c->op != STORE_OP_AUDIT) {
        if ((seen & (1u << F_AS)) != 0) {
            return malformed(errmsg, size, F_AS, "only for an audit command");
        }
        if ((seen & (1u << F_AM)) != 0) {
            return malformed(errmsg, size, F_AM, "only for an audit command");
        }
    } else if (c->caller == NULL) {
        return malformed(errmsg, size, F_BY, "missing (an audit command names its caller)");
    }
    if ((seen & (1u << F_FE)) != 0) {
        return read_fence(&at[F_FE], c, errmsg, size);
    }
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
    return read_v2(at, seen, c, errmsg, size);
}

int store_command_version(const void *buf, size_t len, uint64_t *version)
{
    struct store_mp r;
    struct store_mp at[F_COUNT] = {{0}};
    char unknown[40] = "";
    unsigned seen = 0;

    store_mp_init(&r, buf, len);
    /* Fields a newer version added are unknown here, not an error: only
     * the version is read. */
    if (index_fields(&r, at, &seen, unknown, sizeof unknown, NULL, 0) != 0 ||
        (seen & (1u << F_V)) == 0 || read_u64(&at[F_V], F_V, version, NULL, 0) != 0) {
        return CAIRN_EMALFORMED;
    }
    return 0;
}

int store_command_decode(const void *buf, size_t len, struct store_command *cmd, char *errmsg,
                         size_t errmsg_size)
{
    struct store_command c = {0};
    struct store_mp r;
    struct store_mp at[F_COUNT] = {{0}};
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
