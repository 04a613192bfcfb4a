/*
 * cairnd's configuration: one "key = value" file, parsed by a table of keys
 * (name, type, default, limits), so that every key, its default and its
 * check live in one place and docs/configuration.md can mirror the table.
 *
 * Threads: main thread, before anything starts.
 */
#ifndef CAIRN_CONFIG_H
#define CAIRN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_MEMBERS 32

struct config_member {
    uint64_t id;
    char raft_address[64];
    char api_address[64];
};

struct config {
    char cluster_id[65];
    uint64_t node_id;
    char data_dir[4096];
    char raft_address[64];
    char api_address[64];
    struct config_member members[CONFIG_MAX_MEMBERS];
    size_t n_members;
    unsigned election_timeout_ms;
    unsigned heartbeat_timeout_ms;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    unsigned snapshot_log_mb;   /* snapshot once the log since the last one holds this many MiB */
    unsigned propose_batch_max; /* commands one raft entry may carry (1: no batches) */
    unsigned http_threads;
    uint64_t max_body_bytes;
    unsigned request_timeout_ms;
    char cluster_secret[129];
    char log_level[16];
    char cpu_scheduling[16];            /* "batch" (SCHED_BATCH) or "inherit" (as started) */
    unsigned debug_stale_reads;         /* 1: linearizable reads skip the read index (tests only) */
    unsigned debug_command_version_max; /* 0, or act as a build applying 1..N (tests only) */
    unsigned debug_propose_objects;     /* 0: serve no propose-objects, like an older build */
    char admin_user[65];                /* name of the first SP administrator */
    char admin_password_file[4096];     /* file holding its password, or "" (no bootstrap) */
    char admin_password[257];           /* read from that file, trailing newline stripped */
    unsigned session_ttl_s;             /* lifetime of a login's bearer token */
    unsigned event_streams_max;         /* concurrent event streams (each holds a worker) */
    unsigned liveness_heartbeat_ms;     /* how often a node renews its lease with the leader */
    unsigned ownership_lease_ms;        /* a node drives devices this long after a leader contact */
    unsigned liveness_down_ms;          /* silence after which the leader commits a node down */
    unsigned southbound_threads;        /* device worker threads */
    unsigned device_timeout_ms;         /* connect and each NETCONF RPC */
    unsigned confirm_timeout_s;         /* confirmed commit: rollback unless confirmed in time */
    unsigned drift_interval_s;          /* owned devices are checked this often; 0: never */
    unsigned onboard_retry_min_ms;      /* first delay before onboarding a device again */
    unsigned onboard_retry_max_ms;      /* the delay doubles up to this */
    char yang_dir[4096];                /* the CPE YANG modules; "": the built-in location */
    char callhome_listen[64];           /* NETCONF call-home listener host:port, "": off */
    char callhome_username[65];         /* zero-touch SSH login on devices calling home */
    char callhome_password[257];        /* its password */
};

/* liveness_down_ms must exceed ownership_lease_ms by at least this much, so
 * that a silent node's lease has run out (with room for clock rate
 * differences) before the leader hands its devices to others. */
#define CONFIG_OWNERSHIP_MARGIN_MS 500

/* Fills cfg with the defaults, then reads path. On error errmsg reads
 * "FILE:LINE: key: what is wrong". If admin_password_file is set, the
 * file is read too (12 to 256 bytes once a trailing newline is stripped). */
int config_load(const char *path, struct config *cfg, char *errmsg, size_t errmsg_size);

/* Parses the text of a config file (name is used in messages). */
int config_parse(const char *name, const char *text, struct config *cfg, char *errmsg,
                 size_t errmsg_size);

/* Validates a "host:port" address; on success host and port are split out. */
int config_address_parse(const char *s, char *host, size_t host_size, unsigned *port);

/* Finds the initial member with this id, or NULL. */
const struct config_member *config_member_find(const struct config *cfg, uint64_t id);

#endif /* CAIRN_CONFIG_H */
