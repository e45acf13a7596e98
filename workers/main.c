/*
 * main.c - yard-worker (placeholder until the runtime lands): validates its
 * arguments and configuration, ensures the JetStream topology, exits.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "js.h"
#include "log.h"

int main(int argc, char **argv)
{
    yard_config_t cfg;
    yard_js_t *js = NULL;
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: yard-worker --role execute|schedule|notify|audit [--queues a,b]\n");
        return 0;
    }
    yard_log_init("worker", YARD_LOG_INFO);
    if (yard_config_load(&cfg, NULL) < 0)
        return 2;
    if (yard_js_connect(&js, &cfg, "yard-worker") < 0)
        return 1;
    const char *q[] = {"default"};
    int rc = yard_js_ensure_topology(js, &cfg, q, 1, NULL);
    yard_js_destroy(js, 1000);
    return rc < 0 ? 1 : 0;
}
