/*
 * Renderers: one per service type, each turning a service's parameters
 * (checked against the type's JSON Schema first, params.c) and the target
 * device's facts and site into a data tree of the cairn-cpe modules; and
 * the merge of several services' trees into a device's intended config.
 *
 * Rendering is deterministic: the same parameters and target give the
 * same tree, and services merge in order of their ids. Two services that
 * set the same list entry or leaf with different content are a conflict,
 * reported with both services' ids; equal content is shared.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "southbound.h"

/* Rendering state of one service. */
struct out {
    struct ly_ctx *ctx;    /* schema context */
    struct lyd_node *tree; /* the tree being built */
    char *errmsg;          /* caller's buffer */
    size_t size;           /* its size */
    int rv;                /* first error, later calls do nothing */
};

/* Sets the node at a printf-formatted path to value (NULL: create only). */
static void set(struct out *o, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set(struct out *o, const char *value, const char *fmt, ...)
{
    char path[512];
    struct lyd_node *node = NULL;
    va_list ap;
    LY_ERR r;
    if (o->rv) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    r = lyd_new_path(o->tree, o->ctx, path, value, LYD_NEW_PATH_UPDATE, &node);
    if (r && r != LY_EEXIST) {
        const struct ly_err_item *e = ly_err_last(o->ctx);
        cairn_errmsg_set(o->errmsg, o->size, "set %s: %s", path, e ? e->msg : "libyang error");
        o->rv = CAIRN_EINVAL;
        return;
    }
    if (!o->tree && node) {
        for (o->tree = node; lyd_parent(o->tree); o->tree = lyd_parent(o->tree)) {
        }
    }
    if (o->tree) {
        o->tree = lyd_first_sibling(o->tree);
    }
}

/* How a JSON member becomes a leaf: a string or integer sets its value, a
 * boolean sets true/false (or, for an `empty` leaf, creates it when true),
 * an array of strings adds leaf-list entries. */
struct field {
    const char *key;  /* JSON member */
    const char *leaf; /* YANG leaf or leaf-list below the entry */
    bool empty;       /* the leaf has type empty */
};

/* Sets every member of obj that `fields` (ended by a NULL key) maps. */
static void set_fields(struct out *o, const json_t *obj, const char *base,
                       const struct field *fields)
{
    const struct field *f;
    for (f = fields; f->key; f++) {
        const json_t *v = json_object_get(obj, f->key), *item;
        char num[32];
        size_t i;
        if (json_is_string(v)) {
            set(o, json_string_value(v), "%s/%s", base, f->leaf);
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            set(o, num, "%s/%s", base, f->leaf);
        } else if (json_is_boolean(v) && f->empty) {
            if (json_is_true(v)) {
                set(o, NULL, "%s/%s", base, f->leaf);
            }
        } else if (json_is_boolean(v)) {
            set(o, json_is_true(v) ? "true" : "false", "%s/%s", base, f->leaf);
        } else if (json_is_array(v)) {
            json_array_foreach(v, i, item)
            {
                set(o, NULL, "%s/%s[.='%s']", base, f->leaf, json_string_value(item));
            }
        }
    }
}

/* Adds one list entry keyed by name per element of arr, with its fields. */
static void set_entries(struct out *o, const json_t *arr, const char *list,
                        const struct field *fields)
{
    const json_t *item;
    char base[200];
    size_t i;
    json_array_foreach(arr, i, item)
    {
        snprintf(base, sizeof(base), "%s[name='%s']", list,
                 json_string_value(json_object_get(item, "name")));
        set(o, NULL, "%s", base);
        set_fields(o, item, base, fields);
    }
}

static const struct field zone_fields[] = {{"interfaces", "interface", false}, {0}};
static const struct field policy_fields[] = {
    {"from_zone", "from-zone", false},
    {"to_zone", "to-zone", false},
    {"source_prefix", "source-prefix", false},
    {"destination_prefix", "destination-prefix", false},
    {"protocol", "protocol", false},
    {"port", "destination-port", false},
    {"action", "action", false},
    {"log", "log", false},
    {0},
};
static const struct field nat_fields[] = {
    {"type", "type", false},
    {"egress_interface", "egress-interface", false},
    {"match_prefix", "match-prefix", false},
    {"match_port", "match-port", false},
    {"masquerade", "masquerade", true},
    {"translated_address", "translated-address", false},
    {"translated_port", "translated-port", false},
    {0},
};
static const struct field vnf_fields[] = {
    {"image", "image", false},
    {"vcpus", "vcpus", false},
    {"memory_mb", "memory-mb", false},
    {"interfaces", "attached-interface", false},
    {"admin_state", "admin-state", false},
    {0},
};
static const struct field ipsec_fields[] = {
    {"local_interface", "local-interface", false},
    {"pre_shared_key", "pre-shared-key", false},
    {"ike_proposal", "ike-proposal", false},
    {0},
};
static const struct field ipsec_peer_fields[] = {{"address", "peer", false},
                                                 {"prefixes", "protected-prefix", false},
                                                 {0}};
static const struct field overlay_fields[] = {{"encapsulation", "encapsulation", false}, {0}};
static const struct field vxlan_fields[] = {{"vni", "vni", false}, {0}};
static const struct field overlay_peer_fields[] = {{"address", "destination", false}, {0}};

static void render_firewall(struct out *o, const json_t *p, const struct sb_target *t)
{
    (void)t;
    set_entries(o, json_object_get(p, "zones"), "/cairn-cpe-security:security/zone", zone_fields);
    set_entries(o, json_object_get(p, "rules"), "/cairn-cpe-security:security/policy",
                policy_fields);
}

static void render_nat(struct out *o, const json_t *p, const struct sb_target *t)
{
    (void)t;
    set_entries(o, json_object_get(p, "rules"), "/cairn-cpe-nat:nat/rule", nat_fields);
}

/* The target's own entry in a service's "sites", or NULL. */
static const json_t *own_site(const json_t *p, const struct sb_target *t)
{
    const json_t *s;
    size_t i;
    json_array_foreach(json_object_get(p, "sites"), i, s)
    {
        if (t->site && !strcmp(json_string_value(json_object_get(s, "site")), t->site)) {
            return s;
        }
    }
    return NULL;
}

/* Site-to-site VPN: a full mesh; one IPsec tunnel to every other site. */
static void render_vpn(struct out *o, const json_t *p, const struct sb_target *t)
{
    const json_t *s, *self = own_site(p, t);
    const char *name = json_string_value(json_object_get(p, "name"));
    char base[200];
    size_t i;
    json_array_foreach(json_object_get(p, "sites"), i, s)
    {
        if (s == self) {
            continue;
        }
        snprintf(base, sizeof(base), "/cairn-cpe-tunnels:tunnels/ipsec[name='%s-%s']", name,
                 json_string_value(json_object_get(s, "site")));
        set_fields(o, p, base, ipsec_fields);
        set_fields(o, s, base, ipsec_peer_fields);
    }
}

/* SD-WAN: hub and spoke. A spoke has an overlay and a BGP session to each
 * hub; a hub to every other site. */
static void render_sdwan(struct out *o, const json_t *p, const struct sb_target *t)
{
    const json_t *s, *self = own_site(p, t);
    const char *name = json_string_value(json_object_get(p, "name"));
    bool vxlan = !strcmp(json_string_value(json_object_get(p, "encapsulation")), "vxlan");
    const char *role = self ? json_string_value(json_object_get(self, "role"))
                            : (t->site_role ? t->site_role : "spoke");
    const json_t *local_as = self && json_object_get(self, "as") ? json_object_get(self, "as")
                                                                 : json_object_get(p, "local_as");
    char base[200], num[32];
    size_t i;

    if (!local_as) {
        cairn_errmsg_set(o->errmsg, o->size,
                         "local_as: required when the device's site (%s) has no \"as\"",
                         t->site ? t->site : "none");
        o->rv = CAIRN_EINVAL;
        return;
    }
    snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(local_as));
    set(o, num, "/cairn-cpe-routing:routing/bgp/local-as");
    json_array_foreach(json_object_get(p, "sites"), i, s)
    {
        const char *peer_role = json_string_value(json_object_get(s, "role"));
        if (s == self || (!strcmp(role, "spoke") && strcmp(peer_role, "hub"))) {
            continue;
        }
        snprintf(base, sizeof(base), "/cairn-cpe-tunnels:tunnels/overlay[name='%s-%s']", name,
                 json_string_value(json_object_get(s, "site")));
        set_fields(o, p, base, overlay_fields);
        if (vxlan) {
            set_fields(o, p, base, vxlan_fields); /* a vni is valid for VXLAN only */
        }
        set_fields(o, s, base, overlay_peer_fields);
        if (t->site_address) {
            set(o, t->site_address, "%s/source", base);
        }
        snprintf(base, sizeof(base), "/cairn-cpe-routing:routing/bgp/neighbor[address='%s']",
                 json_string_value(json_object_get(s, "address")));
        snprintf(num, sizeof(num), "%lld",
                 (long long)json_integer_value(json_object_get(s, "as") ? json_object_get(s, "as")
                                                                        : local_as));
        set(o, num, "%s/remote-as", base);
        set(o, json_string_value(json_object_get(s, "site")), "%s/description", base);
    }
}

static void render_vnf(struct out *o, const json_t *p, const struct sb_target *t)
{
    if (!t->model || strncmp(t->model, "ucpe", 4)) {
        cairn_errmsg_set(o->errmsg, o->size,
                         "device model %s cannot host VNFs: target a universal CPE (ucpe-*)",
                         t->model ? t->model : "(unknown)");
        o->rv = CAIRN_EINVAL;
        return;
    }
    set_entries(o, json_object_get(p, "instances"), "/cairn-cpe-vnf:vnfs/instance", vnf_fields);
}

static const struct {
    const char *type;
    void (*fn)(struct out *o, const json_t *params, const struct sb_target *t);
} renderers[] = {
    {"firewall-policy", render_firewall},
    {"nat", render_nat},
    {"site-to-site-vpn", render_vpn},
    {"sdwan", render_sdwan},
    {"vnf", render_vnf},
};

int sb_render_service(struct ly_ctx *ctx, const struct sb_service *svc,
                      const struct sb_target *target, struct lyd_node **out, char *errmsg,
                      size_t size)
{
    struct out o = {ctx, NULL, errmsg, size, 0};
    size_t i;

    o.rv = params_check(svc->type, svc->parameters, errmsg, size);
    for (i = 0; !o.rv && i < sizeof(renderers) / sizeof(renderers[0]); i++) {
        if (!strcmp(renderers[i].type, svc->type)) {
            renderers[i].fn(&o, svc->parameters, target);
            break;
        }
    }
    if (o.rv) {
        lyd_free_all(o.tree);
        cairn_errmsg_wrap(errmsg, size, "render service %s (%s)", svc->id, svc->type);
        return o.rv;
    }
    *out = o.tree;
    return 0;
}

/* Checks that `a` and `b` (siblings of the same schema level) agree: a
 * list entry or leaf present in both has the same content. */
static int agree(const struct lyd_node *a, const struct lyd_node *b, const char *ida,
                 const char *idb, char *errmsg, size_t size)
{
    const struct lyd_node *n;
    LY_LIST_FOR(a, n)
    {
        struct lyd_node *m = NULL;
        if (lyd_find_sibling_first(b, n, &m) || !m) {
            continue;
        }
        if (n->schema->nodetype & (LYS_CONTAINER)) {
            if (agree(lyd_child(n), lyd_child(m), ida, idb, errmsg, size)) {
                return CAIRN_ECONFLICT;
            }
        } else if (lyd_compare_single(n, m, LYD_COMPARE_FULL_RECURSION)) {
            char *path = lyd_path(n, LYD_PATH_STD, NULL, 0);
            cairn_errmsg_set(errmsg, size,
                             "services %s and %s set %s differently: change one of them", ida, idb,
                             path ? path : LYD_NAME(n));
            free(path);
            return CAIRN_ECONFLICT;
        }
    }
    return 0;
}

static int svc_cmp(const void *a, const void *b)
{
    const struct sb_service *const *x = a, *const *y = b;
    return strcmp((*x)->id, (*y)->id);
}

int sb_render_merge(struct ly_ctx *ctx, const struct lyd_node *base, const struct sb_service *svcs,
                    size_t nsvcs, const struct sb_target *target, struct lyd_node **out,
                    char *errmsg, size_t size)
{
    const struct sb_service **order = calloc(nsvcs ? nsvcs : 1, sizeof(*order));
    struct lyd_node **trees = calloc(nsvcs ? nsvcs : 1, sizeof(*trees));
    struct lyd_node *intended = NULL;
    size_t i, j;
    int rv = 0;

    if (!order || !trees) {
        rv = CAIRN_ENOMEM;
        cairn_errmsg_set(errmsg, size, "render: %s", cairn_strerror(rv));
        goto out;
    }
    for (i = 0; i < nsvcs; i++) {
        order[i] = &svcs[i];
    }
    qsort(order, nsvcs, sizeof(*order), svc_cmp);
    for (i = 0; !rv && i < nsvcs; i++) {
        rv = sb_render_service(ctx, order[i], target, &trees[i], errmsg, size);
        for (j = 0; !rv && j < i; j++) {
            rv = agree(trees[i], trees[j], order[j]->id, order[i]->id, errmsg, size);
        }
    }
    if (!rv && base && lyd_dup_siblings(base, NULL, LYD_DUP_RECURSIVE, &intended)) {
        rv = CAIRN_ENOMEM;
    }
    for (i = 0; !rv && i < nsvcs; i++) {
        if (trees[i] && lyd_merge_siblings(&intended, trees[i], 0)) {
            rv = CAIRN_ENOMEM;
            cairn_errmsg_set(errmsg, size, "merge service %s: %s", order[i]->id,
                             cairn_strerror(rv));
        }
    }
    if (!rv) {
        *out = intended;
        intended = NULL;
    }
out:
    for (i = 0; trees && i < nsvcs; i++) {
        lyd_free_all(trees[i]);
    }
    lyd_free_all(intended);
    free(trees);
    free(order);
    return rv;
}

int sb_render_intended(struct ly_ctx *ctx, const struct lyd_node *base,
                       const struct sb_service *svcs, size_t nsvcs, const struct sb_target *target,
                       struct lyd_node **out, char *errmsg, size_t size)
{
    struct lyd_node *tree = NULL;
    int rv = sb_render_merge(ctx, base, svcs, nsvcs, target, &tree, errmsg, size);
    if (!rv) {
        rv = sb_schema_validate(ctx, &tree, errmsg, size);
    }
    if (rv) {
        lyd_free_all(tree);
        return rv;
    }
    *out = tree;
    return 0;
}
