/*
 * The northbound unit tests: one executable (ctest: unit.northbound) that
 * runs every group and fails if any test failed.
 */
#include <signal.h>

#include "cairn.h"
#include "tests.h"

int main(void)
{
    int failed = 0;
    /* A server may close a connection the test client still writes to. */
    signal(SIGPIPE, SIG_IGN);
    cairn_log_setup(CAIRN_LOG_ERROR, "test=northbound");
    failed += test_helpers_run();
    failed += test_rbac_run();
    failed += test_auth_run();
    failed += test_http_run();
    failed += test_users_run();
    failed += test_events_run();
    failed += test_ondemand_run();
    return failed == 0 ? 0 : 1;
}
