/*
 * The command line: `cairnctl [GLOBAL OPTIONS] RESOURCE VERB [ARGS]
 * [OPTIONS]`, options anywhere (as kubectl takes them), `--name value` or
 * `--name=value`, `--` ends the options. Each verb lists the options it
 * takes; any other is a usage error naming it, so a typo never silently
 * does something else. One exception keeps `audit --user U` natural: after
 * the word `audit`, --user filters the audit log (credentials then go
 * before the word `audit`, or in the environment or config file).
 */
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* How an option's value is stored (nginx-style: the table says where). */
enum opt_kind {
    OPT_STRING,   /* const char * at offset */
    OPT_FLAG,     /* bool at offset; takes no value */
    OPT_SECONDS,  /* double at offset, from 0.001 to 1e7 */
    OPT_OUTPUT,   /* table|json */
    OPT_FILTER,   /* KEY=VALUE, appended */
    OPT_LIMIT,    /* a whole number >= 1 */
    OPT_IF_MATCH, /* a revision, "revision" or * */
};

struct option_def {
    const char *name; /* long name without "--" */
    char short_name;  /* or 0 */
    enum opt_kind kind;
    size_t offset;    /* of the value in struct ctl_opts */
    const char *arg;  /* its argument, for --help */
    const char *help; /* one line */
};

#define AT(field) offsetof(struct ctl_opts, field)

static const struct option_def options[CTL_OPT_COUNT] = {
    [CTL_OPT_ENDPOINTS] = {"endpoints", 0, OPT_STRING, AT(endpoints), "URL[,URL...]",
                           "REST endpoints, tried in order (env CAIRN_ENDPOINTS)"},
    [CTL_OPT_USER] = {"user", 0, OPT_STRING, AT(user), "NAME", "log in as NAME (env CAIRN_USER)"},
    [CTL_OPT_PASSWORD_FILE] = {"password-file", 0, OPT_STRING, AT(password_file), "FILE",
                               "read the password from FILE (env CAIRN_PASSWORD)"},
    [CTL_OPT_CONFIG] = {"config", 0, OPT_STRING, AT(config), "FILE",
                        "config file (default ~/.config/cairn/cairnctl.conf)"},
    [CTL_OPT_TOKEN] = {"token", 0, OPT_STRING, AT(token), "TOKEN",
                       "bearer token (env CAIRN_TOKEN)"},
    [CTL_OPT_TOKEN_FILE] = {"token-file", 0, OPT_STRING, AT(token_file), "FILE",
                            "token file of login (default ~/.config/cairn/token)"},
    [CTL_OPT_OUTPUT] = {"output", 'o', OPT_OUTPUT, AT(output), "table|json",
                        "output format (default table)"},
    [CTL_OPT_TIMEOUT] = {"timeout", 0, OPT_SECONDS, AT(timeout_s), "SECONDS",
                         "bound of one request to one endpoint (default 15)"},
    [CTL_OPT_HELP] = {"help", 'h', OPT_FLAG, AT(help), NULL, "show help"},
    [CTL_OPT_FILTER] = {"filter", 0, OPT_FILTER, AT(filters), "KEY=VALUE",
                        "only items matching (a query parameter; repeatable)"},
    [CTL_OPT_LIMIT] = {"limit", 0, OPT_LIMIT, AT(limit), "N", "page size"},
    [CTL_OPT_CURSOR] = {"cursor", 0, OPT_STRING, AT(cursor), "CURSOR", "start at this page"},
    [CTL_OPT_ALL] = {"all", 0, OPT_FLAG, AT(all), NULL, "follow next_cursor to the last page"},
    [CTL_OPT_FILE] = {"file", 'f', OPT_STRING, AT(file), "FILE",
                      "JSON body from FILE (- for stdin)"},
    [CTL_OPT_IF_MATCH] = {"if-match", 0, OPT_IF_MATCH, AT(if_match), "REVISION",
                          "only if the object's revision (ETag) is still REVISION"},
    [CTL_OPT_CASCADE] = {"cascade", 0, OPT_FLAG, AT(cascade), NULL,
                         "delete what the object holds, too"},
    [CTL_OPT_FORCE] = {"force", 0, OPT_FLAG, AT(force), NULL,
                       "remove even if the node cannot hand over"},
    [CTL_OPT_WAIT] = {"wait", 0, OPT_FLAG, AT(wait), NULL, "wait for the job the request starts"},
    [CTL_OPT_WAIT_TIMEOUT] = {"wait-timeout", 0, OPT_SECONDS, AT(wait_timeout_s), "SECONDS",
                              "give up waiting for a job after SECONDS (default 3600)"},
    [CTL_OPT_AUDIT_USER] = {"user", 0, OPT_STRING, AT(audit_user), "NAME", "only what NAME did"},
    [CTL_OPT_TENANT] = {"tenant", 0, OPT_STRING, AT(tenant), "ID",
                        "only what concerns this tenant"},
    [CTL_OPT_KIND] = {"kind", 0, OPT_STRING, AT(kind), "KIND", "only this kind of object"},
    [CTL_OPT_SINCE] = {"since", 0, OPT_STRING, AT(since), "RFC3339", "only from this time on"},
    [CTL_OPT_UNTIL] = {"until", 0, OPT_STRING, AT(until), "RFC3339",
                       "only up to this time (inclusive)"},
    [CTL_OPT_DRY_RUN] = {"dry-run", 0, OPT_FLAG, AT(dry_run), NULL,
                         "only diff the devices (a job); write nothing (services)"},
};

#undef AT

#define GLOBAL_OPTS (CTL_OPT_BIT(CTL_OPT_N_GLOBAL) - 1u)

static int usage(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int usage(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return CTL_EXIT_USAGE;
}

static int parse_number(const char *text, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Looks an option up by long or short name; -1 if unknown. */
static int option_find(const char *name, size_t len, char short_name, bool after_audit)
{
    for (int id = 0; id < CTL_OPT_COUNT; id++) {
        const struct option_def *o = &options[id];
        bool match = short_name ? o->short_name == short_name
                                : strlen(o->name) == len && strncmp(o->name, name, len) == 0;
        if (!match) {
            continue;
        }
        if (id == CTL_OPT_USER && after_audit) {
            return CTL_OPT_AUDIT_USER;
        }
        return id;
    }
    return -1;
}

/* Parses an If-Match value: 7, "7" (as an ETag is printed) or *. */
static int if_match_parse(const char *v, long *out)
{
    char buf[32];
    size_t len = strlen(v);
    double num;
    if (strcmp(v, "*") == 0) {
        *out = -1;
        return 0;
    }
    if (len >= 2 && len < sizeof(buf) && v[0] == '"' && v[len - 1] == '"') {
        memcpy(buf, v + 1, len - 2);
        buf[len - 2] = '\0';
    } else if (len < sizeof(buf)) {
        memcpy(buf, v, len + 1);
    } else {
        return -1;
    }
    if (parse_number(buf, 1, 9e15, &num) != 0 || num != (long)num) {
        return -1;
    }
    *out = (long)num;
    return 0;
}

/* Stores the value of option id where the table says; 0 or a usage error. */
static int option_store(struct ctl_opts *o, int id, const char *v, char *err, size_t n)
{
    const struct option_def *d = &options[id];
    void *slot = (char *)o + d->offset;
    double num;
    switch (d->kind) {
        case OPT_STRING:
            *(const char **)slot = v;
            return 0;
        case OPT_FLAG:
            *(bool *)slot = true;
            return 0;
        case OPT_SECONDS:
            if (parse_number(v, 0.001, 1e7, &num) != 0) {
                return usage(err, n, "--%s must be a number of seconds, not '%s'", d->name, v);
            }
            *(double *)slot = num;
            return 0;
        case OPT_OUTPUT:
            if (strcmp(v, "table") != 0 && strcmp(v, "json") != 0) {
                return usage(err, n, "-o must be table or json, not '%s'", v);
            }
            o->output = v[0] == 't' ? CTL_OUTPUT_TABLE : CTL_OUTPUT_JSON;
            o->output_set = true;
            return 0;
        case OPT_FILTER:
            if (strchr(v, '=') == NULL || v[0] == '=') {
                return usage(err, n, "--filter takes KEY=VALUE, not '%s'", v);
            }
            if (o->nfilters == CTL_MAX_FILTERS) {
                return usage(err, n, "too many --filter options (at most %d)", CTL_MAX_FILTERS);
            }
            o->filters[o->nfilters++] = v;
            return 0;
        case OPT_LIMIT:
            if (parse_number(v, 1, 1000000, &num) != 0 || num != (long)num) {
                return usage(err, n, "--limit must be a whole number from 1 on, not '%s'", v);
            }
            o->limit = (long)num;
            return 0;
        case OPT_IF_MATCH:
            if (if_match_parse(v, &o->if_match) != 0) {
                return usage(err, n,
                             "--if-match takes a revision (a whole number >= 1) or *, not '%s'", v);
            }
            return 0;
    }
    return usage(err, n, "unhandled option --%s", d->name);
}

/* Finds the verb of a resource from the positional words. */
static int resolve(struct ctl_opts *o, const char **words, int nwords, char *err, size_t n)
{
    o->res = ctl_resource_find(words[0]);
    if (o->res == NULL) {
        return usage(err, n, "unknown command '%s' (see cairnctl --help)", words[0]);
    }
    int first_arg = 1;
    for (int id = 0; id < CTL_VERB_COUNT; id++) {
        if ((o->res->verbs & CTL_VERB_BIT(id)) && ctl_verbs[id].word == NULL) {
            o->verb = &ctl_verbs[id];
        }
    }
    if (o->verb == NULL) {
        if (nwords < 2) {
            if (o->help) {
                return 0;
            }
            return usage(err, n, "'%s' needs a verb (see cairnctl %s --help)", words[0], words[0]);
        }
        for (int id = 0; id < CTL_VERB_COUNT; id++) {
            if ((o->res->verbs & CTL_VERB_BIT(id)) && strcmp(ctl_verbs[id].word, words[1]) == 0) {
                o->verb = &ctl_verbs[id];
            }
        }
        if (o->verb == NULL) {
            return usage(err, n, "'%s' takes no verb '%s' (see cairnctl %s --help)", words[0],
                         words[1], words[0]);
        }
        first_arg = 2;
    }
    if (o->help) {
        return 0;
    }
    int nargs = nwords - first_arg;
    if (nargs < o->verb->min_args || nargs > o->verb->max_args) {
        snprintf(err, n, "usage: cairnctl %s%s%s %s", o->res->word, o->verb->word ? " " : "",
                 o->verb->word ? o->verb->word : "", o->verb->synopsis);
        return CTL_EXIT_USAGE;
    }
    for (int i = 0; i < nargs; i++) {
        o->args[i] = words[first_arg + i];
    }
    o->nargs = nargs;
    unsigned extra = o->seen & ~GLOBAL_OPTS & ~o->verb->opts;
    for (int id = CTL_OPT_N_GLOBAL; id < CTL_OPT_COUNT; id++) {
        if (extra & CTL_OPT_BIT(id)) {
            snprintf(err, n, "'%s%s%s' takes no option --%s", o->res->word,
                     o->verb->word ? " " : "", o->verb->word ? o->verb->word : "",
                     options[id].name);
            return CTL_EXIT_USAGE;
        }
    }
    return 0;
}

int ctl_opts_parse(struct ctl_opts *o, int argc, char **argv, char *err, size_t n)
{
    const char *words[CTL_MAX_ARGS + 2];
    int nwords = 0;
    bool options_done = false;

    memset(o, 0, sizeof(*o));
    err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (nwords == (int)(sizeof(words) / sizeof(words[0]))) {
                return usage(err, n, "too many arguments, starting at '%s'", a);
            }
            words[nwords++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        bool after_audit = nwords > 0 && strcmp(words[0], "audit") == 0;
        const char *value = NULL;
        int id;
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            id = option_find(name, len, 0, after_audit);
            if (eq != NULL) {
                value = eq + 1;
            }
        } else {
            id = a[2] == '\0' ? option_find(NULL, 0, a[1], after_audit) : -1;
        }
        if (id < 0) {
            return usage(err, n, "unknown option '%s' (see cairnctl --help)", a);
        }
        bool has_arg = options[id].kind != OPT_FLAG;
        if (has_arg && value == NULL) {
            if (i + 1 >= argc) {
                return usage(err, n, "option '%s' needs a value", a);
            }
            value = argv[++i];
        } else if (!has_arg && value != NULL) {
            return usage(err, n, "option '%s' takes no value", a);
        }
        o->seen |= CTL_OPT_BIT(id);
        int rv = option_store(o, id, value, err, n);
        if (rv != 0) {
            return rv;
        }
    }
    if (nwords == 0) {
        if (o->help) {
            return 0;
        }
        return usage(err, n, "no command given (see cairnctl --help)");
    }
    return resolve(o, words, nwords, err, n);
}

static void options_print(FILE *out, unsigned mask)
{
    for (int id = 0; id < CTL_OPT_COUNT; id++) {
        if (!(mask & CTL_OPT_BIT(id))) {
            continue;
        }
        const struct option_def *d = &options[id];
        char left[64];
        snprintf(left, sizeof(left), "%s%c%s--%s%s%s", d->short_name ? "-" : "",
                 d->short_name ? d->short_name : ' ', d->short_name ? ", " : " ", d->name,
                 d->arg ? " " : "", d->arg ? d->arg : "");
        fprintf(out, "  %-32s %s\n", d->short_name ? left : left + 2, d->help);
    }
}

/* One line of a command list: its words, its arguments up to the first
 * optional one, and what it does. */
static void verb_line(FILE *out, const struct ctl_resource *r, const struct ctl_verb *v)
{
    char left[128];
    int args = (int)strcspn(v->synopsis, "[");
    while (args > 0 && v->synopsis[args - 1] == ' ') {
        args--;
    }
    snprintf(left, sizeof(left), "%s%s%s %.*s", r->word, v->word ? " " : "", v->word ? v->word : "",
             args, v->synopsis);
    fprintf(out, "  %-44s %s\n", left, v->summary);
}

void ctl_help_print(FILE *out, const struct ctl_opts *o)
{
    if (o->res == NULL) {
        fputs(
            "usage: cairnctl [OPTIONS] COMMAND [ARGS] [OPTIONS]\n\n"
            "The operator's command line over Cairn's REST API. Every command takes\n"
            "--help. Exit codes: 0 ok, 1 usage, 2 refused (4xx), 3 not found,\n"
            "4 conflict or precondition (409/412), 5 unavailable, 6 authentication or\n"
            "permission (401/403), 7 server error (5xx), 8 job failed.\n\nCommands:\n",
            out);
        for (const struct ctl_resource *r = ctl_resources; r->word != NULL; r++) {
            for (int id = 0; id < CTL_VERB_COUNT; id++) {
                if (r->verbs & CTL_VERB_BIT(id)) {
                    verb_line(out, r, &ctl_verbs[id]);
                }
            }
        }
        fputs("\nGlobal options:\n", out);
        options_print(out, GLOBAL_OPTS);
        fputs("\nSee cairnctl(1) and docs/cairnctl.md.\n", out);
        return;
    }
    if (o->verb == NULL) {
        fprintf(out, "usage: cairnctl %s VERB [ARGS] [OPTIONS]\n\n%s: %s.\n\nVerbs:\n",
                o->res->word, o->res->word, o->res->summary);
        for (int id = 0; id < CTL_VERB_COUNT; id++) {
            if (o->res->verbs & CTL_VERB_BIT(id)) {
                verb_line(out, o->res, &ctl_verbs[id]);
            }
        }
        return;
    }
    fprintf(out, "usage: cairnctl %s%s%s %s\n\n%s.\n", o->res->word, o->verb->word ? " " : "",
            o->verb->word ? o->verb->word : "", o->verb->synopsis, o->verb->summary);
    if (o->verb->opts) {
        fputs("\nOptions:\n", out);
        options_print(out, o->verb->opts);
    }
    fputs("\nGlobal options:\n", out);
    options_print(out, GLOBAL_OPTS);
}
