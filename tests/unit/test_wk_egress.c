/*
 * test_wk_egress.c - the egress guard's address rules (workers/egress.h):
 * every forbidden IPv4 and IPv6 range, the IPv6 forms that carry an IPv4
 * address, public addresses passing, the allow-list (CIDRs and bare
 * addresses) and its parse errors; and the breaker key of a URL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "egress.h"
#include "err.h"
#include "outbound.h"

/* Checks text (an IPv4 or IPv6 address) against g; returns the rc and
 * leaves the reason in why. */
static int check(const wk_egress_t *g, const char *text, char *why, size_t cap)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    why[0] = '\0';
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1)
        v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1)
        v6->sin6_family = AF_INET6;
    else
        fail_msg("test bug: %s is not an address", text);
    return wk_egress_check(g, (struct sockaddr *)&ss, why, cap);
}

static void expect_refused(const wk_egress_t *g, const char *addr, const char *what)
{
    char why[WK_EGRESS_WHY_MAX];
    int rc = check(g, addr, why, sizeof why);
    if (rc != YARD_EAUTH || !strstr(why, what))
        fail_msg("%s: expected refused as %s, got rc %d \"%s\"", addr, what, rc, why);
}

static void expect_allowed(const wk_egress_t *g, const char *addr)
{
    char why[WK_EGRESS_WHY_MAX];
    int rc = check(g, addr, why, sizeof why);
    if (rc != 0)
        fail_msg("%s: expected allowed, got rc %d \"%s\"", addr, rc, why);
}

static void test_forbidden_ranges(void **state)
{
    wk_egress_t *g = NULL;
    assert_int_equal(wk_egress_create(&g, "", 0), 0);
    static const char *const cases[][2] = {
        {"127.0.0.1", "loopback"},          {"127.255.1.2", "loopback"},
        {"0.0.0.0", "unspecified"},         {"10.1.2.3", "private"},
        {"172.16.0.1", "private"},          {"172.31.255.255", "private"},
        {"192.168.1.1", "private"},         {"100.64.0.1", "CGNAT"},
        {"100.127.255.254", "CGNAT"},       {"169.254.169.254", "link-local"},
        {"224.0.0.1", "multicast"},         {"239.255.255.250", "multicast"},
        {"255.255.255.255", "broadcast"},   {"::1", "loopback"},
        {"::", "unspecified"},              {"fc00::1", "private"},
        {"fd12:3456::1", "private"},        {"fe80::1", "link-local"},
        {"ff02::1", "multicast"},           {"::ffff:127.0.0.1", "loopback"},
        {"::ffff:169.254.169.254", "link-local"}, {"::ffff:10.0.0.1", "private"},
        {"::127.0.0.1", "loopback"},        {"64:ff9b::a9fe:a9fe", "link-local"},
        {"2002:7f00:1::1", "loopback"},     {"2002:c0a8:101::1", "private"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_refused(g, cases[i][0], cases[i][1]);
    /* Public addresses and neighbours of the ranges pass. */
    static const char *const ok[] = {"8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1",
                                     "172.15.255.255", "2606:4700::1111", "::ffff:8.8.8.8",
                                     "169.253.255.255", "11.0.0.1"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        expect_allowed(g, ok[i]);
    /* The reason names the address and the setting. */
    char why[WK_EGRESS_WHY_MAX];
    check(g, "169.254.169.254", why, sizeof why);
    assert_string_equal(why, "egress refused: 169.254.169.254 is link-local (not in egress_allow)");
    wk_egress_destroy(g);
}

static void test_allow_list(void **state)
{
    wk_egress_t *g = NULL;
    assert_int_equal(wk_egress_create(&g, " 127.0.0.1/32, 10.0.0.0/8 ,fd00::/8,192.168.5.5", 0),
                     0);
    expect_allowed(g, "127.0.0.1");
    expect_refused(g, "127.0.0.2", "loopback");
    expect_allowed(g, "10.200.3.4");
    expect_allowed(g, "::ffff:127.0.0.1"); /* mapped: judged by its IPv4 address too */
    expect_allowed(g, "fd00::5");
    expect_refused(g, "fc00::5", "private");
    expect_allowed(g, "192.168.5.5");
    expect_refused(g, "192.168.5.6", "private");
    expect_refused(g, "::1", "loopback");
    wk_egress_destroy(g);
    wk_egress_destroy(NULL);
}

static void test_allow_list_errors(void **state)
{
    static const char *const bad[] = {"127.0.0.1/33", "localhost", "10.0.0.0/", "::1/129",
                                      "1.2.3.4/-1", "10.0.0.0/8x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wk_egress_t *g = NULL;
        if (wk_egress_create(&g, bad[i], 0) != YARD_ECONFIG)
            fail_msg("egress_allow \"%s\": expected YARD_ECONFIG", bad[i]);
        assert_null(g);
    }
}

static void test_breaker_key_of_url(void **state)
{
    char host[WK_BREAKER_HOST_MAX];
    assert_int_equal(wk_outbound_host(host, "https://Hooks.Example.COM/x?y=1"), 0);
    assert_string_equal(host, "hooks.example.com:443");
    assert_int_equal(wk_outbound_host(host, "http://127.0.0.1:8080/a"), 0);
    assert_string_equal(host, "127.0.0.1:8080");
    assert_int_equal(wk_outbound_host(host, "http://h"), 0);
    assert_string_equal(host, "h:80");
    assert_int_equal(wk_outbound_host(host, "not a url"), YARD_EINVAL);
    assert_string_equal(host, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forbidden_ranges),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_allow_list_errors),
        cmocka_unit_test(test_breaker_key_of_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
