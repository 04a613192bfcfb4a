/*
 * Reads: one object by id, an id by unique name, and a page of one kind's
 * objects. Any thread may read while the loop thread applies: RocksDB reads
 * are thread-safe, and the read side of the store's lock only keeps a
 * restore from closing the database under a reader. A page is read from one
 * RocksDB snapshot, together with the revision stored in that snapshot, so
 * the page and its revision always agree.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* Objects allocated at first for a page, before it grows. */
#define LIST_INITIAL 16

static char *dup_bytes(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p != NULL) {
        if (len > 0) {
            memcpy(p, s, len);
        }
        p[len] = '\0';
    }
    return p;
}

void store_object_release(struct store_object *o)
{
    if (o == NULL) {
        return;
    }
    free(o->id);
    free(o->name);
    free(o->body);
    memset(o, 0, sizeof *o);
}

/* Builds an object from its id and stored value (all copied). */
static int object_make(enum store_kind kind, const char *id, size_t id_len, const void *val,
                       size_t val_len, struct store_object *out)
{
    struct store_value v;
    struct store_object o = {0};

    if (store_value_decode(val, val_len, &v) != 0) {
        return CAIRN_ECORRUPT;
    }
    o.kind = kind;
    o.create_rev = v.create_rev;
    o.mod_rev = v.mod_rev;
    o.body_len = v.body_len;
    o.id = dup_bytes(id, id_len);
    o.body = dup_bytes(v.body, v.body_len);
    if (v.name != NULL) {
        o.name = dup_bytes(v.name, v.name_len);
    }
    if (o.id == NULL || o.body == NULL || (v.name != NULL && o.name == NULL)) {
        store_object_release(&o);
        return CAIRN_ENOMEM;
    }
    *out = o;
    return 0;
}

/* Takes the read lock; fails if a failed restore left no database. */
static int read_lock(struct store *s)
{
    pthread_rwlock_rdlock(&s->lock);
    if (s->db.db == NULL) {
        pthread_rwlock_unlock(&s->lock);
        return CAIRN_EIO;
    }
    return 0;
}

int store_object_get(struct store *s, enum store_kind kind, const char *id,
                     struct store_object *out)
{
    char key[1 + STORE_ID_MAX];
    size_t id_len;
    size_t key_len;
    char *val;
    size_t val_len;
    int rv;

    if (id == NULL || store_kind_name(kind) == NULL) {
        return CAIRN_EINVAL;
    }
    id_len = strnlen(id, STORE_ID_MAX + 1);
    if (id_len == 0 || id_len > STORE_ID_MAX) {
        return CAIRN_ENOTFOUND; /* no such id can exist */
    }
    key_len = store_key_object(kind, id, id_len, key);
    rv = read_lock(s);
    if (rv != 0) {
        return rv;
    }
    rv = store_db_get(&s->db, NULL, STORE_CF_OBJECTS, key, key_len, &val, &val_len, NULL, 0);
    pthread_rwlock_unlock(&s->lock);
    if (rv != 0) {
        return rv;
    }
    rv = object_make(kind, id, id_len, val, val_len, out);
    rocksdb_free(val);
    return rv;
}

int store_name_lookup(struct store *s, enum store_kind kind, const char *name, char **id)
{
    char key[1 + STORE_NAME_MAX];
    size_t name_len;
    size_t key_len;
    char *val;
    size_t val_len;
    char *copy;
    int rv;

    if (name == NULL || store_kind_name(kind) == NULL) {
        return CAIRN_EINVAL;
    }
    name_len = strnlen(name, STORE_NAME_MAX + 1);
    if (name_len == 0 || name_len > STORE_NAME_MAX) {
        return CAIRN_ENOTFOUND;
    }
    key_len = store_key_name(kind, name, name_len, key);
    rv = read_lock(s);
    if (rv != 0) {
        return rv;
    }
    rv = store_db_get(&s->db, NULL, STORE_CF_NAMES, key, key_len, &val, &val_len, NULL, 0);
    pthread_rwlock_unlock(&s->lock);
    if (rv != 0) {
        return rv;
    }
    copy = dup_bytes(val, val_len);
    rocksdb_free(val);
    if (copy == NULL) {
        return CAIRN_ENOMEM;
    }
    *id = copy;
    return 0;
}

void store_list_release(struct store_list *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        store_object_release(&l->items[i]);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

static int list_append(struct store_list *l, size_t *cap, size_t limit)
{
    struct store_object *items;
    size_t want;
    if (l->n < *cap) {
        return 0;
    }
    want = *cap == 0 ? LIST_INITIAL : *cap * 2;
    if (want > limit) {
        want = limit;
    }
    items = realloc(l->items, want * sizeof *items);
    if (items == NULL) {
        return CAIRN_ENOMEM;
    }
    l->items = items;
    *cap = want;
    return 0;
}

/* Positions it on the first object of kind with id > after. */
static int list_seek(rocksdb_iterator_t *it, enum store_kind kind, const char *after)
{
    size_t after_len;
    size_t key_len;
    char *key;
    if (after == NULL) {
        char lo[1];
        char hi[1];
        store_key_range(kind, lo, hi);
        rocksdb_iter_seek(it, lo, 1);
        return 0;
    }
    after_len = strlen(after);
    key = malloc(1 + after_len);
    if (key == NULL) {
        return CAIRN_ENOMEM;
    }
    key_len = store_key_object(kind, after, after_len, key);
    rocksdb_iter_seek(it, key, key_len);
    if (rocksdb_iter_valid(it)) {
        size_t found_len;
        const char *found = rocksdb_iter_key(it, &found_len);
        if (found_len == key_len && memcmp(found, key, key_len) == 0) {
            rocksdb_iter_next(it);
        }
    }
    free(key);
    return 0;
}

/* Reads the page with the snapshot's read options ro. */
static int list_read(struct store *s, rocksdb_readoptions_t *ro, enum store_kind kind,
                     const char *after, size_t limit, struct store_list *l)
{
    rocksdb_iterator_t *it;
    size_t cap = 0;
    char *err = NULL;
    int rv;

    rv = store_db_get_meta(&s->db, ro, STORE_META_REVISION, &l->revision, NULL, 0);
    if (rv != 0) {
        return rv;
    }
    it = rocksdb_create_iterator_cf(s->db.db, ro, s->db.cf[STORE_CF_OBJECTS]);
    rv = list_seek(it, kind, after);
    while (rv == 0 && rocksdb_iter_valid(it) && l->n < limit) {
        size_t key_len;
        size_t val_len;
        const char *key = rocksdb_iter_key(it, &key_len);
        const char *val = rocksdb_iter_value(it, &val_len);
        if (key_len < 2) {
            rv = CAIRN_ECORRUPT;
            break;
        }
        rv = list_append(l, &cap, limit);
        if (rv == 0) {
            rv = object_make(kind, key + 1, key_len - 1, val, val_len, &l->items[l->n]);
        }
        if (rv == 0) {
            l->n++;
            rocksdb_iter_next(it);
        }
    }
    if (rv == 0) {
        /* The iterator stops at the kind's upper bound: still valid means
         * another object of this kind follows. */
        l->more = rocksdb_iter_valid(it);
        rocksdb_iter_get_error(it, &err);
        if (err != NULL) {
            rocksdb_free(err);
            rv = CAIRN_EIO;
        }
    }
    rocksdb_iter_destroy(it);
    return rv;
}

int store_object_list(struct store *s, enum store_kind kind, const char *after, size_t limit,
                      struct store_list *out)
{
    struct store_list l = {0};
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro;
    char lo[1];
    char hi[1];
    int rv;

    if (store_kind_name(kind) == NULL) {
        return CAIRN_EINVAL;
    }
    store_key_range(kind, lo, hi);
    rv = read_lock(s);
    if (rv != 0) {
        return rv;
    }
    snap = rocksdb_create_snapshot(s->db.db);
    ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(ro, snap);
    rocksdb_readoptions_set_iterate_upper_bound(ro, hi, sizeof hi);
    rv = list_read(s, ro, kind, after, limit, &l);
    rocksdb_readoptions_destroy(ro);
    rocksdb_release_snapshot(s->db.db, snap);
    pthread_rwlock_unlock(&s->lock);
    if (rv != 0) {
        store_list_release(&l);
        return rv;
    }
    *out = l;
    return 0;
}
