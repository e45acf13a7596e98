/*
 * cron.h - cron expressions and their next firing in an IANA time zone.
 *
 * A schedule's `cron` is five fields (minute hour day-of-month month
 * day-of-week) or one of @hourly, @daily (@midnight), @weekly, @monthly,
 * @yearly (@annually). A field is a comma list of `*`, `n`, `a-b`, each
 * optionally `/step` (`a/step` runs from a to the field's end); months and
 * days of the week also take English three-letter names; day-of-week 7 is
 * Sunday like 0. When both day fields are restricted (neither starts with
 * `*`) a day matches either, as in Vixie cron; otherwise both must match.
 *
 * Times are wall-clock times of the schedule's zone, with DST handled so:
 * a local time that does not exist that day (the spring gap) is skipped;
 * one that happens twice (the autumn repeat) fires once, at its first
 * occurrence. So "30 2 * * *" in Europe/Berlin skips the last Sunday of
 * March and fires once on the last Sunday of October, and an hourly
 * schedule fires 23 times on the first and 24 times on the second.
 *
 * Zones are read by the C library from the system's zoneinfo (tzdata);
 * libc keeps one process-wide zone, so every conversion here takes one
 * lock and no other code of the process may use localtime/mktime.
 */
#ifndef YARD_CRON_H
#define YARD_CRON_H

#include <stddef.h>
#include <stdint.h>

#define YARD_CRON_TEXT_MAX 255 /* longest cron text accepted */
#define YARD_TZ_NAME_MAX 64    /* longest zone name accepted */

typedef struct {
    uint64_t minutes; /* bit m: minute m (0..59) */
    uint32_t hours;   /* bit h: hour h (0..23) */
    uint32_t mdays;   /* bit d: day of month d (1..31) */
    uint16_t months;  /* bit m: month m (1..12) */
    uint8_t wdays;    /* bit w: day of week w (0 Sunday..6) */
    uint8_t mday_star, wday_star; /* the day field started with '*' */
} yard_cron_t;

/* Parses text into *out. Returns 0, or YARD_EINVAL with why (cap bytes, may
 * be NULL when cap is 0) naming the field that is wrong; *out is set only
 * on success. */
int yard_cron_parse(yard_cron_t *out, const char *text, char *why, size_t cap);

/* Nonzero when name is a zone of the system's zoneinfo ("UTC",
 * "Europe/Berlin"): a safe relative path to a TZif file. */
int yard_tz_valid(const char *name);

/* Sets *out_s to the first firing of c in zone tz strictly after after_s
 * (Unix seconds; firings fall on whole minutes). Returns 0, YARD_EINVAL for
 * an invalid zone, or YARD_ENOTFOUND when c never fires within 30 years
 * ("0 0 30 2 *"). */
int yard_cron_next(int64_t *out_s, const yard_cron_t *c, const char *tz, int64_t after_s);

#endif
