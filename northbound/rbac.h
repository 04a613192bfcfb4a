/*
 * Role-based access control of the REST API: one pure function that
 * decides whether a principal (a role, and for tenant roles the tenant it
 * belongs to) may perform an action on an object of a kind, given the
 * object's tenant scope. It knows nothing of HTTP or of the store's
 * contents; handlers look up the scope and turn the decision into 403 or
 * 404.
 *
 * Threads: any (no state).
 */
#ifndef CAIRN_RBAC_H
#define CAIRN_RBAC_H

#include <stdbool.h>

#include "store.h"

enum rbac_role {
    RBAC_SP_ADMIN = 1,    /* the service provider's administrator: everything */
    RBAC_SP_OPERATOR,     /* reads everything, runs operations, changes nothing */
    RBAC_TENANT_ADMIN,    /* everything inside its own tenant */
    RBAC_TENANT_OPERATOR, /* reads and operates inside its own tenant */
};

enum rbac_action {
    RBAC_READ = 1,
    RBAC_CREATE,
    RBAC_UPDATE,
    RBAC_DELETE,
    RBAC_OPERATE, /* run an operation (deploy, sync, ...) without changing the object */
};

enum rbac_decision {
    RBAC_ALLOW = 0,
    RBAC_FORBIDDEN, /* 403: the caller may see the object but not do this */
    RBAC_HIDDEN,    /* 404: the caller may not even know whether it exists */
};

struct rbac_principal {
    enum rbac_role role;
    const char *tenant; /* tenant roles: the tenant's id; SP roles: NULL */
};

/* Decides p doing action on an object of kind whose tenant scope is scope:
 * the owning tenant's id for a scoped object, the tenant's own id for a
 * STORE_KIND_TENANT object, NULL for a provider-level object (an SP user,
 * a member, a setting, a job without a tenant) and, for RBAC_CREATE, the
 * scope the new object would have.
 *
 * The rules, in the order they are applied:
 *   1. SP admin: allowed.
 *   2. SP operator: read and operate allowed; create, update, delete
 *      forbidden.
 *   3. Tenant roles, members and system settings: hidden.
 *   4. Tenant roles, catalog templates: read allowed; the rest forbidden.
 *   5. Tenant roles, a NULL scope: create forbidden (they asked for a
 *      provider-level object, which they know exists as a concept); any
 *      other action hidden.
 *   6. Tenant roles, another tenant's scope: hidden.
 *   7. Tenant roles, their own tenant object: read allowed, the rest
 *      forbidden (only the provider changes a tenant).
 *   8. Tenant admin, its own scope: allowed.
 *   9. Tenant operator, its own scope: read and operate allowed, the rest
 *      forbidden. */
enum rbac_decision rbac_decide(const struct rbac_principal *p, enum rbac_action action,
                               enum store_kind kind, const char *scope);

/* "sp_admin", "sp_operator", "tenant_admin", "tenant_operator"; NULL for
 * anything else. */
const char *rbac_role_name(enum rbac_role role);

/* Parses a role name; CAIRN_EINVAL if it is none of the four. */
int rbac_role_parse(const char *name, enum rbac_role *out);

/* True for the two tenant roles, which belong to exactly one tenant. */
bool rbac_role_is_tenant(enum rbac_role role);

/* "read", "create", ... for messages. */
const char *rbac_action_name(enum rbac_action action);

#endif /* CAIRN_RBAC_H */
