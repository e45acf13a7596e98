/*
 * redact.h - connection strings with their secrets hidden, for printing
 * and logging.
 *
 * One function covers what the programs print: NATS URLs (a list, comma
 * separated; `user:password@` or a lone token `token@`), PostgreSQL URLs
 * (`postgresql://user:password@host/db?sslpassword=...`) and PostgreSQL
 * conninfo strings (`host=... password='a b\'c'`). Every secret becomes
 * `***`; everything else is kept, so an operator still sees where a
 * program connects.
 */
#ifndef YARD_REDACT_H
#define YARD_REDACT_H

#include <stddef.h>

/* Writes in to out (cap bytes, always NUL-terminated, truncated if need
 * be) with the secrets replaced by ***:
 *   - in a URL, the password of `user:password@`, and the whole user part
 *     of a nats://, tls://, ws:// or wss:// URL without a colon (a token);
 *   - the values of password, sslpassword, token, pass and secret, in a
 *     URL's query or in conninfo `key=value` pairs (quoted values too).
 * Returns out. */
char *yard_redact_dsn(char *out, size_t cap, const char *in);

#endif
