/* DNS messages on the wire (RFC 1035 §4, RFC 2136 §2, RFC 8945 §4.2):
 * domain names, a message builder and a bounds-checked parser.
 *
 * Nothing here does I/O or allocates. The parser never reads outside the
 * buffer it is given, follows compression pointers only backwards (so a
 * pointer loop cannot exist), and refuses a message whose sections do not
 * add up exactly to its length. Its fuzz target is
 * tests/fuzz/fuzz_dns_parse.c. */
#ifndef DNS01_DNS_WIRE_H
#define DNS01_DNS_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Largest message we handle (TCP's 16-bit length). */
#define DNS_MAX_MSG 65535u
/* A domain name in wire form is at most 255 octets, labels at most 63. */
#define DNS_MAX_NAME 255u
#define DNS_MAX_LABEL 63u
/* Text form, enough for any name with every octet escaped as \DDD. */
#define DNS_NAME_TEXT 1024u

enum dns_type {
    DNS_T_A = 1,
    DNS_T_NS = 2,
    DNS_T_CNAME = 5,
    DNS_T_SOA = 6,
    DNS_T_TXT = 16,
    DNS_T_AAAA = 28,
    DNS_T_OPT = 41,
    DNS_T_TSIG = 250,
    DNS_T_ANY = 255
};

enum dns_class {
    DNS_C_IN = 1,
    DNS_C_NONE = 254,
    DNS_C_ANY = 255
};

enum dns_opcode {
    DNS_OP_QUERY = 0,
    DNS_OP_UPDATE = 5
};

/* Header flag bits (the second 16-bit word). */
#define DNS_F_QR 0x8000u
#define DNS_F_AA 0x0400u
#define DNS_F_TC 0x0200u
#define DNS_F_RD 0x0100u
#define DNS_F_RA 0x0080u
#define DNS_FLAGS_OPCODE(f) (((unsigned)(f) >> 11) & 0xFu)
#define DNS_FLAGS_RCODE(f) ((unsigned)(f) & 0xFu)
#define DNS_OPCODE_FLAGS(op) ((uint16_t)(((unsigned)(op) & 0xFu) << 11))

/* Response codes (RFC 1035, RFC 2136) and the TSIG errors (RFC 8945 §3),
 * which share the number space. */
enum dns_rcode {
    DNS_R_NOERROR = 0,
    DNS_R_FORMERR = 1,
    DNS_R_SERVFAIL = 2,
    DNS_R_NXDOMAIN = 3,
    DNS_R_NOTIMP = 4,
    DNS_R_REFUSED = 5,
    DNS_R_YXDOMAIN = 6,
    DNS_R_YXRRSET = 7,
    DNS_R_NXRRSET = 8,
    DNS_R_NOTAUTH = 9,
    DNS_R_NOTZONE = 10,
    DNS_R_BADSIG = 16,
    DNS_R_BADKEY = 17,
    DNS_R_BADTIME = 18,
    DNS_R_BADMODE = 19,
    DNS_R_BADNAME = 20,
    DNS_R_BADALG = 21,
    DNS_R_BADTRUNC = 22
};

/* "NOERROR", "BADSIG"...; "RCODE<n>" style text for others (static). */
const char *dns_rcode_name(unsigned rcode);
/* "TXT", "SOA"...; "TYPE<n>" for others (static). */
const char *dns_type_name(unsigned type);

/* Sections, in message order. */
enum dns_section { DNS_S_QUESTION = 0, DNS_S_ANSWER = 1, DNS_S_AUTHORITY = 2, DNS_S_ADDITIONAL = 3 };
/* RFC 2136 names the same four counts ZOCOUNT, PRCOUNT, UPCOUNT, ADCOUNT. */
#define DNS_S_ZONE DNS_S_QUESTION
#define DNS_S_PREREQ DNS_S_ANSWER
#define DNS_S_UPDATE DNS_S_AUTHORITY

/* ---- names --------------------------------------------------------------- */

/* A name in uncompressed wire form, ending with the root label. */
typedef struct dns_name {
    uint8_t len;                  /* octets used in data, 1..255 */
    uint8_t data[DNS_MAX_NAME];
} dns_name;

/* "host.example.org", with or without the final dot; "." is the root.
 * Labels must be 1..63 octets of printable ASCII other than '.', '\\',
 * '"', ';', '(' and ')' (no escapes). 0 on success, -1 if not a name. */
int dns_name_from_text(dns_name *out, const char *text);
/* Text without the final dot ("." for the root); octets outside the
 * label characters above are written as \DDD. Returns 0, or -1 if the
 * buffer is too small (DNS_NAME_TEXT always suffices). */
int dns_name_to_text(const dns_name *n, char *buf, size_t len);
/* Case-insensitive (ASCII) equality. */
int dns_name_equal(const dns_name *a, const dns_name *b);
/* 1 if n is zone or below it. */
int dns_name_is_below(const dns_name *n, const dns_name *zone);
/* Drop the first label. -1 if n is the root. */
int dns_name_parent(const dns_name *n, dns_name *out);
int dns_name_is_root(const dns_name *n);
/* Lower-case in place (canonical form for TSIG, RFC 8945 §4.3.3). */
void dns_name_lower(dns_name *n);

/* ---- building ------------------------------------------------------------ */

#define DNS_BUILDER_PTRS 32

/* Writes a message into a caller's buffer. Errors stick: check ok (or the
 * result of dns_builder_finish) once at the end. Owner names are
 * compressed against earlier names; RDATA is written as given. */
typedef struct dns_builder {
    uint8_t *buf;
    size_t cap, len;
    uint16_t count[4];
    int ok;
    int section;                      /* the last section written to */
    size_t ptr_count;                 /* names written, for compression */
    uint16_t ptr_off[DNS_BUILDER_PTRS];
} dns_builder;

void dns_builder_init(dns_builder *b, uint8_t *buf, size_t cap, uint16_t id, uint16_t flags);
void dns_builder_question(dns_builder *b, const dns_name *name, uint16_t type, uint16_t cls);
void dns_builder_rr(dns_builder *b, enum dns_section s, const dns_name *owner, uint16_t type,
                    uint16_t cls, uint32_t ttl, const uint8_t *rdata, size_t rdlen);
/* Writes the counts; returns the length, or 0 if anything overflowed or
 * sections were written out of order. */
size_t dns_builder_finish(dns_builder *b);

/* TXT RDATA for one value: one or more <character-string>s (255 octets
 * each). Returns the length, or 0 if it does not fit (or value is empty
 * and cap is 0). */
size_t dns_txt_rdata(const char *value, uint8_t *out, size_t cap);

/* ---- parsing ------------------------------------------------------------- */

typedef struct dns_msg {
    const uint8_t *buf;
    size_t len;
    uint16_t id, flags;
    uint16_t count[4];
    size_t section_off[4];   /* where each section starts */
    int has_question;        /* count[0] >= 1: qname/qtype/qclass are the first */
    dns_name qname;
    uint16_t qtype, qclass;
    size_t tsig_off;         /* the TSIG RR (last in additional), or 0 */
    size_t opt_off;          /* an OPT RR, or 0 */
} dns_msg;

/* Parse and check a whole message. 0 on success; -1 (with *why set to a
 * static phrase) if it is truncated, has a bad name or pointer, counts
 * that do not match, trailing bytes, a TSIG that is not last, or more than
 * one OPT. */
int dns_parse(dns_msg *m, const uint8_t *buf, size_t len, const char **why);

typedef struct dns_rr {
    enum dns_section section;
    dns_name owner;
    uint16_t type, cls;
    uint32_t ttl;
    uint16_t rdlen;
    size_t rr_off;    /* start of the RR (its owner name) */
    size_t rd_off;    /* start of RDATA */
} dns_rr;

typedef struct dns_iter {
    const dns_msg *m;
    enum dns_section section;
    unsigned index;   /* within section */
    size_t off;
} dns_iter;

/* Walk the records after the question section, in order. */
void dns_iter_init(dns_iter *it, const dns_msg *m);
/* 1 and *rr filled, or 0 at the end. (dns_parse already validated every
 * record, so this cannot fail on a parsed message.) */
int dns_iter_next(dns_iter *it, dns_rr *rr);

/* Read a possibly compressed name at *off (advanced past it). */
int dns_read_name(const uint8_t *msg, size_t len, size_t *off, dns_name *out);

/* RDATA helpers. Each checks the record's type and that the data fills
 * exactly its RDLENGTH (or starts it, for SOA); -1 otherwise. */
int dns_rdata_name(const dns_msg *m, const dns_rr *rr, dns_name *out);  /* NS, CNAME, SOA MNAME */
/* TXT: the <character-string>s concatenated, NUL-terminated; text bytes
 * other than printable ASCII become '?'. -1 if it does not fit. */
int dns_rdata_txt(const dns_msg *m, const dns_rr *rr, char *out, size_t cap);
/* A / AAAA: 4 or 16 bytes into addr; returns that length or -1. */
int dns_rdata_addr(const dns_msg *m, const dns_rr *rr, uint8_t addr[16]);

/* TSIG RDATA (RFC 8945 §4.2). Pointers point into the message. */
typedef struct dns_tsig_rdata {
    dns_name algorithm;
    uint64_t time_signed;    /* 48 bits */
    uint16_t fudge;
    uint16_t mac_size;
    const uint8_t *mac;
    uint16_t original_id;
    uint16_t error;
    uint16_t other_len;
    const uint8_t *other;
} dns_tsig_rdata;

int dns_rdata_tsig(const dns_msg *m, const dns_rr *rr, dns_tsig_rdata *out);

#endif
