/*
 * Unit tests of southbound's YANG side: renderers (one per service type),
 * parameter checking, merging with conflicts, validation with libyang's
 * message, diff and edit building. They use the real CPE modules from
 * southbound/yang; no device is involved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "southbound.h"

static struct ly_ctx *ctx;
static char errmsg[CAIRN_ERRMSG_SIZE];

/* The config a cairn-devsim device boots with, as adopted at onboarding. */
static const char *const base_json =
    "{\"cairn-cpe-system:system\":{\"hostname\":\"dev0\"},"
    "\"cairn-cpe-interfaces:interfaces\":{\"interface\":["
    "{\"name\":\"wan0\",\"type\":\"ethernet\",\"dhcp-client\":true},"
    "{\"name\":\"lan0\",\"type\":\"ethernet\",\"address\":[{\"ip\":\"192.168.1.1\","
    "\"prefix-length\":24}]}]}}";

static const struct sb_target ucpe = {"CRN1", "ucpe-s", "paris", "spoke", "198.51.100.2"};

static int setup(void **state)
{
    (void)state;
    return sb_schema_ctx_create(NULL, &ctx, errmsg, sizeof(errmsg));
}

static int teardown(void **state)
{
    (void)state;
    ly_ctx_destroy(ctx);
    return 0;
}

#define assert_contains(text, part)                                     \
    do {                                                                \
        if (!strstr((text), (part))) {                                  \
            fail_msg("\"%s\" does not contain \"%s\"", (text), (part)); \
        }                                                               \
    } while (0)

static struct lyd_node *base(void)
{
    struct lyd_node *tree = NULL;
    assert_int_equal(sb_schema_parse_json(ctx, base_json, &tree, errmsg, sizeof(errmsg)), 0);
    return tree;
}

static json_t *params(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) {
        fail_msg("bad test JSON: %s", e.text);
    }
    return j;
}

/* Renders services over the base config; returns rv, the tree in *out. */
static int intended(const struct sb_service *svcs, size_t n, const struct sb_target *t,
                    struct lyd_node **out)
{
    struct lyd_node *b = base();
    int rv;
    errmsg[0] = '\0';
    rv = sb_render_intended(ctx, b, svcs, n, t, out, errmsg, sizeof(errmsg));
    lyd_free_all(b);
    return rv;
}

/* The value at an XPath in tree, or NULL. */
static const char *value_at(const struct lyd_node *tree, const char *path)
{
    struct ly_set *set = NULL;
    const char *v = NULL;
    if (lyd_find_xpath(tree, path, &set) == 0 && set->count) {
        v = lyd_get_value(set->dnodes[0]);
    }
    ly_set_free(set, NULL);
    return v;
}

static const char *const fw_params =
    "{\"zones\":[{\"name\":\"trust\",\"interfaces\":[\"lan0\"]},"
    "{\"name\":\"untrust\",\"interfaces\":[\"wan0\"]}],"
    "\"rules\":[{\"name\":\"web\",\"from_zone\":\"trust\",\"to_zone\":\"untrust\","
    "\"protocol\":\"tcp\",\"port\":443,\"action\":\"permit\",\"log\":true},"
    "{\"name\":\"deny-all\",\"from_zone\":\"untrust\",\"to_zone\":\"trust\","
    "\"action\":\"deny\"}]}";

static void test_render_firewall(void **state)
{
    struct sb_service svc = {"s1", "firewall-policy", params(fw_params)};
    struct lyd_node *tree = NULL;
    (void)state;
    assert_int_equal(intended(&svc, 1, &ucpe, &tree), 0);
    assert_string_equal(
        value_at(tree, "/cairn-cpe-security:security/policy[name='web']/destination-port"), "443");
    assert_string_equal(value_at(tree, "/cairn-cpe-security:security/policy[name='web']/action"),
                        "permit");
    assert_string_equal(value_at(tree, "/cairn-cpe-security:security/zone[name='trust']/interface"),
                        "lan0");
    /* The base config is kept. */
    assert_string_equal(value_at(tree, "/cairn-cpe-system:system/hostname"), "dev0");
    lyd_free_all(tree);
    json_decref(svc.parameters);
}

static void test_render_nat_vpn_sdwan_vnf(void **state)
{
    struct sb_service svcs[] = {
        {"n1", "nat",
         params("{\"rules\":[{\"name\":\"out\",\"type\":\"source\",\"egress_interface\":\"wan0\","
                "\"masquerade\":true}]}")},
        {"v1", "site-to-site-vpn",
         params(
             "{\"name\":\"vpn\",\"local_interface\":\"wan0\",\"pre_shared_key\":\"secret-key\","
             "\"sites\":[{\"site\":\"paris\",\"address\":\"198.51.100.2\"},"
             "{\"site\":\"lyon\",\"address\":\"198.51.100.3\",\"prefixes\":[\"10.2.0.0/16\"]}]}")},
        {"w1", "sdwan",
         params(
             "{\"name\":\"ovl\",\"encapsulation\":\"vxlan\",\"vni\":100,\"sites\":["
             "{\"site\":\"hq\",\"address\":\"203.0.113.1\",\"role\":\"hub\",\"as\":65000},"
             "{\"site\":\"paris\",\"address\":\"198.51.100.2\",\"role\":\"spoke\",\"as\":65001},"
             "{\"site\":\"lyon\",\"address\":\"198.51.100.3\",\"role\":\"spoke\",\"as\":65002}]}")},
        {"x1", "vnf",
         params("{\"instances\":[{\"name\":\"fw1\",\"image\":\"vendor/fw:7\",\"vcpus\":2,"
                "\"interfaces\":[\"lan0\"]}]}")},
    };
    struct lyd_node *tree = NULL;
    size_t i;
    (void)state;
    assert_int_equal(intended(svcs, 4, &ucpe, &tree), 0);
    assert_non_null(value_at(tree, "/cairn-cpe-nat:nat/rule[name='out']/masquerade"));
    /* Full mesh without the device's own site. */
    assert_string_equal(value_at(tree, "/cairn-cpe-tunnels:tunnels/ipsec[name='vpn-lyon']/peer"),
                        "198.51.100.3");
    assert_null(value_at(tree, "/cairn-cpe-tunnels:tunnels/ipsec[name='vpn-paris']/peer"));
    /* A spoke reaches the hub only, with its own AS. */
    assert_string_equal(value_at(tree, "/cairn-cpe-tunnels:tunnels/overlay[name='ovl-hq']/vni"),
                        "100");
    assert_null(value_at(tree, "/cairn-cpe-tunnels:tunnels/overlay[name='ovl-lyon']/destination"));
    assert_string_equal(value_at(tree, "/cairn-cpe-routing:routing/bgp/local-as"), "65001");
    assert_string_equal(
        value_at(tree, "/cairn-cpe-routing:routing/bgp/neighbor[address='203.0.113.1']/remote-as"),
        "65000");
    assert_string_equal(value_at(tree, "/cairn-cpe-vnf:vnfs/instance[name='fw1']/vcpus"), "2");
    lyd_free_all(tree);
    for (i = 0; i < 4; i++) {
        json_decref(svcs[i].parameters);
    }
}

static void test_render_vnf_needs_ucpe(void **state)
{
    struct sb_target branch = {"CRN2", "branch-fw", NULL, NULL, NULL};
    struct sb_service svc = {"x1", "vnf",
                             params("{\"instances\":[{\"name\":\"a\",\"image\":\"i\"}]}")};
    struct lyd_node *tree = NULL;
    (void)state;
    assert_int_equal(intended(&svc, 1, &branch, &tree), CAIRN_EINVAL);
    assert_contains(errmsg, "cannot host VNFs");
    assert_contains(errmsg, "service x1");
    json_decref(svc.parameters);
}

static void test_params_rejected(void **state)
{
    static const struct {
        const char *type, *params, *message;
    } cases[] = {
        {"firewall-policy",
         "{\"rules\":[{\"name\":\"a\",\"from_zone\":\"x\",\"to_zone\":\"y\",\"action\":\"allow\"}]"
         "}",
         "rules[0].action: must be one of permit, deny, reject"},
        {"firewall-policy", "{\"rules\":[]}", "rules: must not be empty"},
        {"firewall-policy", "{}", "parameters: \"rules\" is required"},
        {"nat", "{\"rules\":[{\"name\":\"a b\",\"type\":\"source\"}]}",
         "rules[0].name: must match"},
        {"nat", "{\"rules\":[{\"name\":\"a\",\"type\":\"source\",\"colour\":1}]}",
         "rules[0].colour: unknown parameter"},
        {"vnf", "{\"instances\":[{\"name\":\"a\",\"image\":\"i\",\"vcpus\":100}]}",
         "instances[0].vcpus: must be between 1 and 64"},
        {"sdwan", "{\"name\":\"o\",\"encapsulation\":\"gre\",\"sites\":\"x\"}",
         "sites: must be an array, not string"},
        {"printer", "{}", "unknown service type \"printer\""},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sb_service svc = {"bad", cases[i].type, params(cases[i].params)};
        struct lyd_node *tree = NULL;
        assert_int_equal(sb_render_service(ctx, &svc, &ucpe, &tree, errmsg, sizeof(errmsg)),
                         CAIRN_EINVAL);
        if (!strstr(errmsg, cases[i].message)) {
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, errmsg, cases[i].message);
        }
        json_decref(svc.parameters);
    }
}

static void test_param_schemas_are_json_schema(void **state)
{
    const char *const *t;
    (void)state;
    for (t = sb_render_types; *t; t++) {
        json_t *s = sb_render_param_schema(*t);
        assert_non_null(s);
        assert_string_equal(json_string_value(json_object_get(s, "type")), "object");
        assert_non_null(json_object_get(s, "required"));
        json_decref(s);
    }
    assert_null(sb_render_param_schema("printer"));
}

static void test_merge_shared_and_conflict(void **state)
{
    const char *rule_a =
        "{\"rules\":[{\"name\":\"r\",\"from_zone\":\"z\",\"to_zone\":\"z\","
        "\"action\":\"permit\"}],\"zones\":[{\"name\":\"z\"}]}";
    const char *rule_b =
        "{\"rules\":[{\"name\":\"r\",\"from_zone\":\"z\",\"to_zone\":\"z\","
        "\"action\":\"deny\"}],\"zones\":[{\"name\":\"z\"}]}";
    struct sb_service same[] = {{"b", "firewall-policy", params(rule_a)},
                                {"a", "firewall-policy", params(rule_a)}};
    struct sb_service clash[] = {{"svc-2", "firewall-policy", params(rule_b)},
                                 {"svc-1", "firewall-policy", params(rule_a)}};
    struct lyd_node *tree = NULL;
    (void)state;
    /* Equal content is shared. */
    assert_int_equal(intended(same, 2, &ucpe, &tree), 0);
    lyd_free_all(tree);
    tree = NULL;
    /* Different content for one key names both services. */
    assert_int_equal(intended(clash, 2, &ucpe, &tree), CAIRN_ECONFLICT);
    assert_contains(errmsg, "services svc-1 and svc-2");
    assert_contains(errmsg, "policy[name='r']");
    json_decref(same[0].parameters);
    json_decref(same[1].parameters);
    json_decref(clash[0].parameters);
    json_decref(clash[1].parameters);
}

static void test_merge_deterministic(void **state)
{
    const char *p1 = "{\"rules\":[{\"name\":\"one\",\"type\":\"source\",\"masquerade\":true}]}";
    const char *p2 = "{\"rules\":[{\"name\":\"two\",\"type\":\"source\",\"masquerade\":true}]}";
    struct sb_service fwd[] = {{"a", "nat", params(p1)}, {"b", "nat", params(p2)}};
    struct sb_service rev[] = {fwd[1], fwd[0]};
    struct lyd_node *t1 = NULL, *t2 = NULL;
    char *j1, *j2;
    (void)state;
    assert_int_equal(intended(fwd, 2, &ucpe, &t1), 0);
    assert_int_equal(intended(rev, 2, &ucpe, &t2), 0);
    assert_int_equal(sb_schema_print_json(t1, &j1), 0);
    assert_int_equal(sb_schema_print_json(t2, &j2), 0);
    assert_string_equal(j1, j2);
    /* ordered-by user: service a's rule first. */
    assert_true(strstr(j1, "\"one\"") < strstr(j1, "\"two\""));
    free(j1);
    free(j2);
    lyd_free_all(t1);
    lyd_free_all(t2);
    json_decref(fwd[0].parameters);
    json_decref(fwd[1].parameters);
}

static void test_validate_rejects_with_schema_message(void **state)
{
    /* A policy naming a zone that does not exist: a leafref error. */
    struct sb_service svc = {
        "s9", "firewall-policy",
        params("{\"rules\":[{\"name\":\"r\",\"from_zone\":\"nowhere\",\"to_zone\":\"nowhere\","
               "\"action\":\"permit\"}]}")};
    struct lyd_node *tree = NULL;
    (void)state;
    assert_int_equal(intended(&svc, 1, &ucpe, &tree), CAIRN_EINVAL);
    assert_contains(errmsg, "invalid config");
    assert_contains(errmsg, "nowhere");
    assert_contains(errmsg, "/cairn-cpe-security:security/policy[name='r']/to-zone");
    json_decref(svc.parameters);

    /* A zone attached to an interface the device does not have. */
    svc.parameters = params(
        "{\"zones\":[{\"name\":\"z\",\"interfaces\":[\"eth9\"]}],\"rules\":["
        "{\"name\":\"r\",\"from_zone\":\"z\",\"to_zone\":\"z\","
        "\"action\":\"permit\"}]}");
    assert_int_equal(intended(&svc, 1, &ucpe, &tree), CAIRN_EINVAL);
    assert_contains(errmsg, "eth9");
    assert_contains(errmsg, "Invalid leafref value");
    json_decref(svc.parameters);
}

static void test_check_modules(void **state)
{
    const char *const has[] = {"cairn-cpe-system", "cairn-cpe-interfaces", NULL};
    struct lyd_node *tree = NULL;
    struct sb_service svc = {"s1", "firewall-policy", params(fw_params)};
    (void)state;
    assert_int_equal(intended(&svc, 1, &ucpe, &tree), 0);
    assert_int_equal(sb_schema_check_modules(tree, has, errmsg, sizeof(errmsg)),
                     CAIRN_EUNSUPPORTED);
    assert_contains(errmsg, "cairn-cpe-security");
    lyd_free_all(tree);
    json_decref(svc.parameters);
}

static void test_diff_and_edit(void **state)
{
    struct sb_service svc = {"s1", "firewall-policy", params(fw_params)};
    struct lyd_node *running = base(), *want = NULL;
    char *text = NULL, *xml = NULL;
    bool changed = false;
    (void)state;
    assert_int_equal(intended(&svc, 1, &ucpe, &want), 0);

    /* Equal trees: no change, no edit. */
    assert_int_equal(sb_schema_diff(running, running, &text, &changed, errmsg, sizeof(errmsg)), 0);
    assert_false(changed);
    assert_string_equal(text, "");
    free(text);
    assert_int_equal(sb_schema_edit(ctx, running, running, 7, "n1", &xml, errmsg, sizeof(errmsg)),
                     0);
    assert_null(xml);

    /* The firewall added. */
    assert_int_equal(sb_schema_diff(running, want, &text, &changed, errmsg, sizeof(errmsg)), 0);
    assert_true(changed);
    assert_contains(text, "+ /cairn-cpe-security:security/policy[name='web']/action = permit");
    free(text);
    assert_int_equal(sb_schema_edit(ctx, running, want, 42, "n1", &xml, errmsg, sizeof(errmsg)), 0);
    assert_contains(xml, "<controller xmlns=\"urn:cairn:fencing\"><epoch>42</epoch>");
    assert_contains(xml, "operation=\"replace\"");
    assert_contains(xml, "<security xmlns=\"urn:cairn:cpe:security\"");
    /* Unchanged modules are not sent. */
    assert_null(strstr(xml, "urn:cairn:cpe:interfaces"));
    free(xml);

    /* A changed leaf and a removed container. */
    {
        struct lyd_node *host = NULL;
        assert_int_equal(lyd_find_path(want, "/cairn-cpe-system:system/hostname", 0, &host), 0);
        assert_int_equal(lyd_change_term(host, "renamed"), LY_SUCCESS);
    }
    assert_int_equal(sb_schema_diff(want, running, &text, &changed, errmsg, sizeof(errmsg)), 0);
    assert_contains(text, "~ /cairn-cpe-system:system/hostname: renamed -> dev0");
    assert_contains(text, "- /cairn-cpe-security:security");
    free(text);
    assert_int_equal(sb_schema_edit(ctx, want, running, 1, NULL, &xml, errmsg, sizeof(errmsg)), 0);
    assert_contains(xml, "operation=\"remove\"");
    free(xml);

    lyd_free_all(running);
    lyd_free_all(want);
    json_decref(svc.parameters);
}

int manager_tests(void); /* test_manager.c */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_firewall),
        cmocka_unit_test(test_render_nat_vpn_sdwan_vnf),
        cmocka_unit_test(test_render_vnf_needs_ucpe),
        cmocka_unit_test(test_params_rejected),
        cmocka_unit_test(test_param_schemas_are_json_schema),
        cmocka_unit_test(test_merge_shared_and_conflict),
        cmocka_unit_test(test_merge_deterministic),
        cmocka_unit_test(test_validate_rejects_with_schema_message),
        cmocka_unit_test(test_check_modules),
        cmocka_unit_test(test_diff_and_edit),
    };
    int failed = cmocka_run_group_tests_name("schema and renderers", tests, setup, teardown);
    return failed + manager_tests();
}
