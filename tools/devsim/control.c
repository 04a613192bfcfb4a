/*
 * The control socket: a line protocol on 127.0.0.1 for tests to inject
 * faults, read write logs and configurations, and trigger drift. One
 * thread serves up to CONTROL_CLIENTS connections with poll(); commands
 * are short and never block on NETCONF.
 *
 * Protocol: one command per line, words separated by spaces. The reply's
 * first line is "OK <n>" followed by exactly n data lines, or "ERR
 * <message>". Commands are documented in docs/devsim.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cairn.h"
#include "devsim.h"

#define CONTROL_CLIENTS 64
#define CONTROL_LINE    4096

struct client {
    int fd;                 /* -1: free slot */
    char buf[CONTROL_LINE]; /* partial input line */
    size_t len;             /* bytes in buf */
};

static void write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        data += n;
        len -= (size_t)n;
    }
}

/* Sends "OK <lines>" and the body (lines ending in '\n'). */
static void reply_ok(int fd, struct cairn_buf *body)
{
    char head[32];
    size_t lines = 0;
    for (size_t i = 0; i < body->len; i++) {
        lines += body->data[i] == '\n';
    }
    snprintf(head, sizeof(head), "OK %zu\n", lines);
    write_all(fd, head, strlen(head));
    if (body->len) {
        write_all(fd, body->data, body->len);
    }
}

static void reply_err(int fd, const char *msg)
{
    char line[512];
    snprintf(line, sizeof(line), "ERR %s\n", msg);
    write_all(fd, line, strlen(line));
}

static struct devsim_device *find_device(struct devsim *sim, const char *key)
{
    unsigned long port = strtoul(key, NULL, 10);
    for (unsigned i = 0; key && i < sim->ndevs; i++) {
        if (!strcmp(sim->devs[i].name, key) || sim->devs[i].port == port) {
            return &sim->devs[i];
        }
    }
    return NULL;
}

static void print_tree(struct cairn_buf *body, const struct lyd_node *tree)
{
    char *xml = NULL;
    if (tree && lyd_print_mem(&xml, tree, LYD_XML, LYD_PRINT_WITHSIBLINGS) == 0 && xml) {
        cairn_buf_append(body, xml, strlen(xml));
    }
    free(xml);
    if (body->len && body->data[body->len - 1] != '\n') {
        cairn_buf_append(body, "\n", 1);
    }
}

static int cmd_fault(struct devsim *sim, struct devsim_device *dev, char **argv, int argc,
                     char *err, size_t errlen)
{
    int rv = 0;
    pthread_mutex_lock(&dev->mu);
    if (!strcmp(argv[0], "drop")) {
        dev->fault.drop = argc > 1 ? atoi(argv[1]) : -1;
    } else if (!strcmp(argv[0], "slow") && argc > 1) {
        dev->fault.slow_ms = (unsigned)strtoul(argv[1], NULL, 10);
        snprintf(dev->fault.slow_op, sizeof(dev->fault.slow_op), "%s", argc > 2 ? argv[2] : "");
    } else if (!strcmp(argv[0], "reject-commit")) {
        dev->fault.reject_commit = true;
    } else if (!strcmp(argv[0], "refuse")) {
        dev->fault.refuse = true;
    } else {
        snprintf(err, errlen,
                 "unknown fault %s: use refuse, drop [N], slow MS [RPC] or reject-commit", argv[0]);
        rv = -1;
    }
    pthread_mutex_unlock(&dev->mu);
    if (rv == 0 && !strcmp(argv[0], "refuse") && dev->listening && server_endpoint_del(sim, dev)) {
        snprintf(err, errlen, "closing port %u failed", dev->port);
        rv = -1;
    }
    return rv;
}

static int cmd_clear(struct devsim *sim, struct devsim_device *dev, char *err, size_t errlen)
{
    pthread_mutex_lock(&dev->mu);
    dev->fault = (struct devsim_fault){0};
    pthread_mutex_unlock(&dev->mu);
    if (!dev->listening && server_endpoint_add(sim, dev)) {
        snprintf(err, errlen, "reopening port %u failed", dev->port);
        return -1;
    }
    return 0;
}

/* Runs one command line; writes the reply to fd. */
static void run_command(struct devsim *sim, int fd, char *line)
{
    char *argv[8], *save = NULL, err[512] = "";
    int argc = 0;
    struct cairn_buf body;
    struct devsim_device *dev = NULL;

    for (char *w = strtok_r(line, " \t\r", &save); w && argc < 8;
         w = strtok_r(NULL, " \t\r", &save)) {
        argv[argc++] = w;
    }
    if (argc == 0) {
        return;
    }
    cairn_buf_init(&body);
    if (argc > 1 && strcmp(argv[0], "ping") && strcmp(argv[0], "devices") &&
        !(dev = find_device(sim, argv[1]))) {
        reply_err(fd, "unknown device: give its name or port");
        goto out;
    }
    if (!strcmp(argv[0], "ping")) {
        cairn_buf_printf(&body, "pong\n");
    } else if (!strcmp(argv[0], "devices")) {
        for (unsigned i = 0; i < sim->ndevs; i++) {
            struct devsim_device *d = &sim->devs[i];
            cairn_buf_printf(&body, "%s %u %s %s %s\n", d->name, d->port, d->serial, d->model,
                             d->user);
        }
    } else if (!dev) {
        reply_err(fd, "missing device argument");
        goto out;
    } else if (!strcmp(argv[0], "fault") && argc > 2) {
        if (cmd_fault(sim, dev, argv + 2, argc - 2, err, sizeof(err))) {
            reply_err(fd, err);
            goto out;
        }
    } else if (!strcmp(argv[0], "clear")) {
        if (cmd_clear(sim, dev, err, sizeof(err))) {
            reply_err(fd, err);
            goto out;
        }
    } else if (!strcmp(argv[0], "log")) {
        pthread_mutex_lock(&dev->mu);
        for (size_t i = 0; i < dev->log_len; i++) {
            const struct devsim_write *w = &dev->log[i];
            char epoch[24] = "-";
            if (w->has_epoch) {
                snprintf(epoch, sizeof(epoch), "%" PRIu64, w->epoch);
            }
            cairn_buf_printf(&body, "%" PRId64 " %" PRIu32 " %s %s %s\n", w->wall_ms, w->session,
                             w->op, w->ds, epoch);
        }
        pthread_mutex_unlock(&dev->mu);
    } else if (!strcmp(argv[0], "log-clear")) {
        pthread_mutex_lock(&dev->mu);
        dev->log_len = 0;
        pthread_mutex_unlock(&dev->mu);
    } else if (!strcmp(argv[0], "config")) {
        bool cand = argc > 2 && !strcmp(argv[2], "candidate");
        pthread_mutex_lock(&dev->mu);
        print_tree(&body, cand ? dev->candidate : dev->running);
        pthread_mutex_unlock(&dev->mu);
    } else if (!strcmp(argv[0], "status")) {
        pthread_mutex_lock(&dev->mu);
        cairn_buf_printf(&body,
                         "port=%u listening=%d lock-running=%" PRIu32 " lock-candidate=%" PRIu32
                         " candidate-dirty=%d confirm-pending=%d refuse=%d drop=%d slow-ms=%u "
                         "reject-commit=%d writes=%zu call-home-sessions=%u busy=%s\n",
                         dev->port, dev->listening, dev->lock_running, dev->lock_candidate,
                         dev->cand_dirty, dev->confirm_pending, dev->fault.refuse, dev->fault.drop,
                         dev->fault.slow_ms, dev->fault.reject_commit, dev->log_len,
                         dev->ch_sessions, dev->busy_op ? dev->busy_op : "-");
        pthread_mutex_unlock(&dev->mu);
    } else if (!strcmp(argv[0], "drift")) {
        if (device_drift(dev, argc > 3 ? argv[2] : NULL, argc > 3 ? argv[3] : NULL, err,
                         sizeof(err))) {
            reply_err(fd, err);
            goto out;
        }
    } else {
        reply_err(fd, "unknown command: see docs/devsim.md");
        goto out;
    }
    reply_ok(fd, &body);
out:
    cairn_buf_close(&body);
}

static void client_input(struct devsim *sim, struct client *c)
{
    ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
    char *nl;
    if (n <= 0) {
        close(c->fd);
        c->fd = -1;
        return;
    }
    c->len += (size_t)n;
    while ((nl = memchr(c->buf, '\n', c->len))) {
        size_t used = (size_t)(nl - c->buf) + 1;
        *nl = '\0';
        run_command(sim, c->fd, c->buf);
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
    }
    if (c->len == sizeof(c->buf)) {
        reply_err(c->fd, "line too long");
        close(c->fd);
        c->fd = -1;
    }
}

static void *control_main(void *arg)
{
    struct devsim *sim = arg;
    struct client clients[CONTROL_CLIENTS];
    struct pollfd pfd[CONTROL_CLIENTS + 1];
    for (int i = 0; i < CONTROL_CLIENTS; i++) {
        clients[i].fd = -1;
        clients[i].len = 0;
    }
    while (!atomic_load(&sim->stop)) {
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = sim->control_fd, .events = POLLIN};
        for (int i = 0; i < CONTROL_CLIENTS; i++) {
            pfd[n++] = (struct pollfd){.fd = clients[i].fd, .events = POLLIN};
        }
        if (poll(pfd, (nfds_t)n, 200) <= 0) {
            continue;
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept(sim->control_fd, NULL, NULL);
            int i;
            for (i = 0; fd >= 0 && i < CONTROL_CLIENTS && clients[i].fd >= 0; i++) {
            }
            if (fd >= 0 && i == CONTROL_CLIENTS) {
                reply_err(fd, "too many control connections");
                close(fd);
            } else if (fd >= 0) {
                clients[i].fd = fd;
                clients[i].len = 0;
            }
        }
        for (int i = 0; i < CONTROL_CLIENTS; i++) {
            if (clients[i].fd >= 0 && (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) {
                client_input(sim, &clients[i]);
            }
        }
    }
    for (int i = 0; i < CONTROL_CLIENTS; i++) {
        if (clients[i].fd >= 0) {
            close(clients[i].fd);
        }
    }
    return NULL;
}

int control_start(struct devsim *sim)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(sim->control_port)};
    int one = 1;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sim->control_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sim->control_fd < 0) {
        return CAIRN_EIO;
    }
    setsockopt(sim->control_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(sim->control_fd, (struct sockaddr *)&addr, sizeof(addr)) ||
        listen(sim->control_fd, 16) ||
        pthread_create(&sim->control_thread, NULL, control_main, sim)) {
        close(sim->control_fd);
        sim->control_fd = -1;
        return CAIRN_EIO;
    }
    return 0;
}

void control_stop(struct devsim *sim)
{
    if (sim->control_fd < 0) {
        return;
    }
    atomic_store(&sim->stop, true);
    pthread_join(sim->control_thread, NULL);
    close(sim->control_fd);
    sim->control_fd = -1;
}
