/*
 * The replicated state machine: every node applies the same committed raft
 * entries, in the same order, into its own RocksDB, and so holds the same
 * objects at the same revisions.
 *
 * Layout (RocksDB column families):
 *   "meta"    - applied raft index, global revision (fixed keys).
 *   "objects" - key = kind byte + id, value = msgpack {c, m, n, b}: create
 *               and mod revision, name, JSON body. One kind's keys are
 *               contiguous, so a list is one range scan in id order.
 *   "names"   - key = kind byte + name, value = id: unique names per kind.
 *   "requests"- key = request id, value = msgpack {ts, fp, result}: the
 *               outcome of every command that carried a request id, so a
 *               retried command is answered with the first outcome instead
 *               of being applied twice (exactly-once across leader changes).
 *   "scoped", "children", "counts", "expiry" - indexes: objects by tenant,
 *               by parent, how many of a kind a tenant has, and by expiry.
 *   "changes" - key = revision + sequence: each object after each change.
 *   "audit"   - key = sequence: who asked for what, and the outcome.
 *
 * A command is a msgpack map with a type and a version (see
 * store_command_encode); nothing non-deterministic happens in apply: ids,
 * clocks and request ids come from the proposer.
 *
 * Threads: store_apply, store_snapshot_take, store_snapshot_checkpoint,
 * store_snapshot_restore and store_backup_begin are called on one thread at
 * a time (the node's loop thread); store_snapshot_pack on any. Reads (get, list,
 * the index/revision getters) may be called from any thread concurrently,
 * also while a restore replaces the database (they wait for it).
 */
#ifndef CAIRN_STORE_H
#define CAIRN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct cairn_buf;

/* Object kinds. The value is the key prefix byte in "objects" and "names";
 * never renumber one. */
enum store_kind {
    STORE_KIND_TENANT = 't',
    STORE_KIND_MEMBER = 'm',   /* cluster member: id = node id in decimal */
    STORE_KIND_USER = 'u',     /* name = user name; tenant users are scoped */
    STORE_KIND_SESSION = 's',  /* id = hex SHA-256 of a bearer token; expires */
    STORE_KIND_SITE = 'S',     /* scoped to a tenant, parent = the tenant */
    STORE_KIND_DEVICE = 'd',   /* scoped to a tenant, parent = its site */
    STORE_KIND_TEMPLATE = 'T', /* service catalog entry (provider-level) */
    STORE_KIND_SERVICE = 'v',  /* scoped to a tenant, parent = the tenant */
    STORE_KIND_JOB = 'j',      /* long operation; scoped when it has a tenant */
    STORE_KIND_SYSTEM = 'y',   /* cluster-wide settings (id = setting name) */
};

/* "tenant", "site", ... for a kind; NULL for an unknown one. */
const char *store_kind_name(uint64_t kind);

/* Most references one command may require to exist (see refs). */
#define STORE_MAX_REFS 16
/* Most per-kind quotas one tenant may carry (see limits). */
#define STORE_MAX_LIMITS 8

/* An object that must exist when a command applies. */
struct store_ref {
    enum store_kind kind;
    const char *id;
};

/* A fence (version 3): the command applies only while object kind/id is
 * at mod revision `revision`; else it fails with CAIRN_EPRECONDITION and
 * changes nothing. kind 0: no fence. A device owner fences what it records
 * with the ownership epoch (the revision of the system object
 * "ownership"), so that an outcome of an owner whose epoch moved on is
 * refused by every replica, however late it arrives. */
struct store_fence {
    enum store_kind kind;
    const char *id;
    uint64_t revision;
};

/* A quota: at most max objects of kind scoped to the tenant. */
struct store_limit {
    enum store_kind kind;
    uint64_t max;
};

/* Command operations, for every kind. */
enum store_op {
    STORE_OP_CREATE = 1, /* fails with CAIRN_EEXIST if the id or name exists */
    STORE_OP_UPDATE,     /* fails with CAIRN_ENOTFOUND; replaces name and body */
    STORE_OP_DELETE,     /* fails with CAIRN_ENOTFOUND */
    STORE_OP_PUT,        /* create or replace (used for members) */
    STORE_OP_AUDIT,      /* changes nothing; records an audit entry for a
                          * write the API refused before proposing it */
};

/* The newest command version this build applies. Version 1 has the
 * fields up to caller; version 2 adds scope, parent, refs, limits,
 * cascade, expiry and the audit fields, and STORE_OP_AUDIT; version 3 the
 * fence; version 4 batched entries (below). All are decoded. */
#define STORE_COMMAND_VERSION 4

/* Version 4 adds no command field: a build that applies it also applies
 * batched entries (store_apply_batch), several commands in one raft
 * entry. A leader batches only while every voter applies version 4. */
#define STORE_COMMAND_VERSION_BATCH 4

/* Most commands one batched entry carries. */
#define STORE_BATCH_MAX 64

/* The command versions that every Cairn build reads, including the builds
 * that did not yet record their versions in their member record: a voter
 * whose record names no version is assumed to read 1..this. */
#define STORE_COMMAND_VERSION_BASELINE 2

/* A command, as the proposer builds it. Strings are borrowed. */
struct store_command {
    unsigned version;       /* STORE_COMMAND_VERSION */
    enum store_op op;       /* what to do */
    enum store_kind kind;   /* to which kind of object */
    const char *id;         /* object id (1..128 bytes, no NUL) */
    const char *name;       /* unique name within the kind, or NULL */
    const char *body;       /* JSON text of the object's fields, or NULL */
    size_t body_len;        /* bytes in body */
    uint64_t if_match;      /* 0, or the mod revision the object must have */
    const char *request_id; /* dedup key (1..256 bytes), or NULL */
    uint64_t fingerprint;   /* hash of the client's request, checked on retry */
    int64_t time_ms;        /* proposer's wall clock, ms since the epoch */
    const char *caller;     /* who asked (user name), or NULL */
    /* Version 2. */
    const char *tenant;                    /* scope: owning tenant id, or NULL */
    enum store_kind parent_kind;           /* 0, or the kind of the parent */
    const char *parent_id;                 /* the parent, which must exist at create */
    struct store_ref refs[STORE_MAX_REFS]; /* must exist when applied */
    size_t n_refs;
    struct store_limit limits[STORE_MAX_LIMITS]; /* tenants: quotas */
    size_t n_limits;
    bool cascade;              /* DELETE: also delete every descendant */
    int64_t expires_ms;        /* 0, or when the object expires (sessions) */
    int audit_status;          /* STORE_OP_AUDIT: the refusal (CAIRN_E*) */
    const char *audit_message; /* STORE_OP_AUDIT: why it was refused */
    /* Version 3. */
    struct store_fence fence; /* see struct store_fence */
};

/* Encodes a command as msgpack into a malloc'ed buffer (*out, *out_len).
 * Returns CAIRN_EINVAL if a required field is missing or out of range. */
int store_command_encode(const struct store_command *cmd, void **out, size_t *out_len);

/* Decodes and validates a msgpack command. The strings of *cmd point into
 * buf, which must outlive *cmd. Returns CAIRN_EMALFORMED for truncated or
 * garbage input (message in errmsg) and CAIRN_EUNSUPPORTED for an unknown
 * operation, kind or version. */
int store_command_decode(const void *buf, size_t len, struct store_command *cmd, char *errmsg,
                         size_t errmsg_size);

/* The version field of an encoded command, without decoding the rest:
 * CAIRN_EMALFORMED if there is none to read. Any thread. */
int store_command_version(const void *buf, size_t len, uint64_t *version);

/* The lowest command version able to carry cmd: 3 if it has a fence, 2
 * if it uses a version 2 field or STORE_OP_AUDIT, else 1. */
unsigned store_command_version_needed(const struct store_command *cmd);

/* The outcome of applying one command; what the proposer reports. */
struct store_result {
    int status;          /* 0 or a CAIRN_E* code (ENOTFOUND, EEXIST, ...) */
    char message[256];   /* for a failure: what, naming the field or object */
    uint64_t revision;   /* global revision after this command */
    char id[129];        /* the object's id (so a replayed create names it) */
    uint64_t create_rev; /* of the object, on success (0 after delete) */
    uint64_t mod_rev;    /* of the object, on success */
    bool replayed;       /* true if answered from the request-id table */
};

/* Encodes/decodes a result as msgpack (for forwarding between nodes). */
int store_result_encode(const struct store_result *res, void **out, size_t *out_len);
int store_result_decode(const void *buf, size_t len, struct store_result *res);

/* Opens (creating if needed) the store in dir. On failure *errmsg says why. */
int store_open(const char *dir, struct store **out, char *errmsg, size_t errmsg_size);

/* Closes and frees; NULL is a no-op. */
void store_destroy(struct store *s);

/* Applies the committed raft entry at index. If index <= the stored applied
 * index the entry is skipped (replay after restart) and *result is NULL.
 * Otherwise the change, the new applied index and the new revision go into
 * one WriteBatch. A command that cannot be decoded or fails its checks
 * changes nothing but the applied index, and *result says why.
 * A command of a version newer than store_command_version_max is not
 * applied at all: CAIRN_EUNSUPPORTED, nothing written, errmsg "command
 * version N is newer than this build (1..M): upgrade this node"; the node
 * must stop applying (another node may read it, so skipping it would make
 * the replicas diverge).
 * *result points into the store and stays valid until the next apply.
 * Returns non-zero only for a storage failure (errmsg says which), after
 * which the node must stop. */
int store_apply(struct store *s, uint64_t index, const void *buf, size_t len,
                const struct store_result **result, char *errmsg, size_t errmsg_size);

/* One encoded command of a batch. */
struct store_slice {
    const void *buf;
    size_t len;
};

/* Applies a batched entry: n (1..STORE_BATCH_MAX, else CAIRN_EINVAL)
 * commands in order, each exactly as store_apply would apply it alone
 * (its own revision, result and refusal), all in one WriteBatch with the
 * index. A store whose store_command_version_max is below
 * STORE_COMMAND_VERSION_BATCH, or a command newer than it, refuses the
 * whole entry with CAIRN_EUNSUPPORTED, nothing written ("upgrade this
 * node"). *results points to n results in the store, valid until the next
 * apply, or is NULL if the index was already applied. */
int store_apply_batch(struct store *s, uint64_t index, const struct store_slice *cmds, size_t n,
                      const struct store_result **results, char *errmsg, size_t errmsg_size);

/* The newest command version this store applies: STORE_COMMAND_VERSION
 * unless lowered (1..STORE_COMMAND_VERSION, else CAIRN_EINVAL) to make a
 * node behave like an older build (debug_command_version_max, tests).
 * Set it before the first apply. */
int store_command_version_limit(struct store *s, unsigned max);
unsigned store_command_version_max(struct store *s);

/* Highest applied raft index and the global revision; any thread. */
uint64_t store_applied_index(struct store *s);
uint64_t store_revision(struct store *s);

/* Moves (after the change is readable) whenever a session or a user is
 * written, deleted or pruned, or a snapshot replaced the state: a cache of
 * authenticated sessions read it before reading them, and trusts an entry
 * only while it has not moved. Any thread. */
uint64_t store_auth_generation(struct store *s);

/* Moves (after the change is readable) whenever a member record is
 * written or deleted, or a snapshot replaced the state: what a cached
 * cluster version is keyed on, with the configuration. Any thread. */
uint64_t store_member_generation(struct store *s);

/* Moves (after the change is readable) whenever a system object (the
 * ownership record, ...) is written or deleted, or a snapshot replaced the
 * state: lets a reader that waits for one skip reading it while nothing
 * moved. Any thread. */
uint64_t store_system_generation(struct store *s);

/* One object as read. Free with store_object_release. */
struct store_object {
    enum store_kind kind;
    char *id;
    char *name; /* NULL if the object has none */
    char *body; /* JSON text, NUL-terminated */
    size_t body_len;
    uint64_t create_rev;                         /* revision that created it */
    uint64_t mod_rev;                            /* revision that last changed it: its ETag */
    char *tenant;                                /* scope, or NULL */
    enum store_kind parent_kind;                 /* 0 if it has no parent */
    char *parent_id;                             /* or NULL */
    int64_t expires_ms;                          /* 0: never */
    struct store_limit limits[STORE_MAX_LIMITS]; /* tenants: quotas */
    size_t n_limits;
};

void store_object_release(struct store_object *o);

/* Reads one object. CAIRN_ENOTFOUND if absent. Any thread. */
int store_object_get(struct store *s, enum store_kind kind, const char *id,
                     struct store_object *out);

/* Appends the stored encoding of one object to out: what a leader sends
 * back to the node that forwarded the write, so that that node answers
 * without reading its own store. CAIRN_ENOTFOUND if absent. Any thread. */
int store_object_value(struct store *s, enum store_kind kind, const char *id,
                       struct cairn_buf *out);

/* Builds an object of kind and id from an encoding of store_object_value
 * (all copied; store_object_release it). CAIRN_EINVAL for a bad kind or
 * id, CAIRN_EMALFORMED for bytes that are no stored object. */
int store_object_decode(enum store_kind kind, const char *id, const void *val, size_t val_len,
                        struct store_object *out);

/* Looks up an object id by its unique name. CAIRN_ENOTFOUND if absent. The
 * id is written into a malloc'ed string. Any thread. */
int store_name_lookup(struct store *s, enum store_kind kind, const char *name, char **id);

/* A page of objects of one kind in id order, read at one revision. */
struct store_list {
    struct store_object *items;
    size_t n;
    uint64_t revision; /* global revision the page was read at */
    bool more;         /* true if objects follow the last one */
};

/* Lists up to limit objects of kind with id > after (NULL: from the first),
 * all from one consistent RocksDB snapshot. Any thread. */
int store_object_list(struct store *s, enum store_kind kind, const char *after, size_t limit,
                      struct store_list *out);
void store_list_release(struct store_list *l);

/* Calls cb for every object of kind in id order, a page at a time (each
 * page from one snapshot); stops at the first non-zero return of cb and
 * returns it. *revision (may be NULL) gets the revision of the first page:
 * every change after it is in the change log. Any thread. */
int store_object_foreach(struct store *s, enum store_kind kind,
                         int (*cb)(const struct store_object *o, void *arg), void *arg,
                         uint64_t *revision);

/* A filtered page: objects of kind, optionally only those scoped to tenant
 * and/or children of one parent, in id order after `after`. */
struct store_query {
    enum store_kind kind;
    const char *tenant;          /* NULL: any scope */
    enum store_kind parent_kind; /* 0: any parent */
    const char *parent_id;
    const char *after; /* NULL: from the first */
    size_t limit;
    int64_t now_ms; /* expired objects (expires_ms <= now) are skipped */
};
/* Read from one RocksDB snapshot, like store_object_list. Any thread. */
int store_object_query(struct store *s, const struct store_query *q, struct store_list *out);

/* How many objects of kind are scoped to tenant (what quotas count), 0 for
 * none. Any thread. */
int store_count(struct store *s, const char *tenant, enum store_kind kind, uint64_t *n);

/* The change log: one record per changed object per revision, kept for the
 * newest STORE_CHANGES_KEPT revisions, so an event stream can resume from
 * any recent revision without loss. */
#define STORE_CHANGES_KEPT 100000
struct store_change {
    uint64_t revision;
    bool deleted;               /* else created or updated */
    struct store_object object; /* after the change; for a delete, id, kind,
                                 * tenant and parent only */
};
struct store_change_list {
    struct store_change *items;
    size_t n;
    uint64_t oldest;   /* oldest revision still in the log (0: empty) */
    uint64_t revision; /* global revision the page was read at */
};
/* Reads up to limit changes with revision > from. If from + 1 is older than
 * the oldest kept revision, returns CAIRN_ENOTFOUND (the caller must
 * re-list). A page holds whole revisions, so the caller goes on from the
 * last item's revision: a first revision with more than limit changes (a
 * cascade) is returned whole. Any thread. */
int store_changes_read(struct store *s, uint64_t from, size_t limit, struct store_change_list *out);
void store_change_list_release(struct store_change_list *l);

/* The audit log: one record for every applied command that has a caller
 * (successful or refused by apply) and for every STORE_OP_AUDIT. */
struct store_audit {
    uint64_t seq;    /* position in the log (1, 2, ...) */
    int64_t time_ms; /* the command's time */
    char *caller;
    char *tenant; /* scope of the object, or NULL */
    enum store_op op;
    enum store_kind kind;
    char *id;
    int status;        /* 0 or CAIRN_E* */
    char *message;     /* why it failed, or NULL */
    uint64_t revision; /* global revision after the command */
};
struct store_audit_query {
    const char *caller;     /* NULL: any */
    const char *tenant;     /* NULL: any */
    enum store_kind kind;   /* 0: any */
    int64_t from_ms, to_ms; /* time_ms within [from_ms, to_ms]; 0: unbounded */
    uint64_t after;         /* seq to continue after (0: from the newest) */
    size_t limit;
};
struct store_audit_list {
    struct store_audit *items; /* newest first */
    size_t n;
    bool more;
    uint64_t next; /* with more: the seq to pass as `after` to go on (a scan
                    * that stops at its bound may have matched nothing) */
};
/* Reads one page from one RocksDB snapshot, examining at most 100000
 * records (then more is set and next says where to go on). Any thread. */
int store_audit_query(struct store *s, const struct store_audit_query *q,
                      struct store_audit_list *out);
void store_audit_list_release(struct store_audit_list *l);

/* Takes a snapshot: a RocksDB checkpoint of the state at the current
 * applied index, packed into one malloc'ed buffer. Loop thread. The
 * checkpoint copies the write-ahead log if it is at most 16 MB (restoring
 * replays it), else it flushes the memtables first, which held the loop
 * thread a second for 64 MB of them: see store_flush_start.
 *
 * It is store_snapshot_checkpoint and then store_snapshot_pack. Packing
 * reads every file of the checkpoint (90-190 ms for 100 MB), so the
 * consensus layer does it on a worker thread while apply goes on. */
int store_snapshot_take(struct store *s, void **out, size_t *out_len, char *errmsg,
                        size_t errmsg_size);

/* A checkpoint made for a snapshot: the applied index and revision it holds. */
struct store_checkpoint {
    uint64_t index;
    uint64_t revision;
};

/* Makes the checkpoint of the state at the current applied index (in the
 * store's directory, replacing a leftover one). Loop thread. */
int store_snapshot_checkpoint(struct store *s, struct store_checkpoint *cp, char *errmsg,
                              size_t errmsg_size);

/* Packs the checkpoint cp into one malloc'ed buffer, the same bytes
 * store_snapshot_take gives for that state, and removes it. On failure the
 * checkpoint stays (packing may be tried again) until
 * store_snapshot_checkpoint_drop. Any thread, while the loop thread
 * applies entries; never two at a time, nor with a restore. */
int store_snapshot_pack(struct store *s, const struct store_checkpoint *cp, void **out,
                        size_t *out_len, char *errmsg, size_t errmsg_size);
void store_snapshot_checkpoint_drop(struct store *s);

/* Starts flushing every memtable to SST files in RocksDB's background
 * threads and returns at once; writes go on into new memtables. Called a
 * while before store_snapshot_take, it leaves that one little to flush.
 * Changes no state. Loop thread. */
int store_flush_start(struct store *s, char *errmsg, size_t errmsg_size);

/* Replaces the whole state with the snapshot in buf (as made by
 * store_snapshot_take, possibly on another node). If the local state is
 * already at or past the snapshot's applied index the call keeps the local
 * state (raft replays the rest and apply skips what is already there).
 * Readers are blocked for the swap. Loop thread. On failure the old state is
 * kept and errmsg says why. */
int store_snapshot_restore(struct store *s, const void *buf, size_t len, char *errmsg,
                           size_t errmsg_size);

/* The applied index recorded in a snapshot buffer, without restoring it. */
int store_snapshot_index(const void *buf, size_t len, uint64_t *index);

/* Backups: a snapshot in the same packed form, streamed from a checkpoint
 * of its own, so that several may run beside raft's snapshots and none
 * holds the database in memory. */
struct store_backup;

/* Takes a checkpoint (dir/backup-N) at the current applied index. Loop
 * thread (like apply, so that the index and revision are the checkpoint's
 * own); a checkpoint costs a memtable flush and hard links. */
int store_backup_begin(struct store *s, struct store_backup **out, char *errmsg,
                       size_t errmsg_size);

/* Size of the packed form, and the applied index and revision it holds. */
uint64_t store_backup_size(const struct store_backup *b);
uint64_t store_backup_index(const struct store_backup *b);
uint64_t store_backup_revision(const struct store_backup *b);

/* Produces the next up to cap bytes of the packed form (*n < cap only at
 * the end). One thread at a time, any thread. */
int store_backup_read(struct store_backup *b, void *buf, size_t cap, size_t *n, char *errmsg,
                      size_t errmsg_size);

/* Removes the checkpoint and frees; NULL is a no-op. Any thread. */
void store_backup_end(struct store_backup *b);

/* Creates the store directory dir (which must not exist: CAIRN_EEXIST)
 * from the backup in file, for a new cluster: the applied index goes back
 * to 0 (the new raft log starts at 1) and the old cluster's member records
 * are dropped; objects and revisions stay. The file is checked whole first:
 * CAIRN_ECORRUPT for a truncated or damaged one, CAIRN_EUNSUPPORTED for a
 * newer format. On failure nothing is left. *index and *revision are the
 * backup's. Before the store is opened. */
int store_seed(const char *dir, const char *file, uint64_t *index, uint64_t *revision, char *errmsg,
               size_t errmsg_size);

#endif /* CAIRN_STORE_H */
