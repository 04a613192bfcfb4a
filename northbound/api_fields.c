/*
 * The field tables of the API's objects and the one validator that reads
 * them. Each object a client may send is described once, as data (name,
 * JSON type, required or read-only, limits, format check, nested table),
 * the way nginx describes its directives; no resource validates a field by
 * hand. A new field is one table row, and every rule (unknown fields, types,
 * lengths, formats, naming the offending field as "contact.email") holds
 * for it at once.
 *
 * Validation runs in two passes so that errors about the shape of the body
 * (400: unknown, read-only or mistyped fields, missing required ones) come
 * before errors about values (422: lengths, ranges, formats), whichever
 * order the client wrote its fields in.
 */
#include "api_int.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

const char *api_json_type_name(const json_t *value)
{
    switch (json_typeof(value)) {
        case JSON_OBJECT:
            return "an object";
        case JSON_ARRAY:
            return "an array";
        case JSON_STRING:
            return "a string";
        case JSON_INTEGER:
            return "an integer";
        case JSON_REAL:
            return "a number with a fraction or exponent";
        case JSON_TRUE:
        case JSON_FALSE:
            return "a boolean";
        case JSON_NULL:
            return "null";
    }
    return "an unknown value";
}

static const char *expected_name(enum api_json type)
{
    switch (type) {
        case API_JSON_STRING:
            return "a string";
        case API_JSON_INTEGER:
            return "an integer";
        case API_JSON_BOOLEAN:
            return "a boolean";
        case API_JSON_OBJECT:
            return "an object";
        case API_JSON_ARRAY:
            return "an array";
        case API_JSON_NUMBER:
            return "a number";
        case API_JSON_ANY:
            return "any JSON value";
    }
    return "a value";
}

static bool type_matches(enum api_json type, const json_t *value)
{
    switch (type) {
        case API_JSON_STRING:
            return json_is_string(value);
        case API_JSON_INTEGER:
            return json_is_integer(value);
        case API_JSON_BOOLEAN:
            return json_is_boolean(value);
        case API_JSON_OBJECT:
            return json_is_object(value);
        case API_JSON_ARRAY:
            return json_is_array(value);
        case API_JSON_NUMBER:
            return json_is_number(value);
        case API_JSON_ANY:
            return true;
    }
    return false;
}

static const struct api_field *field_find(const struct api_schema *schema, const char *name)
{
    for (size_t i = 0; i < schema->n; i++) {
        if (strcmp(schema->fields[i].name, name) == 0) {
            return &schema->fields[i];
        }
    }
    return NULL;
}

/* "contact" + "email" -> "contact.email"; "" + "name" -> "name". */
static void field_path(char *out, size_t size, const char *prefix, const char *name)
{
    snprintf(out, size, "%s%s%s", prefix, prefix[0] != '\0' ? "." : "", name);
}

/* The fields a client may send, for messages: "name, description, contact". */
static void writable_names(const struct api_schema *schema, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < schema->n; i++) {
        int n;
        if ((schema->fields[i].flags & API_FIELD_READONLY) != 0) {
            continue;
        }
        n = snprintf(out + used, size - used, "%s%s", used > 0 ? ", " : "", schema->fields[i].name);
        if (n < 0 || (size_t)n >= size - used) {
            return;
        }
        used += (size_t)n;
    }
}

/* Pass 1: the shape of the body. */
static int check_shape(const struct api_schema *schema, const json_t *obj, const char *prefix,
                       struct api_error *err)
{
    const char *key;
    const json_t *value;
    char path[128];
    int rv;

    json_object_foreach((json_t *)obj, key, value)
    {
        const struct api_field *f = field_find(schema, key);
        field_path(path, sizeof path, prefix, key);
        if (f == NULL) {
            char allowed[256];
            writable_names(schema, allowed, sizeof allowed);
            return api_error_set(err, 400, "unknown-field", path,
                                 "unknown field \"%s\"; the fields here are: %s", path, allowed);
        }
        if ((f->flags & API_FIELD_READONLY) != 0) {
            return api_error_set(err, 400, "read-only-field", path,
                                 "field \"%s\" is set by the server and cannot be written; "
                                 "leave it out",
                                 path);
        }
        if (!type_matches(f->type, value)) {
            return api_error_set(err, 400, "invalid-field", path, "field \"%s\" must be %s, not %s",
                                 path, expected_name(f->type), api_json_type_name(value));
        }
        if (f->type == API_JSON_OBJECT && f->object != NULL) {
            rv = check_shape(f->object, value, path, err);
            if (rv != 0) {
                return rv;
            }
        }
        if (f->type == API_JSON_ARRAY) {
            size_t i;
            const json_t *item;
            json_array_foreach(value, i, item)
            {
                char item_path[160];
                snprintf(item_path, sizeof item_path, "%s[%zu]", path, i);
                if (f->object != NULL ? !json_is_object(item) : !json_is_string(item)) {
                    return api_error_set(err, 400, "invalid-field", item_path,
                                         "item \"%s\" must be %s, not %s", item_path,
                                         f->object != NULL ? "an object" : "a string",
                                         api_json_type_name(item));
                }
                if (f->object != NULL) {
                    rv = check_shape(f->object, item, item_path, err);
                    if (rv != 0) {
                        return rv;
                    }
                }
            }
        }
    }
    for (size_t i = 0; i < schema->n; i++) {
        const struct api_field *f = &schema->fields[i];
        if ((f->flags & API_FIELD_REQUIRED) != 0 && json_object_get(obj, f->name) == NULL) {
            field_path(path, sizeof path, prefix, f->name);
            return api_error_set(err, 400, "missing-field", path, "field \"%s\" is required", path);
        }
    }
    return 0;
}

static int check_string(const struct api_field *f, const json_t *value, const char *path,
                        struct api_error *err)
{
    const char *s = json_string_value(value);
    size_t len = json_string_length(value);
    char why[256];

    if ((long long)len < f->min || (long long)len > f->max) {
        if (len == 0) {
            return api_error_set(err, 422, "invalid-field", path, "field \"%s\" must not be empty",
                                 path);
        }
        return api_error_set(err, 422, "invalid-field", path,
                             "field \"%s\" must be %lld to %lld bytes long, not %zu", path, f->min,
                             f->max, len);
    }
    if (f->format != NULL && !f->format(s, len, why, sizeof why)) {
        return api_error_set(err, 422, "invalid-field", path, "field \"%s\" %s", path, why);
    }
    return 0;
}

static int check_values(const struct api_schema *schema, const json_t *obj, const char *prefix,
                        struct api_error *err);

/* Pass 2 of an array of strings: how many, each item's format, and
 * (API_FIELD_UNIQUE) no item twice. Items are named "field[i]". */
static int check_array(const struct api_field *f, const json_t *value, const char *path,
                       struct api_error *err)
{
    size_t n = json_array_size(value);
    char item_path[160];
    char why[256];

    if ((long long)n > f->max) {
        return api_error_set(err, 422, "invalid-field", path,
                             "field \"%s\" may hold at most %lld items, not %zu", path, f->max, n);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_array_get(value, i);
        const char *s = json_string_value(item);
        size_t len = json_string_length(item);
        snprintf(item_path, sizeof item_path, "%s[%zu]", path, i);
        if (f->object != NULL) {
            int rv = check_values(f->object, item, item_path, err);
            if (rv != 0) {
                return rv;
            }
        } else if (f->format != NULL && !f->format(s, len, why, sizeof why)) {
            return api_error_set(err, 422, "invalid-field", item_path, "item \"%s\" %s", item_path,
                                 why);
        }
        for (size_t j = 0; (f->flags & API_FIELD_UNIQUE) != 0 && j < i; j++) {
            if (json_equal(item, json_array_get(value, j))) {
                return api_error_set(err, 422, "invalid-field", item_path,
                                     "item \"%s\" repeats item %zu; list each value once",
                                     item_path, j);
            }
        }
    }
    return 0;
}

/* Pass 2: the values, in table order. */
static int check_values(const struct api_schema *schema, const json_t *obj, const char *prefix,
                        struct api_error *err)
{
    char path[128];
    int rv = 0;

    for (size_t i = 0; i < schema->n && rv == 0; i++) {
        const struct api_field *f = &schema->fields[i];
        const json_t *value = json_object_get(obj, f->name);
        json_int_t n;
        if (value == NULL) {
            continue;
        }
        field_path(path, sizeof path, prefix, f->name);
        switch (f->type) {
            case API_JSON_STRING:
                rv = check_string(f, value, path, err);
                break;
            case API_JSON_INTEGER:
                n = json_integer_value(value);
                if (n < f->min || n > f->max) {
                    rv = api_error_set(err, 422, "invalid-field", path,
                                       "field \"%s\" must be from %lld to %lld, not %lld", path,
                                       f->min, f->max, (long long)n);
                }
                break;
            case API_JSON_OBJECT:
                if (f->object != NULL) {
                    rv = check_values(f->object, value, path, err);
                }
                break;
            case API_JSON_ARRAY:
                rv = check_array(f, value, path, err);
                break;
            case API_JSON_NUMBER:
                if (json_number_value(value) < (double)f->min ||
                    json_number_value(value) > (double)f->max) {
                    rv = api_error_set(err, 422, "invalid-field", path,
                                       "field \"%s\" must be from %lld to %lld, not %g", path,
                                       f->min, f->max, json_number_value(value));
                }
                break;
            case API_JSON_BOOLEAN:
            case API_JSON_ANY:
                break;
        }
    }
    return rv;
}

int api_validate(const struct api_schema *schema, const json_t *body, struct api_error *err)
{
    int rv;
    if (!json_is_object(body)) {
        return api_error_set(err, 400, "invalid-body", NULL, "the body must be a JSON object");
    }
    rv = check_shape(schema, body, "", err);
    if (rv != 0) {
        return rv;
    }
    return check_values(schema, body, "", err);
}

static json_t *project(const struct api_schema *schema, const json_t *src, unsigned skip);

json_t *api_schema_project(const struct api_schema *schema, const json_t *src)
{
    return project(schema, src, API_FIELD_READONLY | API_FIELD_WRITEONLY);
}

json_t *api_schema_render(const struct api_schema *schema, const json_t *src)
{
    return project(schema, src, API_FIELD_WRITEONLY);
}

static json_t *project(const struct api_schema *schema, const json_t *src, unsigned skip)
{
    json_t *out = json_object();
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < schema->n; i++) {
        const struct api_field *f = &schema->fields[i];
        json_t *value = json_object_get(src, f->name);
        json_t *copy;
        if ((f->flags & skip) != 0 || value == NULL) {
            continue;
        }
        if (f->type == API_JSON_OBJECT && f->object != NULL && json_is_object(value)) {
            copy = project(f->object, value, skip);
        } else if (f->type == API_JSON_ARRAY && f->object != NULL && json_is_array(value)) {
            size_t j;
            json_t *item;
            copy = json_array();
            json_array_foreach(value, j, item)
            {
                if (copy != NULL &&
                    json_array_append_new(copy, project(f->object, item, skip)) != 0) {
                    json_decref(copy);
                    copy = NULL;
                }
            }
        } else {
            copy = json_deep_copy(value);
        }
        if (copy == NULL || json_object_set_new(out, f->name, copy) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool api_format_name(const char *s, size_t len, char *why, size_t why_size)
{
    bool ok = len > 0 && is_lower_alnum(s[0]) && is_lower_alnum(s[len - 1]);
    for (size_t i = 0; ok && i < len; i++) {
        ok = is_lower_alnum(s[i]) || s[i] == '-';
    }
    if (!ok) {
        snprintf(why, why_size,
                 "must be lower-case letters, digits and '-', starting and ending with a "
                 "letter or digit (for example \"acme-corp\")");
    }
    return ok;
}

bool api_format_email(const char *s, size_t len, char *why, size_t why_size)
{
    const char *at = memchr(s, '@', len);
    bool ok = at != NULL && at != s && at != s + len - 1 &&
              memchr(at + 1, '@', len - (size_t)(at - s) - 1) == NULL;
    for (size_t i = 0; ok && i < len; i++) {
        ok = (unsigned char)s[i] > ' ' && s[i] != 0x7f;
    }
    if (!ok) {
        snprintf(why, why_size,
                 "must be an e-mail address: one '@' with text on both sides and no spaces "
                 "(for example \"noc@example.com\")");
    }
    return ok;
}

bool api_format_phone(const char *s, size_t len, char *why, size_t why_size)
{
    bool digit = false;
    bool ok = true;
    for (size_t i = 0; ok && i < len; i++) {
        digit = digit || is_digit(s[i]);
        ok = is_digit(s[i]) || strchr(" +-()", s[i]) != NULL;
    }
    if (!ok || !digit) {
        snprintf(why, why_size,
                 "must be digits, spaces and + - ( ), with at least one digit "
                 "(for example \"+33 1 23 45 67 89\")");
        return false;
    }
    return true;
}

bool api_format_host_port(const char *s, size_t len, char *why, size_t why_size)
{
    const char *colon = NULL;
    size_t host_len;
    unsigned long port = 0;
    bool ok = true;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == ':') {
            colon = s + i;
        }
    }
    if (colon == NULL) {
        ok = false;
    } else {
        size_t port_len = len - (size_t)(colon - s) - 1;
        host_len = (size_t)(colon - s);
        ok = host_len >= 1 && host_len <= 63 && port_len >= 1 && port_len <= 5;
        for (size_t i = 0; ok && i < host_len; i++) {
            ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || is_digit(s[i]) ||
                 s[i] == '.' || s[i] == '-';
        }
        for (size_t i = 0; ok && i < port_len; i++) {
            ok = is_digit(colon[1 + i]);
            port = port * 10 + (unsigned long)(colon[1 + i] - '0');
        }
        ok = ok && port >= 1 && port <= 65535;
    }
    if (!ok) {
        snprintf(why, why_size,
                 "must be HOST:PORT with a host of 1 to 63 letters, digits, '.' and '-' and a "
                 "port from 1 to 65535 (for example \"10.0.0.4:7001\")");
    }
    return ok;
}

bool api_format_uuid(const char *s, size_t len, char *why, size_t why_size)
{
    char buf[CAIRN_UUID_SIZE];
    bool ok = len == CAIRN_UUID_SIZE - 1;
    if (ok) {
        memcpy(buf, s, len);
        buf[len] = '\0';
        ok = cairn_uuid_valid(buf);
    }
    if (!ok) {
        snprintf(why, why_size,
                 "must be a lower-case uuid as the server assigns them (for example "
                 "\"325902ee-b80c-4adc-b3f5-d68392fe1975\")");
    }
    return ok;
}

bool api_format_username(const char *s, size_t len, char *why, size_t why_size)
{
    bool ok = len > 0;
    for (size_t i = 0; ok && i < len; i++) {
        ok = is_lower_alnum(s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-';
    }
    if (!ok) {
        snprintf(why, why_size,
                 "must be lower-case letters, digits, '.', '_' and '-' (for example "
                 "\"jane.doe\")");
    }
    return ok;
}

bool api_format_role(const char *s, size_t len, char *why, size_t why_size)
{
    char buf[32];
    enum rbac_role role;
    bool ok = len < sizeof buf;
    if (ok) {
        memcpy(buf, s, len);
        buf[len] = '\0';
        ok = rbac_role_parse(buf, &role) == 0;
    }
    if (!ok) {
        snprintf(why, why_size,
                 "must be one of sp_admin, sp_operator, tenant_admin, tenant_operator");
    }
    return ok;
}

/* One of values (a NULL-terminated list), spelled exactly. */
static bool enum_check(const char *const *values, const char *s, size_t len, char *why,
                       size_t why_size)
{
    size_t used;
    for (size_t i = 0; values[i] != NULL; i++) {
        if (strlen(values[i]) == len && memcmp(values[i], s, len) == 0) {
            return true;
        }
    }
    used = (size_t)snprintf(why, why_size, "must be one of");
    for (size_t i = 0; values[i] != NULL && used < why_size; i++) {
        used += (size_t)snprintf(why + used, why_size - used, "%s %s", i > 0 ? "," : "", values[i]);
    }
    return false;
}

#define ENUM_FORMAT(fn, ...)                                       \
    bool fn(const char *s, size_t len, char *why, size_t why_size) \
    {                                                              \
        static const char *const values[] = {__VA_ARGS__, NULL};   \
        return enum_check(values, s, len, why, why_size);          \
    }

ENUM_FORMAT(api_format_site_role, "hub", "spoke")
ENUM_FORMAT(api_format_wan_type, "internet", "mpls", "lte", "5g", "satellite", "private")
ENUM_FORMAT(api_format_device_family, "nfx", "srx", "vsrx", "mx", "ex", "ucpe")
ENUM_FORMAT(api_format_device_state, "managed", "unmanaged")
ENUM_FORMAT(api_format_template_type, "firewall-policy", "nat", "site-to-site-vpn", "sdwan", "vnf")
ENUM_FORMAT(api_format_service_state, "active", "inactive")
ENUM_FORMAT(api_format_drift_policy, "report", "reconcile")

/* Parses a dotted-quad IPv4 address of exactly len bytes. */
static bool ipv4_parse(const char *s, size_t len)
{
    unsigned parts = 0;
    size_t i = 0;
    while (parts < 4) {
        unsigned v = 0;
        size_t digits = 0;
        while (i < len && is_digit(s[i]) && digits < 3) {
            v = v * 10 + (unsigned)(s[i] - '0');
            i++;
            digits++;
        }
        if (digits == 0 || v > 255 || (digits > 1 && s[i - digits] == '0')) {
            return false;
        }
        parts++;
        if (parts < 4) {
            if (i >= len || s[i] != '.') {
                return false;
            }
            i++;
        }
    }
    return i == len;
}

bool api_format_ipv4(const char *s, size_t len, char *why, size_t why_size)
{
    if (!ipv4_parse(s, len)) {
        snprintf(why, why_size, "must be an IPv4 address (for example \"192.0.2.10\")");
        return false;
    }
    return true;
}

bool api_format_ipv4_prefix(const char *s, size_t len, char *why, size_t why_size)
{
    const char *slash = memchr(s, '/', len);
    size_t plen = slash != NULL ? len - (size_t)(slash - s) - 1 : 0;
    bool ok = slash != NULL && ipv4_parse(s, (size_t)(slash - s)) && plen >= 1 && plen <= 2;
    unsigned bits = 0;
    for (size_t i = 0; ok && i < plen; i++) {
        ok = is_digit(slash[1 + i]);
        bits = bits * 10 + (unsigned)(slash[1 + i] - '0');
    }
    if (!ok || bits > 32) {
        snprintf(why, why_size,
                 "must be an IPv4 prefix ADDRESS/LENGTH (for example \"10.1.0.0/24\")");
        return false;
    }
    return true;
}

/* A host name or an IPv4 address. */
bool api_format_host(const char *s, size_t len, char *why, size_t why_size)
{
    bool ok = len > 0 && len <= 253 && s[0] != '-' && s[0] != '.';
    for (size_t i = 0; ok && i < len; i++) {
        ok = is_lower_alnum(s[i]) || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '.' || s[i] == '-';
    }
    if (!ok) {
        snprintf(why, why_size,
                 "must be a host name or an IPv4 address (for example \"192.0.2.10\")");
    }
    return ok;
}

/* Serial numbers: 1..64 of A-Z a-z 0-9 and '-'. */
bool api_format_serial(const char *s, size_t len, char *why, size_t why_size)
{
    bool ok = len > 0;
    for (size_t i = 0; ok && i < len; i++) {
        ok = is_lower_alnum(s[i]) || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-';
    }
    if (!ok) {
        snprintf(why, why_size, "must be letters, digits and '-' (for example \"CRN00000042\")");
    }
    return ok;
}

/* Template versions: MAJOR.MINOR.PATCH, each 0..99999 without leading zeros. */
bool api_format_version(const char *s, size_t len, char *why, size_t why_size)
{
    unsigned parts = 0;
    size_t i = 0;
    bool ok = true;
    while (ok && parts < 3) {
        size_t digits = 0;
        while (i < len && is_digit(s[i]) && digits < 5) {
            i++;
            digits++;
        }
        ok = digits > 0 && !(digits > 1 && s[i - digits] == '0');
        parts++;
        if (ok && parts < 3) {
            ok = i < len && s[i] == '.';
            i++;
        }
    }
    if (!ok || i != len) {
        snprintf(why, why_size, "must be MAJOR.MINOR.PATCH (for example \"1.2.0\")");
        return false;
    }
    return true;
}

/* The tables. Limits of strings are in bytes of UTF-8. */

static const struct api_field contact_fields[] = {
    {"name", API_JSON_STRING, 0, 1, 128, NULL, NULL},
    {"email", API_JSON_STRING, 0, 1, 254, api_format_email, NULL},
    {"phone", API_JSON_STRING, 0, 1, 32, api_format_phone, NULL},
};

static const struct api_schema contact_schema = {contact_fields,
                                                 sizeof contact_fields / sizeof contact_fields[0]};

/* A tenant's quotas: at most this many objects of each kind (absent:
 * unlimited). The same order as api_quotas. */
static const struct api_field quota_fields[] = {
    {"sites", API_JSON_INTEGER, 0, 0, API_QUOTA_MAX, NULL, NULL},
    {"devices", API_JSON_INTEGER, 0, 0, API_QUOTA_MAX, NULL, NULL},
    {"services", API_JSON_INTEGER, 0, 0, API_QUOTA_MAX, NULL, NULL},
};

static const struct api_schema quota_schema = {quota_fields,
                                               sizeof quota_fields / sizeof quota_fields[0]};

const struct api_quota api_quotas[] = {
    {"sites", STORE_KIND_SITE},
    {"devices", STORE_KIND_DEVICE},
    {"services", STORE_KIND_SERVICE},
};
const size_t api_n_quotas = sizeof api_quotas / sizeof api_quotas[0];

static const struct api_field tenant_fields[] = {
    {"id", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"name", API_JSON_STRING, API_FIELD_REQUIRED, 1, 63, api_format_name, NULL},
    {"description", API_JSON_STRING, 0, 0, 1024, NULL, NULL},
    {"contact", API_JSON_OBJECT, 0, 0, 0, NULL, &contact_schema},
    {"quotas", API_JSON_OBJECT, 0, 0, 0, NULL, &quota_schema},
    {"allowed_templates", API_JSON_ARRAY, API_FIELD_UNIQUE, 0, 256, api_format_uuid, NULL},
    {"create_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"mod_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
};

const struct api_schema api_tenant_schema = {tenant_fields,
                                             sizeof tenant_fields / sizeof tenant_fields[0]};

/* Addresses are kept in 64-byte fields (struct api_member_status). */
static const struct api_field member_fields[] = {
    {"id", API_JSON_INTEGER, API_FIELD_REQUIRED, 1, LLONG_MAX, NULL, NULL},
    {"raft_address", API_JSON_STRING, API_FIELD_REQUIRED, 1, 63, api_format_host_port, NULL},
    {"api_address", API_JSON_STRING, API_FIELD_REQUIRED, 1, 63, api_format_host_port, NULL},
};

const struct api_schema api_member_schema = {member_fields,
                                             sizeof member_fields / sizeof member_fields[0]};

/* A user. The password is write-only: the store keeps only its argon2id
 * hash, in a body field ("password_hash") no table lists, so no answer
 * ever carries it. Whether tenant_id must be present depends on the role
 * (api_users.c checks it). */
static const struct api_field user_fields[] = {
    {"id", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"username", API_JSON_STRING, API_FIELD_REQUIRED, 1, API_USERNAME_MAX, api_format_username,
     NULL},
    {"password", API_JSON_STRING, API_FIELD_WRITEONLY, API_PASSWORD_MIN, API_PASSWORD_MAX, NULL,
     NULL},
    {"role", API_JSON_STRING, API_FIELD_REQUIRED, 1, 31, api_format_role, NULL},
    {"tenant_id", API_JSON_STRING, 0, 1, CAIRN_UUID_SIZE - 1, api_format_uuid, NULL},
    {"display_name", API_JSON_STRING, 0, 1, 128, NULL, NULL},
    {"email", API_JSON_STRING, 0, 1, 254, api_format_email, NULL},
    {"disabled", API_JSON_BOOLEAN, 0, 0, 0, NULL, NULL},
    {"create_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"mod_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
};

const struct api_schema api_user_schema = {user_fields, sizeof user_fields / sizeof user_fields[0]};

/* A login. Lengths are generous and formats unchecked: a name or password
 * that could never be valid is answered like any wrong one (401). */
static const struct api_field login_fields[] = {
    {"username", API_JSON_STRING, API_FIELD_REQUIRED, 1, 256, NULL, NULL},
    {"password", API_JSON_STRING, API_FIELD_REQUIRED | API_FIELD_WRITEONLY, 1, 1024, NULL, NULL},
};

const struct api_schema api_login_schema = {login_fields,
                                            sizeof login_fields / sizeof login_fields[0]};

/* A user's change of its own password. */
static const struct api_field password_change_fields[] = {
    {"current_password", API_JSON_STRING, API_FIELD_REQUIRED | API_FIELD_WRITEONLY, 1, 1024, NULL,
     NULL},
    {"new_password", API_JSON_STRING, API_FIELD_REQUIRED | API_FIELD_WRITEONLY, API_PASSWORD_MIN,
     API_PASSWORD_MAX, NULL, NULL},
};

const struct api_schema api_password_change_schema = {
    password_change_fields, sizeof password_change_fields / sizeof password_change_fields[0]};

/* Sites. */

static const struct api_field address_fields[] = {
    {"street", API_JSON_STRING, 0, 1, 256, NULL, NULL},
    {"city", API_JSON_STRING, 0, 1, 128, NULL, NULL},
    {"postal_code", API_JSON_STRING, 0, 1, 16, NULL, NULL},
    {"country", API_JSON_STRING, 0, 2, 2, NULL, NULL},
};

static const struct api_schema address_schema = {address_fields,
                                                 sizeof address_fields / sizeof address_fields[0]};

static const struct api_field geo_fields[] = {
    {"latitude", API_JSON_NUMBER, API_FIELD_REQUIRED, -90, 90, NULL, NULL},
    {"longitude", API_JSON_NUMBER, API_FIELD_REQUIRED, -180, 180, NULL, NULL},
};

static const struct api_schema geo_schema = {geo_fields, sizeof geo_fields / sizeof geo_fields[0]};

static const struct api_field wan_link_fields[] = {
    {"name", API_JSON_STRING, API_FIELD_REQUIRED, 1, 31, api_format_name, NULL},
    {"type", API_JSON_STRING, API_FIELD_REQUIRED, 1, 16, api_format_wan_type, NULL},
    {"subnet", API_JSON_STRING, 0, 9, 18, api_format_ipv4_prefix, NULL},
    {"public_address", API_JSON_STRING, 0, 7, 15, api_format_ipv4, NULL},
};

static const struct api_schema wan_link_schema = {
    wan_link_fields, sizeof wan_link_fields / sizeof wan_link_fields[0]};

static const struct api_field site_fields[] = {
    {"id", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"tenant_id", API_JSON_STRING, 0, 1, CAIRN_UUID_SIZE - 1, api_format_uuid, NULL},
    {"name", API_JSON_STRING, API_FIELD_REQUIRED, 1, 63, api_format_name, NULL},
    {"description", API_JSON_STRING, 0, 0, 1024, NULL, NULL},
    {"role", API_JSON_STRING, API_FIELD_REQUIRED, 1, 8, api_format_site_role, NULL},
    {"address", API_JSON_OBJECT, 0, 0, 0, NULL, &address_schema},
    {"geo", API_JSON_OBJECT, 0, 0, 0, NULL, &geo_schema},
    {"wan_links", API_JSON_ARRAY, 0, 0, 8, NULL, &wan_link_schema},
    {"create_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"mod_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
};

const struct api_schema api_site_schema = {site_fields, sizeof site_fields / sizeof site_fields[0]};

/* Devices. The password is write-only: kept in the stored body for the
 * southbound, never answered. */

static const struct api_field management_fields[] = {
    /* No host: the address is learned when the device calls home. */
    {"host", API_JSON_STRING, 0, 1, 253, api_format_host, NULL},
    {"port", API_JSON_INTEGER, 0, 1, 65535, NULL, NULL},
};

static const struct api_schema management_schema = {
    management_fields, sizeof management_fields / sizeof management_fields[0]};

static const struct api_field credentials_fields[] = {
    {"username", API_JSON_STRING, API_FIELD_REQUIRED, 1, 64, NULL, NULL},
    {"password", API_JSON_STRING, API_FIELD_WRITEONLY, 1, 256, NULL, NULL},
};

static const struct api_schema credentials_schema = {
    credentials_fields, sizeof credentials_fields / sizeof credentials_fields[0]};

static const struct api_field device_fields[] = {
    {"id", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"site_id", API_JSON_STRING, API_FIELD_REQUIRED, 1, CAIRN_UUID_SIZE - 1, api_format_uuid, NULL},
    {"tenant_id", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"name", API_JSON_STRING, 0, 1, 63, api_format_name, NULL},
    {"serial", API_JSON_STRING, API_FIELD_REQUIRED, 1, 64, api_format_serial, NULL},
    {"family", API_JSON_STRING, API_FIELD_REQUIRED, 1, 8, api_format_device_family, NULL},
    {"model", API_JSON_STRING, 0, 1, 64, NULL, NULL},
    {"management", API_JSON_OBJECT, 0, 0, 0, NULL, &management_schema},
    {"credentials", API_JSON_OBJECT, 0, 0, 0, NULL, &credentials_schema},
    {"desired_state", API_JSON_STRING, 0, 1, 16, api_format_device_state, NULL},
    {"drift_policy", API_JSON_STRING, 0, 1, 16, api_format_drift_policy, NULL},
    {"activation_code", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"host_key", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"status", API_JSON_OBJECT, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"owner", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"create_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"mod_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
};

const struct api_schema api_device_schema = {device_fields,
                                             sizeof device_fields / sizeof device_fields[0]};

/* Service templates: "parameters" is a parameter schema, checked by
 * api_catalog.c (its shape is data, not a fixed table). */
static const struct api_field template_fields[] = {
    {"id", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"name", API_JSON_STRING, API_FIELD_REQUIRED, 1, 63, api_format_name, NULL},
    {"version", API_JSON_STRING, API_FIELD_REQUIRED, 5, 17, api_format_version, NULL},
    {"type", API_JSON_STRING, API_FIELD_REQUIRED, 1, 32, api_format_template_type, NULL},
    {"description", API_JSON_STRING, 0, 0, 1024, NULL, NULL},
    {"parameters", API_JSON_OBJECT, 0, 0, 0, NULL, NULL},
    {"public", API_JSON_BOOLEAN, 0, 0, 0, NULL, NULL},
    {"state", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"published_at", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"create_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"mod_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
};

const struct api_schema api_template_schema = {template_fields,
                                               sizeof template_fields / sizeof template_fields[0]};

/* Services. */
static const struct api_field targets_fields[] = {
    {"device_ids", API_JSON_ARRAY, API_FIELD_UNIQUE, 0, API_SERVICE_TARGETS_MAX, api_format_uuid,
     NULL},
    /* Each site stands for every device in it, now and later. */
    {"site_ids", API_JSON_ARRAY, API_FIELD_UNIQUE, 0, API_SERVICE_TARGETS_MAX, api_format_uuid,
     NULL},
};

static const struct api_schema targets_schema = {targets_fields,
                                                 sizeof targets_fields / sizeof targets_fields[0]};

static const struct api_field service_fields[] = {
    {"id", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"tenant_id", API_JSON_STRING, 0, 1, CAIRN_UUID_SIZE - 1, api_format_uuid, NULL},
    {"name", API_JSON_STRING, API_FIELD_REQUIRED, 1, 63, api_format_name, NULL},
    {"description", API_JSON_STRING, 0, 0, 1024, NULL, NULL},
    {"template_id", API_JSON_STRING, API_FIELD_REQUIRED, 1, CAIRN_UUID_SIZE - 1, api_format_uuid,
     NULL},
    {"parameters", API_JSON_OBJECT, 0, 0, 0, NULL, NULL},
    {"targets", API_JSON_OBJECT, API_FIELD_REQUIRED, 0, 0, NULL, &targets_schema},
    {"desired_state", API_JSON_STRING, 0, 1, 16, api_format_service_state, NULL},
    {"type", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"generation", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"job_id", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"realization", API_JSON_OBJECT, API_FIELD_READONLY, 0, 0, NULL, NULL},
    /* The targets of the version a replace took over from: its job also
     * pushes to the devices it no longer targets, which lose its config. */
    {"previous_targets", API_JSON_OBJECT, API_FIELD_READONLY, 0, 0, NULL, &targets_schema},
    {"create_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"mod_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
};

const struct api_schema api_service_schema = {service_fields,
                                              sizeof service_fields / sizeof service_fields[0]};

/* Jobs: written by the server only. */
static const struct api_field progress_fields[] = {
    {"done", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"total", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
};

static const struct api_schema progress_schema = {
    progress_fields, sizeof progress_fields / sizeof progress_fields[0]};

static const struct api_field task_fields[] = {
    {"device_id", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"item", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"object_id", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"state", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"message", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"step", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"changed", API_JSON_BOOLEAN, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"diff", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"adopted", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"result_in_device", API_JSON_BOOLEAN, API_FIELD_READONLY, 0, 0, NULL, NULL},
};

static const struct api_schema task_schema = {task_fields,
                                              sizeof task_fields / sizeof task_fields[0]};

static const struct api_field job_fields[] = {
    {"id", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"tenant_id", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"type", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"state", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"target", API_JSON_OBJECT, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"progress", API_JSON_OBJECT, API_FIELD_READONLY, 0, 0, NULL, &progress_schema},
    {"tasks", API_JSON_ARRAY, API_FIELD_READONLY, 0, 0, NULL, &task_schema},
    {"message", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"cancel_requested", API_JSON_BOOLEAN, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"dry_run", API_JSON_BOOLEAN, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"service", API_JSON_OBJECT, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"created_by", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"created_at", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"started_at", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"finished_at", API_JSON_STRING, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"create_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
    {"mod_revision", API_JSON_INTEGER, API_FIELD_READONLY, 0, 0, NULL, NULL},
};

const struct api_schema api_job_schema = {job_fields, sizeof job_fields / sizeof job_fields[0]};
