/*
 * The NETCONF side of cairn-devsim, on libnetconf2 2.0: one SSH endpoint
 * per device, a few accept threads, and poll threads that serve sessions.
 *
 * Which device a connection is for: libnetconf2 tells neither the host-key
 * nor the password callback which endpoint accepted it, but both run on the
 * thread inside nc_accept, host-key first. Each device's endpoint has one
 * host key named after the device's index, so the host-key callback
 * records the device in a thread-local variable that the password callback
 * and the accept loop then read. The host-key callback returns a file path
 * (key data would make libnetconf2 write a temporary file per accept).
 *
 * Polling: libnetconf2 2.0 has no public call returning a server session's
 * socket, so sessions cannot be put in an epoll set without reaching into
 * private structures. Each poll thread owns one pollsession (new sessions
 * are handed to it through a queue, never added from another thread) and
 * calls nc_ps_poll with a zero timeout: it serves RPCs back to back, and
 * when a whole pass finds nothing it sleeps, backing off from 1 to 5 ms,
 * instead of nc_ps_poll's 100 us busy loop.
 *
 * Call home (RFC 8071): a device with controllers to call is a libnetconf2
 * call-home client "ch<index>" with one endpoint per controller, starting
 * with the first listed and moving to the next after each failed attempt
 * (libnetconf2 waits 1 s between attempts). The session it makes is served
 * like an accepted one. The clients are periodic (a 1-minute period, no
 * idle timeout): once a session ends, libnetconf2 waits (now - anchor) mod
 * 60 s before dialing again, which from a start-time anchor is a backoff
 * doubling from the first session's end up to a minute; a persistent client
 * would redial at once, and a controller that binds (or refuses) and
 * closes would be called in a tight loop. Clients are all created before
 * any dials and never changed: libnetconf2 holds its client list's read
 * lock through every connect and SSH handshake, so an add or delete (the
 * write lock) could wait for as long as devices keep dialing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nc_server.h>

#include "cairn.h"
#include "devsim.h"

/* Set by hostkey_cb, read later in the same nc_accept call. */
static _Thread_local struct devsim_device *accepting;

struct devsim_poller {
    struct devsim *sim;          /* the simulator */
    pthread_t thread;            /* runs poller_main */
    struct nc_pollsession *ps;   /* owned by the thread */
    pthread_mutex_t mu;          /* protects the queue below */
    struct nc_session **queue;   /* sessions handed over, not yet added */
    size_t queue_len, queue_cap; /* entries used and allocated */
};

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int hostkey_cb(const char *name, void *user_data, char **privkey_path, char **privkey_data,
                      NC_SSH_KEY_TYPE *privkey_type)
{
    struct devsim *sim = user_data;
    unsigned long idx = strtoul(name + 1, NULL, 10);
    (void)privkey_data;
    (void)privkey_type;
    if (name[0] != 'k' || idx >= sim->ndevs) {
        return 1;
    }
    accepting = &sim->devs[idx];
    *privkey_path = strdup(accepting->key_path);
    return *privkey_path ? 0 : 1;
}

static int passwd_cb(const struct nc_session *session, const char *password, void *user_data)
{
    const char *user = nc_session_get_username(session);
    (void)user_data;
    if (!accepting || !user || !password) {
        return 1;
    }
    return strcmp(user, accepting->user) || strcmp(password, accepting->password);
}

/*
 * Endpoint changes and nc_accept. libnetconf2 guards its endpoints with a
 * reader-preferring lock that nc_accept holds while it polls (up to its
 * 200 ms timeout); with several accept threads polling back to back an
 * endpoint change (a "refuse" or "clear" fault) could wait for ever.
 * endpt_gate, writer-preferring, sits outside it: each nc_accept call
 * reads it, each endpoint change writes it, so a change waits for at most
 * the accept calls in progress.
 */
/* A refused device's port stays bound, by a socket that does not listen
 * (connects get ECONNREFUSED), so that no other program takes the port
 * while the fault lasts and the device can listen on it again. */
static void port_reserve(struct devsim_device *dev)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)dev->port)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
                    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)) {
        CAIRN_WARN("msg=\"could not keep the refused port\" device=%s port=%u error=\"%s\"",
                   dev->name, dev->port, strerror(errno));
        close(fd);
        fd = -1;
    }
    dev->reserve_fd = fd;
}

int server_endpoint_add(struct devsim *sim, struct devsim_device *dev)
{
    char endpt[32], key[32];
    int rv = 0;
    snprintf(endpt, sizeof(endpt), "d%u", dev->index);
    snprintf(key, sizeof(key), "k%u", dev->index);
    pthread_rwlock_wrlock(&sim->endpt_gate);
    if (dev->reserve_fd >= 0) {
        close(dev->reserve_fd); /* the endpoint binds the port right after */
        dev->reserve_fd = -1;
    }
    if (nc_server_add_endpt(endpt, NC_TI_LIBSSH)) {
        rv = CAIRN_EIO;
    } else if (nc_server_endpt_set_address(endpt, "127.0.0.1") ||
               nc_server_endpt_set_port(endpt, dev->port) ||
               nc_server_ssh_endpt_add_hostkey(endpt, key, -1) ||
               nc_server_ssh_endpt_set_auth_methods(endpt, NC_SSH_AUTH_PASSWORD) ||
               nc_server_ssh_endpt_set_auth_attempts(endpt, 3) ||
               nc_server_ssh_endpt_set_auth_timeout(endpt, 10)) {
        nc_server_del_endpt(endpt, 0);
        rv = CAIRN_EIO;
    } else {
        dev->listening = true;
    }
    pthread_rwlock_unlock(&sim->endpt_gate);
    return rv;
}

int server_endpoint_del(struct devsim *sim, struct devsim_device *dev)
{
    char endpt[32];
    int rv;
    snprintf(endpt, sizeof(endpt), "d%u", dev->index);
    pthread_rwlock_wrlock(&sim->endpt_gate);
    dev->listening = false;
    rv = nc_server_del_endpt(endpt, 0) ? CAIRN_ENOTFOUND : 0;
    if (rv == 0) {
        port_reserve(dev);
    }
    pthread_rwlock_unlock(&sim->endpt_gate);
    return rv;
}

/* Call-home sessions being freed by a reaper thread (server_stop waits). */
static atomic_uint reapers;

/*
 * Frees a call-home session. In libnetconf2 2.0.24, nc_session_free of a
 * call-home session waits for the dialing thread to acknowledge, which it
 * never signals: the free always takes NC_SESSION_FREE_LOCK_TIMEOUT (1 s)
 * and logs "Waiting for Call Home thread failed". On a poll thread that
 * stalled every other session of the thread (their RPCs timed out), so the
 * wait happens on a thread of its own.
 */
static void *reaper_main(void *arg)
{
    struct nc_session *ns = arg;
    free(nc_session_get_data(ns));
    nc_session_free(ns, NULL);
    atomic_fetch_sub(&reapers, 1);
    return NULL;
}

static void session_end(struct nc_pollsession *ps, struct nc_session *ns)
{
    struct devsim_session *s = nc_session_get_data(ns);
    nc_ps_del_session(ps, ns);
    if (s && s->callhome) {
        pthread_attr_t attr;
        pthread_t t;
        int rv;
        device_session_closed(s->dev, s->id);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        atomic_fetch_add(&reapers, 1);
        rv = pthread_create(&t, &attr, reaper_main, ns);
        pthread_attr_destroy(&attr);
        if (rv) {
            reaper_main(ns); /* no thread: wait here */
        }
        return;
    }
    if (s) {
        device_session_closed(s->dev, s->id);
        CAIRN_DEBUG("msg=\"session closed\" device=%s session=%" PRIu32, s->dev->name, s->id);
    }
    nc_session_free(ns, NULL);
    free(s);
}

static void *poller_main(void *arg)
{
    struct devsim_poller *p = arg;
    unsigned idle = 0;
    while (!atomic_load(&p->sim->stop)) {
        struct nc_session *ns = NULL;
        int r;
        pthread_mutex_lock(&p->mu);
        for (size_t i = 0; i < p->queue_len; i++) {
            if (nc_ps_add_session(p->ps, p->queue[i])) {
                CAIRN_ERROR("msg=\"adding a session to a pollsession failed\"");
                free(nc_session_get_data(p->queue[i]));
                nc_session_free(p->queue[i], NULL);
            }
        }
        p->queue_len = 0;
        pthread_mutex_unlock(&p->mu);

        r = nc_ps_poll(p->ps, 0, &ns);
        if (r & (NC_PSPOLL_SESSION_TERM | NC_PSPOLL_SESSION_ERROR)) {
            session_end(p->ps, ns);
            continue;
        }
        if (r & (NC_PSPOLL_NOSESSIONS | NC_PSPOLL_TIMEOUT)) {
            sleep_ms(idle < 5 ? ++idle : idle);
            continue;
        }
        if ((r & NC_PSPOLL_SSH_CHANNEL) && ns) {
            struct nc_session *extra = NULL;
            if (nc_ps_accept_ssh_channel(p->ps, &extra) == NC_MSG_HELLO) {
                struct devsim_session *orig = nc_session_get_data(ns);
                struct devsim_session *s = calloc(1, sizeof(*s));
                if (s && orig) {
                    s->dev = orig->dev;
                    s->id = nc_session_get_id(extra);
                    nc_session_set_data(extra, s);
                } else {
                    free(s);
                }
            }
        }
        idle = 0;
    }
    /* Call-home sessions go to reapers, so their frees wait in parallel. */
    for (unsigned n = 0; nc_ps_session_count(p->ps) && n < 1000000; n++) {
        session_end(p->ps, nc_ps_get_session(p->ps, 0));
    }
    nc_ps_clear(p->ps, 1, free);
    return NULL;
}

static void hand_over(struct devsim *sim, struct nc_session *ns)
{
    unsigned i = atomic_fetch_add(&sim->next_poller, 1) % sim->poll_threads;
    struct devsim_poller *p = &sim->pollers[i];
    pthread_mutex_lock(&p->mu);
    if (p->queue_len == p->queue_cap) {
        size_t cap = p->queue_cap ? p->queue_cap * 2 : 64;
        struct nc_session **q = realloc(p->queue, cap * sizeof(*q));
        if (!q) {
            pthread_mutex_unlock(&p->mu);
            free(nc_session_get_data(ns));
            nc_session_free(ns, NULL);
            return;
        }
        p->queue = q;
        p->queue_cap = cap;
    }
    p->queue[p->queue_len++] = ns;
    pthread_mutex_unlock(&p->mu);
}

static void *acceptor_main(void *arg)
{
    struct devsim *sim = arg;
    while (!atomic_load(&sim->stop)) {
        struct nc_session *ns = NULL;
        struct devsim_session *s;
        NC_MSG_TYPE r;
        accepting = NULL;
        pthread_rwlock_rdlock(&sim->endpt_gate);
        r = nc_accept(200, &ns);
        pthread_rwlock_unlock(&sim->endpt_gate);
        if (r != NC_MSG_HELLO) {
            if (r == NC_MSG_ERROR && ns == NULL && nc_server_endpt_count() == 0) {
                sleep_ms(50); /* every device refuses connections */
            }
            continue;
        }
        s = calloc(1, sizeof(*s));
        if (!s || !accepting) {
            free(s);
            nc_session_free(ns, NULL);
            continue;
        }
        s->dev = accepting;
        s->id = nc_session_get_id(ns);
        nc_session_set_data(ns, s);
        CAIRN_DEBUG("msg=\"session opened\" device=%s session=%" PRIu32, s->dev->name, s->id);
        hand_over(sim, ns);
    }
    nc_thread_destroy();
    return NULL;
}

/* Call home ------------------------------------------------------------- */

/* libnetconf2's call-home session callback carries no user data; there is
 * one simulator per process (devsim.h). */
static struct devsim *ch_sim;

/* Held across a call-home hand-over; server_stop takes it once stop is set,
 * so no session is handed to a poll thread that has gone. */
static pthread_mutex_t ch_gate = PTHREAD_MUTEX_INITIALIZER;

/* Threads of the process before server_start made any (see server_stop). */
static unsigned threads_before;

int callhome_parse(const char *list, char hosts[][DEVSIM_NAME_MAX], uint16_t *ports, unsigned *n)
{
    const char *p = list;
    *n = 0;
    while (*p) {
        size_t len = strcspn(p, ",");
        const char *colon = memchr(p, ':', len);
        char *end;
        unsigned long port;
        if (*n == DEVSIM_CALLHOME_MAX || !colon || colon == p ||
            (size_t)(colon - p) >= DEVSIM_NAME_MAX) {
            return -1;
        }
        port = strtoul(colon + 1, &end, 10);
        if (end != p + len || end == colon + 1 || port == 0 || port > 65535) {
            return -1;
        }
        snprintf(hosts[*n], DEVSIM_NAME_MAX, "%.*s", (int)(colon - p), p);
        ports[(*n)++] = (uint16_t)port;
        p += len;
        if (*p == ',') {
            p++;
        }
    }
    return *n ? 0 : -1;
}

static int callhome_session_cb(const char *client_name, struct nc_session *ns)
{
    unsigned long idx = strtoul(client_name + 2, NULL, 10);
    struct devsim_session *s;
    if (!ch_sim || idx >= ch_sim->ndevs || !(s = calloc(1, sizeof(*s)))) {
        return 1;
    }
    pthread_mutex_lock(&ch_gate);
    if (atomic_load(&ch_sim->stop)) { /* libnetconf2 frees the session */
        pthread_mutex_unlock(&ch_gate);
        free(s);
        return 1;
    }
    s->dev = &ch_sim->devs[idx];
    s->id = nc_session_get_id(ns);
    s->callhome = true;
    nc_session_set_data(ns, s);
    pthread_mutex_lock(&s->dev->mu);
    s->dev->ch_sessions++;
    pthread_mutex_unlock(&s->dev->mu);
    CAIRN_DEBUG("msg=\"called home\" device=%s session=%" PRIu32, s->dev->name, s->id);
    hand_over(ch_sim, ns);
    pthread_mutex_unlock(&ch_gate);
    return 0;
}

/* Creates dev's call-home client (no thread yet). */
static int callhome_client(struct devsim_device *dev)
{
    char hosts[DEVSIM_CALLHOME_MAX][DEVSIM_NAME_MAX], name[32], endpt[16], key[32];
    uint16_t ports[DEVSIM_CALLHOME_MAX];
    unsigned n, i;

    if (callhome_parse(dev->call_home, hosts, ports, &n)) {
        return CAIRN_EINVAL;
    }
    snprintf(name, sizeof(name), "ch%u", dev->index);
    snprintf(key, sizeof(key), "k%u", dev->index);
    if (nc_server_ch_add_client(name)) {
        return CAIRN_EIO;
    }
    for (i = 0; i < n; i++) {
        snprintf(endpt, sizeof(endpt), "c%u", i);
        if (nc_server_ch_client_add_endpt(name, endpt, NC_TI_LIBSSH) ||
            nc_server_ch_client_endpt_set_address(name, endpt, hosts[i]) ||
            nc_server_ch_client_endpt_set_port(name, endpt, ports[i]) ||
            nc_server_ssh_ch_client_endpt_add_hostkey(name, endpt, key, -1) ||
            nc_server_ssh_ch_client_endpt_set_auth_methods(name, endpt, NC_SSH_AUTH_PASSWORD) ||
            nc_server_ssh_ch_client_endpt_set_auth_attempts(name, endpt, 3) ||
            nc_server_ssh_ch_client_endpt_set_auth_timeout(name, endpt, 10)) {
            return CAIRN_EIO;
        }
    }
    if (nc_server_ch_client_set_conn_type(name, NC_CH_PERIOD) ||
        nc_server_ch_client_periodic_set_period(name, 1) ||
        nc_server_ch_client_periodic_set_anchor_time(name, time(NULL)) ||
        nc_server_ch_client_periodic_set_idle_timeout(name, 0) ||
        nc_server_ch_client_set_start_with(name, NC_CH_FIRST_LISTED) ||
        nc_server_ch_client_set_max_attempts(name, 1)) {
        return CAIRN_EIO;
    }
    return 0;
}

/* Every call-home device's client, then their dialing threads. */
static int callhome_start(struct devsim *sim)
{
    unsigned i;
    for (i = 0; i < sim->ndevs; i++) {
        if (sim->devs[i].call_home[0] && callhome_client(&sim->devs[i])) {
            CAIRN_ERROR("msg=\"call home: cannot set up the client\" device=%s", sim->devs[i].name);
            return CAIRN_EIO;
        }
    }
    for (i = 0; i < sim->ndevs; i++) {
        char name[32];
        snprintf(name, sizeof(name), "ch%u", sim->devs[i].index);
        if (sim->devs[i].call_home[0] && nc_connect_ch_client_dispatch(name, callhome_session_cb)) {
            return CAIRN_ENOMEM;
        }
    }
    return 0;
}

int server_start(struct devsim *sim)
{
    pthread_rwlockattr_t attr;
    unsigned i;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&sim->endpt_gate, &attr);
    pthread_rwlockattr_destroy(&attr);
    threads_before = cairn_dir_entries("/proc/self/task");
    if (nc_server_init(sim->ctx)) {
        return CAIRN_EIO;
    }
    rpc_setup(sim);
    ch_sim = sim;
    nc_server_ssh_set_hostkey_clb(hostkey_cb, sim, NULL);
    nc_server_ssh_set_passwd_auth_clb(passwd_cb, sim, NULL);
    for (i = 0; i < sim->ndevs; i++) {
        if (server_endpoint_add(sim, &sim->devs[i])) {
            CAIRN_ERROR("msg=\"listen failed: is the port free?\" device=%s port=%u",
                        sim->devs[i].name, sim->devs[i].port);
            return CAIRN_EIO;
        }
    }
    sim->pollers = calloc(sim->poll_threads, sizeof(*sim->pollers));
    sim->acceptors = calloc(sim->accept_threads, sizeof(*sim->acceptors));
    if (!sim->pollers || !sim->acceptors) {
        return CAIRN_ENOMEM;
    }
    for (i = 0; i < sim->poll_threads; i++) {
        struct devsim_poller *p = &sim->pollers[i];
        p->sim = sim;
        pthread_mutex_init(&p->mu, NULL);
        p->ps = nc_ps_new();
        if (!p->ps || pthread_create(&p->thread, NULL, poller_main, p)) {
            return CAIRN_ENOMEM;
        }
    }
    for (i = 0; i < sim->accept_threads; i++) {
        if (pthread_create(&sim->acceptors[i], NULL, acceptor_main, sim)) {
            return CAIRN_ENOMEM;
        }
    }
    return callhome_start(sim);
}

void server_stop(struct devsim *sim)
{
    unsigned i;
    atomic_store(&sim->stop, true);
    pthread_mutex_lock(&ch_gate); /* no hand-over is under way, none will be */
    pthread_mutex_unlock(&ch_gate);
    nc_server_ch_del_client(NULL); /* dialing threads exit within a second */
    for (i = 0; sim->acceptors && i < sim->accept_threads; i++) {
        if (sim->acceptors[i]) {
            pthread_join(sim->acceptors[i], NULL);
        }
    }
    for (i = 0; sim->pollers && i < sim->poll_threads; i++) {
        struct devsim_poller *p = &sim->pollers[i];
        if (p->thread) {
            pthread_join(p->thread, NULL);
        }
        for (size_t j = 0; j < p->queue_len; j++) {
            free(nc_session_get_data(p->queue[j]));
            nc_session_free(p->queue[j], NULL);
        }
        free(p->queue);
        nc_ps_free(p->ps);
        pthread_mutex_destroy(&p->mu);
    }
    free(sim->pollers);
    free(sim->acceptors);
    sim->pollers = NULL;
    sim->acceptors = NULL;
    for (i = 0; atomic_load(&reapers) && i < 500; i++) {
        sleep_ms(10); /* each reaper takes at most about a second */
    }
    /*
     * libnetconf2's dialing threads are detached, with no way to join them.
     * One in an SSH handshake when its client was deleted finishes it (at
     * most the 10 s auth timeout) before it notices; exiting under it would
     * leave its per-thread OpenSSL state (random generators) unfreed, which
     * LeakSanitizer reports. Wait, up to 8 s (they take 1-3 s), until only
     * the threads there before server_start remain (control is joined).
     */
    for (i = 0; threads_before && cairn_dir_entries("/proc/self/task") > threads_before && i < 800;
         i++) {
        sleep_ms(10);
    }
    nc_server_destroy();
    pthread_rwlock_destroy(&sim->endpt_gate);
}
