/*
 * The resource table: every API path cairnctl uses and the columns of every
 * table it prints are named here and nowhere else. A resource takes the
 * verbs its bits name (struct ctl_verb in commands.c says what each does),
 * so a new REST resource with the usual conventions (list, get, POST, PUT,
 * DELETE, ETags, problem+json) needs one row here and nothing else.
 */
#include <string.h>

#include "ctl.h"

static const struct ctl_column tenant_columns[] = {
    {"ID", "id"},
    {"NAME", "name"},
    {"DESCRIPTION", "description"},
    {"EMAIL", "contact.email"},
    {"REVISION", "mod_revision"},
    {NULL, NULL},
};

static const struct ctl_column user_columns[] = {
    {"ID", "id"},
    {"USERNAME", "username"},
    {"ROLE", "role"},
    {"TENANT", "tenant_id"},
    {"DISABLED", "disabled"},
    {"REVISION", "mod_revision"},
    {NULL, NULL},
};

static const struct ctl_column site_columns[] = {
    {"ID", "id"},
    {"TENANT", "tenant_id"},
    {"NAME", "name"},
    {"ROLE", "role"},
    {"CITY", "address.city"},
    {"COUNTRY", "address.country"},
    {"REVISION", "mod_revision"},
    {NULL, NULL},
};

static const struct ctl_column device_columns[] = {
    {"ID", "id"},
    {"SITE", "site_id"},
    {"SERIAL", "serial"},
    {"FAMILY", "family"},
    {"HOST", "management.host"},
    {"DESIRED", "desired_state"},
    {"STATUS", "status.state"},
    {"REVISION", "mod_revision"},
    {NULL, NULL},
};

static const struct ctl_column template_columns[] = {
    {"ID", "id"},       {"NAME", "name"},     {"VERSION", "version"},       {"TYPE", "type"},
    {"STATE", "state"}, {"PUBLIC", "public"}, {"REVISION", "mod_revision"}, {NULL, NULL},
};

static const struct ctl_column service_columns[] = {
    {"ID", "id"},
    {"TENANT", "tenant_id"},
    {"NAME", "name"},
    {"TYPE", "type"},
    {"DESIRED", "desired_state"},
    {"GENERATION", "generation"},
    {"JOB", "job_id"},
    {NULL, NULL},
};

static const struct ctl_column job_columns[] = {
    {"ID", "id"},
    {"TYPE", "type"},
    {"STATE", "state"},
    {"DONE", "progress.done"},
    {"TOTAL", "progress.total"},
    {"TARGET", "target.kind"},
    {"TARGET-ID", "target.id"},
    {"CREATED", "created_at"},
    {NULL, NULL},
};

static const struct ctl_column member_columns[] = {
    {"ID", "id"},
    {"RAFT-ADDRESS", "raft_address"},
    {"API-ADDRESS", "api_address"},
    {"ROLE", "role"},
    {"STATE", "state"},
    {"REACHABLE", "reachable"},
    {"TERM", "term"},
    {"COMMIT", "commit_index"},
    {"APPLIED", "applied_index"},
    {NULL, NULL},
};

/* The audit route is not served yet (issue 3): these names follow the
 * store's audit record and are to be checked against the route. */
static const struct ctl_column audit_columns[] = {
    {"SEQ", "seq"},   {"TIME", "time"}, {"USER", "user"},     {"TENANT", "tenant_id"}, {"OP", "op"},
    {"KIND", "kind"}, {"ID", "id"},     {"STATUS", "status"}, {"MESSAGE", "message"},  {NULL, NULL},
};

#define V(id) CTL_VERB_BIT(CTL_VERB_##id)

const struct ctl_resource ctl_resources[] = {
    {"cluster", "/api/v1/cluster", NULL, "members", member_columns, V(STATUS), false,
     "the cluster as one node sees it"},
    {"member", "/api/v1/cluster/members", "/api/v1/cluster", "members", member_columns,
     V(LIST) | V(ADD) | V(REMOVE), false, "cluster members (cairnd nodes)"},
    {"tenant", "/api/v1/tenants", NULL, "items", tenant_columns, CTL_VERBS_CRUD, false,
     "customers of the service provider"},
    {"user", "/api/v1/users", NULL, "items", user_columns, CTL_VERBS_CRUD, false,
     "users and their roles"},
    {"site", "/api/v1/sites", NULL, "items", site_columns, CTL_VERBS_CRUD, false,
     "tenants' sites (hubs and spokes)"},
    {"device", "/api/v1/devices", NULL, "items", device_columns,
     CTL_VERBS_CRUD | V(ONBOARD) | V(CHECK_DRIFT) | V(SYNC_FROM), false, "managed devices (CPEs)"},
    {"template", "/api/v1/templates", NULL, "items", template_columns, CTL_VERBS_CRUD | V(PUBLISH),
     false, "the service catalog"},
    {"service", "/api/v1/services", NULL, "items", service_columns, CTL_VERBS_CRUD, true,
     "service instances (writes run as jobs)"},
    {"import", "/api/v1/imports", NULL, NULL, NULL, V(CREATE), true,
     "bulk import of a tenant's sites and devices (runs as a job)"},
    {"job", "/api/v1/jobs", NULL, "items", job_columns, V(LIST) | V(GET) | V(WAIT) | V(CANCEL),
     false, "long-running operations"},
    {"audit", "/api/v1/audit", NULL, "items", audit_columns, V(AUDIT), false,
     "the audit log (service provider users)"},
    {"backup", "/api/v1/cluster/backup", NULL, NULL, NULL, V(BACKUP), false,
     "a consistent backup of the cluster's state"},
    {"login", "/api/v1/auth/login", NULL, NULL, NULL, V(LOGIN), false,
     "log in and store the token in the token file"},
    {"logout", "/api/v1/auth/logout", NULL, NULL, NULL, V(LOGOUT), false,
     "revoke the stored token and remove the token file"},
    {"whoami", "/api/v1/auth/whoami", NULL, NULL, NULL, V(WHOAMI), false,
     "the user the credentials belong to"},
    {NULL, NULL, NULL, NULL, NULL, 0, false, NULL},
};

#undef V

const struct ctl_resource *ctl_resource_find(const char *word)
{
    for (const struct ctl_resource *r = ctl_resources; r->word != NULL; r++) {
        if (strcmp(r->word, word) == 0) {
            return r;
        }
    }
    return NULL;
}
