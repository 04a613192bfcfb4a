/*
 * The first SP administrator. A node whose configuration names an
 * admin_password_file runs one small thread at start-up that makes sure a
 * user admin_user exists, so that a new cluster can be logged into without
 * any built-in default password:
 *
 *   1. wait (node_view_wait) until this node knows a leader;
 *   2. api_admin_bootstrap: a linearizable lookup of the name; if absent,
 *      hash the password and propose the user's creation with the request
 *      id "bootstrap-admin:NAME" (every node of a new cluster does this at
 *      the same time: the store applies it once and answers the others
 *      with the same outcome; a user that exists already, whatever its
 *      password now, is left alone);
 *   3. on a cluster that cannot answer yet (no quorum, deadline), wait
 *      BOOTSTRAP_RETRY_MS and go to 1; on success or on a permanent
 *      failure (a bad name or password), set bootstrap_done and stop.
 *
 * Until bootstrap_done is set the node is not ready (/readyz answers 503,
 * see node.c), so that whoever waits for a new cluster to be ready can log
 * in at once instead of racing the bootstrap (and the login throttle).
 *
 * Then (with or without an admin to create) the same thread publishes
 * this node's command versions in its member record once the node is a
 * caught-up member (versions.c), retrying the same way.
 *
 * The loop ends at shutdown at the latest: node_destroy sets
 * shutting_down, which wakes node_view_wait and fails backend calls, and
 * joins the thread (node_bootstrap_stop) after the loop thread stopped.
 */
#include "node_int.h"

#include <stdio.h>
#include <string.h>

/* Pause between two attempts while the cluster cannot answer. */
#define BOOTSTRAP_RETRY_MS 500
/* A second bound on the loop besides shutdown (about a week of retries). */
#define BOOTSTRAP_MAX_ATTEMPTS 1000000

/* Waits until deadline_ms or shutdown, whichever comes first. */
static void pause_until(struct node *n, uint64_t deadline_ms)
{
    for (unsigned i = 0; i < 10000 && !n->shutting_down && cairn_now_ms() < deadline_ms; i++) {
        node_view_wait(n, deadline_ms);
    }
}

static void admin_bootstrap(struct node *n)
{
    const char *user = n->cfg.admin_user;
    char errmsg[CAIRN_ERRMSG_SIZE];
    struct consensus_status v;
    int rv = CAIRN_ENOLEADER;

    for (unsigned attempt = 0; attempt < BOOTSTRAP_MAX_ATTEMPTS && !n->shutting_down; attempt++) {
        node_view(n, &v);
        if (v.leader_id == 0) {
            pause_until(n, cairn_now_ms() + BOOTSTRAP_RETRY_MS);
            continue;
        }
        errmsg[0] = '\0';
        rv = api_admin_bootstrap(n->api, user, n->cfg.admin_password, strlen(n->cfg.admin_password),
                                 cairn_now_ms() + n->cfg.request_timeout_ms, errmsg, sizeof errmsg);
        if (rv == 0 || rv == CAIRN_EINVAL || rv == CAIRN_ESHUTDOWN) {
            break;
        }
        if (attempt % 20 == 0) {
            CAIRN_INFO("msg=\"admin bootstrap: retrying\" user=%s error=\"%s\"", user,
                       errmsg[0] != '\0' ? errmsg : cairn_strerror(rv));
        }
        pause_until(n, cairn_now_ms() + BOOTSTRAP_RETRY_MS);
    }
    if (rv == 0 || rv == CAIRN_EINVAL) {
        atomic_store(&n->bootstrap_done, true);
    }
    if (rv == 0) {
        CAIRN_INFO("msg=\"admin user present\" user=%s", user);
    } else if (rv != CAIRN_ESHUTDOWN && !n->shutting_down) {
        CAIRN_ERROR("msg=\"admin bootstrap failed\" user=%s error=\"%s\"", user,
                    errmsg[0] != '\0' ? errmsg : cairn_strerror(rv));
    }
    /* The password is not needed any more. */
    memset(n->cfg.admin_password, 0, sizeof n->cfg.admin_password);
}

/* Publishes this node's command versions (versions.c) once it is a
 * caught-up member, retrying while the cluster cannot answer. */
static void versions_publish(struct node *n)
{
    char errmsg[CAIRN_ERRMSG_SIZE];
    char why[256];
    int rv = CAIRN_ENOLEADER;

    for (unsigned attempt = 0; attempt < BOOTSTRAP_MAX_ATTEMPTS && !n->shutting_down; attempt++) {
        if (!n->backend_ready(n, why, sizeof why)) {
            pause_until(n, cairn_now_ms() + BOOTSTRAP_RETRY_MS);
            continue;
        }
        errmsg[0] = '\0';
        rv = node_versions_publish(n, cairn_now_ms() + n->cfg.request_timeout_ms, errmsg,
                                   sizeof errmsg);
        if (rv == 0 || rv == CAIRN_ESHUTDOWN) {
            break;
        }
        if (attempt % 20 == 0) {
            CAIRN_INFO("msg=\"publish command versions: retrying\" error=\"%s\"",
                       errmsg[0] != '\0' ? errmsg : cairn_strerror(rv));
        }
        pause_until(n, cairn_now_ms() + BOOTSTRAP_RETRY_MS);
    }
    if (rv == 0) {
        CAIRN_INFO("msg=\"command versions published\" versions=1..%u",
                   store_command_version_max(n->store));
    }
}

static void *bootstrap_main(void *arg)
{
    struct node *n = arg;
    if (n->cfg.admin_password[0] != '\0') {
        admin_bootstrap(n);
    }
    versions_publish(n);
    return NULL;
}

int node_bootstrap_start(struct node *n, char *errmsg, size_t size)
{
    if (n->cfg.admin_password[0] == '\0') {
        atomic_store(&n->bootstrap_done, true);
    }
    if (pthread_create(&n->bootstrap_thread, NULL, bootstrap_main, n) != 0) {
        cairn_errmsg_set(errmsg, size, "start the start-up thread: out of resources");
        return CAIRN_ENOMEM;
    }
    n->bootstrap_started = true;
    return 0;
}

void node_bootstrap_stop(struct node *n)
{
    if (n->bootstrap_started) {
        pthread_join(n->bootstrap_thread, NULL);
        n->bootstrap_started = false;
    }
}
