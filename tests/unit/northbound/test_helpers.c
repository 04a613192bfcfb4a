/*
 * Unit tests of the API's pieces that need no server: the field tables and
 * their validator (every rule, and the name of the field each error
 * points at), the request helpers (If-Match, Idempotency-Key, fingerprints,
 * Content-Type, body parsing, query strings) and the error-to-status table.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_int.h"
#include "tests.h"

/* Validates text against schema; returns the error (status 0 if valid). */
static struct api_error validate(const struct api_schema *schema, const char *text)
{
    struct api_error err;
    json_error_t jerr;
    json_t *body = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    memset(&err, 0, sizeof err);
    if (body == NULL) {
        fail_msg("test body does not parse: %s: %s", text, jerr.text);
    }
    if (api_validate(schema, body, &err) == 0) {
        err.status = 0;
    }
    json_decref(body);
    return err;
}

/* Asserts that text fails with status, type and field. */
static void expect_invalid(const struct api_schema *schema, const char *text, int status,
                           const char *type, const char *field)
{
    struct api_error err = validate(schema, text);
    if (err.status != status || err.type == NULL || strcmp(err.type, type) != 0 ||
        strcmp(err.field, field) != 0) {
        fail_msg("%s: got %d %s field \"%s\" (%s), want %d %s field \"%s\"", text, err.status,
                 err.type != NULL ? err.type : "-", err.field, err.detail, status, type, field);
    }
}

static void expect_valid(const struct api_schema *schema, const char *text)
{
    struct api_error err = validate(schema, text);
    if (err.status != 0) {
        fail_msg("%s: want valid, got %d %s: %s", text, err.status, err.type, err.detail);
    }
}

/* A JSON string body field of n copies of c. */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void expect_tenant_field(const char *field_json, int status, const char *field)
{
    char text[4096];
    snprintf(text, sizeof text, "{\"name\":\"acme\",%s}", field_json);
    if (status == 0) {
        expect_valid(&api_tenant_schema, text);
    } else {
        expect_invalid(&api_tenant_schema, text, status, "invalid-field", field);
    }
}

static void test_tenant_valid(void **state)
{
    (void)state;
    expect_valid(&api_tenant_schema, "{\"name\":\"acme\"}");
    expect_valid(&api_tenant_schema,
                 "{\"name\":\"acme-corp-2\",\"description\":\"\",\"contact\":{\"name\":\"Ann\","
                 "\"email\":\"noc@acme.example\",\"phone\":\"+33 (1) 23-45-67\"}}");
    expect_valid(&api_tenant_schema, "{\"name\":\"a\",\"contact\":{}}");
}

static void test_tenant_shape(void **state)
{
    (void)state;
    expect_invalid(&api_tenant_schema, "{\"name\":\"acme\",\"fax\":\"1\"}", 400, "unknown-field",
                   "fax");
    expect_invalid(&api_tenant_schema, "{\"name\":\"acme\",\"contact\":{\"fax\":\"1\"}}", 400,
                   "unknown-field", "contact.fax");
    expect_invalid(&api_tenant_schema, "{\"name\":\"acme\",\"id\":\"x\"}", 400, "read-only-field",
                   "id");
    expect_invalid(&api_tenant_schema, "{\"name\":\"acme\",\"create_revision\":1}", 400,
                   "read-only-field", "create_revision");
    expect_invalid(&api_tenant_schema, "{\"name\":\"acme\",\"mod_revision\":1}", 400,
                   "read-only-field", "mod_revision");
    expect_invalid(&api_tenant_schema, "{\"name\":5}", 400, "invalid-field", "name");
    expect_invalid(&api_tenant_schema, "{\"name\":null}", 400, "invalid-field", "name");
    expect_invalid(&api_tenant_schema, "{\"name\":\"a\",\"description\":[]}", 400, "invalid-field",
                   "description");
    expect_invalid(&api_tenant_schema, "{\"name\":\"a\",\"contact\":\"x\"}", 400, "invalid-field",
                   "contact");
    expect_invalid(&api_tenant_schema, "{\"name\":\"a\",\"contact\":{\"email\":3}}", 400,
                   "invalid-field", "contact.email");
    expect_invalid(&api_tenant_schema, "{}", 400, "missing-field", "name");
    expect_invalid(&api_tenant_schema, "{\"description\":\"d\"}", 400, "missing-field", "name");
    /* Shape errors come first, wherever they are in the body. */
    expect_invalid(&api_tenant_schema, "{\"name\":\"BAD\",\"fax\":1}", 400, "unknown-field", "fax");
    expect_invalid(&api_tenant_schema, "{\"contact\":{\"email\":\"x\"},\"name\":7}", 400,
                   "invalid-field", "name");
}

static void test_tenant_detail(void **state)
{
    struct api_error err;
    (void)state;
    err = validate(&api_tenant_schema, "{\"name\":5}");
    assert_non_null(strstr(err.detail, "must be a string, not an integer"));
    err = validate(&api_tenant_schema, "{\"name\":\"a\",\"contact\":{\"fax\":\"1\"}}");
    assert_non_null(strstr(err.detail, "\"contact.fax\""));
    assert_non_null(strstr(err.detail, "name, email, phone"));
    err = validate(&api_tenant_schema, "{\"name\":\"Acme\"}");
    assert_non_null(strstr(err.detail, "lower-case"));
}

static void test_tenant_name(void **state)
{
    char text[256];
    char *s;
    (void)state;
    static const char *const good[] = {"a", "0", "a-b", "acme-2", "9-to-5", "x--y"};
    static const char *const bad[] = {"", "-a", "a-", "-", "Acme", "a_b", "a b", "a.b", "é"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(text, sizeof text, "{\"name\":\"%s\"}", good[i]);
        expect_valid(&api_tenant_schema, text);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "{\"name\":\"%s\"}", bad[i]);
        expect_invalid(&api_tenant_schema, text, 422, "invalid-field", "name");
    }
    s = repeat('a', 63);
    snprintf(text, sizeof text, "{\"name\":\"%s\"}", s);
    expect_valid(&api_tenant_schema, text);
    free(s);
    s = repeat('a', 64);
    snprintf(text, sizeof text, "{\"name\":\"%s\"}", s);
    expect_invalid(&api_tenant_schema, text, 422, "invalid-field", "name");
    free(s);
}

static void test_tenant_lengths(void **state)
{
    char field[2048];
    char *s;
    (void)state;
    s = repeat('d', 1024);
    snprintf(field, sizeof field, "\"description\":\"%s\"", s);
    expect_tenant_field(field, 0, NULL);
    free(s);
    s = repeat('d', 1025);
    snprintf(field, sizeof field, "\"description\":\"%s\"", s);
    expect_tenant_field(field, 422, "description");
    free(s);
    /* Limits count bytes: 512 two-byte characters fill 1024. */
    {
        char *p = field + snprintf(field, sizeof field, "\"description\":\"");
        for (int i = 0; i < 513; i++) {
            p += snprintf(p, 3, "\xc3\xa9");
        }
        snprintf(p, 2, "\"");
        expect_tenant_field(field, 422, "description");
    }
    s = repeat('n', 128);
    snprintf(field, sizeof field, "\"contact\":{\"name\":\"%s\"}", s);
    expect_tenant_field(field, 0, NULL);
    free(s);
    s = repeat('n', 129);
    snprintf(field, sizeof field, "\"contact\":{\"name\":\"%s\"}", s);
    expect_tenant_field(field, 422, "contact.name");
    free(s);
    expect_tenant_field("\"contact\":{\"name\":\"\"}", 422, "contact.name");
}

static void test_tenant_email(void **state)
{
    char field[512];
    char *s;
    (void)state;
    expect_tenant_field("\"contact\":{\"email\":\"a@b\"}", 0, NULL);
    expect_tenant_field("\"contact\":{\"email\":\"noc@example.com\"}", 0, NULL);
    static const char *const bad[] = {"", "ab", "@b", "a@", "a@b@c", "a b@c", "a@b c"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(field, sizeof field, "\"contact\":{\"email\":\"%s\"}", bad[i]);
        expect_tenant_field(field, 422, "contact.email");
    }
    s = repeat('e', 252);
    snprintf(field, sizeof field, "\"contact\":{\"email\":\"%s@x\"}", s);
    expect_tenant_field(field, 0, NULL);
    snprintf(field, sizeof field, "\"contact\":{\"email\":\"%s@xy\"}", s);
    expect_tenant_field(field, 422, "contact.email");
    free(s);
}

static void test_tenant_phone(void **state)
{
    char field[512];
    char *s;
    (void)state;
    expect_tenant_field("\"contact\":{\"phone\":\"+33 (1) 23-45-67-89\"}", 0, NULL);
    expect_tenant_field("\"contact\":{\"phone\":\"5\"}", 0, NULL);
    static const char *const bad[] = {"", "12x", "+-()", "1.2", "1/2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(field, sizeof field, "\"contact\":{\"phone\":\"%s\"}", bad[i]);
        expect_tenant_field(field, 422, "contact.phone");
    }
    s = repeat('1', 32);
    snprintf(field, sizeof field, "\"contact\":{\"phone\":\"%s\"}", s);
    expect_tenant_field(field, 0, NULL);
    free(s);
    s = repeat('1', 33);
    snprintf(field, sizeof field, "\"contact\":{\"phone\":\"%s\"}", s);
    expect_tenant_field(field, 422, "contact.phone");
    free(s);
}

static void expect_member(const char *text, int status, const char *type, const char *field)
{
    if (status == 0) {
        expect_valid(&api_member_schema, text);
    } else {
        expect_invalid(&api_member_schema, text, status, type, field);
    }
}

#define MEMBER(id, raft, api) \
    "{\"id\":" id ",\"raft_address\":\"" raft "\",\"api_address\":\"" api "\"}"

static void test_member(void **state)
{
    char text[512];
    char *host;
    (void)state;
    expect_member(MEMBER("1", "10.0.0.1:7001", "node-1.example:8001"), 0, NULL, NULL);
    expect_member(MEMBER("9223372036854775807", "h:1", "h:65535"), 0, NULL, NULL);
    expect_member(MEMBER("0", "h:1", "h:2"), 422, "invalid-field", "id");
    expect_member(MEMBER("-1", "h:1", "h:2"), 422, "invalid-field", "id");
    expect_member(MEMBER("1.5", "h:1", "h:2"), 400, "invalid-field", "id");
    expect_member(MEMBER("\"1\"", "h:1", "h:2"), 400, "invalid-field", "id");
    expect_member(MEMBER("1", "h", "h:2"), 422, "invalid-field", "raft_address");
    expect_member(MEMBER("1", ":1", "h:2"), 422, "invalid-field", "raft_address");
    expect_member(MEMBER("1", "h:", "h:2"), 422, "invalid-field", "raft_address");
    expect_member(MEMBER("1", "h:0", "h:2"), 422, "invalid-field", "raft_address");
    expect_member(MEMBER("1", "h:65536", "h:2"), 422, "invalid-field", "raft_address");
    expect_member(MEMBER("1", "h:1x", "h:2"), 422, "invalid-field", "raft_address");
    expect_member(MEMBER("1", "h_x:1", "h:2"), 422, "invalid-field", "raft_address");
    expect_member(MEMBER("1", "h:1", "h:-2"), 422, "invalid-field", "api_address");
    expect_member(MEMBER("1", "h:1", ""), 422, "invalid-field", "api_address");
    expect_member("{\"id\":1,\"raft_address\":\"h:1\"}", 400, "missing-field", "api_address");
    expect_member("{\"raft_address\":\"h:1\",\"api_address\":\"h:1\"}", 400, "missing-field", "id");
    expect_member("{\"id\":1,\"raft_address\":\"h:1\",\"api_address\":\"h:1\",\"role\":\"x\"}", 400,
                  "unknown-field", "role");
    /* The whole address fits the 64-byte fields members are kept in. */
    host = repeat('h', 58);
    snprintf(text, sizeof text, MEMBER("1", "%s:7001", "h:1"), host);
    expect_member(text, 0, NULL, NULL);
    free(host);
    host = repeat('h', 59);
    snprintf(text, sizeof text, MEMBER("1", "%s:7001", "h:1"), host);
    expect_member(text, 422, "invalid-field", "raft_address");
    free(host);
}

static void test_project_order(void **state)
{
    json_t *src = json_loads(
        "{\"contact\":{\"phone\":\"1\",\"email\":\"a@b\",\"name\":\"n\"},"
        "\"description\":\"d\",\"name\":\"x\",\"extra\":1}",
        0, NULL);
    json_t *out;
    char *text;
    (void)state;
    assert_non_null(src);
    out = api_schema_project(&api_tenant_schema, src);
    assert_non_null(out);
    text = json_dumps(out, JSON_COMPACT);
    assert_string_equal(text,
                        "{\"name\":\"x\",\"description\":\"d\",\"contact\":{\"name\":\"n\","
                        "\"email\":\"a@b\",\"phone\":\"1\"}}");
    free(text);
    json_decref(out);
    json_decref(src);
}

#define UUID1 "325902ee-b80c-4adc-b3f5-d68392fe1975"
#define UUID2 "425902ee-b80c-4adc-b3f5-d68392fe1975"

static void expect_user(const char *text, int status, const char *type, const char *field)
{
    if (status == 0) {
        expect_valid(&api_user_schema, text);
    } else {
        expect_invalid(&api_user_schema, text, status, type, field);
    }
}

static void test_user(void **state)
{
    char text[1024];
    char *s;
    (void)state;
    expect_user("{\"username\":\"a\",\"role\":\"sp_admin\"}", 0, NULL, NULL);
    expect_user(
        "{\"username\":\"jane.doe_2-x\",\"role\":\"tenant_operator\",\"tenant_id\":"
        "\"" UUID1
        "\",\"password\":\"twelve chars\",\"display_name\":\"Jane\","
        "\"email\":\"j@x\",\"disabled\":true}",
        0, NULL, NULL);
    expect_user("{\"role\":\"sp_admin\"}", 400, "missing-field", "username");
    expect_user("{\"username\":\"a\"}", 400, "missing-field", "role");
    expect_user("{\"username\":\"a\",\"role\":\"sp_admin\",\"password_hash\":\"x\"}", 400,
                "unknown-field", "password_hash");
    expect_user("{\"username\":\"a\",\"role\":\"sp_admin\",\"id\":\"" UUID1 "\"}", 400,
                "read-only-field", "id");
    expect_user("{\"username\":\"a\",\"role\":\"sp_admin\",\"disabled\":\"no\"}", 400,
                "invalid-field", "disabled");
    expect_user("{\"username\":\"A\",\"role\":\"sp_admin\"}", 422, "invalid-field", "username");
    expect_user("{\"username\":\"a b\",\"role\":\"sp_admin\"}", 422, "invalid-field", "username");
    expect_user("{\"username\":\"\",\"role\":\"sp_admin\"}", 422, "invalid-field", "username");
    expect_user("{\"username\":\"a\",\"role\":\"admin\"}", 422, "invalid-field", "role");
    expect_user("{\"username\":\"a\",\"role\":\"sp_admin\",\"tenant_id\":\"acme\"}", 422,
                "invalid-field", "tenant_id");
    expect_user("{\"username\":\"a\",\"role\":\"sp_admin\",\"email\":\"x\"}", 422, "invalid-field",
                "email");
    /* Lengths: user name 64, password 12 to 256, display name 128. */
    s = repeat('u', 64);
    snprintf(text, sizeof text, "{\"username\":\"%s\",\"role\":\"sp_admin\"}", s);
    expect_user(text, 0, NULL, NULL);
    free(s);
    s = repeat('u', 65);
    snprintf(text, sizeof text, "{\"username\":\"%s\",\"role\":\"sp_admin\"}", s);
    expect_user(text, 422, "invalid-field", "username");
    free(s);
    for (size_t n = 11; n <= 13; n++) {
        s = repeat('p', n);
        snprintf(text, sizeof text,
                 "{\"username\":\"a\",\"role\":\"sp_admin\",\"password\":\"%s\"}", s);
        expect_user(text, n < 12 ? 422 : 0, "invalid-field", "password");
        free(s);
    }
    for (size_t n = 256; n <= 257; n++) {
        s = repeat('p', n);
        snprintf(text, sizeof text,
                 "{\"username\":\"a\",\"role\":\"sp_admin\",\"password\":\"%s\"}", s);
        expect_user(text, n > 256 ? 422 : 0, "invalid-field", "password");
        free(s);
    }
    s = repeat('d', 129);
    snprintf(text, sizeof text,
             "{\"username\":\"a\",\"role\":\"sp_admin\",\"display_name\":\"%s\"}", s);
    expect_user(text, 422, "invalid-field", "display_name");
    free(s);
}

/* The password is write-only: no answer carries it, nor the hash. */
static void test_user_project(void **state)
{
    json_t *src = json_loads(
        "{\"disabled\":false,\"password\":\"secret secret\","
        "\"password_hash\":\"$argon2id$v=19$x\",\"role\":\"sp_admin\","
        "\"username\":\"a\"}",
        0, NULL);
    json_t *out;
    char *text;
    (void)state;
    out = api_schema_project(&api_user_schema, src);
    text = json_dumps(out, JSON_COMPACT);
    assert_string_equal(text, "{\"username\":\"a\",\"role\":\"sp_admin\",\"disabled\":false}");
    free(text);
    json_decref(out);
    json_decref(src);
}

static void test_login_schema(void **state)
{
    (void)state;
    expect_valid(&api_login_schema, "{\"username\":\"Not A Valid Name\",\"password\":\"x\"}");
    expect_invalid(&api_login_schema, "{\"username\":\"a\"}", 400, "missing-field", "password");
    expect_invalid(&api_login_schema, "{\"password\":\"a\"}", 400, "missing-field", "username");
    expect_invalid(&api_login_schema, "{\"username\":\"a\",\"password\":\"\"}", 422,
                   "invalid-field", "password");
    expect_invalid(&api_login_schema, "{\"username\":\"a\",\"password\":\"b\",\"otp\":1}", 400,
                   "unknown-field", "otp");
}

static void test_tenant_quotas(void **state)
{
    (void)state;
    expect_tenant_field("\"quotas\":{}", 0, NULL);
    expect_tenant_field("\"quotas\":{\"sites\":0,\"devices\":1000000,\"services\":5}", 0, NULL);
    expect_tenant_field("\"quotas\":{\"sites\":-1}", 422, "quotas.sites");
    expect_tenant_field("\"quotas\":{\"devices\":1000001}", 422, "quotas.devices");
    expect_invalid(&api_tenant_schema, "{\"name\":\"a\",\"quotas\":{\"services\":\"5\"}}", 400,
                   "invalid-field", "quotas.services");
    expect_invalid(&api_tenant_schema, "{\"name\":\"a\",\"quotas\":{\"users\":5}}", 400,
                   "unknown-field", "quotas.users");
    expect_invalid(&api_tenant_schema, "{\"name\":\"a\",\"quotas\":5}", 400, "invalid-field",
                   "quotas");
    expect_invalid(&api_tenant_schema, "{\"name\":\"a\",\"quotas\":null}", 400, "invalid-field",
                   "quotas");
}

static void test_tenant_templates(void **state)
{
    struct cairn_buf b;
    char id[CAIRN_UUID_SIZE];
    (void)state;
    expect_tenant_field("\"allowed_templates\":[]", 0, NULL);
    expect_tenant_field("\"allowed_templates\":[\"" UUID1 "\",\"" UUID2 "\"]", 0, NULL);
    expect_tenant_field("\"allowed_templates\":[\"" UUID1 "\",\"" UUID2 "\",\"" UUID1 "\"]", 422,
                        "allowed_templates[2]");
    expect_tenant_field("\"allowed_templates\":[\"325902EE-B80C-4ADC-B3F5-D68392FE1975\"]", 422,
                        "allowed_templates[0]");
    expect_tenant_field("\"allowed_templates\":[\"\"]", 422, "allowed_templates[0]");
    expect_invalid(&api_tenant_schema, "{\"name\":\"a\",\"allowed_templates\":[\"" UUID1 "\",{}]}",
                   400, "invalid-field", "allowed_templates[1]");
    expect_invalid(&api_tenant_schema, "{\"name\":\"a\",\"allowed_templates\":{}}", 400,
                   "invalid-field", "allowed_templates");
    /* At most 256. */
    for (int n = 256; n <= 257; n++) {
        cairn_buf_init(&b);
        cairn_buf_printf(&b, "{\"name\":\"a\",\"allowed_templates\":[");
        for (int i = 0; i < n; i++) {
            cairn_uuid(id);
            cairn_buf_printf(&b, "%s\"%s\"", i > 0 ? "," : "", id);
        }
        cairn_buf_printf(&b, "]}");
        if (n == 256) {
            expect_valid(&api_tenant_schema, b.data);
        } else {
            expect_invalid(&api_tenant_schema, b.data, 422, "invalid-field", "allowed_templates");
        }
        cairn_buf_close(&b);
    }
}

static void test_formats(void **state)
{
    char why[256];
    (void)state;
    assert_true(api_format_uuid(UUID1, strlen(UUID1), why, sizeof why));
    assert_false(api_format_uuid(UUID1, strlen(UUID1) - 1, why, sizeof why));
    assert_false(api_format_uuid("x", 1, why, sizeof why));
    assert_non_null(strstr(why, "uuid"));
    assert_true(api_format_username("a.b_c-9", 7, why, sizeof why));
    assert_false(api_format_username("a/b", 3, why, sizeof why));
    assert_false(api_format_username("", 0, why, sizeof why));
    assert_true(api_format_role("tenant_admin", 12, why, sizeof why));
    /* Not NUL-terminated at len: only len bytes count. */
    assert_true(api_format_role("sp_adminXYZ", 8, why, sizeof why));
    assert_false(api_format_role("sp_admi", 7, why, sizeof why));
    assert_non_null(strstr(why, "sp_operator"));
}

static void test_if_match(void **state)
{
    uint64_t v = 99;
    (void)state;
    assert_int_equal(api_if_match_parse(NULL, &v), 0);
    assert_int_equal(v, 0);
    v = 99;
    assert_int_equal(api_if_match_parse("*", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(api_if_match_parse("\"5\"", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(api_if_match_parse(" \"18446744073709551615\" ", &v), 0);
    assert_true(v == UINT64_MAX);
    static const char *const bad[] = {"",
                                      "5",
                                      "\"0\"",
                                      "\"\"",
                                      "\"",
                                      "W/\"5\"",
                                      "\"5\", \"6\"",
                                      "\"abc\"",
                                      "\"-1\"",
                                      "\"+5\"",
                                      "\"5 \"",
                                      "**",
                                      "\"18446744073709551616\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 77;
        if (api_if_match_parse(bad[i], &v) != CAIRN_EINVAL) {
            fail_msg("If-Match %s accepted", bad[i]);
        }
        assert_int_equal(v, 77);
    }
}

static void test_idempotency_key(void **state)
{
    char rid[API_REQUEST_ID_SIZE];
    char rid2[API_REQUEST_ID_SIZE];
    char *key;
    (void)state;
    assert_int_equal(api_idempotency_parse("abc", rid), 0);
    assert_string_equal(rid, "idem:abc");
    assert_int_equal(api_idempotency_parse("a b ~!", rid), 0);
    assert_string_equal(rid, "idem:a b ~!");
    assert_int_equal(api_idempotency_parse("", rid), CAIRN_EINVAL);
    assert_int_equal(api_idempotency_parse(NULL, rid), CAIRN_EINVAL);
    assert_int_equal(api_idempotency_parse("a\tb", rid), CAIRN_EINVAL);
    assert_int_equal(api_idempotency_parse("a\x7f", rid), CAIRN_EINVAL);
    assert_int_equal(api_idempotency_parse("caf\xc3\xa9", rid), CAIRN_EINVAL);
    key = repeat('k', 251);
    assert_int_equal(api_idempotency_parse(key, rid), 0);
    assert_int_equal(strlen(rid), 256);
    assert_memory_equal(rid + 5, key, 251);
    free(key);
    /* Longer keys still fit the store's 256 bytes and stay distinct. */
    key = repeat('k', 255);
    assert_int_equal(api_idempotency_parse(key, rid), 0);
    assert_true(strlen(rid) <= 256);
    assert_memory_equal(rid, "idem:kkk", 8);
    key[254] = 'x';
    assert_int_equal(api_idempotency_parse(key, rid2), 0);
    assert_string_not_equal(rid, rid2);
    free(key);
    key = repeat('k', 256);
    assert_int_equal(api_idempotency_parse(key, rid), CAIRN_EINVAL);
    free(key);
    api_request_id_fresh(rid);
    assert_memory_equal(rid, "req:", 4);
    assert_true(cairn_uuid_valid(rid + 4));
    api_request_id_fresh(rid2);
    assert_string_not_equal(rid, rid2);
}

static void test_fingerprint(void **state)
{
    uint64_t a;
    (void)state;
    /* FNV-1a 64 reference values. */
    assert_true(api_fnv1a(API_FNV_OFFSET, "", 0) == 0xcbf29ce484222325ull);
    assert_true(api_fnv1a(API_FNV_OFFSET, "a", 1) == 0xaf63dc4c8601ec8cull);
    assert_true(api_fnv1a(API_FNV_OFFSET, "foobar", 6) == 0x85944171f73967e8ull);
    a = api_fingerprint("POST", "/api/v1/tenants", "{\"name\":\"a\"}", 12);
    assert_true(a == api_fingerprint("POST", "/api/v1/tenants", "{\"name\":\"a\"}", 12));
    assert_true(a != api_fingerprint("PUT", "/api/v1/tenants", "{\"name\":\"a\"}", 12));
    assert_true(a != api_fingerprint("POST", "/api/v1/tenant", "{\"name\":\"a\"}", 12));
    assert_true(a != api_fingerprint("POST", "/api/v1/tenants", "{\"name\":\"b\"}", 12));
    /* The parts are separated: moving bytes between them changes it. */
    assert_true(api_fingerprint("POST", "/ab", "", 0) != api_fingerprint("POST", "/a", "b", 1));
    /* Defined as FNV-1a over "METHOD\0PATH\0BODY". */
    assert_true(api_fingerprint("GET", "/x", "y", 1) == api_fnv1a(API_FNV_OFFSET, "GET\0/x\0y", 8));
}

static void test_error_map(void **state)
{
    static const struct {
        int code;
        int status;
        const char *type;
    } cases[] = {
        {CAIRN_ENOTFOUND, 404, "not-found"},
        {CAIRN_EEXIST, 409, "conflict"},
        {CAIRN_EPRECONDITION, 412, "precondition-failed"},
        {CAIRN_EIDEMPOTENCY, 422, "idempotency-key-reused"},
        {CAIRN_EINVAL, 422, "invalid-request"},
        {CAIRN_ENOLEADER, 503, "unavailable"},
        {CAIRN_ETIMEDOUT, 503, "unavailable"},
        {CAIRN_EUNAVAILABLE, 503, "unavailable"},
        {CAIRN_ESHUTDOWN, 503, "unavailable"},
        {CAIRN_EBUSY, 409, "busy"},
        {CAIRN_ETOOBIG, 413, "body-too-large"},
        {CAIRN_EIO, 500, "internal"},
        {CAIRN_ECORRUPT, 500, "internal"},
        {CAIRN_ENOMEM, 500, "internal"},
        {12345, 500, "internal"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct api_status st = api_status_of(cases[i].code);
        assert_int_equal(st.status, cases[i].status);
        assert_string_equal(st.type, cases[i].type);
    }
}

static void test_content_type(void **state)
{
    (void)state;
    assert_true(api_content_type_ok("application/json"));
    assert_true(api_content_type_ok("Application/JSON"));
    assert_true(api_content_type_ok("application/json; charset=utf-8"));
    assert_true(api_content_type_ok("application/json;charset=UTF-8"));
    assert_true(api_content_type_ok("application/json; charset=\"utf-8\""));
    assert_false(api_content_type_ok(NULL));
    assert_false(api_content_type_ok(""));
    assert_false(api_content_type_ok("text/plain"));
    assert_false(api_content_type_ok("application/jsonx"));
    assert_false(api_content_type_ok("application/json-patch+json"));
    assert_false(api_content_type_ok("application/json; charset=latin1"));
    assert_false(api_content_type_ok("application/json; foo=bar"));
    assert_false(api_content_type_ok("application/json;"));
}

static void test_body_parse(void **state)
{
    struct api_error err;
    json_t *body = NULL;
    (void)state;
    assert_int_equal(api_body_parse("{\"a\":1}", 7, &body, &err), 0);
    assert_true(json_is_object(body));
    json_decref(body);
    assert_int_equal(api_body_parse("{\n  \"a\": }", 10, &body, &err), CAIRN_EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.type, "malformed-json");
    assert_non_null(strstr(err.detail, "line 2, column"));
    assert_int_equal(api_body_parse("{\"a\":1,\"a\":2}", 13, &body, &err), CAIRN_EINVAL);
    assert_string_equal(err.type, "malformed-json");
    assert_non_null(strstr(err.detail, "duplicate"));
    assert_int_equal(api_body_parse("", 0, &body, &err), CAIRN_EINVAL);
    assert_string_equal(err.type, "malformed-json");
    assert_int_equal(api_body_parse("[1]", 3, &body, &err), CAIRN_EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.type, "invalid-body");
    assert_non_null(strstr(err.detail, "not an array"));
    assert_int_equal(api_body_parse("3", 1, &body, &err), CAIRN_EINVAL);
    assert_string_equal(err.type, "invalid-body");
    assert_int_equal(api_body_parse("{} x", 4, &body, &err), CAIRN_EINVAL);
    assert_string_equal(err.type, "malformed-json");
    assert_int_equal(api_body_parse("{\"a\":\"\\u0000\"}", 14, &body, &err), CAIRN_EINVAL);
    assert_string_equal(err.type, "malformed-json");
}

static void test_query(void **state)
{
    static const char *const allowed[] = {"limit", "cursor", "name", NULL};
    struct api_error err;
    struct api_req req;
    (void)state;

    memset(&req, 0, sizeof req);
    assert_int_equal(api_query_parse(&req, NULL, allowed, &err), 0);
    assert_int_equal(req.n_params, 0);
    assert_int_equal(api_query_parse(&req, "limit=5&name=a%2Db+c&cursor=", allowed, &err), 0);
    assert_int_equal(req.n_params, 3);
    assert_string_equal(api_param(&req, "limit"), "5");
    assert_string_equal(api_param(&req, "name"), "a-b c");
    assert_string_equal(api_param(&req, "cursor"), "");
    assert_null(api_param(&req, "consistency"));

    assert_int_equal(api_query_parse(&req, "limit=5&foo=1", allowed, &err), CAIRN_EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.type, "unknown-parameter");
    assert_string_equal(err.field, "foo");
    assert_non_null(strstr(err.detail, "\"foo\""));
    assert_int_equal(api_query_parse(&req, "limit=5&limit=6", allowed, &err), CAIRN_EINVAL);
    assert_string_equal(err.field, "limit");
    assert_int_equal(api_query_parse(&req, "name=%zz", allowed, &err), CAIRN_EINVAL);
    assert_string_equal(err.type, "invalid-parameter");
    assert_string_equal(err.field, "name");
    assert_int_equal(api_query_parse(&req, "na%zme=1", allowed, &err), CAIRN_EINVAL);
    assert_string_equal(err.type, "invalid-parameter");
    assert_string_equal(err.field, "");
    assert_int_equal(api_query_parse(&req, "name=a%00b", allowed, &err), CAIRN_EINVAL);
    assert_int_equal(api_query_parse(&req, "x", NULL, &err), CAIRN_EINVAL);
    assert_string_equal(err.field, "x");
    assert_non_null(strstr(err.detail, "no parameters"));
    free(req.query);
}

static void test_status_text(void **state)
{
    (void)state;
    assert_string_equal(http_status_text(200), "OK");
    assert_string_equal(http_status_text(404), "Not Found");
    assert_string_equal(http_status_text(412), "Precondition Failed");
    assert_string_equal(http_status_text(503), "Service Unavailable");
    assert_string_equal(http_status_text(299), "Unknown");
}

/* Sites: nested objects, arrays of objects named "wan_links[1].type". */
static void test_site(void **state)
{
    (void)state;
    expect_valid(&api_site_schema,
                 "{\"name\":\"paris-1\",\"role\":\"hub\",\"geo\":{\"latitude\":48.85,"
                 "\"longitude\":2.35},\"wan_links\":[{\"name\":\"wan0\",\"type\":\"internet\","
                 "\"subnet\":\"192.0.2.0/24\",\"public_address\":\"192.0.2.1\"}]}");
    expect_invalid(&api_site_schema, "{\"name\":\"p\"}", 400, "missing-field", "role");
    expect_invalid(&api_site_schema, "{\"name\":\"p\",\"role\":\"leaf\"}", 422, "invalid-field",
                   "role");
    expect_invalid(&api_site_schema,
                   "{\"name\":\"p\",\"role\":\"hub\",\"wan_links\":[{\"name\":\"a\","
                   "\"type\":\"mpls\"},{\"name\":\"b\",\"type\":\"dsl\"}]}",
                   422, "invalid-field", "wan_links[1].type");
    expect_invalid(&api_site_schema,
                   "{\"name\":\"p\",\"role\":\"hub\",\"wan_links\":[{\"name\":\"a\"}]}", 400,
                   "missing-field", "wan_links[0].type");
    expect_invalid(&api_site_schema, "{\"name\":\"p\",\"role\":\"hub\",\"wan_links\":[\"a\"]}", 400,
                   "invalid-field", "wan_links[0]");
    expect_invalid(&api_site_schema,
                   "{\"name\":\"p\",\"role\":\"hub\",\"wan_links\":[{\"name\":\"a\","
                   "\"type\":\"lte\",\"mtu\":1500}]}",
                   400, "unknown-field", "wan_links[0].mtu");
    expect_invalid(&api_site_schema,
                   "{\"name\":\"p\",\"role\":\"hub\",\"geo\":{\"latitude\":91,\"longitude\":0}}",
                   422, "invalid-field", "geo.latitude");
    expect_invalid(&api_site_schema,
                   "{\"name\":\"p\",\"role\":\"hub\",\"geo\":{\"latitude\":\"n\","
                   "\"longitude\":0}}",
                   400, "invalid-field", "geo.latitude");
}

/* Devices: the password is write-only, also inside an object; server
 * fields are refused in a body and shown in an answer. */
static void test_device(void **state)
{
    json_t *stored;
    json_t *shown;
    (void)state;
    expect_valid(&api_device_schema, "{\"site_id\":\"" UUID1
                                     "\",\"serial\":\"CRN-1\",\"family\":\"nfx\","
                                     "\"management\":{\"host\":\"192.0.2.7\",\"port\":830},"
                                     "\"credentials\":{\"username\":\"root\",\"password\":\"s\"}}");
    expect_invalid(&api_device_schema,
                   "{\"site_id\":\"" UUID1 "\",\"serial\":\"CRN 1\",\"family\":\"nfx\"}", 422,
                   "invalid-field", "serial");
    expect_invalid(&api_device_schema,
                   "{\"site_id\":\"" UUID1 "\",\"serial\":\"C\",\"family\":\"juniper\"}", 422,
                   "invalid-field", "family");
    expect_invalid(&api_device_schema,
                   "{\"site_id\":\"" UUID1
                   "\",\"serial\":\"C\",\"family\":\"mx\","
                   "\"status\":{}}",
                   400, "read-only-field", "status");
    expect_invalid(&api_device_schema,
                   "{\"site_id\":\"" UUID1
                   "\",\"serial\":\"C\",\"family\":\"mx\","
                   "\"management\":{\"host\":\"h\",\"port\":70000}}",
                   422, "invalid-field", "management.port");
    stored = json_loads(
        "{\"serial\":\"C\",\"credentials\":{\"username\":\"u\",\"password\":"
        "\"secret\"},\"activation_code\":\"X\",\"status\":{\"state\":\"new\"}}",
        0, NULL);
    shown = api_schema_render(&api_device_schema, stored);
    assert_non_null(shown);
    assert_null(json_object_get(json_object_get(shown, "credentials"), "password"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(shown, "credentials"), "username")), "u");
    assert_string_equal(json_string_value(json_object_get(shown, "activation_code")), "X");
    assert_non_null(json_object_get(shown, "status"));
    json_decref(shown);
    json_decref(stored);
}

static void expect_params(const char *schema_text, const char *params_text, int status,
                          const char *field, const char *want_after)
{
    json_t *schema = json_loads(schema_text, 0, NULL);
    json_t *params = json_loads(params_text, 0, NULL);
    struct api_error err;
    int rv;
    assert_non_null(schema);
    assert_non_null(params);
    memset(&err, 0, sizeof err);
    rv = api_template_params_check(schema, params, &err);
    if (status == 0) {
        json_t *want = json_loads(want_after, 0, NULL);
        if (rv != 0) {
            fail_msg("%s: want valid, got %d %s", params_text, err.status, err.detail);
        }
        assert_true(json_equal(params, want));
        json_decref(want);
    } else if (rv == 0 || err.status != status || strcmp(err.field, field) != 0) {
        fail_msg("%s: got %d field \"%s\" (%s), want %d \"%s\"", params_text, err.status, err.field,
                 err.detail, status, field);
    }
    json_decref(schema);
    json_decref(params);
}

/* A service's parameters against its template's schema. */
static void test_template_params(void **state)
{
    const char *schema =
        "{\"policy\":{\"type\":\"string\",\"required\":true,\"enum\":[\"strict\","
        "\"open\"]},\"port\":{\"type\":\"port\",\"default\":443},"
        "\"subnet\":{\"type\":\"ipv4-prefix\"},\"count\":{\"type\":\"integer\","
        "\"min\":1,\"max\":10},\"apps\":{\"type\":\"string-list\"}}";
    (void)state;
    expect_params(schema, "{\"policy\":\"strict\"}", 0, NULL,
                  "{\"policy\":\"strict\",\"port\":443}");
    expect_params(schema, "{\"policy\":\"open\",\"port\":8443,\"apps\":[\"web\"]}", 0, NULL,
                  "{\"policy\":\"open\",\"port\":8443,\"apps\":[\"web\"]}");
    expect_params(schema, "{}", 400, "parameters.policy", NULL);
    expect_params(schema, "{\"policy\":\"loose\"}", 422, "parameters.policy", NULL);
    expect_params(schema, "{\"policy\":\"open\",\"port\":0}", 422, "parameters.port", NULL);
    expect_params(schema, "{\"policy\":\"open\",\"count\":11}", 422, "parameters.count", NULL);
    expect_params(schema, "{\"policy\":\"open\",\"subnet\":\"10.0.0.0/33\"}", 422,
                  "parameters.subnet", NULL);
    expect_params(schema, "{\"policy\":\"open\",\"apps\":[1]}", 422, "parameters.apps", NULL);
    expect_params(schema, "{\"policy\":\"open\",\"colour\":\"red\"}", 400, "parameters.colour",
                  NULL);
}

static void test_formats_network(void **state)
{
    char why[256];
    (void)state;
    assert_true(api_format_ipv4("192.0.2.255", 11, why, sizeof why));
    assert_false(api_format_ipv4("192.0.2.256", 11, why, sizeof why));
    assert_false(api_format_ipv4("192.0.2", 7, why, sizeof why));
    assert_false(api_format_ipv4("01.0.0.1", 8, why, sizeof why));
    assert_false(api_format_ipv4("1.2.3.4.5", 9, why, sizeof why));
    assert_true(api_format_ipv4_prefix("10.0.0.0/8", 10, why, sizeof why));
    assert_true(api_format_ipv4_prefix("0.0.0.0/0", 9, why, sizeof why));
    assert_false(api_format_ipv4_prefix("10.0.0.0/", 9, why, sizeof why));
    assert_false(api_format_ipv4_prefix("10.0.0.0", 8, why, sizeof why));
    assert_false(api_format_ipv4_prefix("10.0.0.0/40", 11, why, sizeof why));
    assert_true(api_format_version("1.0.0", 5, why, sizeof why));
    assert_true(api_format_version("10.20.300", 9, why, sizeof why));
    assert_false(api_format_version("1.0", 3, why, sizeof why));
    assert_false(api_format_version("1.0.0.0", 7, why, sizeof why));
    assert_false(api_format_version("01.0.0", 6, why, sizeof why));
    assert_true(api_format_template_type("sdwan", 5, why, sizeof why));
    assert_false(api_format_template_type("sd", 2, why, sizeof why));
    assert_non_null(strstr(why, "firewall-policy"));
}

int test_helpers_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_valid),    cmocka_unit_test(test_tenant_shape),
        cmocka_unit_test(test_tenant_detail),   cmocka_unit_test(test_tenant_name),
        cmocka_unit_test(test_tenant_lengths),  cmocka_unit_test(test_tenant_email),
        cmocka_unit_test(test_tenant_phone),    cmocka_unit_test(test_member),
        cmocka_unit_test(test_project_order),   cmocka_unit_test(test_if_match),
        cmocka_unit_test(test_idempotency_key), cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_error_map),       cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_body_parse),      cmocka_unit_test(test_query),
        cmocka_unit_test(test_status_text),     cmocka_unit_test(test_user),
        cmocka_unit_test(test_user_project),    cmocka_unit_test(test_login_schema),
        cmocka_unit_test(test_tenant_quotas),   cmocka_unit_test(test_tenant_templates),
        cmocka_unit_test(test_formats),         cmocka_unit_test(test_site),
        cmocka_unit_test(test_device),          cmocka_unit_test(test_template_params),
        cmocka_unit_test(test_formats_network),
    };
    return cmocka_run_group_tests_name("northbound helpers", tests, NULL, NULL);
}
