/*
 * Unit tests of rbac.c: the whole decision table, every role against every
 * kind, scope and action, written out as the expected answers (A allow, F
 * forbidden, H hidden, for read, create, update, delete, operate), plus
 * the role names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cairn.h"
#include "rbac.h"
#include "tests.h"

#define OWN   "11111111-1111-4111-8111-111111111111"
#define OTHER "22222222-2222-4222-8222-222222222222"

enum scope { SCOPE_OWN, SCOPE_OTHER, SCOPE_NONE, N_SCOPES };

/* Kinds in groups that share their rows. */
static const enum store_kind provider_kinds[] = {STORE_KIND_MEMBER, STORE_KIND_SYSTEM};
static const enum store_kind scoped_kinds[] = {STORE_KIND_USER,    STORE_KIND_SESSION,
                                               STORE_KIND_SITE,    STORE_KIND_DEVICE,
                                               STORE_KIND_SERVICE, STORE_KIND_JOB};
static const enum store_kind all_kinds[] = {
    STORE_KIND_TENANT, STORE_KIND_MEMBER, STORE_KIND_USER,     STORE_KIND_SESSION,
    STORE_KIND_SITE,   STORE_KIND_DEVICE, STORE_KIND_TEMPLATE, STORE_KIND_SERVICE,
    STORE_KIND_JOB,    STORE_KIND_SYSTEM,
};

/* Expected decisions of a tenant role, by kind group and scope: one letter
 * per action (read, create, update, delete, operate). */
struct row {
    const char *group;
    const char *by_scope[N_SCOPES]; /* own, other, none */
};

static const struct row tenant_admin_rows[] = {
    {"provider", {"HHHHH", "HHHHH", "HHHHH"}},
    {"template", {"AFFFF", "AFFFF", "AFFFF"}},
    {"tenant", {"AFFFF", "HHHHH", "HFHHH"}},
    {"scoped", {"AAAAA", "HHHHH", "HFHHH"}},
};

static const struct row tenant_operator_rows[] = {
    {"provider", {"HHHHH", "HHHHH", "HHHHH"}},
    {"template", {"AFFFF", "AFFFF", "AFFFF"}},
    {"tenant", {"AFFFF", "HHHHH", "HFHHH"}},
    {"scoped", {"AFFFA", "HHHHH", "HFHHH"}},
};

static const enum rbac_action actions[] = {RBAC_READ, RBAC_CREATE, RBAC_UPDATE, RBAC_DELETE,
                                           RBAC_OPERATE};

static char letter(enum rbac_decision d)
{
    return d == RBAC_ALLOW ? 'A' : d == RBAC_FORBIDDEN ? 'F' : 'H';
}

static const char *scope_id(enum scope s)
{
    return s == SCOPE_OWN ? OWN : s == SCOPE_OTHER ? OTHER : NULL;
}

/* Checks one role on kinds against a row's letters for every scope. */
static void check(enum rbac_role role, const char *tenant, const enum store_kind *kinds,
                  size_t n_kinds, const char *const by_scope[N_SCOPES])
{
    struct rbac_principal p = {role, tenant};
    for (size_t k = 0; k < n_kinds; k++) {
        for (int s = 0; s < N_SCOPES; s++) {
            for (size_t a = 0; a < 5; a++) {
                enum rbac_decision d = rbac_decide(&p, actions[a], kinds[k], scope_id(s));
                if (letter(d) != by_scope[s][a]) {
                    fail_msg("%s %s kind '%c' scope %d: got %c, want %c", rbac_role_name(role),
                             rbac_action_name(actions[a]), (char)kinds[k], s, letter(d),
                             by_scope[s][a]);
                }
            }
        }
    }
}

static void check_tenant_role(enum rbac_role role, const struct row rows[4])
{
    static const enum store_kind template_kind[] = {STORE_KIND_TEMPLATE};
    static const enum store_kind tenant_kind[] = {STORE_KIND_TENANT};
    check(role, OWN, provider_kinds, 2, rows[0].by_scope);
    check(role, OWN, template_kind, 1, rows[1].by_scope);
    check(role, OWN, tenant_kind, 1, rows[2].by_scope);
    check(role, OWN, scoped_kinds, sizeof scoped_kinds / sizeof scoped_kinds[0], rows[3].by_scope);
}

static void test_sp_admin(void **state)
{
    static const char *const all[N_SCOPES] = {"AAAAA", "AAAAA", "AAAAA"};
    (void)state;
    check(RBAC_SP_ADMIN, NULL, all_kinds, sizeof all_kinds / sizeof all_kinds[0], all);
}

static void test_sp_operator(void **state)
{
    static const char *const all[N_SCOPES] = {"AFFFA", "AFFFA", "AFFFA"};
    (void)state;
    check(RBAC_SP_OPERATOR, NULL, all_kinds, sizeof all_kinds / sizeof all_kinds[0], all);
}

static void test_tenant_admin(void **state)
{
    (void)state;
    check_tenant_role(RBAC_TENANT_ADMIN, tenant_admin_rows);
}

static void test_tenant_operator(void **state)
{
    (void)state;
    check_tenant_role(RBAC_TENANT_OPERATOR, tenant_operator_rows);
}

/* A principal that is no role, or a tenant role without its tenant, sees
 * nothing scoped. */
static void test_odd_principals(void **state)
{
    struct rbac_principal none = {0, NULL};
    struct rbac_principal lost = {RBAC_TENANT_ADMIN, NULL};
    (void)state;
    for (size_t k = 0; k < sizeof all_kinds / sizeof all_kinds[0]; k++) {
        assert_int_equal(rbac_decide(&none, RBAC_READ, all_kinds[k], OWN), RBAC_HIDDEN);
    }
    assert_int_equal(rbac_decide(&lost, RBAC_READ, STORE_KIND_USER, OWN), RBAC_HIDDEN);
    assert_int_equal(rbac_decide(&lost, RBAC_READ, STORE_KIND_TENANT, OWN), RBAC_HIDDEN);
}

static void test_role_names(void **state)
{
    static const char *const names[] = {"sp_admin", "sp_operator", "tenant_admin",
                                        "tenant_operator"};
    enum rbac_role role;
    (void)state;
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(rbac_role_parse(names[i], &role), 0);
        assert_int_equal(role, (enum rbac_role)(i + 1));
        assert_string_equal(rbac_role_name(role), names[i]);
        assert_int_equal(rbac_role_is_tenant(role), i >= 2);
    }
    assert_int_equal(rbac_role_parse("admin", &role), CAIRN_EINVAL);
    assert_int_equal(rbac_role_parse("SP_ADMIN", &role), CAIRN_EINVAL);
    assert_int_equal(rbac_role_parse("", &role), CAIRN_EINVAL);
    assert_int_equal(rbac_role_parse(NULL, &role), CAIRN_EINVAL);
    assert_null(rbac_role_name((enum rbac_role)99));
    assert_string_equal(rbac_action_name(RBAC_OPERATE), "operate");
}

int test_rbac_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sp_admin),       cmocka_unit_test(test_sp_operator),
        cmocka_unit_test(test_tenant_admin),   cmocka_unit_test(test_tenant_operator),
        cmocka_unit_test(test_odd_principals), cmocka_unit_test(test_role_names),
    };
    return cmocka_run_group_tests_name("northbound rbac", tests, NULL, NULL);
}
