/*
 * Error table, error-message chains, logging, clocks and random ids shared
 * by every module (see cairn.h).
 */
#include "cairn.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

const char *cairn_strerror(int rv)
{
    switch (rv) {
        case CAIRN_OK:
            return "success";
#define CAIRN_ERROR_CASE(name, msg) \
    case name:                      \
        return msg;
            CAIRN_ERRORS(CAIRN_ERROR_CASE)
#undef CAIRN_ERROR_CASE
        default:
            return "unknown error";
    }
}

void cairn_errmsg_set(char *errmsg, size_t size, const char *fmt, ...)
{
    va_list ap;
    if (errmsg == NULL || size == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(errmsg, size, fmt, ap);
    va_end(ap);
}

void cairn_errmsg_wrap(char *errmsg, size_t size, const char *fmt, ...)
{
    char prefix[CAIRN_ERRMSG_SIZE];
    char old[CAIRN_ERRMSG_SIZE];
    va_list ap;
    if (errmsg == NULL || size == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(old, sizeof old, "%s", errmsg);
    if (old[0] == '\0') {
        snprintf(errmsg, size, "%s", prefix);
    } else {
        snprintf(errmsg, size, "%s: %s", prefix, old);
    }
}

static struct {
    int level;
    char prefix[128];
} log_cfg = {CAIRN_LOG_INFO, ""};

static const char *level_names[] = {"", "error", "warn", "info", "debug"};

void cairn_log_setup(int level, const char *prefix)
{
    if (level >= CAIRN_LOG_ERROR && level <= CAIRN_LOG_DEBUG) {
        log_cfg.level = level;
    }
    snprintf(log_cfg.prefix, sizeof log_cfg.prefix, "%s", prefix != NULL ? prefix : "");
}

int cairn_log_level_parse(const char *name)
{
    for (int i = CAIRN_LOG_ERROR; i <= CAIRN_LOG_DEBUG; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            return i;
        }
    }
    return 0;
}

void cairn_log(int level, const char *fmt, ...)
{
    char line[2048];
    char stamp[40];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;
    if (level > log_cfg.level || level < CAIRN_LOG_ERROR) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, sizeof line, "ts=%s.%03ldZ level=%s %s%s", stamp, ts.tv_nsec / 1000000,
                 level_names[level], log_cfg.prefix, log_cfg.prefix[0] != '\0' ? " " : "");
    if (n < 0 || (size_t)n >= sizeof line) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One event, one line (journald keeps lines): a newline or other
     * control character inside a value, from an error text say, becomes a
     * space. */
    for (char *p = line + n; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20) {
            *p = ' ';
        }
    }
    /* One write per line keeps lines whole when several threads log. */
    fprintf(stderr, "%s\n", line);
}

uint64_t cairn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t cairn_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cairn_random_bytes(void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            /* getrandom cannot fail on Linux >= 3.17 once the pool is ready;
             * there is no safe fallback for ids that must be unique. */
            abort();
        }
        p += n;
        len -= (size_t)n;
    }
}

uint64_t cairn_backoff_ms(uint64_t min_ms, uint64_t max_ms, unsigned failures, uint32_t random)
{
    uint64_t b = min_ms < max_ms ? min_ms : max_ms;
    for (unsigned i = 1; i < failures && b < max_ms; i++) {
        b *= 2;
    }
    if (b > max_ms) {
        b = max_ms;
    }
    return b * 3 / 4 + (b / 2) * (random % 1001) / 1000;
}

void cairn_uuid(char out[CAIRN_UUID_SIZE])
{
    unsigned char b[16];
    uint64_t ms = (uint64_t)cairn_wall_ms();
    cairn_random_bytes(b, sizeof b);
    for (int i = 0; i < 6; i++) {
        b[i] = (unsigned char)(ms >> (40 - 8 * i)); /* unix_ts_ms, big-endian */
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70); /* version 7 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
    snprintf(out, CAIRN_UUID_SIZE,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

bool cairn_uuid_valid(const char *s)
{
    size_t i;
    for (i = 0; s[i] != '\0'; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return false;
            }
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return i == 36;
}

int cairn_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (s == NULL || *s < '0' || *s > '9') {
        return CAIRN_EINVAL;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return CAIRN_EINVAL;
    }
    *out = (uint64_t)v;
    return 0;
}

void cairn_buf_init(struct cairn_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void cairn_buf_close(struct cairn_buf *b)
{
    free(b->data);
    cairn_buf_init(b);
}

int cairn_buf_reserve(struct cairn_buf *b, size_t extra)
{
    size_t want = b->len + extra + 1;
    size_t cap = b->cap != 0 ? b->cap : 256;
    char *p;
    if (want <= b->cap) {
        return 0;
    }
    while (cap < want) {
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        return CAIRN_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int cairn_buf_append(struct cairn_buf *b, const void *data, size_t len)
{
    int rv = cairn_buf_reserve(b, len);
    if (rv != 0) {
        return rv;
    }
    if (len > 0) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int cairn_buf_printf(struct cairn_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    int rv;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return CAIRN_EINVAL;
    }
    rv = cairn_buf_reserve(b, (size_t)n);
    if (rv != 0) {
        return rv;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int cairn_listen_check(const char *address, char *errmsg, size_t size)
{
    char host[INET_ADDRSTRLEN];
    const char *colon = strrchr(address, ':');
    struct sockaddr_in sa;
    uint64_t port;
    int fd, on = 1, rv = 0;

    if (colon == NULL || (size_t)(colon - address) >= sizeof host ||
        cairn_parse_u64(colon + 1, &port) != 0 || port == 0 || port > 65535) {
        return CAIRN_EINVAL;
    }
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        return CAIRN_EINVAL;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cairn_errmsg_set(errmsg, size, "listen on %s: %s", address, strerror(errno));
        return CAIRN_EIO;
    }
    /* As servers do: a port in TIME_WAIT is free to listen on. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", strerror(errno));
        if (buf[0] >= 'A' && buf[0] <= 'Z') {
            buf[0] = (char)(buf[0] - 'A' + 'a');
        }
        cairn_errmsg_set(errmsg, size, "listen on %s: %s", address, buf);
        rv = CAIRN_EIO;
    }
    close(fd);
    return rv;
}

unsigned cairn_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    unsigned n = 0;
    if (d == NULL) {
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}
