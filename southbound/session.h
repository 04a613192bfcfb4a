/* Internal to southbound/: the session struct and its RPC exchange
 * (session.c), shared with the push sequence (push.c). */
#ifndef SB_SESSION_H
#define SB_SESSION_H

#include <assert.h>

#include <nc_client.h>

#include "southbound.h"

struct sb_session {
    struct ly_ctx *ctx;                    /* parses replies; not owned */
    struct nc_session *nc;                 /* libnetconf2 session (owns the SSH session) */
    int fd;                                /* its TCP socket: libssh never closes it */
    bool alive;                            /* false once the transport failed */
    unsigned timeout_ms;                   /* each RPC's send and reply deadline */
    char fingerprint[SB_FINGERPRINT_SIZE]; /* the server's host key */
    struct sb_facts facts;                 /* from system-state */
    char activation_code[SB_FACT_SIZE];    /* system-state/activation-code, "" if none */
    char **caps;                           /* hello capabilities, NULL-terminated */
    char **modules;                        /* YANG library module names, NULL-terminated */
};

/* Sends rpc (always freed) and waits for its reply. An <rpc-error> is
 * CAIRN_ECONFLICT with "WHAT: the device answered TAG: MESSAGE"; a
 * transport failure or timeout kills the session. *op (may be NULL)
 * receives the reply's operation node. */
int session_call(struct sb_session *s, struct nc_rpc *rpc, const char *what, struct lyd_node **op,
                 char *errmsg, size_t size);

/* session_call for get/get-config: *out receives a copy of <data>. */
int session_data(struct sb_session *s, struct nc_rpc *rpc, const char *what, struct lyd_node **out,
                 char *errmsg, size_t size);

#endif /* SB_SESSION_H */
