/* Fuzz target: the dns01 module's DNS message parser (modules/dns01/dns_wire.c)
 * and everything that reads a parsed message (RDATA helpers, TSIG check).
 *
 * Built two ways (tests/fuzz/meson.build, tests/fuzz/README.md): the
 * libFuzzer binary fuzz_dns_parse (clang, -Dfuzz=true), and the unit test
 * fuzz_dns_parse_corpus (corpus_main.c: the corpus in
 * tests/fuzz/corpus/dns_parse plus deterministic mutations of it).
 *
 * Besides "no crash", the target checks what the parser promises: a
 * message it accepts can be walked record by record to exactly its counts,
 * and every name in it fits 255 octets. */
#include "dns_wire.h"
#include "fuzz.h"
#include "tsig.h"

#define check(ok, what) FUZZ_CHECK("fuzz_dns_parse", ok, what)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dns_msg m;
    const char *why = NULL;
    if (dns_parse(&m, data, size, &why) != 0) {
        check(why != NULL, "a refusal without a reason");
        return 0;
    }
    char text[DNS_NAME_TEXT];
    if (m.has_question) {
        check(m.qname.len >= 1, "question name length");
        check(dns_name_to_text(&m.qname, text, sizeof(text)) == 0, "question name as text");
    }
    dns_iter it;
    dns_rr rr;
    unsigned seen = 0;
    dns_iter_init(&it, &m);
    while (dns_iter_next(&it, &rr)) {
        seen++;
        check(rr.rd_off + rr.rdlen <= size, "RDATA inside the message");
        check(dns_name_to_text(&rr.owner, text, sizeof(text)) == 0, "owner as text");
        dns_name n;
        if (dns_rdata_name(&m, &rr, &n) == 0)
            check(dns_name_to_text(&n, text, sizeof(text)) == 0, "RDATA name as text");
        char txt[1024];
        (void)dns_rdata_txt(&m, &rr, txt, sizeof(txt));
        uint8_t addr[16];
        (void)dns_rdata_addr(&m, &rr, addr);
        dns_tsig_rdata t;
        if (dns_rdata_tsig(&m, &rr, &t) == 0)
            check(t.mac + t.mac_size <= data + size, "TSIG MAC inside the message");
        if (m.has_question)
            (void)dns_name_is_below(&rr.owner, &m.qname);
    }
    check(seen == (unsigned)m.count[1] + m.count[2] + m.count[3], "records walked = counts");
    if (m.tsig_off) {
        static tsig_key key;
        static int have_key;
        if (!have_key)
            have_key = tsig_key_set(&key, "libacme-fixture.", TSIG_HMAC_SHA256,
                                    "bGliYWNtZSBkbnMwMSBUU0lHIGZpeHR1cmUga2V5ISE=", NULL) == 0;
        unsigned err = 0;
        uint8_t prior[32] = {0};
        if (have_key)
            (void)tsig_verify(&key, &m, prior, sizeof(prior), 0, &err);
    }
    return 0;
}
