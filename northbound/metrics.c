/*
 * Counters and histograms for /metrics (see metrics.h). Every series lives
 * in a preallocated array indexed by (route, method[, status]) so recording
 * is a few relaxed atomic increments; the label sets are bounded by the
 * route table, five methods and a fixed status table.
 */
#include "metrics.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "OTHER"};
#define N_METHODS (sizeof methods / sizeof methods[0])

/* Statuses the API answers; anything else is counted by its class. */
static const int statuses[] = {200, 201, 202, 204, 400, 401, 403, 404, 405, 409,
                               410, 412, 413, 415, 421, 422, 429, 500, 501, 503};
#define N_STATUSES (sizeof statuses / sizeof statuses[0])
static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
#define N_STATUS_SLOTS (N_STATUSES + 5)

/* Upper bounds of the latency buckets, in seconds (+Inf is implicit). */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
#define N_BOUNDS (sizeof bounds / sizeof bounds[0])

struct histogram {
    atomic_uint_fast64_t buckets[N_BOUNDS + 1]; /* non-cumulative; last is +Inf */
    atomic_uint_fast64_t sum_us;                /* total, in microseconds */
};

struct metrics {
    const char *const *routes;
    size_t n_routes;                /* plus one "other" slot */
    atomic_uint_fast64_t *requests; /* [route][method][status slot] */
    struct histogram *latency;      /* [route][method] */
};

int metrics_create(const char *const *route_names, size_t n_routes, struct metrics **out)
{
    struct metrics *m = calloc(1, sizeof *m);
    size_t slots = (n_routes + 1) * N_METHODS;
    if (m == NULL) {
        return CAIRN_ENOMEM;
    }
    m->routes = route_names;
    m->n_routes = n_routes;
    m->requests = calloc(slots * N_STATUS_SLOTS, sizeof *m->requests);
    m->latency = calloc(slots, sizeof *m->latency);
    if (m->requests == NULL || m->latency == NULL) {
        metrics_destroy(m);
        return CAIRN_ENOMEM;
    }
    *out = m;
    return 0;
}

void metrics_destroy(struct metrics *m)
{
    if (m == NULL) {
        return;
    }
    free(m->requests);
    free(m->latency);
    free(m);
}

static size_t method_index(const char *method)
{
    for (size_t i = 0; i + 1 < N_METHODS; i++) {
        if (method != NULL && strcmp(method, methods[i]) == 0) {
            return i;
        }
    }
    return N_METHODS - 1;
}

static size_t status_slot(int status)
{
    for (size_t i = 0; i < N_STATUSES; i++) {
        if (statuses[i] == status) {
            return i;
        }
    }
    if (status < 100 || status > 599) {
        status = 500;
    }
    return N_STATUSES + (size_t)(status / 100 - 1);
}

void metrics_observe(struct metrics *m, size_t route, const char *method, int status,
                     double seconds)
{
    size_t r = route < m->n_routes ? route : m->n_routes;
    size_t rm = r * N_METHODS + method_index(method);
    struct histogram *h = &m->latency[rm];
    size_t b = 0;

    atomic_fetch_add_explicit(&m->requests[rm * N_STATUS_SLOTS + status_slot(status)], 1,
                              memory_order_relaxed);
    if (!(seconds >= 0.0)) {
        seconds = 0.0; /* also NaN */
    }
    while (b < N_BOUNDS && seconds > bounds[b]) {
        b++;
    }
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint_fast64_t)llround(seconds * 1e6),
                              memory_order_relaxed);
}

static const char *route_name(const struct metrics *m, size_t r)
{
    return r < m->n_routes ? m->routes[r] : "other";
}

static const char *status_label(size_t slot, char buf[8])
{
    if (slot < N_STATUSES) {
        snprintf(buf, 8, "%d", statuses[slot]);
        return buf;
    }
    return classes[slot - N_STATUSES];
}

int metrics_render(struct metrics *m, struct cairn_buf *out)
{
    char sbuf[8];
    int rv = 0;

    rv |= cairn_buf_printf(out,
                           "# HELP cairn_http_requests_total HTTP requests answered, by route, "
                           "method and status.\n# TYPE cairn_http_requests_total counter\n");
    for (size_t r = 0; r <= m->n_routes; r++) {
        for (size_t k = 0; k < N_METHODS; k++) {
            for (size_t s = 0; s < N_STATUS_SLOTS; s++) {
                uint_fast64_t v = atomic_load_explicit(
                    &m->requests[(r * N_METHODS + k) * N_STATUS_SLOTS + s], memory_order_relaxed);
                if (v == 0) {
                    continue;
                }
                rv |= cairn_buf_printf(
                    out,
                    "cairn_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %llu\n",
                    route_name(m, r), methods[k], status_label(s, sbuf), (unsigned long long)v);
            }
        }
    }
    rv |= cairn_buf_printf(out,
                           "# HELP cairn_http_request_duration_seconds Time to answer an HTTP "
                           "request, by route and method.\n"
                           "# TYPE cairn_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r <= m->n_routes; r++) {
        for (size_t k = 0; k < N_METHODS; k++) {
            struct histogram *h = &m->latency[r * N_METHODS + k];
            uint_fast64_t cumulative = 0;
            uint_fast64_t counts[N_BOUNDS + 1];
            for (size_t b = 0; b <= N_BOUNDS; b++) {
                counts[b] = atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
                cumulative += counts[b];
            }
            if (cumulative == 0) {
                continue;
            }
            cumulative = 0;
            for (size_t b = 0; b <= N_BOUNDS; b++) {
                cumulative += counts[b];
                if (b < N_BOUNDS) {
                    rv |= cairn_buf_printf(
                        out,
                        "cairn_http_request_duration_seconds_bucket{route=\"%s\","
                        "method=\"%s\",le=\"%g\"} %llu\n",
                        route_name(m, r), methods[k], bounds[b], (unsigned long long)cumulative);
                } else {
                    rv |= cairn_buf_printf(
                        out,
                        "cairn_http_request_duration_seconds_bucket{route=\"%s\","
                        "method=\"%s\",le=\"+Inf\"} %llu\n",
                        route_name(m, r), methods[k], (unsigned long long)cumulative);
                }
            }
            rv |= cairn_buf_printf(
                out,
                "cairn_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n"
                "cairn_http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %llu\n",
                route_name(m, r), methods[k],
                (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6,
                route_name(m, r), methods[k], (unsigned long long)cumulative);
        }
    }
    return rv != 0 ? CAIRN_ENOMEM : 0;
}
