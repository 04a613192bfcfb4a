/*
 * Inter-node RPC endpoints, served by the same civetweb as the API under
 * /internal/v1 and used only by other nodes (backend.c is the client):
 *
 *   POST   /internal/v1/propose      msgpack command -> 8-byte big-endian
 *                                     raft index + msgpack store result
 *   POST   /internal/v1/propose-batch  several commands proposed together
 *                                     (node_forward_* below) -> each one's
 *                                     outcome; a follower uses it once the
 *                                     cluster version is 4
 *   POST   /internal/v1/propose-objects  the same, each outcome with the
 *                                     object as stored; a follower uses it
 *                                     for writes it answers without
 *                                     applying them first (backend.c)
 *   POST   /internal/v1/readindex    -> 8-byte big-endian read index
 *   GET    /internal/v1/status       -> JSON view of this node
 *   POST   /internal/v1/members      JSON {id, raft_address, api_address}
 *   DELETE /internal/v1/members/{id}[?force=true]
 *   POST   /internal/v1/heartbeat    JSON {id, applied} -> {epoch}: renews
 *                                     the sender's ownership lease if it has
 *                                     applied that epoch (liveness.c)
 *
 * A node that is not the leader answers 421 so the caller looks for the
 * leader again; other failures answer JSON {"code": CAIRN_E*, "message"}.
 * With cluster_secret set, a request without the matching
 * X-Cairn-Cluster-Secret header is refused (403).
 */
#include "node_int.h"

#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>
#include <jansson.h>

static int reply_error(struct mg_connection *conn, int code, const char *message)
{
    json_t *doc;
    char *text;
    int status = code == CAIRN_ENOTLEADER ? 421 : code == CAIRN_ENOTFOUND ? 404 : 503;
    if (code == CAIRN_EINVAL || code == CAIRN_EMALFORMED || code == CAIRN_EUNSUPPORTED) {
        status = 400;
    } else if (code == CAIRN_EEXIST || code == CAIRN_ECONFLICT || code == CAIRN_EBUSY) {
        status = 409;
    }
    doc = json_pack("{s:i, s:s}", "code", code, "message",
                    message != NULL && message[0] != '\0' ? message : cairn_strerror(code));
    text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    http_reply(conn, status, "application/json", NULL, text != NULL ? text : "{}",
               text != NULL ? strlen(text) : 2);
    free(text);
    json_decref(doc);
    return status;
}

static bool authorized(struct node *n, struct mg_connection *conn)
{
    const char *got;
    if (n->cfg.cluster_secret[0] == '\0') {
        return true;
    }
    got = mg_get_header(conn, "X-Cairn-Cluster-Secret");
    return got != NULL && strcmp(got, n->cfg.cluster_secret) == 0;
}

static uint64_t rpc_deadline(struct node *n)
{
    return cairn_now_ms() + n->cfg.request_timeout_ms;
}

static int handle_propose(struct mg_connection *conn, struct node *n)
{
    struct cairn_buf body, out;
    struct store_result res;
    char err[CAIRN_ERRMSG_SIZE] = "";
    uint64_t index = 0, be;
    void *enc = NULL;
    size_t enc_len = 0;
    int rv;

    cairn_buf_init(&body);
    rv = http_body_read(conn, http_server_max_body(n->http) * 2 + 4096, &body);
    if (rv == 0) {
        rv = node_leader_propose(n, body.data, body.len, true, rpc_deadline(n), &index, &res, err,
                                 sizeof err);
    }
    cairn_buf_close(&body);
    if (rv == 0) {
        rv = store_result_encode(&res, &enc, &enc_len);
    }
    if (rv != 0) {
        return reply_error(conn, rv, err);
    }
    cairn_buf_init(&out);
    be = htobe64(index);
    rv = cairn_buf_append(&out, &be, sizeof be);
    if (rv == 0) {
        rv = cairn_buf_append(&out, enc, enc_len);
    }
    free(enc);
    if (rv != 0) {
        cairn_buf_close(&out);
        return reply_error(conn, rv, NULL);
    }
    http_reply(conn, 200, "application/msgpack", NULL, out.data, out.len);
    cairn_buf_close(&out);
    return 200;
}

/* The propose-batch formats (all integers big-endian):
 *   request: count (32-bit, 1..STORE_BATCH_MAX), then per command its
 *            length (32-bit) and bytes;
 *   answer:  per command, in order: its outcome (32-bit: 0 or a CAIRN_E*
 *            code), the raft index (64-bit), a length (32-bit) and that
 *            many bytes: the msgpack store result, or the failure's
 *            message.
 * /internal/v1/propose-objects, the same with objects (the forwarding
 * node answers its writes without waiting to apply them):
 *   request: each command's length is preceded by a kind (32-bit): of the
 *            object to send back, or 0 for none;
 *   answer:  each command's record is followed by a length (32-bit) and
 *            that many bytes: the object as stored (store_object_value),
 *            or nothing (no kind asked, the command failed, the object is
 *            gone). */
static uint32_t be32_at(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return be32toh(v);
}

static int append_be32(struct cairn_buf *out, size_t v)
{
    uint32_t be = htobe32((uint32_t)v);
    return cairn_buf_append(out, &be, sizeof be);
}

/* Takes a 32-bit length and that many bytes off *b. */
static int take_sized(const unsigned char **b, size_t *len, const void **data, size_t *size)
{
    size_t one;
    if (*len < 4 || (one = be32_at(*b)) > *len - 4) {
        return CAIRN_EMALFORMED;
    }
    *data = *b + 4;
    *size = one;
    *b += 4 + one;
    *len -= 4 + one;
    return 0;
}

int node_forward_decode(const void *buf, size_t len, bool objects, struct node_proposal *p,
                        size_t *k)
{
    const unsigned char *b = buf;
    size_t count;
    if (len < 4 || (count = be32_at(b)) == 0 || count > STORE_BATCH_MAX) {
        return CAIRN_EMALFORMED;
    }
    b += 4;
    len -= 4;
    for (size_t i = 0; i < count; i++) {
        memset(&p[i], 0, sizeof p[i]);
        if (objects) {
            if (len < 4) {
                return CAIRN_EMALFORMED;
            }
            p[i].kind = be32_at(b);
            b += 4;
            len -= 4;
        }
        if (take_sized(&b, &len, &p[i].cmd, &p[i].len) != 0) {
            return CAIRN_EMALFORMED;
        }
    }
    *k = count;
    return len == 0 ? 0 : CAIRN_EMALFORMED;
}

int node_forward_encode(const struct node_proposal *p, size_t k, bool objects,
                        struct cairn_buf *out)
{
    int rv = append_be32(out, k);
    for (size_t i = 0; i < k && rv == 0; i++) {
        if (objects) {
            rv = append_be32(out, p[i].kind);
        }
        if (rv == 0) {
            rv = append_be32(out, p[i].len);
        }
        if (rv == 0) {
            rv = cairn_buf_append(out, p[i].cmd, p[i].len);
        }
    }
    return rv;
}

int node_forward_answer_encode(const struct node_proposal *p, size_t k, bool objects,
                               struct cairn_buf *out)
{
    int rv = 0;
    for (size_t i = 0; i < k && rv == 0; i++) {
        uint32_t code = htobe32((uint32_t)p[i].rv);
        uint64_t index = htobe64(p[i].rv == 0 ? p[i].index : 0);
        void *enc = NULL;
        size_t enc_len = 0;
        if (p[i].rv == 0) {
            rv = store_result_encode(&p[i].res, &enc, &enc_len);
        } else {
            enc_len = strlen(p[i].errmsg);
        }
        if (rv == 0) {
            rv = cairn_buf_append(out, &code, sizeof code);
        }
        if (rv == 0) {
            rv = cairn_buf_append(out, &index, sizeof index);
        }
        if (rv == 0) {
            rv = append_be32(out, enc_len);
        }
        if (rv == 0) {
            rv = cairn_buf_append(out, enc != NULL ? enc : (const void *)p[i].errmsg, enc_len);
        }
        if (rv == 0 && objects) {
            rv = append_be32(out, p[i].obj_len);
        }
        if (rv == 0 && objects) {
            rv = cairn_buf_append(out, p[i].obj, p[i].obj_len);
        }
        free(enc);
    }
    return rv;
}

int node_forward_answer_decode(const void *buf, size_t len, bool objects, struct node_proposal *p,
                               size_t k)
{
    const unsigned char *b = buf;
    for (size_t i = 0; i < k; i++) {
        uint64_t index;
        const void *one;
        size_t one_len;
        if (len < 12) {
            return CAIRN_EMALFORMED;
        }
        p[i].rv = (int)be32_at(b);
        memcpy(&index, b + 4, sizeof index);
        p[i].index = be64toh(index);
        p[i].errmsg[0] = '\0';
        p[i].obj = NULL;
        p[i].obj_len = 0;
        b += 12;
        len -= 12;
        if (take_sized(&b, &len, &one, &one_len) != 0) {
            return CAIRN_EMALFORMED;
        }
        if (p[i].rv == 0 && store_result_decode(one, one_len, &p[i].res) != 0) {
            return CAIRN_EMALFORMED;
        }
        if (p[i].rv != 0) {
            snprintf(p[i].errmsg, sizeof p[i].errmsg, "%.*s", (int)one_len, (const char *)one);
        }
        if (objects && take_sized(&b, &len, &p[i].obj, &p[i].obj_len) != 0) {
            return CAIRN_EMALFORMED;
        }
    }
    return len == 0 ? 0 : CAIRN_EMALFORMED;
}

/* Reads back, on this leader, the object of each succeeded command that
 * asks for one, into objs; points each proposal at its bytes. */
static int answer_objects(struct node *n, struct node_proposal *p, size_t k, struct cairn_buf *objs)
{
    size_t at[STORE_BATCH_MAX];
    int rv = 0;
    for (size_t i = 0; i < k && rv == 0; i++) {
        at[i] = objs->len;
        if (p[i].kind != 0 && p[i].rv == 0 && p[i].res.status == 0 && p[i].res.id[0] != '\0') {
            rv = store_object_value(n->store, (enum store_kind)p[i].kind, p[i].res.id, objs);
            rv = rv == CAIRN_ENOTFOUND ? 0 : rv; /* deleted, or changed since: none */
        }
        p[i].obj_len = objs->len - at[i];
    }
    for (size_t i = 0; i < k && rv == 0; i++) {
        p[i].obj = (const char *)objs->data + at[i];
    }
    return rv;
}

static int handle_propose_batch(struct mg_connection *conn, struct node *n, bool objects)
{
    /* On the heap: 64 proposals are 46 KB, civetweb's worker stacks 100 KB. */
    struct node_proposal *p = calloc(STORE_BATCH_MAX, sizeof *p);
    struct cairn_buf body, out, objs;
    bool nudge = !objects;
    size_t k = 0;
    int rv;

    if (p == NULL) {
        return reply_error(conn, CAIRN_ENOMEM, NULL);
    }
    cairn_buf_init(&body);
    cairn_buf_init(&objs);
    rv = http_body_read(conn, (http_server_max_body(n->http) * 2 + 4096) * STORE_BATCH_MAX, &body);
    if (rv == 0) {
        rv = node_forward_decode(body.data, body.len, objects, p, &k);
    }
    if (rv != 0) {
        cairn_buf_close(&body);
        free(p);
        return reply_error(conn, rv, "malformed batch of commands");
    }
    /* The forwarding node waits to apply only the commands answered
     * without an object: only those need the new commit index soon. */
    for (size_t i = 0; i < k; i++) {
        nudge = nudge || p[i].kind == 0;
    }
    node_leader_propose_many(n, p, k, nudge, rpc_deadline(n));
    cairn_buf_init(&out);
    rv = objects ? answer_objects(n, p, k, &objs) : 0;
    if (rv == 0) {
        rv = node_forward_answer_encode(p, k, objects, &out);
    }
    cairn_buf_close(&body);
    cairn_buf_close(&objs);
    free(p);
    if (rv != 0) {
        cairn_buf_close(&out);
        return reply_error(conn, rv, NULL);
    }
    http_reply(conn, 200, "application/octet-stream", NULL, out.data, out.len);
    cairn_buf_close(&out);
    return 200;
}

static int handle_readindex(struct mg_connection *conn, struct node *n)
{
    char err[CAIRN_ERRMSG_SIZE] = "";
    uint64_t index = 0, be;
    int rv = node_leader_read_index(n, true, rpc_deadline(n), &index, err, sizeof err);
    if (rv != 0) {
        return reply_error(conn, rv, err);
    }
    be = htobe64(index);
    http_reply(conn, 200, "application/octet-stream", NULL, &be, sizeof be);
    return 200;
}

static int handle_status(struct mg_connection *conn, struct node *n)
{
    struct consensus_status v;
    json_t *doc;
    char *text;

    node_view(n, &v);
    doc =
        json_pack("{s:I, s:s, s:I, s:I, s:I, s:I, s:I}", "id", (json_int_t)n->cfg.node_id, "state",
                  consensus_state_name(v.state), "term", (json_int_t)v.term, "commit_index",
                  (json_int_t)v.commit_index, "applied_index", (json_int_t)v.applied_index,
                  "last_index", (json_int_t)v.last_index, "leader_id", (json_int_t)v.leader_id);
    text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        return reply_error(conn, CAIRN_ENOMEM, NULL);
    }
    http_reply(conn, 200, "application/json", NULL, text, strlen(text));
    free(text);
    return 200;
}

static int handle_member_add(struct mg_connection *conn, struct node *n)
{
    struct cairn_buf body;
    char err[CAIRN_ERRMSG_SIZE] = "";
    json_t *doc;
    const char *raft, *api;
    json_int_t id = 0;
    int rv;

    cairn_buf_init(&body);
    rv = http_body_read(conn, 4096, &body);
    doc = rv == 0 && body.data != NULL ? json_loadb(body.data, body.len, 0, NULL) : NULL;
    cairn_buf_close(&body);
    if (doc == NULL ||
        json_unpack(doc, "{s:I, s:s, s:s}", "id", &id, "raft_address", &raft, "api_address",
                    &api) != 0 ||
        id <= 0) {
        json_decref(doc);
        return reply_error(conn, CAIRN_EINVAL, "bad member body");
    }
    rv = node_leader_member_add(n, (uint64_t)id, raft, api, rpc_deadline(n), err, sizeof err);
    json_decref(doc);
    if (rv != 0) {
        return reply_error(conn, rv, err);
    }
    http_reply(conn, 201, "application/json", NULL, "{}", 2);
    return 201;
}

static int handle_member_remove(struct mg_connection *conn, struct node *n, const char *id_s)
{
    const char *query = mg_get_request_info(conn)->query_string;
    bool force = query != NULL && strcmp(query, "force=true") == 0;
    char err[CAIRN_ERRMSG_SIZE] = "";
    uint64_t id;
    int rv;
    if (cairn_parse_u64(id_s, &id) != 0 || id == 0) {
        return reply_error(conn, CAIRN_EINVAL, "bad member id");
    }
    rv = node_leader_member_remove(n, id, force, rpc_deadline(n), err, sizeof err);
    if (rv != 0) {
        return reply_error(conn, rv, err);
    }
    /* 200 with a body, not 204: peer.c reads only Content-Length framing,
     * which a 204 does not carry. */
    http_reply(conn, 200, "application/json", NULL, "{}", 2);
    return 200;
}

static int handle_transfer(struct mg_connection *conn, struct node *n)
{
    char err[CAIRN_ERRMSG_SIZE] = "";
    int rv = node_leader_transfer(n, rpc_deadline(n), err, sizeof err);
    if (rv != 0) {
        return reply_error(conn, rv, err);
    }
    /* 200 with a body, not 204: peer.c reads only Content-Length framing,
     * which a 204 does not carry. */
    http_reply(conn, 200, "application/json", NULL, "{}", 2);
    return 200;
}

static int handle_heartbeat(struct mg_connection *conn, struct node *n)
{
    struct cairn_buf body;
    char err[CAIRN_ERRMSG_SIZE] = "";
    json_int_t id = 0, applied = -1;
    uint64_t epoch = 0;
    char answer[48];
    json_t *doc;
    int rv;

    cairn_buf_init(&body);
    rv = http_body_read(conn, 4096, &body);
    doc = rv == 0 && body.data != NULL ? json_loadb(body.data, body.len, 0, NULL) : NULL;
    cairn_buf_close(&body);
    if (doc == NULL || json_unpack(doc, "{s:I, s:I}", "id", &id, "applied", &applied) != 0 ||
        id <= 0 || applied < 0) {
        json_decref(doc);
        return reply_error(conn, CAIRN_EINVAL, "bad heartbeat body: want {\"id\", \"applied\"}");
    }
    json_decref(doc);
    rv = node_liveness_heard(n, (uint64_t)id, (uint64_t)applied, rpc_deadline(n), &epoch, err,
                             sizeof err);
    if (rv != 0) {
        return reply_error(conn, rv, err);
    }
    snprintf(answer, sizeof answer, "{\"epoch\":%llu}", (unsigned long long)epoch);
    http_reply(conn, 200, "application/json", NULL, answer, strlen(answer));
    return 200;
}

static int rpc_handler(struct mg_connection *conn, void *data)
{
    struct node *n = data;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *path = ri->local_uri;
    const char *method = ri->request_method;
    const char *members = "/internal/v1/members/";

    if (!authorized(n, conn)) {
        http_reply(conn, 403, "application/json", NULL, "{\"code\":0}", 10);
        return 403;
    }
    if (strcmp(path, "/internal/v1/propose") == 0 && strcmp(method, "POST") == 0) {
        return handle_propose(conn, n);
    }
    if (strcmp(path, "/internal/v1/propose-batch") == 0 && strcmp(method, "POST") == 0) {
        return handle_propose_batch(conn, n, false);
    }
    if (strcmp(path, "/internal/v1/propose-objects") == 0 && strcmp(method, "POST") == 0 &&
        n->cfg.debug_propose_objects) {
        return handle_propose_batch(conn, n, true);
    }
    if (strcmp(path, "/internal/v1/readindex") == 0 && strcmp(method, "POST") == 0) {
        return handle_readindex(conn, n);
    }
    if (strcmp(path, "/internal/v1/status") == 0 && strcmp(method, "GET") == 0) {
        return handle_status(conn, n);
    }
    if (strcmp(path, "/internal/v1/heartbeat") == 0 && strcmp(method, "POST") == 0) {
        return handle_heartbeat(conn, n);
    }
    if (strcmp(path, "/internal/v1/members") == 0 && strcmp(method, "POST") == 0) {
        return handle_member_add(conn, n);
    }
    if (strcmp(path, "/internal/v1/leader/transfer") == 0 && strcmp(method, "POST") == 0) {
        return handle_transfer(conn, n);
    }
    if (strncmp(path, members, strlen(members)) == 0 && strcmp(method, "DELETE") == 0) {
        return handle_member_remove(conn, n, path + strlen(members));
    }
    return reply_error(conn, CAIRN_ENOTFOUND, "no such internal endpoint");
}

void node_rpc_register(struct node *n)
{
    http_server_route(n->http, "/internal/v1/", rpc_handler, n);
}
