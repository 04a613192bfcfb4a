/*
 * Reads: one object by id, an id by unique name, a page of one kind's
 * objects (all of them, or those of one tenant or one parent through the
 * "scoped" and "children" indexes), and the per-tenant counts. Any thread
 * may read while the loop thread applies: RocksDB reads are thread-safe,
 * and the read side of the store's lock only keeps a restore from closing
 * the database under a reader. A page is read from one RocksDB snapshot,
 * together with the revision stored in that snapshot, so the page and its
 * revision always agree.
 */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

/* Objects allocated at first for a page, before it grows. */
#define LIST_INITIAL 16

char *store_strndup(const char *s, size_t len)
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
    free(o->tenant);
    free(o->parent_id);
    memset(o, 0, sizeof *o);
}

int store_object_from_value(enum store_kind kind, const char *id, size_t id_len,
                            const struct store_value *v, struct store_object *out)
{
    struct store_object o = {0};

    o.kind = kind;
    o.create_rev = v->create_rev;
    o.mod_rev = v->mod_rev;
    o.body_len = v->body_len;
    o.parent_kind = v->parent_kind;
    o.expires_ms = v->expires_ms;
    o.n_limits = v->n_limits;
    memcpy(o.limits, v->limits, sizeof o.limits);
    o.id = store_strndup(id, id_len);
    o.body = store_strndup(v->body, v->body_len);
    if (v->name != NULL) {
        o.name = store_strndup(v->name, v->name_len);
    }
    if (v->tenant != NULL) {
        o.tenant = store_strndup(v->tenant, v->tenant_len);
    }
    if (v->parent_id != NULL) {
        o.parent_id = store_strndup(v->parent_id, v->parent_id_len);
    }
    if (o.id == NULL || o.body == NULL || (v->name != NULL && o.name == NULL) ||
        (v->tenant != NULL && o.tenant == NULL) || (v->parent_id != NULL && o.parent_id == NULL)) {
        store_object_release(&o);
        return CAIRN_ENOMEM;
    }
    *out = o;
    return 0;
}

/* Builds an object from its id and stored value (all copied). */
static int object_make(enum store_kind kind, const char *id, size_t id_len, const void *val,
                       size_t val_len, struct store_object *out)
{
    struct store_value v;
    if (store_value_decode(val, val_len, &v) != 0) {
        return CAIRN_ECORRUPT;
    }
    return store_object_from_value(kind, id, id_len, &v, out);
}

int store_read_lock(struct store *s)
{
    pthread_rwlock_rdlock(&s->lock);
    if (s->db.db == NULL) {
        pthread_rwlock_unlock(&s->lock);
        return CAIRN_EIO;
    }
    return 0;
}

/* The stored value of one object (rocksdb_free it), and its id's length. */
static int object_value_get(struct store *s, enum store_kind kind, const char *id, size_t *id_len,
                            char **val, size_t *val_len)
{
    char key[1 + STORE_ID_MAX];
    size_t key_len;
    int rv;

    if (id == NULL || store_kind_name(kind) == NULL) {
        return CAIRN_EINVAL;
    }
    *id_len = strnlen(id, STORE_ID_MAX + 1);
    if (*id_len == 0 || *id_len > STORE_ID_MAX) {
        return CAIRN_ENOTFOUND; /* no such id can exist */
    }
    key_len = store_key_object(kind, id, *id_len, key);
    rv = store_read_lock(s);
    if (rv != 0) {
        return rv;
    }
    rv = store_db_get(&s->db, NULL, STORE_CF_OBJECTS, key, key_len, val, val_len, NULL, 0);
    pthread_rwlock_unlock(&s->lock);
    return rv;
}

int store_object_get(struct store *s, enum store_kind kind, const char *id,
                     struct store_object *out)
{
    size_t id_len;
    char *val;
    size_t val_len;
    int rv = object_value_get(s, kind, id, &id_len, &val, &val_len);
    if (rv != 0) {
        return rv;
    }
    rv = object_make(kind, id, id_len, val, val_len, out);
    rocksdb_free(val);
    return rv;
}

int store_object_value(struct store *s, enum store_kind kind, const char *id, struct cairn_buf *out)
{
    size_t id_len;
    char *val;
    size_t val_len;
    int rv = object_value_get(s, kind, id, &id_len, &val, &val_len);
    if (rv != 0) {
        return rv;
    }
    rv = cairn_buf_append(out, val, val_len);
    rocksdb_free(val);
    return rv;
}

int store_object_decode(enum store_kind kind, const char *id, const void *val, size_t val_len,
                        struct store_object *out)
{
    size_t id_len = id != NULL ? strnlen(id, STORE_ID_MAX + 1) : 0;
    if (store_kind_name(kind) == NULL || id_len == 0 || id_len > STORE_ID_MAX) {
        return CAIRN_EINVAL;
    }
    int rv = object_make(kind, id, id_len, val, val_len, out);
    return rv == CAIRN_ECORRUPT ? CAIRN_EMALFORMED : rv; /* not stored bytes: from a peer */
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
    rv = store_read_lock(s);
    if (rv != 0) {
        return rv;
    }
    rv = store_db_get(&s->db, NULL, STORE_CF_NAMES, key, key_len, &val, &val_len, NULL, 0);
    pthread_rwlock_unlock(&s->lock);
    if (rv != 0) {
        return rv;
    }
    copy = store_strndup(val, val_len);
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

void store_read_begin(struct store *s, struct store_read *r)
{
    r->snap = rocksdb_create_snapshot(s->db.db);
    r->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(r->ro, r->snap);
}

void store_read_end(struct store *s, struct store_read *r)
{
    rocksdb_readoptions_destroy(r->ro);
    rocksdb_release_snapshot(s->db.db, r->snap);
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
    rv = store_read_lock(s);
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

/* One query's scan: a range of keys sharing a prefix, in "objects" (the
 * prefix is the kind), "scoped" (kind and tenant) or "children" (parent
 * and kind); the object id follows the prefix in every key. */
struct scan {
    const struct store_query *q;
    struct store *s;
    struct store_read *rd;
    enum store_cf cf;
    char prefix[STORE_KEY_CHILD_MAX];
    size_t prefix_len;
};

/* Whether the query wants the object v: not expired at its time, and of
 * its tenant when the children index (which does not key by tenant) was
 * used. */
static bool query_wants(const struct store_query *q, enum store_cf cf, const struct store_value *v)
{
    if (store_value_expired(v, q->now_ms)) {
        return false;
    }
    if (cf != STORE_CF_CHILDREN || q->tenant == NULL) {
        return true;
    }
    return v->tenant != NULL && v->tenant_len == strlen(q->tenant) &&
           memcmp(v->tenant, q->tenant, v->tenant_len) == 0;
}

/* Looks at the entry under the iterator: *match says whether the query
 * wants it and, with out set, the object is built there. An index entry
 * without its object is corruption. */
static int scan_entry(const struct scan *sc, rocksdb_iterator_t *it, struct store_object *out,
                      bool *match)
{
    char key[1 + STORE_ID_MAX];
    size_t key_len;
    const char *k = rocksdb_iter_key(it, &key_len);
    const char *id = k + sc->prefix_len;
    size_t id_len = key_len - sc->prefix_len;
    struct store_value v;
    char *raw = NULL;
    const char *val;
    size_t val_len;
    int rv;

    if (id_len == 0 || id_len > STORE_ID_MAX) {
        return CAIRN_ECORRUPT;
    }
    if (sc->cf == STORE_CF_OBJECTS) {
        val = rocksdb_iter_value(it, &val_len);
    } else {
        rv = store_db_get(&sc->s->db, sc->rd->ro, STORE_CF_OBJECTS, key,
                          store_key_object(sc->q->kind, id, id_len, key), &raw, &val_len, NULL, 0);
        if (rv != 0) {
            return rv == CAIRN_ENOTFOUND ? CAIRN_ECORRUPT : rv;
        }
        val = raw;
    }
    rv = store_value_decode(val, val_len, &v) != 0 ? CAIRN_ECORRUPT : 0;
    if (rv == 0) {
        *match = query_wants(sc->q, sc->cf, &v);
        if (*match && out != NULL) {
            rv = store_object_from_value(sc->q->kind, id, id_len, &v, out);
        }
    }
    rocksdb_free(raw);
    return rv;
}

/* Positions it on the first key of the scan after q->after. */
static int scan_seek(const struct scan *sc, rocksdb_iterator_t *it)
{
    const char *after = sc->q->after;
    size_t after_len;
    size_t key_len;
    char *key;
    if (after == NULL) {
        rocksdb_iter_seek(it, sc->prefix, sc->prefix_len);
        return 0;
    }
    after_len = strlen(after);
    key_len = sc->prefix_len + after_len;
    key = malloc(key_len);
    if (key == NULL) {
        return CAIRN_ENOMEM;
    }
    memcpy(key, sc->prefix, sc->prefix_len);
    memcpy(key + sc->prefix_len, after, after_len);
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

static bool scan_in_range(const struct scan *sc, rocksdb_iterator_t *it)
{
    size_t key_len;
    const char *key;
    if (!rocksdb_iter_valid(it)) {
        return false;
    }
    key = rocksdb_iter_key(it, &key_len);
    return key_len >= sc->prefix_len && memcmp(key, sc->prefix, sc->prefix_len) == 0;
}

/* Reads the page: up to limit matching objects, then looks for one more
 * match to tell whether more follow. */
static int scan_read(struct scan *sc, size_t limit, struct store_list *l)
{
    rocksdb_iterator_t *it;
    size_t cap = 0;
    char *err = NULL;
    int rv;

    rv = store_db_get_meta(&sc->s->db, sc->rd->ro, STORE_META_REVISION, &l->revision, NULL, 0);
    if (rv != 0) {
        return rv;
    }
    it = rocksdb_create_iterator_cf(sc->s->db.db, sc->rd->ro, sc->s->db.cf[sc->cf]);
    rv = scan_seek(sc, it);
    while (rv == 0 && scan_in_range(sc, it)) {
        bool match = false;
        if (l->n == limit) {
            rv = scan_entry(sc, it, NULL, &match);
            if (rv == 0 && match) {
                l->more = true;
                break;
            }
        } else {
            rv = list_append(l, &cap, limit);
            if (rv == 0) {
                rv = scan_entry(sc, it, &l->items[l->n], &match);
            }
            if (rv == 0 && match) {
                l->n++;
            }
        }
        rocksdb_iter_next(it);
    }
    rocksdb_iter_get_error(it, &err);
    if (err != NULL) {
        rocksdb_free(err);
        rv = rv != 0 ? rv : CAIRN_EIO;
    }
    rocksdb_iter_destroy(it);
    return rv;
}

/* True if a string could be an id (1..STORE_ID_MAX bytes). */
static bool id_possible(const char *s)
{
    size_t len = strnlen(s, STORE_ID_MAX + 1);
    return len >= 1 && len <= STORE_ID_MAX;
}

int store_object_query(struct store *s, const struct store_query *q, struct store_list *out)
{
    struct store_list l = {0};
    struct store_read rd;
    struct scan sc;
    int rv;

    if (q == NULL || store_kind_name(q->kind) == NULL ||
        (q->parent_kind != 0 &&
         (store_kind_name(q->parent_kind) == NULL || q->parent_id == NULL)) ||
        (q->parent_kind == 0 && q->parent_id != NULL)) {
        return CAIRN_EINVAL;
    }
    memset(&sc, 0, sizeof sc);
    sc.q = q;
    sc.s = s;
    sc.rd = &rd;
    if (q->parent_kind != 0) {
        sc.cf = STORE_CF_CHILDREN;
    } else if (q->tenant != NULL) {
        sc.cf = STORE_CF_SCOPED;
    } else {
        sc.cf = STORE_CF_OBJECTS;
    }
    if ((q->parent_id != NULL && !id_possible(q->parent_id)) ||
        (q->tenant != NULL && !id_possible(q->tenant))) {
        /* No object can have such a parent or tenant: an empty page. */
        l.revision = store_revision(s);
        *out = l;
        return 0;
    }
    if (sc.cf == STORE_CF_CHILDREN) {
        sc.prefix_len = store_key_children_prefix(q->parent_kind, q->parent_id,
                                                  strlen(q->parent_id), sc.prefix);
        sc.prefix[sc.prefix_len++] = (char)q->kind;
    } else if (sc.cf == STORE_CF_SCOPED) {
        sc.prefix_len = store_key_scoped_prefix(q->kind, q->tenant, strlen(q->tenant), sc.prefix);
    } else {
        sc.prefix[0] = (char)q->kind;
        sc.prefix_len = 1;
    }
    rv = store_read_lock(s);
    if (rv != 0) {
        return rv;
    }
    store_read_begin(s, &rd);
    rv = scan_read(&sc, q->limit, &l);
    store_read_end(s, &rd);
    pthread_rwlock_unlock(&s->lock);
    if (rv != 0) {
        store_list_release(&l);
        return rv;
    }
    *out = l;
    return 0;
}

int store_count(struct store *s, const char *tenant, enum store_kind kind, uint64_t *n)
{
    char key[STORE_KEY_COUNT_MAX];
    size_t key_len;
    char *val;
    size_t val_len;
    int rv;

    if (tenant == NULL || store_kind_name(kind) == NULL) {
        return CAIRN_EINVAL;
    }
    if (!id_possible(tenant)) {
        *n = 0;
        return 0;
    }
    key_len = store_key_count(tenant, strlen(tenant), kind, key);
    rv = store_read_lock(s);
    if (rv != 0) {
        return rv;
    }
    rv = store_db_get(&s->db, NULL, STORE_CF_COUNTS, key, key_len, &val, &val_len, NULL, 0);
    pthread_rwlock_unlock(&s->lock);
    if (rv == CAIRN_ENOTFOUND) {
        *n = 0;
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    rv = val_len == 8 ? 0 : CAIRN_ECORRUPT;
    if (rv == 0) {
        *n = store_be64_get((const unsigned char *)val);
    }
    rocksdb_free(val);
    return rv;
}

int store_object_foreach(struct store *s, enum store_kind kind,
                         int (*cb)(const struct store_object *o, void *arg), void *arg,
                         uint64_t *revision)
{
    char after[STORE_ID_MAX + 1] = "";
    bool first = true;
    for (;;) {
        struct store_list list;
        bool more;
        int rv = store_object_list(s, kind, after[0] != '\0' ? after : NULL, 500, &list);
        if (rv != 0) {
            return rv;
        }
        if (first && revision != NULL) {
            *revision = list.revision;
        }
        first = false;
        for (size_t i = 0; i < list.n && rv == 0; i++) {
            snprintf(after, sizeof after, "%s", list.items[i].id);
            rv = cb(&list.items[i], arg);
        }
        more = list.more;
        store_list_release(&list);
        if (rv != 0 || !more) {
            return rv;
        }
    }
}
