/*
 * The node's HTTP server: a thin wrapper over civetweb 1.15 that starts it
 * with Cairn's options (one IPv4 listener, keep-alive, TCP_NODELAY, no
 * document root), sends civetweb's own log lines through cairn_log, turns a
 * failed listen into a message that names the address and the cause, and
 * answers every path nobody registered with a problem+json 404. It also
 * holds the response helpers every handler uses, so that all answers carry
 * Content-Length and Cache-Control and all errors have one shape (RFC 9457).
 *
 * The wrapper keeps no global state besides civetweb's one-time library
 * initialisation, so several servers can run in one process (tests run
 * several nodes that way).
 */
#include "http.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <civetweb.h>
#include <stdatomic.h>

struct http_server {
    struct mg_context *ctx;   /* civetweb's server */
    atomic_bool open;         /* false: every request is answered 503 */
    size_t max_body;          /* request body limit, bytes */
    int port;                 /* bound TCP port */
    struct sockaddr_in local; /* where to connect to reach the server */
};

/* Problem types are URIs in this namespace (RFC 9457 §3.1.1). */
#define PROBLEM_TYPE_PREFIX "urn:cairn:problem:"

/* "Sun, 06 Nov 1994 08:49:37 GMT" and its NUL, with room to spare. */
#define HTTP_DATE_SIZE 40

/* civetweb must be initialised once per process, before any mg_start; it is
 * never un-initialised (other servers may still be running). */
static pthread_once_t library_once = PTHREAD_ONCE_INIT;

static void library_init(void)
{
    mg_init_library(0);
}

/* civetweb's log lines go to our log (its own would go to stderr unformatted
 * or to a file). Returning 1 tells civetweb not to log them itself. */
static int log_message_cb(const struct mg_connection *conn, const char *message)
{
    char line[512];
    size_t n;
    (void)conn;
    snprintf(line, sizeof line, "%s", message != NULL ? message : "");
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }
    for (size_t i = 0; i < n; i++) {
        if (line[i] == '"') {
            line[i] = '\'';
        }
    }
    cairn_log(CAIRN_LOG_WARN, "msg=civetweb detail=\"%s\"", line);
    return 1;
}

/* Access logging is the API's job (it knows the route); keep civetweb quiet. */
static int log_access_cb(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    (void)message;
    return 1;
}

/* Cairn authenticates in its own handlers (api_auth.c), never with
 * civetweb's htpasswd files. Without an authorization handler civetweb
 * looks for one on every request (a handler's path is empty, so it stats
 * "/.htpasswd"): a system call per request, and a file that, if it ever
 * appeared there, would put the whole API behind digest authentication. */
static int authorize_cb(struct mg_connection *conn, void *data)
{
    (void)conn;
    (void)data;
    return 1;
}

/* Answers every request no route matched. Registered as the pattern "**",
 * which civetweb tries only after every exact and prefix route. */
static int not_found_cb(struct mg_connection *conn, void *data)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    (void)data;
    return http_problem(conn, 404, "not-found", "Resource not found", NULL,
                        "no resource at %s; the API lives under /api/v1", ri->local_uri);
}

/* Marks the connection to be closed after this answer. civetweb keeps that
 * flag to itself, so it is also recorded in the connection's user data,
 * where http_reply reads it to announce "Connection: close". civetweb reuses a
 * connection object for the next socket, so every request starts unmarked
 * (begin_request_cb). */
static char closing_mark;

static void close_after_reply(struct mg_connection *conn)
{
    mg_disable_connection_keep_alive(conn);
    mg_set_user_connection_data(conn, &closing_mark);
}

/* Until the server is opened, answers every request 503 "starting": a node
 * listens before its routes are registered, and a client (or a peer
 * forwarding to it) must not read "no such resource" into that moment. */
static int begin_request_cb(struct mg_connection *conn)
{
    const struct http_server *srv = mg_get_user_data(mg_get_context(conn));
    mg_set_user_connection_data(conn, NULL);
    if (srv == NULL || atomic_load(&srv->open)) {
        return 0;
    }
    return http_problem(conn, 503, "unavailable", "Service unavailable", NULL,
                        "the node is starting; retry in a moment");
}

void http_server_open(struct http_server *srv)
{
    atomic_store(&srv->open, true);
}

/* Splits "host:port" and resolves host to a dotted IPv4 address, because
 * civetweb's listening_ports takes only numeric addresses. */
static int listen_parse(const char *listen, char *addr, size_t addr_size, int *port, char *errmsg,
                        size_t errmsg_size)
{
    const char *colon = strrchr(listen, ':');
    char host[256];
    uint64_t p;
    struct addrinfo hints;
    struct addrinfo *ai = NULL;
    int rv;

    if (colon == NULL || colon == listen || (size_t)(colon - listen) >= sizeof host ||
        cairn_parse_u64(colon + 1, &p) != 0 || p > 65535) {
        cairn_errmsg_set(errmsg, errmsg_size,
                         "listen on %s: invalid address: want IPV4-ADDRESS:PORT, "
                         "for example 127.0.0.1:8001",
                         listen);
        return CAIRN_EINVAL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    rv = getaddrinfo(host, NULL, &hints, &ai);
    if (rv != 0 || ai == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "listen on %s: resolve %s: %s", listen, host,
                         rv != 0 ? gai_strerror(rv) : "no IPv4 address");
        if (ai != NULL) {
            freeaddrinfo(ai);
        }
        return CAIRN_EINVAL;
    }
    inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr, addr,
              (socklen_t)addr_size);
    freeaddrinfo(ai);
    *port = (int)p;
    return 0;
}

/* civetweb reports a failed bind only as "Failed to setup server ports";
 * after it failed, bind the same address ourselves (with the same
 * SO_REUSEADDR) to learn the errno, for a message that says what to fix. */
int http_server_start(const struct http_config *cfg, struct http_server **out, char *errmsg,
                      size_t errmsg_size)
{
    struct http_server *srv;
    struct mg_callbacks callbacks;
    struct mg_init_data init;
    struct mg_error_data error;
    struct mg_server_port ports[4];
    unsigned error_code = 0;
    char error_text[256] = "";
    char addr[INET_ADDRSTRLEN];
    char listening[INET_ADDRSTRLEN + 8];
    char threads[16];
    char timeout[16];
    const char *options[16];
    size_t n = 0;
    int port;
    int rv;

    if (cfg == NULL || cfg->listen == NULL || cfg->threads == 0 || cfg->max_body == 0) {
        cairn_errmsg_set(errmsg, errmsg_size,
                         "http server: listen address, threads and max_body must be set");
        rv = CAIRN_EINVAL;
        goto err;
    }
    rv = listen_parse(cfg->listen, addr, sizeof addr, &port, errmsg, errmsg_size);
    if (rv != 0) {
        goto err;
    }
    pthread_once(&library_once, library_init);

    srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "http server: out of memory");
        rv = CAIRN_ENOMEM;
        goto err;
    }
    srv->max_body = cfg->max_body;
    atomic_init(&srv->open, !cfg->start_closed);

    snprintf(listening, sizeof listening, "%s:%d", addr, port);
    snprintf(threads, sizeof threads, "%u", cfg->threads);
    options[n++] = "listening_ports";
    options[n++] = listening;
    options[n++] = "num_threads";
    options[n++] = threads;
    if (cfg->request_timeout_ms > 0) {
        snprintf(timeout, sizeof timeout, "%u", cfg->request_timeout_ms);
        options[n++] = "request_timeout_ms";
        options[n++] = timeout;
    }
    options[n++] = "enable_keep_alive";
    options[n++] = "yes";
    options[n++] = "tcp_nodelay";
    options[n++] = "1";
    options[n] = NULL;

    memset(&callbacks, 0, sizeof callbacks);
    callbacks.log_message = log_message_cb;
    callbacks.log_access = log_access_cb;
    callbacks.begin_request = begin_request_cb;
    init.callbacks = &callbacks;
    init.user_data = srv;
    init.configuration_options = options;
    error.code = &error_code;
    error.text = error_text;
    error.text_buffer_size = sizeof error_text;

    /* Check the port first: civetweb would log its own bind failure as
     * well, and the operator should read one line that says what is wrong. */
    if (port != 0 && cairn_listen_check(listening, errmsg, errmsg_size) == CAIRN_EIO) {
        rv = CAIRN_EIO;
        goto err_after_alloc;
    }
    srv->ctx = mg_start2(&init, &error);
    if (srv->ctx == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "listen on %s: %s", cfg->listen,
                         error_text[0] != '\0' ? error_text : "civetweb failed to start");
        rv = CAIRN_EIO;
        goto err_after_alloc;
    }

    memset(ports, 0, sizeof ports);
    if (mg_get_server_ports(srv->ctx, 4, ports) < 1) {
        cairn_errmsg_set(errmsg, errmsg_size, "listen on %s: no listening port", cfg->listen);
        rv = CAIRN_EIO;
        goto err_after_start;
    }
    srv->port = ports[0].port;
    srv->local.sin_family = AF_INET;
    srv->local.sin_port = htons((uint16_t)srv->port);
    inet_pton(AF_INET, addr, &srv->local.sin_addr);
    if (srv->local.sin_addr.s_addr == htonl(INADDR_ANY)) {
        srv->local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    mg_set_auth_handler(srv->ctx, "**", authorize_cb, NULL);
    mg_set_request_handler(srv->ctx, "**", not_found_cb, srv);
    *out = srv;
    return 0;

err_after_start:
    mg_stop(srv->ctx);
err_after_alloc:
    free(srv);
err:
    assert(rv != 0);
    return rv;
}

/* Stopping civetweb: its accept loop polls the listening socket in 2 s
 * quanta and looks at the stop flag only when poll returns, so a bare
 * mg_stop takes up to 2 s. http_server_destroy runs mg_stop on a helper
 * thread and meanwhile connects to the server now and then: a connection
 * wakes the loop, which then sees the flag. A connection that arrives before
 * the flag is set is served as an empty request and closed. */
struct stopper {
    struct mg_context *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done; /* mg_stop returned */
};

static void *stop_thread(void *arg)
{
    struct stopper *st = arg;
    mg_stop(st->ctx);
    pthread_mutex_lock(&st->mu);
    st->done = true;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

static void poke(const struct http_server *srv)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        connect(fd, (const struct sockaddr *)&srv->local, sizeof srv->local);
        close(fd);
    }
}

/* How often and how long to poke the stopping server. */
#define STOP_POKE_MS    20
#define STOP_POKE_LIMIT 250

void http_server_destroy(struct http_server *srv)
{
    struct stopper st;
    pthread_condattr_t attr;
    pthread_t thread;

    if (srv == NULL) {
        return;
    }
    st.ctx = srv->ctx;
    st.done = false;
    pthread_mutex_init(&st.mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&st.cv, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&thread, NULL, stop_thread, &st) != 0) {
        mg_stop(srv->ctx);
    } else {
        pthread_mutex_lock(&st.mu);
        for (int i = 0; !st.done; i++) {
            struct timespec ts;
            if (i < STOP_POKE_LIMIT) {
                pthread_mutex_unlock(&st.mu);
                poke(srv);
                pthread_mutex_lock(&st.mu);
            }
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += STOP_POKE_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            if (!st.done) {
                pthread_cond_timedwait(&st.cv, &st.mu, &ts);
            }
        }
        pthread_mutex_unlock(&st.mu);
        pthread_join(thread, NULL);
    }
    pthread_cond_destroy(&st.cv);
    pthread_mutex_destroy(&st.mu);
    free(srv);
}

void http_server_route(struct http_server *srv, const char *uri, http_handler_cb handler,
                       void *data)
{
    mg_set_request_handler(srv->ctx, uri, handler, data);
    /* civetweb tries pattern routes in registration order: keep the
     * catch-all last so that patterns registered after it still match. */
    mg_set_request_handler(srv->ctx, "**", NULL, NULL);
    mg_set_request_handler(srv->ctx, "**", not_found_cb, srv);
}

size_t http_server_max_body(const struct http_server *srv)
{
    return srv->max_body;
}

int http_server_port(const struct http_server *srv)
{
    return srv->port;
}

int http_body_read(struct mg_connection *conn, size_t max, struct cairn_buf *b)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    enum { CHUNK = 8192 }; /* read straight into b: worker stacks are 100 KB */
    size_t total = 0;
    int rv;

    if (ri->content_length > 0 && (unsigned long long)ri->content_length > max) {
        /* The body stays unread, so the connection cannot be reused. */
        close_after_reply(conn);
        return CAIRN_ETOOBIG;
    }
    /* A Content-Length body ends after its length; a chunked one (length
     * -1) when mg_read reports the end. Either way count what arrives. */
    for (;;) {
        size_t want = CHUNK;
        int got;
        if (ri->content_length >= 0) {
            size_t left = (size_t)ri->content_length - total;
            if (left == 0) {
                break;
            }
            if (left < want) {
                want = left;
            }
        }
        rv = cairn_buf_reserve(b, want);
        if (rv != 0) {
            return rv;
        }
        got = mg_read(conn, b->data + b->len, want);
        if (got < 0) {
            close_after_reply(conn);
            return CAIRN_EIO;
        }
        if (got == 0) {
            if (ri->content_length >= 0) {
                /* The client closed before sending all it announced. */
                close_after_reply(conn);
                return CAIRN_EIO;
            }
            break;
        }
        total += (size_t)got;
        if (total > max) {
            close_after_reply(conn);
            return CAIRN_ETOOBIG;
        }
        b->len += (size_t)got;
        b->data[b->len] = '\0';
    }
    if (b->data == NULL) {
        /* Callers may rely on b->data being a (possibly empty) string. */
        return cairn_buf_append(b, "", 0);
    }
    return 0;
}

static bool has_header(const char *lines, const char *name)
{
    size_t len = strlen(name);
    const char *p = lines;
    while (p != NULL && *p != '\0') {
        if (strncasecmp(p, name, len) == 0 && p[len] == ':') {
            return true;
        }
        p = strchr(p, '\n');
        if (p != NULL) {
            p++;
        }
    }
    return false;
}

/* True if the comma-separated header value list holds token (any case). */
static bool header_has_token(const char *value, const char *token)
{
    size_t len = strlen(token);
    const char *p = value;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        if (strncasecmp(p, token, len) == 0 &&
            (p[len] == '\0' || p[len] == ',' || p[len] == ' ' || p[len] == '\t')) {
            return true;
        }
        p += strcspn(p, ",");
    }
    return false;
}

/* The Connection header civetweb would send, by the rule civetweb then
 * applies to the connection (should_keep_alive in civetweb 1.15): keep-alive
 * is on for this server; a 401 closes; a request's Connection header
 * decides, else HTTP/1.1 keeps the connection. */
static bool reply_keeps_alive(const struct mg_connection *conn, int status)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *h = mg_get_header(conn, "Connection");
    if (status == 401 || mg_get_user_connection_data(conn) == &closing_mark) {
        return false;
    }
    if (h != NULL) {
        return header_has_token(h, "keep-alive");
    }
    return ri->http_version != NULL && strcmp(ri->http_version, "1.1") == 0;
}

/* An IMF-fixdate (RFC 9110 §5.6.7), in the C locale whatever the process's. */
static void imf_date(char out[HTTP_DATE_SIZE])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(out, HTTP_DATE_SIZE, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

/* The whole response goes out in one mg_write (one send on the socket):
 * civetweb's mg_response_header_send writes the status line and every
 * header with its own mg_printf, each a send(2) of its own, which cost
 * about 20,000 instructions and eight system calls per answer. The
 * headers are those civetweb sent (Date, Connection), so clients see the
 * same answer. The handler's return value (the status) is what civetweb
 * logs and keys its keep-alive rule on. */
int http_reply(struct mg_connection *conn, int status, const char *content_type,
               const char *extra_headers, const void *body, size_t len)
{
    char head[512], length[48] = "", date[HTTP_DATE_SIZE], tail[128];
    bool is_head = strcmp(mg_get_request_info(conn)->request_method, "HEAD") == 0;
    size_t extra_len = extra_headers != NULL ? strlen(extra_headers) : 0;
    bool extra_crlf = extra_len > 0 && (extra_len < 2 || extra_headers[extra_len - 1] != '\n');
    size_t body_len = is_head ? 0 : len;
    int head_len, tail_len;
    size_t total;
    char *out, *p;
    int rv = 0;

    /* A 204 or 304 has no body and must not announce one (RFC 9110 §8.6). */
    if (status != 204 && status != 304) {
        snprintf(length, sizeof length, "Content-Length: %zu\r\n", len);
    }
    head_len = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%s%s%s%s%s", status,
                        http_status_text(status), content_type != NULL ? "Content-Type: " : "",
                        content_type != NULL ? content_type : "",
                        content_type != NULL ? "\r\n" : "", length,
                        extra_headers == NULL || !has_header(extra_headers, "Cache-Control")
                            ? "Cache-Control: no-store\r\n"
                            : "");
    imf_date(date);
    tail_len = snprintf(tail, sizeof tail, "Date: %s\r\nConnection: %s\r\n\r\n", date,
                        reply_keeps_alive(conn, status) ? "keep-alive" : "close");
    if (head_len < 0 || (size_t)head_len >= sizeof head || tail_len < 0 ||
        (size_t)tail_len >= sizeof tail) {
        return CAIRN_EINVAL; /* a content type no handler uses */
    }
    total = (size_t)head_len + extra_len + (extra_crlf ? 2 : 0) + (size_t)tail_len + body_len;
    out = malloc(total);
    if (out == NULL) {
        return CAIRN_ENOMEM;
    }
    p = out;
    memcpy(p, head, (size_t)head_len);
    p += head_len;
    if (extra_len > 0) {
        memcpy(p, extra_headers, extra_len);
        p += extra_len;
    }
    if (extra_crlf) {
        memcpy(p, "\r\n", 2);
        p += 2;
    }
    memcpy(p, tail, (size_t)tail_len);
    p += tail_len;
    if (body_len > 0) {
        memcpy(p, body, body_len);
    }
    /* A HEAD answer has the headers of the full answer and no body. */
    if (mg_write(conn, out, total) != (int)total) {
        rv = CAIRN_EIO;
    }
    free(out);
    return rv;
}

/* Replaces bytes that are not valid UTF-8 with '?', in place, so that text
 * taken from a request (a path, a parser's error) can go into JSON. */
static void utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p != '\0') {
        size_t need;
        size_t i;
        if (*p < 0x80) {
            p++;
            continue;
        }
        need = (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : 0;
        for (i = 1; need != 0 && i <= need; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                break;
            }
        }
        if (need == 0 || i <= need || (*p == 0xc0 || *p == 0xc1) || *p > 0xf4 ||
            (*p == 0xe0 && p[1] < 0xa0) || (*p == 0xed && p[1] >= 0xa0) ||
            (*p == 0xf0 && p[1] < 0x90) || (*p == 0xf4 && p[1] >= 0x90)) {
            *p++ = '?';
            continue;
        }
        p += need + 1;
    }
}

static int set_text(json_t *obj, const char *key, const char *text)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", text);
    utf8_sanitize(buf);
    return json_object_set_new(obj, key, json_string(buf));
}

int http_problem_va(struct mg_connection *conn, int status, const char *extra_headers,
                    const char *type, const char *title, const char *field, const char *detail_fmt,
                    va_list ap)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char type_uri[128];
    char detail[1024];
    json_t *problem;
    char *text;

    vsnprintf(detail, sizeof detail, detail_fmt, ap);
    snprintf(type_uri, sizeof type_uri, PROBLEM_TYPE_PREFIX "%s", type);

    problem = json_object();
    if (problem == NULL || set_text(problem, "type", type_uri) != 0 ||
        set_text(problem, "title", title != NULL ? title : http_status_text(status)) != 0 ||
        json_object_set_new(problem, "status", json_integer(status)) != 0 ||
        set_text(problem, "detail", detail) != 0 ||
        (field != NULL && set_text(problem, "field", field) != 0) ||
        set_text(problem, "instance", ri->local_uri != NULL ? ri->local_uri : "") != 0) {
        json_decref(problem);
        http_reply(conn, 500, "text/plain", extra_headers, "out of memory\n", 14);
        return 500;
    }
    text = json_dumps(problem, JSON_COMPACT);
    json_decref(problem);
    if (text == NULL) {
        http_reply(conn, 500, "text/plain", extra_headers, "out of memory\n", 14);
        return 500;
    }
    http_reply(conn, status, "application/problem+json", extra_headers, text, strlen(text));
    free(text);
    return status;
}

int http_problem(struct mg_connection *conn, int status, const char *type, const char *title,
                 const char *field, const char *detail_fmt, ...)
{
    va_list ap;
    int rv;
    va_start(ap, detail_fmt);
    rv = http_problem_va(conn, status, NULL, type, title, field, detail_fmt, ap);
    va_end(ap);
    return rv;
}

static const struct {
    int status;
    const char *text;
} status_texts[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {415, "Unsupported Media Type"},
    {422, "Unprocessable Content"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

const char *http_status_text(int status)
{
    for (size_t i = 0; i < sizeof status_texts / sizeof status_texts[0]; i++) {
        if (status_texts[i].status == status) {
            return status_texts[i].text;
        }
    }
    return "Unknown";
}
