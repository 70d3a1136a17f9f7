/*
 * test_jid.c - JID parsing and preparation: RFC 7622 section 3.5
 * examples, RFC 6122 stringprep behaviour as libidn implements it,
 * length limits, the ASCII fast path checked against libidn, and the
 * accessors, copies and comparisons.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <stringprep.h>

#include "kn_err.h"
#include "kn_jid.h"

/* Parse s and expect the canonical form want (NULL: expect -KN_EINVAL). */
static void expect_prep(const char *s, size_t len, const char *want)
{
    kn_jid_t j;
    int rc = kn_jid_parse(&j, s, len);
    if (want == NULL) {
        ck_assert_msg(rc == -KN_EINVAL, "accepted invalid JID \"%s\" as \"%s\"",
                      s, rc == 0 ? j.str : "");
        ck_assert_ptr_null(j.str);
        return;
    }
    ck_assert_msg(rc == 0, "rejected valid JID \"%s\" (%d)", s, rc);
    ck_assert_str_eq(kn_jid_str(&j), want);
    ck_assert_uint_eq(kn_jid_len(&j), strlen(want));
    /* The canonical form is a fixed point. */
    kn_jid_t k;
    ck_assert_int_eq(kn_jid_parse(&k, j.str, j.len), 0);
    ck_assert(kn_jid_eq(&j, &k));
    kn_jid_free(&k);
    kn_jid_free(&j);
    ck_assert_ptr_null(j.str);
    kn_jid_free(&j); /* idempotent */
}

#define OK(s, want) expect_prep(s, strlen(s), want)
#define BAD(s)      expect_prep(s, strlen(s), NULL)

START_TEST(rfc7622_valid)
{
    OK("juliet@example.com", "juliet@example.com");
    OK("juliet@example.com/foo", "juliet@example.com/foo");
    OK("juliet@example.com/foo bar", "juliet@example.com/foo bar");
    OK("juliet@example.com/foo@bar", "juliet@example.com/foo@bar");
    OK("foo\\20bar@example.com", "foo\\20bar@example.com");
    OK("fussball@example.com", "fussball@example.com");
    /* RFC 7622 keeps ß; RFC 6122 Nodeprep (libidn) case-folds it to ss. */
    OK("fu\xC3\x9F"
       "ball@example.com",
       "fussball@example.com");
    OK("\xCF\x80@example.com", "\xCF\x80@example.com"); /* π */
    OK("\xCE\xA3@example.com", "\xCF\x83@example.com"); /* Σ -> σ */
    OK("king@example.com/\xE2\x99\x9A", "king@example.com/\xE2\x99\x9A");
    OK("example.com", "example.com");
    OK("example.com/foobar", "example.com/foobar");
    OK("a.example.com/b@example.net", "a.example.com/b@example.net");
    /* Resource keeps '/' and case; local part is folded. */
    OK("Juliet@Example.COM/Balcony/Window",
       "juliet@example.com/Balcony/Window");
    OK("x@example.com/\xF0\x9F\x98\x80", "x@example.com/\xF0\x9F\x98\x80");
}
END_TEST

START_TEST(rfc7622_invalid)
{
    BAD("juliet@@example.com");
    BAD("@example.com");
    BAD("juliet@example.com/");
    BAD("user@");
    BAD("");
    BAD("/foo");
    BAD("@");
    BAD("@/r");
    BAD("juliet@ex ample.com");
    BAD("<foo>@example.com");
    BAD("foo bar@example.com");
    BAD("a\"b@example.com");
    BAD("a&b@example.com");
    BAD("a'b@example.com");
    BAD("a:b@example.com");
    BAD("juliet@exa_mple.com");
    BAD("juliet@example..com");
    BAD("juliet@.example.com");
    BAD("juliet@example.com..");
    BAD("juliet@-example.com");
    BAD("juliet@example-.com");
    BAD("juliet@.");
    BAD("juliet@example.com/foo\x01");
    BAD("jul\x7Fiet@example.com");
    /* Soft hyphen maps to nothing: an empty part after preparation. */
    BAD("\xC2\xAD@example.com");
    BAD("juliet@example.com/\xC2\xAD");
}
END_TEST

START_TEST(compat_chars)
{
    /* U+2163 ROMAN NUMERAL FOUR: NFKC gives "IV", then case folding. */
    OK("henry\xE2\x85\xA3@example.com", "henryiv@example.com");
    /* U+FB01 LATIN SMALL LIGATURE FI. */
    OK("\xEF\xAC\x81@example.com", "fi@example.com");
}
END_TEST

START_TEST(domain_rules)
{
    OK("juliet@EXAMPLE.com", "juliet@example.com");
    OK("juliet@example.com.", "juliet@example.com");
    OK("example.com./r", "example.com/r");
    OK("juliet@[::1]", "juliet@[::1]");
    OK("[2001:db8::1]/r", "[2001:db8::1]/r");
    OK("juliet@127.0.0.1", "juliet@127.0.0.1");
    OK("localhost", "localhost");
    /* Full-width dot (Nameprep NFKC) and ideographic dot are separators. */
    OK("juliet@example\xEF\xBC\x8E"
       "com",
       "juliet@example.com");
    OK("juliet@example\xE3\x80\x82"
       "com",
       "juliet@example.com");
    OK("juliet@\xC3\x9C"
       "ber.example",
       "juliet@\xC3\xBC"
       "ber.example");
    BAD("juliet@[::1");
    BAD("juliet@[not:an:address]");
    BAD("juliet@[]");
    BAD("juliet@[::1]x");
    BAD("juliet@exa@mple.com");
}
END_TEST

START_TEST(bad_bytes)
{
    BAD("juliet@example.com/\xFF");
    BAD("\xC0\xAF@example.com");                /* overlong '/' */
    BAD("juliet@example.com/\xED\xA0\x80");     /* surrogate */
    BAD("juliet@example.com/\xF4\x90\x80\x80"); /* > U+10FFFF */
    BAD("juliet@example.com/\xE2\x99");         /* truncated sequence */
    expect_prep("juliet\0@example.com", 19, NULL);
    expect_prep("juliet@example.com/a\0b", 22, NULL);
    /* Not NUL-terminated: only len bytes are looked at. */
    char buf[64];
    memcpy(buf, "juliet@example.com/res", 22);
    memset(buf + 22, 'X', sizeof(buf) - 22);
    expect_prep(buf, 22, "juliet@example.com/res");
    expect_prep(buf, 18, "juliet@example.com");
    expect_prep(buf, 19, NULL);
}
END_TEST

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

START_TEST(length_limits)
{
    char buf[8192];
    char *r1023 = repeat('r', 1023), *r1024 = repeat('r', 1024);

    snprintf(buf, sizeof(buf), "a@example.com/%s", r1023);
    OK(buf, buf);
    snprintf(buf, sizeof(buf), "a@example.com/%s", r1024);
    BAD(buf);
    snprintf(buf, sizeof(buf), "%s@example.com", r1023);
    OK(buf, buf);
    snprintf(buf, sizeof(buf), "%s@example.com", r1024);
    BAD(buf);

    /* Upper case is folded before the length is measured. */
    char *up = repeat('R', 1023);
    snprintf(buf, sizeof(buf), "%s@example.com", up);
    char want[8192];
    snprintf(want, sizeof(want), "%s@example.com", r1023);
    OK(buf, want);

    /* 1023 bytes of domain: labels of 63 and dots. */
    char dom[1100], dom2[1200];
    size_t n = 0;
    while (n + 64 <= 1023) {
        memset(dom + n, 'd', 63);
        dom[n + 63] = '.';
        n += 64;
    }
    memset(dom + n, 'e', 1023 - n);
    dom[1023] = '\0';
    OK(dom, dom);
    snprintf(dom2, sizeof(dom2), "%se", dom);
    BAD(dom2); /* 1024 */
    snprintf(dom2, sizeof(dom2), "%s.", dom);
    OK(dom2, dom); /* trailing dot stripped: 1023 */
    snprintf(dom2, sizeof(dom2), "%s\xE3\x80\x82", dom);
    OK(dom2, dom); /* ideographic trailing dot too */
    snprintf(dom2, sizeof(dom2), "%s..", dom);
    BAD(dom2);
    /* Label over 63. */
    char *l64 = repeat('l', 64);
    snprintf(buf, sizeof(buf), "a@%s.com", l64);
    BAD(buf);

    /* The maximal JID: 1023 + 1 + 1023 + 1 + 1023 bytes. */
    snprintf(buf, sizeof(buf), "%s@%s/%s", r1023, dom, r1023);
    ck_assert_uint_eq(strlen(buf), KN_JID_MAX);
    OK(buf, buf);

    /* A 1023-byte resource after dropping many soft hyphens. */
    kn_buf_t raw = KN_BUF_INIT;
    kn_buf_append_str(&raw, "a@b/");
    for (int i = 0; i < 500; i++)
        kn_buf_append(&raw, "\xC2\xAD", 2);
    kn_buf_append(&raw, r1023, 1023);
    char expect[1100];
    snprintf(expect, sizeof(expect), "a@b/%s", r1023);
    expect_prep(raw.data, raw.len, expect);
    /* ... but not beyond the raw bound. */
    kn_buf_reset(&raw);
    kn_buf_append_str(&raw, "a@b/");
    for (int i = 0; i < KN_JID_PART_RAW_MAX; i++)
        kn_buf_append(&raw, "\xC2\xAD", 2);
    kn_buf_append_str(&raw, "x");
    expect_prep(raw.data, raw.len, NULL);
    /* Expansion past the limit: U+FDFA expands to 18 code points. */
    kn_buf_reset(&raw);
    kn_buf_append_str(&raw, "a@b/");
    for (int i = 0; i < 60; i++)
        kn_buf_append(&raw, "\xEF\xB7\xBA", 3);
    expect_prep(raw.data, raw.len, NULL);

    kn_buf_free(&raw);
    free(r1023);
    free(r1024);
    free(up);
    free(l64);
}
END_TEST

/* The ASCII fast path must agree with libidn for every ASCII byte. */
START_TEST(ascii_fast_path_matches_libidn)
{
    for (int c = 1; c < 128; c++) {
        char part[4] = {'a', (char)c, 'b', '\0'};
        char prep[64];
        char in[64];
        kn_jid_t j;

        /* Nodeprep */
        strcpy(prep, part);
        int idn = stringprep_xmpp_nodeprep(prep, sizeof(prep));
        snprintf(in, sizeof(in), "%s@example.com", part);
        int rc = kn_jid_parse(&j, in, strlen(in));
        if (c == '@' || c == '/') {
            ck_assert_int_ne(idn, STRINGPREP_OK);
            kn_jid_free(&j);
        } else {
            ck_assert_msg((idn == STRINGPREP_OK) == (rc == 0),
                          "nodeprep disagrees on 0x%02x", c);
            if (rc == 0) {
                size_t n;
                const char *l = kn_jid_local(&j, &n);
                ck_assert_uint_eq(n, strlen(prep));
                ck_assert_int_eq(memcmp(l, prep, n), 0);
            }
            kn_jid_free(&j);
        }

        /* Resourceprep */
        strcpy(prep, part);
        idn = stringprep_xmpp_resourceprep(prep, sizeof(prep));
        snprintf(in, sizeof(in), "x@example.com/%s", part);
        rc = kn_jid_parse(&j, in, strlen(in));
        ck_assert_msg((idn == STRINGPREP_OK) == (rc == 0),
                      "resourceprep disagrees on 0x%02x", c);
        if (rc == 0) {
            size_t n;
            const char *r = kn_jid_resource(&j, &n);
            ck_assert_uint_eq(n, strlen(prep));
            ck_assert_int_eq(memcmp(r, prep, n), 0);
        }
        kn_jid_free(&j);

        /* Nameprep: compare the mapping only (host rules come after). */
        if (c == '/')
            continue;
        strcpy(prep, part);
        idn = stringprep_nameprep(prep, sizeof(prep));
        ck_assert_int_eq(idn, STRINGPREP_OK);
        snprintf(in, sizeof(in), "x@%s", part);
        rc = kn_jid_parse(&j, in, strlen(in));
        if (rc == 0) {
            size_t n;
            const char *d = kn_jid_domain(&j, &n);
            ck_assert_uint_eq(n, strlen(prep));
            ck_assert_int_eq(memcmp(d, prep, n), 0);
        } else {
            int host = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '-';
            ck_assert_msg(!host || c == '.', "domain rejected 0x%02x", c);
        }
        kn_jid_free(&j);
    }
}
END_TEST

START_TEST(accessors_and_copies)
{
    kn_jid_t j, b, d, k;
    const char *in = "Juliet@Example.com/Balcony";
    ck_assert_int_eq(kn_jid_parse(&j, in, strlen(in)), 0);
    size_t n;
    const char *p = kn_jid_local(&j, &n);
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(memcmp(p, "juliet", 6), 0);
    p = kn_jid_domain(&j, &n);
    ck_assert_uint_eq(n, 11);
    ck_assert_int_eq(memcmp(p, "example.com", 11), 0);
    p = kn_jid_resource(&j, &n);
    ck_assert_str_eq(p, "Balcony");
    ck_assert_uint_eq(n, 7);
    ck_assert_uint_eq(kn_jid_bare_len(&j), 18);
    ck_assert(!kn_jid_is_bare(&j));

    kn_jid_bare(&b, &j);
    ck_assert_str_eq(kn_jid_str(&b), "juliet@example.com");
    ck_assert(kn_jid_is_bare(&b));
    ck_assert_ptr_null(kn_jid_resource(&b, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert(kn_jid_eq_bare(&j, &b));
    ck_assert(!kn_jid_eq(&j, &b));

    kn_jid_dup(&d, &j);
    ck_assert(d.str != j.str);
    ck_assert(kn_jid_eq(&j, &d));

    /* Domain-only JID. */
    ck_assert_int_eq(kn_jid_parse(&k, "Example.COM", 11), 0);
    ck_assert_ptr_null(kn_jid_local(&k, &n));
    ck_assert_uint_eq(n, 0);
    p = kn_jid_domain(&k, &n);
    ck_assert_uint_eq(n, 11);
    ck_assert_uint_eq(kn_jid_bare_len(&k), 11);
    ck_assert(kn_jid_is_bare(&k));
    ck_assert(!kn_jid_eq_bare(&k, &j));
    kn_jid_free(&k);

    kn_jid_free(&j);
    kn_jid_free(&b);
    kn_jid_free(&d);
    kn_jid_free(NULL);
}
END_TEST

START_TEST(equality_across_case)
{
    static const char *forms[] = {
        "juliet@example.com/r",
        "JULIET@EXAMPLE.COM/r",
        "Juliet@Example.Com./r",
        "juliet@example\xEF\xBC\x8E"
        "com/r",
        "\xEF\xBC\xAA"
        "uliet@example.com/r", /* fullwidth J */
    };
    kn_jid_t a, b;
    ck_assert_int_eq(kn_jid_parse(&a, forms[0], strlen(forms[0])), 0);
    for (size_t i = 1; i < sizeof(forms) / sizeof(forms[0]); i++) {
        ck_assert_int_eq(kn_jid_parse(&b, forms[i], strlen(forms[i])), 0);
        ck_assert_msg(kn_jid_eq(&a, &b), "%s != %s", forms[0], forms[i]);
        kn_jid_free(&b);
    }
    /* Resources are case-sensitive. */
    ck_assert_int_eq(kn_jid_parse(&b, "juliet@example.com/R", 20), 0);
    ck_assert(!kn_jid_eq(&a, &b));
    ck_assert(kn_jid_eq_bare(&a, &b));
    kn_jid_free(&b);
    kn_jid_free(&a);
}
END_TEST

START_TEST(prepare_str)
{
    kn_buf_t out = KN_BUF_INIT;
    kn_buf_append_str(&out, "to=");
    ck_assert_int_eq(kn_jid_prepare_str("ROMEO@Example.net/Orchard", 25, &out),
                     0);
    ck_assert_str_eq(out.data, "to=romeo@example.net/Orchard");
    ck_assert_int_eq(kn_jid_prepare_str("@bad", 4, &out), -KN_EINVAL);
    ck_assert_str_eq(out.data, "to=romeo@example.net/Orchard");
    ck_assert_int_eq(kn_jid_prepare_str(NULL, 0, &out), -KN_EINVAL);
    kn_buf_free(&out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("jid");
    TCase *tc = tcase_create("jid");
    tcase_add_test(tc, rfc7622_valid);
    tcase_add_test(tc, rfc7622_invalid);
    tcase_add_test(tc, compat_chars);
    tcase_add_test(tc, domain_rules);
    tcase_add_test(tc, bad_bytes);
    tcase_add_test(tc, length_limits);
    tcase_add_test(tc, ascii_fast_path_matches_libidn);
    tcase_add_test(tc, accessors_and_copies);
    tcase_add_test(tc, equality_across_case);
    tcase_add_test(tc, prepare_str);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
