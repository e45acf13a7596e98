/*
 * js_msg.c - yard_js_msg_t, libyard's message type: a natsMsg seen through
 * accessors, so programs never handle nats.c types, and fetched batches.
 */
#include <stdlib.h>

#include "err.h"
#include "js_internal.h"

int yard_js_msg_wrap(yard_js_msg_t **out, natsMsg *nm, natsConnection *nc)
{
    yard_js_msg_t *m = malloc(sizeof *m);
    if (!m) {
        natsMsg_Destroy(nm);
        return YARD_ENOMEM;
    }
    m->nm = nm;
    m->nc = nc;
    m->answered = 0;
    *out = m;
    return 0;
}

const char *yard_js_msg_subject(const yard_js_msg_t *m)
{
    return natsMsg_GetSubject(yard_js_nats_msg(m));
}

const void *yard_js_msg_data(const yard_js_msg_t *m, size_t *len)
{
    int n = natsMsg_GetDataLength(yard_js_nats_msg(m));
    *len = n > 0 ? (size_t)n : 0;
    return n > 0 ? natsMsg_GetData(yard_js_nats_msg(m)) : NULL;
}

const char *yard_js_msg_header(const yard_js_msg_t *m, const char *name)
{
    const char *v = NULL;
    if (!m || natsMsgHeader_Get(yard_js_nats_msg(m), name, &v) != NATS_OK)
        return NULL;
    return v;
}

int yard_js_msg_meta(const yard_js_msg_t *m, uint64_t *stream_seq, uint64_t *delivered)
{
    jsMsgMetaData *md = NULL;
    /* Parsed from the $JS.ACK reply subject alone: works on any message
     * JetStream delivered, whichever subscription received it. */
    if (natsMsg_GetMetaData(&md, yard_js_nats_msg(m)) != NATS_OK)
        return YARD_EINVAL;
    if (stream_seq)
        *stream_seq = md->Sequence.Stream;
    if (delivered)
        *delivered = md->NumDelivered;
    jsMsgMetaData_Destroy(md);
    return 0;
}

void yard_js_msg_destroy(yard_js_msg_t *m)
{
    if (!m)
        return;
    natsMsg_Destroy(m->nm);
    free(m);
}

void yard_js_batch_destroy(yard_js_batch_t *b)
{
    if (!b)
        return;
    /* Slots a caller took over are NULL; the array came from malloc. */
    for (int i = 0; i < b->count; i++)
        yard_js_msg_destroy(b->msgs[i]);
    free(b->msgs);
    b->msgs = NULL;
    b->count = 0;
}
