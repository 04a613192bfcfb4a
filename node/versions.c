/*
 * Command versions across a cluster: what makes a rolling upgrade with
 * mixed builds safe (docs/upgrades.md states the rule for operators).
 *
 *   1. Every node publishes the newest command version it applies in its
 *      member record ("command_version_max"), once it has caught up with
 *      the cluster (node_versions_publish, from the start-up thread).
 *   2. The cluster version is the lowest of those over the voters of the
 *      current configuration (node_cluster_version); a voter that has not
 *      published one counts as STORE_COMMAND_VERSION_BASELINE, which every
 *      Cairn build reads.
 *   3. The leader encodes every command it appends at the lowest version
 *      that carries it (node_versions_encode, called by
 *      node_leader_propose), whoever built it, and refuses
 *      (CAIRN_EUNSUPPORTED, answered 409 cluster-version) a command that
 *      needs a version above the cluster version, or that a newer build
 *      proposed.
 *   4. A node that meets a committed command newer than it applies stops
 *      instead of skipping it (store_apply, raft/fsm.c): the replicas never
 *      diverge; it applies the entry once upgraded.
 * Invariant: while every voter applies version V, no entry above V is
 * appended. A node below the cluster version may still hold a log with
 * newer entries (it was removed, or downgraded): 4 stops it.
 */
#include "node_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define VERSION_KEY "command_version_max"

unsigned node_member_version(struct node *n, uint64_t id)
{
    struct store_object obj;
    char key[24];
    unsigned v = STORE_COMMAND_VERSION_BASELINE;

    snprintf(key, sizeof key, "%llu", (unsigned long long)id);
    if (store_object_get(n->store, STORE_KIND_MEMBER, key, &obj) == 0) {
        json_t *doc = json_loadb(obj.body, obj.body_len, 0, NULL);
        json_t *got = json_object_get(doc, VERSION_KEY);
        if (json_is_integer(got) && json_integer_value(got) >= 1 &&
            json_integer_value(got) <= 65535) {
            v = (unsigned)json_integer_value(got);
        }
        json_decref(doc);
        store_object_release(&obj);
    }
    return v;
}

/* It depends on the voters of the configuration and on their member
 * records only: cached, keyed on both (the member generation is read
 * before the records, so a record written meanwhile makes the next call
 * compute again). A write that needs a newer version, and every batch of
 * writes (node.c), asks; the records are read once per change. */
unsigned node_cluster_version(struct node *n, uint64_t *lowest)
{
    struct consensus_status v;
    unsigned version = store_command_version_max(n->store);
    uint64_t generation = store_member_generation(n->store);

    *lowest = n->cfg.node_id;
    node_view(n, &v);
    pthread_mutex_lock(&n->cvmu);
    if (n->cv.valid && n->cv.config_index == v.config_index &&
        n->cv.member_generation == generation) {
        version = n->cv.version;
        *lowest = n->cv.lowest;
        pthread_mutex_unlock(&n->cvmu);
        return version;
    }
    pthread_mutex_unlock(&n->cvmu);
    for (size_t i = 0; i < v.n_members; i++) {
        unsigned m;
        if (v.members[i].role != CONSENSUS_VOTER) {
            continue;
        }
        m = v.members[i].id == n->cfg.node_id ? store_command_version_max(n->store)
                                              : node_member_version(n, v.members[i].id);
        if (m < version) {
            version = m;
            *lowest = v.members[i].id;
        }
    }
    pthread_mutex_lock(&n->cvmu);
    n->cv.valid = true;
    n->cv.config_index = v.config_index;
    n->cv.member_generation = generation;
    n->cv.version = version;
    n->cv.lowest = *lowest;
    pthread_mutex_unlock(&n->cvmu);
    return version;
}

int node_versions_encode(struct node *n, const void *cmd, size_t len, void **out, size_t *out_len,
                         char *errmsg, size_t size)
{
    struct store_command c;
    char msg[CAIRN_ERRMSG_SIZE];
    unsigned own = store_command_version_max(n->store);
    unsigned cluster;
    unsigned need;
    uint64_t version;
    uint64_t lowest = 0;

    *out = NULL;
    if (store_command_version(cmd, len, &version) == 0 && version > own) {
        cairn_errmsg_set(errmsg, size,
                         "command version %llu is newer than the leader's build (1..%u): "
                         "finish the upgrade of every node first",
                         (unsigned long long)version, own);
        return CAIRN_EUNSUPPORTED;
    }
    /* Garbage goes into the log as is: every node consumes it the same
     * way (store_apply). */
    if (store_command_decode(cmd, len, &c, msg, sizeof msg) != 0) {
        return 0;
    }
    need = store_command_version_needed(&c);
    /* Every build applies version 1: only a command that needs more asks
     * the voters' member records (a read and a JSON parse each). */
    cluster = need > 1 ? node_cluster_version(n, &lowest) : need;
    if (need > cluster) {
        cairn_errmsg_set(errmsg, size,
                         "this write needs command version %u, but the cluster runs version %u "
                         "(node %llu applies only 1..%u): upgrade every node first",
                         need, cluster, (unsigned long long)lowest, cluster);
        return CAIRN_EUNSUPPORTED;
    }
    /* The lowest version that carries the command, not the cluster's: a
     * node below the cluster version (one that restarts as an older build
     * and has not published that yet) still applies every command that
     * does not need more, including its own member record. */
    if (c.version == need) {
        return 0;
    }
    c.version = need;
    return store_command_encode(&c, out, out_len);
}

int node_versions_publish(struct node *n, uint64_t deadline_ms, char *errmsg, size_t size)
{
    char key[24], rid[CAIRN_UUID_SIZE + 16], body[320];
    struct store_command cmd = {.version = 1,
                                .op = STORE_OP_PUT,
                                .kind = STORE_KIND_MEMBER,
                                .id = key,
                                .time_ms = cairn_wall_ms()};
    struct store_result res;
    void *buf;
    size_t len;
    int rv;

    snprintf(key, sizeof key, "%llu", (unsigned long long)n->cfg.node_id);
    /* The retries of this call (leader changes) carry one request id, so
     * the record is written once. */
    memcpy(rid, "versions:", 9);
    cairn_uuid(rid + 9);
    snprintf(body, sizeof body,
             "{\"api_address\":\"%s\",\"raft_address\":\"%s\",\"" VERSION_KEY "\":%u}",
             n->cfg.api_address, n->cfg.raft_address, store_command_version_max(n->store));
    cmd.request_id = rid;
    cmd.fingerprint = 1;
    cmd.body = body;
    cmd.body_len = strlen(body);
    rv = store_command_encode(&cmd, &buf, &len);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, size, "encode the member record: %s", cairn_strerror(rv));
        return rv;
    }
    rv = node_propose(n, buf, len, deadline_ms, &res, errmsg, size);
    free(buf);
    if (rv == 0 && res.status != 0) {
        cairn_errmsg_set(errmsg, size, "%s", res.message);
        rv = res.status;
    }
    return rv;
}
