/*
 * The node and cluster routes: /healthz (the process is up), /readyz (the
 * node can serve: a member with a known leader, caught up), the cluster's
 * status as this node sees it, membership changes and leadership transfer
 * (rolling restarts move leadership off a node before stopping it). None of these touch
 * the store: they are the backend's (node/) business, and this file only
 * turns requests into backend calls and their results into JSON.
 *
 * Access: SP roles read the cluster, SP admins change its membership and
 * take backups (GET /api/v1/cluster/backup streams one: a consistent copy
 * of the replicated state, see docs/backup.md); tenant users are answered
 * as if these routes did not exist (404).
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#define MEMBERS_PATH "/api/v1/cluster/members"

/* Bytes of a backup read and sent at a time. */
#define API_BACKUP_CHUNK (256 * 1024)

/* Answers a route whose backend operation this node does not provide. */
static int not_implemented(struct api_req *req, const char *what)
{
    return api_problem(req, 501, "not-implemented", NULL, NULL, "this node does not provide %s",
                       what);
}

/* Checks the caller's right to do action on kind (members: the cluster's
 * membership; system: backups); see api_int.h. */
int api_cluster_authorize(struct api_req *req, enum rbac_action action, enum store_kind kind,
                          const char *id, const char *what)
{
    struct rbac_principal p = api_rbac_principal(req);
    switch (rbac_decide(&p, action, kind, NULL)) {
        case RBAC_ALLOW:
            return 0;
        case RBAC_FORBIDDEN:
            if (action == RBAC_READ) {
                break;
            }
            return api_forbidden(req, kind, id, NULL, "role %s may not %s", rbac_role_name(p.role),
                                 what);
        case RBAC_HIDDEN:
            if (action != RBAC_READ) {
                api_audit_refusal(req, kind, id, NULL, CAIRN_ENOTFOUND,
                                  "hidden: %s %s: not visible to role %s", req->method, req->path,
                                  rbac_role_name(p.role));
            }
            /* The answer of a route that does not exist (api.c). */
            return api_problem(req, 404, "not-found", NULL, NULL, "no resource at %s", req->path);
    }
    return api_problem(req, 403, "forbidden", NULL, NULL, "role %s may not read the cluster",
                       rbac_role_name(p.role));
}

#define MEMBERSHIP "change the cluster's membership"

int api_healthz(struct api_req *req)
{
    return api_reply_json(
        req, 200,
        json_pack("{s:s, s:I}", "status", "ok", "node_id", (json_int_t)req->api->cfg.node_id),
        NULL);
}

int api_readyz(struct api_req *req)
{
    const struct api_backend *b = &req->api->backend;
    char why[256] = "";

    if (b->ready == NULL) {
        return not_implemented(req, "a readiness check");
    }
    if (!b->ready(b->data, why, sizeof why)) {
        return api_problem(req, 503, "not-ready", NULL, NULL, "%s",
                           why[0] != '\0' ? why : "the node is not ready");
    }
    return api_reply_json(
        req, 200, json_pack("{s:b, s:I}", "ready", 1, "node_id", (json_int_t)req->api->cfg.node_id),
        NULL);
}

static json_t *member_json(const struct api_member_status *m, uint64_t leader_id)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:b, s:s, s:I, s:I, s:I, s:I, s:b, s:I}", "id",
                     (json_int_t)m->id, "raft_address", m->raft_address, "api_address",
                     m->api_address, "role", m->role, "reachable", m->reachable, "state", m->state,
                     "term", (json_int_t)m->term, "commit_index", (json_int_t)m->commit_index,
                     "applied_index", (json_int_t)m->applied_index, "last_index",
                     (json_int_t)m->last_index, "leader", leader_id != 0 && m->id == leader_id,
                     "command_version_max", (json_int_t)m->command_version_max);
}

int api_cluster_get(struct api_req *req)
{
    const struct api_backend *b = &req->api->backend;
    struct api_cluster_status st;
    json_t *members;
    json_t *obj;
    int rv;

    rv = api_cluster_authorize(req, RBAC_READ, STORE_KIND_MEMBER, NULL, "read the cluster");
    if (rv != 0) {
        return rv;
    }
    if (b->cluster_status == NULL) {
        return not_implemented(req, "a cluster status");
    }
    memset(&st, 0, sizeof st);
    rv = b->cluster_status(b->data, req->deadline_ms, &st);
    if (rv != 0) {
        char detail[128];
        snprintf(detail, sizeof detail, "cluster status: %s", cairn_strerror(rv));
        free(st.members);
        return api_fail(req, rv, detail, NULL);
    }
    members = json_array();
    for (size_t i = 0; members != NULL && i < st.n_members; i++) {
        json_t *m = member_json(&st.members[i], st.leader_id);
        if (m == NULL || json_array_append_new(members, m) != 0) {
            json_decref(members);
            members = NULL;
        }
    }
    obj =
        members == NULL
            ? NULL
            : json_pack("{s:I, s:o, s:I, s:I, s:o}", "node_id", (json_int_t)st.node_id, "leader_id",
                        st.leader_id != 0 ? json_integer((json_int_t)st.leader_id) : json_null(),
                        "term", (json_int_t)st.term, "command_version",
                        (json_int_t)st.command_version, "members", members);
    free(st.members);
    return api_reply_json(req, 200, obj, NULL);
}

int api_members_add(struct api_req *req)
{
    const struct api_backend *b = &req->api->backend;
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    char location[128];
    struct api_error err;
    const char *raft_address;
    const char *api_address;
    uint64_t id;
    int rv;

    rv = api_cluster_authorize(req, RBAC_CREATE, STORE_KIND_MEMBER, NULL, MEMBERSHIP);
    if (rv != 0) {
        return rv;
    }
    if (b->member_add == NULL) {
        return not_implemented(req, "membership changes");
    }
    if (api_validate(&api_member_schema, req->body, &err) != 0) {
        return api_error_send(req, &err);
    }
    id = (uint64_t)json_integer_value(json_object_get(req->body, "id"));
    raft_address = json_string_value(json_object_get(req->body, "raft_address"));
    api_address = json_string_value(json_object_get(req->body, "api_address"));
    rv = b->member_add(b->data, id, raft_address, api_address, req->deadline_ms, errmsg,
                       sizeof errmsg);
    if (rv != 0) {
        cairn_errmsg_wrap(errmsg, sizeof errmsg, "add member %llu", (unsigned long long)id);
        return api_fail(req, rv, errmsg, NULL);
    }
    snprintf(location, sizeof location, "Location: " MEMBERS_PATH "/%llu\r\n",
             (unsigned long long)id);
    return api_reply_json(req, 201,
                          json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "raft_address",
                                    raft_address, "api_address", api_address),
                          location);
}

int api_member_remove(struct api_req *req)
{
    const struct api_backend *b = &req->api->backend;
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    bool force = false;
    uint64_t id;
    int rv;

    rv = api_cluster_authorize(req, RBAC_DELETE, STORE_KIND_MEMBER, req->path_id, MEMBERSHIP);
    if (rv != 0) {
        return rv;
    }
    if (b->member_remove == NULL) {
        return not_implemented(req, "membership changes");
    }
    if (req->path_id == NULL || cairn_parse_u64(req->path_id, &id) != 0 || id < 1 ||
        id > (uint64_t)INT64_MAX) {
        return api_problem(req, 400, "invalid-field", "id", NULL,
                           "the member id in the path must be a node id from 1 to 2^63-1");
    }
    rv = api_bool_param(req, "force", &force);
    if (rv != 0) {
        return rv;
    }
    rv = b->member_remove(b->data, id, force, req->deadline_ms, errmsg, sizeof errmsg);
    if (rv == CAIRN_ECONFLICT) {
        /* Its own type: a script tells "unsafe, retry with force" apart
         * from other conflicts. */
        return api_problem(req, 409, "unsafe-membership-change", NULL, NULL,
                           "remove member %llu: %s", (unsigned long long)id, errmsg);
    }
    if (rv != 0) {
        cairn_errmsg_wrap(errmsg, sizeof errmsg, "remove member %llu", (unsigned long long)id);
        return api_fail(req, rv, errmsg, NULL);
    }
    http_reply(req->conn, 204, NULL, NULL, NULL, 0);
    return 204;
}

int api_leader_transfer(struct api_req *req)
{
    const struct api_backend *b = &req->api->backend;
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    int rv;

    rv = api_cluster_authorize(req, RBAC_UPDATE, STORE_KIND_MEMBER, NULL,
                               "transfer the cluster's leadership");
    if (rv != 0) {
        return rv;
    }
    if (b->leader_transfer == NULL) {
        return not_implemented(req, "leadership transfer");
    }
    rv = b->leader_transfer(b->data, req->deadline_ms, errmsg, sizeof errmsg);
    if (rv != 0) {
        cairn_errmsg_wrap(errmsg, sizeof errmsg, "transfer leadership");
        return api_fail(req, rv, errmsg, NULL);
    }
    http_reply(req->conn, 204, NULL, NULL, NULL, 0);
    return 204;
}

/* Streams the backup b as the answer; the length is known before the first
 * byte, the checksum is the body's last four bytes (CRC-32C of the rest).
 * A failure after the headers can only cut the body short, which the
 * client sees against Content-Length and the checksum. */
static int backup_stream(struct api_req *req, struct store_backup *b)
{
    char num[32];
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    char *chunk;
    size_t n = 0;
    uint64_t sent = 0;
    int rv = 0;

    chunk = malloc(API_BACKUP_CHUNK);
    if (chunk == NULL) {
        return api_problem(req, 503, "unavailable", NULL, "Retry-After: 1\r\n",
                           "backup: out of memory");
    }
    mg_response_header_start(req->conn, 200);
    mg_response_header_add(req->conn, "Content-Type", "application/octet-stream", -1);
    snprintf(num, sizeof num, "%llu", (unsigned long long)store_backup_size(b));
    mg_response_header_add(req->conn, "Content-Length", num, -1);
    mg_response_header_add(req->conn, "Cache-Control", "no-store", -1);
    mg_response_header_add(req->conn, "Content-Disposition",
                           "attachment; filename=\"cairn.backup\"", -1);
    snprintf(num, sizeof num, "%llu", (unsigned long long)store_backup_revision(b));
    mg_response_header_add(req->conn, "X-Cairn-Revision", num, -1);
    snprintf(num, sizeof num, "%llu", (unsigned long long)store_backup_index(b));
    mg_response_header_add(req->conn, "X-Cairn-Applied-Index", num, -1);
    mg_response_header_add(req->conn, "X-Cairn-Checksum", "crc32c-trailer", -1);
    mg_response_header_send(req->conn);
    /* Bounded by the size: every round sends at least one byte or stops. */
    while (sent < store_backup_size(b)) {
        rv = store_backup_read(b, chunk, API_BACKUP_CHUNK, &n, errmsg, sizeof errmsg);
        if (rv != 0 || n == 0) {
            CAIRN_ERROR("msg=\"backup cut short\" sent=%llu error=\"%s\"", (unsigned long long)sent,
                        rv != 0 ? errmsg : "no more bytes");
            break;
        }
        if (mg_write(req->conn, chunk, n) != (int)n) {
            CAIRN_WARN("msg=\"backup: client went away\" sent=%llu", (unsigned long long)sent);
            break;
        }
        sent += n;
    }
    free(chunk);
    if (sent == store_backup_size(b)) {
        CAIRN_INFO("msg=\"backup sent\" index=%llu revision=%llu bytes=%llu caller=%s",
                   (unsigned long long)store_backup_index(b),
                   (unsigned long long)store_backup_revision(b), (unsigned long long)sent,
                   req->who.username);
    }
    return 200;
}

int api_cluster_backup(struct api_req *req)
{
    const struct api_backend *b = &req->api->backend;
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    struct store_backup *backup = NULL;
    int rv;

    rv = api_cluster_authorize(req, RBAC_CREATE, STORE_KIND_SYSTEM, "backup",
                               "take backups of the cluster");
    if (rv != 0) {
        return rv;
    }
    if (b->backup == NULL) {
        return not_implemented(req, "backups");
    }
    rv = b->backup(b->data, req->deadline_ms, &backup, errmsg, sizeof errmsg);
    if (rv != 0) {
        cairn_errmsg_wrap(errmsg, sizeof errmsg, "backup");
        return api_fail(req, rv, errmsg, NULL);
    }
    rv = backup_stream(req, backup);
    store_backup_end(backup);
    return rv;
}
