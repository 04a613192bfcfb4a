/*
 * What each verb does. Verbs are generic over the resource table: `list`
 * pages through a resource's list_path, `get`/`replace`/`delete` work on
 * PATH/ID, `create` posts a JSON body to PATH, so every REST resource that
 * follows the API's conventions works as soon as its row exists in
 * resources.c. Writes of asynchronous resources (services, imports)
 * answer 202 with the Location of a job, which `--wait` (and `job wait`)
 * polls until it ends.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ctl.h"

#define PATH_MAX_LEN      4096
#define MAX_PAGES         100000
#define JOB_POLL_MS       500
#define WAIT_TIMEOUT_S    3600.0
#define PROGRESS_LINE_MAX 256

int ctl_fail(struct ctl *ctl, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cairnctl: ", ctl->err);
    vfprintf(ctl->err, fmt, ap);
    fputc('\n', ctl->err);
    va_end(ap);
    return code;
}

int ctl_fail_response(struct ctl *ctl, const struct ctl_response *r)
{
    char line[1024];
    ctl_problem_format(line, sizeof(line), r->status, r->content_type, r->body, r->len);
    int code = ctl_exit_for_status(r->status);
    if (r->status == 401 && ctl->client.token == NULL) {
        return ctl_fail(ctl, code,
                        "%s (no credentials: give --token, --user with --password-file, "
                        "CAIRN_TOKEN, CAIRN_USER or run cairnctl login)",
                        line);
    }
    return ctl_fail(ctl, code, "%s", line);
}

/* One request; an endpoint answered (any status) or the failure is told. */
static int call(struct ctl *ctl, const char *method, const char *path, const char *body,
                long if_match, struct ctl_response *r)
{
    int rv = ctl_client_request(&ctl->client, method, path, body, if_match, r);
    if (rv != 0) {
        return ctl_fail(ctl, rv, "%s %s: no endpoint answered: %s", method, path,
                        ctl->client.errmsg);
    }
    return 0;
}

/* A request whose answer must be a success; its JSON body (or NULL when
 * it has none) goes to *out. */
static int call_json(struct ctl *ctl, const char *method, const char *path, const char *body,
                     long if_match, struct ctl_response *r, json_t **out)
{
    *out = NULL;
    int rv = call(ctl, method, path, body, if_match, r);
    if (rv != 0) {
        return rv;
    }
    if (r->status >= 400) {
        return ctl_fail_response(ctl, r);
    }
    if (r->len == 0) {
        return 0;
    }
    json_error_t e;
    *out = json_loadb(r->body, r->len, 0, &e);
    if (*out == NULL) {
        return ctl_fail(ctl, CTL_EXIT_SERVER, "%s %s: %ld answer is not JSON: %s", method, path,
                        r->status, e.text);
    }
    return 0;
}

/* PATH/ID[/suffix] with ID escaped as one path segment. */
static int object_path(struct ctl *ctl, char *out, size_t n, const char *id, const char *suffix)
{
    char *escaped = curl_easy_escape(NULL, id, 0);
    if (escaped == NULL) {
        return ctl_fail(ctl, CTL_EXIT_USAGE, "out of memory");
    }
    int w = snprintf(out, n, "%s/%s%s", ctl->opts.res->path, escaped, suffix ? suffix : "");
    curl_free(escaped);
    if (w < 0 || (size_t)w >= n) {
        return ctl_fail(ctl, CTL_EXIT_USAGE, "id too long: %.40s...", id);
    }
    return 0;
}

static int query(struct ctl *ctl, char *path, const char *key, const char *value)
{
    if (value != NULL && ctl_query_add(path, PATH_MAX_LEN, key, value) != 0) {
        return ctl_fail(ctl, CTL_EXIT_USAGE, "the query is too long (at %s)", key);
    }
    return 0;
}

/* Prints an object in the chosen format. */
static void object_output(struct ctl *ctl, const json_t *obj)
{
    if (ctl->opts.output == CTL_OUTPUT_JSON) {
        ctl_json_print(ctl->out, obj);
    } else if (json_is_object(obj)) {
        ctl_object_print(ctl->out, obj);
    }
}

/* ---- list ------------------------------------------------------------------ */

/* Lists path (a query may follow) page after page (only one without --all). */
static int list_run(struct ctl *ctl, const char *path)
{
    const struct ctl_resource *res = ctl->opts.res;
    json_t *items = json_array();
    json_t *first = NULL;
    const char *cursor = ctl->opts.cursor;
    char *next = NULL;
    int rv = 0;

    for (int page = 0; page < MAX_PAGES; page++) {
        char p[PATH_MAX_LEN];
        snprintf(p, sizeof(p), "%s", path);
        rv = query(ctl, p, "cursor", cursor);
        if (rv != 0) {
            break;
        }
        struct ctl_response r;
        json_t *answer;
        ctl_response_init(&r);
        rv = call_json(ctl, "GET", p, NULL, 0, &r, &answer);
        ctl_response_close(&r);
        if (rv != 0) {
            break;
        }
        json_t *got = json_object_get(answer, res->list_key);
        if (!json_is_array(got)) {
            json_decref(answer);
            rv = ctl_fail(ctl, CTL_EXIT_SERVER, "GET %s: the answer has no array '%s'", p,
                          res->list_key);
            break;
        }
        json_array_extend(items, got);
        free(next);
        const char *nc = json_string_value(json_object_get(answer, "next_cursor"));
        next = nc ? strdup(nc) : NULL;
        if (first == NULL) {
            first = answer;
        } else {
            json_decref(answer);
        }
        if (next == NULL || !ctl->opts.all) {
            break;
        }
        cursor = next;
    }
    if (rv == 0) {
        if (ctl->opts.output == CTL_OUTPUT_JSON) {
            json_t *o = json_object();
            json_object_set(o, res->list_key, items);
            json_t *rev = json_object_get(first, "revision");
            if (rev != NULL) {
                json_object_set(o, "revision", rev);
            }
            json_object_set_new(o, "next_cursor", next ? json_string(next) : json_null());
            ctl_json_print(ctl->out, o);
            json_decref(o);
        } else {
            ctl_table_print(ctl->out, res->columns, items);
            if (next != NULL) {
                fprintf(ctl->err, "(more items: add --all, or --cursor %s for the next page)\n",
                        next);
            }
        }
    }
    free(next);
    json_decref(first);
    json_decref(items);
    return rv;
}

/* The list path with --limit and every --filter KEY=VALUE as the query. */
static int list_path(struct ctl *ctl, char *p)
{
    const struct ctl_opts *o = &ctl->opts;
    snprintf(p, PATH_MAX_LEN, "%s", o->res->list_path ? o->res->list_path : o->res->path);
    if (o->limit > 0) {
        char n[32];
        snprintf(n, sizeof(n), "%ld", o->limit);
        if (query(ctl, p, "limit", n) != 0) {
            return CTL_EXIT_USAGE;
        }
    }
    for (int i = 0; i < o->nfilters; i++) {
        const char *eq = strchr(o->filters[i], '=');
        char key[128];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - o->filters[i]), o->filters[i]);
        if (query(ctl, p, key, eq + 1) != 0) {
            return CTL_EXIT_USAGE;
        }
    }
    return 0;
}

static int run_list(struct ctl *ctl)
{
    char p[PATH_MAX_LEN];
    int rv = list_path(ctl, p);
    return rv != 0 ? rv : list_run(ctl, p);
}

int ctl_audit_query_add(char *path, size_t n, const struct ctl_opts *o)
{
    /* Each option and the parameter of GET /api/v1/audit it becomes
     * (audit_params in northbound/api.c, which refuses others with 400). */
    const struct {
        const char *param;
        const char *value;
    } filters[] = {
        {"user", o->audit_user}, {"tenant", o->tenant}, {"kind", o->kind},
        {"since", o->since},     {"until", o->until},
    };
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
        if (filters[i].value != NULL &&
            ctl_query_add(path, n, filters[i].param, filters[i].value) != 0) {
            return -1;
        }
    }
    return 0;
}

static int run_audit(struct ctl *ctl)
{
    char p[PATH_MAX_LEN];
    int rv = list_path(ctl, p);
    if (rv == 0 && ctl_audit_query_add(p, sizeof(p), &ctl->opts) != 0) {
        rv = ctl_fail(ctl, CTL_EXIT_USAGE, "the query is too long (at the audit filters)");
    }
    return rv != 0 ? rv : list_run(ctl, p);
}

/* ---- jobs ------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Polls the job at path until it ends; 0 if it succeeded. */
static int job_wait(struct ctl *ctl, const char *path)
{
    bool tty = isatty(fileno(ctl->err));
    double limit = ctl->opts.wait_timeout_s > 0 ? ctl->opts.wait_timeout_s : WAIT_TIMEOUT_S;
    double deadline = now_s() + limit;
    char last[PROGRESS_LINE_MAX] = "";

    for (;;) {
        struct ctl_response r;
        json_t *job;
        ctl_response_init(&r);
        int rv = call_json(ctl, "GET", path, NULL, 0, &r, &job);
        ctl_response_close(&r);
        if (rv != 0) {
            if (tty && last[0]) {
                fputc('\n', ctl->err);
            }
            return rv;
        }
        char line[PROGRESS_LINE_MAX];
        ctl_job_progress_format(line, sizeof(line), job, tty);
        if (tty) {
            fprintf(ctl->err, "\r%s\033[K", line);
        } else if (strcmp(line, last) != 0) {
            fprintf(ctl->err, "%s\n", line);
        }
        fflush(ctl->err);
        snprintf(last, sizeof(last), "%s", line);
        const char *state = json_string_value(json_object_get(job, "state"));
        bool ok;
        if (ctl_job_state_final(state, &ok)) {
            if (tty) {
                fputc('\n', ctl->err);
            }
            object_output(ctl, job);
            rv = 0;
            if (!ok) {
                const char *id = json_string_value(json_object_get(job, "id"));
                const char *why = json_string_value(json_object_get(job, "message"));
                rv = ctl_fail(ctl, CTL_EXIT_JOB_FAILED, "job %s %s%s%s", id ? id : path, state,
                              why ? ": " : "", why ? why : "");
            }
            json_decref(job);
            return rv;
        }
        if (now_s() >= deadline) {
            if (tty) {
                fputc('\n', ctl->err);
            }
            const char *id = strrchr(path, '/') + 1;
            rv = ctl_fail(ctl, CTL_EXIT_UNAVAILABLE,
                          "job %s still %s after %.0f s; it goes on (cairnctl job wait %s)", id,
                          state ? state : "?", limit, id);
            json_decref(job);
            return rv;
        }
        json_decref(job);
        struct timespec pause = {0, JOB_POLL_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
}

/* After a write: a 202 names a job (waited for with --wait); else the
 * object (if any) is printed. */
static int write_done(struct ctl *ctl, const struct ctl_response *r, const json_t *obj,
                      const char *done)
{
    if (r->status == 202) {
        const char *loc = r->location;
        const char *scheme = strstr(loc, "://");
        if (scheme != NULL) {
            const char *slash = strchr(scheme + 3, '/');
            loc = slash ? slash : "";
        }
        if (loc[0] != '/') {
            return ctl_fail(ctl, CTL_EXIT_SERVER, "202 without the Location of a job");
        }
        if (ctl->opts.wait) {
            return job_wait(ctl, loc);
        }
        if (obj != NULL) {
            object_output(ctl, obj);
        }
        const char *slash = strrchr(loc, '/');
        fprintf(ctl->err, "accepted: job %s (cairnctl job wait %s)\n", slash + 1, slash + 1);
        return 0;
    }
    if (obj != NULL) {
        object_output(ctl, obj);
    } else if (done != NULL && ctl->opts.output == CTL_OUTPUT_TABLE) {
        fprintf(ctl->out, "%s\n", done);
    }
    return 0;
}

static int run_job_wait(struct ctl *ctl)
{
    char p[PATH_MAX_LEN];
    int rv = object_path(ctl, p, sizeof(p), ctl->opts.args[0], NULL);
    return rv != 0 ? rv : job_wait(ctl, p);
}

/* ---- objects --------------------------------------------------------------- */

/* Sends method to path with an optional body; prints what it made. */
static int request_run(struct ctl *ctl, const char *method, const char *path, const char *body,
                       const char *done)
{
    struct ctl_response r;
    json_t *obj;
    ctl_response_init(&r);
    int rv = call_json(ctl, method, path, body, ctl->opts.if_match, &r, &obj);
    if (rv == 0) {
        rv = write_done(ctl, &r, obj, done);
    }
    json_decref(obj);
    ctl_response_close(&r);
    return rv;
}

/* Reads -f FILE and checks that it holds one JSON object. */
static int body_read(struct ctl *ctl, char **text)
{
    const char *file = ctl->opts.file;
    if (file == NULL) {
        return ctl_fail(ctl, CTL_EXIT_USAGE, "give the JSON body with -f FILE (- for stdin)");
    }
    char err[512];
    size_t len;
    int rv = ctl_file_read(file, text, &len, err, sizeof(err));
    if (rv != 0) {
        return ctl_fail(ctl, rv, "%s", err);
    }
    json_error_t e;
    json_t *body = json_loadb(*text, len, JSON_REJECT_DUPLICATES, &e);
    const char *name = strcmp(file, "-") == 0 ? "stdin" : file;
    if (body == NULL || !json_is_object(body)) {
        free(*text);
        *text = NULL;
        if (body == NULL) {
            rv = ctl_fail(ctl, CTL_EXIT_USAGE, "%s:%d:%d: not JSON: %s", name, e.line, e.column,
                          e.text);
        } else {
            rv = ctl_fail(ctl, CTL_EXIT_USAGE, "%s: the body must be one JSON object", name);
        }
    }
    json_decref(body);
    return rv;
}

static int run_get(struct ctl *ctl)
{
    char p[PATH_MAX_LEN];
    int rv = object_path(ctl, p, sizeof(p), ctl->opts.args[0], NULL);
    return rv != 0 ? rv : request_run(ctl, "GET", p, NULL, NULL);
}

/* --dry-run: ?dry_run=true, for the resources that take it (services). */
static int dry_run_query(struct ctl *ctl, char *path)
{
    if (!ctl->opts.dry_run) {
        return 0;
    }
    if (strcmp(ctl->opts.res->word, "service") != 0) {
        return ctl_fail(ctl, CTL_EXIT_USAGE, "--dry-run applies to services only, not %ss",
                        ctl->opts.res->word);
    }
    return query(ctl, path, "dry_run", "true");
}

static int run_create(struct ctl *ctl)
{
    char p[PATH_MAX_LEN];
    char *body;
    int rv;
    snprintf(p, sizeof(p), "%s", ctl->opts.res->path);
    rv = dry_run_query(ctl, p);
    if (rv == 0) {
        rv = body_read(ctl, &body);
    }
    if (rv == 0) {
        rv = request_run(ctl, "POST", p, body, NULL);
        free(body);
    }
    return rv;
}

static int run_replace(struct ctl *ctl)
{
    char p[PATH_MAX_LEN];
    char *body;
    int rv = object_path(ctl, p, sizeof(p), ctl->opts.args[0], NULL);
    if (rv == 0) {
        rv = dry_run_query(ctl, p);
    }
    if (rv == 0) {
        rv = body_read(ctl, &body);
    }
    if (rv == 0) {
        rv = request_run(ctl, "PUT", p, body, NULL);
        free(body);
    }
    return rv;
}

/* DELETE PATH/ID, with ?flag=true if set. */
static int delete_run(struct ctl *ctl, const char *flag, bool set)
{
    char p[PATH_MAX_LEN];
    char done[256];
    int rv = object_path(ctl, p, sizeof(p), ctl->opts.args[0], NULL);
    if (rv == 0 && set) {
        rv = query(ctl, p, flag, "true");
    }
    if (rv == 0) {
        snprintf(done, sizeof(done), "%s %s deleted", ctl->opts.res->word, ctl->opts.args[0]);
        rv = request_run(ctl, "DELETE", p, NULL, done);
    }
    return rv;
}

static int run_delete(struct ctl *ctl)
{
    return delete_run(ctl, "cascade", ctl->opts.cascade);
}

static int run_remove(struct ctl *ctl)
{
    return delete_run(ctl, "force", ctl->opts.force);
}

/* POST PATH/ID/suffix without a body (publish, cancel). */
static int action_run(struct ctl *ctl, const char *suffix, const char *what)
{
    char p[PATH_MAX_LEN];
    char done[256];
    int rv = object_path(ctl, p, sizeof(p), ctl->opts.args[0], suffix);
    if (rv == 0) {
        snprintf(done, sizeof(done), "%s %s %s", ctl->opts.res->word, ctl->opts.args[0], what);
        rv = request_run(ctl, "POST", p, NULL, done);
    }
    return rv;
}

static int run_onboard(struct ctl *ctl)
{
    return action_run(ctl, "/onboard", "onboarding");
}

static int run_check_drift(struct ctl *ctl)
{
    return action_run(ctl, "/check-drift", "checked");
}

static int run_sync_from(struct ctl *ctl)
{
    return action_run(ctl, "/sync-from", "synced");
}

static int run_publish(struct ctl *ctl)
{
    return action_run(ctl, "/publish", "published");
}

static int run_cancel(struct ctl *ctl)
{
    return action_run(ctl, "/cancel", "cancelled");
}

/* ---- cluster --------------------------------------------------------------- */

static int run_status(struct ctl *ctl)
{
    struct ctl_response r;
    json_t *info;
    ctl_response_init(&r);
    int rv = call_json(ctl, "GET", ctl->opts.res->path, NULL, 0, &r, &info);
    ctl_response_close(&r);
    if (rv != 0) {
        return rv;
    }
    if (ctl->opts.output == CTL_OUTPUT_JSON) {
        ctl_json_print(ctl->out, info);
    } else {
        char node[64], leader[64], term[64];
        ctl_cell_format(node, sizeof(node), json_object_get(info, "node_id"));
        ctl_cell_format(leader, sizeof(leader), json_object_get(info, "leader_id"));
        ctl_cell_format(term, sizeof(term), json_object_get(info, "term"));
        fprintf(ctl->out, "answered by node %s; leader %s; term %s\n\n", node, leader, term);
        ctl_table_print(ctl->out, ctl->opts.res->columns,
                        json_object_get(info, ctl->opts.res->list_key));
    }
    json_decref(info);
    return 0;
}

static int run_add(struct ctl *ctl)
{
    const char *id = ctl->opts.args[0];
    char *end;
    errno = 0;
    long long n = strtoll(id, &end, 10);
    if (errno != 0 || end == id || *end != '\0' || n < 1) {
        return ctl_fail(ctl, CTL_EXIT_USAGE, "member id must be a whole number >= 1, not '%s'", id);
    }
    json_t *body = json_pack("{sIssss}", "id", (json_int_t)n, "raft_address", ctl->opts.args[1],
                             "api_address", ctl->opts.args[2]);
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (text == NULL) {
        return ctl_fail(ctl, CTL_EXIT_USAGE, "out of memory");
    }
    int rv = request_run(ctl, "POST", ctl->opts.res->path, text, NULL);
    free(text);
    return rv;
}

uint32_t ctl_crc32c(uint32_t crc, const unsigned char *p, size_t len)
{
    static const uint32_t table[16] = {
        0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3,
        0x61c69362, 0x7198540d, 0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9,
        0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
    };
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ table[crc & 0x0f];
        crc = (crc >> 4) ^ table[crc & 0x0f];
    }
    return ~crc;
}

/* Checks the CRC-32C trailer of the size bytes in fd; 0 if it matches. */
static int backup_check(struct ctl *ctl, int fd, off_t size, const char *name)
{
    unsigned char buf[65536];
    unsigned char trailer[4];
    uint32_t crc = 0;
    off_t body = size - 4;
    if (size < 4 || pread(fd, trailer, 4, body) != 4) {
        return ctl_fail(ctl, CTL_EXIT_SERVER, "%s: the backup is too short for its checksum", name);
    }
    for (off_t off = 0; off < body;) {
        size_t want = body - off < (off_t)sizeof(buf) ? (size_t)(body - off) : sizeof(buf);
        ssize_t got = pread(fd, buf, want, off);
        if (got <= 0) {
            return ctl_fail(ctl, CTL_EXIT_USAGE, "read %s: %s", name,
                            got < 0 ? strerror(errno) : "short file");
        }
        crc = ctl_crc32c(crc, buf, (size_t)got);
        off += got;
    }
    uint32_t want = (uint32_t)trailer[0] << 24 | (uint32_t)trailer[1] << 16 |
                    (uint32_t)trailer[2] << 8 | trailer[3];
    if (crc != want) {
        return ctl_fail(ctl, CTL_EXIT_SERVER,
                        "%s: checksum mismatch (CRC-32C %08x, the trailer says %08x): the backup "
                        "is corrupt; nothing was written",
                        name, crc, want);
    }
    return 0;
}

/* GET the backup into FILE atomically: a temporary file beside it, fsync,
 * rename; nothing is left behind on failure. */
static int run_backup(struct ctl *ctl)
{
    const char *file = ctl->opts.file;
    char err[1024];
    struct ctl_atomic a;
    if (file == NULL || strcmp(file, "-") == 0) {
        return ctl_fail(ctl, CTL_EXIT_USAGE, "give the file to write with -f FILE");
    }
    int rv = ctl_atomic_open(&a, file, err, sizeof(err));
    if (rv != 0) {
        return ctl_fail(ctl, rv, "%s", err);
    }
    struct ctl_response r;
    ctl_response_init(&r);
    r.sink_fd = a.fd;
    rv = call(ctl, "GET", ctl->opts.res->path, NULL, 0, &r);
    if (rv == 0 && r.sink_failed) {
        rv = ctl_fail(ctl, CTL_EXIT_USAGE, "write %s: %s", a.tmp, strerror(r.sink_errno));
    } else if (rv == 0 && r.status >= 300) {
        rv = ctl_fail_response(ctl, &r);
    }
    off_t size = lseek(a.fd, 0, SEEK_END);
    if (rv == 0 && strcmp(r.checksum, "crc32c-trailer") == 0) {
        rv = backup_check(ctl, a.fd, size, r.endpoint);
    }
    if (rv != 0) {
        ctl_atomic_abort(&a);
    } else if (ctl_atomic_commit(&a, 0600, err, sizeof(err)) != 0) {
        rv = ctl_fail(ctl, CTL_EXIT_USAGE, "%s", err);
    } else if (ctl->opts.output == CTL_OUTPUT_TABLE) {
        fprintf(ctl->out, "backup written to %s (%lld bytes) from %s\n", file, (long long)size,
                r.endpoint);
    }
    ctl_response_close(&r);
    return rv;
}

/* ---- sessions -------------------------------------------------------------- */

int ctl_session_login(struct ctl *ctl, const char *user, const char *password, json_t **answer)
{
    json_t *body = json_pack("{ssss}", "username", user, "password", password);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        return ctl_fail(ctl, CTL_EXIT_USAGE, "out of memory");
    }
    struct ctl_response r;
    ctl_response_init(&r);
    int rv = call_json(ctl, "POST", ctl_resource_find("login")->path, text, 0, &r, answer);
    explicit_bzero(text, strlen(text));
    free(text);
    ctl_response_close(&r);
    if (rv != 0) {
        return rv;
    }
    const char *token = json_string_value(json_object_get(*answer, "token"));
    if (token == NULL || ctl_client_set_token(&ctl->client, token) != 0) {
        json_decref(*answer);
        *answer = NULL;
        return ctl_fail(ctl, CTL_EXIT_SERVER, "the login answer has no token");
    }
    return 0;
}

int ctl_session_logout(struct ctl *ctl)
{
    struct ctl_response r;
    json_t *answer;
    ctl_response_init(&r);
    int rv = call_json(ctl, "POST", ctl_resource_find("logout")->path, NULL, 0, &r, &answer);
    json_decref(answer);
    ctl_response_close(&r);
    return rv;
}

static int run_login(struct ctl *ctl)
{
    char err[512];
    struct ctl_creds creds;
    int rv = ctl_creds_resolve(&creds, &ctl->opts, &ctl->cfg, NULL, true, err, sizeof(err));
    if (rv != 0) {
        return ctl_fail(ctl, rv, "%s", err);
    }
    if (creds.user == NULL) {
        return ctl_fail(ctl, CTL_EXIT_USAGE,
                        "login needs a user: --user NAME with --password-file FILE, or "
                        "CAIRN_USER and CAIRN_PASSWORD");
    }
    if (ctl->token_file == NULL) {
        ctl_creds_close(&creds);
        return ctl_fail(ctl, CTL_EXIT_USAGE, "no token file: give --token-file (HOME is unset)");
    }
    json_t *answer;
    rv = ctl_session_login(ctl, creds.user, creds.password, &answer);
    if (rv == 0) {
        const char *token = json_string_value(json_object_get(answer, "token"));
        size_t len = strlen(token);
        char *line = malloc(len + 2);
        if (line == NULL) {
            rv = ctl_fail(ctl, CTL_EXIT_USAGE, "out of memory");
        } else {
            snprintf(line, len + 2, "%s\n", token);
            rv = ctl_file_write_atomic(ctl->token_file, line, len + 1, 0600, err, sizeof(err));
            explicit_bzero(line, len + 1);
            free(line);
            if (rv != 0) {
                rv = ctl_fail(ctl, rv, "%s", err);
            }
        }
        if (rv == 0) {
            const char *expires = json_string_value(json_object_get(answer, "expires_at"));
            fprintf(ctl->err, "logged in as %s; token stored in %s, valid until %s\n", creds.user,
                    ctl->token_file, expires ? expires : "?");
        }
        json_decref(answer);
    }
    ctl_creds_close(&creds);
    return rv;
}

static int run_logout(struct ctl *ctl)
{
    if (ctl->client.token == NULL) {
        return ctl_fail(ctl, CTL_EXIT_AUTH, "not logged in: no token to revoke");
    }
    int rv = ctl_session_logout(ctl);
    /* The stored token is worthless once revoked (or already invalid). */
    if ((rv == 0 || rv == CTL_EXIT_AUTH) && ctl->token_from_file && unlink(ctl->token_file) != 0 &&
        errno != ENOENT) {
        return ctl_fail(ctl, CTL_EXIT_USAGE, "remove %s: %s", ctl->token_file, strerror(errno));
    }
    if (rv == 0) {
        fprintf(ctl->err, "logged out\n");
    }
    return rv;
}

static int run_whoami(struct ctl *ctl)
{
    return request_run(ctl, "GET", ctl->opts.res->path, NULL, NULL);
}

/* ---- the verb table -------------------------------------------------------- */

#define O(id)    CTL_OPT_BIT(CTL_OPT_##id)
#define LIST_OPT (O(FILTER) | O(LIMIT) | O(CURSOR) | O(ALL))

const struct ctl_verb ctl_verbs[CTL_VERB_COUNT] = {
    [CTL_VERB_LIST] = {"list", run_list, LIST_OPT, 0, 0,
                       "[--filter KEY=VALUE ...] [--limit N] [--cursor C] [--all]",
                       "list (one page; --all: every page)"},
    [CTL_VERB_GET] = {"get", run_get, 0, 1, 1, "ID", "show one"},
    [CTL_VERB_CREATE] = {"create", run_create, O(FILE) | O(WAIT) | O(WAIT_TIMEOUT) | O(DRY_RUN), 0,
                         0, "-f FILE|- [--wait] [--dry-run]",
                         "create one from a JSON body (--dry-run: services)"},
    [CTL_VERB_REPLACE] = {"replace", run_replace,
                          O(FILE) | O(IF_MATCH) | O(WAIT) | O(WAIT_TIMEOUT) | O(DRY_RUN), 1, 1,
                          "ID -f FILE|- [--if-match REVISION] [--wait] [--dry-run]",
                          "replace one's fields with a JSON body (--dry-run: services)"},
    [CTL_VERB_DELETE] = {"delete", run_delete, O(IF_MATCH) | O(CASCADE) | O(WAIT) | O(WAIT_TIMEOUT),
                         1, 1, "ID [--cascade] [--if-match REVISION] [--wait]", "delete one"},
    [CTL_VERB_PUBLISH] = {"publish", run_publish, 0, 1, 1, "ID",
                          "publish a draft so tenants can use it"},
    [CTL_VERB_WAIT] = {"wait", run_job_wait, O(WAIT_TIMEOUT), 1, 1, "ID [--wait-timeout S]",
                       "wait until the job ends (exit 8 if it failed)"},
    [CTL_VERB_CANCEL] = {"cancel", run_cancel, 0, 1, 1, "ID", "cancel a running job"},
    [CTL_VERB_STATUS] = {"status", run_status, 0, 0, 0, "", "leader, term and every member"},
    [CTL_VERB_ADD] = {"add", run_add, 0, 3, 3, "ID RAFT-ADDRESS API-ADDRESS",
                      "add a started node (a spare, then a voter)"},
    [CTL_VERB_REMOVE] = {"remove", run_remove, O(FORCE), 1, 1, "ID [--force]",
                         "remove a node from the configuration"},
    [CTL_VERB_AUDIT] = {NULL, run_audit,
                        LIST_OPT | O(AUDIT_USER) | O(TENANT) | O(KIND) | O(SINCE) | O(UNTIL), 0, 0,
                        "[--user U] [--tenant T] [--kind K] [--since RFC3339] [--until RFC3339] "
                        "[--limit N] [--all]",
                        "who did what"},
    [CTL_VERB_BACKUP] = {NULL, run_backup, O(FILE), 0, 0, "-f FILE",
                         "write a backup to FILE (restore: cairnd --restore FILE)"},
    [CTL_VERB_LOGIN] = {NULL, run_login, 0, 0, 0, "[--user NAME --password-file FILE]",
                        "log in; store the token in the token file"},
    [CTL_VERB_LOGOUT] = {NULL, run_logout, 0, 0, 0, "", "revoke the token; remove the token file"},
    [CTL_VERB_WHOAMI] = {NULL, run_whoami, 0, 0, 0, "", "the user the credentials belong to"},
    [CTL_VERB_CHECK_DRIFT] = {"check-drift", run_check_drift, O(WAIT) | O(WAIT_TIMEOUT), 1, 1,
                              "ID [--wait]",
                              "compare running with the intended config now (a job)"},
    [CTL_VERB_SYNC_FROM] = {"sync-from", run_sync_from, O(WAIT) | O(WAIT_TIMEOUT), 1, 1,
                            "ID [--wait]", "adopt running as the base config (a job)"},
    [CTL_VERB_ONBOARD] = {"onboard", run_onboard, O(WAIT) | O(WAIT_TIMEOUT), 1, 1, "ID [--wait]",
                          "onboard now, or reconnect and re-read (a job)"},
};
