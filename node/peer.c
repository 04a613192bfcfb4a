/*
 * A minimal HTTP/1.1 client for node-to-node calls (see peer.h). Answers
 * come from civetweb handlers of the same project, which always send
 * Content-Length, so only that framing is read. A kept-alive connection
 * that the peer closed while idle fails on first use; the call then retries
 * once on a new connection (every internal call is safe to repeat: writes
 * carry request ids).
 */
#include "peer.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define POOL_SIZE 64

struct idle_conn {
    char address[64];
    int fd;
};

struct peer_pool {
    pthread_mutex_t mu;
    char secret[129];
    struct idle_conn idle[POOL_SIZE];
    size_t n_idle;
};

int peer_pool_create(const char *secret, struct peer_pool **out)
{
    struct peer_pool *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return CAIRN_ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    snprintf(p->secret, sizeof p->secret, "%s", secret != NULL ? secret : "");
    *out = p;
    return 0;
}

void peer_pool_destroy(struct peer_pool *pool)
{
    if (pool == NULL) {
        return;
    }
    for (size_t i = 0; i < pool->n_idle; i++) {
        close(pool->idle[i].fd);
    }
    pthread_mutex_destroy(&pool->mu);
    free(pool);
}

static int pool_take(struct peer_pool *pool, const char *address)
{
    int fd = -1;
    pthread_mutex_lock(&pool->mu);
    for (size_t i = pool->n_idle; i > 0; i--) {
        if (strcmp(pool->idle[i - 1].address, address) == 0) {
            fd = pool->idle[i - 1].fd;
            pool->idle[i - 1] = pool->idle[--pool->n_idle];
            break;
        }
    }
    pthread_mutex_unlock(&pool->mu);
    return fd;
}

static void pool_put(struct peer_pool *pool, const char *address, int fd)
{
    pthread_mutex_lock(&pool->mu);
    if (pool->n_idle < POOL_SIZE) {
        snprintf(pool->idle[pool->n_idle].address, sizeof pool->idle[0].address, "%s", address);
        pool->idle[pool->n_idle++].fd = fd;
        fd = -1;
    }
    pthread_mutex_unlock(&pool->mu);
    if (fd >= 0) {
        close(fd);
    }
}

static int remaining_ms(uint64_t deadline_ms)
{
    uint64_t now = cairn_now_ms();
    if (now >= deadline_ms) {
        return 0;
    }
    return deadline_ms - now > 60000 ? 60000 : (int)(deadline_ms - now);
}

/* Waits until fd is ready for events; CAIRN_ETIMEDOUT at the deadline. */
static int wait_fd(int fd, short events, uint64_t deadline_ms)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int ms = remaining_ms(deadline_ms);
        int n;
        if (ms == 0) {
            return CAIRN_ETIMEDOUT;
        }
        n = poll(&pfd, 1, ms);
        if (n > 0) {
            return 0;
        }
        if (n < 0 && errno != EINTR) {
            return CAIRN_EUNAVAILABLE;
        }
    }
}

static int dial(const char *address, uint64_t deadline_ms, int *out, char *errmsg, size_t n)
{
    char host[64];
    const char *colon = strrchr(address, ':');
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int fd, rv, one = 1, err = 0;
    socklen_t len = sizeof err;

    if (colon == NULL || (size_t)(colon - address) >= sizeof host) {
        cairn_errmsg_set(errmsg, n, "bad peer address %s", address);
        return CAIRN_EINVAL;
    }
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL) {
        cairn_errmsg_set(errmsg, n, "resolve %s: failed", address);
        return CAIRN_EUNAVAILABLE;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        cairn_errmsg_set(errmsg, n, "socket: %s", strerror(errno));
        return CAIRN_EUNAVAILABLE;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    rv = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rv != 0 && errno != EINPROGRESS) {
        cairn_errmsg_set(errmsg, n, "connect %s: %s", address, strerror(errno));
        close(fd);
        return CAIRN_EUNAVAILABLE;
    }
    if (rv != 0) {
        rv = wait_fd(fd, POLLOUT, deadline_ms);
        if (rv == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) {
            cairn_errmsg_set(errmsg, n, "connect %s: %s", address, strerror(err));
            rv = CAIRN_EUNAVAILABLE;
        } else if (rv != 0) {
            cairn_errmsg_set(errmsg, n, "connect %s: %s", address, cairn_strerror(rv));
        }
        if (rv != 0) {
            close(fd);
            return rv;
        }
    }
    *out = fd;
    return 0;
}

static int send_all(int fd, const char *p, size_t len, uint64_t deadline_ms)
{
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rv = wait_fd(fd, POLLOUT, deadline_ms);
            if (rv != 0) {
                return rv;
            }
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        return CAIRN_EUNAVAILABLE;
    }
    return 0;
}

/* Sends head and body; with one sendmsg when the socket takes it all (the
 * usual case), so a forwarded request is one segment rather than two. */
static int send_request(int fd, const char *head, size_t head_len, const void *body, size_t len,
                        uint64_t deadline_ms)
{
    struct iovec iov[2] = {{.iov_base = (void *)head, .iov_len = head_len},
                           {.iov_base = (void *)body, .iov_len = len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len > 0 ? 2 : 1};
    ssize_t w;
    do {
        w = sendmsg(fd, &msg, MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        return CAIRN_EUNAVAILABLE;
    }
    if (w < 0) {
        w = 0;
    }
    /* What the socket did not take goes out piecewise. */
    if ((size_t)w < head_len) {
        int rv = send_all(fd, head + w, head_len - (size_t)w, deadline_ms);
        return rv != 0 || len == 0 ? rv : send_all(fd, body, len, deadline_ms);
    }
    w -= (ssize_t)head_len;
    return (size_t)w < len ? send_all(fd, (const char *)body + w, len - (size_t)w, deadline_ms) : 0;
}

/* Reads more bytes into b; CAIRN_EUNAVAILABLE on EOF. The bytes go
 * straight into b: this runs on civetweb's workers, whose stacks are
 * 100 KB (see CAIRN_FRAME_MAX in CMakeLists.txt). */
static int recv_some(int fd, struct cairn_buf *b, uint64_t deadline_ms)
{
    enum { CHUNK = 16384 };
    int rv = cairn_buf_reserve(b, CHUNK);
    if (rv != 0) {
        return rv;
    }
    for (;;) {
        ssize_t r = recv(fd, b->data + b->len, CHUNK, 0);
        if (r > 0) {
            b->len += (size_t)r;
            b->data[b->len] = '\0';
            return 0;
        }
        if (r == 0) {
            return CAIRN_EUNAVAILABLE;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            rv = wait_fd(fd, POLLIN, deadline_ms);
            if (rv != 0) {
                return rv;
            }
            continue;
        }
        if (errno != EINTR) {
            return CAIRN_EUNAVAILABLE;
        }
    }
}

/* Parses the head in b (complete up to "\r\n\r\n" at head_len). */
static int parse_head(const char *head, int *status, size_t *content_length, bool *keep_alive)
{
    const char *line;
    bool have_length = false;
    if (sscanf(head, "HTTP/1.%*d %d", status) != 1) {
        return CAIRN_EMALFORMED;
    }
    *keep_alive = strncmp(head, "HTTP/1.1", 8) == 0;
    line = strstr(head, "\r\n");
    while (line != NULL && line[2] != '\r') {
        const char *name = line + 2;
        if (strncasecmp(name, "Content-Length:", 15) == 0) {
            unsigned long long v;
            if (sscanf(name + 15, " %llu", &v) != 1) {
                return CAIRN_EMALFORMED;
            }
            *content_length = (size_t)v;
            have_length = true;
        } else if (strncasecmp(name, "Connection:", 11) == 0) {
            const char *v = name + 11;
            while (*v == ' ') {
                v++;
            }
            if (strncasecmp(v, "close", 5) == 0) {
                *keep_alive = false;
            }
        }
        line = strstr(name, "\r\n");
    }
    return have_length ? 0 : CAIRN_EMALFORMED;
}

static int exchange(int fd, const char *req, size_t req_len, const void *body, size_t len,
                    uint64_t deadline_ms, int *status, struct cairn_buf *resp, bool *keep_alive)
{
    struct cairn_buf in;
    char *end = NULL;
    size_t head_len, content_length = 0;
    int rv;

    rv = send_request(fd, req, req_len, body, len, deadline_ms);
    if (rv != 0) {
        return rv;
    }
    cairn_buf_init(&in);
    while (end == NULL) {
        rv = recv_some(fd, &in, deadline_ms);
        if (rv != 0) {
            goto out;
        }
        end = strstr(in.data, "\r\n\r\n");
        if (end == NULL && in.len > 65536) {
            rv = CAIRN_EMALFORMED;
            goto out;
        }
    }
    head_len = (size_t)(end - in.data) + 4;
    end[2] = '\0';
    rv = parse_head(in.data, status, &content_length, keep_alive);
    if (rv != 0) {
        goto out;
    }
    while (in.len - head_len < content_length) {
        rv = recv_some(fd, &in, deadline_ms);
        if (rv != 0) {
            goto out;
        }
    }
    if (in.len - head_len != content_length) {
        rv = CAIRN_EMALFORMED; /* pipelined garbage after the body */
        goto out;
    }
    resp->len = 0;
    rv = cairn_buf_append(resp, in.data + head_len, content_length);
out:
    cairn_buf_close(&in);
    return rv;
}

int peer_call(struct peer_pool *pool, const char *address, const char *method, const char *path,
              const char *content_type, const void *body, size_t len, uint64_t deadline_ms,
              int *status, struct cairn_buf *resp, char *errmsg, size_t errmsg_size)
{
    struct cairn_buf req;
    int rv = 0;

    cairn_buf_init(&req);
    rv = cairn_buf_printf(&req,
                          "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n"
                          "Content-Type: %s\r\n",
                          method, path, address, len,
                          content_type != NULL ? content_type : "application/octet-stream");
    if (rv == 0 && pool->secret[0] != '\0') {
        rv = cairn_buf_printf(&req, "X-Cairn-Cluster-Secret: %s\r\n", pool->secret);
    }
    if (rv == 0) {
        rv = cairn_buf_append(&req, "\r\n", 2);
    }
    if (rv != 0) {
        cairn_buf_close(&req);
        return rv;
    }
    /* First try a kept-alive connection; if it turns out dead, dial anew. */
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = false, keep_alive = false;
        int fd = attempt == 0 ? pool_take(pool, address) : -1;
        if (fd >= 0) {
            reused = true;
        } else {
            rv = dial(address, deadline_ms, &fd, errmsg, errmsg_size);
            if (rv != 0) {
                break;
            }
        }
        rv = exchange(fd, req.data, req.len, body, len, deadline_ms, status, resp, &keep_alive);
        if (rv == 0) {
            if (keep_alive) {
                pool_put(pool, address, fd);
            } else {
                close(fd);
            }
            break;
        }
        close(fd);
        if (!(reused && rv == CAIRN_EUNAVAILABLE)) {
            cairn_errmsg_set(errmsg, errmsg_size, "%s %s to %s: %s", method, path, address,
                             cairn_strerror(rv));
            break;
        }
    }
    cairn_buf_close(&req);
    return rv;
}
