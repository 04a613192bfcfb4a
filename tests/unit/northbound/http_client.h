/*
 * A small blocking HTTP/1.1 client for the northbound tests: it sends bytes
 * exactly as the test wrote them (so tests can send malformed or oversized
 * requests) and reads one response with a deadline, never sleeping.
 */
#ifndef CAIRN_TEST_HTTP_CLIENT_H
#define CAIRN_TEST_HTTP_CLIENT_H

#include <stddef.h>

/* How long any one exchange may take before the test fails. */
#define HC_TIMEOUT_MS 10000

struct hc_response {
    int status; /* 0 if no complete status line arrived */
    char *head; /* the status line and headers, NUL-terminated */
    char *body; /* the body, NUL-terminated */
    size_t body_len;
    int closed; /* the server closed the connection afterwards */
};

/* Connects to 127.0.0.1:port; returns the socket or -1. */
int hc_connect(int port);

/* Sends all of buf (errors such as a reset are ignored: the server may
 * answer and close before reading everything). */
void hc_send(int fd, const void *buf, size_t len);

/* Reads one response (headers, then Content-Length bytes, or everything up
 * to the close). Returns 0, or -1 on timeout or a garbled answer. */
int hc_read(int fd, struct hc_response *out);

/* One request on a fresh connection with "Connection: close": method and
 * path, extra header lines ("Name: value\r\n", or NULL) and a body (NULL
 * for none; Content-Length is added for a body). */
int hc_request(int port, const char *method, const char *path, const char *headers,
               const char *body, struct hc_response *out);

/* Sends raw bytes on a fresh connection and reads one response. */
int hc_raw(int port, const void *buf, size_t len, struct hc_response *out);

/* The value of a response header (case-insensitive name), copied into buf;
 * NULL if absent. */
const char *hc_header(const struct hc_response *r, const char *name, char *buf, size_t size);

void hc_response_free(struct hc_response *r);

#endif /* CAIRN_TEST_HTTP_CLIENT_H */
