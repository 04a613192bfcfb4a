/*
 * cairnctl's main(): parses the command line, loads the config file,
 * chooses endpoints and credentials, runs the verb and, if it logged in
 * with a user name and password itself, logs out again so that no session
 * outlives the command. See docs/cairnctl.md.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ctl.h"

static const char *first_of(const char *a, const char *b, const char *c)
{
    return a ? a : b ? b : c;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Sets the client's token from the credentials (logging in with a user
 * name and password). */
static int authenticate(struct ctl *ctl)
{
    char err[1024];
    struct ctl_creds creds;
    int rv =
        ctl_creds_resolve(&creds, &ctl->opts, &ctl->cfg, ctl->token_file, false, err, sizeof(err));
    if (rv != 0) {
        return ctl_fail(ctl, rv, "%s", err);
    }
    if (creds.token != NULL) {
        ctl->token_from_file = strcmp(creds.source, "the token file") == 0;
        rv = ctl_client_set_token(&ctl->client, creds.token);
    } else if (creds.user != NULL) {
        json_t *answer;
        rv = ctl_session_login(ctl, creds.user, creds.password, &answer);
        if (rv == 0) {
            ctl->logged_in = true;
            json_decref(answer);
        }
    }
    ctl_creds_close(&creds);
    return rv;
}

int main(int argc, char **argv)
{
    struct ctl ctl;
    char err[1024];
    memset(&ctl, 0, sizeof(ctl));
    ctl.out = stdout;
    ctl.err = stderr;

    int rv = ctl_opts_parse(&ctl.opts, argc, argv, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "cairnctl: %s\n", err);
        return rv;
    }
    if (ctl.opts.help) {
        ctl_help_print(stdout, &ctl.opts);
        return 0;
    }

    char *default_config = ctl_default_config_path();
    const char *config = first_of(ctl.opts.config, env("CAIRN_CONFIG"), default_config);
    rv = ctl_config_load(&ctl.cfg, config, config != default_config, err, sizeof(err));
    if (rv == 0 && ctl.cfg.exposed) {
        fprintf(stderr,
                "cairnctl: warning: %s holds a password or token and others may read it "
                "(chmod 600 %s)\n",
                config, config);
    }
    free(default_config);
    if (rv != 0) {
        fprintf(stderr, "cairnctl: %s\n", err);
        return rv;
    }
    if (!ctl.opts.output_set && ctl.cfg.output != NULL && strcmp(ctl.cfg.output, "json") == 0) {
        ctl.opts.output = CTL_OUTPUT_JSON;
    }
    char *default_token = ctl_default_token_path();
    const char *token_file = first_of(ctl.opts.token_file, ctl.cfg.token_file, default_token);
    ctl.token_file = token_file ? strdup(token_file) : NULL;
    free(default_token);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *endpoints = first_of(ctl.opts.endpoints, env("CAIRN_ENDPOINTS"), ctl.cfg.endpoints);
    double timeout_s = ctl.opts.timeout_s > 0 ? ctl.opts.timeout_s : ctl.cfg.timeout_s;
    rv = ctl_client_init(&ctl.client, endpoints ? endpoints : "", timeout_s, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "cairnctl: %s\n", err);
        goto out_after_config;
    }
    if (strcmp(ctl.opts.res->word, "login") != 0) {
        rv = authenticate(&ctl);
    }
    if (rv == 0) {
        rv = ctl.opts.verb->run(&ctl);
    }
    if (ctl.logged_in) {
        /* A failed logout leaves a session that expires by itself. */
        FILE *quiet = ctl.err;
        ctl.err = fopen("/dev/null", "w");
        if (ctl.err != NULL) {
            ctl_session_logout(&ctl);
            fclose(ctl.err);
        }
        ctl.err = quiet;
    }
    ctl_client_close(&ctl.client);

out_after_config:
    curl_global_cleanup();
    ctl_config_close(&ctl.cfg);
    free(ctl.token_file);
    if (fflush(stdout) != 0 && rv == 0) {
        rv = CTL_EXIT_USAGE;
    }
    return rv;
}
