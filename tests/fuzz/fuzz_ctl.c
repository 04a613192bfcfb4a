/*
 * libFuzzer target: cairnctl's parsers of untrusted text. The first byte
 * picks one: the config file, a server's error answer (problem+json or
 * anything else), a server's list answer rendered as a table and as
 * objects, or a command line (words separated by NUL bytes). Each must
 * either work or fail with a message; never crash, hang or read out of
 * bounds, and a rendered problem is always one line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static void fuzz_config(const char *text)
{
    struct ctl_config cfg;
    char err[512] = "";
    memset(&cfg, 0, sizeof(cfg));
    if (ctl_config_parse(&cfg, "fuzz.conf", text, err, sizeof(err)) != 0 && err[0] == '\0') {
        abort(); /* a failure always says why */
    }
    ctl_config_close(&cfg);
}

static void fuzz_problem(const char *body, size_t len)
{
    char line[1024];
    ctl_problem_format(line, sizeof(line), 422, "application/problem+json", body, len);
    if (strchr(line, '\n') != NULL || strchr(line, '\r') != NULL) {
        abort(); /* one line, whatever the server said */
    }
}

static void fuzz_render(const char *body, size_t len)
{
    json_t *answer = json_loadb(body, len, 0, NULL);
    if (answer == NULL) {
        return;
    }
    FILE *out = fopen("/dev/null", "w");
    if (out != NULL) {
        const json_t *items = json_object_get(answer, "items");
        for (const struct ctl_resource *r = ctl_resources; r->word != NULL; r++) {
            if (r->columns != NULL && json_is_array(items)) {
                ctl_table_print(out, r->columns, items);
            }
        }
        if (json_is_object(answer)) {
            ctl_object_print(out, answer);
        }
        fclose(out);
    }
    json_decref(answer);
}

static void fuzz_args(char *text, size_t len)
{
    char *argv[16] = {"cairnctl"};
    int argc = 1;
    for (size_t i = 0; i < len && argc < 16;) {
        argv[argc++] = text + i;
        i += strlen(text + i) + 1;
    }
    struct ctl_opts opts;
    char err[512] = "";
    int rv = ctl_opts_parse(&opts, argc, argv, err, sizeof(err));
    if (rv != 0 && err[0] == '\0') {
        abort();
    }
    if (rv == 0 && opts.help) {
        FILE *out = fopen("/dev/null", "w");
        if (out != NULL) {
            ctl_help_print(out, &opts);
            fclose(out);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t len = size - 1;
    char *text = malloc(len + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data + 1, len);
    text[len] = '\0';
    switch (data[0] % 4) {
        case 0:
            fuzz_config(text);
            break;
        case 1:
            fuzz_problem(text, len);
            break;
        case 2:
            fuzz_render(text, len);
            break;
        default:
            fuzz_args(text, len);
            break;
    }
    free(text);
    return 0;
}
