/* DNS wire format: names, building, parsing. See dns_wire.h. */
#include "dns_wire.h"

#include <stdio.h>
#include <string.h>

/* ---- names ----------------------------------------------------------- */

static int label_char_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '.' && c != '\\' && c != '"' && c != ';' && c != '(' &&
           c != ')';
}

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

int dns_name_from_text(dns_name *out, const char *text)
{
    if (!out || !text || !*text)
        return -1;
    if (!strcmp(text, ".")) {
        out->len = 1;
        out->data[0] = 0;
        return 0;
    }
    size_t n = 0;
    const char *p = text;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (l == 0 || l > DNS_MAX_LABEL)
            return -1;
        if (n + 1 + l + 1 > DNS_MAX_NAME)
            return -1;
        out->data[n++] = (uint8_t)l;
        for (size_t i = 0; i < l; i++) {
            if (!label_char_ok((unsigned char)p[i]))
                return -1;
            out->data[n++] = (uint8_t)p[i];
        }
        if (!dot)
            break;
        p = dot + 1; /* a final dot ends the loop with *p == 0 */
    }
    out->data[n++] = 0;
    out->len = (uint8_t)n;
    return 0;
}

int dns_name_to_text(const dns_name *n, char *buf, size_t len)
{
    if (!n || !buf || len < 2 || n->len < 1)
        return -1;
    size_t o = 0, i = 0;
    if (n->data[0] == 0) {
        buf[0] = '.';
        buf[1] = '\0';
        return 0;
    }
    while (i < n->len && n->data[i]) {
        unsigned l = n->data[i++];
        if (o) {
            if (o + 1 >= len)
                return -1;
            buf[o++] = '.';
        }
        for (unsigned k = 0; k < l && i < n->len; k++, i++) {
            unsigned char c = n->data[i];
            if (label_char_ok(c)) {
                if (o + 1 >= len)
                    return -1;
                buf[o++] = (char)c;
            } else {
                if (o + 4 >= len)
                    return -1;
                snprintf(buf + o, 5, "\\%03u", (unsigned)c);
                o += 4;
            }
        }
        if (o + 1 >= len)
            return -1;
    }
    buf[o] = '\0';
    return 0;
}

int dns_name_equal(const dns_name *a, const dns_name *b)
{
    if (a->len != b->len)
        return 0;
    for (size_t i = 0; i < a->len; i++)
        if (ascii_lower(a->data[i]) != ascii_lower(b->data[i]))
            return 0;
    return 1;
}

int dns_name_is_root(const dns_name *n)
{
    return n->len == 1 && n->data[0] == 0;
}

int dns_name_parent(const dns_name *n, dns_name *out)
{
    if (n->len < 1 || n->data[0] == 0)
        return -1;
    size_t skip = 1u + n->data[0];
    if (skip >= n->len)
        return -1;
    dns_name tmp;
    tmp.len = (uint8_t)(n->len - skip);
    memcpy(tmp.data, n->data + skip, tmp.len);
    *out = tmp;
    return 0;
}

int dns_name_is_below(const dns_name *n, const dns_name *zone)
{
    if (zone->len > n->len)
        return 0;
    /* Walk n's label boundaries; a suffix only counts at a boundary. */
    size_t i = 0;
    while (i < n->len) {
        if ((size_t)(n->len - i) == zone->len) {
            for (size_t k = 0; k < zone->len; k++)
                if (ascii_lower(n->data[i + k]) != ascii_lower(zone->data[k]))
                    return 0;
            return 1;
        }
        if (n->data[i] == 0)
            break;
        i += 1u + n->data[i];
    }
    return 0;
}

void dns_name_lower(dns_name *n)
{
    size_t i = 0;
    while (i < n->len && n->data[i]) {
        unsigned l = n->data[i++];
        for (unsigned k = 0; k < l && i < n->len; k++, i++)
            n->data[i] = ascii_lower(n->data[i]);
    }
}

const char *dns_rcode_name(unsigned rcode)
{
    static const char *const names[] = {
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
        "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE",
    };
    static const char *const tsig_names[] = {
        "BADSIG", "BADKEY", "BADTIME", "BADMODE", "BADNAME", "BADALG", "BADTRUNC",
    };
    if (rcode < sizeof(names) / sizeof(names[0]))
        return names[rcode];
    if (rcode >= DNS_R_BADSIG && rcode <= DNS_R_BADTRUNC)
        return tsig_names[rcode - DNS_R_BADSIG];
    if (rcode == 23)
        return "BADCOOKIE";
    return "unknown rcode";
}

const char *dns_type_name(unsigned type)
{
    switch (type) {
    case DNS_T_A: return "A";
    case DNS_T_NS: return "NS";
    case DNS_T_CNAME: return "CNAME";
    case DNS_T_SOA: return "SOA";
    case DNS_T_TXT: return "TXT";
    case DNS_T_AAAA: return "AAAA";
    case DNS_T_OPT: return "OPT";
    case DNS_T_TSIG: return "TSIG";
    case DNS_T_ANY: return "ANY";
    default: return "other type";
    }
}

/* ---- building -------------------------------------------------------- */

static void put8(dns_builder *b, uint8_t v)
{
    if (!b->ok || b->len + 1 > b->cap) {
        b->ok = 0;
        return;
    }
    b->buf[b->len++] = v;
}

static void put16(dns_builder *b, uint16_t v)
{
    put8(b, (uint8_t)(v >> 8));
    put8(b, (uint8_t)v);
}

static void put32(dns_builder *b, uint32_t v)
{
    put16(b, (uint16_t)(v >> 16));
    put16(b, (uint16_t)v);
}

static void put_bytes(dns_builder *b, const uint8_t *p, size_t n)
{
    if (!b->ok || n > b->cap - b->len) {
        b->ok = 0;
        return;
    }
    if (n)
        memcpy(b->buf + b->len, p, n);
    b->len += n;
}

void dns_builder_init(dns_builder *b, uint8_t *buf, size_t cap, uint16_t id, uint16_t flags)
{
    memset(b, 0, sizeof(*b));
    b->buf = buf;
    b->cap = cap > DNS_MAX_MSG ? DNS_MAX_MSG : cap;
    b->ok = 1;
    put16(b, id);
    put16(b, flags);
    for (int i = 0; i < 4; i++)
        put16(b, 0);
}

/* Does the name written at off (in our own buffer) equal the suffix of n
 * starting at n->data[from]? */
static int suffix_at(const dns_builder *b, uint16_t off, const dns_name *n, size_t from)
{
    dns_name there;
    size_t o = off;
    if (dns_read_name(b->buf, b->len, &o, &there) != 0)
        return 0;
    if ((size_t)there.len != n->len - from)
        return 0;
    for (size_t k = 0; k < there.len; k++)
        if (ascii_lower(there.data[k]) != ascii_lower(n->data[from + k]))
            return 0;
    return 1;
}

static void put_name(dns_builder *b, const dns_name *n)
{
    size_t i = 0;
    while (b->ok && i < n->len && n->data[i]) {
        for (size_t p = 0; p < b->ptr_count; p++) {
            if (suffix_at(b, b->ptr_off[p], n, i)) {
                put16(b, (uint16_t)(0xC000u | b->ptr_off[p]));
                return;
            }
        }
        if (b->len < 0x4000 && b->ptr_count < DNS_BUILDER_PTRS)
            b->ptr_off[b->ptr_count++] = (uint16_t)b->len;
        unsigned l = n->data[i];
        put_bytes(b, n->data + i, 1u + l);
        i += 1u + l;
    }
    put8(b, 0);
}

static void bump(dns_builder *b, enum dns_section s)
{
    if ((int)s < b->section || b->count[s] == 0xFFFF) {
        b->ok = 0;
        return;
    }
    b->section = (int)s;
    b->count[s]++;
}

void dns_builder_question(dns_builder *b, const dns_name *name, uint16_t type, uint16_t cls)
{
    bump(b, DNS_S_QUESTION);
    put_name(b, name);
    put16(b, type);
    put16(b, cls);
}

void dns_builder_rr(dns_builder *b, enum dns_section s, const dns_name *owner, uint16_t type,
                    uint16_t cls, uint32_t ttl, const uint8_t *rdata, size_t rdlen)
{
    if (s == DNS_S_QUESTION || rdlen > 0xFFFF) {
        b->ok = 0;
        return;
    }
    bump(b, s);
    put_name(b, owner);
    put16(b, type);
    put16(b, cls);
    put32(b, ttl);
    put16(b, (uint16_t)rdlen);
    put_bytes(b, rdata, rdlen);
}

size_t dns_builder_finish(dns_builder *b)
{
    if (!b->ok || b->len < 12)
        return 0;
    for (int i = 0; i < 4; i++) {
        b->buf[4 + 2 * i] = (uint8_t)(b->count[i] >> 8);
        b->buf[5 + 2 * i] = (uint8_t)b->count[i];
    }
    return b->len;
}

size_t dns_txt_rdata(const char *value, uint8_t *out, size_t cap)
{
    size_t vlen = strlen(value), o = 0, i = 0;
    do {
        size_t chunk = vlen - i > 255 ? 255 : vlen - i;
        if (o + 1 + chunk > cap)
            return 0;
        out[o++] = (uint8_t)chunk;
        memcpy(out + o, value + i, chunk);
        o += chunk;
        i += chunk;
    } while (i < vlen);
    return o;
}

/* ---- parsing --------------------------------------------------------- */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

int dns_read_name(const uint8_t *msg, size_t len, size_t *off, dns_name *out)
{
    size_t pos = *off;
    size_t limit = pos;        /* a pointer must point before this */
    size_t resume = 0;         /* where the stream continues after a pointer */
    int jumped = 0;
    size_t n = 0;
    for (;;) {
        if (pos >= len)
            return -1;
        uint8_t c = msg[pos];
        if (c == 0) {
            if (n + 1 > DNS_MAX_NAME)
                return -1;
            out->data[n++] = 0;
            out->len = (uint8_t)n;
            *off = jumped ? resume : pos + 1;
            return 0;
        }
        if ((c & 0xC0) == 0xC0) {
            if (pos + 1 >= len)
                return -1;
            size_t target = ((size_t)(c & 0x3F) << 8) | msg[pos + 1];
            /* Only strictly backwards, and each jump further back than the
             * last: the walk must end. */
            if (target >= limit)
                return -1;
            if (!jumped) {
                resume = pos + 2;
                jumped = 1;
            }
            limit = target;
            pos = target;
            continue;
        }
        if (c & 0xC0)
            return -1; /* extended / reserved label types */
        if (pos + 1 + c > len || n + 1 + c + 1 > DNS_MAX_NAME)
            return -1;
        memcpy(out->data + n, msg + pos, 1u + c);
        n += 1u + c;
        pos += 1u + c;
    }
}

/* Skip one RR at *off; fill rr when not NULL. */
static int read_rr(const uint8_t *buf, size_t len, size_t *off, dns_rr *rr)
{
    dns_rr tmp;
    dns_rr *r = rr ? rr : &tmp;
    r->rr_off = *off;
    if (dns_read_name(buf, len, off, &r->owner) != 0)
        return -1;
    if (len - *off < 10)
        return -1;
    const uint8_t *p = buf + *off;
    r->type = get16(p);
    r->cls = get16(p + 2);
    r->ttl = get32(p + 4);
    r->rdlen = get16(p + 8);
    *off += 10;
    if (len - *off < r->rdlen)
        return -1;
    r->rd_off = *off;
    *off += r->rdlen;
    return 0;
}

int dns_parse(dns_msg *m, const uint8_t *buf, size_t len, const char **why)
{
    static const char *dummy;
    if (!why)
        why = &dummy;
    memset(m, 0, sizeof(*m));
    *why = NULL;
    if (!buf || len < 12) {
        *why = "shorter than a DNS header";
        return -1;
    }
    if (len > DNS_MAX_MSG) {
        *why = "longer than a DNS message can be";
        return -1;
    }
    m->buf = buf;
    m->len = len;
    m->id = get16(buf);
    m->flags = get16(buf + 2);
    for (int i = 0; i < 4; i++)
        m->count[i] = get16(buf + 4 + 2 * i);
    size_t off = 12;
    m->section_off[0] = off;
    for (unsigned i = 0; i < m->count[0]; i++) {
        dns_name qn;
        if (dns_read_name(buf, len, &off, &qn) != 0) {
            *why = "bad name in the question section";
            return -1;
        }
        if (len - off < 4) {
            *why = "truncated question";
            return -1;
        }
        if (i == 0) {
            m->has_question = 1;
            m->qname = qn;
            m->qtype = get16(buf + off);
            m->qclass = get16(buf + off + 2);
        }
        off += 4;
    }
    for (int s = 1; s < 4; s++) {
        m->section_off[s] = off;
        for (unsigned i = 0; i < m->count[s]; i++) {
            dns_rr rr;
            if (read_rr(buf, len, &off, &rr) != 0) {
                *why = "truncated record or bad name";
                return -1;
            }
            if (rr.type == DNS_T_TSIG) {
                if (s != DNS_S_ADDITIONAL || i + 1 != m->count[s]) {
                    *why = "TSIG record that is not the last one";
                    return -1;
                }
                m->tsig_off = rr.rr_off;
            } else if (rr.type == DNS_T_OPT) {
                if (s != DNS_S_ADDITIONAL || m->opt_off || !dns_name_is_root(&rr.owner)) {
                    *why = "misplaced or repeated OPT record";
                    return -1;
                }
                m->opt_off = rr.rr_off;
            }
        }
    }
    if (off != len) {
        *why = "bytes after the last record";
        return -1;
    }
    return 0;
}

void dns_iter_init(dns_iter *it, const dns_msg *m)
{
    it->m = m;
    it->section = DNS_S_ANSWER;
    it->index = 0;
    it->off = m->section_off[DNS_S_ANSWER];
}

int dns_iter_next(dns_iter *it, dns_rr *rr)
{
    const dns_msg *m = it->m;
    while (it->section <= DNS_S_ADDITIONAL && it->index >= m->count[it->section]) {
        if (it->section == DNS_S_ADDITIONAL)
            return 0;
        it->section = (enum dns_section)(it->section + 1);
        it->index = 0;
    }
    if (read_rr(m->buf, m->len, &it->off, rr) != 0)
        return 0;
    rr->section = it->section;
    it->index++;
    return 1;
}

int dns_rdata_name(const dns_msg *m, const dns_rr *rr, dns_name *out)
{
    size_t off = rr->rd_off, end = rr->rd_off + rr->rdlen;
    if (rr->type != DNS_T_NS && rr->type != DNS_T_CNAME && rr->type != DNS_T_SOA)
        return -1;
    if (dns_read_name(m->buf, end, &off, out) != 0)
        return -1;
    if (rr->type == DNS_T_SOA) {
        dns_name rname;
        if (dns_read_name(m->buf, end, &off, &rname) != 0 || end - off != 20)
            return -1;
        return 0;
    }
    return off == end ? 0 : -1;
}

int dns_rdata_txt(const dns_msg *m, const dns_rr *rr, char *out, size_t cap)
{
    if (rr->type != DNS_T_TXT || cap == 0)
        return -1;
    const uint8_t *p = m->buf + rr->rd_off;
    size_t i = 0, o = 0;
    if (rr->rdlen == 0)
        return -1;
    while (i < rr->rdlen) {
        size_t l = p[i++];
        if (l > rr->rdlen - i || o + l + 1 > cap)
            return -1;
        for (size_t k = 0; k < l; k++) {
            unsigned char c = p[i + k];
            out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        }
        i += l;
    }
    out[o] = '\0';
    return 0;
}

int dns_rdata_addr(const dns_msg *m, const dns_rr *rr, uint8_t addr[16])
{
    if ((rr->type == DNS_T_A && rr->rdlen == 4) || (rr->type == DNS_T_AAAA && rr->rdlen == 16)) {
        memcpy(addr, m->buf + rr->rd_off, rr->rdlen);
        return rr->rdlen;
    }
    return -1;
}

int dns_rdata_tsig(const dns_msg *m, const dns_rr *rr, dns_tsig_rdata *out)
{
    if (rr->type != DNS_T_TSIG)
        return -1;
    size_t off = rr->rd_off, end = rr->rd_off + rr->rdlen;
    const uint8_t *b = m->buf;
    if (dns_read_name(b, end, &off, &out->algorithm) != 0)
        return -1;
    if (end - off < 10)
        return -1;
    out->time_signed = ((uint64_t)get16(b + off) << 32) | get32(b + off + 2);
    out->fudge = get16(b + off + 6);
    out->mac_size = get16(b + off + 8);
    off += 10;
    if (end - off < (size_t)out->mac_size + 6)
        return -1;
    out->mac = b + off;
    off += out->mac_size;
    out->original_id = get16(b + off);
    out->error = get16(b + off + 2);
    out->other_len = get16(b + off + 4);
    off += 6;
    if (end - off != out->other_len)
        return -1;
    out->other = b + off;
    return 0;
}
