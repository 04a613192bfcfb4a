/*
 * The device ownership ring: which live node owns which device.
 *
 * Rendezvous (highest random weight) hashing: every node scores a device
 * with a 64-bit hash of (device, node) and the highest score owns it. No
 * table and no virtual nodes: the answer depends only on the set of live
 * node ids and the device id (never on order or pointers), so every node
 * and every build computes the same owner; when a node leaves, only the
 * devices it owned move (each to the node with its second-highest score),
 * and when it returns exactly those move back. Balance is that of a good
 * hash: for D devices and N nodes the share of a node deviates from 1/N by
 * about sqrt((N-1)/D), 1% of all devices at D = 10,000 (measured in
 * tests/unit/common/test_ring.c and docs/design.md).
 *
 * The committed record (struct ring_state) is the STORE_KIND_SYSTEM object
 * "ownership": members, the members committed down, and the live set
 * before the last change (to show what moved). Its mod revision is the
 * ownership epoch.
 *
 * Threads: any; a struct ring is immutable once made.
 */
#ifndef CAIRN_RING_H
#define CAIRN_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most nodes in a ring (as many as the configuration allows members). */
#define RING_MAX_NODES 32

/* The id of the STORE_KIND_SYSTEM object holding struct ring_state. */
#define RING_STATE_ID "ownership"

struct ring {
    uint64_t nodes[RING_MAX_NODES]; /* live node ids, ascending, distinct */
    uint64_t keys[RING_MAX_NODES];  /* each node's hash key */
    size_t n;
};

/* A 64-bit hash of data (FNV-1a over the bytes, then the splitmix64
 * finalizer, so that every input bit reaches every output bit). */
uint64_t ring_hash64(const void *data, size_t len);

/* Makes the ring of the n node ids (order and duplicates do not matter;
 * 0 is not a node id). CAIRN_EINVAL for more than RING_MAX_NODES distinct
 * ids or an id 0. */
int ring_init(struct ring *r, const uint64_t *ids, size_t n);

/* The owner of device_id, or 0 if the ring is empty. */
uint64_t ring_owner_of(const struct ring *r, const char *device_id);

/* True if id is in the ring. */
bool ring_contains(const struct ring *r, uint64_t id);

/* The committed ownership record. */
struct ring_state {
    uint64_t members[RING_MAX_NODES]; /* every member, ascending */
    size_t n_members;
    uint64_t down[RING_MAX_NODES]; /* members committed down, ascending */
    size_t n_down;
    uint64_t previous[RING_MAX_NODES]; /* live set before the last change */
    size_t n_previous;
    int64_t changed_ms; /* proposer's wall clock at the change */
    char reason[128];   /* why the leader changed it */
    uint64_t epoch;     /* the object's mod revision (not in the body) */
};

/* Parses the JSON body of the record. CAIRN_EMALFORMED if it is not one. */
int ring_state_parse(const char *body, size_t len, struct ring_state *out);

/* Writes the JSON body of s (without epoch) into a malloc'ed string. */
int ring_state_format(const struct ring_state *s, char **out);

/* The ring of s's live members (members minus down), or of its previous
 * live set. */
int ring_state_live(const struct ring_state *s, struct ring *out);
int ring_state_previous(const struct ring_state *s, struct ring *out);

/* True if id is in the ascending list ids[0..n). */
bool ring_list_has(const uint64_t *ids, size_t n, uint64_t id);

/* True if the two lists hold the same ids. */
bool ring_list_equal(const uint64_t *a, size_t na, const uint64_t *b, size_t nb);

/* Counts, over devices fed one at a time, how many each node of cur owns
 * and how many changed owner from prev to cur (prev may be NULL: none
 * moved). Returns true if this device moved. */
struct ring_tally {
    uint64_t owned[RING_MAX_NODES]; /* per cur.nodes[i] */
    uint64_t devices;               /* devices counted */
    uint64_t moved;                 /* owner in prev != owner in cur */
};
bool ring_tally_add(struct ring_tally *t, const struct ring *cur, const struct ring *prev,
                    const char *device_id);

#endif /* CAIRN_RING_H */
