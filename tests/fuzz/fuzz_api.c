/*
 * libFuzzer target: the REST API's input handling without a server: JSON
 * body parsing and validation against the object schemas, query strings,
 * If-Match, Idempotency-Key and Content-Type parsing, and routing. The
 * first input byte picks the function; the rest is its input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api_int.h"

static const char *const query_params[] = {"limit", "cursor", "consistency", "name", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct api_error err;
    json_t *body = NULL;
    char request_id[API_REQUEST_ID_SIZE];
    uint64_t if_match;
    char *text;

    if (size == 0) {
        return 0;
    }
    text = malloc(size);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0] % 6) {
        case 5: {
            /* Routing: "METHOD PATH" (first space splits). */
            static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
            char id[API_PATH_ID_MAX];
            int rv = api_route_lookup(text, methods[(data[0] / 6) % 4], id);
            if (rv != 0 && rv != 404 && rv != 405) {
                abort();
            }
            break;
        }
        case 0:
        case 1:
            memset(&err, 0, sizeof err);
            if (api_body_parse(text, size - 1, &body, &err) == 0) {
                const struct api_schema *schema =
                    data[0] % 6 == 0 ? &api_tenant_schema : &api_member_schema;
                memset(&err, 0, sizeof err);
                if (api_validate(schema, body, &err) == 0) {
                    json_t *projected = api_schema_project(schema, body);
                    json_decref(projected);
                }
                json_decref(body);
            }
            break;
        case 2: {
            struct api_req req;
            memset(&req, 0, sizeof req);
            memset(&err, 0, sizeof err);
            (void)api_query_parse(&req, text, query_params, &err);
            free(req.query);
            break;
        }
        case 3:
            (void)api_if_match_parse(text, &if_match);
            (void)api_content_type_ok(text);
            break;
        default:
            (void)api_idempotency_parse(text, request_id);
            break;
    }
    free(text);
    return 0;
}
