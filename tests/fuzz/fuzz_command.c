/*
 * libFuzzer target: the msgpack decoders of store/ (commands, results,
 * snapshot headers). Every input is copied into a buffer of exactly its size
 * so that AddressSanitizer sees any over-read. A command that decodes must
 * encode again and decode to the same fields (round trip).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static void round_trip(const struct store_command *cmd)
{
    struct store_command again;
    char err[256];
    void *out = NULL;
    size_t len = 0;
    int rv = store_command_encode(cmd, &out, &len);
    if (rv != 0) {
        /* A decoded command is always within the encoder's limits. */
        abort();
    }
    rv = store_command_decode(out, len, &again, err, sizeof err);
    if (rv != 0 || again.op != cmd->op || again.kind != cmd->kind ||
        strcmp(again.id, cmd->id) != 0 || again.body_len != cmd->body_len ||
        again.if_match != cmd->if_match || again.time_ms != cmd->time_ms) {
        abort();
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct store_command cmd;
    struct store_result res;
    uint64_t index;
    char err[256];
    uint8_t *buf = malloc(size > 0 ? size : 1);

    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);
    if (store_command_decode(buf, size, &cmd, err, sizeof err) == 0) {
        round_trip(&cmd);
    }
    (void)store_result_decode(buf, size, &res);
    (void)store_snapshot_index(buf, size, &index);
    free(buf);
    return 0;
}
