/*
 * cairnd: one Cairn node. Parses the command line and the configuration,
 * starts the node, waits for SIGTERM or SIGINT, stops it cleanly.
 * Exit status: 0 after a clean stop, 1 for a runtime failure, 2 for a bad
 * configuration, a busy port or a data directory of another cluster.
 *
 * With --restore BACKUP it seeds the empty data directory of a new node
 * from a backup (store_seed) and exits: 0 once seeded, 2 if the data
 * directory is not empty or the backup is damaged, truncated or of a newer
 * format (nothing is left behind), 1 for an I/O failure. Every initial
 * member of the new cluster restores the same file (docs/backup.md).
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "config.h"
#include "node.h"
#include "store.h"

#ifndef CAIRN_VERSION
#define CAIRN_VERSION "unknown"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cairnd -c FILE            run a node\n"
            "       cairnd --check-config -c FILE\n"
            "       cairnd -c FILE --restore BACKUP   seed an empty data_dir from a backup\n"
            "       cairnd --version\n"
            "The configuration keys are documented in docs/configuration.md.\n");
}

/* True if dir is missing or has no entries. */
static bool dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool empty = true;
    if (d == NULL) {
        return errno == ENOENT;
    }
    while (empty && (e = readdir(d)) != NULL) {
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    }
    closedir(d);
    return empty;
}

static int restore(const struct config *cfg, const char *file)
{
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    char store_dir[4200];
    uint64_t index = 0, revision = 0;
    bool created;
    int rv;

    if (!dir_empty(cfg->data_dir)) {
        fprintf(stderr,
                "cairnd: restore: data_dir %s is not empty: a backup seeds a new node only; "
                "use an empty data_dir\n",
                cfg->data_dir);
        return 2;
    }
    created = mkdir(cfg->data_dir, 0750) == 0;
    if (!created && errno != EEXIST) {
        fprintf(stderr, "cairnd: restore: mkdir %s: %s\n", cfg->data_dir, strerror(errno));
        return 1;
    }
    snprintf(store_dir, sizeof store_dir, "%s/store", cfg->data_dir);
    rv = store_seed(store_dir, file, &index, &revision, errmsg, sizeof errmsg);
    if (rv != 0) {
        if (created) {
            rmdir(cfg->data_dir);
        }
        fprintf(stderr, "cairnd: restore %s: %s\n", file, errmsg);
        return rv == CAIRN_EIO || rv == CAIRN_ENOMEM ? 1 : 2;
    }
    printf(
        "restored %s into %s: backup of index %llu, revision %llu; start the node with "
        "cairnd -c FILE\n",
        file, cfg->data_dir, (unsigned long long)index, (unsigned long long)revision);
    return 0;
}

/* Device sessions and client connections are descriptors: thousands of
 * them on an owner. Raise the soft limit to the hard one. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Linux's SCHED_BATCH for this thread and so for every thread started
 * after it (RocksDB's, libuv's, civetweb's workers): a thread that wakes
 * no longer preempts the one running, it waits for the running thread's
 * time slice. A busy node wakes threads several times per request
 * (arrival, commit, a forwarded write's answer); on a saturated test
 * cluster this cut the context switches per write through a follower
 * from 5.6 to 4.5 (docs/benchmarks.md, session 11). Allowed without
 * privileges, but a seccomp filter may refuse it: the shipped unit's
 * does, and sets the policy itself. A refusal is logged, not fatal. */
static void cpu_scheduling(const struct config *cfg)
{
    struct sched_param param = {.sched_priority = 0};
    if (strcmp(cfg->cpu_scheduling, "batch") != 0 || sched_getscheduler(0) == SCHED_BATCH) {
        return; /* inherit, or batch already (systemd's CPUSchedulingPolicy=batch) */
    }
    if (sched_setscheduler(0, SCHED_BATCH, &param) != 0) {
        CAIRN_WARN(
            "msg=\"cpu_scheduling = batch refused: threads keep the scheduling cairnd was started "
            "with\" "
            "error=\"%s\"",
            strerror(errno));
    }
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    const char *restore_file = NULL;
    bool check_only = false;
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    char prefix[64];
    struct config cfg;
    struct node *node = NULL;
    sigset_t set;
    int sig = 0;
    int rv;

    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--restore") == 0 && i + 1 < argc) {
            restore_file = argv[++i];
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_only = true;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("cairnd %s\n", CAIRN_VERSION);
            return 0;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "cairnd: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (path == NULL) {
        usage(stderr);
        return 2;
    }
    rv = config_load(path, &cfg, errmsg, sizeof errmsg);
    if (rv != 0) {
        fprintf(stderr, "cairnd: %s\n", errmsg);
        return 2;
    }
    if (check_only) {
        printf("%s: ok\n", path);
        return 0;
    }
    if (restore_file != NULL) {
        return restore(&cfg, restore_file);
    }
    snprintf(prefix, sizeof prefix, "node=%llu", (unsigned long long)cfg.node_id);
    cairn_log_setup(cairn_log_level_parse(cfg.log_level), prefix);

    /* Followers die with SIGPIPE when a peer's socket closes under them;
     * every write checks its errors instead. The stop signals are taken
     * with sigwait by this thread only: block them before any thread
     * starts, so every thread inherits the mask. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    raise_nofile();
    cpu_scheduling(&cfg);
    rv = node_create(&cfg, &node, errmsg, sizeof errmsg);
    if (rv != 0) {
        fprintf(stderr, "cairnd: %s\n", errmsg);
        return rv == CAIRN_EINVAL || rv == CAIRN_EWRONGCLUSTER || rv == CAIRN_EEXIST ? 2 : 1;
    }
    CAIRN_INFO("msg=\"started\" version=%s api=%s raft=%s cluster=%s", CAIRN_VERSION,
               cfg.api_address, cfg.raft_address, cfg.cluster_id);
    sigwait(&set, &sig);
    CAIRN_INFO("msg=\"stopping\" signal=%d", sig);
    node_destroy(node);
    CAIRN_INFO("msg=\"stopped\"");
    return 0;
}
