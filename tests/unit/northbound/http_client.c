/*
 * The northbound tests' HTTP client (see http_client.h): plain sockets and
 * poll() with a deadline, so a stuck server fails a test instead of hanging
 * it.
 */
#include "http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cairn.h"

int hc_connect(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void hc_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    uint64_t deadline = cairn_now_ms() + HC_TIMEOUT_MS;
    while (len > 0 && cairn_now_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        ssize_t n;
        if (poll(&pfd, 1, 100) <= 0) {
            continue;
        }
        n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Reads more bytes into b; returns bytes read, 0 at the close, -1 on
 * timeout or error. */
static ssize_t read_more(int fd, struct cairn_buf *b, uint64_t deadline)
{
    char chunk[4096];
    for (;;) {
        uint64_t now = cairn_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;
        int rv;
        if (now >= deadline) {
            return -1;
        }
        rv = poll(&pfd, 1, (int)(deadline - now));
        if (rv < 0 && errno == EINTR) {
            continue;
        }
        if (rv <= 0) {
            return -1;
        }
        n = recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            /* A reset after the answer counts as the close. */
            return errno == ECONNRESET ? 0 : -1;
        }
        if (n > 0 && cairn_buf_append(b, chunk, (size_t)n) != 0) {
            return -1;
        }
        return n;
    }
}

static long content_length(const char *head)
{
    const char *p = head;
    while ((p = strchr(p, '\n')) != NULL) {
        p++;
        if (strncasecmp(p, "Content-Length:", 15) == 0) {
            return strtol(p + 15, NULL, 10);
        }
    }
    return -1;
}

int hc_read(int fd, struct hc_response *out)
{
    uint64_t deadline = cairn_now_ms() + HC_TIMEOUT_MS;
    struct cairn_buf b;
    char *end = NULL;
    size_t head_len;
    long length;
    ssize_t n;

    memset(out, 0, sizeof *out);
    cairn_buf_init(&b);
    while (end == NULL) {
        n = read_more(fd, &b, deadline);
        if (n <= 0) {
            cairn_buf_close(&b);
            return -1;
        }
        end = strstr(b.data, "\r\n\r\n");
    }
    head_len = (size_t)(end - b.data) + 4;
    out->head = strndup(b.data, head_len - 2);
    sscanf(b.data, "HTTP/1.%*d %d", &out->status);
    length = content_length(out->head);
    if (length >= 0) {
        while (b.len - head_len < (size_t)length) {
            if (read_more(fd, &b, deadline) <= 0) {
                goto fail;
            }
        }
    } else if (strstr(out->head, "Connection: close") != NULL) {
        /* No length: the body runs to the close. */
        while ((n = read_more(fd, &b, deadline)) > 0) {
        }
        if (n < 0) {
            goto fail;
        }
        out->closed = 1;
    }
    out->body_len = length >= 0 ? (size_t)length : b.len - head_len;
    out->body = strndup(b.data + head_len, out->body_len);
    cairn_buf_close(&b);
    return out->head != NULL && out->body != NULL && out->status != 0 ? 0 : -1;

fail:
    cairn_buf_close(&b);
    hc_response_free(out);
    return -1;
}

int hc_raw(int port, const void *buf, size_t len, struct hc_response *out)
{
    int fd = hc_connect(port);
    int rv;
    if (fd < 0) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    hc_send(fd, buf, len);
    rv = hc_read(fd, out);
    close(fd);
    return rv;
}

int hc_request(int port, const char *method, const char *path, const char *headers,
               const char *body, struct hc_response *out)
{
    struct cairn_buf req;
    int rv;
    cairn_buf_init(&req);
    cairn_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s",
                     method, path, port, headers != NULL ? headers : "");
    if (body != NULL) {
        cairn_buf_printf(&req, "Content-Length: %zu\r\n", strlen(body));
    }
    cairn_buf_printf(&req, "\r\n%s", body != NULL ? body : "");
    rv = hc_raw(port, req.data, req.len, out);
    cairn_buf_close(&req);
    return rv;
}

const char *hc_header(const struct hc_response *r, const char *name, char *buf, size_t size)
{
    size_t len = strlen(name);
    const char *p = r->head;
    while (p != NULL && (p = strchr(p, '\n')) != NULL) {
        p++;
        if (strncasecmp(p, name, len) == 0 && p[len] == ':') {
            const char *v = p + len + 1;
            size_t vlen;
            while (*v == ' ') {
                v++;
            }
            vlen = strcspn(v, "\r\n");
            snprintf(buf, size, "%.*s", (int)vlen, v);
            return buf;
        }
    }
    return NULL;
}

void hc_response_free(struct hc_response *r)
{
    free(r->head);
    free(r->body);
    r->head = NULL;
    r->body = NULL;
}
