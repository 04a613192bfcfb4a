/*
 * Liveness as committed state, the ownership lease, and this node's view of
 * device ownership (common/owner.h), driven by one thread per node.
 *
 * Every liveness_heartbeat_ms each node renews its lease (transitions of
 * the lease, numbered as in docs/design.md "Ownership"):
 *   1. a follower POSTs /internal/v1/heartbeat {id, applied} to the leader
 *      it knows (heartbeat_send); the leader confirms its leadership with a
 *      read index (a raft barrier, shared by concurrent callers) and only
 *      then records the heartbeat (node_liveness_heard) and answers 200;
 *   2. on that 200, which carries the leader's current ownership epoch,
 *      the follower extends its lease to the time it *sent* the heartbeat
 *      + ownership_lease_ms (owner_lease_extend), provided it has applied
 *      that epoch itself (a node behind an epoch is not leased);
 *   3. the leader renews its own lease with a read index too (none is
 *      needed when it is the only voter: nobody else can lead);
 *   4. a node that cannot renew stops owning anything when the lease runs
 *      out (owner_owns checks the clock), whatever its loop is doing.
 * The leader alone decides liveness (leader_decide), once per tick:
 *   5. a member not heard from for liveness_down_ms, counting from the
 *      later of its last heartbeat and this leader's election (the grace
 *      a new leader gives everyone), is committed down;
 *   6. a down member whose heartbeat arrived within ownership_lease_ms and
 *      whose applied index is within LIVENESS_CATCHUP_ENTRIES of the
 *      leader's commit index is committed up;
 *   7. the member list is raft's voter configuration (nothing is decided
 *      while a configuration change is uncommitted).
 * A decision is one STORE_OP_PUT of the STORE_KIND_SYSTEM object
 * "ownership" (common/ring.h), guarded by If-Match on the record it was
 * computed from, so two leaders' decisions never interleave. Its revision
 * is the epoch. Every node, leader or not, installs each new record it
 * applies (refresh) and counts the devices it gained and lost.
 *
 * Safety: a follower's lease starts before the leader heard it, and the
 * leader waits liveness_down_ms >= ownership_lease_ms + margin after that
 * (config.c checks it), so the lease has run out before the down entry is
 * even proposed. A new leader was elected after the old one's last
 * barrier, and it waits liveness_down_ms from its election.
 */
#include "node_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* How far behind the leader's commit index a node may be and count as
 * caught up (heartbeats and barriers keep adding entries meanwhile). */
#define LIVENESS_CATCHUP_ENTRIES 128

/* Device objects read per page while counting. */
#define LIVENESS_PAGE 1000

struct heard {
    uint64_t id;
    uint64_t at_ms;   /* when its last heartbeat was recorded (0: never) */
    uint64_t applied; /* its applied index then */
};

struct liveness {
    struct node *n;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    pthread_mutex_t mu; /* guards heard */
    struct heard heard[CONFIG_MAX_MEMBERS];
    size_t n_heard;
    /* Loop of the liveness thread only. */
    uint64_t leader_since; /* when this node saw itself lead in leader_term */
    uint64_t leader_term;
    uint64_t lapses_logged;
    uint64_t system_seen; /* store_system_generation of the last full refresh */
};

/* --- the ownership record in the store ---------------------------------- */

/* Reads the committed record; CAIRN_ENOTFOUND if none was written yet. */
static int record_read(struct node *n, struct ring_state *out)
{
    struct store_object obj;
    int rv = store_object_get(n->store, STORE_KIND_SYSTEM, RING_STATE_ID, &obj);
    if (rv != 0) {
        return rv;
    }
    rv = ring_state_parse(obj.body, obj.body_len, out);
    if (rv == 0) {
        out->epoch = obj.mod_rev;
    }
    store_object_release(&obj);
    return rv;
}

/* Calls fn for every device object's id, page by page. */
static int devices_foreach(struct node *n, void (*fn)(void *arg, const char *id), void *arg)
{
    char *after = NULL;
    int rv = 0;
    /* Bounded: each page advances past its last id. */
    for (unsigned page = 0; page < 1000000; page++) {
        struct store_list list;
        rv = store_object_list(n->store, STORE_KIND_DEVICE, after, LIVENESS_PAGE, &list);
        if (rv != 0) {
            break;
        }
        for (size_t i = 0; i < list.n; i++) {
            fn(arg, list.items[i].id);
        }
        free(after);
        after = list.n > 0 ? strdup(list.items[list.n - 1].id) : NULL;
        bool more = list.more && after != NULL;
        store_list_release(&list);
        if (!more) {
            break;
        }
    }
    free(after);
    return rv;
}

/* --- every node: install what was committed ------------------------------ */

struct handoff {
    uint64_t self;
    struct ring old, cur;
    uint64_t gained, lost;
};

static void handoff_count(void *arg, const char *id)
{
    struct handoff *h = arg;
    bool had = ring_owner_of(&h->old, id) == h->self;
    bool has = ring_owner_of(&h->cur, id) == h->self;
    h->gained += has && !had;
    h->lost += had && !has;
}

static void ids_format(const uint64_t *ids, size_t n, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < size; i++) {
        int w =
            snprintf(out + len, size - len, "%s%llu", i > 0 ? "," : "", (unsigned long long)ids[i]);
        len += w > 0 ? (size_t)w : 0;
    }
}

static void refresh(struct liveness *l)
{
    struct node *n = l->n;
    struct owner_stats st;
    struct ring_state rec;
    struct handoff h;
    char live[256];
    /* Read before the record: a record written meanwhile moves it again. */
    uint64_t generation = store_system_generation(n->store);
    int rv;

    /* The thread wakes at every change of the view, under load thousands
     * of times a second; the record changes rarely. */
    if (generation == l->system_seen) {
        return;
    }
    rv = record_read(n, &rec);
    if (rv == CAIRN_ENOTFOUND) {
        l->system_seen = generation;
    }
    if (rv != 0) {
        return;
    }
    owner_stats(n->owner, &st);
    if (rec.epoch == st.epoch) {
        l->system_seen = generation;
        return;
    }
    memset(&h, 0, sizeof h);
    h.self = n->cfg.node_id;
    h.old = st.ring;
    if (ring_state_live(&rec, &h.cur) != 0 || devices_foreach(n, handoff_count, &h) != 0) {
        return; /* tried again on the next wake-up */
    }
    owner_update(n->owner, &rec, h.gained, h.lost);
    l->system_seen = generation;
    ids_format(h.cur.nodes, h.cur.n, live, sizeof live);
    CAIRN_INFO(
        "msg=\"ownership epoch applied\" epoch=%llu live=%s gained=%llu lost=%llu "
        "reason=\"%s\"",
        (unsigned long long)rec.epoch, live, (unsigned long long)h.gained,
        (unsigned long long)h.lost, rec.reason);
}

/* --- the leader: decide -------------------------------------------------- */

static struct heard heard_of(struct liveness *l, uint64_t id)
{
    struct heard h = {.id = id};
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n_heard; i++) {
        if (l->heard[i].id == id) {
            h = l->heard[i];
        }
    }
    pthread_mutex_unlock(&l->mu);
    return h;
}

static int record_propose(struct node *n, const struct ring_state *next, uint64_t if_match,
                          uint64_t deadline_ms, struct store_result *res, char *errmsg, size_t size)
{
    char rid[CAIRN_UUID_SIZE + 16];
    struct store_command cmd = {.version = STORE_COMMAND_VERSION,
                                .op = STORE_OP_PUT,
                                .kind = STORE_KIND_SYSTEM,
                                .id = RING_STATE_ID,
                                .if_match = if_match,
                                .time_ms = next->changed_ms};
    uint64_t index;
    char *body;
    void *buf;
    size_t len;
    int rv;

    rv = ring_state_format(next, &body);
    if (rv != 0) {
        return rv;
    }
    memcpy(rid, "ownership:", 10);
    cairn_uuid(rid + 10);
    cmd.request_id = rid;
    cmd.body = body;
    cmd.body_len = strlen(body);
    rv = store_command_encode(&cmd, &buf, &len);
    free(body);
    if (rv != 0) {
        return rv;
    }
    rv = node_leader_propose(n, buf, len, false, deadline_ms, &index, res, errmsg, size);
    free(buf);
    return rv;
}

/* Milliseconds from then to now; 0 if then is later (a heartbeat recorded
 * by an HTTP thread after this thread read the clock). */
static uint64_t elapsed(uint64_t now, uint64_t then)
{
    return then < now ? now - then : 0;
}

/* Steps 5-7 of the file comment. */
static void leader_decide(struct liveness *l, const struct consensus_status *v, uint64_t now)
{
    struct node *n = l->n;
    struct ring_state cur, next;
    struct store_result res;
    char err[CAIRN_ERRMSG_SIZE] = "", down[256];
    bool have;

    if (v->config_index > v->commit_index) {
        return; /* step 7: a configuration change is in flight */
    }
    have = record_read(n, &cur) == 0;
    memset(&next, 0, sizeof next);
    {
        uint64_t voters[CONSENSUS_MAX_MEMBERS];
        struct ring sorted;
        size_t nv = 0;
        for (size_t i = 0; i < v->n_members; i++) {
            if (v->members[i].role == CONSENSUS_VOTER) {
                voters[nv++] = v->members[i].id;
            }
        }
        if (ring_init(&sorted, voters, nv) != 0) {
            return;
        }
        memcpy(next.members, sorted.nodes, sorted.n * sizeof sorted.nodes[0]);
        next.n_members = sorted.n;
    }
    for (size_t i = 0; i < next.n_members; i++) {
        uint64_t id = next.members[i];
        struct heard h = heard_of(l, id);
        uint64_t last = h.at_ms > l->leader_since ? h.at_ms : l->leader_since;
        bool was_down = have && ring_list_has(cur.down, cur.n_down, id);
        bool is_down;
        if (id == n->cfg.node_id) {
            is_down = false;
            if (was_down) {
                snprintf(next.reason, sizeof next.reason, "node %llu leads",
                         (unsigned long long)id);
            }
        } else if (!was_down) {
            is_down = elapsed(now, last) > n->cfg.liveness_down_ms; /* step 5 */
            if (is_down) {
                snprintf(next.reason, sizeof next.reason, "node %llu silent for %llu ms",
                         (unsigned long long)id, (unsigned long long)elapsed(now, last));
            }
        } else {
            is_down = !(h.at_ms != 0 && elapsed(now, h.at_ms) <= n->cfg.ownership_lease_ms &&
                        h.applied + LIVENESS_CATCHUP_ENTRIES >= v->commit_index); /* step 6 */
            if (!is_down) {
                snprintf(next.reason, sizeof next.reason,
                         "node %llu back and caught up (applied %llu of %llu)",
                         (unsigned long long)id, (unsigned long long)h.applied,
                         (unsigned long long)v->commit_index);
            }
        }
        if (is_down) {
            next.down[next.n_down++] = id;
        }
    }
    if (have && ring_list_equal(cur.members, cur.n_members, next.members, next.n_members) &&
        ring_list_equal(cur.down, cur.n_down, next.down, next.n_down)) {
        return;
    }
    if (next.reason[0] == '\0') {
        snprintf(next.reason, sizeof next.reason, "%s", have ? "members changed" : "first record");
    }
    if (have) {
        struct ring prev;
        ring_state_live(&cur, &prev);
        memcpy(next.previous, prev.nodes, prev.n * sizeof prev.nodes[0]);
        next.n_previous = prev.n;
    }
    next.changed_ms = cairn_wall_ms();
    if (record_propose(n, &next, have ? cur.epoch : 0, now + n->cfg.request_timeout_ms, &res, err,
                       sizeof err) != 0) {
        CAIRN_WARN("msg=\"ownership decision not committed\" error=\"%s\"", err);
        return;
    }
    ids_format(next.down, next.n_down, down, sizeof down);
    if (res.status != 0) {
        CAIRN_WARN("msg=\"ownership decision refused\" error=\"%s\"", res.message);
    } else {
        CAIRN_INFO("msg=\"ownership decision committed\" epoch=%llu down=%s reason=\"%s\"",
                   (unsigned long long)res.mod_rev, down, next.reason);
    }
}

/* --- the heartbeat ------------------------------------------------------- */

/* The epoch a node must have applied to have its lease renewed now: the
 * record in this (confirmed leader's) store. */
static uint64_t current_epoch(struct node *n)
{
    struct ring_state rec;
    return record_read(n, &rec) == 0 ? rec.epoch : 0;
}

int node_liveness_heard(struct node *n, uint64_t id, uint64_t applied, uint64_t deadline_ms,
                        uint64_t *epoch, char *errmsg, size_t size)
{
    struct liveness *l = n->liveness;
    uint64_t index;
    int rv;

    /* Step 1: only a confirmed leader vouches for a lease. */
    rv = node_leader_read_index(n, false, deadline_ms, &index, errmsg, size);
    if (rv != 0) {
        return rv;
    }
    pthread_mutex_lock(&l->mu);
    /* Its slot, a free one, or (full: ids of removed nodes pile up) the
     * one heard from longest ago. */
    size_t slot = l->n_heard;
    for (size_t i = 0; i < l->n_heard; i++) {
        if (l->heard[i].id == id) {
            slot = i;
            break;
        }
    }
    if (slot == CONFIG_MAX_MEMBERS) {
        slot = 0;
        for (size_t i = 1; i < l->n_heard; i++) {
            slot = l->heard[i].at_ms < l->heard[slot].at_ms ? i : slot;
        }
    } else if (slot == l->n_heard) {
        l->n_heard++;
    }
    l->heard[slot].id = id;
    l->heard[slot].at_ms = cairn_now_ms();
    l->heard[slot].applied = applied;
    pthread_mutex_unlock(&l->mu);
    *epoch = current_epoch(n);
    return 0;
}

/* Steps 1-3: returns true if a leader confirmed this node's contact, with
 * *epoch the ownership epoch the node must have applied to be leased. */
static bool heartbeat_send(struct liveness *l, const struct consensus_status *v, uint64_t now,
                           uint64_t *epoch)
{
    struct node *n = l->n;
    char err[CAIRN_ERRMSG_SIZE], address[64], body[96];
    uint64_t deadline = now + n->cfg.ownership_lease_ms / 2;
    struct cairn_buf resp;
    int status = 0, rv;
    bool ok;

    if (v->state == CONSENSUS_LEADER) {
        size_t voters = 0;
        uint64_t index;
        for (size_t i = 0; i < v->n_members; i++) {
            voters += v->members[i].role == CONSENSUS_VOTER;
        }
        if (voters > 1 &&
            node_leader_read_index(n, false, deadline, &index, err, sizeof err) != 0) {
            return false;
        }
        *epoch = current_epoch(n);
        return true;
    }
    if (v->leader_id == 0 || node_api_address(n, v->leader_id, address, sizeof address) != 0) {
        return false;
    }
    snprintf(body, sizeof body, "{\"id\":%llu,\"applied\":%llu}",
             (unsigned long long)n->cfg.node_id, (unsigned long long)v->applied_index);
    cairn_buf_init(&resp);
    rv = peer_call(n->peers, address, "POST", "/internal/v1/heartbeat", "application/json", body,
                   strlen(body), deadline, &status, &resp, err, sizeof err);
    ok = rv == 0 && status == 200;
    if (ok) {
        json_t *doc = resp.data != NULL ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
        json_t *e = json_object_get(doc, "epoch");
        ok = json_is_integer(e) && json_integer_value(e) >= 0;
        *epoch = ok ? (uint64_t)json_integer_value(e) : 0;
        json_decref(doc);
    }
    cairn_buf_close(&resp);
    return ok;
}

static void tick(struct liveness *l)
{
    struct node *n = l->n;
    struct consensus_status v;
    struct owner_stats st;
    uint64_t now = cairn_now_ms(), epoch = 0;

    /* Step 4, made visible: the first tick after a pause finds the lease
     * gone before anything renews it. */
    if (!owner_lease_check(n->owner, now)) {
        owner_stats(n->owner, &st);
        if (st.lease_lapses > l->lapses_logged) {
            /* When it ran out, on the wall clock, so that logs of several
             * nodes on one machine can be compared (the tests do). */
            int64_t expired_at = cairn_wall_ms() - (int64_t)elapsed(now, st.lease_until_ms);
            l->lapses_logged = st.lease_lapses;
            CAIRN_WARN(
                "msg=\"ownership lease expired: driving no devices until a leader "
                "confirms this node\" epoch=%llu lapses=%llu expired_ms_ago=%llu "
                "expired_at_ms=%lld",
                (unsigned long long)st.epoch, (unsigned long long)st.lease_lapses,
                (unsigned long long)elapsed(now, st.lease_until_ms), (long long)expired_at);
        }
    }
    node_view(n, &v);
    if (v.state != CONSENSUS_LEADER) {
        l->leader_since = 0;
    } else if (l->leader_since == 0 || v.term != l->leader_term) {
        l->leader_since = now;
        l->leader_term = v.term;
    }
    if (!heartbeat_send(l, &v, now, &epoch)) {
        return; /* a leader that could not confirm itself decides nothing */
    }
    /* Step 2, only with the leader's epoch applied (owner.h, rule 5). */
    refresh(l);
    owner_stats(n->owner, &st);
    if (st.epoch >= epoch) {
        owner_lease_extend(n->owner, now);
    }
    if (v.state == CONSENSUS_LEADER) {
        leader_decide(l, &v, cairn_now_ms());
    }
}

static void *liveness_main(void *arg)
{
    struct liveness *l = arg;
    struct node *n = l->n;
    uint64_t next = 0;

    /* Bounded by stop/shutting_down, which node_liveness_stop sets. */
    while (!atomic_load(&l->stop) && !atomic_load(&n->shutting_down)) {
        uint64_t now = cairn_now_ms();
        refresh(l);
        if (now >= next) {
            tick(l);
            next = now + n->cfg.liveness_heartbeat_ms;
            refresh(l);
        }
        node_view_wait(n, next);
    }
    return NULL;
}

/* --- lifecycle and the API's view ---------------------------------------- */

int node_liveness_start(struct node *n, char *errmsg, size_t size)
{
    struct liveness *l = calloc(1, sizeof *l);
    int rv;
    if (l == NULL) {
        cairn_errmsg_set(errmsg, size, "out of memory");
        return CAIRN_ENOMEM;
    }
    rv = owner_create(n->cfg.node_id, n->cfg.ownership_lease_ms,
                      (uint64_t)n->cfg.ownership_lease_ms + CONFIG_OWNERSHIP_MARGIN_MS, &n->owner);
    if (rv != 0) {
        free(l);
        cairn_errmsg_set(errmsg, size, "out of memory");
        return rv;
    }
    l->n = n;
    pthread_mutex_init(&l->mu, NULL);
    atomic_init(&l->stop, false);
    n->liveness = l;
    if (pthread_create(&l->thread, NULL, liveness_main, l) != 0) {
        cairn_errmsg_set(errmsg, size, "start the liveness thread");
        node_liveness_destroy(n);
        return CAIRN_EIO;
    }
    l->started = true;
    return 0;
}

void node_liveness_stop(struct node *n)
{
    struct liveness *l = n->liveness;
    if (l == NULL || !l->started) {
        return;
    }
    atomic_store(&l->stop, true);
    pthread_mutex_lock(&n->vmu);
    pthread_cond_broadcast(&n->vcv);
    pthread_mutex_unlock(&n->vmu);
    pthread_join(l->thread, NULL);
    l->started = false;
}

void node_liveness_destroy(struct node *n)
{
    struct liveness *l = n->liveness;
    if (l == NULL) {
        return;
    }
    node_liveness_stop(n);
    pthread_mutex_destroy(&l->mu);
    free(l);
    n->liveness = NULL;
    owner_destroy(n->owner);
    n->owner = NULL;
}

struct census {
    struct ring cur, prev;
    bool have_prev;
    struct ring_tally tally;
    struct api_ownership *out;
};

static void census_count(void *arg, const char *id)
{
    struct census *c = arg;
    struct api_ownership *o = c->out;
    if (ring_tally_add(&c->tally, &c->cur, c->have_prev ? &c->prev : NULL, id) &&
        o->n_moved_ids < API_OWNERSHIP_MOVED_SHOWN) {
        snprintf(o->moved_ids[o->n_moved_ids++], sizeof o->moved_ids[0], "%s", id);
    }
}

int node_liveness_ownership(void *data, struct api_ownership *out, char *errmsg, size_t size)
{
    struct node *n = data;
    struct owner_stats st;
    struct ring_state rec;
    struct census *c;
    int rv;

    memset(out, 0, sizeof *out);
    out->node_id = n->cfg.node_id;
    owner_stats(n->owner, &st);
    out->applied_epoch = st.epoch;
    out->leased = st.leased;
    out->lease_remaining_ms = st.lease_remaining_ms;
    out->epoch_changes = st.epoch_changes;
    out->handoffs_in = st.handoffs_in;
    out->handoffs_out = st.handoffs_out;
    out->lease_lapses = st.lease_lapses;
    out->settling_ms = st.settling_ms;
    rv = record_read(n, &rec);
    if (rv == CAIRN_ENOTFOUND) {
        return 0; /* no record yet: epoch 0, nobody owns anything */
    }
    if (rv != 0) {
        cairn_errmsg_set(errmsg, size, "read the ownership record: %s", cairn_strerror(rv));
        return rv;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return CAIRN_ENOMEM;
    }
    c->out = out;
    ring_state_live(&rec, &c->cur);
    c->have_prev = rec.n_previous > 0 && ring_state_previous(&rec, &c->prev) == 0;
    rv = devices_foreach(n, census_count, c);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, size, "list devices: %s", cairn_strerror(rv));
        free(c);
        return rv;
    }
    out->epoch = rec.epoch;
    out->changed_ms = rec.changed_ms;
    snprintf(out->reason, sizeof out->reason, "%s", rec.reason);
    for (size_t i = 0; i < rec.n_members && i < API_OWNERSHIP_MAX_NODES; i++) {
        struct api_ownership_node *m = &out->nodes[out->n_nodes++];
        m->id = rec.members[i];
        m->live = ring_contains(&c->cur, m->id);
        for (size_t j = 0; j < c->cur.n; j++) {
            if (c->cur.nodes[j] == m->id) {
                m->devices = c->tally.owned[j];
            }
        }
    }
    out->devices = c->tally.devices;
    out->moved = c->tally.moved;
    free(c);
    return 0;
}
