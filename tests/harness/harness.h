/*
 * harness.h - real nats-server and PostgreSQL for tests.
 *
 * yt_env_create starts what the flags ask for in a temporary folder on free
 * loopback ports: nats-server with JetStream, and/or a throwaway PostgreSQL
 * cluster (initdb through `runuser -u postgres` when running as root) with
 * the migrations applied. Every PID goes into <dir>/<name>.pid, so
 * tests/run.sh can stop whatever a crashed or timed-out test left behind.
 * yt_env_destroy stops both by PID and removes the folder.
 *
 * The folder is $YARD_TEST_DIR when set (tests/run.sh sets one per test
 * binary), otherwise a new one under /tmp.
 */
#ifndef YARD_TEST_HARNESS_H
#define YARD_TEST_HARNESS_H

#include <sys/types.h>

enum {
    YT_NATS = 1,    /* start nats-server with JetStream */
    YT_PG = 2,      /* start PostgreSQL and create database "yard" */
    YT_MIGRATE = 4, /* with YT_PG: apply schemas/migrations */
    YT_PG_DURABLE = 8, /* with YT_PG: keep fsync and synchronous commit on (benchmarks) */
    /* With YT_NATS: nats-server keeps its default max_payload (1 MiB) instead
     * of YT_NATS_MAX_PAYLOAD. Read by every yt_nats_start, so a test may set
     * or clear it in env->flags and restart the server. */
    YT_NATS_DEFAULT_PAYLOAD = 16,
};

/* The max_payload of the tests' nats-server (as in ops/cluster.sh): a job of
 * the largest body the gateway accepts fits, with its envelope and headers. */
#define YT_NATS_MAX_PAYLOAD (4 * 1024 * 1024)

typedef struct {
    char dir[256];       /* the test's temporary folder */
    /* NATS */
    pid_t nats_pid;
    int nats_port;
    int nats_mon_port;
    char nats_url[256];  /* nats://127.0.0.1:<port> (or the nodes of a cluster, comma separated) */
    char nats_store[300];
    /* PostgreSQL */
    pid_t pg_pid;        /* the postmaster */
    int pg_port;
    char pg_data[300];
    char pg_dsn[512];    /* host=127.0.0.1 port=<port> dbname=yard user=postgres */
    unsigned flags;
} yt_env_t;

/* Starts the servers flags names and waits until they answer. Returns 0 and
 * sets *out (free with yt_env_destroy), or a negative YARD_E* code after
 * printing why to stderr and stopping whatever had started. */
int yt_env_create(yt_env_t **out, unsigned flags);

/* Stops every server by PID (SIGTERM, then SIGKILL after 5 s), removes the
 * folder unless YARD_TEST_KEEP is set, frees env. NULL is a no-op. */
void yt_env_destroy(yt_env_t *env);

/* Stops nats-server (SIGTERM and wait); its store is kept. Returns 0 or < 0. */
int yt_nats_stop(yt_env_t *env);

/* Starts nats-server again on the same port with the same store (and the
 * max_payload env->flags asks for now, plus the lines of the environment
 * variable YT_NATS_EXTRA_CONF, if set) and waits until JetStream answers.
 * Returns 0 or < 0. */
int yt_nats_start(yt_env_t *env);

/* Stops / starts PostgreSQL on the same port and data folder. */
int yt_pg_stop(yt_env_t *env);
int yt_pg_start(yt_env_t *env);

/* Runs a program (argv[0] found on PATH) in the background with stdout and
 * stderr appended to <dir>/<name>.log, records its PID in <dir>/<name>.pid.
 * extra_env (NULL-terminated "K=V" list, may be NULL) is added to the
 * environment. Returns the pid, or -1 after printing why. */
pid_t yt_spawn(yt_env_t *env, const char *name, char *const argv[], char *const extra_env[]);

/* Runs the built program prog (in yt_bin_dir(), e.g. "yardctl") with args
 * (NULL-terminated, at most 14) to completion, with YARD_PG_DSN set to the
 * test database, YARD_CONFIG unset and YARD_LOG_LEVEL=info. What it printed
 * goes to out and err (caps, NUL-terminated; the files are removed). Returns
 * its exit status, or -1 if a signal ended it or it could not run. */
int yt_run_program(yt_env_t *env, const char *prog, const char *const *args, char *out,
                   size_t outcap, char *err, size_t errcap);

/* Sends sig to pid, waits up to timeout_ms for it to exit (reaping it).
 * Returns its wait status, or -1 if it is still running. */
int yt_kill_wait(pid_t pid, int sig, int timeout_ms);

/* Freezes pid with SIGSTOP and returns once the kernel reports it stopped
 * (kill returns before that). Returns 0, or -1 if it did not stop in 2 s. */
int yt_freeze(pid_t pid);

/* Prints the last 2 KiB of <dir>/<name>.log to stderr, to explain a
 * failure. */
void yt_log_tail(const yt_env_t *env, const char *name);

/* Writes text to the file name (relative to env's folder, or an absolute
 * path) and gives it mode. Returns 0, or -1 after printing why. */
int yt_write_file(const yt_env_t *env, const char *name, const char *text, mode_t mode);

/* Milliseconds on a monotonic clock. */
long long yt_now_ms(void);

/* Returns a free TCP port on 127.0.0.1 (bound then released; may race). */
int yt_free_port(void);

/* The folder that holds the repository (for schemas/, bin/): the
 * $YARD_SRC_DIR variable or the current working directory. */
const char *yt_src_dir(void);

/* The folder of the built programs: $YARD_BIN or <src>/bin. */
const char *yt_bin_dir(void);

#endif
