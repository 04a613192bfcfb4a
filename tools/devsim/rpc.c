/*
 * The NETCONF operations a simulated device answers: get, get-config,
 * edit-config, lock, unlock, validate, commit (with confirmed commit),
 * cancel-commit, discard-changes and get-schema. close-session is
 * libnetconf2's own; anything else gets operation-not-supported.
 *
 * libnetconf2 calls rpc_dispatch on the poll thread that serves the
 * session (server.c); it finds the device through the session's data.
 * Injected faults (drop, slow) apply here, before the operation.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nc_server.h>

#include "cairn.h"
#include "devsim.h"

static struct nc_server_reply *reply_err(const struct ly_ctx *ctx, NC_ERR tag, uint32_t sid,
                                         const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static struct nc_server_reply *reply_err(const struct ly_ctx *ctx, NC_ERR tag, uint32_t sid,
                                         const char *fmt, ...)
{
    struct lyd_node *err;
    char msg[512];
    va_list ap;

    switch (tag) {
        case NC_ERR_LOCK_DENIED:
            err = nc_err(ctx, tag, sid);
            break;
        case NC_ERR_DATA_EXISTS:
        case NC_ERR_DATA_MISSING:
        case NC_ERR_MALFORMED_MSG:
            err = nc_err(ctx, tag);
            break;
        case NC_ERR_UNKNOWN_ELEM:
        case NC_ERR_BAD_ELEM:
        case NC_ERR_MISSING_ELEM:
            err = nc_err(ctx, tag, NC_ERR_TYPE_PROT, "config");
            break;
        case NC_ERR_BAD_ATTR:
        case NC_ERR_MISSING_ATTR:
        case NC_ERR_UNKNOWN_ATTR:
            err = nc_err(ctx, tag, NC_ERR_TYPE_PROT, "operation", "config");
            break;
        default:
            err = nc_err(ctx, tag, NC_ERR_TYPE_APP);
            break;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    nc_err_set_msg(err, msg, "en");
    return nc_server_reply_err(err);
}

/* Replies with `data` (ownership taken) as the <data> output of rpc. */
static struct nc_server_reply *reply_data(struct lyd_node *rpc, struct lyd_node *data)
{
    struct lyd_node *out;
    if (lyd_dup_single(rpc, NULL, 0, &out)) {
        lyd_free_all(data);
        return NULL;
    }
    if (lyd_new_any(out, NULL, "data", data, 1, LYD_ANYDATA_DATATREE, 1, NULL)) {
        lyd_free_all(data);
        lyd_free_all(out);
        return NULL;
    }
    return nc_server_reply_data(out, NC_WD_EXPLICIT, NC_PARAMTYPE_FREE);
}

static const char *child_value(const struct lyd_node *rpc, const char *name)
{
    struct lyd_node *n;
    if (lyd_find_path(rpc, name, 0, &n)) {
        return NULL;
    }
    return lyd_get_value(n);
}

/* The datastore named by <target> or <source>: "running", "candidate"... */
static const char *datastore(const struct lyd_node *rpc, const char *param)
{
    struct lyd_node *n;
    if (lyd_find_path(rpc, param, 0, &n) || !lyd_child(n) || !lyd_child(n)->schema) {
        return NULL;
    }
    return lyd_child(n)->schema->name;
}

struct call {
    struct devsim_device *dev; /* the device, its mu held during `fn` */
    uint32_t sid;              /* the session's id */
    struct lyd_node *rpc;      /* the operation */
    const struct ly_ctx *ctx;  /* the schema context */
};

/* The datastore tree a name selects, or NULL for an unsupported one. */
static struct lyd_node **ds_tree(struct devsim_device *dev, const char *name)
{
    if (name && !strcmp(name, "running")) {
        return &dev->running;
    }
    if (name && !strcmp(name, "candidate")) {
        return &dev->candidate;
    }
    return NULL;
}

static uint32_t *ds_lock(struct devsim_device *dev, const char *name)
{
    return !strcmp(name, "running") ? &dev->lock_running : &dev->lock_candidate;
}

static struct nc_server_reply *op_get_config(struct call *c)
{
    const char *name = datastore(c->rpc, "source");
    struct lyd_node **tree = ds_tree(c->dev, name), *filter = NULL, *data;
    char err[256];
    if (!tree) {
        return reply_err(c->ctx, NC_ERR_OP_NOT_SUPPORTED, 0, "datastore %s is not supported",
                         name ? name : "?");
    }
    lyd_find_path(c->rpc, "filter", 0, &filter);
    if (filter_apply(c->ctx, *tree, filter, &data, err, sizeof(err))) {
        return reply_err(c->ctx, NC_ERR_INVALID_VALUE, 0, "filter: %s", err);
    }
    return reply_data(c->rpc, data);
}

static struct nc_server_reply *op_get(struct call *c)
{
    struct lyd_node *filter = NULL, *state, *data;
    char err[256];
    int rv;
    if (device_state_locked(c->dev, &state)) {
        return reply_err(c->ctx, NC_ERR_OP_FAILED, 0, "building operational state failed");
    }
    lyd_find_path(c->rpc, "filter", 0, &filter);
    rv = filter_apply(c->ctx, state, filter, &data, err, sizeof(err));
    lyd_free_all(state);
    if (rv) {
        return reply_err(c->ctx, NC_ERR_INVALID_VALUE, 0, "filter: %s", err);
    }
    return reply_data(c->rpc, data);
}

/* Reads the cairn-fencing epoch from an edit's top-level nodes. */
static bool edit_epoch(const struct lyd_node *edit, uint64_t *epoch)
{
    const struct lyd_node *node;
    LY_LIST_FOR(edit, node)
    {
        struct lyd_node *leaf;
        if (node->schema && !strcmp(node->schema->module->name, "cairn-fencing") &&
            lyd_find_path(node, "epoch", 0, &leaf) == 0) {
            *epoch = ((struct lyd_node_term *)leaf)->value.uint64;
            return true;
        }
    }
    return false;
}

static struct nc_server_reply *op_edit_config(struct call *c)
{
    const char *name = datastore(c->rpc, "target");
    const char *defop = child_value(c->rpc, "default-operation");
    struct lyd_node **tree = ds_tree(c->dev, name), *config, *copy;
    const struct lyd_node *edit;
    uint64_t epoch = 0;
    bool has_epoch;
    char err[256];
    int tag = NC_ERR_OP_FAILED;

    if (!tree) {
        return reply_err(c->ctx, NC_ERR_OP_NOT_SUPPORTED, 0, "datastore %s is not supported",
                         name ? name : "?");
    }
    if (*ds_lock(c->dev, name) && *ds_lock(c->dev, name) != c->sid) {
        return reply_err(c->ctx, NC_ERR_IN_USE, 0, "%s is locked by session %" PRIu32, name,
                         *ds_lock(c->dev, name));
    }
    if (lyd_find_path(c->rpc, "config", 0, &config)) {
        return reply_err(c->ctx, NC_ERR_OP_NOT_SUPPORTED, 0, "only <config> is supported");
    }
    if (((struct lyd_node_any *)config)->value_type != LYD_ANYDATA_DATATREE) {
        edit = NULL; /* an empty <config/> */
    } else {
        edit = ((struct lyd_node_any *)config)->value.tree;
    }
    has_epoch = edit_epoch(edit, &epoch);
    if (tree_dup(*tree, &copy)) {
        return reply_err(c->ctx, NC_ERR_OP_FAILED, 0, "out of memory");
    }
    if (edit_apply(&copy, edit, defop ? defop : "merge", &tag, err, sizeof(err))) {
        lyd_free_all(copy);
        return reply_err(c->ctx, (NC_ERR)tag, 0, "edit-config: %s", err);
    }
    if (tree == &c->dev->running && lyd_validate_all(&copy, c->ctx, LYD_VALIDATE_NO_STATE, NULL)) {
        lyd_free_all(copy);
        return reply_err(c->ctx, NC_ERR_INVALID_VALUE, 0, "edit-config: %s", ly_errmsg(c->ctx));
    }
    lyd_free_all(*tree);
    *tree = copy;
    if (tree == &c->dev->running) {
        device_sync_candidate_locked(c->dev);
    } else {
        c->dev->cand_dirty = true;
        c->dev->cand_has_epoch = has_epoch;
        c->dev->cand_epoch = epoch;
    }
    device_log_write(c->dev, c->sid, "edit-config",
                     tree == &c->dev->running ? "running" : "candidate", has_epoch, epoch);
    return nc_server_reply_ok();
}

static struct nc_server_reply *op_lock(struct call *c)
{
    const char *name = datastore(c->rpc, "target");
    uint32_t *holder;
    if (!ds_tree(c->dev, name)) {
        return reply_err(c->ctx, NC_ERR_OP_NOT_SUPPORTED, 0, "datastore %s is not supported",
                         name ? name : "?");
    }
    holder = ds_lock(c->dev, name);
    if (*holder) {
        return reply_err(c->ctx, NC_ERR_LOCK_DENIED, *holder, "%s is locked by session %" PRIu32,
                         name, *holder);
    }
    if (holder == &c->dev->lock_candidate && c->dev->cand_dirty) {
        return reply_err(c->ctx, NC_ERR_LOCK_DENIED, 0,
                         "candidate has uncommitted changes: discard or commit them first");
    }
    *holder = c->sid;
    return nc_server_reply_ok();
}

static struct nc_server_reply *op_unlock(struct call *c)
{
    const char *name = datastore(c->rpc, "target");
    uint32_t *holder;
    if (!ds_tree(c->dev, name)) {
        return reply_err(c->ctx, NC_ERR_OP_NOT_SUPPORTED, 0, "datastore %s is not supported",
                         name ? name : "?");
    }
    holder = ds_lock(c->dev, name);
    if (*holder != c->sid) {
        return reply_err(c->ctx, NC_ERR_OP_FAILED, 0, "%s is not locked by this session", name);
    }
    *holder = 0;
    return nc_server_reply_ok();
}

static struct nc_server_reply *op_validate(struct call *c)
{
    const char *name = datastore(c->rpc, "source");
    struct lyd_node **tree = ds_tree(c->dev, name), *copy;
    int rv;
    if (!tree) {
        return reply_err(c->ctx, NC_ERR_OP_NOT_SUPPORTED, 0, "datastore %s is not supported",
                         name ? name : "?");
    }
    if (tree_dup(*tree, &copy)) {
        return reply_err(c->ctx, NC_ERR_OP_FAILED, 0, "out of memory");
    }
    rv = lyd_validate_all(&copy, c->ctx, LYD_VALIDATE_NO_STATE, NULL);
    lyd_free_all(copy);
    if (rv) {
        return reply_err(c->ctx, NC_ERR_INVALID_VALUE, 0, "validate %s: %s", name,
                         ly_errmsg(c->ctx));
    }
    return nc_server_reply_ok();
}

static struct nc_server_reply *op_commit(struct call *c)
{
    struct devsim_device *dev = c->dev;
    struct lyd_node *n, *copy;
    bool confirmed = lyd_find_path(c->rpc, "confirmed", 0, &n) == 0;
    const char *timeout = child_value(c->rpc, "confirm-timeout");
    const char *persist = child_value(c->rpc, "persist");
    const char *persist_id = child_value(c->rpc, "persist-id");

    if (dev->fault.reject_commit) {
        return reply_err(c->ctx, NC_ERR_OP_FAILED, 0, "commit rejected (injected fault)");
    }
    if ((dev->lock_candidate && dev->lock_candidate != c->sid) ||
        (dev->lock_running && dev->lock_running != c->sid)) {
        return reply_err(c->ctx, NC_ERR_IN_USE, 0, "a datastore is locked by another session");
    }
    if (persist_id && (!dev->confirm_pending || strcmp(persist_id, dev->persist_id))) {
        return reply_err(c->ctx, NC_ERR_INVALID_VALUE, 0,
                         "persist-id does not match a pending confirmed commit");
    }
    if (!confirmed && dev->confirm_pending && dev->persist_id[0] && !persist_id) {
        return reply_err(c->ctx, NC_ERR_INVALID_VALUE, 0,
                         "a persistent confirmed commit is pending: give its persist-id");
    }
    if (tree_dup(dev->candidate, &copy)) {
        return reply_err(c->ctx, NC_ERR_OP_FAILED, 0, "out of memory");
    }
    if (lyd_validate_all(&copy, c->ctx, LYD_VALIDATE_NO_STATE, NULL)) {
        lyd_free_all(copy);
        return reply_err(c->ctx, NC_ERR_INVALID_VALUE, 0, "commit: candidate is invalid: %s",
                         ly_errmsg(c->ctx));
    }
    if (confirmed) {
        if (!dev->confirm_pending) {
            if (tree_dup(dev->running, &dev->rollback)) {
                lyd_free_all(copy);
                return reply_err(c->ctx, NC_ERR_OP_FAILED, 0, "out of memory");
            }
            dev->confirm_pending = true;
        }
        dev->confirm_deadline =
            cairn_now_ms() + 1000 * (timeout ? strtoull(timeout, NULL, 10) : 600);
        dev->confirm_session = c->sid;
        snprintf(dev->persist_id, sizeof(dev->persist_id), "%s", persist ? persist : "");
    } else if (dev->confirm_pending) {
        lyd_free_all(dev->rollback);
        dev->rollback = NULL;
        dev->confirm_pending = false;
        dev->persist_id[0] = '\0';
    }
    lyd_free_all(dev->running);
    dev->running = copy;
    dev->cand_dirty = false;
    device_sync_candidate_locked(dev);
    device_log_write(dev, c->sid, confirmed ? "confirmed-commit" : "commit", "running",
                     dev->cand_has_epoch, dev->cand_epoch);
    dev->cand_has_epoch = false;
    return nc_server_reply_ok();
}

static struct nc_server_reply *op_cancel_commit(struct call *c)
{
    const char *persist_id = child_value(c->rpc, "persist-id");
    if (!c->dev->confirm_pending) {
        return reply_err(c->ctx, NC_ERR_OP_FAILED, 0, "no confirmed commit is pending");
    }
    if (persist_id ? strcmp(persist_id, c->dev->persist_id) != 0
                   : (c->dev->persist_id[0] || c->dev->confirm_session != c->sid)) {
        return reply_err(c->ctx, NC_ERR_INVALID_VALUE, 0,
                         "the pending confirmed commit belongs to another session or persist-id");
    }
    device_rollback_locked(c->dev, "cancel-commit");
    return nc_server_reply_ok();
}

static struct nc_server_reply *op_discard_changes(struct call *c)
{
    c->dev->cand_dirty = false;
    c->dev->cand_has_epoch = false;
    device_sync_candidate_locked(c->dev);
    device_log_write(c->dev, c->sid, "discard-changes", "candidate", false, 0);
    return nc_server_reply_ok();
}

/* Our own <get-schema>: libnetconf2 2.0's crashes on a second session. */
static struct nc_server_reply *op_get_schema(struct call *c)
{
    const char *id = child_value(c->rpc, "identifier");
    const char *rev = child_value(c->rpc, "version");
    const char *format = child_value(c->rpc, "format");
    const struct lys_module *mod;
    struct lyd_node *out;
    char *text = NULL;

    if (rev && !rev[0]) {
        rev = NULL;
    }
    mod = rev ? ly_ctx_get_module(c->ctx, id, rev) : ly_ctx_get_module_implemented(c->ctx, id);
    if (!mod && !rev) {
        mod = ly_ctx_get_module_latest(c->ctx, id);
    }
    if (!mod) {
        return reply_err(c->ctx, NC_ERR_INVALID_VALUE, 0, "schema %s not found", id ? id : "?");
    }
    if (lys_print_mem(&text, mod, format && strstr(format, "yin") ? LYS_OUT_YIN : LYS_OUT_YANG,
                      0)) {
        return reply_err(c->ctx, NC_ERR_OP_FAILED, 0, "printing schema %s failed", id);
    }
    if (lyd_dup_single(c->rpc, NULL, 0, &out) ||
        lyd_new_any(out, NULL, "data", text, 0, LYD_ANYDATA_STRING, 1, NULL)) {
        free(text);
        return NULL;
    }
    free(text);
    return nc_server_reply_data(out, NC_WD_EXPLICIT, NC_PARAMTYPE_FREE);
}

static const struct {
    const char *name;                              /* operation */
    struct nc_server_reply *(*fn)(struct call *c); /* its handler */
    bool needs_lock;                               /* takes dev->mu */
} ops[] = {
    {"get-config", op_get_config, true},
    {"get", op_get, true},
    {"edit-config", op_edit_config, true},
    {"lock", op_lock, true},
    {"unlock", op_unlock, true},
    {"validate", op_validate, true},
    {"commit", op_commit, true},
    {"cancel-commit", op_cancel_commit, true},
    {"discard-changes", op_discard_changes, true},
    {"get-schema", op_get_schema, false},
};

static struct nc_server_reply *rpc_dispatch(struct lyd_node *rpc, struct nc_session *session)
{
    struct devsim_session *s = nc_session_get_data(session);
    struct devsim_device *dev = s->dev;
    struct call c = {dev, nc_session_get_id(session), rpc, nc_session_get_ctx(session)};
    struct nc_server_reply *reply = NULL;
    unsigned slow_ms;
    bool drop = false;
    size_t i;

    pthread_mutex_lock(&dev->mu);
    slow_ms = dev->fault.slow_op[0] == '\0' || !strcmp(dev->fault.slow_op, LYD_NAME(rpc))
                  ? dev->fault.slow_ms
                  : 0;
    if (dev->fault.drop) {
        drop = true;
        if (dev->fault.drop > 0) {
            dev->fault.drop--;
        }
    }
    pthread_mutex_unlock(&dev->mu);

    if (drop) {
        /* No reply is written to an invalid session; the poll thread then
         * frees it, which closes the connection mid-RPC. */
        CAIRN_INFO("msg=\"dropping session (injected fault)\" device=%s session=%" PRIu32,
                   dev->name, c.sid);
        nc_session_set_term_reason(session, NC_SESSION_TERM_DROPPED);
        nc_session_set_status(session, NC_STATUS_INVALID);
        return nc_server_reply_ok();
    }
    if (slow_ms) {
        struct timespec ts = {slow_ms / 1000, (long)(slow_ms % 1000) * 1000000L};
        pthread_mutex_lock(&dev->mu);
        dev->busy_op = LYD_NAME(rpc); /* a schema name: lives as long as the context */
        pthread_mutex_unlock(&dev->mu);
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&dev->mu);
        dev->busy_op = NULL;
        pthread_mutex_unlock(&dev->mu);
    }
    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (!strcmp(ops[i].name, LYD_NAME(rpc))) {
            if (ops[i].needs_lock) {
                pthread_mutex_lock(&dev->mu);
            }
            reply = ops[i].fn(&c);
            if (ops[i].needs_lock) {
                pthread_mutex_unlock(&dev->mu);
            }
            return reply;
        }
    }
    return reply_err(c.ctx, NC_ERR_OP_NOT_SUPPORTED, 0, "operation %s is not supported",
                     LYD_NAME(rpc));
}

void rpc_setup(struct devsim *sim)
{
    struct lysc_node *node;
    nc_set_global_rpc_clb(rpc_dispatch);
    /* A schema node's priv wins over the global callback: replace the
     * built-in get-schema that nc_server_init installed. */
    node =
        (struct lysc_node *)lys_find_path(sim->ctx, NULL, "/ietf-netconf-monitoring:get-schema", 0);
    if (node) {
        /* ISO C has no cast between function and object pointers. */
        union {
            nc_rpc_clb fn;
            void *ptr;
        } clb = {.fn = rpc_dispatch};
        node->priv = clb.ptr;
    }
}
