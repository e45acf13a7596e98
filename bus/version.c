/*
 * version.c - the build's commit (version.h). The only file compiled with
 * -DYARD_COMMIT, so a new commit rebuilds this file and relinks, nothing
 * more.
 */
#include "version.h"

#ifndef YARD_COMMIT
#define YARD_COMMIT "unknown"
#endif

const char *yard_build_commit(void)
{
    return YARD_COMMIT[0] ? YARD_COMMIT : "unknown";
}
