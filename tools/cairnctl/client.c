/*
 * cairnctl's HTTP client: one libcurl easy handle for the whole invocation,
 * so the connection to an endpoint is kept alive across the calls of one
 * command (a login, the pages of a list, the polls of a job). Every node of
 * a Cairn cluster serves the whole API, so an endpoint that does not answer,
 * or answers 503 (no leader, no quorum, shutting down), is simply skipped
 * for the next one. A POST carries one Idempotency-Key across those
 * attempts: a write that reached a node before it failed is not applied
 * twice.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ctl.h"

#define DEFAULT_TIMEOUT_S  15.0
#define CONNECT_TIMEOUT_MS 3000L

int ctl_client_init(struct ctl_client *c, const char *endpoints, double timeout_s, char *err,
                    size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->timeout_ms = (long)((timeout_s > 0 ? timeout_s : DEFAULT_TIMEOUT_S) * 1000.0);
    const char *p = endpoints;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *start = p;
        p += len;
        if (*p == ',') {
            p++;
        }
        while (len > 0 && (*start == ' ')) {
            start++;
            len--;
        }
        while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '/')) {
            len--;
        }
        if (len == 0) {
            continue;
        }
        if (c->nendpoints == CTL_MAX_ENDPOINTS) {
            snprintf(err, errlen, "too many endpoints (at most %d)", CTL_MAX_ENDPOINTS);
            goto err;
        }
        bool has_scheme = memmem(start, len, "://", 3) != NULL;
        if (has_scheme && strncmp(start, "http://", 7) != 0 && strncmp(start, "https://", 8) != 0) {
            snprintf(err, errlen, "endpoint '%.*s' is not an http:// or https:// URL", (int)len,
                     start);
            goto err;
        }
        size_t n = len + (has_scheme ? 1 : 8);
        char *url = malloc(n);
        if (url == NULL) {
            snprintf(err, errlen, "out of memory");
            goto err;
        }
        snprintf(url, n, "%s%.*s", has_scheme ? "" : "http://", (int)len, start);
        c->endpoints[c->nendpoints++] = url;
    }
    if (c->nendpoints == 0) {
        snprintf(err, errlen,
                 "no endpoints: give --endpoints URL[,URL...], CAIRN_ENDPOINTS or endpoints in "
                 "the config file");
        goto err;
    }
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        snprintf(err, errlen, "cannot initialize libcurl");
        goto err;
    }
    return 0;

err:
    ctl_client_close(c);
    return CTL_EXIT_USAGE;
}

void ctl_client_close(struct ctl_client *c)
{
    if (c->curl != NULL) {
        curl_easy_cleanup(c->curl);
    }
    for (int i = 0; i < c->nendpoints; i++) {
        free(c->endpoints[i]);
    }
    if (c->token != NULL) {
        explicit_bzero(c->token, strlen(c->token));
        free(c->token);
    }
    memset(c, 0, sizeof(*c));
}

int ctl_client_set_token(struct ctl_client *c, const char *token)
{
    char *copy = token ? strdup(token) : NULL;
    if (token != NULL && copy == NULL) {
        return -1;
    }
    free(c->token);
    c->token = copy;
    return 0;
}

void ctl_response_init(struct ctl_response *r)
{
    memset(r, 0, sizeof(*r));
    r->sink_fd = -1;
}

void ctl_response_close(struct ctl_response *r)
{
    free(r->body);
    int fd = r->sink_fd;
    memset(r, 0, sizeof(*r));
    r->sink_fd = fd;
}

/* Forgets a previous attempt's answer before the next one. */
static void response_reset(struct ctl_response *r)
{
    r->status = 0;
    r->len = 0;
    if (r->body != NULL) {
        r->body[0] = '\0';
    }
    r->location[0] = r->etag[0] = r->content_type[0] = r->checksum[0] = '\0';
    r->sink_failed = false;
    if (r->sink_fd >= 0) {
        /* A body streamed by a failed attempt is dropped. */
        if (ftruncate(r->sink_fd, 0) != 0 || lseek(r->sink_fd, 0, SEEK_SET) != 0) {
            r->sink_failed = true;
            r->sink_errno = errno;
        }
    }
}

static size_t body_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct ctl_response *r = arg;
    size_t n = size * nmemb;
    if (r->sink_fd >= 0 && r->status >= 200 && r->status < 300) {
        if (ctl_write_all(r->sink_fd, data, n) != 0) {
            r->sink_failed = true;
            r->sink_errno = errno;
            return 0; /* aborts the transfer */
        }
        return n;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1) {
            cap *= 2;
        }
        char *bigger = realloc(r->body, cap);
        if (bigger == NULL) {
            return 0;
        }
        r->body = bigger;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

/* Copies a header's value (trimmed) if line is that header. */
static void header_take(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
    size_t k = strlen(name);
    if (n <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':') {
        return;
    }
    const char *v = line + k + 1;
    size_t len = n - k - 1;
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ')) {
        len--;
    }
    if (len >= outlen) {
        len = outlen - 1;
    }
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t header_cb(char *line, size_t size, size_t nmemb, void *arg)
{
    struct ctl_response *r = arg;
    size_t n = size * nmemb;
    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new answer (after a 100 Continue): its own status and headers. */
        const char *sp = memchr(line, ' ', n);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        r->location[0] = r->etag[0] = r->content_type[0] = r->checksum[0] = '\0';
        return n;
    }
    header_take(line, n, "Location", r->location, sizeof(r->location));
    header_take(line, n, "ETag", r->etag, sizeof(r->etag));
    header_take(line, n, "Content-Type", r->content_type, sizeof(r->content_type));
    header_take(line, n, "X-Cairn-Checksum", r->checksum, sizeof(r->checksum));
    return n;
}

/* A random (version 4) uuid, for Idempotency-Key. */
static void uuid_make(char out[37])
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
        if (r > 0) {
            got += (size_t)r;
        }
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static struct curl_slist *headers_make(const struct ctl_client *c, const char *method,
                                       const char *body, long if_match, const char *idem_key)
{
    struct curl_slist *h = NULL;
    char line[256];
    h = curl_slist_append(h, "Accept: application/json, application/problem+json");
    h = curl_slist_append(h, "Expect:");
    if (body != NULL) {
        h = curl_slist_append(h, "Content-Type: application/json");
    }
    if (if_match == -1) {
        h = curl_slist_append(h, "If-Match: *");
    } else if (if_match > 0) {
        snprintf(line, sizeof(line), "If-Match: \"%ld\"", if_match);
        h = curl_slist_append(h, line);
    }
    if (strcmp(method, "POST") == 0) {
        snprintf(line, sizeof(line), "Idempotency-Key: %s", idem_key);
        h = curl_slist_append(h, line);
    }
    if (c->token != NULL) {
        size_t n = strlen(c->token) + 32;
        char *auth = malloc(n);
        if (auth != NULL) {
            snprintf(auth, n, "Authorization: Bearer %s", c->token);
            h = curl_slist_append(h, auth);
            explicit_bzero(auth, n);
            free(auth);
        }
    }
    return h;
}

/* One attempt on one endpoint. Returns the curl result. */
static CURLcode attempt(struct ctl_client *c, const char *base, const char *method,
                        const char *path, const char *body, struct curl_slist *headers,
                        struct ctl_response *resp)
{
    CURL *curl = c->curl;
    size_t n = strlen(base) + strlen(path) + 1;
    char *url = malloc(n);
    if (url == NULL) {
        return CURLE_OUT_OF_MEMORY;
    }
    snprintf(url, n, "%s%s", base, path);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        const char *b = body ? body : "";
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, b);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(b));
    }
    CURLcode rc = curl_easy_perform(curl);
    free(url);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    }
    return rc;
}

int ctl_client_request(struct ctl_client *c, const char *method, const char *path, const char *body,
                       long if_match, struct ctl_response *resp)
{
    char idem_key[37];
    uuid_make(idem_key);
    struct curl_slist *headers = headers_make(c, method, body, if_match, idem_key);
    size_t used = 0;
    int answered = 0;

    c->errmsg[0] = '\0';
    for (int i = 0; i < c->nendpoints && !answered; i++) {
        int k = (c->current + i) % c->nendpoints;
        response_reset(resp);
        CURLcode rc = attempt(c, c->endpoints[k], method, path, body, headers, resp);
        /* Our disk, not the endpoint, failing a streamed body is an answer
         * too: trying others will not help. */
        if ((rc == CURLE_OK && resp->status != 503) ||
            (rc == CURLE_WRITE_ERROR && resp->sink_failed)) {
            c->current = k;
            resp->endpoint = c->endpoints[k];
            answered = 1;
            break;
        }
        char why[512];
        if (rc == CURLE_OK) {
            ctl_problem_format(why, sizeof(why), resp->status, resp->content_type, resp->body,
                               resp->len);
        } else {
            snprintf(why, sizeof(why), "%s", curl_easy_strerror(rc));
        }
        int w = snprintf(c->errmsg + used, sizeof(c->errmsg) - used, "%s%s: %s", used ? "; " : "",
                         c->endpoints[k], why);
        if (w > 0 && (size_t)w < sizeof(c->errmsg) - used) {
            used += (size_t)w;
        }
    }
    curl_slist_free_all(headers);
    return answered ? 0 : CTL_EXIT_UNAVAILABLE;
}

int ctl_query_add(char *path, size_t n, const char *key, const char *value)
{
    char *escaped = curl_easy_escape(NULL, value, 0);
    if (escaped == NULL) {
        return -1;
    }
    size_t len = strlen(path);
    int w = snprintf(path + len, n - len, "%c%s=%s", strchr(path, '?') ? '&' : '?', key, escaped);
    curl_free(escaped);
    return w < 0 || (size_t)w >= n - len ? -1 : 0;
}
