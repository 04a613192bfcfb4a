/*
 * The access rules of rbac.h as one function over the role, the action,
 * the object's kind and its tenant scope. Hiding comes before forbidding:
 * a tenant user asking for another tenant's object gets the answer of a
 * missing object (404) whatever the action, so that no answer tells it the
 * object exists; only inside what it may see does it learn that it may not
 * do something (403).
 */
#include "rbac.h"

#include <stddef.h>
#include <string.h>

#include "cairn.h"

static const char *const role_names[] = {
    [RBAC_SP_ADMIN] = "sp_admin",
    [RBAC_SP_OPERATOR] = "sp_operator",
    [RBAC_TENANT_ADMIN] = "tenant_admin",
    [RBAC_TENANT_OPERATOR] = "tenant_operator",
};

#define N_ROLES (sizeof role_names / sizeof role_names[0])

const char *rbac_role_name(enum rbac_role role)
{
    if ((size_t)role >= N_ROLES) {
        return NULL;
    }
    return role_names[role];
}

int rbac_role_parse(const char *name, enum rbac_role *out)
{
    for (size_t i = 1; name != NULL && i < N_ROLES; i++) {
        if (strcmp(role_names[i], name) == 0) {
            *out = (enum rbac_role)i;
            return 0;
        }
    }
    return CAIRN_EINVAL;
}

bool rbac_role_is_tenant(enum rbac_role role)
{
    return role == RBAC_TENANT_ADMIN || role == RBAC_TENANT_OPERATOR;
}

const char *rbac_action_name(enum rbac_action action)
{
    switch (action) {
        case RBAC_READ:
            return "read";
        case RBAC_CREATE:
            return "create";
        case RBAC_UPDATE:
            return "update";
        case RBAC_DELETE:
            return "delete";
        case RBAC_OPERATE:
            return "operate";
    }
    return "?";
}

static bool read_or_operate(enum rbac_action action)
{
    return action == RBAC_READ || action == RBAC_OPERATE;
}

enum rbac_decision rbac_decide(const struct rbac_principal *p, enum rbac_action action,
                               enum store_kind kind, const char *scope)
{
    bool own;

    switch (p->role) {
        case RBAC_SP_ADMIN: /* 1 */
            return RBAC_ALLOW;
        case RBAC_SP_OPERATOR: /* 2 */
            return read_or_operate(action) ? RBAC_ALLOW : RBAC_FORBIDDEN;
        case RBAC_TENANT_ADMIN:
        case RBAC_TENANT_OPERATOR:
            break;
        default:
            return RBAC_HIDDEN; /* not a role: sees nothing */
    }
    if (kind == STORE_KIND_MEMBER || kind == STORE_KIND_SYSTEM) { /* 3 */
        return RBAC_HIDDEN;
    }
    if (kind == STORE_KIND_TEMPLATE) { /* 4 */
        return action == RBAC_READ ? RBAC_ALLOW : RBAC_FORBIDDEN;
    }
    if (scope == NULL) { /* 5 */
        return action == RBAC_CREATE ? RBAC_FORBIDDEN : RBAC_HIDDEN;
    }
    own = p->tenant != NULL && strcmp(p->tenant, scope) == 0;
    if (!own) { /* 6 */
        return RBAC_HIDDEN;
    }
    if (kind == STORE_KIND_TENANT) { /* 7 */
        return action == RBAC_READ ? RBAC_ALLOW : RBAC_FORBIDDEN;
    }
    if (p->role == RBAC_TENANT_ADMIN) { /* 8 */
        return RBAC_ALLOW;
    }
    return read_or_operate(action) ? RBAC_ALLOW : RBAC_FORBIDDEN; /* 9 */
}
