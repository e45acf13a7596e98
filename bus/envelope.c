/*
 * envelope.c - the job envelope's msgpack codec (spec: schemas/envelope.md).
 *
 * One table describes every field: wire key, storage kind, bounds, defaults.
 * init, validation, encoding, decoding and equality all walk it. The decoder
 * is a small msgpack reader over (ptr, len) that trusts no length from the
 * wire and skips unknown values without recursion, with a fixed-size stack
 * bounded by YARD_ENV_MAX_DEPTH. Neither direction allocates.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "envelope.h"
#include "names.h"
#include "err.h"

/* ---- the field table ---------------------------------------------------- */

typedef enum { K_STR, K_U32, K_I64, K_PRIO } kind_t;

enum {
    F_REQ = 1, /* must appear on the wire */
    F_OPT = 2, /* may be absent: empty string or 0, then not written */
};

typedef int (*str_check_fn)(yard_str_t s);

typedef struct {
    const char *key;
    uint8_t klen;
    uint8_t kind;
    uint8_t flags;
    size_t off;
    int64_t min, max;   /* value bounds, or byte-length bounds of a present string */
    int64_t def;        /* default of an integer field */
    str_check_fn check; /* extra rule for a string, or NULL */
} field_t;

static int check_uuid(yard_str_t s);
static int check_name(yard_str_t s);

/* Field ids, in table (and encoding) order. */
enum {
    F_V, F_ID, F_TYPE, F_QUEUE, F_PAYLOAD, F_PRIORITY, F_MAX_ATTEMPTS, F_TIMEOUT, F_RUN_AT,
    F_CREATED_AT, F_NOTIFY, F_IDEM, F_KEY, F_TP, F_WF, F_STEP, F_SCHED, F_SECRETS,
    F_COUNT
};

#define FIELD(k, kd, fl, member, lo, hi, d, chk) \
    {k, sizeof(k) - 1, kd, fl, offsetof(yard_envelope_t, member), lo, hi, d, chk}

static const field_t fields[F_COUNT] = {
    [F_V] = FIELD("v", K_U32, F_REQ, version, 1, YARD_ENV_VERSION, YARD_ENV_VERSION, NULL),
    [F_ID] = FIELD("id", K_STR, F_REQ, id, YARD_ENV_ID_LEN, YARD_ENV_ID_LEN, 0, check_uuid),
    [F_TYPE] = FIELD("type", K_STR, F_REQ, type, 1, YARD_ENV_NAME_MAX, 0, check_name),
    [F_QUEUE] = FIELD("queue", K_STR, 0, queue, 1, YARD_ENV_NAME_MAX, 0, check_name),
    [F_PAYLOAD] = FIELD("payload", K_STR, F_OPT, payload, 1, YARD_ENV_PAYLOAD_MAX, 0, NULL),
    [F_PRIORITY] = FIELD("priority", K_PRIO, 0, priority, YARD_PRIO_LOW, YARD_PRIO_HIGH,
                         YARD_PRIO_NORMAL, NULL),
    [F_MAX_ATTEMPTS] = FIELD("max_attempts", K_U32, 0, max_attempts, 1, YARD_ENV_ATTEMPTS_MAX,
                             5, NULL),
    [F_TIMEOUT] = FIELD("timeout_s", K_U32, 0, timeout_s, 1, YARD_ENV_TIMEOUT_MAX, 300, NULL),
    [F_RUN_AT] = FIELD("run_at", K_I64, F_OPT, run_at_ms, 0, YARD_ENV_TIME_MAX_MS, 0, NULL),
    [F_CREATED_AT] = FIELD("created_at", K_I64, F_REQ, created_at_ms, 1, YARD_ENV_TIME_MAX_MS,
                           0, NULL),
    [F_NOTIFY] = FIELD("notify", K_STR, F_OPT, notify, 1, YARD_ENV_NOTIFY_MAX, 0, NULL),
    [F_IDEM] = FIELD("idem", K_STR, F_OPT, idempotency_key, 1, YARD_ENV_IDEM_MAX, 0, NULL),
    [F_KEY] = FIELD("key", K_STR, F_OPT, api_key_id, 1, YARD_ENV_NAME_MAX, 0, NULL),
    [F_TP] = FIELD("tp", K_STR, F_OPT, traceparent, 1, YARD_ENV_TP_MAX, 0, NULL),
    [F_WF] = FIELD("wf", K_STR, F_OPT, workflow_id, 1, YARD_ENV_NAME_MAX, 0, NULL),
    [F_STEP] = FIELD("step", K_STR, F_OPT, step_id, 1, YARD_ENV_NAME_MAX, 0, NULL),
    [F_SCHED] = FIELD("sched", K_STR, F_OPT, schedule, 1, YARD_ENV_NAME_MAX, 0, NULL),
    [F_SECRETS] = FIELD("secrets", K_STR, F_OPT, secrets, 1, YARD_ENV_SECRETS_MAX, 0, NULL),
};

static const char queue_default[] = "default";

/* Returns the field id of wire key k (n bytes), or -1 for an unknown key. */
static int field_lookup(const char *k, size_t n)
{
    int f;
    if (n == 0)
        return -1;
    switch (n) {
    case 1: f = F_V; break;
    case 2: f = k[0] == 'i' ? F_ID : k[0] == 't' ? F_TP : F_WF; break;
    case 3: f = F_KEY; break;
    case 4: f = k[0] == 't' ? F_TYPE : k[0] == 'i' ? F_IDEM : F_STEP; break;
    case 5: f = k[0] == 'q' ? F_QUEUE : F_SCHED; break;
    case 6: f = k[0] == 'r' ? F_RUN_AT : F_NOTIFY; break;
    case 7: f = k[0] == 'p' ? F_PAYLOAD : F_SECRETS; break;
    case 8: f = F_PRIORITY; break;
    case 9: f = F_TIMEOUT; break;
    case 10: f = F_CREATED_AT; break;
    case 12: f = F_MAX_ATTEMPTS; break;
    default: return -1;
    }
    return fields[f].klen == n && memcmp(k, fields[f].key, n) == 0 ? f : -1;
}

static yard_str_t *str_at(yard_envelope_t *env, const field_t *f)
{
    return (yard_str_t *)((char *)env + f->off);
}

static yard_str_t str_get(const yard_envelope_t *env, const field_t *f)
{
    return *(const yard_str_t *)((const char *)env + f->off);
}

static int64_t int_get(const yard_envelope_t *env, const field_t *f)
{
    const char *p = (const char *)env + f->off;
    switch (f->kind) {
    case K_U32: return *(const uint32_t *)p;
    case K_PRIO: return (int64_t)*(const yard_priority_t *)p;
    default: return *(const int64_t *)p;
    }
}

/* v must already be within the field's bounds. */
static void int_set(yard_envelope_t *env, const field_t *f, int64_t v)
{
    char *p = (char *)env + f->off;
    switch (f->kind) {
    case K_U32: *(uint32_t *)p = (uint32_t)v; break;
    case K_PRIO: *(yard_priority_t *)p = (yard_priority_t)v; break;
    default: *(int64_t *)p = v; break;
    }
}

/* Nonzero if the field is written: absent optional fields are not. */
static int field_present(const yard_envelope_t *env, const field_t *f)
{
    if (f->kind == K_STR)
        return str_get(env, f).len > 0;
    return !(f->flags & F_OPT) || int_get(env, f) != 0;
}

static int check_uuid(yard_str_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        int ok = (i == 8 || i == 13 || i == 18 || i == 23)
                     ? c == '-'
                     : (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        if (!ok)
            return YARD_EINVAL;
    }
    return 0;
}

/* Queue and type names: the one rule of names.h. */
static int check_name(yard_str_t s)
{
    return yard_name_valid(s.ptr, s.len) ? 0 : YARD_EINVAL;
}

/* Returns 0 if every field of env is within its bounds, else YARD_EINVAL. */
static int env_validate(const yard_envelope_t *env)
{
    for (int i = 0; i < F_COUNT; i++) {
        const field_t *f = &fields[i];
        if (f->kind != K_STR) {
            int64_t v = int_get(env, f);
            if (v < f->min || v > f->max)
                return YARD_EINVAL;
            continue;
        }
        yard_str_t s = str_get(env, f);
        if (s.len == 0 && (f->flags & F_OPT))
            continue;
        if (!s.ptr || s.len < (uint64_t)f->min || s.len > (uint64_t)f->max)
            return YARD_EINVAL;
        if (f->check && f->check(s) != 0)
            return YARD_EINVAL;
    }
    return 0;
}

void yard_env_init(yard_envelope_t *env)
{
    memset(env, 0, sizeof *env);
    for (int i = 0; i < F_COUNT; i++)
        if (fields[i].kind != K_STR)
            int_set(env, &fields[i], fields[i].def);
    env->queue = (yard_str_t){queue_default, sizeof queue_default - 1};
}

int yard_str_eq(yard_str_t a, yard_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

int yard_str_eq_cstr(yard_str_t s, const char *lit)
{
    return yard_str_eq(s, (yard_str_t){lit, strlen(lit)});
}

int yard_env_equal(const yard_envelope_t *a, const yard_envelope_t *b)
{
    for (int i = 0; i < F_COUNT; i++) {
        const field_t *f = &fields[i];
        if (f->kind == K_STR ? !yard_str_eq(str_get(a, f), str_get(b, f))
                             : int_get(a, f) != int_get(b, f))
            return 0;
    }
    return 1;
}

/* ---- encoding ----------------------------------------------------------- */

/* A writer into a fixed buffer; with buf NULL it only counts. */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;  /* bytes written (or counted, saturating at SIZE_MAX) */
    int full;    /* a write did not fit */
} writer_t;

static void w_put(writer_t *w, const void *src, size_t n)
{
    if (!w->buf) {
        w->len = n > SIZE_MAX - w->len ? SIZE_MAX : w->len + n;
        return;
    }
    if (w->full || n > w->cap - w->len) {
        w->full = 1;
        return;
    }
    if (n)
        memcpy(w->buf + w->len, src, n);
    w->len += n;
}

/* Writes tag then the low nbytes of v, big-endian. */
static void w_tagged(writer_t *w, uint8_t tag, int nbytes, uint64_t v)
{
    uint8_t b[9];
    b[0] = tag;
    for (int i = 0; i < nbytes; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (nbytes - 1 - i)));
    w_put(w, b, 1 + (size_t)nbytes);
}

static void w_uint(writer_t *w, uint64_t v)
{
    if (v <= 0x7f)
        w_tagged(w, (uint8_t)v, 0, 0);
    else if (v <= UINT8_MAX)
        w_tagged(w, 0xcc, 1, v);
    else if (v <= UINT16_MAX)
        w_tagged(w, 0xcd, 2, v);
    else if (v <= UINT32_MAX)
        w_tagged(w, 0xce, 4, v);
    else
        w_tagged(w, 0xcf, 8, v);
}

static void w_str(writer_t *w, const char *s, size_t n)
{
    if (n <= 31)
        w_tagged(w, (uint8_t)(0xa0 | n), 0, 0);
    else if (n <= UINT8_MAX)
        w_tagged(w, 0xd9, 1, n);
    else if (n <= UINT16_MAX)
        w_tagged(w, 0xda, 2, n);
    else
        w_tagged(w, 0xdb, 4, n > UINT32_MAX ? UINT32_MAX : n); /* only when counting */
    w_put(w, s, n);
}

/* Writes (or counts) the whole map. Values are assumed valid: all are >= 0. */
static void env_emit(const yard_envelope_t *env, writer_t *w)
{
    unsigned n = 0;
    for (int i = 0; i < F_COUNT; i++)
        n += (unsigned)field_present(env, &fields[i]);
    if (n <= 15)
        w_tagged(w, (uint8_t)(0x80 | n), 0, 0);
    else
        w_tagged(w, 0xde, 2, n);
    for (int i = 0; i < F_COUNT; i++) {
        const field_t *f = &fields[i];
        if (!field_present(env, f))
            continue;
        w_str(w, f->key, f->klen);
        if (f->kind == K_STR) {
            yard_str_t s = str_get(env, f);
            w_str(w, s.ptr, s.len);
        } else {
            w_uint(w, (uint64_t)int_get(env, f));
        }
    }
}

size_t yard_env_encoded_size_max(const yard_envelope_t *env)
{
    writer_t w = {0};
    env_emit(env, &w);
    return w.len;
}

int yard_env_encode(const yard_envelope_t *env, char *buf, size_t cap, size_t *out_len)
{
    if (!env || !out_len || (!buf && cap) || env_validate(env) != 0)
        return YARD_EINVAL;
    if (!buf)
        return YARD_ERANGE;
    writer_t w = {buf, cap, 0, 0};
    env_emit(env, &w);
    if (w.full)
        return YARD_ERANGE;
    *out_len = w.len;
    return 0;
}

/* ---- decoding ----------------------------------------------------------- */

typedef struct {
    const uint8_t *p, *end;
} reader_t;

typedef enum { M_NIL, M_BOOL, M_INT, M_FLOAT, M_STR, M_BIN, M_EXT, M_ARRAY, M_MAP } mtype_t;

/* One value's header. Scalars, strings, bins and exts are consumed whole;
 * an array or map leaves its n elements (2n for a map) to be read. */
typedef struct {
    mtype_t type;
    int64_t i;         /* M_INT; unsigned values above INT64_MAX read as INT64_MAX */
    const char *s;     /* M_STR */
    uint64_t n;        /* M_STR length, M_ARRAY / M_MAP element count */
} head_t;

/* Reads an nbytes big-endian unsigned integer. */
static int r_be(reader_t *r, int nbytes, uint64_t *v)
{
    if ((size_t)(r->end - r->p) < (size_t)nbytes)
        return YARD_ETRUNC;
    uint64_t x = 0;
    for (int i = 0; i < nbytes; i++)
        x = (x << 8) | *r->p++;
    *v = x;
    return 0;
}

/* Consumes n bytes, returning where they start in *at. */
static int r_skip(reader_t *r, uint64_t n, const uint8_t **at)
{
    if ((uint64_t)(r->end - r->p) < n)
        return YARD_ETRUNC;
    *at = r->p;
    r->p += n;
    return 0;
}

/* Reads a two's-complement big-endian integer of nbytes (1, 2, 4 or 8). */
static int r_signed(reader_t *r, int nbytes, int64_t *out)
{
    uint64_t u;
    int rc = r_be(r, nbytes, &u);
    if (rc)
        return rc;
    if (nbytes < 8 && (u >> (8 * nbytes - 1)))
        u |= ~(uint64_t)0 << (8 * nbytes); /* sign-extend */
    /* Converted by hand: unsigned-to-signed overflow is implementation-defined. */
    *out = u > (uint64_t)INT64_MAX ? -(int64_t)~u - 1 : (int64_t)u;
    return 0;
}

/* Consumes a string body of n bytes into h. */
static int r_str_body(reader_t *r, uint64_t n, head_t *h)
{
    const uint8_t *at;
    int rc = r_skip(r, n, &at);
    if (rc)
        return rc;
    h->type = M_STR;
    h->s = (const char *)at;
    h->n = n;
    return 0;
}

/* Reads the header of one value; see head_t. Returns 0, YARD_ETRUNC, or
 * YARD_EFORMAT for the never-used byte 0xc1. */
static int r_head(reader_t *r, head_t *h)
{
    const uint8_t *at;
    uint64_t u = 0;
    int rc = 0;
    if (r->p == r->end)
        return YARD_ETRUNC;
    uint8_t b = *r->p++;
    memset(h, 0, sizeof *h);

    if (b <= 0x7f || b >= 0xe0) { /* positive / negative fixint */
        h->type = M_INT;
        h->i = b <= 0x7f ? b : (int64_t)b - 256;
        return 0;
    }
    if (b <= 0x9f) { /* fixmap, fixarray */
        h->type = b <= 0x8f ? M_MAP : M_ARRAY;
        h->n = b & 0x0f;
        return 0;
    }
    if (b <= 0xbf) /* fixstr */
        return r_str_body(r, b & 0x1f, h);
    switch (b) {
    case 0xc0: h->type = M_NIL; return 0;
    case 0xc1: return YARD_EFORMAT;
    case 0xc2: case 0xc3: h->type = M_BOOL; return 0;
    case 0xc4: case 0xc5: case 0xc6: /* bin 8/16/32 */
        h->type = M_BIN;
        if ((rc = r_be(r, 1 << (b - 0xc4), &u)) != 0)
            return rc;
        return r_skip(r, u, &at);
    case 0xc7: case 0xc8: case 0xc9: /* ext 8/16/32: length, type byte, data */
        h->type = M_EXT;
        if ((rc = r_be(r, 1 << (b - 0xc7), &u)) != 0)
            return rc;
        return r_skip(r, u + 1, &at);
    case 0xca: case 0xcb: /* float 32/64 */
        h->type = M_FLOAT;
        return r_skip(r, b == 0xca ? 4 : 8, &at);
    case 0xcc: case 0xcd: case 0xce: case 0xcf: /* uint 8..64 */
        h->type = M_INT;
        if ((rc = r_be(r, 1 << (b - 0xcc), &u)) != 0)
            return rc;
        h->i = u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
        return 0;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: /* int 8..64 */
        h->type = M_INT;
        return r_signed(r, 1 << (b - 0xd0), &h->i);
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext 1..16 */
        h->type = M_EXT;
        return r_skip(r, 1 + (1u << (b - 0xd4)), &at);
    case 0xd9: case 0xda: case 0xdb: /* str 8/16/32 */
        if ((rc = r_be(r, 1 << (b - 0xd9), &u)) != 0)
            return rc;
        return r_str_body(r, u, h);
    case 0xdc: case 0xdd: /* array 16/32 */
    case 0xde: case 0xdf: /* map 16/32 */
        h->type = b <= 0xdd ? M_ARRAY : M_MAP;
        return r_be(r, b == 0xdc || b == 0xde ? 2 : 4, &h->n);
    default: /* unreachable: every byte is covered above */
        return YARD_EFORMAT;
    }
}

/* Skips one whole value of any type. Containers may nest YARD_ENV_MAX_DEPTH
 * deep; one more level is YARD_EFORMAT. Each step consumes at least one byte,
 * so the work is bounded by the input length whatever the counts claim. */
static int r_skip_value(reader_t *r)
{
    uint64_t left[YARD_ENV_MAX_DEPTH + 1]; /* values still to read at each level */
    int d = 0;
    head_t h;
    left[0] = 1;
    for (;;) {
        while (left[d] == 0) {
            if (d == 0)
                return 0;
            d--;
        }
        left[d]--;
        int rc = r_head(r, &h);
        if (rc)
            return rc;
        if (h.type == M_ARRAY || h.type == M_MAP) {
            if (d == YARD_ENV_MAX_DEPTH)
                return YARD_EFORMAT;
            left[++d] = h.type == M_MAP ? 2 * h.n : h.n;
        }
    }
}

/* Keeps in *err the error that wins: EVERSION, then EFORMAT, then EINVAL. */
static void defer_err(int *err, int rc)
{
    static const int rank[] = {[-YARD_EINVAL] = 1, [-YARD_EFORMAT] = 2, [-YARD_EVERSION] = 3};
    if (rank[-rc] > (*err ? rank[-*err] : 0))
        *err = rc;
}

/* Reads the value of known field f into env, or notes a deferred error. */
static int read_field(reader_t *r, yard_envelope_t *env, const field_t *f, int *err)
{
    const uint8_t *start = r->p;
    head_t h;
    int rc = r_head(r, &h);
    if (rc)
        return rc;
    int want = f->kind == K_STR ? M_STR : M_INT;
    if (h.type == M_NIL && (f->flags & F_OPT))
        return 0; /* explicit nil: absent */
    if ((int)h.type != want) {
        defer_err(err, YARD_EFORMAT);
        r->p = start;
        return r_skip_value(r);
    }
    if (f->kind == K_STR)
        *str_at(env, f) = h.n ? (yard_str_t){h.s, (size_t)h.n} : (yard_str_t){NULL, 0};
    else if (h.i < f->min || h.i > f->max)
        defer_err(err, f == &fields[F_V] ? YARD_EVERSION : YARD_EINVAL);
    else
        int_set(env, f, h.i);
    return 0;
}

int yard_env_decode(yard_envelope_t *out, const char *buf, size_t len)
{
    if (!out || (!buf && len))
        return YARD_EINVAL;
    if (len == 0)
        return YARD_ETRUNC;
    reader_t r = {(const uint8_t *)buf, (const uint8_t *)buf + len};
    yard_envelope_t env;
    uint32_t seen = 0;
    int err = 0; /* deferred: version, type and bounds errors */
    head_t h;
    int rc = r_head(&r, &h);
    if (rc)
        return rc;
    if (h.type != M_MAP)
        return YARD_EFORMAT;
    yard_env_init(&env);
    for (uint64_t i = 0; i < h.n; i++) {
        head_t k;
        if ((rc = r_head(&r, &k)) != 0)
            return rc;
        if (k.type != M_STR)
            return YARD_EFORMAT;
        int f = field_lookup(k.s, (size_t)k.n);
        if (f < 0) {
            rc = r_skip_value(&r);
        } else if (seen & (1u << f)) {
            return YARD_EFORMAT;
        } else {
            seen |= 1u << f;
            rc = read_field(&r, &env, &fields[f], &err);
        }
        if (rc)
            return rc;
    }
    if (r.p != r.end)
        return YARD_EFORMAT;
    for (int i = 0; i < F_COUNT; i++)
        if ((fields[i].flags & F_REQ) && !(seen & (1u << i)))
            defer_err(&err, YARD_EINVAL);
    if (!err)
        err = env_validate(&env);
    if (err)
        return err;
    *out = env;
    return 0;
}

const char *yard_env_trace_id(char out[YARD_TRACE_ID_LEN + 1], yard_str_t tp)
{
    out[0] = '\0';
    if (!tp.ptr || tp.len < YARD_TRACE_ID_OFFSET + YARD_TRACE_ID_LEN)
        return NULL;
    memcpy(out, tp.ptr + YARD_TRACE_ID_OFFSET, YARD_TRACE_ID_LEN);
    out[YARD_TRACE_ID_LEN] = '\0';
    return out;
}
