/*
 * Zero-touch onboarding: the NETCONF call-home listener (RFC 8071). A
 * device that calls home is the TCP client and the SSH server; this node
 * accepts its connection on callhome_listen, logs in with the zero-touch
 * credentials (callhome_username, callhome_password), reads the device's
 * serial number, activation code and host key, and binds it to the device
 * record with that serial and that unused code.
 *
 * A call, on one of CALLHOME_THREADS threads (never the libuv loop or an
 * HTTP worker; each thread has its own libyang context, which a NETCONF
 * connect modifies):
 *  1. accept (callhome_thread); the SSH, hello and one <get> of
 *     system-state run with device_timeout_ms (sb_session_accept);
 *  2. a peer ("ADDRESS SERIAL") with too many bad attempts in a row is
 *     closed unread (zt_throttle_allowed), counted "throttled";
 *  3. after a read barrier (the decision is made on linearizable state),
 *     the records are searched for the serial (find_cb); zt_match decides:
 *     - ZT_BIND: the record is updated, pinned to the revision read
 *       (bind_device, bind_body): the activation code is consumed (removed, so a replay is
 *       refused), the host key seen is pinned, the peer's address becomes
 *       management.host (management.port stays, default 830), the
 *       zero-touch login becomes the credentials if it has none, and
 *       status.zero_touch records when, where and by which node. A
 *       concurrent change fails the write and the call is matched again;
 *     - ZT_KNOWN: a device already bound calls again: nothing to do,
 *       unless its onboarding failed (onboard_again);
 *     - no record, or ZT_BAD_CODE: refused, a warning is logged and the
 *       throttle counts it; no record is written;
 *  4. the session is closed in every case.
 * The device is then driven like any other: its owner (owner.h) sees the
 * record change, connects out to the recorded address with the pinned
 * host key, and onboards it through the device controller (devices.c), the
 * same path as a device created with an address. So whichever node the
 * device reached may bind it (a replicated write), and only the owner ever
 * manages it.
 */
#include "node_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "southbound.h"
#include "zerotouch.h"

#define CALLHOME_THREADS 4
#define POLL_MS          200
#define BIND_ATTEMPTS    3

struct node_callhome {
    struct node *n;
    int fd; /* the listening socket */
    pthread_t threads[CALLHOME_THREADS];
    unsigned n_threads;
    atomic_bool stop;
    struct zt_throttle throttle;
};

/* What find() looks for and what it found. */
struct search {
    const char *serial, *code, *fingerprint;
    enum zt_match match; /* of the record found */
    char id[CAIRN_UUID_SIZE];
};

static int find_cb(const struct store_object *o, void *arg)
{
    struct search *q = arg;
    json_t *body = json_loadb(o->body, o->body_len, 0, NULL);
    enum zt_match m = body != NULL ? zt_match(body, q->serial, q->code, q->fingerprint) : ZT_OTHER;
    json_decref(body);
    if (m == ZT_BIND || m == ZT_KNOWN) {
        q->match = m;
        snprintf(q->id, sizeof q->id, "%s", o->id);
        return 1; /* stop: serials are unique per tenant, codes are not guessable */
    }
    if (m == ZT_BAD_CODE) {
        q->match = m; /* keep looking: another tenant may hold the serial */
    }
    return 0;
}

/* The record's new body once bound: see the file's comment, step 3. */
static void bind_body(struct node_callhome *ch, json_t *body, const char *fingerprint,
                      const char *peer)
{
    json_t *mgmt = json_object_get(body, "management");
    json_t *creds = json_object_get(body, "credentials");
    json_t *status = json_object_get(body, "status");
    json_t *zt;

    json_object_del(body, "activation_code");
    json_object_set_new(body, "host_key", json_string(fingerprint));
    if (!json_is_object(mgmt)) {
        mgmt = json_object();
        json_object_set_new(body, "management", mgmt);
    }
    json_object_set_new(mgmt, "host", json_string(peer));
    if (json_object_get(mgmt, "port") == NULL) {
        json_object_set_new(mgmt, "port", json_integer(830));
    }
    if (json_string_value(json_object_get(creds, "password")) == NULL) {
        json_object_set_new(body, "credentials",
                            json_pack("{s:s, s:s}", "username", ch->n->cfg.callhome_username,
                                      "password", ch->n->cfg.callhome_password));
    }
    if (!json_is_object(status)) {
        status = json_object();
        json_object_set_new(body, "status", status);
    }
    zt = json_pack("{s:s, s:I}", "peer", peer, "node", (json_int_t)ch->n->cfg.node_id);
    node_set_now(zt, "bound_at");
    json_object_set_new(status, "zero_touch", zt);
}

/* A bound device whose onboarding failed (its owner gave up: state
 * "unreachable") calls again: it is alive, so its state goes back to "new"
 * and the owner onboards it once more. Best effort: a failed write waits
 * for the next call. */
static void onboard_again(struct node_callhome *ch, const char *id)
{
    struct store_object o;
    struct store_result res;
    json_t *body;
    json_t *status;

    if (store_object_get(ch->n->store, STORE_KIND_DEVICE, id, &o) != 0) {
        return;
    }
    body = json_loadb(o.body, o.body_len, 0, NULL);
    status = json_object_get(body, "status");
    if (json_is_object(status) && strcmp(json_string_value(json_object_get(status, "state")) != NULL
                                             ? json_string_value(json_object_get(status, "state"))
                                             : "",
                                         "unreachable") == 0) {
        json_object_set_new(status, "state", json_string("new"));
        memset(&res, 0, sizeof res);
        if (node_device_write(ch->n, &o, body, 0, &res) == 0 && res.status == 0) {
            CAIRN_INFO(
                "msg=\"call home: a bound device that was not onboarded called again; "
                "onboarding it again\" device=%s",
                id);
        }
    }
    json_decref(body);
    store_object_release(&o);
}

/* Step 3: matches and, for ZT_BIND, writes. *match gets the match
 * (ZT_OTHER: no record has the serial); CAIRN_EUNAVAILABLE if the binding
 * could not be written (the device calls again). */
static int bind_device(struct node_callhome *ch, const char *serial, const char *code,
                       const char *fingerprint, const char *peer, enum zt_match *match,
                       char id[CAIRN_UUID_SIZE])
{
    for (int attempt = 0; attempt < BIND_ATTEMPTS; attempt++) {
        struct search q = {serial, code, fingerprint, ZT_OTHER, ""};
        char errmsg[CAIRN_ERRMSG_SIZE] = "";
        struct store_object o;
        struct store_result res;
        json_t *body;
        int rv;

        /* Decide on linearizable state: a record created (or a code
         * consumed) before the call is seen here. */
        if (node_read_barrier(ch->n, cairn_now_ms() + ch->n->cfg.device_timeout_ms, errmsg,
                              sizeof errmsg) != 0) {
            CAIRN_WARN("msg=\"call home: no read point\" serial=%s error=\"%s\"", serial, errmsg);
            return CAIRN_EUNAVAILABLE;
        }
        if (store_object_foreach(ch->n->store, STORE_KIND_DEVICE, find_cb, &q, NULL) < 0 ||
            q.match != ZT_BIND) {
            snprintf(id, CAIRN_UUID_SIZE, "%s", q.id);
            *match = q.match;
            if (q.match == ZT_KNOWN) {
                onboard_again(ch, q.id);
            }
            return 0;
        }
        if (store_object_get(ch->n->store, STORE_KIND_DEVICE, q.id, &o) != 0) {
            continue; /* deleted meanwhile */
        }
        body = json_loadb(o.body, o.body_len, 0, NULL);
        if (body == NULL || zt_match(body, serial, code, fingerprint) != ZT_BIND) {
            json_decref(body);
            store_object_release(&o);
            continue;
        }
        bind_body(ch, body, fingerprint, peer);
        memset(&res, 0, sizeof res);
        rv = node_device_write(ch->n, &o, body, 0, &res);
        json_decref(body);
        store_object_release(&o);
        if (rv == 0 && res.status == 0) {
            snprintf(id, CAIRN_UUID_SIZE, "%s", q.id);
            *match = ZT_BIND;
            return 0;
        }
        if (rv != 0 || res.status != CAIRN_EPRECONDITION) {
            break; /* no quorum or refused: the device calls again */
        }
    }
    return CAIRN_EUNAVAILABLE;
}

/* One call: steps 1-4. */
static void serve(struct node_callhome *ch, struct ly_ctx *ctx, int fd, const char *peer)
{
    struct sb_connect conn = {.host = peer,
                              .username = ch->n->cfg.callhome_username,
                              .password = ch->n->cfg.callhome_password,
                              .timeout_ms = ch->n->cfg.device_timeout_ms};
    char errmsg[CAIRN_ERRMSG_SIZE] = "", key[ZT_KEY_SIZE], id[CAIRN_UUID_SIZE] = "";
    struct sb_session *s = NULL;
    const char *serial, *code, *fingerprint;
    enum zt_match m;

    if (sb_session_accept(ctx, fd, &conn, &s, errmsg, sizeof errmsg) != 0) {
        atomic_fetch_add(&ch->n->ch_failed, 1);
        CAIRN_WARN("msg=\"call home: session set-up failed\" peer=%s error=\"%s\"", peer, errmsg);
        return;
    }
    serial = sb_session_facts(s)->serial;
    code = sb_session_activation_code(s);
    fingerprint = sb_session_fingerprint(s);
    snprintf(key, sizeof key, "%s %s", peer, serial);
    if (!zt_throttle_allowed(&ch->throttle, key, cairn_now_ms())) {
        atomic_fetch_add(&ch->n->ch_throttled, 1);
        sb_session_close(s);
        return;
    }
    if (bind_device(ch, serial, code, fingerprint, peer, &m, id) != 0) {
        atomic_fetch_add(&ch->n->ch_failed, 1);
        CAIRN_WARN(
            "msg=\"call home: the binding could not be written; the device will call "
            "again\" serial=%s peer=%s",
            serial, peer);
        sb_session_close(s);
        return;
    }
    switch (m) {
        case ZT_BIND:
            atomic_fetch_add(&ch->n->ch_bound, 1);
            zt_throttle_succeeded(&ch->throttle, key);
            CAIRN_INFO("msg=\"call home: device bound\" device=%s serial=%s peer=%s host_key=%s",
                       id, serial, peer, fingerprint);
            break;
        case ZT_KNOWN:
            atomic_fetch_add(&ch->n->ch_known, 1);
            zt_throttle_succeeded(&ch->throttle, key);
            break;
        case ZT_OTHER:
        case ZT_BAD_CODE: {
            uint64_t blocked = zt_throttle_failed(&ch->throttle, key, cairn_now_ms());
            atomic_fetch_add(&ch->n->ch_refused, 1);
            CAIRN_WARN("msg=\"call home refused: %s\" serial=%s peer=%s blocked_ms=%" PRIu64,
                       m == ZT_OTHER ? "no device record has this serial number"
                                     : "the activation code does not match an unused one",
                       serial, peer, blocked);
            break;
        }
    }
    sb_session_close(s);
}

static void *callhome_thread(void *arg)
{
    struct node_callhome *ch = arg;
    struct ly_ctx *ctx = NULL;
    char errmsg[CAIRN_ERRMSG_SIZE];

    if (sb_schema_ctx_create(ch->n->cfg.yang_dir[0] != '\0' ? ch->n->cfg.yang_dir : NULL, &ctx,
                             errmsg, sizeof errmsg) != 0) {
        CAIRN_ERROR("msg=\"call home: no YANG context\" error=\"%s\"", errmsg);
        return NULL;
    }
    while (!atomic_load(&ch->stop) && !ch->n->shutting_down) {
        struct pollfd pfd = {.fd = ch->fd, .events = POLLIN};
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        char peer[INET6_ADDRSTRLEN] = "";
        int fd;

        if (poll(&pfd, 1, POLL_MS) <= 0) {
            continue;
        }
        fd = accept4(ch->fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            continue; /* another thread took it, or the peer left */
        }
        getnameinfo((struct sockaddr *)&sa, len, peer, sizeof peer, NULL, 0, NI_NUMERICHOST);
        serve(ch, ctx, fd, peer);
    }
    ly_ctx_destroy(ctx);
    return NULL;
}

/* A listening socket on host:port. */
static int listen_on(const char *address, int *out, char *errmsg, size_t size)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    char host[64], service[8];
    unsigned port;
    int fd, one = 1, rv;

    if (config_address_parse(address, host, sizeof host, &port) != 0) {
        cairn_errmsg_set(errmsg, size, "callhome_listen %s: expected host:port", address);
        return CAIRN_EINVAL;
    }
    snprintf(service, sizeof service, "%u", port);
    rv = getaddrinfo(host, service, &hints, &res);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, size, "callhome_listen %s: %s", address, gai_strerror(rv));
        return CAIRN_EINVAL;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        cairn_errmsg_set(errmsg, size, "callhome_listen %s: %s (is the port in use?)", address,
                         strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(res);
        return CAIRN_EIO;
    }
    freeaddrinfo(res);
    *out = fd;
    return 0;
}

int node_callhome_start(struct node *n, char *errmsg, size_t size)
{
    struct node_callhome *ch;
    int rv;

    if (n->cfg.callhome_listen[0] == '\0') {
        return 0;
    }
    ch = calloc(1, sizeof *ch);
    if (ch == NULL) {
        cairn_errmsg_set(errmsg, size, "call home: out of memory");
        return CAIRN_ENOMEM;
    }
    ch->n = n;
    rv = listen_on(n->cfg.callhome_listen, &ch->fd, errmsg, size);
    if (rv != 0) {
        free(ch);
        return rv;
    }
    zt_throttle_init(&ch->throttle);
    for (; ch->n_threads < CALLHOME_THREADS; ch->n_threads++) {
        if (pthread_create(&ch->threads[ch->n_threads], NULL, callhome_thread, ch) != 0) {
            break;
        }
    }
    n->callhome = ch;
    if (ch->n_threads == 0) {
        node_callhome_stop(n);
        cairn_errmsg_set(errmsg, size, "call home: cannot start a thread");
        return CAIRN_ENOMEM;
    }
    CAIRN_INFO("msg=\"call home: listening\" address=%s threads=%u", n->cfg.callhome_listen,
               ch->n_threads);
    return 0;
}

void node_callhome_stop(struct node *n)
{
    struct node_callhome *ch = n->callhome;
    if (ch == NULL) {
        return;
    }
    atomic_store(&ch->stop, true);
    for (unsigned i = 0; i < ch->n_threads; i++) {
        pthread_join(ch->threads[i], NULL);
    }
    close(ch->fd);
    zt_throttle_close(&ch->throttle);
    free(ch);
    n->callhome = NULL;
}

void node_callhome_stats(struct node *n, struct node_callhome_stats *out)
{
    out->bound = atomic_load(&n->ch_bound);
    out->known = atomic_load(&n->ch_known);
    out->refused = atomic_load(&n->ch_refused);
    out->throttled = atomic_load(&n->ch_throttled);
    out->failed = atomic_load(&n->ch_failed);
}
