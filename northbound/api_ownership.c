/*
 * GET /api/v1/cluster/ownership: device ownership as the answering node
 * computes it from the committed ownership record (the epoch, which
 * members are live or down, how many devices each owns, what moved at the
 * last epoch change) and that node's own view (the epoch it installed, its
 * lease, its handoff counters). Every node that applied the same epoch
 * answers the same cluster-wide part; the read is linearizable unless
 * ?consistency=stale.
 *
 * Access: SP roles (as the rest of /api/v1/cluster); tenant users get the
 * 404 of a route that does not exist.
 */
#include "api_int.h"

#include <stdlib.h>

static json_t *ids_json(const struct api_ownership *o, bool live)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < o->n_nodes; i++) {
        if (o->nodes[i].live == live &&
            json_array_append_new(arr, json_integer((json_int_t)o->nodes[i].id)) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

static json_t *ownership_json(const struct api_ownership *o)
{
    char changed[API_TIME_SIZE] = "";
    json_t *nodes = json_array(), *moved = json_array();

    for (size_t i = 0; nodes != NULL && i < o->n_nodes; i++) {
        json_t *m = json_pack("{s:I, s:b, s:I}", "id", (json_int_t)o->nodes[i].id, "live",
                              o->nodes[i].live, "devices", (json_int_t)o->nodes[i].devices);
        if (m == NULL || json_array_append_new(nodes, m) != 0) {
            json_decref(nodes);
            nodes = NULL;
        }
    }
    for (size_t i = 0; moved != NULL && i < o->n_moved_ids; i++) {
        if (json_array_append_new(moved, json_string(o->moved_ids[i])) != 0) {
            json_decref(moved);
            moved = NULL;
        }
    }
    if (o->changed_ms > 0) {
        api_time_format(o->changed_ms, changed);
    }
    return json_pack(
        "{s:I, s:o, s:s, s:o, s:o, s:o, s:I, s:{s:I, s:o}, s:{s:I, s:I, s:b, s:I, s:I, s:I, s:I, "
        "s:I, s:I}}",
        "epoch", (json_int_t)o->epoch, "changed_at",
        changed[0] != '\0' ? json_string(changed) : json_null(), "reason", o->reason, "members",
        nodes, "live", ids_json(o, true), "down", ids_json(o, false), "devices",
        (json_int_t)o->devices, "movements", "count", (json_int_t)o->moved, "devices", moved,
        "node", "id", (json_int_t)o->node_id, "epoch", (json_int_t)o->applied_epoch, "leased",
        o->leased, "lease_remaining_ms", (json_int_t)o->lease_remaining_ms, "epoch_changes",
        (json_int_t)o->epoch_changes, "handoffs_in", (json_int_t)o->handoffs_in, "handoffs_out",
        (json_int_t)o->handoffs_out, "lease_lapses", (json_int_t)o->lease_lapses, "settling_ms",
        (json_int_t)o->settling_ms);
}

int api_ownership_get(struct api_req *req)
{
    const struct api_backend *b = &req->api->backend;
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    struct api_ownership *o;
    int rv;

    rv = api_cluster_authorize(req, RBAC_READ, STORE_KIND_MEMBER, NULL, "read the cluster");
    if (rv != 0) {
        return rv;
    }
    if (b->ownership == NULL) {
        return api_problem(req, 501, "not-implemented", NULL, NULL,
                           "this node does not provide device ownership");
    }
    rv = api_read_point(req);
    if (rv != 0) {
        return rv;
    }
    o = calloc(1, sizeof *o);
    if (o == NULL) {
        return api_fail(req, CAIRN_ENOMEM, "out of memory", NULL);
    }
    rv = b->ownership(b->data, o, errmsg, sizeof errmsg);
    if (rv != 0) {
        free(o);
        cairn_errmsg_wrap(errmsg, sizeof errmsg, "device ownership");
        return api_fail(req, rv, errmsg, NULL);
    }
    rv = api_reply_json(req, 200, ownership_json(o), NULL);
    free(o);
    return rv;
}
