/*
 * main.c - yardctl, the operator's command line: global options, the table
 * of subcommands, help, and dispatch.
 *
 *   yardctl [--config FILE] [--json] COMMAND [ARGS...]
 *   yardctl [--config FILE] --print-config
 *   yardctl --help | yardctl help COMMAND | yardctl COMMAND [SUB] --help
 *
 * Exit status (ctl.h): 0 done, 1 failed (the JSON log on stderr says why),
 * 2 bad command line, 3 not found / nothing matched, 4 partly done.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "err.h"
#include "log.h"

/* Every subcommand, in the order `yardctl --help` lists them. */
static const ctl_command_t ctl_commands[] = {
    {"migrate", "apply the database migrations built into yardctl", ctl_migrate_help,
     ctl_cmd_migrate},
    {"keys", "create, list and revoke API keys", ctl_keys_help, ctl_cmd_keys},
    {"dlq", "list, show, replay and purge dead jobs", ctl_dlq_help, ctl_cmd_dlq},
    {"jobs", "list, show, cancel and retry jobs", ctl_jobs_help, ctl_cmd_jobs},
    {"queues", "pending, in flight, dead and oldest wait per queue", ctl_queues_help,
     ctl_cmd_queues},
    {"cluster", "JetStream streams, consumers, servers and lag", ctl_cluster_help,
     ctl_cmd_cluster},
    {"prune", "delete finished jobs older than the retention", ctl_prune_help, ctl_cmd_prune},
    {"audit", "verify and follow the hash-chained audit log", ctl_audit_help, ctl_cmd_audit},
    {"schedules", "list, create, delete, pause and resume cron schedules", ctl_schedules_help,
     ctl_cmd_schedules},
    {"secrets", "make a key pair for jobs' sealed secrets", ctl_secrets_help, ctl_cmd_secrets},
};
#define CTL_NCOMMANDS (sizeof ctl_commands / sizeof ctl_commands[0])

static void ctl_print_usage(FILE *out)
{
    fprintf(out,
            "usage: yardctl [--config FILE] [--json] COMMAND [ARGS...]\n"
            "       yardctl [--config FILE] --print-config\n"
            "\n"
            "Operates a Switchyard cluster. Settings come from built-in defaults, then\n"
            "FILE (or $YARD_CONFIG), then YARD_* environment variables (YARD_PG_DSN,\n"
            "YARD_NATS_URL, ...).\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < CTL_NCOMMANDS; i++)
        fprintf(out, "  %-12s %s\n", ctl_commands[i].name, ctl_commands[i].summary);
    fprintf(out, "  %-12s %s\n", "help", "show a command's usage and options");
    fprintf(out,
            "\n"
            "options:\n"
            "  --config FILE   read settings from FILE (`key = value` lines)\n"
            "  --print-config  print every setting (secrets masked) and exit\n"
            "  --json          print results as JSON (for scripts) instead of tables;\n"
            "                  also accepted after the command\n"
            "  -h, --help      show this help\n"
            "\n"
            "Output: tables for people; text from jobs and dead letters is printed\n"
            "with terminal control characters removed. Errors go to stderr as JSON log\n"
            "lines.\n"
            "\n"
            "exit status:\n"
            "  0  done\n"
            "  1  failed (the log on stderr says why)\n"
            "  2  bad command line\n"
            "  3  not found, or nothing matched (a job id, a DLQ sequence)\n"
            "  4  partly done: some items failed or were missing (see the output)\n"
            "\n"
            "Run 'yardctl help COMMAND' or 'yardctl COMMAND --help' for a command's\n"
            "options.\n");
}

/* Edit distance between a and b (short words), for "did you mean". */
static size_t ctl_distance(const char *a, const char *b)
{
    size_t row[33];
    size_t la = strlen(a), lb = strlen(b);

    if (la > 32 || lb > 32)
        return (size_t)-1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The command named name, or NULL after telling the user on stderr, with the
 * closest name (a typo or a prefix) as a hint. */
static const ctl_command_t *ctl_find(const char *name)
{
    const ctl_command_t *near = NULL;
    size_t best = 3; /* suggest only names at most 2 edits away */

    for (size_t i = 0; i < CTL_NCOMMANDS; i++) {
        const ctl_command_t *c = &ctl_commands[i];
        if (strcmp(c->name, name) == 0)
            return c;
        int prefix = name[0] && strncmp(c->name, name, strlen(name)) == 0;
        size_t d = prefix ? 0 : ctl_distance(name, c->name);
        if (d < best) {
            best = d;
            near = c;
        }
    }
    fprintf(stderr, "yardctl: unknown command '%s'.", name);
    if (near)
        fprintf(stderr, " Did you mean '%s'?", near->name);
    fprintf(stderr, "\nRun 'yardctl --help' for the list of commands.\n");
    return NULL;
}

/* Takes --json out of a subcommand's arguments (up to a "--"); returns the
 * new argc and sets *json when it was there. */
static int ctl_take_json(int argc, char **argv, int *json)
{
    int n = 0, i = 0;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--json") == 0)
            *json = 1;
        else
            argv[n++] = argv[i];
    }
    for (; i < argc; i++)
        argv[n++] = argv[i];
    argv[n] = NULL;
    return n;
}

/* Nonzero when a subcommand's arguments ask for help (before a "--"). */
static int ctl_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

/* `yardctl help [COMMAND]`. */
static int ctl_help(int argc, char **argv)
{
    const ctl_command_t *c;

    if (argc < 2) {
        ctl_print_usage(stdout);
        return CTL_EXIT_OK;
    }
    if (strcmp(argv[1], "help") == 0) {
        printf("usage: yardctl help [COMMAND]\n\nShows the usage and options of COMMAND, "
               "or the list of commands.\n");
        return CTL_EXIT_OK;
    }
    c = ctl_find(argv[1]);
    if (!c)
        return CTL_EXIT_USAGE;
    fputs(c->help, stdout);
    return CTL_EXIT_OK;
}

static int ctl_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int main(int argc, char **argv)
{
    yard_config_t cfg;
    yard_log_level_t level;
    const ctl_command_t *c;
    const char *config_path = NULL;
    int i = 1, print = 0, json = 0;

    yard_log_init("yardctl", YARD_LOG_INFO);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (ctl_is_help(argv[i])) {
            ctl_print_usage(stdout);
            return CTL_EXIT_OK;
        } else if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) {
            if (++i == argc) {
                fprintf(stderr, "yardctl: %s needs a file name\n", argv[i - 1]);
                return CTL_EXIT_USAGE;
            }
            config_path = argv[i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--print-config") == 0) {
            print = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else {
            fprintf(stderr, "yardctl: unknown option '%s'.\nRun 'yardctl --help' for usage.\n",
                    argv[i]);
            return CTL_EXIT_USAGE;
        }
    }
    if (print) {
        if (i < argc) {
            fprintf(stderr, "yardctl: --print-config takes no command (got '%s').\n"
                            "Run 'yardctl --help' for usage.\n", argv[i]);
            return CTL_EXIT_USAGE;
        }
        if (yard_config_load(&cfg, config_path) != 0)
            return CTL_EXIT_FAIL; /* logged by the config loader */
        yard_config_print(&cfg, stdout);
        return CTL_EXIT_OK;
    }
    if (i == argc) {
        ctl_print_usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0)
        return ctl_help(argc - i, argv + i);
    c = ctl_find(argv[i]);
    if (!c)
        return CTL_EXIT_USAGE;
    if (ctl_wants_help(argc - i, argv + i)) {
        fputs(c->help, stdout);
        return CTL_EXIT_OK;
    }
    argc = i + ctl_take_json(argc - i, argv + i, &json);
    ctl_out_init(json);
    if (yard_config_load(&cfg, config_path) != 0)
        return CTL_EXIT_FAIL; /* logged by the config loader */
    if (yard_log_parse_level(&level, cfg.log_level) == 0)
        yard_log_init("yardctl", level);
    return c->run(&cfg, argc - i, argv + i);
}
