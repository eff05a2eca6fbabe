/* Failing well with a real CA: the retry schedule after failed orders,
 * kept in storage per set of names so a restart does not start it over,
 * and the reading of a CA's "paused" problem (Let's Encrypt pauses an
 * account for a name after many failed validations in a row). */
#ifndef ACME_BACKOFF_H
#define ACME_BACKOFF_H

#include <stddef.h>
#include <stdint.h>
#include <acme/client.h>

/* Seconds to wait after the n-th failure in a row (n >= 1): min_s, then
 * ten times that, then a hundred times, then max_s from the fourth on,
 * never above max_s. With the defaults (60 s, a day) this is the
 * schedule Let's Encrypt's integration guide recommends: 1 min, 10 min,
 * 100 min, then daily. */
unsigned backoff_delay_s(unsigned failures, unsigned min_s, unsigned max_s);

/* The stored record of one set of names (backoff/<hash>.json). */
typedef struct backoff_rec {
    unsigned failures;     /* failed orders in a row */
    int64_t until;         /* wall clock: no new order before this */
    char *error;           /* the last failure's sentence, or NULL */
} backoff_rec;

/* Load (0 when there is one), save, forget. Never leave an error in the
 * client: the schedule is advice, an unreadable record means none. */
int backoff_load(acme_client *c, const char *const *names, size_t n, backoff_rec *out);
void backoff_save(acme_client *c, const char *const *names, size_t n, const backoff_rec *r);
void backoff_clear(acme_client *c, const char *const *names, size_t n);
void backoff_rec_free(backoff_rec *r);

/* Whether a problem (or one of its subproblems) says the CA paused the
 * account for an identifier. *url: the page to unpause at, when the
 * detail names one (malloc'd, or NULL; url itself may be NULL). */
int backoff_paused(const acme_problem *p, char **url);

/* The sentence for a paused failure (malloc'd). */
char *backoff_paused_sentence(const char *first_name, const char *url);

#endif
