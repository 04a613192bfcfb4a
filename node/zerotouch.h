/*
 * Zero-touch onboarding's pure logic (zerotouch.c), apart from sockets and
 * the store so that it is unit-tested alone: matching what a device that
 * called home shows (serial, activation code, host key) against a device
 * record, and throttling repeated bad attempts from one peer.
 *
 * Threads: zt_code_equal and zt_match are pure; a zt_throttle may be used
 * from any thread (it has its own lock).
 */
#ifndef CAIRN_ZEROTOUCH_H
#define CAIRN_ZEROTOUCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

/* True if a and b are the same string. The time taken depends only on
 * ZT_CODE_MAX, never on where they differ. Longer strings never match. */
#define ZT_CODE_MAX 64
bool zt_code_equal(const char *a, const char *b);

/* What a device record says of a device that called home. */
enum zt_match {
    ZT_OTHER,    /* the record is for another serial number */
    ZT_BIND,     /* same serial, its unused activation code: bind it */
    ZT_KNOWN,    /* same serial, already bound to this very host key */
    ZT_BAD_CODE, /* same serial, but no unused code matches (or another host key) */
};

/* Compares a device record's body with what the device showed. A device
 * with no activation code never binds. */
enum zt_match zt_match(const json_t *body, const char *serial, const char *code,
                       const char *fingerprint);

/* Throttling of bad attempts, per key (the peer's address and the serial
 * it claims). The first ZT_FREE_FAILURES failures in a row cost nothing;
 * each further one blocks the key for ZT_BLOCK_MIN_MS, doubling up to
 * ZT_BLOCK_MAX_MS. A success clears the key. The table is bounded: when
 * full, the entry used longest ago is reused. */
#define ZT_FREE_FAILURES  3
#define ZT_BLOCK_MIN_MS   5000
#define ZT_BLOCK_MAX_MS   300000
#define ZT_THROTTLE_SLOTS 1024
#define ZT_KEY_SIZE       128

struct zt_slot {
    char key[ZT_KEY_SIZE];  /* "" when free */
    unsigned failures;      /* bad attempts in a row */
    uint64_t blocked_until; /* ms (caller's clock); 0: not blocked */
    uint64_t last_ms;       /* last use, for reuse when full */
};

struct zt_throttle {
    pthread_mutex_t mu;
    struct zt_slot slots[ZT_THROTTLE_SLOTS];
};

void zt_throttle_init(struct zt_throttle *t);
void zt_throttle_close(struct zt_throttle *t);
/* False while key is blocked at now_ms. */
bool zt_throttle_allowed(struct zt_throttle *t, const char *key, uint64_t now_ms);
/* Counts a bad attempt; returns how long key is now blocked (0: not). */
uint64_t zt_throttle_failed(struct zt_throttle *t, const char *key, uint64_t now_ms);
/* Forgets key (a good attempt). */
void zt_throttle_succeeded(struct zt_throttle *t, const char *key);

#endif /* CAIRN_ZEROTOUCH_H */
