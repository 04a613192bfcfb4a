/*
 * This node's view of device ownership, for whoever drives devices (the
 * southbound's sessions and job runner): which devices this node owns, in
 * which epoch, and whether it may act at all (its lease).
 *
 * The rules it enforces (the numbers are those of docs/design.md,
 * "Ownership"):
 *   1. owner_update installs each committed ownership record this node
 *      applies (epoch = the record's store revision); the ring is computed
 *      from it alone, so every node that applied the same epoch agrees.
 *   2. owner_lease_extend records a successful contact with a leader that
 *      confirmed its leadership (a read index) after the contact started;
 *      the node may act until started + ownership_lease_ms.
 *   3. owner_owns answers true only while the lease holds and the ring of
 *      the applied epoch names this node. The leader commits a node down
 *      only after liveness_down_ms > ownership_lease_ms + margin of silence,
 *      so a node cut off stops acting before anyone else starts.
 *   4. Before committing a job's result the caller checks
 *      owner_epoch_current(epoch): still leased and no newer epoch applied.
 *   5. A lease is renewed only while this node has applied the leader's
 *      current epoch (liveness.c), so a node that lags behind an epoch stops
 *      within ownership_lease_ms of its commit. Hence a device moving away
 *      from a node that is not committed down (a node came back or joined,
 *      a member was removed) is taken over only handoff_wait_ms (lease +
 *      margin) after the new owner installed that epoch: until then the new
 *      owner drives only devices it also owned in the last settled ring.
 *      Devices of a node committed down move at once (its lease ran out
 *      before the down was committed).
 *
 * Threads: any. owner_update runs on one thread at a time (the node's
 * liveness thread); watchers are called on that thread, without the lock.
 */
#ifndef CAIRN_OWNER_H
#define CAIRN_OWNER_H

#include <stdbool.h>
#include <stdint.h>

#include "ring.h"

struct owner;

/* Called after a new epoch is installed (a handoff may have happened). */
typedef void (*owner_change_cb)(void *arg, uint64_t old_epoch, uint64_t new_epoch);

/* Most watchers. */
#define OWNER_MAX_WATCHERS 8

/* lease_ms: ownership_lease_ms; handoff_wait_ms: rule 5's wait. */
int owner_create(uint64_t self_id, uint64_t lease_ms, uint64_t handoff_wait_ms, struct owner **out);
void owner_destroy(struct owner *o); /* NULL is a no-op */

/* Installs the record s (its epoch field set). gained/lost: devices this
 * node took over from / handed to others with it. */
void owner_update(struct owner *o, const struct ring_state *s, uint64_t gained, uint64_t lost);

/* A leader confirmed this node's contact that started at started_ms
 * (cairn_now_ms clock): the lease runs to started_ms + lease_ms. */
void owner_lease_extend(struct owner *o, uint64_t started_ms);

/* True if the lease holds at now_ms; the first check that finds an expired
 * lease counts a lapse (owner_stats). */
bool owner_lease_check(struct owner *o, uint64_t now_ms);

/* True if this node may drive device_id now; *epoch (may be NULL) is the
 * epoch to carry in its writes. */
bool owner_owns(struct owner *o, const char *device_id, uint64_t *epoch);

/* True if epoch is the applied epoch and the lease holds. */
bool owner_epoch_current(struct owner *o, uint64_t epoch);

/* Registers cb; CAIRN_EBUSY when OWNER_MAX_WATCHERS are registered. */
int owner_watch(struct owner *o, owner_change_cb cb, void *arg);

struct owner_stats {
    uint64_t epoch;              /* applied epoch (0: no record yet) */
    bool leased;                 /* the lease holds now */
    uint64_t lease_remaining_ms; /* 0 if it does not */
    uint64_t lease_until_ms;     /* cairn_now_ms when it runs out (0: never leased) */
    uint64_t settling_ms;        /* rule 5: time left before devices taken from
                                  * live nodes may be driven (0: none) */
    uint64_t epoch_changes;      /* epochs installed since start */
    uint64_t handoffs_in;        /* devices gained since start */
    uint64_t handoffs_out;       /* devices lost since start */
    uint64_t lease_lapses;       /* times the lease was found expired */
    struct ring ring;            /* live ring of the applied epoch */
};
void owner_stats(struct owner *o, struct owner_stats *out);

#endif /* CAIRN_OWNER_H */
