/*
 * Applying committed raft entries: decode the command, prune what has run
 * out (request ids, expired objects, old change-log and audit records),
 * answer a retried request id from the "requests" table, or run the
 * operation (apply_object.c), append the audit record, and write everything
 * the entry changes in one RocksDB WriteBatch. The batch is indexed
 * (WriteBatchWithIndex), so that every read during the apply sees what the
 * same entry already wrote, and a failed operation is rolled back to a save
 * point, leaving only the pruning, the audit record and the applied index.
 *
 * Apply must be deterministic: every node applies the same entries and must
 * end in the same state. So it reads nothing but the database and the
 * command: time comes from the command's time_ms (request-id and object
 * expiry), never from the local clock.
 *
 * Invariants after each apply:
 *   1. meta applied index == index of the last applied entry.
 *   2. meta revision grows by exactly one for every entry that changed an
 *      object (its operation succeeded, or pruning removed an expired
 *      object), and by nothing otherwise; every object written or removed
 *      by the entry carries that revision, and so does its change record.
 *   3. an object's create_rev <= mod_rev <= revision.
 *   4. "names" holds kind+name -> id exactly for the objects that have a
 *      name, so a name belongs to at most one object of a kind.
 *   5. "requests" and "request_times" hold the same request ids, each with
 *      the time of the command that first used it.
 *   6. "scoped", "children" and "expiry" hold exactly one entry for each
 *      object with a tenant, a parent and an expiry; "counts" holds, for
 *      every tenant and kind with objects, how many there are.
 *   7. an object's parent exists (or expired and awaits pruning, which
 *      removes its descendants with it).
 *   8. "changes" holds, per revision from meta changes_floor on, one record
 *      per object changed, in the order of the changes.
 *   9. "audit" seqs run 1..meta audit_seq with no gap above the oldest kept.
 */
#include "store_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void store_apply_fail(struct store_apply *a, int status, const char *fmt, ...)
{
    va_list ap;
    a->res->status = status;
    va_start(ap, fmt);
    vsnprintf(a->res->message, sizeof a->res->message, fmt, ap);
    va_end(ap);
}

void store_apply_put(struct store_apply *a, enum store_cf cf, const void *key, size_t key_len,
                     const void *val, size_t val_len)
{
    rocksdb_writebatch_wi_put_cf(a->wb, a->s->db.cf[cf], key, key_len, val, val_len);
    store_prune_hint_put(&a->s->db.hint[cf], key, key_len);
}

void store_apply_del(struct store_apply *a, enum store_cf cf, const void *key, size_t key_len)
{
    rocksdb_writebatch_wi_delete_cf(a->wb, a->s->db.cf[cf], key, key_len);
}

int store_apply_get(struct store_apply *a, enum store_cf cf, const void *key, size_t key_len,
                    char **val, size_t *val_len)
{
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_writebatch_wi_get_from_batch_and_db_cf(
        a->wb, a->s->db.db, a->s->db.ropts, a->s->db.cf[cf], key, key_len, &len, &err);
    if (err != NULL) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "rocksdb get: %s", err);
        rocksdb_free(err);
        return CAIRN_EIO;
    }
    if (v == NULL) {
        return CAIRN_ENOTFOUND;
    }
    *val = v;
    *val_len = len;
    return 0;
}

rocksdb_iterator_t *store_apply_iter(struct store_apply *a, enum store_cf cf)
{
    rocksdb_iterator_t *base =
        rocksdb_create_iterator_cf(a->s->db.db, a->s->db.ropts, a->s->db.cf[cf]);
    /* The overlay takes the base iterator over. */
    return rocksdb_writebatch_wi_create_iterator_with_base_cf(a->wb, base, a->s->db.cf[cf]);
}

int store_apply_iter_check(struct store_apply *a, rocksdb_iterator_t *it)
{
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err != NULL) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "rocksdb iterate: %s", err);
        rocksdb_free(err);
        return CAIRN_EIO;
    }
    return 0;
}

uint64_t store_apply_revision(struct store_apply *a)
{
    if (!a->changed) {
        a->changed = true;
        a->revision++;
        a->changes = 0;
    }
    return a->revision;
}

int store_apply_change(struct store_apply *a, enum store_kind kind, const char *id, size_t id_len,
                       bool deleted, const void *value, size_t value_len)
{
    struct store_change_rec rec = {kind, id, id_len, deleted, value, value_len};
    char key[STORE_KEY_CHANGE_LEN];
    msgpack_sbuffer sb;
    uint64_t revision = store_apply_revision(a);
    int rv;

    if (kind == STORE_KIND_SESSION || kind == STORE_KIND_USER) {
        a->auth_changed = true;
    } else if (kind == STORE_KIND_MEMBER) {
        a->members_changed = true;
    } else if (kind == STORE_KIND_SYSTEM) {
        a->system_changed = true;
    }
    msgpack_sbuffer_init(&sb);
    rv = store_change_encode(&rec, &sb);
    if (rv != 0) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "encode change: out of memory");
    } else {
        store_apply_put(a, STORE_CF_CHANGES, key, store_key_change(revision, a->changes, key),
                        sb.data, sb.size);
        a->changes++;
    }
    msgpack_sbuffer_destroy(&sb);
    return rv;
}

/* Looks the command's request id up. Sets *answered if the stored outcome
 * answers the command (a replay, or an idempotency failure); else sets
 * *old_time to the time of an expired entry to replace, or -1. */
static int request_lookup(struct store_apply *a, bool *answered, int64_t *old_time)
{
    const char *rid = a->cmd->request_id;
    struct store_request req;
    char *raw;
    size_t len;
    int rv;

    *answered = false;
    *old_time = -1;
    rv = store_apply_get(a, STORE_CF_REQUESTS, rid, strlen(rid), &raw, &len);
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
        store_apply_fail(a, CAIRN_EIDEMPOTENCY,
                         "request id \"%s\" was already used for a different request", rid);
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
static int request_store(struct store_apply *a, int64_t old_time)
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
        store_apply_del(a, STORE_CF_REQUEST_TIMES, key,
                        store_key_request_time(old_time, rid, rid_len, key));
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
        store_apply_put(a, STORE_CF_REQUESTS, rid, rid_len, sb.data, sb.size);
        store_apply_put(a, STORE_CF_REQUEST_TIMES, key,
                        store_key_request_time(a->cmd->time_ms, rid, rid_len, key), "", 0);
    }
    msgpack_sbuffer_destroy(&sb);
    free(res);
    return rv;
}

/* What a failed operation must not leave behind: the batch and the
 * revision state as they were before it ran. */
struct save_point {
    bool changed;
    uint64_t revision;
    uint32_t changes;
};

static void save(struct store_apply *a, struct save_point *sp)
{
    rocksdb_writebatch_wi_set_save_point(a->wb);
    sp->changed = a->changed;
    sp->revision = a->revision;
    sp->changes = a->changes;
}

static int roll_back(struct store_apply *a, const struct save_point *sp)
{
    char *err = NULL;
    rocksdb_writebatch_wi_rollback_to_save_point(a->wb, &err);
    if (err != NULL) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "rocksdb rollback: %s", err);
        rocksdb_free(err);
        return CAIRN_EIO;
    }
    a->changed = sp->changed;
    a->revision = sp->revision;
    a->changes = sp->changes;
    a->res->create_rev = 0;
    a->res->mod_rev = 0;
    return 0;
}

/* The meta keys whose values apply keeps in memory (store_db.meta). */
static const char *const meta_cached_keys[STORE_META_CACHED_N] = {
    [STORE_META_CACHED_AUDIT_SEQ] = STORE_META_AUDIT_SEQ,
    [STORE_META_CACHED_FLOOR] = STORE_META_CHANGES_FLOOR,
};

static int meta_cached_index(const char *key)
{
    for (int i = 0; i < STORE_META_CACHED_N; i++) {
        if (strcmp(key, meta_cached_keys[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static struct store_meta_value *meta_cached(struct store *s, const char *key)
{
    int i = meta_cached_index(key);
    return i >= 0 ? &s->db.meta[i] : NULL;
}

int store_apply_meta_get(struct store_apply *a, const char *key, uint64_t *v, bool *found)
{
    struct store_meta_value *m = meta_cached(a->s, key);
    char *raw;
    size_t len;
    int rv;

    if (m != NULL && m->known) {
        *found = m->found;
        *v = m->value;
        return 0;
    }
    rv = store_apply_get(a, STORE_CF_META, key, strlen(key), &raw, &len);
    *found = rv == 0;
    if (rv == CAIRN_ENOTFOUND) {
        *v = 0;
        if (m != NULL) {
            *m = (struct store_meta_value){true, false, 0};
        }
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (len != 8) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "meta key %s has %zu bytes, expected 8", key,
                         len);
        rv = CAIRN_ECORRUPT;
    } else {
        *v = store_be64_get((const unsigned char *)raw);
        if (m != NULL) {
            *m = (struct store_meta_value){true, true, *v};
        }
    }
    rocksdb_free(raw);
    return rv;
}

static void meta_write(struct store_apply *a, const char *key, uint64_t v)
{
    unsigned char val[8];
    store_be64_put(v, val);
    store_apply_put(a, STORE_CF_META, key, strlen(key), val, sizeof val);
}

/* A cached value is written once per entry (meta_flush), not once per
 * command: every put is a memtable insert on every node, and the audit
 * sequence moves with every command of a batch. Reads within the entry
 * are answered from the cache. */
void store_apply_meta_put(struct store_apply *a, const char *key, uint64_t v)
{
    int i = meta_cached_index(key);
    if (i < 0) {
        meta_write(a, key, v);
        return;
    }
    a->s->db.meta[i] = (struct store_meta_value){true, true, v};
    a->meta_dirty[i] = true;
}

/* Puts the cached meta values this entry changed. */
static void meta_flush(struct store_apply *a)
{
    for (int i = 0; i < STORE_META_CACHED_N; i++) {
        if (a->meta_dirty[i]) {
            meta_write(a, meta_cached_keys[i], a->s->db.meta[i].value);
        }
    }
}

/* Appends the audit record of a command with a caller: whose, on what, and
 * the outcome (for STORE_OP_AUDIT, the refusal it carries). */
static int audit_append(struct store_apply *a)
{
    const struct store_command *cmd = a->cmd;
    struct store_audit_rec rec;
    char key[STORE_KEY_AUDIT_LEN];
    msgpack_sbuffer sb;
    uint64_t seq;
    bool found;
    int rv;

    if (cmd->caller == NULL) {
        return 0;
    }
    rv = store_apply_meta_get(a, STORE_META_AUDIT_SEQ, &seq, &found);
    if (rv != 0) {
        return rv;
    }
    seq++;
    memset(&rec, 0, sizeof rec);
    rec.time_ms = cmd->time_ms;
    rec.caller = cmd->caller;
    rec.caller_len = strlen(cmd->caller);
    /* The object's tenant: as stored (set by the operation), else as the
     * command names it; a tenant is its own scope. */
    if (a->scope[0] != '\0') {
        rec.tenant = a->scope;
    } else if (cmd->tenant != NULL) {
        rec.tenant = cmd->tenant;
    } else if (cmd->kind == STORE_KIND_TENANT) {
        rec.tenant = cmd->id;
    }
    rec.tenant_len = rec.tenant != NULL ? strlen(rec.tenant) : 0;
    rec.op = cmd->op;
    rec.kind = cmd->kind;
    rec.id = cmd->id;
    rec.id_len = strlen(cmd->id);
    if (cmd->op == STORE_OP_AUDIT) {
        rec.status = cmd->audit_status;
        rec.message = cmd->audit_message;
    } else {
        rec.status = a->res->status;
        rec.message = a->res->status != 0 ? a->res->message : NULL;
    }
    rec.message_len = rec.message != NULL ? strlen(rec.message) : 0;
    rec.revision = a->revision;
    msgpack_sbuffer_init(&sb);
    rv = store_audit_encode(&rec, &sb);
    if (rv != 0) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "encode audit record: out of memory");
    } else {
        store_apply_put(a, STORE_CF_AUDIT, key, store_key_audit(seq, key), sb.data, sb.size);
        store_apply_meta_put(a, STORE_META_AUDIT_SEQ, seq);
    }
    msgpack_sbuffer_destroy(&sb);
    return rv;
}

/* Runs the operation, or only records the audit entry it carries. A
 * failure is rolled back to the save point before it. */
/* A fenced command applies only while its fence object is at the
 * revision it names. */
static int fence_check(struct store_apply *a)
{
    const struct store_fence *f = &a->cmd->fence;
    struct store_loaded o;
    int rv;
    if (f->kind == 0) {
        return 0;
    }
    rv = store_apply_load(a, f->kind, f->id, strlen(f->id), &o);
    if (rv == CAIRN_ENOTFOUND) {
        store_apply_fail(a, CAIRN_EPRECONDITION, "fenced: %s %s does not exist",
                         store_kind_name(f->kind), f->id);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (o.val.mod_rev != f->revision) {
        store_apply_fail(a, CAIRN_EPRECONDITION,
                         "fenced: %s %s is at revision %" PRIu64 ", the command expects %" PRIu64,
                         store_kind_name(f->kind), f->id, o.val.mod_rev, f->revision);
    }
    store_apply_unload(&o);
    return 0;
}

static int op_apply(struct store_apply *a)
{
    struct save_point sp;
    int rv = 0;
    save(a, &sp);
    if (a->cmd->op != STORE_OP_AUDIT) {
        rv = fence_check(a);
    }
    if (rv == 0 && a->cmd->op != STORE_OP_AUDIT && a->res->status == 0) {
        rv = store_apply_op(a);
    }
    if (rv == 0 && a->res->status != 0) {
        rv = roll_back(a, &sp);
    }
    return rv;
}

/* Everything for a decoded command. Non-zero only for storage failures. */
static int run(struct store_apply *a)
{
    bool answered = false;
    bool uses_rid = a->cmd->request_id != NULL && a->cmd->op != STORE_OP_AUDIT;
    int64_t old_time = -1;
    int rv;

    /* Prune first: deletes in the batch must come before the puts below,
     * which may write the same request id or object again. */
    rv = store_apply_prune_requests(a);
    if (rv == 0) {
        rv = store_apply_prune_expired(a);
    }
    if (rv != 0) {
        return rv;
    }
    snprintf(a->res->id, sizeof a->res->id, "%s", a->cmd->id);
    /* An audit command records a refusal: it never answers, or is
     * answered by, the request it was about. */
    if (uses_rid) {
        rv = request_lookup(a, &answered, &old_time);
        if (rv != 0) {
            return rv;
        }
    }
    if (!answered) {
        rv = op_apply(a);
        if (rv != 0) {
            return rv;
        }
        a->res->revision = a->revision;
    }
    /* A replay is the same request again: its record is already there. */
    if (!a->res->replayed) {
        rv = audit_append(a);
    }
    if (rv == 0 && uses_rid && !answered) {
        rv = request_store(a, old_time);
    }
    return rv;
}

static int batch_write(struct store *s, rocksdb_writebatch_wi_t *wb, char *errmsg,
                       size_t errmsg_size)
{
    char *err = NULL;
    if (s->fail_writes > 0) {
        s->fail_writes--;
        cairn_errmsg_set(errmsg, errmsg_size, "rocksdb write: injected failure");
        return CAIRN_EIO;
    }
    rocksdb_write_writebatch_wi(s->db.db, s->db.wopts, wb, &err);
    if (err != NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "rocksdb write: %s", err);
        rocksdb_free(err);
        return CAIRN_EIO;
    }
    return 0;
}

/* One command of an entry, into a's batch; *res is its outcome.
 * Non-zero only for a storage failure. */
static int apply_command(struct store_apply *a, const struct store_slice *c,
                         struct store_result *res)
{
    struct store_command cmd;
    int rv;

    memset(res, 0, sizeof *res);
    a->res = res;
    a->changed = false;
    a->changes = 0;
    a->pruned = 0;
    a->scope[0] = '\0';
    rv = store_command_decode(c->buf, c->len, &cmd, res->message, sizeof res->message);
    if (rv != 0) {
        /* A command no node can read (garbage, or a version, operation or
         * kind no build ever wrote) is answered, not fatal: the entry is
         * consumed so that the log moves on. */
        res->status = rv;
        res->revision = a->revision;
        return 0;
    }
    a->cmd = &cmd;
    a->kind = store_kind_name(cmd.kind);
    rv = run(a);
    if (rv != 0) {
        cairn_errmsg_wrap(a->errmsg, a->errmsg_size, "%s %s", a->kind, cmd.id);
    }
    a->cmd = NULL;
    return rv;
}

/* Refuses, before anything is written, an entry this build must not
 * apply (CAIRN_EUNSUPPORTED), so that it is applied once this node runs a
 * build that reads it. */
static int check_versions(struct store *s, const struct store_slice *cmds, size_t n, bool batched,
                          char *errmsg, size_t errmsg_size)
{
    uint64_t version;
    if (batched && s->version_max < STORE_COMMAND_VERSION_BATCH) {
        cairn_errmsg_set(errmsg, errmsg_size,
                         "batched entries need command version %u; this build applies 1..%u: "
                         "upgrade this node",
                         STORE_COMMAND_VERSION_BATCH, s->version_max);
        return CAIRN_EUNSUPPORTED;
    }
    for (size_t i = 0; i < n; i++) {
        if (store_command_version(cmds[i].buf, cmds[i].len, &version) == 0 &&
            version > s->version_max) {
            cairn_errmsg_set(errmsg, errmsg_size,
                             "command version %" PRIu64
                             " is newer than this build (1..%u): upgrade this node",
                             version, s->version_max);
            return CAIRN_EUNSUPPORTED;
        }
    }
    return 0;
}

/* Applies one raft entry of n commands (batched: in a batch entry). */
static int apply_entry(struct store *s, uint64_t index, const struct store_slice *cmds, size_t n,
                       bool batched, const struct store_result **results, char *errmsg,
                       size_t errmsg_size)
{
    struct store_apply a;
    uint64_t revision_before;
    int rv;

    if (index <= atomic_load(&s->applied)) {
        *results = NULL;
        return 0;
    }
    if (s->db.db == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "apply %" PRIu64 ": the store has no database",
                         index);
        return CAIRN_EIO;
    }
    rv = check_versions(s, cmds, n, batched, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    memset(&a, 0, sizeof a);
    a.s = s;
    a.revision = atomic_load(&s->revision);
    revision_before = a.revision;
    a.errmsg = errmsg;
    a.errmsg_size = errmsg_size;
    /* Overwriting keys in the index: a read sees the last write of a key,
     * also one of an earlier command of the same entry. */
    a.wb = rocksdb_writebatch_wi_create(0, 1);
    for (size_t i = 0; i < n && rv == 0; i++) {
        rv = apply_command(&a, &cmds[i], &s->results[i]);
    }
    /* The logs are pruned once per entry, after its commands, not after
     * each: one scan per log instead of one per command, and the deletes
     * in one run instead of alternating with the puts at the other end of
     * the same memtable (measured: docs/benchmarks.md, session 7). */
    if (rv == 0) {
        rv = store_apply_prune_changes(&a, revision_before, n);
    }
    if (rv == 0) {
        rv = store_apply_prune_audit(&a, n);
    }
    if (rv != 0) {
        goto err_after_batch;
    }
    meta_flush(&a);
    store_apply_meta_put(&a, STORE_META_APPLIED, index);
    store_apply_meta_put(&a, STORE_META_REVISION, a.revision);
    rv = batch_write(s, a.wb, errmsg, errmsg_size);
    if (rv != 0) {
        goto err_after_batch;
    }
    rocksdb_writebatch_wi_destroy(a.wb);
    /* Only now, with the batch on disk, may readers see the new values. */
    atomic_store(&s->revision, a.revision);
    atomic_store(&s->applied, index);
    if (a.auth_changed) {
        atomic_fetch_add(&s->auth_generation, 1);
    }
    if (a.members_changed) {
        atomic_fetch_add(&s->member_generation, 1);
    }
    if (a.system_changed) {
        atomic_fetch_add(&s->system_generation, 1);
    }
    *results = s->results;
    return 0;

err_after_batch:
    rocksdb_writebatch_wi_destroy(a.wb);
    /* What apply remembered of this entry's writes did not happen. */
    memset(s->db.hint, 0, sizeof s->db.hint);
    memset(s->db.meta, 0, sizeof s->db.meta);
    assert(rv != 0);
    return rv;
}

int store_apply(struct store *s, uint64_t index, const void *buf, size_t len,
                const struct store_result **result, char *errmsg, size_t errmsg_size)
{
    struct store_slice c = {buf, len};
    return apply_entry(s, index, &c, 1, false, result, errmsg, errmsg_size);
}

int store_apply_batch(struct store *s, uint64_t index, const struct store_slice *cmds, size_t n,
                      const struct store_result **results, char *errmsg, size_t errmsg_size)
{
    if (n == 0 || n > STORE_BATCH_MAX) {
        cairn_errmsg_set(errmsg, errmsg_size, "apply %" PRIu64 ": a batch of %zu commands (1..%d)",
                         index, n, STORE_BATCH_MAX);
        return CAIRN_EINVAL;
    }
    return apply_entry(s, index, cmds, n, true, results, errmsg, errmsg_size);
}
