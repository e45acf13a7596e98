/*
 * handler_exec.c - runs the program that ops mapped to a job type.
 *
 * fork + execve, no shell: the child moves into its own process group, takes
 * the mapping's resource limits, a cleared environment and the pipes, and
 * execs; a close-on-exec pipe tells the parent why an exec failed. The
 * parent then runs one poll loop on the handler thread: payload to stdin
 * (non-blocking), the job's opened secrets (if any) on a pipe at fd 3 (YARD_JOB_SECRETS_FD;
 * never in argv or the environment), stdout collected up to a cap, the last 2 KiB of stderr
 * kept, the cancellation flag and deadline checked every TICK_MS, and a
 * pidfd (when the kernel has them) to notice the exit at once. The whole
 * group is signalled, and what left the group is killed by exec_reaper.c,
 * so a program's own children never outlive the job.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "exec_config.h"
#include "exec_reaper.h"
#include "handler.h"
#include "log.h"

#define TAIL_MAX 2048  /* stderr kept for the error message */
#define DRAIN_MS 500   /* after the exit, wait this long at most for the pipes' EOF */
#define CHUNK 16384
#define TICK_MS 25     /* how often the loop looks at the cancellation flag */
#define N_JOB_VARS 6
#define SECRETS_FD 3   /* the program reads the job's secrets here (YARD_JOB_SECRETS_FD) */

/* What the child reports through the close-on-exec pipe when it fails. */
typedef enum {
    STAGE_PIPES = 1,
    STAGE_PGID,
    STAGE_LIMITS,
    STAGE_CHDIR,
    STAGE_EXEC,
    STAGE_USER
} stage_t;
typedef struct {
    int stage;
    int err;
} child_err_t;

/* One run of a program. */
typedef struct {
    const wk_job_t *job;
    const wk_exec_entry_t *e;
    int64_t deadline;          /* the earlier of the job's and the mapping's */
    pid_t pid;
    int pidfd, in_fd, out_fd, err_fd;
    size_t in_off;             /* payload bytes written */
    char *out;                 /* stdout, at most out_max bytes */
    size_t out_len, out_max;
    int out_overflow;
    char tail[TAIL_MAX];       /* the last bytes of stderr */
    size_t tail_len;
    int tail_cut;              /* stderr was longer than the tail */
    child_err_t cerr;          /* stage 0: the exec succeeded */
    int exited;
    int status;                /* waitpid status; -1 = lost (someone else reaped it) */
    wk_outcome_t stop;         /* why we are stopping the program: OK = we are not */
    int64_t kill_at;           /* when SIGTERM turns into SIGKILL */
    int killed;
} run_t;

/* ---- the child (async-signal-safe calls only) --------------------------- */

__attribute__((noreturn)) static void child_fail(int fd, stage_t stage)
{
    child_err_t ce = {.stage = stage, .err = errno};
    ssize_t w = write(fd, &ce, sizeof ce);
    (void)w;
    _exit(127);
}

/* Lowers resource to value (+ extra for the hard limit), within the hard
 * limit the worker has. value 0 means no limit: nothing is changed.
 * Returns 0, or -1 with errno set. */
static int child_limit(int resource, int64_t value, rlim_t extra)
{
    struct rlimit cur, lim;
    if (value <= 0)
        return 0;
    if (getrlimit(resource, &cur) < 0)
        return -1;
    lim.rlim_cur = (rlim_t)value;
    lim.rlim_max = (rlim_t)value + extra;
    if (cur.rlim_max != RLIM_INFINITY && lim.rlim_max > cur.rlim_max)
        lim.rlim_max = cur.rlim_max;
    if (lim.rlim_cur > lim.rlim_max)
        lim.rlim_cur = lim.rlim_max;
    if (setrlimit(resource, &lim) == 0)
        return 0;
    /* Some hosts refuse to lower a hard limit (valgrind, for NOFILE): then
     * lower the soft one only, which the program could raise again. */
    lim.rlim_max = cur.rlim_max;
    return errno == EPERM ? setrlimit(resource, &lim) : -1;
}

/* Becomes the program: fds[0..2] are the ends for its stdin, stdout, stderr,
 * fds[3] the read end of the secrets pipe (-1: the job has none), which
 * becomes SECRETS_FD; report is the close-on-exec pipe for failures. Never
 * returns. */
__attribute__((noreturn)) static void child_exec(const wk_exec_entry_t *e, const int fds[4],
                                                 int report, char **envp)
{
    struct sigaction dfl;
    sigset_t none;
    int high[4] = {-1, -1, -1, -1};

    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL); /* fails harmlessly for reserved signals */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (setpgid(0, 0) < 0)
        child_fail(report, STAGE_PGID);
    /* Move everything above 3 first: a pipe end may be 0, 1, 2 or 3. */
    report = fcntl(report, F_DUPFD_CLOEXEC, 10);
    if (report < 0)
        _exit(127);
    int nfds = fds[3] >= 0 ? 4 : 3;
    for (int i = 0; i < nfds; i++)
        if ((high[i] = fcntl(fds[i], F_DUPFD, 10)) < 0)
            child_fail(report, STAGE_PIPES);
    for (int i = 0; i < nfds; i++)
        if (dup2(high[i], i) < 0)
            child_fail(report, STAGE_PIPES);
    if (dup3(report, nfds, O_CLOEXEC) < 0)
        child_fail(report, STAGE_PIPES);
    report = nfds;
    /* Other threads' descriptors need not be close-on-exec: close them all. */
    if (close_range((unsigned)nfds + 1, ~0U, 0) < 0) {
        struct rlimit nofile;
        rlim_t max = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536
                         ? nofile.rlim_cur
                         : 65536;
        for (rlim_t fd = (rlim_t)nfds + 1; fd < max; fd++)
            close((int)fd);
    }
    if (e->gid >= 0 && (setgroups(0, NULL) < 0 || setgid((gid_t)e->gid) < 0))
        child_fail(report, STAGE_USER);
    if (e->uid >= 0 && setuid((uid_t)e->uid) < 0)
        child_fail(report, STAGE_USER);
    struct rlimit no_core = {0, 0};
    if (child_limit(RLIMIT_CPU, e->cpu_s, 2) < 0 ||
        child_limit(RLIMIT_AS, e->memory_mb * 1024 * 1024, 0) < 0 ||
        child_limit(RLIMIT_FSIZE, e->max_file_mb * 1024 * 1024, 0) < 0 ||
        child_limit(RLIMIT_NOFILE, e->max_open_files, 0) < 0 ||
        child_limit(RLIMIT_NPROC, e->max_processes, 0) < 0 ||
        setrlimit(RLIMIT_CORE, &no_core) < 0)
        child_fail(report, STAGE_LIMITS);
    if (chdir(e->dir) < 0)
        child_fail(report, STAGE_CHDIR);
    execve(e->path, e->argv, envp);
    child_fail(report, STAGE_EXEC);
}

/* ---- the parent --------------------------------------------------------- */

static void free_env(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

/* Returns the program's environment (free with free_env), or NULL. */
static char **make_env(const wk_exec_entry_t *e, const wk_job_t *job)
{
    char **env = calloc(e->envc + N_JOB_VARS + 1, sizeof *env);
    size_t n = 0;
    if (!env)
        return NULL;
    for (; n < e->envc; n++)
        if ((env[n] = strdup(e->envp[n])) == NULL)
            goto fail;
    if (asprintf(&env[n++], "YARD_JOB_ID=%s", job->id ? job->id : "") < 0 ||
        asprintf(&env[n++], "YARD_JOB_TYPE=%s", job->type ? job->type : "") < 0 ||
        asprintf(&env[n++], "YARD_JOB_QUEUE=%s", job->queue ? job->queue : "") < 0 ||
        asprintf(&env[n++], "YARD_JOB_ATTEMPT=%u", job->attempt) < 0 ||
        asprintf(&env[n++], "YARD_JOB_MAX_ATTEMPTS=%u", job->max_attempts) < 0 ||
        (job->secrets && asprintf(&env[n++], "YARD_JOB_SECRETS_FD=%d", SECRETS_FD) < 0)) {
        env[n - 1] = NULL; /* asprintf leaves it undefined on failure */
        goto fail;
    }
    return env;
fail:
    free_env(env);
    return NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Makes the secrets pipe: writes all of the job's secrets into it (they fit
 * in its buffer, at most YARD_SEALED_PLAIN_MAX bytes) and closes the write
 * end, so the program reads them and then EOF. Returns 0 with sec[0] the
 * read end, or YARD_EIO after logging (never the secrets themselves). */
static int secrets_pipe(int sec[2], const run_t *x, const yard_log_ctx_t *ctx)
{
    const wk_job_t *job = x->job;
    if (pipe2(sec, O_CLOEXEC) < 0) {
        YARD_LOG_ERROR(ctx, "exec %s: secrets pipe: %s", x->e->type, strerror(errno));
        return YARD_EIO;
    }
    if (job->secrets_len >= 4096) /* the default buffer is larger; it may have been cut */
        fcntl(sec[1], F_SETPIPE_SZ, (int)job->secrets_len + 1);
    fcntl(sec[1], F_SETFL, O_NONBLOCK);
    size_t off = 0;
    while (off < job->secrets_len) {
        ssize_t n = write(sec[1], job->secrets + off, job->secrets_len - off);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else {
            YARD_LOG_ERROR(ctx, "exec %s: the secrets (%zu bytes) do not fit in their pipe: %s",
                           x->e->type, job->secrets_len, n < 0 ? strerror(errno) : "short");
            return YARD_EIO;
        }
    }
    close_fd(&sec[1]);
    return 0;
}

/* Starts the program. Returns 0 with x->pid running (or x->cerr saying why
 * the exec failed, the child reaped), or YARD_EIO after logging (no child). */
static int run_spawn(run_t *x, char **envp)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
    int sec[2] = {-1, -1};
    sigset_t all, old;
    int rc = YARD_EIO;
    yard_log_ctx_t ctx = wk_job_log_ctx(x->job);

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
        pipe2(rep, O_CLOEXEC) < 0) {
        YARD_LOG_ERROR(&ctx, "exec %s: pipe: %s", x->e->type, strerror(errno));
        goto done;
    }
    if (x->job->secrets && secrets_pipe(sec, x, &ctx) < 0)
        goto done;
    /* No signal handler of the worker may run in the child before it resets them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* Registered before a sweep can see it (exec_reaper.h). */
    wk_reaper_lock();
    x->pid = fork();
    if (x->pid == 0)
        child_exec(x->e, (const int[4]){in[0], out[1], err[1], sec[0]}, rep[1], envp);
    int fork_errno = errno;
    if (x->pid > 0)
        wk_reaper_add(x->pid);
    wk_reaper_unlock();
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (x->pid < 0) {
        YARD_LOG_ERROR(&ctx, "exec %s: fork: %s", x->e->type, strerror(fork_errno));
        goto done;
    }
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&err[1]);
    close_fd(&rep[1]);
    close_fd(&sec[0]);
    /* EOF once execve succeeded; a child_err_t if the child failed before. */
    ssize_t n;
    do
        n = read(rep[0], &x->cerr, sizeof x->cerr);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof x->cerr)
        x->cerr.stage = 0;
    if (x->cerr.stage != 0) {
        while (waitpid(x->pid, &x->status, 0) < 0 && errno == EINTR)
            ;
        x->exited = 1;
        rc = 0;
        goto done;
    }
    x->in_fd = in[1];
    x->out_fd = out[0];
    x->err_fd = err[0];
    in[1] = out[0] = err[0] = -1;
    fcntl(x->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(x->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(x->err_fd, F_SETFL, O_NONBLOCK);
    x->pidfd = pidfd_open(x->pid, 0); /* -1 on old kernels: the poll tick notices the exit */
    rc = 0;
done:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&err[i]);
        close_fd(&rep[i]);
        close_fd(&sec[i]);
    }
    return rc;
}

/* Writes what the pipe takes of the payload; closes stdin when all is
 * written or the program closed its end (EPIPE: not reading is its choice). */
static void run_write(run_t *x)
{
    const char *p = x->job->payload ? x->job->payload : "null";
    size_t len = x->job->payload ? x->job->payload_len : 4;
    while (x->in_off < len) {
        ssize_t n = write(x->in_fd, p + x->in_off, len - x->in_off);
        if (n > 0)
            x->in_off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && errno == EAGAIN)
            return;
        else
            break;
    }
    close_fd(&x->in_fd);
}

/* Keeps stdout up to out_max bytes; beyond that, marks the overflow. */
static void sink_out(run_t *x, const char *buf, size_t n)
{
    if (x->out_overflow)
        return;
    if (n > x->out_max - x->out_len) {
        x->out_overflow = 1; /* the loop stops the program; the rest is discarded */
        return;
    }
    memcpy(x->out + x->out_len, buf, n);
    x->out_len += n;
}

/* Keeps the last TAIL_MAX bytes of stderr. */
static void sink_err(run_t *x, const char *buf, size_t n)
{
    if (n >= TAIL_MAX) {
        memcpy(x->tail, buf + n - TAIL_MAX, TAIL_MAX);
        x->tail_cut = x->tail_cut || n > TAIL_MAX || x->tail_len > 0;
        x->tail_len = TAIL_MAX;
        return;
    }
    if (x->tail_len + n > TAIL_MAX) {
        size_t drop = x->tail_len + n - TAIL_MAX;
        memmove(x->tail, x->tail + drop, x->tail_len - drop);
        x->tail_len -= drop;
        x->tail_cut = 1;
    }
    memcpy(x->tail + x->tail_len, buf, n);
    x->tail_len += n;
}

/* Reads *fd until it would block (or 16 chunks, so a program that writes
 * without pause cannot keep the loop from its deadline checks); closes it at
 * EOF or on error. */
static void run_read(run_t *x, int *fd, void (*sink)(run_t *, const char *, size_t))
{
    char buf[CHUNK];
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(*fd, buf, sizeof buf);
        if (n > 0)
            sink(x, buf, (size_t)n);
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && errno == EAGAIN)
            return;
        else {
            close_fd(fd);
            return;
        }
    }
}

/* Starts or escalates stopping the program when cancelled, late or too chatty. */
static void run_check_stop(run_t *x, int64_t now)
{
    if (x->stop == WK_OUTCOME_OK) {
        wk_outcome_t o = wk_job_check(x->job);
        if (o == WK_OUTCOME_OK && now >= x->deadline)
            o = WK_OUTCOME_TIMEOUT;
        if (o == WK_OUTCOME_OK && x->out_overflow)
            o = WK_OUTCOME_FAIL;
        if (o == WK_OUTCOME_OK)
            return;
        x->stop = o;
        x->kill_at = now + x->e->term_grace_ms;
        kill(-x->pid, SIGTERM);
    }
    if (!x->killed && now >= x->kill_at) {
        kill(-x->pid, SIGKILL);
        x->killed = 1;
    }
}

/* Notices the program's exit: kills what it left in its group, then reaps. */
static void run_check_exit(run_t *x)
{
    siginfo_t si;
    si.si_pid = 0;
    if (waitid(P_PID, (id_t)x->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
        if (errno == ECHILD) { /* reaped elsewhere: SIGCHLD ignored or waitpid(-1) */
            x->status = -1;
            x->exited = 1;
            kill(-x->pid, SIGKILL);
        }
        return;
    }
    if (si.si_pid == 0)
        return;
    /* A zombie keeps its pid and group id from reuse, so this reaches only
     * what the program left running. */
    kill(-x->pid, SIGKILL);
    while (waitpid(x->pid, &x->status, 0) < 0 && errno == EINTR)
        ;
    x->exited = 1;
    close_fd(&x->in_fd);
    close_fd(&x->pidfd);
}

static void run_loop(run_t *x)
{
    int64_t now = wk_clock_ms();
    int64_t next_beat = now + WK_HEARTBEAT_MS, drain_until = 0;
    for (;;) {
        now = wk_clock_ms();
        if (!x->exited) {
            run_check_stop(x, now);
            run_check_exit(x);
            if (x->exited)
                drain_until = now + DRAIN_MS;
        }
        if (x->exited && ((x->out_fd < 0 && x->err_fd < 0) || now >= drain_until))
            return;
        if (now >= next_beat) {
            wk_job_heartbeat(x->job);
            next_beat = now + WK_HEARTBEAT_MS;
        }
        struct pollfd pfd[4];
        int *fds[4] = {&x->in_fd, &x->out_fd, &x->err_fd, &x->pidfd};
        int slot[4], n = 0;
        for (int i = 0; i < 4; i++) {
            if (*fds[i] < 0)
                continue;
            pfd[n].fd = *fds[i];
            pfd[n].events = i == 0 ? POLLOUT : POLLIN;
            pfd[n].revents = 0;
            slot[n++] = i;
        }
        int64_t wait = x->exited ? drain_until - now : TICK_MS;
        if (wait > TICK_MS)
            wait = TICK_MS;
        if (poll(pfd, (nfds_t)n, (int)(wait > 0 ? wait : 0)) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (!pfd[i].revents)
                continue;
            if (slot[i] == 0)
                run_write(x);
            else if (slot[i] == 1)
                run_read(x, &x->out_fd, sink_out);
            else if (slot[i] == 2)
                run_read(x, &x->err_fd, sink_err);
            /* pidfd readable: run_check_exit reaps on the next turn */
        }
    }
}

/* Formats "; stderr: <tail>" (or "") into buf. */
static void stderr_suffix(const run_t *x, char *buf, size_t cap)
{
    size_t n = x->tail_len;
    while (n > 0 && (x->tail[n - 1] == '\n' || x->tail[n - 1] == '\r' || x->tail[n - 1] == ' '))
        n--;
    if (n == 0)
        buf[0] = '\0';
    else
        snprintf(buf, cap, "; stderr: %s%.*s", x->tail_cut ? "..." : "", (int)n, x->tail);
}

/* Takes stdout as the result: empty is null, anything else must be JSON. */
static void run_result(run_t *x, wk_result_t *res, const char *tail)
{
    static const char ws[] = " \t\r\n";
    size_t start = 0, end = x->out_len;
    while (start < end && strchr(ws, x->out[start]))
        start++;
    while (end > start && strchr(ws, x->out[end - 1]))
        end--;
    if (start == end)
        return; /* OK, result null */
    json_error_t jerr;
    json_t *v = json_loadb(x->out + start, end - start, JSON_DECODE_ANY, &jerr);
    if (!v) {
        wk_result_set(res, WK_OUTCOME_FAIL,
                      "%s: stdout is not valid JSON (line %d, column %d: %s)%s", x->e->path,
                      jerr.line, jerr.column, jerr.text, tail);
        return;
    }
    json_decref(v);
    res->result_json = strndup(x->out + start, end - start);
    if (!res->result_json)
        wk_result_set(res, WK_OUTCOME_RETRY, "out of memory keeping the result");
}

static void run_finish(run_t *x, wk_result_t *res)
{
    static const char *const stages[] = {"", "redirect stdio for", "setpgid for",
                                         "set limits for", "chdir to", "execute",
                                         "switch user for"};
    char tail[TAIL_MAX + 32];
    const wk_exec_entry_t *e = x->e;
    stderr_suffix(x, tail, sizeof tail);

    if (x->cerr.stage != 0) {
        int err = x->cerr.err;
        int transient = err == EAGAIN || err == ENOMEM || err == ETXTBSY || err == EMFILE ||
                        err == ENFILE;
        wk_result_set(res, transient ? WK_OUTCOME_RETRY : WK_OUTCOME_FAIL, "cannot %s %s: %s",
                      stages[x->cerr.stage], x->cerr.stage == STAGE_CHDIR ? e->dir : e->path,
                      strerror(err));
    } else if (x->stop == WK_OUTCOME_CANCELLED) {
        wk_result_set(res, WK_OUTCOME_CANCELLED, "cancelled; %s was stopped%s", e->path, tail);
    } else if (x->stop == WK_OUTCOME_TIMEOUT) {
        wk_result_set(res, WK_OUTCOME_TIMEOUT, "%s did not finish before the %s%s", e->path,
                      e->timeout_s && x->deadline != x->job->deadline_ms
                          ? "mapping's timeout_s"
                          : "job's deadline",
                      tail);
    } else if (x->out_overflow) {
        wk_result_set(res, WK_OUTCOME_FAIL, "%s wrote more than max_output_kb (%lld KiB) to stdout",
                      e->path, (long long)e->max_output_kb);
    } else if (x->status == -1) {
        wk_result_set(res, WK_OUTCOME_FAIL,
                      "%s: exit status lost (the worker must not ignore SIGCHLD)", e->path);
    } else if (WIFSIGNALED(x->status)) {
        int sig = WTERMSIG(x->status);
        const char *abbrev = sigabbrev_np(sig);
        wk_result_set(res, WK_OUTCOME_FAIL, "%s was killed by signal %d (SIG%s)%s%s", e->path,
                      sig, abbrev ? abbrev : "?",
                      sig == SIGXCPU   ? ", the cpu_s limit"
                      : sig == SIGXFSZ ? ", the max_file_mb limit"
                                       : "",
                      tail);
    } else if (WEXITSTATUS(x->status) == EX_TEMPFAIL) {
        wk_result_set(res, WK_OUTCOME_RETRY, "%s exited with 75 (EX_TEMPFAIL)%s", e->path, tail);
    } else if (WEXITSTATUS(x->status) != 0) {
        wk_result_set(res, WK_OUTCOME_FAIL, "%s exited with %d%s", e->path,
                      WEXITSTATUS(x->status), tail);
    } else {
        run_result(x, res, tail);
    }
}

void wk_exec_handler(const wk_job_t *job, wk_result_t *res, void *ud)
{
    const wk_exec_entry_t *e = ud;
    run_t x = {.job = job, .e = e, .pid = -1, .pidfd = -1, .in_fd = -1, .out_fd = -1,
               .err_fd = -1};
    sigset_t pipe_set, old_mask, pending;
    int was_pending;
    int64_t now = wk_clock_ms();
    wk_outcome_t early = wk_job_check(job);
    char **envp = make_env(e, job);

    x.deadline = job->deadline_ms > 0 ? job->deadline_ms : INT64_MAX;
    if (e->timeout_s > 0 && now + e->timeout_s * 1000 < x.deadline)
        x.deadline = now + e->timeout_s * 1000;
    x.out_max = (size_t)e->max_output_kb * 1024;
    x.out = malloc(x.out_max);
    if (early != WK_OUTCOME_OK) { /* too late to start anything */
        wk_result_set(res, early, "%s was not started: %s", e->path,
                      early == WK_OUTCOME_CANCELLED ? "cancelled" : "deadline passed");
        goto done;
    }
    if (!envp || !x.out) {
        wk_result_set(res, WK_OUTCOME_RETRY, "out of memory starting %s", e->path);
        goto done;
    }
    /* Writes to a program that quit raise SIGPIPE: keep it from this thread,
     * and consume it below unless it was pending already. */
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);

    if (run_spawn(&x, envp) < 0)
        wk_result_set(res, WK_OUTCOME_RETRY, "cannot start %s (see the worker log)", e->path);
    else {
        if (x.cerr.stage == 0)
            run_loop(&x);
        run_finish(&x, res);
        /* What the program left outside its group is now the worker's child. */
        wk_reaper_remove(x.pid);
        wk_reaper_sweep();
    }
    close_fd(&x.in_fd);
    close_fd(&x.out_fd);
    close_fd(&x.err_fd);
    close_fd(&x.pidfd);

    sigpending(&pending);
    if (!was_pending && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
done:
    free(x.out);
    free_env(envp);
}

static void exec_config_free(void *p)
{
    wk_exec_config_destroy(p);
}

int wk_exec_register(wk_registry_t *r, const char *path)
{
    wk_exec_config_t *cfg;
    int rc = wk_exec_config_load(&cfg, path);
    if (rc < 0)
        return rc;
    if ((rc = wk_reaper_init()) < 0) {
        wk_exec_config_destroy(cfg);
        return rc;
    }
    if ((rc = wk_registry_own(r, cfg, exec_config_free)) < 0) {
        wk_exec_config_destroy(cfg);
        return rc;
    }
    for (size_t i = 0; i < cfg->n; i++) {
        wk_exec_entry_t *e = &cfg->entries[i];
        rc = wk_registry_add(r, e->type, wk_exec_handler, e);
        if (rc == YARD_EEXIST)
            YARD_LOG_ERROR(NULL, "exec config %s:%d: type '%s' is already registered (a built-in?)",
                           path, e->line, e->type);
        if (rc < 0)
            return rc;
    }
    YARD_LOG_INFO(NULL, "exec config %s: %zu job types mapped to programs", path, cfg->n);
    return 0;
}
