/*
 * test_envelope.c - unit tests of the envelope codec (bus/envelope.c).
 *
 * Inputs for the decoder are built independently of the encoder: with
 * msgpack-c's packer, or from hex for exact byte forms. Every input is
 * decoded from a heap copy of exactly its length, so AddressSanitizer or
 * valgrind catch any read past the end. The bounds below are the spec's
 * (schemas/envelope.md), written out again rather than taken from the header.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "err.h"

/* ---- failure messages that say what was expected and what came ---------- */

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            print_error("check failed: %s: ", #cond);                                             \
            print_error(__VA_ARGS__);                                                             \
            print_error("\n");                                                                    \
            fail();                                                                               \
        }                                                                                         \
    } while (0)

#define CHECK_RC(got, want, ...)                                                                  \
    do {                                                                                          \
        int got_ = (got), want_ = (want);                                                         \
        if (got_ != want_) {                                                                      \
            print_error("expected %s, got %s (%d): ", yard_errname(want_), yard_errname(got_),    \
                        got_);                                                                    \
            print_error(__VA_ARGS__);                                                             \
            print_error("\n");                                                                    \
            fail();                                                                               \
        }                                                                                         \
    } while (0)

#define CHECK_INT(got, want, ...)                                                                 \
    do {                                                                                          \
        long long got_ = (long long)(got), want_ = (long long)(want);                             \
        if (got_ != want_) {                                                                      \
            print_error("expected %lld, got %lld: ", want_, got_);                                \
            print_error(__VA_ARGS__);                                                             \
            print_error("\n");                                                                    \
            fail();                                                                               \
        }                                                                                         \
    } while (0)

#define CHECK_STR(got, want, ...)                                                                 \
    do {                                                                                          \
        yard_str_t got_ = (got);                                                                  \
        const char *want_ = (want);                                                               \
        if (!yard_str_eq_cstr(got_, want_)) {                                                     \
            print_error("expected \"%.80s\" (%zu bytes), got \"%.*s\" (%zu bytes): ", want_,      \
                        strlen(want_), (int)(got_.len > 80 ? 80 : got_.len),                      \
                        got_.ptr ? got_.ptr : "", got_.len);                                      \
            print_error(__VA_ARGS__);                                                             \
            print_error("\n");                                                                    \
            fail();                                                                               \
        }                                                                                         \
    } while (0)

/* ---- the spec's fields, written out independently ----------------------- */

typedef struct {
    const char *key;
    char kind; /* 's' string, 'u' uint32_t, 'p' yard_priority_t, 'i' int64_t */
    size_t off;
    int64_t min, max; /* value bounds, or byte-length bounds of a present string */
    int opt;          /* may be absent */
} tfield_t;

#define TIME_MAX 253402300799999LL

static const tfield_t tfields[] = {
    {"v", 'u', offsetof(yard_envelope_t, version), 1, 1, 0},
    {"id", 's', offsetof(yard_envelope_t, id), 36, 36, 0},
    {"type", 's', offsetof(yard_envelope_t, type), 1, 64, 0},
    {"queue", 's', offsetof(yard_envelope_t, queue), 1, 64, 0},
    {"payload", 's', offsetof(yard_envelope_t, payload), 1, 1 << 20, 1},
    {"priority", 'p', offsetof(yard_envelope_t, priority), 0, 2, 0},
    {"max_attempts", 'u', offsetof(yard_envelope_t, max_attempts), 1, 100, 0},
    {"timeout_s", 'u', offsetof(yard_envelope_t, timeout_s), 1, 86400, 0},
    {"run_at", 'i', offsetof(yard_envelope_t, run_at_ms), 0, TIME_MAX, 1},
    {"created_at", 'i', offsetof(yard_envelope_t, created_at_ms), 1, TIME_MAX, 0},
    {"notify", 's', offsetof(yard_envelope_t, notify), 1, 65536, 1},
    {"idem", 's', offsetof(yard_envelope_t, idempotency_key), 1, 255, 1},
    {"key", 's', offsetof(yard_envelope_t, api_key_id), 1, 64, 1},
    {"tp", 's', offsetof(yard_envelope_t, traceparent), 1, 128, 1},
    {"wf", 's', offsetof(yard_envelope_t, workflow_id), 1, 64, 1},
    {"step", 's', offsetof(yard_envelope_t, step_id), 1, 64, 1},
    {"sched", 's', offsetof(yard_envelope_t, schedule), 1, 64, 1},
    {"secrets", 's', offsetof(yard_envelope_t, secrets), 1, 24576, 1},
};
#define N_TFIELDS (sizeof tfields / sizeof tfields[0])

static yard_str_t *tf_str(yard_envelope_t *e, const tfield_t *f)
{
    return (yard_str_t *)((char *)e + f->off);
}

static int64_t tf_get(const yard_envelope_t *e, const tfield_t *f)
{
    const char *p = (const char *)e + f->off;
    switch (f->kind) {
    case 'u': return *(const uint32_t *)p;
    case 'p': return *(const yard_priority_t *)p;
    default: return *(const int64_t *)p;
    }
}

static void tf_set(yard_envelope_t *e, const tfield_t *f, int64_t v)
{
    char *p = (char *)e + f->off;
    switch (f->kind) {
    case 'u': *(uint32_t *)p = (uint32_t)v; break;
    case 'p': *(yard_priority_t *)p = (yard_priority_t)v; break;
    default: *(int64_t *)p = v; break;
    }
}

static const tfield_t *tfield(const char *key)
{
    for (size_t i = 0; i < N_TFIELDS; i++)
        if (strcmp(tfields[i].key, key) == 0)
            return &tfields[i];
    fail_msg("no field %s", key);
    return NULL;
}

/* ---- envelopes and inputs ----------------------------------------------- */

#define UUID "0190f1e2-7a3b-7c4d-8e5f-0123456789ab"
#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void full_env(yard_envelope_t *e)
{
    yard_env_init(e);
    e->id = YARD_STR(UUID);
    e->type = YARD_STR("email.send");
    e->queue = YARD_STR("critical-1");
    e->payload = YARD_STR("{\"to\":\"a@example.com\",\"n\":[1,2,3]}");
    e->priority = YARD_PRIO_HIGH;
    e->max_attempts = 7;
    e->timeout_s = 60;
    e->run_at_ms = 1732240000000;
    e->created_at_ms = 1732230000000;
    e->notify = YARD_STR("{\"url\":\"https://example.com/hook\"}");
    e->idempotency_key = YARD_STR("order-42");
    e->api_key_id = YARD_STR("key_7f3a");
    e->traceparent = YARD_STR(TP);
    e->workflow_id = YARD_STR("wf-1");
    e->step_id = YARD_STR("step-a");
    e->schedule = YARD_STR("nightly");
    e->secrets = YARD_STR("a1b2c3d4.c2VhbGVk");
}

static void min_env(yard_envelope_t *e)
{
    yard_env_init(e);
    e->id = YARD_STR(UUID);
    e->type = YARD_STR("noop");
    e->created_at_ms = 1732230000000;
}

/* Encodes e into a fresh heap buffer (free it), checking size bounds. */
static char *encode(const yard_envelope_t *e, size_t *len)
{
    size_t cap = yard_env_encoded_size_max(e);
    char *buf = malloc(cap ? cap : 1);
    assert_non_null(buf);
    CHECK_RC(yard_env_encode(e, buf, cap, len), 0, "encoding a valid envelope");
    CHECK(*len <= cap, "encoded %zu bytes, size_max said %zu", *len, cap);
    return buf;
}

/* Decodes a heap copy of exactly len bytes and checks the code. On error,
 * also checks that *out was left untouched. */
static void decode_expect(yard_envelope_t *out, const void *data, size_t len, int want,
                          const char *what)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, data, len);
    yard_envelope_t before;
    memset(out, 0x5a, sizeof *out);
    memcpy(&before, out, sizeof before);
    int rc = yard_env_decode(out, copy, len);
    CHECK_RC(rc, want, "decoding %s (%zu bytes)", what, len);
    if (rc != 0)
        CHECK(memcmp(&before, out, sizeof before) == 0, "%s: *out changed on error", what);
    free(copy); /* out now points into freed memory: callers only compare scalars */
}

/* Like decode_expect for success, but keeps the buffer (free it) so the
 * strings in *out stay valid. */
static char *decode_keep(yard_envelope_t *out, const void *data, size_t len, const char *what)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, data, len);
    CHECK_RC(yard_env_decode(out, copy, len), 0, "decoding %s", what);
    return copy;
}

static size_t hex_to(uint8_t *out, const char *hex)
{
    size_t n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

static void pack_key(msgpack_packer *pk, const char *key)
{
    msgpack_pack_str(pk, strlen(key));
    msgpack_pack_str_body(pk, key, strlen(key));
}

/* Packs e with msgpack-c, independently of the encoder: every integer field,
 * every string whose ptr is not NULL (so YARD_STR("") packs an empty string),
 * no key named omit, and n_extra raw entries after the first two fields. */
static void pack_env(msgpack_sbuffer *sb, const yard_envelope_t *e, const char *omit,
                     const void *extra, size_t extra_len, size_t n_extra)
{
    msgpack_packer pk;
    yard_envelope_t *m = (yard_envelope_t *)e;
    size_t n = 0, written = 0;
    int extra_done = 0;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    for (size_t i = 0; i < N_TFIELDS; i++)
        if (!(omit && strcmp(omit, tfields[i].key) == 0) &&
            (tfields[i].kind != 's' || tf_str(m, &tfields[i])->ptr))
            n++;
    msgpack_pack_map(&pk, n + n_extra);
    for (size_t i = 0; i < N_TFIELDS; i++) {
        const tfield_t *f = &tfields[i];
        if (written == 2 && !extra_done) {
            msgpack_sbuffer_write(sb, extra, extra_len);
            extra_done = 1;
        }
        if ((omit && strcmp(omit, f->key) == 0) || (f->kind == 's' && !tf_str(m, f)->ptr))
            continue;
        pack_key(&pk, f->key);
        if (f->kind == 's') {
            msgpack_pack_str(&pk, tf_str(m, f)->len);
            msgpack_pack_str_body(&pk, tf_str(m, f)->ptr, tf_str(m, f)->len);
        } else {
            msgpack_pack_int64(&pk, tf_get(e, f));
        }
        written++;
    }
    if (!extra_done)
        msgpack_sbuffer_write(sb, extra, extra_len);
}

/* Packs the full envelope with one extra entry: key, then value from hex. */
static void pack_with_entry(msgpack_sbuffer *sb, const char *omit, const char *key,
                            const char *value_hex)
{
    yard_envelope_t e;
    msgpack_sbuffer x;
    msgpack_packer pk;
    full_env(&e);
    msgpack_sbuffer_init(&x);
    msgpack_packer_init(&pk, &x, msgpack_sbuffer_write);
    pack_key(&pk, key);
    uint8_t *v = malloc(strlen(value_hex) / 2 + 1);
    assert_non_null(v);
    msgpack_sbuffer_write(&x, (const char *)v, hex_to(v, value_hex));
    pack_env(sb, &e, omit, x.data, x.size, 1);
    free(v);
    msgpack_sbuffer_destroy(&x);
}

/* One value of every msgpack form, as exact bytes. Integers are 5 and
 * strings "abc", so they are valid for max_attempts and type. */
typedef struct {
    const char *name;
    char cls; /* 'n' nil, 'i' integer, 's' string, 'o' other */
    const char *hex;
} raw_t;

static const raw_t raws[] = {
    {"nil", 'n', "c0"},
    {"false", 'o', "c2"},
    {"true", 'o', "c3"},
    {"positive fixint", 'i', "05"},
    {"uint8", 'i', "cc05"},
    {"uint16", 'i', "cd0005"},
    {"uint32", 'i', "ce00000005"},
    {"uint64", 'i', "cf0000000000000005"},
    {"int8", 'i', "d005"},
    {"int16", 'i', "d10005"},
    {"int32", 'i', "d200000005"},
    {"int64", 'i', "d30000000000000005"},
    {"float32", 'o', "ca40a00000"},
    {"float64", 'o', "cb4014000000000000"},
    {"fixstr", 's', "a3616263"},
    {"str8", 's', "d903616263"},
    {"str16", 's', "da0003616263"},
    {"str32", 's', "db00000003616263"},
    {"bin8", 'o', "c403616263"},
    {"bin16", 'o', "c50003616263"},
    {"bin32", 'o', "c600000003616263"},
    {"fixarray", 'o', "93c0a16105"},
    {"array16", 'o', "dc0002c0cb4014000000000000"},
    {"array32", 'o', "dd00000002c3c403010203"},
    {"empty fixarray", 'o', "90"},
    {"fixmap", 'o', "82a16105a162c0"},
    {"map16", 'o', "de0001a16192c0d0ff"},
    {"map32", 'o', "df0000000105a162"},
    {"empty fixmap", 'o', "80"},
    {"fixext1", 'o', "d40101"},
    {"fixext2", 'o', "d5010102"},
    {"fixext4", 'o', "d60101020304"},
    {"fixext8", 'o', "d7010102030405060708"},
    {"fixext16", 'o', "d801000102030405060708090a0b0c0d0e0f"},
    {"ext8", 'o', "c70301616263"},
    {"ext16", 'o', "c8000301616263"},
    {"ext32", 'o', "c90000000301616263"},
    {"timestamp ext", 'o', "d6ff00000000"},
    {"nested", 'o', "82a17893a1798190c0dc0001de0001a17a81a1769100a1778283c0c0c2c391c0c3c0c0c0"},
    {"map with non-string keys", 'o', "8201029300c0c2c0"},
    {"map with a known key", 'o', "81a474797065a3616263"},
};
#define N_RAWS (sizeof raws / sizeof raws[0])

/* ---- tests -------------------------------------------------------------- */

static void test_init_defaults(void **state)
{
    yard_envelope_t e;
    memset(&e, 0x5a, sizeof e);
    yard_env_init(&e);
    CHECK_INT(e.version, 1, "version");
    CHECK_INT(YARD_ENV_VERSION, 1, "YARD_ENV_VERSION");
    CHECK_STR(e.queue, "default", "queue");
    CHECK_INT(e.priority, YARD_PRIO_NORMAL, "priority");
    CHECK_INT(e.max_attempts, 5, "max_attempts");
    CHECK_INT(e.timeout_s, 300, "timeout_s");
    CHECK_INT(e.run_at_ms, 0, "run_at_ms");
    CHECK_INT(e.created_at_ms, 0, "created_at_ms");
    for (size_t i = 0; i < N_TFIELDS; i++)
        if (tfields[i].kind == 's' && strcmp(tfields[i].key, "queue") != 0)
            CHECK(tf_str(&e, &tfields[i])->ptr == NULL && tf_str(&e, &tfields[i])->len == 0,
                  "%s should be absent after init", tfields[i].key);
    size_t len;
    char buf[64];
    CHECK_RC(yard_env_encode(&e, buf, sizeof buf, &len), YARD_EINVAL,
             "init alone lacks id, type, created_at");
}

static void test_roundtrip_full(void **state)
{
    yard_envelope_t e, d;
    size_t len;
    full_env(&e);
    char *buf = encode(&e, &len);
    CHECK_INT(len, yard_env_encoded_size_max(&e), "size_max is exact for a valid envelope");
    CHECK_RC(yard_env_decode(&d, buf, len), 0, "full envelope");
    CHECK_INT(d.version, 1, "version");
    CHECK_STR(d.id, UUID, "id");
    CHECK_STR(d.type, "email.send", "type");
    CHECK_STR(d.queue, "critical-1", "queue");
    CHECK_STR(d.payload, "{\"to\":\"a@example.com\",\"n\":[1,2,3]}", "payload");
    CHECK_INT(d.priority, YARD_PRIO_HIGH, "priority");
    CHECK_INT(d.max_attempts, 7, "max_attempts");
    CHECK_INT(d.timeout_s, 60, "timeout_s");
    CHECK_INT(d.run_at_ms, 1732240000000, "run_at_ms");
    CHECK_INT(d.created_at_ms, 1732230000000, "created_at_ms");
    CHECK_STR(d.notify, "{\"url\":\"https://example.com/hook\"}", "notify");
    CHECK_STR(d.idempotency_key, "order-42", "idem");
    CHECK_STR(d.api_key_id, "key_7f3a", "key");
    CHECK_STR(d.traceparent, TP, "tp");
    CHECK_STR(d.workflow_id, "wf-1", "wf");
    CHECK_STR(d.step_id, "step-a", "step");
    CHECK_STR(d.schedule, "nightly", "sched");
    CHECK_STR(d.secrets, "a1b2c3d4.c2VhbGVk", "secrets");
    CHECK(yard_env_equal(&e, &d), "decoded envelope differs from the encoded one");
    for (size_t i = 0; i < N_TFIELDS; i++) {
        if (tfields[i].kind != 's')
            continue;
        yard_str_t s = *tf_str(&d, &tfields[i]);
        CHECK(s.ptr >= buf && s.ptr + s.len <= buf + len, "%s should point into the input",
              tfields[i].key);
    }
    free(buf);
}

static void test_roundtrip_minimal(void **state)
{
    yard_envelope_t e, d;
    size_t len;
    min_env(&e);
    char *buf = encode(&e, &len);
    CHECK_RC(yard_env_decode(&d, buf, len), 0, "minimal envelope");
    CHECK(yard_env_equal(&e, &d), "decoded minimal envelope differs");
    free(buf);

    /* Only the required keys on the wire: the decoder applies the defaults. */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    pack_key(&pk, "type");
    pack_key(&pk, "noop");
    pack_key(&pk, "created_at");
    msgpack_pack_int64(&pk, 1732230000000);
    pack_key(&pk, "id");
    pack_key(&pk, UUID);
    pack_key(&pk, "v");
    msgpack_pack_uint64(&pk, 1);
    char *keep = decode_keep(&d, sb.data, sb.size, "required keys only");
    CHECK_STR(d.type, "noop", "type");
    CHECK_STR(d.id, UUID, "id");
    CHECK_INT(d.created_at_ms, 1732230000000, "created_at");
    CHECK_STR(d.queue, "default", "default queue");
    CHECK_INT(d.priority, YARD_PRIO_NORMAL, "default priority");
    CHECK_INT(d.max_attempts, 5, "default max_attempts");
    CHECK_INT(d.timeout_s, 300, "default timeout_s");
    CHECK_INT(d.run_at_ms, 0, "default run_at");
    CHECK(d.payload.ptr == NULL && d.payload.len == 0, "payload should be absent (null)");
    CHECK(yard_env_equal(&e, &d), "defaults differ from yard_env_init's");
    free(keep);

    /* Each required key missing in turn. */
    const char *required[] = {"v", "id", "type", "created_at"};
    for (size_t i = 0; i < 4; i++) {
        yard_envelope_t f;
        msgpack_sbuffer s2;
        full_env(&f);
        pack_env(&s2, &f, required[i], NULL, 0, 0);
        char what[64];
        snprintf(what, sizeof what, "an envelope without \"%s\"", required[i]);
        decode_expect(&d, s2.data, s2.size, YARD_EINVAL, what);
        msgpack_sbuffer_destroy(&s2);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* The encoder's output read back with msgpack-c: the right keys, values in
 * their smallest form, absent optional fields not written. */
static void test_encoding_read_by_msgpack_c(void **state)
{
    yard_envelope_t e;
    size_t len;
    for (int full = 0; full <= 1; full++) {
        if (full)
            full_env(&e);
        else
            min_env(&e);
        char *buf = encode(&e, &len);
        msgpack_unpacked u;
        size_t off = 0;
        msgpack_unpacked_init(&u);
        CHECK_INT(msgpack_unpack_next(&u, buf, len, &off), MSGPACK_UNPACK_SUCCESS,
                  "msgpack-c reading our encoding");
        CHECK_INT(off, len, "msgpack-c should use every byte");
        CHECK_INT(u.data.type, MSGPACK_OBJECT_MAP, "top-level type");
        /* The minimal envelope writes v, id, type, queue, priority,
         * max_attempts, timeout_s and created_at. */
        CHECK_INT(u.data.via.map.size, full ? 18 : 8, "number of keys (full=%d)", full);
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object_kv *kv = &u.data.via.map.ptr[i];
            CHECK_INT(kv->key.type, MSGPACK_OBJECT_STR, "key %u type", i);
            char key[16] = {0};
            memcpy(key, kv->key.via.str.ptr, kv->key.via.str.size < 15 ? kv->key.via.str.size : 15);
            const tfield_t *f = tfield(key);
            if (f->kind == 's') {
                yard_str_t s = *tf_str(&e, f);
                CHECK_INT(kv->val.type, MSGPACK_OBJECT_STR, "type of %s", key);
                CHECK(kv->val.via.str.size == s.len && memcmp(kv->val.via.str.ptr, s.ptr, s.len) == 0,
                      "value of %s", key);
            } else {
                CHECK_INT(kv->val.type, MSGPACK_OBJECT_POSITIVE_INTEGER, "type of %s", key);
                CHECK_INT(kv->val.via.u64, tf_get(&e, f), "value of %s", key);
            }
        }
        msgpack_unpacked_destroy(&u);
        free(buf);
    }
    /* Smallest forms: a fixmap for 8 keys, a map16 for 17 keys. */
    min_env(&e);
    char *buf = encode(&e, &len);
    CHECK_INT((uint8_t)buf[0], 0x88, "minimal map header");
    CHECK_INT((uint8_t)buf[1], 0xa1, "first key is fixstr \"v\"");
    CHECK_INT((uint8_t)buf[3], 0x01, "v is positive fixint 1");
    free(buf);
    full_env(&e);
    buf = encode(&e, &len);
    CHECK_INT((uint8_t)buf[0], 0xde, "full map header");
    free(buf);
}

/* Finds key's fixstr in buf and returns the offset of its value. */
static size_t value_at(const char *buf, size_t len, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl + 1 < len; i++)
        if ((uint8_t)buf[i] == (0xa0 | kl) && memcmp(buf + i + 1, key, kl) == 0)
            return i + 1 + kl;
    fail_msg("key %s not in the encoding", key);
    return 0;
}

/* Integers and strings at each size limit take the smallest form. */
static void test_smallest_forms(void **state)
{
    static const struct {
        int64_t v;
        uint8_t tag;
    } ints[] = {{1, 0x01}, {127, 0x7f}, {128, 0xcc}, {255, 0xcc}, {256, 0xcd},
                {65535, 0xcd}, {65536, 0xce}, {4294967295, 0xce}, {4294967296, 0xcf},
                {TIME_MAX, 0xcf}};
    static const struct {
        size_t n;
        uint8_t tag;
    } strs[] = {{1, 0xa1}, {31, 0xbf}, {32, 0xd9}, {255, 0xd9}, {256, 0xda},
                {65535, 0xda}, {65536, 0xdb}, {1 << 20, 0xdb}};
    static char fill[1 << 20];
    memset(fill, '7', sizeof fill);
    yard_envelope_t e, d;
    size_t len;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        full_env(&e);
        e.created_at_ms = ints[i].v;
        char *buf = encode(&e, &len);
        size_t at = value_at(buf, len, "created_at");
        CHECK_INT((uint8_t)buf[at], ints[i].tag, "form of created_at = %lld",
                  (long long)ints[i].v);
        CHECK_RC(yard_env_decode(&d, buf, len), 0, "created_at = %lld", (long long)ints[i].v);
        CHECK_INT(d.created_at_ms, ints[i].v, "created_at read back");
        free(buf);
    }
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        full_env(&e);
        e.payload = (yard_str_t){fill, strs[i].n};
        char *buf = encode(&e, &len);
        size_t at = value_at(buf, len, "payload");
        CHECK_INT((uint8_t)buf[at], strs[i].tag, "form of a %zu-byte payload", strs[i].n);
        CHECK_RC(yard_env_decode(&d, buf, len), 0, "a %zu-byte payload", strs[i].n);
        CHECK_INT(d.payload.len, strs[i].n, "payload length read back");
        free(buf);
    }
}

static void test_bounds(void **state)
{
    static char fill[(1 << 20) + 2];
    memset(fill, 'a', sizeof fill);
    for (size_t i = 0; i < N_TFIELDS; i++) {
        const tfield_t *f = &tfields[i];
        int64_t cases[5];
        size_t nc = 0;
        if (f->kind == 's')
            cases[nc++] = 0;
        if (f->min > 0 || f->kind == 'i')
            cases[nc++] = f->min - 1;
        cases[nc++] = f->min;
        cases[nc++] = f->max;
        cases[nc++] = f->max + 1;
        for (size_t c = 0; c < nc; c++) {
            int64_t v = cases[c];
            int ok = (v >= f->min && v <= f->max) || (f->kind == 's' && v == 0 && f->opt);
            yard_envelope_t e, d;
            char uuid_ish[40];
            full_env(&e);
            if (f->kind == 's') {
                const char *p = fill;
                if (strcmp(f->key, "id") == 0) { /* a valid id, cut or extended */
                    snprintf(uuid_ish, sizeof uuid_ish, "%sa", UUID);
                    p = uuid_ish;
                }
                *tf_str(&e, f) = (yard_str_t){v == 0 ? "" : p, (size_t)v};
            } else {
                tf_set(&e, f, v);
            }
            char what[96];
            snprintf(what, sizeof what, "%s = %s%lld", f->key, f->kind == 's' ? "length " : "",
                     (long long)v);

            size_t cap = yard_env_encoded_size_max(&e), len = 0;
            char *buf = malloc(cap);
            assert_non_null(buf);
            CHECK_RC(yard_env_encode(&e, buf, cap, &len), ok ? 0 : YARD_EINVAL, "encoding %s",
                     what);
            free(buf);

            msgpack_sbuffer sb;
            pack_env(&sb, &e, NULL, NULL, 0, 0);
            int want = ok ? 0 : strcmp(f->key, "v") == 0 ? YARD_EVERSION : YARD_EINVAL;
            if (!ok) {
                decode_expect(&d, sb.data, sb.size, want, what);
            } else {
                char *keep = decode_keep(&d, sb.data, sb.size, what);
                if (f->kind == 's')
                    CHECK_INT(tf_str(&d, f)->len, v, "decoded length of %s", what);
                else
                    CHECK_INT(tf_get(&d, f), v, "decoded %s", what);
                free(keep);
            }
            msgpack_sbuffer_destroy(&sb);
        }
    }
}

/* Integers too wide for their field must not wrap into range. */
static void test_wide_integers(void **state)
{
    static const struct {
        const char *key, *hex;
        int want;
    } cases[] = {
        {"max_attempts", "cf0000000100000005", YARD_EINVAL}, /* 2^32 + 5 */
        {"max_attempts", "cfffffffffffffffff", YARD_EINVAL},
        {"max_attempts", "ff", YARD_EINVAL},                 /* -1 */
        {"priority", "cf0000000100000001", YARD_EINVAL},
        {"timeout_s", "d3ffffffff00000001", YARD_EINVAL},
        {"created_at", "d38000000000000000", YARD_EINVAL},   /* INT64_MIN */
        {"created_at", "cf8000000000000000", YARD_EINVAL},   /* 2^63 */
        {"run_at", "e0", YARD_EINVAL},                       /* -32 */
        {"v", "cf0000000100000001", YARD_EVERSION},
        {"v", "cfffffffffffffffff", YARD_EVERSION},
        {"v", "ff", YARD_EVERSION},
        {"v", "00", YARD_EVERSION},
        {"v", "02", YARD_EVERSION},
        {"v", "d001", 0}, /* int8 1 is fine */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_sbuffer sb;
        yard_envelope_t d;
        char what[96];
        pack_with_entry(&sb, cases[i].key, cases[i].key, cases[i].hex);
        snprintf(what, sizeof what, "%s = %s", cases[i].key, cases[i].hex);
        decode_expect(&d, sb.data, sb.size, cases[i].want, what);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_id_and_queue_text(void **state)
{
    static const struct {
        const char *key, *value;
        int ok;
    } cases[] = {
        {"id", "0190F1E2-7A3B-7C4D-8E5F-0123456789AB", 0}, /* not canonical: upper case */
        {"id", "0190f1e2a7a3b-7c4d-8e5f-0123456789a", 0},
        {"id", "0190f1e2-7a3b-7c4d-8e5f-0123456789ag", 0},
        {"id", "{190f1e2-7a3b-7c4d-8e5f-0123456789a}", 0},
        {"id", "0190f1e2-7a3b-7c4d-8e5f 0123456789ab", 0},
        {"id", "00000000-0000-0000-0000-000000000000", 1},
        /* queue and type follow bus/names.h: [a-z0-9][a-z0-9._-]{0,63} */
        {"queue", "a.b", 1},
        {"queue", "q_1-x.eu", 1},
        {"queue", "a b", 0},
        {"queue", "jobs*", 0},
        {"queue", ">", 0},
        {"queue", "caf\xc3\xa9", 0},
        {"queue", "Queue_1-x", 0},
        {"queue", "-lead", 0},
        {"type", "send.email-v2", 1},
        {"type", "any.bytes/at all!", 0},
        {"type", "Upper", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        yard_envelope_t e, d;
        char what[96], buf[1024];
        size_t len;
        full_env(&e);
        yard_str_t *s = tf_str(&e, tfield(cases[i].key));
        *s = (yard_str_t){cases[i].value, strlen(cases[i].value)};
        snprintf(what, sizeof what, "%s \"%s\"", cases[i].key, cases[i].value);
        CHECK_RC(yard_env_encode(&e, buf, sizeof buf, &len), cases[i].ok ? 0 : YARD_EINVAL,
                 "encoding %s", what);
        msgpack_sbuffer sb;
        pack_env(&sb, &e, NULL, NULL, 0, 0);
        decode_expect(&d, sb.data, sb.size, cases[i].ok ? 0 : YARD_EINVAL, what);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_truncated(void **state)
{
    yard_envelope_t e, d;
    size_t len;
    full_env(&e);
    char *buf = encode(&e, &len);
    for (size_t n = 0; n < len; n++) {
        char what[64];
        snprintf(what, sizeof what, "a %zu-byte prefix of %zu", n, len);
        decode_expect(&d, buf, n, YARD_ETRUNC, what);
    }
    free(buf);
}

/* Checks one possibly corrupt input: an error leaves *out untouched, and a
 * success is a valid envelope that round-trips. */
static void decode_any(const char *data, size_t len, const char *what)
{
    char *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, data, len);
    yard_envelope_t d, before;
    memset(&d, 0x5a, sizeof d);
    before = d;
    int rc = yard_env_decode(&d, copy, len);
    if (rc == 0) {
        size_t n;
        char *again = encode(&d, &n);
        yard_envelope_t d2;
        CHECK_RC(yard_env_decode(&d2, again, n), 0, "re-decoding %s", what);
        CHECK(yard_env_equal(&d, &d2), "%s: round trip differs", what);
        free(again);
    } else {
        CHECK(rc == YARD_ETRUNC || rc == YARD_EFORMAT || rc == YARD_EVERSION || rc == YARD_EINVAL,
              "%s: unexpected code %d", what, rc);
        CHECK(memcmp(&d, &before, sizeof d) == 0, "%s: *out changed on error", what);
    }
    free(copy);
}

static void corrupt_all(const char *buf, size_t len, const char *name)
{
    static const int muts[] = {-1, -0x80, -0xff, 0xc1, 0x00, 0xff, 0x7f, 0xdf, 0xdb, 0xc9, 0xa0};
    char *m = malloc(len);
    assert_non_null(m);
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof muts / sizeof muts[0]; k++) {
            char what[96];
            memcpy(m, buf, len);
            m[i] = (char)(muts[k] < 0 ? (uint8_t)buf[i] ^ (uint8_t)-muts[k] : muts[k]);
            snprintf(what, sizeof what, "%s with byte %zu set to 0x%02x", name, i, (uint8_t)m[i]);
            decode_any(m, len, what);
        }
    }
    free(m);
}

static void test_corrupted(void **state)
{
    yard_envelope_t e, d;
    size_t len;
    full_env(&e);
    char *buf = encode(&e, &len);
    corrupt_all(buf, len, "full envelope");
    /* 0xc1 as the map header, a key header or a value header. */
    char *m = malloc(len);
    assert_non_null(m);
    size_t at[] = {0, 3, 5}; /* map, first key, first value */
    for (size_t i = 0; i < 3; i++) {
        memcpy(m, buf, len);
        m[at[i]] = (char)0xc1;
        decode_expect(&d, m, len, YARD_EFORMAT, "0xc1 in a header");
    }
    free(m);
    free(buf);
    /* 0xc1 where nil or anything else would be accepted. */
    static const char *const c1_at[][2] = {
        {"x", "c1"}, {"x", "93c0c1c0"}, {"x", "81c1c0"}, {"x", "81c0c1"}, {"payload", "c1"}};
    for (size_t i = 0; i < sizeof c1_at / sizeof c1_at[0]; i++) {
        msgpack_sbuffer sb;
        char what[64];
        pack_with_entry(&sb, c1_at[i][0], c1_at[i][0], c1_at[i][1]);
        snprintf(what, sizeof what, "\"%s\": %s", c1_at[i][0], c1_at[i][1]);
        decode_expect(&d, sb.data, sb.size, YARD_EFORMAT, what);
        msgpack_sbuffer_destroy(&sb);
    }

    /* Corruption inside unknown values of every form. */
    msgpack_sbuffer x, sb;
    msgpack_packer pk;
    uint8_t v[64];
    msgpack_sbuffer_init(&x);
    msgpack_packer_init(&pk, &x, msgpack_sbuffer_write);
    for (size_t i = 0; i < N_RAWS; i++) {
        char key[8];
        snprintf(key, sizeof key, "x%zu", i);
        pack_key(&pk, key);
        msgpack_sbuffer_write(&x, (const char *)v, hex_to(v, raws[i].hex));
    }
    min_env(&e);
    pack_env(&sb, &e, NULL, x.data, x.size, N_RAWS);
    decode_any(sb.data, sb.size, "unknown values");
    corrupt_all(sb.data, sb.size, "unknown values");
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&x);
}

static void test_unknown_fields_skipped(void **state)
{
    yard_envelope_t want, d;
    full_env(&want);
    for (size_t i = 0; i < N_RAWS; i++) {
        msgpack_sbuffer sb;
        char what[96];
        pack_with_entry(&sb, NULL, "x-future", raws[i].hex);
        snprintf(what, sizeof what, "unknown field of type %s", raws[i].name);
        char *keep = decode_keep(&d, sb.data, sb.size, what);
        CHECK(yard_env_equal(&want, &d), "known fields changed by %s", what);
        free(keep);
        msgpack_sbuffer_destroy(&sb);
    }
    /* All at once, and with keys in every str form and near-misses of known keys. */
    static const char *const keys_hex[] = {"a178", "d9027879", "da00037a7a7a", "db00000000",
                                           "a3747970", "a57479706573", "a454797065", "a24944",
                                           "a0"};
    msgpack_sbuffer x, sb;
    uint8_t v[64];
    msgpack_sbuffer_init(&x);
    size_t n = 0;
    for (size_t k = 0; k < sizeof keys_hex / sizeof keys_hex[0]; k++) {
        msgpack_sbuffer_write(&x, (const char *)v, hex_to(v, keys_hex[k]));
        msgpack_sbuffer_write(&x, (const char *)v, hex_to(v, raws[k % N_RAWS].hex));
        n++;
    }
    for (size_t i = 0; i < N_RAWS; i++, n++) {
        msgpack_sbuffer_write(&x, (const char *)v, hex_to(v, "d903"));
        snprintf((char *)v, sizeof v, "z%02zu", i);
        msgpack_sbuffer_write(&x, (const char *)v, 3);
        msgpack_sbuffer_write(&x, (const char *)v, hex_to(v, raws[i].hex));
    }
    pack_env(&sb, &want, NULL, x.data, x.size, n);
    char *keep = decode_keep(&d, sb.data, sb.size, "every unknown form at once");
    CHECK(yard_env_equal(&want, &d), "known fields changed by many unknown fields");
    free(keep);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&x);
}

/* Known keys in non-minimal str forms, and values in every integer and
 * string form, are read. */
static void test_known_field_forms(void **state)
{
    static const char *const type_keys[] = {"a474797065", "d90474797065", "da000474797065",
                                            "db0000000474797065"};
    for (size_t k = 0; k < 4; k++) {
        for (size_t i = 0; i < N_RAWS; i++) {
            if (raws[i].cls != 's')
                continue;
            msgpack_sbuffer x, sb;
            uint8_t v[32];
            yard_envelope_t e, d;
            char what[96];
            full_env(&e);
            msgpack_sbuffer_init(&x);
            msgpack_sbuffer_write(&x, (const char *)v, hex_to(v, type_keys[k]));
            msgpack_sbuffer_write(&x, (const char *)v, hex_to(v, raws[i].hex));
            pack_env(&sb, &e, "type", x.data, x.size, 1);
            snprintf(what, sizeof what, "key %s, type as %s", type_keys[k], raws[i].name);
            char *keep = decode_keep(&d, sb.data, sb.size, what);
            CHECK_STR(d.type, "abc", "%s", what);
            free(keep);
            msgpack_sbuffer_destroy(&sb);
            msgpack_sbuffer_destroy(&x);
        }
    }
    for (size_t i = 0; i < N_RAWS; i++) {
        if (raws[i].cls != 'i')
            continue;
        msgpack_sbuffer sb;
        yard_envelope_t d;
        char what[96];
        pack_with_entry(&sb, "max_attempts", "max_attempts", raws[i].hex);
        snprintf(what, sizeof what, "max_attempts as %s", raws[i].name);
        char *keep = decode_keep(&d, sb.data, sb.size, what);
        CHECK_INT(d.max_attempts, 5, "%s", what);
        free(keep);
        msgpack_sbuffer_destroy(&sb);
    }
    /* A positive value in a signed 64-bit form. */
    msgpack_sbuffer sb;
    yard_envelope_t d;
    pack_with_entry(&sb, "created_at", "created_at", "d3000001935b5a8c00");
    char *keep = decode_keep(&d, sb.data, sb.size, "created_at as int64");
    CHECK_INT(d.created_at_ms, 0x1935b5a8c00LL, "created_at as int64");
    free(keep);
    msgpack_sbuffer_destroy(&sb);
}

static void test_wrong_type(void **state)
{
    for (size_t f = 0; f < N_TFIELDS; f++) {
        const tfield_t *tf = &tfields[f];
        char cls = tf->kind == 's' ? 's' : 'i';
        for (size_t i = 0; i < N_RAWS; i++) {
            if (raws[i].cls == cls || (raws[i].cls == 'n' && tf->opt))
                continue;
            msgpack_sbuffer sb;
            yard_envelope_t d;
            char what[96];
            pack_with_entry(&sb, tf->key, tf->key, raws[i].hex);
            snprintf(what, sizeof what, "%s as %s", tf->key, raws[i].name);
            decode_expect(&d, sb.data, sb.size, YARD_EFORMAT, what);
            msgpack_sbuffer_destroy(&sb);
        }
    }
    /* nil for an optional field means absent. */
    msgpack_sbuffer sb;
    yard_envelope_t d;
    pack_with_entry(&sb, "payload", "payload", "c0");
    char *keep = decode_keep(&d, sb.data, sb.size, "payload nil");
    CHECK(d.payload.ptr == NULL && d.payload.len == 0, "payload nil should be absent");
    free(keep);
    msgpack_sbuffer_destroy(&sb);
    pack_with_entry(&sb, "notify", "notify", "a0");
    keep = decode_keep(&d, sb.data, sb.size, "notify \"\"");
    CHECK(d.notify.ptr == NULL && d.notify.len == 0, "empty notify should be absent");
    free(keep);
    msgpack_sbuffer_destroy(&sb);
}

static void test_not_a_map(void **state)
{
    static const struct {
        const char *hex, *what;
        int want;
    } cases[] = {
        {"", "empty input", YARD_ETRUNC},
        {"c0", "nil", YARD_EFORMAT},
        {"90", "an empty array", YARD_EFORMAT},
        {"a3616263", "a string", YARD_EFORMAT},
        {"c1", "the never-used byte", YARD_EFORMAT},
        {"80", "an empty map", YARD_EINVAL},
        {"8101a176", "an integer key", YARD_EFORMAT},
        {"81c0a176", "a nil key", YARD_EFORMAT},
        {"8191a17601", "an array key", YARD_EFORMAT},
        {"81c403616263c0", "a bin key", YARD_EFORMAT},
        {"81a17601c0", "v then a byte beyond the map", YARD_EFORMAT},
        {"de00", "a cut map16 header", YARD_ETRUNC},
        {"dfffffffffa17601", "map32 claiming 2^32-1 entries", YARD_ETRUNC},
        {"81a178dbffffffff61", "str32 claiming 4 GiB", YARD_ETRUNC},
        {"81a178ddffffffffc0", "array32 claiming 2^32-1 elements", YARD_ETRUNC},
        {"81a178c6ffffffff", "bin32 claiming 4 GiB", YARD_ETRUNC},
        {"81a178c9ffffffff01", "ext32 claiming 4 GiB", YARD_ETRUNC},
        {"81a178c9fffffffe", "ext32 without its type byte", YARD_ETRUNC},
        {"81a178d801", "fixext16 cut", YARD_ETRUNC},
        {"81a77061796c6f6164dbffffffff", "payload str32 claiming 4 GiB", YARD_ETRUNC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t b[64];
        yard_envelope_t d;
        decode_expect(&d, b, hex_to(b, cases[i].hex), cases[i].want, cases[i].what);
    }
    yard_envelope_t d;
    CHECK_RC(yard_env_decode(NULL, "\x80", 1), YARD_EINVAL, "out NULL");
    CHECK_RC(yard_env_decode(&d, NULL, 1), YARD_EINVAL, "buf NULL");
    CHECK_RC(yard_env_decode(&d, NULL, 0), YARD_ETRUNC, "buf NULL, len 0");
}

static void test_duplicate_key(void **state)
{
    for (size_t f = 0; f < N_TFIELDS; f++) {
        const tfield_t *tf = &tfields[f];
        /* The same valid value again: the duplicate itself is the error. */
        yard_envelope_t e, d;
        msgpack_sbuffer x, sb;
        msgpack_packer pk;
        full_env(&e);
        msgpack_sbuffer_init(&x);
        msgpack_packer_init(&pk, &x, msgpack_sbuffer_write);
        pack_key(&pk, tf->key);
        if (tf->kind == 's') {
            msgpack_pack_str(&pk, tf_str(&e, tf)->len);
            msgpack_pack_str_body(&pk, tf_str(&e, tf)->ptr, tf_str(&e, tf)->len);
        } else {
            msgpack_pack_int64(&pk, tf_get(&e, tf));
        }
        pack_env(&sb, &e, NULL, x.data, x.size, 1);
        char what[64];
        snprintf(what, sizeof what, "\"%s\" twice", tf->key);
        decode_expect(&d, sb.data, sb.size, YARD_EFORMAT, what);
        msgpack_sbuffer_destroy(&sb);
        msgpack_sbuffer_destroy(&x);
    }
    /* A duplicate of an optional field given as nil is still a duplicate. */
    uint8_t b[64];
    yard_envelope_t d;
    size_t n = hex_to(b, "82a7"
                         "7061796c6f6164c0"
                         "a77061796c6f6164c0");
    decode_expect(&d, b, n, YARD_EFORMAT, "payload nil twice");
}

static void test_version(void **state)
{
    msgpack_sbuffer sb;
    yard_envelope_t d;
    pack_with_entry(&sb, "v", "v", "02");
    decode_expect(&d, sb.data, sb.size, YARD_EVERSION, "v = 2");
    msgpack_sbuffer_destroy(&sb);
    pack_with_entry(&sb, "v", "v", "a131");
    decode_expect(&d, sb.data, sb.size, YARD_EFORMAT, "v = \"1\"");
    msgpack_sbuffer_destroy(&sb);

    /* A future version may change types and bounds: still EVERSION. */
    uint8_t b[128];
    size_t n = hex_to(b, "84"
                         "a474797065c403616263"         /* "type": bin */
                         "ac6d61785f617474656d70747300" /* "max_attempts": 0 */
                         "a17602"                       /* "v": 2 */
                         "a1789191c0");                 /* "x": [[nil]] */
    decode_expect(&d, b, n, YARD_EVERSION, "v = 2 with types and bounds of another version");
    /* ... but not when the input is not even well-formed. */
    decode_expect(&d, b, n - 1, YARD_ETRUNC, "v = 2, truncated");

    yard_envelope_t e;
    char buf[512];
    size_t len;
    full_env(&e);
    e.version = 2;
    CHECK_RC(yard_env_encode(&e, buf, sizeof buf, &len), YARD_EINVAL, "encoding v = 2");
    e.version = 0;
    CHECK_RC(yard_env_encode(&e, buf, sizeof buf, &len), YARD_EINVAL, "encoding v = 0");
}

static void test_trailing_bytes(void **state)
{
    yard_envelope_t e, d;
    size_t len;
    full_env(&e);
    char *buf = encode(&e, &len);
    char *two = malloc(2 * len);
    assert_non_null(two);
    memcpy(two, buf, len);
    memcpy(two + len, buf, len);
    decode_expect(&d, two, len + 1, YARD_EFORMAT, "one byte of trailing garbage");
    two[len] = (char)0xc0;
    decode_expect(&d, two, len + 1, YARD_EFORMAT, "a trailing nil");
    memcpy(two + len, buf, len);
    decode_expect(&d, two, 2 * len, YARD_EFORMAT, "two envelopes back to back");
    free(two);
    free(buf);
}

/* An unknown (or wrongly typed known) field holding depth nested containers,
 * each one element deep, built from the given opener and leaf. */
static void nested(const char *key, size_t depth, const char *open_hex, const char *leaf_hex,
                   int want, const char *what)
{
    uint8_t open[8], leaf[8];
    size_t no = hex_to(open, open_hex), nl = hex_to(leaf, leaf_hex);
    msgpack_sbuffer x, sb;
    msgpack_packer pk;
    yard_envelope_t e, d;
    msgpack_sbuffer_init(&x);
    msgpack_packer_init(&pk, &x, msgpack_sbuffer_write);
    pack_key(&pk, key);
    for (size_t i = 0; i < depth; i++)
        msgpack_sbuffer_write(&x, (const char *)open, no);
    msgpack_sbuffer_write(&x, (const char *)leaf, nl);
    full_env(&e);
    pack_env(&sb, &e, strcmp(key, "type") == 0 ? "type" : NULL, x.data, x.size, 1);
    char msg[128];
    snprintf(msg, sizeof msg, "%s nested %zu deep in \"%s\"", what, depth, key);
    decode_expect(&d, sb.data, sb.size, want, msg);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&x);
}

static void test_deep_nesting(void **state)
{
    /* 32 levels of containers are fine, 33 are not, whatever their form. */
    nested("x", 31, "91", "90", 0, "fixarrays");
    nested("x", 32, "91", "90", YARD_EFORMAT, "fixarrays");
    nested("x", 31, "dd00000001", "dc0000", 0, "array32s");
    nested("x", 32, "dd00000001", "dc0000", YARD_EFORMAT, "array32s");
    nested("x", 32, "81a16b", "c0", 0, "fixmaps");
    nested("x", 33, "81a16b", "c0", YARD_EFORMAT, "fixmaps");
    nested("x", 31, "81a16b", "80", 0, "fixmaps");
    nested("x", 32, "81a16b", "80", YARD_EFORMAT, "fixmaps");
    nested("x", 32, "8191", "c0", YARD_EFORMAT, "maps with array keys");
    /* Deep enough to overflow any recursive skipper. */
    nested("x", 10000, "91", "c0", YARD_EFORMAT, "fixarrays");
    nested("x", 10000, "81a16b", "c0", YARD_EFORMAT, "fixmaps");
    nested("x", 100000, "dc0001", "c0", YARD_EFORMAT, "array16s");
    nested("type", 10000, "91", "c0", YARD_EFORMAT, "fixarrays (wrong type for type)");
    nested("type", 3, "91", "c0", YARD_EFORMAT, "fixarrays (wrong type for type)");
}

static void test_payload_1mib(void **state)
{
    size_t max = (size_t)1 << 20;
    char *p = malloc(max + 1);
    assert_non_null(p);
    /* A JSON string of exactly 1 MiB. */
    memset(p, 'x', max + 1);
    p[0] = '"';
    p[max - 1] = '"';
    yard_envelope_t e, d;
    size_t len;
    full_env(&e);
    e.payload = (yard_str_t){p, max};
    char *buf = encode(&e, &len);
    CHECK_RC(yard_env_decode(&d, buf, len), 0, "a 1 MiB payload");
    CHECK(d.payload.len == max && memcmp(d.payload.ptr, p, max) == 0,
          "payload of %zu bytes came back as %zu bytes", max, d.payload.len);
    CHECK(yard_env_equal(&e, &d), "1 MiB envelope differs");
    free(buf);

    e.payload.len = max + 1;
    char small[16];
    CHECK_RC(yard_env_encode(&e, small, sizeof small, &len), YARD_EINVAL,
             "encoding a payload of 1 MiB + 1 (bounds come before buffer size)");
    msgpack_sbuffer sb;
    pack_env(&sb, &e, NULL, NULL, 0, 0);
    decode_expect(&d, sb.data, sb.size, YARD_EINVAL, "a payload of 1 MiB + 1");
    msgpack_sbuffer_destroy(&sb);
    free(p);
}

static void test_encode_buffer(void **state)
{
    yard_envelope_t e;
    full_env(&e);
    size_t need = yard_env_encoded_size_max(&e);
    char *buf = malloc(need + 16);
    assert_non_null(buf);
    for (size_t cap = 0; cap < need; cap++) {
        size_t len = 12345;
        memset(buf, 0xee, need + 16);
        CHECK_RC(yard_env_encode(&e, buf, cap, &len), YARD_ERANGE, "capacity %zu of %zu", cap,
                 need);
        CHECK_INT(len, 12345, "out_len set on error (capacity %zu)", cap);
        for (size_t i = cap; i < need + 16; i++)
            CHECK((uint8_t)buf[i] == 0xee, "byte %zu written with capacity %zu", i, cap);
    }
    size_t len = 0;
    CHECK_RC(yard_env_encode(&e, buf, need, &len), 0, "capacity exactly size_max");
    CHECK_INT(len, need, "encoded length");

    CHECK_RC(yard_env_encode(NULL, buf, need, &len), YARD_EINVAL, "env NULL");
    CHECK_RC(yard_env_encode(&e, buf, need, NULL), YARD_EINVAL, "out_len NULL");
    CHECK_RC(yard_env_encode(&e, NULL, need, &len), YARD_EINVAL, "buf NULL with a capacity");
    CHECK_RC(yard_env_encode(&e, NULL, 0, &len), YARD_ERANGE, "buf NULL, capacity 0");
    e.type = (yard_str_t){NULL, 4};
    CHECK_RC(yard_env_encode(&e, buf, need, &len), YARD_EINVAL, "a string with NULL ptr");
    free(buf);
}

static void test_equality(void **state)
{
    CHECK(yard_str_eq(YARD_STR("ab"), YARD_STR("ab")), "ab == ab");
    CHECK(!yard_str_eq(YARD_STR("ab"), YARD_STR("ac")), "ab != ac");
    CHECK(!yard_str_eq(YARD_STR("ab"), YARD_STR("abc")), "ab != abc");
    CHECK(yard_str_eq((yard_str_t){NULL, 0}, YARD_STR("")), "absent == empty");
    CHECK(yard_str_eq_cstr(YARD_STR("queue"), "queue"), "eq_cstr equal");
    CHECK(!yard_str_eq_cstr(YARD_STR("queue"), "queues"), "eq_cstr longer literal");
    CHECK(!yard_str_eq_cstr(YARD_STR("queue"), "queu"), "eq_cstr shorter literal");
    CHECK(yard_str_eq_cstr((yard_str_t){NULL, 0}, ""), "eq_cstr absent vs \"\"");

    yard_envelope_t a, b;
    full_env(&a);
    char copy[64];
    for (size_t i = 0; i < N_TFIELDS; i++) {
        const tfield_t *f = &tfields[i];
        full_env(&b);
        CHECK(yard_env_equal(&a, &b), "equal before changing %s", f->key);
        if (f->kind == 's') {
            yard_str_t *s = tf_str(&b, f);
            /* Same bytes elsewhere are equal; one byte changed is not. */
            size_t n = s->len < sizeof copy ? s->len : sizeof copy;
            memcpy(copy, s->ptr, n);
            *s = (yard_str_t){copy, n};
            if (n == tf_str(&a, f)->len)
                CHECK(yard_env_equal(&a, &b), "%s copied should still be equal", f->key);
            copy[0] ^= 1;
        } else {
            tf_set(&b, f, tf_get(&b, f) + 1);
        }
        CHECK(!yard_env_equal(&a, &b), "changing %s should make envelopes differ", f->key);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_defaults),
        cmocka_unit_test(test_roundtrip_full),
        cmocka_unit_test(test_roundtrip_minimal),
        cmocka_unit_test(test_encoding_read_by_msgpack_c),
        cmocka_unit_test(test_smallest_forms),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_wide_integers),
        cmocka_unit_test(test_id_and_queue_text),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupted),
        cmocka_unit_test(test_unknown_fields_skipped),
        cmocka_unit_test(test_known_field_forms),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_not_a_map),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_payload_1mib),
        cmocka_unit_test(test_encode_buffer),
        cmocka_unit_test(test_equality),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
