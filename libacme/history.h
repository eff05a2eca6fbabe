/* Challenge history per CA: which challenge types worked for which
 * identifier, so the order driver tries the likeliest type first
 * (ACME-NOTES section 4: newOrder is rate limited, so guess well).
 *
 * The cost of one lookup or one record is a fixed number of small storage
 * operations whatever the number of identifiers ever seen: one record per
 * identifier, plus one small tally over all of them (doc/storage.md,
 * "history/"). History is advice: every storage failure here is swallowed
 * (the client's last error is left as it was), costing nothing but the
 * order in which types are tried. */
#ifndef LIBACME_HISTORY_H
#define LIBACME_HISTORY_H

#include <stdint.h>
#include <jansson.h>

#include "internal.h"

/* A record not touched for this long is as if it did not exist, and the
 * sweep removes it: longer than any renewal cycle, so a name still
 * managed never ages out. */
#define HISTORY_MAX_AGE_S (400 * 86400)
/* The sweep looks at one of the 64 buckets at most this often. */
#define HISTORY_SWEEP_EVERY_S 3600

/* The scores {"http-01": n, ...} for ident; when ident has none, the tally
 * over every identifier at this CA (a name never seen starts with what
 * worked for the host's other names); an empty object when neither
 * exists. Always a new reference. */
json_t *history_scores(acme_client *c, const char *ident);

/* One more success (ok) or failure of type for ident, and in the tally. */
void history_record(acme_client *c, const char *ident, const char *type, int ok);

/* The same with the clock given (unit tests age records without waiting). */
json_t *history_scores_at(acme_client *c, const char *ident, int64_t now);
void history_record_at(acme_client *c, const char *ident, const char *type, int ok, int64_t now);

/* The storage key of ident's record (malloc'd), e.g.
 * "history/id/Q/Qx3...json": one of 64 buckets by the first character of
 * SHA-256(ident) in base64url. */
char *history_key(const char *ident);

#endif
