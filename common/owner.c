/*
 * This node's ownership view: the applied epoch's ring, the lease, the
 * handoff counters and the watchers (see owner.h for the rules).
 */
#include "owner.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"

struct watcher {
    owner_change_cb cb;
    void *arg;
};

struct owner {
    uint64_t self;
    uint64_t lease_ms;
    pthread_mutex_t mu;
    struct ring ring;     /* live members of the applied epoch */
    uint64_t epoch;       /* applied epoch */
    uint64_t lease_until; /* cairn_now_ms; 0: never leased */
    bool lapse_counted;   /* the current expiry was counted */
    uint64_t epoch_changes;
    uint64_t handoffs_in;
    uint64_t handoffs_out;
    uint64_t lease_lapses;
    struct watcher watchers[OWNER_MAX_WATCHERS];
    size_t n_watchers;
};

int owner_create(uint64_t self_id, uint64_t lease_ms, struct owner **out)
{
    struct owner *o = calloc(1, sizeof *o);
    if (o == NULL) {
        return CAIRN_ENOMEM;
    }
    o->self = self_id;
    o->lease_ms = lease_ms;
    pthread_mutex_init(&o->mu, NULL);
    *out = o;
    return 0;
}

void owner_destroy(struct owner *o)
{
    if (o == NULL) {
        return;
    }
    pthread_mutex_destroy(&o->mu);
    free(o);
}

void owner_update(struct owner *o, const struct ring_state *s, uint64_t gained, uint64_t lost)
{
    struct watcher w[OWNER_MAX_WATCHERS];
    struct ring r;
    uint64_t old;
    size_t n;

    if (ring_state_live(s, &r) != 0) {
        return; /* ring_state_parse bounds the lists: cannot happen */
    }
    pthread_mutex_lock(&o->mu);
    old = o->epoch;
    if (s->epoch == old) {
        pthread_mutex_unlock(&o->mu);
        return;
    }
    o->ring = r;
    o->epoch = s->epoch;
    o->epoch_changes++;
    o->handoffs_in += gained;
    o->handoffs_out += lost;
    n = o->n_watchers;
    memcpy(w, o->watchers, n * sizeof w[0]);
    pthread_mutex_unlock(&o->mu);
    for (size_t i = 0; i < n; i++) {
        w[i].cb(w[i].arg, old, s->epoch);
    }
}

void owner_lease_extend(struct owner *o, uint64_t started_ms)
{
    pthread_mutex_lock(&o->mu);
    if (started_ms + o->lease_ms > o->lease_until) {
        o->lease_until = started_ms + o->lease_ms;
        o->lapse_counted = false;
    }
    pthread_mutex_unlock(&o->mu);
}

/* Called with mu held. */
static bool leased(struct owner *o, uint64_t now_ms)
{
    if (now_ms < o->lease_until) {
        return true;
    }
    if (o->lease_until != 0 && !o->lapse_counted) {
        o->lapse_counted = true;
        o->lease_lapses++;
    }
    return false;
}

bool owner_lease_check(struct owner *o, uint64_t now_ms)
{
    bool ok;
    pthread_mutex_lock(&o->mu);
    ok = leased(o, now_ms);
    pthread_mutex_unlock(&o->mu);
    return ok;
}

bool owner_owns(struct owner *o, const char *device_id, uint64_t *epoch)
{
    bool owns;
    pthread_mutex_lock(&o->mu);
    owns =
        leased(o, cairn_now_ms()) && o->epoch != 0 && ring_owner_of(&o->ring, device_id) == o->self;
    if (owns && epoch != NULL) {
        *epoch = o->epoch;
    }
    pthread_mutex_unlock(&o->mu);
    return owns;
}

bool owner_epoch_current(struct owner *o, uint64_t epoch)
{
    bool ok;
    pthread_mutex_lock(&o->mu);
    ok = leased(o, cairn_now_ms()) && epoch != 0 && epoch == o->epoch;
    pthread_mutex_unlock(&o->mu);
    return ok;
}

int owner_watch(struct owner *o, owner_change_cb cb, void *arg)
{
    int rv = CAIRN_EBUSY;
    pthread_mutex_lock(&o->mu);
    if (o->n_watchers < OWNER_MAX_WATCHERS) {
        o->watchers[o->n_watchers].cb = cb;
        o->watchers[o->n_watchers].arg = arg;
        o->n_watchers++;
        rv = 0;
    }
    pthread_mutex_unlock(&o->mu);
    return rv;
}

void owner_stats(struct owner *o, struct owner_stats *out)
{
    uint64_t now = cairn_now_ms();
    pthread_mutex_lock(&o->mu);
    out->epoch = o->epoch;
    out->leased = leased(o, now);
    out->lease_remaining_ms = out->leased ? o->lease_until - now : 0;
    out->lease_until_ms = o->lease_until;
    out->epoch_changes = o->epoch_changes;
    out->handoffs_in = o->handoffs_in;
    out->handoffs_out = o->handoffs_out;
    out->lease_lapses = o->lease_lapses;
    out->ring = o->ring;
    pthread_mutex_unlock(&o->mu);
}
