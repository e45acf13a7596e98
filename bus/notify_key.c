/*
 * notify_key.c - per-key webhook secrets (notify_key.h).
 */
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "notify_key.h"

#define NOTIFY_KEY_CONTEXT "switchyard-notify-key:"

int yard_notify_key_secret(char out[YARD_NOTIFY_KEY_SECRET_LEN + 1], const char *notify_secret,
                           const char *key_id)
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    if (!notify_secret || !notify_secret[0] || !key_id || !key_id[0])
        return YARD_EINVAL;
    if (sodium_init() < 0)
        return YARD_ECRYPTO;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)notify_secret, strlen(notify_secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)NOTIFY_KEY_CONTEXT,
                                  sizeof NOTIFY_KEY_CONTEXT - 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)key_id, strlen(key_id));
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(out, YARD_NOTIFY_KEY_SECRET_LEN + 1, mac, sizeof mac);
    sodium_memzero(&st, sizeof st);
    return 0;
}
