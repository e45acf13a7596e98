/*
 * js_wire.c - the message-id formats of js.h, written in one place so that
 * every program publishing a job (gateway, schedule, execute, yardctl)
 * dedupes against the same ids.
 */
#include <stdio.h>

#include "js.h"

void yard_js_msg_id(char out[YARD_MSGID_MAX], yard_msgid_kind_t kind, const char *job_id,
                    uint64_t seq)
{
    const char *id = job_id && *job_id ? job_id : "unknown";
    unsigned long long s = (unsigned long long)seq;
    switch (kind) {
    case YARD_MSGID_JOB:
        snprintf(out, YARD_MSGID_MAX, "%s", id);
        break;
    case YARD_MSGID_RUN:
        snprintf(out, YARD_MSGID_MAX, "%s.run", id);
        break;
    case YARD_MSGID_DEAD:
        snprintf(out, YARD_MSGID_MAX, "%s.dead.%llu", id, s);
        break;
    case YARD_MSGID_REPLAY:
        snprintf(out, YARD_MSGID_MAX, "%s.replay.%llu", id, s);
        break;
    case YARD_MSGID_RESCUE:
        snprintf(out, YARD_MSGID_MAX, "%s.rescue.%llu", id, s);
        break;
    case YARD_MSGID_NOTIFY:
        snprintf(out, YARD_MSGID_MAX, "%s.notify.%llu", id, s);
        break;
    }
}
