/*
 * Restoring a backup into a new cluster (cairnd --restore): the file is
 * checked whole (store_snapshot_validate), unpacked beside its final place
 * (store_snapshot_unpack), reset for a new raft log (seed_reset) and
 * renamed into place last, so that a failure or a crash leaves no store
 * behind (store_open removes a lone db.new). Why the applied index goes
 * back to 0, and how nodes that join later get the state: docs/backup.md.
 */
#include "store_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEED_MIN_SIZE (STORE_SNAP_HEADER + STORE_SNAP_TRAILER)

/* Makes the unpacked backup at path the state of a new cluster: its raft
 * log starts again at index 1, so the applied index goes back to 0, and the
 * old cluster's member records (the API addresses of its nodes) go, since
 * the new cluster has its own; objects, revisions, indexes, the change log,
 * the audit log and the request ids stay. Written with sync. */
static int seed_reset(const char *path, char *errmsg, size_t errmsg_size)
{
    struct store_db db;
    rocksdb_writebatch_t *wb;
    rocksdb_writeoptions_t *wo;
    rocksdb_iterator_t *it;
    char lo[1], hi[1];
    char *err = NULL;
    size_t members = 0;
    int rv;

    rv = store_db_open(path, false, &db, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    wb = rocksdb_writebatch_create();
    wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_writebatch_delete_cf(wb, db.cf[STORE_CF_META], STORE_META_APPLIED,
                                 strlen(STORE_META_APPLIED));
    store_key_range(STORE_KIND_MEMBER, lo, hi);
    it = rocksdb_create_iterator_cf(db.db, db.ropts, db.cf[STORE_CF_OBJECTS]);
    for (rocksdb_iter_seek(it, lo, 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const char *key = rocksdb_iter_key(it, &klen);
        if (klen == 0 || key[0] != lo[0]) {
            break;
        }
        rocksdb_writebatch_delete_cf(wb, db.cf[STORE_CF_OBJECTS], key, klen);
        members++;
    }
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    if (err == NULL) {
        rocksdb_write(db.db, wo, wb, &err);
    }
    if (err != NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "reset %s: %s", path, err);
        rocksdb_free(err);
        rv = CAIRN_EIO;
    } else {
        CAIRN_INFO("msg=\"restore: applied index reset, member records dropped\" members=%zu",
                   members);
    }
    rocksdb_writeoptions_destroy(wo);
    rocksdb_writebatch_destroy(wb);
    store_db_close(&db);
    return rv;
}

/* Maps a backup file and checks it whole. */
static int backup_map(const char *file, void **map, size_t *len, struct store_snap_header *h,
                      char *errmsg, size_t errmsg_size)
{
    struct stat st;
    void *p;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    int rv;

    if (fd < 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "open %s: %s", file, strerror(errno));
        return CAIRN_EINVAL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < SEED_MIN_SIZE) {
        cairn_errmsg_set(errmsg, errmsg_size, "%s: not a Cairn backup (too short)", file);
        close(fd);
        return CAIRN_ECORRUPT;
    }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        cairn_errmsg_set(errmsg, errmsg_size, "mmap %s: %s", file, strerror(errno));
        return CAIRN_EIO;
    }
    rv = store_snapshot_validate(p, (size_t)st.st_size, h, errmsg, errmsg_size);
    if (rv != 0) {
        munmap(p, (size_t)st.st_size);
        cairn_errmsg_wrap(errmsg, errmsg_size, "%s", file);
        return rv;
    }
    *map = p;
    *len = (size_t)st.st_size;
    return 0;
}

int store_seed(const char *dir, const char *file, uint64_t *index, uint64_t *revision, char *errmsg,
               size_t errmsg_size)
{
    struct store_snap_header h;
    char new_path[4200], db_path[4200];
    char msg[CAIRN_ERRMSG_SIZE];
    void *map;
    size_t len;
    int rv;

    rv = backup_map(file, &map, &len, &h, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    snprintf(new_path, sizeof new_path, "%s/db.new", dir);
    snprintf(db_path, sizeof db_path, "%s/db", dir);
    if (mkdir(dir, 0755) != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "mkdir %s: %s", dir, strerror(errno));
        rv = errno == EEXIST ? CAIRN_EEXIST : CAIRN_EIO;
        goto err_after_map;
    }
    /* A crash before the rename leaves db.new alone, which store_open
     * removes: a half-written restore never opens as a store. */
    rv = store_snapshot_unpack(new_path, map, len, &h, errmsg, errmsg_size);
    if (rv == 0) {
        rv = seed_reset(new_path, errmsg, errmsg_size);
    }
    if (rv == 0 && rename(new_path, db_path) != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "rename %s: %s", new_path, strerror(errno));
        rv = CAIRN_EIO;
    }
    if (rv == 0) {
        rv = store_fs_sync_dir(dir, errmsg, errmsg_size);
    }
    if (rv != 0) {
        store_fs_remove(dir, msg, sizeof msg);
        goto err_after_map;
    }
    munmap(map, len);
    *index = h.index;
    *revision = h.revision;
    return 0;

err_after_map:
    munmap(map, len);
    assert(rv != 0);
    return rv;
}
