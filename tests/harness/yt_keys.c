/*
 * yt_keys.c - API keys made by yardctl and an authenticated gateway
 * (yt_keys.h).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "yt_http.h"
#include "yt_keys.h"
#include "yt_workers.h"

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
    snprintf(k->key, sizeof k->key, "%s", out);
    snprintf(k->id, sizeof k->id, "%s", id);
    snprintf(k->auth, sizeof k->auth, "Authorization: Bearer %s", out);
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
