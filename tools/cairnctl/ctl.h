/*
 * cairnctl: the operator's command line over Cairn's public REST API, in
 * the spirit of etcdctl and kubectl. This is the one header of the tool's
 * modules:
 *
 *   options.c    the option table, the command line parser and --help
 *   resources.c  the resource table: the one place naming API paths and
 *                table columns, and which verbs each resource takes
 *   config.c     the config file, credentials (flags, environment, config,
 *                token file) and small file helpers
 *   client.c     the HTTP client (libcurl, one kept-alive handle, fail-over
 *                across endpoints on connection failures and 503)
 *   render.c     exit codes, problem+json as one line, tables, JSON output
 *   commands.c   what each verb does
 *   main.c       wires the above together
 *
 * The tool is single-threaded: every function here runs on the main thread.
 */
#ifndef CAIRN_CTL_H
#define CAIRN_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* Exit codes (documented in docs/cairnctl.md and docs/cairnctl.1). */
enum ctl_exit {
    CTL_EXIT_OK = 0,          /* done */
    CTL_EXIT_USAGE = 1,       /* bad command line, config or input file */
    CTL_EXIT_REFUSED = 2,     /* the server refused the request (4xx not below) */
    CTL_EXIT_NOT_FOUND = 3,   /* 404 */
    CTL_EXIT_CONFLICT = 4,    /* 409 or 412 */
    CTL_EXIT_UNAVAILABLE = 5, /* no endpoint answered, or 503 from every one */
    CTL_EXIT_AUTH = 6,        /* 401 or 403, or no credentials */
    CTL_EXIT_SERVER = 7,      /* another 5xx (a server bug or storage failure) */
    CTL_EXIT_JOB_FAILED = 8,  /* a waited-for job ended failed or cancelled */
};

/* The exit code for an HTTP status (0 for 1xx-3xx). */
int ctl_exit_for_status(long status);

/* ---- Options and commands ------------------------------------------------ */

enum ctl_output { CTL_OUTPUT_TABLE, CTL_OUTPUT_JSON };

/* Option ids; the global ones (taken by every command) come first. */
enum ctl_opt {
    CTL_OPT_ENDPOINTS,
    CTL_OPT_USER,
    CTL_OPT_PASSWORD_FILE,
    CTL_OPT_CONFIG,
    CTL_OPT_TOKEN,
    CTL_OPT_TOKEN_FILE,
    CTL_OPT_OUTPUT,
    CTL_OPT_TIMEOUT,
    CTL_OPT_HELP,
    CTL_OPT_N_GLOBAL,
    CTL_OPT_FILTER = CTL_OPT_N_GLOBAL,
    CTL_OPT_LIMIT,
    CTL_OPT_CURSOR,
    CTL_OPT_ALL,
    CTL_OPT_FILE,
    CTL_OPT_IF_MATCH,
    CTL_OPT_CASCADE,
    CTL_OPT_FORCE,
    CTL_OPT_WAIT,
    CTL_OPT_WAIT_TIMEOUT,
    CTL_OPT_AUDIT_USER, /* `audit --user U`: --user after the word audit */
    CTL_OPT_TENANT,
    CTL_OPT_KIND,
    CTL_OPT_SINCE,
    CTL_OPT_UNTIL,
    CTL_OPT_DRY_RUN,
    CTL_OPT_COUNT
};
#define CTL_OPT_BIT(id) (1u << (id))

#define CTL_MAX_ARGS    4
#define CTL_MAX_FILTERS 32

struct ctl;
struct ctl_resource;
typedef int (*ctl_run_fn)(struct ctl *ctl);

/* A verb: what a command does, whatever resource it applies to. */
struct ctl_verb {
    const char *word;     /* "list"; NULL: the resource word alone is the command */
    ctl_run_fn run;       /* performs it; returns an exit code */
    unsigned opts;        /* CTL_OPT_BITs it takes besides the global options */
    int min_args;         /* positional arguments after the verb */
    int max_args;         /* ... */
    const char *synopsis; /* arguments and options, for --help */
    const char *summary;  /* one line, for --help */
};

/* A table column: a header and a dotted field path into each item. */
struct ctl_column {
    const char *header;
    const char *field;
};

/* Verbs a resource may take (bits of struct ctl_resource.verbs). */
enum ctl_verb_id {
    CTL_VERB_LIST,
    CTL_VERB_GET,
    CTL_VERB_CREATE,
    CTL_VERB_REPLACE,
    CTL_VERB_DELETE,
    CTL_VERB_PUBLISH,
    CTL_VERB_WAIT,
    CTL_VERB_CANCEL,
    CTL_VERB_STATUS,
    CTL_VERB_ADD,
    CTL_VERB_REMOVE,
    CTL_VERB_AUDIT,
    CTL_VERB_BACKUP,
    CTL_VERB_LOGIN,
    CTL_VERB_LOGOUT,
    CTL_VERB_WHOAMI,
    CTL_VERB_CHECK_DRIFT,
    CTL_VERB_SYNC_FROM,
    CTL_VERB_ONBOARD,
    CTL_VERB_COUNT
};
#define CTL_VERB_BIT(id) (1u << (id))
#define CTL_VERBS_CRUD                                                                          \
    (CTL_VERB_BIT(CTL_VERB_LIST) | CTL_VERB_BIT(CTL_VERB_GET) | CTL_VERB_BIT(CTL_VERB_CREATE) | \
     CTL_VERB_BIT(CTL_VERB_REPLACE) | CTL_VERB_BIT(CTL_VERB_DELETE))

/* A resource (or a command word) of the API. */
struct ctl_resource {
    const char *word;                 /* the command word: "tenant" */
    const char *path;                 /* its collection: "/api/v1/tenants" */
    const char *list_path;            /* where its list is read; NULL: path */
    const char *list_key;             /* the array in a list answer: "items" */
    const struct ctl_column *columns; /* table columns, NULL-terminated */
    unsigned verbs;                   /* CTL_VERB_BITs */
    bool async;                       /* writes answer 202 and a job */
    const char *summary;              /* one line, for --help */
};

extern const struct ctl_verb ctl_verbs[CTL_VERB_COUNT];
extern const struct ctl_resource ctl_resources[];

/* The resource named word, or NULL. */
const struct ctl_resource *ctl_resource_find(const char *word);

/* The parsed command line. Strings point into argv. */
struct ctl_opts {
    const char *endpoints;
    const char *user;
    const char *password_file;
    const char *config;
    const char *token;
    const char *token_file;
    enum ctl_output output;
    bool output_set;
    double timeout_s; /* per request; 0: the default */
    bool help;

    const struct ctl_resource *res; /* NULL with --help alone */
    const struct ctl_verb *verb;    /* NULL with `RESOURCE --help` */
    const char *args[CTL_MAX_ARGS];
    int nargs;
    const char *filters[CTL_MAX_FILTERS]; /* "k=v" */
    int nfilters;
    long limit; /* 0: the server's default */
    const char *cursor;
    bool all;
    const char *file;
    long if_match; /* 0: none; -1: "*" */
    bool cascade;
    bool force;
    bool wait;
    double wait_timeout_s;
    const char *audit_user;
    const char *tenant;
    const char *kind;
    const char *since;
    const char *until;
    bool dry_run;
    unsigned seen; /* CTL_OPT_BITs given */
};

/*
 * Parses argv into opts. Returns 0, or CTL_EXIT_USAGE with a one-line
 * message in err. With --help, opts->help is set and res/verb say what the
 * help is about (either may be NULL).
 */
int ctl_opts_parse(struct ctl_opts *opts, int argc, char **argv, char *err, size_t errlen);

/* Prints the help for what opts names (everything, a resource or a verb). */
void ctl_help_print(FILE *out, const struct ctl_opts *opts);

/* ---- Config and credentials ---------------------------------------------- */

/* The settings of a config file (key = value lines). Strings are owned. */
struct ctl_config {
    char *endpoints;
    char *user;
    char *password;
    char *password_file;
    char *token;
    char *token_file;
    char *output;
    double timeout_s;
    bool exposed; /* it holds a password or token and others may read it */
};

/*
 * Reads path into cfg (zeroed first). A missing file is fine when !required.
 * Returns 0 or CTL_EXIT_USAGE with the file, line and problem in err.
 */
int ctl_config_load(struct ctl_config *cfg, const char *path, bool required, char *err,
                    size_t errlen);

/* Parses the text of a config file (name is for messages). */
int ctl_config_parse(struct ctl_config *cfg, const char *name, const char *text, char *err,
                     size_t errlen);
void ctl_config_close(struct ctl_config *cfg);

/* How this invocation authenticates. Strings are owned. */
struct ctl_creds {
    char *token;        /* a bearer token to send as is */
    char *user;         /* else a user name and password to log in with */
    char *password;     /* ... */
    const char *source; /* where they came from, for messages */
};

/*
 * Chooses the credentials: a token or a user and password from the flags,
 * then the environment (CAIRN_TOKEN, CAIRN_USER, CAIRN_PASSWORD), then the
 * config file, then the token file that `cairnctl login` writes. need_user:
 * a user and password are needed (login), tokens do not count. Returns 0
 * (creds may be empty) or CTL_EXIT_USAGE with err.
 */
int ctl_creds_resolve(struct ctl_creds *creds, const struct ctl_opts *opts,
                      const struct ctl_config *cfg, const char *token_file, bool need_user,
                      char *err, size_t errlen);
void ctl_creds_close(struct ctl_creds *creds);

/* The default paths below $HOME (NULL if HOME is unset); free() them. */
char *ctl_default_config_path(void);
char *ctl_default_token_path(void);

/* Reads a whole file ("-": stdin) into a NUL-terminated buffer (free()). */
int ctl_file_read(const char *path, char **text, size_t *len, char *err, size_t errlen);

/* Writes all of data to fd (retrying short writes); 0, or -1 with errno. */
int ctl_write_all(int fd, const void *data, size_t len);

/*
 * An atomic write: a temporary file beside the final one, which appears
 * whole (fsync'ed, renamed) on commit or not at all.
 */
struct ctl_atomic {
    int fd;           /* the temporary file, written by the caller */
    char *tmp;        /* its name (owned) */
    const char *path; /* the final name (borrowed) */
};
int ctl_atomic_open(struct ctl_atomic *a, const char *path, char *err, size_t errlen);
/* Sets the mode, fsyncs, closes and renames; on failure, as abort. */
int ctl_atomic_commit(struct ctl_atomic *a, int mode, char *err, size_t errlen);
/* Closes and removes the temporary file. A no-op after commit. */
void ctl_atomic_abort(struct ctl_atomic *a);

/*
 * Writes data to path atomically (a temporary file in the same folder,
 * fsync, rename) with the given mode, making missing parent folders 0700.
 */
int ctl_file_write_atomic(const char *path, const char *data, size_t len, int mode, char *err,
                          size_t errlen);

/* ---- HTTP client --------------------------------------------------------- */

#define CTL_MAX_ENDPOINTS 16

struct ctl_client {
    void *curl;                         /* one CURL easy handle: keep-alive */
    char *endpoints[CTL_MAX_ENDPOINTS]; /* base URLs without a trailing '/' */
    int nendpoints;
    int current;       /* the endpoint that answered last; tried first */
    char *token;       /* bearer token, or NULL */
    long timeout_ms;   /* bound of one request to one endpoint */
    char errmsg[1024]; /* why the last request got no answer */
};

/* An answer. */
struct ctl_response {
    long status;
    char *body; /* NUL-terminated; empty when the body went to sink_fd */
    size_t len;
    size_t cap;
    char location[512];
    char etag[64];
    char content_type[128];
    char checksum[64];    /* X-Cairn-Checksum (backups) */
    const char *endpoint; /* the endpoint that answered */
    int sink_fd;          /* >= 0: a 2xx body is written there, not kept */
    bool sink_failed;     /* writing to sink_fd failed (errno in sink_errno) */
    int sink_errno;
};

/* Splits a comma-separated list of URLs ("host:port" means http://). */
int ctl_client_init(struct ctl_client *c, const char *endpoints, double timeout_s, char *err,
                    size_t errlen);
void ctl_client_close(struct ctl_client *c);
int ctl_client_set_token(struct ctl_client *c, const char *token);

void ctl_response_init(struct ctl_response *r);
void ctl_response_close(struct ctl_response *r);

/*
 * Sends one request (path includes the query) with an optional JSON body,
 * trying each endpoint from the current one on until one answers with
 * anything but 503. A POST carries one Idempotency-Key for all attempts, so
 * a retry on another endpoint is applied at most once. if_match: 0 none,
 * -1 "*", N "N". Returns 0 with resp filled, or CTL_EXIT_UNAVAILABLE with
 * c->errmsg saying what each endpoint did if none answered but 503.
 */
int ctl_client_request(struct ctl_client *c, const char *method, const char *path, const char *body,
                       long if_match, struct ctl_response *resp);

/* Appends "?k=v" or "&k=v" (v escaped) to a path buffer of size n. */
int ctl_query_add(char *path, size_t n, const char *key, const char *value);

/*
 * Appends the audit filters given in opts (--user, --tenant, --kind,
 * --since, --until) as the query parameters GET /api/v1/audit takes.
 * Returns 0, or -1 if the path would not fit in n bytes.
 */
int ctl_audit_query_add(char *path, size_t n, const struct ctl_opts *opts);

/* ---- Rendering ----------------------------------------------------------- */

/*
 * Formats an error answer as one line without the "cairnctl: " prefix:
 * "422 invalid-field (contact.email): must be an e-mail address". A body
 * that is not problem+json is quoted briefly.
 */
void ctl_problem_format(char *out, size_t n, long status, const char *content_type,
                        const char *body, size_t len);

/* The text of one table cell: "-" for absent or null, compact JSON for
 * objects and arrays, control characters replaced; at most n-1 bytes. */
void ctl_cell_format(char *out, size_t n, const json_t *value);

/* The value at a dotted path ("contact.email") in obj, or NULL. */
const json_t *ctl_json_path(const json_t *obj, const char *path);

/* Prints items (an array of objects) as aligned columns with a header. */
int ctl_table_print(FILE *out, const struct ctl_column *cols, const json_t *items);

/* Prints one object as FIELD VALUE lines, nested objects as dotted names. */
int ctl_object_print(FILE *out, const json_t *obj);

/* Prints JSON indented, with a final newline. */
int ctl_json_print(FILE *out, const json_t *value);

/* ---- Running ------------------------------------------------------------- */

struct ctl {
    struct ctl_opts opts;
    struct ctl_config cfg;
    struct ctl_client client;
    char *token_file;     /* where login stores the token */
    bool logged_in;       /* this run logged in itself: it logs out at the end */
    bool token_from_file; /* the token came from the token file */
    FILE *out;
    FILE *err;
};

/* Prints "cairnctl: " and a message to ctl->err; returns code. */
int ctl_fail(struct ctl *ctl, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prints the error answer as one line and returns its exit code. */
int ctl_fail_response(struct ctl *ctl, const struct ctl_response *r);

/*
 * Logs in (POST auth/login) and makes the token the client's. On success
 * *answer holds the login answer (json_decref it).
 */
int ctl_session_login(struct ctl *ctl, const char *user, const char *password, json_t **answer);

/* Revokes the client's token (POST auth/logout). */
int ctl_session_logout(struct ctl *ctl);

/* The job progress line for a job object (state, done/total). */
void ctl_job_progress_format(char *out, size_t n, const json_t *job, bool bar);

/* CRC-32C (Castagnoli, reflected 0x82F63B78), four bits per step: the
 * checksum the server puts in a backup's last four bytes (big-endian). */
uint32_t ctl_crc32c(uint32_t crc, const unsigned char *p, size_t len);

/* True if a job state is final; *ok says whether it succeeded. */
bool ctl_job_state_final(const char *state, bool *ok);

#endif
