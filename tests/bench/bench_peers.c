/*
 * bench_peers.c - `make bench BENCH_ARGS=--peers`: runs the peers' harness
 * through tests/bench/peers.py (BullMQ with AOF, beanstalkd with its
 * binlog), after Switchyard's runs, and keeps its document for the
 * side-by-side table (bench.h).
 */
#include <stdio.h>

#include "bench.h"

int bench_peers_run(bench_t *b)
{
    char cmd[1024];
    int rc;
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/bench/peers.py'", yt_src_dir());
    json_t *doc = bench_popen_json(cmd, &rc);
    if (!doc) {
        fprintf(stderr, "bench: peers.py printed no results (exit %d)\n", rc);
        return -1;
    }
    if (rc != 0)
        fprintf(stderr, "bench: peers.py exited %d: some peer figures are missing\n", rc);
    b->peers_doc = doc;
    return 0;
}

double bench_peer_num(const bench_t *b, const char *peer, const char *col, const char *key)
{
    json_t *peers = json_object_get(b->peers_doc, "peers");
    json_t *v = json_object_get(json_object_get(json_object_get(json_object_get(peers, peer),
                                                                col), "median"), key);
    return json_is_number(v) ? json_number_value(v) : -1;
}
