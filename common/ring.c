/*
 * Rendezvous hashing over the committed live members, and the committed
 * ownership record it is computed from (see ring.h for why rendezvous
 * hashing rather than virtual nodes).
 */
#include "ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cairn.h"

/* splitmix64's finalizer: a bijection on 64 bits with full avalanche. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t ring_hash64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h ^ len);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts ids[0..n) and drops duplicates; returns the new count. */
static size_t sort_unique(uint64_t *ids, size_t n)
{
    size_t out = 0;
    qsort(ids, n, sizeof *ids, cmp_u64);
    for (size_t i = 0; i < n; i++) {
        if (out == 0 || ids[out - 1] != ids[i]) {
            ids[out++] = ids[i];
        }
    }
    return out;
}

int ring_init(struct ring *r, const uint64_t *ids, size_t n)
{
    uint64_t tmp[RING_MAX_NODES];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == 0) {
            return CAIRN_EINVAL;
        }
        if (!ring_list_has(tmp, m, ids[i])) {
            if (m == RING_MAX_NODES) {
                return CAIRN_EINVAL;
            }
            tmp[m++] = ids[i];
        }
    }
    m = sort_unique(tmp, m);
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < m; i++) {
        r->nodes[i] = tmp[i];
        r->keys[i] = mix64(tmp[i] * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
    }
    r->n = m;
    return 0;
}

uint64_t ring_owner_of(const struct ring *r, const char *device_id)
{
    uint64_t h = ring_hash64(device_id, strlen(device_id));
    uint64_t best = 0, best_score = 0;
    for (size_t i = 0; i < r->n; i++) {
        uint64_t score = mix64(h ^ r->keys[i]);
        /* Ties (vanishingly rare) go to the lower id: nodes are ascending. */
        if (i == 0 || score > best_score) {
            best = r->nodes[i];
            best_score = score;
        }
    }
    return best;
}

bool ring_contains(const struct ring *r, uint64_t id)
{
    return ring_list_has(r->nodes, r->n, id);
}

bool ring_list_has(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

bool ring_list_equal(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* Reads the array of node ids doc[key] into ids (sorted, distinct). */
static int ids_parse(json_t *doc, const char *key, uint64_t *ids, size_t *n)
{
    json_t *arr = json_object_get(doc, key), *v;
    size_t i;
    if (!json_is_array(arr) || json_array_size(arr) > RING_MAX_NODES) {
        return CAIRN_EMALFORMED;
    }
    json_array_foreach(arr, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            return CAIRN_EMALFORMED;
        }
        ids[i] = (uint64_t)json_integer_value(v);
    }
    *n = sort_unique(ids, json_array_size(arr));
    return 0;
}

int ring_state_parse(const char *body, size_t len, struct ring_state *out)
{
    struct ring_state s;
    json_t *doc = json_loadb(body, len, 0, NULL);
    const char *reason;
    int rv;

    memset(&s, 0, sizeof s);
    rv = doc == NULL ? CAIRN_EMALFORMED : ids_parse(doc, "members", s.members, &s.n_members);
    if (rv == 0) {
        rv = ids_parse(doc, "down", s.down, &s.n_down);
    }
    if (rv == 0) {
        rv = ids_parse(doc, "previous", s.previous, &s.n_previous);
    }
    if (rv == 0) {
        s.changed_ms = (int64_t)json_integer_value(json_object_get(doc, "changed_ms"));
        reason = json_string_value(json_object_get(doc, "reason"));
        snprintf(s.reason, sizeof s.reason, "%s", reason != NULL ? reason : "");
        *out = s;
    }
    json_decref(doc);
    return rv;
}

static json_t *ids_json(const uint64_t *ids, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        if (json_array_append_new(arr, json_integer((json_int_t)ids[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

int ring_state_format(const struct ring_state *s, char **out)
{
    json_t *doc = json_pack(
        "{s:o, s:o, s:o, s:I, s:s}", "members", ids_json(s->members, s->n_members), "down",
        ids_json(s->down, s->n_down), "previous", ids_json(s->previous, s->n_previous),
        "changed_ms", (json_int_t)s->changed_ms, "reason", s->reason);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        return CAIRN_ENOMEM;
    }
    *out = text;
    return 0;
}

int ring_state_live(const struct ring_state *s, struct ring *out)
{
    uint64_t live[RING_MAX_NODES];
    size_t n = 0;
    for (size_t i = 0; i < s->n_members; i++) {
        if (!ring_list_has(s->down, s->n_down, s->members[i])) {
            live[n++] = s->members[i];
        }
    }
    return ring_init(out, live, n);
}

int ring_state_previous(const struct ring_state *s, struct ring *out)
{
    return ring_init(out, s->previous, s->n_previous);
}

bool ring_tally_add(struct ring_tally *t, const struct ring *cur, const struct ring *prev,
                    const char *device_id)
{
    uint64_t owner = ring_owner_of(cur, device_id);
    for (size_t i = 0; i < cur->n; i++) {
        if (cur->nodes[i] == owner) {
            t->owned[i]++;
        }
    }
    t->devices++;
    if (prev != NULL && ring_owner_of(prev, device_id) != owner) {
        t->moved++;
        return true;
    }
    return false;
}
