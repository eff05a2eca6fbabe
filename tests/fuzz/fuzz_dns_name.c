/* Fuzz target: DNS names and servers as the dns01 module reads them
 * (modules/dns01/dns_wire.c, dns_net.c): names in text form (zone=,
 * tsig-key-name=, every challenge's _acme-challenge name), names in wire
 * form with compression pointers, TXT RDATA for a value, and host[:port]
 * server specs (server=, resolver=, nameservers=; the resolver is stubbed
 * by no_network.c, so a host name never leaves the process).
 *
 * Promises checked: a name from text is 1..255 octets, prints back to the
 * same text (less a final dot, case kept) and parses back to the same
 * name; its parents end at the root; it is below each of them; a wire
 * name read at any offset stays inside the buffer and prints within
 * DNS_NAME_TEXT without control characters; TXT RDATA is a sequence of
 * character-strings that add up to the value; a parsed server has a port
 * and a printable address. */
#include <string.h>

#include "dns_net.h"
#include "dns_wire.h"
#include "fuzz.h"

#define T "fuzz_dns_name"

static void check_text_name(const char *text)
{
    dns_name n;
    if (dns_name_from_text(&n, text) != 0)
        return;
    FUZZ_CHECK(T, n.len >= 1 && n.len <= DNS_MAX_NAME, "name length");
    char out[DNS_NAME_TEXT];
    FUZZ_CHECK(T, dns_name_to_text(&n, out, sizeof(out)) == 0, "name prints");
    size_t tl = strlen(text);
    if (tl > 1 && text[tl - 1] == '.')
        tl--;
    FUZZ_CHECK(T, (strlen(out) == tl && !memcmp(out, text, tl)) || (dns_name_is_root(&n) && !strcmp(out, ".")),
               "name prints back as given");
    dns_name back;
    FUZZ_CHECK(T, dns_name_from_text(&back, out) == 0 && back.len == n.len && !memcmp(back.data, n.data, n.len),
               "printed name parses back");
    dns_name lower = n;
    dns_name_lower(&lower);
    FUZZ_CHECK(T, dns_name_equal(&lower, &n), "lower-case equals");
    dns_name cur = n, parent;
    unsigned steps = 0;
    while (dns_name_parent(&cur, &parent) == 0) {
        FUZZ_CHECK(T, parent.len < cur.len, "parent is shorter");
        FUZZ_CHECK(T, dns_name_is_below(&n, &parent), "a name is below its parent");
        cur = parent;
        FUZZ_CHECK(T, ++steps <= 128, "parents end");
    }
    FUZZ_CHECK(T, dns_name_is_root(&cur), "parents end at the root");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    check_text_name(text);
    /* Each line as a name too (zone lists, key names). */
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        check_text_name(line);
        dns_server srv;
        const char *why = NULL;
        if (dns_server_parse(line, 53, &srv, &why) == 0) {
            FUZZ_CHECK(T, srv.salen > 0 && srv.text[0] && !fuzz_has_control(srv.text), "server parsed");
        } else {
            FUZZ_CHECK(T, why != NULL, "server refusal without a reason");
        }
        uint8_t rd[2048];
        size_t vl = strlen(line);
        size_t rl = dns_txt_rdata(line, rd, sizeof(rd));
        if (rl) {
            size_t off = 0, sum = 0;
            while (off < rl) {
                sum += rd[off];
                off += 1 + (size_t)rd[off];
            }
            FUZZ_CHECK(T, off == rl && sum == vl, "TXT RDATA adds up to the value");
        }
    }
    free(text);

    /* The bytes as a wire name, read at every offset of the first 64. */
    for (size_t start = 0; start < size && start < 64; start++) {
        size_t off = start;
        dns_name n;
        if (dns_read_name(data, size, &off, &n) != 0)
            continue;
        FUZZ_CHECK(T, off > start && off <= size, "read stays in the buffer");
        FUZZ_CHECK(T, n.len >= 1 && n.len <= DNS_MAX_NAME, "wire name length");
        char out[DNS_NAME_TEXT];
        FUZZ_CHECK(T, dns_name_to_text(&n, out, sizeof(out)) == 0, "wire name prints");
        FUZZ_CHECK(T, !fuzz_has_control(out), "printed wire name has no control characters");
    }
    return 0;
}
