/*
 * Inter-node RPC client: blocking HTTP/1.1 requests to another node's
 * /internal/v1 endpoints over kept-alive TCP connections (a small pool per
 * peer address), each request bounded by a deadline. Used by HTTP worker
 * threads to forward writes and ask for read indexes; never by the loop
 * thread.
 *
 * Threads: any; the pool is guarded by a mutex.
 */
#ifndef CAIRN_PEER_H
#define CAIRN_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

struct peer_pool;

/* secret is sent as X-Cairn-Cluster-Secret when non-empty (copied). */
int peer_pool_create(const char *secret, struct peer_pool **out);
void peer_pool_destroy(struct peer_pool *pool);

/* Sends method path with body (may be NULL) to address ("host:port") and
 * reads the answer's status and body (into resp, which the caller inits and
 * closes). Returns CAIRN_EUNAVAILABLE if the peer cannot be reached or the
 * connection breaks, CAIRN_ETIMEDOUT at the deadline (cairn_now_ms clock),
 * CAIRN_EMALFORMED for a garbled answer; errmsg says which. */
int peer_call(struct peer_pool *pool, const char *address, const char *method, const char *path,
              const char *content_type, const void *body, size_t len, uint64_t deadline_ms,
              int *status, struct cairn_buf *resp, char *errmsg, size_t errmsg_size);

#endif /* CAIRN_PEER_H */
