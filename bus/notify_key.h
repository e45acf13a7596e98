/*
 * notify_key.h - the secret that signs an API key's webhooks.
 *
 * Each API key has its own webhook secret, derived from the cluster's
 * notify_secret and the key's id: hex(HMAC-SHA256(notify_secret,
 * "switchyard-notify-key:" + key id)). Nothing is stored: the notify role
 * derives it to sign (notify.c), `yardctl keys notify-secret` derives it
 * for the key's owner, and rotating notify_secret rotates every key's.
 * Jobs submitted without a key (auth disabled) are signed with
 * notify_secret itself.
 */
#ifndef YARD_NOTIFY_KEY_H
#define YARD_NOTIFY_KEY_H

#define YARD_NOTIFY_KEY_SECRET_LEN 64 /* hex characters */

/* Writes key_id's webhook secret (64 hex characters and a NUL) into out.
 * notify_secret must not be empty; key_id is the key's id as text (the
 * envelope's "key": a canonical lowercase UUID). Returns 0, or YARD_EINVAL
 * for an empty secret or key id, or YARD_ECRYPTO when libsodium cannot
 * start. */
int yard_notify_key_secret(char out[YARD_NOTIFY_KEY_SECRET_LEN + 1], const char *notify_secret,
                           const char *key_id);

#endif
