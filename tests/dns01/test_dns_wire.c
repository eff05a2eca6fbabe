/* Unit tests: DNS names, message building and parsing (modules/dns01/dns_wire.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns_wire.h"

static dns_name name_of(const char *text)
{
    dns_name n;
    assert_int_equal(dns_name_from_text(&n, text), 0);
    return n;
}

/* ---- names ------------------------------------------------------------ */

static void names_round_trip(void **state)
{
    (void)state;
    char buf[DNS_NAME_TEXT];
    dns_name n = name_of("_acme-challenge.Host.example.org");
    static const uint8_t wire[] = "\x0f_acme-challenge\x04Host\x07" "example\x03org";
    assert_int_equal(n.len, sizeof(wire));
    assert_memory_equal(n.data, wire, sizeof(wire));
    assert_int_equal(dns_name_to_text(&n, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "_acme-challenge.Host.example.org");

    dns_name dotted = name_of("_acme-challenge.host.example.org.");
    assert_true(dns_name_equal(&n, &dotted)); /* case-insensitive, final dot optional */

    dns_name root = name_of(".");
    assert_true(dns_name_is_root(&root));
    assert_int_equal(dns_name_to_text(&root, buf, sizeof(buf)), 0);
    assert_string_equal(buf, ".");

    dns_name wild = name_of("*.example.org");
    assert_int_equal(wild.data[1], '*');

    /* Too small a buffer fails instead of truncating. */
    assert_int_equal(dns_name_to_text(&n, buf, 10), -1);
}

static void names_refused(void **state)
{
    (void)state;
    dns_name n;
    char label64[65], long_name[300];
    memset(label64, 'a', 64);
    label64[64] = '\0';
    assert_int_equal(dns_name_from_text(&n, label64), -1);
    label64[63] = '\0';
    assert_int_equal(dns_name_from_text(&n, label64), 0);
    /* 4 * 63-octet labels plus lengths = 257 > 255 */
    snprintf(long_name, sizeof(long_name), "%s.%s.%s.%s", label64, label64, label64, label64);
    assert_int_equal(dns_name_from_text(&n, long_name), -1);
    /* 3 * 64 + 62 + 1 = 255 exactly */
    char fits[260];
    char l62[63];
    memset(l62, 'b', 61);
    l62[61] = '\0';
    snprintf(fits, sizeof(fits), "%s.%s.%s.%s", label64, label64, label64, l62);
    assert_int_equal(dns_name_from_text(&n, fits), 0);
    assert_int_equal(n.len, 255);

    const char *bad[] = {"", "a..b", ".a", "a b.c", "a\"b", "a\\.b", "a;b", "tab\there", "a(b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(dns_name_from_text(&n, bad[i]), -1);
}

static void names_relations(void **state)
{
    (void)state;
    dns_name a = name_of("x.acme.test"), zone = name_of("ACME.test"), other = name_of("cme.test");
    assert_true(dns_name_is_below(&a, &zone));
    assert_true(dns_name_is_below(&zone, &zone));
    assert_false(dns_name_is_below(&a, &other)); /* only at label boundaries */
    assert_false(dns_name_is_below(&zone, &a));
    dns_name root = name_of(".");
    assert_true(dns_name_is_below(&a, &root));

    dns_name p;
    assert_int_equal(dns_name_parent(&a, &p), 0);
    assert_true(dns_name_equal(&p, &zone));
    assert_int_equal(dns_name_parent(&p, &p), 0);
    assert_int_equal(dns_name_parent(&p, &p), 0);
    assert_true(dns_name_is_root(&p));
    assert_int_equal(dns_name_parent(&p, &p), -1);

    dns_name mixed = name_of("MiXeD.Example");
    dns_name_lower(&mixed);
    char buf[64];
    dns_name_to_text(&mixed, buf, sizeof(buf));
    assert_string_equal(buf, "mixed.example");
}

static void name_text_escapes_odd_octets(void **state)
{
    (void)state;
    dns_name n = {.len = 7, .data = {3, 'a', 0x01, '.', 1, '"', 0}};
    char buf[DNS_NAME_TEXT];
    assert_int_equal(dns_name_to_text(&n, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "a\\001\\046.\\034");
}

/* ---- building ----------------------------------------------------------- */

static void build_query(void **state)
{
    (void)state;
    uint8_t buf[512];
    dns_builder b;
    dns_name n = name_of("acme.test");
    dns_builder_init(&b, buf, sizeof(buf), 0x1234, DNS_F_RD);
    dns_builder_question(&b, &n, DNS_T_SOA, DNS_C_IN);
    size_t len = dns_builder_finish(&b);
    static const uint8_t want[] = {
        0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
        4, 'a', 'c', 'm', 'e', 4, 't', 'e', 's', 't', 0, 0, 6, 0, 1,
    };
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void build_compresses_owner_names(void **state)
{
    (void)state;
    uint8_t buf[512], rd[64];
    dns_builder b;
    dns_name zone = name_of("acme.test"), owner = name_of("_acme-challenge.h.ACME.test");
    dns_builder_init(&b, buf, sizeof(buf), 7, DNS_OPCODE_FLAGS(DNS_OP_UPDATE));
    dns_builder_question(&b, &zone, DNS_T_SOA, DNS_C_IN);
    size_t rdlen = dns_txt_rdata("v", rd, sizeof(rd));
    dns_builder_rr(&b, DNS_S_UPDATE, &owner, DNS_T_TXT, DNS_C_IN, 60, rd, rdlen);
    dns_builder_rr(&b, DNS_S_UPDATE, &owner, DNS_T_TXT, DNS_C_NONE, 0, rd, rdlen);
    size_t len = dns_builder_finish(&b);
    assert_true(len > 0);
    /* zone at 12; first owner: two labels then a pointer to 12 */
    size_t o = 12 + zone.len + 4;
    assert_memory_equal(buf + o, "\x0f_acme-challenge\x01h\xc0\x0c", 20);
    /* second owner: a pointer to the first */
    size_t second = o + 20 + 10 + rdlen;
    assert_int_equal(buf[second], 0xC0);
    assert_int_equal(buf[second + 1], o);

    dns_msg m;
    const char *why = NULL;
    assert_int_equal(dns_parse(&m, buf, len, &why), 0);
    assert_int_equal(m.count[DNS_S_UPDATE], 2);
    dns_iter it;
    dns_rr rr;
    dns_iter_init(&it, &m);
    int seen = 0;
    while (dns_iter_next(&it, &rr)) {
        assert_true(dns_name_equal(&rr.owner, &owner));
        assert_int_equal(rr.section, DNS_S_UPDATE);
        assert_int_equal(rr.cls, seen ? DNS_C_NONE : DNS_C_IN);
        seen++;
    }
    assert_int_equal(seen, 2);
}

static void build_refuses_overflow_and_disorder(void **state)
{
    (void)state;
    uint8_t buf[20];
    dns_builder b;
    dns_name n = name_of("a-rather-long-name.example");
    dns_builder_init(&b, buf, sizeof(buf), 1, 0);
    dns_builder_question(&b, &n, DNS_T_A, DNS_C_IN);
    assert_int_equal(dns_builder_finish(&b), 0);

    uint8_t big[512];
    dns_builder_init(&b, big, sizeof(big), 1, 0);
    dns_builder_rr(&b, DNS_S_ADDITIONAL, &n, DNS_T_A, DNS_C_IN, 1, (const uint8_t *)"\1\2\3\4", 4);
    dns_builder_rr(&b, DNS_S_ANSWER, &n, DNS_T_A, DNS_C_IN, 1, (const uint8_t *)"\1\2\3\4", 4);
    assert_int_equal(dns_builder_finish(&b), 0);
}

static void txt_rdata_splits_long_values(void **state)
{
    (void)state;
    char value[600];
    memset(value, 'x', 599);
    value[599] = '\0';
    uint8_t rd[700];
    size_t n = dns_txt_rdata(value, rd, sizeof(rd));
    assert_int_equal(n, 599 + 3);
    assert_int_equal(rd[0], 255);
    assert_int_equal(rd[256], 255);
    assert_int_equal(rd[512], 89);
    assert_int_equal(dns_txt_rdata(value, rd, 100), 0);
    assert_int_equal(dns_txt_rdata("", rd, sizeof(rd)), 1);
    assert_int_equal(rd[0], 0);
}

/* ---- parsing ------------------------------------------------------------ */

/* A hand-made answer to "x.acme.test TXT": CNAME to t.acme.test, two TXT
 * records (one in two strings), SOA in authority, NS + A glue. */
static const uint8_t answer[] = {
    0xab, 0xcd, 0x84, 0x00, 0, 1, 0, 3, 0, 2, 0, 1,
    /* 12: question x.acme.test TXT IN */
    1, 'x', 4, 'a', 'c', 'm', 'e', 4, 't', 'e', 's', 't', 0, 0, 16, 0, 1,
    /* 29: x.acme.test CNAME t.acme.test */
    0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, 't', 0xc0, 14,
    /* 45: t.acme.test TXT "hello" */
    0xc0, 41, 0, 16, 0, 1, 0, 0, 0, 60, 0, 6, 5, 'h', 'e', 'l', 'l', 'o',
    /* 63: t.acme.test TXT "ab" "cd" */
    0xc0, 41, 0, 16, 0, 1, 0, 0, 0, 60, 0, 6, 2, 'a', 'b', 2, 'c', 'd',
    /* 81: acme.test SOA ns1.acme.test hostmaster.acme.test 1 2 3 4 5 */
    0xc0, 14, 0, 6, 0, 1, 0, 0, 0, 60, 0, 39,
    3, 'n', 's', '1', 0xc0, 14, 10, 'h', 'o', 's', 't', 'm', 'a', 's', 't', 'e', 'r', 0xc0, 14,
    0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5,
    /* 132: acme.test NS ns1.acme.test */
    0xc0, 14, 0, 2, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 93,
    /* 146: ns1.acme.test A 127.0.0.1 */
    0xc0, 93, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1,
};

static void parse_answer(void **state)
{
    (void)state;
    dns_msg m;
    const char *why = NULL;
    assert_int_equal(dns_parse(&m, answer, sizeof(answer), &why), 0);
    assert_int_equal(m.id, 0xabcd);
    assert_true(m.flags & DNS_F_QR);
    assert_true(m.flags & DNS_F_AA);
    assert_int_equal(DNS_FLAGS_RCODE(m.flags), DNS_R_NOERROR);
    dns_name x = name_of("x.acme.test"), t = name_of("t.acme.test"), zone = name_of("acme.test");
    dns_name ns1 = name_of("ns1.acme.test");
    assert_true(m.has_question);
    assert_true(dns_name_equal(&m.qname, &x));
    assert_int_equal(m.qtype, DNS_T_TXT);

    dns_iter it;
    dns_rr rr;
    dns_name target;
    char txt[64];
    uint8_t addr[16];
    dns_iter_init(&it, &m);

    assert_true(dns_iter_next(&it, &rr));
    assert_int_equal(rr.type, DNS_T_CNAME);
    assert_true(dns_name_equal(&rr.owner, &x));
    assert_int_equal(dns_rdata_name(&m, &rr, &target), 0);
    assert_true(dns_name_equal(&target, &t));
    assert_int_equal(dns_rdata_txt(&m, &rr, txt, sizeof(txt)), -1); /* wrong type */

    assert_true(dns_iter_next(&it, &rr));
    assert_true(dns_name_equal(&rr.owner, &t));
    assert_int_equal(dns_rdata_txt(&m, &rr, txt, sizeof(txt)), 0);
    assert_string_equal(txt, "hello");
    assert_int_equal(dns_rdata_txt(&m, &rr, txt, 5), -1); /* no room for the NUL */

    assert_true(dns_iter_next(&it, &rr));
    assert_int_equal(dns_rdata_txt(&m, &rr, txt, sizeof(txt)), 0);
    assert_string_equal(txt, "abcd"); /* strings concatenated */

    assert_true(dns_iter_next(&it, &rr));
    assert_int_equal(rr.section, DNS_S_AUTHORITY);
    assert_int_equal(rr.type, DNS_T_SOA);
    assert_true(dns_name_equal(&rr.owner, &zone));
    assert_int_equal(dns_rdata_name(&m, &rr, &target), 0);
    assert_true(dns_name_equal(&target, &ns1));

    assert_true(dns_iter_next(&it, &rr));
    assert_int_equal(rr.type, DNS_T_NS);
    assert_int_equal(dns_rdata_name(&m, &rr, &target), 0);
    assert_true(dns_name_equal(&target, &ns1));

    assert_true(dns_iter_next(&it, &rr));
    assert_int_equal(rr.section, DNS_S_ADDITIONAL);
    assert_int_equal(dns_rdata_addr(&m, &rr, addr), 4);
    assert_memory_equal(addr, "\x7f\x00\x00\x01", 4);

    assert_false(dns_iter_next(&it, &rr));
}

static void parse_refuses_every_truncation(void **state)
{
    (void)state;
    dns_msg m;
    for (size_t len = 0; len < sizeof(answer); len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, answer, len);
        const char *why = NULL;
        assert_int_equal(dns_parse(&m, copy, len, &why), -1);
        assert_non_null(why);
        free(copy);
    }
}

static void parse_refuses_trailing_bytes_and_bad_counts(void **state)
{
    (void)state;
    uint8_t buf[sizeof(answer) + 1];
    dns_msg m;
    const char *why = NULL;
    memcpy(buf, answer, sizeof(answer));
    buf[sizeof(answer)] = 0;
    assert_int_equal(dns_parse(&m, buf, sizeof(buf), &why), -1);
    assert_string_equal(why, "bytes after the last record");
    /* One answer too many claimed. */
    memcpy(buf, answer, sizeof(answer));
    buf[7] = 4;
    assert_int_equal(dns_parse(&m, buf, sizeof(answer), &why), -1);
    /* One too few: bytes left over. */
    buf[7] = 2;
    assert_int_equal(dns_parse(&m, buf, sizeof(answer), &why), -1);
}

static void parse_refuses_pointer_loops(void **state)
{
    (void)state;
    dns_msg m;
    const char *why = NULL;
    /* Question name is a pointer to itself. */
    static const uint8_t self[] = {0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
    assert_int_equal(dns_parse(&m, self, sizeof(self), &why), -1);
    /* Two labels pointing at each other: 12 -> "a" ptr 16, 16 -> "b" ptr 12. */
    static const uint8_t two[] = {0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                                  1, 'a', 0xc0, 16, 1, 'b', 0xc0, 12, 0, 1, 0, 1};
    assert_int_equal(dns_parse(&m, two, sizeof(two), &why), -1);
    /* A pointer into its own name's start (12 -> ptr to 12 after a label). */
    static const uint8_t back[] = {0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                                   1, 'a', 0xc0, 12, 0, 1, 0, 1};
    assert_int_equal(dns_parse(&m, back, sizeof(back), &why), -1);
    /* Reserved label types 0x40 and 0x80. */
    static const uint8_t ext[] = {0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 'a', 0, 0, 1, 0, 1};
    assert_int_equal(dns_parse(&m, ext, sizeof(ext), &why), -1);
    uint8_t ext2[sizeof(ext)];
    memcpy(ext2, ext, sizeof(ext));
    ext2[12] = 0x81;
    assert_int_equal(dns_parse(&m, ext2, sizeof(ext2), &why), -1);
}

static void parse_refuses_names_over_255_via_pointers(void **state)
{
    (void)state;
    /* Answers owned by a chain of names, each a 60-octet label followed by
     * a pointer to the previous one: the n-th name is n * 61 + 1 octets
     * long, so the fifth (306) is too long while four (245) fit. */
    uint8_t buf[512];
    memset(buf, 0, 12);
    buf[2] = 0x80;
    size_t o = 12, prev = 0, starts[5];
    for (int i = 0; i < 5; i++) {
        static const uint8_t rr[] = {0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4};
        starts[i] = o;
        buf[o++] = 60;
        memset(buf + o, 'a' + i, 60);
        o += 60;
        if (i == 0) {
            buf[o++] = 0;
        } else {
            buf[o++] = (uint8_t)(0xC0 | (prev >> 8));
            buf[o++] = (uint8_t)prev;
        }
        prev = starts[i];
        memcpy(buf + o, rr, sizeof(rr));
        o += sizeof(rr);
    }
    dns_msg m;
    const char *why = NULL;
    buf[7] = 5;
    assert_int_equal(dns_parse(&m, buf, o, &why), -1);
    buf[7] = 4;
    assert_int_equal(dns_parse(&m, buf, starts[4], &why), 0);
}

static void read_name_refuses_forward_pointers(void **state)
{
    (void)state;
    /* At 12 a pointer to 14, where "a." is written: pointers must point
     * back, so this is refused although the target is a fine name. */
    static const uint8_t msg[] = {0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 14, 1, 'a', 0};
    dns_name n;
    size_t off = 12;
    assert_int_equal(dns_read_name(msg, sizeof(msg), &off, &n), -1);
    off = 14;
    assert_int_equal(dns_read_name(msg, sizeof(msg), &off, &n), 0);
    assert_int_equal(off, sizeof(msg));
}

static void parse_checks_tsig_and_opt_placement(void **state)
{
    (void)state;
    /* header + TSIG-typed RR in the answer section: refused. */
    static const uint8_t tsig_in_answer[] = {
        0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0,
        0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0,
    };
    dns_msg m;
    const char *why = NULL;
    assert_int_equal(dns_parse(&m, tsig_in_answer, sizeof(tsig_in_answer), &why), -1);
    /* Two OPT records: refused; one: fine and found. */
    static const uint8_t two_opt[] = {
        0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 2,
        0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0,
        0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0,
    };
    assert_int_equal(dns_parse(&m, two_opt, sizeof(two_opt), &why), -1);
    uint8_t one_opt[23];
    memcpy(one_opt, two_opt, 23);
    one_opt[11] = 1;
    assert_int_equal(dns_parse(&m, one_opt, sizeof(one_opt), &why), 0);
    assert_int_equal(m.opt_off, 12);
}

static void rdata_helpers_check_lengths(void **state)
{
    (void)state;
    /* An NS record whose name ends before its RDLENGTH does. */
    static const uint8_t ns_short[] = {
        0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0,
        0, 0, 2, 0, 1, 0, 0, 0, 1, 0, 4, 1, 'a', 0, 0x99,
    };
    dns_msg m;
    const char *why = NULL;
    assert_int_equal(dns_parse(&m, ns_short, sizeof(ns_short), &why), 0);
    dns_iter it;
    dns_rr rr;
    dns_name n;
    dns_iter_init(&it, &m);
    assert_true(dns_iter_next(&it, &rr));
    assert_int_equal(dns_rdata_name(&m, &rr, &n), -1);
    uint8_t addr[16];
    assert_int_equal(dns_rdata_addr(&m, &rr, addr), -1);
    /* A TXT whose string length runs past RDLENGTH. */
    static const uint8_t txt_bad[] = {
        0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0,
        0, 0, 16, 0, 1, 0, 0, 0, 1, 0, 3, 5, 'a', 'b',
    };
    assert_int_equal(dns_parse(&m, txt_bad, sizeof(txt_bad), &why), 0);
    dns_iter_init(&it, &m);
    assert_true(dns_iter_next(&it, &rr));
    char txt[16];
    assert_int_equal(dns_rdata_txt(&m, &rr, txt, sizeof(txt)), -1);
}

static void rcode_and_type_names(void **state)
{
    (void)state;
    assert_string_equal(dns_rcode_name(DNS_R_NOTAUTH), "NOTAUTH");
    assert_string_equal(dns_rcode_name(DNS_R_BADSIG), "BADSIG");
    assert_string_equal(dns_rcode_name(DNS_R_BADKEY), "BADKEY");
    assert_string_equal(dns_rcode_name(DNS_R_BADTIME), "BADTIME");
    assert_string_equal(dns_rcode_name(200), "unknown rcode");
    assert_string_equal(dns_type_name(DNS_T_TXT), "TXT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_round_trip),
        cmocka_unit_test(names_refused),
        cmocka_unit_test(names_relations),
        cmocka_unit_test(name_text_escapes_odd_octets),
        cmocka_unit_test(build_query),
        cmocka_unit_test(build_compresses_owner_names),
        cmocka_unit_test(build_refuses_overflow_and_disorder),
        cmocka_unit_test(txt_rdata_splits_long_values),
        cmocka_unit_test(parse_answer),
        cmocka_unit_test(parse_refuses_every_truncation),
        cmocka_unit_test(parse_refuses_trailing_bytes_and_bad_counts),
        cmocka_unit_test(parse_refuses_pointer_loops),
        cmocka_unit_test(parse_refuses_names_over_255_via_pointers),
        cmocka_unit_test(read_name_refuses_forward_pointers),
        cmocka_unit_test(parse_checks_tsig_and_opt_placement),
        cmocka_unit_test(rdata_helpers_check_lengths),
        cmocka_unit_test(rcode_and_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
