/*
 * Internals shared by the store's files: the struct behind struct store, the
 * RocksDB handle and its column families, key encodings, the formats of the
 * stored records, and a bounded msgpack reader. Nothing outside store/ may
 * include this header except the store's unit tests, which check the
 * encodings and look inside the database.
 */
#ifndef CAIRN_STORE_INT_H
#define CAIRN_STORE_INT_H

#include <msgpack.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>

#include "cairn.h"
#include "store.h"

/* Limits of command fields, in bytes (see struct store_command). */
#define STORE_ID_MAX         128
#define STORE_NAME_MAX       128
#define STORE_REQUEST_ID_MAX 256
#define STORE_BODY_MAX       (4u * 1024u * 1024u)
#define STORE_CALLER_MAX     128
#define STORE_AUDIT_MSG_MAX  512 /* audit_message */

/* A request id is remembered for this long, measured in command time (the
 * proposer's clock carried in each command, never the local clock), and
 * each applied entry forgets at most STORE_PRUNE_MAX expired ones so that
 * no single apply does unbounded work. */
#define STORE_REQUEST_TTL_MS (24LL * 60 * 60 * 1000)
#define STORE_PRUNE_MAX      32

/* The most objects one delete (the object and its descendants) or one
 * apply's expiry pruning may remove: a bigger cascade is refused with
 * CAIRN_ETOOBIG rather than built into one huge WriteBatch. */
#define STORE_CASCADE_MAX 100000

/* Audit records kept (the newest), and how many records one audit query
 * examines at most before it returns what it found. */
#define STORE_AUDIT_KEPT     1000000
#define STORE_AUDIT_SCAN_MAX 100000

/* Change-log and audit records an entry removes at most, per command in it,
 * once they fall out of what is kept; each command adds about one, so
 * pruning keeps up. */
#define STORE_LOG_PRUNE_MAX 64

/* Column families, in the order they are opened. */
enum store_cf {
    STORE_CF_DEFAULT,       /* unused; RocksDB requires it */
    STORE_CF_META,          /* applied index and revision */
    STORE_CF_OBJECTS,       /* kind + id -> store_value */
    STORE_CF_NAMES,         /* kind + name -> id */
    STORE_CF_REQUESTS,      /* request id -> store_request */
    STORE_CF_REQUEST_TIMES, /* be64(time_ms) + request id -> "" */
    STORE_CF_SCOPED,        /* kind + tenant + 0 + id -> "" */
    STORE_CF_CHILDREN,      /* parent kind + parent id + 0 + kind + id -> "" */
    STORE_CF_COUNTS,        /* tenant + 0 + kind -> be64(objects) */
    STORE_CF_EXPIRY,        /* be64(expires_ms) + kind + id -> "" */
    STORE_CF_CHANGES,       /* be64(revision) + be32(sequence) -> change record */
    STORE_CF_AUDIT,         /* be64(seq) -> audit record */
    STORE_CF_COUNT
};

/* Keys in "meta"; each value is a big-endian 64-bit integer. */
#define STORE_META_APPLIED   "applied_index"
#define STORE_META_REVISION  "revision"
#define STORE_META_AUDIT_SEQ "audit_seq" /* seq of the newest audit record */
/* The oldest revision whose change records are all in "changes"; absent
 * until the first apply that writes the change log (then the revision
 * before it + 1: older revisions were never logged). */
#define STORE_META_CHANGES_FLOOR "changes_floor"

/* One open RocksDB database with the store's column families. */
/* What apply knows of the smallest key of a column family it prunes
 * (apply_prune.c): a lower bound of the keys the database holds once the
 * entry being applied is written. Deletes keep it a lower bound; a put
 * below it lowers it (store_apply_put). Pruning skips a scan that could
 * find nothing and starts the others there instead of at the first key,
 * past the tombstones of what it deleted before. In memory only: a fresh
 * database (open, snapshot restore) starts without one. */
#define STORE_PRUNE_HINT_KEY (8 + 2 * STORE_ID_MAX)
struct store_prune_hint {
    bool known; /* low/empty mean something */
    bool empty; /* no key at all */
    size_t len; /* of low */
    char low[STORE_PRUNE_HINT_KEY];
};

/* A meta value apply reads on every entry (the audit sequence, the change
 * log's floor), as the database holds it once the entry being applied is
 * written: meta_put sets it, so only the first read after an open or a
 * restore goes to RocksDB. */
enum store_meta_cached {
    STORE_META_CACHED_AUDIT_SEQ,
    STORE_META_CACHED_FLOOR,
    STORE_META_CACHED_N
};
struct store_meta_value {
    bool known; /* found and value mean something */
    bool found; /* the key exists */
    uint64_t value;
};

struct store_db {
    rocksdb_t *db;                                      /* NULL when closed */
    rocksdb_options_t *opts;                            /* db and every column family */
    rocksdb_column_family_handle_t *cf[STORE_CF_COUNT]; /* by enum store_cf */
    rocksdb_writeoptions_t *wopts;                      /* sync off, WAL on */
    rocksdb_readoptions_t *ropts;                       /* plain reads */
    uint64_t applied;                                   /* meta applied index at open */
    uint64_t revision;                                  /* meta revision at open */
    struct store_prune_hint hint[STORE_CF_COUNT];       /* pruned families only */
    struct store_meta_value meta[STORE_META_CACHED_N];  /* see store_meta_value */
};

struct store {
    char *dir;                                    /* the directory given to store_open */
    char *db_path;                                /* dir/db: the live database */
    char *new_path;                               /* dir/db.new: a snapshot being restored */
    char *old_path;                               /* dir/db.old: the database a restore replaces */
    char *checkpoint_path;                        /* dir/checkpoint-tmp: a snapshot being taken */
    pthread_rwlock_t lock;                        /* readers: reads; writer: restore's swap */
    struct store_db db;                           /* db.db is NULL if a failed restore lost it */
    _Atomic uint64_t applied;                     /* last applied raft index */
    _Atomic uint64_t revision;                    /* global revision */
    _Atomic uint64_t auth_generation;             /* moves after a session or user changed */
    _Atomic uint64_t member_generation;           /* moves after a member record changed */
    _Atomic uint64_t system_generation;           /* moves after a system object changed */
    struct store_result results[STORE_BATCH_MAX]; /* outcomes of the last apply */
    unsigned fail_writes;                         /* tests: fail this many next batch writes */
    /* Bounds, set by store_open to the STORE_* defaults; tests lower them. */
    uint64_t changes_kept;    /* revisions kept in the change log */
    uint64_t audit_kept;      /* audit records kept */
    size_t cascade_max;       /* objects one delete may remove */
    size_t audit_scan_max;    /* records one audit query examines */
    unsigned version_max;     /* newest command version applied (store_command_version_max) */
    _Atomic uint64_t backups; /* backups begun: names each one's checkpoint */
};

/* Backups' checkpoints are dir/backup-N; store_open removes leftovers. */
#define STORE_BACKUP_PREFIX "backup-"

/* db.c: the database on disk. */

/* Opens the database at path. With create, a missing database is created;
 * without, it must exist. Missing column families are always created. */
int store_db_open(const char *path, bool create, struct store_db *out, char *errmsg,
                  size_t errmsg_size);
void store_db_close(struct store_db *db);

/* Reads key in column family cf. Returns 0 and a value to free with
 * rocksdb_free, CAIRN_ENOTFOUND, or CAIRN_EIO ("rocksdb get: ..."). ro may
 * be NULL for the plain read options. */
int store_db_get(const struct store_db *db, const rocksdb_readoptions_t *ro, enum store_cf cf,
                 const void *key, size_t key_len, char **val, size_t *val_len, char *errmsg,
                 size_t errmsg_size);

/* Reads a big-endian 64-bit integer from "meta"; 0 if absent. */
int store_db_get_meta(const struct store_db *db, const rocksdb_readoptions_t *ro, const char *key,
                      uint64_t *out, char *errmsg, size_t errmsg_size);

/* Removes path and everything under it; a missing path is not an error. */
int store_fs_remove(const char *path, char *errmsg, size_t errmsg_size);

/* Flushes a directory's entries (after a rename or file creation). */
int store_fs_sync_dir(const char *path, char *errmsg, size_t errmsg_size);

bool store_fs_exists(const char *path);

/* record.c: keys and stored values. */

/* Writes an "objects" key (kind byte + id) into out, which must hold
 * 1 + id_len bytes; returns its length. All keys of one kind sort together,
 * in id order, between the bounds store_key_range gives. */
size_t store_key_object(enum store_kind kind, const char *id, size_t id_len, char *out);

/* The same for a "names" key (kind byte + name). */
size_t store_key_name(enum store_kind kind, const char *name, size_t name_len, char *out);

/* Every key of kind is >= lo and < hi (one byte each): the kind byte and
 * the next byte value. */
void store_key_range(enum store_kind kind, char *lo, char *hi);

/* Writes a "request_times" key (big-endian time + request id) into out,
 * which must hold 8 + rid_len bytes; returns its length. time_ms >= 0. */
size_t store_key_request_time(int64_t time_ms, const char *rid, size_t rid_len, char *out);

/* Index keys. Each "prefix" function writes the part shared by one group
 * (one kind in one tenant, one parent's children, ...), so that a group is
 * one range scan; ids and tenants never contain a NUL byte, so the 0 after
 * a variable-length part keeps "a" and "ab" apart. Every function returns
 * the key's length; out must hold the *_MAX bytes given. */
#define STORE_KEY_SCOPED_MAX (1 + STORE_ID_MAX + 1 + STORE_ID_MAX)
#define STORE_KEY_CHILD_MAX  (1 + STORE_ID_MAX + 1 + 1 + STORE_ID_MAX)
#define STORE_KEY_COUNT_MAX  (STORE_ID_MAX + 1 + 1)
#define STORE_KEY_EXPIRY_MAX (8 + 1 + STORE_ID_MAX)
#define STORE_KEY_CHANGE_LEN 12
#define STORE_KEY_AUDIT_LEN  8

/* "scoped": kind + tenant + 0, then the id. */
size_t store_key_scoped_prefix(enum store_kind kind, const char *tenant, size_t tenant_len,
                               char *out);
size_t store_key_scoped(enum store_kind kind, const char *tenant, size_t tenant_len, const char *id,
                        size_t id_len, char *out);

/* "children": parent kind + parent id + 0, then the child's kind and id. */
size_t store_key_children_prefix(enum store_kind parent_kind, const char *parent_id,
                                 size_t parent_id_len, char *out);
size_t store_key_child(enum store_kind parent_kind, const char *parent_id, size_t parent_id_len,
                       enum store_kind kind, const char *id, size_t id_len, char *out);

/* "counts": tenant + 0 + kind. */
size_t store_key_count(const char *tenant, size_t tenant_len, enum store_kind kind, char *out);

/* "expiry": be64(expires_ms) + kind + id; expires_ms > 0. */
size_t store_key_expiry(int64_t expires_ms, enum store_kind kind, const char *id, size_t id_len,
                        char *out);

/* "changes": be64(revision) + be32(sequence within the revision). */
size_t store_key_change(uint64_t revision, uint32_t seq, char *out);

/* "audit": be64(seq). */
size_t store_key_audit(uint64_t seq, char *out);

void store_be64_put(uint64_t v, unsigned char out[8]);
uint64_t store_be64_get(const unsigned char in[8]);

/* "tenant", "member", ... or NULL for a value that is no kind. */
const char *store_kind_name(uint64_t kind);

/* An "objects" value; strings point into the buffer it was decoded from
 * and are not NUL-terminated. */
struct store_value {
    uint64_t create_rev;                         /* revision that created the object */
    uint64_t mod_rev;                            /* revision that last changed it */
    const char *name;                            /* NULL if none */
    size_t name_len;                             /* bytes in name */
    const char *body;                            /* JSON text */
    size_t body_len;                             /* bytes in body */
    const char *tenant;                          /* scope, or NULL */
    size_t tenant_len;                           /* bytes in tenant */
    enum store_kind parent_kind;                 /* 0 if no parent */
    const char *parent_id;                       /* NULL if no parent */
    size_t parent_id_len;                        /* bytes in parent_id */
    int64_t expires_ms;                          /* 0: never */
    struct store_limit limits[STORE_MAX_LIMITS]; /* tenants' quotas */
    size_t n_limits;
};

/* Packs v as msgpack {c, m, n, b} plus, when set, {t, pk, pi, x, l} into
 * sb. CAIRN_ENOMEM on failure. Values written before version 2 are the
 * map of four; both decode. */
int store_value_encode(const struct store_value *v, msgpack_sbuffer *sb);

/* CAIRN_ECORRUPT if buf is not a value as store_value_encode makes them. */
int store_value_decode(const void *buf, size_t len, struct store_value *v);

/* True if v has expired at time now (0 < expires_ms <= now). */
bool store_value_expired(const struct store_value *v, int64_t now);

/* A "changes" value: one object after one change, or the deletion of one
 * (then the value carries only tenant and parent). */
struct store_change_rec {
    enum store_kind kind;
    const char *id; /* not NUL-terminated */
    size_t id_len;
    bool deleted;
    const void *value; /* a store_value, as store_value_encode made it */
    size_t value_len;
};

int store_change_encode(const struct store_change_rec *c, msgpack_sbuffer *sb);
int store_change_decode(const void *buf, size_t len, struct store_change_rec *c);

/* An "audit" value; strings point into the buffer (NULL if absent) and are
 * not NUL-terminated. */
struct store_audit_rec {
    int64_t time_ms;
    const char *caller;
    size_t caller_len;
    const char *tenant;
    size_t tenant_len;
    enum store_op op;
    enum store_kind kind;
    const char *id;
    size_t id_len;
    int status;
    const char *message;
    size_t message_len;
    uint64_t revision;
};

int store_audit_encode(const struct store_audit_rec *r, msgpack_sbuffer *sb);
int store_audit_decode(const void *buf, size_t len, struct store_audit_rec *r);

/* A "requests" value: the first outcome of a command with a request id. */
struct store_request {
    int64_t time_ms;      /* command time of that first command */
    uint64_t fingerprint; /* its fingerprint */
    const void *result;   /* its result, as store_result_encode made it */
    size_t result_len;    /* bytes in result */
};

int store_request_encode(const struct store_request *r, msgpack_sbuffer *sb);
int store_request_decode(const void *buf, size_t len, struct store_request *r);

/* mp.c: bounded msgpack reading. Every function returns 0 or
 * CAIRN_EMALFORMED (wrong type, or fewer bytes than the value needs); on
 * failure the reader's position is unspecified. */

struct store_mp {
    const unsigned char *p; /* next byte */
    size_t left;            /* bytes from p to the end of the buffer */
};

enum store_mp_type {
    STORE_MP_END, /* no bytes left */
    STORE_MP_NIL,
    STORE_MP_BOOL,
    STORE_MP_INT, /* any integer format */
    STORE_MP_STR,
    STORE_MP_BIN,
    STORE_MP_ARRAY,
    STORE_MP_MAP,
    STORE_MP_OTHER /* float, ext, or the unused byte 0xc1 */
};

void store_mp_init(struct store_mp *r, const void *buf, size_t len);
enum store_mp_type store_mp_peek(const struct store_mp *r);
int store_mp_map(struct store_mp *r, uint32_t *n);
int store_mp_array(struct store_mp *r, uint32_t *n);
int store_mp_str(struct store_mp *r, const char **s, size_t *len);
int store_mp_bin(struct store_mp *r, const void **b, size_t *len);
int store_mp_uint(struct store_mp *r, uint64_t *v); /* rejects negative values */
int store_mp_int(struct store_mp *r, int64_t *v);   /* rejects values above INT64_MAX */
int store_mp_bool(struct store_mp *r, bool *v);
int store_mp_nil(struct store_mp *r);
int store_mp_skip(struct store_mp *r); /* any one value, nesting at most 32 deep */

/* Packs a map key (a short msgpack string). Non-zero if out of memory. */
int store_mp_pack_key(msgpack_packer *pk, const char *key);

/* Reads one map key and returns its index in keys[0..n), or n if it is not
 * one of them. */
int store_mp_key(struct store_mp *r, const char *const *keys, size_t n, size_t *index);

/* read.c: building objects for readers. */

/* A malloc'ed NUL-terminated copy of len bytes, or NULL. */
char *store_strndup(const char *s, size_t len);

/* Builds an object from its kind, id and decoded value, copying every
 * string. CAIRN_ENOMEM on failure (out untouched). */
int store_object_from_value(enum store_kind kind, const char *id, size_t id_len,
                            const struct store_value *v, struct store_object *out);

/* Takes the read lock; CAIRN_EIO if a failed restore left no database. */
int store_read_lock(struct store *s);

/* A RocksDB snapshot with read options reading from it, for one
 * consistent multi-key read; taken and released under the read lock. */
struct store_read {
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro;
};
void store_read_begin(struct store *s, struct store_read *r);
void store_read_end(struct store *s, struct store_read *r);

/* apply.c, apply_object.c, apply_prune.c: one apply in progress. Every
 * read during an apply goes through the WriteBatchWithIndex, so that it
 * sees what the same entry wrote before (an expired object pruned, a count
 * already moved, a child already deleted). */
struct store_apply {
    struct store *s;
    rocksdb_writebatch_wi_t *wb;          /* everything this entry changes */
    const struct store_command *cmd;      /* the decoded command */
    const char *kind;                     /* its kind's name, for messages */
    uint64_t revision;                    /* global revision; one more once anything changed */
    bool changed;                         /* the revision was bumped for this command */
    bool auth_changed;                    /* a session or user changed (auth_generation) */
    bool members_changed;                 /* a member record changed (member_generation) */
    bool system_changed;                  /* a system object changed (system_generation) */
    uint32_t changes;                     /* change records written at this revision */
    size_t pruned;                        /* objects removed by expiry pruning this entry */
    char scope[STORE_ID_MAX + 1];         /* the object's tenant, for the audit */
    bool meta_dirty[STORE_META_CACHED_N]; /* cached meta values put once, at the entry's end */
    struct store_result *res;             /* what the proposer is told */
    char *errmsg;                         /* storage failures */
    size_t errmsg_size;
};

/* An object as stored, read during an apply. */
struct store_loaded {
    char *raw;              /* the RocksDB value, freed with rocksdb_free */
    struct store_value val; /* decoded, pointing into raw */
};

void store_apply_fail(struct store_apply *a, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void store_apply_put(struct store_apply *a, enum store_cf cf, const void *key, size_t key_len,
                     const void *val, size_t val_len);
void store_apply_del(struct store_apply *a, enum store_cf cf, const void *key, size_t key_len);
/* Reads through the batch: 0 (free *val with rocksdb_free), ENOTFOUND, or
 * CAIRN_EIO (errmsg set). */
int store_apply_get(struct store_apply *a, enum store_cf cf, const void *key, size_t key_len,
                    char **val, size_t *val_len);
/* An iterator over cf as it will be after the batch; no write to the batch
 * may happen while it lives. Destroy with rocksdb_iter_destroy. */
rocksdb_iterator_t *store_apply_iter(struct store_apply *a, enum store_cf cf);
/* CAIRN_EIO (errmsg set) if the iterator failed. */
int store_apply_iter_check(struct store_apply *a, rocksdb_iterator_t *it);
/* The revision this entry's changes carry: the first call bumps the global
 * revision by one, later calls return the same (one revision per entry). */
uint64_t store_apply_revision(struct store_apply *a);
/* Appends a change record at this entry's revision (bumping it). */
int store_apply_change(struct store_apply *a, enum store_kind kind, const char *id, size_t id_len,
                       bool deleted, const void *value, size_t value_len);

/* A "meta" integer through the batch (*found false and 0 if absent), and
 * writing one. */
int store_apply_meta_get(struct store_apply *a, const char *key, uint64_t *v, bool *found);
void store_apply_meta_put(struct store_apply *a, const char *key, uint64_t v);

/* Loads an object: 0, CAIRN_ENOTFOUND, or a storage failure (errmsg). */
int store_apply_load(struct store_apply *a, enum store_kind kind, const char *id, size_t id_len,
                     struct store_loaded *o);
void store_apply_unload(struct store_loaded *o);

/* Removes an object and every descendant (children first), each with its
 * names, indexes, counts and change record. At most max objects: with more,
 * nothing is written and *too_many is set. */
int store_apply_remove_tree(struct store_apply *a, enum store_kind kind, const char *id,
                            size_t id_len, size_t max, bool *too_many, size_t *removed);

/* Runs a CREATE, UPDATE, DELETE or PUT; the outcome goes into a->res. */
int store_apply_op(struct store_apply *a);

/* Pruning, each bounded: request ids past their time, expired objects,
 * change-log records out of the kept window, the oldest audit records. */
int store_apply_prune_requests(struct store_apply *a);
/* A key put into a column family lowers its prune hint (apply_prune.c). */
void store_prune_hint_put(struct store_prune_hint *h, const void *key, size_t len);
int store_apply_prune_expired(struct store_apply *a);
/* Once per entry of n commands, after them; revision_before is the
 * revision before the entry. */
int store_apply_prune_changes(struct store_apply *a, uint64_t revision_before, size_t n);
int store_apply_prune_audit(struct store_apply *a, size_t n);

/* snapshot.c */

/* CRC-32C (Castagnoli) of buf, continuing from crc (0 to start). */
uint32_t store_crc32c(uint32_t crc, const void *buf, size_t len);
/* The same by table only (tests compare it with the CPU instruction). */
uint32_t store_crc32c_table(uint32_t crc, const void *buf, size_t len);

/* The packed form's fixed parts (see snapshot.c's header comment). */
#define STORE_SNAP_HEADER  (8 + 4 + 8 + 8 + 4)
#define STORE_SNAP_TRAILER 4

/* What a packed snapshot's header says. */
struct store_snap_header {
    uint64_t index;    /* applied index */
    uint64_t revision; /* global revision */
    uint32_t files;    /* files that follow */
};

/* Checks a whole packed snapshot: header (CAIRN_EUNSUPPORTED for a newer
 * format), checksum and every file's bounds (CAIRN_ECORRUPT). */
int store_snapshot_validate(const void *buf, size_t len, struct store_snap_header *h, char *errmsg,
                            size_t errmsg_size);

/* Unpacks a validated snapshot into the new directory path and checks that
 * the database there opens at the header's index and revision. */
int store_snapshot_unpack(const char *path, const void *buf, size_t len,
                          const struct store_snap_header *h, char *errmsg, size_t errmsg_size);

#endif /* CAIRN_STORE_INT_H */
