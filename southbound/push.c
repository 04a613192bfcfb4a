/*
 * Pushing an intended config to a device, the one NETCONF state machine
 * that changes a device. Steps (sb_session_push):
 *  1. get-config running, and the diff and edit against it
 *     (sb_schema_diff, sb_schema_edit); nothing to change, or a dry run,
 *     ends here without touching the device;
 *  2. lock candidate;
 *  3. discard-changes (candidate := running);
 *  4. edit-config on candidate, with the cairn-fencing epoch;
 *  5. validate candidate (when the device has :validate:1.1);
 *  6. commit confirmed with a timeout: running changes, rollback armed;
 *  7. commit: confirms;
 *  8. unlock.
 * Steps 2, 4, 6 and 7 each start by asking the fence (opts->fence)
 * whether this node still owns the device in the epoch the edit carries:
 * a node paused or cut off mid-push, whose devices have moved on, must
 * not lock or write once it resumes. A fence failing at 2 ends the push
 * with nothing sent; later, the roll-back below runs under the lock we
 * still hold, so no other owner's write is undone.
 * On a failure at 2-7: cancel-commit if 6 succeeded, discard-changes,
 * unlock if 2 succeeded (rollback), each best effort; if the session died
 * the device does the same when it sees the session close (locks
 * released, candidate changes dropped, an unconfirmed commit rolled back).
 * Invariant: after sb_session_push returns, the device's candidate holds
 * no changes of ours and no confirmed commit of ours is pending, unless
 * the device is unreachable, in which case its timeout rolls back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

#define CAP_ROLLBACK "urn:ietf:params:netconf:capability:rollback-on-error:1.0"
#define CAP_VALIDATE "urn:ietf:params:netconf:capability:validate:1.1"

static const char *const step_names[] = {
    [SB_STEP_NONE] = "none",
    [SB_STEP_CONNECT] = "connect",
    [SB_STEP_RENDER] = "render",
    [SB_STEP_VALIDATE] = "validate",
    [SB_STEP_GET_RUNNING] = "get-config running",
    [SB_STEP_LOCK] = "lock candidate",
    [SB_STEP_DISCARD] = "discard-changes",
    [SB_STEP_EDIT] = "edit-config candidate",
    [SB_STEP_DEVICE_VALIDATE] = "validate candidate",
    [SB_STEP_CONFIRMED_COMMIT] = "confirmed commit",
    [SB_STEP_CONFIRM] = "confirming commit",
    [SB_STEP_UNLOCK] = "unlock candidate",
};

const char *sb_step_name(enum sb_step step)
{
    return (unsigned)step < sizeof(step_names) / sizeof(step_names[0]) ? step_names[step] : "?";
}

void sb_push_result_free(struct sb_push_result *r)
{
    free(r->diff);
    free(r->edit);
    memset(r, 0, sizeof(*r));
}

/* Best-effort clean-up after a failed step; true when it all succeeded. */
static bool roll_back(struct sb_session *s, bool locked, bool confirmed)
{
    char ignored[CAIRN_ERRMSG_SIZE];
    bool ok = true;
    if (confirmed) {
        ok &= session_call(s, nc_rpc_cancel(NULL, NC_PARAMTYPE_CONST), "cancel-commit", NULL,
                           ignored, sizeof(ignored)) == 0;
    }
    ok &= session_call(s, nc_rpc_discard(), "discard-changes", NULL, ignored, sizeof(ignored)) == 0;
    if (locked) {
        ok &= session_call(s, nc_rpc_unlock(NC_DATASTORE_CANDIDATE), "unlock", NULL, ignored,
                           sizeof(ignored)) == 0;
    }
    return ok;
}

/* 0 while the push may go on to `step`; else why not, in errmsg. */
static int fence_check(const struct sb_push_opts *opts, enum sb_step step, char *errmsg,
                       size_t size)
{
    uint64_t epoch = 0;
    if (opts->fence == NULL ||
        (opts->fence(opts->fence_data, opts->device_id, &epoch) && epoch == opts->epoch)) {
        return 0;
    }
    cairn_errmsg_set(errmsg, size,
                     "this node no longer owns the device in epoch %llu: stopped before %s",
                     (unsigned long long)opts->epoch, sb_step_name(step));
    return CAIRN_EPRECONDITION;
}

int sb_session_push(struct sb_session *s, const struct lyd_node *intended,
                    const struct sb_push_opts *opts, struct sb_push_result *res, char *errmsg,
                    size_t size)
{
    struct lyd_node *running = NULL;
    enum sb_step step = SB_STEP_GET_RUNNING;
    bool locked = false, confirmed = false;
    int rv;

    memset(res, 0, sizeof(*res));
    rv = sb_session_get_running(s, &running, errmsg, size);
    if (!rv) {
        step = SB_STEP_VALIDATE;
        rv = sb_schema_diff(running, intended, &res->diff, &res->changed, errmsg, size);
    }
    if (!rv && res->changed) {
        rv = sb_schema_edit(s->ctx, running, intended, opts->epoch, opts->node_id, &res->edit,
                            errmsg, size);
    }
    lyd_free_all(running);
    if (rv || opts->dry_run || !res->changed) {
        res->failed_step = rv ? step : SB_STEP_NONE;
        return rv;
    }

    step = SB_STEP_LOCK;
    rv = fence_check(opts, step, errmsg, size);
    if (rv) {
        res->failed_step = step;
        return rv;
    }
    rv = session_call(s, nc_rpc_lock(NC_DATASTORE_CANDIDATE), "lock candidate", NULL, errmsg, size);
    locked = rv == 0;
    if (!rv) {
        step = SB_STEP_DISCARD;
        rv = session_call(s, nc_rpc_discard(), "discard-changes", NULL, errmsg, size);
    }
    if (!rv) {
        step = SB_STEP_EDIT;
        rv = fence_check(opts, step, errmsg, size);
    }
    if (!rv) {
        rv = session_call(
            s,
            nc_rpc_edit(NC_DATASTORE_CANDIDATE, NC_RPC_EDIT_DFLTOP_MERGE,
                        NC_RPC_EDIT_TESTOPT_UNKNOWN,
                        nc_session_cpblt(s->nc, CAP_ROLLBACK) ? NC_RPC_EDIT_ERROPT_ROLLBACK
                                                              : NC_RPC_EDIT_ERROPT_UNKNOWN,
                        res->edit, NC_PARAMTYPE_CONST),
            "edit-config candidate", NULL, errmsg, size);
    }
    if (!rv && nc_session_cpblt(s->nc, CAP_VALIDATE)) {
        step = SB_STEP_DEVICE_VALIDATE;
        rv = session_call(s, nc_rpc_validate(NC_DATASTORE_CANDIDATE, NULL, NC_PARAMTYPE_CONST),
                          "validate candidate", NULL, errmsg, size);
    }
    if (!rv) {
        step = SB_STEP_CONFIRMED_COMMIT;
        rv = fence_check(opts, step, errmsg, size);
    }
    if (!rv) {
        rv = session_call(s,
                          nc_rpc_commit(1, opts->confirm_timeout ? opts->confirm_timeout : 60, NULL,
                                        NULL, NC_PARAMTYPE_CONST),
                          "confirmed commit", NULL, errmsg, size);
        confirmed = rv == 0;
    }
    if (!rv) {
        step = SB_STEP_CONFIRM;
        rv = fence_check(opts, step, errmsg, size);
        if (!rv) {
            rv = session_call(s, nc_rpc_commit(0, 0, NULL, NULL, NC_PARAMTYPE_CONST),
                              "confirming commit", NULL, errmsg, size);
            /* On failure the device may or may not have confirmed: cancel
             * while the session lives. */
            confirmed = rv != 0 && s->alive;
        }
    }
    if (!rv) {
        step = SB_STEP_UNLOCK;
        rv = session_call(s, nc_rpc_unlock(NC_DATASTORE_CANDIDATE), "unlock candidate", NULL,
                          errmsg, size);
        if (rv) {
            /* The change is committed; a lock left behind goes with the
             * session, which the caller closes on this error. */
            s->alive = false;
        }
        locked = false;
    }
    if (rv) {
        res->failed_step = step;
        res->rolled_back = s->alive ? roll_back(s, locked, confirmed) : step != SB_STEP_UNLOCK;
        cairn_errmsg_wrap(errmsg, size, "push failed at step %s%s", sb_step_name(step),
                          res->rolled_back ? " (rolled back)" : "");
    }
    return rv;
}
