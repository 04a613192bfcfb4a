/*
 * A simulated device's state: running and candidate datastores, locks,
 * the confirmed-commit timer, faults and the log of accepted writes.
 *
 * Every function takes or expects dev->mu; none blocks on I/O, so the
 * lock is held only for in-memory tree work.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "devsim.h"

/* The configuration a device boots with. */
static const char *const initial_config[][2] = {
    {"/cairn-cpe-system:system/hostname", NULL}, /* the device name */
    {"/cairn-cpe-interfaces:interfaces/interface[name='wan0']/type", "ethernet"},
    {"/cairn-cpe-interfaces:interfaces/interface[name='wan0']/dhcp-client", "true"},
    {"/cairn-cpe-interfaces:interfaces/interface[name='lan0']/type", "ethernet"},
    {"/cairn-cpe-interfaces:interfaces/interface[name='lan0']/address[ip='192.168.1.1']/"
     "prefix-length",
     "24"},
};

int device_init(struct devsim *sim, struct devsim_device *dev)
{
    size_t i;
    pthread_mutex_init(&dev->mu, NULL);
    dev->reserve_fd = -1;
    dev->boot_ms = cairn_now_ms();
    dev->boot_wall_ms = cairn_wall_ms();
    for (i = 0; i < sizeof(initial_config) / sizeof(initial_config[0]); i++) {
        const char *value = initial_config[i][1] ? initial_config[i][1] : dev->name;
        if (tree_set(&dev->running, sim->ctx, initial_config[i][0], value)) {
            return CAIRN_EINVAL;
        }
    }
    if (lyd_validate_all(&dev->running, sim->ctx, LYD_VALIDATE_NO_STATE, NULL) ||
        tree_dup(dev->running, &dev->candidate)) {
        return CAIRN_EINVAL;
    }
    return 0;
}

void device_close(struct devsim_device *dev)
{
    if (dev->reserve_fd >= 0) {
        close(dev->reserve_fd);
        dev->reserve_fd = -1;
    }
    lyd_free_all(dev->running);
    lyd_free_all(dev->candidate);
    lyd_free_all(dev->rollback);
    free(dev->log);
    pthread_mutex_destroy(&dev->mu);
}

void device_log_write(struct devsim_device *dev, uint32_t session, const char *op, const char *ds,
                      bool has_epoch, uint64_t epoch)
{
    if (dev->log_len == dev->log_cap) {
        size_t cap = dev->log_cap ? dev->log_cap * 2 : 16;
        struct devsim_write *log = realloc(dev->log, cap * sizeof(*log));
        if (!log) {
            CAIRN_ERROR("msg=\"write log: out of memory\" device=%s", dev->name);
            return;
        }
        dev->log = log;
        dev->log_cap = cap;
    }
    dev->log[dev->log_len++] = (struct devsim_write){
        .wall_ms = cairn_wall_ms(),
        .session = session,
        .op = op,
        .ds = ds,
        .has_epoch = has_epoch,
        .epoch = epoch,
    };
}

void device_sync_candidate_locked(struct devsim_device *dev)
{
    struct lyd_node *copy;
    if (dev->cand_dirty || tree_dup(dev->running, &copy)) {
        return;
    }
    lyd_free_all(dev->candidate);
    dev->candidate = copy;
}

void device_rollback_locked(struct devsim_device *dev, const char *why)
{
    if (!dev->confirm_pending) {
        return;
    }
    lyd_free_all(dev->running);
    dev->running = dev->rollback;
    dev->rollback = NULL;
    dev->confirm_pending = false;
    dev->confirm_session = 0;
    dev->persist_id[0] = '\0';
    dev->cand_dirty = false;
    device_sync_candidate_locked(dev);
    device_log_write(dev, 0, "rollback", "running", false, 0);
    CAIRN_INFO("msg=\"confirmed commit rolled back\" device=%s reason=\"%s\"", dev->name, why);
}

void device_session_closed(struct devsim_device *dev, uint32_t session)
{
    pthread_mutex_lock(&dev->mu);
    if (dev->lock_running == session) {
        dev->lock_running = 0;
    }
    if (dev->lock_candidate == session) {
        /* RFC 6241 7.5: a closed session's candidate changes are dropped */
        dev->lock_candidate = 0;
        dev->cand_dirty = false;
        device_sync_candidate_locked(dev);
    }
    if (dev->confirm_pending && dev->confirm_session == session && !dev->persist_id[0]) {
        device_rollback_locked(dev, "session closed");
    }
    pthread_mutex_unlock(&dev->mu);
}

void device_tick(struct devsim_device *dev, uint64_t now_ms)
{
    pthread_mutex_lock(&dev->mu);
    if (dev->confirm_pending && now_ms >= dev->confirm_deadline) {
        device_rollback_locked(dev, "confirm timeout");
    }
    pthread_mutex_unlock(&dev->mu);
}

int device_drift(struct devsim_device *dev, const char *path, const char *value, char *err,
                 size_t errlen)
{
    char dflt[64];
    struct lyd_node *copy;
    const struct ly_ctx *ctx;
    int rv = CAIRN_EINVAL;

    pthread_mutex_lock(&dev->mu);
    ctx = dev->running ? LYD_CTX(dev->running) : LYD_CTX(dev->candidate);
    if (!path) {
        snprintf(dflt, sizeof(dflt), "drift-%u", ++dev->drift_count);
        path = "/cairn-cpe-system:system/location";
        value = dflt;
    }
    if (tree_dup(dev->running, &copy)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (tree_set(&copy, ctx, path, value) ||
        lyd_validate_all(&copy, NULL, LYD_VALIDATE_NO_STATE, NULL)) {
        snprintf(err, errlen, "path %s: %s", path, ly_errmsg(ctx));
        lyd_free_all(copy);
        goto out;
    }
    lyd_free_all(dev->running);
    dev->running = copy;
    device_sync_candidate_locked(dev);
    device_log_write(dev, 0, "drift", "running", false, 0);
    rv = 0;
out:
    pthread_mutex_unlock(&dev->mu);
    return rv;
}

static int add_state(struct lyd_node **tree, const struct ly_ctx *ctx, const char *path,
                     const char *value)
{
    return tree_set(tree, ctx, path, value);
}

int device_state_locked(struct devsim_device *dev, struct lyd_node **out)
{
    const struct ly_ctx *ctx = LYD_CTX(dev->candidate ? dev->candidate : dev->running);
    struct lyd_node *tree, *ifs = NULL;
    struct ly_set *set = NULL;
    uint64_t up_ms = cairn_now_ms() - dev->boot_ms;
    char buf[128], path[256];
    time_t boot = (time_t)(dev->boot_wall_ms / 1000);
    struct tm tm;
    uint32_t i;
    int rv = 0;

    if (!ctx || tree_dup(dev->running, &tree)) {
        return -1;
    }
    gmtime_r(&boot, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    rv |= add_state(&tree, ctx, "/cairn-cpe-system:system-state/serial-number", dev->serial);
    rv |= add_state(&tree, ctx, "/cairn-cpe-system:system-state/model", dev->model);
    rv |=
        add_state(&tree, ctx, "/cairn-cpe-system:system-state/software-version", "cairn-devsim-1");
    rv |= add_state(&tree, ctx, "/cairn-cpe-system:system-state/boot-time", buf);
    snprintf(buf, sizeof(buf), "%" PRIu64, up_ms / 1000);
    rv |= add_state(&tree, ctx, "/cairn-cpe-system:system-state/uptime", buf);
    if (dev->activation_code[0]) {
        rv |= add_state(&tree, ctx, "/cairn-cpe-system:system-state/activation-code",
                        dev->activation_code);
    }

    /* Counters grow with uptime so that two reads differ, as on a device. */
    if (dev->running &&
        lyd_find_xpath(dev->running, "/cairn-cpe-interfaces:interfaces/interface", &set) == 0) {
        for (i = 0; i < set->count && rv == 0; i++) {
            struct lyd_node *n = NULL;
            const char *name, *enabled = "true";
            uint64_t rate = 1000 + 100 * (uint64_t)i;
            lyd_find_path(set->dnodes[i], "name", 0, &n);
            name = lyd_get_value(n);
            if (lyd_find_path(set->dnodes[i], "enabled", 0, &n) == 0) {
                enabled = lyd_get_value(n);
            }
            static const char *const counters[] = {"in-octets", "out-octets", "in-packets",
                                                   "out-packets"};
            snprintf(path, sizeof(path),
                     "/cairn-cpe-interfaces:interfaces-state/interface[name='%s']/oper-status",
                     name);
            rv |= add_state(&tree, ctx, path, strcmp(enabled, "true") ? "down" : "up");
            for (size_t c = 0; c < 4; c++) {
                uint64_t v = up_ms * rate / (c < 2 ? 1 : 700);
                snprintf(path, sizeof(path),
                         "/cairn-cpe-interfaces:interfaces-state/interface[name='%s']/counters/%s",
                         name, counters[c]);
                snprintf(buf, sizeof(buf), "%" PRIu64, v);
                rv |= add_state(&tree, ctx, path, buf);
            }
            snprintf(path, sizeof(path),
                     "/cairn-cpe-interfaces:interfaces-state/interface[name='%s']/counters/"
                     "in-errors",
                     name);
            rv |= add_state(&tree, ctx, path, "0");
        }
        ly_set_free(set, NULL);
    }
    if (!rv && ly_ctx_get_yanglib_data(ctx, &ifs, "%u", ly_ctx_get_change_count(ctx)) == 0) {
        lyd_merge_siblings(&tree, ifs, LYD_MERGE_DESTRUCT);
    }
    if (rv) {
        lyd_free_all(tree);
        return -1;
    }
    *out = lyd_first_sibling(tree);
    return 0;
}
