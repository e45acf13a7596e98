/*
 * yt_nats_cluster.h - a 3-node NATS JetStream cluster on loopback for tests,
 * made of the shipped configuration (ops/nats/common.conf and
 * ops/nats/node-<n>.conf).
 *
 * Each node runs from a copy of its configuration file in the test's folder
 * whose only change is the JetStream store folder (nats-server refuses a
 * store_dir in the file together with -sd); ports, the route port and the
 * routes to the other two nodes are free loopback ports given on the command
 * line, which nats-server lets override the file. Server names, the cluster
 * name, max_payload and the JetStream limits come from the files as shipped,
 * so a test of the cluster also tests them. Every node's PID goes into
 * <dir>/nats-<n>.pid (tests/run.sh stops leftovers), its log into
 * <dir>/nats-<n>.log.
 */
#ifndef YARD_TEST_YT_NATS_CLUSTER_H
#define YARD_TEST_YT_NATS_CLUSTER_H

#include <sys/types.h>

#include "harness.h"

#define YT_NATS_NODES 3

typedef struct {
    pid_t pid;          /* 0 while stopped */
    int port;           /* clients */
    int mon_port;       /* monitoring: /healthz, /jsz */
    int route_port;     /* cluster routes */
    char name[16];      /* nats-<n> (log and pid file); the server is yard-nats-<n> */
    char conf[512];     /* its copy of ops/nats/node-<n>.conf */
    char store[512];    /* its JetStream store folder */
} yt_nats_node_t;

typedef struct {
    yt_nats_node_t nodes[YT_NATS_NODES];
    char urls[256]; /* every node's client URL, comma separated */
} yt_nats_cluster_t;

/* Copies the shipped configuration into env's folder, starts the three
 * nodes and waits (up to 60 s) until each answers /healthz and the cluster
 * has a JetStream meta leader. Sets env->nats_url to c->urls, so the
 * harness's gateway and workers connect to all three. Returns 0, or -1
 * after printing why (stop what started with yt_nats_cluster_stop). */
int yt_nats_cluster_start(yt_nats_cluster_t *c, yt_env_t *env);

/* Stops node i (SIGTERM, then SIGKILL after 10 s); its store is kept.
 * Returns 0 or -1. */
int yt_nats_node_stop(yt_env_t *env, yt_nats_cluster_t *c, int i);

/* Starts node i again on its ports with its store, and waits up to 60 s
 * until it serves JetStream (/healthz?js-enabled-only=true): it may still be
 * catching up; a test waits for the streams it needs. Returns 0 or -1 after
 * printing why. (The full /healthz of a restarted node stayed 503 for over a
 * minute with an idle consumer "not current" on nats-server 2.9.10.) */
int yt_nats_node_start(yt_env_t *env, yt_nats_cluster_t *c, int i);

/* Waits up to timeout_ms until every running node reports the same
 * non-empty JetStream meta leader in /jsz. Copies its server name into
 * leader (cap bytes; may be NULL). Returns 0, or -1 at the deadline. */
int yt_nats_cluster_wait_leader(yt_nats_cluster_t *c, int timeout_ms, char *leader, size_t cap);

/* Stops every running node. */
void yt_nats_cluster_stop(yt_env_t *env, yt_nats_cluster_t *c);

#endif
