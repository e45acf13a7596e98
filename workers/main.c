/*
 * main.c - yard-worker: one role (execute, schedule, notify or audit), its health and
 * metrics port, and a graceful drain on SIGTERM (app.c).
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "wk.h"

typedef struct {
    const char *role, *queues, *config;
    int port, print;
} wk_args_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: yard-worker --role ROLE [--queues a,b] [--metrics-port N] [--config FILE]\n"
            "\n"
            "Roles:\n"
            "  execute   run the jobs of the queues (default: setting js_queues): fetch in\n"
            "            batches, run handlers (noop, echo, sleep, fail, http, exec mappings),\n"
            "            record every attempt in PostgreSQL, retry with backoff, dead-letter\n"
            "  schedule  hold jobs with a future run_at and release them when due\n"
            "  notify    deliver the webhooks jobs ask for (\"notify\"), signed with\n"
            "            HMAC-SHA256 (YARD_NOTIFY_SECRET), with retries and the DLQ\n"
            "  audit     record submitted jobs as queued, and every lifecycle event in the audit log\n"
            "\n"
            "Options:\n"
            "  --queues a,b        execute: the queues to serve\n"
            "  --metrics-port N    port of /healthz, /readyz, /metrics (0: any free port,\n"
            "                      printed in the log; default 0)\n"
            "  --config FILE       settings file (`key = value`); YARD_* variables win\n"
            "  --print-config      print every setting (secrets masked) and exit\n"
            "\n"
            "Settings that matter here: YARD_NATS_URL, YARD_PG_DSN, YARD_WORKER_CONCURRENCY\n"
            "(64), YARD_WORKER_BATCH (256), YARD_WORKER_DRAIN_TIMEOUT_S (30),\n"
            "YARD_RETRY_BASE_MS (1000), YARD_RETRY_CAP_MS (300000), YARD_EXEC_CONFIG,\n"
            "YARD_EGRESS_ALLOW (CIDRs outbound calls may reach), YARD_NOTIFY_SECRET.\n"
            "\n"
            "SIGTERM: stop fetching, let running jobs finish (drain timeout), hand the\n"
            "rest back to JetStream at once, exit 0.\n");
}

/* Fills *a from argv; --help exits. Returns 0, or -1 after saying why. */
static int parse_args(wk_args_t *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(o, "--print-config")) {
            a->print = 1;
        } else if (v && !strcmp(o, "--role")) {
            a->role = argv[++i];
        } else if (v && !strcmp(o, "--queues")) {
            a->queues = argv[++i];
        } else if (v && !strcmp(o, "--config")) {
            a->config = argv[++i];
        } else if (v && !strcmp(o, "--metrics-port")) {
            a->port = atoi(argv[++i]);
        } else {
            fprintf(stderr, "yard-worker: unknown or incomplete argument `%s`\n", o);
            return -1;
        }
    }
    if (a->print || wk_role_find(a->role))
        return 0;
    fprintf(stderr, "yard-worker: --role must be execute, schedule, notify or audit\n");
    return -1;
}

int main(int argc, char **argv)
{
    wk_args_t a = {0};
    yard_config_t cfg;
    yard_log_level_t level = YARD_LOG_INFO;
    wk_app_t *app = NULL;
    if (parse_args(&a, argc, argv) < 0) {
        usage(stderr);
        return 2;
    }
    yard_log_init("worker", YARD_LOG_INFO);
    if (yard_config_load(&cfg, a.config) < 0)
        return 2;
    if (a.queues && yard_config_set(&cfg, "js_queues", a.queues) < 0) {
        fprintf(stderr, "yard-worker: --queues is too long\n");
        return 2;
    }
    if (a.print) {
        yard_config_print(&cfg, stdout);
        return 0;
    }
    yard_log_parse_level(&level, cfg.log_level);
    char component[32];
    snprintf(component, sizeof component, "worker-%s", a.role);
    yard_log_init(component, level);
    /* Two heaps, not one per thread that ever allocated (glibc's default is
     * up to 8 per core): 64 handler threads would each keep their own. */
    mallopt(M_ARENA_MAX, 2);
    int rc = wk_app_create(&app, &cfg, wk_role_find(a.role), a.port);
    /* The app holds its keyring now: no copy of the private keys stays here. */
    explicit_bzero(cfg.secrets_private_keys, sizeof cfg.secrets_private_keys);
    if (rc < 0)
        return rc == YARD_ECONFIG ? 2 : 1;
    rc = wk_app_run(app);
    wk_app_destroy(app);
    YARD_LOG_INFO(NULL, "worker: stopped");
    return rc;
}
