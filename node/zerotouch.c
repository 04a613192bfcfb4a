/*
 * Zero-touch onboarding's pure logic: activation-code matching and the
 * throttle of bad call-home attempts (see zerotouch.h; the call-home
 * listener that uses them is callhome.c).
 */
#include "zerotouch.h"

#include <stdio.h>
#include <string.h>

bool zt_code_equal(const char *a, const char *b)
{
    unsigned char pa[ZT_CODE_MAX] = {0}, pb[ZT_CODE_MAX] = {0};
    size_t la = strnlen(a, ZT_CODE_MAX), lb = strnlen(b, ZT_CODE_MAX);
    volatile unsigned char diff = 0;

    memcpy(pa, a, la);
    memcpy(pb, b, lb);
    for (size_t i = 0; i < ZT_CODE_MAX; i++) {
        diff |= (unsigned char)(pa[i] ^ pb[i]);
    }
    /* Equal padded buffers and lengths; a string of ZT_CODE_MAX or more
     * characters was cut, so it never matches. */
    return diff == 0 && la == lb && la < ZT_CODE_MAX;
}

static const char *str_of(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

enum zt_match zt_match(const json_t *body, const char *serial, const char *code,
                       const char *fingerprint)
{
    const char *rec_serial = str_of(body, "serial");
    const char *rec_code = str_of(body, "activation_code");
    const char *rec_key = str_of(body, "host_key");

    if (rec_serial == NULL || serial == NULL || strcmp(rec_serial, serial) != 0) {
        return ZT_OTHER;
    }
    if (rec_code != NULL && rec_code[0] != '\0') {
        return code != NULL && code[0] != '\0' && zt_code_equal(rec_code, code) ? ZT_BIND
                                                                                : ZT_BAD_CODE;
    }
    /* Consumed: only the device it was bound to is known again. */
    if (rec_key != NULL && fingerprint != NULL && strcmp(rec_key, fingerprint) == 0 &&
        json_object_get(json_object_get(body, "status"), "zero_touch") != NULL) {
        return ZT_KNOWN;
    }
    return ZT_BAD_CODE;
}

void zt_throttle_init(struct zt_throttle *t)
{
    memset(t->slots, 0, sizeof t->slots);
    pthread_mutex_init(&t->mu, NULL);
}

void zt_throttle_close(struct zt_throttle *t)
{
    pthread_mutex_destroy(&t->mu);
}

/* The slot of key, or NULL; with create, a free or the stalest slot. */
static struct zt_slot *slot_of(struct zt_throttle *t, const char *key, bool create)
{
    struct zt_slot *victim = NULL;
    for (size_t i = 0; i < ZT_THROTTLE_SLOTS; i++) {
        struct zt_slot *s = &t->slots[i];
        if (s->key[0] == '\0') {
            if (victim == NULL || victim->key[0] != '\0') {
                victim = s; /* a free slot beats any used one */
            }
        } else if (strncmp(s->key, key, ZT_KEY_SIZE - 1) == 0) {
            return s;
        } else if (victim == NULL || (victim->key[0] != '\0' && s->last_ms < victim->last_ms)) {
            victim = s;
        }
    }
    if (!create) {
        return NULL;
    }
    memset(victim, 0, sizeof *victim);
    snprintf(victim->key, sizeof victim->key, "%s", key);
    return victim;
}

bool zt_throttle_allowed(struct zt_throttle *t, const char *key, uint64_t now_ms)
{
    struct zt_slot *s;
    bool allowed;
    pthread_mutex_lock(&t->mu);
    s = slot_of(t, key, false);
    allowed = s == NULL || now_ms >= s->blocked_until;
    pthread_mutex_unlock(&t->mu);
    return allowed;
}

uint64_t zt_throttle_failed(struct zt_throttle *t, const char *key, uint64_t now_ms)
{
    struct zt_slot *s;
    uint64_t block = 0;
    pthread_mutex_lock(&t->mu);
    s = slot_of(t, key, true);
    s->failures++;
    s->last_ms = now_ms;
    if (s->failures > ZT_FREE_FAILURES) {
        unsigned shift = s->failures - ZT_FREE_FAILURES - 1;
        block = shift >= 16 ? ZT_BLOCK_MAX_MS : (uint64_t)ZT_BLOCK_MIN_MS << shift;
        if (block > ZT_BLOCK_MAX_MS) {
            block = ZT_BLOCK_MAX_MS;
        }
        s->blocked_until = now_ms + block;
    }
    pthread_mutex_unlock(&t->mu);
    return block;
}

void zt_throttle_succeeded(struct zt_throttle *t, const char *key)
{
    struct zt_slot *s;
    pthread_mutex_lock(&t->mu);
    s = slot_of(t, key, false);
    if (s != NULL) {
        memset(s, 0, sizeof *s);
    }
    pthread_mutex_unlock(&t->mu);
}
