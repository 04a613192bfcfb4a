/*
 * Unit tests of store/: one executable running the codec, apply and
 * snapshot groups. Each test that needs a store gets its own temporary
 * directory, removed afterwards.
 */
#include "helpers.h"

int main(void)
{
    int failed = 0;
    /* Expected warnings (recovery, corrupt snapshots) stay out of the
     * test output. */
    cairn_log_setup(CAIRN_LOG_ERROR, "test=store");
    failed += run_codec_tests();
    failed += run_apply_tests();
    failed += run_snapshot_tests();
    failed += run_tree_tests();
    failed += run_log_tests();
    return failed != 0;
}
