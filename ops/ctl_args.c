/*
 * ctl_args.c - what every yardctl subcommand's argument parser shares
 * (ctl.h): options with values, usage errors, exit statuses of errors.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "err.h"

int ctl_opt(const char **value, int argc, char **argv, int *i, const char *opt)
{
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *value = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

int ctl_exit_of(int rc)
{
    return rc == 0 ? CTL_EXIT_OK : rc == YARD_ENOTFOUND ? CTL_EXIT_NOTFOUND : CTL_EXIT_FAIL;
}

int ctl_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "yardctl %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'yardctl help %s' for its usage.\n", cmd);
    return CTL_EXIT_USAGE;
}

