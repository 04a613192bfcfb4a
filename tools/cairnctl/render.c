/*
 * What cairnctl prints: exit codes for HTTP statuses, an RFC 9457 problem
 * as one readable line, tables of aligned columns, objects as FIELD VALUE
 * lines and indented JSON. Cells never hold a newline or a control
 * character, so a table stays one row per item whatever the data holds.
 */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define CELL_MAX     256
#define PROBLEM_URN  "urn:cairn:problem:"
#define COLUMN_SPACE 2

int ctl_exit_for_status(long status)
{
    if (status < 400) {
        return CTL_EXIT_OK;
    }
    switch (status) {
        case 401:
        case 403:
            return CTL_EXIT_AUTH;
        case 404:
            return CTL_EXIT_NOT_FOUND;
        case 409:
        case 412:
            return CTL_EXIT_CONFLICT;
        case 503:
            return CTL_EXIT_UNAVAILABLE;
        default:
            return status < 500 ? CTL_EXIT_REFUSED : CTL_EXIT_SERVER;
    }
}

/* Copies text into out (size n) with control characters as spaces and
 * runs of them folded into one. */
static void one_line(char *out, size_t n, const char *text, size_t len)
{
    size_t o = 0;
    bool space = false;
    for (size_t i = 0; i < len && o + 1 < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch < 0x20 || ch == 0x7f) {
            if (!space && o > 0) {
                out[o++] = ' ';
            }
            space = true;
            continue;
        }
        space = false;
        out[o++] = (char)ch;
    }
    while (o > 0 && out[o - 1] == ' ') {
        o--;
    }
    out[o] = '\0';
}

static const char *json_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

void ctl_problem_format(char *out, size_t n, long status, const char *content_type,
                        const char *body, size_t len)
{
    json_t *p = NULL;
    if (body != NULL && len > 0) {
        p = json_loadb(body, len, 0, NULL);
    }
    (void)content_type; /* a JSON problem is taken whatever its label */
    const char *type = json_str(p, "type");
    const char *title = json_str(p, "title");
    const char *detail = json_str(p, "detail");
    const char *field = json_str(p, "field");
    char text[768];
    if (json_is_object(p) && (type != NULL || detail != NULL || title != NULL)) {
        if (type != NULL && strncmp(type, PROBLEM_URN, strlen(PROBLEM_URN)) == 0) {
            type += strlen(PROBLEM_URN);
        } else if (type != NULL && strcmp(type, "about:blank") == 0) {
            type = NULL;
        }
        const char *what = detail ? detail : title ? title : "";
        snprintf(text, sizeof(text), "%ld%s%s%s%s%s%s%s", status, type ? " " : "", type ? type : "",
                 field ? " (" : "", field ? field : "", field ? ")" : "", what[0] ? ": " : "",
                 what);
    } else if (body != NULL && len > 0) {
        char quoted[200];
        one_line(quoted, sizeof(quoted), body, len);
        snprintf(text, sizeof(text), "%ld: %s", status, quoted);
    } else {
        snprintf(text, sizeof(text), "%ld (no details in the answer)", status);
    }
    one_line(out, n, text, strlen(text));
    json_decref(p);
}

const json_t *ctl_json_path(const json_t *obj, const char *path)
{
    const json_t *v = obj;
    const char *p = path;
    while (v != NULL && *p != '\0') {
        size_t len = strcspn(p, ".");
        char key[128];
        if (len >= sizeof(key)) {
            return NULL;
        }
        memcpy(key, p, len);
        key[len] = '\0';
        v = json_is_object(v) ? json_object_get(v, key) : NULL;
        p += len;
        if (*p == '.') {
            p++;
        }
    }
    return v;
}

void ctl_cell_format(char *out, size_t n, const json_t *v)
{
    char buf[CELL_MAX * 4];
    char *dumped = NULL;
    const char *text = buf;
    size_t len;
    if (v == NULL) {
        snprintf(out, n, "-");
        return;
    }
    switch (json_typeof(v)) {
        case JSON_STRING:
            text = json_string_value(v);
            len = json_string_length(v);
            break;
        case JSON_INTEGER:
            snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            len = strlen(buf);
            break;
        case JSON_REAL:
            snprintf(buf, sizeof(buf), "%g", json_real_value(v));
            len = strlen(buf);
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            text = json_is_true(v) ? "true" : "false";
            len = strlen(text);
            break;
        case JSON_OBJECT:
        case JSON_ARRAY:
            dumped = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
            text = dumped ? dumped : "?";
            len = strlen(text);
            break;
        default: /* null */
            text = "-";
            len = 1;
            break;
    }
    one_line(out, n, text, len);
    if (out[0] == '\0') {
        snprintf(out, n, "%s", "\"\"");
    }
    free(dumped);
}

/* Display width of UTF-8 text: one per code point. */
static size_t width_of(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++) {
        if (((unsigned char)*s & 0xc0) != 0x80) {
            w++;
        }
    }
    return w;
}

static void row_print(FILE *out, char **cells, const size_t *widths, size_t ncols)
{
    for (size_t c = 0; c < ncols; c++) {
        bool last = c + 1 == ncols;
        fputs(cells[c], out);
        if (!last) {
            for (size_t k = width_of(cells[c]); k < widths[c] + COLUMN_SPACE; k++) {
                fputc(' ', out);
            }
        }
    }
    fputc('\n', out);
}

/* Prints rows x ncols cells (row 0: the header) as aligned columns. */
static void grid_print(FILE *out, char **cells, size_t rows, size_t ncols)
{
    size_t widths[32] = {0};
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < ncols && c < 32; c++) {
            size_t w = width_of(cells[r * ncols + c]);
            if (w > widths[c]) {
                widths[c] = w;
            }
        }
    }
    for (size_t r = 0; r < rows; r++) {
        row_print(out, cells + r * ncols, widths, ncols);
    }
}

static void cells_free(char **cells, size_t n)
{
    for (size_t i = 0; i < n && cells != NULL; i++) {
        free(cells[i]);
    }
    free(cells);
}

int ctl_table_print(FILE *out, const struct ctl_column *cols, const json_t *items)
{
    size_t ncols = 0;
    while (cols[ncols].header != NULL && ncols < 32) {
        ncols++;
    }
    size_t rows = json_array_size(items) + 1;
    size_t total = rows * ncols;
    char **cells = calloc(total, sizeof(*cells));
    if (cells == NULL) {
        return -1;
    }
    char cell[CELL_MAX];
    for (size_t c = 0; c < ncols; c++) {
        cells[c] = strdup(cols[c].header);
    }
    for (size_t r = 1; r < rows; r++) {
        const json_t *item = json_array_get(items, r - 1);
        for (size_t c = 0; c < ncols; c++) {
            ctl_cell_format(cell, sizeof(cell), ctl_json_path(item, cols[c].field));
            cells[r * ncols + c] = strdup(cell);
        }
    }
    for (size_t i = 0; i < total; i++) {
        if (cells[i] == NULL) {
            cells_free(cells, total);
            return -1;
        }
    }
    grid_print(out, cells, rows, ncols);
    cells_free(cells, total);
    return 0;
}

/* Appends FIELD VALUE pairs of obj (prefix: the dotted path so far). */
static int object_flatten(json_t *pairs, const json_t *obj, const char *prefix)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        char name[256];
        snprintf(name, sizeof(name), "%s%s%s", prefix, prefix[0] ? "." : "", key);
        if (json_is_object(value) && json_object_size(value) > 0) {
            if (object_flatten(pairs, value, name) != 0) {
                return -1;
            }
            continue;
        }
        char cell[CELL_MAX];
        ctl_cell_format(cell, sizeof(cell), value);
        if (json_array_append_new(pairs, json_pack("[ss]", name, cell)) != 0) {
            return -1;
        }
    }
    return 0;
}

int ctl_object_print(FILE *out, const json_t *obj)
{
    json_t *pairs = json_array();
    if (pairs == NULL || object_flatten(pairs, obj, "") != 0) {
        json_decref(pairs);
        return -1;
    }
    size_t rows = json_array_size(pairs) + 1;
    char **cells = calloc(rows * 2, sizeof(*cells));
    int rv = cells == NULL ? -1 : 0;
    if (cells != NULL) {
        cells[0] = strdup("FIELD");
        cells[1] = strdup("VALUE");
        for (size_t r = 1; r < rows; r++) {
            const json_t *pair = json_array_get(pairs, r - 1);
            cells[2 * r] = strdup(json_string_value(json_array_get(pair, 0)));
            cells[2 * r + 1] = strdup(json_string_value(json_array_get(pair, 1)));
        }
        for (size_t i = 0; i < rows * 2; i++) {
            if (cells[i] == NULL) {
                rv = -1;
            }
        }
        if (rv == 0) {
            grid_print(out, cells, rows, 2);
        }
        cells_free(cells, rows * 2);
    }
    json_decref(pairs);
    return rv;
}

int ctl_json_print(FILE *out, const json_t *value)
{
    if (json_dumpf(value, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
        return -1;
    }
    fputc('\n', out);
    return 0;
}

void ctl_job_progress_format(char *out, size_t n, const json_t *job, bool bar)
{
    const char *id = json_str(job, "id");
    const char *state = json_str(job, "state");
    json_int_t done = json_integer_value(ctl_json_path(job, "progress.done"));
    json_int_t total = json_integer_value(ctl_json_path(job, "progress.total"));
    if (!bar) {
        snprintf(out, n, "job %s: %s %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT, id ? id : "?",
                 state ? state : "?", done, total);
        return;
    }
    enum { WIDTH = 30 };
    char cells[WIDTH + 1];
    int filled = total > 0 ? (int)((done > total ? total : done) * WIDTH / total) : 0;
    for (int i = 0; i < WIDTH; i++) {
        cells[i] = i < filled ? '#' : '.';
    }
    cells[WIDTH] = '\0';
    snprintf(out, n, "job %s [%s] %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " %s",
             id ? id : "?", cells, done, total, state ? state : "?");
}

bool ctl_job_state_final(const char *state, bool *ok)
{
    *ok = state != NULL && strcmp(state, "succeeded") == 0;
    return state != NULL && (*ok || strcmp(state, "failed") == 0 ||
                             strcmp(state, "cancelled") == 0 || strcmp(state, "canceled") == 0);
}
