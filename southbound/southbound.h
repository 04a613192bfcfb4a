/*
 * southbound: how cairnd manages devices over NETCONF/YANG.
 *
 * The module has four layers, each usable on its own:
 *  - schema (sb_schema_*): a libyang context holding the CPE modules, and
 *    validation, diff and edit building on data trees of that context;
 *  - renderers (sb_render_*): one per service type, turning a service's
 *    JSON parameters and the target device's facts/site into a data tree of
 *    the cairn-cpe modules; sb_render_merge merges several services'
 *    trees into a device's intended config and names conflicting services;
 *  - session (sb_session_*): a NETCONF over SSH client session to one
 *    device, with host-key pinning, facts, push, dry-run and sync-from;
 *  - manager (sb_manager_*): a bounded worker pool holding thousands of
 *    device sessions, one job at a time per device, reconnecting with
 *    exponential backoff and jitter, results on a callback.
 *
 * Errors are CAIRN_E* codes; the text is written into a caller's errmsg
 * buffer (CAIRN_ERRMSG_SIZE bytes is enough) as a chain of causes.
 *
 * Threads: schema, renderer and session functions may be called from any
 * thread, but they block (a session waits on the network) and a session
 * is used by one thread at a time; a libyang context may be read by many
 * threads while none modifies it (connecting a session modifies it). The
 * manager's functions may be called from any thread and never block on a
 * device; its callback runs on a worker thread. Never call them from the
 * libuv loop thread with a device in the path: use the manager.
 */
#ifndef SOUTHBOUND_H
#define SOUTHBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libyang/libyang.h>

#include "cairn.h"

/* ------------------------------------------------------------------ */
/* Schema                                                             */

/* Creates a libyang context with ietf-netconf and every cairn-cpe module
 * from yang_dir (NULL: the source tree's southbound/yang). Any thread; the
 * context belongs to the caller (ly_ctx_destroy). */
int sb_schema_ctx_create(const char *yang_dir, struct ly_ctx **out, char *errmsg, size_t size);

/* Validates a config tree in place (adds default nodes). On failure the
 * message is libyang's, with the data path: "... (path: /cairn-...)". */
int sb_schema_validate(struct ly_ctx *ctx, struct lyd_node **tree, char *errmsg, size_t size);

/* Checks that every top-level node of tree belongs to a module listed in
 * modules (NULL-terminated names, as discovered on a device). */
int sb_schema_check_modules(const struct lyd_node *tree, const char *const *modules, char *errmsg,
                            size_t size);

/* A readable diff from `running` to `intended` (either may be NULL), one
 * line per change: "+ path = value", "- path", "~ path: old -> new".
 * Writes a malloc'd string ("" when equal) to *text and whether anything
 * differs to *changed. */
int sb_schema_diff(const struct lyd_node *running, const struct lyd_node *intended, char **text,
                   bool *changed, char *errmsg, size_t size);

/* The <config> content of the edit-config that turns `running` into
 * `intended`: every top-level container that differs, with
 * nc:operation="replace" (or "remove" when intended lacks it), preceded by
 * the cairn-fencing controller node carrying epoch and node_id. Writes a
 * malloc'd XML string, or NULL when nothing differs. */
int sb_schema_edit(struct ly_ctx *ctx, const struct lyd_node *running,
                   const struct lyd_node *intended, uint64_t epoch, const char *node_id, char **xml,
                   char *errmsg, size_t size);

/* Prints / parses a config tree as JSON (libyang's JSON encoding). */
int sb_schema_print_json(const struct lyd_node *tree, char **out);
int sb_schema_parse_json(struct ly_ctx *ctx, const char *json, struct lyd_node **out, char *errmsg,
                         size_t size);

/* ------------------------------------------------------------------ */
/* Renderers                                                          */

/* What a renderer may know of the device it renders for. Borrowed. */
struct sb_target {
    const char *serial;       /* facts: serial number */
    const char *model;        /* facts: model family, e.g. ucpe-s */
    const char *site;         /* the device's site name (NULL: none) */
    const char *site_role;    /* "hub" or "spoke" (NULL: spoke) */
    const char *site_address; /* the site's WAN address (NULL: none) */
};

/* One service that targets a device. Borrowed. */
struct sb_service {
    const char *id;     /* service id, named in conflicts and errors */
    const char *type;   /* firewall-policy, nat, site-to-site-vpn, sdwan, vnf */
    json_t *parameters; /* the service's parameters */
};

/* The service types, NULL-terminated, in a fixed order. */
extern const char *const sb_render_types[];

/* The JSON Schema (draft 2020-12 subset: type, properties, required,
 * items, enum, minimum, maximum, additionalProperties) of a type's
 * parameters, as a new reference; NULL for an unknown type. Any thread. */
json_t *sb_render_param_schema(const char *type);

/* Renders one service for one device into a new tree of ctx. An input
 * error names the parameter: "rules[2].action: must be one of ...". */
int sb_render_service(struct ly_ctx *ctx, const struct sb_service *svc,
                      const struct sb_target *target, struct lyd_node **out, char *errmsg,
                      size_t size);

/* Merges `base` and every service, as sb_render_intended, without the
 * final validation. */
int sb_render_merge(struct ly_ctx *ctx, const struct lyd_node *base, const struct sb_service *svcs,
                    size_t nsvcs, const struct sb_target *target, struct lyd_node **out,
                    char *errmsg, size_t size);

/* The intended config of a device: `base` (the adopted device config, may
 * be NULL; copied) merged with every service, in order of service id.
 * Two services that set the same node (same list key) with different
 * content are an error naming both. The result is validated. */
int sb_render_intended(struct ly_ctx *ctx, const struct lyd_node *base,
                       const struct sb_service *svcs, size_t nsvcs, const struct sb_target *target,
                       struct lyd_node **out, char *errmsg, size_t size);

/* ------------------------------------------------------------------ */
/* Session                                                            */

#define SB_FINGERPRINT_SIZE 64 /* "SHA256:" + 43 base64 characters + NUL */
#define SB_FACT_SIZE        64

struct sb_facts {
    char serial[SB_FACT_SIZE];   /* cairn-cpe-system:system-state/serial-number */
    char model[SB_FACT_SIZE];    /* .../model */
    char software[SB_FACT_SIZE]; /* .../software-version */
};

struct sb_connect {
    const char *host;        /* address */
    uint16_t port;           /* NETCONF/SSH port */
    const char *username;    /* SSH user */
    const char *password;    /* SSH password */
    const char *fingerprint; /* pinned host key "SHA256:..."; NULL/"": pin on first contact */
    unsigned timeout_ms;     /* connect, handshake, auth and each RPC */
};

struct sb_session;

/* Connects, verifies or pins the host key, authenticates, opens NETCONF,
 * discovers capabilities and modules and reads the facts. A host-key
 * mismatch is CAIRN_EPRECONDITION and no session. The session parses
 * replies with ctx: the caller must not let another thread modify ctx
 * during this call (libnetconf2 may load modules into it). */
int sb_session_open(struct ly_ctx *ctx, const struct sb_connect *conn, struct sb_session **out,
                    char *errmsg, size_t size);
void sb_session_close(struct sb_session *s); /* NULL: no-op */

/* sb_session_open on a TCP connection the device opened to us (NETCONF
 * call home, RFC 8071: the device is the TCP client and the SSH server).
 * Takes fd over: it is closed with the session, or at once on failure.
 * conn->host names the peer in messages; conn->port is unused. */
int sb_session_accept(struct ly_ctx *ctx, int fd, const struct sb_connect *conn,
                      struct sb_session **out, char *errmsg, size_t size);

/* The activation code the device shows in cairn-cpe-system:system-state
 * (zero-touch), "" if none. */
const char *sb_session_activation_code(const struct sb_session *s);

const char *sb_session_fingerprint(const struct sb_session *s);
const struct sb_facts *sb_session_facts(const struct sb_session *s);
/* NULL-terminated module names and capabilities the device announced. */
const char *const *sb_session_modules(const struct sb_session *s);
const char *const *sb_session_capabilities(const struct sb_session *s);
/* False once the transport failed (the session must be reopened). */
bool sb_session_alive(const struct sb_session *s);

/* Reads the running config (NULL when empty). */
int sb_session_get_running(struct sb_session *s, struct lyd_node **out, char *errmsg, size_t size);

/* The push steps, in order; a failure names one. */
enum sb_step {
    SB_STEP_NONE = 0,
    SB_STEP_CONNECT,
    SB_STEP_RENDER,
    SB_STEP_VALIDATE,
    SB_STEP_GET_RUNNING,
    SB_STEP_LOCK,
    SB_STEP_DISCARD,
    SB_STEP_EDIT,
    SB_STEP_DEVICE_VALIDATE,
    SB_STEP_CONFIRMED_COMMIT,
    SB_STEP_CONFIRM,
    SB_STEP_UNLOCK,
};
const char *sb_step_name(enum sb_step step);

struct sb_push_opts {
    uint64_t epoch;           /* fencing epoch put into every edit */
    const char *node_id;      /* controller node, informative */
    unsigned confirm_timeout; /* seconds of the confirmed commit */
    bool dry_run;             /* only compute the diff */
    /* Optional: asked again right before each step that changes the
     * device (lock, edit-config, confirmed commit, confirming commit);
     * the push goes on only while it answers true with `epoch`. */
    bool (*fence)(void *fence_data, const char *device_id, uint64_t *epoch);
    void *fence_data;      /* passed to fence */
    const char *device_id; /* passed to fence */
};

struct sb_push_result {
    enum sb_step failed_step; /* SB_STEP_NONE on success */
    bool changed;             /* running differed from intended */
    bool rolled_back;         /* cleanup ran after a failure */
    char *diff;               /* readable diff (malloc'd, may be "") */
    char *edit;               /* the edit-config content sent (malloc'd, NULL if none) */
};
void sb_push_result_free(struct sb_push_result *r);

/* Pushes `intended` (a validated tree of the session's ctx):
 * lock candidate -> discard-changes -> edit-config (with the epoch) ->
 * validate -> commit confirmed -> commit -> unlock. On a failure:
 * cancel-commit if the confirmed commit was sent, discard-changes,
 * unlock; errmsg names the step and carries the device's answer. A fence
 * that fails before the lock stops the push with CAIRN_EPRECONDITION and
 * nothing sent; after it, the same roll-back as any failure. The result
 * is filled in both cases. */
int sb_session_push(struct sb_session *s, const struct lyd_node *intended,
                    const struct sb_push_opts *opts, struct sb_push_result *res, char *errmsg,
                    size_t size);

/* ------------------------------------------------------------------ */
/* Manager                                                            */

enum sb_op {
    SB_OP_ONBOARD,     /* connect, pin, facts, adopt running as the base config */
    SB_OP_PUSH,        /* render, merge, validate, push */
    SB_OP_DRY_RUN,     /* render, merge, validate, diff against running */
    SB_OP_CHECK_DRIFT, /* diff running against the last intended config */
    SB_OP_SYNC_FROM,   /* adopt running as the base config */
};
const char *sb_op_name(enum sb_op op);

enum sb_reach {
    SB_REACH_UNKNOWN = 0,
    SB_REACH_REACHABLE,
    SB_REACH_UNREACHABLE,
};

/* What a job produced; valid only during the callback. */
struct sb_result {
    const char *device_id;        /* the device */
    enum sb_op op;                /* the operation */
    void *job_data;               /* the submitter's pointer */
    int rv;                       /* 0 or a CAIRN_E* code */
    const char *message;          /* "" or the error chain */
    enum sb_step step;            /* the failed step, SB_STEP_NONE on success */
    bool changed;                 /* push/dry-run/drift: device differed */
    bool rolled_back;             /* push: the device was cleaned up after a failure */
    const char *diff;             /* push/dry-run/drift: readable diff, or "" */
    const char *fingerprint;      /* onboard: the pinned host key */
    const struct sb_facts *facts; /* onboard: facts, NULL otherwise */
    const char *config_json;      /* onboard/sync-from: the adopted config (libyang JSON) */
    const char *intended_json;    /* push: the intended config now on the device, else NULL */
    unsigned attempts;            /* connection attempts this job made */
};

typedef void (*sb_result_cb)(const struct sb_result *res, void *cb_data);

struct sb_manager_config {
    unsigned threads;         /* worker threads (bounded; default 8) */
    const char *yang_dir;     /* NULL: the source tree's southbound/yang */
    uint64_t epoch;           /* fencing epoch for every write */
    const char *node_id;      /* this node, informative */
    unsigned timeout_ms;      /* connect and each RPC (default 10000) */
    unsigned confirm_timeout; /* seconds (default 60) */
    unsigned backoff_min_ms;  /* first reconnect delay (default 500) */
    unsigned backoff_max_ms;  /* cap (default 60000) */
    unsigned job_deadline_ms; /* a job (not an onboarding) waits this long to connect (30000) */
    sb_result_cb cb;          /* called on a worker thread for every job */
    void *cb_data;            /* passed to cb */
    /* Optional fencing: called on the worker right before a push writes
     * to the device; false fails the job (CAIRN_EPRECONDITION) without a
     * write, true sets *epoch, which the edit carries instead of
     * cfg.epoch. */
    bool (*fence)(void *cb_data, const char *device_id, uint64_t *epoch);
};

struct sb_device_status {
    enum sb_reach reach;                   /* reachability */
    int64_t last_seen_ms;                  /* wall ms of the last successful exchange, 0: never */
    unsigned failures;                     /* consecutive connection failures */
    uint64_t next_attempt_ms;              /* monotonic ms of the next reconnect, 0: none due */
    char fingerprint[SB_FINGERPRINT_SIZE]; /* pinned host key, "" before onboarding */
    size_t queued;                         /* jobs waiting */
    bool busy;                             /* a job is running */
    char last_error[CAIRN_ERRMSG_SIZE];    /* last failure, "" if none */
};

struct sb_manager;

/* Starts the worker threads. Any thread. */
int sb_manager_create(const struct sb_manager_config *cfg, struct sb_manager **out, char *errmsg,
                      size_t size);
/* Stops the workers after their current jobs; queued jobs complete with
 * CAIRN_ESHUTDOWN. Not from a callback. NULL: no-op. */
void sb_manager_destroy(struct sb_manager *m);

/* Adds or updates a device (strings are copied). fingerprint may be NULL:
 * pinned on first contact. Any thread. */
int sb_manager_device_set(struct sb_manager *m, const char *id, const struct sb_connect *conn,
                          const struct sb_target *target);

/* Submits a job; returns at once. services (push/dry-run: the services
 * targeting the device, borrowed: the array and parameters are copied)
 * may be NULL for other operations. The callback always runs exactly
 * once, on a worker thread, unless this returns an error. Any thread. */
int sb_manager_submit(struct sb_manager *m, const char *device_id, enum sb_op op,
                      const struct sb_service *services, size_t nservices, void *job_data);

/* Closes the device's session once the jobs queued before this call have
 * run (this node no longer owns it, or stopped managing it); a later job
 * opens a new one. Nothing is reported to the callback. CAIRN_ENOTFOUND
 * for an unknown device. Any thread. */
int sb_manager_device_release(struct sb_manager *m, const char *id);

/* Forgets a device's reconnect backoff and has its next job open a new
 * session: its connection settings changed, or a new owner starts fresh.
 * A job waiting for the backoff runs now. CAIRN_ENOTFOUND for an unknown
 * device. Any thread. */
int sb_manager_device_retry(struct sb_manager *m, const char *id);

/* Gives a device the adopted base config and the last pushed intended
 * config (libyang JSON, either NULL) that another node recorded: an
 * onboarding then keeps that base instead of adopting running, and drift
 * is checked against the intended one. CAIRN_EBUSY while a job of the
 * device runs, CAIRN_ENOTFOUND for an unknown device. Any thread. */
int sb_manager_device_configs(struct sb_manager *m, const char *id, const char *base_json,
                              const char *intended_json);

/* Copies a device's status. CAIRN_ENOTFOUND for an unknown device. */
int sb_manager_device_status(struct sb_manager *m, const char *id, struct sb_device_status *out);

/* Worker thread count and the number of devices with an open session. */
unsigned sb_manager_threads(const struct sb_manager *m);
size_t sb_manager_sessions(struct sb_manager *m);

#endif /* SOUTHBOUND_H */
