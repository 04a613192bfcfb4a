/*
 * The YANG side of device management: a libyang context holding the CPE
 * modules, validation of an intended config with libyang's own message and
 * path, a readable diff between two configs, and the edit-config content
 * that turns a device's running config into the intended one.
 *
 * The edit works per top-level container (one per cairn-cpe module): each
 * container that differs is sent whole with nc:operation="replace", one
 * that the intended config lacks with "remove". That keeps the edit small
 * for a typical change, is idempotent, and also repairs drift anywhere in
 * the container.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "southbound.h"

#ifndef SB_YANG_DIR
#define SB_YANG_DIR "southbound/yang"
#endif

/* The modules a Cairn CPE context holds (ietf-netconf comes first). */
static const char *const modules[] = {
    "ietf-netconf-monitoring", "cairn-cpe-system", "cairn-cpe-interfaces",
    "cairn-cpe-security",      "cairn-cpe-nat",    "cairn-cpe-tunnels",
    "cairn-cpe-routing",       "cairn-cpe-vnf",    "cairn-fencing",
};

/* libyang logs to stderr by default; keep only the last error, per thread. */
static void quiet(void)
{
    static uint32_t opts = LY_LOSTORE_LAST;
    ly_temp_log_options(&opts);
}

/* Writes libyang's last error (message and data path) into errmsg. */
static void ly_error(const struct ly_ctx *ctx, char *errmsg, size_t size, const char *what)
{
    const struct ly_err_item *e = ly_err_last(ctx);
    if (e && e->path) {
        cairn_errmsg_set(errmsg, size, "%s: %s (path: %s)", what, e->msg, e->path);
    } else {
        cairn_errmsg_set(errmsg, size, "%s: %s", what, e && e->msg ? e->msg : "libyang error");
    }
}

int sb_schema_ctx_create(const char *yang_dir, struct ly_ctx **out, char *errmsg, size_t size)
{
    static const char *nc_features[] = {"writable-running",
                                        "candidate",
                                        "confirmed-commit",
                                        "rollback-on-error",
                                        "validate",
                                        "xpath",
                                        NULL};
    struct ly_ctx *ctx;
    size_t i;

    quiet();
    if (!yang_dir) {
        yang_dir = SB_YANG_DIR;
    }
    if (ly_ctx_new(yang_dir, LY_CTX_DISABLE_SEARCHDIR_CWD, &ctx)) {
        cairn_errmsg_set(errmsg, size, "create YANG context from %s failed", yang_dir);
        return CAIRN_EINVAL;
    }
    if (!ly_ctx_load_module(ctx, "ietf-netconf", "2013-09-29", nc_features)) {
        goto err_after_new;
    }
    for (i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
        if (!ly_ctx_load_module(ctx, modules[i], NULL, NULL)) {
            goto err_after_new;
        }
    }
    *out = ctx;
    return 0;

err_after_new:
    ly_error(ctx, errmsg, size, "load YANG modules");
    cairn_errmsg_wrap(errmsg, size, "from %s", yang_dir);
    ly_ctx_destroy(ctx);
    return CAIRN_EINVAL;
}

int sb_schema_validate(struct ly_ctx *ctx, struct lyd_node **tree, char *errmsg, size_t size)
{
    quiet();
    ly_err_clean(ctx, NULL);
    if (lyd_validate_all(tree, ctx, LYD_VALIDATE_NO_STATE, NULL)) {
        ly_error(ctx, errmsg, size, "invalid config");
        return CAIRN_EINVAL;
    }
    return 0;
}

int sb_schema_check_modules(const struct lyd_node *tree, const char *const *mods, char *errmsg,
                            size_t size)
{
    const struct lyd_node *n;
    LY_LIST_FOR(tree, n)
    {
        const char *name = n->schema ? n->schema->module->name : "?";
        const char *const *m;
        if (n->flags & LYD_DEFAULT) {
            continue; /* only implicit defaults: nothing is configured */
        }
        for (m = mods; *m && strcmp(*m, name); m++) {
        }
        if (!*m) {
            cairn_errmsg_set(errmsg, size, "the device does not support YANG module %s", name);
            return CAIRN_EUNSUPPORTED;
        }
    }
    return 0;
}

/* The yang:operation of a diff node, inherited from its parents. */
static const char *diff_op(const struct lyd_node *node, const char *inherited)
{
    struct lyd_meta *m = lyd_find_meta(node->meta, NULL, "yang:operation");
    return m ? lyd_get_meta_value(m) : inherited;
}

static int diff_line(struct cairn_buf *b, char sign, const struct lyd_node *node, const char *tail)
{
    char *path = lyd_path(node, LYD_PATH_STD, NULL, 0);
    int rv;
    if (!path) {
        return CAIRN_ENOMEM;
    }
    rv = cairn_buf_printf(b, "%c %s%s\n", sign, path, tail);
    free(path);
    return rv;
}

static int diff_print(struct cairn_buf *b, const struct lyd_node *node, const char *inherited)
{
    const char *op = diff_op(node, inherited);
    const struct lyd_node *child;
    char tail[512];
    int rv = 0;

    if (!strcmp(op, "create")) {
        const struct lyd_node *elem;
        LYD_TREE_DFS_BEGIN(node, elem)
        {
            if ((elem->schema->nodetype & LYD_NODE_TERM) && !lysc_is_key(elem->schema)) {
                snprintf(tail, sizeof(tail), " = %s", lyd_get_value(elem));
                rv = rv ? rv : diff_line(b, '+', elem, tail);
            } else if (elem->schema->nodetype == LYS_LIST && elem == node) {
                rv = rv ? rv : diff_line(b, '+', elem, "");
            }
            LYD_TREE_DFS_END(node, elem);
        }
        return rv;
    }
    if (!strcmp(op, "delete")) {
        return diff_line(b, '-', node, "");
    }
    if (!strcmp(op, "replace")) {
        struct lyd_meta *orig = lyd_find_meta(node->meta, NULL, "yang:orig-value");
        if (node->schema->nodetype == LYS_LEAF && orig) {
            snprintf(tail, sizeof(tail), ": %s -> %s", lyd_get_meta_value(orig),
                     lyd_get_value(node));
        } else {
            snprintf(tail, sizeof(tail), " (moved)");
        }
        rv = diff_line(b, '~', node, tail);
    }
    LY_LIST_FOR(lyd_child_no_keys(node), child)
    {
        rv = rv ? rv : diff_print(b, child, "none");
    }
    return rv;
}

/* lyd_diff_siblings on two trees, libyang errors translated. */
static int diff_tree(const struct lyd_node *running, const struct lyd_node *intended,
                     struct lyd_node **diff, char *errmsg, size_t size)
{
    quiet();
    if (lyd_diff_siblings(running, intended, 0, diff)) {
        const struct lyd_node *any = running ? running : intended;
        ly_error(any ? LYD_CTX(any) : NULL, errmsg, size, "diff");
        return CAIRN_EINVAL;
    }
    return 0;
}

int sb_schema_diff(const struct lyd_node *running, const struct lyd_node *intended, char **text,
                   bool *changed, char *errmsg, size_t size)
{
    struct lyd_node *diff = NULL;
    const struct lyd_node *n;
    struct cairn_buf b;
    int rv;

    rv = diff_tree(running, intended, &diff, errmsg, size);
    if (rv) {
        return rv;
    }
    cairn_buf_init(&b);
    LY_LIST_FOR(diff, n)
    {
        rv = rv ? rv : diff_print(&b, n, "none");
    }
    if (!rv && !b.data) {
        b.data = strdup("");
        rv = b.data ? 0 : CAIRN_ENOMEM;
    }
    if (rv) {
        cairn_buf_close(&b);
        lyd_free_all(diff);
        cairn_errmsg_set(errmsg, size, "diff: %s", cairn_strerror(rv));
        return rv;
    }
    *changed = diff != NULL;
    *text = b.data;
    lyd_free_all(diff);
    return 0;
}

/* A top-level node of `tree` with the same schema as `like`, or NULL. */
static const struct lyd_node *top_match(const struct lyd_node *tree, const struct lyd_node *like)
{
    const struct lyd_node *n;
    LY_LIST_FOR(tree, n)
    {
        if (n->schema == like->schema && !(n->flags & LYD_DEFAULT)) {
            return n;
        }
    }
    return NULL;
}

/* Adds one top-level edit node (replace from intended, or remove). */
static int edit_add(struct ly_ctx *ctx, struct lyd_node **edit, const struct lyd_node *intended,
                    const struct lyd_node *changed)
{
    const struct lyd_node *want = top_match(intended, changed);
    struct lyd_node *node;
    if (want) {
        if (lyd_dup_single(want, NULL, LYD_DUP_RECURSIVE, &node)) {
            return CAIRN_ENOMEM;
        }
    } else if (lyd_new_inner(NULL, changed->schema->module, changed->schema->name, 0, &node)) {
        return CAIRN_ENOMEM;
    }
    node->flags &= ~LYD_DEFAULT; /* printed even when empty */
    if (lyd_new_meta(ctx, node, NULL, "ietf-netconf:operation", want ? "replace" : "remove", 0,
                     NULL) ||
        lyd_insert_sibling(*edit, node, edit)) {
        lyd_free_tree(node);
        return CAIRN_EINVAL;
    }
    return 0;
}

int sb_schema_edit(struct ly_ctx *ctx, const struct lyd_node *running,
                   const struct lyd_node *intended, uint64_t epoch, const char *node_id, char **xml,
                   char *errmsg, size_t size)
{
    struct lyd_node *diff = NULL, *edit = NULL, *fence = NULL;
    const struct lyd_node *n;
    char value[32];
    char *out = NULL;
    int rv;

    rv = diff_tree(running, intended, &diff, errmsg, size);
    if (rv) {
        return rv;
    }
    if (!diff) {
        *xml = NULL;
        return 0;
    }
    LY_LIST_FOR(diff, n)
    {
        rv = rv ? rv : edit_add(ctx, &edit, intended, n);
    }
    lyd_free_all(diff);
    snprintf(value, sizeof(value), "%llu", (unsigned long long)epoch);
    if (!rv && (lyd_new_path(NULL, ctx, "/cairn-fencing:controller/epoch", value, 0, &fence) ||
                (node_id && lyd_new_path(fence, NULL, "node", node_id, 0, NULL)) ||
                lyd_insert_sibling(edit, fence, &edit))) {
        lyd_free_tree(fence);
        rv = CAIRN_EINVAL;
    }
    if (!rv && lyd_print_mem(&out, lyd_first_sibling(edit), LYD_XML,
                             LYD_PRINT_WITHSIBLINGS | LYD_PRINT_WD_EXPLICIT | LYD_PRINT_SHRINK)) {
        rv = CAIRN_ENOMEM;
    }
    lyd_free_all(edit);
    if (rv) {
        ly_error(ctx, errmsg, size, "build edit-config");
        return rv;
    }
    *xml = out;
    return 0;
}

int sb_schema_print_json(const struct lyd_node *tree, char **out)
{
    if (!tree) {
        *out = strdup("{}");
        return *out ? 0 : CAIRN_ENOMEM;
    }
    if (lyd_print_mem(out, tree, LYD_JSON, LYD_PRINT_WITHSIBLINGS | LYD_PRINT_WD_EXPLICIT)) {
        return CAIRN_ENOMEM;
    }
    return 0;
}

int sb_schema_parse_json(struct ly_ctx *ctx, const char *json, struct lyd_node **out, char *errmsg,
                         size_t size)
{
    struct lyd_node *tree = NULL;
    quiet();
    ly_err_clean(ctx, NULL);
    if (lyd_parse_data_mem(ctx, json, LYD_JSON,
                           LYD_PARSE_ONLY | LYD_PARSE_STRICT | LYD_PARSE_NO_STATE, 0, &tree)) {
        ly_error(ctx, errmsg, size, "parse config JSON");
        return CAIRN_EMALFORMED;
    }
    *out = tree;
    return 0;
}
