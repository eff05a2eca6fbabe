/* etcd v3 JSON gateway encoding; see storage_etcd_json.h. */
#include "storage_etcd_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *etcd_b64_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t n = (len + 2) / 3 * 4;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        out[o++] = B64[(v >> 18) & 63];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? B64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? B64[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int etcd_b64_decode(const char *s, unsigned char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    size_t n = strlen(s);
    if (n % 4)
        return -1;
    unsigned char *d = malloc(n / 4 * 3 + 1);
    if (!d)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = s[i + j];
            if (c == '=' && i + 4 == n && j >= 2 && (j == 3 || s[i + 3] == '=')) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad || (v[j] = b64_val(c)) < 0) {
                secure_free(d, n / 4 * 3 + 1);
                return -1;
            }
        }
        unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        d[o++] = (unsigned char)(x >> 16);
        if (pad < 2)
            d[o++] = (unsigned char)(x >> 8);
        if (pad < 1)
            d[o++] = (unsigned char)x;
    }
    d[o] = '\0';
    *out = d;
    *len = o;
    return 0;
}

char *etcd_prefix_end(const char *prefix)
{
    size_t n = strlen(prefix);
    char *end = strdup(prefix);
    if (!end)
        return NULL;
    while (n > 0) {
        unsigned char c = (unsigned char)end[n - 1];
        if (c < 0xff) {
            end[n - 1] = (char)(c + 1);
            end[n] = '\0';
            return end;
        }
        n--;
    }
    free(end);
    return NULL;
}

int64_t etcd_int(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_string(v)) {
        char *end = NULL;
        long long x = strtoll(json_string_value(v), &end, 10);
        if (end && *end == '\0')
            return (int64_t)x;
    }
    return 0;
}

/* A key as the gateway wants it: base64 of its bytes. */
static int set_b64(json_t *obj, const char *field, const void *data, size_t len)
{
    char *b = etcd_b64_encode(data, len);
    if (!b)
        return -1;
    int rc = json_object_set_new(obj, field, json_string(b));
    /* Values may be private keys: the encoded copy is as secret. */
    secure_free(b, strlen(b));
    return rc;
}

/* Numbers go out as strings, as the gateway sends them: a 64-bit lease id
 * does not fit a JSON double. */
static int set_i64(json_t *obj, const char *field, int64_t v)
{
    char s[24];
    snprintf(s, sizeof(s), "%" PRId64, v);
    return json_object_set_new(obj, field, json_string(s));
}

json_t *etcd_req_range(const char *key, const char *range_end, int keys_only, int64_t limit)
{
    json_t *o = json_object();
    if (!o || set_b64(o, "key", key, strlen(key)) ||
        (range_end && set_b64(o, "range_end", range_end, strlen(range_end))) ||
        (keys_only && json_object_set_new(o, "keys_only", json_true())) ||
        (limit > 0 && set_i64(o, "limit", limit))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *etcd_op_put(const char *key, const void *data, size_t len, int64_t lease)
{
    json_t *put = json_object();
    json_t *op = json_object();
    if (!put || !op || set_b64(put, "key", key, strlen(key)) || set_b64(put, "value", data, len) ||
        (lease && set_i64(put, "lease", lease)) || json_object_set_new(op, "request_put", put)) {
        json_decref(op);
        return NULL;
    }
    return op;
}

json_t *etcd_op_delete(const char *key)
{
    json_t *del = json_object();
    json_t *op = json_object();
    if (!del || !op || set_b64(del, "key", key, strlen(key)) || json_object_set_new(op, "request_delete_range", del)) {
        json_decref(op);
        return NULL;
    }
    return op;
}

json_t *etcd_op_range(const char *key)
{
    json_t *r = etcd_req_range(key, NULL, 0, 0);
    json_t *op = json_object();
    if (!r || !op || json_object_set_new(op, "request_range", r)) {
        json_decref(op);
        return NULL;
    }
    return op;
}

json_t *etcd_req_txn(const etcd_cmp *cmps, size_t ncmp, json_t *success, json_t *failure)
{
    json_t *txn = json_object();
    json_t *cmp = json_array();
    int bad = !txn || !cmp;
    for (size_t i = 0; !bad && i < ncmp; i++) {
        json_t *c = json_object();
        bad = !c || set_b64(c, "key", cmps[i].key, strlen(cmps[i].key)) ||
              json_object_set_new(c, "result", json_string("EQUAL")) ||
              json_object_set_new(c, "target", json_string(cmps[i].target == ETCD_CMP_CREATE ? "CREATE" : "LEASE")) ||
              set_i64(c, cmps[i].target == ETCD_CMP_CREATE ? "create_revision" : "lease", cmps[i].value);
        if (json_array_append_new(cmp, c))
            bad = 1;
    }
    if (!bad)
        bad = json_object_set_new(txn, "compare", cmp) != 0;
    else
        json_decref(cmp);
    if (!bad && success)
        bad = json_object_set(txn, "success", success) != 0;
    if (!bad && failure)
        bad = json_object_set(txn, "failure", failure) != 0;
    json_decref(success);
    json_decref(failure);
    if (bad) {
        json_decref(txn);
        return NULL;
    }
    return txn;
}

void etcd_kv_clear(etcd_kv *kv)
{
    free(kv->key);
    if (kv->value)
        secure_free(kv->value, kv->len + 1);
    memset(kv, 0, sizeof(*kv));
}

int etcd_kv_parse(json_t *obj, etcd_kv *kv)
{
    memset(kv, 0, sizeof(*kv));
    const char *k = json_string_value(json_object_get(obj, "key"));
    if (!k)
        return -1;
    size_t klen;
    if (etcd_b64_decode(k, (unsigned char **)&kv->key, &klen) || strlen(kv->key) != klen) {
        etcd_kv_clear(kv);
        return -1;
    }
    json_t *v = json_object_get(obj, "value");
    if (json_is_string(v)) {
        if (etcd_b64_decode(json_string_value(v), &kv->value, &kv->len)) {
            etcd_kv_clear(kv);
            return -1;
        }
    } else if (!(kv->value = calloc(1, 1))) {
        /* The gateway leaves an empty value out (and every value, with
         * keys_only: the caller knows which it asked for). */
        etcd_kv_clear(kv);
        return -1;
    }
    kv->create_revision = etcd_int(obj, "create_revision");
    kv->mod_revision = etcd_int(obj, "mod_revision");
    kv->lease = etcd_int(obj, "lease");
    return 0;
}

json_t *etcd_resp_kvs(json_t *range_answer)
{
    json_t *kvs = json_object_get(range_answer, "kvs");
    return json_is_array(kvs) && json_array_size(kvs) ? kvs : NULL;
}

json_t *etcd_txn_range(json_t *txn_answer, size_t n)
{
    json_t *rs = json_object_get(txn_answer, "responses");
    return json_object_get(json_array_get(rs, n), "response_range");
}

int etcd_txn_succeeded(json_t *txn_answer)
{
    return json_is_true(json_object_get(txn_answer, "succeeded"));
}

int64_t etcd_revision(json_t *answer)
{
    return etcd_int(json_object_get(answer, "header"), "revision");
}

const char *etcd_error_text(json_t *answer)
{
    const char *s = json_string_value(json_object_get(answer, "error"));
    if (!s)
        s = json_string_value(json_object_get(answer, "message"));
    return s;
}
