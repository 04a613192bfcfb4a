/*
 * Applying committed raft entries: decode the command, answer a retried
 * request id from the "requests" table, or run the operation, and write
 * everything the entry changes (objects, names, requests, the applied index
 * and the revision) in one RocksDB WriteBatch.
 *
 * Apply must be deterministic: every node applies the same entries and must
 * end in the same state. So it reads nothing but the database and the
 * command: time comes from the command's time_ms (request-id expiry), never
 * from the local clock.
 *
 * Invariants after each apply:
 *   1. meta applied index == index of the last applied entry.
 *   2. meta revision == number of successful changes so far; every
 *      successful create, update, delete or put adds exactly one.
 *   3. an object's create_rev <= mod_rev <= revision.
 *   4. "names" holds kind+name -> id exactly for the objects that have a
 *      name, so a name belongs to at most one object of a kind.
 *   5. "requests" and "request_times" hold the same request ids, each with
 *      the time of the command that first used it.
 */
#include "store_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The state of one apply. */
struct apply {
    struct store *s;
    rocksdb_writebatch_t *wb;        /* everything this entry changes */
    const struct store_command *cmd; /* the decoded command */
    const char *kind;                /* its kind's name, for messages */
    uint64_t revision;               /* global revision, bumped on success */
    struct store_result *res;        /* what the proposer is told */
    char *errmsg;                    /* storage failures */
    size_t errmsg_size;
};

/* An object as stored, read before the change. */
struct loaded {
    char *raw;              /* the RocksDB value, freed with rocksdb_free */
    struct store_value val; /* decoded, pointing into raw */
};

static void fail(struct apply *a, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct apply *a, int status, const char *fmt, ...)
{
    va_list ap;
    a->res->status = status;
    va_start(ap, fmt);
    vsnprintf(a->res->message, sizeof a->res->message, fmt, ap);
    va_end(ap);
}

static void put(struct apply *a, enum store_cf cf, const void *key, size_t key_len, const void *val,
                size_t val_len)
{
    rocksdb_writebatch_put_cf(a->wb, a->s->db.cf[cf], key, key_len, val, val_len);
}

static void del(struct apply *a, enum store_cf cf, const void *key, size_t key_len)
{
    rocksdb_writebatch_delete_cf(a->wb, a->s->db.cf[cf], key, key_len);
}

/* Reads the command's object. 0, CAIRN_ENOTFOUND, or a storage failure. */
static int object_load(struct apply *a, struct loaded *o)
{
    char key[1 + STORE_ID_MAX];
    size_t key_len = store_key_object(a->cmd->kind, a->cmd->id, strlen(a->cmd->id), key);
    size_t len;
    int rv;

    rv = store_db_get(&a->s->db, NULL, STORE_CF_OBJECTS, key, key_len, &o->raw, &len, a->errmsg,
                      a->errmsg_size);
    if (rv != 0) {
        return rv;
    }
    if (store_value_decode(o->raw, len, &o->val) != 0) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "%s %s: stored value is corrupt", a->kind,
                         a->cmd->id);
        rocksdb_free(o->raw);
        return CAIRN_ECORRUPT;
    }
    return 0;
}

/* Fails the command with CAIRN_EEXIST if its name belongs to another
 * object. Returns non-zero only for a storage failure. */
static int name_check(struct apply *a)
{
    char key[1 + STORE_NAME_MAX];
    const char *name = a->cmd->name;
    size_t key_len;
    char *owner;
    size_t owner_len;
    int rv;

    if (name == NULL) {
        return 0;
    }
    key_len = store_key_name(a->cmd->kind, name, strlen(name), key);
    rv = store_db_get(&a->s->db, NULL, STORE_CF_NAMES, key, key_len, &owner, &owner_len, a->errmsg,
                      a->errmsg_size);
    if (rv == CAIRN_ENOTFOUND) {
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (owner_len != strlen(a->cmd->id) || memcmp(owner, a->cmd->id, owner_len) != 0) {
        fail(a, CAIRN_EEXIST, "name \"%s\" is taken by %s %.*s", name, a->kind, (int)owner_len,
             owner);
    }
    rocksdb_free(owner);
    return 0;
}

static void name_put(struct apply *a)
{
    char key[1 + STORE_NAME_MAX];
    size_t key_len = store_key_name(a->cmd->kind, a->cmd->name, strlen(a->cmd->name), key);
    put(a, STORE_CF_NAMES, key, key_len, a->cmd->id, strlen(a->cmd->id));
}

static void name_delete(struct apply *a, const char *name, size_t name_len)
{
    char key[1 + STORE_NAME_MAX];
    size_t key_len;
    if (name_len > STORE_NAME_MAX) {
        return; /* never indexed: store_command_decode caps names */
    }
    key_len = store_key_name(a->cmd->kind, name, name_len, key);
    del(a, STORE_CF_NAMES, key, key_len);
}

/* Writes the command's object at a new revision; it keeps create_rev, or
 * is new if create_rev is 0. */
static int object_write(struct apply *a, uint64_t create_rev)
{
    const struct store_command *cmd = a->cmd;
    struct store_value v = {0};
    char key[1 + STORE_ID_MAX];
    size_t key_len = store_key_object(cmd->kind, cmd->id, strlen(cmd->id), key);
    msgpack_sbuffer sb;
    int rv;

    a->revision++;
    v.create_rev = create_rev != 0 ? create_rev : a->revision;
    v.mod_rev = a->revision;
    v.name = cmd->name;
    v.name_len = cmd->name != NULL ? strlen(cmd->name) : 0;
    v.body = cmd->body != NULL ? cmd->body : "";
    v.body_len = cmd->body != NULL ? cmd->body_len : 0;
    msgpack_sbuffer_init(&sb);
    rv = store_value_encode(&v, &sb);
    if (rv != 0) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "encode %s %s: out of memory", a->kind,
                         cmd->id);
    } else {
        put(a, STORE_CF_OBJECTS, key, key_len, sb.data, sb.size);
        a->res->create_rev = v.create_rev;
        a->res->mod_rev = v.mod_rev;
    }
    msgpack_sbuffer_destroy(&sb);
    return rv;
}

static bool if_match_ok(struct apply *a, const struct loaded *o)
{
    if (a->cmd->if_match == 0 || a->cmd->if_match == o->val.mod_rev) {
        return true;
    }
    fail(a, CAIRN_EPRECONDITION,
         "%s %s: If-Match revision %" PRIu64 " does not match current revision %" PRIu64, a->kind,
         a->cmd->id, a->cmd->if_match, o->val.mod_rev);
    return false;
}

static bool same_name(const struct loaded *o, const char *name)
{
    if (o->val.name == NULL || name == NULL) {
        return o->val.name == NULL && name == NULL;
    }
    return o->val.name_len == strlen(name) && memcmp(o->val.name, name, o->val.name_len) == 0;
}

/* CREATE, and PUT of an object that does not exist. */
static int op_create(struct apply *a)
{
    int rv = name_check(a);
    if (rv != 0 || a->res->status != 0) {
        return rv;
    }
    if (a->cmd->name != NULL) {
        name_put(a);
    }
    return object_write(a, 0);
}

/* UPDATE, and PUT of an object that exists: replaces name and body. */
static int op_replace(struct apply *a, const struct loaded *o)
{
    bool renamed = !same_name(o, a->cmd->name);
    int rv;
    if (!if_match_ok(a, o)) {
        return 0;
    }
    if (renamed) {
        rv = name_check(a);
        if (rv != 0 || a->res->status != 0) {
            return rv;
        }
        if (o->val.name != NULL) {
            name_delete(a, o->val.name, o->val.name_len);
        }
        if (a->cmd->name != NULL) {
            name_put(a);
        }
    }
    return object_write(a, o->val.create_rev);
}

static int op_delete(struct apply *a, const struct loaded *o)
{
    char key[1 + STORE_ID_MAX];
    size_t key_len;
    if (!if_match_ok(a, o)) {
        return 0;
    }
    if (o->val.name != NULL) {
        name_delete(a, o->val.name, o->val.name_len);
    }
    key_len = store_key_object(a->cmd->kind, a->cmd->id, strlen(a->cmd->id), key);
    del(a, STORE_CF_OBJECTS, key, key_len);
    a->revision++;
    a->res->create_rev = 0;
    a->res->mod_rev = a->revision;
    return 0;
}

/* Runs the command's operation; its outcome goes into a->res. */
static int op_run(struct apply *a)
{
    const struct store_command *cmd = a->cmd;
    struct loaded o;
    bool exists;
    int rv;

    rv = object_load(a, &o);
    if (rv != 0 && rv != CAIRN_ENOTFOUND) {
        return rv;
    }
    exists = rv == 0;
    rv = 0;
    switch (cmd->op) {
        case STORE_OP_CREATE:
            if (exists) {
                fail(a, CAIRN_EEXIST, "%s %s already exists", a->kind, cmd->id);
            } else {
                rv = op_create(a);
            }
            break;
        case STORE_OP_UPDATE:
        case STORE_OP_DELETE:
            if (!exists) {
                fail(a, CAIRN_ENOTFOUND, "%s %s not found", a->kind, cmd->id);
            } else if (cmd->op == STORE_OP_UPDATE) {
                rv = op_replace(a, &o);
            } else {
                rv = op_delete(a, &o);
            }
            break;
        case STORE_OP_PUT:
            /* If-Match guards a replacement only: a PUT that creates has
             * nothing to compare it with. */
            rv = exists ? op_replace(a, &o) : op_create(a);
            break;
    }
    if (exists) {
        rocksdb_free(o.raw);
    }
    return rv;
}

/* Forgets up to STORE_PRUNE_MAX request ids older than the command's time
 * minus STORE_REQUEST_TTL_MS, oldest first. */
static int prune(struct apply *a)
{
    unsigned char bound[8];
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    char *err = NULL;
    int rv = 0;

    if (a->cmd->time_ms < STORE_REQUEST_TTL_MS) {
        return 0;
    }
    /* Keys are be64(time) + id: every key below be64(cutoff) is older. */
    store_be64_put((uint64_t)(a->cmd->time_ms - STORE_REQUEST_TTL_MS), bound);
    ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)bound, sizeof bound);
    it = rocksdb_create_iterator_cf(a->s->db.db, ro, a->s->db.cf[STORE_CF_REQUEST_TIMES]);
    rocksdb_iter_seek_to_first(it);
    for (int i = 0; i < STORE_PRUNE_MAX && rocksdb_iter_valid(it); i++) {
        size_t len;
        const char *key = rocksdb_iter_key(it, &len);
        if (len <= 8) {
            cairn_errmsg_set(a->errmsg, a->errmsg_size, "request_times key of %zu bytes", len);
            rv = CAIRN_ECORRUPT;
            break;
        }
        del(a, STORE_CF_REQUEST_TIMES, key, len);
        del(a, STORE_CF_REQUESTS, key + 8, len - 8);
        rocksdb_iter_next(it);
    }
    rocksdb_iter_get_error(it, &err);
    if (err != NULL) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "rocksdb iterate: %s", err);
        rocksdb_free(err);
        rv = CAIRN_EIO;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rv;
}

/* Looks the command's request id up. Sets *answered if the stored outcome
 * answers the command (a replay, or an idempotency failure); else sets
 * *old_time to the time of an expired entry to replace, or -1. */
static int request_lookup(struct apply *a, bool *answered, int64_t *old_time)
{
    const char *rid = a->cmd->request_id;
    struct store_request req;
    char *raw;
    size_t len;
    int rv;

    *answered = false;
    *old_time = -1;
    rv = store_db_get(&a->s->db, NULL, STORE_CF_REQUESTS, rid, strlen(rid), &raw, &len, a->errmsg,
                      a->errmsg_size);
    if (rv == CAIRN_ENOTFOUND) {
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    rv = store_request_decode(raw, len, &req);
    if (rv != 0) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "request %s: stored value is corrupt", rid);
        goto out;
    }
    /* An entry past its time is gone, whether or not prune reached it yet:
     * the answer must not depend on how far pruning got. */
    if (req.time_ms < a->cmd->time_ms - STORE_REQUEST_TTL_MS) {
        *old_time = req.time_ms;
        goto out;
    }
    *answered = true;
    if (req.fingerprint != a->cmd->fingerprint) {
        fail(a, CAIRN_EIDEMPOTENCY, "request id \"%s\" was already used for a different request",
             rid);
        a->res->revision = a->revision;
        goto out;
    }
    if (store_result_decode(req.result, req.result_len, a->res) != 0) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "request %s: stored result is corrupt", rid);
        rv = CAIRN_ECORRUPT;
        goto out;
    }
    a->res->replayed = true;
out:
    rocksdb_free(raw);
    return rv;
}

/* Remembers the command's outcome under its request id. */
static int request_store(struct apply *a, int64_t old_time)
{
    const char *rid = a->cmd->request_id;
    size_t rid_len = strlen(rid);
    char key[8 + STORE_REQUEST_ID_MAX];
    struct store_request req;
    msgpack_sbuffer sb;
    void *res;
    size_t res_len;
    int rv;

    if (old_time >= 0) {
        del(a, STORE_CF_REQUEST_TIMES, key, store_key_request_time(old_time, rid, rid_len, key));
    }
    rv = store_result_encode(a->res, &res, &res_len);
    if (rv != 0) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "encode result: out of memory");
        return rv;
    }
    req.time_ms = a->cmd->time_ms;
    req.fingerprint = a->cmd->fingerprint;
    req.result = res;
    req.result_len = res_len;
    msgpack_sbuffer_init(&sb);
    rv = store_request_encode(&req, &sb);
    if (rv != 0) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "encode request: out of memory");
    } else {
        put(a, STORE_CF_REQUESTS, rid, rid_len, sb.data, sb.size);
        put(a, STORE_CF_REQUEST_TIMES, key,
            store_key_request_time(a->cmd->time_ms, rid, rid_len, key), "", 0);
    }
    msgpack_sbuffer_destroy(&sb);
    free(res);
    return rv;
}

/* Everything for a decoded command. Non-zero only for storage failures. */
static int run(struct apply *a)
{
    bool answered = false;
    int64_t old_time = -1;
    int rv;

    /* Prune first: deletes in the batch must come before the puts below,
     * which may write the same request id again. */
    rv = prune(a);
    if (rv != 0) {
        return rv;
    }
    snprintf(a->res->id, sizeof a->res->id, "%s", a->cmd->id);
    if (a->cmd->request_id != NULL) {
        rv = request_lookup(a, &answered, &old_time);
        if (rv != 0 || answered) {
            return rv;
        }
    }
    rv = op_run(a);
    if (rv != 0) {
        return rv;
    }
    a->res->revision = a->revision;
    if (a->cmd->request_id != NULL) {
        rv = request_store(a, old_time);
    }
    return rv;
}

static void put_meta(struct apply *a, const char *key, uint64_t v)
{
    unsigned char val[8];
    store_be64_put(v, val);
    put(a, STORE_CF_META, key, strlen(key), val, sizeof val);
}

static int batch_write(struct store *s, rocksdb_writebatch_t *wb, char *errmsg, size_t errmsg_size)
{
    char *err = NULL;
    if (s->fail_writes > 0) {
        s->fail_writes--;
        cairn_errmsg_set(errmsg, errmsg_size, "rocksdb write: injected failure");
        return CAIRN_EIO;
    }
    rocksdb_write(s->db.db, s->db.wopts, wb, &err);
    if (err != NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "rocksdb write: %s", err);
        rocksdb_free(err);
        return CAIRN_EIO;
    }
    return 0;
}

int store_apply(struct store *s, uint64_t index, const void *buf, size_t len,
                const struct store_result **result, char *errmsg, size_t errmsg_size)
{
    struct store_command cmd;
    struct store_result res;
    struct apply a;
    int rv;

    if (index <= atomic_load(&s->applied)) {
        *result = NULL;
        return 0;
    }
    if (s->db.db == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "apply %" PRIu64 ": the store has no database",
                         index);
        return CAIRN_EIO;
    }
    memset(&res, 0, sizeof res);
    memset(&a, 0, sizeof a);
    a.s = s;
    a.res = &res;
    a.revision = atomic_load(&s->revision);
    a.errmsg = errmsg;
    a.errmsg_size = errmsg_size;
    a.wb = rocksdb_writebatch_create();
    rv = store_command_decode(buf, len, &cmd, res.message, sizeof res.message);
    if (rv != 0) {
        /* A command no node can read is answered, not fatal: the entry is
         * consumed so that the log moves on. */
        res.status = rv;
        res.revision = a.revision;
    } else {
        a.cmd = &cmd;
        a.kind = store_kind_name(cmd.kind);
        rv = run(&a);
        if (rv != 0) {
            cairn_errmsg_wrap(errmsg, errmsg_size, "%s %s", a.kind, cmd.id);
            goto err_after_batch;
        }
    }
    put_meta(&a, STORE_META_APPLIED, index);
    put_meta(&a, STORE_META_REVISION, a.revision);
    rv = batch_write(s, a.wb, errmsg, errmsg_size);
    if (rv != 0) {
        goto err_after_batch;
    }
    rocksdb_writebatch_destroy(a.wb);
    /* Only now, with the batch on disk, may readers see the new values. */
    atomic_store(&s->revision, a.revision);
    atomic_store(&s->applied, index);
    s->result = res;
    *result = &s->result;
    return 0;

err_after_batch:
    rocksdb_writebatch_destroy(a.wb);
    assert(rv != 0);
    return rv;
}
