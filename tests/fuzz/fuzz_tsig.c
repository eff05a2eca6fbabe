/* Fuzz target: TSIG (modules/dns01/tsig.c, RFC 8945) on answers a DNS
 * server sends back, and the key material the settings give it.
 *
 * An answer's MAC cannot be guessed, so a fuzzer alone never gets past
 * the MAC check. This target therefore verifies each input twice: as is,
 * and with the MAC replaced by the right one for the fixture key over the
 * rest of the message (the other TSIG fields stay as the input has them),
 * which reaches the time-window and error checks behind the MAC. It also
 * signs a message of its own with a key made from the input's first line
 * (secret) and second line (key name) and verifies that signature.
 *
 * Promises checked: a message with a correct MAC, matching key name and
 * algorithm and no error verifies inside its fudge window and is BADTIME
 * outside it; our own signature always verifies; tsig_key_set refuses
 * with a reason. */
#include <string.h>

#include "dns_wire.h"
#include "fuzz.h"
#include "tsig.h"

#define T "fuzz_tsig"

static const uint8_t req_mac[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

static tsig_key *fixture_key(void)
{
    static tsig_key key;
    static int have;
    if (!have) {
        if (tsig_key_set(&key, "libacme-fixture.", TSIG_HMAC_SHA256,
                         "bGliYWNtZSBkbnMwMSBUU0lHIGZpeHR1cmUga2V5ISE=", NULL) != 0)
            abort();
        have = 1;
    }
    return &key;
}

static void verify_patched(const uint8_t *data, size_t size)
{
    dns_msg m;
    const char *why;
    if (dns_parse(&m, data, size, &why) != 0 || !m.tsig_off)
        return;
    unsigned err = 0;
    tsig_key *k = fixture_key();
    tsig_status st = tsig_verify(k, &m, req_mac, sizeof(req_mac), 0, &err);
    (void)tsig_status_text(st);

    dns_iter it;
    dns_rr rr;
    dns_iter_init(&it, &m);
    int found = 0;
    while (dns_iter_next(&it, &rr))
        if (rr.rr_off == m.tsig_off) {
            found = 1;
            break;
        }
    dns_tsig_rdata t;
    if (!found || dns_rdata_tsig(&m, &rr, &t) != 0 || t.mac_size != tsig_mac_len(k->alg))
        return;
    uint8_t *copy = malloc(size);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    uint8_t *body = malloc(m.tsig_off);
    if (!body)
        abort();
    memcpy(body, data, m.tsig_off);
    uint16_t ar = (uint16_t)(m.count[DNS_S_ADDITIONAL] - 1);
    body[10] = (uint8_t)(ar >> 8);
    body[11] = (uint8_t)ar;
    tsig_vars v = {.time_signed = t.time_signed, .fudge = t.fudge, .error = t.error,
                   .other_len = t.other_len, .other = t.other};
    uint8_t mac[TSIG_MAX_MAC];
    size_t mac_len = 0;
    if (tsig_compute(k, req_mac, sizeof(req_mac), body, m.tsig_off, t.original_id, &v, mac, &mac_len) == 0) {
        memcpy(copy + (t.mac - data), mac, mac_len);
        dns_msg m2;
        FUZZ_CHECK(T, dns_parse(&m2, copy, size, &why) == 0, "same message with another MAC parses");
        st = tsig_verify(k, &m2, req_mac, sizeof(req_mac), t.time_signed, &err);
        FUZZ_CHECK(T, st != TSIG_BAD_MAC && st != TSIG_BAD_TIME && st != TSIG_NOT_SIGNED,
                   "a correct MAC inside the window verifies");
        if (st == TSIG_VERIFIED) {
            uint64_t late = t.time_signed + t.fudge + 1;
            FUZZ_CHECK(T, tsig_verify(k, &m2, req_mac, sizeof(req_mac), late, &err) == TSIG_BAD_TIME,
                       "outside the fudge window is BADTIME");
        }
    }
    free(body);
    free(copy);
}

static void sign_own(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size < 600 ? size : 600);
    char *name = strchr(text, '\n');
    if (name)
        *name++ = '\0';
    char *end = name ? strchr(name, '\n') : NULL;
    if (end)
        *end = '\0';
    tsig_key k;
    const char *why = NULL;
    tsig_alg alg = size && (data[0] & 1) ? TSIG_HMAC_SHA512 : TSIG_HMAC_SHA256;
    if (tsig_key_set(&k, name && *name ? name : "k.", alg, text, &why) != 0) {
        FUZZ_CHECK(T, why && *why, "key refusal without a reason");
        free(text);
        return;
    }
    FUZZ_CHECK(T, k.secret_len > 0 && k.secret_len <= TSIG_MAX_SECRET, "secret length");
    uint8_t buf[1024];
    dns_builder b;
    dns_name zone;
    if (dns_name_from_text(&zone, "example.test") != 0)
        abort();
    dns_builder_init(&b, buf, sizeof(buf), 0x1234, DNS_OPCODE_FLAGS(DNS_OP_UPDATE));
    dns_builder_question(&b, &zone, DNS_T_SOA, DNS_C_IN);
    size_t len = dns_builder_finish(&b);
    FUZZ_CHECK(T, len > 0, "builder");
    uint8_t mac[TSIG_MAX_MAC];
    size_t mac_len = 0;
    FUZZ_CHECK(T, tsig_sign(&k, buf, &len, sizeof(buf), 1700000000u, 300, mac, &mac_len) == 0, "sign");
    dns_msg m;
    FUZZ_CHECK(T, dns_parse(&m, buf, len, &why) == 0 && m.tsig_off, "signed message parses");
    unsigned err = 0;
    FUZZ_CHECK(T, tsig_verify(&k, &m, NULL, 0, 1700000000u, &err) == TSIG_VERIFIED, "own signature verifies");
    tsig_key_wipe(&k);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    verify_patched(data, size);
    sign_own(data, size);
    tsig_alg a;
    char *s = fuzz_strndup(data, size < 64 ? size : 64);
    if (tsig_alg_parse(s, &a) == 0)
        FUZZ_CHECK(T, a == TSIG_HMAC_SHA256 || a == TSIG_HMAC_SHA512, "algorithm");
    free(s);
    return 0;
}
