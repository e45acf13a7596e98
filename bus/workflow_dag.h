/*
 * workflow_dag.h - the shape rules of a workflow: its steps form a DAG.
 *
 * A workflow is 1 to YARD_WF_MAX_STEPS steps, each with an id unique in the
 * workflow and a depends_on list naming other steps of it. This module
 * checks those rules and nothing else (job fields are the gateway's
 * job_spec), without allocating anything that outlives the call and without
 * PostgreSQL, so the gateway, unit tests and the fuzz target share it. Its
 * refusals name the problem: the duplicate id, the unknown dependency, the
 * step ids of a cycle.
 */
#ifndef YARD_WORKFLOW_DAG_H
#define YARD_WORKFLOW_DAG_H

#include <stddef.h>

#define YARD_WF_MAX_STEPS 1000
/* Step ids: [A-Za-z0-9][A-Za-z0-9._:-]{0,127} (0002_workflows.sql bounds
 * them to 1..128 bytes; the rule keeps them safe in messages and JSON keys). */
#define YARD_WF_STEP_ID_MAX 128

/* One step as this module sees it: NUL-terminated strings owned by the
 * caller. */
typedef struct {
    const char *id;
    const char *const *depends_on;
    size_t ndeps;
} yard_wf_step_ref_t;

/* Nonzero if the len bytes at id form a valid step id. */
int yard_wf_step_id_valid(const char *id, size_t len);

/* Checks the n steps: 1 <= n <= YARD_WF_MAX_STEPS, valid and unique ids,
 * every dependency names another step of the workflow, once per list, and
 * no cycle. Returns 0 and, when order is not NULL, fills order[0..n) with
 * the step indexes in an order where each step comes after all its parents
 * (roots first, stable: submission order among equals). Returns YARD_EINVAL
 * with a one-line reason for the client in why (cap bytes, cut if longer),
 * or YARD_ENOMEM. */
int yard_wf_dag_check(const yard_wf_step_ref_t *steps, size_t n, size_t *order, char *why,
                      size_t cap);

#endif
