/*
 * ctl_schedules.c - `yardctl schedules list|create|delete|pause|resume`:
 * cron schedules in PostgreSQL, through the same statements as the
 * gateway's /v1/schedules routes (bus/schedules.h) and the same cron and
 * zone checks (bus/cron.h). yardctl acts as an operator: it sees and
 * changes every schedule, whichever key created it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cron.h"
#include "ctl.h"
#include "ctl_out.h"
#include "db.h"
#include "err.h"
#include "log.h"
#include "names.h"
#include "schedules.h"

#define SCHED_CONNECT_TIMEOUT_S 10

const char ctl_schedules_help[] =
    "usage: yardctl schedules list [--json]\n"
    "       yardctl schedules create --name NAME --cron CRON --type TYPE [--timezone TZ]\n"
    "                [--queue Q] [--payload JSON] [--priority low|normal|high]\n"
    "                [--max-attempts N] [--timeout-s N] [--catch-up skip|once] [--paused]\n"
    "                [--json]\n"
    "       yardctl schedules delete NAME\n"
    "       yardctl schedules pause NAME [--json]\n"
    "       yardctl schedules resume NAME [--json]\n"
    "\n"
    "Manages cron schedules (the same ones as /v1/schedules), in PostgreSQL\n"
    "(pg_dsn, YARD_PG_DSN). The schedule role fires each once per firing time,\n"
    "however many replicas run.\n"
    "\n"
    "list     prints every schedule: name, cron, zone, paused, next and last firing\n"
    "         (UTC) and the last job; --json prints {\"schedules\":[...]} as the API.\n"
    "create   creates or replaces schedule NAME. CRON is 5 fields (minute hour\n"
    "         day-of-month month day-of-week) or @hourly, @daily, @weekly,\n"
    "         @monthly, @yearly; TZ an IANA zone (default UTC). A local time\n"
    "         that does not exist that day (DST) is skipped; one that happens\n"
    "         twice fires once. --catch-up says what a firing missed while no\n"
    "         schedule role ran does: skip (default) or once (one job for the\n"
    "         latest missed time). The job options are those of POST /v1/jobs.\n"
    "delete   deletes schedule NAME.\n"
    "pause    stops NAME firing; resume fires it again from now on (missed\n"
    "         firings are not caught up).\n"
    "\n"
    "Exit status: 0 done, 1 failed or no such schedule (see the log on stderr),\n"
    "2 bad arguments.\n";

typedef struct {
    const char *name, *cron, *tz, *type, *queue, *payload, *priority, *catch_up;
    long max_attempts, timeout_s;
    int paused, json;
} sched_opts_t;

/* Matches argv[*i] against opt as "--opt VALUE" or "--opt=VALUE": 1 (value
 * set), 0 (another option), -1 (value missing). */
static int sched_opt(const char **value, int argc, char **argv, int *i, const char *opt)
{
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *value = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

static int sched_connect(PGconn **c, const yard_config_t *cfg)
{
    return yard_db_connect(c, cfg->pg_dsn, SCHED_CONNECT_TIMEOUT_S) < 0 ? CTL_EXIT_FAIL
                                                                       : CTL_EXIT_OK;
}

/* Prints one schedule's JSON as a table row or as is. */
static void sched_print_row(json_t *s)
{
    const char *last_job = json_string_value(json_object_get(s, "last_job_id"));
    const char *next = json_string_value(json_object_get(s, "next_fire_at"));
    const char *last = json_string_value(json_object_get(s, "last_fire_at"));
    printf("%-24s %-16s %-18s %-6s %-20s %-20s %s\n",
           json_string_value(json_object_get(s, "name")),
           json_string_value(json_object_get(s, "cron")),
           json_string_value(json_object_get(s, "timezone")),
           json_is_true(json_object_get(s, "paused")) ? "yes" : "no", next ? next : "-",
           last ? last : "-", last_job ? last_job : "-");
}

static int sched_print(const char *json, int as_json, int many)
{
    if (as_json) {
        printf("%s\n", json);
        return CTL_EXIT_OK;
    }
    json_error_t e;
    json_t *doc = json_loads(json, 0, &e);
    if (!doc) {
        YARD_LOG_ERROR(NULL, "schedules: unreadable answer from PostgreSQL: %s", e.text);
        return CTL_EXIT_FAIL;
    }
    printf("%-24s %-16s %-18s %-6s %-20s %-20s %s\n", "NAME", "CRON", "TIMEZONE", "PAUSED",
           "NEXT (UTC)", "LAST (UTC)", "LAST JOB");
    if (many) {
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(doc, "schedules"), i, s)
            sched_print_row(s);
    } else {
        sched_print_row(doc);
    }
    json_decref(doc);
    return CTL_EXIT_OK;
}

static int sched_list(const yard_config_t *cfg, int argc, char **argv)
{
    int as_json = ctl_out_json();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else
            return ctl_usage_error("schedules", "list: unknown argument `%s`", argv[i]);
    }
    PGconn *c = NULL;
    char *json = NULL;
    if (sched_connect(&c, cfg) != CTL_EXIT_OK)
        return CTL_EXIT_FAIL;
    int rc = yard_schedules_list(&json, c, NULL);
    yard_db_close(c);
    if (rc < 0)
        return CTL_EXIT_FAIL;
    int st = sched_print(json, as_json, 1);
    free(json);
    return st;
}

/* Parses create's options into *o; returns CTL_EXIT_OK or a usage error. */
static int sched_create_args(sched_opts_t *o, int argc, char **argv)
{
    static const char *const opts[] = {"--name",    "--cron",     "--timezone", "--type",
                                       "--queue",   "--payload",  "--priority", "--catch-up",
                                       "--max-attempts", "--timeout-s"};
    const char *num[2] = {NULL, NULL};
    const char **slots[] = {&o->name,    &o->cron,    &o->tz,       &o->type, &o->queue,
                            &o->payload, &o->priority, &o->catch_up, &num[0], &num[1]};
    memset(o, 0, sizeof *o);
    o->json = ctl_out_json();
    o->tz = "UTC";
    o->queue = "default";
    o->priority = "normal";
    o->catch_up = "skip";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--paused") == 0) {
            o->paused = 1;
            continue;
        }
        if (strcmp(argv[i], "--json") == 0) { /* main takes it; kept for direct calls */
            o->json = 1;
            continue;
        }
        int hit = 0;
        for (size_t k = 0; k < sizeof opts / sizeof opts[0] && !hit; k++) {
            hit = sched_opt(slots[k], argc, argv, &i, opts[k]);
            if (hit < 0)
                return ctl_usage_error("schedules", "create: %s needs a value", opts[k]);
        }
        if (!hit)
            return ctl_usage_error("schedules", "create: unknown argument `%s`", argv[i]);
    }
    if (!o->name || !o->cron || !o->type)
        return ctl_usage_error("schedules", "create needs --name, --cron and --type");
    for (int k = 0; k < 2; k++) {
        char *end = NULL;
        long v = num[k] ? strtol(num[k], &end, 10) : 0;
        if (num[k] && (*end || v < 1 || v > (k == 0 ? 100 : 86400)))
            return ctl_usage_error("schedules", "create: %s must be an integer from 1 to %d",
                                   k == 0 ? "--max-attempts" : "--timeout-s",
                                   k == 0 ? 100 : 86400);
        *(k == 0 ? &o->max_attempts : &o->timeout_s) = v;
    }
    return CTL_EXIT_OK;
}

/* The job template of o as JSON (malloc'd), or NULL after a usage error. */
static char *sched_template(const yard_config_t *cfg, const sched_opts_t *o)
{
    if (!yard_name_valid(o->type, strlen(o->type)) ||
        !yard_name_valid(o->queue, strlen(o->queue))) {
        ctl_usage_error("schedules", "create: --type and --queue are [a-z0-9][a-z0-9._-]{0,63}");
        return NULL;
    }
    if (strcmp(o->priority, "low") != 0 && strcmp(o->priority, "normal") != 0 &&
        strcmp(o->priority, "high") != 0) {
        ctl_usage_error("schedules", "create: --priority is low, normal or high");
        return NULL;
    }
    json_t *t = json_pack("{s:s, s:s, s:s, s:I, s:I}", "type", o->type, "queue", o->queue,
                          "priority", o->priority, "max_attempts",
                          (json_int_t)(o->max_attempts ? o->max_attempts : cfg->job_max_attempts),
                          "timeout_s",
                          (json_int_t)(o->timeout_s ? o->timeout_s : cfg->job_timeout_s));
    if (t && o->payload) {
        json_error_t e;
        json_t *p = json_loads(o->payload, JSON_DECODE_ANY, &e);
        if (!p) {
            json_decref(t);
            ctl_usage_error("schedules", "create: --payload is not JSON: %s", e.text);
            return NULL;
        }
        json_object_set_new(t, "payload", p);
    }
    char *text = t ? json_dumps(t, JSON_COMPACT) : NULL;
    json_decref(t);
    return text;
}

/* Records a committed change as an operator event (a warning if it cannot). */
static void sched_event(const yard_config_t *cfg, const char *action, const char *name,
                        const char *json)
{
    char actor[160], key[24], ev[48];
    yard_event_t e;
    ctl_operator(actor, sizeof actor);
    yard_schedules_event(&e, key, ev, action, name, actor, json);
    ctl_event_publish(cfg, NULL, &e);
}

static int sched_create(const yard_config_t *cfg, int argc, char **argv)
{
    sched_opts_t o;
    yard_cron_t cron;
    char why[200];
    int64_t next = 0;
    int st = sched_create_args(&o, argc, argv);
    if (st != CTL_EXIT_OK)
        return st;
    if (!yard_schedule_name_valid(o.name, strlen(o.name)))
        return ctl_usage_error("schedules", "create: --name is 1 to 200 bytes without '/', "
                                            "blanks or control characters");
    if (yard_cron_parse(&cron, o.cron, why, sizeof why) < 0)
        return ctl_usage_error("schedules", "create: %s", why);
    if (!yard_tz_valid(o.tz))
        return ctl_usage_error("schedules", "create: --timezone `%s` is not an IANA zone", o.tz);
    if (strcmp(o.catch_up, "skip") != 0 && strcmp(o.catch_up, "once") != 0)
        return ctl_usage_error("schedules", "create: --catch-up is skip or once");
    if (yard_cron_next(&next, &cron, o.tz, (int64_t)time(NULL)) < 0)
        return ctl_usage_error("schedules", "create: cron `%s` never fires", o.cron);
    char *job = sched_template(cfg, &o);
    if (!job)
        return CTL_EXIT_USAGE;
    PGconn *c = NULL;
    char *json = NULL;
    int created = 0;
    yard_schedule_def_t d = {o.name, o.cron, o.tz, job, o.catch_up, o.paused, NULL, next};
    int rc = sched_connect(&c, cfg) == CTL_EXIT_OK
                 ? yard_schedules_put(&json, &created, c, &d, NULL)
                 : YARD_EUNAVAIL;
    yard_db_close(c);
    free(job);
    if (rc < 0)
        return CTL_EXIT_FAIL;
    sched_event(cfg, created ? "created" : "updated", o.name, json);
    if (!o.json)
        printf("%s schedule %s\n", created ? "created" : "replaced", o.name);
    st = sched_print(json, o.json, 0);
    free(json);
    return st;
}

/* delete, pause, resume NAME [--json]. */
static int sched_one(const yard_config_t *cfg, int argc, char **argv)
{
    const char *verb = argv[0], *name = NULL;
    int as_json = ctl_out_json();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else if (!name && argv[i][0] != '-')
            name = argv[i];
        else
            return ctl_usage_error("schedules", "%s: unknown argument `%s`", verb, argv[i]);
    }
    if (!name || !yard_schedule_name_valid(name, strlen(name)))
        return ctl_usage_error("schedules", "%s needs a schedule NAME", verb);
    PGconn *c = NULL;
    char *json = NULL;
    if (sched_connect(&c, cfg) != CTL_EXIT_OK)
        return CTL_EXIT_FAIL;
    int rc;
    if (strcmp(verb, "delete") == 0) {
        rc = yard_schedules_delete(c, name, NULL);
    } else {
        char cron[YARD_CRON_TEXT_MAX + 1], tz[YARD_TZ_NAME_MAX + 1];
        yard_cron_t cr;
        int64_t next = 0;
        int pause = strcmp(verb, "pause") == 0;
        rc = yard_schedules_lookup(c, name, NULL, cron, sizeof cron, tz, sizeof tz);
        if (rc == 0 && !pause && yard_cron_parse(&cr, cron, NULL, 0) == 0 &&
            yard_cron_next(&next, &cr, tz, (int64_t)time(NULL)) < 0)
            next = 0;
        if (rc == 0)
            rc = yard_schedules_set_paused(&json, c, name, NULL, pause, next);
    }
    yard_db_close(c);
    if (rc == YARD_ENOTFOUND)
        YARD_LOG_ERROR(NULL, "schedules %s: no schedule named %s", verb, name);
    if (rc < 0)
        return ctl_exit_of(rc);
    sched_event(cfg,
                !strcmp(verb, "delete") ? "deleted" : !strcmp(verb, "pause") ? "paused" : "resumed",
                name, json);
    int st = CTL_EXIT_OK;
    if (json)
        st = sched_print(json, as_json, 0);
    else if (as_json)
        printf("{\"name\":\"%s\",\"deleted\":true}\n", name);
    else
        printf("deleted schedule %s\n", name);
    free(json);
    return st;
}

int ctl_cmd_schedules(const yard_config_t *cfg, int argc, char **argv)
{
    if (argc < 2)
        return ctl_usage_error("schedules", "expected list, create, delete, pause or resume");
    const char *sub = argv[1];
    if (strcmp(sub, "list") == 0)
        return sched_list(cfg, argc - 1, argv + 1);
    if (strcmp(sub, "create") == 0)
        return sched_create(cfg, argc - 1, argv + 1);
    if (strcmp(sub, "delete") == 0 || strcmp(sub, "pause") == 0 || strcmp(sub, "resume") == 0)
        return sched_one(cfg, argc - 1, argv + 1);
    return ctl_usage_error("schedules", "unknown subcommand `%s`", sub);
}
