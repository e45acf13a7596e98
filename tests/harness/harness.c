/*
 * harness.c - starts and stops real nats-server and PostgreSQL for tests.
 *
 * Servers run as children of the test process, in the test's folder, on
 * loopback. PostgreSQL refuses to run as root, so when we are root its
 * programs run as the `postgres` user (setuid in the child, like runuser).
 * Every child's PID is written to <dir>/<name>.pid so that tests/run.sh can
 * stop leftovers of a test that crashed or timed out.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db.h"
#include "err.h"
#include "harness.h"
#include "migrate.h"

#define PG_BIN "/usr/lib/postgresql/15/bin"
#define START_TIMEOUT_MS 30000

static void yt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void yt_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("harness: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

long long yt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void yt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

const char *yt_src_dir(void)
{
    static char cwd[512];
    const char *s = getenv("YARD_SRC_DIR");
    if (s && *s)
        return s;
    if (!cwd[0] && !getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, ".");
    return cwd;
}

const char *yt_bin_dir(void)
{
    static char bin[600];
    const char *s = getenv("YARD_BIN");
    if (s && *s)
        return s;
    snprintf(bin, sizeof bin, "%s/bin", yt_src_dir());
    return bin;
}

int yt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int yt_write_file(const yt_env_t *env, const char *name, const char *text, mode_t mode)
{
    char path[600];
    if (name[0] == '/')
        snprintf(path, sizeof path, "%s", name);
    else
        snprintf(path, sizeof path, "%s/%s", env->dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        yt_fail("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    int ok = fputs(text, f) >= 0;
    ok &= fclose(f) == 0;
    if (!ok || chmod(path, mode) != 0) {
        yt_fail("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int yt_kill_wait(pid_t pid, int sig, int timeout_ms)
{
    int status;
    if (pid <= 0)
        return -1;
    kill(pid, sig);
    long long deadline = yt_now_ms() + timeout_ms;
    do {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno == ECHILD)
            return 0; /* not our child, or already reaped */
        yt_sleep_ms(10);
    } while (yt_now_ms() < deadline);
    return -1;
}

/* The state letter in a /proc/.../stat file ('R', 'S', 'T', ...), or 0. */
static char yt_proc_state(const char *path)
{
    char buf[512];
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* Nonzero when every thread of pid is stopped. */
static int yt_all_threads_stopped(pid_t pid)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    struct dirent *e;
    int stopped = d != NULL;
    while (d && stopped && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char stat[128];
        snprintf(stat, sizeof stat, "/proc/%d/task/%.20s/stat", (int)pid, e->d_name);
        char st = yt_proc_state(stat);
        stopped = st == 'T' || st == 't';
    }
    if (d)
        closedir(d);
    return stopped;
}

int yt_freeze(pid_t pid)
{
    kill(pid, SIGSTOP);
    long long deadline = yt_now_ms() + 2000;
    while (yt_now_ms() < deadline) {
        if (yt_all_threads_stopped(pid))
            return 0;
        yt_sleep_ms(1);
    }
    return -1;
}

static void yt_write_pid(const yt_env_t *env, const char *name, pid_t pid)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.pid", env->dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%d\n", (int)pid);
        fclose(f);
    }
}

static void yt_remove_pid(const yt_env_t *env, const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.pid", env->dir, name);
    unlink(path);
}

/* Child side of a spawn: new process group, output to the log, optional
 * drop to the postgres user, extra environment, exec. Never returns. */
static void yt_child_exec(const char *log, int as_postgres, char *const argv[],
                          char *const extra_env[], pid_t parent)
{
    setpgid(0, 0);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2(devnull, 0);
        close(devnull);
    }
    if (as_postgres && geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || initgroups("postgres", pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
            setuid(pw->pw_uid) != 0) {
            fprintf(stderr, "harness: cannot become user postgres: %s\n", strerror(errno));
            _exit(126);
        }
    }
    /* A test run by hand (not by tests/run.sh) that crashes takes its servers
     * with it. Spawns come from the test's main thread, whose exit is the
     * test's. Set after the user change, which would clear it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    for (; extra_env && *extra_env; extra_env++)
        putenv(*extra_env);
    execvp(argv[0], argv);
    fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static pid_t yt_spawn_as(yt_env_t *env, const char *name, int as_postgres, char *const argv[],
                         char *const extra_env[])
{
    char log[400];
    snprintf(log, sizeof log, "%s/%s.log", env->dir, name);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        yt_fail("fork for %s: %s", name, strerror(errno));
        return -1;
    }
    if (pid == 0)
        yt_child_exec(log, as_postgres, argv, extra_env, parent);
    setpgid(pid, pid);
    yt_write_pid(env, name, pid);
    return pid;
}

pid_t yt_spawn(yt_env_t *env, const char *name, char *const argv[], char *const extra_env[])
{
    return yt_spawn_as(env, name, 0, argv, extra_env);
}

/* Runs argv to completion (as postgres if asked); returns its exit code or -1. */
static int yt_run(yt_env_t *env, const char *name, int as_postgres, char *const argv[])
{
    pid_t pid = yt_spawn_as(env, name, as_postgres, argv, NULL);
    int status;
    if (pid < 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    yt_remove_pid(env, name);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Reads a file into buf (cap bytes), NUL-terminated, and removes it. */
static void yt_slurp(char *buf, size_t cap, const char *path)
{
    FILE *f = fopen(path, "r");
    size_t n = f && cap ? fread(buf, 1, cap - 1, f) : 0;
    if (cap)
        buf[n] = '\0';
    if (f)
        fclose(f);
    unlink(path);
}

int yt_run_program(yt_env_t *env, const char *prog, const char *const *args, char *out,
                   size_t outcap, char *err, size_t errcap)
{
    char bin[700], out_path[400], err_path[400];
    char *argv[16];
    int status, n = 0;
    snprintf(bin, sizeof bin, "%s/%s", yt_bin_dir(), prog);
    if (access(bin, X_OK) != 0) {
        yt_fail("no program at %s (build it, or set YARD_BIN)", bin);
        return -1;
    }
    snprintf(out_path, sizeof out_path, "%s/%s.out", env->dir, prog);
    snprintf(err_path, sizeof err_path, "%s/%s.err", env->dir, prog);
    argv[n++] = bin;
    for (int i = 0; args && args[i] && n < 15; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(125);
        unsetenv("YARD_CONFIG");
        setenv("YARD_LOG_LEVEL", "info", 1);
        setenv("YARD_PG_DSN", env->pg_dsn, 1);
        execv(bin, argv);
        _exit(126);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    yt_slurp(out, outcap, out_path);
    yt_slurp(err, errcap, err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void yt_log_tail(const yt_env_t *env, const char *name)
{
    char path[400], buf[2048];
    snprintf(path, sizeof path, "%s/%s.log", env->dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "harness: last lines of %s:\n%s\n", path, buf);
}

/* ---- NATS ---------------------------------------------------------------- */

/* GETs path from 127.0.0.1:port; returns the HTTP status or -1. */
static int yt_http_status(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {2, 0};
    char req[256], resp[64];
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
        if (write(fd, req, (size_t)n) == n) {
            ssize_t r = read(fd, resp, sizeof resp - 1);
            if (r > 12) {
                resp[r] = '\0';
                status = atoi(resp + 9);
            }
        }
    }
    close(fd);
    return status;
}

/* Reads the ports file nats-server wrote for pid; fills the ports. */
static int yt_nats_read_ports(yt_env_t *env, pid_t pid)
{
    char path[400], buf[1024];
    snprintf(path, sizeof path, "%s/nats-server_%d.ports", env->dir, (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *c = strstr(buf, "nats://127.0.0.1:"), *m = strstr(buf, "http://127.0.0.1:");
    if (!c || !m)
        return -1;
    env->nats_port = atoi(c + 17);
    env->nats_mon_port = atoi(m + 17);
    return 0;
}

/* Writes <dir>/nats.conf for the next start: max_payload is a setting no
 * command-line flag reaches. Returns 0 or YARD_EIO. */
static int yt_nats_write_conf(const yt_env_t *env, char *path, size_t cap)
{
    snprintf(path, cap, "%s/nats.conf", env->dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        yt_fail("cannot write %s: %s", path, strerror(errno));
        return YARD_EIO;
    }
    if (env->flags & YT_NATS_DEFAULT_PAYLOAD)
        fprintf(f, "# max_payload: the default (1 MiB)\n");
    else
        fprintf(f, "max_payload: %d\n", YT_NATS_MAX_PAYLOAD);
    /* A test may add settings (the chaos suite limits the store). */
    const char *extra = getenv("YT_NATS_EXTRA_CONF");
    if (extra && *extra)
        fprintf(f, "%s\n", extra);
    if (fclose(f) != 0) {
        yt_fail("cannot write %s: %s", path, strerror(errno));
        return YARD_EIO;
    }
    return 0;
}

int yt_nats_start(yt_env_t *env)
{
    char port[16], mon[16], conf[300];
    int first = env->nats_port == 0;
    if (yt_nats_write_conf(env, conf, sizeof conf) < 0)
        return YARD_EIO;
    snprintf(port, sizeof port, "%d", first ? -1 : env->nats_port);
    snprintf(mon, sizeof mon, "%d", first ? -1 : env->nats_mon_port);
    /* Debian puts it in /usr/sbin, which a non-root PATH may lack. */
    char *bin = access("/usr/sbin/nats-server", X_OK) == 0 ? "/usr/sbin/nats-server" : "nats-server";
    char *argv[] = {bin, "-c", conf, "-a", "127.0.0.1", "-p", port, "-m", mon, "-js",
                    "-sd", env->nats_store, "--ports_file_dir", env->dir, NULL};
    pid_t pid = yt_spawn(env, "nats", argv, NULL);
    if (pid < 0)
        return YARD_EIO;
    env->nats_pid = pid;
    long long deadline = yt_now_ms() + START_TIMEOUT_MS;
    while (yt_now_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            env->nats_pid = 0;
            yt_fail("nats-server exited during start");
            yt_log_tail(env, "nats");
            return YARD_EUNAVAIL;
        }
        if ((env->nats_port || yt_nats_read_ports(env, pid) == 0) &&
            yt_http_status(env->nats_mon_port, "/healthz?js-enabled-only=true") == 200) {
            snprintf(env->nats_url, sizeof env->nats_url, "nats://127.0.0.1:%d", env->nats_port);
            return 0;
        }
        yt_sleep_ms(20);
    }
    yt_fail("nats-server not ready after %d ms", START_TIMEOUT_MS);
    yt_log_tail(env, "nats");
    return YARD_ETIMEOUT;
}

int yt_nats_stop(yt_env_t *env)
{
    if (env->nats_pid <= 0)
        return 0;
    if (yt_kill_wait(env->nats_pid, SIGTERM, 10000) < 0 &&
        yt_kill_wait(env->nats_pid, SIGKILL, 5000) < 0)
        return YARD_ETIMEOUT;
    env->nats_pid = 0;
    yt_remove_pid(env, "nats");
    return 0;
}

/* ---- PostgreSQL ---------------------------------------------------------- */

/* A durable server runs with the settings Switchyard ships
 * (ops/postgres/yard.conf, what `make up` uses): copied into the data folder
 * and included from postgresql.conf. */
static int yt_pg_include_shipped(yt_env_t *env)
{
    char src[PATH_MAX], dst[PATH_MAX], conf[PATH_MAX];
    snprintf(src, sizeof src, "%s/ops/postgres/yard.conf", yt_src_dir());
    snprintf(dst, sizeof dst, "%s/yard.conf", env->pg_data);
    snprintf(conf, sizeof conf, "%s/postgresql.conf", env->pg_data);
    FILE *in = fopen(src, "r"), *out = in ? fopen(dst, "w") : NULL;
    FILE *main_conf = out ? fopen(conf, "a") : NULL;
    int rc = main_conf ? 0 : YARD_EIO;
    if (rc < 0)
        yt_fail("cannot copy %s into %s: %s", src, env->pg_data, strerror(errno));
    char line[512];
    while (rc == 0 && fgets(line, sizeof line, in))
        fputs(line, out);
    if (main_conf) {
        fputs("include 'yard.conf'\n", main_conf);
        if (fclose(main_conf) != 0)
            rc = YARD_EIO;
    }
    if (out && fclose(out) != 0)
        rc = YARD_EIO;
    if (in)
        fclose(in);
    return rc;
}

static int yt_pg_initdb(yt_env_t *env)
{
    snprintf(env->pg_data, sizeof env->pg_data, "%s/pg", env->dir);
    if (mkdir(env->pg_data, 0700) != 0) {
        yt_fail("mkdir %s: %s", env->pg_data, strerror(errno));
        return YARD_EIO;
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(env->pg_data, pw->pw_uid, pw->pw_gid) != 0) {
            yt_fail("no postgres user, or chown %s failed", env->pg_data);
            return YARD_EIO;
        }
    }
    char *argv[] = {PG_BIN "/initdb", "-D", env->pg_data, "-U", "postgres", "-A", "trust",
                    "-E", "UTF8", "--locale=C", "-N", "--no-instructions", NULL};
    if (yt_run(env, "initdb", 1, argv) != 0) {
        yt_fail("initdb failed");
        yt_log_tail(env, "initdb");
        return YARD_EIO;
    }
    return (env->flags & YT_PG_DURABLE) ? yt_pg_include_shipped(env) : 0;
}

/* Starts the postmaster on env->pg_port; returns 0 when it accepts
 * connections, YARD_EEXIST if it exited (port taken?), < 0 otherwise. */
static int yt_pg_launch(yt_env_t *env)
{
    char port[16];
    snprintf(port, sizeof port, "%d", env->pg_port);
    /* The socket goes into the data folder: postgres owns it. */
    char *argv[] = {PG_BIN "/postgres", "-D", env->pg_data, "-p", port, "-k", env->pg_data,
                    "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
                    "-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off", NULL};
    if (env->flags & YT_PG_DURABLE)
        argv[11] = NULL; /* stop before the three speed-ups */
    pid_t pid = yt_spawn_as(env, "postgres", 1, argv, NULL);
    if (pid < 0)
        return YARD_EIO;
    env->pg_pid = pid;
    snprintf(env->pg_dsn, sizeof env->pg_dsn,
             "host=127.0.0.1 port=%d dbname=postgres user=postgres connect_timeout=5",
             env->pg_port);
    long long deadline = yt_now_ms() + START_TIMEOUT_MS;
    while (yt_now_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            env->pg_pid = 0;
            yt_remove_pid(env, "postgres");
            return YARD_EEXIST;
        }
        if (PQping(env->pg_dsn) == PQPING_OK)
            return 0;
        yt_sleep_ms(20);
    }
    yt_fail("postgres not ready after %d ms", START_TIMEOUT_MS);
    yt_log_tail(env, "postgres");
    return YARD_ETIMEOUT;
}

int yt_pg_start(yt_env_t *env)
{
    int rc = YARD_EEXIST;
    for (int attempt = 0; attempt < 5 && rc == YARD_EEXIST; attempt++) {
        if (attempt > 0 || env->pg_port == 0)
            env->pg_port = yt_free_port();
        rc = yt_pg_launch(env);
    }
    if (rc < 0) {
        yt_fail("postgres did not start");
        yt_log_tail(env, "postgres");
        return rc;
    }
    snprintf(env->pg_dsn, sizeof env->pg_dsn,
             "host=127.0.0.1 port=%d dbname=yard user=postgres connect_timeout=5", env->pg_port);
    return 0;
}

int yt_pg_stop(yt_env_t *env)
{
    if (env->pg_pid <= 0)
        return 0;
    /* SIGINT is PostgreSQL's fast shutdown. */
    if (yt_kill_wait(env->pg_pid, SIGINT, 15000) < 0 &&
        yt_kill_wait(env->pg_pid, SIGKILL, 5000) < 0)
        return YARD_ETIMEOUT;
    env->pg_pid = 0;
    yt_remove_pid(env, "postgres");
    return 0;
}

static int yt_pg_create_db(yt_env_t *env)
{
    char dsn[256];
    snprintf(dsn, sizeof dsn, "host=127.0.0.1 port=%d dbname=postgres user=postgres",
             env->pg_port);
    PGconn *c = PQconnectdb(dsn);
    int rc = 0;
    if (PQstatus(c) != CONNECTION_OK) {
        yt_fail("connect to postgres: %s", PQerrorMessage(c));
        rc = YARD_EUNAVAIL;
    } else {
        PGresult *r = PQexec(c, "CREATE DATABASE yard");
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            yt_fail("CREATE DATABASE yard: %s", PQerrorMessage(c));
            rc = YARD_EPG;
        }
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

static int yt_pg_migrate(yt_env_t *env)
{
    PGconn *c = NULL;
    int applied = 0;
    int rc = yard_db_connect(&c, env->pg_dsn, 10);
    if (rc == 0)
        rc = yard_migrate_run(c, yard_migrations, yard_migrations_count, &applied);
    if (rc < 0)
        yt_fail("migrations failed: %s", yard_strerror(rc));
    yard_db_close(c);
    return rc;
}

/* ---- the environment ----------------------------------------------------- */

static int yt_make_dir(yt_env_t *env)
{
    const char *given = getenv("YARD_TEST_DIR");
    if (given && *given) {
        snprintf(env->dir, sizeof env->dir, "%s", given);
        if (mkdir(env->dir, 0755) != 0 && errno != EEXIST) {
            yt_fail("mkdir %s: %s", env->dir, strerror(errno));
            return YARD_EIO;
        }
    } else {
        snprintf(env->dir, sizeof env->dir, "/tmp/yard-test.XXXXXX");
        if (!mkdtemp(env->dir)) {
            yt_fail("mkdtemp: %s", strerror(errno));
            return YARD_EIO;
        }
    }
    /* postgres must be able to traverse it (its socket lives here too). */
    chmod(env->dir, 0755);
    return 0;
}

int yt_env_create(yt_env_t **out, unsigned flags)
{
    yt_env_t *env = calloc(1, sizeof *env);
    int rc;
    if (!env)
        return YARD_ENOMEM;
    env->flags = flags;
    signal(SIGPIPE, SIG_IGN);
    if ((rc = yt_make_dir(env)) < 0)
        goto fail;
    if (flags & YT_NATS) {
        snprintf(env->nats_store, sizeof env->nats_store, "%s/nats", env->dir);
        if ((rc = yt_nats_start(env)) < 0)
            goto fail;
    }
    if (flags & YT_PG) {
        if ((rc = yt_pg_initdb(env)) < 0 || (rc = yt_pg_start(env)) < 0 ||
            (rc = yt_pg_create_db(env)) < 0)
            goto fail;
        if ((flags & YT_MIGRATE) && (rc = yt_pg_migrate(env)) < 0)
            goto fail;
    }
    *out = env;
    return 0;
fail:
    yt_env_destroy(env);
    return rc;
}

void yt_env_destroy(yt_env_t *env)
{
    if (!env)
        return;
    yt_nats_stop(env);
    yt_pg_stop(env);
    const char *keep = getenv("YARD_TEST_KEEP");
    if (keep && *keep && env->dir[0]) {
        /* Kept for inspection, moved aside (<dir>.1, .2, ...) so that the
         * binary's next test case gets a fresh folder of the same name. */
        char aside[sizeof env->dir + 16];
        for (int n = 1; n < 100; n++) {
            snprintf(aside, sizeof aside, "%s.%d", env->dir, n);
            if (access(aside, F_OK) != 0) {
                rename(env->dir, aside);
                break;
            }
        }
    } else if (env->dir[0]) {
        char *argv[] = {"rm", "-rf", env->dir, NULL};
        pid_t pid = fork();
        if (pid == 0) {
            execvp(argv[0], argv);
            _exit(127);
        }
        if (pid > 0)
            waitpid(pid, NULL, 0);
    }
    free(env);
}
