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
 * argv[0] = its name and argv[1..argc-1] = its arguments; it prints results
 * on stdout, leaves errors to the JSON log on stderr, and returns the exit
 * status of the process.
 */
#ifndef YARD_CTL_H
#define YARD_CTL_H

#include "config.h"

enum {
    CTL_EXIT_OK = 0,    /* done */
    CTL_EXIT_FAIL = 1,  /* the operation failed; the log says why */
    CTL_EXIT_USAGE = 2  /* bad command line */
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

/* dlq: lists and replays dead jobs (ctl_dlq.c). */
extern const char ctl_dlq_help[];
int ctl_cmd_dlq(const yard_config_t *cfg, int argc, char **argv);

/* keys: creates, lists and revokes the gateway's API keys (ctl_keys.c). */
extern const char ctl_keys_help[];
int ctl_cmd_keys(const yard_config_t *cfg, int argc, char **argv);

/* schedules: cron schedules (ctl_schedules.c). */
extern const char ctl_schedules_help[];
int ctl_cmd_schedules(const yard_config_t *cfg, int argc, char **argv);

#endif
