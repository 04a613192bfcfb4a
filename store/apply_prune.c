/*
 * Pruning during apply: what has run out goes, a bounded amount per entry
 * so that no apply does unbounded work, and decided only by the command's
 * time and the entry's revision so that every node prunes the same:
 *   - request ids older than STORE_REQUEST_TTL_MS (STORE_PRUNE_MAX per
 *     entry, oldest first);
 *   - expired objects (STORE_PRUNE_MAX per entry, in expiry order), each
 *     with its descendants, at most cascade_max objects per entry;
 *   - change-log records older than the newest changes_kept revisions and
 *     audit records beyond the newest audit_kept, once per entry after its
 *     commands (STORE_LOG_PRUNE_MAX per command of the entry; each command
 *     adds about one, so pruning keeps up).
 * Readers never depend on how far pruning got: apply treats an expired
 * object as absent at once, queries skip it, and the change log is read
 * only from meta changes_floor on.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* RocksDB's default order: bytewise, a prefix first. */
static int key_cmp(const void *a, size_t a_len, const void *b, size_t b_len)
{
    int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
    if (c != 0) {
        return c;
    }
    return a_len < b_len ? -1 : a_len > b_len ? 1 : 0;
}

static void hint_set(struct store_prune_hint *h, const void *key, size_t len)
{
    if (len > sizeof h->low) {
        h->known = false; /* no such keys in the pruned families; be safe */
        return;
    }
    memcpy(h->low, key, len);
    h->len = len;
    h->empty = false;
    h->known = true;
}

static void hint_set_empty(struct store_prune_hint *h)
{
    h->len = 0;
    h->empty = true;
    h->known = true;
}

void store_prune_hint_put(struct store_prune_hint *h, const void *key, size_t len)
{
    if (h->known && (h->empty || key_cmp(key, len, h->low, h->len) < 0)) {
        hint_set(h, key, len);
    }
}

/* Positions it at the hint's key, or the first key. */
static void seek_hint(rocksdb_iterator_t *it, const struct store_prune_hint *h)
{
    if (h->known && !h->empty) {
        rocksdb_iter_seek(it, h->low, h->len);
    } else {
        rocksdb_iter_seek_to_first(it);
    }
}

/* Deletes, in cf, up to max keys below bound, oldest first. With both
 * set, also deletes each key's suffix after skip bytes in also_cf (request
 * times -> requests). Reads through the entry's batch (an entry may have
 * added a key to the family before it prunes: a change or audit record),
 * collects first and deletes after, so the batch does not change under
 * its iterator. Learns the first key it keeps as the family's hint, and
 * skips the scan when the hint says no key is below bound. */
static int delete_below(struct store_apply *a, enum store_cf cf, const void *bound,
                        size_t bound_len, size_t max, enum store_cf also_cf, size_t skip)
{
    struct store_prune_hint *h = &a->s->db.hint[cf];
    struct store_prune_hint next = {0};
    rocksdb_iterator_t *it;
    struct cairn_buf keys; /* each key: its length (a size_t), then it */
    size_t n = 0;
    int rv = 0;

    if (h->known && (h->empty || key_cmp(bound, bound_len, h->low, h->len) <= 0)) {
        return 0;
    }
    cairn_buf_init(&keys);
    it = store_apply_iter(a, cf);
    for (seek_hint(it, h); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t len;
        const char *key = rocksdb_iter_key(it, &len);
        if (n == max || key_cmp(key, len, bound, bound_len) >= 0) {
            hint_set(&next, key, len); /* the first key kept */
            break;
        }
        if (len > STORE_PRUNE_HINT_KEY || len <= skip) {
            cairn_errmsg_set(a->errmsg, a->errmsg_size, "key of %zu bytes in %s", len,
                             skip > 0 ? "a time index" : "a log");
            rv = CAIRN_ECORRUPT;
            break;
        }
        if (cairn_buf_append(&keys, &len, sizeof len) != 0 ||
            cairn_buf_append(&keys, key, len) != 0) {
            cairn_errmsg_set(a->errmsg, a->errmsg_size, "prune: out of memory");
            rv = CAIRN_ENOMEM;
            break;
        }
        n++;
    }
    if (rv == 0) {
        rv = store_apply_iter_check(a, it);
    }
    if (rv == 0 && !next.known) {
        hint_set_empty(&next); /* every key was below bound */
    }
    rocksdb_iter_destroy(it);
    for (size_t off = 0; rv == 0 && off < keys.len;) {
        size_t len;
        const char *key = keys.data + off + sizeof len;
        memcpy(&len, keys.data + off, sizeof len);
        if (skip > 0) {
            store_apply_del(a, also_cf, key + skip, len - skip);
        }
        store_apply_del(a, cf, key, len);
        off += sizeof len + len;
    }
    *h = next; /* unknown after an error */
    cairn_buf_close(&keys);
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
    rocksdb_iterator_t *it;
    int rv = 0;

    struct store_prune_hint *h = &a->s->db.hint[STORE_CF_EXPIRY];

    *n = 0;
    /* Nothing expires before the hint's time (an empty family: nothing). */
    if (h->known &&
        (h->empty || (h->len >= 8 &&
                      (int64_t)store_be64_get((const unsigned char *)h->low) > a->cmd->time_ms))) {
        return 0;
    }
    it = store_apply_iter(a, STORE_CF_EXPIRY);
    seek_hint(it, h);
    /* The first key is the smallest: whatever is removed below, it stays
     * a lower bound. */
    if (rocksdb_iter_valid(it)) {
        size_t len;
        const char *key = rocksdb_iter_key(it, &len);
        hint_set(h, key, len);
    } else if (store_apply_iter_check(a, it) == 0) {
        hint_set_empty(h);
    }
    for (; rocksdb_iter_valid(it) && *n < STORE_PRUNE_MAX; rocksdb_iter_next(it)) {
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

int store_apply_prune_changes(struct store_apply *a, uint64_t revision_before, size_t n)
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
        floor = revision_before + 1;
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
                        STORE_LOG_PRUNE_MAX * n, STORE_CF_DEFAULT, 0);
}

int store_apply_prune_audit(struct store_apply *a, size_t n)
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
                        store_key_audit(last - a->s->audit_kept + 1, bound),
                        STORE_LOG_PRUNE_MAX * n, STORE_CF_DEFAULT, 0);
}
