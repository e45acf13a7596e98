/*
 * workflow_spec.h - a workflow as a producer describes it, validated.
 *
 * POST /v1/workflows takes {"name"?, "steps": [step, ...]}; a step is
 * {"id", "depends_on"?: [step ids], ...job fields of job_spec.h}. Every job
 * field is checked by gw_job_spec_parse; a step may not carry `run_at` or
 * `idempotency_key` (a step starts when its parents succeed; the workflow's
 * step ids make it unique). A step with parents gets their results under
 * `inputs` in its payload, so its own payload must be an object or absent.
 * The shape (ids, dependencies, cycles, at most 1,000 steps) is
 * workflow_dag.h's. Unknown top-level fields are refused.
 */
#ifndef GW_WORKFLOW_SPEC_H
#define GW_WORKFLOW_SPEC_H

#include <stddef.h>

#include <jansson.h>

#include "job_spec.h"

#define GW_WF_NAME_MAX 200

/* One step. id and depends_on[i] are views into the json_t parsed. */
typedef struct {
    const char *id;
    const char **depends_on; /* owned array */
    size_t ndeps;
    gw_job_spec_t job;
    char *job_json; /* owned: the job as workflows.h stores it */
} gw_wf_step_spec_t;

typedef struct {
    const char *name; /* "" when absent */
    gw_wf_step_spec_t *steps;
    size_t n;
} gw_wf_spec_t;

/* Validates doc against rules into *out (keep doc alive while out is used).
 * Returns 0 (free with gw_wf_spec_clear), or YARD_EINVAL with a message for
 * the client in err (cap bytes) naming the step and the problem, or
 * YARD_ENOMEM; *out is then cleared. */
int gw_wf_spec_parse(gw_wf_spec_t *out, json_t *doc, const gw_job_rules_t *rules, char *err,
                     size_t cap);

/* Frees what a parsed spec owns; safe on a zeroed or cleared spec. */
void gw_wf_spec_clear(gw_wf_spec_t *spec);

#endif
