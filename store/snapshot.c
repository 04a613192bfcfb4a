/*
 * Snapshots: the whole state packed into one buffer that raft stores and
 * sends to followers that fell too far behind, and its restore, which
 * replaces the database under running readers.
 *
 * A snapshot is a RocksDB checkpoint (hard links to the live SST files plus
 * a flushed memtable), so taking one costs little; its files are packed as
 * (all integers big-endian):
 *   "CAIRNSNP"  magic, 8 bytes
 *   u32         format version (SNAP_FORMAT)
 *   u64         applied index
 *   u64         revision
 *   u32         file count
 *   per file:   u32 name length, name, u64 size, bytes
 *   u32         CRC-32C of everything before it
 * Restore checks the whole buffer before it touches the disk, unpacks it
 * beside the live database and swaps directories; the steps, and how
 * store_open recovers from a crash between them, are described at recover()
 * in store.c.
 */
#include "store_int.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_MAGIC     "CAIRNSNP"
#define SNAP_FORMAT    1
#define SNAP_HEADER    (8 + 4 + 8 + 8 + 4)
#define SNAP_TRAILER   4
#define SNAP_NAME_MAX  255
#define SNAP_FILE_HEAD (4 + 8) /* name length and size */

/* CRC-32C, reflected polynomial 0x82F63B78, four bits per table step. */
static const uint32_t crc_table[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3, 0x61c69362, 0x7198540d,
    0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9, 0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
};

uint32_t store_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ crc_table[crc & 0x0f];
        crc = (crc >> 4) ^ crc_table[crc & 0x0f];
    }
    return ~crc;
}

static void put32(unsigned char **p, uint32_t v)
{
    for (int i = 3; i >= 0; i--) {
        (*p)[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    *p += 4;
}

static void put64(unsigned char **p, uint64_t v)
{
    store_be64_put(v, *p);
    *p += 8;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The files of a checkpoint directory, sorted by name. */
struct file_list {
    char **names; /* malloc'ed */
    uint64_t *sizes;
    size_t n;
};

static void file_list_free(struct file_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
    }
    free(l->names);
    free(l->sizes);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int file_list_read(const char *dir, struct file_list *l, char *errmsg, size_t errmsg_size)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t cap = 0;
    int rv = 0;

    memset(l, 0, sizeof *l);
    if (d == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "opendir %s: %s", dir, strerror(errno));
        return CAIRN_EIO;
    }
    while (rv == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        if (l->n == cap) {
            size_t want = cap == 0 ? 16 : cap * 2;
            char **names = realloc(l->names, want * sizeof *names);
            if (names == NULL) {
                rv = CAIRN_ENOMEM;
                break;
            }
            l->names = names;
            cap = want;
        }
        l->names[l->n] = strdup(e->d_name);
        if (l->names[l->n] == NULL) {
            rv = CAIRN_ENOMEM;
            break;
        }
        l->n++;
    }
    closedir(d);
    if (rv == 0 && l->n > 0) {
        qsort(l->names, l->n, sizeof *l->names, name_cmp);
        l->sizes = calloc(l->n, sizeof *l->sizes);
        if (l->sizes == NULL) {
            rv = CAIRN_ENOMEM;
        }
    }
    if (rv != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "list %s: out of memory", dir);
        file_list_free(l);
    }
    return rv;
}

/* Reads exactly size bytes of dir/name into out. */
static int file_read(const char *dir, const char *name, unsigned char *out, uint64_t size,
                     char *errmsg, size_t errmsg_size)
{
    char path[4096];
    int fd;
    uint64_t done = 0;
    ssize_t n;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "open %s: %s", path, strerror(errno));
        return CAIRN_EIO;
    }
    while (done < size) {
        n = read(fd, out + done, size - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            cairn_errmsg_set(errmsg, errmsg_size, "read %s: %s", path,
                             n < 0 ? strerror(errno) : "file shrank");
            close(fd);
            return CAIRN_EIO;
        }
        done += (uint64_t)n;
    }
    close(fd);
    return 0;
}

/* Packs every file of the checkpoint in dir into one buffer. */
static int pack(const char *dir, uint64_t index, uint64_t revision, void **out, size_t *out_len,
                char *errmsg, size_t errmsg_size)
{
    struct file_list files;
    unsigned char *buf;
    unsigned char *p;
    size_t total = SNAP_HEADER + SNAP_TRAILER;
    int rv;

    rv = file_list_read(dir, &files, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < files.n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, files.names[i]);
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            cairn_errmsg_set(errmsg, errmsg_size, "%s is not a regular file", path);
            rv = CAIRN_EIO;
            goto out;
        }
        files.sizes[i] = (uint64_t)st.st_size;
        total += SNAP_FILE_HEAD + strlen(files.names[i]) + (size_t)st.st_size;
    }
    buf = malloc(total);
    if (buf == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "snapshot of %zu bytes: out of memory", total);
        rv = CAIRN_ENOMEM;
        goto out;
    }
    p = buf;
    memcpy(p, SNAP_MAGIC, 8);
    p += 8;
    put32(&p, SNAP_FORMAT);
    put64(&p, index);
    put64(&p, revision);
    put32(&p, (uint32_t)files.n);
    for (size_t i = 0; i < files.n; i++) {
        size_t name_len = strlen(files.names[i]);
        put32(&p, (uint32_t)name_len);
        memcpy(p, files.names[i], name_len);
        p += name_len;
        put64(&p, files.sizes[i]);
        rv = file_read(dir, files.names[i], p, files.sizes[i], errmsg, errmsg_size);
        if (rv != 0) {
            free(buf);
            goto out;
        }
        p += files.sizes[i];
    }
    put32(&p, store_crc32c(0, buf, total - SNAP_TRAILER));
    assert((size_t)(p - buf) == total);
    *out = buf;
    *out_len = total;
out:
    file_list_free(&files);
    return rv;
}

int store_snapshot_take(struct store *s, void **out, size_t *out_len, char *errmsg,
                        size_t errmsg_size)
{
    rocksdb_checkpoint_t *cp;
    char *err = NULL;
    char msg[CAIRN_ERRMSG_SIZE];
    int rv;

    if (s->db.db == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "take snapshot: the store has no database");
        return CAIRN_EIO;
    }
    rv = store_fs_remove(s->checkpoint_path, errmsg, errmsg_size);
    if (rv != 0) {
        goto err;
    }
    cp = rocksdb_checkpoint_object_create(s->db.db, &err);
    if (err == NULL) {
        /* A log size of 0 flushes the memtable: the checkpoint holds every
         * applied entry in SST files. */
        rocksdb_checkpoint_create(cp, s->checkpoint_path, 0, &err);
        rocksdb_checkpoint_object_destroy(cp);
    }
    if (err != NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "rocksdb checkpoint: %s", err);
        rocksdb_free(err);
        rv = CAIRN_EIO;
        goto err_after_checkpoint;
    }
    /* Apply runs on this thread too, so the cached values match the
     * checkpoint exactly. */
    rv = pack(s->checkpoint_path, atomic_load(&s->applied), atomic_load(&s->revision), out, out_len,
              errmsg, errmsg_size);
    if (rv != 0) {
        goto err_after_checkpoint;
    }
    if (store_fs_remove(s->checkpoint_path, msg, sizeof msg) != 0) {
        /* Harmless: the next take removes it first. */
        CAIRN_WARN("msg=\"store: cannot remove checkpoint\" error=\"%s\"", msg);
    }
    return 0;

err_after_checkpoint:
    store_fs_remove(s->checkpoint_path, msg, sizeof msg);
err:
    cairn_errmsg_wrap(errmsg, errmsg_size, "take snapshot");
    assert(rv != 0);
    return rv;
}

struct snap_header {
    uint64_t index;
    uint64_t revision;
    uint32_t files;
};

static int header_read(const void *buf, size_t len, struct snap_header *h, char *errmsg,
                       size_t errmsg_size)
{
    const unsigned char *p = buf;
    uint32_t format;
    if (buf == NULL || len < SNAP_HEADER + SNAP_TRAILER || memcmp(p, SNAP_MAGIC, 8) != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "not a Cairn store snapshot");
        return CAIRN_ECORRUPT;
    }
    format = get32(p + 8);
    if (format != SNAP_FORMAT) {
        cairn_errmsg_set(errmsg, errmsg_size, "snapshot format %" PRIu32 " is not supported",
                         format);
        return CAIRN_EUNSUPPORTED;
    }
    h->index = store_be64_get(p + 12);
    h->revision = store_be64_get(p + 20);
    h->files = get32(p + 28);
    return 0;
}

int store_snapshot_index(const void *buf, size_t len, uint64_t *index)
{
    struct snap_header h;
    int rv = header_read(buf, len, &h, NULL, 0);
    if (rv != 0) {
        return rv;
    }
    *index = h.index;
    return 0;
}

/* A file name that stays inside the directory it is unpacked into. */
static bool name_plain(const unsigned char *name, size_t len)
{
    if (len == 0 || len > SNAP_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '/' || name[i] == '\0' ||
            (name[i] == '.' && i + 1 < len && name[i + 1] == '.')) {
            return false;
        }
    }
    return !(len == 1 && name[0] == '.');
}

static int file_write(const char *dir, const unsigned char *name, size_t name_len,
                      const unsigned char *data, uint64_t size, char *errmsg, size_t errmsg_size)
{
    char path[4096];
    uint64_t done = 0;
    ssize_t n;
    int fd;
    int rv = 0;

    snprintf(path, sizeof path, "%s/%.*s", dir, (int)name_len, (const char *)name);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "create %s: %s", path, strerror(errno));
        return CAIRN_EIO;
    }
    while (done < size) {
        n = write(fd, data + done, size - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            cairn_errmsg_set(errmsg, errmsg_size, "write %s: %s", path, strerror(errno));
            rv = CAIRN_EIO;
            break;
        }
        done += (uint64_t)n;
    }
    if (rv == 0 && fsync(fd) != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "fsync %s: %s", path, strerror(errno));
        rv = CAIRN_EIO;
    }
    close(fd);
    return rv;
}

/* Walks the files of a snapshot whose header was read; with dir set,
 * writes each one there. Every length is checked before it is used. */
static int files_walk(const unsigned char *buf, size_t len, const struct snap_header *h,
                      const char *dir, char *errmsg, size_t errmsg_size)
{
    size_t off = SNAP_HEADER;
    size_t end = len - SNAP_TRAILER;
    int rv;

    for (uint32_t i = 0; i < h->files; i++) {
        const unsigned char *name;
        size_t name_len;
        uint64_t size;
        if (end - off < 4 || (name_len = get32(buf + off)) > end - off - 4) {
            cairn_errmsg_set(errmsg, errmsg_size, "file %" PRIu32 " runs past the end", i);
            return CAIRN_ECORRUPT;
        }
        name = buf + off + 4;
        off += 4 + name_len;
        if (!name_plain(name, name_len)) {
            cairn_errmsg_set(errmsg, errmsg_size, "file %" PRIu32 " has an unsafe name", i);
            return CAIRN_ECORRUPT;
        }
        if (end - off < 8 || (size = store_be64_get(buf + off)) > end - off - 8) {
            cairn_errmsg_set(errmsg, errmsg_size, "file %" PRIu32 " runs past the end", i);
            return CAIRN_ECORRUPT;
        }
        off += 8;
        if (dir != NULL) {
            rv = file_write(dir, name, name_len, buf + off, size, errmsg, errmsg_size);
            if (rv != 0) {
                return rv;
            }
        }
        off += (size_t)size;
    }
    if (off != end) {
        cairn_errmsg_set(errmsg, errmsg_size, "%zu bytes after the last file", end - off);
        return CAIRN_ECORRUPT;
    }
    return 0;
}

/* Checks the whole buffer: header, checksum and every file's bounds. */
static int validate(const void *buf, size_t len, struct snap_header *h, char *errmsg,
                    size_t errmsg_size)
{
    const unsigned char *p = buf;
    uint32_t want;
    uint32_t got;
    int rv = header_read(buf, len, h, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    want = get32(p + len - SNAP_TRAILER);
    got = store_crc32c(0, p, len - SNAP_TRAILER);
    if (want != got) {
        cairn_errmsg_set(errmsg, errmsg_size,
                         "checksum mismatch (stored %08" PRIx32 ", computed %08" PRIx32 ")", want,
                         got);
        return CAIRN_ECORRUPT;
    }
    return files_walk(p, len, h, NULL, errmsg, errmsg_size);
}

/* Unpacks into s->new_path and checks that it opens at the header's index
 * and revision. */
static int unpack(struct store *s, const void *buf, size_t len, const struct snap_header *h,
                  char *errmsg, size_t errmsg_size)
{
    struct store_db check;
    int rv;

    rv = store_fs_remove(s->new_path, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    if (mkdir(s->new_path, 0755) != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "mkdir %s: %s", s->new_path, strerror(errno));
        return CAIRN_EIO;
    }
    rv = files_walk(buf, len, h, s->new_path, errmsg, errmsg_size);
    if (rv == 0) {
        rv = store_fs_sync_dir(s->new_path, errmsg, errmsg_size);
    }
    if (rv == 0) {
        rv = store_db_open(s->new_path, false, &check, errmsg, errmsg_size);
    }
    if (rv != 0) {
        return rv;
    }
    if (check.applied != h->index || check.revision != h->revision) {
        cairn_errmsg_set(errmsg, errmsg_size,
                         "header says index %" PRIu64 " revision %" PRIu64
                         " but the database holds index %" PRIu64 " revision %" PRIu64,
                         h->index, h->revision, check.applied, check.revision);
        rv = CAIRN_ECORRUPT;
    }
    store_db_close(&check);
    return rv;
}

static int rename_logged(const char *from, const char *to, char *errmsg, size_t errmsg_size)
{
    if (rename(from, to) != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "rename %s to %s: %s", from, to, strerror(errno));
        return CAIRN_EIO;
    }
    return 0;
}

/* Steps 3 and 4 of a restore (see recover() in store.c), under the write
 * lock. On failure the old database is put back and reopened. */
static int swap(struct store *s, char *errmsg, size_t errmsg_size)
{
    char msg[CAIRN_ERRMSG_SIZE];
    int rv;

    pthread_rwlock_wrlock(&s->lock);
    store_db_close(&s->db);
    rv = rename_logged(s->db_path, s->old_path, errmsg, errmsg_size);
    if (rv != 0) {
        goto err_reopen;
    }
    rv = store_fs_sync_dir(s->dir, errmsg, errmsg_size);
    if (rv != 0) {
        goto err_after_old;
    }
    rv = rename_logged(s->new_path, s->db_path, errmsg, errmsg_size);
    if (rv != 0) {
        goto err_after_old;
    }
    rv = store_fs_sync_dir(s->dir, errmsg, errmsg_size);
    if (rv != 0) {
        goto err_after_new;
    }
    rv = store_db_open(s->db_path, false, &s->db, errmsg, errmsg_size);
    if (rv != 0) {
        goto err_after_new;
    }
    atomic_store(&s->revision, s->db.revision);
    atomic_store(&s->applied, s->db.applied);
    pthread_rwlock_unlock(&s->lock);
    return 0;

err_after_new:
    rename(s->db_path, s->new_path);
err_after_old:
    rename(s->old_path, s->db_path);
    store_fs_sync_dir(s->dir, msg, sizeof msg);
err_reopen:
    if (store_db_open(s->db_path, false, &s->db, msg, sizeof msg) != 0) {
        /* Reads and applies now fail with CAIRN_EIO; the node must stop
         * and store_open will sort the directories out. */
        CAIRN_ERROR(
            "msg=\"store: cannot reopen the database after a failed restore\" "
            "error=\"%s\"",
            msg);
    }
    pthread_rwlock_unlock(&s->lock);
    assert(rv != 0);
    return rv;
}

int store_snapshot_restore(struct store *s, const void *buf, size_t len, char *errmsg,
                           size_t errmsg_size)
{
    struct snap_header h;
    char msg[CAIRN_ERRMSG_SIZE];
    int rv;

    rv = validate(buf, len, &h, errmsg, errmsg_size);
    if (rv != 0) {
        goto err;
    }
    if (h.index <= atomic_load(&s->applied)) {
        /* Raft replays the entries after our index; apply skips the rest. */
        return 0;
    }
    rv = unpack(s, buf, len, &h, errmsg, errmsg_size);
    if (rv != 0) {
        goto err_after_unpack;
    }
    rv = swap(s, errmsg, errmsg_size);
    if (rv != 0) {
        goto err_after_unpack;
    }
    if (store_fs_remove(s->old_path, msg, sizeof msg) != 0) {
        /* Harmless: store_open removes it. */
        CAIRN_WARN("msg=\"store: cannot remove the replaced database\" error=\"%s\"", msg);
    }
    return 0;

err_after_unpack:
    store_fs_remove(s->new_path, msg, sizeof msg);
err:
    cairn_errmsg_wrap(errmsg, errmsg_size, "restore snapshot");
    assert(rv != 0);
    return rv;
}
