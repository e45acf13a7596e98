/*
 * exec_config.h - the `exec` handlers: job types that ops map to programs.
 *
 * A file (config key `exec_config`) maps each job type to a program; the
 * worker registers one handler per type. Producers choose a type, never a
 * command. The file is INI-like (full example: ops/exec.conf.example):
 *
 *   # whole-line comments start with # or ;
 *   [resize-image]
 *   path = /usr/local/bin/resize
 *   args = --quality 80
 *   env = LANG, TZ, MODE=fast
 *   timeout_s = 60
 *
 * A section header names a job type (1-64 of A-Z a-z 0-9 . _ : -). Keys:
 *   path            required; absolute path of an executable file
 *   args            arguments, split on blanks (no quoting, no shell)
 *   env             comma-separated NAMEs passed through from the worker's
 *                   environment as it is at load, or NAME=value constants
 *   dir             working directory (default /)
 *   timeout_s       caps the job's own timeout (default 0 = job's only)
 *   cpu_s           RLIMIT_CPU seconds (default 300; 0 = none)
 *   memory_mb       RLIMIT_AS (default 1024; 0 = none)
 *   max_file_mb     RLIMIT_FSIZE (default 64; 0 = none)
 *   max_open_files  RLIMIT_NOFILE (default 64)
 *   max_output_kb   stdout cap, more fails the job (default 1024)
 *   term_grace_ms   SIGTERM -> SIGKILL delay on timeout/cancel (default 2000)
 *   max_processes   RLIMIT_NPROC: processes (and threads) the program's user
 *                   may have (default 64; 0 = none). The kernel does not apply
 *                   it to root: give `user` when the worker runs as root.
 *   user            run the program as this user (name or uid; its primary
 *                   group, no supplementary groups); only a root worker may
 * A value runs to the end of its line (a # inside it is kept).
 *
 * The program gets the payload on stdin, its environment cleared except the
 * `env` entries and YARD_JOB_ID, YARD_JOB_TYPE, YARD_JOB_QUEUE,
 * YARD_JOB_ATTEMPT, YARD_JOB_MAX_ATTEMPTS; it prints its JSON result on
 * stdout and exits 0 (OK), 75 = EX_TEMPFAIL (RETRY) or anything else (FAIL).
 */
#ifndef WK_EXEC_CONFIG_H
#define WK_EXEC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "handler.h"

/* One mapped type. Read-only after loading; shared by handler threads. */
typedef struct wk_exec_entry {
    char *type;             /* the job type (the section name) */
    char *path;             /* absolute path of the program */
    char **argv;            /* argv[0] = path, then args; NULL-terminated */
    char **envp;            /* "NAME=value" for the env entries present; NULL-terminated */
    size_t envc;            /* entries in envp */
    char *dir;              /* working directory */
    int64_t timeout_s;      /* 0 = the job's timeout only */
    int64_t cpu_s;          /* 0 = no limit */
    int64_t memory_mb;      /* 0 = no limit */
    int64_t max_file_mb;    /* 0 = no limit */
    int64_t max_open_files;
    int64_t max_output_kb;
    int64_t term_grace_ms;
    int64_t max_processes;  /* RLIMIT_NPROC of the program's user; 0 = no limit */
    int64_t uid, gid;       /* the user the program runs as; -1 = the worker's */
    int line;               /* line of the [type] header, for messages */
} wk_exec_entry_t;

typedef struct wk_exec_config {
    wk_exec_entry_t *entries;
    size_t n;
} wk_exec_config_t;

/* Parses the mappings in text (NUL-terminated); name is the file name used
 * in messages. Returns 0 and sets *out (free with wk_exec_config_destroy),
 * YARD_ECONFIG after logging "exec config <name>:<line>: <problem>" for the
 * first problem, or YARD_ENOMEM. Reads the environment for `env` names and
 * checks that every path is an executable file. */
int wk_exec_config_parse(wk_exec_config_t **out, const char *text, const char *name);

/* Reads the file at path (at most 1 MiB) and parses it as above. Returns 0
 * and sets *out, YARD_EIO (logged) if it cannot be read, or a parse error. */
int wk_exec_config_load(wk_exec_config_t **out, const char *path);

/* Frees c. NULL is a no-op. */
void wk_exec_config_destroy(wk_exec_config_t *c);

/* Loads the file at path and registers wk_exec_handler for each type in it;
 * r owns the loaded mappings. Returns 0, a load error, YARD_EEXIST (logged
 * with file and line) when a type is already registered, or YARD_ENOMEM. */
int wk_exec_register(wk_registry_t *r, const char *path);

/* Runs the program of the mapping ud (a const wk_exec_entry_t *) for job.
 * Runs it in its own process group with no shell, under the entry's limits;
 * on timeout or cancellation the whole group gets SIGTERM, then SIGKILL
 * after term_grace_ms; when the program ends, anything it left running in
 * its group is killed. Blocks SIGPIPE on the calling thread while it runs
 * (a pending SIGPIPE it caused is consumed); the process-wide disposition
 * is left alone. Children start with default signal dispositions and an
 * empty signal mask. Uses fork: call only where forking is safe (every
 * other thread's locks are not taken across the fork: the child calls only
 * async-signal-safe functions before execve). */
void wk_exec_handler(const wk_job_t *job, wk_result_t *res, void *ud);

#endif
