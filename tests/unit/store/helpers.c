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

const enum store_kind all_kinds[10] = {
    STORE_KIND_SITE,    STORE_KIND_TEMPLATE, STORE_KIND_DEVICE, STORE_KIND_JOB,
    STORE_KIND_MEMBER,  STORE_KIND_SESSION,  STORE_KIND_TENANT, STORE_KIND_USER,
    STORE_KIND_SERVICE, STORE_KIND_SYSTEM,
};

struct store_command cmd_scoped(enum store_op op, enum store_kind kind, const char *id,
                                const char *tenant, enum store_kind parent_kind,
                                const char *parent_id)
{
    struct store_command c = cmd_make(op, kind, id);
    c.tenant = tenant;
    c.parent_kind = parent_kind;
    c.parent_id = parent_kind != 0 ? parent_id : NULL;
    return c;
}

struct store_result fix_scoped(struct fix *f, enum store_op op, enum store_kind kind,
                               const char *id, const char *tenant, enum store_kind parent_kind,
                               const char *parent_id, int status)
{
    struct store_command c = cmd_scoped(op, kind, id, tenant, parent_kind, parent_id);
    struct store_result r = fix_apply(f, &c);
    if (r.status != status) {
        fail_msg("%c %s: status %d (%s), want %d", (char)kind, id, r.status, r.message, status);
    }
    return r;
}

/* The fields an object has beyond name and body, as text. */
static void print_extra(struct cairn_buf *b, const struct store_object *o)
{
    if (o->tenant != NULL) {
        assert_int_equal(cairn_buf_printf(b, " tenant=%s", o->tenant), 0);
    }
    if (o->parent_kind != 0) {
        assert_int_equal(cairn_buf_printf(b, " parent=%c:%s", (char)o->parent_kind, o->parent_id),
                         0);
    }
    if (o->expires_ms != 0) {
        assert_int_equal(cairn_buf_printf(b, " expires=%lld", (long long)o->expires_ms), 0);
    }
    for (size_t i = 0; i < o->n_limits; i++) {
        assert_int_equal(cairn_buf_printf(b, " limit=%c:%llu", (char)o->limits[i].kind,
                                          (unsigned long long)o->limits[i].max),
                         0);
    }
}

char *dump(struct store *s)
{
    const enum store_kind *kinds = all_kinds;
    struct cairn_buf b;
    cairn_buf_init(&b);
    assert_int_equal(cairn_buf_printf(&b, "revision=%llu\n", (unsigned long long)store_revision(s)),
                     0);
    for (size_t k = 0; k < 10; k++) {
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
                    cairn_buf_printf(&b, "%c %s name=%s c=%llu m=%llu body=%s", (char)o->kind,
                                     o->id, o->name != NULL ? o->name : "(none)",
                                     (unsigned long long)o->create_rev,
                                     (unsigned long long)o->mod_rev, o->body),
                    0);
                print_extra(&b, o);
                assert_int_equal(cairn_buf_append(&b, "\n", 1), 0);
                snprintf(after, sizeof after, "%s", o->id);
            }
            more = l.more;
            store_list_release(&l);
        }
    }
    return b.data;
}

char *dump_logs(struct store *s)
{
    struct cairn_buf b;
    uint64_t from = 0;
    uint64_t after = 0;
    bool more = true;
    cairn_buf_init(&b);
    for (;;) {
        struct store_change_list l;
        assert_int_equal(store_changes_read(s, from, 5, &l), 0);
        for (size_t i = 0; i < l.n; i++) {
            const struct store_change *c = &l.items[i];
            assert_int_equal(
                cairn_buf_printf(&b, "change r=%llu %s %c %s name=%s body=%s",
                                 (unsigned long long)c->revision, c->deleted ? "deleted" : "put",
                                 (char)c->object.kind, c->object.id,
                                 c->object.name != NULL ? c->object.name : "(none)",
                                 c->object.body != NULL ? c->object.body : "(none)"),
                0);
            print_extra(&b, &c->object);
            assert_int_equal(cairn_buf_append(&b, "\n", 1), 0);
            from = c->revision;
        }
        assert_int_equal(
            cairn_buf_printf(&b, "changes oldest=%llu\n", (unsigned long long)l.oldest), 0);
        if (l.n == 0) {
            store_change_list_release(&l);
            break;
        }
        store_change_list_release(&l);
    }
    while (more) {
        struct store_audit_query q = {0};
        struct store_audit_list l;
        q.after = after;
        q.limit = 4;
        assert_int_equal(store_audit_query(s, &q, &l), 0);
        for (size_t i = 0; i < l.n; i++) {
            const struct store_audit *a = &l.items[i];
            assert_int_equal(
                cairn_buf_printf(
                    &b, "audit %llu ts=%lld by=%s tenant=%s op=%d %c %s s=%d msg=%s r=%llu\n",
                    (unsigned long long)a->seq, (long long)a->time_ms, a->caller,
                    a->tenant != NULL ? a->tenant : "(none)", (int)a->op, (char)a->kind, a->id,
                    a->status, a->message != NULL ? a->message : "(none)",
                    (unsigned long long)a->revision),
                0);
        }
        more = l.more;
        after = l.next;
        store_audit_list_release(&l);
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
