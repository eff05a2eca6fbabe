/* Fuzz target: the dns01 module's DNS message parser (modules/dns01/dns_wire.c)
 * and everything that reads a parsed message (RDATA helpers, TSIG check).
 *
 * Built two ways (tests/dns01/meson.build):
 *   - with -DFUZZ_LIBFUZZER -fsanitize=fuzzer (clang, -Dfuzz=true): a
 *     libFuzzer binary; run it on the corpus directory:
 *         build/tests/dns01/fuzz_dns_parse tests/dns01/fuzz-corpus
 *   - plainly, as the unit test fuzz_dns_parse_corpus: every file of the
 *     corpus and a fixed number of deterministic mutations of each go
 *     through the same function, so CI (ASan/UBSan, valgrind) exercises the
 *     parser on hostile input without libFuzzer.
 *
 * Besides "no crash", the target checks what the parser promises: a
 * message it accepts can be walked record by record to exactly its counts,
 * and every name in it fits 255 octets. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dns_wire.h"
#include "tsig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_dns_parse: broken promise: %s\n", what);
        abort();
    }
}

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

#ifndef FUZZ_LIBFUZZER
/* ---- plain runner: corpus files + deterministic mutations -------------- */

#define MUTATIONS_PER_SEED 3000

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void mutate(uint8_t *buf, size_t *len, size_t cap)
{
    static const uint8_t interesting[] = {0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xc0, 0xff};
    unsigned ops = 1 + (unsigned)(next_rand() % 4);
    for (unsigned i = 0; i < ops && *len; i++) {
        size_t at = (size_t)(next_rand() % *len);
        switch (next_rand() % 6) {
        case 0: buf[at] ^= (uint8_t)(1u << (next_rand() % 8)); break;
        case 1: buf[at] = interesting[next_rand() % sizeof(interesting)]; break;
        case 2: *len = at; break; /* truncate */
        case 3: /* a compression pointer somewhere */
            if (at + 1 < *len) {
                buf[at] = (uint8_t)(0xC0 | (next_rand() % 2));
                buf[at + 1] = (uint8_t)(next_rand() % (*len ? *len : 1));
            }
            break;
        case 4: /* a count word */
            if (*len >= 12)
                buf[4 + 2 * (next_rand() % 4) + 1] = (uint8_t)(next_rand() % 8);
            break;
        default: /* duplicate a byte range forward */
            if (*len < cap) {
                size_t n = (size_t)(next_rand() % 16);
                if (n > cap - *len)
                    n = cap - *len;
                memmove(buf + at + n, buf + at, *len - at);
                *len += n;
            }
            break;
        }
    }
}

static int run_file(const char *path, unsigned *files, unsigned long *runs)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    static uint8_t seed[DNS_MAX_MSG], buf[DNS_MAX_MSG];
    size_t n = fread(seed, 1, sizeof(seed), f);
    fclose(f);
    LLVMFuzzerTestOneInput(seed, n);
    for (unsigned i = 0; i < MUTATIONS_PER_SEED; i++) {
        size_t len = n;
        memcpy(buf, seed, n);
        mutate(buf, &len, sizeof(buf));
        /* An exact-size copy, so ASan and valgrind see any overread. */
        uint8_t *exact = malloc(len ? len : 1);
        if (!exact)
            return -1;
        memcpy(exact, buf, len);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    (*files)++;
    *runs += 1 + MUTATIONS_PER_SEED;
    return 0;
}

int main(int argc, char **argv)
{
    unsigned files = 0;
    unsigned long runs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i], &files, &runs) != 0)
                return 1;
            continue;
        }
        struct dirent **ents;
        int n = scandir(argv[i], &ents, NULL, alphasort);
        if (n < 0) {
            perror(argv[i]);
            return 1;
        }
        for (int k = 0; k < n; k++) {
            if (ents[k]->d_name[0] != '.' && strstr(ents[k]->d_name, ".bin")) {
                char p[4096];
                snprintf(p, sizeof(p), "%s/%s", argv[i], ents[k]->d_name);
                if (run_file(p, &files, &runs) != 0)
                    return 1;
            }
            free(ents[k]);
        }
        free(ents);
    }
    printf("fuzz_dns_parse: %u seed files, %lu inputs, no broken promise\n", files, runs);
    return files ? 0 : 1;
}
#endif
