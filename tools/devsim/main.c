/*
 * cairn-devsim's command line: builds the device table (from --count or a
 * device list file), the schema context and host keys, starts the NETCONF
 * server and the control socket, runs the confirmed-commit timer until
 * SIGINT/SIGTERM or the control command "shutdown", and cleans up.
 * Nothing is persisted unless --key-dir is given (then host keys are kept
 * there and reused).
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <nc_server.h>

#include "cairn.h"
#include "devsim.h"
#include "southbound.h"

#ifndef CAIRN_YANG_DIR
#define CAIRN_YANG_DIR "southbound/yang"
#endif

static atomic_bool *stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(stop_flag, true);
}

static int key_create(const char *path)
{
    ssh_key key = NULL;
    int rv;
    if (access(path, R_OK) == 0) {
        return 0;
    }
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
        return CAIRN_EIO;
    }
    rv = ssh_pki_export_privkey_file(key, NULL, NULL, NULL, path) == SSH_OK ? 0 : CAIRN_EIO;
    ssh_key_free(key);
    return rv;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Optional "activation-code=CODE" and "call-home=HOST:PORT[,...]" fields
 * after the six positional ones of a device line. */
static int device_options(struct devsim_device *d, char *rest)
{
    char *save = NULL;
    for (char *tok = strtok_r(rest, " \t\r\n", &save); tok;
         tok = strtok_r(NULL, " \t\r\n", &save)) {
        char hosts[DEVSIM_CALLHOME_MAX][DEVSIM_NAME_MAX];
        uint16_t ports[DEVSIM_CALLHOME_MAX];
        unsigned n;
        if (!strncmp(tok, "activation-code=", 16) && strlen(tok + 16) < DEVSIM_NAME_MAX) {
            snprintf(d->activation_code, sizeof(d->activation_code), "%s", tok + 16);
        } else if (!strncmp(tok, "call-home=", 10) && strlen(tok + 10) < sizeof(d->call_home) &&
                   !callhome_parse(tok + 10, hosts, ports, &n)) {
            snprintf(d->call_home, sizeof(d->call_home), "%s", tok + 10);
        } else {
            return -1;
        }
    }
    return 0;
}

/* Reads "name port serial model user password [activation-code=CODE]
 * [call-home=HOST:PORT,...]" lines ('#' comments). */
static int devices_load(struct devsim *sim, const char *file)
{
    FILE *f = fopen(file, "r");
    char line[512];
    unsigned cap = 0, lineno = 0;
    if (!f) {
        fprintf(stderr, "cairn-devsim: open %s: %s\n", file, strerror(errno));
        return CAIRN_EIO;
    }
    while (fgets(line, sizeof(line), f)) {
        struct devsim_device *d;
        unsigned port;
        lineno++;
        if (line[strspn(line, " \t")] == '#' || line[strspn(line, " \t\r\n")] == '\0') {
            continue;
        }
        if (sim->ndevs == cap) {
            cap = cap ? cap * 2 : 64;
            d = realloc(sim->devs, cap * sizeof(*d));
            if (!d) {
                fclose(f);
                return CAIRN_ENOMEM;
            }
            sim->devs = d;
        }
        d = &sim->devs[sim->ndevs];
        memset(d, 0, sizeof(*d));
        int used = 0;
        if (sscanf(line, "%63s %u %63s %63s %63s %63s%n", d->name, &port, d->serial, d->model,
                   d->user, d->password, &used) != 6 ||
            port == 0 || port > 65535 || device_options(d, line + used)) {
            fprintf(stderr,
                    "cairn-devsim: %s:%u: expected \"name port serial model user password "
                    "[activation-code=CODE] [call-home=HOST:PORT,...]\"\n",
                    file, lineno);
            fclose(f);
            return CAIRN_EINVAL;
        }
        d->port = (uint16_t)port;
        d->index = sim->ndevs++;
    }
    fclose(f);
    return 0;
}

/* libnetconf2 2.0 connects a call-home socket with select() and aborts
 * the process ("bit out of range 0 - FD_SETSIZE") once that socket's
 * number reaches 1024. A device holds a listening socket and a session
 * with its controller, a call-home device also its call-home socket: keep
 * them all below FD_SETSIZE, with room for the rest, or refuse to start. */
#define CALLHOME_FD_SPARE 48

static bool callhome_fds_exceed(const struct devsim *sim)
{
    unsigned nch = 0, limit;
    for (unsigned i = 0; i < sim->ndevs; i++) {
        nch += sim->devs[i].call_home[0] != '\0';
    }
    if (nch == 0 || 2 * sim->ndevs + nch + CALLHOME_FD_SPARE <= FD_SETSIZE) {
        return false;
    }
    limit = (FD_SETSIZE - CALLHOME_FD_SPARE) / 3;
    fprintf(stderr,
            "cairn-devsim: %u devices, %u of them calling home, need more than %d descriptors: "
            "libnetconf2 2.0 dials call home with select(), which fails past %d; run at most "
            "%u call-home devices per process (start several processes)\n",
            sim->ndevs, nch, FD_SETSIZE, FD_SETSIZE, limit);
    return true;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: cairn-devsim (--count N --base-port P --user U --password W | --devices FILE)\n"
            "                    [--control-port C] [--model M] [--key-dir DIR] [--yang-dir DIR]\n"
            "                    [--accept-threads N] [--poll-threads N] [--log-level L]\n"
            "                    [--call-home HOST:PORT[,HOST:PORT...]] [--activation-code CODE]\n"
            "Serves simulated CPE devices over NETCONF/SSH on 127.0.0.1; see docs/devsim.md.\n");
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},
        {"base-port", required_argument, NULL, 'p'},
        {"user", required_argument, NULL, 'u'},
        {"password", required_argument, NULL, 'w'},
        {"devices", required_argument, NULL, 'd'},
        {"control-port", required_argument, NULL, 'c'},
        {"model", required_argument, NULL, 'm'},
        {"key-dir", required_argument, NULL, 'k'},
        {"yang-dir", required_argument, NULL, 'y'},
        {"accept-threads", required_argument, NULL, 'a'},
        {"poll-threads", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'l'},
        {"call-home", required_argument, NULL, 'H'},
        {"activation-code", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct devsim sim = {.accept_threads = 4, .poll_threads = 4, .control_fd = -1};
    const char *user = NULL, *password = NULL, *file = NULL, *model = "ucpe-s", *key_dir = NULL;
    const char *yang_dir = CAIRN_YANG_DIR, *call_home = NULL, *code = NULL;
    char ch_hosts[DEVSIM_CALLHOME_MAX][DEVSIM_NAME_MAX];
    uint16_t ch_ports[DEVSIM_CALLHOME_MAX];
    unsigned ch_n;
    unsigned long count = 0, base_port = 0;
    uint64_t t0 = cairn_now_ms();
    struct sigaction sa = {.sa_handler = on_signal};
    char err[CAIRN_ERRMSG_SIZE];
    int c, rv = 1;
    unsigned i;

    cairn_log_setup(CAIRN_LOG_WARN, "devsim");
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
            case 'n':
                count = strtoul(optarg, NULL, 10);
                break;
            case 'p':
                base_port = strtoul(optarg, NULL, 10);
                break;
            case 'u':
                user = optarg;
                break;
            case 'w':
                password = optarg;
                break;
            case 'd':
                file = optarg;
                break;
            case 'c':
                sim.control_port = (uint16_t)strtoul(optarg, NULL, 10);
                break;
            case 'm':
                model = optarg;
                break;
            case 'k':
                key_dir = optarg;
                break;
            case 'y':
                yang_dir = optarg;
                break;
            case 'a':
                sim.accept_threads = (unsigned)strtoul(optarg, NULL, 10);
                break;
            case 't':
                sim.poll_threads = (unsigned)strtoul(optarg, NULL, 10);
                break;
            case 'l':
                cairn_log_setup(cairn_log_level_parse(optarg), "devsim");
                break;
            case 'H':
                call_home = optarg;
                break;
            case 'A':
                code = optarg;
                break;
            default:
                usage();
                return c == 'h' ? 0 : 2;
        }
    }
    if (file ? (count != 0)
             : (!count || !base_port || base_port + count > 65536 || !user || !password) ||
                   !sim.accept_threads || !sim.poll_threads) {
        usage();
        return 2;
    }
    if ((call_home && (strlen(call_home) >= sizeof(sim.devs->call_home) ||
                       callhome_parse(call_home, ch_hosts, ch_ports, &ch_n))) ||
        (code && strlen(code) >= DEVSIM_NAME_MAX)) {
        fprintf(stderr,
                "cairn-devsim: --call-home must be HOST:PORT[,HOST:PORT...] (at most %d) "
                "and --activation-code at most %d characters\n",
                DEVSIM_CALLHOME_MAX, DEVSIM_NAME_MAX - 1);
        return 2;
    }
    stop_flag = &sim.stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    if (file) {
        if (devices_load(&sim, file)) {
            goto out;
        }
    } else {
        sim.devs = calloc(count, sizeof(*sim.devs));
        if (!sim.devs) {
            goto out;
        }
        sim.ndevs = (unsigned)count;
        for (i = 0; i < sim.ndevs; i++) {
            struct devsim_device *d = &sim.devs[i];
            d->index = i;
            d->port = (uint16_t)(base_port + i);
            snprintf(d->name, sizeof(d->name), "dev%u", i);
            snprintf(d->serial, sizeof(d->serial), "CRN%08u", i);
            snprintf(d->model, sizeof(d->model), "%s", model);
            snprintf(d->user, sizeof(d->user), "%s", user);
            snprintf(d->password, sizeof(d->password), "%s", password);
        }
    }
    for (i = 0; i < sim.ndevs; i++) {
        /* The command line's values apply to every device that has none. */
        if (call_home && !sim.devs[i].call_home[0]) {
            snprintf(sim.devs[i].call_home, sizeof(sim.devs[i].call_home), "%s", call_home);
        }
        if (code && !sim.devs[i].activation_code[0]) {
            snprintf(sim.devs[i].activation_code, sizeof(sim.devs[i].activation_code), "%s", code);
        }
    }
    if (callhome_fds_exceed(&sim)) {
        goto out;
    }
    if (key_dir) {
        snprintf(sim.key_dir, sizeof(sim.key_dir), "%s", key_dir);
        mkdir(key_dir, 0700);
    } else {
        snprintf(sim.key_dir, sizeof(sim.key_dir), "%s/cairn-devsim.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(sim.key_dir)) {
            fprintf(stderr, "cairn-devsim: mkdtemp %s: %s\n", sim.key_dir, strerror(errno));
            goto out;
        }
        sim.key_dir_temp = true;
    }
    /* The same modules and features as the controller's contexts. */
    if (sb_schema_ctx_create(yang_dir, &sim.ctx, err, sizeof(err))) {
        fprintf(stderr, "cairn-devsim: %s\n", err);
        goto out;
    }
    for (i = 0; i < sim.ndevs; i++) {
        struct devsim_device *d = &sim.devs[i];
        snprintf(d->key_path, sizeof(d->key_path), "%s/%s.key", sim.key_dir, d->name);
        if (key_create(d->key_path) || device_init(&sim, d)) {
            fprintf(stderr, "cairn-devsim: set up device %s: host key %s or initial config\n",
                    d->name, d->key_path);
            goto out;
        }
    }
    if (server_start(&sim)) {
        fprintf(stderr, "cairn-devsim: starting the NETCONF server failed (ports in use?)\n");
        goto out_server;
    }
    if (sim.control_port && control_start(&sim)) {
        fprintf(stderr, "cairn-devsim: control port %u: %s\n", sim.control_port, strerror(errno));
        goto out_server;
    }
    printf("ready devices=%u first-port=%u control-port=%u startup-ms=%llu\n", sim.ndevs,
           sim.ndevs ? sim.devs[0].port : 0, sim.control_port,
           (unsigned long long)(cairn_now_ms() - t0));
    fflush(stdout);

    while (!atomic_load(&sim.stop)) {
        struct timespec ts = {0, 100 * 1000000L};
        uint64_t now = cairn_now_ms();
        nanosleep(&ts, NULL);
        for (i = 0; i < sim.ndevs; i++) {
            device_tick(&sim.devs[i], now);
        }
    }
    rv = 0;
out_server:
    control_stop(&sim);
    server_stop(&sim);
out:
    for (i = 0; sim.devs && i < sim.ndevs; i++) {
        if (sim.devs[i].boot_ms) {
            device_close(&sim.devs[i]);
        }
    }
    free(sim.devs);
    if (sim.ctx) {
        ly_ctx_destroy(sim.ctx);
    }
    if (sim.key_dir_temp) {
        nftw(sim.key_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    }
    return rv;
}
