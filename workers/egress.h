/*
 * egress.h - the egress guard of outbound calls (the `http` handler and
 * the notify role's webhooks).
 *
 * A producer chooses the URL, so the worker must not become its way into
 * the worker's own network: every connection libcurl opens (the first one
 * and each redirect's) is checked by its RESOLVED address, just before the
 * socket is made, against loopback, unspecified, link-local (with
 * 169.254.169.254, the cloud metadata service), private (RFC 1918,
 * fc00::/7), CGNAT (100.64.0.0/10), multicast, broadcast and reserved
 * ranges, IPv4-mapped, -compatible, NAT64 and 6to4 IPv6 forms by their
 * IPv4 address. A list of CIDRs in config (egress_allow) permits ranges.
 * Checking the address libcurl is about to connect to, not the name, is
 * what defeats a name that resolves to 127.0.0.1 and DNS rebinding.
 * Proxies are off (a proxy would be the checked address instead of the
 * target), and redirects are followed only when config says so.
 */
#ifndef WK_EGRESS_H
#define WK_EGRESS_H

#include <stddef.h>

#include <sys/socket.h>

typedef struct wk_egress wk_egress_t;

#define WK_EGRESS_MAX_RULES 64   /* CIDRs in egress_allow, at most */
#define WK_EGRESS_MAX_REDIRS 5L  /* redirects followed, when they are */
#define WK_EGRESS_WHY_MAX 200    /* bytes of a refusal's reason */

/* Creates a guard permitting the comma-separated CIDRs of allow ("" or
 * NULL: none; "10.0.0.0/8, ::1/128"; a bare address is one host) and
 * following redirects when follow_redirects is nonzero. Returns 0 and sets
 * *out (free with wk_egress_destroy), YARD_ECONFIG for a CIDR that does
 * not parse or too many (logged, naming it), or YARD_ENOMEM. */
int wk_egress_create(wk_egress_t **out, const char *allow, int follow_redirects);

/* Frees g. NULL is a no-op. */
void wk_egress_destroy(wk_egress_t *g);

/* Checks one address (AF_INET or AF_INET6; anything else is refused).
 * Returns 0 when a connection may be made, or YARD_EAUTH with the reason in
 * why (cap bytes), e.g. "egress refused: 127.0.0.1 is loopback (not in
 * egress_allow)". */
int wk_egress_check(const wk_egress_t *g, const struct sockaddr *sa, char *why, size_t cap);

/* One guarded transfer: what the socket callback found. */
typedef struct {
    const wk_egress_t *guard;
    int refused;                  /* a connection was refused */
    char why[WK_EGRESS_WHY_MAX];  /* the first refusal's reason */
} wk_egress_call_t;

/* Sets up libcurl handle curl (a CURL *) for a guarded transfer: the
 * socket callback checking every connection into call (which must outlive
 * the transfer), no proxy, redirects as the guard says (at most
 * WK_EGRESS_MAX_REDIRS, http and https only). call is reset. Returns 0, or
 * YARD_EINVAL when libcurl refuses an option. */
int wk_egress_attach(wk_egress_call_t *call, const wk_egress_t *g, void *curl);

#endif
