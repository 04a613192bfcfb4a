/*
 * cairn-bench: a closed-loop HTTP/1.1 load generator for Cairn's REST API
 * and, for comparison on the same machine, etcd's JSON gateway. Each of
 * --concurrency threads keeps one kept-alive connection and sends one
 * request at a time; latencies go into per-thread log-linear histograms
 * (HDR-style: 128 sub-buckets per power of two, under 1% error) that are
 * merged at the end.
 *
 *   cairn-bench --target cairn --url http://127.0.0.1:8001 --op write \
 *               --concurrency 64 --duration 10 --value-size 64 \
 *               --login DIR/admin.json
 *
 * Writes create objects with unique keys (Cairn: tenants whose description
 * carries the value; etcd: /v3/kv/put). Reads first create --keys objects,
 * then read random ones (Cairn: GET /api/v1/tenants/{id}, linearizable by
 * default; etcd: /v3/kv/range, linearizable). The last line of the output
 * is one JSON object with the results, for scripts.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SUB_BITS    7
#define SUB_COUNT   (1u << SUB_BITS)
#define HALF        (SUB_COUNT / 2)
#define MAX_EXP     40
#define N_BUCKETS   (SUB_COUNT + MAX_EXP * HALF)
#define MAX_URLS    16
#define MAX_THREADS 1024

enum target { TARGET_CAIRN, TARGET_ETCD };
enum op { OP_WRITE, OP_READ };

struct options {
    enum target target;
    enum op op;
    char *urls[MAX_URLS];
    size_t n_urls;
    unsigned concurrency;
    double duration_s;
    unsigned value_size;
    unsigned keys;
    char token[256];
    const char *login_file;
    unsigned timeout_ms;
    uint64_t requests;  /* > 0: stop after this many requests, not a duration */
    unsigned series_ms; /* > 0: a line per second, counting requests slower than this */
};

/* --series: what completed in one second of the run. */
struct second {
    uint32_t ok;
    uint32_t slow;   /* of them, slower than --series MS */
    uint32_t max_us; /* the slowest of them */
};

/* A run of --duration longer than this prints no series past it. */
#define SERIES_MAX 86400

/* Log-linear histogram of microseconds. */
struct histogram {
    uint64_t counts[N_BUCKETS];
    uint64_t total;
    uint64_t max;
};

/* Values below SUB_COUNT have a bucket each; above, each power of two is
 * split into HALF buckets by the value's top SUB_BITS bits. */
static size_t bucket_of(uint64_t v)
{
    unsigned e;
    if (v < SUB_COUNT) {
        return (size_t)v;
    }
    e = 63u - (unsigned)__builtin_clzll(v) - (SUB_BITS - 1);
    if (e > MAX_EXP) {
        return N_BUCKETS - 1;
    }
    return SUB_COUNT + (size_t)(e - 1) * HALF + (size_t)((v >> e) - HALF);
}

/* The highest value that falls into bucket b. */
static uint64_t bucket_top(size_t b)
{
    uint64_t e, top;
    if (b < SUB_COUNT) {
        return b;
    }
    e = (b - SUB_COUNT) / HALF + 1;
    top = (b - SUB_COUNT) % HALF + HALF;
    return ((top + 1) << e) - 1;
}

static void hist_record(struct histogram *h, uint64_t us)
{
    h->counts[bucket_of(us)]++;
    h->total++;
    if (us > h->max) {
        h->max = us;
    }
}

static void hist_merge(struct histogram *into, const struct histogram *from)
{
    for (size_t i = 0; i < N_BUCKETS; i++) {
        into->counts[i] += from->counts[i];
    }
    into->total += from->total;
    if (from->max > into->max) {
        into->max = from->max;
    }
}

static double hist_percentile(const struct histogram *h, double p)
{
    uint64_t want, seen = 0;
    if (h->total == 0) {
        return 0.0;
    }
    want = (uint64_t)(p / 100.0 * (double)h->total + 0.5);
    if (want == 0) {
        want = 1;
    }
    for (size_t i = 0; i < N_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= want) {
            uint64_t top = bucket_top(i);
            return (double)(top < h->max ? top : h->max) / 1000.0;
        }
    }
    return (double)h->max / 1000.0;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* --- a blocking keep-alive HTTP/1.1 connection ------------------------- */

struct conn {
    char host[128];
    char port[16];
    int fd;
    char buf[65536];
    size_t len; /* bytes buffered */
};

static int conn_parse_url(struct conn *c, const char *url)
{
    const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : url;
    const char *colon = strchr(p, ':');
    const char *slash = strchr(p, '/');
    size_t hlen;
    if (colon == NULL || (slash != NULL && slash < colon)) {
        return -1;
    }
    hlen = (size_t)(colon - p);
    if (hlen == 0 || hlen >= sizeof c->host) {
        return -1;
    }
    memcpy(c->host, p, hlen);
    c->host[hlen] = '\0';
    snprintf(c->port, sizeof c->port, "%.*s",
             (int)(slash != NULL ? (size_t)(slash - colon - 1) : strlen(colon + 1)), colon + 1);
    c->fd = -1;
    return 0;
}

static int conn_open(struct conn *c)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    int one = 1;
    if (getaddrinfo(c->host, c->port, &hints, &ai) != 0) {
        return -1;
    }
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        freeaddrinfo(ai);
        if (c->fd >= 0) {
            close(c->fd);
        }
        c->fd = -1;
        return -1;
    }
    freeaddrinfo(ai);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->len = 0;
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->len = 0;
}

/* Sends one request and reads the answer; the body (NUL-terminated) is
 * copied into resp (up to resp_size). Returns the HTTP status, or -1. */
static int conn_request(struct conn *c, const char *method, const char *path, const char *headers,
                        const char *body, size_t body_len, char *resp, size_t resp_size,
                        unsigned timeout_ms)
{
    char head[1024];
    int n, status = -1;
    size_t content_length = 0, head_len = 0;
    char *end;

    for (int attempt = 0; attempt < 2; attempt++) {
        if (c->fd < 0 && conn_open(c) != 0) {
            return -1;
        }
        n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Length: %zu\r\n%s\r\n", method, path,
                     c->host, c->port, body_len, headers != NULL ? headers : "");
        if (n < 0 || (size_t)n >= sizeof head || send(c->fd, head, (size_t)n, MSG_NOSIGNAL) != n ||
            (body_len > 0 && send(c->fd, body, body_len, MSG_NOSIGNAL) != (ssize_t)body_len)) {
            conn_close(c);
            continue; /* a kept-alive connection the server closed: redial once */
        }
        c->len = 0;
        for (;;) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
            ssize_t r;
            c->buf[c->len] = '\0';
            end = strstr(c->buf, "\r\n\r\n");
            if (end != NULL) {
                const char *cl;
                head_len = (size_t)(end - c->buf) + 4;
                if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1) {
                    conn_close(c);
                    return -1;
                }
                cl = strcasestr(c->buf, "\r\nContent-Length:");
                content_length = cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
                if (head_len + content_length >= sizeof c->buf) {
                    conn_close(c);
                    return -1;
                }
                if (c->len >= head_len + content_length) {
                    break;
                }
            }
            if (c->len + 1 >= sizeof c->buf || poll(&pfd, 1, (int)timeout_ms) <= 0) {
                conn_close(c);
                return -1;
            }
            r = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
            if (r <= 0) {
                conn_close(c);
                if (c->len == 0 && attempt == 0) {
                    break; /* closed before answering: redial */
                }
                return -1;
            }
            c->len += (size_t)r;
        }
        if (status < 0) {
            continue;
        }
        if (resp != NULL && resp_size > 0) {
            size_t k = content_length < resp_size - 1 ? content_length : resp_size - 1;
            memcpy(resp, c->buf + head_len, k);
            resp[k] = '\0';
        }
        return status;
    }
    return -1;
}

/* --- workloads ------------------------------------------------------------ */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)(unsigned char)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= (uint32_t)(unsigned char)in[i + 2];
        }
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64chars[v & 63] : '=';
    }
    out[o] = '\0';
}

struct shared {
    const struct options *opt;
    char run[16]; /* unique per run, in every key */
    char **ids;   /* Cairn: ids of objects to read */
    size_t n_ids;
    atomic_bool stop;
    atomic_uint_fast64_t claimed; /* requests started, with --requests */
    uint64_t start_us;            /* when the workers started */
    size_t n_seconds;             /* --series: seconds kept per worker */
};

struct worker {
    struct shared *sh;
    unsigned index;
    pthread_t thread;
    struct conn conn;
    struct histogram hist;
    struct second *seconds; /* --series, n_seconds of them */
    uint64_t ok, errors;
    unsigned rng;
    char last_error[320];
};

static void make_value(char *value, unsigned size, unsigned seed)
{
    for (unsigned i = 0; i < size; i++) {
        value[i] = (char)('a' + (seed + i) % 26);
    }
    value[size] = '\0';
}

/* One write or read; returns the status. For a Cairn create, the new id is
 * copied into id_out (if not NULL). */
static int do_op(struct worker *w, enum op op, uint64_t seq, char *id_out, size_t id_size)
{
    const struct options *opt = w->sh->opt;
    char headers[512], body[8192], key[96], value[4096], resp[4096];
    char kb64[160], vb64[5600];
    int status;

    snprintf(key, sizeof key, "bench-%s-%u-%llu", w->sh->run, w->index, (unsigned long long)seq);
    if (opt->target == TARGET_CAIRN) {
        snprintf(headers, sizeof headers, "Content-Type: application/json\r\n%s%s%s",
                 opt->token[0] != '\0' ? "Authorization: Bearer " : "", opt->token,
                 opt->token[0] != '\0' ? "\r\n" : "");
        if (op == OP_WRITE) {
            make_value(value, opt->value_size, (unsigned)seq);
            snprintf(body, sizeof body, "{\"name\":\"%s\",\"description\":\"%s\"}", key, value);
            status = conn_request(&w->conn, "POST", "/api/v1/tenants", headers, body, strlen(body),
                                  resp, sizeof resp, opt->timeout_ms);
            if (status == 201 && id_out != NULL) {
                const char *p = strstr(resp, "\"id\":\"");
                if (p != NULL) {
                    snprintf(id_out, id_size, "%.36s", p + 6);
                }
            }
        } else {
            char path[128];
            snprintf(path, sizeof path, "/api/v1/tenants/%s",
                     w->sh->ids[rand_r(&w->rng) % w->sh->n_ids]);
            status = conn_request(&w->conn, "GET", path, headers, NULL, 0, resp, sizeof resp,
                                  opt->timeout_ms);
        }
    } else {
        snprintf(headers, sizeof headers, "Content-Type: application/json\r\n");
        if (op == OP_READ) {
            snprintf(key, sizeof key, "bench-%s-0-%u", w->sh->run,
                     (unsigned)(rand_r(&w->rng) % opt->keys));
        }
        base64(key, strlen(key), kb64);
        if (op == OP_WRITE) {
            make_value(value, opt->value_size, (unsigned)seq);
            base64(value, strlen(value), vb64);
            snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}", kb64, vb64);
            status = conn_request(&w->conn, "POST", "/v3/kv/put", headers, body, strlen(body), resp,
                                  sizeof resp, opt->timeout_ms);
        } else {
            snprintf(body, sizeof body, "{\"key\":\"%s\"}", kb64);
            status = conn_request(&w->conn, "POST", "/v3/kv/range", headers, body, strlen(body),
                                  resp, sizeof resp, opt->timeout_ms);
        }
    }
    if (status < 200 || status > 299) {
        snprintf(w->last_error, sizeof w->last_error, "%s %s: status %d %.100s",
                 op == OP_WRITE ? "write" : "read", key, status, status > 0 ? resp : "");
    }
    return status;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct options *opt = w->sh->opt;
    for (uint64_t seq = 0; !atomic_load(&w->sh->stop); seq++) {
        uint64_t start;
        if (opt->requests > 0 && atomic_fetch_add(&w->sh->claimed, 1) >= opt->requests) {
            break;
        }
        start = now_us();
        int status = do_op(w, opt->op, seq, NULL, 0);
        if (status >= 200 && status <= 299) {
            uint64_t end = now_us();
            uint64_t sec = (end - w->sh->start_us) / 1000000;
            hist_record(&w->hist, end - start);
            w->ok++;
            if (w->seconds != NULL && sec < w->sh->n_seconds) {
                struct second *s = &w->seconds[sec];
                s->ok++;
                s->slow += end - start > (uint64_t)opt->series_ms * 1000;
                s->max_us = end - start > s->max_us ? (uint32_t)(end - start) : s->max_us;
            }
        } else {
            w->errors++;
        }
    }
    return NULL;
}

/* Creates the objects that reads will read, with one connection. */
static int preload(struct shared *sh, struct worker *w)
{
    const struct options *opt = sh->opt;
    sh->ids = calloc(opt->keys, sizeof *sh->ids);
    if (sh->ids == NULL) {
        return -1;
    }
    for (unsigned i = 0; i < opt->keys; i++) {
        char id[64] = "";
        if (do_op(w, OP_WRITE, i, id, sizeof id) / 100 != 2) {
            fprintf(stderr, "cairn-bench: preload failed: %s\n", w->last_error);
            return -1;
        }
        if (opt->target == TARGET_CAIRN) {
            sh->ids[i] = strdup(id);
            if (sh->ids[i] == NULL || id[0] == '\0') {
                fprintf(stderr, "cairn-bench: preload: no id in the answer\n");
                return -1;
            }
            sh->n_ids++;
        }
    }
    return 0;
}

/* Logs in with {"username","password"} from a file such as localcluster's
 * admin.json, and keeps the token. */
static int login(struct options *opt)
{
    char creds[1024], resp[2048];
    struct conn c;
    FILE *f = fopen(opt->login_file, "r");
    size_t n;
    const char *p;
    int status;
    if (f == NULL) {
        fprintf(stderr, "cairn-bench: %s: %s\n", opt->login_file, strerror(errno));
        return -1;
    }
    n = fread(creds, 1, sizeof creds - 1, f);
    fclose(f);
    creds[n] = '\0';
    if (conn_parse_url(&c, opt->urls[0]) != 0) {
        return -1;
    }
    status = conn_request(&c, "POST", "/api/v1/auth/login", "Content-Type: application/json\r\n",
                          creds, n, resp, sizeof resp, opt->timeout_ms);
    conn_close(&c);
    p = strstr(resp, "\"token\":\"");
    if (status != 200 || p == NULL) {
        fprintf(stderr, "cairn-bench: login at %s failed: status %d %s\n", opt->urls[0], status,
                resp);
        return -1;
    }
    p += 9;
    n = strcspn(p, "\"");
    if (n >= sizeof opt->token) {
        return -1;
    }
    memcpy(opt->token, p, n);
    opt->token[n] = '\0';
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cairn-bench --url URL[,URL...] [options]\n"
            "  --target cairn|etcd     API to load (default cairn)\n"
            "  --op write|read         durable creates, or linearizable reads (default write)\n"
            "  --concurrency N         connections, one request in flight each (default 16)\n"
            "  --duration SECONDS      how long to run (default 10)\n"
            "  --value-size BYTES      size of each written value (default 64, max 4000)\n"
            "  --keys N                objects created before a read run (default 1000)\n"
            "  --login FILE            log in with {\"username\",\"password\"} from FILE\n"
            "  --token TOKEN           bearer token for Cairn\n"
            "  --timeout-ms MS         per-request timeout (default 10000)\n"
            "  --requests N            send N requests in all, then stop (instead of\n"
            "                          --duration; for profiling with a fixed amount of work)\n"
            "  --series MS             also print, per second of the run, the requests that\n"
            "                          completed, how many took longer than MS, and the slowest\n"
            "Connections are spread over the URLs round-robin.\n");
}

static int parse_args(int argc, char **argv, struct options *opt)
{
    static char urls[4096];
    memset(opt, 0, sizeof *opt);
    opt->concurrency = 16;
    opt->duration_s = 10;
    opt->value_size = 64;
    opt->keys = 1000;
    opt->timeout_ms = 10000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (v == NULL) {
            fprintf(stderr, "cairn-bench: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--url") == 0) {
            snprintf(urls, sizeof urls, "%s", v);
            for (char *s = strtok(urls, ","); s != NULL && opt->n_urls < MAX_URLS;
                 s = strtok(NULL, ",")) {
                opt->urls[opt->n_urls++] = s;
            }
        } else if (strcmp(a, "--target") == 0 && strcmp(v, "cairn") == 0) {
            opt->target = TARGET_CAIRN;
        } else if (strcmp(a, "--target") == 0 && strcmp(v, "etcd") == 0) {
            opt->target = TARGET_ETCD;
        } else if (strcmp(a, "--op") == 0 && strcmp(v, "write") == 0) {
            opt->op = OP_WRITE;
        } else if (strcmp(a, "--op") == 0 && strcmp(v, "read") == 0) {
            opt->op = OP_READ;
        } else if (strcmp(a, "--concurrency") == 0) {
            opt->concurrency = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--duration") == 0) {
            opt->duration_s = strtod(v, NULL);
        } else if (strcmp(a, "--value-size") == 0) {
            opt->value_size = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--keys") == 0) {
            opt->keys = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--login") == 0) {
            opt->login_file = v;
        } else if (strcmp(a, "--token") == 0) {
            snprintf(opt->token, sizeof opt->token, "%s", v);
        } else if (strcmp(a, "--requests") == 0) {
            opt->requests = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--series") == 0) {
            opt->series_ms = (unsigned)strtoul(v, NULL, 10);
            if (opt->series_ms == 0) {
                fprintf(stderr, "cairn-bench: --series needs a number of ms > 0\n");
                return -1;
            }
        } else if (strcmp(a, "--timeout-ms") == 0) {
            opt->timeout_ms = (unsigned)strtoul(v, NULL, 10);
        } else {
            fprintf(stderr, "cairn-bench: bad option %s %s\n", a, v);
            return -1;
        }
    }
    if (opt->n_urls == 0 || opt->concurrency == 0 || opt->concurrency > MAX_THREADS ||
        opt->duration_s <= 0 || opt->value_size == 0 || opt->value_size > 4000 || opt->keys == 0 ||
        opt->timeout_ms == 0) {
        fprintf(stderr,
                "cairn-bench: need --url; concurrency 1..%d, duration > 0, value size "
                "1..4000, keys > 0\n",
                MAX_THREADS);
        return -1;
    }
    return 0;
}

/* --series: one line per second that began before the run ended. */
static void print_series(const struct shared *sh, const struct worker *workers, unsigned n,
                         uint64_t elapsed_us)
{
    size_t last = (size_t)((elapsed_us + 999999) / 1000000);
    for (size_t sec = 0; sh->n_seconds > 0 && sec < last && sec < sh->n_seconds; sec++) {
        struct second t = {0};
        for (unsigned i = 0; i < n; i++) {
            const struct second *s = &workers[i].seconds[sec];
            t.ok += s->ok;
            t.slow += s->slow;
            t.max_us = s->max_us > t.max_us ? s->max_us : t.max_us;
        }
        printf("second %zu: ok %u, over %u ms %u, max %.3f ms\n", sec, t.ok, sh->opt->series_ms,
               t.slow, (double)t.max_us / 1000.0);
    }
}

int main(int argc, char **argv)
{
    struct options opt;
    struct shared sh;
    struct worker *workers;
    struct histogram all;
    struct timespec nap = {0, 20 * 1000 * 1000};
    uint64_t start, elapsed_us, ok = 0, errors = 0;
    double secs, tput;
    const char *last_error = "";

    if (parse_args(argc, argv, &opt) != 0) {
        usage(stderr);
        return 2;
    }
    if (opt.login_file != NULL && login(&opt) != 0) {
        return 1;
    }
    memset(&sh, 0, sizeof sh);
    sh.opt = &opt;
    snprintf(sh.run, sizeof sh.run, "%lx%x", (unsigned long)time(NULL), (unsigned)getpid());
    workers = calloc(opt.concurrency, sizeof *workers);
    if (workers == NULL) {
        return 1;
    }
    for (unsigned i = 0; i < opt.concurrency; i++) {
        workers[i].sh = &sh;
        workers[i].index = i;
        workers[i].rng = i * 2654435761u + 1;
        if (conn_parse_url(&workers[i].conn, opt.urls[i % opt.n_urls]) != 0) {
            fprintf(stderr, "cairn-bench: bad URL %s\n", opt.urls[i % opt.n_urls]);
            return 2;
        }
    }
    if (opt.op == OP_READ && preload(&sh, &workers[0]) != 0) {
        return 1;
    }
    if (opt.series_ms > 0) {
        /* With --requests the run's length is unknown: an hour at most. */
        double secs_max = opt.requests > 0 ? 3600 : opt.duration_s + 2;
        sh.n_seconds = secs_max < SERIES_MAX ? (size_t)secs_max : SERIES_MAX;
        for (unsigned i = 0; i < opt.concurrency; i++) {
            workers[i].seconds = calloc(sh.n_seconds, sizeof *workers[i].seconds);
            if (workers[i].seconds == NULL) {
                fprintf(stderr, "cairn-bench: out of memory for --series\n");
                return 1;
            }
        }
    }
    start = now_us();
    sh.start_us = start;
    for (unsigned i = 0; i < opt.concurrency; i++) {
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            fprintf(stderr, "cairn-bench: cannot start thread %u\n", i);
            atomic_store(&sh.stop, true);
            opt.concurrency = i;
            break;
        }
    }
    while (opt.requests == 0 && now_us() - start < (uint64_t)(opt.duration_s * 1e6)) {
        nanosleep(&nap, NULL);
    }
    /* With --requests the workers stop by themselves once all are claimed. */
    atomic_store(&sh.stop, opt.requests == 0);
    memset(&all, 0, sizeof all);
    for (unsigned i = 0; i < opt.concurrency; i++) {
        pthread_join(workers[i].thread, NULL);
        hist_merge(&all, &workers[i].hist);
        ok += workers[i].ok;
        errors += workers[i].errors;
        if (workers[i].last_error[0] != '\0') {
            last_error = workers[i].last_error;
        }
        conn_close(&workers[i].conn);
    }
    elapsed_us = now_us() - start;
    secs = (double)elapsed_us / 1e6;
    print_series(&sh, workers, opt.concurrency, elapsed_us);
    tput = (double)ok / secs;
    printf("target %s, op %s, %u connections over %zu URL(s), %.1f s, value %u bytes\n",
           opt.target == TARGET_CAIRN ? "cairn" : "etcd", opt.op == OP_WRITE ? "write" : "read",
           opt.concurrency, opt.n_urls, secs, opt.value_size);
    printf("ok %llu, errors %llu, throughput %.0f/s\n", (unsigned long long)ok,
           (unsigned long long)errors, tput);
    printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
           hist_percentile(&all, 50), hist_percentile(&all, 90), hist_percentile(&all, 99),
           hist_percentile(&all, 99.9), (double)all.max / 1000.0);
    if (errors > 0) {
        printf("last error: %s\n", last_error);
    }
    printf(
        "{\"target\":\"%s\",\"op\":\"%s\",\"concurrency\":%u,\"seconds\":%.3f,\"ok\":%llu,"
        "\"errors\":%llu,\"throughput\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
        "\"p999_ms\":%.3f,\"max_ms\":%.3f}\n",
        opt.target == TARGET_CAIRN ? "cairn" : "etcd", opt.op == OP_WRITE ? "write" : "read",
        opt.concurrency, secs, (unsigned long long)ok, (unsigned long long)errors, tput,
        hist_percentile(&all, 50), hist_percentile(&all, 90), hist_percentile(&all, 99),
        hist_percentile(&all, 99.9), (double)all.max / 1000.0);
    for (size_t i = 0; i < sh.n_ids; i++) {
        free(sh.ids[i]);
    }
    free(sh.ids);
    for (unsigned i = 0; i < opt.concurrency; i++) {
        free(workers[i].seconds);
    }
    free(workers);
    return ok > 0 ? 0 : 1;
}
