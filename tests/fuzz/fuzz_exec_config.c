/*
 * fuzz_exec_config.c - libFuzzer target for the exec mappings file.
 *
 * Parses arbitrary bytes as an exec config (ops/exec.conf.example). A
 * parse either fails with an error code or gives entries whose every field
 * is set: a path, an argv starting with it, an environment list and a
 * working directory; otherwise abort().
 */
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "exec_config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        yard_log_init("fuzz", YARD_LOG_ERROR);
        yard_log_set_fd(open("/dev/null", O_WRONLY));
        quiet = 1;
    }
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    wk_exec_config_t *cfg = NULL;
    if (wk_exec_config_parse(&cfg, text, "fuzz") == 0) {
        for (size_t i = 0; i < cfg->n; i++) {
            const wk_exec_entry_t *e = &cfg->entries[i];
            if (!e->type || !e->path || !e->argv || !e->argv[0] || strcmp(e->argv[0], e->path) ||
                !e->envp || !e->dir)
                abort();
        }
        wk_exec_config_destroy(cfg);
    }
    free(text);
    return 0;
}
