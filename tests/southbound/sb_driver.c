/*
 * sb_driver: a line-driven front end to sb_manager for the southbound
 * integration test (test_southbound.py) and the onboarding measurement.
 *
 * Options: --threads N --epoch E --node ID --timeout-ms MS
 * --confirm-timeout S --backoff-min MS --backoff-max MS --deadline-ms MS.
 * Commands, one per line on stdin:
 *   device ID HOST PORT USER PASSWORD [FINGERPRINT]   (not in submit-all)
 *   range PREFIX COUNT HOST BASE_PORT USER PASSWORD   (devices PREFIX0..)
 *   submit ID OP [JSON]       OP: onboard push dry-run check-drift sync-from;
 *                             JSON: {"services":[{"id","type","parameters"}]}
 *   submit-all OP [JSON]      the same for every device, in order
 *   status ID                 prints {"status":...}
 *   release ID                sb_manager_device_release
 *   fence ID off|on           the manager's fence answers false for ID
 *                             (one device at a time): ownership lost
 *   stats                     prints {"stats":...}: threads, sessions, RSS, fds
 *   quit
 * Every job result is printed as one JSON line {"result":...} from the
 * worker thread that produced it; every command answers one JSON line.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "southbound.h"

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static char **ids;
static size_t nids, capids;

static void emit(json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    pthread_mutex_lock(&out_mu);
    fprintf(stdout, "%s\n", s ? s : "{\"error\":\"out of memory\"}");
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
    free(s);
    json_decref(obj);
}

static void emit_error(const char *what)
{
    emit(json_pack("{ss}", "error", what));
}

static void result_cb(const struct sb_result *r, void *data)
{
    json_t *res =
        json_pack("{ss ss sI si ss ss sb sb ss si}", "device", r->device_id, "op",
                  sb_op_name(r->op), "seq", (json_int_t)(intptr_t)r->job_data, "rv", r->rv, "error",
                  r->message, "step", sb_step_name(r->step), "changed", r->changed, "rolled_back",
                  r->rolled_back, "diff", r->diff, "attempts", (int)r->attempts);
    (void)data;
    if (r->fingerprint) {
        json_object_set_new(res, "fingerprint", json_string(r->fingerprint));
    }
    if (r->facts) {
        json_object_set_new(res, "facts",
                            json_pack("{ss ss ss}", "serial", r->facts->serial, "model",
                                      r->facts->model, "software", r->facts->software));
    }
    if (r->config_json) {
        json_object_set_new(res, "config", json_loads(r->config_json, 0, NULL));
    }
    emit(json_pack("{so}", "result", res));
}

static int add_id(const char *id)
{
    if (nids == capids) {
        size_t cap = capids ? capids * 2 : 256;
        char **n = realloc(ids, cap * sizeof(*n));
        if (!n) {
            return CAIRN_ENOMEM;
        }
        ids = n;
        capids = cap;
    }
    ids[nids] = strdup(id);
    return ids[nids++] ? 0 : CAIRN_ENOMEM;
}

/* Adds a device; `listed` ones are the targets of submit-all. */
static int device_add(struct sb_manager *m, const char *id, const struct sb_connect *c, bool listed)
{
    struct sb_device_status st;
    int rv, known = sb_manager_device_status(m, id, &st) == 0;
    rv = sb_manager_device_set(m, id, c, NULL);
    return rv || known || !listed ? rv : add_id(id);
}

static int parse_op(const char *s, enum sb_op *op)
{
    static const enum sb_op ops[] = {SB_OP_ONBOARD, SB_OP_PUSH, SB_OP_DRY_RUN, SB_OP_CHECK_DRIFT,
                                     SB_OP_SYNC_FROM};
    size_t i;
    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (!strcmp(sb_op_name(ops[i]), s)) {
            *op = ops[i];
            return 0;
        }
    }
    return CAIRN_EINVAL;
}

/* Parses {"services":[...]} into an array borrowing from root. */
static int parse_services(json_t *root, struct sb_service **out, size_t *n)
{
    json_t *arr = json_object_get(root, "services"), *s;
    size_t i;
    *out = NULL;
    *n = 0;
    if (!arr) {
        return 0;
    }
    *out = calloc(json_array_size(arr) + 1, sizeof(**out));
    if (!*out) {
        return CAIRN_ENOMEM;
    }
    json_array_foreach(arr, i, s)
    {
        (*out)[i].id = json_string_value(json_object_get(s, "id"));
        (*out)[i].type = json_string_value(json_object_get(s, "type"));
        (*out)[i].parameters = json_object_get(s, "parameters");
        if (!(*out)[i].id || !(*out)[i].type) {
            free(*out);
            return CAIRN_EINVAL;
        }
    }
    *n = i;
    return 0;
}

static long seq;

/* The fence: every device is owned in the configured epoch except the one
 * a `fence ID off` named. */
static pthread_mutex_t fence_mu = PTHREAD_MUTEX_INITIALIZER;
static char fenced_off[96];
static uint64_t fence_epoch;

static bool driver_fence(void *data, const char *device_id, uint64_t *epoch)
{
    bool owns;
    (void)data;
    pthread_mutex_lock(&fence_mu);
    owns = strcmp(device_id, fenced_off) != 0;
    pthread_mutex_unlock(&fence_mu);
    *epoch = fence_epoch;
    return owns;
}

static void fence_set(const char *id, const char *state)
{
    if (strcmp(state, "off") && strcmp(state, "on")) {
        emit_error("usage: fence ID off|on");
        return;
    }
    pthread_mutex_lock(&fence_mu);
    snprintf(fenced_off, sizeof(fenced_off), "%s", !strcmp(state, "off") ? id : "");
    pthread_mutex_unlock(&fence_mu);
    emit(json_pack("{sb}", "ok", 1));
}

static void submit(struct sb_manager *m, const char *id, const char *opname, const char *json,
                   bool all)
{
    struct sb_service *svcs = NULL;
    json_t *root = NULL;
    size_t n = 0, i, first = 0;
    enum sb_op op;
    int rv = parse_op(opname, &op);
    if (!rv && json && *json) {
        root = json_loads(json, 0, NULL);
        rv = root ? parse_services(root, &svcs, &n) : CAIRN_EINVAL;
    }
    if (rv) {
        emit_error("submit: bad operation or services JSON");
        json_decref(root);
        return;
    }
    for (i = 0; !rv && i < (all ? nids : 1); i++) {
        if (i == 0) {
            first = (size_t)seq;
        }
        rv = sb_manager_submit(m, all ? ids[i] : id, op, svcs, n, (void *)(intptr_t)seq++);
    }
    free(svcs);
    json_decref(root);
    emit(rv ? json_pack("{ss}", "error", cairn_strerror(rv))
            : json_pack("{sIsI}", "submitted", (json_int_t)(all ? nids : 1), "first_seq",
                        (json_int_t)first));
}

static long rss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    return kb;
}

static void status(struct sb_manager *m, const char *id)
{
    static const char *const reach[] = {"unknown", "reachable", "unreachable"};
    struct sb_device_status st;
    if (sb_manager_device_status(m, id, &st)) {
        emit_error("status: unknown device");
        return;
    }
    emit(json_pack("{s{ss ss sI si sI ss sI sb ss}}", "status", "device", id, "reach",
                   reach[st.reach], "last_seen_ms", (json_int_t)st.last_seen_ms, "failures",
                   (int)st.failures, "next_attempt_ms", (json_int_t)st.next_attempt_ms,
                   "fingerprint", st.fingerprint, "queued", (json_int_t)st.queued, "busy", st.busy,
                   "last_error", st.last_error));
}

int main(int argc, char **argv)
{
    struct sb_manager_config cfg = {
        .cb = result_cb, .node_id = "n1", .epoch = 1, .fence = driver_fence};
    struct sb_manager *m;
    char errmsg[CAIRN_ERRMSG_SIZE], *line = NULL;
    size_t cap = 0;
    int i;

    for (i = 1; i + 1 < argc; i += 2) {
        unsigned long v = strtoul(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--threads")) {
            cfg.threads = (unsigned)v;
        } else if (!strcmp(argv[i], "--epoch")) {
            cfg.epoch = v;
        } else if (!strcmp(argv[i], "--node")) {
            cfg.node_id = argv[i + 1];
        } else if (!strcmp(argv[i], "--timeout-ms")) {
            cfg.timeout_ms = (unsigned)v;
        } else if (!strcmp(argv[i], "--confirm-timeout")) {
            cfg.confirm_timeout = (unsigned)v;
        } else if (!strcmp(argv[i], "--backoff-min")) {
            cfg.backoff_min_ms = (unsigned)v;
        } else if (!strcmp(argv[i], "--backoff-max")) {
            cfg.backoff_max_ms = (unsigned)v;
        } else if (!strcmp(argv[i], "--deadline-ms")) {
            cfg.job_deadline_ms = (unsigned)v;
        } else {
            fprintf(stderr, "sb_driver: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    fence_epoch = cfg.epoch;
    if (sb_manager_create(&cfg, &m, errmsg, sizeof(errmsg))) {
        fprintf(stderr, "sb_driver: %s\n", errmsg);
        return 1;
    }
    emit(json_pack("{sb}", "ready", 1));
    while (getline(&line, &cap, stdin) > 0) {
        char *save = NULL, *cmd, *a[7] = {0};
        int n = 0;
        line[strcspn(line, "\n")] = '\0';
        cmd = strtok_r(line, " ", &save);
        if (!cmd) {
            continue;
        }
        if (!strcmp(cmd, "submit") || !strcmp(cmd, "submit-all")) {
            bool all = !strcmp(cmd, "submit-all");
            char *id = all ? NULL : strtok_r(NULL, " ", &save);
            char *op = strtok_r(NULL, " ", &save);
            if (!op || (!all && !id)) {
                emit_error("usage: submit ID OP [JSON] | submit-all OP [JSON]");
                continue;
            }
            submit(m, id, op, save, all);
            continue;
        }
        while (n < 7 && (a[n] = strtok_r(NULL, " ", &save))) {
            n++;
        }
        if (!strcmp(cmd, "device") && n >= 5) {
            struct sb_connect c = {a[1], (uint16_t)atoi(a[2]), a[3], a[4], a[5], 0};
            int rv = device_add(m, a[0], &c, false);
            emit(rv ? json_pack("{ss}", "error", cairn_strerror(rv)) : json_pack("{sb}", "ok", 1));
        } else if (!strcmp(cmd, "range") && n == 6) {
            int count = atoi(a[1]), base = atoi(a[3]), k, rv = 0;
            char id[96];
            for (k = 0; !rv && k < count; k++) {
                struct sb_connect c = {a[2], (uint16_t)(base + k), a[4], a[5], NULL, 0};
                snprintf(id, sizeof(id), "%s%d", a[0], k);
                rv = device_add(m, id, &c, true);
            }
            emit(rv ? json_pack("{ss}", "error", cairn_strerror(rv)) : json_pack("{sb}", "ok", 1));
        } else if (!strcmp(cmd, "status") && n == 1) {
            status(m, a[0]);
        } else if (!strcmp(cmd, "release") && n == 1) {
            int rv = sb_manager_device_release(m, a[0]);
            emit(rv ? json_pack("{ss}", "error", cairn_strerror(rv)) : json_pack("{sb}", "ok", 1));
        } else if (!strcmp(cmd, "fence") && n == 2) {
            fence_set(a[0], a[1]);
        } else if (!strcmp(cmd, "stats")) {
            emit(json_pack("{s{si si sI sI si}}", "stats", "threads",
                           (int)cairn_dir_entries("/proc/self/task"), "workers",
                           (int)sb_manager_threads(m), "sessions",
                           (json_int_t)sb_manager_sessions(m), "rss_kb", (json_int_t)rss_kb(),
                           "fds", (int)cairn_dir_entries("/proc/self/fd")));
        } else if (!strcmp(cmd, "quit")) {
            break;
        } else {
            emit_error("unknown command or wrong arguments");
        }
    }
    free(line);
    sb_manager_destroy(m);
    for (size_t k = 0; k < nids; k++) {
        free(ids[k]);
    }
    free(ids);
    return 0;
}
