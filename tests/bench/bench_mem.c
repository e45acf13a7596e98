/*
 * bench_mem.c - the memory of every process the bench measures: a thread
 * samples RSS and PSS every 100 ms (as the peers' harness does), PostgreSQL
 * as the sum over its postmaster's process tree; a single process's peak RSS
 * is then taken from the kernel (VmHWM), which misses no peak (bench.h).
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define SAMPLE_US 100000
#define MAX_TREE 256

static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t mem_thread;
static int mem_running;

void bench_mem_track(bench_t *b, const char *name, pid_t pid, int owned, int tree)
{
    pthread_mutex_lock(&mem_lock);
    bench_proc_t *p = NULL;
    for (int i = 0; i < b->nprocs; i++)
        if (strcmp(b->procs[i].name, name) == 0)
            p = &b->procs[i]; /* started again (the R3 section): same row */
    if (!p && b->nprocs < BENCH_MAX_PROCS) {
        p = &b->procs[b->nprocs++];
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", name);
    }
    if (p) {
        p->pid = pid;
        p->owned = owned;
        p->tree = tree;
    }
    pthread_mutex_unlock(&mem_lock);
}

/* A "Key:   N kB" line of a /proc file, in KiB; -1 when absent. */
static long proc_kb(pid_t pid, const char *file, const char *key)
{
    char path[64], line[256];
    size_t klen = strlen(key);
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0) {
            kb = atol(line + klen);
            break;
        }
    if (f)
        fclose(f);
    return kb;
}

static pid_t parent_of(pid_t pid)
{
    char buf[512];
    const char *p = bench_proc_stat(pid, buf, sizeof buf);
    int ppid = 0;
    if (!p || sscanf(p, "%*c %d", &ppid) != 1)
        return 0;
    return ppid;
}

/* root and its children (PostgreSQL's backends are one level down). */
static int tree_of(pid_t root, pid_t *out, int cap)
{
    int n = 0;
    out[n++] = root;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n < cap) {
        pid_t pid = atoi(e->d_name);
        if (pid > 0 && pid != root && parent_of(pid) == root)
            out[n++] = pid;
    }
    if (d)
        closedir(d);
    return n;
}

static void sample(bench_t *b)
{
    double total_pss = 0;
    pid_t pids[MAX_TREE];
    pthread_mutex_lock(&mem_lock);
    for (int i = 0; i < b->nprocs; i++) {
        bench_proc_t *p = &b->procs[i];
        if (p->pid <= 0)
            continue;
        int n = p->tree ? tree_of(p->pid, pids, MAX_TREE) : 1;
        if (!p->tree)
            pids[0] = p->pid;
        double rss = 0, pss = 0;
        for (int k = 0; k < n; k++) {
            long r = proc_kb(pids[k], "status", "VmRSS:");
            long s = proc_kb(pids[k], "smaps_rollup", "Pss:");
            rss += r > 0 ? r / 1024.0 : 0;
            pss += s > 0 ? s / 1024.0 : 0;
        }
        p->nprocs = n;
        if (rss > p->peak_rss_mib)
            p->peak_rss_mib = rss;
        if (pss > p->peak_pss_mib)
            p->peak_pss_mib = pss;
        total_pss += pss;
    }
    if (total_pss > b->mem_total_pss_mib)
        b->mem_total_pss_mib = total_pss;
    b->mem_samples++;
    pthread_mutex_unlock(&mem_lock);
}

static void *sampler(void *arg)
{
    bench_t *b = arg;
    for (;;) {
        pthread_mutex_lock(&mem_lock);
        int run = mem_running;
        pthread_mutex_unlock(&mem_lock);
        if (!run) {
            struct timespec cpu;
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
            b->mem_cpu_s = (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9; /* joined next */
            return NULL;
        }
        sample(b);
        usleep(SAMPLE_US);
    }
}

int bench_mem_start(bench_t *b)
{
    mem_running = 1;
    if (pthread_create(&mem_thread, NULL, sampler, b) != 0) {
        mem_running = 0;
        fprintf(stderr, "bench: cannot start the memory sampler\n");
        return -1;
    }
    return 0;
}

void bench_mem_stop(bench_t *b)
{
    pthread_mutex_lock(&mem_lock);
    int was = mem_running;
    mem_running = 0;
    pthread_mutex_unlock(&mem_lock);
    if (was)
        pthread_join(mem_thread, NULL);
}

void bench_mem_final(bench_t *b, int i)
{
    pthread_mutex_lock(&mem_lock);
    bench_proc_t *p = &b->procs[i];
    if (p->pid > 0 && !p->tree) {
        long hwm = proc_kb(p->pid, "status", "VmHWM:");
        if (hwm > 0 && hwm / 1024.0 > p->peak_rss_mib)
            p->peak_rss_mib = hwm / 1024.0;
    }
    pthread_mutex_unlock(&mem_lock);
}
