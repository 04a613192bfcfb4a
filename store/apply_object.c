/*
 * The operations of apply on one object: CREATE, UPDATE, DELETE and PUT,
 * with everything that hangs on an object: its unique name, its entries in
 * the tenant ("scoped", "counts"), parent ("children") and "expiry"
 * indexes, its change record, the checks that its tenant, parent and refs
 * exist and that its tenant's quota allows one more, and the removal of a
 * whole subtree (cascade delete, expiry).
 *
 * The life of an object, as apply enforces it:
 *   1. absent -> live: CREATE, or PUT of an absent id (op_create). Needs
 *      its tenant, parent and refs live and room in the tenant's quota;
 *      writes the object, its name, its index entries, its count and its
 *      change record (object_put).
 *   2. live -> live: UPDATE, or PUT of a live id (op_replace). Its tenant
 *      and parent are fixed at 1; name, body, expiry and limits change.
 *   3. live -> absent: DELETE (op_delete). Refused while the object has
 *      children, unless the command cascades; then remove_tree removes the
 *      descendants first, deepest first, each with its own change record.
 *   4. live -> expired: time passes (nothing is written). From then on
 *      apply treats the object as absent (load_live), readers skip it in
 *      queries.
 *   5. expired -> absent: store_apply_prune_expired (apply_prune.c), or a
 *      CREATE/PUT of the same id (op_create) or of another object taking
 *      its name (name_check), each through remove_tree, with descendants.
 * Every step writes through the entry's indexed batch; a failed step is
 * rolled back by the caller (apply.c), so a check may write first (remove
 * an expired object) and fail afterwards.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Direct children counted for the message of a refused delete. */
#define CHILDREN_COUNTED_MAX 1000

/* Checks what keys are built from: lengths that decode_command would not
 * let in mean the value was not written by this code. */
static bool value_sane(const struct store_value *v)
{
    return v->name_len <= STORE_NAME_MAX &&
           (v->tenant == NULL || (v->tenant_len >= 1 && v->tenant_len <= STORE_ID_MAX &&
                                  memchr(v->tenant, '\0', v->tenant_len) == NULL)) &&
           (v->parent_id == NULL || (v->parent_id_len >= 1 && v->parent_id_len <= STORE_ID_MAX &&
                                     memchr(v->parent_id, '\0', v->parent_id_len) == NULL));
}

int store_apply_load(struct store_apply *a, enum store_kind kind, const char *id, size_t id_len,
                     struct store_loaded *o)
{
    char key[1 + STORE_ID_MAX];
    size_t len;
    int rv;

    rv = store_apply_get(a, STORE_CF_OBJECTS, key, store_key_object(kind, id, id_len, key), &o->raw,
                         &len);
    if (rv != 0) {
        return rv;
    }
    if (store_value_decode(o->raw, len, &o->val) != 0 || !value_sane(&o->val)) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "%s %.*s: stored value is corrupt",
                         store_kind_name(kind), (int)id_len, id);
        rocksdb_free(o->raw);
        return CAIRN_ECORRUPT;
    }
    return 0;
}

void store_apply_unload(struct store_loaded *o)
{
    rocksdb_free(o->raw);
    o->raw = NULL;
}

/* Sets *live if kind/id exists and has not expired at the command's time;
 * then, with o set, leaves it loaded there. */
static int load_live(struct store_apply *a, enum store_kind kind, const char *id, size_t id_len,
                     struct store_loaded *o, bool *live)
{
    struct store_loaded tmp;
    int rv = store_apply_load(a, kind, id, id_len, &tmp);
    *live = false;
    if (rv == CAIRN_ENOTFOUND) {
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    *live = !store_value_expired(&tmp.val, a->cmd->time_ms);
    if (*live && o != NULL) {
        *o = tmp;
    } else {
        store_apply_unload(&tmp);
    }
    return 0;
}

/* Fails the command with CAIRN_ENOTFOUND unless kind/id is live. */
static int require(struct store_apply *a, enum store_kind kind, const char *id)
{
    bool live;
    int rv = load_live(a, kind, id, strlen(id), NULL, &live);
    if (rv == 0 && !live) {
        store_apply_fail(a, CAIRN_ENOTFOUND, "%s %s does not exist", store_kind_name(kind), id);
    }
    return rv;
}

/* Moves counts[tenant, kind] one up or down; a count is removed at 0. */
static int count_move(struct store_apply *a, const char *tenant, size_t tenant_len,
                      enum store_kind kind, bool up)
{
    char key[STORE_KEY_COUNT_MAX];
    size_t key_len = store_key_count(tenant, tenant_len, kind, key);
    unsigned char val[8];
    uint64_t n = 0;
    char *raw;
    size_t len;
    int rv;

    rv = store_apply_get(a, STORE_CF_COUNTS, key, key_len, &raw, &len);
    if (rv == 0) {
        if (len == 8) {
            n = store_be64_get((const unsigned char *)raw);
        }
        rocksdb_free(raw);
        if (len != 8) {
            rv = CAIRN_ECORRUPT;
        }
    } else if (rv == CAIRN_ENOTFOUND) {
        rv = 0;
    }
    if (rv == 0 && !up && n == 0) {
        rv = CAIRN_ECORRUPT;
    }
    if (rv != 0) {
        if (rv == CAIRN_ECORRUPT) {
            cairn_errmsg_set(a->errmsg, a->errmsg_size, "count of %ss in tenant %.*s is corrupt",
                             store_kind_name(kind), (int)tenant_len, tenant);
        }
        return rv;
    }
    n = up ? n + 1 : n - 1;
    if (n == 0) {
        store_apply_del(a, STORE_CF_COUNTS, key, key_len);
    } else {
        store_be64_put(n, val);
        store_apply_put(a, STORE_CF_COUNTS, key, key_len, val, sizeof val);
    }
    return 0;
}

/* Adds (add) or removes the index entries of an object: scoped and its
 * count, its entry under its parent, its expiry. */
static int index_update(struct store_apply *a, enum store_kind kind, const char *id, size_t id_len,
                        const struct store_value *v, bool add)
{
    char key[STORE_KEY_CHILD_MAX];
    size_t key_len;
    int rv = 0;

    if (v->tenant != NULL) {
        key_len = store_key_scoped(kind, v->tenant, v->tenant_len, id, id_len, key);
        if (add) {
            store_apply_put(a, STORE_CF_SCOPED, key, key_len, "", 0);
        } else {
            store_apply_del(a, STORE_CF_SCOPED, key, key_len);
        }
        rv = count_move(a, v->tenant, v->tenant_len, kind, add);
    }
    if (rv == 0 && v->parent_id != NULL) {
        key_len =
            store_key_child(v->parent_kind, v->parent_id, v->parent_id_len, kind, id, id_len, key);
        if (add) {
            store_apply_put(a, STORE_CF_CHILDREN, key, key_len, "", 0);
        } else {
            store_apply_del(a, STORE_CF_CHILDREN, key, key_len);
        }
    }
    if (rv == 0 && v->expires_ms != 0) {
        key_len = store_key_expiry(v->expires_ms, kind, id, id_len, key);
        if (add) {
            store_apply_put(a, STORE_CF_EXPIRY, key, key_len, "", 0);
        } else {
            store_apply_del(a, STORE_CF_EXPIRY, key, key_len);
        }
    }
    return rv;
}

/* Removes one object: its value, name, index entries, count; appends its
 * delete record (which keeps its tenant and parent). */
static int object_remove(struct store_apply *a, enum store_kind kind, const char *id, size_t id_len,
                         const struct store_value *v)
{
    char key[1 + STORE_ID_MAX];
    struct store_value gone = {0};
    msgpack_sbuffer sb;
    int rv;

    if (v->name != NULL) {
        store_apply_del(a, STORE_CF_NAMES, key, store_key_name(kind, v->name, v->name_len, key));
    }
    store_apply_del(a, STORE_CF_OBJECTS, key, store_key_object(kind, id, id_len, key));
    rv = index_update(a, kind, id, id_len, v, false);
    if (rv != 0) {
        return rv;
    }
    gone.create_rev = v->create_rev;
    gone.mod_rev = store_apply_revision(a);
    gone.body = "";
    gone.tenant = v->tenant;
    gone.tenant_len = v->tenant_len;
    gone.parent_kind = v->parent_kind;
    gone.parent_id = v->parent_id;
    gone.parent_id_len = v->parent_id_len;
    msgpack_sbuffer_init(&sb);
    rv = store_value_encode(&gone, &sb);
    if (rv == 0) {
        rv = store_apply_change(a, kind, id, id_len, true, sb.data, sb.size);
    } else {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "encode change: out of memory");
    }
    msgpack_sbuffer_destroy(&sb);
    return rv;
}

/* A subtree's objects, collected before anything is removed. */
struct node {
    enum store_kind kind;
    char *id; /* malloc'ed, not NUL-terminated */
    size_t id_len;
};

struct nodes {
    struct node *v;
    size_t n;
    size_t cap;
};

static void nodes_free(struct nodes *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].id);
    }
    free(l->v);
}

/* Appends a node, taking id over (freeing it on failure). */
static int nodes_push(struct nodes *l, enum store_kind kind, char *id, size_t id_len)
{
    if (id == NULL) {
        return CAIRN_ENOMEM;
    }
    if (l->n == l->cap) {
        size_t want = l->cap == 0 ? 16 : l->cap * 2;
        struct node *v = realloc(l->v, want * sizeof *v);
        if (v == NULL) {
            free(id);
            return CAIRN_ENOMEM;
        }
        l->v = v;
        l->cap = want;
    }
    l->v[l->n].kind = kind;
    l->v[l->n].id = id;
    l->v[l->n].id_len = id_len;
    l->n++;
    return 0;
}

/* Pushes the children of parent onto stack in key order, counting them in
 * *total; stops with *too_many once *total would pass max. */
static int push_children(struct store_apply *a, rocksdb_iterator_t *it, const struct node *parent,
                         struct nodes *stack, size_t *total, size_t max, bool *too_many)
{
    char prefix[STORE_KEY_CHILD_MAX];
    size_t prefix_len = store_key_children_prefix(parent->kind, parent->id, parent->id_len, prefix);
    int rv = 0;

    for (rocksdb_iter_seek(it, prefix, prefix_len); rv == 0 && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t key_len;
        const char *key = rocksdb_iter_key(it, &key_len);
        size_t id_len;
        if (key_len < prefix_len || memcmp(key, prefix, prefix_len) != 0) {
            break;
        }
        id_len = key_len - prefix_len - (key_len > prefix_len);
        if (id_len == 0 || id_len > STORE_ID_MAX ||
            store_kind_name((unsigned char)key[prefix_len]) == NULL) {
            cairn_errmsg_set(a->errmsg, a->errmsg_size, "children key of %zu bytes is corrupt",
                             key_len);
            return CAIRN_ECORRUPT;
        }
        if (*total == max) {
            *too_many = true;
            return 0;
        }
        rv = nodes_push(stack, (enum store_kind)(unsigned char)key[prefix_len],
                        store_strndup(key + prefix_len + 1, id_len), id_len);
        (*total)++;
    }
    if (rv == CAIRN_ENOMEM) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "collect children: out of memory");
        return rv;
    }
    return rv != 0 ? rv : store_apply_iter_check(a, it);
}

/* Removes one collected node; a child index entry without its object is
 * corruption. */
static int node_remove(struct store_apply *a, const struct node *n)
{
    struct store_loaded o;
    int rv = store_apply_load(a, n->kind, n->id, n->id_len, &o);
    if (rv == CAIRN_ENOTFOUND) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "%s %.*s: indexed as a child but missing",
                         store_kind_name(n->kind), (int)n->id_len, n->id);
        return CAIRN_ECORRUPT;
    }
    if (rv != 0) {
        return rv;
    }
    rv = object_remove(a, n->kind, n->id, n->id_len, &o.val);
    store_apply_unload(&o);
    return rv;
}

/*
 * Collects the subtree with an explicit stack (no recursion, whatever its
 * depth): popping gives the objects parents first with siblings in reverse
 * order, so removing them in reverse of that order removes every child
 * before its parent, and siblings in id order. The collection reads
 * through the batch (with one iterator, and no write while it lives), so
 * what this entry already removed is not removed twice.
 */
int store_apply_remove_tree(struct store_apply *a, enum store_kind kind, const char *id,
                            size_t id_len, size_t max, bool *too_many, size_t *removed)
{
    struct nodes stack = {0};
    struct nodes order = {0};
    rocksdb_iterator_t *it;
    size_t total = 1;
    int rv;

    *too_many = max == 0;
    *removed = 0;
    if (*too_many) {
        return 0;
    }
    rv = nodes_push(&stack, kind, store_strndup(id, id_len), id_len);
    it = store_apply_iter(a, STORE_CF_CHILDREN);
    while (rv == 0 && !*too_many && stack.n > 0) {
        struct node top = stack.v[--stack.n];
        rv = nodes_push(&order, top.kind, top.id, top.id_len);
        if (rv == 0) {
            rv = push_children(a, it, &order.v[order.n - 1], &stack, &total, max, too_many);
        }
    }
    rocksdb_iter_destroy(it);
    if (rv == CAIRN_ENOMEM) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "collect subtree: out of memory");
    }
    if (rv == 0 && !*too_many) {
        for (size_t i = order.n; rv == 0 && i-- > 0;) {
            rv = node_remove(a, &order.v[i]);
        }
        if (rv == 0) {
            *removed = order.n;
        }
    }
    nodes_free(&stack);
    nodes_free(&order);
    return rv;
}

/* Removes an expired object that is in the way of the command (its id or
 * its name), with its subtree. */
static int remove_expired(struct store_apply *a, enum store_kind kind, const char *id,
                          size_t id_len)
{
    bool too_many;
    size_t removed;
    int rv = store_apply_remove_tree(a, kind, id, id_len, a->s->cascade_max, &too_many, &removed);
    if (rv == 0 && too_many) {
        store_apply_fail(a, CAIRN_ETOOBIG,
                         "expired %s %.*s has more than %zu objects under it to remove first",
                         store_kind_name(kind), (int)id_len, id, a->s->cascade_max);
    }
    return rv;
}

/* Fails the command with CAIRN_EEXIST if its name belongs to another live
 * object; an expired owner is removed. Storage failures only in rv. */
static int name_check(struct store_apply *a)
{
    char key[1 + STORE_NAME_MAX];
    const char *name = a->cmd->name;
    struct store_loaded o;
    bool live;
    char *owner;
    size_t owner_len;
    int rv;

    if (name == NULL) {
        return 0;
    }
    rv = store_apply_get(a, STORE_CF_NAMES, key,
                         store_key_name(a->cmd->kind, name, strlen(name), key), &owner, &owner_len);
    if (rv == CAIRN_ENOTFOUND) {
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (owner_len == strlen(a->cmd->id) && memcmp(owner, a->cmd->id, owner_len) == 0) {
        rocksdb_free(owner);
        return 0;
    }
    if (owner_len == 0 || owner_len > STORE_ID_MAX) {
        rv = CAIRN_ECORRUPT;
    } else {
        rv = load_live(a, a->cmd->kind, owner, owner_len, &o, &live);
    }
    if (rv == 0 && live) {
        store_apply_fail(a, CAIRN_EEXIST, "name \"%s\" is taken by %s %.*s", name, a->kind,
                         (int)owner_len, owner);
        store_apply_unload(&o);
    } else if (rv == 0) {
        rv = remove_expired(a, a->cmd->kind, owner, owner_len);
    }
    if (rv == CAIRN_ECORRUPT || rv == CAIRN_ENOTFOUND) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "name \"%s\" is indexed for a missing %s", name,
                         a->kind);
        rv = CAIRN_ECORRUPT;
    }
    rocksdb_free(owner);
    return rv;
}

static void name_put(struct store_apply *a)
{
    char key[1 + STORE_NAME_MAX];
    size_t key_len = store_key_name(a->cmd->kind, a->cmd->name, strlen(a->cmd->name), key);
    store_apply_put(a, STORE_CF_NAMES, key, key_len, a->cmd->id, strlen(a->cmd->id));
}

/* Writes the command's object at this entry's revision: created (old NULL)
 * or replacing old, whose tenant and parent it keeps. A version 1 command
 * also keeps old's expiry and limits; a version 2 command sets both. */
static int object_put(struct store_apply *a, const struct store_loaded *old)
{
    const struct store_command *cmd = a->cmd;
    size_t id_len = strlen(cmd->id);
    char key[STORE_KEY_EXPIRY_MAX];
    struct store_value v = {0};
    msgpack_sbuffer sb;
    int rv;

    v.mod_rev = store_apply_revision(a);
    v.create_rev = old != NULL ? old->val.create_rev : v.mod_rev;
    v.name = cmd->name;
    v.name_len = cmd->name != NULL ? strlen(cmd->name) : 0;
    v.body = cmd->body != NULL ? cmd->body : "";
    v.body_len = cmd->body != NULL ? cmd->body_len : 0;
    if (old != NULL) {
        v.tenant = old->val.tenant;
        v.tenant_len = old->val.tenant_len;
        v.parent_kind = old->val.parent_kind;
        v.parent_id = old->val.parent_id;
        v.parent_id_len = old->val.parent_id_len;
    } else {
        v.tenant = cmd->tenant;
        v.tenant_len = cmd->tenant != NULL ? strlen(cmd->tenant) : 0;
        v.parent_kind = cmd->parent_kind;
        v.parent_id = cmd->parent_id;
        v.parent_id_len = cmd->parent_id != NULL ? strlen(cmd->parent_id) : 0;
    }
    if (cmd->version >= 2) {
        v.expires_ms = cmd->expires_ms;
        v.n_limits = cmd->n_limits;
        memcpy(v.limits, cmd->limits, cmd->n_limits * sizeof v.limits[0]);
    } else if (old != NULL) {
        v.expires_ms = old->val.expires_ms;
        v.n_limits = old->val.n_limits;
        memcpy(v.limits, old->val.limits, sizeof v.limits);
    }
    if (old == NULL) {
        rv = index_update(a, cmd->kind, cmd->id, id_len, &v, true);
    } else {
        rv = 0;
        if (old->val.expires_ms != v.expires_ms && old->val.expires_ms != 0) {
            store_apply_del(a, STORE_CF_EXPIRY, key,
                            store_key_expiry(old->val.expires_ms, cmd->kind, cmd->id, id_len, key));
        }
        if (old->val.expires_ms != v.expires_ms && v.expires_ms != 0) {
            store_apply_put(a, STORE_CF_EXPIRY, key,
                            store_key_expiry(v.expires_ms, cmd->kind, cmd->id, id_len, key), "", 0);
        }
    }
    if (rv != 0) {
        return rv;
    }
    msgpack_sbuffer_init(&sb);
    rv = store_value_encode(&v, &sb);
    if (rv != 0) {
        cairn_errmsg_set(a->errmsg, a->errmsg_size, "encode %s %s: out of memory", a->kind,
                         cmd->id);
    } else {
        store_apply_put(a, STORE_CF_OBJECTS, key, store_key_object(cmd->kind, cmd->id, id_len, key),
                        sb.data, sb.size);
        rv = store_apply_change(a, cmd->kind, cmd->id, id_len, false, sb.data, sb.size);
        a->res->create_rev = v.create_rev;
        a->res->mod_rev = v.mod_rev;
    }
    msgpack_sbuffer_destroy(&sb);
    return rv;
}

static bool if_match_ok(struct store_apply *a, const struct store_loaded *o)
{
    if (a->cmd->if_match == 0 || a->cmd->if_match == o->val.mod_rev) {
        return true;
    }
    store_apply_fail(a, CAIRN_EPRECONDITION,
                     "%s %s: If-Match revision %" PRIu64
                     " does not match current revision %" PRIu64,
                     a->kind, a->cmd->id, a->cmd->if_match, o->val.mod_rev);
    return false;
}

static bool same(const char *stored, size_t stored_len, const char *s)
{
    if (stored == NULL || s == NULL) {
        return stored == NULL && s == NULL;
    }
    return stored_len == strlen(s) && memcmp(stored, s, stored_len) == 0;
}

/* Fails the command unless each of its refs is live. */
static int refs_check(struct store_apply *a)
{
    int rv = 0;
    for (size_t i = 0; rv == 0 && a->res->status == 0 && i < a->cmd->n_refs; i++) {
        rv = require(a, a->cmd->refs[i].kind, a->cmd->refs[i].id);
    }
    return rv;
}

/* Fails the command with CAIRN_ECONFLICT if its tenant is full for its
 * kind. The tenant was checked live. */
static int quota_check(struct store_apply *a)
{
    const char *tenant = a->cmd->tenant;
    struct store_loaded t;
    const struct store_limit *limit = NULL;
    char key[STORE_KEY_COUNT_MAX];
    uint64_t n = 0;
    char *raw;
    size_t len;
    int rv;

    rv = store_apply_load(a, STORE_KIND_TENANT, tenant, strlen(tenant), &t);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < t.val.n_limits; i++) {
        if (t.val.limits[i].kind == a->cmd->kind) {
            limit = &t.val.limits[i];
        }
    }
    if (limit != NULL) {
        rv =
            store_apply_get(a, STORE_CF_COUNTS, key,
                            store_key_count(tenant, strlen(tenant), a->cmd->kind, key), &raw, &len);
        if (rv == 0) {
            n = len == 8 ? store_be64_get((const unsigned char *)raw) : 0;
            rocksdb_free(raw);
        } else if (rv == CAIRN_ENOTFOUND) {
            rv = 0;
        }
        if (rv == 0 && n >= limit->max) {
            store_apply_fail(a, CAIRN_ECONFLICT,
                             "quota exceeded: tenant %s allows at most %" PRIu64 " %ss", tenant,
                             limit->max, a->kind);
        }
    }
    store_apply_unload(&t);
    return rv;
}

/* CREATE, and PUT of an id that is not live; expired is the expired object
 * of that id, or NULL. */
static int op_create(struct store_apply *a, bool expired)
{
    const struct store_command *cmd = a->cmd;
    int rv = 0;

    if (expired) {
        rv = remove_expired(a, cmd->kind, cmd->id, strlen(cmd->id));
    }
    if (rv == 0 && a->res->status == 0 && cmd->tenant != NULL) {
        rv = require(a, STORE_KIND_TENANT, cmd->tenant);
    }
    if (rv == 0 && a->res->status == 0 && cmd->parent_id != NULL) {
        rv = require(a, cmd->parent_kind, cmd->parent_id);
    }
    if (rv == 0 && a->res->status == 0) {
        rv = refs_check(a);
    }
    if (rv == 0 && a->res->status == 0 && cmd->tenant != NULL) {
        rv = quota_check(a);
    }
    if (rv == 0 && a->res->status == 0) {
        rv = name_check(a);
    }
    if (rv != 0 || a->res->status != 0) {
        return rv;
    }
    if (cmd->name != NULL) {
        name_put(a);
    }
    return object_put(a, NULL);
}

/* UPDATE, and PUT of a live object: replaces name, body, expiry and (for a
 * tenant) limits; its tenant and parent stay. */
static int op_replace(struct store_apply *a, const struct store_loaded *o)
{
    const struct store_command *cmd = a->cmd;
    const struct store_value *v = &o->val;
    int rv;

    if (!if_match_ok(a, o)) {
        return 0;
    }
    if (cmd->tenant != NULL && !same(v->tenant, v->tenant_len, cmd->tenant)) {
        store_apply_fail(a, CAIRN_ECONFLICT,
                         "cannot move %s %s to tenant %s: an object's tenant is fixed when it is "
                         "created",
                         a->kind, cmd->id, cmd->tenant);
        return 0;
    }
    if (cmd->parent_id != NULL && (cmd->parent_kind != v->parent_kind ||
                                   !same(v->parent_id, v->parent_id_len, cmd->parent_id))) {
        store_apply_fail(a, CAIRN_ECONFLICT,
                         "cannot move %s %s under %s %s: an object's parent is fixed when it is "
                         "created",
                         a->kind, cmd->id, store_kind_name(cmd->parent_kind), cmd->parent_id);
        return 0;
    }
    rv = refs_check(a);
    if (rv != 0 || a->res->status != 0) {
        return rv;
    }
    if (!same(v->name, v->name_len, cmd->name)) {
        rv = name_check(a);
        if (rv != 0 || a->res->status != 0) {
            return rv;
        }
        if (v->name != NULL) {
            char key[1 + STORE_NAME_MAX];
            store_apply_del(a, STORE_CF_NAMES, key,
                            store_key_name(cmd->kind, v->name, v->name_len, key));
        }
        if (cmd->name != NULL) {
            name_put(a);
        }
    }
    return object_put(a, o);
}

/* Fails a delete without cascade if the object has children, naming how
 * many and of which kinds. */
static int children_check(struct store_apply *a)
{
    const struct store_command *cmd = a->cmd;
    char prefix[STORE_KEY_CHILD_MAX];
    size_t prefix_len = store_key_children_prefix(cmd->kind, cmd->id, strlen(cmd->id), prefix);
    char kinds[128] = "";
    size_t kinds_len = 0;
    enum store_kind last = 0;
    size_t n = 0;
    rocksdb_iterator_t *it = store_apply_iter(a, STORE_CF_CHILDREN);
    int rv;

    for (rocksdb_iter_seek(it, prefix, prefix_len);
         rocksdb_iter_valid(it) && n < CHILDREN_COUNTED_MAX; rocksdb_iter_next(it)) {
        size_t key_len;
        const char *key = rocksdb_iter_key(it, &key_len);
        enum store_kind kind;
        if (key_len <= prefix_len || memcmp(key, prefix, prefix_len) != 0) {
            break;
        }
        n++;
        /* Keys are sorted by kind: each kind's run starts once. */
        kind = (enum store_kind)(unsigned char)key[prefix_len];
        if (kind != last && store_kind_name(kind) != NULL && kinds_len < sizeof kinds) {
            int w = snprintf(kinds + kinds_len, sizeof kinds - kinds_len, "%s%s%s",
                             kinds_len > 0 ? ", " : "", store_kind_name(kind), "s");
            kinds_len += w > 0 ? (size_t)w : 0;
            last = kind;
        }
    }
    rv = store_apply_iter_check(a, it);
    rocksdb_iter_destroy(it);
    if (rv == 0 && n > 0) {
        store_apply_fail(a, CAIRN_ECONFLICT,
                         "%s %s has %s%zu %s (%s); delete them first or ask for a cascade", a->kind,
                         cmd->id, n == CHILDREN_COUNTED_MAX ? "at least " : "", n,
                         n == 1 ? "child" : "children", kinds);
    }
    return rv;
}

static int op_delete(struct store_apply *a, const struct store_loaded *o)
{
    bool too_many;
    size_t removed;
    int rv;

    if (!if_match_ok(a, o)) {
        return 0;
    }
    if (!a->cmd->cascade) {
        rv = children_check(a);
        if (rv != 0 || a->res->status != 0) {
            return rv;
        }
    }
    rv = store_apply_remove_tree(a, a->cmd->kind, a->cmd->id, strlen(a->cmd->id), a->s->cascade_max,
                                 &too_many, &removed);
    if (rv != 0) {
        return rv;
    }
    if (too_many) {
        store_apply_fail(a, CAIRN_ETOOBIG,
                         "deleting %s %s would delete more than %zu objects; delete part of what "
                         "is under it first",
                         a->kind, a->cmd->id, a->s->cascade_max);
        return 0;
    }
    a->res->create_rev = 0;
    a->res->mod_rev = a->revision;
    return 0;
}

int store_apply_op(struct store_apply *a)
{
    const struct store_command *cmd = a->cmd;
    struct store_loaded o;
    bool exists;
    bool live;
    int rv;

    rv = store_apply_load(a, cmd->kind, cmd->id, strlen(cmd->id), &o);
    if (rv != 0 && rv != CAIRN_ENOTFOUND) {
        return rv;
    }
    exists = rv == 0;
    live = exists && !store_value_expired(&o.val, cmd->time_ms);
    if (live && o.val.tenant != NULL) {
        snprintf(a->scope, sizeof a->scope, "%.*s", (int)o.val.tenant_len, o.val.tenant);
    }
    rv = 0;
    switch (cmd->op) {
        case STORE_OP_CREATE:
            if (live) {
                store_apply_fail(a, CAIRN_EEXIST, "%s %s already exists", a->kind, cmd->id);
            } else {
                rv = op_create(a, exists);
            }
            break;
        case STORE_OP_UPDATE:
        case STORE_OP_DELETE:
            if (!live) {
                store_apply_fail(a, CAIRN_ENOTFOUND, "%s %s not found", a->kind, cmd->id);
            } else if (cmd->op == STORE_OP_UPDATE) {
                rv = op_replace(a, &o);
            } else {
                rv = op_delete(a, &o);
            }
            break;
        case STORE_OP_PUT:
            /* If-Match guards a replacement only: a PUT that creates has
             * nothing to compare it with. */
            rv = live ? op_replace(a, &o) : op_create(a, exists);
            break;
        case STORE_OP_AUDIT:
            break; /* apply.c records it; nothing changes */
    }
    if (exists) {
        store_apply_unload(&o);
    }
    return rv;
}
