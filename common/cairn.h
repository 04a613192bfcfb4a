/*
 * The small pieces every Cairn module shares: error codes and their
 * messages (one X-macro table yields both), the error-message buffer each
 * long-lived object carries, logging in key=value lines that journald keeps
 * well, monotonic and wall clocks, and random identifiers.
 *
 * Every function here may be called from any thread.
 */
#ifndef CAIRN_H
#define CAIRN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X(name, message): the message says what went wrong in words a user reads. */
#define CAIRN_ERRORS(X)                                                   \
    X(CAIRN_ENOMEM, "out of memory")                                      \
    X(CAIRN_EINVAL, "invalid argument")                                   \
    X(CAIRN_EIO, "input/output error")                                    \
    X(CAIRN_ENOTFOUND, "not found")                                       \
    X(CAIRN_EEXIST, "already exists")                                     \
    X(CAIRN_EPRECONDITION, "precondition failed")                         \
    X(CAIRN_EMALFORMED, "malformed data")                                 \
    X(CAIRN_EUNSUPPORTED, "unsupported command type or version")          \
    X(CAIRN_ENOTLEADER, "this node is not the leader")                    \
    X(CAIRN_ENOLEADER, "the cluster has no leader (no quorum)")           \
    X(CAIRN_ETIMEDOUT, "timed out")                                       \
    X(CAIRN_ESHUTDOWN, "shutting down")                                   \
    X(CAIRN_EBUSY, "busy: another operation is in progress")              \
    X(CAIRN_ECORRUPT, "corrupt data")                                     \
    X(CAIRN_EWRONGCLUSTER, "data belongs to another cluster or node")     \
    X(CAIRN_ETOOBIG, "too big")                                           \
    X(CAIRN_ECONFLICT, "conflict with the current state")                 \
    X(CAIRN_EIDEMPOTENCY, "idempotency key reused with a different body") \
    X(CAIRN_EUNAVAILABLE, "peer unavailable")                             \
    X(CAIRN_EFORBIDDEN, "forbidden")

enum {
    CAIRN_OK = 0,
#define CAIRN_ERROR_ENUM(name, msg) name,
    CAIRN_ERROR_FIRST_ = 99,
    CAIRN_ERRORS(CAIRN_ERROR_ENUM)
#undef CAIRN_ERROR_ENUM
        CAIRN_ERROR_LAST_
};

/* Returns the message of a CAIRN_E* code ("unknown error" for others). */
const char *cairn_strerror(int rv);

/* Size of the errmsg buffer each long-lived object carries. */
#define CAIRN_ERRMSG_SIZE 512

/* Writes a formatted message into errmsg (truncating safely). */
void cairn_errmsg_set(char *errmsg, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes errmsg with a formatted context and ": ", so that messages read
 * as a chain of causes: "load tenant t1: rocksdb get: IO error". */
void cairn_errmsg_wrap(char *errmsg, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logging: one line per event on stderr, "level=info msg=... key=value". */
enum { CAIRN_LOG_ERROR = 1, CAIRN_LOG_WARN, CAIRN_LOG_INFO, CAIRN_LOG_DEBUG };

/* Sets the level below which events are dropped, and a prefix (for
 * example "node=2") put on every line. The prefix is copied. */
void cairn_log_setup(int level, const char *prefix);

/* Parses "error", "warn", "info" or "debug"; returns 0 for anything else. */
int cairn_log_level_parse(const char *name);

void cairn_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define CAIRN_ERROR(...) cairn_log(CAIRN_LOG_ERROR, __VA_ARGS__)
#define CAIRN_WARN(...)  cairn_log(CAIRN_LOG_WARN, __VA_ARGS__)
#define CAIRN_INFO(...)  cairn_log(CAIRN_LOG_INFO, __VA_ARGS__)
#define CAIRN_DEBUG(...) cairn_log(CAIRN_LOG_DEBUG, __VA_ARGS__)

/* Milliseconds on the monotonic clock, and since the Unix epoch. */
uint64_t cairn_now_ms(void);
int64_t cairn_wall_ms(void);

/* Fills buf with len cryptographically random bytes (getrandom). */
void cairn_random_bytes(void *buf, size_t len);

/* Entries of a directory other than "." and "..", 0 if it cannot be read:
 * with /proc/self/task, this process's threads; /proc/self/fd, its
 * descriptors. */
unsigned cairn_dir_entries(const char *dir);

/* The delay before retry number `failures` (1 for the first) of something
 * that keeps failing: min_ms doubled for each earlier failure, capped at
 * max_ms, then spread over +-25% by random (any value; pass
 * cairn_random_bytes' output) so that many peers that failed together do
 * not retry together. Pure: the caller keeps the failure count. */
uint64_t cairn_backoff_ms(uint64_t min_ms, uint64_t max_ms, unsigned failures, uint32_t random);

/* Writes a fresh RFC 9562 version 7 UUID, lower-case, into out (at least
 * CAIRN_UUID_SIZE bytes, NUL-terminated): the wall clock's Unix time in
 * milliseconds (48 bits), then 74 random bits. Ids made later sort later
 * (to the millisecond, as far as the clocks agree), so the store's keys of
 * new objects and request ids land next to each other instead of all over
 * RocksDB's skip lists and files (docs/design.md, "The store"). */
#define CAIRN_UUID_SIZE 37
void cairn_uuid(char out[CAIRN_UUID_SIZE]);

/* True if s is a lower-case UUID as cairn_uuid writes them. */
bool cairn_uuid_valid(const char *s);

/* Parses a decimal unsigned 64-bit integer that fills the whole string. */
int cairn_parse_u64(const char *s, uint64_t *out);

/* Checks that an IPv4 "host:port" (a dotted quad; port > 0) can be bound
 * now, by binding and closing a socket. On failure errmsg reads "listen on
 * ADDRESS: reason" and CAIRN_EIO is returned; CAIRN_EINVAL for an address
 * that is not a dotted quad and port (then nothing is checked). */
int cairn_listen_check(const char *address, char *errmsg, size_t size);

/* A growable byte buffer. */
struct cairn_buf {
    char *data; /* NUL-terminated when non-NULL */
    size_t len; /* bytes in use, not counting the NUL */
    size_t cap; /* bytes allocated */
};

void cairn_buf_init(struct cairn_buf *b);
void cairn_buf_close(struct cairn_buf *b);
int cairn_buf_append(struct cairn_buf *b, const void *data, size_t len);
/* Makes room for extra more bytes (and the NUL) after len, so that a read
 * can fill b->data + b->len directly; len is unchanged. */
int cairn_buf_reserve(struct cairn_buf *b, size_t extra);
int cairn_buf_printf(struct cairn_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* CAIRN_H */
