/*
 * Shared pieces of the store's unit tests: a store in a temporary
 * directory, applying commands at consecutive indexes, a text dump of the
 * whole visible state for before/after comparisons, and a deterministic
 * random generator.
 */
#ifndef CAIRN_TEST_STORE_HELPERS_H
#define CAIRN_TEST_STORE_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_int.h"

/* A store in a fresh temporary directory. */
struct fix {
    char dir[64]; /* /tmp/cairn-store-XXXXXX */
    struct store *s;
    uint64_t index; /* last raft index given to fix_apply */
};

/* A new store in a new temporary directory; fix_free removes both. */
struct fix *fix_new(void);
void fix_free(struct fix *f);

/* cmocka setup/teardown making a struct fix in *state. */
int fix_setup(void **state);
int fix_teardown(void **state);

/* Closes and reopens the store. */
void fix_reopen(struct fix *f);

void tmp_dir_make(char *out, size_t size);
void tmp_dir_remove(const char *dir);

/* A command with version 1, time_ms 1000 and nothing optional. */
struct store_command cmd_make(enum store_op op, enum store_kind kind, const char *id);

/* Encodes cmd, applies it at f->index + 1 (asserting success) and returns
 * a copy of the result. */
struct store_result fix_apply(struct fix *f, const struct store_command *cmd);

/* Applies raw bytes at f->index + 1. */
struct store_result fix_apply_raw(struct fix *f, const void *buf, size_t len);

/* Shorthands: op on a tenant with a name and body, at time 1000. */
struct store_result fix_create(struct fix *f, const char *id, const char *name);

/* A command on kind/id scoped to tenant (or NULL) under parent (kind 0 for
 * none), at time 1000. */
struct store_command cmd_scoped(enum store_op op, enum store_kind kind, const char *id,
                                const char *tenant, enum store_kind parent_kind,
                                const char *parent_id);

/* Applies cmd_scoped(...) and asserts the status. */
struct store_result fix_scoped(struct fix *f, enum store_op op, enum store_kind kind,
                               const char *id, const char *tenant, enum store_kind parent_kind,
                               const char *parent_id, int status);

/* Every kind, in key order. */
extern const enum store_kind all_kinds[10];

/* Every object of every kind, with names, revisions and bodies, and the
 * global revision, as text (malloc'ed); read page by page. */
char *dump(struct store *s);

/* The change log (all of it, read page by page) and the audit log (newest
 * first), as text (malloc'ed). */
char *dump_logs(struct store *s);

/* Keys in one column family (looks inside the database). */
uint64_t cf_count(struct store *s, enum store_cf cf);

/* xorshift64*: deterministic, so a failure reproduces. */
uint64_t prng_next(uint64_t *state);

/* Runs a group of each test file. */
int run_codec_tests(void);
int run_apply_tests(void);
int run_snapshot_tests(void);
int run_tree_tests(void);
int run_log_tests(void);

#endif /* CAIRN_TEST_STORE_HELPERS_H */
