/*
 * fuzz_cron.c - libFuzzer target for cron texts and their next firing
 * (bus/cron.c). Input: one byte choosing a zone, four bytes of a start time
 * (seconds from 2000 on, spread over ~136 years), then the cron text.
 * Whatever parses must give firings strictly after the start, on whole
 * minutes, and the same firing when asked from one second before it; any
 * breach aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "err.h"

static const char *const zones[] = {"UTC", "Europe/Berlin", "America/New_York",
                                    "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham",
                                    "America/Sao_Paulo", "Mars/Nowhere"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5 || size > YARD_CRON_TEXT_MAX + 6)
        return 0;
    const char *tz = zones[data[0] % (sizeof zones / sizeof zones[0])];
    int64_t after = 946684800 + (int64_t)((uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 |
                                          (uint32_t)data[3] << 8 | data[4]);
    char text[YARD_CRON_TEXT_MAX + 2];
    memcpy(text, data + 5, size - 5);
    text[size - 5] = '\0';
    yard_cron_t c;
    char why[200];
    if (yard_cron_parse(&c, text, why, sizeof why) != 0) {
        if (why[0] == '\0')
            abort(); /* a refusal always says why */
        return 0;
    }
    int64_t t = 0, again = 0;
    int rc = yard_cron_next(&t, &c, tz, after);
    if (rc == YARD_EINVAL && strcmp(tz, "Mars/Nowhere") == 0)
        return 0;
    if (rc == YARD_ENOTFOUND)
        return 0;
    if (rc != 0 || t <= after || t % 60 != 0)
        abort();
    if (yard_cron_next(&again, &c, tz, t - 1) != 0 || again != t)
        abort();
    return 0;
}
