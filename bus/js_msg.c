/*
 * js_msg.c - yard_js_msg_t, libyard's message type: a natsMsg seen through
 * accessors, so programs never handle nats.c types, and fetched batches.
 */
#include "err.h"
#include "js_internal.h"

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
    natsMsg_Destroy(yard_js_nats_msg(m));
}

void yard_js_batch_destroy(yard_js_batch_t *b)
{
    if (!b)
        return;
    /* The array came from natsMsgList: give it back to nats.c to free. */
    natsMsgList list = {(natsMsg **)b->msgs, b->count};
    natsMsgList_Destroy(&list);
    b->msgs = NULL;
    b->count = 0;
}
