/*
 * Prometheus metrics of the HTTP API: request counts by route, method and
 * status, and latency histograms by route and method, kept in lock-free
 * counters so that every HTTP worker can record without contention, and
 * rendered in the Prometheus text exposition format (version 0.0.4).
 *
 * Threads: metrics_observe and metrics_render from any thread;
 * create/destroy on the main thread.
 */
#ifndef CAIRN_METRICS_H
#define CAIRN_METRICS_H

#include <stddef.h>

#include "cairn.h"

struct metrics;

/* route_names (borrowed, must outlive the metrics) label the routes by
 * index: the route patterns, such as "/api/v1/tenants/{id}". */
int metrics_create(const char *const *route_names, size_t n_routes, struct metrics **out);
void metrics_destroy(struct metrics *m);

/* Records one answered request. An unknown route index counts as route
 * "other", an unknown method as "OTHER", a status outside the table as its
 * class ("2xx", ...). */
void metrics_observe(struct metrics *m, size_t route, const char *method, int status,
                     double seconds);

/* Appends the exposition text of every metric to out. */
int metrics_render(struct metrics *m, struct cairn_buf *out);

#endif /* CAIRN_METRICS_H */
