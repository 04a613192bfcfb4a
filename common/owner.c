/*
 * This node's ownership view: the applied epoch's ring, the lease, the
 * handoff counters and the watchers (see owner.h for the rules).
 */
#include "owner.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"

/* Epoch changes within one handoff wait that are tracked exactly. */
#define OWNER_MAX_SINCE 8

struct watcher {
    owner_change_cb cb;
    void *arg;
};

struct owner {
    uint64_t self;
    uint64_t lease_ms;
    uint64_t handoff_wait_ms; /* rule 5 */
    pthread_mutex_t mu;
    struct ring ring; /* live members of the applied epoch */
    /* Rule 5: while a wait is open, the rings that were in force since it
     * opened; a device is driven before the wait ends only by a node that
     * owned it in every one of them. n_since > OWNER_MAX_SINCE: too many
     * to track, nothing moved is driven until the wait ends. */
    struct ring since[OWNER_MAX_SINCE];
    size_t n_since;
    uint64_t settle_until; /* cairn_now_ms end of the wait (0: none open) */
    uint64_t epoch;        /* applied epoch */
    uint64_t lease_until;  /* cairn_now_ms; 0: never leased */
    bool lapse_counted;    /* the current expiry was counted */
    uint64_t epoch_changes;
    uint64_t handoffs_in;
    uint64_t handoffs_out;
    uint64_t lease_lapses;
    struct watcher watchers[OWNER_MAX_WATCHERS];
    size_t n_watchers;
};

int owner_create(uint64_t self_id, uint64_t lease_ms, uint64_t handoff_wait_ms, struct owner **out)
{
    struct owner *o = calloc(1, sizeof *o);
    if (o == NULL) {
        return CAIRN_ENOMEM;
    }
    o->self = self_id;
    o->lease_ms = lease_ms;
    o->handoff_wait_ms = handoff_wait_ms;
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

/* Rule 5: does the change from s's previous live set to live take devices
 * from a node that may still be driving them (one not committed down)? */
static bool needs_wait(const struct ring_state *s, const struct ring *live)
{
    if (s->n_previous == 0) {
        return false; /* the first record ever: nobody drove anything before */
    }
    for (size_t i = 0; i < live->n; i++) {
        if (!ring_list_has(s->previous, s->n_previous, live->nodes[i])) {
            return true; /* a node came back or joined: it takes from live ones */
        }
    }
    for (size_t i = 0; i < s->n_previous; i++) {
        if (!ring_contains(live, s->previous[i]) &&
            !ring_list_has(s->down, s->n_down, s->previous[i])) {
            return true; /* removed, not silent: its lease may still hold */
        }
    }
    return false;
}

void owner_update(struct owner *o, const struct ring_state *s, uint64_t gained, uint64_t lost)
{
    struct watcher w[OWNER_MAX_WATCHERS];
    struct ring r, prev;
    uint64_t old, now = cairn_now_ms();
    bool wait;
    size_t n;

    if (ring_state_live(s, &r) != 0 || ring_state_previous(s, &prev) != 0) {
        return; /* ring_state_parse bounds the lists: cannot happen */
    }
    wait = needs_wait(s, &r);
    pthread_mutex_lock(&o->mu);
    old = o->epoch;
    if (s->epoch == old) {
        pthread_mutex_unlock(&o->mu);
        return;
    }
    if (o->settle_until != 0 && now < o->settle_until) {
        /* A wait is open: the ring going out of force joins the ones a
         * device must have kept its owner in. */
        if (o->n_since < OWNER_MAX_SINCE) {
            o->since[o->n_since] = o->ring;
        }
        o->n_since++;
        if (wait) {
            o->settle_until = now + o->handoff_wait_ms;
        }
    } else if (wait) {
        /* The first record this node installs has no ring of its own
         * before it: the record's previous live set is the one in force. */
        o->since[0] = old == 0 ? prev : o->ring;
        o->n_since = 1;
        o->settle_until = now + o->handoff_wait_ms;
    } else {
        o->settle_until = 0;
        o->n_since = 0;
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

/* Rule 5: this node owned device_id in every ring since the wait opened.
 * Called with mu held. */
static bool kept(struct owner *o, const char *device_id)
{
    if (o->n_since > OWNER_MAX_SINCE) {
        return false;
    }
    for (size_t i = 0; i < o->n_since; i++) {
        if (ring_owner_of(&o->since[i], device_id) != o->self) {
            return false;
        }
    }
    return true;
}

bool owner_owns(struct owner *o, const char *device_id, uint64_t *epoch)
{
    uint64_t now = cairn_now_ms();
    bool owns;
    pthread_mutex_lock(&o->mu);
    owns = leased(o, now) && o->epoch != 0 && ring_owner_of(&o->ring, device_id) == o->self &&
           (now >= o->settle_until || kept(o, device_id));
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
    out->settling_ms = now < o->settle_until ? o->settle_until - now : 0;
    out->epoch_changes = o->epoch_changes;
    out->handoffs_in = o->handoffs_in;
    out->handoffs_out = o->handoffs_out;
    out->lease_lapses = o->lease_lapses;
    out->ring = o->ring;
    pthread_mutex_unlock(&o->mu);
}
