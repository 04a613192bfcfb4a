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

/* A request id is remembered for this long, measured in command time (the
 * proposer's clock carried in each command, never the local clock), and
 * each applied entry forgets at most STORE_PRUNE_MAX expired ones so that
 * no single apply does unbounded work. */
#define STORE_REQUEST_TTL_MS (24LL * 60 * 60 * 1000)
#define STORE_PRUNE_MAX      32

/* Column families, in the order they are opened. */
enum store_cf {
    STORE_CF_DEFAULT,       /* unused; RocksDB requires it */
    STORE_CF_META,          /* applied index and revision */
    STORE_CF_OBJECTS,       /* kind + id -> store_value */
    STORE_CF_NAMES,         /* kind + name -> id */
    STORE_CF_REQUESTS,      /* request id -> store_request */
    STORE_CF_REQUEST_TIMES, /* be64(time_ms) + request id -> "" */
    STORE_CF_COUNT
};

/* Keys in "meta"; each value is a big-endian 64-bit integer. */
#define STORE_META_APPLIED  "applied_index"
#define STORE_META_REVISION "revision"

/* One open RocksDB database with the store's column families. */
struct store_db {
    rocksdb_t *db;                                      /* NULL when closed */
    rocksdb_options_t *opts;                            /* db and every column family */
    rocksdb_column_family_handle_t *cf[STORE_CF_COUNT]; /* by enum store_cf */
    rocksdb_writeoptions_t *wopts;                      /* sync off, WAL on */
    rocksdb_readoptions_t *ropts;                       /* plain reads */
    uint64_t applied;                                   /* meta applied index at open */
    uint64_t revision;                                  /* meta revision at open */
};

struct store {
    char *dir;                  /* the directory given to store_open */
    char *db_path;              /* dir/db: the live database */
    char *new_path;             /* dir/db.new: a snapshot being restored */
    char *old_path;             /* dir/db.old: the database a restore replaces */
    char *checkpoint_path;      /* dir/checkpoint-tmp: a snapshot being taken */
    pthread_rwlock_t lock;      /* readers: reads; writer: restore's swap */
    struct store_db db;         /* db.db is NULL if a failed restore lost it */
    _Atomic uint64_t applied;   /* last applied raft index */
    _Atomic uint64_t revision;  /* global revision */
    struct store_result result; /* outcome of the last apply */
    unsigned fail_writes;       /* tests: fail this many next batch writes */
};

/* db.c: the database on disk. */

/* Opens the database at path. With create, a missing database and missing
 * column families are created; without, the database must exist whole. */
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

void store_be64_put(uint64_t v, unsigned char out[8]);
uint64_t store_be64_get(const unsigned char in[8]);

/* "tenant", "member", or NULL for a value that is no kind. */
const char *store_kind_name(uint64_t kind);

/* An "objects" value; strings point into the buffer it was decoded from
 * and are not NUL-terminated. */
struct store_value {
    uint64_t create_rev; /* revision that created the object */
    uint64_t mod_rev;    /* revision that last changed it */
    const char *name;    /* NULL if none */
    size_t name_len;     /* bytes in name */
    const char *body;    /* JSON text */
    size_t body_len;     /* bytes in body */
};

/* Packs v as msgpack {c, m, n, b} into sb. CAIRN_ENOMEM on failure. */
int store_value_encode(const struct store_value *v, msgpack_sbuffer *sb);

/* CAIRN_ECORRUPT if buf is not a value as store_value_encode makes them. */
int store_value_decode(const void *buf, size_t len, struct store_value *v);

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

/* snapshot.c */

/* CRC-32C (Castagnoli) of buf, continuing from crc (0 to start). */
uint32_t store_crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* CAIRN_STORE_INT_H */
