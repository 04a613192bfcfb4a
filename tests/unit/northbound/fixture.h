/*
 * The in-process node the northbound HTTP tests run against: http_server on
 * 127.0.0.1 with a kernel-chosen port, a real store in a temporary
 * directory, and a single-node backend whose propose applies the command to
 * that store with store_apply (the same path a committed raft entry takes,
 * with the index counted under a mutex). Each fixture starts with an SP
 * administrator and a session of it written straight into the store, so
 * requests are authenticated by default; the helpers below send that token
 * unless told otherwise.
 */
#ifndef CAIRN_TEST_FIXTURE_H
#define CAIRN_TEST_FIXTURE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "api_int.h"
#include "http_client.h"

#define MAX_BODY 4096
#define JSON_CT  "Content-Type: application/json\r\n"

/* The store's revision once a fixture has its administrator and session:
 * the tests count their own writes from there. */
#define R0 2
/* R0 + 1 as a string literal, for headers. */
#define R0_PLUS_1 "3"

/* The password of every user the fixture writes (fx_user). */
#define FX_PASSWORD "correct horse battery"
/* The fixture's administrator. */
#define FX_ADMIN "admin"

/* "Authorization: Bearer TOKEN\r\n" */
#define FX_AUTH_SIZE 80

/* One node: a store, a server and the API over them. */
struct fx {
    char dir[64];
    struct store *store;
    struct http_server *srv;
    struct api *api;
    uint64_t node_id;
    int port;
    char auth[FX_AUTH_SIZE]; /* the administrator's Authorization header */
    pthread_mutex_t mu;      /* guards everything below */
    uint64_t index;          /* last raft index given to store_apply */
    unsigned barriers;       /* read_barrier calls */
    unsigned proposals;      /* propose calls */
    int barrier_rv;          /* read_barrier's answer */
    int propose_rv;          /* if non-zero, propose fails with it */
    bool ready;
    uint64_t leader_id;    /* reported by cluster_status */
    uint64_t added_id;     /* last member_add */
    char added_api[64];    /* its api_address */
    unsigned member_calls; /* member_add and member_remove calls */
    void *lagging;         /* a command the next read_barrier applies first (a
                            * write this replica has not applied yet), or NULL */
    size_t lagging_len;
    bool answer_objects; /* propose answers with the stored object when asked,
                          * as a follower's forwarded write is answered */
    unsigned answered;   /* proposals answered so */
};

/* Computes the password hash every fixture user gets (once per process:
 * argon2id takes ~0.1 s). */
void fx_init(void);

struct fx *fx_start(uint64_t node_id);
void fx_stop(struct fx *f);

/* cmocka setup/teardown: a fixture of node 1 in *state. */
int fx_setup(void **state);
int fx_teardown(void **state);

/* Applies cmd to the fixture's store as the next raft entry; returns the
 * result's status. */
int fx_apply(struct fx *f, const struct store_command *cmd);

/* Writes a user (password FX_PASSWORD) and a session of it straight into
 * the store, bypassing the API; id is the user's id (a uuid), tenant NULL
 * for an SP role. Fills auth with its Authorization header line. */
void fx_user(struct fx *f, const char *id, const char *name, const char *role, const char *tenant,
             char auth[FX_AUTH_SIZE]);

/* Like fx_user, but the user's session is left for the next read barrier
 * to apply (fx->lagging): a token minted on another node a moment ago. */
void fx_user_lagging(struct fx *f, const char *id, const char *name, const char *role,
                     const char *tenant, char auth[FX_AUTH_SIZE]);

/* A request with the administrator's token, then headers. */
void request(struct fx *f, const char *method, const char *path, const char *headers,
             const char *body, struct hc_response *r);
/* A request with auth (an Authorization line, or "" for none) instead. */
void request_as(struct fx *f, const char *auth, const char *method, const char *path,
                const char *headers, const char *body, struct hc_response *r);

json_t *body_json(const struct hc_response *r);
void expect_header(const struct hc_response *r, const char *name, const char *value);
uint64_t header_u64(const struct hc_response *r, const char *name);
/* ETag: "R0 + n" */
void expect_etag(const struct hc_response *r, uint64_t n);

/* Asserts a problem answer: status, type, field (NULL: none) and instance
 * (NULL: not checked). */
void expect_problem(const struct hc_response *r, int status, const char *type, const char *field,
                    const char *instance);

/* Creates a tenant as the administrator; writes its id (CAIRN_UUID_SIZE
 * bytes) and returns its mod revision. */
uint64_t create_tenant(struct fx *f, const char *name, char *id);

/* Sends a request (as the administrator) that must be refused and leave
 * the store's revision unchanged. */
void expect_refused(struct fx *f, const char *method, const char *path, const char *headers,
                    const char *body, int status, const char *type, const char *field);

unsigned barriers(struct fx *f);

#endif /* CAIRN_TEST_FIXTURE_H */
