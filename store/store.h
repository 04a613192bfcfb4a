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
 *
 * A command is a msgpack map with a type and a version (see
 * store_command_encode); nothing non-deterministic happens in apply: ids,
 * clocks and request ids come from the proposer.
 *
 * Threads: store_apply, store_snapshot_take, store_snapshot_restore are
 * called on one thread at a time (the node's loop thread). Reads (get, list,
 * the index/revision getters) may be called from any thread concurrently,
 * also while a restore replaces the database (they wait for it).
 */
#ifndef CAIRN_STORE_H
#define CAIRN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* Object kinds. The value is the key prefix byte in "objects" and "names";
 * never renumber one. */
enum store_kind {
    STORE_KIND_TENANT = 't',
    STORE_KIND_MEMBER = 'm', /* cluster member: id = node id in decimal */
};

/* Command operations, for every kind. */
enum store_op {
    STORE_OP_CREATE = 1, /* fails with CAIRN_EEXIST if the id or name exists */
    STORE_OP_UPDATE,     /* fails with CAIRN_ENOTFOUND; replaces name and body */
    STORE_OP_DELETE,     /* fails with CAIRN_ENOTFOUND */
    STORE_OP_PUT,        /* create or replace (used for members) */
};

/* The newest command version this build understands, per operation. */
#define STORE_COMMAND_VERSION 1

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
 * *result points into the store and stays valid until the next apply.
 * Returns non-zero only for a storage failure (errmsg says which), after
 * which the node must stop. */
int store_apply(struct store *s, uint64_t index, const void *buf, size_t len,
                const struct store_result **result, char *errmsg, size_t errmsg_size);

/* Highest applied raft index and the global revision; any thread. */
uint64_t store_applied_index(struct store *s);
uint64_t store_revision(struct store *s);

/* One object as read. Free with store_object_release. */
struct store_object {
    enum store_kind kind;
    char *id;
    char *name; /* NULL if the object has none */
    char *body; /* JSON text, NUL-terminated */
    size_t body_len;
    uint64_t create_rev; /* revision that created it */
    uint64_t mod_rev;    /* revision that last changed it: its ETag */
};

void store_object_release(struct store_object *o);

/* Reads one object. CAIRN_ENOTFOUND if absent. Any thread. */
int store_object_get(struct store *s, enum store_kind kind, const char *id,
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

/* Takes a snapshot: a RocksDB checkpoint of the state at the current
 * applied index, packed into one malloc'ed buffer. Loop thread. */
int store_snapshot_take(struct store *s, void **out, size_t *out_len, char *errmsg,
                        size_t errmsg_size);

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

#endif /* CAIRN_STORE_H */
