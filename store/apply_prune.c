/*
 * Pruning during apply: what has run out goes, a bounded amount per entry
 * so that no apply does unbounded work, and decided only by the command's
 * time and the entry's revision so that every node prunes the same:
 *   - request ids older than STORE_REQUEST_TTL_MS (STORE_PRUNE_MAX per
 *     entry, oldest first);
 *   - expired objects (STORE_PRUNE_MAX per entry, in expiry order), each
 *     with its descendants, at most cascade_max objects per entry;
 *   - change-log records older than the newest changes_kept revisions and
 *     audit records beyond the newest audit_kept (STORE_LOG_PRUNE_MAX each
 *     per entry; each entry adds about one, so pruning keeps up).
 * Readers never depend on how far pruning got: apply treats an expired
 * object as absent at once, queries skip it, and the change log is read
 * only from meta changes_floor on.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Deletes, in cf, up to max keys below bound (all keys if bound is NULL),
 * oldest first, reading the database (these keys are never written by the
 * same entry before pruning). With both set, also deletes each key's
 * suffix after skip bytes in also_cf (request times -> requests). */
static int delete_below(struct store_apply *a, enum store_cf cf, const void *bound,
                        size_t bound_len, size_t max, enum store_cf also_cf, size_t skip)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it;
    int rv = 0;

    rocksdb_readoptions_set_iterate_upper_bound(ro, bound, bound_len);
    it = rocksdb_create_iterator_cf(a->s->db.db, ro, a->s->db.cf[cf]);
    rocksdb_iter_seek_to_first(it);
    for (size_t i = 0; i < max && rocksdb_iter_valid(it); i++) {
        size_t len;
        const char *key = rocksdb_iter_key(it, &len);
        if (skip > 0) {
            if (len <= skip) {
                cairn_errmsg_set(a->errmsg, a->errmsg_size, "key of %zu bytes in a time index",
                                 len);
                rv = CAIRN_ECORRUPT;
                break;
            }
            store_apply_del(a, also_cf, key + skip, len - skip);
        }
        store_apply_del(a, cf, key, len);
        rocksdb_iter_next(it);
    }
    if (rv == 0) {
        rv = store_apply_iter_check(a, it);
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rv;
}

int store_apply_prune_requests(struct store_apply *a)
{
    unsigned char bound[8];
    if (a->cmd->time_ms < STORE_REQUEST_TTL_MS) {
        return 0;
    }
    /* Keys are be64(time) + id: every key below be64(cutoff) is older. */
    store_be64_put((uint64_t)(a->cmd->time_ms - STORE_REQUEST_TTL_MS), bound);
    return delete_below(a, STORE_CF_REQUEST_TIMES, bound, sizeof bound, STORE_PRUNE_MAX,
                        STORE_CF_REQUESTS, 8);
}

/* An "expiry" entry read before pruning starts. */
struct expired {
    int64_t expires_ms;
    enum store_kind kind;
    char id[STORE_ID_MAX];
    size_t id_len;
};

/* Reads up to STORE_PRUNE_MAX entries that expired at the command's time. */
static int expired_collect(struct store_apply *a, struct expired *out, size_t *n)
{
    rocksdb_iterator_t *it = store_apply_iter(a, STORE_CF_EXPIRY);
    int rv = 0;

    *n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && *n < STORE_PRUNE_MAX;
         rocksdb_iter_next(it)) {
        size_t len;
        const char *key = rocksdb_iter_key(it, &len);
        struct expired *e = &out[*n];
        if (len < 8 + 2 || len > STORE_KEY_EXPIRY_MAX ||
            store_kind_name((unsigned char)key[8]) == NULL) {
            cairn_errmsg_set(a->errmsg, a->errmsg_size, "expiry key of %zu bytes is corrupt", len);
            rv = CAIRN_ECORRUPT;
            break;
        }
        e->expires_ms = (int64_t)store_be64_get((const unsigned char *)key);
        if (e->expires_ms > a->cmd->time_ms) {
            break;
        }
        e->kind = (enum store_kind)(unsigned char)key[8];
        e->id_len = len - 9;
        memcpy(e->id, key + 9, e->id_len);
        (*n)++;
    }
    if (rv == 0) {
        rv = store_apply_iter_check(a, it);
    }
    rocksdb_iter_destroy(it);
    return rv;
}

int store_apply_prune_expired(struct store_apply *a)
{
    struct expired *list;
    size_t n;
    int rv;

    list = malloc(STORE_PRUNE_MAX * sizeof *list);
    if (list == NULL) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "prune expired: out of memory");
        return CAIRN_ENOMEM;
    }
    rv = expired_collect(a, list, &n);
    for (size_t i = 0; rv == 0 && i < n; i++) {
        struct expired *e = &list[i];
        struct store_loaded o;
        bool too_many;
        size_t removed;
        rv = store_apply_load(a, e->kind, e->id, e->id_len, &o);
        if (rv == CAIRN_ENOTFOUND) {
            rv = 0; /* gone already, under an expired object pruned before */
            continue;
        }
        if (rv != 0) {
            break;
        }
        if (o.val.expires_ms != e->expires_ms) {
            cairn_errmsg_set(a->errmsg, a->errmsg_size,
                             "%s %.*s: expiry index says %" PRId64 ", object says %" PRId64,
                             store_kind_name(e->kind), (int)e->id_len, e->id, e->expires_ms,
                             o.val.expires_ms);
            rv = CAIRN_ECORRUPT;
        }
        store_apply_unload(&o);
        if (rv == 0) {
            rv = store_apply_remove_tree(a, e->kind, e->id, e->id_len,
                                         a->s->cascade_max - a->pruned, &too_many, &removed);
        }
        if (rv != 0 || too_many) {
            break; /* the rest waits for the next entries */
        }
        a->pruned += removed;
    }
    free(list);
    return rv;
}

int store_apply_prune_changes(struct store_apply *a)
{
    uint64_t kept = a->s->changes_kept;
    uint64_t floor;
    uint64_t want;
    bool found;
    char bound[STORE_KEY_CHANGE_LEN];
    int rv;

    rv = store_apply_meta_get(a, STORE_META_CHANGES_FLOOR, &floor, &found);
    if (rv != 0) {
        return rv;
    }
    if (!found) {
        /* The first entry that logs: nothing before it was ever logged. */
        floor = a->revision - (a->changed ? 1 : 0) + 1;
    }
    want = a->revision >= kept ? a->revision - kept + 1 : 1;
    if (want > floor) {
        floor = want;
        found = false;
    }
    if (!found) {
        store_apply_meta_put(a, STORE_META_CHANGES_FLOOR, floor);
    }
    return delete_below(a, STORE_CF_CHANGES, bound, store_key_change(floor, 0, bound),
                        STORE_LOG_PRUNE_MAX, STORE_CF_DEFAULT, 0);
}

int store_apply_prune_audit(struct store_apply *a)
{
    char bound[STORE_KEY_AUDIT_LEN];
    uint64_t last;
    bool found;
    int rv = store_apply_meta_get(a, STORE_META_AUDIT_SEQ, &last, &found);
    if (rv != 0 || last <= a->s->audit_kept) {
        return rv;
    }
    /* Keep last - kept + 1 .. last. */
    return delete_below(a, STORE_CF_AUDIT, bound,
                        store_key_audit(last - a->s->audit_kept + 1, bound), STORE_LOG_PRUNE_MAX,
                        STORE_CF_DEFAULT, 0);
}
