/*
 * ctl.h - yardctl's subcommands.
 *
 * A subcommand is a function and a help text, listed in the table in
 * ops/main.c, the one place where subcommands are registered: to add one,
 * write ops/ctl_<name>.c with its ctl_<name>_help and ctl_cmd_<name>, declare
 * both here, and add a row to the table.
 *
 * main loads the configuration (defaults, --config FILE, YARD_* variables)
 * and sets up logging before it calls a subcommand, and answers
 * `yardctl help NAME` and `yardctl NAME --help` itself. A subcommand gets
 * argv[0] = its name and argv[1..argc-1] = its arguments (main has taken
 * --json out of them: ask ctl_out_json()); it prints results on stdout
 * through ctl_out.h (tables, or JSON with --json; text from the cluster
 * cleaned of control characters), leaves errors to the JSON log on stderr,
 * and returns the exit status of the process.
 */
#ifndef YARD_CTL_H
#define YARD_CTL_H

#include <stddef.h>

#include "config.h"
#include "ctl_out.h"
#include "events.h"
#include "js.h"

enum {
    CTL_EXIT_OK = 0,    /* done */
    CTL_EXIT_FAIL = 1,  /* the operation failed; the log says why */
    CTL_EXIT_USAGE = 2, /* bad command line */
    CTL_EXIT_NOTFOUND = 3, /* what was named does not exist, or nothing matched */
    CTL_EXIT_PARTIAL = 4   /* some items were done, others failed or were missing */
};

/* A subcommand: returns a CTL_EXIT_* status. cfg is read-only. */
typedef int (*ctl_cmd_fn)(const yard_config_t *cfg, int argc, char **argv);

typedef struct {
    const char *name;    /* as typed: "migrate" */
    const char *summary; /* one line for `yardctl --help` */
    const char *help;    /* usage and options for `yardctl help NAME` */
    ctl_cmd_fn run;
} ctl_command_t;

/* Prints "yardctl CMD: <message>" and a pointer to `yardctl help CMD` on
 * stderr, and returns CTL_EXIT_USAGE, for a subcommand's bad arguments. */
int ctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* migrate: applies the embedded SQL migrations (ctl_migrate.c). */
extern const char ctl_migrate_help[];
int ctl_cmd_migrate(const yard_config_t *cfg, int argc, char **argv);

/* dlq: lists, shows, replays and purges dead jobs (ctl_dlq.c). */
extern const char ctl_dlq_help[];
int ctl_cmd_dlq(const yard_config_t *cfg, int argc, char **argv);

/* keys: creates, lists and revokes the gateway's API keys (ctl_keys.c). */
extern const char ctl_keys_help[];
int ctl_cmd_keys(const yard_config_t *cfg, int argc, char **argv);

/* jobs: lists, shows, cancels and retries jobs (ctl_jobs.c). */
extern const char ctl_jobs_help[];
int ctl_cmd_jobs(const yard_config_t *cfg, int argc, char **argv);

/* queues: depth, in flight, dead and oldest wait per queue (ctl_queues.c). */
extern const char ctl_queues_help[];
int ctl_cmd_queues(const yard_config_t *cfg, int argc, char **argv);

/* cluster: JetStream streams, consumers and servers (ctl_cluster.c). */
extern const char ctl_cluster_help[];
int ctl_cmd_cluster(const yard_config_t *cfg, int argc, char **argv);

/* prune: deletes finished jobs past retention (ctl_prune.c). */
extern const char ctl_prune_help[];
int ctl_cmd_prune(const yard_config_t *cfg, int argc, char **argv);

/* Options shared by subcommands' parsers: matches argv[*i] against opt
 * ("--queue") as "--queue V" or "--queue=V". Returns 1 and sets *value
 * (advancing *i past a separate value), 0 when argv[*i] is something else,
 * -1 when the value is missing. */
int ctl_opt(const char **value, int argc, char **argv, int *i, const char *opt);

/* The exit status for an error code of libyard: CTL_EXIT_NOTFOUND for
 * YARD_ENOTFOUND, else CTL_EXIT_FAIL (0 stays CTL_EXIT_OK). */
int ctl_exit_of(int rc);
/* audit: verifies and follows the audit log (ctl_audit.c). */
extern const char ctl_audit_help[];
int ctl_cmd_audit(const yard_config_t *cfg, int argc, char **argv);

/* ---- operator events (ctl_events.c) ------------------------------------ */

/* Writes the actor of this command's events: "yardctl:<login name>" (as a
 * DLQ replay records it). */
void ctl_operator(char *out, size_t cap);

/* Publishes e on js, or on a connection of its own (at most a few seconds
 * to connect) when js is NULL. Returns 0, or an error after a warning that
 * the action is done but its event not recorded. */
int ctl_event_publish(const yard_config_t *cfg, yard_js_t *js, const yard_event_t *e);

/* schedules: cron schedules (ctl_schedules.c). */
extern const char ctl_schedules_help[];
int ctl_cmd_schedules(const yard_config_t *cfg, int argc, char **argv);

/* secrets: key pairs for jobs' sealed secrets (ctl_secrets.c). */
extern const char ctl_secrets_help[];
int ctl_cmd_secrets(const yard_config_t *cfg, int argc, char **argv);

#endif
