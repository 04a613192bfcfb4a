/*
 * Snapshot tests: take and restore between stores, a local state that is
 * ahead, corrupt, truncated and hostile snapshots, recovery from a crash at
 * each step of a restore, a reader thread running through applies and
 * restores, and backups: streamed in pieces, seeding a new store
 * (store_seed), damaged files refused.
 */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fills a store with tenants (named, with request ids) and members. */
static void populate(struct fix *f, int n, const char *prefix)
{
    for (int i = 0; i < n; i++) {
        char id[32];
        char name[32];
        char rid[32];
        struct store_command c;
        snprintf(id, sizeof id, "%s%03d", prefix, i);
        snprintf(name, sizeof name, "name-%s%03d", prefix, i);
        snprintf(rid, sizeof rid, "rid-%s%03d", prefix, i);
        c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, id);
        c.name = name;
        c.body = "{\"k\":\"v\"}";
        c.body_len = strlen(c.body);
        c.request_id = rid;
        c.fingerprint = (uint64_t)i + 1;
        fix_apply(f, &c);
        if (i % 3 == 0) {
            c = cmd_make(STORE_OP_PUT, STORE_KIND_MEMBER, id);
            fix_apply(f, &c);
        }
    }
}

static void take(struct fix *f, void **buf, size_t *len)
{
    char msg[CAIRN_ERRMSG_SIZE] = "";
    if (store_snapshot_take(f->s, buf, len, msg, sizeof msg) != 0) {
        fail_msg("take: %s", msg);
    }
}

static void restore(struct fix *f, const void *buf, size_t len)
{
    char msg[CAIRN_ERRMSG_SIZE] = "";
    if (store_snapshot_restore(f->s, buf, len, msg, sizeof msg) != 0) {
        fail_msg("restore: %s", msg);
    }
    f->index = store_applied_index(f->s);
}

static bool exists(const struct fix *f, const char *name)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    return stat(path, &st) == 0;
}

static void assert_dump(struct store *s, const char *want)
{
    char *got = dump(s);
    assert_string_equal(got, want);
    free(got);
}

/* The number of SST files in f's database. */
static int sst_files(const struct fix *f)
{
    char path[256];
    struct dirent *e;
    DIR *d;
    int n = 0;
    snprintf(path, sizeof path, "%s/db", f->dir);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        n += len > 4 && strcmp(e->d_name + len - 4, ".sst") == 0;
    }
    closedir(d);
    return n;
}

/* A flush started ahead of a snapshot writes the memtables to SST files in
 * the background (polled for, 10 s at most), changes nothing that reads or
 * snapshots see, and applies go on meanwhile. */
static void test_flush_ahead(void **state)
{
    struct fix *a = fix_new();
    struct fix *b = fix_new();
    char msg[CAIRN_ERRMSG_SIZE] = "";
    char *want;
    void *buf;
    size_t len;
    int i;
    (void)state;

    populate(a, 30, "t");
    assert_int_equal(sst_files(a), 0); /* all in the memtables still */
    want = dump(a->s);
    assert_int_equal(store_flush_start(a->s, msg, sizeof msg), 0);
    assert_dump(a->s, want);
    free(want);
    populate(a, 10, "u");
    for (i = 0; i < 1000 && sst_files(a) == 0; i++) {
        usleep(10 * 1000);
    }
    assert_true(sst_files(a) > 0);
    want = dump(a->s);
    take(a, &buf, &len);
    restore(b, buf, len);
    assert_dump(b->s, want);
    free(want);
    free(buf);
    fix_free(a);
    fix_free(b);
}

static void test_snapshot_restore(void **state)
{
    struct fix *a = fix_new();
    struct fix *b = fix_new();
    struct store_command c;
    struct store_result r;
    char *want;
    void *buf;
    size_t len;
    uint64_t index;
    (void)state;

    populate(a, 30, "t");
    populate(b, 4, "other"); /* replaced entirely */
    take(a, &buf, &len);
    assert_false(exists(a, "checkpoint-tmp"));
    assert_int_equal(store_snapshot_index(buf, len, &index), 0);
    assert_int_equal(index, store_applied_index(a->s));
    want = dump(a->s);

    restore(b, buf, len);
    assert_dump(b->s, want);
    assert_int_equal(store_applied_index(b->s), store_applied_index(a->s));
    assert_int_equal(store_revision(b->s), store_revision(a->s));
    assert_false(exists(b, "db.new"));
    assert_false(exists(b, "db.old"));
    assert_true(exists(b, "db"));

    /* Request ids came along: a retry on b is answered from the table. */
    c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "t007");
    c.name = "name-t007";
    c.body = "{\"k\":\"v\"}";
    c.body_len = strlen(c.body);
    c.request_id = "rid-t007";
    c.fingerprint = 8;
    r = fix_apply(b, &c);
    assert_true(r.replayed);
    assert_int_equal(r.status, 0);

    /* Both go on identically from there, also after a restart. */
    a->index = b->index - 1;
    fix_apply(a, &c);
    c = cmd_make(STORE_OP_UPDATE, STORE_KIND_TENANT, "t003");
    c.name = "renamed";
    assert_int_equal(fix_apply(a, &c).status, 0);
    assert_int_equal(fix_apply(b, &c).status, 0);
    fix_reopen(b);
    free(want);
    want = dump(a->s);
    assert_dump(b->s, want);
    assert_int_equal(store_applied_index(b->s), store_applied_index(a->s));

    free(want);
    free(buf);
    fix_free(a);
    fix_free(b);
}

static void test_snapshot_local_ahead(void **state)
{
    struct fix *a = fix_new();
    struct fix *b = fix_new();
    char msg[CAIRN_ERRMSG_SIZE] = "";
    char *want;
    void *buf;
    size_t len;
    (void)state;

    populate(a, 5, "a");
    take(a, &buf, &len);
    populate(b, 10, "b");
    assert_true(store_applied_index(b->s) > store_applied_index(a->s));
    want = dump(b->s);
    assert_int_equal(store_snapshot_restore(b->s, buf, len, msg, sizeof msg), 0);
    assert_dump(b->s, want);
    assert_false(exists(b, "db.new"));
    free(want);

    /* At the same index the local state is kept too. */
    want = dump(a->s);
    assert_int_equal(store_snapshot_restore(a->s, buf, len, msg, sizeof msg), 0);
    assert_dump(a->s, want);
    free(want);
    free(buf);
    fix_free(a);
    fix_free(b);
}

/* Builds a snapshot buffer by hand (format as in snapshot.c). */
struct snap_file {
    const char *name;
    size_t name_len;
    const char *data;
    size_t len;
};

static void put_be(unsigned char **p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        (*p)[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    *p += bytes;
}

static void *snap_build(uint32_t format, uint64_t index, uint64_t revision,
                        const struct snap_file *files, size_t n, size_t *len)
{
    size_t total = 32 + 4;
    unsigned char *buf;
    unsigned char *p;
    for (size_t i = 0; i < n; i++) {
        total += 12 + files[i].name_len + files[i].len;
    }
    buf = malloc(total);
    assert_non_null(buf);
    p = buf;
    memcpy(p, "CAIRNSNP", 8);
    p += 8;
    put_be(&p, format, 4);
    put_be(&p, index, 8);
    put_be(&p, revision, 8);
    put_be(&p, n, 4);
    for (size_t i = 0; i < n; i++) {
        put_be(&p, files[i].name_len, 4);
        memcpy(p, files[i].name, files[i].name_len);
        p += files[i].name_len;
        put_be(&p, files[i].len, 8);
        memcpy(p, files[i].data, files[i].len);
        p += files[i].len;
    }
    put_be(&p, store_crc32c(0, buf, total - 4), 4);
    *len = total;
    return buf;
}

/* Recomputes the checksum after an edit. */
static void snap_reseal(unsigned char *buf, size_t len)
{
    unsigned char *p = buf + len - 4;
    put_be(&p, store_crc32c(0, buf, len - 4), 4);
}

/* Expects restore to fail with rv (any failure if rv is 0), naming why. */
static void expect_rejected(struct fix *f, const void *buf, size_t len, int rv, const char *needle)
{
    char msg[CAIRN_ERRMSG_SIZE] = "";
    char *copy = malloc(len > 0 ? len : 1);
    int got;
    assert_non_null(copy);
    memcpy(copy, buf, len);
    got = store_snapshot_restore(f->s, copy, len, msg, sizeof msg);
    free(copy);
    if (got == 0 || (rv != 0 && got != rv)) {
        fail_msg("restore of %zu bytes: got %d (%s), want %d", len, got, msg, rv);
    }
    assert_non_null(strstr(msg, "restore snapshot: "));
    if (needle != NULL && strstr(msg, needle) == NULL) {
        fail_msg("\"%s\" does not say \"%s\"", msg, needle);
    }
}

static void test_snapshot_corrupt(void **state)
{
    struct fix *a = fix_new();
    struct fix *b = fix_new();
    unsigned char *buf;
    unsigned char *edit;
    char *want;
    void *crafted;
    size_t len;
    size_t crafted_len;
    uint64_t index;
    (void)state;

    populate(a, 10, "a");
    take(a, (void **)&buf, &len);
    populate(b, 3, "b");
    want = dump(b->s);

    /* Truncated anywhere. */
    for (size_t n = 0; n < len; n += n < 64 ? 1 : 97) {
        expect_rejected(b, buf, n, CAIRN_ECORRUPT, NULL);
        if (n < 36) {
            assert_int_equal(store_snapshot_index(buf, n, &index), CAIRN_ECORRUPT);
        }
    }
    expect_rejected(b, buf, len - 1, CAIRN_ECORRUPT, NULL);
    /* A flipped bit anywhere. */
    edit = malloc(len);
    assert_non_null(edit);
    for (size_t pos = 0; pos < len; pos += pos < 40 ? 1 : 61) {
        memcpy(edit, buf, len);
        edit[pos] ^= 0x10;
        expect_rejected(b, edit, len, 0, NULL);
    }
    memcpy(edit, buf, len);
    edit[0] = 'X';
    assert_int_equal(store_snapshot_index(edit, len, &index), CAIRN_ECORRUPT);
    /* A newer format. */
    edit[0] = 'C';
    edit[11] = 2;
    snap_reseal(edit, len);
    assert_int_equal(store_snapshot_index(edit, len, &index), CAIRN_EUNSUPPORTED);
    expect_rejected(b, edit, len, CAIRN_EUNSUPPORTED, "format 2");
    /* A header that lies about the database's index. */
    memcpy(edit, buf, len);
    edit[19] ^= 0x40;
    snap_reseal(edit, len);
    expect_rejected(b, edit, len, CAIRN_ECORRUPT, "header says");
    free(edit);

    /* Names that would leave the directory. */
    static const struct {
        const char *name;
        size_t len;
    } bad_names[] = {{"../evil", 7}, {"a/b", 3}, {".", 1}, {"..", 2}, {"", 0}, {"a\0b", 3}};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        struct snap_file files[] = {
            {"CURRENT", 7, "MANIFEST-000001\n", 16},
            {bad_names[i].name, bad_names[i].len, "x", 1},
        };
        crafted = snap_build(1, 1000, 1000, files, 2, &crafted_len);
        expect_rejected(b, crafted, crafted_len, CAIRN_ECORRUPT, "unsafe name");
        free(crafted);
    }
    assert_false(exists(b, "evil"));
    /* A file that runs past the end, and bytes after the last file. */
    {
        struct snap_file files[] = {{"CURRENT", 7, "abc", 3}};
        crafted = snap_build(1, 1000, 1000, files, 1, &crafted_len);
        edit = crafted;
        edit[32 + 4 + 7 + 7] = 4; /* size 4 of 3 bytes */
        snap_reseal(edit, crafted_len);
        expect_rejected(b, crafted, crafted_len, CAIRN_ECORRUPT, "past the end");
        edit[32 + 4 + 7 + 7] = 2; /* one byte left over */
        snap_reseal(edit, crafted_len);
        expect_rejected(b, crafted, crafted_len, CAIRN_ECORRUPT, "after the last file");
        free(crafted);
    }
    /* Well-formed, but not a database: fails when opened. */
    {
        struct snap_file files[] = {
            {"CURRENT", 7, "MANIFEST-000001\n", 16},
            {"MANIFEST-000001", 15, "garbage", 7},
        };
        crafted = snap_build(1, 1000, 1000, files, 2, &crafted_len);
        expect_rejected(b, crafted, crafted_len, CAIRN_EIO, "rocksdb open");
        free(crafted);
    }

    /* Through all of it b kept its state and its directory is clean. */
    assert_dump(b->s, want);
    assert_int_equal(store_applied_index(b->s), b->index);
    assert_false(exists(b, "db.new"));
    assert_false(exists(b, "db.old"));
    populate(b, 1, "z");
    fix_reopen(b);
    assert_int_equal(store_applied_index(b->s), b->index);

    /* And the untouched snapshot still restores. */
    restore(b, buf, len);
    free(want);
    want = dump(a->s);
    assert_dump(b->s, want);
    free(want);
    free(buf);
    fix_free(a);
    fix_free(b);
}

/* Streams a backup of f into path in odd-sized pieces; returns its size. */
static uint64_t backup_to_file(struct fix *f, const char *path, uint64_t *index)
{
    struct store_backup *b = NULL;
    char msg[CAIRN_ERRMSG_SIZE] = "";
    unsigned char piece[7];
    uint64_t total = 0;
    size_t n = 0;
    FILE *out = fopen(path, "wb");

    assert_non_null(out);
    if (store_backup_begin(f->s, &b, msg, sizeof msg) != 0) {
        fail_msg("backup: %s", msg);
    }
    assert_true(exists(f, "backup-0"));
    *index = store_backup_index(b);
    assert_int_equal(store_backup_revision(b), store_revision(f->s));
    /* Bounded: a stream longer than its announced size is a failure. */
    for (uint64_t i = 0; i <= store_backup_size(b); i++) {
        assert_int_equal(store_backup_read(b, piece, sizeof piece, &n, msg, sizeof msg), 0);
        assert_int_equal(fwrite(piece, 1, n, out), n);
        total += n;
        if (n < sizeof piece) {
            break;
        }
    }
    assert_int_equal(total, store_backup_size(b));
    store_backup_end(b);
    assert_false(exists(f, "backup-0"));
    assert_int_equal(fclose(out), 0);
    return total;
}

/* The dump without the member records, which a restore drops. */
static char *dump_without_members(struct store *s)
{
    char *d = dump(s);
    char *w = d;
    for (char *line = d; *line != '\0';) {
        char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) + 1 : strlen(line);
        if (line[0] != 'm' || line[1] != ' ') {
            memmove(w, line, len);
            w += len;
        }
        line += len;
    }
    *w = '\0';
    return d;
}

static void expect_seed_refused(const char *dir, const char *file, int rv, const char *needle)
{
    char msg[CAIRN_ERRMSG_SIZE] = "";
    uint64_t index = 0, revision = 0;
    struct stat st;
    assert_int_equal(store_seed(dir, file, &index, &revision, msg, sizeof msg), rv);
    if (strstr(msg, needle) == NULL) {
        fail_msg("\"%s\" does not say \"%s\"", msg, needle);
    }
    if (rv != CAIRN_EEXIST) {
        assert_int_not_equal(stat(dir, &st), 0); /* nothing half-written */
    }
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(buf, 1, len, out), len);
    assert_int_equal(fclose(out), 0);
}

/* A backup streamed from a live store seeds a new store with the same
 * objects, revisions, change log and audit log, at applied index 0 and
 * without the old member records; damaged files are refused whole. */
static void test_backup_seed(void **state)
{
    struct fix *a = fix_new();
    char dir[64], file[128], seeded[128], bad[128];
    char msg[CAIRN_ERRMSG_SIZE] = "";
    uint64_t index = 0, got_index = 0, revision = 0, size;
    struct store *s = NULL;
    struct store_command c;
    char *want, *got;
    unsigned char *buf;
    FILE *in;
    (void)state;

    populate(a, 40, "t");
    tmp_dir_make(dir, sizeof dir);
    snprintf(file, sizeof file, "%s/backup.cairn", dir);
    snprintf(seeded, sizeof seeded, "%s/store", dir);
    snprintf(bad, sizeof bad, "%s/bad.cairn", dir);
    size = backup_to_file(a, file, &index);
    assert_int_equal(index, a->index);

    assert_int_equal(store_seed(seeded, file, &got_index, &revision, msg, sizeof msg), 0);
    assert_int_equal(got_index, index);
    assert_int_equal(revision, store_revision(a->s));
    assert_int_equal(store_open(seeded, &s, msg, sizeof msg), 0);
    assert_int_equal(store_applied_index(s), 0);
    assert_int_equal(store_revision(s), store_revision(a->s));
    want = dump(a->s);
    assert_non_null(strstr(want, "\nm ")); /* the source had members */
    free(want);
    want = dump_without_members(a->s);
    got = dump(s);
    assert_string_equal(got, want);
    free(got);
    free(want);
    want = dump_logs(a->s);
    got = dump_logs(s);
    assert_string_equal(got, want);
    free(got);
    free(want);
    /* The new cluster's first entries apply on top, at index 2. */
    c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, "new");
    {
        const struct store_result *res = NULL;
        void *enc;
        size_t enc_len;
        assert_int_equal(store_command_encode(&c, &enc, &enc_len), 0);
        assert_int_equal(store_apply(s, 2, enc, enc_len, &res, msg, sizeof msg), 0);
        assert_int_equal(res->status, 0);
        assert_int_equal(res->revision, store_revision(a->s) + 1);
        free(enc);
    }
    store_destroy(s);

    /* Refusals: an existing directory, a truncated file, a flipped byte, a
     * newer format, a missing file. */
    expect_seed_refused(seeded, file, CAIRN_EEXIST, "exists");
    in = fopen(file, "rb");
    assert_non_null(in);
    buf = malloc((size_t)size);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, in), size);
    fclose(in);
    snprintf(seeded, sizeof seeded, "%s/store2", dir);
    write_file(bad, buf, (size_t)size - 1);
    expect_seed_refused(seeded, bad, CAIRN_ECORRUPT, "checksum mismatch");
    write_file(bad, buf, 20);
    expect_seed_refused(seeded, bad, CAIRN_ECORRUPT, "not a Cairn backup");
    buf[size / 2] ^= 0x40;
    write_file(bad, buf, (size_t)size);
    expect_seed_refused(seeded, bad, CAIRN_ECORRUPT, "checksum mismatch");
    buf[size / 2] ^= 0x40;
    buf[11] = 2; /* format 2 */
    snap_reseal(buf, (size_t)size);
    write_file(bad, buf, (size_t)size);
    expect_seed_refused(seeded, bad, CAIRN_EUNSUPPORTED, "format 2 is not supported");
    expect_seed_refused(seeded, "/nonexistent/backup", CAIRN_EINVAL, "No such file");
    free(buf);
    tmp_dir_remove(dir);
    fix_free(a);
}

static void make_junk_dir(const struct fix *f, const char *name)
{
    char path[256];
    FILE *fp;
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/%s/CURRENT", f->dir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("MANIFEST-000099\n", fp);
    fclose(fp);
}

static void move(const struct fix *from, const char *from_name, const struct fix *to,
                 const char *to_name)
{
    char a[256];
    char b[256];
    snprintf(a, sizeof a, "%s/%s", from->dir, from_name);
    snprintf(b, sizeof b, "%s/%s", to->dir, to_name);
    assert_int_equal(rename(a, b), 0);
}

static void close_store(struct fix *f)
{
    store_destroy(f->s);
    f->s = NULL;
}

static void open_store(struct fix *f)
{
    char msg[CAIRN_ERRMSG_SIZE] = "";
    if (store_open(f->dir, &f->s, msg, sizeof msg) != 0) {
        fail_msg("store_open: %s", msg);
    }
}

static void assert_clean(const struct fix *f)
{
    assert_true(exists(f, "db"));
    assert_false(exists(f, "db.new"));
    assert_false(exists(f, "db.old"));
}

/* Crash recovery: each directory state a crash in restore can leave. */
static void test_recovery(void **state)
{
    struct fix *a = fix_new();
    struct fix *b = fix_new();
    char *want_a;
    char *want_b;
    uint64_t index_b;
    (void)state;

    populate(a, 4, "a");
    populate(b, 9, "b");
    want_a = dump(a->s);
    want_b = dump(b->s);
    index_b = store_applied_index(b->s);
    close_store(a);
    close_store(b);

    /* Crash during unpack (step 1): db whole, db.new partial. A db.old
     * from an earlier crash after step 4 goes too. */
    make_junk_dir(a, "db.new");
    make_junk_dir(a, "db.old");
    open_store(a);
    assert_dump(a->s, want_a);
    assert_clean(a);
    close_store(a);

    /* Crash after step 3, db.new broken (a lying disk): db.old returns. */
    move(a, "db", a, "db.old");
    make_junk_dir(a, "db.new");
    open_store(a);
    assert_dump(a->s, want_a);
    assert_clean(a);
    close_store(a);

    /* Crash after step 3 with no db.new at all: the same. */
    move(a, "db", a, "db.old");
    open_store(a);
    assert_dump(a->s, want_a);
    assert_clean(a);
    close_store(a);

    /* Crash after step 3 with a complete db.new: it is promoted. */
    move(a, "db", a, "db.old");
    move(b, "db", a, "db.new");
    open_store(a);
    assert_dump(a->s, want_b);
    assert_int_equal(store_applied_index(a->s), index_b);
    assert_clean(a);
    close_store(a);

    /* Crash after step 4: db is the new one, db.old is removed. */
    make_junk_dir(a, "db.old");
    open_store(a);
    assert_dump(a->s, want_b);
    assert_clean(a);
    close_store(a);

    /* A db.new alone cannot be trusted: an empty store. */
    make_junk_dir(b, "db.new");
    open_store(b);
    assert_int_equal(store_applied_index(b->s), 0);
    assert_int_equal(store_revision(b->s), 0);
    assert_clean(b);

    open_store(a);
    free(want_a);
    free(want_b);
    fix_free(a);
    fix_free(b);
}

/* A reader on another thread, checking what every read returns. */
struct reader {
    struct store *s;
    atomic_bool stop;      /* set by the main thread when it is done */
    unsigned long rounds;  /* reads made */
    unsigned long errors;  /* failed checks */
    char first_error[160]; /* what failed first */
};

#define READER_ROUNDS_MAX 200000

static void reader_error(struct reader *r, const char *what, int rv)
{
    if (r->errors++ == 0) {
        snprintf(r->first_error, sizeof r->first_error, "%s (rv %d)", what, rv);
    }
}

static void reader_round(struct reader *r, uint64_t *last_rev, uint64_t *last_index)
{
    struct store_list l;
    struct store_object o;
    uint64_t index = store_applied_index(r->s);
    int rv;

    if (index < *last_index) {
        reader_error(r, "applied index went back", 0);
    }
    *last_index = index;
    rv = store_object_list(r->s, STORE_KIND_TENANT, NULL, 64, &l);
    if (rv != 0) {
        reader_error(r, "list", rv);
        return;
    }
    if (l.revision < *last_rev) {
        reader_error(r, "list revision went back", 0);
    }
    *last_rev = l.revision;
    for (size_t i = 0; i < l.n; i++) {
        if (l.items[i].mod_rev > l.revision || l.items[i].create_rev > l.items[i].mod_rev ||
            (i > 0 && strcmp(l.items[i - 1].id, l.items[i].id) >= 0)) {
            reader_error(r, "list page inconsistent", 0);
        }
    }
    store_list_release(&l);
    rv = store_object_get(r->s, STORE_KIND_TENANT, "c0007", &o);
    if (rv == 0) {
        if (strcmp(o.id, "c0007") != 0 || o.create_rev > o.mod_rev) {
            reader_error(r, "get returned a wrong object", 0);
        }
        store_object_release(&o);
    } else if (rv != CAIRN_ENOTFOUND) {
        reader_error(r, "get", rv);
    }
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    uint64_t last_rev = 0;
    uint64_t last_index = 0;
    /* At least one round, then until told to stop (bounded either way). */
    do {
        reader_round(r, &last_rev, &last_index);
        r->rounds++;
    } while (!atomic_load(&r->stop) && r->rounds < READER_ROUNDS_MAX);
    return NULL;
}

static void test_concurrent_reader(void **state)
{
    struct fix *a = fix_new();
    struct fix *leader = fix_new();
    struct reader r;
    pthread_t thread;
    char *want;
    (void)state;

    memset(&r, 0, sizeof r);
    r.s = a->s;
    atomic_init(&r.stop, false);
    assert_int_equal(pthread_create(&thread, NULL, reader_main, &r), 0);
    /* a follows the leader's log; now and then it falls behind and gets
     * the leader's snapshot instead. */
    for (int round = 0; round < 4; round++) {
        char prefix[16];
        void *buf;
        size_t len;
        snprintf(prefix, sizeof prefix, "c%d", round);
        populate(a, 15, prefix);
        populate(leader, 15, prefix);
        snprintf(prefix, sizeof prefix, "d%d", round);
        populate(leader, 10, prefix);
        for (int i = 0; i < 5; i++) {
            char id[32];
            snprintf(id, sizeof id, "c%d%03d", round, i);
            struct store_command c = cmd_make(STORE_OP_DELETE, STORE_KIND_TENANT, id);
            fix_apply(leader, &c);
        }
        take(leader, &buf, &len);
        restore(a, buf, len);
        free(buf);
    }
    atomic_store(&r.stop, true);
    assert_int_equal(pthread_join(thread, NULL), 0);
    if (r.errors != 0) {
        fail_msg("%lu reader errors, first: %s", r.errors, r.first_error);
    }
    assert_true(r.rounds > 0);
    want = dump(leader->s);
    assert_dump(a->s, want);
    free(want);
    fix_free(a);
    fix_free(leader);
}

int run_snapshot_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_restore), cmocka_unit_test(test_snapshot_local_ahead),
        cmocka_unit_test(test_flush_ahead),      cmocka_unit_test(test_snapshot_corrupt),
        cmocka_unit_test(test_recovery),         cmocka_unit_test(test_concurrent_reader),
        cmocka_unit_test(test_backup_seed),
    };
    return cmocka_run_group_tests_name("store snapshot", tests, NULL, NULL);
}
