/*
 * Where cairnctl's settings and credentials come from, and the file
 * helpers they need. The config file is `key = value` lines ('#' starts a
 * comment line); an unknown key is an error naming its line, so a typo is
 * never ignored. Credentials are taken from the first of: the flags, the
 * environment, the config file, the token file written by `cairnctl
 * login`; at each level a token wins over a user name and password.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"

static char *home_path(const char *tail)
{
    const char *home = getenv("HOME");
    if (home == NULL || home[0] == '\0') {
        return NULL;
    }
    size_t n = strlen(home) + strlen(tail) + 2;
    char *p = malloc(n);
    if (p != NULL) {
        snprintf(p, n, "%s/%s", home, tail);
    }
    return p;
}

char *ctl_default_config_path(void)
{
    return home_path(".config/cairn/cairnctl.conf");
}

char *ctl_default_token_path(void)
{
    return home_path(".config/cairn/token");
}

int ctl_file_read(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return CTL_EXIT_USAGE;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (n + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    int failed = buf == NULL || ferror(f);
    int saved = errno;
    if (f != stdin) {
        fclose(f);
    }
    if (failed) {
        free(buf);
        snprintf(err, errlen, "%s: %s", strcmp(path, "-") == 0 ? "stdin" : path,
                 buf == NULL ? "out of memory" : strerror(saved));
        return CTL_EXIT_USAGE;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

/* Makes the folders above path (mode 0700) that do not exist. */
static void parents_make(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL) {
        return;
    }
    for (char *p = copy + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(copy, 0700);
            *p = '/';
        }
    }
    free(copy);
}

int ctl_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            if (w == 0) {
                errno = EIO;
            }
            return -1;
        }
        off += (size_t)w;
    }
    return 0;
}

int ctl_atomic_open(struct ctl_atomic *a, const char *path, char *err, size_t errlen)
{
    size_t n = strlen(path) + 16;
    a->path = path;
    a->tmp = malloc(n);
    if (a->tmp == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return CTL_EXIT_USAGE;
    }
    snprintf(a->tmp, n, "%s.tmpXXXXXX", path);
    a->fd = mkstemp(a->tmp);
    if (a->fd < 0) {
        snprintf(err, errlen, "%s: %s", a->tmp, strerror(errno));
        free(a->tmp);
        a->tmp = NULL;
        return CTL_EXIT_USAGE;
    }
    return 0;
}

void ctl_atomic_abort(struct ctl_atomic *a)
{
    if (a->tmp != NULL) {
        close(a->fd);
        unlink(a->tmp);
        free(a->tmp);
        a->tmp = NULL;
    }
}

int ctl_atomic_commit(struct ctl_atomic *a, int mode, char *err, size_t errlen)
{
    const char *step = "chmod";
    if (fchmod(a->fd, (mode_t)mode) != 0) {
        goto err;
    }
    step = "fsync";
    if (fsync(a->fd) != 0) {
        goto err;
    }
    step = "close";
    int rv = close(a->fd);
    a->fd = -1;
    if (rv != 0) {
        goto err;
    }
    step = "rename to the final name";
    if (rename(a->tmp, a->path) != 0) {
        goto err;
    }
    free(a->tmp);
    a->tmp = NULL;
    return 0;

err:
    snprintf(err, errlen, "%s %s: %s", step, a->tmp, strerror(errno));
    ctl_atomic_abort(a);
    return CTL_EXIT_USAGE;
}

int ctl_file_write_atomic(const char *path, const char *data, size_t len, int mode, char *err,
                          size_t errlen)
{
    struct ctl_atomic a;
    parents_make(path);
    int rv = ctl_atomic_open(&a, path, err, errlen);
    if (rv != 0) {
        return rv;
    }
    if (ctl_write_all(a.fd, data, len) != 0) {
        snprintf(err, errlen, "write %s: %s", a.tmp, strerror(errno));
        ctl_atomic_abort(&a);
        return CTL_EXIT_USAGE;
    }
    return ctl_atomic_commit(&a, mode, err, errlen);
}

/* Trims blanks at both ends, in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
    return s;
}

/* The string keys of the config file and where they go. */
static const struct {
    const char *key;
    size_t offset;
} config_keys[] = {
    {"endpoints", offsetof(struct ctl_config, endpoints)},
    {"user", offsetof(struct ctl_config, user)},
    {"password", offsetof(struct ctl_config, password)},
    {"password_file", offsetof(struct ctl_config, password_file)},
    {"token", offsetof(struct ctl_config, token)},
    {"token_file", offsetof(struct ctl_config, token_file)},
    {"output", offsetof(struct ctl_config, output)},
};

/* Sets one key; returns 0 or CTL_EXIT_USAGE with err (where: FILE:LINE). */
static int config_set(struct ctl_config *cfg, const char *key, const char *value, const char *where,
                      char *err, size_t errlen)
{
    if (strcmp(key, "timeout") == 0) {
        char *end;
        double t = strtod(value, &end);
        if (end == value || *end != '\0' || t <= 0 || t > 86400) {
            snprintf(err, errlen, "%s: timeout must be a number of seconds", where);
            return CTL_EXIT_USAGE;
        }
        cfg->timeout_s = t;
        return 0;
    }
    if (strcmp(key, "output") == 0 && strcmp(value, "table") != 0 && strcmp(value, "json") != 0) {
        snprintf(err, errlen, "%s: output must be table or json", where);
        return CTL_EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
        if (strcmp(key, config_keys[i].key) == 0) {
            char **slot = (char **)((char *)cfg + config_keys[i].offset);
            char *copy = strdup(value);
            if (copy == NULL) {
                snprintf(err, errlen, "%s: out of memory", where);
                return CTL_EXIT_USAGE;
            }
            free(*slot);
            *slot = copy;
            return 0;
        }
    }
    snprintf(err, errlen,
             "%s: unknown key '%s' (known: endpoints, user, password, password_file, token, "
             "token_file, output, timeout)",
             where, key);
    return CTL_EXIT_USAGE;
}

int ctl_config_parse(struct ctl_config *cfg, const char *name, const char *text, char *err,
                     size_t errlen)
{
    char *copy = strdup(text);
    if (copy == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return CTL_EXIT_USAGE;
    }
    int rv = 0;
    int lineno = 0;
    char *save = NULL;
    for (char *line = copy; line != NULL; line = save) {
        save = strchr(line, '\n');
        if (save != NULL) {
            *save++ = '\0';
        }
        lineno++;
        char *s = trim(line);
        if (s[0] == '\0' || s[0] == '#') {
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%d: expected 'key = value'", name, lineno);
            rv = CTL_EXIT_USAGE;
            break;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = trim(eq + 1);
        char where[256];
        snprintf(where, sizeof(where), "%s:%d", name, lineno);
        rv = config_set(cfg, key, value, where, err, errlen);
        if (rv != 0) {
            break;
        }
    }
    free(copy);
    return rv;
}

int ctl_config_load(struct ctl_config *cfg, const char *path, bool required, char *err,
                    size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    if (path == NULL) {
        return 0;
    }
    if (!required && access(path, F_OK) != 0) {
        return 0;
    }
    char *text;
    size_t len;
    int rv = ctl_file_read(path, &text, &len, err, errlen);
    if (rv != 0) {
        return rv;
    }
    rv = ctl_config_parse(cfg, path, text, err, errlen);
    free(text);
    if (rv != 0) {
        ctl_config_close(cfg);
        return rv;
    }
    struct stat st;
    cfg->exposed = (cfg->password != NULL || cfg->token != NULL) && stat(path, &st) == 0 &&
                   (st.st_mode & 077) != 0;
    return 0;
}

void ctl_config_close(struct ctl_config *cfg)
{
    free(cfg->endpoints);
    free(cfg->user);
    free(cfg->password);
    free(cfg->password_file);
    free(cfg->token);
    free(cfg->token_file);
    free(cfg->output);
    memset(cfg, 0, sizeof(*cfg));
}

/* The first line of a file, without its newline (a password, a token). */
static int first_line(const char *path, char **out, char *err, size_t errlen)
{
    char *text;
    size_t len;
    int rv = ctl_file_read(path, &text, &len, err, errlen);
    if (rv != 0) {
        return rv;
    }
    text[strcspn(text, "\r\n")] = '\0';
    if (text[0] == '\0') {
        snprintf(err, errlen, "%s: empty", path);
        free(text);
        return CTL_EXIT_USAGE;
    }
    *out = text;
    return 0;
}

/* Sets a user and password; the password from file, or else text. */
static int creds_user(struct ctl_creds *c, const char *user, const char *file, const char *text,
                      const char *source, char *err, size_t errlen)
{
    if (file != NULL) {
        int rv = first_line(file, &c->password, err, errlen);
        if (rv != 0) {
            return rv;
        }
    } else if (text != NULL) {
        c->password = strdup(text);
    } else {
        snprintf(err, errlen,
                 "user %s (%s) has no password: give --password-file, CAIRN_PASSWORD or "
                 "password_file in the config file",
                 user, source);
        return CTL_EXIT_USAGE;
    }
    c->user = strdup(user);
    c->source = source;
    return 0;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

int ctl_creds_resolve(struct ctl_creds *c, const struct ctl_opts *o, const struct ctl_config *cfg,
                      const char *token_file, bool need_user, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    /* A password may come from any level: the flag, the environment, the
     * config file, in this order. */
    const char *pw_file = o->password_file ? o->password_file : cfg->password_file;
    const char *pw_text = env("CAIRN_PASSWORD") ? env("CAIRN_PASSWORD") : cfg->password;
    if (o->password_file != NULL) {
        pw_text = NULL;
    } else if (env("CAIRN_PASSWORD") != NULL) {
        pw_file = NULL;
    }

    /* The levels, most explicit first; at each a token wins over a user. */
    const struct {
        const char *token, *token_source;
        const char *user, *user_source;
    } levels[] = {
        {o->token, "--token", o->user, "--user"},
        {env("CAIRN_TOKEN"), "CAIRN_TOKEN", env("CAIRN_USER"), "CAIRN_USER"},
        {cfg->token, "the config file", cfg->user, "the config file"},
    };
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (!need_user && levels[i].token != NULL) {
            c->token = strdup(levels[i].token);
            c->source = levels[i].token_source;
            if (c->token == NULL) {
                snprintf(err, errlen, "out of memory");
                return CTL_EXIT_USAGE;
            }
            return 0;
        }
        if (levels[i].user != NULL) {
            return creds_user(c, levels[i].user, pw_file, pw_text, levels[i].user_source, err,
                              errlen);
        }
    }
    if (!need_user && token_file != NULL && access(token_file, F_OK) == 0) {
        int rv = first_line(token_file, &c->token, err, errlen);
        c->source = "the token file";
        return rv;
    }
    return 0;
}

void ctl_creds_close(struct ctl_creds *c)
{
    free(c->token);
    free(c->user);
    if (c->password != NULL) {
        explicit_bzero(c->password, strlen(c->password));
        free(c->password);
    }
    memset(c, 0, sizeof(*c));
}
