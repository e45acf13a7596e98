/*
 * exec_reaper.h - nothing an exec job starts outlives the job.
 *
 * A job's program runs in its own process group, and the group is killed
 * at the end; but a program can leave its group (setsid, setpgid) and
 * escape that. So the worker is a child subreaper (PR_SET_CHILD_SUBREAPER):
 * whatever the program left behind becomes the worker's child once its own
 * parent is gone. The worker starts no other processes, so every child of
 * the worker that is not the program of a running job is such an escapee,
 * and wk_reaper_sweep kills (SIGKILL, its group too) and reaps it, again
 * until none is left: its own children come next, in turn.
 *
 * A program is registered between fork and the sweep's look, under one
 * lock, so a sweep never mistakes a program just started for an escapee.
 */
#ifndef WK_EXEC_REAPER_H
#define WK_EXEC_REAPER_H

#include <sys/types.h>

/* Makes the worker a subreaper. Returns 0, or YARD_EIO (logged). */
int wk_reaper_init(void);

/* Held across fork() and wk_reaper_add of a job's program. */
void wk_reaper_lock(void);
void wk_reaper_unlock(void);

/* Registers / forgets a running job's program (lock held for add). */
void wk_reaper_add(pid_t pid);
void wk_reaper_remove(pid_t pid);

/* Kills and reaps every child of the worker that is not a registered
 * program. Returns how many it killed. */
int wk_reaper_sweep(void);

#endif
