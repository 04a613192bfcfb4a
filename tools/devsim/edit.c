/*
 * Applying <edit-config> trees and NETCONF filters to libyang data trees.
 *
 * libyang 2.1 merges trees but knows nothing of NETCONF's per-node
 * operations (merge, replace, create, delete, remove, none), and has no
 * subtree filter: both are written here, on libyang's public API only.
 * libyang parses the `nc:operation` XML attribute into metadata of the
 * (internally annotated) ietf-netconf module, which is what we read.
 */
#include <stdio.h>
#include <string.h>

#include <nc_server.h>

#include "cairn.h"
#include "devsim.h"

int tree_dup(const struct lyd_node *tree, struct lyd_node **out)
{
    *out = NULL;
    if (!tree) {
        return 0;
    }
    return lyd_dup_siblings(tree, NULL, LYD_DUP_RECURSIVE | LYD_DUP_WITH_FLAGS, out) ? -1 : 0;
}

static const char *node_op(const struct lyd_node *node, const char *inherited)
{
    struct lyd_meta *meta = lyd_find_meta(node->meta, NULL, "ietf-netconf:operation");
    return meta ? lyd_get_meta_value(meta) : inherited;
}

/* Duplicates an edit subtree without its metadata, to be inserted. */
static int dup_plain(const struct lyd_node *node, struct lyd_node **out)
{
    struct lyd_node *dup, *elem;
    if (lyd_dup_single(node, NULL, LYD_DUP_RECURSIVE, &dup)) {
        return -1;
    }
    LYD_TREE_DFS_BEGIN(dup, elem)
    {
        struct lyd_meta *m = lyd_find_meta(elem->meta, NULL, "ietf-netconf:operation");
        if (m) {
            lyd_free_meta_single(m);
        }
        LYD_TREE_DFS_END(dup, elem);
    }
    *out = dup;
    return 0;
}

static int insert_node(struct lyd_node **first, struct lyd_node *parent, struct lyd_node *node)
{
    if (parent) {
        return lyd_insert_child(parent, node) ? -1 : 0;
    }
    return lyd_insert_sibling(*first, node, first) ? -1 : 0;
}

static void free_node(struct lyd_node **first, struct lyd_node *node)
{
    if (*first == node) {
        *first = node->next;
        /* lyd_first_sibling semantics: a freed first node moves the head */
    }
    lyd_free_tree(node);
    if (*first) {
        *first = lyd_first_sibling(*first);
    }
}

/* Applies one edit node under parent (or at top level, *first). */
static int apply_node(struct lyd_node **first, struct lyd_node *parent, const struct lyd_node *edit,
                      const char *inherited, int *tag, char *err, size_t errlen)
{
    const char *op = node_op(edit, inherited);
    struct lyd_node *match = NULL, *siblings = parent ? lyd_child(parent) : *first;
    struct lyd_node *dup;

    if (!edit->schema) {
        *tag = NC_ERR_UNKNOWN_ELEM;
        snprintf(err, errlen, "unknown element \"%s\"", LYD_NAME(edit));
        return -1;
    }
    if (siblings) {
        lyd_find_sibling_first(siblings, edit, &match);
    }
    if (!strcmp(op, "delete") || !strcmp(op, "remove")) {
        if (!match || (match->flags & LYD_DEFAULT)) {
            if (!strcmp(op, "delete")) {
                *tag = NC_ERR_DATA_MISSING;
                snprintf(err, errlen, "delete of missing node \"%s\"", LYD_NAME(edit));
                return -1;
            }
            return 0;
        }
        free_node(parent ? &siblings : first, match);
        return 0;
    }
    if (!strcmp(op, "create") && match && !(match->flags & LYD_DEFAULT)) {
        *tag = NC_ERR_DATA_EXISTS;
        snprintf(err, errlen, "create of existing node \"%s\"", LYD_NAME(edit));
        return -1;
    }
    if (!strcmp(op, "replace") || !strcmp(op, "create")) {
        if (match) {
            free_node(parent ? &siblings : first, match);
        }
        if (dup_plain(edit, &dup) || insert_node(first, parent, dup)) {
            *tag = NC_ERR_OP_FAILED;
            snprintf(err, errlen, "insert \"%s\" failed", LYD_NAME(edit));
            return -1;
        }
        return 0;
    }
    if (strcmp(op, "merge") && strcmp(op, "none")) {
        *tag = NC_ERR_BAD_ATTR;
        snprintf(err, errlen, "unknown operation \"%s\"", op);
        return -1;
    }

    /* merge or none */
    if (edit->schema->nodetype & LYD_NODE_TERM) {
        if (!strcmp(op, "none")) {
            return 0;
        }
        if (match && edit->schema->nodetype == LYS_LEAF) {
            LY_ERR r = lyd_change_term(match, lyd_get_value(edit));
            return (r == LY_SUCCESS || r == LY_EEXIST || r == LY_ENOT) ? 0 : -1;
        }
        if (match) {
            return 0; /* an existing leaf-list entry */
        }
        if (dup_plain(edit, &dup) || insert_node(first, parent, dup)) {
            *tag = NC_ERR_OP_FAILED;
            snprintf(err, errlen, "insert \"%s\" failed", LYD_NAME(edit));
            return -1;
        }
        return 0;
    }
    if (edit->schema->nodetype & LYD_NODE_ANY) {
        if (match) {
            free_node(parent ? &siblings : first, match);
        }
        if (dup_plain(edit, &dup) || insert_node(first, parent, dup)) {
            return -1;
        }
        return 0;
    }
    /* containers and list entries: create the node itself, then recurse */
    if (!match) {
        if (lyd_dup_single(edit, NULL, 0, &match)) {
            return -1;
        }
        struct lyd_meta *m = lyd_find_meta(match->meta, NULL, "ietf-netconf:operation");
        if (m) {
            lyd_free_meta_single(m);
        }
        if (insert_node(first, parent, match)) {
            lyd_free_tree(match);
            return -1;
        }
    } else if (match->flags & LYD_DEFAULT) {
        match->flags &= ~LYD_DEFAULT;
    }
    const struct lyd_node *child;
    LY_LIST_FOR(lyd_child(edit), child)
    {
        if (child->schema && lysc_is_key(child->schema)) {
            continue;
        }
        if (apply_node(first, match, child, op, tag, err, errlen)) {
            return -1;
        }
    }
    return 0;
}

int edit_apply(struct lyd_node **target, const struct lyd_node *edit, const char *defop, int *tag,
               char *err, size_t errlen)
{
    const struct lyd_node *node;
    LY_LIST_FOR(edit, node)
    {
        if (node->schema && !strcmp(node->schema->module->name, "cairn-fencing")) {
            continue; /* the fencing token is recorded, never stored */
        }
        if (apply_node(target, NULL, node, defop, tag, err, errlen)) {
            return -1;
        }
    }
    if (*target) {
        *target = lyd_first_sibling(*target);
    }
    return 0;
}

/* Filters. */

static const char *node_ns(const struct lyd_node *node)
{
    if (node->schema) {
        return node->schema->module->ns;
    }
    const struct lyd_node_opaq *opaq = (const struct lyd_node_opaq *)node;
    return opaq->name.module_ns;
}

static bool blank(const char *s)
{
    if (!s) {
        return true;
    }
    for (; *s; s++) {
        if (!strchr(" \t\r\n", *s)) {
            return false;
        }
    }
    return true;
}

static const char *node_modname(const struct ly_ctx *ctx, const struct lyd_node *node)
{
    const char *ns = node_ns(node);
    const struct lys_module *mod;
    if (!ns) {
        return NULL;
    }
    mod = ly_ctx_get_module_implemented_ns(ctx, ns);
    return mod ? mod->name : NULL;
}

/* True for a content-match node: a leaf element holding a value. */
static bool content_match(const struct lyd_node *node)
{
    if (lyd_child(node)) {
        return false;
    }
    return !blank(lyd_get_value(node));
}

/* Appends the XPath expressions selected by one subtree filter node. */
static int subtree_paths(const struct ly_ctx *ctx, const struct lyd_node *node, const char *prefix,
                         struct cairn_buf *paths)
{
    const char *mod = node_modname(ctx, node);
    const struct lyd_node *child;
    struct cairn_buf step;
    bool has_select = false;
    int rv = 0;

    if (!mod) {
        return 0; /* a namespace no module has: selects nothing */
    }
    cairn_buf_init(&step);
    cairn_buf_printf(&step, "%s/%s:%s", prefix, mod, LYD_NAME(node));
    LY_LIST_FOR(lyd_child(node), child)
    {
        const char *cmod = node_modname(ctx, child);
        if (cmod && content_match(child)) {
            const char *v = lyd_get_value(child);
            cairn_buf_printf(&step, strchr(v, '\'') ? "[%s:%s=\"%s\"]" : "[%s:%s='%s']", cmod,
                             LYD_NAME(child), v);
        } else {
            has_select = true;
        }
    }
    if (!has_select) {
        rv = cairn_buf_append(paths, step.data, step.len + 1);
    } else {
        LY_LIST_FOR(lyd_child(node), child)
        {
            if (!content_match(child) && (rv = subtree_paths(ctx, child, step.data, paths))) {
                break;
            }
        }
    }
    cairn_buf_close(&step);
    return rv;
}

static int select_xpath(const struct lyd_node *data, const char *xpath, struct lyd_node **out,
                        char *err, size_t errlen)
{
    struct ly_set *set = NULL;
    uint32_t i;
    if (!data) {
        return 0;
    }
    if (lyd_find_xpath(data, xpath, &set)) {
        snprintf(err, errlen, "invalid filter expression \"%s\"", xpath);
        return -1;
    }
    for (i = 0; i < set->count; i++) {
        struct lyd_node *dup, *top;
        if (lyd_dup_single(set->dnodes[i], NULL,
                           LYD_DUP_RECURSIVE | LYD_DUP_WITH_PARENTS | LYD_DUP_WITH_FLAGS, &dup)) {
            ly_set_free(set, NULL);
            return -1;
        }
        for (top = dup; top->parent; top = lyd_parent(top)) {
        }
        if (lyd_merge_tree(out, top, LYD_MERGE_DESTRUCT | LYD_MERGE_WITH_FLAGS)) {
            lyd_free_all(top);
            ly_set_free(set, NULL);
            return -1;
        }
    }
    ly_set_free(set, NULL);
    return 0;
}

int filter_apply(const struct ly_ctx *ctx, const struct lyd_node *data,
                 const struct lyd_node *filter, struct lyd_node **out, char *err, size_t errlen)
{
    struct lyd_meta *meta;
    const struct lyd_node_any *any = (const struct lyd_node_any *)filter;
    struct lyd_node *result = NULL;
    int rv = 0;

    *out = NULL;
    if (!filter) {
        return tree_dup(data, out);
    }
    meta = lyd_find_meta(filter->meta, NULL, "ietf-netconf:type");
    if (meta && !strcmp(lyd_get_meta_value(meta), "xpath")) {
        meta = lyd_find_meta(filter->meta, NULL, "ietf-netconf:select");
        if (!meta) {
            snprintf(err, errlen, "xpath filter without a select attribute");
            return -1;
        }
        rv = select_xpath(data, lyd_get_meta_value(meta), &result, err, errlen);
    } else if (any->value_type == LYD_ANYDATA_DATATREE) {
        const struct lyd_node *top;
        struct cairn_buf paths;
        cairn_buf_init(&paths);
        LY_LIST_FOR(any->value.tree, top)
        {
            if ((rv = subtree_paths(ctx, top, "", &paths))) {
                break;
            }
        }
        for (size_t off = 0; rv == 0 && paths.data && off < paths.len;
             off += strlen(paths.data + off) + 1) {
            rv = select_xpath(data, paths.data + off, &result, err, errlen);
        }
        cairn_buf_close(&paths);
    } else if (any->value_type != LYD_ANYDATA_STRING || !blank(any->value.str)) {
        snprintf(err, errlen, "unsupported filter content");
        return -1;
    }
    if (rv) {
        lyd_free_all(result);
        return -1;
    }
    *out = result;
    return 0;
}

int tree_set(struct lyd_node **tree, const struct ly_ctx *ctx, const char *path, const char *value)
{
    struct lyd_node *node = NULL;
    if (lyd_new_path(NULL, ctx, path, value, LYD_NEW_PATH_UPDATE, &node) || !node) {
        return -1;
    }
    while (node->parent) {
        node = lyd_parent(node);
    }
    if (lyd_merge_siblings(tree, node, LYD_MERGE_DESTRUCT)) {
        lyd_free_all(node);
        return -1;
    }
    return 0;
}
