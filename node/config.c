/*
 * Parser of cairnd's configuration file (see config.h and
 * docs/configuration.md): table-driven, strict (unknown keys, bad values
 * and repeated keys are errors naming file, line and key).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "store.h"

enum key_type { KEY_STRING, KEY_UINT, KEY_U64, KEY_MEMBER };

struct key {
    const char *name;
    enum key_type type;
    size_t offset;     /* in struct config */
    size_t size;       /* for strings: buffer size */
    uint64_t min, max; /* for numbers */
    bool required;
    const char *dflt; /* default, as text (NULL: none) */
    int (*check)(const char *value, char *why, size_t why_size);
};

static int check_cluster_id(const char *v, char *why, size_t n)
{
    size_t len = strlen(v);
    if (len == 0 || len > 64) {
        snprintf(why, n, "must be 1 to 64 characters");
        return CAIRN_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)v[i]) && v[i] != '.' && v[i] != '_' && v[i] != '-') {
            snprintf(why, n, "may contain only A-Z a-z 0-9 . _ -");
            return CAIRN_EINVAL;
        }
    }
    return 0;
}

static int check_address(const char *v, char *why, size_t n)
{
    char host[64];
    unsigned port;
    if (config_address_parse(v, host, sizeof host, &port) != 0) {
        snprintf(why, n, "must be host:port with a port from 1 to 65535, got \"%s\"", v);
        return CAIRN_EINVAL;
    }
    return 0;
}

static int check_optional_address(const char *v, char *why, size_t n)
{
    return v[0] == '\0' ? 0 : check_address(v, why, n);
}

static int check_level(const char *v, char *why, size_t n)
{
    if (cairn_log_level_parse(v) == 0) {
        snprintf(why, n, "must be error, warn, info or debug");
        return CAIRN_EINVAL;
    }
    return 0;
}

static int check_scheduling(const char *v, char *why, size_t n)
{
    if (strcmp(v, "batch") != 0 && strcmp(v, "inherit") != 0) {
        snprintf(why, n, "must be batch or inherit");
        return CAIRN_EINVAL;
    }
    return 0;
}

static int check_user(const char *v, char *why, size_t n)
{
    size_t len = strlen(v);
    bool ok = len >= 1 && len <= 64;
    for (size_t i = 0; ok && i < len; i++) {
        ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '.' ||
             v[i] == '_' || v[i] == '-';
    }
    if (!ok) {
        snprintf(why, n, "must be 1 to 64 of a-z 0-9 . _ -");
        return CAIRN_EINVAL;
    }
    return 0;
}

static int check_path(const char *v, char *why, size_t n)
{
    if (v[0] == '\0') {
        snprintf(why, n, "must not be empty");
        return CAIRN_EINVAL;
    }
    return 0;
}

#define STR(field, req, dflt, check)                                                            \
    KEY_STRING, offsetof(struct config, field), sizeof(((struct config *)0)->field), 0, 0, req, \
        dflt, check
#define UINT(field, min, max, dflt) \
    KEY_UINT, offsetof(struct config, field), 0, min, max, false, dflt, NULL

static const struct key keys[] = {
    {"cluster_id", STR(cluster_id, true, NULL, check_cluster_id)},
    {"node_id", KEY_U64, offsetof(struct config, node_id), 0, 1, INT64_MAX, true, NULL, NULL},
    {"data_dir", STR(data_dir, true, NULL, check_path)},
    {"raft_address", STR(raft_address, true, NULL, check_address)},
    {"api_address", STR(api_address, true, NULL, check_address)},
    {"member", KEY_MEMBER, 0, 0, 0, 0, false, NULL, NULL},
    {"election_timeout_ms", UINT(election_timeout_ms, 50, 60000, "1000")},
    {"heartbeat_timeout_ms", UINT(heartbeat_timeout_ms, 10, 30000, "50")},
    {"snapshot_threshold", UINT(snapshot_threshold, 8, 100000000, "131072")},
    {"snapshot_trailing", UINT(snapshot_trailing, 0, 100000000, "4096")},
    {"snapshot_log_mb", UINT(snapshot_log_mb, 0, 65536, "64")},
    {"propose_batch_max", UINT(propose_batch_max, 1, STORE_BATCH_MAX, "64")},
    {"http_threads", UINT(http_threads, 1, 1024, "16")},
    {"max_body_bytes", KEY_U64, offsetof(struct config, max_body_bytes), 0, 1024,
     (uint64_t)64 << 20, false, "1048576", NULL},
    {"request_timeout_ms", UINT(request_timeout_ms, 100, 600000, "5000")},
    {"cluster_secret", STR(cluster_secret, false, "", NULL)},
    {"log_level", STR(log_level, false, "info", check_level)},
    {"cpu_scheduling", STR(cpu_scheduling, false, "batch", check_scheduling)},
    /* A deliberately broken mode for the chaos checker's own test: serve
     * reads asked to be linearizable from local state, as stale reads. */
    {"debug_stale_reads", UINT(debug_stale_reads, 0, 1, "0")},
    {"debug_command_version_max", UINT(debug_command_version_max, 0, STORE_COMMAND_VERSION, "0")},
    /* 0: act as a build before /internal/v1/propose-objects (answer 404). */
    {"debug_propose_objects", UINT(debug_propose_objects, 0, 1, "1")},
    /* The first SP administrator (see bootstrap.c); never a default
     * password: without a password file no user is created. */
    {"admin_user", STR(admin_user, false, "admin", check_user)},
    {"admin_password_file", STR(admin_password_file, false, "", NULL)},
    {"session_ttl_s", UINT(session_ttl_s, 60, 2592000, "28800")},
    /* Event streams hold an HTTP worker each; they get workers of their
     * own on top of http_threads. */
    {"event_streams_max", UINT(event_streams_max, 1, 4096, "64")},
    /* Device ownership (liveness.c): checked together below. */
    {"liveness_heartbeat_ms", UINT(liveness_heartbeat_ms, 20, 60000, "250")},
    {"ownership_lease_ms", UINT(ownership_lease_ms, 100, 600000, "2000")},
    {"liveness_down_ms", UINT(liveness_down_ms, 200, 3600000, "3000")},
    /* Devices (devices.c, the southbound). */
    {"southbound_threads", UINT(southbound_threads, 1, 256, "8")},
    {"device_timeout_ms", UINT(device_timeout_ms, 100, 600000, "10000")},
    {"confirm_timeout_s", UINT(confirm_timeout_s, 1, 3600, "60")},
    {"drift_interval_s", UINT(drift_interval_s, 0, 86400, "300")},
    /* A device never onboarded is tried again after onboard_retry_min_ms,
     * doubling up to onboard_retry_max_ms (checked together below). */
    {"onboard_retry_min_ms", UINT(onboard_retry_min_ms, 100, 3600000, "5000")},
    {"onboard_retry_max_ms", UINT(onboard_retry_max_ms, 100, 86400000, "300000")},
    {"yang_dir", STR(yang_dir, false, "", NULL)},
    /* Zero-touch (callhome.c): off unless callhome_listen is set. */
    {"callhome_listen", STR(callhome_listen, false, "", check_optional_address)},
    {"callhome_username", STR(callhome_username, false, "", NULL)},
    {"callhome_password", STR(callhome_password, false, "", NULL)},
};

#define N_KEYS (sizeof keys / sizeof keys[0])

int config_address_parse(const char *s, char *host, size_t host_size, unsigned *port)
{
    const char *colon = strrchr(s, ':');
    uint64_t p;
    size_t hlen;
    if (colon == NULL || colon == s) {
        return CAIRN_EINVAL;
    }
    hlen = (size_t)(colon - s);
    if (hlen >= host_size || strlen(s) >= 64) {
        return CAIRN_EINVAL;
    }
    for (size_t i = 0; i < hlen; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_') {
            return CAIRN_EINVAL;
        }
    }
    if (cairn_parse_u64(colon + 1, &p) != 0 || p == 0 || p > 65535) {
        return CAIRN_EINVAL;
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    *port = (unsigned)p;
    return 0;
}

const struct config_member *config_member_find(const struct config *cfg, uint64_t id)
{
    for (size_t i = 0; i < cfg->n_members; i++) {
        if (cfg->members[i].id == id) {
            return &cfg->members[i];
        }
    }
    return NULL;
}

static int parse_member(struct config *cfg, const char *value, char *why, size_t n)
{
    char id_s[32], raft[64], api[64], extra[2];
    struct config_member *m;
    uint64_t id;
    int got = sscanf(value, "%31s %63s %63s %1s", id_s, raft, api, extra);
    if (got != 3) {
        snprintf(why, n, "must be \"ID RAFT_ADDRESS API_ADDRESS\"");
        return CAIRN_EINVAL;
    }
    if (cairn_parse_u64(id_s, &id) != 0 || id == 0 || id > INT64_MAX) {
        snprintf(why, n, "member id must be an integer from 1 to 2^63-1, got \"%s\"", id_s);
        return CAIRN_EINVAL;
    }
    if (check_address(raft, why, n) != 0 || check_address(api, why, n) != 0) {
        return CAIRN_EINVAL;
    }
    if (config_member_find(cfg, id) != NULL) {
        snprintf(why, n, "member %llu is listed twice", (unsigned long long)id);
        return CAIRN_EINVAL;
    }
    for (size_t i = 0; i < cfg->n_members; i++) {
        if (strcmp(cfg->members[i].raft_address, raft) == 0 ||
            strcmp(cfg->members[i].api_address, api) == 0) {
            snprintf(why, n, "member %llu reuses an address of member %llu", (unsigned long long)id,
                     (unsigned long long)cfg->members[i].id);
            return CAIRN_EINVAL;
        }
    }
    if (cfg->n_members == CONFIG_MAX_MEMBERS) {
        snprintf(why, n, "at most %d members", CONFIG_MAX_MEMBERS);
        return CAIRN_EINVAL;
    }
    m = &cfg->members[cfg->n_members++];
    m->id = id;
    snprintf(m->raft_address, sizeof m->raft_address, "%s", raft);
    snprintf(m->api_address, sizeof m->api_address, "%s", api);
    return 0;
}

static int set_value(struct config *cfg, const struct key *k, const char *value, char *why,
                     size_t n)
{
    char *base = (char *)cfg;
    uint64_t v;
    switch (k->type) {
        case KEY_STRING:
            if (strlen(value) >= k->size) {
                snprintf(why, n, "is longer than %zu characters", k->size - 1);
                return CAIRN_EINVAL;
            }
            if (k->check != NULL && k->check(value, why, n) != 0) {
                return CAIRN_EINVAL;
            }
            snprintf(base + k->offset, k->size, "%s", value);
            return 0;
        case KEY_UINT:
        case KEY_U64:
            if (cairn_parse_u64(value, &v) != 0 || v < k->min || v > k->max) {
                snprintf(why, n, "must be an integer from %llu to %llu, got \"%s\"",
                         (unsigned long long)k->min, (unsigned long long)k->max, value);
                return CAIRN_EINVAL;
            }
            if (k->type == KEY_UINT) {
                *(unsigned *)(base + k->offset) = (unsigned)v;
            } else {
                *(uint64_t *)(base + k->offset) = v;
            }
            return 0;
        case KEY_MEMBER:
            return parse_member(cfg, value, why, n);
    }
    return CAIRN_EINVAL;
}

static char *trim(char *s)
{
    char *end;
    while (isspace((unsigned char)*s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) {
        *--end = '\0';
    }
    return s;
}

/* Passwords of users: 12 to 256 bytes (as the API checks them). */
#define PASSWORD_MIN 12
#define PASSWORD_MAX 256

/* Reads the admin password from cfg->admin_password_file: the whole file,
 * one trailing newline ("\n" or "\r\n") stripped. */
static int password_read(const char *name, struct config *cfg, char *errmsg, size_t errmsg_size)
{
    char buf[PASSWORD_MAX + 4];
    FILE *f = fopen(cfg->admin_password_file, "r");
    size_t len;
    int err;

    if (f == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "%s: admin_password_file: %s: %s", name,
                         cfg->admin_password_file, strerror(errno));
        return CAIRN_EINVAL;
    }
    len = fread(buf, 1, sizeof buf, f);
    err = ferror(f) ? errno : 0;
    fclose(f);
    if (err != 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "%s: admin_password_file: %s: %s", name,
                         cfg->admin_password_file, strerror(err));
        return CAIRN_EINVAL;
    }
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r') {
            len--;
        }
    }
    if (len < PASSWORD_MIN || len > PASSWORD_MAX || memchr(buf, '\0', len) != NULL) {
        cairn_errmsg_set(errmsg, errmsg_size,
                         "%s: admin_password_file: %s: the password must be %d to %d bytes "
                         "without NUL (a trailing newline is not counted)",
                         name, cfg->admin_password_file, PASSWORD_MIN, PASSWORD_MAX);
        memset(buf, 0, sizeof buf);
        return CAIRN_EINVAL;
    }
    memcpy(cfg->admin_password, buf, len);
    cfg->admin_password[len] = '\0';
    memset(buf, 0, sizeof buf);
    return 0;
}

int config_parse(const char *name, const char *text, struct config *cfg, char *errmsg,
                 size_t errmsg_size)
{
    bool seen[N_KEYS] = {false};
    char why[256];
    char line[8192];
    const char *p = text;
    unsigned lineno = 0;

    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_KEYS; i++) {
        if (keys[i].dflt != NULL && set_value(cfg, &keys[i], keys[i].dflt, why, sizeof why) != 0) {
            cairn_errmsg_set(errmsg, errmsg_size, "default of %s: %s", keys[i].name, why);
            return CAIRN_EINVAL;
        }
    }
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        char *key, *value, *eq, *hash;
        size_t i;
        lineno++;
        if (len >= sizeof line) {
            cairn_errmsg_set(errmsg, errmsg_size, "%s:%u: line is too long", name, lineno);
            return CAIRN_EINVAL;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (nl != NULL ? 1 : 0);
        hash = strchr(line, '#');
        if (hash != NULL) {
            *hash = '\0';
        }
        key = trim(line);
        if (*key == '\0') {
            continue;
        }
        eq = strchr(key, '=');
        if (eq == NULL) {
            cairn_errmsg_set(errmsg, errmsg_size, "%s:%u: expected \"key = value\", got \"%s\"",
                             name, lineno, key);
            return CAIRN_EINVAL;
        }
        *eq = '\0';
        value = trim(eq + 1);
        key = trim(key);
        for (i = 0; i < N_KEYS; i++) {
            if (strcmp(keys[i].name, key) == 0) {
                break;
            }
        }
        if (i == N_KEYS) {
            cairn_errmsg_set(errmsg, errmsg_size, "%s:%u: %s: unknown key", name, lineno, key);
            return CAIRN_EINVAL;
        }
        if (seen[i] && keys[i].type != KEY_MEMBER) {
            cairn_errmsg_set(errmsg, errmsg_size, "%s:%u: %s: set twice", name, lineno, key);
            return CAIRN_EINVAL;
        }
        seen[i] = true;
        if (set_value(cfg, &keys[i], value, why, sizeof why) != 0) {
            cairn_errmsg_set(errmsg, errmsg_size, "%s:%u: %s: %s", name, lineno, key, why);
            return CAIRN_EINVAL;
        }
    }
    for (size_t i = 0; i < N_KEYS; i++) {
        if (keys[i].required && !seen[i]) {
            cairn_errmsg_set(errmsg, errmsg_size, "%s: %s: required key is missing", name,
                             keys[i].name);
            return CAIRN_EINVAL;
        }
    }
    if (cfg->heartbeat_timeout_ms * 2 > cfg->election_timeout_ms) {
        cairn_errmsg_set(errmsg, errmsg_size,
                         "%s: heartbeat_timeout_ms: must be at most half of election_timeout_ms",
                         name);
        return CAIRN_EINVAL;
    }
    if (cfg->liveness_heartbeat_ms * 3 > cfg->ownership_lease_ms) {
        cairn_errmsg_set(errmsg, errmsg_size,
                         "%s: liveness_heartbeat_ms: must be at most a third of "
                         "ownership_lease_ms (%u), so that a lease is renewed before it runs out",
                         name, cfg->ownership_lease_ms);
        return CAIRN_EINVAL;
    }
    if (cfg->liveness_down_ms < cfg->ownership_lease_ms + CONFIG_OWNERSHIP_MARGIN_MS) {
        cairn_errmsg_set(errmsg, errmsg_size,
                         "%s: liveness_down_ms: must be at least ownership_lease_ms + %u ms "
                         "(%u), so that a silent node stops driving its devices before others "
                         "take them over",
                         name, CONFIG_OWNERSHIP_MARGIN_MS,
                         cfg->ownership_lease_ms + CONFIG_OWNERSHIP_MARGIN_MS);
        return CAIRN_EINVAL;
    }
    if (cfg->onboard_retry_min_ms > cfg->onboard_retry_max_ms) {
        cairn_errmsg_set(errmsg, errmsg_size,
                         "%s: onboard_retry_min_ms: must be at most onboard_retry_max_ms (%u)",
                         name, cfg->onboard_retry_max_ms);
        return CAIRN_EINVAL;
    }
    if (strcmp(cfg->raft_address, cfg->api_address) == 0) {
        cairn_errmsg_set(errmsg, errmsg_size, "%s: api_address: must differ from raft_address",
                         name);
        return CAIRN_EINVAL;
    }
    {
        const struct config_member *self = config_member_find(cfg, cfg->node_id);
        if (self != NULL && (strcmp(self->raft_address, cfg->raft_address) != 0 ||
                             strcmp(self->api_address, cfg->api_address) != 0)) {
            cairn_errmsg_set(errmsg, errmsg_size,
                             "%s: member: the entry for node %llu must use raft_address and "
                             "api_address",
                             name, (unsigned long long)cfg->node_id);
            return CAIRN_EINVAL;
        }
    }
    if (cfg->n_members == 0) {
        cairn_errmsg_set(errmsg, errmsg_size,
                         "%s: member: at least one initial member is required (a 1-node cluster "
                         "lists itself)",
                         name);
        return CAIRN_EINVAL;
    }
    if (cfg->callhome_listen[0] != '\0' &&
        (cfg->callhome_username[0] == '\0' || cfg->callhome_password[0] == '\0')) {
        cairn_errmsg_set(errmsg, errmsg_size,
                         "%s: callhome_listen: needs callhome_username and callhome_password "
                         "(the zero-touch login that devices calling home accept)",
                         name);
        return CAIRN_EINVAL;
    }
    if (cfg->admin_password_file[0] != '\0') {
        return password_read(name, cfg, errmsg, errmsg_size);
    }
    return 0;
}

int config_load(const char *path, struct config *cfg, char *errmsg, size_t errmsg_size)
{
    struct cairn_buf b;
    char chunk[4096];
    FILE *f = fopen(path, "r");
    size_t n;
    int rv;
    if (f == NULL) {
        cairn_errmsg_set(errmsg, errmsg_size, "%s: %s", path, strerror(errno));
        return CAIRN_EIO;
    }
    cairn_buf_init(&b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > (1u << 20)) {
            fclose(f);
            cairn_buf_close(&b);
            cairn_errmsg_set(errmsg, errmsg_size, "%s: file is larger than 1 MiB", path);
            return CAIRN_ETOOBIG;
        }
        if (cairn_buf_append(&b, chunk, n) != 0) {
            fclose(f);
            cairn_buf_close(&b);
            return CAIRN_ENOMEM;
        }
    }
    fclose(f);
    rv = config_parse(path, b.data != NULL ? b.data : "", cfg, errmsg, errmsg_size);
    cairn_buf_close(&b);
    return rv;
}
