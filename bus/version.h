/*
 * version.h - what build of Switchyard this is: the release version (here)
 * and the git commit it was built from (given by the Makefile at build
 * time), for yard_build_info and the programs' logs.
 */
#ifndef YARD_VERSION_H
#define YARD_VERSION_H

#define YARD_VERSION "0.1.0"

/* The short git commit of the source tree the program was built from
 * (`git rev-parse --short HEAD` when make ran), or "unknown" when it was not
 * built from a git checkout. Never NULL; static storage. */
const char *yard_build_commit(void);

#endif
