/*
 * fuzz_sealed.c - libFuzzer target for sealed secrets blobs as a worker
 * receives them from JetStream (bus/sealed.c, yard_keyring_open). The
 * keyring holds one fixed key (its seed blob, sealed with it, opens). Any
 * result but the documented codes, a plaintext of the wrong length or
 * without its NUL, or a key id that is not 8 hex characters aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sealed.h"

/* 32 bytes 0x01..0x20 in base64: the fuzz keyring's private key. */
#define FUZZ_PRIVATE_KEY "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="

static yard_keyring_t *ring;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ring && yard_keyring_create(&ring, FUZZ_PRIVATE_KEY) != 0)
        abort();
    char *out = NULL;
    size_t out_len = 0;
    char kid[YARD_SEALED_KEY_ID_LEN + 1];
    memset(kid, 'Z', sizeof kid);
    int rc = yard_keyring_open(ring, (const char *)data, size, &out, &out_len, kid);
    switch (rc) {
    case 0:
        if (!out || out[out_len] != '\0' || size < out_len)
            abort();
        yard_sealed_free(out, out_len + 1);
        break;
    case YARD_ENOTFOUND:
    case YARD_EAUTH:
        if (out || kid[YARD_SEALED_KEY_ID_LEN] != '\0' ||
            strspn(kid, "0123456789abcdef") != YARD_SEALED_KEY_ID_LEN)
            abort();
        break;
    case YARD_EFORMAT:
    case YARD_ENOMEM:
        if (out)
            abort();
        break;
    default:
        abort();
    }
    return 0;
}
