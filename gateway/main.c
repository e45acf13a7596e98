/*
 * main.c - yard-gateway: the HTTP front door of Switchyard.
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "gw.h"
#include "log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: yard-gateway [--config FILE] [--print-config]\n"
            "\n"
            "Accepts jobs over HTTP and publishes them to NATS JetStream; a job is\n"
            "answered 202 only once JetStream has stored it.\n"
            "\n"
            "Settings: built-in defaults, then FILE (or $YARD_CONFIG), then YARD_*\n"
            "environment variables. The main ones:\n"
            "  YARD_HTTP_ADDR, YARD_HTTP_PORT   where to listen (127.0.0.1:8080)\n"
            "  YARD_NATS_URL                    NATS server(s) (nats://127.0.0.1:4222)\n"
            "  YARD_PG_DSN                      PostgreSQL (job status, API keys)\n"
            "  YARD_JS_QUEUES                   served queues, comma separated (default)\n"
            "  YARD_ID_SECRET                   secret for idempotency ids (same on every gateway)\n"
            "  YARD_AUTH_DISABLED=true          no API keys: local development only\n"
            "Run with --print-config to see every setting (secrets masked).\n"
            "\n"
            "SIGTERM or SIGINT: stop accepting, answer in-flight requests, exit 0.\n");
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    int print = 0;
    yard_config_t cfg;
    yard_log_level_t level = YARD_LOG_INFO;
    gw_t *gw = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--print-config") == 0) {
            print = 1;
        } else {
            fprintf(stderr, "yard-gateway: unknown argument `%s`\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    yard_log_init("gateway", YARD_LOG_INFO);
    if (yard_config_load(&cfg, config) < 0)
        return 2;
    yard_log_parse_level(&level, cfg.log_level);
    yard_log_init("gateway", level);
    if (print) {
        yard_config_print(&cfg, stdout);
        return 0;
    }
    /* Request bodies and answers above 128 KiB get their own mappings, given
     * back to the OS when freed (glibc would otherwise raise the threshold
     * after the first free and keep a flood's bodies in its heap). */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    /* Two heaps, not one per thread that ever allocated (glibc's default is
     * up to 8 per core): the pool threads' short allocations kept each one
     * its own mostly idle heap. */
    mallopt(M_ARENA_MAX, 2);
    if (gw_create(&gw, &cfg) < 0)
        return 1;
    int rc = gw_run(gw);
    gw_destroy(gw);
    YARD_LOG_INFO(NULL, "gateway: stopped");
    return rc;
}
