/*
 * cron.c - cron parsing and next-firing computation (cron.h).
 *
 * The search walks the zone's calendar day by day in plain arithmetic (no
 * libc), and asks libc only for the candidate minutes of matching days:
 * each wall-clock time is converted to UTC twice (as standard and as
 * daylight time) and kept only where converting back gives the same wall
 * time, which is how a time in the gap (no instant) and a repeated time (two
 * instants, the earlier kept) are told apart.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "err.h"

#define CRON_HORIZON_DAYS (30 * 366)
#define TZ_DIR "/usr/share/zoneinfo/"

/* ---- parsing ----------------------------------------------------------- */

typedef struct {
    const char *name;
    int lo, hi;
    const char *const *names; /* names[i] is value lo + i, or NULL */
} cron_field_t;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const wday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const cron_field_t fields[5] = {
    {"minute", 0, 59, NULL},     {"hour", 0, 23, NULL},           {"day of month", 1, 31, NULL},
    {"month", 1, 12, month_names}, {"day of week", 0, 7, wday_names},
};

static const struct {
    const char *alias, *expansion;
} aliases[] = {
    {"@hourly", "0 * * * *"},  {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},  {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

/* Reads a number or a name of f at *p (advancing it) into *v. */
static int cron_value(const cron_field_t *f, const char **p, int *v)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        int n = 0;
        while (isdigit((unsigned char)*s) && n <= 1000)
            n = n * 10 + (*s++ - '0');
        if (n < f->lo || n > f->hi)
            return YARD_ERANGE;
        *v = n;
        *p = s;
        return 0;
    }
    for (int i = 0; f->names && f->names[i]; i++)
        if (strncasecmp(s, f->names[i], 3) == 0) {
            *v = f->lo + i;
            *p = s + 3;
            return 0;
        }
    return YARD_EINVAL;
}

/* Parses one field text (len bytes at s) of f into the bits of *bits. */
static int cron_field(const cron_field_t *f, const char *s, size_t len, uint64_t *bits,
                      char *why, size_t cap)
{
    char buf[YARD_CRON_TEXT_MAX + 1];
    memcpy(buf, s, len);
    buf[len] = '\0';
    uint64_t out = 0;
    if (buf[0] == ',' || buf[len - 1] == ',' || strstr(buf, ",,")) {
        if (cap)
            snprintf(why, cap, "cron %s field `%s` has an empty list item", f->name, buf);
        return YARD_EINVAL;
    }
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        const char *p = item;
        int lo, hi, step = 1, rc = 0;
        if (*p == '*') {
            lo = f->lo;
            hi = f->hi;
            p++;
        } else if ((rc = cron_value(f, &p, &lo)) == 0) {
            hi = lo;
            if (*p == '-') {
                p++;
                rc = cron_value(f, &p, &hi);
            } else if (*p == '/') {
                hi = f->hi;
            }
        }
        if (rc == 0 && *p == '/') {
            p++;
            if (!isdigit((unsigned char)*p))
                rc = YARD_EINVAL;
            for (step = 0; rc == 0 && isdigit((unsigned char)*p) && step <= 100; p++)
                step = step * 10 + (*p - '0');
            if (rc == 0 && (step < 1 || step > f->hi - f->lo + 1))
                rc = YARD_ERANGE;
        }
        if (rc == 0 && (*p != '\0' || lo > hi))
            rc = YARD_EINVAL;
        if (rc < 0) {
            if (cap)
                snprintf(why, cap, "cron %s field `%s` is not valid (allowed: %d-%d)", f->name,
                         item, f->lo, f->hi);
            return YARD_EINVAL;
        }
        for (int v = lo; v <= hi; v += step)
            out |= UINT64_C(1) << v;
    }
    if (out == 0) {
        if (cap)
            snprintf(why, cap, "cron %s field is empty", f->name);
        return YARD_EINVAL;
    }
    *bits = out;
    return 0;
}

int yard_cron_parse(yard_cron_t *out, const char *text, char *why, size_t cap)
{
    if (!text || strlen(text) > YARD_CRON_TEXT_MAX) {
        if (cap)
            snprintf(why, cap, "cron is longer than %d bytes", YARD_CRON_TEXT_MAX);
        return YARD_EINVAL;
    }
    while (isspace((unsigned char)*text))
        text++;
    if (*text == '@') {
        size_t n = strlen(text);
        while (n > 0 && isspace((unsigned char)text[n - 1]))
            n--;
        for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
            if (strlen(aliases[i].alias) == n && strncasecmp(text, aliases[i].alias, n) == 0)
                return yard_cron_parse(out, aliases[i].expansion, why, cap);
        if (cap)
            snprintf(why, cap, "cron: unknown name (use @hourly, @daily, @midnight, @weekly, "
                               "@monthly, @yearly or @annually)");
        return YARD_EINVAL;
    }
    uint64_t bits[5];
    int star[5] = {0};
    const char *p = text;
    for (int i = 0; i < 5; i++) {
        while (isspace((unsigned char)*p))
            p++;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (p == start) {
            if (cap)
                snprintf(why, cap, "cron needs 5 fields (minute hour day-of-month month "
                                   "day-of-week) or an @ name; the %s field is missing",
                         fields[i].name);
            return YARD_EINVAL;
        }
        star[i] = *start == '*';
        if (cron_field(&fields[i], start, (size_t)(p - start), &bits[i], why, cap) < 0)
            return YARD_EINVAL;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p) {
        if (cap)
            snprintf(why, cap, "cron has more than 5 fields");
        return YARD_EINVAL;
    }
    yard_cron_t c;
    c.minutes = bits[0];
    c.hours = (uint32_t)bits[1];
    c.mdays = (uint32_t)bits[2];
    c.months = (uint16_t)bits[3];
    c.wdays = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7f); /* 7 is Sunday */
    c.mday_star = (uint8_t)star[2];
    c.wday_star = (uint8_t)star[4];
    *out = c;
    return 0;
}

/* ---- zones --------------------------------------------------------------- */

int yard_tz_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > YARD_TZ_NAME_MAX || name[0] == '/' || name[0] == '.' ||
        strstr(name, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!isalnum((unsigned char)c) && c != '/' && c != '_' && c != '-' && c != '+')
            return 0;
    }
    char path[sizeof TZ_DIR + YARD_TZ_NAME_MAX + 1], magic[4] = {0};
    snprintf(path, sizeof path, "%s%s", TZ_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return got == sizeof magic && memcmp(magic, "TZif", 4) == 0;
}

/* libc's zone is process-wide and comes from TZ: one lock around switching
 * and using it. TZ is this buffer, put into the environment once before
 * main (no thread runs yet), and rewritten in place afterwards: setenv at
 * run time could move the environment under another thread's getenv
 * (libpq calls it when it connects). The process starts in UTC. */
static pthread_mutex_t tz_mu = PTHREAD_MUTEX_INITIALIZER;
static char tz_env[sizeof "TZ=:" + YARD_TZ_NAME_MAX] = "TZ=:UTC";
#define TZ_NAME (tz_env + sizeof "TZ=:" - 1)

__attribute__((constructor)) static void tz_env_init(void)
{
    putenv(tz_env);
    tzset();
}

/* With tz_mu held: makes name (valid, at most YARD_TZ_NAME_MAX bytes) libc's
 * zone. */
static void tz_use(const char *name)
{
    if (strcmp(TZ_NAME, name) == 0)
        return;
    snprintf(TZ_NAME, sizeof tz_env - (sizeof "TZ=:" - 1), "%s", name);
    tzset();
}

/* ---- calendar arithmetic (proleptic Gregorian, days since 1970-01-01) ---- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int cron_day_matches(const yard_cron_t *c, int m, int d, int wday)
{
    if (!(c->months >> m & 1u))
        return 0;
    int md = (int)(c->mdays >> d & 1u), wd = (int)(c->wdays >> wday & 1u);
    if (c->mday_star || c->wday_star)
        return md && wd;
    return md || wd;
}

/* With tz_mu held: the first instant whose wall time in the current zone is
 * y-m-d h:mi, into *out. Returns 0, or YARD_ENOTFOUND when that wall time
 * does not exist (a DST gap). */
static int wall_to_instant(int64_t *out, int64_t y, int m, int d, int h, int mi)
{
    int found = 0;
    int64_t best = 0;
    for (int dst = 0; dst <= 1; dst++) {
        struct tm tm = {0}, back;
        tm.tm_year = (int)(y - 1900);
        tm.tm_mon = m - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_isdst = dst;
        time_t t = mktime(&tm);
        if (t == (time_t)-1 || !localtime_r(&t, &back))
            continue;
        if (back.tm_year != (int)(y - 1900) || back.tm_mon != m - 1 || back.tm_mday != d ||
            back.tm_hour != h || back.tm_min != mi)
            continue;
        if (!found || (int64_t)t < best)
            best = (int64_t)t;
        found = 1;
    }
    if (!found)
        return YARD_ENOTFOUND;
    *out = best;
    return 0;
}

int yard_cron_next(int64_t *out_s, const yard_cron_t *c, const char *tz, int64_t after_s)
{
    if (!yard_tz_valid(tz))
        return YARD_EINVAL;
    int rc = YARD_ENOTFOUND;
    pthread_mutex_lock(&tz_mu);
    tz_use(tz);
    /* The wall time of the first whole minute after after_s. */
    time_t start = (time_t)((after_s - ((after_s % 60) + 60) % 60) + 60);
    struct tm lt;
    if (!localtime_r(&start, &lt)) {
        pthread_mutex_unlock(&tz_mu);
        return YARD_EINVAL;
    }
    int64_t day = days_from_civil(lt.tm_year + 1900LL, lt.tm_mon + 1, lt.tm_mday);
    int first_minute = lt.tm_hour * 60 + lt.tm_min;
    for (int i = 0; i < CRON_HORIZON_DAYS && rc == YARD_ENOTFOUND; i++, day++) {
        int64_t y;
        int m, d;
        civil_from_days(day, &y, &m, &d);
        int wday = (int)(((day % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
        if (!cron_day_matches(c, m, d, wday))
            continue;
        for (int h = 0; h < 24 && rc == YARD_ENOTFOUND; h++) {
            if (!(c->hours >> h & 1u) || (i == 0 && h * 60 + 59 < first_minute))
                continue;
            for (int mi = 0; mi < 60; mi++) {
                int64_t t;
                if (!(c->minutes >> mi & 1u) || (i == 0 && h * 60 + mi < first_minute))
                    continue;
                /* A repeated time whose first occurrence is past was fired then. */
                if (wall_to_instant(&t, y, m, d, h, mi) < 0 || t <= after_s)
                    continue;
                *out_s = t;
                rc = 0;
                break;
            }
        }
    }
    pthread_mutex_unlock(&tz_mu);
    return rc;
}
