/* ACME Renewal Information (RFC 9773): the certificate identifier and
 * the renewalInfo answer. */
#ifndef ACME_ARI_H
#define ACME_ARI_H

#include <stddef.h>
#include <stdint.h>
#include "net.h"

/* base64url(AKI keyIdentifier) "." base64url(serial DER value bytes). */
int ari_cert_id(const char *cert_pem, size_t len, char **out);
/* Prepare the unauthenticated GET of <renewalInfo>/<id>. */
int ari_prepare(http_exchange *x, size_t limit, const char *base_url, const char *id);
/* Read the answer: the suggested window (Unix s) and Retry-After (s, 0 if
 * none). ACME_E_PROTOCOL with a message in *why (malloc'ed) if unusable. */
int ari_parse(const http_exchange *x, int64_t *start, int64_t *end, unsigned *retry_after_s, char **why);
/* A uniformly random point of [start, end] (RFC 9773 §4.2). */
int64_t ari_pick(int64_t start, int64_t end);

#endif
