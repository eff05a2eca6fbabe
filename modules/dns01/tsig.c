/* TSIG signing and verification (RFC 8945 §4.3, §5.3). See tsig.h. */
#include "tsig.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

/* Algorithm names in wire form, as they appear in the TSIG record. */
static const uint8_t alg_sha256_wire[] = "\x0bhmac-sha256";   /* + root label (the NUL) */
static const uint8_t alg_sha512_wire[] = "\x0bhmac-sha512";

static void alg_name(tsig_alg alg, dns_name *out)
{
    const uint8_t *w = alg == TSIG_HMAC_SHA512 ? alg_sha512_wire : alg_sha256_wire;
    out->len = (uint8_t)sizeof(alg_sha256_wire);
    memcpy(out->data, w, out->len);
}

int tsig_alg_parse(const char *text, tsig_alg *out)
{
    if (!text)
        return -1;
    size_t n = strlen(text);
    if (n && text[n - 1] == '.')
        n--;
    if (n == 11 && !strncasecmp(text, "hmac-sha256", 11)) {
        *out = TSIG_HMAC_SHA256;
        return 0;
    }
    if (n == 11 && !strncasecmp(text, "hmac-sha512", 11)) {
        *out = TSIG_HMAC_SHA512;
        return 0;
    }
    return -1;
}

const char *tsig_alg_text(tsig_alg alg)
{
    return alg == TSIG_HMAC_SHA512 ? "hmac-sha512" : "hmac-sha256";
}

size_t tsig_mac_len(tsig_alg alg)
{
    return alg == TSIG_HMAC_SHA512 ? 64 : 32;
}

static gnutls_mac_algorithm_t gnutls_alg(tsig_alg alg)
{
    return alg == TSIG_HMAC_SHA512 ? GNUTLS_MAC_SHA512 : GNUTLS_MAC_SHA256;
}

static void wipe(void *p, size_t n)
{
    volatile uint8_t *v = p;
    while (n--)
        *v++ = 0;
}

int tsig_key_set(tsig_key *k, const char *name, tsig_alg alg, const char *secret_b64,
                 const char **why)
{
    static const char *dummy;
    if (!why)
        why = &dummy;
    memset(k, 0, sizeof(*k));
    if (!name || dns_name_from_text(&k->name, name) != 0 || dns_name_is_root(&k->name)) {
        *why = "the key name is not a domain name";
        return -1;
    }
    dns_name_lower(&k->name);
    k->alg = alg;
    if (!secret_b64) {
        *why = "no secret";
        return -1;
    }
    /* Copy without whitespace (key files wrap long secrets). */
    size_t n = strlen(secret_b64);
    char *clean = malloc(n + 1);
    if (!clean) {
        *why = "out of memory";
        return -1;
    }
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (secret_b64[i] != ' ' && secret_b64[i] != '\t' && secret_b64[i] != '\n' &&
            secret_b64[i] != '\r')
            clean[c++] = secret_b64[i];
    clean[c] = '\0';
    gnutls_datum_t in = {(unsigned char *)clean, (unsigned)c}, out = {NULL, 0};
    int rc = c ? gnutls_base64_decode2(&in, &out) : -1;
    wipe(clean, c);
    free(clean);
    if (rc < 0 || out.size == 0) {
        if (out.data)
            gnutls_free(out.data);
        *why = "the secret is not base64";
        return -1;
    }
    if (out.size > TSIG_MAX_SECRET) {
        wipe(out.data, out.size);
        gnutls_free(out.data);
        *why = "the secret is longer than 512 bytes";
        return -1;
    }
    memcpy(k->secret, out.data, out.size);
    k->secret_len = out.size;
    wipe(out.data, out.size);
    gnutls_free(out.data);
    return 0;
}

void tsig_key_wipe(tsig_key *k)
{
    wipe(k->secret, sizeof(k->secret));
    k->secret_len = 0;
}

static void be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void be48(uint8_t *p, uint64_t v)
{
    for (int i = 5; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

int tsig_compute(const tsig_key *k, const uint8_t *prior_mac, size_t prior_len,
                 const uint8_t *msg, size_t msg_len, uint16_t original_id, const tsig_vars *v,
                 uint8_t *out, size_t *out_len)
{
    if (msg_len < 12 || prior_len > TSIG_MAX_MAC)
        return -1;
    gnutls_hmac_hd_t h;
    if (gnutls_hmac_init(&h, gnutls_alg(k->alg), k->secret, k->secret_len) < 0)
        return -1;
    int bad = 0;
    uint8_t tmp[16];
    if (prior_mac) {
        be16(tmp, (uint16_t)prior_len);
        bad |= gnutls_hmac(h, tmp, 2) < 0;
        if (prior_len)
            bad |= gnutls_hmac(h, prior_mac, prior_len) < 0;
    }
    /* The message with its original ID. */
    be16(tmp, original_id);
    bad |= gnutls_hmac(h, tmp, 2) < 0;
    bad |= gnutls_hmac(h, msg + 2, msg_len - 2) < 0;
    /* TSIG variables: key name, class ANY, TTL 0, algorithm, times,
     * error, other data. Names canonical: uncompressed, lower case. */
    dns_name alg;
    alg_name(k->alg, &alg);
    bad |= gnutls_hmac(h, k->name.data, k->name.len) < 0;
    be16(tmp, DNS_C_ANY);
    memset(tmp + 2, 0, 4);
    bad |= gnutls_hmac(h, tmp, 6) < 0;
    bad |= gnutls_hmac(h, alg.data, alg.len) < 0;
    be48(tmp, v->time_signed);
    be16(tmp + 6, v->fudge);
    be16(tmp + 8, v->error);
    be16(tmp + 10, v->other_len);
    bad |= gnutls_hmac(h, tmp, 12) < 0;
    if (v->other_len)
        bad |= gnutls_hmac(h, v->other, v->other_len) < 0;
    gnutls_hmac_deinit(h, out);
    *out_len = tsig_mac_len(k->alg);
    return bad ? -1 : 0;
}

int tsig_sign(const tsig_key *k, uint8_t *buf, size_t *len, size_t cap, uint64_t now,
              uint16_t fudge, uint8_t *mac, size_t *mac_len)
{
    size_t n = *len;
    if (n < 12)
        return -1;
    uint16_t id = (uint16_t)((buf[0] << 8) | buf[1]);
    tsig_vars v = {.time_signed = now, .fudge = fudge};
    if (tsig_compute(k, NULL, 0, buf, n, id, &v, mac, mac_len) != 0)
        return -1;
    dns_name alg;
    alg_name(k->alg, &alg);
    size_t rdlen = alg.len + 10u + *mac_len + 6u;
    size_t need = k->name.len + 10u + rdlen;
    if (cap < n || cap - n < need)
        return -1;
    uint8_t *p = buf + n;
    memcpy(p, k->name.data, k->name.len);
    p += k->name.len;
    be16(p, DNS_T_TSIG);
    be16(p + 2, DNS_C_ANY);
    memset(p + 4, 0, 4);
    be16(p + 8, (uint16_t)rdlen);
    p += 10;
    memcpy(p, alg.data, alg.len);
    p += alg.len;
    be48(p, now);
    be16(p + 6, fudge);
    be16(p + 8, (uint16_t)*mac_len);
    p += 10;
    memcpy(p, mac, *mac_len);
    p += *mac_len;
    be16(p, id);
    be16(p + 2, 0);
    be16(p + 4, 0);
    p += 6;
    *len = (size_t)(p - buf);
    uint16_t ar = (uint16_t)((buf[10] << 8) | buf[11]);
    be16(buf + 10, (uint16_t)(ar + 1));
    return 0;
}

static int ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

tsig_status tsig_verify(const tsig_key *k, const dns_msg *m, const uint8_t *req_mac,
                        size_t req_mac_len, uint64_t now, unsigned *error)
{
    *error = 0;
    if (!m->tsig_off)
        return TSIG_NOT_SIGNED;
    dns_rr rr;
    dns_iter it;
    dns_iter_init(&it, m);
    int found = 0;
    while (dns_iter_next(&it, &rr))
        if (rr.rr_off == m->tsig_off) {
            found = 1;
            break;
        }
    dns_tsig_rdata t;
    if (!found || rr.cls != DNS_C_ANY || rr.ttl != 0 || dns_rdata_tsig(m, &rr, &t) != 0)
        return TSIG_MALFORMED;
    *error = t.error;
    dns_name alg;
    alg_name(k->alg, &alg);
    if (!dns_name_equal(&rr.owner, &k->name) || !dns_name_equal(&t.algorithm, &alg))
        return TSIG_OTHER_KEY;
    if (t.error)
        return TSIG_SERVER_ERROR;
    if (t.mac_size != tsig_mac_len(k->alg))
        return TSIG_BAD_MAC;
    /* The message as signed: without the TSIG record, ARCOUNT one less. */
    size_t body = m->tsig_off;
    uint8_t *copy = malloc(body);
    if (!copy)
        return TSIG_MALFORMED;
    memcpy(copy, m->buf, body);
    be16(copy + 10, (uint16_t)(m->count[DNS_S_ADDITIONAL] - 1));
    tsig_vars v = {
        .time_signed = t.time_signed, .fudge = t.fudge, .error = t.error,
        .other_len = t.other_len, .other = t.other,
    };
    uint8_t mac[TSIG_MAX_MAC];
    size_t mac_len = 0;
    int rc = tsig_compute(k, req_mac, req_mac_len, copy, body, t.original_id, &v, mac, &mac_len);
    free(copy);
    if (rc != 0 || !ct_equal(mac, t.mac, mac_len))
        return TSIG_BAD_MAC;
    uint64_t lo = t.time_signed > t.fudge ? t.time_signed - t.fudge : 0;
    if (now < lo || now > t.time_signed + t.fudge)
        return TSIG_BAD_TIME;
    return TSIG_VERIFIED;
}

const char *tsig_status_text(tsig_status s)
{
    switch (s) {
    case TSIG_VERIFIED: return "signature verified";
    case TSIG_NOT_SIGNED: return "the answer is not signed";
    case TSIG_MALFORMED: return "the answer's TSIG record is malformed";
    case TSIG_OTHER_KEY: return "the answer is signed with another key or algorithm";
    case TSIG_SERVER_ERROR: return "the server reported a TSIG error";
    case TSIG_BAD_MAC: return "the answer's TSIG signature does not verify";
    case TSIG_BAD_TIME: return "the answer's TSIG time is outside the fudge window";
    }
    return "?";
}
