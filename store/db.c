/*
 * The database on disk: opening RocksDB with the store's column families,
 * point reads and the meta keys, and the few directory operations (remove a
 * tree, sync a directory) that crash recovery and snapshot restore need.
 * RocksDB's error strings are translated here into CAIRN_EIO with the
 * RocksDB text in errmsg, and every errptr is freed.
 */
#include "store_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const cf_names[STORE_CF_COUNT] = {
    "default", "meta",     "objects", "names",  "requests", "request_times",
    "scoped",  "children", "counts",  "expiry", "changes",  "audit",
};

/* RocksDB's own info log: a few small files are enough to debug with. */
#define INFO_LOG_FILES 4
#define INFO_LOG_SIZE  (1024 * 1024)

/* Bloom filters for point reads, most of which miss: every apply looks up
 * request ids, names and object keys that do not exist yet. Without a
 * filter a miss searches the memtable's skip list and every SST file it may
 * be in; with one it mostly stops at the filter. Measured with
 * tools/profile-callgrind (docs/benchmarks.md, "Profiles"). Filters change
 * nothing on disk that older builds cannot read. */
#define BLOOM_BITS_PER_KEY   10
#define MEMTABLE_BLOOM_RATIO 0.02

/* All column families' memtables together: a flush frees the largest once
 * they hold this much. Without a bound each of the twelve families may
 * hold 64 MB (RocksDB's default) before a flush, and snapshots no longer
 * flush them every few thousand entries (snapshot_log_mb). */
#define MEMTABLES_MAX ((size_t)128 << 20)

/* Write SST files and the (unsynced) WAL back to disk a megabyte at a
 * time as they are written (sync_file_range), not all at once at a
 * flush's fsync or whenever the kernel gets to it. A memtable flush
 * writes up to 11 MB, on every node at the same moment since they apply
 * the same entries, and the raft log shares the disk; the slowest seconds
 * of a write load were those of the flushes. With this, the p99 of writes
 * through a follower at 64 writers was lower (docs/benchmarks.md,
 * session 11). */
#define WRITEBACK_STEP ((uint64_t)1 << 20)

static void point_lookup_filters(rocksdb_options_t *opts)
{
    rocksdb_block_based_table_options_t *bbto = rocksdb_block_based_options_create();
    /* The table options take the policy; the factory copies the options. */
    rocksdb_block_based_options_set_filter_policy(
        bbto, rocksdb_filterpolicy_create_bloom_full(BLOOM_BITS_PER_KEY));
    rocksdb_options_set_block_based_table_factory(opts, bbto);
    rocksdb_block_based_options_destroy(bbto);
    rocksdb_options_set_memtable_whole_key_filtering(opts, 1);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(opts, MEMTABLE_BLOOM_RATIO);
}

int store_db_open(const char *path, bool create, struct store_db *out, char *errmsg,
                  size_t errmsg_size)
{
    struct store_db db;
    const rocksdb_options_t *cf_opts[STORE_CF_COUNT];
    char *err = NULL;
    int rv;

    memset(&db, 0, sizeof db);
    db.opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(db.opts, create);
    /* Column families added by a newer build are created even when the
     * database itself must exist: a database (or a snapshot) written
     * before they existed lacks them and has nothing to put in them. */
    rocksdb_options_set_create_missing_column_families(db.opts, 1);
    rocksdb_options_set_keep_log_file_num(db.opts, INFO_LOG_FILES);
    rocksdb_options_set_max_log_file_size(db.opts, INFO_LOG_SIZE);
    point_lookup_filters(db.opts);
    rocksdb_options_set_db_write_buffer_size(db.opts, MEMTABLES_MAX);
    rocksdb_options_set_bytes_per_sync(db.opts, WRITEBACK_STEP);
    rocksdb_options_set_wal_bytes_per_sync(db.opts, WRITEBACK_STEP);
    for (int i = 0; i < STORE_CF_COUNT; i++) {
        cf_opts[i] = db.opts;
    }
    db.db =
        rocksdb_open_column_families(db.opts, path, STORE_CF_COUNT, cf_names, cf_opts, db.cf, &err);
    if (err != NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "rocksdb open %s: %s", path, err);
        rocksdb_free(err);
        rv = CAIRN_EIO;
        goto err_after_options;
    }
    db.wopts = rocksdb_writeoptions_create();
    /* Raft's log is the durability point: after a crash the entries since
     * the last flush are applied again, so a synced write here buys nothing
     * but latency. The WAL stays on so that a process crash loses nothing. */
    rocksdb_writeoptions_set_sync(db.wopts, 0);
    db.ropts = rocksdb_readoptions_create();
    rv = store_db_get_meta(&db, NULL, STORE_META_APPLIED, &db.applied, errmsg, errmsg_size);
    if (rv != 0) {
        goto err_after_db_open;
    }
    rv = store_db_get_meta(&db, NULL, STORE_META_REVISION, &db.revision, errmsg, errmsg_size);
    if (rv != 0) {
        goto err_after_db_open;
    }
    *out = db;
    return 0;

err_after_db_open:
    store_db_close(&db);
    goto err;
err_after_options:
    rocksdb_options_destroy(db.opts);
err:
    assert(rv != 0);
    return rv;
}

void store_db_close(struct store_db *db)
{
    if (db->db == NULL) {
        return;
    }
    rocksdb_readoptions_destroy(db->ropts);
    rocksdb_writeoptions_destroy(db->wopts);
    for (int i = 0; i < STORE_CF_COUNT; i++) {
        rocksdb_column_family_handle_destroy(db->cf[i]);
    }
    rocksdb_close(db->db);
    rocksdb_options_destroy(db->opts);
    memset(db, 0, sizeof *db);
}

int store_db_get(const struct store_db *db, const rocksdb_readoptions_t *ro, enum store_cf cf,
                 const void *key, size_t key_len, char **val, size_t *val_len, char *errmsg,
                 size_t errmsg_size)
{
    char *err = NULL;
    size_t len = 0;
    char *v;

    v = rocksdb_get_cf(db->db, ro != NULL ? ro : db->ropts, db->cf[cf], key, key_len, &len, &err);
    if (err != NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "rocksdb get: %s", err);
        rocksdb_free(err);
        return CAIRN_EIO;
    }
    if (v == NULL) {
        return CAIRN_ENOTFOUND;
    }
    *val = v;
    *val_len = len;
    return 0;
}

int store_db_get_meta(const struct store_db *db, const rocksdb_readoptions_t *ro, const char *key,
                      uint64_t *out, char *errmsg, size_t errmsg_size)
{
    char *v;
    size_t len;
    int rv;

    rv = store_db_get(db, ro, STORE_CF_META, key, strlen(key), &v, &len, errmsg, errmsg_size);
    if (rv == CAIRN_ENOTFOUND) {
        *out = 0;
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (len != 8) {
        cairn_errmsg_set(errmsg, errmsg_size, "meta key %s has %zu bytes, expected 8", key, len);
        rocksdb_free(v);
        return CAIRN_ECORRUPT;
    }
    *out = store_be64_get((const unsigned char *)v);
    rocksdb_free(v);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

int store_fs_remove(const char *path, char *errmsg, size_t errmsg_size)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) {
            return 0;
        }
        cairn_errmsg_set(errmsg, errmsg_size, "stat %s: %s", path, strerror(errno));
        return CAIRN_EIO;
    }
    /* FTW_DEPTH removes children before their directory; FTW_PHYS never
     * follows a symbolic link out of the tree. */
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "remove %s: %s", path, strerror(errno));
        return CAIRN_EIO;
    }
    return 0;
}

int store_fs_sync_dir(const char *path, char *errmsg, size_t errmsg_size)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rv = 0;
    if (fd < 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "open %s: %s", path, strerror(errno));
        return CAIRN_EIO;
    }
    if (fsync(fd) != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "fsync %s: %s", path, strerror(errno));
        rv = CAIRN_EIO;
    }
    close(fd);
    return rv;
}

bool store_fs_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}
