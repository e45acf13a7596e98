/*
 * fuzz_envelope.c - libFuzzer target for the envelope decoder.
 *
 * Decodes arbitrary bytes. When that succeeds, the envelope must encode
 * (into exactly yard_env_encoded_size_max bytes), decode again to an equal
 * envelope, and encode again to the same bytes; otherwise abort(). Crashes,
 * out-of-bounds reads and undefined behaviour are caught by the sanitizers.
 * Build and run: see tests/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    yard_envelope_t first, second;
    size_t len = 0, len2 = 0;
    if (yard_env_decode(&first, (const char *)data, size) != 0)
        return 0;
    size_t cap = yard_env_encoded_size_max(&first);
    char *buf = malloc(cap), *buf2 = malloc(cap);
    if (!buf || !buf2)
        abort();
    if (yard_env_encode(&first, buf, cap, &len) != 0 || len != cap) /* a decoded env is valid */
        abort();
    if (yard_env_decode(&second, buf, len) != 0 || !yard_env_equal(&first, &second))
        abort();
    if (yard_env_encode(&second, buf2, cap, &len2) != 0 || len2 != len ||
        memcmp(buf, buf2, len) != 0) /* the encoding is canonical */
        abort();
    free(buf);
    free(buf2);
    return 0;
}
