/*
 * Authorization of API requests and the audit of what it refuses. The
 * decision itself is rbac.c's pure function; this file turns it into
 * answers (403 forbidden; for what the caller may not even see, the very
 * 404 a missing object gets, so that no status, body or header tells a
 * tenant user whether another tenant's object exists) and records every
 * refused write in the store's audit log with a STORE_OP_AUDIT command.
 *
 * The audit record is best effort: the refusal is the answer whether or
 * not the record could be committed (a cluster without quorum still
 * refuses), and a failure is logged.
 */
#include "api_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct rbac_principal api_rbac_principal(const struct api_req *req)
{
    struct rbac_principal p = {0, NULL};
    if (req->authenticated) {
        p.role = req->who.role;
        p.tenant = req->who.tenant[0] != '\0' ? req->who.tenant : NULL;
    }
    return p;
}

static void audit_va(struct api_req *req, enum store_kind kind, const char *id, const char *scope,
                     int status, const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

static void audit_va(struct api_req *req, enum store_kind kind, const char *id, const char *scope,
                     int status, const char *fmt, va_list ap)
{
    char request_id[API_REQUEST_ID_SIZE];
    char message[256];
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    struct store_command cmd;
    struct store_result res;
    int rv;

    vsnprintf(message, sizeof message, fmt, ap);
    req->audited = true;
    api_request_id_fresh(request_id);
    api_command_init(req, &cmd, STORE_OP_AUDIT, kind);
    cmd.id = id != NULL && id[0] != '\0' ? id : "-";
    cmd.request_id = request_id;
    cmd.fingerprint = api_fingerprint(req->method, req->path, NULL, 0);
    /* A tenant user's refusals are filed under its own tenant, where its
     * administrators look; the provider's under the object's scope. */
    cmd.tenant = req->authenticated && req->who.tenant[0] != '\0' ? req->who.tenant : scope;
    cmd.audit_status = status;
    cmd.audit_message = message;
    rv = api_propose_quiet(req->api, &cmd, req->deadline_ms, &res, errmsg, sizeof errmsg);
    if (rv == 0 && res.status != 0) {
        rv = res.status;
        snprintf(errmsg, sizeof errmsg, "%s", res.message);
    }
    if (rv != 0) {
        CAIRN_WARN("msg=\"audit record lost\" user=%s method=%s path=%s error=\"%s\"",
                   cmd.caller != NULL ? cmd.caller : "-", req->method, req->path,
                   errmsg[0] != '\0' ? errmsg : cairn_strerror(rv));
    }
}

void api_audit_refusal(struct api_req *req, enum store_kind kind, const char *id, const char *scope,
                       int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    audit_va(req, kind, id, scope, status, fmt, ap);
    va_end(ap);
}

int api_forbidden(struct api_req *req, enum store_kind kind, const char *id, const char *scope,
                  const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    api_audit_refusal(req, kind, id, scope, CAIRN_EFORBIDDEN, "forbidden: %s %s: %s", req->method,
                      req->path, detail);
    return api_problem(req, 403, "forbidden", NULL, NULL, "%s", detail);
}

int api_authorize(struct api_req *req, enum rbac_action action, enum store_kind kind,
                  const char *scope, const char *noun, const char *id)
{
    struct rbac_principal p = api_rbac_principal(req);
    enum rbac_decision d = rbac_decide(&p, action, kind, scope);

    if (d == RBAC_ALLOW) {
        return 0;
    }
    if (d == RBAC_HIDDEN) {
        if (action != RBAC_READ) {
            api_audit_refusal(req, kind, id, scope, CAIRN_ENOTFOUND,
                              "hidden: %s %s: not visible to role %s", req->method, req->path,
                              rbac_role_name(p.role));
        }
        return api_not_found(req, noun, id != NULL ? id : "-");
    }
    if (action == RBAC_READ) {
        return api_problem(req, 403, "forbidden", NULL, NULL, "role %s may not read this %s",
                           rbac_role_name(p.role), noun);
    }
    return api_forbidden(req, kind, id, scope, "role %s may not %s %ss%s", rbac_role_name(p.role),
                         rbac_action_name(action), noun,
                         rbac_role_is_tenant(p.role) && kind == STORE_KIND_TENANT
                             ? " (only the service provider changes tenants)"
                             : "");
}
