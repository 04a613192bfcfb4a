/*
 * The HTTP server of a node: civetweb started with Cairn's options, routes
 * registered by other modules, and the few response helpers every handler
 * needs (bodies with a size limit, JSON answers, RFC 9457 problem+json).
 *
 * Threads: http_server_start/stop and http_server_route on the main thread;
 * handlers run on civetweb's worker threads; the helpers may be called from
 * any handler.
 */
#ifndef CAIRN_HTTP_H
#define CAIRN_HTTP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "cairn.h"

struct mg_connection;
struct http_server;

struct http_config {
    const char *listen;          /* "host:port" to listen on (IPv4) */
    unsigned threads;            /* worker threads */
    size_t max_body;             /* largest request body accepted, bytes */
    unsigned request_timeout_ms; /* civetweb's request timeout */
    bool start_closed;           /* answer 503 until http_server_open */
};

/* Starts the server. A busy port or bad address fails with errmsg naming
 * the address and the cause ("listen on 127.0.0.1:8001: address already in
 * use"). A host name is resolved to its first IPv4 address. */
int http_server_start(const struct http_config *cfg, struct http_server **out, char *errmsg,
                      size_t errmsg_size);

/* Lets requests through to the routes (see start_closed). Any thread. */
void http_server_open(struct http_server *srv);

/* Stops the server (waits for handlers to return) and frees it. NULL is a
 * no-op. */
void http_server_destroy(struct http_server *srv);

/* A handler returns the HTTP status it answered (civetweb convention). */
typedef int (*http_handler_cb)(struct mg_connection *conn, void *data);

/* Routes every request whose path starts with uri (civetweb matching) to
 * handler. A NULL handler removes the route, after waiting for the
 * requests running on it to return. Paths no route matches are answered
 * with a problem+json 404. */
void http_server_route(struct http_server *srv, const char *uri, http_handler_cb handler,
                       void *data);

/* The configured body limit. */
size_t http_server_max_body(const struct http_server *srv);

/* The TCP port the server listens on: the configured one, or the one the
 * kernel chose when cfg->listen asked for port 0 (tests use this to get a
 * free port without a race). Any thread. */
int http_server_port(const struct http_server *srv);

/* Reads the whole request body into b. CAIRN_ETOOBIG if it is larger than
 * max (Content-Length or actual bytes), CAIRN_EIO if the client went away.
 * A chunked body is read to its end, counting. On success b->data is a
 * NUL-terminated string (empty for no body); after a failure the
 * connection is not reused. */
int http_body_read(struct mg_connection *conn, size_t max, struct cairn_buf *b);

/* Sends a complete response. extra_headers is NULL or "Name: value\r\n"
 * lines. Content-Length is added (except on 204 and 304, which have no
 * body), and "Cache-Control: no-store" unless extra_headers carries its own
 * Cache-Control line. The answer to a HEAD request gets the headers only. */
int http_reply(struct mg_connection *conn, int status, const char *content_type,
               const char *extra_headers, const void *body, size_t len);

/* Sends an application/problem+json answer (RFC 9457). type is the last
 * segment of the problem type URI ("invalid-field"); field names the
 * offending input or is NULL. Returns the status actually sent (500 if the
 * problem could not be built), so that a handler can return it. */
int http_problem(struct mg_connection *conn, int status, const char *type, const char *title,
                 const char *field, const char *detail_fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Same as http_problem, with extra_headers (NULL or "Name: value\r\n"
 * lines, for example "Retry-After: 1\r\n" or "Allow: GET\r\n") and the
 * detail's arguments as a va_list. */
int http_problem_va(struct mg_connection *conn, int status, const char *extra_headers,
                    const char *type, const char *title, const char *field, const char *detail_fmt,
                    va_list ap) __attribute__((format(printf, 7, 0)));

/* Reason phrase of a status code. */
const char *http_status_text(int status);

#endif /* CAIRN_HTTP_H */
