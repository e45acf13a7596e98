/*
 * err.h - libyard's error codes.
 *
 * Every libyard function that can fail returns int: 0 on success or a
 * negative YARD_E* code. Errors from nats.c, libpq, msgpack and the OS are
 * converted once, where they are called, and logged there with context.
 */
#ifndef YARD_ERR_H
#define YARD_ERR_H

enum {
    YARD_OK = 0,
    YARD_EINVAL = -1,      /* an argument or input is invalid */
    YARD_ENOMEM = -2,      /* an allocation failed */
    YARD_ETRUNC = -3,      /* input ended before a complete value */
    YARD_EFORMAT = -4,     /* input is malformed (wrong type, bad bytes) */
    YARD_EVERSION = -5,    /* envelope version this code cannot read */
    YARD_ERANGE = -6,      /* a value is out of its allowed range */
    YARD_EIO = -7,         /* a system call failed (see errno in the log) */
    YARD_ENOTFOUND = -8,   /* the named thing does not exist */
    YARD_EEXIST = -9,      /* the thing exists already */
    YARD_ETIMEOUT = -10,   /* an operation did not finish in time */
    YARD_EUNAVAIL = -11,   /* NATS / JetStream / PostgreSQL unreachable */
    YARD_ENATS = -12,      /* NATS or JetStream answered with an error */
    YARD_EPG = -13,        /* PostgreSQL answered with an error */
    YARD_EDUPLICATE = -14, /* a publish was a duplicate of an earlier one */
    YARD_ECONFIG = -15,    /* the configuration is invalid */
    YARD_EAUTH = -16,      /* authentication or authorisation failed */
    YARD_EBUSY = -17,      /* a limit is reached; try again later */
    YARD_ESTATE = -18,     /* the operation is not allowed in this state */
    YARD_ECRYPTO = -19,    /* libsodium failed to initialise */
    YARD_ENOSPACE = -20,   /* JetStream's store is full (insufficient resources) */
    YARD_ELAST = -21       /* not an error: one past the last code */
};

/* Returns a static, human-readable description of code; never NULL. */
const char *yard_strerror(int code);

/* Returns the code's short stable name ("EINVAL"), for logs and JSON. */
const char *yard_errname(int code);

#endif
