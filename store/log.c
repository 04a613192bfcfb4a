/*
 * Reading the two logs apply writes: the change log ("changes"), from which
 * an event stream resumes at any recent revision, and the audit log
 * ("audit"), read newest first with filters. Both read from one RocksDB
 * snapshot, so a page never mixes two states. Apply writes and prunes them
 * (apply.c, apply_prune.c); this file only reads.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* Items allocated at first for a page, before it grows. */
#define PAGE_INITIAL 16

/* Makes room for one more item of size bytes in *items. */
static int grow(void **items, size_t n, size_t *cap, size_t size)
{
    void *p;
    size_t want;
    if (n < *cap) {
        return 0;
    }
    want = *cap == 0 ? PAGE_INITIAL : *cap * 2;
    p = realloc(*items, want * size);
    if (p == NULL) {
        return CAIRN_ENOMEM;
    }
    *items = p;
    *cap = want;
    return 0;
}

static int iter_error(rocksdb_iterator_t *it, int rv)
{
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err != NULL) {
        rocksdb_free(err);
        return rv != 0 ? rv : CAIRN_EIO;
    }
    return rv;
}

void store_change_list_release(struct store_change_list *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        store_object_release(&l->items[i].object);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* Builds one change from its key and record. */
static int change_make(const char *key, size_t key_len, const char *val, size_t val_len,
                       struct store_change *out)
{
    struct store_change_rec rec;
    struct store_value v;
    int rv;

    if (key_len != STORE_KEY_CHANGE_LEN || store_change_decode(val, val_len, &rec) != 0 ||
        store_value_decode(rec.value, rec.value_len, &v) != 0) {
        return CAIRN_ECORRUPT;
    }
    if (rec.deleted) {
        /* A delete says which object went, and where it was. */
        v.name = NULL;
        v.body_len = 0;
    }
    memset(out, 0, sizeof *out);
    rv = store_object_from_value(rec.kind, rec.id, rec.id_len, &v, &out->object);
    if (rv != 0) {
        return rv;
    }
    if (rec.deleted) {
        free(out->object.body);
        out->object.body = NULL;
    }
    out->revision = store_be64_get((const unsigned char *)key);
    out->deleted = rec.deleted;
    return 0;
}

/* The oldest revision whose changes are all kept, as of the snapshot. */
static int changes_floor(struct store *s, const struct store_read *rd, uint64_t revision,
                         uint64_t *floor)
{
    int rv = store_db_get_meta(&s->db, rd->ro, STORE_META_CHANGES_FLOOR, floor, NULL, 0);
    if (rv == 0 && *floor == 0) {
        /* Never written: no apply has logged anything yet. */
        *floor = revision + 1;
    }
    return rv;
}

/* Reads whole revisions from from + 1 on: a page ends at a revision
 * boundary, so that the caller resumes from the last revision it saw;
 * only a first revision with more than limit changes makes a longer page. */
static int changes_page(struct store *s, const struct store_read *rd, uint64_t from, size_t limit,
                        struct store_change_list *l)
{
    char start[STORE_KEY_CHANGE_LEN];
    rocksdb_iterator_t *it;
    size_t cap = 0;
    int rv = 0;

    if (limit == 0 || from == UINT64_MAX) {
        return 0;
    }
    it = rocksdb_create_iterator_cf(s->db.db, rd->ro, s->db.cf[STORE_CF_CHANGES]);
    rocksdb_iter_seek(it, start, store_key_change(from + 1, 0, start));
    for (; rv == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t key_len;
        size_t val_len;
        const char *key = rocksdb_iter_key(it, &key_len);
        const char *val = rocksdb_iter_value(it, &val_len);
        if (key_len != STORE_KEY_CHANGE_LEN) {
            rv = CAIRN_ECORRUPT;
            break;
        }
        if (l->n >= limit &&
            store_be64_get((const unsigned char *)key) != l->items[l->n - 1].revision) {
            break;
        }
        rv = grow((void **)&l->items, l->n, &cap, sizeof *l->items);
        if (rv == 0) {
            rv = change_make(key, key_len, val, val_len, &l->items[l->n]);
        }
        if (rv == 0) {
            l->n++;
        }
    }
    rv = iter_error(it, rv);
    rocksdb_iter_destroy(it);
    return rv;
}

int store_changes_read(struct store *s, uint64_t from, size_t limit, struct store_change_list *out)
{
    struct store_change_list l = {0};
    struct store_read rd;
    int rv;

    rv = store_read_lock(s);
    if (rv != 0) {
        return rv;
    }
    store_read_begin(s, &rd);
    rv = store_db_get_meta(&s->db, rd.ro, STORE_META_REVISION, &l.revision, NULL, 0);
    if (rv == 0) {
        rv = changes_floor(s, &rd, l.revision, &l.oldest);
    }
    if (rv == 0 && from < UINT64_MAX && from + 1 < l.oldest) {
        rv = CAIRN_ENOTFOUND; /* compacted: the caller lists again */
    }
    if (rv == 0) {
        rv = changes_page(s, &rd, from, limit, &l);
    }
    store_read_end(s, &rd);
    pthread_rwlock_unlock(&s->lock);
    if (rv != 0) {
        store_change_list_release(&l);
        return rv;
    }
    *out = l;
    return 0;
}

void store_audit_list_release(struct store_audit_list *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].caller);
        free(l->items[i].tenant);
        free(l->items[i].id);
        free(l->items[i].message);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

static bool str_is(const char *s, size_t len, const char *want)
{
    return s != NULL && strlen(want) == len && memcmp(s, want, len) == 0;
}

static bool audit_wants(const struct store_audit_query *q, const struct store_audit_rec *r)
{
    return (q->caller == NULL || str_is(r->caller, r->caller_len, q->caller)) &&
           (q->tenant == NULL || str_is(r->tenant, r->tenant_len, q->tenant)) &&
           (q->kind == 0 || q->kind == r->kind) && (q->from_ms == 0 || r->time_ms >= q->from_ms) &&
           (q->to_ms == 0 || r->time_ms <= q->to_ms);
}

static int audit_make(uint64_t seq, const struct store_audit_rec *r, struct store_audit *out)
{
    struct store_audit a = {0};
    a.seq = seq;
    a.time_ms = r->time_ms;
    a.op = r->op;
    a.kind = r->kind;
    a.status = r->status;
    a.revision = r->revision;
    a.caller = store_strndup(r->caller, r->caller_len);
    a.id = store_strndup(r->id, r->id_len);
    if (r->tenant != NULL) {
        a.tenant = store_strndup(r->tenant, r->tenant_len);
    }
    if (r->message != NULL) {
        a.message = store_strndup(r->message, r->message_len);
    }
    if (a.caller == NULL || a.id == NULL || (r->tenant != NULL && a.tenant == NULL) ||
        (r->message != NULL && a.message == NULL)) {
        free(a.caller);
        free(a.id);
        free(a.tenant);
        free(a.message);
        return CAIRN_ENOMEM;
    }
    *out = a;
    return 0;
}

/* Walks from the newest record (or the one before q->after) to older ones,
 * examining at most scan_max records. */
static int audit_page(struct store *s, const struct store_read *rd,
                      const struct store_audit_query *q, struct store_audit_list *l)
{
    rocksdb_iterator_t *it;
    size_t examined = 0;
    size_t cap = 0;
    int rv = 0;

    it = rocksdb_create_iterator_cf(s->db.db, rd->ro, s->db.cf[STORE_CF_AUDIT]);
    if (q->after == 0) {
        rocksdb_iter_seek_to_last(it);
    } else {
        char key[STORE_KEY_AUDIT_LEN];
        rocksdb_iter_seek_for_prev(it, key, store_key_audit(q->after - 1, key));
    }
    for (; rv == 0 && rocksdb_iter_valid(it); rocksdb_iter_prev(it)) {
        struct store_audit_rec rec;
        size_t key_len;
        size_t val_len;
        const char *key = rocksdb_iter_key(it, &key_len);
        const char *val = rocksdb_iter_value(it, &val_len);
        uint64_t seq;
        if (examined == s->audit_scan_max) {
            l->more = true; /* unexamined records: the caller goes on from next */
            break;
        }
        if (key_len != STORE_KEY_AUDIT_LEN || store_audit_decode(val, val_len, &rec) != 0) {
            rv = CAIRN_ECORRUPT;
            break;
        }
        seq = store_be64_get((const unsigned char *)key);
        examined++;
        if (!audit_wants(q, &rec)) {
            l->next = seq;
            continue;
        }
        if (l->n == q->limit) {
            l->more = true;
            break;
        }
        rv = grow((void **)&l->items, l->n, &cap, sizeof *l->items);
        if (rv == 0) {
            rv = audit_make(seq, &rec, &l->items[l->n]);
        }
        if (rv == 0) {
            l->n++;
            l->next = seq;
        }
    }
    rv = iter_error(it, rv);
    rocksdb_iter_destroy(it);
    return rv;
}

int store_audit_query(struct store *s, const struct store_audit_query *q,
                      struct store_audit_list *out)
{
    struct store_audit_list l = {0};
    struct store_read rd;
    int rv;

    if (q == NULL || (q->kind != 0 && store_kind_name(q->kind) == NULL)) {
        return CAIRN_EINVAL;
    }
    if (q->after == 1) {
        *out = l; /* nothing is older than the first record */
        return 0;
    }
    rv = store_read_lock(s);
    if (rv != 0) {
        return rv;
    }
    store_read_begin(s, &rd);
    rv = audit_page(s, &rd, q, &l);
    store_read_end(s, &rd);
    pthread_rwlock_unlock(&s->lock);
    if (rv != 0) {
        store_audit_list_release(&l);
        return rv;
    }
    *out = l;
    return 0;
}
