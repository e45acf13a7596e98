/*
 * yt_keys.c - API keys made by yardctl and an authenticated gateway
 * (yt_keys.h).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "yt_http.h"
#include "yt_keys.h"

int yt_key_create(yt_env_t *env, yt_key_t *k)
{
    char out[512], err[2048], id[YT_KEY_ID_MAX];
    const char *args[] = {"keys", "create", "--name", k->name, "--scopes", k->scopes, "--quiet",
                          NULL};
    int rc = yt_run_program(env, "yardctl", args, out, sizeof out, err, sizeof err);
    out[strcspn(out, "\r\n")] = '\0';
    if (rc != 0 || strncmp(out, "yk_", 3) != 0 || strlen(out) >= YT_KEY_MAX) {
        fprintf(stderr, "yt_key_create: yardctl keys create --name %s: expected exit 0 and a key, "
                        "got exit %d, stdout \"%.100s\", stderr:\n%.1000s\n",
                k->name, rc, out, err);
        return -1;
    }
    if (yt_sql_text(env, id, sizeof id, "SELECT id::text FROM api_keys WHERE name = '%.100s'",
                    k->name) != 1) {
        fprintf(stderr, "yt_key_create: cannot read the id of key %s\n", k->name);
        return -1;
    }
    /* Lengths checked above: the precisions only tell the compiler. */
    snprintf(k->key, sizeof k->key, "%.*s", YT_KEY_MAX - 1, out);
    snprintf(k->id, sizeof k->id, "%s", id);
    snprintf(k->auth, sizeof k->auth, "Authorization: Bearer %.*s", YT_KEY_MAX - 1, out);
    return 0;
}

pid_t yt_auth_gateway_start(yt_env_t *env, int *port, char *const extra_env[])
{
    char *envs[48] = {"YARD_AUTH_REFRESH_S=1", "YARD_RATE_PER_S=100000",
                      "YARD_RATE_BURST=100000", "YARD_ID_SECRET=yt-keys-secret"};
    size_t n = 4;
    for (size_t i = 0; extra_env && extra_env[i] && n + 1 < sizeof envs / sizeof envs[0]; i++)
        envs[n++] = extra_env[i];
    envs[n] = NULL;
    pid_t pid = yt_gateway_start(env, port, envs);
    if (pid < 0)
        return -1;
    long long deadline = yt_now_ms() + 20000;
    int st;
    while ((st = yt_http_status(*port, "/readyz")) != 200 && yt_now_ms() < deadline)
        usleep(50 * 1000);
    if (st != 200) {
        fprintf(stderr, "yt_auth_gateway_start: the gateway is not ready after 20 s (%d)\n", st);
        yt_log_tail(env, "gateway");
        yt_kill_wait(pid, 9, 5000);
        return -1;
    }
    return pid;
}

int yt_auth_cluster_start(yt_cluster_t *c, yt_key_t *keys, size_t n, char *const extra_env[])
{
    char *envs[48] = {"YARD_AUTH_DISABLED=false", "YARD_AUTH_REFRESH_S=1"};
    size_t m = 2;
    for (size_t i = 0; extra_env && extra_env[i] && m + 1 < sizeof envs / sizeof envs[0]; i++)
        envs[m++] = extra_env[i];
    envs[m] = NULL;
    if (yt_cluster_start(c, envs) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (yt_key_create(c->env, &keys[i]) != 0)
            return -1;
    /* The gateway reloads keys every second: wait until it knows the last. */
    long long deadline = yt_now_ms() + 15000;
    for (;;) {
        yt_http_resp_t r;
        const char *headers[] = {n ? keys[n - 1].auth : NULL, NULL};
        int st = yt_http_request(&r, c->port, "GET", "/v1/whoami", headers, NULL, 0);
        yt_http_resp_free(&r);
        if (st == 200)
            return 0;
        if (yt_now_ms() > deadline) {
            fprintf(stderr, "yt_auth_cluster_start: the gateway did not accept the keys in 15 s "
                            "(last answer %d)\n", st);
            yt_log_tail(c->env, "gateway");
            return -1;
        }
        yt_nap_ms(100);
    }
}

#define YT_SCRIPT_OUTPUT_MAX (24 * 1024)

int yt_script_run(yt_env_t *env, const char *name, char *const argv[], int timeout_s)
{
    char out_path[300], pid_path[300];
    snprintf(out_path, sizeof out_path, "%s/%s.out", env->dir, name);
    snprintf(pid_path, sizeof pid_path, "%s/%s.pid", env->dir, name);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Its own process group: a timeout (or tests/run.sh, through the pid
         * file) stops the script and whatever it started (a browser). */
        setpgid(0, 0);
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    setpgid(pid, pid);
    FILE *pf = fopen(pid_path, "w");
    if (pf) {
        fprintf(pf, "%d\n", (int)pid);
        fclose(pf);
    }
    int status = -1, timed_out = 0;
    long long deadline = yt_now_ms() + (long long)timeout_s * 1000;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (yt_now_ms() > deadline) {
            timed_out = 1;
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        usleep(50 * 1000);
    }
    kill(-pid, SIGKILL); /* anything of its group still running */
    unlink(pid_path);
    FILE *f = fopen(out_path, "r");
    if (f) {
        static char text[YT_SCRIPT_OUTPUT_MAX + 1];
        size_t len = fread(text, 1, YT_SCRIPT_OUTPUT_MAX, f);
        text[len] = '\0';
        fclose(f);
        printf("%s%s", text, len == YT_SCRIPT_OUTPUT_MAX ? "\n[output cut]\n" : "");
        fflush(stdout);
    }
    if (timed_out)
        fprintf(stderr, "yt_script_run: %s did not finish in %d s: stopped\n", name, timeout_s);
    else if (WIFSIGNALED(status))
        fprintf(stderr, "yt_script_run: %s was killed by signal %d\n", name, WTERMSIG(status));
    return !timed_out && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
