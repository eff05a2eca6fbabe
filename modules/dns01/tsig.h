/* TSIG (RFC 8945): signing requests and verifying answers with a shared
 * secret, hmac-sha256 or hmac-sha512, through gnutls. */
#ifndef DNS01_TSIG_H
#define DNS01_TSIG_H

#include <stddef.h>
#include <stdint.h>

#include "dns_wire.h"

#define TSIG_MAX_SECRET 512u
#define TSIG_MAX_MAC 64u
#define TSIG_DEFAULT_FUDGE 300u

typedef enum tsig_alg {
    TSIG_HMAC_SHA256 = 0,
    TSIG_HMAC_SHA512 = 1
} tsig_alg;

typedef struct tsig_key {
    dns_name name;          /* canonical (lower-case) */
    tsig_alg alg;
    uint8_t secret[TSIG_MAX_SECRET];
    size_t secret_len;
} tsig_key;

/* "hmac-sha256" / "hmac-sha512", any case, final dot optional. */
int tsig_alg_parse(const char *text, tsig_alg *out);
/* "hmac-sha256" / "hmac-sha512". */
const char *tsig_alg_text(tsig_alg alg);
size_t tsig_mac_len(tsig_alg alg);

/* Fill a key from its name and base64 secret (whitespace ignored).
 * 0, or -1 with *why set (static text). */
int tsig_key_set(tsig_key *k, const char *name, tsig_alg alg, const char *secret_b64,
                 const char **why);
/* Zero the secret. */
void tsig_key_wipe(tsig_key *k);

/* The TSIG variables of RFC 8945 §4.3.3 besides the key. */
typedef struct tsig_vars {
    uint64_t time_signed;   /* 48 bits */
    uint16_t fudge;
    uint16_t error;
    uint16_t other_len;
    const uint8_t *other;
} tsig_vars;

/* The MAC over: [prior MAC with its length] + msg (msg_len bytes, the
 * message without its TSIG record, ARCOUNT not counting it) with the ID
 * replaced by original_id + the TSIG variables. out must hold
 * TSIG_MAX_MAC bytes; *out_len gets the length. 0 or -1. */
int tsig_compute(const tsig_key *k, const uint8_t *prior_mac, size_t prior_len,
                 const uint8_t *msg, size_t msg_len, uint16_t original_id, const tsig_vars *v,
                 uint8_t *out, size_t *out_len);

/* Append a TSIG record to the message in buf[0..*len) (capacity cap),
 * signed at time `now` (seconds since the epoch). The request MAC is
 * copied to mac (TSIG_MAX_MAC bytes) for checking the answer. 0 or -1
 * (no room). */
int tsig_sign(const tsig_key *k, uint8_t *buf, size_t *len, size_t cap, uint64_t now,
              uint16_t fudge, uint8_t *mac, size_t *mac_len);

typedef enum tsig_status {
    TSIG_VERIFIED = 0,
    TSIG_NOT_SIGNED,    /* no TSIG record in the answer */
    TSIG_MALFORMED,     /* a TSIG record we cannot read */
    TSIG_OTHER_KEY,     /* signed with another key name or algorithm */
    TSIG_SERVER_ERROR,  /* the server put an error in its TSIG (see *error) */
    TSIG_BAD_MAC,       /* the MAC does not verify */
    TSIG_BAD_TIME       /* signed outside the fudge window */
} tsig_status;

/* Check an answer to a request whose MAC was req_mac. *error gets the
 * TSIG error field (BADSIG, BADKEY, BADTIME...) when there is a record. */
tsig_status tsig_verify(const tsig_key *k, const dns_msg *m, const uint8_t *req_mac,
                        size_t req_mac_len, uint64_t now, unsigned *error);
/* One phrase for a status. */
const char *tsig_status_text(tsig_status s);

#endif
