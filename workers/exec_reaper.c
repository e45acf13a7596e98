/*
 * exec_reaper.c - kills what exec jobs leave behind (see exec_reaper.h).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "exec_reaper.h"
#include "log.h"

#define MAX_PROGRAMS 4096 /* programs running at once (handler threads bound it far lower) */
#define SWEEP_ROUNDS 64   /* an escapee's own children are found in the next round */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t g_programs[MAX_PROGRAMS];
static size_t g_nprograms;

int wk_reaper_init(void)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
        YARD_LOG_ERROR(NULL, "exec: cannot become a child subreaper: %s", strerror(errno));
        return YARD_EIO;
    }
    return 0;
}

void wk_reaper_lock(void)
{
    pthread_mutex_lock(&g_mu);
}

void wk_reaper_unlock(void)
{
    pthread_mutex_unlock(&g_mu);
}

void wk_reaper_add(pid_t pid)
{
    if (g_nprograms < MAX_PROGRAMS)
        g_programs[g_nprograms++] = pid;
}

void wk_reaper_remove(pid_t pid)
{
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_nprograms; i++)
        if (g_programs[i] == pid) {
            g_programs[i] = g_programs[--g_nprograms];
            break;
        }
    pthread_mutex_unlock(&g_mu);
}

static int is_program(pid_t pid)
{
    for (size_t i = 0; i < g_nprograms; i++)
        if (g_programs[i] == pid)
            return 1;
    return 0;
}

/* The parent of pid from /proc/<pid>/stat, or -1. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* pid (comm) state ppid ...: comm may hold spaces and parentheses. */
    char *close = strrchr(buf, ')');
    int ppid;
    if (!close || sscanf(close + 1, " %*c %d", &ppid) != 1)
        return -1;
    return (pid_t)ppid;
}

/* One pass over /proc: kills the escapees among the worker's children.
 * Called with g_mu held. Returns how many it killed. */
static int sweep_once(pid_t self)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    pid_t found[256];
    int n = 0;
    if (!d)
        return 0;
    while ((de = readdir(d)) && n < (int)(sizeof found / sizeof found[0])) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == self)
            continue;
        if (parent_of((pid_t)pid) == self && !is_program((pid_t)pid))
            found[n++] = (pid_t)pid;
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        kill(found[i], SIGKILL);
        kill(-found[i], SIGKILL); /* its group, if it leads one */
    }
    for (int i = 0; i < n; i++) {
        int status;
        for (int k = 0; k < 100; k++) {
            pid_t r = waitpid(found[i], &status, WNOHANG);
            if (r == found[i] || (r < 0 && errno == ECHILD))
                break;
            usleep(1000);
        }
    }
    return n;
}

int wk_reaper_sweep(void)
{
    pid_t self = getpid();
    int total = 0;
    pthread_mutex_lock(&g_mu);
    for (int round = 0; round < SWEEP_ROUNDS; round++) {
        int n = sweep_once(self);
        total += n;
        if (!n)
            break;
    }
    pthread_mutex_unlock(&g_mu);
    if (total)
        YARD_LOG_WARN(NULL, "exec: killed %d process%s an exec job left running outside its "
                            "process group",
                      total, total == 1 ? "" : "es");
    return total;
}
