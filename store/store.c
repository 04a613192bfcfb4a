/*
 * Opening and closing a store: the directory layout, recovery from a crash
 * in the middle of a snapshot restore, the reader/writer lock that lets a
 * restore swap the database under concurrent readers, and the lock-free
 * applied index and revision.
 *
 * Layout of the store's directory:
 *   db/              the live RocksDB database
 *   db.new/          a snapshot being restored (only during a restore)
 *   db.old/          the database a restore replaces (only during a restore)
 *   checkpoint-tmp/  a snapshot being taken (only during a take)
 *   backup-N/        the checkpoint of a backup being streamed
 */
#include "store_int.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *path_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(len);
    if (p != NULL) {
        snprintf(p, len, "%s/%s", dir, name);
    }
    return p;
}

static void paths_free(struct store *s)
{
    free(s->checkpoint_path);
    free(s->old_path);
    free(s->new_path);
    free(s->db_path);
    free(s->dir);
}

static int paths_init(struct store *s, const char *dir)
{
    s->dir = strdup(dir);
    s->db_path = path_join(dir, "db");
    s->new_path = path_join(dir, "db.new");
    s->old_path = path_join(dir, "db.old");
    s->checkpoint_path = path_join(dir, "checkpoint-tmp");
    if (s->dir == NULL || s->db_path == NULL || s->new_path == NULL || s->old_path == NULL ||
        s->checkpoint_path == NULL) {
        paths_free(s);
        return CAIRN_ENOMEM;
    }
    return 0;
}

/* True if the database at path opens whole (without creating anything). */
static bool db_opens(const char *path)
{
    struct store_db db;
    char msg[CAIRN_ERRMSG_SIZE];
    if (store_db_open(path, false, &db, msg, sizeof msg) != 0) {
        CAIRN_WARN("msg=\"store: leftover database does not open\" path=%s error=\"%s\"", path,
                   msg);
        return false;
    }
    store_db_close(&db);
    return true;
}

static int rename_synced(const struct store *s, const char *from, const char *to, char *errmsg,
                         size_t errmsg_size)
{
    if (rename(from, to) != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "rename %s to %s: %s", from, to, strerror(errno));
        return CAIRN_EIO;
    }
    return store_fs_sync_dir(s->dir, errmsg, errmsg_size);
}

/*
 * Finishes or undoes a snapshot restore that a crash interrupted.
 *
 * store_snapshot_restore (snapshot.c) replaces the database in five steps,
 * syncing the directory after each rename:
 *   1. unpack the snapshot into db.new and sync every file and db.new;
 *   2. open db.new to check that it reads, and close it;
 *   3. rename db -> db.old;
 *   4. rename db.new -> db;
 *   5. remove db.old.
 * Which directories exist tells where a crash struck:
 *   - db exists: before step 3 it is the old database and db.new may be
 *     partial; after step 4 it is the new one and db.old is garbage. Either
 *     way db is whole: remove db.new and db.old.
 *   - db is missing and db.old exists: the crash came between steps 3 and
 *     4. Step 3 only runs once db.new was complete, synced and verified, so
 *     promote db.new (step 4) and remove db.old. If db.new is missing or
 *     does not open (possible only if the disk reordered or lost synced
 *     writes), put db.old back instead: an older state is safe, since raft
 *     sends the snapshot again or replays its log over it.
 *   - neither db nor db.old exists: a new store, or one whose db was
 *     removed by hand; a db.new alone cannot be trusted complete (it was
 *     never promoted past step 3), so remove it and start empty.
 */
static int recover(struct store *s, char *errmsg, size_t errmsg_size)
{
    int rv;
    if (store_fs_exists(s->db_path)) {
        rv = store_fs_remove(s->new_path, errmsg, errmsg_size);
        if (rv == 0) {
            rv = store_fs_remove(s->old_path, errmsg, errmsg_size);
        }
        return rv;
    }
    if (!store_fs_exists(s->old_path)) {
        return store_fs_remove(s->new_path, errmsg, errmsg_size);
    }
    if (store_fs_exists(s->new_path) && db_opens(s->new_path)) {
        CAIRN_WARN("msg=\"store: finishing an interrupted snapshot restore\" dir=%s", s->dir);
        rv = rename_synced(s, s->new_path, s->db_path, errmsg, errmsg_size);
        if (rv == 0) {
            rv = store_fs_remove(s->old_path, errmsg, errmsg_size);
        }
        return rv;
    }
    CAIRN_WARN("msg=\"store: undoing an interrupted snapshot restore\" dir=%s", s->dir);
    rv = store_fs_remove(s->new_path, errmsg, errmsg_size);
    if (rv == 0) {
        rv = rename_synced(s, s->old_path, s->db_path, errmsg, errmsg_size);
    }
    return rv;
}

/* Removes the checkpoints of backups a stop or crash interrupted. */
static int backups_remove(struct store *s, char *errmsg, size_t errmsg_size)
{
    DIR *d = opendir(s->dir);
    struct dirent *e;
    int rv = 0;
    if (d == NULL) {
        return 0;
    }
    while (rv == 0 && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, STORE_BACKUP_PREFIX, strlen(STORE_BACKUP_PREFIX)) == 0) {
            char *path = path_join(s->dir, e->d_name);
            rv = path == NULL ? CAIRN_ENOMEM : store_fs_remove(path, errmsg, errmsg_size);
            free(path);
        }
    }
    closedir(d);
    return rv;
}

static int lock_init(pthread_rwlock_t *lock)
{
    pthread_rwlockattr_t attr;
    int rv;
    if (pthread_rwlockattr_init(&attr) != 0) {
        return CAIRN_ENOMEM;
    }
    /* Readers loop on other threads; without writer preference a restore
     * could wait for a gap between them forever. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    rv = pthread_rwlock_init(lock, &attr) != 0 ? CAIRN_ENOMEM : 0;
    pthread_rwlockattr_destroy(&attr);
    return rv;
}

int store_open(const char *dir, struct store **out, char *errmsg, size_t errmsg_size)
{
    struct store *s;
    int rv;

    s = calloc(1, sizeof *s);
    if (s == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "open store %s: out of memory", dir);
        rv = CAIRN_ENOMEM;
        goto err;
    }
    atomic_init(&s->auth_generation, 1);   /* 0 marks an empty cache slot */
    atomic_init(&s->system_generation, 1); /* 0: never read (liveness.c) */
    rv = paths_init(s, dir);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "open store %s: out of memory", dir);
        goto err_after_alloc;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        cairn_errmsg_set(errmsg, errmsg_size, "open store: mkdir %s: %s", dir, strerror(errno));
        rv = CAIRN_EIO;
        goto err_after_paths;
    }
    rv = recover(s, errmsg, errmsg_size);
    if (rv == 0) {
        rv = backups_remove(s, errmsg, errmsg_size);
    }
    if (rv != 0) {
        cairn_errmsg_wrap(errmsg, errmsg_size, "open store %s: recover from a restore", dir);
        goto err_after_paths;
    }
    rv = lock_init(&s->lock);
    if (rv != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "open store %s: init lock", dir);
        goto err_after_paths;
    }
    rv = store_db_open(s->db_path, true, &s->db, errmsg, errmsg_size);
    if (rv != 0) {
        cairn_errmsg_wrap(errmsg, errmsg_size, "open store %s", dir);
        goto err_after_lock;
    }
    s->changes_kept = STORE_CHANGES_KEPT;
    s->audit_kept = STORE_AUDIT_KEPT;
    s->cascade_max = STORE_CASCADE_MAX;
    s->audit_scan_max = STORE_AUDIT_SCAN_MAX;
    s->version_max = STORE_COMMAND_VERSION;
    atomic_init(&s->applied, s->db.applied);
    atomic_init(&s->revision, s->db.revision);
    *out = s;
    return 0;

err_after_lock:
    pthread_rwlock_destroy(&s->lock);
err_after_paths:
    paths_free(s);
err_after_alloc:
    free(s);
err:
    assert(rv != 0);
    return rv;
}

void store_destroy(struct store *s)
{
    if (s == NULL) {
        return;
    }
    store_db_close(&s->db);
    pthread_rwlock_destroy(&s->lock);
    paths_free(s);
    free(s);
}

uint64_t store_applied_index(struct store *s)
{
    return atomic_load(&s->applied);
}

int store_command_version_limit(struct store *s, unsigned max)
{
    if (max < 1 || max > STORE_COMMAND_VERSION) {
        return CAIRN_EINVAL;
    }
    s->version_max = max;
    return 0;
}

unsigned store_command_version_max(struct store *s)
{
    return s->version_max;
}

uint64_t store_revision(struct store *s)
{
    return atomic_load(&s->revision);
}

uint64_t store_auth_generation(struct store *s)
{
    return atomic_load(&s->auth_generation);
}

uint64_t store_member_generation(struct store *s)
{
    return atomic_load(&s->member_generation);
}

uint64_t store_system_generation(struct store *s)
{
    return atomic_load(&s->system_generation);
}
