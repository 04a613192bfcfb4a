/*
 * The input shape of each service type, as JSON Schema, and the checker
 * that holds service parameters to it before a renderer reads them.
 *
 * The schemas are the one source of truth: the API can hand them out to
 * validate a template's parameter schema (sb_render_param_schema), and
 * renderers may assume what they promise. The checker knows the subset
 * used here: type, properties, required, additionalProperties: false,
 * items, minItems, enum, minimum, maximum, minLength, pattern.
 */
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "params.h"

#define NAME  "{\"type\":\"string\",\"pattern\":\"^[A-Za-z0-9_.:-]{1,64}$\"}"
#define NAMES "{\"type\":\"array\",\"items\":" NAME "}"
#define TEXT  "{\"type\":\"string\",\"minLength\":1}"
#define TEXTS "{\"type\":\"array\",\"items\":" TEXT "}"
#define PORT  "{\"type\":\"integer\",\"minimum\":1,\"maximum\":65535}"
#define OBJ(req, props)                                                      \
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[" req \
    "],\"properties\":{" props "}}"
#define ARRAY(item) "{\"type\":\"array\",\"minItems\":1,\"items\":" item "}"

#define FW_ZONE OBJ("\"name\"", "\"name\":" NAME ",\"interfaces\":" NAMES)
#define FW_RULE                                                                                 \
    OBJ("\"name\",\"from_zone\",\"to_zone\",\"action\"",                                        \
        "\"name\":" NAME ",\"from_zone\":" NAME ",\"to_zone\":" NAME ",\"source_prefix\":" TEXT \
        ",\"destination_prefix\":" TEXT                                                         \
        ",\"protocol\":{\"enum\":[\"any\",\"tcp\",\"udp\",\"icmp\",\"esp\",\"gre\"]},"          \
        "\"port\":" PORT                                                                        \
        ",\"action\":{\"enum\":[\"permit\",\"deny\",\"reject\"]},\"log\":{\"type\":\"boolean\"}")

static const struct {
    const char *type;   /* service type */
    const char *schema; /* its parameters' JSON Schema */
} param_schemas[] = {
    {"firewall-policy", OBJ("\"rules\"", "\"zones\":{\"type\":\"array\",\"items\":" FW_ZONE
                                         "},\"rules\":" ARRAY(FW_RULE))},
    {"nat", OBJ("\"rules\"",
                "\"rules\":" ARRAY(OBJ(
                    "\"name\",\"type\"",
                    "\"name\":" NAME ",\"type\":{\"enum\":[\"source\",\"destination\",\"static\"]}"
                    ",\"egress_interface\":" NAME ",\"match_prefix\":" TEXT ",\"match_port\":" PORT
                    ",\"masquerade\":{\"type\":\"boolean\"},\"translated_address\":" TEXT
                    ",\"translated_port\":" PORT)))},
    {"site-to-site-vpn",
     OBJ("\"name\",\"local_interface\",\"pre_shared_key\",\"sites\"",
         "\"name\":" NAME ",\"local_interface\":" NAME
         ",\"pre_shared_key\":{\"type\":\"string\",\"minLength\":8}"
         ",\"ike_proposal\":{\"enum\":[\"aes256-sha256-dh14\",\"aes128-sha1-dh2\","
         "\"aes256gcm-prf-sha384-dh20\"]}"
         ",\"sites\":" ARRAY(OBJ("\"site\",\"address\"",
                                 "\"site\":" NAME ",\"address\":" TEXT ",\"prefixes\":" TEXTS)))},
    {"sdwan",
     OBJ("\"name\",\"encapsulation\",\"sites\"",
         "\"name\":" NAME ",\"encapsulation\":{\"enum\":[\"gre\",\"vxlan\",\"wireguard\"]}"
         ",\"vni\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":16777215}"
         ",\"local_as\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":4294967295}"
         ",\"sites\":" ARRAY(
             OBJ("\"site\",\"address\",\"role\"",
                 "\"site\":" NAME ",\"address\":" TEXT ",\"role\":{\"enum\":[\"hub\",\"spoke\"]}"
                 ",\"as\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":4294967295}")))},
    {"vnf",
     OBJ("\"instances\"",
         "\"instances\":" ARRAY(OBJ(
             "\"name\",\"image\"",
             "\"name\":" NAME ",\"image\":" TEXT
             ",\"vcpus\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":64}"
             ",\"memory_mb\":{\"type\":\"integer\",\"minimum\":128,\"maximum\":262144}"
             ",\"interfaces\":" NAMES ",\"admin_state\":{\"enum\":[\"running\",\"stopped\"]}")))},
};

const char *const sb_render_types[] = {"firewall-policy", "nat", "site-to-site-vpn",
                                       "sdwan",           "vnf", NULL};

json_t *sb_render_param_schema(const char *type)
{
    size_t i;
    for (i = 0; i < sizeof(param_schemas) / sizeof(param_schemas[0]); i++) {
        if (!strcmp(param_schemas[i].type, type)) {
            return json_loads(param_schemas[i].schema, 0, NULL);
        }
    }
    return NULL;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
        case JSON_OBJECT:
            return "object";
        case JSON_ARRAY:
            return "array";
        case JSON_STRING:
            return "string";
        case JSON_INTEGER:
            return "integer";
        case JSON_REAL:
            return "number";
        case JSON_TRUE:
        case JSON_FALSE:
            return "boolean";
        default:
            return "null";
    }
}

static int fail(char *errmsg, size_t size, const char *where, const char *what)
{
    cairn_errmsg_set(errmsg, size, "%s: %s", where[0] ? where : "parameters", what);
    return CAIRN_EINVAL;
}

static int check_string(const json_t *schema, const json_t *v, const char *where, char *errmsg,
                        size_t size)
{
    const char *s = json_string_value(v);
    json_int_t min = json_integer_value(json_object_get(schema, "minLength"));
    const char *pattern = json_string_value(json_object_get(schema, "pattern"));
    char msg[160];
    if ((json_int_t)strlen(s) < min) {
        snprintf(msg, sizeof(msg), "must be at least %lld characters long", (long long)min);
        return fail(errmsg, size, where, msg);
    }
    if (pattern) {
        regex_t re;
        int nomatch;
        if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB)) {
            return fail(errmsg, size, where, "schema pattern does not compile");
        }
        nomatch = regexec(&re, s, 0, NULL, 0);
        regfree(&re);
        if (nomatch) {
            snprintf(msg, sizeof(msg), "must match %s", pattern);
            return fail(errmsg, size, where, msg);
        }
    }
    return 0;
}

static int check_value(const json_t *schema, const json_t *v, const char *where, char *errmsg,
                       size_t size);

static int check_object(const json_t *schema, const json_t *v, const char *where, char *errmsg,
                        size_t size)
{
    const json_t *props = json_object_get(schema, "properties"), *req, *sub;
    const char *key;
    char path[256], msg[160];
    size_t i;
    json_array_foreach(json_object_get(schema, "required"), i, req)
    {
        if (!json_object_get(v, json_string_value(req))) {
            snprintf(msg, sizeof(msg), "\"%s\" is required", json_string_value(req));
            return fail(errmsg, size, where, msg);
        }
    }
    json_object_foreach((json_t *)v, key, sub)
    {
        const json_t *ps = json_object_get(props, key);
        snprintf(path, sizeof(path), "%s%s%s", where, where[0] ? "." : "", key);
        if (!ps) {
            return fail(errmsg, size, path, "unknown parameter");
        }
        if (check_value(ps, sub, path, errmsg, size)) {
            return CAIRN_EINVAL;
        }
    }
    return 0;
}

static int check_value(const json_t *schema, const json_t *v, const char *where, char *errmsg,
                       size_t size)
{
    const char *type = json_string_value(json_object_get(schema, "type"));
    const json_t *e = json_object_get(schema, "enum"), *item;
    char msg[256], path[256];
    size_t i;

    if (e) {
        json_array_foreach(e, i, item)
        {
            if (json_equal((json_t *)item, (json_t *)v)) {
                return 0;
            }
        }
        snprintf(msg, sizeof(msg), "must be one of");
        json_array_foreach(e, i, item)
        {
            size_t len = strlen(msg);
            snprintf(msg + len, sizeof(msg) - len, "%s %s", i ? "," : "", json_string_value(item));
        }
        return fail(errmsg, size, where, msg);
    }
    if (type && strcmp(type, type_name(v))) {
        snprintf(msg, sizeof(msg), "must be %s %s, not %s", strchr("aeiou", type[0]) ? "an" : "a",
                 type, type_name(v));
        return fail(errmsg, size, where, msg);
    }
    if (json_is_integer(v)) {
        const json_t *min = json_object_get(schema, "minimum"),
                     *max = json_object_get(schema, "maximum");
        json_int_t n = json_integer_value(v);
        if ((min && n < json_integer_value(min)) || (max && n > json_integer_value(max))) {
            snprintf(msg, sizeof(msg), "must be between %lld and %lld",
                     (long long)json_integer_value(min), (long long)json_integer_value(max));
            return fail(errmsg, size, where, msg);
        }
    } else if (json_is_string(v)) {
        return check_string(schema, v, where, errmsg, size);
    } else if (json_is_object(v)) {
        return check_object(schema, v, where, errmsg, size);
    } else if (json_is_array(v)) {
        if ((json_int_t)json_array_size(v) <
            json_integer_value(json_object_get(schema, "minItems"))) {
            return fail(errmsg, size, where, "must not be empty");
        }
        json_array_foreach((json_t *)v, i, item)
        {
            snprintf(path, sizeof(path), "%s[%zu]", where, i);
            if (check_value(json_object_get(schema, "items"), item, path, errmsg, size)) {
                return CAIRN_EINVAL;
            }
        }
    }
    return 0;
}

int params_check(const char *type, const json_t *params, char *errmsg, size_t size)
{
    json_t *schema = sb_render_param_schema(type);
    int rv;
    if (!schema) {
        cairn_errmsg_set(errmsg, size, "unknown service type \"%s\"", type);
        return CAIRN_EINVAL;
    }
    rv = params ? check_value(schema, params, "", errmsg, size)
                : fail(errmsg, size, "", "must be an object, not null");
    json_decref(schema);
    return rv;
}
