/* Unit tests: TSIG (modules/dns01/tsig.c) against messages signed by
 * knsupdate and knotd (tsig_fixtures.h says how they were made).
 *
 * The strongest check: build the same update with our encoder, with the
 * ID and time knsupdate used, sign it with our TSIG code, and compare the
 * whole message byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns_wire.h"
#include "tsig.h"
#include "tsig_fixtures.h"

static void key_for(tsig_key *k, tsig_alg alg)
{
    const char *why = NULL;
    assert_int_equal(tsig_key_set(k, FIXTURE_KEY_NAME, alg, FIXTURE_SECRET, &why), 0);
    assert_int_equal(k->secret_len, 32);
}

/* The TSIG record of a parsed message. */
static void tsig_of(const dns_msg *m, dns_rr *rr, dns_tsig_rdata *t)
{
    dns_iter it;
    dns_iter_init(&it, m);
    while (dns_iter_next(&it, rr))
        if (rr->rr_off == m->tsig_off) {
            assert_int_equal(dns_rdata_tsig(m, rr, t), 0);
            return;
        }
    fail_msg("no TSIG record");
}

/* Build the update knsupdate sent, with its ID and time, and sign it. */
static void rebuild(const uint8_t *want, size_t want_len, int add, tsig_alg alg)
{
    dns_msg m;
    const char *why = NULL;
    assert_int_equal(dns_parse(&m, want, want_len, &why), 0);
    assert_int_equal(DNS_FLAGS_OPCODE(m.flags), DNS_OP_UPDATE);
    assert_true(m.tsig_off > 0);
    dns_rr rr;
    dns_tsig_rdata t;
    tsig_of(&m, &rr, &t);

    tsig_key k;
    key_for(&k, alg);
    dns_name zone, owner;
    assert_int_equal(dns_name_from_text(&zone, "acme.test"), 0);
    assert_int_equal(dns_name_from_text(&owner, FIXTURE_NAME), 0);
    uint8_t msg[1024], rd[128];
    size_t rdlen = dns_txt_rdata(FIXTURE_VALUE, rd, sizeof(rd));
    dns_builder b;
    dns_builder_init(&b, msg, sizeof(msg), m.id, DNS_OPCODE_FLAGS(DNS_OP_UPDATE));
    dns_builder_question(&b, &zone, DNS_T_SOA, DNS_C_IN);
    dns_builder_rr(&b, DNS_S_UPDATE, &owner, DNS_T_TXT, add ? DNS_C_IN : DNS_C_NONE, add ? 60 : 0,
                   rd, rdlen);
    size_t len = dns_builder_finish(&b);
    assert_true(len > 0);
    uint8_t mac[TSIG_MAX_MAC];
    size_t mac_len = 0;
    assert_int_equal(tsig_sign(&k, msg, &len, sizeof(msg), t.time_signed, t.fudge, mac, &mac_len), 0);
    assert_int_equal(mac_len, tsig_mac_len(alg));
    assert_int_equal(mac_len, t.mac_size);
    assert_memory_equal(mac, t.mac, mac_len);
    assert_int_equal(len, want_len);
    assert_memory_equal(msg, want, want_len);
    tsig_key_wipe(&k);
}

static void sign_add_sha256_like_knsupdate(void **state)
{
    (void)state;
    rebuild(add_sha256_request, sizeof(add_sha256_request), 1, TSIG_HMAC_SHA256);
}

static void sign_delete_sha256_like_knsupdate(void **state)
{
    (void)state;
    rebuild(del_sha256_request, sizeof(del_sha256_request), 0, TSIG_HMAC_SHA256);
}

static void sign_add_sha512_like_knsupdate(void **state)
{
    (void)state;
    rebuild(add_sha512_request, sizeof(add_sha512_request), 1, TSIG_HMAC_SHA512);
}

/* Verify knotd's answer against the request's MAC. */
static tsig_status verify(const uint8_t *req, size_t req_len, const uint8_t *ans, size_t ans_len,
                          tsig_alg alg, int64_t clock_skew, unsigned *error)
{
    dns_msg rq, an;
    const char *why = NULL;
    assert_int_equal(dns_parse(&rq, req, req_len, &why), 0);
    dns_rr rr;
    dns_tsig_rdata treq, tans;
    tsig_of(&rq, &rr, &treq);
    if (dns_parse(&an, ans, ans_len, &why) != 0)
        return TSIG_MALFORMED;
    uint64_t now = treq.time_signed;
    if (an.tsig_off) {
        tsig_of(&an, &rr, &tans);
        now = tans.time_signed;
    }
    tsig_key k;
    key_for(&k, alg);
    tsig_status st = tsig_verify(&k, &an, treq.mac, treq.mac_size, (uint64_t)((int64_t)now + clock_skew),
                                 error);
    tsig_key_wipe(&k);
    return st;
}

static void verify_knotd_answers(void **state)
{
    (void)state;
    unsigned err = 99;
    assert_int_equal(verify(add_sha256_request, sizeof(add_sha256_request), add_sha256_answer,
                            sizeof(add_sha256_answer), TSIG_HMAC_SHA256, 0, &err), TSIG_VERIFIED);
    assert_int_equal(err, 0);
    assert_int_equal(verify(del_sha256_request, sizeof(del_sha256_request), del_sha256_answer,
                            sizeof(del_sha256_answer), TSIG_HMAC_SHA256, 0, &err), TSIG_VERIFIED);
    assert_int_equal(verify(add_sha512_request, sizeof(add_sha512_request), add_sha512_answer,
                            sizeof(add_sha512_answer), TSIG_HMAC_SHA512, 0, &err), TSIG_VERIFIED);
    /* Within the fudge (300 s) either way. */
    assert_int_equal(verify(add_sha256_request, sizeof(add_sha256_request), add_sha256_answer,
                            sizeof(add_sha256_answer), TSIG_HMAC_SHA256, 299, &err), TSIG_VERIFIED);
    assert_int_equal(verify(add_sha256_request, sizeof(add_sha256_request), add_sha256_answer,
                            sizeof(add_sha256_answer), TSIG_HMAC_SHA256, -300, &err), TSIG_VERIFIED);
}

static void verify_refuses_forgeries(void **state)
{
    (void)state;
    unsigned err = 0;
    uint8_t ans[sizeof(add_sha256_answer)];

    /* Any flipped bit in the signed part. */
    for (size_t i = 0; i < 40; i++) {
        memcpy(ans, add_sha256_answer, sizeof(ans));
        ans[i == 0 ? 3 : 12 + i] ^= 0x01; /* flags, then the zone name, then the TSIG owner */
        tsig_status st = verify(add_sha256_request, sizeof(add_sha256_request), ans, sizeof(ans),
                                TSIG_HMAC_SHA256, 0, &err);
        assert_int_not_equal(st, TSIG_VERIFIED);
    }
    /* The MAC itself. */
    memcpy(ans, add_sha256_answer, sizeof(ans));
    ans[sizeof(ans) - 10] ^= 0x80;
    assert_int_equal(verify(add_sha256_request, sizeof(add_sha256_request), ans, sizeof(ans),
                            TSIG_HMAC_SHA256, 0, &err), TSIG_BAD_MAC);
    /* The answer to another request (request MAC differs). */
    assert_int_equal(verify(del_sha256_request, sizeof(del_sha256_request), add_sha256_answer,
                            sizeof(add_sha256_answer), TSIG_HMAC_SHA256, 0, &err), TSIG_BAD_MAC);
    /* Outside the fudge window. */
    assert_int_equal(verify(add_sha256_request, sizeof(add_sha256_request), add_sha256_answer,
                            sizeof(add_sha256_answer), TSIG_HMAC_SHA256, 301, &err), TSIG_BAD_TIME);
    /* Checked with the other algorithm: another key. */
    assert_int_equal(verify(add_sha256_request, sizeof(add_sha256_request), add_sha256_answer,
                            sizeof(add_sha256_answer), TSIG_HMAC_SHA512, 0, &err), TSIG_OTHER_KEY);
    /* Stripped of its TSIG: unsigned. */
    dns_msg m;
    assert_int_equal(dns_parse(&m, add_sha256_answer, sizeof(add_sha256_answer), NULL), 0);
    size_t body = m.tsig_off;
    memcpy(ans, add_sha256_answer, body);
    ans[11] = 0;
    assert_int_equal(verify(add_sha256_request, sizeof(add_sha256_request), ans, body,
                            TSIG_HMAC_SHA256, 0, &err), TSIG_NOT_SIGNED);
}

static void verify_reports_server_tsig_errors(void **state)
{
    (void)state;
    /* knotd's answer to an update signed with a wrong secret. */
    unsigned err = 0;
    dns_msg m;
    assert_int_equal(dns_parse(&m, badsig_sha256_answer, sizeof(badsig_sha256_answer), NULL), 0);
    assert_int_equal(DNS_FLAGS_RCODE(m.flags), DNS_R_NOTAUTH);
    tsig_status st = verify(badsig_sha256_request, sizeof(badsig_sha256_request),
                            badsig_sha256_answer, sizeof(badsig_sha256_answer), TSIG_HMAC_SHA256,
                            0, &err);
    assert_int_equal(st, TSIG_SERVER_ERROR);
    assert_int_equal(err, DNS_R_BADSIG);
    assert_string_equal(dns_rcode_name(err), "BADSIG");
}

static void keys_and_algorithms(void **state)
{
    (void)state;
    tsig_alg a;
    assert_int_equal(tsig_alg_parse("hmac-sha256", &a), 0);
    assert_int_equal(a, TSIG_HMAC_SHA256);
    assert_int_equal(tsig_alg_parse("HMAC-SHA512.", &a), 0);
    assert_int_equal(a, TSIG_HMAC_SHA512);
    assert_int_equal(tsig_alg_parse("hmac-md5", &a), -1);
    assert_int_equal(tsig_alg_parse("hmac-sha2566", &a), -1);
    assert_string_equal(tsig_alg_text(TSIG_HMAC_SHA512), "hmac-sha512");

    tsig_key k;
    const char *why = NULL;
    /* Whitespace inside the base64 is ignored (wrapped key files). */
    assert_int_equal(tsig_key_set(&k, "Key.Name", TSIG_HMAC_SHA256,
                                  " bGliYWNtZSBkbnMw\n MSBUU0lHIGZpeHR1cmUga2V5ISE=\n", &why), 0);
    assert_int_equal(k.secret_len, 32);
    assert_memory_equal(k.secret, "libacme dns01 TSIG fixture key!!", 32);
    char text[64];
    dns_name_to_text(&k.name, text, sizeof(text));
    assert_string_equal(text, "key.name"); /* canonical: lower case */
    tsig_key_wipe(&k);
    assert_int_equal(k.secret_len, 0);

    assert_int_equal(tsig_key_set(&k, "k", TSIG_HMAC_SHA256, "not base64!", &why), -1);
    assert_non_null(strstr(why, "base64"));
    assert_int_equal(tsig_key_set(&k, "k", TSIG_HMAC_SHA256, "", &why), -1);
    assert_int_equal(tsig_key_set(&k, "a..b", TSIG_HMAC_SHA256, FIXTURE_SECRET, &why), -1);
    assert_non_null(strstr(why, "key name"));
    assert_int_equal(tsig_key_set(&k, ".", TSIG_HMAC_SHA256, FIXTURE_SECRET, &why), -1);
}

static void sign_needs_room(void **state)
{
    (void)state;
    tsig_key k;
    key_for(&k, TSIG_HMAC_SHA512);
    uint8_t msg[64];
    dns_builder b;
    dns_name zone;
    dns_name_from_text(&zone, "acme.test");
    dns_builder_init(&b, msg, sizeof(msg), 1, DNS_OPCODE_FLAGS(DNS_OP_UPDATE));
    dns_builder_question(&b, &zone, DNS_T_SOA, DNS_C_IN);
    size_t len = dns_builder_finish(&b);
    uint8_t mac[TSIG_MAX_MAC];
    size_t mac_len;
    assert_int_equal(tsig_sign(&k, msg, &len, sizeof(msg), 1, 300, mac, &mac_len), -1);
    assert_int_equal(msg[11], 0); /* ARCOUNT untouched */
    tsig_key_wipe(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sign_add_sha256_like_knsupdate),
        cmocka_unit_test(sign_delete_sha256_like_knsupdate),
        cmocka_unit_test(sign_add_sha512_like_knsupdate),
        cmocka_unit_test(verify_knotd_answers),
        cmocka_unit_test(verify_refuses_forgeries),
        cmocka_unit_test(verify_reports_server_tsig_errors),
        cmocka_unit_test(keys_and_algorithms),
        cmocka_unit_test(sign_needs_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
