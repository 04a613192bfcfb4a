/*
 * A Cairn node: the store, the raft glue on its own libuv loop thread, the
 * submit queue that brings other threads' work to that loop, inter-node RPC
 * (write forwarding, read index, status), and the HTTP API.
 *
 * Threads: node_create/node_destroy on the main thread. Everything else
 * is internal.
 */
#ifndef CAIRN_NODE_H
#define CAIRN_NODE_H

#include "config.h"

struct node;

/* Starts a node from cfg (copied): opens the data directory, starts HTTP
 * and raft. On failure errmsg is one line for the operator and the return
 * value tells the exit status: CAIRN_EINVAL/CAIRN_EWRONGCLUSTER/
 * CAIRN_EEXIST for configuration problems (exit 2), others exit 1. */
int node_create(const struct config *cfg, struct node **out, char *errmsg, size_t errmsg_size);

/* Stops HTTP, closes raft and the store, frees. NULL is a no-op. */
void node_destroy(struct node *n);

#endif /* CAIRN_NODE_H */
