/* ACME Renewal Information (RFC 9773); see ari.h. */
#include "ari.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>

#include <acme/error.h>
#include "b64url.h"
#include "crypto.h"
#include "http.h"
#include "util.h"

int ari_cert_id(const char *cert_pem, size_t len, char **out)
{
    *out = NULL;
    if (!cert_pem || !len || len > 0x7fffffffu)
        return ACME_E_INVALID_ARG;
    /* The certID is one of the facts x509.c reads from the leaf. */
    cert_info *ci = NULL;
    int rc = cert_chain_read(cert_pem, len, 0, NULL, NULL, &ci);
    if (rc == ACME_OK && !ci->ari_id)
        rc = ACME_E_PROTOCOL;
    if (rc == ACME_OK) {
        *out = ci->ari_id;
        ci->ari_id = NULL;
    }
    cert_info_free(ci);
    return rc;
}

int ari_prepare(http_exchange *x, size_t limit, const char *base_url, const char *id)
{
    free(x->url);
    free(x->body);
    x->body = NULL;
    size_t n = strlen(base_url);
    x->url = xasprintf("%s%s%s", base_url, n && base_url[n - 1] == '/' ? "" : "/", id);
    if (!x->url)
        return ACME_E_NOMEM;
    http_response_clear(&x->resp);
    http_response_init(&x->resp, limit);
    x->req = (acme_http_request){ .size = sizeof(acme_http_request), .method = "GET", .url = x->url };
    x->rc = ACME_E_STATE;
    return ACME_OK;
}

/* RFC 3339 as CAs write it: 2025-01-02T04:00:00Z, fractions and offsets allowed. */
static int parse_time(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!p)
        return -1;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
            return -1;
        offset = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    *out = (int64_t)timegm(&tm) - offset;
    return 0;
}

int ari_parse(const http_exchange *x, int64_t *start, int64_t *end, unsigned *retry_after_s, char **why)
{
    *why = NULL;
    *retry_after_s = 0;
    *retry_after_s = http_response_retry_after_s(&x->resp);
    if (x->resp.status != 200) {
        *why = xasprintf("renewalInfo %s answered HTTP %d", x->req.url, x->resp.status);
        return ACME_E_HTTP;
    }
    json_t *o = json_loadb(x->resp.body.data ? x->resp.body.data : "", x->resp.body.len, 0, NULL);
    json_t *w = json_object_get(o, "suggestedWindow");
    int rc = ACME_E_PROTOCOL;
    if (!json_is_object(w) || parse_time(json_string_value(json_object_get(w, "start")), start) ||
        parse_time(json_string_value(json_object_get(w, "end")), end))
        *why = xasprintf("renewalInfo %s: no usable suggestedWindow", x->req.url);
    else if (*end < *start)
        *why = xasprintf("renewalInfo %s: the window ends before it starts", x->req.url);
    else
        rc = ACME_OK;
    json_decref(o);
    return rc;
}

int64_t ari_pick(int64_t start, int64_t end)
{
    if (end <= start)
        return start;
    uint64_t r = 0;
    if (gnutls_rnd(GNUTLS_RND_NONCE, &r, sizeof(r)) < 0)
        r = (uint64_t)time(NULL);
    return start + (int64_t)(r % (uint64_t)(end - start + 1));
}
