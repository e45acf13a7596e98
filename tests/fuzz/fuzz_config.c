/*
 * fuzz_config.c - libFuzzer target for configuration files.
 *
 * Feeds arbitrary bytes as a `key = value` file to yard_config_load_stream
 * over the defaults, then validates and prints the result (secrets masked).
 * Whatever the file says, loading must either fail with an error code or
 * leave a configuration that prints; crashes, out-of-bounds accesses and
 * undefined behaviour are caught by the sanitizers.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    static FILE *sink;
    yard_config_t cfg;
    if (!quiet) {
        yard_log_init("fuzz", YARD_LOG_ERROR);
        yard_log_set_fd(open("/dev/null", O_WRONLY));
        sink = fopen("/dev/null", "w");
        quiet = 1;
    }
    if (!size)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    yard_config_defaults(&cfg);
    int rc = yard_config_load_stream(&cfg, f, "fuzz");
    fclose(f);
    if (rc == 0 && yard_config_validate(&cfg) == 0 && sink)
        yard_config_print(&cfg, sink);
    return 0;
}
