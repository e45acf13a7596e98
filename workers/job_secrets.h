/*
 * job_secrets.h - the execute worker's side of sealed job secrets.
 *
 * The worker holds the private keys of cfg.secrets_private_keys in a keyring
 * (bus/sealed.h) and opens a job's sealed `secrets` on the handler thread
 * just before its handler runs; the plaintext is wiped as soon as the
 * handler returns. A job whose secrets do not open is failed for good, with
 * an error naming the key id, so ops can add the key and replay it.
 */
#ifndef WK_JOB_SECRETS_H
#define WK_JOB_SECRETS_H

#include <stddef.h>

#include "envelope.h"
#include "handler.h"
#include "sealed.h"
#include "wk.h"

/* Builds wk->keyring from wk->cfg.secrets_private_keys, then wipes that
 * config string. Returns 0 (an empty setting gives an empty keyring: jobs
 * with secrets then fail), or YARD_ECONFIG / YARD_ECRYPTO / YARD_ENOMEM,
 * logged. */
int wk_secrets_keyring_create(wk_t *wk);

/* Opens the sealed blob of a job. Returns 0 and sets *out (NUL-terminated;
 * release with yard_sealed_free(*out, *out_len + 1)) and *out_len; or a
 * negative YARD_E* after setting res (zeroed first) to FAIL with a reason
 * naming the key id (RETRY for YARD_ENOMEM), which the runtime records and
 * logs with the outcome like any handler's; no secret byte is in it. */
int wk_secrets_open(const yard_keyring_t *k, yard_str_t sealed, char **out, size_t *out_len,
                    wk_result_t *res);

#endif
