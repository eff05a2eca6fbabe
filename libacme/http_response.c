/* The HTTP response a transport fills in, and the readers the protocol
 * layer uses on it: header lookup, Link (RFC 8288) and Retry-After.
 *
 * Everything here treats the server as hostile: header count and size are
 * capped (HTTP_MAX_HEADERS, HTTP_MAX_HEADER_BYTES), the body is capped by
 * body.limit, and the parsers never read past the NUL of a stored value. */
#include "http.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <acme/error.h>

#include "util.h"

/* A transport's message is for a log line; a server-influenced string
 * (curl's error buffer can quote the peer) must not grow without bound. */
#define HTTP_MAX_ERROR_BYTES 1024

void http_response_init(acme_http_response *r, size_t body_limit)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->body, body_limit);
}

void http_response_clear(acme_http_response *r)
{
    size_t limit = r->body.limit;
    for (size_t i = 0; i < r->header_count; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->error);
    buf_clear(&r->body);
    http_response_init(r, limit);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 tchar: the characters allowed in a header name or a token. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Trim optional whitespace and stray CR/LF (a transport may hand us the raw
 * line end) from both ends of [*p, *p + *len). */
static void trim(const char **p, size_t *len)
{
    const char *s = *p;
    size_t n = *len;
    while (n && (is_ows(*s) || *s == '\r' || *s == '\n')) {
        s++;
        n--;
    }
    while (n && (is_ows(s[n - 1]) || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    *p = s;
    *len = n;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static size_t header_capacity(size_t count)
{
    size_t c = 8;
    while (c < count)
        c *= 2;
    return c > HTTP_MAX_HEADERS ? HTTP_MAX_HEADERS : c;
}

ACME_EXPORT int acme_http_response_set_status(acme_http_response *resp, int status)
{
    /* RFC 9110 §15: a status code is three digits. */
    if (!resp || status < 100 || status > 999)
        return ACME_E_INVALID_ARG;
    resp->status = status;
    return ACME_OK;
}

ACME_EXPORT int acme_http_response_add_header(acme_http_response *resp,
                                              const char *name, size_t name_len,
                                              const char *value, size_t value_len)
{
    if (!resp || (!name && name_len) || (!value && value_len))
        return ACME_E_INVALID_ARG;
    if (!value)
        value = "";
    trim(&name, &name_len);
    trim(&value, &value_len);

    /* Checked before anything is copied, so a flood of headers costs the
     * server its bandwidth, not our memory. */
    if (resp->header_count >= HTTP_MAX_HEADERS)
        return ACME_E_TOO_LARGE;
    if (name_len > HTTP_MAX_HEADER_BYTES || value_len > HTTP_MAX_HEADER_BYTES - name_len)
        return ACME_E_TOO_LARGE;

    if (name_len == 0)
        return ACME_E_PROTOCOL;
    for (size_t i = 0; i < name_len; i++)
        if (!is_tchar((unsigned char)name[i]))
            return ACME_E_PROTOCOL;
    /* A NUL would silently truncate the stored C string; a bare CR or LF
     * inside a value is how response-splitting confusions start. */
    for (size_t i = 0; i < value_len; i++)
        if (value[i] == '\0' || value[i] == '\r' || value[i] == '\n')
            return ACME_E_PROTOCOL;

    /* The array has no capacity field: it is implied by the count (8,
     * doubling, clamped to the cap), so grow exactly when it is full. */
    size_t have = resp->header_count ? header_capacity(resp->header_count) : 0;
    if (resp->header_count == have) {
        size_t want = have ? have * 2 : 8;
        if (want > HTTP_MAX_HEADERS)
            want = HTTP_MAX_HEADERS;
        http_header *h = realloc(resp->headers, want * sizeof(*h));
        if (!h)
            return ACME_E_NOMEM;
        resp->headers = h;
    }
    char *n = dup_n(name, name_len);
    char *v = dup_n(value, value_len);
    if (!n || !v) {
        free(n);
        free(v);
        return ACME_E_NOMEM;
    }
    resp->headers[resp->header_count].name = n;
    resp->headers[resp->header_count].value = v;
    resp->header_count++;
    return ACME_OK;
}

ACME_EXPORT int acme_http_response_append_body(acme_http_response *resp,
                                               const void *data, size_t len)
{
    if (!resp || (!data && len))
        return ACME_E_INVALID_ARG;
    if (!len)
        return ACME_OK;
    /* buf_append refuses before copying, so a body over the cap is never
     * partly stored; the caller stops reading on ACME_E_TOO_LARGE. */
    return buf_append(&resp->body, data, len);
}

ACME_EXPORT int acme_http_response_set_error(acme_http_response *resp, const char *msg)
{
    if (!resp)
        return ACME_E_INVALID_ARG;
    char *copy = NULL;
    if (msg) {
        size_t n = strlen(msg);
        if (n > HTTP_MAX_ERROR_BYTES) {
            n = HTTP_MAX_ERROR_BYTES;
            /* Do not cut a UTF-8 sequence in half. */
            while (n && ((unsigned char)msg[n] & 0xC0) == 0x80)
                n--;
        }
        copy = dup_n(msg, n);
        if (!copy)
            return ACME_E_NOMEM;
    }
    free(resp->error);
    resp->error = copy;
    return ACME_OK;
}

const char *http_response_header(const acme_http_response *r, const char *name)
{
    if (!r || !name)
        return NULL;
    /* Values were trimmed when they were added. */
    for (size_t i = 0; i < r->header_count; i++)
        if (ascii_casecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* ---- Link (RFC 8288 §3) ----
 *
 *   Link       = #link-value
 *   link-value = "<" URI-Reference ">" *( OWS ";" OWS link-param )
 *   link-param = token BWS [ "=" BWS ( token / quoted-string ) ]
 *
 * A URI may itself contain ',' and ';', and a quoted-string may contain
 * anything, so the header is walked with a small scanner instead of being
 * split on commas. A malformed link-value is skipped up to the next
 * top-level comma; the rest of the header still counts. */

static const char *skip_ows(const char *p)
{
    while (is_ows(*p))
        p++;
    return p;
}

/* Advance past the current link-value to the comma that ends it (or NUL). */
static const char *skip_link_value(const char *p)
{
    int in_uri = 0, in_quote = 0;
    for (; *p; p++) {
        if (in_quote) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_quote = 0;
        } else if (in_uri) {
            if (*p == '>')
                in_uri = 0;
        } else if (*p == '"') {
            in_quote = 1;
        } else if (*p == '<') {
            in_uri = 1;
        } else if (*p == ',') {
            break;
        }
    }
    return p;
}

/* Parse a token or quoted-string at *pp into out (unescaped). 0 on success,
 * -1 if malformed, or an ACME error from the buffer. */
static int parse_param_value(const char **pp, acme_buf *out)
{
    const char *p = *pp;
    int rc;
    if (*p == '"') {
        p++;
        for (;;) {
            if (!*p)
                return -1; /* unterminated */
            if (*p == '"')
                break;
            if (*p == '\\') {
                p++;
                if (!*p)
                    return -1;
            }
            if ((rc = buf_append(out, p, 1)) != ACME_OK)
                return rc;
            p++;
        }
        p++;
    } else {
        const char *s = p;
        while (is_tchar((unsigned char)*p))
            p++;
        if (p == s)
            return -1;
        if ((rc = buf_append(out, s, (size_t)(p - s))) != ACME_OK)
            return rc;
    }
    *pp = p;
    return 0;
}

/* rel is a space-separated list of relation types (§3.3); relation types
 * compare case-insensitively (§2.1). */
static int rel_list_has(const char *list, const char *want)
{
    size_t wlen = strlen(want);
    const char *p = list;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return 0;
        const char *s = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if ((size_t)(p - s) == wlen && ascii_ncasecmp(s, want, wlen) == 0)
            return 1;
    }
}

static int push_url(char ***urls, size_t *count, size_t *cap, const char *s, size_t n)
{
    if (*count == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        char **u = realloc(*urls, nc * sizeof(*u));
        if (!u)
            return ACME_E_NOMEM;
        *urls = u;
        *cap = nc;
    }
    char *d = dup_n(s, n);
    if (!d)
        return ACME_E_NOMEM;
    (*urls)[(*count)++] = d;
    return ACME_OK;
}

/* Scan one Link header value, appending matching targets. */
static int scan_link_header(const char *p, const char *rel,
                            char ***urls, size_t *count, size_t *cap)
{
    acme_buf val;
    buf_init(&val, 0);
    int rc = ACME_OK;

    for (;;) {
        while (is_ows(*p) || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p != '<') {
            p = skip_link_value(p);
            continue;
        }
        const char *uri = p + 1;
        const char *gt = strchr(uri, '>');
        if (!gt)
            break; /* no target can follow an unterminated one */
        size_t uri_len = (size_t)(gt - uri);
        p = gt + 1;

        int bad = 0, seen_rel = 0, match = 0;
        for (;;) {
            p = skip_ows(p);
            if (*p == ',' || !*p)
                break;
            if (*p != ';') {
                bad = 1;
                break;
            }
            p = skip_ows(p + 1);
            const char *name = p;
            while (is_tchar((unsigned char)*p))
                p++;
            size_t name_len = (size_t)(p - name);
            if (name_len == 0) {
                /* Tolerate an empty parameter ("<u>; ; rel=x") and a
                 * trailing ';' as some servers emit them. */
                continue;
            }
            p = skip_ows(p);
            val.len = 0;
            int has_value = 0;
            if (*p == '=') {
                p = skip_ows(p + 1);
                int r = parse_param_value(&p, &val);
                if (r < 0) {
                    bad = 1;
                    break;
                }
                if (r > 0) {
                    rc = r;
                    goto out;
                }
                has_value = 1;
            }
            /* Only the first rel counts (§3.3). */
            if (name_len == 3 && ascii_ncasecmp(name, "rel", 3) == 0 && !seen_rel) {
                seen_rel = 1;
                match = has_value && val.data && rel_list_has(val.data, rel);
            }
        }
        if (bad) {
            p = skip_link_value(p);
            continue;
        }
        if (match && (rc = push_url(urls, count, cap, uri, uri_len)) != ACME_OK)
            goto out;
    }
out:
    buf_clear(&val);
    return rc;
}

int http_response_links(const acme_http_response *r, const char *rel,
                        char ***urls, size_t *count)
{
    if (!r || !rel || !urls || !count)
        return ACME_E_INVALID_ARG;
    *urls = NULL;
    *count = 0;
    size_t cap = 0;
    /* Several Link headers are the same as one joined with commas. */
    for (size_t i = 0; i < r->header_count; i++) {
        if (ascii_casecmp(r->headers[i].name, "Link") != 0)
            continue;
        int rc = scan_link_header(r->headers[i].value, rel, urls, count, &cap);
        if (rc != ACME_OK) {
            http_links_free(*urls, *count);
            *urls = NULL;
            *count = 0;
            return rc;
        }
    }
    return ACME_OK;
}

void http_links_free(char **urls, size_t count)
{
    if (!urls)
        return;
    for (size_t i = 0; i < count; i++)
        free(urls[i]);
    free(urls);
}

/* ---- Retry-After (RFC 9110 §10.2.3) ----
 *
 *   Retry-After = HTTP-date / delay-seconds
 *
 * HTTP-date is IMF-fixdate; recipients must also accept the two obsolete
 * forms (§5.6.7), which are cheap to add. Parsed by hand rather than with
 * strptime because %a/%b follow the process locale, which a host may have
 * set to anything. */

static const char *const month_names[12] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};
static const char *const day_names[7] = {
    "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
};
static const char *const day_names_long[7] = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
};

/* Exactly n digits at *pp. */
static int take_digits(const char **pp, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*pp)[i]))
            return -1;
        v = v * 10 + ((*pp)[i] - '0');
    }
    *pp += n;
    *out = v;
    return 0;
}

static int take_lit(const char **pp, const char *lit)
{
    size_t n = strlen(lit);
    if (ascii_ncasecmp(*pp, lit, n) != 0)
        return -1;
    *pp += n;
    return 0;
}

static int take_name(const char **pp, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (take_lit(pp, names[i]) == 0)
            return i;
    return -1;
}

static int take_time(const char **pp, struct tm *tm)
{
    if (take_digits(pp, 2, &tm->tm_hour) || take_lit(pp, ":") ||
        take_digits(pp, 2, &tm->tm_min) || take_lit(pp, ":") ||
        take_digits(pp, 2, &tm->tm_sec))
        return -1;
    return 0;
}

/* Parse an HTTP-date into seconds since the epoch. 0 on success. */
static int parse_http_date(const char *s, time_t now, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = s;
    int mon;

    if (take_name(&p, day_names, 7) >= 0 && *p == ',') {
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        p++;
        if (take_lit(&p, " ") || take_digits(&p, 2, &tm.tm_mday) || take_lit(&p, " ") ||
            (mon = take_name(&p, month_names, 12)) < 0 || take_lit(&p, " ") ||
            take_digits(&p, 4, &tm.tm_year) || take_lit(&p, " ") ||
            take_time(&p, &tm) || take_lit(&p, " GMT"))
            return -1;
        tm.tm_year -= 1900;
    } else if ((p = s, take_name(&p, day_names_long, 7) >= 0) && *p == ',') {
        /* rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT" */
        int yy;
        p++;
        if (take_lit(&p, " ") || take_digits(&p, 2, &tm.tm_mday) || take_lit(&p, "-") ||
            (mon = take_name(&p, month_names, 12)) < 0 || take_lit(&p, "-") ||
            take_digits(&p, 2, &yy) || take_lit(&p, " ") ||
            take_time(&p, &tm) || take_lit(&p, " GMT"))
            return -1;
        /* §5.6.7: a two-digit year more than 50 years ahead means the
         * most recent past year with those digits. */
        struct tm nowtm;
        gmtime_r(&now, &nowtm);
        int cur = nowtm.tm_year + 1900;
        int year = cur - cur % 100 + yy;
        if (year > cur + 50)
            year -= 100;
        tm.tm_year = year - 1900;
    } else if ((p = s, take_name(&p, day_names, 7) >= 0) && *p == ' ') {
        /* asctime-date: "Sun Nov  6 08:49:37 1994" */
        p++;
        if ((mon = take_name(&p, month_names, 12)) < 0 || take_lit(&p, " "))
            return -1;
        if (*p == ' ') {
            p++;
            if (take_digits(&p, 1, &tm.tm_mday))
                return -1;
        } else if (take_digits(&p, 2, &tm.tm_mday)) {
            return -1;
        }
        if (take_lit(&p, " ") || take_time(&p, &tm) || take_lit(&p, " ") ||
            take_digits(&p, 4, &tm.tm_year))
            return -1;
        tm.tm_year -= 1900;
    } else {
        return -1;
    }
    if (*p)
        return -1; /* trailing garbage */
    tm.tm_mon = mon;
    /* 60 admits a leap second; timegm normalises it. */
    if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = t;
    return 0;
}

/* The largest wait we report: 30 days. Longer answers (4294967296,
 * 99999999999999999999, a date in 2100) are clamped here, at the parse,
 * so every caller's arithmetic — milliseconds in a uint64_t, seconds
 * rounded up into an unsigned — stays far from overflow. A CA that means
 * "not for months" is still told apart from "soon". */
#define RETRY_AFTER_MAX_S (30LL * 24 * 3600)

long long http_response_retry_after_ms(const acme_http_response *r)
{
    const char *v = http_response_header(r, "Retry-After");
    if (!v || !*v)
        return -1;

    if (is_digit(*v)) {
        long long secs = 0;
        const char *p = v;
        for (; is_digit(*p); p++) {
            secs = secs * 10 + (*p - '0');
            if (secs > RETRY_AFTER_MAX_S)
                secs = RETRY_AFTER_MAX_S + 1; /* clamp; keep scanning to validate */
        }
        if (*p)
            return -1;
        if (secs > RETRY_AFTER_MAX_S)
            secs = RETRY_AFTER_MAX_S;
        return secs * 1000;
    }

    time_t now = time(NULL);
    time_t when;
    if (parse_http_date(v, now, &when) != 0)
        return -1;
    if (when <= now)
        return 0;
    long long diff = (long long)(when - now);
    if (diff > RETRY_AFTER_MAX_S)
        diff = RETRY_AFTER_MAX_S;
    return diff * 1000;
}

unsigned http_response_retry_after_s(const acme_http_response *r)
{
    long long ms = http_response_retry_after_ms(r);
    /* ms is at most 30 days: the sum and the quotient fit an unsigned. */
    return ms > 0 ? (unsigned)((ms + 999) / 1000) : 0;
}
