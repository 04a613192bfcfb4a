/*
 * A NETCONF over SSH client session to one device (libnetconf2 client on
 * libssh), and the RPC exchange every operation uses.
 *
 * The session does the SSH part itself, so that it scales to thousands of
 * sessions and owns host-key trust: libnetconf2's nc_connect_ssh connects
 * with select() and aborts the process once a descriptor passes 1024, and
 * it reads known_hosts. Here:
 *  1. tcp_connect: a non-blocking connect polled with a deadline, and
 *     TCP_NODELAY (without it a get-config takes ~40 ms, not ~4); libssh
 *     never closes a descriptor it is given, so the session closes it
 *     after libssh and libnetconf2 are done (sb_session_close);
 *  2. ssh_connect on that descriptor; the server's host key is hashed
 *     (SHA-256) and compared with the pinned fingerprint, or pinned when
 *     none was given; a mismatch ends here with CAIRN_EPRECONDITION;
 *  3. password authentication;
 *  4. nc_connect_libssh on the authenticated SSH session with the caller's
 *     libyang context (libnetconf2 must not build one per session);
 *  5. discovery: capabilities from the hello, modules from the YANG
 *     library, facts from cairn-cpe-system:system-state.
 * Once an exchange fails at the transport or times out, the session is
 * dead (`alive` false): a late reply would desynchronise it, so it is
 * never used again and the device's own session-close handling releases
 * locks and drops its candidate changes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nc_client.h>

#include "session.h"

static pthread_once_t client_once = PTHREAD_ONCE_INIT;

/* libnetconf2's own messages go to the debug log: every failure that
 * matters reaches the caller as an error chain, and connecting to a device
 * with YANG library 1.1 always logs a failed <get-schema>. */
static void nc_log_cb(const struct nc_session *session, NC_VERB_LEVEL level, const char *msg)
{
    CAIRN_DEBUG("msg=\"libnetconf2: %s\" session=%u level=%d", msg,
                session ? nc_session_get_id(session) : 0, (int)level);
}

static void client_init(void)
{
    nc_client_init();
    nc_verbosity(NC_VERB_ERROR);
    nc_set_print_clb_session(nc_log_cb);
}

/* Connects a TCP socket to host:port within timeout_ms. */
static int tcp_connect(const char *host, uint16_t port, unsigned timeout_ms, int *out, char *errmsg,
                       size_t size)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    char service[8];
    int fd = -1, err = 0, one = 1, rv;

    snprintf(service, sizeof(service), "%u", port);
    rv = getaddrinfo(host, service, &hints, &res);
    if (rv) {
        cairn_errmsg_set(errmsg, size, "resolve %s: %s", host, gai_strerror(rv));
        return CAIRN_EUNAVAILABLE;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        struct pollfd pfd;
        socklen_t len = sizeof(err);
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }
        err = errno;
        if (err == EINPROGRESS) {
            pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
            rv = poll(&pfd, 1, (int)timeout_ms);
            if (rv == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
                break;
            }
            err = rv == 0 ? ETIMEDOUT : err;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        cairn_errmsg_set(errmsg, size, "connect to %s port %u: %s", host, port, strerror(err));
        return err == ETIMEDOUT ? CAIRN_ETIMEDOUT : CAIRN_EUNAVAILABLE;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *out = fd;
    return 0;
}

/* The SHA-256 fingerprint of the server's host key, "SHA256:base64". */
static int host_fingerprint(ssh_session ssh, char *out, size_t outlen, char *errmsg, size_t size)
{
    ssh_key key = NULL;
    unsigned char *hash = NULL;
    size_t hlen;
    char *fp;
    if (ssh_get_server_publickey(ssh, &key) != SSH_OK ||
        ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != 0) {
        ssh_key_free(key);
        cairn_errmsg_set(errmsg, size, "read host key: %s", ssh_get_error(ssh));
        return CAIRN_EIO;
    }
    ssh_key_free(key);
    fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    ssh_clean_pubkey_hash(&hash);
    if (!fp) {
        cairn_errmsg_set(errmsg, size, "hash host key: out of memory");
        return CAIRN_ENOMEM;
    }
    snprintf(out, outlen, "%s", fp);
    ssh_string_free_char(fp);
    return 0;
}

/* Steps 1-3: an authenticated SSH session whose host key is trusted. */
static int ssh_open(struct sb_session *s, const struct sb_connect *c, int fd, ssh_session *out,
                    char *errmsg, size_t size)
{
    long timeout_s = (long)((c->timeout_ms + 999) / 1000);
    int rv, port = c->port, no = 0;
    ssh_session ssh;

    if (fd < 0) {
        rv = tcp_connect(c->host, c->port, c->timeout_ms, &fd, errmsg, size);
        if (rv) {
            return rv;
        }
    }
    ssh = ssh_new();
    if (!ssh) {
        close(fd);
        cairn_errmsg_set(errmsg, size, "ssh: out of memory");
        return CAIRN_ENOMEM;
    }
    ssh_options_set(ssh, SSH_OPTIONS_HOST, c->host);
    ssh_options_set(ssh, SSH_OPTIONS_PORT, &port);
    ssh_options_set(ssh, SSH_OPTIONS_USER, c->username);
    ssh_options_set(ssh, SSH_OPTIONS_FD, &fd);
    ssh_options_set(ssh, SSH_OPTIONS_TIMEOUT, &timeout_s);
    ssh_options_set(ssh, SSH_OPTIONS_PROCESS_CONFIG, &no);
    if (ssh_connect(ssh) != SSH_OK) {
        cairn_errmsg_set(errmsg, size, "ssh handshake: %s", ssh_get_error(ssh));
        rv = CAIRN_EUNAVAILABLE;
        goto err_after_new;
    }
    rv = host_fingerprint(ssh, s->fingerprint, sizeof(s->fingerprint), errmsg, size);
    if (rv) {
        goto err_after_new;
    }
    if (c->fingerprint && c->fingerprint[0] && strcmp(c->fingerprint, s->fingerprint)) {
        cairn_errmsg_set(errmsg, size,
                         "host key mismatch: the device presented %s but %s is pinned; if the "
                         "device was replaced, clear its pinned key and onboard it again",
                         s->fingerprint, c->fingerprint);
        rv = CAIRN_EPRECONDITION;
        goto err_after_new;
    }
    if (ssh_userauth_password(ssh, NULL, c->password) != SSH_AUTH_SUCCESS) {
        cairn_errmsg_set(errmsg, size, "ssh authentication as %s: %s", c->username,
                         ssh_get_error(ssh));
        rv = CAIRN_EPRECONDITION;
        goto err_after_new;
    }
    s->fd = fd;
    *out = ssh;
    return 0;

err_after_new:
    ssh_disconnect(ssh);
    ssh_free(ssh);
    close(fd); /* libssh never closes a descriptor it was given */
    assert(rv != 0);
    return rv;
}

/* Marks the session dead when libnetconf2 says it no longer runs. */
static void check_alive(struct sb_session *s)
{
    if (nc_session_get_status(s->nc) != NC_STATUS_RUNNING) {
        s->alive = false;
    }
}

/* The text of an opaque child named `name` of an rpc-error, or "". */
static const char *opaq_child(const struct lyd_node *parent, const char *name)
{
    const struct lyd_node *n;
    LY_LIST_FOR(lyd_child(parent), n)
    {
        if (!strcmp(LYD_NAME(n), name)) {
            return n->schema ? lyd_get_value(n) : ((const struct lyd_node_opaq *)n)->value;
        }
    }
    return "";
}

int session_call(struct sb_session *s, struct nc_rpc *rpc, const char *what, struct lyd_node **op,
                 char *errmsg, size_t size)
{
    struct lyd_node *envp = NULL, *reply = NULL;
    const struct lyd_node *n;
    uint64_t msgid;
    NC_MSG_TYPE t;
    int rv = 0, tries;

    if (!rpc) {
        cairn_errmsg_set(errmsg, size, "%s: out of memory", what);
        return CAIRN_ENOMEM;
    }
    if (!s->alive) {
        nc_rpc_free(rpc);
        cairn_errmsg_set(errmsg, size, "%s: the session is closed", what);
        return CAIRN_EUNAVAILABLE;
    }
    t = nc_send_rpc(s->nc, rpc, (int)s->timeout_ms, &msgid);
    if (t != NC_MSG_RPC) {
        check_alive(s);
        s->alive = false;
        nc_rpc_free(rpc);
        cairn_errmsg_set(errmsg, size, "%s: sending failed (session lost)", what);
        return CAIRN_EUNAVAILABLE;
    }
    for (tries = 0; tries < 8; tries++) {
        t = nc_recv_reply(s->nc, rpc, msgid, (int)s->timeout_ms, &envp, &reply);
        if (t != NC_MSG_NOTIF) {
            break;
        }
        lyd_free_tree(envp);
        lyd_free_tree(reply);
        envp = reply = NULL;
    }
    nc_rpc_free(rpc);
    if (t == NC_MSG_WOULDBLOCK) {
        s->alive = false; /* a late reply would be taken for the next one */
        cairn_errmsg_set(errmsg, size, "%s: no reply within %u ms", what, s->timeout_ms);
        return CAIRN_ETIMEDOUT;
    }
    if (t != NC_MSG_REPLY) {
        s->alive = false;
        cairn_errmsg_set(errmsg, size, "%s: no reply (session lost)", what);
        return CAIRN_EUNAVAILABLE;
    }
    LY_LIST_FOR(lyd_child(envp), n)
    {
        if (!strcmp(LYD_NAME(n), "rpc-error")) {
            cairn_errmsg_set(errmsg, size, "%s: the device answered %s: %s", what,
                             opaq_child(n, "error-tag"), opaq_child(n, "error-message"));
            rv = CAIRN_ECONFLICT;
            break;
        }
    }
    lyd_free_tree(envp);
    if (rv || !op) {
        lyd_free_tree(reply);
    } else {
        *op = reply;
    }
    return rv;
}

int session_data(struct sb_session *s, struct nc_rpc *rpc, const char *what, struct lyd_node **out,
                 char *errmsg, size_t size)
{
    struct lyd_node *op = NULL, *data = NULL, *tree = NULL;
    struct lyd_node_any *any;
    int rv = session_call(s, rpc, what, &op, errmsg, size);
    if (rv) {
        return rv;
    }
    if (op && lyd_find_path(op, "data", 1, &data) == 0) {
        any = (struct lyd_node_any *)data;
        if (any->value_type == LYD_ANYDATA_DATATREE && any->value.tree &&
            lyd_dup_siblings(any->value.tree, NULL, LYD_DUP_RECURSIVE, &tree)) {
            rv = CAIRN_ENOMEM;
        } else if (any->value_type != LYD_ANYDATA_DATATREE && any->value.str && any->value.str[0] &&
                   lyd_parse_data_mem(s->ctx, any->value.str, LYD_XML,
                                      LYD_PARSE_ONLY | LYD_PARSE_OPAQ, 0, &tree)) {
            rv = CAIRN_EMALFORMED;
        }
    }
    lyd_free_tree(op);
    if (rv) {
        cairn_errmsg_set(errmsg, size, "%s: unreadable reply data", what);
        return rv;
    }
    *out = tree;
    return 0;
}

/* The value of a leaf at an absolute path in data, or "". */
static const char *leaf_at(const struct lyd_node *data, const char *path)
{
    struct ly_set *set = NULL;
    const char *v = "";
    if (data && lyd_find_xpath(data, path, &set) == 0 && set->count) {
        v = lyd_get_value(set->dnodes[0]);
    }
    ly_set_free(set, NULL);
    return v ? v : "";
}

/* Step 5: modules from the YANG library and facts from system-state, in
 * one <get> with an XPath union. */
static int discover(struct sb_session *s, char *errmsg, size_t size)
{
    static const char filter[] =
        "/ietf-yang-library:yang-library/module-set/module/name"
        " | /cairn-cpe-system:system-state";
    struct lyd_node *data = NULL;
    struct ly_set *set = NULL;
    uint32_t i;
    int rv;

    rv = session_data(s, nc_rpc_get(filter, NC_WD_UNKNOWN, NC_PARAMTYPE_CONST),
                      "get yang-library and system-state", &data, errmsg, size);
    if (rv) {
        return rv;
    }
    if (data &&
        lyd_find_xpath(data, "/ietf-yang-library:yang-library/module-set/module/name", &set) == 0) {
        s->modules = calloc(set->count + 1, sizeof(*s->modules));
        for (i = 0; s->modules && i < set->count; i++) {
            s->modules[i] = strdup(lyd_get_value(set->dnodes[i]));
        }
    }
    ly_set_free(set, NULL);
    snprintf(s->facts.serial, sizeof(s->facts.serial), "%s",
             leaf_at(data, "/cairn-cpe-system:system-state/serial-number"));
    snprintf(s->facts.model, sizeof(s->facts.model), "%s",
             leaf_at(data, "/cairn-cpe-system:system-state/model"));
    snprintf(s->facts.software, sizeof(s->facts.software), "%s",
             leaf_at(data, "/cairn-cpe-system:system-state/software-version"));
    snprintf(s->activation_code, sizeof(s->activation_code), "%s",
             leaf_at(data, "/cairn-cpe-system:system-state/activation-code"));
    lyd_free_all(data);
    if (!s->modules || !s->modules[0]) {
        cairn_errmsg_set(errmsg, size, "the device's YANG library lists no modules");
        return CAIRN_EUNSUPPORTED;
    }
    return 0;
}

/* sb_session_open on a new connection (fd < 0) or on an accepted one. */
static int session_open(struct ly_ctx *ctx, const struct sb_connect *conn, int fd,
                        struct sb_session **out, char *errmsg, size_t size)
{
    struct sb_session *s;
    const char *const *caps;
    ssh_session ssh;
    size_t n;
    int rv;

    pthread_once(&client_once, client_init);
    s = calloc(1, sizeof(*s));
    if (!s) {
        if (fd >= 0) {
            close(fd);
        }
        cairn_errmsg_set(errmsg, size, "open session: out of memory");
        return CAIRN_ENOMEM;
    }
    s->ctx = ctx;
    s->fd = -1;
    s->timeout_ms = conn->timeout_ms ? conn->timeout_ms : 10000;
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    rv = ssh_open(s, conn, fd, &ssh, errmsg, size);
    if (rv) {
        goto err;
    }
    s->nc = nc_connect_libssh(ssh, ctx); /* owns ssh from here, also on failure */
    if (!s->nc) {
        cairn_errmsg_set(errmsg, size, "NETCONF hello failed");
        rv = CAIRN_EUNAVAILABLE;
        goto err;
    }
    s->alive = true;
    caps = nc_session_get_cpblts(s->nc);
    for (n = 0; caps && caps[n]; n++) {
    }
    s->caps = calloc(n + 1, sizeof(*s->caps));
    for (n = 0; s->caps && caps && caps[n]; n++) {
        s->caps[n] = strdup(caps[n]);
    }
    if (!nc_session_cpblt(s->nc, "urn:ietf:params:netconf:capability:candidate:1.0") ||
        !nc_session_cpblt(s->nc, "urn:ietf:params:netconf:capability:confirmed-commit:1.1")) {
        cairn_errmsg_set(errmsg, size,
                         "the device lacks the :candidate or :confirmed-commit:1.1 capability");
        rv = CAIRN_EUNSUPPORTED;
        goto err;
    }
    rv = discover(s, errmsg, size);
    if (rv) {
        goto err;
    }
    *out = s;
    return 0;

err:
    cairn_errmsg_wrap(errmsg, size, "%s port %u", conn->host, conn->port);
    sb_session_close(s);
    return rv;
}

int sb_session_open(struct ly_ctx *ctx, const struct sb_connect *conn, struct sb_session **out,
                    char *errmsg, size_t size)
{
    return session_open(ctx, conn, -1, out, errmsg, size);
}

int sb_session_accept(struct ly_ctx *ctx, int fd, const struct sb_connect *conn,
                      struct sb_session **out, char *errmsg, size_t size)
{
    return session_open(ctx, conn, fd, out, errmsg, size);
}

const char *sb_session_activation_code(const struct sb_session *s)
{
    return s->activation_code;
}

void sb_session_close(struct sb_session *s)
{
    size_t i;
    if (!s) {
        return;
    }
    if (s->nc) {
        nc_session_free(s->nc, NULL);
    }
    if (s->fd >= 0) {
        close(s->fd); /* after libssh is done with it */
    }
    for (i = 0; s->caps && s->caps[i]; i++) {
        free(s->caps[i]);
    }
    for (i = 0; s->modules && s->modules[i]; i++) {
        free(s->modules[i]);
    }
    free(s->caps);
    free(s->modules);
    free(s);
}

const char *sb_session_fingerprint(const struct sb_session *s)
{
    return s->fingerprint;
}

const struct sb_facts *sb_session_facts(const struct sb_session *s)
{
    return &s->facts;
}

const char *const *sb_session_modules(const struct sb_session *s)
{
    return (const char *const *)s->modules;
}

const char *const *sb_session_capabilities(const struct sb_session *s)
{
    return (const char *const *)s->caps;
}

bool sb_session_alive(const struct sb_session *s)
{
    return s->alive;
}

int sb_session_get_running(struct sb_session *s, struct lyd_node **out, char *errmsg, size_t size)
{
    return session_data(
        s, nc_rpc_getconfig(NC_DATASTORE_RUNNING, NULL, NC_WD_UNKNOWN, NC_PARAMTYPE_CONST),
        "get-config running", out, errmsg, size);
}
