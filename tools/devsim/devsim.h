/*
 * cairn-devsim: one process that serves many simulated CPE devices over
 * NETCONF over SSH, for the controller's tests and benchmarks.
 *
 * The module is split by what each file does: device.c holds a device's
 * datastores, locks, confirmed commit, faults and write log; edit.c applies
 * <edit-config> trees and filters; rpc.c answers NETCONF operations;
 * server.c runs libnetconf2 (endpoints, accept and poll threads); control.c
 * is the line-based control socket; main.c parses the command line.
 *
 * libnetconf2's server options are process-wide, so there is one struct
 * devsim per process.
 */
#ifndef DEVSIM_H
#define DEVSIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libyang/libyang.h>

#define DEVSIM_NAME_MAX 64

/* Faults injected per device through the control socket. */
struct devsim_fault {
    bool refuse;        /* the device's port is closed: connects are refused */
    int drop;           /* drop the session at the next N RPCs; -1: every RPC */
    unsigned slow_ms;   /* sleep this long before answering each RPC */
    char slow_op[32];   /* only RPCs of this name are slow; "": every RPC */
    bool reject_commit; /* <commit> fails with operation-failed */
};

/* One accepted configuration write, for tests to check fencing. */
struct devsim_write {
    int64_t wall_ms;  /* when, milliseconds since the Unix epoch */
    uint32_t session; /* NETCONF session id (0: the simulator itself) */
    const char *op;   /* static string: edit-config, commit, ... */
    const char *ds;   /* static string: running or candidate */
    bool has_epoch;   /* the write carried a cairn-fencing epoch */
    uint64_t epoch;   /* that epoch */
};

/*
 * A simulated device. Every field below mu is protected by mu.
 *
 * Confirmed commit (RFC 6241 8.4), the only state machine here:
 *  1. idle -> pending: a <commit> with <confirmed/> saves running in
 *     `rollback`, copies candidate to running and sets `confirm_deadline`
 *     (device_commit).
 *  2. pending -> pending: another confirmed commit extends the deadline and
 *     keeps the first `rollback` (device_commit).
 *  3. pending -> idle: a plain <commit> (with the right persist-id if one
 *     was given) confirms: `rollback` is dropped (device_commit).
 *  4. pending -> idle: <cancel-commit>, the deadline passing
 *     (device_tick) or the issuing session closing without persist
 *     (device_session_closed) restore `rollback` into running and
 *     candidate.
 * Invariant: confirm_pending == (rollback != NULL || running was empty).
 */
struct devsim_device {
    pthread_mutex_t mu;
    unsigned index;                 /* position in the device table */
    char name[DEVSIM_NAME_MAX];     /* control-socket name, e.g. dev0 */
    char serial[DEVSIM_NAME_MAX];   /* serial number */
    char model[DEVSIM_NAME_MAX];    /* model family */
    char user[DEVSIM_NAME_MAX];     /* SSH user name */
    char password[DEVSIM_NAME_MAX]; /* SSH password */
    char key_path[1024];            /* ed25519 host key file */
    uint16_t port;                  /* loopback port */
    bool listening;                 /* the endpoint exists in libnetconf2 */
    int reserve_fd;       /* while refused: a socket bound to the port, not listening, -1: none */
    uint64_t boot_ms;     /* monotonic start time */
    int64_t boot_wall_ms; /* wall-clock start time */
    struct lyd_node *running;         /* running datastore (may be NULL) */
    struct lyd_node *candidate;       /* candidate datastore */
    bool cand_dirty;                  /* candidate differs from running */
    bool cand_has_epoch;              /* epoch of the last candidate edit */
    uint64_t cand_epoch;              /* ... recorded again with the commit */
    uint32_t lock_running;            /* session holding the lock, 0: none */
    uint32_t lock_candidate;          /* session holding the lock, 0: none */
    bool confirm_pending;             /* a confirmed commit awaits confirmation */
    uint64_t confirm_deadline;        /* monotonic ms of the automatic rollback */
    uint32_t confirm_session;         /* session that issued it (no persist) */
    char persist_id[DEVSIM_NAME_MAX]; /* <persist> value, "" if none */
    struct lyd_node *rollback;        /* running before the confirmed commit */
    struct devsim_fault fault;        /* injected faults */
    const char *busy_op;              /* the RPC being answered now, NULL: none (status) */
    struct devsim_write *log;         /* accepted writes, oldest first */
    size_t log_len, log_cap;          /* entries used and allocated */
    unsigned drift_count;             /* drifts triggered so far */
    /* Zero-touch (server.c, "Call home"): */
    char activation_code[DEVSIM_NAME_MAX]; /* shown in system-state, "" if none */
    char call_home[512];                   /* "HOST:PORT[,HOST:PORT...]", "" if none */
    unsigned ch_sessions;                  /* call-home sessions established so far */
};

/* The simulator. */
struct devsim {
    struct ly_ctx *ctx;            /* one schema context for all devices */
    struct devsim_device *devs;    /* the device table */
    unsigned ndevs;                /* its size */
    unsigned accept_threads;       /* threads calling nc_accept */
    unsigned poll_threads;         /* threads serving sessions */
    uint16_t control_port;         /* 0: no control socket */
    char key_dir[512];             /* where host keys live */
    bool key_dir_temp;             /* remove key_dir at exit */
    atomic_bool stop;              /* set by a signal or the control socket */
    struct devsim_poller *pollers; /* poll threads' state (server.c) */
    atomic_uint next_poller;       /* round-robin hand-over of sessions */
    pthread_t *acceptors;          /* accept threads (server.c) */
    pthread_rwlock_t endpt_gate;   /* read: an nc_accept call; write: an endpoint change */
    int control_fd;                /* control socket listener, -1: none */
    pthread_t control_thread;      /* runs the control socket */
};

/* Per-session data, set with nc_session_set_data. */
struct devsim_session {
    struct devsim_device *dev; /* the device the session is connected to */
    uint32_t id;               /* NETCONF session id */
    bool callhome;             /* the device dialed out (RFC 8071) */
};

/* device.c — all may be called from any thread; each takes dev->mu. */
int device_init(struct devsim *sim, struct devsim_device *dev);
void device_close(struct devsim_device *dev);
void device_log_write(struct devsim_device *dev, uint32_t session, const char *op, const char *ds,
                      bool has_epoch, uint64_t epoch);
void device_session_closed(struct devsim_device *dev, uint32_t session);
void device_tick(struct devsim_device *dev, uint64_t now_ms);
/* Restores `rollback` into running; dev->mu must be held. */
void device_rollback_locked(struct devsim_device *dev, const char *why);
/* Copies running into candidate unless candidate holds changes; mu held. */
void device_sync_candidate_locked(struct devsim_device *dev);
int device_drift(struct devsim_device *dev, const char *path, const char *value, char *err,
                 size_t errlen);
/* Builds the operational state (config + state) of a device; mu held. */
int device_state_locked(struct devsim_device *dev, struct lyd_node **out);

/* edit.c */
/* Applies an edit-config tree to *target (a copy the caller owns), with
 * default operation defop ("merge", "replace" or "none"). On failure fills
 * err and returns NC_ERR-like tag through *tag. */
int edit_apply(struct lyd_node **target, const struct lyd_node *edit, const char *defop, int *tag,
               char *err, size_t errlen);
/* Selects the parts of data that a NETCONF <filter> node chooses (NULL
 * filter: everything). Writes a new tree (possibly NULL) to *out. */
int filter_apply(const struct ly_ctx *ctx, const struct lyd_node *data,
                 const struct lyd_node *filter, struct lyd_node **out, char *err, size_t errlen);
/* Sets the node at an absolute path to value in *tree, creating it and
 * its parents as needed. */
int tree_set(struct lyd_node **tree, const struct ly_ctx *ctx, const char *path, const char *value);
/* Duplicates a whole data tree (NULL stays NULL). */
int tree_dup(const struct lyd_node *tree, struct lyd_node **out);

/* rpc.c */
void rpc_setup(struct devsim *sim);

/* server.c */
int server_start(struct devsim *sim);
void server_stop(struct devsim *sim);
int server_endpoint_add(struct devsim *sim, struct devsim_device *dev);
int server_endpoint_del(struct devsim *sim, struct devsim_device *dev);
/* Parses "HOST:PORT[,HOST:PORT...]" (at most DEVSIM_CALLHOME_MAX); 0 or -1. */
#define DEVSIM_CALLHOME_MAX 8
int callhome_parse(const char *list, char hosts[][DEVSIM_NAME_MAX], uint16_t *ports, unsigned *n);

/* control.c */
int control_start(struct devsim *sim);
void control_stop(struct devsim *sim);

#endif /* DEVSIM_H */
