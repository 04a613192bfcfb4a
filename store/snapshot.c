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
 * The packed form is produced piece by piece from a checkpoint directory
 * (struct store_backup), so that a backup (GET /api/v1/cluster/backup)
 * streams it with the memory of one chunk; a raft snapshot reads it whole.
 * Restore checks the whole buffer before it touches the disk, unpacks it
 * beside the live database and swaps directories; the steps, and how
 * store_open recovers from a crash between them, are described at recover()
 * in store.c. Seeding a new cluster from a backup file is in seed.c.
 */
#include "store_int.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_MAGIC     "CAIRNSNP"
#define SNAP_FORMAT    1
#define SNAP_HEADER    STORE_SNAP_HEADER
#define SNAP_TRAILER   STORE_SNAP_TRAILER
#define SNAP_NAME_MAX  255
#define SNAP_FILE_HEAD (4 + 8) /* name length and size */
/* A snapshot's checkpoint copies up to this much write-ahead log instead
 * of flushing the memtables on the loop thread (checkpoint_create); the
 * consensus layer flushes them ahead (store_flush_start), which also lets
 * RocksDB drop the older logs, so there is usually far less. */
#define SNAP_WAL_MAX ((uint64_t)16 << 20)

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78). The CPU's crc32
 * instruction (SSE4.2, every x86-64 server of the last fifteen years) does
 * eight bytes a step; elsewhere, a table of 256 entries made on first use
 * does one. The four-bit table of before spent a fifth of a busy leader's
 * CPU: every snapshot and backup streams the whole database through it. */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_make(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
        }
        crc_table[i] = c;
    }
}

static uint32_t crc_bytes(uint32_t crc, const unsigned char *p, size_t len)
{
    pthread_once(&crc_once, crc_table_make);
    for (size_t i = 0; i < len; i++) {
        crc = (crc >> 8) ^ crc_table[(crc ^ p[i]) & 0xff];
    }
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p,
                                                         size_t len)
{
    uint64_t c = crc;
    for (; len > 0 && ((uintptr_t)p & 7) != 0; len--) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
    }
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
    }
    for (; len > 0; len--) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
    }
    return (uint32_t)c;
}

static bool crc_have_hw(void)
{
    static int have = -1; /* a benign race: every thread computes the same */
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    }
    return have == 1;
}
#endif

uint32_t store_crc32c(uint32_t crc, const void *buf, size_t len)
{
    crc = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (crc_have_hw()) {
        return ~crc_hw(crc, buf, len);
    }
#endif
    return ~crc_bytes(crc, buf, len);
}

uint32_t store_crc32c_table(uint32_t crc, const void *buf, size_t len)
{
    return ~crc_bytes(~crc, buf, len);
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

/* A packed snapshot read out piece by piece from a checkpoint directory,
 * so that a backup streams without the whole database in memory; pack()
 * reads one into a buffer. The pieces, in order: the header, then per file
 * its head (name length, name, size) and its bytes, then the CRC trailer. */
enum reader_stage { STAGE_HEADER, STAGE_FILE_HEAD, STAGE_FILE_DATA, STAGE_TRAILER };

struct store_backup {
    enum reader_stage stage; /* which piece is being produced */
    char dir[4096];          /* the checkpoint */
    bool owns_dir;           /* remove dir when done (a backup's own checkpoint) */
    struct file_list files;  /* its files, sorted */
    uint64_t index;          /* applied index of the checkpoint */
    uint64_t revision;       /* revision of the checkpoint */
    uint64_t size;           /* bytes of the whole packed form */
    uint64_t offset;         /* bytes produced so far */
    unsigned char piece[SNAP_HEADER + SNAP_FILE_HEAD + SNAP_NAME_MAX]; /* header or file head */
    size_t piece_len;                                                  /* bytes in piece */
    size_t piece_off;                                                  /* of them produced */
    size_t file;                                                       /* next file */
    int fd;             /* the file being copied, or -1 */
    uint64_t file_left; /* its bytes still to copy */
    uint32_t crc;       /* CRC-32C of what was produced */
    char path[4200];    /* of the file being copied */
};

/* Lists the files of dir and computes the packed size. */
static int reader_init(struct store_backup *b, const char *dir, uint64_t index, uint64_t revision,
                       char *errmsg, size_t errmsg_size)
{
    unsigned char *p;
    int rv;

    snprintf(b->dir, sizeof b->dir, "%s", dir);
    b->fd = -1;
    b->index = index;
    b->revision = revision;
    rv = file_list_read(dir, &b->files, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    b->size = SNAP_HEADER + SNAP_TRAILER;
    for (size_t i = 0; i < b->files.n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, b->files.names[i]);
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
            strlen(b->files.names[i]) > SNAP_NAME_MAX) {
            /* The names are RocksDB's own, far shorter than the limit. */
            cairn_errmsg_set(errmsg, errmsg_size, "%s is not a regular file", path);
            file_list_free(&b->files);
            return CAIRN_EIO;
        }
        b->files.sizes[i] = (uint64_t)st.st_size;
        b->size += SNAP_FILE_HEAD + strlen(b->files.names[i]) + (uint64_t)st.st_size;
    }
    p = b->piece;
    memcpy(p, SNAP_MAGIC, 8);
    p += 8;
    put32(&p, SNAP_FORMAT);
    put64(&p, index);
    put64(&p, revision);
    put32(&p, (uint32_t)b->files.n);
    b->piece_len = SNAP_HEADER;
    return 0;
}

static void reader_close(struct store_backup *b)
{
    if (b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
    }
    file_list_free(&b->files);
}

/* Moves on once the current piece is produced: after the header or a
 * file's bytes comes the next file's head (or the trailer after the last
 * file), after a file's head its bytes. */
static int reader_next(struct store_backup *b, char *errmsg, size_t errmsg_size)
{
    unsigned char *p = b->piece;
    size_t name_len;

    b->piece_off = 0;
    b->piece_len = 0;
    if (b->stage == STAGE_FILE_HEAD) {
        snprintf(b->path, sizeof b->path, "%s/%s", b->dir, b->files.names[b->file]);
        b->fd = open(b->path, O_RDONLY | O_CLOEXEC);
        if (b->fd < 0) {
            cairn_errmsg_set(errmsg, errmsg_size, "open %s: %s", b->path, strerror(errno));
            return CAIRN_EIO;
        }
        b->file_left = b->files.sizes[b->file];
        b->stage = STAGE_FILE_DATA;
        return 0;
    }
    if (b->stage == STAGE_FILE_DATA) {
        close(b->fd);
        b->fd = -1;
        b->file++;
    }
    if (b->file >= b->files.n) {
        put32(&p, b->crc);
        b->piece_len = SNAP_TRAILER;
        b->stage = STAGE_TRAILER;
        return 0;
    }
    name_len = strlen(b->files.names[b->file]);
    put32(&p, (uint32_t)name_len);
    memcpy(p, b->files.names[b->file], name_len);
    p += name_len;
    put64(&p, b->files.sizes[b->file]);
    b->piece_len = (size_t)(p - b->piece);
    b->stage = STAGE_FILE_HEAD;
    return 0;
}

int store_backup_read(struct store_backup *b, void *buf, size_t cap, size_t *n, char *errmsg,
                      size_t errmsg_size)
{
    unsigned char *out = buf;
    size_t done = 0;
    int rv;

    /* Each step produces bytes or moves to the next piece; the count bound
     * is a guard against a bug looping forever. */
    for (unsigned steps = 0; done < cap && b->offset < b->size && steps < 1000000; steps++) {
        if (b->stage == STAGE_FILE_DATA && b->file_left > 0) {
            size_t want = cap - done < b->file_left ? cap - done : (size_t)b->file_left;
            ssize_t got = read(b->fd, out + done, want);
            if (got < 0 && errno == EINTR) {
                continue;
            }
            if (got <= 0) {
                cairn_errmsg_set(errmsg, errmsg_size, "read %s: %s", b->path,
                                 got < 0 ? strerror(errno) : "file shrank");
                return CAIRN_EIO;
            }
            b->crc = store_crc32c(b->crc, out + done, (size_t)got);
            b->file_left -= (uint64_t)got;
            b->offset += (uint64_t)got;
            done += (size_t)got;
        } else if (b->piece_off < b->piece_len) {
            size_t want = b->piece_len - b->piece_off;
            if (want > cap - done) {
                want = cap - done;
            }
            memcpy(out + done, b->piece + b->piece_off, want);
            if (b->stage != STAGE_TRAILER) {
                b->crc = store_crc32c(b->crc, out + done, want);
            }
            b->piece_off += want;
            b->offset += want;
            done += want;
        } else {
            rv = reader_next(b, errmsg, errmsg_size);
            if (rv != 0) {
                return rv;
            }
        }
    }
    *n = done;
    return 0;
}

uint64_t store_backup_size(const struct store_backup *b)
{
    return b->size;
}

uint64_t store_backup_index(const struct store_backup *b)
{
    return b->index;
}

uint64_t store_backup_revision(const struct store_backup *b)
{
    return b->revision;
}

/* Packs every file of the checkpoint in dir into one buffer. */
static int pack(const char *dir, uint64_t index, uint64_t revision, void **out, size_t *out_len,
                char *errmsg, size_t errmsg_size)
{
    struct store_backup *b;
    unsigned char *buf;
    size_t n;
    int rv;

    b = calloc(1, sizeof *b);
    if (b == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "snapshot: out of memory");
        return CAIRN_ENOMEM;
    }
    rv = reader_init(b, dir, index, revision, errmsg, errmsg_size);
    if (rv != 0) {
        free(b);
        return rv;
    }
    buf = malloc((size_t)b->size);
    if (buf == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "snapshot of %" PRIu64 " bytes: out of memory",
                         b->size);
        rv = CAIRN_ENOMEM;
        goto out;
    }
    rv = store_backup_read(b, buf, (size_t)b->size, &n, errmsg, errmsg_size);
    if (rv == 0 && n != b->size) {
        cairn_errmsg_set(errmsg, errmsg_size, "packed %zu of %" PRIu64 " bytes", n, b->size);
        rv = CAIRN_EIO;
    }
    if (rv != 0) {
        free(buf);
        goto out;
    }
    *out = buf;
    *out_len = n;
out:
    reader_close(b);
    free(b);
    return rv;
}

/* Fails with RocksDB's error err (freed), as "what: err". */
static int rocks_failed(char *err, const char *what, char *errmsg, size_t errmsg_size)
{
    cairn_errmsg_set(errmsg, errmsg_size, "%s: %s", what, err);
    rocksdb_free(err);
    return CAIRN_EIO;
}

/* The live database, or CAIRN_EIO if the store has none (a failed restore). */
static int live_db(struct store *s, char *errmsg, size_t errmsg_size)
{
    if (s->db.db == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "the store has no database");
        return CAIRN_EIO;
    }
    return 0;
}

/* A RocksDB checkpoint of the live database at path (which must not
 * exist). With a write-ahead log of more than wal_max bytes it first
 * flushes the memtables, so that the checkpoint holds every applied entry
 * in SST files; with less it copies the log instead (opening the
 * checkpoint replays it), which holds the loop thread far less than a
 * flush: wal_max 0 always flushes. */
static int checkpoint_create(struct store *s, const char *path, uint64_t wal_max, char *errmsg,
                             size_t errmsg_size)
{
    rocksdb_checkpoint_t *cp;
    char *err = NULL;

    if (live_db(s, errmsg, errmsg_size) != 0) {
        return CAIRN_EIO;
    }
    cp = rocksdb_checkpoint_object_create(s->db.db, &err);
    if (err == NULL) {
        rocksdb_checkpoint_create(cp, path, wal_max, &err);
        rocksdb_checkpoint_object_destroy(cp);
    }
    return err != NULL ? rocks_failed(err, "rocksdb checkpoint", errmsg, errmsg_size) : 0;
}

int store_snapshot_checkpoint(struct store *s, struct store_checkpoint *cp, char *errmsg,
                              size_t errmsg_size)
{
    char msg[CAIRN_ERRMSG_SIZE];
    int rv;

    rv = store_fs_remove(s->checkpoint_path, errmsg, errmsg_size);
    if (rv == 0) {
        rv = checkpoint_create(s, s->checkpoint_path, SNAP_WAL_MAX, errmsg, errmsg_size);
    }
    if (rv != 0) {
        store_fs_remove(s->checkpoint_path, msg, sizeof msg);
        cairn_errmsg_wrap(errmsg, errmsg_size, "take snapshot");
        return rv;
    }
    /* Apply runs on this thread too, so the cached values match the
     * checkpoint exactly. */
    cp->index = atomic_load(&s->applied);
    cp->revision = atomic_load(&s->revision);
    return 0;
}

void store_snapshot_checkpoint_drop(struct store *s)
{
    char msg[CAIRN_ERRMSG_SIZE];
    if (store_fs_remove(s->checkpoint_path, msg, sizeof msg) != 0) {
        /* Harmless: the next checkpoint removes it first. */
        CAIRN_WARN("msg=\"store: cannot remove checkpoint\" error=\"%s\"", msg);
    }
}

int store_snapshot_pack(struct store *s, const struct store_checkpoint *cp, void **out,
                        size_t *out_len, char *errmsg, size_t errmsg_size)
{
    int rv = pack(s->checkpoint_path, cp->index, cp->revision, out, out_len, errmsg, errmsg_size);
    if (rv != 0) {
        cairn_errmsg_wrap(errmsg, errmsg_size, "pack snapshot at %" PRIu64, cp->index);
        return rv;
    }
    store_snapshot_checkpoint_drop(s);
    return 0;
}

int store_snapshot_take(struct store *s, void **out, size_t *out_len, char *errmsg,
                        size_t errmsg_size)
{
    struct store_checkpoint cp;
    int rv;

    rv = store_snapshot_checkpoint(s, &cp, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    rv = store_snapshot_pack(s, &cp, out, out_len, errmsg, errmsg_size);
    if (rv != 0) {
        store_snapshot_checkpoint_drop(s);
    }
    return rv;
}

int store_flush_start(struct store *s, char *errmsg, size_t errmsg_size)
{
    rocksdb_flushoptions_t *fo;
    char *err = NULL;

    if (live_db(s, errmsg, errmsg_size) != 0) {
        return CAIRN_EIO;
    }
    fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 0);
    for (int i = 0; i < STORE_CF_COUNT && err == NULL; i++) {
        rocksdb_flush_cf(s->db.db, fo, s->db.cf[i], &err);
    }
    rocksdb_flushoptions_destroy(fo);
    return err != NULL ? rocks_failed(err, "rocksdb flush", errmsg, errmsg_size) : 0;
}

int store_backup_begin(struct store *s, struct store_backup **out, char *errmsg, size_t errmsg_size)
{
    struct store_backup *b;
    char path[4200];
    char msg[CAIRN_ERRMSG_SIZE];
    int rv;

    b = calloc(1, sizeof *b);
    if (b == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "begin backup: out of memory");
        return CAIRN_ENOMEM;
    }
    snprintf(path, sizeof path, "%s/" STORE_BACKUP_PREFIX "%" PRIu64, s->dir,
             atomic_fetch_add(&s->backups, 1));
    rv = store_fs_remove(path, errmsg, errmsg_size);
    if (rv == 0) {
        rv = checkpoint_create(s, path, 0, errmsg, errmsg_size);
    }
    if (rv == 0) {
        /* On the loop thread, like apply: the cached values are the
         * checkpoint's. */
        rv = reader_init(b, path, atomic_load(&s->applied), atomic_load(&s->revision), errmsg,
                         errmsg_size);
    }
    if (rv != 0) {
        store_fs_remove(path, msg, sizeof msg);
        free(b);
        cairn_errmsg_wrap(errmsg, errmsg_size, "begin backup");
        return rv;
    }
    b->owns_dir = true;
    *out = b;
    return 0;
}

void store_backup_end(struct store_backup *b)
{
    char msg[CAIRN_ERRMSG_SIZE];
    if (b == NULL) {
        return;
    }
    reader_close(b);
    if (b->owns_dir && store_fs_remove(b->dir, msg, sizeof msg) != 0) {
        /* Harmless: store_open removes leftover backups. */
        CAIRN_WARN("msg=\"store: cannot remove backup checkpoint\" error=\"%s\"", msg);
    }
    free(b);
}

static int header_read(const void *buf, size_t len, struct store_snap_header *h, char *errmsg,
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
    struct store_snap_header h;
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
static int files_walk(const unsigned char *buf, size_t len, const struct store_snap_header *h,
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
int store_snapshot_validate(const void *buf, size_t len, struct store_snap_header *h, char *errmsg,
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

/* Unpacks into path (a store's db.new) and checks that it opens at the
 * header's index and revision. */
int store_snapshot_unpack(const char *path, const void *buf, size_t len,
                          const struct store_snap_header *h, char *errmsg, size_t errmsg_size)
{
    struct store_db check;
    int rv;

    rv = store_fs_remove(path, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    if (mkdir(path, 0755) != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "mkdir %s: %s", path, strerror(errno));
        return CAIRN_EIO;
    }
    rv = files_walk(buf, len, h, path, errmsg, errmsg_size);
    if (rv == 0) {
        rv = store_fs_sync_dir(path, errmsg, errmsg_size);
    }
    if (rv == 0) {
        rv = store_db_open(path, false, &check, errmsg, errmsg_size);
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
    atomic_fetch_add(&s->auth_generation, 1);
    atomic_fetch_add(&s->member_generation, 1);
    atomic_fetch_add(&s->system_generation, 1);
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
    struct store_snap_header h;
    char msg[CAIRN_ERRMSG_SIZE];
    int rv;

    rv = store_snapshot_validate(buf, len, &h, errmsg, errmsg_size);
    if (rv != 0) {
        goto err;
    }
    /* Raft replays the entries after our index; apply skips the rest. A
     * seeded store (store_seed) is at index 0 with a revision: an empty
     * store at index 0 still takes its snapshot. */
    if (h.index < atomic_load(&s->applied) ||
        (h.index == atomic_load(&s->applied) && h.revision <= atomic_load(&s->revision))) {
        return 0;
    }
    rv = store_snapshot_unpack(s->new_path, buf, len, &h, errmsg, errmsg_size);
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
