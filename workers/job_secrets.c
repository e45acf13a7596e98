/*
 * job_secrets.c - opens jobs' sealed secrets in the execute worker (see
 * job_secrets.h).
 */
#include <sodium.h>
#include <string.h>

#include "err.h"
#include "job_secrets.h"
#include "log.h"

int wk_secrets_keyring_create(wk_t *wk)
{
    int rc = yard_keyring_create(&wk->keyring, wk->cfg.secrets_private_keys);
    sodium_memzero(wk->cfg.secrets_private_keys, sizeof wk->cfg.secrets_private_keys);
    if (rc < 0) {
        YARD_LOG_ERROR(NULL, "worker: secrets_private_keys cannot be used: %s",
                       yard_strerror(rc));
        return rc;
    }
    YARD_LOG_INFO(NULL, "worker: %zu private key(s) for jobs' sealed secrets",
                  yard_keyring_count(wk->keyring));
    return 0;
}

int wk_secrets_open(const yard_keyring_t *k, yard_str_t sealed, char **out, size_t *out_len,
                    wk_result_t *res)
{
    char key_id[YARD_SEALED_KEY_ID_LEN + 1] = "";
    int rc = yard_keyring_open(k, sealed.ptr, sealed.len, out, out_len, key_id);
    if (rc == 0)
        return 0;
    memset(res, 0, sizeof *res);
    switch (rc) {
    case YARD_ENOTFOUND:
        wk_result_set(res, WK_OUTCOME_FAIL,
                      "secrets: no private key with key id %s on this worker (add it to "
                      "secrets_private_keys, then replay the job)", key_id);
        break;
    case YARD_EAUTH:
        wk_result_set(res, WK_OUTCOME_FAIL,
                      "secrets: the sealed secrets do not open with key id %s (altered, or "
                      "sealed with another key of the same id)", key_id);
        break;
    case YARD_EFORMAT:
        wk_result_set(res, WK_OUTCOME_FAIL, "secrets: not a sealed secrets blob");
        break;
    default:
        wk_result_set(res, WK_OUTCOME_RETRY, "secrets: cannot open: %s", yard_strerror(rc));
        break;
    }
    return rc;
}
