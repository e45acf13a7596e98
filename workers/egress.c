/*
 * egress.c - the egress guard (egress.h): address classification, the
 * allow-list of CIDRs, and the libcurl socket callback that applies them.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "egress.h"
#include "err.h"
#include "log.h"

/* One allowed range: family, network bytes, prefix length. */
typedef struct {
    int family;
    unsigned char net[16];
    unsigned bits;
} egress_rule_t;

struct wk_egress {
    egress_rule_t rules[WK_EGRESS_MAX_RULES];
    size_t nrules;
    int follow_redirects;
};

/* A forbidden range, by its IPv4 or IPv6 prefix. */
typedef struct {
    const char *cidr;
    const char *what;
} egress_range_t;

static const egress_range_t ranges4[] = {
    {"0.0.0.0/8", "unspecified"},        {"127.0.0.0/8", "loopback"},
    {"10.0.0.0/8", "private"},           {"172.16.0.0/12", "private"},
    {"192.168.0.0/16", "private"},       {"100.64.0.0/10", "shared (CGNAT)"},
    {"169.254.0.0/16", "link-local"},    {"192.0.0.0/24", "reserved (IETF)"},
    {"192.0.2.0/24", "reserved (documentation)"}, {"198.18.0.0/15", "reserved (benchmarking)"},
    {"198.51.100.0/24", "reserved (documentation)"}, {"203.0.113.0/24", "reserved (documentation)"},
    {"224.0.0.0/4", "multicast"},        {"240.0.0.0/4", "reserved (and broadcast)"},
};
static const egress_range_t ranges6[] = {
    {"::/128", "unspecified"},  {"::1/128", "loopback"},     {"fc00::/7", "private (ULA)"},
    {"fe80::/10", "link-local"}, {"fec0::/10", "site-local"}, {"ff00::/8", "multicast"},
    {"2001:db8::/32", "reserved (documentation)"}, {"100::/64", "reserved (discard)"},
};

/* Parses "addr[/bits]" (len bytes) into *r. Returns 0 or YARD_EINVAL. */
static int egress_parse_cidr(egress_rule_t *r, const char *s, size_t len)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (len == 0 || len >= sizeof buf)
        return YARD_EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash) {
        char *end;
        *slash = '\0';
        bits = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || bits < 0)
            return YARD_EINVAL;
    }
    memset(r, 0, sizeof *r);
    if (inet_pton(AF_INET, buf, r->net) == 1)
        r->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, r->net) == 1)
        r->family = AF_INET6;
    else
        return YARD_EINVAL;
    unsigned max = r->family == AF_INET ? 32 : 128;
    if (bits > (long)max)
        return YARD_EINVAL;
    r->bits = bits < 0 ? max : (unsigned)bits;
    return 0;
}

/* Nonzero if the first bits of a and b agree. */
static int egress_prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return 0;
    if (!rest)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

static int egress_in(int family, const unsigned char *addr, const char *cidr)
{
    egress_rule_t r;
    return egress_parse_cidr(&r, cidr, strlen(cidr)) == 0 && r.family == family &&
           egress_prefix_eq(addr, r.net, r.bits);
}

int wk_egress_create(wk_egress_t **out, const char *allow, int follow_redirects)
{
    wk_egress_t *g = calloc(1, sizeof *g);
    if (!g)
        return YARD_ENOMEM;
    g->follow_redirects = follow_redirects;
    for (const char *p = allow ? allow : ""; *p;) {
        size_t skip = strspn(p, " \t,");
        p += skip;
        size_t n = strcspn(p, " \t,");
        if (!n)
            break;
        if (g->nrules == WK_EGRESS_MAX_RULES ||
            egress_parse_cidr(&g->rules[g->nrules], p, n) < 0) {
            YARD_LOG_ERROR(NULL, "config: egress_allow: `%.*s` is %s", (int)(n < 64 ? n : 64), p,
                           g->nrules == WK_EGRESS_MAX_RULES ? "one CIDR too many"
                                                            : "not a CIDR (a.b.c.d/n or x::/n)");
            free(g);
            return YARD_ECONFIG;
        }
        g->nrules++;
        p += n;
    }
    *out = g;
    return 0;
}

void wk_egress_destroy(wk_egress_t *g)
{
    free(g);
}

static int egress_allowed(const wk_egress_t *g, int family, const unsigned char *addr)
{
    for (size_t i = 0; i < g->nrules; i++)
        if (g->rules[i].family == family && egress_prefix_eq(addr, g->rules[i].net,
                                                             g->rules[i].bits))
            return 1;
    return 0;
}

/* The forbidden range holding the IPv4 address a, or NULL. */
static const char *egress_class4(const unsigned char a[4])
{
    for (size_t i = 0; i < sizeof ranges4 / sizeof ranges4[0]; i++)
        if (egress_in(AF_INET, a, ranges4[i].cidr))
            return ranges4[i].what;
    return NULL;
}

/* The IPv4 address an IPv6 address carries (mapped ::ffff:0:0/96,
 * compatible ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16) into v4; returns 1
 * if it carries one. */
static int egress_embedded_v4(const unsigned char a[16], unsigned char v4[4])
{
    static const unsigned char zero[12] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (!memcmp(a, mapped, 12) || !memcmp(a, nat64, 12) ||
        (!memcmp(a, zero, 12) && (a[12] | a[13]))) { /* compatible, not :: or ::1 */
        memcpy(v4, a + 12, 4);
        return 1;
    }
    if (a[0] == 0x20 && a[1] == 0x02) {
        memcpy(v4, a + 2, 4);
        return 1;
    }
    return 0;
}

int wk_egress_check(const wk_egress_t *g, const struct sockaddr *sa, char *why, size_t cap)
{
    char text[INET6_ADDRSTRLEN] = "?";
    const char *what = NULL;
    if (sa && sa->sa_family == AF_INET) {
        const unsigned char *a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        inet_ntop(AF_INET, a, text, sizeof text);
        if (egress_allowed(g, AF_INET, a))
            return 0;
        what = egress_class4(a);
    } else if (sa && sa->sa_family == AF_INET6) {
        const unsigned char *a =
            (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        unsigned char v4[4];
        int carries = egress_embedded_v4(a, v4);
        inet_ntop(AF_INET6, a, text, sizeof text);
        if (egress_allowed(g, AF_INET6, a) || (carries && egress_allowed(g, AF_INET, v4)))
            return 0;
        for (size_t i = 0; !what && i < sizeof ranges6 / sizeof ranges6[0]; i++)
            if (egress_in(AF_INET6, a, ranges6[i].cidr))
                what = ranges6[i].what;
        if (!what && carries)
            what = egress_class4(v4);
    } else {
        snprintf(why, cap, "egress refused: address family %d is not IP",
                 sa ? sa->sa_family : -1);
        return YARD_EAUTH;
    }
    if (!what)
        return 0;
    snprintf(why, cap, "egress refused: %s is %s (not in egress_allow)", text, what);
    return YARD_EAUTH;
}

/* libcurl's socket callback: checks the address it is about to connect to. */
static curl_socket_t egress_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    wk_egress_call_t *call = ud;
    char why[WK_EGRESS_WHY_MAX];
    if (wk_egress_check(call->guard, &a->addr, why, sizeof why) < 0) {
        if (!call->refused)
            memcpy(call->why, why, sizeof why);
        call->refused = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

int wk_egress_attach(wk_egress_call_t *call, const wk_egress_t *g, void *curl)
{
    CURL *c = curl;
    memset(call, 0, sizeof *call);
    call->guard = g;
    int ok = curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, egress_open_socket) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, call) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_PROXY, "") == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_NOPROXY, "*") == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, g->follow_redirects ? 1L : 0L) ==
                 CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_MAXREDIRS, WK_EGRESS_MAX_REDIRS) == CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the _STR forms */
    ok = ok && curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
         curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK;
#else
    ok = ok &&
         curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) ==
             CURLE_OK &&
         curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) ==
             CURLE_OK;
#endif
    return ok ? 0 : YARD_EINVAL;
}
