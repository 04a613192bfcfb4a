/* Unit tests of node/targets.c: a service targets a device named in its
 * device_ids, or any device of a site named in its site_ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "targets.h"

static void test_devices_and_sites(void **state)
{
    json_t *t = json_pack("{s:[s, s], s:[s]}", "device_ids", "d1", "d2", "site_ids", "s1");
    (void)state;
    assert_true(targets_match(t, "d1", NULL));
    assert_true(targets_match(t, "d2", "s9"));
    /* Any device of a targeted site, named or not. */
    assert_true(targets_match(t, "d7", "s1"));
    assert_false(targets_match(t, "d7", "s2"));
    assert_false(targets_match(t, "d7", NULL));
    /* A device id is never taken for a site id, nor the reverse. */
    assert_false(targets_match(t, "s1", "d1"));
    json_decref(t);
}

static void test_partial_or_missing(void **state)
{
    json_t *sites = json_pack("{s:[s]}", "site_ids", "s1");
    json_t *devices = json_pack("{s:[s]}", "device_ids", "d1");
    json_t *odd = json_pack("{s:[i, n], s:s}", "device_ids", 1, "site_ids", "s1");
    (void)state;
    assert_true(targets_match(sites, "d1", "s1"));
    assert_false(targets_match(sites, "d1", NULL));
    assert_true(targets_match(devices, "d1", "s1"));
    assert_false(targets_match(devices, "d2", "s1"));
    /* Whatever a stored body holds, nothing but strings in arrays match. */
    assert_false(targets_match(odd, "d1", "s1"));
    assert_false(targets_match(NULL, "d1", "s1"));
    json_decref(sites);
    json_decref(devices);
    json_decref(odd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devices_and_sites),
        cmocka_unit_test(test_partial_or_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
