/* Helpers shared by the store's unit tests (see helpers.h). */
#include "helpers.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tmp_dir_make(char *out, size_t size)
{
    snprintf(out, size, "/tmp/cairn-store-XXXXXX");
    assert_non_null(mkdtemp(out));
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

void tmp_dir_remove(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

struct fix *fix_new(void)
{
    char msg[CAIRN_ERRMSG_SIZE] = "";
    struct fix *f = calloc(1, sizeof *f);
    assert_non_null(f);
    tmp_dir_make(f->dir, sizeof f->dir);
    if (store_open(f->dir, &f->s, msg, sizeof msg) != 0) {
        fail_msg("store_open: %s", msg);
    }
    return f;
}

void fix_free(struct fix *f)
{
    store_destroy(f->s);
    tmp_dir_remove(f->dir);
    free(f);
}

int fix_setup(void **state)
{
    *state = fix_new();
    return 0;
}

int fix_teardown(void **state)
{
    fix_free(*state);
    return 0;
}

void fix_reopen(struct fix *f)
{
    char msg[CAIRN_ERRMSG_SIZE] = "";
    store_destroy(f->s);
    f->s = NULL;
    if (store_open(f->dir, &f->s, msg, sizeof msg) != 0) {
        fail_msg("store_open: %s", msg);
    }
}

struct store_command cmd_make(enum store_op op, enum store_kind kind, const char *id)
{
    struct store_command c;
    memset(&c, 0, sizeof c);
    c.version = STORE_COMMAND_VERSION;
    c.op = op;
    c.kind = kind;
    c.id = id;
    c.time_ms = 1000;
    return c;
}

struct store_result fix_apply_raw(struct fix *f, const void *buf, size_t len)
{
    const struct store_result *res = NULL;
    char msg[CAIRN_ERRMSG_SIZE] = "";
    f->index++;
    if (store_apply(f->s, f->index, buf, len, &res, msg, sizeof msg) != 0) {
        fail_msg("store_apply %llu: %s", (unsigned long long)f->index, msg);
    }
    assert_non_null(res);
    assert_int_equal(store_applied_index(f->s), f->index);
    return *res;
}

struct store_result fix_apply(struct fix *f, const struct store_command *cmd)
{
    struct store_result res;
    void *buf;
    size_t len;
    assert_int_equal(store_command_encode(cmd, &buf, &len), 0);
    res = fix_apply_raw(f, buf, len);
    free(buf);
    return res;
}

struct store_result fix_create(struct fix *f, const char *id, const char *name)
{
    struct store_command c = cmd_make(STORE_OP_CREATE, STORE_KIND_TENANT, id);
    c.name = name;
    c.body = "{}";
    c.body_len = 2;
    return fix_apply(f, &c);
}

char *dump(struct store *s)
{
    static const enum store_kind kinds[] = {STORE_KIND_TENANT, STORE_KIND_MEMBER};
    struct cairn_buf b;
    cairn_buf_init(&b);
    assert_int_equal(cairn_buf_printf(&b, "revision=%llu\n", (unsigned long long)store_revision(s)),
                     0);
    for (size_t k = 0; k < 2; k++) {
        char after[STORE_ID_MAX + 1] = "";
        bool more = true;
        while (more) {
            struct store_list l;
            assert_int_equal(store_object_list(s, kinds[k], after[0] != '\0' ? after : NULL, 7, &l),
                             0);
            for (size_t i = 0; i < l.n; i++) {
                struct store_object *o = &l.items[i];
                assert_int_equal(o->kind, kinds[k]);
                assert_int_equal(
                    cairn_buf_printf(&b, "%c %s name=%s c=%llu m=%llu body=%s\n", (char)o->kind,
                                     o->id, o->name != NULL ? o->name : "(none)",
                                     (unsigned long long)o->create_rev,
                                     (unsigned long long)o->mod_rev, o->body),
                    0);
                snprintf(after, sizeof after, "%s", o->id);
            }
            more = l.more;
            store_list_release(&l);
        }
    }
    return b.data;
}

uint64_t cf_count(struct store *s, enum store_cf cf)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db.db, s->db.ropts, s->db.cf[cf]);
    uint64_t n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        n++;
    }
    rocksdb_iter_destroy(it);
    return n;
}

uint64_t prng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}
