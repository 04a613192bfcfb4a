/*
 * Who is calling: passwords, bearer tokens and the login throttle, the
 * authentication every /api/v1 request but the login goes through, and the
 * routes /api/v1/auth/login, /logout and /whoami.
 *
 * Passwords are kept only as argon2id hashes (libsodium's crypto_pwhash_str
 * with the interactive limits: 64 MiB and about 0.1 s per hash), computed
 * on the HTTP worker before anything is proposed. At most
 * API_KDF_CONCURRENCY hashes run at once per node, so a burst of logins
 * cannot take gigabytes; the others wait for a turn within their deadline.
 *
 * A login creates a session: a store object of kind STORE_KIND_SESSION
 * whose id is the hex SHA-256 of the token (the token itself is never
 * stored or logged), scoped to the user's tenant, child of the user, with
 * an expiry. It is proposed like any write, so once the login is answered
 * the session is committed and every node learns it; a logout deletes it
 * the same way. To authenticate, a node reads the session from its own
 * replica; a token it does not know yet (minted on another node a moment
 * ago) gets one read barrier and a second look, so a fresh token works on
 * every node at once.
 *
 * Failed logins are counted per node, in memory (the throttle below): per
 * user name and per client address, API_LOGIN_MAX_FAILURES within
 * API_LOGIN_WINDOW_MS make further attempts answer 429 with Retry-After,
 * without looking at the password. A success forgets the user name's
 * failures. An unknown user name costs the same hash verification as a
 * known one (against a dummy hash) and gets the same answer as a wrong
 * password, so neither timing nor body tells whether a user exists.
 */
#include "api_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <civetweb.h>
#include <sodium.h>

_Static_assert(API_PASSWORD_HASH_SIZE == crypto_pwhash_STRBYTES, "password hash size");
_Static_assert(API_TOKEN_SIZE ==
                   sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               "token size");
_Static_assert(API_SESSION_ID_SIZE == crypto_hash_sha256_BYTES * 2 + 1, "session id size");

#define TOKEN_BYTES 32

/* --- passwords ------------------------------------------------------------ */

int api_password_hash(const char *password, size_t len, char out[API_PASSWORD_HASH_SIZE])
{
    if (crypto_pwhash_str_alg(out, password, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
        return CAIRN_ENOMEM;
    }
    return 0;
}

bool api_password_verify(const char *hash, const char *password, size_t len)
{
    char copy[API_PASSWORD_HASH_SIZE];
    /* crypto_pwhash_str_verify reads a fixed-size, NUL-terminated buffer. */
    if (hash == NULL || strlen(hash) >= sizeof copy) {
        return false;
    }
    memset(copy, 0, sizeof copy);
    memcpy(copy, hash, strlen(hash));
    return crypto_pwhash_str_verify(copy, password, len) == 0;
}

static void abs_time(uint64_t ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ms / 1000);
    ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

/* Takes one of the KDF turns, waiting until deadline_ms at most. */
static int kdf_enter(struct api *api, uint64_t deadline_ms)
{
    struct timespec ts;
    int rv = 0;
    abs_time(deadline_ms, &ts);
    pthread_mutex_lock(&api->kdf_mu);
    while (api->kdf_running >= API_KDF_CONCURRENCY) {
        if (pthread_cond_timedwait(&api->kdf_cv, &api->kdf_mu, &ts) == ETIMEDOUT) {
            rv = api->kdf_running >= API_KDF_CONCURRENCY ? CAIRN_ETIMEDOUT : 0;
            break;
        }
    }
    if (rv == 0) {
        api->kdf_running++;
    }
    pthread_mutex_unlock(&api->kdf_mu);
    return rv;
}

static void kdf_leave(struct api *api)
{
    pthread_mutex_lock(&api->kdf_mu);
    api->kdf_running--;
    pthread_cond_signal(&api->kdf_cv);
    pthread_mutex_unlock(&api->kdf_mu);
}

int api_kdf_hash(struct api *api, const char *password, size_t len, uint64_t deadline_ms,
                 char out[API_PASSWORD_HASH_SIZE])
{
    int rv = kdf_enter(api, deadline_ms);
    if (rv == 0) {
        rv = api_password_hash(password, len, out);
        kdf_leave(api);
    }
    return rv;
}

int api_kdf_verify(struct api *api, const char *hash, const char *password, size_t len,
                   uint64_t deadline_ms)
{
    int rv = kdf_enter(api, deadline_ms);
    if (rv == 0) {
        rv = api_password_verify(hash, password, len) ? 0 : CAIRN_ENOTFOUND;
        kdf_leave(api);
    }
    return rv;
}

/* The hash an unknown user's password is checked against, made on first
 * use (hashing at start-up would slow every node and test down). */
static int dummy_hash(struct api *api, uint64_t deadline_ms, char out[API_PASSWORD_HASH_SIZE])
{
    unsigned char secret[16];
    char made[API_PASSWORD_HASH_SIZE];
    int rv = 0;

    pthread_mutex_lock(&api->kdf_mu);
    memcpy(out, api->dummy_hash, API_PASSWORD_HASH_SIZE);
    pthread_mutex_unlock(&api->kdf_mu);
    if (out[0] != '\0') {
        return 0;
    }
    cairn_random_bytes(secret, sizeof secret);
    rv = api_kdf_hash(api, (const char *)secret, sizeof secret, deadline_ms, made);
    if (rv != 0) {
        return rv;
    }
    pthread_mutex_lock(&api->kdf_mu);
    if (api->dummy_hash[0] == '\0') {
        memcpy(api->dummy_hash, made, sizeof made);
    }
    memcpy(out, api->dummy_hash, API_PASSWORD_HASH_SIZE);
    pthread_mutex_unlock(&api->kdf_mu);
    return 0;
}

/* --- tokens --------------------------------------------------------------- */

void api_token_new(char out[API_TOKEN_SIZE])
{
    unsigned char bin[TOKEN_BYTES];
    cairn_random_bytes(bin, sizeof bin);
    sodium_bin2base64(out, API_TOKEN_SIZE, bin, sizeof bin,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(bin, sizeof bin);
}

bool api_token_well_formed(const char *token, size_t len)
{
    if (len != API_TOKEN_SIZE - 1) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = token[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_')) {
            return false;
        }
    }
    return true;
}

void api_session_id(const char *token, size_t len, char out[API_SESSION_ID_SIZE])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)token, len);
    sodium_bin2hex(out, API_SESSION_ID_SIZE, digest, sizeof digest);
}

/* --- the login throttle --------------------------------------------------- */

/* One key's recent failures: a ring of the last max_failures times. A key
 * is stored as a keyed hash (SipHash, key random per table), so the table
 * has a fixed size whatever the names, and nobody can aim collisions. */
struct throttle_slot {
    uint64_t key;  /* hash of the key text */
    unsigned n;    /* failures in the ring (0: slot free) */
    unsigned head; /* where the next failure goes; also the oldest when full */
    uint64_t last; /* time of the newest failure, for eviction */
};

struct api_throttle {
    pthread_mutex_t mu; /* guards everything below */
    struct throttle_slot *slots;
    uint64_t *times; /* slots x max_failures, slot i's ring at i * max_failures */
    size_t n_slots;
    unsigned max_failures;
    uint64_t window_ms;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
};

int api_throttle_create(size_t slots, unsigned max_failures, uint64_t window_ms,
                        struct api_throttle **out)
{
    struct api_throttle *t;
    if (slots == 0 || max_failures == 0 || window_ms == 0) {
        return CAIRN_EINVAL;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        return CAIRN_ENOMEM;
    }
    t->slots = calloc(slots, sizeof *t->slots);
    t->times = calloc(slots * max_failures, sizeof *t->times);
    if (t->slots == NULL || t->times == NULL) {
        free(t->slots);
        free(t->times);
        free(t);
        return CAIRN_ENOMEM;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->n_slots = slots;
    t->max_failures = max_failures;
    t->window_ms = window_ms;
    cairn_random_bytes(t->hash_key, sizeof t->hash_key);
    *out = t;
    return 0;
}

void api_throttle_destroy(struct api_throttle *t)
{
    if (t == NULL) {
        return;
    }
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t->times);
    free(t);
}

static uint64_t throttle_hash(const struct api_throttle *t, const char *key)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint64_t v;
    crypto_shorthash(h, (const unsigned char *)key, strlen(key), t->hash_key);
    memcpy(&v, h, sizeof v);
    return v;
}

/* The slot of key, or NULL. Called with t->mu held. */
static struct throttle_slot *slot_find(struct api_throttle *t, uint64_t key)
{
    for (size_t i = 0; i < t->n_slots; i++) {
        if (t->slots[i].n > 0 && t->slots[i].key == key) {
            return &t->slots[i];
        }
    }
    return NULL;
}

unsigned api_throttle_wait(struct api_throttle *t, const char *key, uint64_t now_ms)
{
    uint64_t h = throttle_hash(t, key);
    struct throttle_slot *s;
    unsigned wait = 0;

    pthread_mutex_lock(&t->mu);
    s = slot_find(t, h);
    if (s != NULL && s->n == t->max_failures) {
        /* Full ring: head is the oldest of the last max_failures. */
        uint64_t oldest = t->times[(size_t)(s - t->slots) * t->max_failures + s->head];
        if (now_ms < oldest + t->window_ms) {
            uint64_t left = oldest + t->window_ms - now_ms;
            wait = (unsigned)((left + 999) / 1000);
        }
    }
    pthread_mutex_unlock(&t->mu);
    return wait;
}

void api_throttle_fail(struct api_throttle *t, const char *key, uint64_t now_ms)
{
    uint64_t h = throttle_hash(t, key);
    struct throttle_slot *s;

    pthread_mutex_lock(&t->mu);
    s = slot_find(t, h);
    if (s == NULL) {
        /* A free slot, else the one whose newest failure is oldest. */
        struct throttle_slot *victim = &t->slots[0];
        for (size_t i = 0; i < t->n_slots; i++) {
            if (t->slots[i].n == 0) {
                victim = &t->slots[i];
                break;
            }
            if (t->slots[i].last < victim->last) {
                victim = &t->slots[i];
            }
        }
        s = victim;
        memset(s, 0, sizeof *s);
        s->key = h;
    }
    t->times[(size_t)(s - t->slots) * t->max_failures + s->head] = now_ms;
    s->head = (s->head + 1) % t->max_failures;
    if (s->n < t->max_failures) {
        s->n++;
    }
    s->last = now_ms;
    pthread_mutex_unlock(&t->mu);
}

void api_throttle_reset(struct api_throttle *t, const char *key)
{
    uint64_t h = throttle_hash(t, key);
    struct throttle_slot *s;
    pthread_mutex_lock(&t->mu);
    s = slot_find(t, h);
    if (s != NULL) {
        memset(s, 0, sizeof *s);
    }
    pthread_mutex_unlock(&t->mu);
}

size_t api_throttle_count(struct api_throttle *t)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n_slots; i++) {
        n += t->slots[i].n > 0;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* --- authentication ------------------------------------------------------- */

/* 401, with the challenge RFC 6750 asks for. */
static int unauthorized(struct api_req *req, bool invalid_token, const char *detail)
{
    return api_problem(req, 401, "unauthorized", NULL,
                       invalid_token
                           ? "WWW-Authenticate: Bearer realm=\"cairn\", error=\"invalid_token\"\r\n"
                           : "WWW-Authenticate: Bearer realm=\"cairn\"\r\n",
                       "%s", detail);
}

#define LOGIN_AGAIN \
    "the token is unknown, expired or revoked; log in again with POST /api/v1/auth/login"

/* Finds the token in the Authorization header ("Bearer TOKEN", the scheme
 * in any case). Returns its length, 0 if there is no such header, -1 if the
 * header is not a bearer token. */
static int bearer_token(const char *header, const char **token)
{
    static const char scheme[] = "Bearer";
    const char *p = header;
    size_t len;

    if (p == NULL) {
        return 0;
    }
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (strncasecmp(p, scheme, sizeof scheme - 1) != 0 ||
        (p[sizeof scheme - 1] != ' ' && p[sizeof scheme - 1] != '\t')) {
        return -1;
    }
    p += sizeof scheme - 1;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    len = strcspn(p, " \t");
    if (p[len + strspn(p + len, " \t")] != '\0' || !api_token_well_formed(p, len)) {
        return -1;
    }
    *token = p;
    return (int)len;
}

/* Reads the session, with one read barrier if this node does not know it
 * (yet). Returns 0, CAIRN_ENOTFOUND, or the barrier's failure (answered). */
static int session_get(struct api_req *req, const char *id, struct store_object *o, int *answered)
{
    const struct api_backend *b = &req->api->backend;
    char errmsg[CAIRN_ERRMSG_SIZE] = "";
    int rv = store_object_get(req->api->store, STORE_KIND_SESSION, id, o);

    *answered = 0;
    if (rv != CAIRN_ENOTFOUND) {
        return rv;
    }
    rv = b->read_barrier(b->data, req->deadline_ms, errmsg, sizeof errmsg);
    if (rv != 0) {
        cairn_errmsg_wrap(errmsg, sizeof errmsg, "look up the token");
        *answered = api_fail(req, rv, errmsg, NULL);
        return rv;
    }
    return store_object_get(req->api->store, STORE_KIND_SESSION, id, o);
}

/* Fills req->who from a session and its user; false if either is not
 * (any more) good for authenticating. */
static bool principal_load(struct api_req *req, const struct store_object *session)
{
    struct api_principal *who = &req->who;
    struct store_object user;
    struct api_user_fields f;
    json_t *body = json_loadb(session->body, session->body_len, 0, NULL);
    const char *user_id = json_string_value(json_object_get(body, "user_id"));
    json_t *doc = NULL;
    bool ok = false;

    if (user_id == NULL || strlen(user_id) >= sizeof who->user_id ||
        store_object_get(req->api->store, STORE_KIND_USER, user_id, &user) != 0) {
        json_decref(body);
        return false;
    }
    if (api_user_fields(&user, &doc, &f) == 0 && !f.disabled &&
        strlen(f.username) < sizeof who->username) {
        snprintf(who->user_id, sizeof who->user_id, "%s", user_id);
        snprintf(who->username, sizeof who->username, "%s", f.username);
        snprintf(who->tenant, sizeof who->tenant, "%s", f.tenant);
        snprintf(who->session_id, sizeof who->session_id, "%s", session->id);
        who->role = f.role;
        who->expires_ms = session->expires_ms;
        ok = true;
    }
    json_decref(doc);
    json_decref(body);
    store_object_release(&user);
    return ok;
}

bool api_principal_unchanged(struct api_req *req)
{
    struct api_principal before = req->who;
    struct store_object o;
    bool ok;

    if (store_object_get(req->api->store, STORE_KIND_SESSION, before.session_id, &o) != 0) {
        return false;
    }
    ok = (o.expires_ms == 0 || o.expires_ms > cairn_wall_ms()) && principal_load(req, &o) &&
         req->who.role == before.role && strcmp(req->who.tenant, before.tenant) == 0;
    store_object_release(&o);
    if (!ok) {
        req->who = before;
    }
    return ok;
}

/* --- verified sessions ----------------------------------------------------- */

static struct api_auth_cached *auth_slot(struct api *api, const char *sid)
{
    /* sid is hex SHA-256: any of its characters are uniform. */
    unsigned h = 0;
    for (int i = 0; i < 8 && sid[i] != '\0'; i++) {
        h = h * 16 + (unsigned)(sid[i] <= '9' ? sid[i] - '0' : (sid[i] | 0x20) - 'a' + 10);
    }
    return &api->auth_cache[h % API_AUTH_CACHE_SLOTS];
}

/* Fills req->who from the cache if the session was verified here since
 * the last change to any session or user. */
static bool auth_cached(struct api_req *req, const char *sid, uint64_t generation)
{
    struct api_auth_cached *slot = auth_slot(req->api, sid);
    bool hit;

    pthread_mutex_lock(&req->api->auth_mu);
    hit = slot->generation == generation && generation != 0 &&
          strcmp(slot->who.session_id, sid) == 0 &&
          (slot->who.expires_ms == 0 || slot->who.expires_ms > cairn_wall_ms());
    if (hit) {
        req->who = slot->who;
    }
    pthread_mutex_unlock(&req->api->auth_mu);
    return hit;
}

static void auth_remember(struct api_req *req, uint64_t generation)
{
    struct api_auth_cached *slot = auth_slot(req->api, req->who.session_id);
    pthread_mutex_lock(&req->api->auth_mu);
    slot->generation = generation;
    slot->who = req->who;
    pthread_mutex_unlock(&req->api->auth_mu);
}

int api_authenticate(struct api_req *req)
{
    const char *token = NULL;
    int len = bearer_token(mg_get_header(req->conn, "Authorization"), &token);
    char sid[API_SESSION_ID_SIZE];
    struct store_object o;
    uint64_t generation;
    int answered;
    bool ok;
    int rv;

    if (len == 0) {
        return unauthorized(req, false,
                            "this route needs a bearer token: log in with POST "
                            "/api/v1/auth/login and send \"Authorization: Bearer TOKEN\"");
    }
    if (len < 0) {
        return unauthorized(req, true,
                            "the Authorization header must be \"Bearer TOKEN\" with a token "
                            "from POST /api/v1/auth/login");
    }
    api_session_id(token, (size_t)len, sid);
    /* Read before the session and user: a change applied after this read
     * moves it, so what the reads below see is never trusted longer. */
    generation = store_auth_generation(req->api->store);
    if (auth_cached(req, sid, generation)) {
        req->authenticated = true;
        return 0;
    }
    rv = session_get(req, sid, &o, &answered);
    if (answered != 0) {
        return answered;
    }
    if (rv == CAIRN_ENOTFOUND) {
        return unauthorized(req, true, LOGIN_AGAIN);
    }
    if (rv != 0) {
        return api_problem(req, 500, "internal", NULL, NULL, "read the session: %s",
                           cairn_strerror(rv));
    }
    ok = (o.expires_ms == 0 || o.expires_ms > cairn_wall_ms()) && principal_load(req, &o);
    store_object_release(&o);
    if (!ok) {
        return unauthorized(req, true, LOGIN_AGAIN);
    }
    auth_remember(req, generation);
    req->authenticated = true;
    return 0;
}

/* --- /api/v1/auth ---------------------------------------------------------- */

#define WRONG_LOGIN "wrong user name or password"

/* Looks the user up by name (linearizable: the caller established the read
 * point). *o is filled and *found set when it exists. */
static int user_by_name(struct api_req *req, const char *name, struct store_object *o, bool *found)
{
    char *id = NULL;
    int rv = store_name_lookup(req->api->store, STORE_KIND_USER, name, &id);
    *found = false;
    if (rv == 0) {
        rv = store_object_get(req->api->store, STORE_KIND_USER, id, o);
        *found = rv == 0;
    }
    free(id);
    return rv == CAIRN_ENOTFOUND ? 0 : rv;
}

/* The answer of a login or whoami: the user, when the session ends, and
 * for a login the token. */
static int answer_session(struct api_req *req, const struct store_object *user, const char *token,
                          int64_t expires_ms)
{
    char expires_at[API_TIME_SIZE];
    json_t *obj = json_object();
    json_t *u = api_user_json(req->api, user);

    api_time_format(expires_ms, expires_at);
    if (obj == NULL || u == NULL ||
        (token != NULL && json_object_set_new(obj, "token", json_string(token)) != 0) ||
        json_object_set_new(obj, "expires_at", json_string(expires_at)) != 0 ||
        json_object_set_new(obj, "user", u) != 0) {
        json_decref(obj);
        return api_reply_json(req, 500, NULL, NULL);
    }
    return api_reply_json(req, 200, obj, NULL);
}

/* Creates the session of a verified login; returns 0 or the status
 * answered. */
static int session_create(struct api_req *req, const struct store_object *user,
                          const struct api_user_fields *f, const char *sid, int64_t expires_ms)
{
    char request_id[API_REQUEST_ID_SIZE];
    char body[128];
    struct store_command cmd;
    struct store_result res;
    int rc;

    snprintf(body, sizeof body, "{\"user_id\":\"%s\"}", user->id);
    api_request_id_fresh(request_id);
    api_command_init(req, &cmd, STORE_OP_CREATE, STORE_KIND_SESSION);
    cmd.caller = f->username;
    cmd.id = sid;
    cmd.body = body;
    cmd.body_len = strlen(body);
    cmd.request_id = request_id;
    /* Never the body: it holds the password. */
    cmd.fingerprint = api_fingerprint(req->method, req->path, sid, strlen(sid));
    cmd.tenant = f->tenant[0] != '\0' ? f->tenant : NULL;
    cmd.parent_kind = STORE_KIND_USER;
    cmd.parent_id = user->id;
    cmd.refs[0].kind = STORE_KIND_USER;
    cmd.refs[0].id = user->id;
    cmd.n_refs = 1;
    cmd.expires_ms = expires_ms;
    rc = api_propose(req, &cmd, &res);
    if (rc != 0) {
        return rc;
    }
    if (res.status == CAIRN_ENOTFOUND) {
        /* The user was deleted between the check and the commit. */
        return unauthorized(req, false, WRONG_LOGIN);
    }
    if (res.status != 0) {
        return api_result_failed(req, &res);
    }
    return 0;
}

int api_auth_login(struct api_req *req)
{
    const char *addr = mg_get_request_info(req->conn)->remote_addr;
    struct api_throttle *t = req->api->throttle;
    char user_key[300], addr_key[64], retry[64];
    char hash[API_PASSWORD_HASH_SIZE];
    char token[API_TOKEN_SIZE], sid[API_SESSION_ID_SIZE];
    struct api_user_fields f;
    struct store_object user;
    struct api_error err;
    const char *name, *password;
    size_t password_len;
    json_t *doc = NULL;
    bool found = false;
    bool good = false;
    unsigned wait;
    int64_t expires_ms;
    int rc;

    memset(&f, 0, sizeof f);
    if (api_validate(&api_login_schema, req->body, &err) != 0) {
        return api_error_send(req, &err);
    }
    name = json_string_value(json_object_get(req->body, "username"));
    password = json_string_value(json_object_get(req->body, "password"));
    password_len = json_string_length(json_object_get(req->body, "password"));
    snprintf(user_key, sizeof user_key, "u:%s", name);
    snprintf(addr_key, sizeof addr_key, "a:%s", addr);

    wait = api_throttle_wait(t, user_key, cairn_now_ms());
    {
        unsigned by_addr = api_throttle_wait(t, addr_key, cairn_now_ms());
        wait = by_addr > wait ? by_addr : wait;
    }
    if (wait > 0) {
        snprintf(retry, sizeof retry, "Retry-After: %u\r\n", wait);
        return api_problem(req, 429, "too-many-requests", NULL, retry,
                           "too many failed logins for this user name or from this address; "
                           "try again in %u s",
                           wait);
    }
    rc = api_read_point(req);
    if (rc != 0) {
        return rc;
    }
    rc = user_by_name(req, name, &user, &found);
    if (rc != 0) {
        return api_problem(req, 500, "internal", NULL, NULL, "look up user: %s",
                           cairn_strerror(rc));
    }
    if (found && api_user_fields(&user, &doc, &f) != 0) {
        json_decref(doc);
        doc = NULL;
        store_object_release(&user);
        found = false;
    }
    /* The same work and the same answer whether or not the user exists. */
    if (found && f.password_hash != NULL) {
        snprintf(hash, sizeof hash, "%s", f.password_hash);
    } else {
        rc = dummy_hash(req->api, req->deadline_ms, hash);
    }
    if (rc == 0) {
        rc = api_kdf_verify(req->api, hash, password, password_len, req->deadline_ms);
        good = rc == 0 && found && f.password_hash != NULL && !f.disabled;
        rc = rc == CAIRN_ENOTFOUND ? 0 : rc;
    }
    if (rc != 0) {
        rc = api_fail(req, rc, "no turn to check the password in time; retry", NULL);
        goto out;
    }
    if (!good) {
        api_throttle_fail(t, user_key, cairn_now_ms());
        api_throttle_fail(t, addr_key, cairn_now_ms());
        rc = unauthorized(req, false, WRONG_LOGIN);
        goto out;
    }
    api_throttle_reset(t, user_key);
    api_token_new(token);
    api_session_id(token, strlen(token), sid);
    expires_ms = cairn_wall_ms() + (int64_t)req->api->cfg.session_ttl_ms;
    rc = session_create(req, &user, &f, sid, expires_ms);
    if (rc == 0) {
        CAIRN_INFO("msg=login user=%s address=%s", f.username, addr);
        rc = answer_session(req, &user, token, expires_ms);
    }
    sodium_memzero(token, sizeof token);
out:
    json_decref(doc);
    if (found) {
        store_object_release(&user);
    }
    return rc;
}

int api_auth_logout(struct api_req *req)
{
    char request_id[API_REQUEST_ID_SIZE];
    struct store_command cmd;
    struct store_result res;
    int rc;

    api_request_id_fresh(request_id);
    api_command_init(req, &cmd, STORE_OP_DELETE, STORE_KIND_SESSION);
    cmd.id = req->who.session_id;
    cmd.request_id = request_id;
    cmd.fingerprint = api_fingerprint(req->method, req->path, cmd.id, strlen(cmd.id));
    cmd.tenant = req->who.tenant[0] != '\0' ? req->who.tenant : NULL;
    rc = api_propose(req, &cmd, &res);
    if (rc != 0) {
        return rc;
    }
    /* A concurrent logout of the same token already did the work. */
    if (res.status != 0 && res.status != CAIRN_ENOTFOUND) {
        return api_result_failed(req, &res);
    }
    http_reply(req->conn, 204, NULL, NULL, NULL, 0);
    return 204;
}

int api_auth_whoami(struct api_req *req)
{
    struct store_object user;
    int rc = store_object_get(req->api->store, STORE_KIND_USER, req->who.user_id, &user);
    if (rc != 0) {
        return unauthorized(req, true, LOGIN_AGAIN);
    }
    rc = answer_session(req, &user, NULL, req->who.expires_ms);
    store_object_release(&user);
    return rc;
}
