/*
 * On-demand device operations: POST /api/v1/devices/{id}/onboard,
 * POST /api/v1/devices/{id}/check-drift and
 * POST /api/v1/devices/{id}/sync-from.
 *
 * Only the device's owner may talk to it, and any node may be asked, so an
 * operation is a job like a service job ("device-onboard",
 * "device-check-drift", "device-sync-from", one task for the device): a
 * replicated record that
 * the owner's device controller (node/devices.c) picks up, runs through
 * the southbound and answers in the device's status.jobs, pinned to its
 * ownership epoch; the job runner (jobs.c) copies that outcome (the diff,
 * what was adopted) into the job's task. An owner that dies mid-job leaves
 * the task queued, and the device's next owner runs it.
 *
 * An Idempotency-Key makes a retry answer the job the first attempt
 * queued (the job's request id derives from it).
 *
 * The caller needs the right to operate on the device (as for cancelling
 * its jobs): tenant users only in their tenant (others' devices are 404).
 * A device that is unmanaged is not to be touched: 409, nothing queued.
 * One not yet onboarded has nothing to compare or adopt: 409 for a drift
 * check or a sync-from; onboarding it is what the onboard operation is for
 * (now, without waiting for its owner's next retry), and an onboarded one
 * is reconnected and re-read (its adopted base config is kept).
 */
#include "api_int.h"

#include <stdio.h>
#include <string.h>

#include <civetweb.h>

/* Queues a job of type for the path's device and answers 202 with it;
 * onboarded: the device must be onboarded already. */
static int device_op(struct api_req *req, const char *type, const char *verb, bool onboarded)
{
    struct store_object o;
    struct store_result res;
    char job_id[CAIRN_UUID_SIZE];
    const char *managed, *state;
    json_t *ids;
    json_t *body;
    const char *key = mg_get_header(req->conn, "Idempotency-Key");
    char rid[API_REQUEST_ID_SIZE];
    int rc;

    if (key != NULL && api_idempotency_parse(key, rid) != 0) {
        return api_problem(req, 400, "invalid-header", "Idempotency-Key", NULL,
                           "Idempotency-Key must be 1 to 255 printable ASCII characters "
                           "(a uuid is a good choice)");
    }
    rc = api_resource_load(req, &api_device_resource, RBAC_OPERATE, &o);
    if (rc != 0) {
        return rc;
    }
    body = json_loadb(o.body, o.body_len, 0, NULL);
    managed = json_string_value(json_object_get(body, "desired_state"));
    state = json_string_value(json_object_get(json_object_get(body, "status"), "state"));
    if (body == NULL) {
        rc = api_problem(req, 500, "internal", NULL, NULL, "device %s: unreadable stored body",
                         o.id);
    } else if (managed == NULL || strcmp(managed, "managed") != 0) {
        rc = api_problem(req, 409, "device-unmanaged", "desired_state", NULL,
                         "device %s is unmanaged: set desired_state to \"managed\" to %s it", o.id,
                         verb);
    } else if (onboarded && (state == NULL || strcmp(state, "onboarded") != 0)) {
        rc = api_problem(req, 409, "device-not-onboarded", NULL, NULL,
                         "device %s is not onboarded yet (state %s): wait until its owner has "
                         "reached it (or POST its onboard operation), then %s it",
                         o.id, state != NULL ? state : "new", verb);
    }
    if (rc == 0) {
        ids = json_pack("[s]", o.id);
        cairn_uuid(job_id);
        rc = api_job_queue(req, job_id, type, STORE_KIND_DEVICE, o.id, o.tenant, ids, NULL, &res);
        json_decref(ids);
    }
    json_decref(body);
    store_object_release(&o);
    return rc != 0 ? rc : api_job_accepted(req, &res);
}

int api_device_onboard(struct api_req *req)
{
    return device_op(req, "device-onboard", "onboard", false);
}

int api_device_check_drift(struct api_req *req)
{
    return device_op(req, "device-check-drift", "check", true);
}

int api_device_sync_from(struct api_req *req)
{
    return device_op(req, "device-sync-from", "sync from", true);
}
