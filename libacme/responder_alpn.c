/* tls-alpn-01 (RFC 8737) on the responder engine (responder_io.h).
 *
 * Each connection is one TLS handshake, driven non-blockingly: the
 * validator offers ALPN "acme-tls/1" and names the identifier in SNI; we
 * pick the challenge certificate for that name after the ClientHello,
 * complete the handshake (TLS 1.2 or 1.3), send close_notify and close.
 * What the field learned (ACME-NOTES.md §2–3):
 *  - the handshake must really complete, or the validator sees a timeout;
 *  - no TLS 1.3 session tickets: we never read application data, and
 *    tickets written to a peer that is closing can provoke a RST that
 *    destroys the tail of the exchange;
 *  - anything but acme-tls/1, or an unknown name, is refused with a clean
 *    alert (no_application_protocol, unrecognized_name). */
#include "responder_io.h"

#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include <acme/error.h>

#include "util.h"

#define ACME_TLS_1 "acme-tls/1"
#define ACME_TLS_1_LEN 10
/* Non-fatal handshake results (a warning alert...) are retried at once
 * this many times before giving the connection up. */
#define HANDSHAKE_RETRIES 8

typedef struct alpn_conn {
    acme_responder *r;
    gnutls_session_t session;
    rio_entry *cert;       /* the credentials this handshake uses (a reference) */
    int handshake_done;
    int hello_seen;        /* a whole ClientHello arrived (the engine's head deadline) */
} alpn_conn;

/* ---- names --------------------------------------------------------------- */

/* A DNS name as the table keys it: lower case, no trailing dot. */
static int dns_key(const char *in, char **out)
{
    size_t len = strlen(in);
    if (len && in[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return ACME_E_INVALID_ARG;
    char *k = malloc(len + 1);
    if (!k)
        return ACME_E_NOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch + 32);
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                 ch == '_' || (ch == '.' && i > 0 && in[i - 1] != '.');
        /* "*" too is refused: RFC 8737 does not validate wildcards. */
        if (!ok) {
            free(k);
            return ACME_E_INVALID_ARG;
        }
        k[i] = (char)ch;
    }
    k[len] = '\0';
    *out = k;
    return ACME_OK;
}

/* The identifier the host adds: a DNS name, or an IP address which
 * RFC 8738 §6 says the validator sends as its reverse-DNS name in SNI. */
static int alpn_make_key(const char *in, char **out)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, in, a) == 1) {
        *out = xasprintf("%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
        return *out ? ACME_OK : ACME_E_NOMEM;
    }
    if (inet_pton(AF_INET6, in, a) == 1) {
        static const char hex[] = "0123456789abcdef";
        char buf[64 + sizeof("ip6.arpa")];
        char *p = buf;
        for (int i = 15; i >= 0; i--) {
            *p++ = hex[a[i] & 0xf];
            *p++ = '.';
            *p++ = hex[a[i] >> 4];
            *p++ = '.';
        }
        memcpy(p, "ip6.arpa", sizeof("ip6.arpa"));
        *out = strdup(buf);
        return *out ? ACME_OK : ACME_E_NOMEM;
    }
    return dns_key(in, out);
}

/* ---- publishing ---------------------------------------------------------- */

static void free_credentials(void *v)
{
    gnutls_certificate_free_credentials(v);
}

int acme_responder_add_tlsalpn01(acme_responder *r, const char *identifier,
                                 const char *cert_pem, const char *key_pem)
{
    if (!r || !identifier || !cert_pem || !key_pem || r->kind != ACME_RESPONDER_TLSALPN01)
        return ACME_E_INVALID_ARG;
    char *key = NULL;
    int rc = alpn_make_key(identifier, &key);
    if (rc != ACME_OK)
        return rc;
    /* Parsed once here, shared read-only by every handshake for this
     * name; the PEM itself is not kept. */
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0) {
        free(key);
        return ACME_E_NOMEM;
    }
    gnutls_datum_t c = { (unsigned char *)cert_pem, (unsigned)strlen(cert_pem) };
    gnutls_datum_t k = { (unsigned char *)key_pem, (unsigned)strlen(key_pem) };
    if (gnutls_certificate_set_x509_key_mem2(cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0) < 0) {
        gnutls_certificate_free_credentials(cred);
        free(key);
        return ACME_E_CRYPTO;
    }
    return rio_table_put(r, key, cred, free_credentials);
}

/* ---- protocol ------------------------------------------------------------ */

static int alpn_init(acme_responder *r)
{
    /* The system's default priorities (so its policy on ciphers and
     * curves still applies), with the versions narrowed to TLS 1.2 and
     * 1.3: the defaults still allow 1.0 and 1.1, which RFC 8737 validators
     * never need. Parsed once per responder, not once per handshake. */
    gnutls_priority_t prio;
    if (gnutls_priority_init2(&prio, "-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", NULL,
                              GNUTLS_PRIORITY_INIT_DEF_APPEND) < 0)
        return ACME_E_CRYPTO;
    r->proto_ctx = prio;
    return ACME_OK;
}

static void alpn_destroy(acme_responder *r)
{
    if (r->proto_ctx)
        gnutls_priority_deinit(r->proto_ctx);
    r->proto_ctx = NULL;
}

/* Runs once the ClientHello is parsed, before the server's answer: the
 * place to refuse, and to choose the certificate by SNI. The error codes
 * returned here become the alert (gnutls_alert_send_appropriate). */
static int on_client_hello(gnutls_session_t session)
{
    alpn_conn *a = gnutls_session_get_ptr(session);
    a->hello_seen = 1;

    /* GNUTLS_ALPN_MANDATORY already refuses a mismatch; a client offering
     * no ALPN at all must be refused too. */
    gnutls_datum_t sel;
    if (gnutls_alpn_get_selected_protocol(session, &sel) < 0 || sel.size != ACME_TLS_1_LEN ||
        memcmp(sel.data, ACME_TLS_1, ACME_TLS_1_LEN) != 0)
        return GNUTLS_E_NO_APPLICATION_PROTOCOL;

    char name[256];
    size_t len = sizeof(name);
    unsigned type = 0;
    if (gnutls_server_name_get(session, name, &len, &type, 0) < 0 || type != GNUTLS_NAME_DNS)
        return GNUTLS_E_UNRECOGNIZED_NAME;
    char *key = NULL;
    if (dns_key(name, &key) != ACME_OK)
        return GNUTLS_E_UNRECOGNIZED_NAME;
    rio_entry *e = rio_table_get(a->r, key);
    free(key);
    if (!e)
        return GNUTLS_E_UNRECOGNIZED_NAME;
    /* A second ClientHello (after HelloRetryRequest) chooses again. */
    rio_entry_release(a->r, a->cert);
    a->cert = e;
    return gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, e->value);
}

static int alpn_open(acme_responder *r, rio_conn *c)
{
    alpn_conn *a = calloc(1, sizeof(*a));
    if (!a)
        return ACME_E_NOMEM;
    a->r = r;
    /* NO_TICKETS: no NewSessionTicket in TLS 1.3 and no ticket extension
     * in TLS 1.2. No session cache is installed either, so there is no
     * resumption at all: every validation gets a full handshake.
     * NO_SIGNAL: a peer gone mid-write must not SIGPIPE the host. */
    if (gnutls_init(&a->session, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL |
                                     GNUTLS_NO_TICKETS) < 0) {
        free(a);
        return ACME_E_NOMEM;
    }
    gnutls_datum_t proto = { (unsigned char *)ACME_TLS_1, ACME_TLS_1_LEN };
    if (gnutls_priority_set(a->session, r->proto_ctx) < 0 ||
        gnutls_alpn_set_protocols(a->session, &proto, 1, GNUTLS_ALPN_MANDATORY) < 0) {
        gnutls_deinit(a->session);
        free(a);
        return ACME_E_CRYPTO;
    }
    gnutls_session_set_ptr(a->session, a);
    gnutls_handshake_set_post_client_hello_function(a->session, on_client_hello);
    gnutls_transport_set_int(a->session, c->fd);
    c->state = a;
    c->want = POLLIN;
    return ACME_OK;
}

static void alpn_close(acme_responder *r, rio_conn *c)
{
    alpn_conn *a = c->state;
    if (!a)
        return;
    /* Session before credentials: the session points into them. */
    gnutls_deinit(a->session);
    rio_entry_release(r, a->cert);
    free(a);
    c->state = NULL;
}

static short direction(gnutls_session_t s)
{
    return gnutls_record_get_direction(s) ? POLLOUT : POLLIN;
}

static int alpn_io(acme_responder *r, rio_conn *c)
{
    (void)r;
    alpn_conn *a = c->state;
    int ret;
    if (!a->handshake_done) {
        for (int tries = 0;; tries++) {
            ret = gnutls_handshake(a->session);
            /* Past the ClientHello the peer is a real client, not an idle
             * connection: from here only the overall deadline applies. */
            c->head_done = a->hello_seen;
            if (ret == GNUTLS_E_SUCCESS)
                break;
            if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
                c->want = direction(a->session);
                return RIO_MORE;
            }
            if (!gnutls_error_is_fatal(ret) && tries < HANDSHAKE_RETRIES)
                continue;
            /* Tell the peer why (no_application_protocol,
             * unrecognized_name, ...). The alert is a few bytes on an
             * empty socket buffer; if it cannot go now it is lost, and the
             * connection is closed all the same. Then close gracefully so
             * a RST does not overtake the alert. */
            gnutls_alert_send_appropriate(a->session, ret);
            return RIO_DONE;
        }
        a->handshake_done = 1;
    }
    /* Validation is the handshake itself: no application data, just
     * close_notify. SHUT_WR: do not wait for the peer's own close_notify
     * (the engine's lingering close reads whatever comes). */
    ret = gnutls_bye(a->session, GNUTLS_SHUT_WR);
    if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
        c->want = direction(a->session);
        return RIO_MORE;
    }
    return ret == GNUTLS_E_SUCCESS ? RIO_DONE : RIO_DROP;
}

const rio_proto rio_alpn_proto = {
    /* Handshakes cost CPU and heap; a small device must not run them all
     * at once. Validators above the bound wait in the accept queue. */
    .default_max_connections = 8,
    .make_key = alpn_make_key,
    .init = alpn_init,
    .destroy = alpn_destroy,
    .open = alpn_open,
    .io = alpn_io,
    .close = alpn_close,
};
