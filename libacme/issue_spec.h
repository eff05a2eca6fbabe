/* The issue spec: what to order for one certificate, validated once.
 *
 * acme_issue_params is the host's view (borrowed pointers, a size to
 * check); the stored "params" object of certs/<id>/cert.json is what a
 * renewal reads back. Both become one issue_spec, checked by one
 * function with the sentences acme_issue has always given; the order
 * driver and the engine then only ever read a spec, never re-parse. A
 * spec is immutable and reference counted, so the engine can re-declare
 * a certificate while one of its orders still runs on the old spec. */
#ifndef ACME_ISSUE_SPEC_H
#define ACME_ISSUE_SPEC_H

#include <stddef.h>
#include <jansson.h>
#include <acme/client.h>

#define ISSUE_SPEC_MAX_PREFS 8

typedef struct issue_spec {
    char **names;
    size_t name_count;
    acme_key_type key_type;                        /* never ACME_KEY_DEFAULT */
    acme_challenge_type prefs[ISSUE_SPEC_MAX_PREFS];
    size_t pref_count;
    char *preferred_chain;                         /* or NULL */
    char *profile;                                 /* or NULL */
    char *cert_id;                                 /* never NULL */
    unsigned refs;
} issue_spec;

/* Validate the host's params. On failure the client's last error says
 * which mistake it is and NULL is returned (*rc the code). */
issue_spec *issue_spec_new(struct acme_client *c, const acme_issue_params *p, int *rc);
/* The spec a stored certificate was ordered with (its "params"; a host
 * storage that kept none gives the certificate's own names). Validated
 * like issue_spec_new. */
issue_spec *issue_spec_from_stored(struct acme_client *c, const acme_certificate *cert, int *rc);
/* The stored form ("params" of cert.json: how it was ordered, so renewal
 * can do it again), a new reference; NULL when out of memory. Built when a
 * certificate is stored, not kept: as a JSON tree it would be about half
 * of what the engine holds per managed certificate. */
json_t *issue_spec_stored_form(const issue_spec *s);
/* The same spec asking for another profile (a renewal keeps the profile
 * the certificate was issued under when the host names none). */
issue_spec *issue_spec_with_profile(struct acme_client *c, const issue_spec *s, const char *profile, int *rc);
issue_spec *issue_spec_ref(issue_spec *s);
void issue_spec_free(issue_spec *s);

#endif
