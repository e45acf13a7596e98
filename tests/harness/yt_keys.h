/*
 * yt_keys.h - API keys and an authenticated gateway for tests.
 *
 * Keys are made by the real yardctl (`keys create --quiet`), so tests see
 * keys exactly as operators make them; the gateway is the real one with
 * authentication on.
 */
#ifndef YARD_TEST_YT_KEYS_H
#define YARD_TEST_YT_KEYS_H

#include <stddef.h>
#include <sys/types.h>

#include "harness.h"
#include "yt_workers.h"

#define YT_KEY_MAX 128
#define YT_KEY_ID_MAX 40

/* One key: what the test asks for, then what yardctl made. */
typedef struct {
    const char *name;   /* unique in the database */
    const char *scopes; /* "submit,read", "read", "admin", ... */
    char key[YT_KEY_MAX];
    char id[YT_KEY_ID_MAX];
    char auth[YT_KEY_MAX + 32]; /* "Authorization: Bearer <key>" */
} yt_key_t;

/* Makes k with `yardctl keys create --name k->name --scopes k->scopes` and
 * fills key, id and auth. Returns 0, or -1 after printing why. */
int yt_key_create(yt_env_t *env, yt_key_t *k);

/* Starts the real gateway with authentication on (keys refreshed every
 * second, rate limits out of the way) plus extra_env (may be NULL), and
 * waits up to 20 s for /readyz (NATS, PostgreSQL and keys loaded). Returns
 * the pid and sets *port, or -1 after printing why and the gateway's log. */
pid_t yt_auth_gateway_start(yt_env_t *env, int *port, char *const extra_env[]);

/* yt_cluster_start (servers, gateway, audit worker) with authentication on
 * (keys refreshed every second) and extra_env, then makes the n keys with
 * yt_key_create and waits until the gateway accepts the last one. Returns 0,
 * or -1 after printing why (yt_cluster_stop cleans up either way). */
int yt_auth_cluster_start(yt_cluster_t *c, yt_key_t *keys, size_t n, char *const extra_env[]);

/* Runs the script (argv[0] is the interpreter's path) in its own process
 * group with stdout and stderr in <dir>/<name>.out and its pid in
 * <dir>/<name>.pid; after timeout_s the whole group is killed. Then kills
 * anything left in the group (a browser it started) and prints at most the
 * first 24 KiB of its output. Returns its exit status, or -1 when it could
 * not run, was killed or timed out. */
int yt_script_run(yt_env_t *env, const char *name, char *const argv[], int timeout_s);

#endif
