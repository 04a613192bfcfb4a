/*
 * libFuzzer target: cairnd's configuration parser. Any text must either
 * parse or fail with a message; never crash, hang or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config cfg;
    char err[CAIRN_ERRMSG_SIZE];
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    if (config_parse("fuzz.conf", text, &cfg, err, sizeof err) != 0 && err[0] == '\0') {
        abort(); /* a failure always says why */
    }
    free(text);
    return 0;
}
