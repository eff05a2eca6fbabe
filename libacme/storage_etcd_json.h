/* etcd v3 JSON gateway: the request bodies we send and the answers we read.
 *
 * Pure functions, no I/O, so the encoding can be unit-tested without an
 * etcd (tests/unit/test_storage_etcd.c). The gateway speaks grpc-gateway
 * JSON: keys and values are standard base64 (with padding), 64-bit numbers
 * come back as decimal strings, and a field whose value is zero or false
 * is left out of an answer altogether ("succeeded" is absent when a txn
 * failed, "kvs" when nothing matched). */
#ifndef ACME_STORAGE_ETCD_JSON_H
#define ACME_STORAGE_ETCD_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* Standard base64 (RFC 4648 §4, with '=' padding). malloc'ed, NUL-terminated;
 * NULL on allocation failure. */
char *etcd_b64_encode(const void *data, size_t len);
/* Decode standard base64; *out is malloc'ed (NUL-terminated, not counted in
 * *len). 0, or -1 on malformed input or allocation failure. */
int etcd_b64_decode(const char *s, unsigned char **out, size_t *len);

/* The range_end that makes a range cover every key starting with prefix:
 * the prefix with its last byte plus one (etcd's "prefix" convention).
 * malloc'ed; NULL for an empty prefix or when every byte is 0xff. */
char *etcd_prefix_end(const char *prefix);

/* A 64-bit field of an answer, as a string ("12") or a number; 0 if absent
 * or malformed (the gateway omits zeros). */
int64_t etcd_int(json_t *obj, const char *name);

/* {"key":..,"range_end":..,"keys_only":true,"limit":n}. range_end NULL:
 * one key. limit 0: none. */
json_t *etcd_req_range(const char *key, const char *range_end, int keys_only, int64_t limit);

/* One comparison of a txn. */
typedef enum etcd_cmp_target {
    ETCD_CMP_CREATE = 1,  /* the key's create_revision (0 = the key is absent) */
    ETCD_CMP_LEASE = 2    /* the lease the key is attached to */
} etcd_cmp_target;

typedef struct etcd_cmp {
    const char *key;
    etcd_cmp_target target;
    int64_t value;        /* EQUAL to this */
} etcd_cmp;

/* Ops of a txn branch. */
json_t *etcd_op_put(const char *key, const void *data, size_t len, int64_t lease);
json_t *etcd_op_delete(const char *key);
json_t *etcd_op_range(const char *key);
/* {"compare":[..],"success":[..],"failure":[..]}. Steals success and
 * failure (arrays of ops; either may be NULL). NULL on failure. */
json_t *etcd_req_txn(const etcd_cmp *cmps, size_t ncmp, json_t *success, json_t *failure);

/* A key-value of a range answer, decoded. */
typedef struct etcd_kv {
    char *key;             /* NUL-terminated */
    unsigned char *value;  /* NUL-terminated, len bytes; NULL with keys_only */
    size_t len;
    int64_t create_revision, mod_revision, lease;
} etcd_kv;

void etcd_kv_clear(etcd_kv *kv);
/* Decode one element of "kvs". 0, or -1 if malformed. */
int etcd_kv_parse(json_t *obj, etcd_kv *kv);
/* The "kvs" array of a range answer (or of a txn's response_range), or
 * NULL when there is none (nothing matched). Borrowed. */
json_t *etcd_resp_kvs(json_t *range_answer);
/* The n-th txn response's response_range, or NULL. Borrowed. */
json_t *etcd_txn_range(json_t *txn_answer, size_t n);
/* 1 if the txn answer says the comparisons held. */
int etcd_txn_succeeded(json_t *txn_answer);
/* header.revision of any answer; 0 if absent. */
int64_t etcd_revision(json_t *answer);
/* The "error" or "message" text of a failed answer, or NULL. Borrowed. */
const char *etcd_error_text(json_t *answer);

#endif
