/*
 * workflow_spec.c - validation of a producer's workflow (workflow_spec.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "workflow_dag.h"
#include "workflow_spec.h"

/* Fields of a step that are the workflow's, not the job's. */
static const char *const step_own_fields[] = {"id", "depends_on"};
/* Job fields a step may not carry, and why. */
static const struct {
    const char *field;
    const char *why;
} step_refused[] = {
    {"run_at", "a step starts when its parents succeed"},
    {"idempotency_key", "the workflow's step ids already make each step unique"},
};

void gw_wf_spec_clear(gw_wf_spec_t *spec)
{
    for (size_t i = 0; spec->steps && i < spec->n; i++) {
        free(spec->steps[i].depends_on);
        free(spec->steps[i].job_json);
        gw_job_spec_clear(&spec->steps[i].job);
    }
    free(spec->steps);
    memset(spec, 0, sizeof *spec);
}

/* The job as workflows.h stores it: names are plain (job_spec checked
 * them), payload and notify are JSON text already. */
static char *step_job_json(const gw_job_spec_t *j)
{
    size_t cap = 256 + j->payload_len + j->notify_len;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    int len = snprintf(s, cap,
                       "{\"type\":\"%s\",\"queue\":\"%s\",\"priority\":%d,\"max_attempts\":%u,"
                       "\"timeout_s\":%u",
                       j->type, j->queue, (int)j->priority, (unsigned)j->max_attempts,
                       (unsigned)j->timeout_s);
    if (j->payload_json)
        len += snprintf(s + len, cap - (size_t)len, ",\"payload\":%.*s", (int)j->payload_len,
                        j->payload_json);
    if (j->notify_json)
        len += snprintf(s + len, cap - (size_t)len, ",\"notify\":%.*s", (int)j->notify_len,
                        j->notify_json);
    snprintf(s + len, cap - (size_t)len, "}");
    return s;
}

/* The step's id and depends_on (views into obj). */
static int step_shape(gw_wf_step_spec_t *st, size_t i, json_t *obj, char *err, size_t cap)
{
    json_t *id = json_object_get(obj, "id"), *deps = json_object_get(obj, "depends_on");
    if (!json_is_string(id)) {
        snprintf(err, cap, "step %zu: field `id` (a string) is required", i);
        return YARD_EINVAL;
    }
    st->id = json_string_value(id);
    if (strlen(st->id) != json_string_length(id) ||
        !yard_wf_step_id_valid(st->id, json_string_length(id))) {
        snprintf(err, cap,
                 "step %zu: `id` must be 1 to %d characters [A-Za-z0-9._:-] starting with a "
                 "letter or digit",
                 i, YARD_WF_STEP_ID_MAX);
        return YARD_EINVAL;
    }
    if (deps && !json_is_null(deps) && !json_is_array(deps)) {
        snprintf(err, cap, "step `%s`: `depends_on` must be an array of step ids", st->id);
        return YARD_EINVAL;
    }
    st->ndeps = json_is_array(deps) ? json_array_size(deps) : 0;
    if (st->ndeps > YARD_WF_MAX_STEPS) {
        snprintf(err, cap, "step `%s`: `depends_on` lists more than %d steps", st->id,
                 YARD_WF_MAX_STEPS);
        return YARD_EINVAL;
    }
    st->depends_on = calloc(st->ndeps ? st->ndeps : 1, sizeof *st->depends_on);
    if (!st->depends_on) {
        snprintf(err, cap, "out of memory");
        return YARD_ENOMEM;
    }
    for (size_t k = 0; k < st->ndeps; k++) {
        json_t *d = json_array_get(deps, k);
        if (!json_is_string(d) || strlen(json_string_value(d)) != json_string_length(d)) {
            snprintf(err, cap, "step `%s`: `depends_on` must be an array of step ids", st->id);
            return YARD_EINVAL;
        }
        st->depends_on[k] = json_string_value(d);
    }
    return 0;
}

/* One step object: its shape, then its job fields through job_spec. */
static int step_parse(gw_wf_step_spec_t *st, size_t i, json_t *obj, const gw_job_rules_t *rules,
                      char *err, size_t cap)
{
    char jerr[256];
    if (!json_is_object(obj)) {
        snprintf(err, cap, "step %zu must be an object", i);
        return YARD_EINVAL;
    }
    int rc = step_shape(st, i, obj, err, cap);
    if (rc < 0)
        return rc;
    for (size_t k = 0; k < sizeof step_refused / sizeof step_refused[0]; k++)
        if (json_object_get(obj, step_refused[k].field)) {
            snprintf(err, cap, "step `%s`: field `%s` is not allowed in a workflow step (%s)",
                     st->id, step_refused[k].field, step_refused[k].why);
            return YARD_EINVAL;
        }
    /* The job fields: a shallow copy without the step's own fields. */
    json_t *job = json_copy(obj);
    if (!job) {
        snprintf(err, cap, "out of memory");
        return YARD_ENOMEM;
    }
    for (size_t k = 0; k < sizeof step_own_fields / sizeof step_own_fields[0]; k++)
        json_object_del(job, step_own_fields[k]);
    if (json_object_get(job, "secrets")) {
        json_decref(job);
        snprintf(err, cap, "step `%s`: a step takes no secrets (sealed secrets are for "
                           "POST /v1/jobs only)", st->id);
        return YARD_EINVAL;
    }
    rc = gw_job_spec_parse(&st->job, job, rules, jerr, sizeof jerr);
    json_decref(job);
    if (rc < 0) {
        snprintf(err, cap, "step `%s`: %s", st->id, jerr);
        return rc;
    }
    if (st->ndeps > 0 && st->job.payload_json && st->job.payload_json[0] != '{') {
        snprintf(err, cap,
                 "step `%s`: with depends_on, `payload` must be an object (its parents' results "
                 "are added under `inputs`)",
                 st->id);
        return YARD_EINVAL;
    }
    if (st->ndeps > 0 && st->job.payload_json &&
        json_object_get(json_object_get(obj, "payload"), "inputs")) {
        snprintf(err, cap,
                 "step `%s`: `payload.inputs` is reserved for the results of its parents",
                 st->id);
        return YARD_EINVAL;
    }
    if (!(st->job_json = step_job_json(&st->job))) {
        snprintf(err, cap, "out of memory");
        return YARD_ENOMEM;
    }
    return 0;
}

static int wf_parse(gw_wf_spec_t *out, json_t *doc, const gw_job_rules_t *rules, char *err,
                    size_t cap)
{
    const char *key;
    json_t *v, *steps = NULL;
    if (!json_is_object(doc)) {
        snprintf(err, cap, "a workflow is an object {\"name\"?, \"steps\": [...]}");
        return YARD_EINVAL;
    }
    out->name = "";
    json_object_foreach(doc, key, v)
    {
        if (strcmp(key, "steps") == 0) {
            steps = v;
        } else if (strcmp(key, "name") == 0) {
            if (!json_is_string(v) || json_string_length(v) > GW_WF_NAME_MAX ||
                strlen(json_string_value(v)) != json_string_length(v)) {
                snprintf(err, cap, "field `name` must be a string of at most %d bytes",
                         GW_WF_NAME_MAX);
                return YARD_EINVAL;
            }
            out->name = json_string_value(v);
        } else if (yard_wf_step_id_valid(key, strlen(key))) { /* plain ASCII: safe to echo */
            snprintf(err, cap, "unknown field `%s` (a workflow has `name` and `steps`)", key);
            return YARD_EINVAL;
        } else {
            snprintf(err, cap, "unknown field (a workflow has `name` and `steps`)");
            return YARD_EINVAL;
        }
    }
    size_t n = json_is_array(steps) ? json_array_size(steps) : 0;
    if (!json_is_array(steps) || n == 0 || n > YARD_WF_MAX_STEPS) {
        snprintf(err, cap, "field `steps` must be an array of 1 to %d steps%s", YARD_WF_MAX_STEPS,
                 n > YARD_WF_MAX_STEPS ? " (this one has more)" : "");
        return YARD_EINVAL;
    }
    if (!(out->steps = calloc(n, sizeof *out->steps))) {
        snprintf(err, cap, "out of memory");
        return YARD_ENOMEM;
    }
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        int rc = step_parse(&out->steps[i], i, json_array_get(steps, i), rules, err, cap);
        if (rc < 0)
            return rc;
    }
    yard_wf_step_ref_t *refs = calloc(n, sizeof *refs);
    if (!refs) {
        snprintf(err, cap, "out of memory");
        return YARD_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        refs[i] = (yard_wf_step_ref_t){out->steps[i].id, out->steps[i].depends_on,
                                       out->steps[i].ndeps};
    int rc = yard_wf_dag_check(refs, n, NULL, err, cap);
    free(refs);
    return rc;
}

int gw_wf_spec_parse(gw_wf_spec_t *out, json_t *doc, const gw_job_rules_t *rules, char *err,
                     size_t cap)
{
    memset(out, 0, sizeof *out);
    int rc = wf_parse(out, doc, rules, err, cap);
    if (rc < 0)
        gw_wf_spec_clear(out);
    return rc;
}
