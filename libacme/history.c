/* Challenge history: one small record per identifier and one tally (see
 * history.h for the contract, doc/storage.md for the layout).
 *
 * Why not one file: it used to be history/challenges.json holding every
 * identifier ever seen, parsed and rewritten whole on every issuance; at
 * 1,000 certificates that was half of all instructions (issue 12). Now a
 * lookup reads one record (and the tally when the name is new) and a
 * record writes two small objects, whatever the number of names. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "history.h"
#include "buf.h"
#include "crypto.h"
#include "util.h"

#define TALLY_REL "history/all.json"
#define LEGACY_REL "history/challenges.json"
#define RECORD_CAP (64 * 1024)
#define LEGACY_CAP (4 * 1024 * 1024)
/* base64url's alphabet, in the order the sweep visits the buckets. */
static const char BUCKETS[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Identifiers are case-insensitive (DNS names) and come as "name" or
 * "*.name": one record for "Example.COM" and "example.com". */
static char *folded(const char *ident)
{
    char *s = strdup(ident);
    if (s)
        for (char *p = s; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    return s;
}

char *history_key(const char *ident)
{
    char *f = folded(ident), *h = NULL, *key = NULL;
    if (f && sha256_b64url(f, strlen(f), &h) == 0)
        key = xasprintf("history/id/%c/%s.json", h[0], h);
    free(f);
    free(h);
    return key;
}

static void save(acme_client *c, const char *rel, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    /* Advisory data: no fsync (losing the last record costs nothing). */
    if (text)
        store_put(c, rel, text, strlen(text), ACME_STORAGE_NO_SYNC);
    result_reset(c);
    free(text);
}

static void bump(json_t *scores, const char *type, int ok)
{
    json_int_t n = json_integer_value(json_object_get(scores, type)) + (ok ? 1 : -1);
    json_object_set_new(scores, type, json_integer(n));
}

static json_t *scores_of(json_t *rec)
{
    json_t *s = json_object_get(rec, "s");
    if (!json_is_object(s)) {
        s = json_object();
        json_object_set_new(rec, "s", s);
    }
    return s;
}

static int stale(json_t *rec, int64_t now)
{
    json_t *t = json_object_get(rec, "t");
    return !json_is_integer(t) || now - (int64_t)json_integer_value(t) > HISTORY_MAX_AGE_S;
}

/* The one-time move from the single legacy file: every identifier becomes
 * a record, "*" becomes the tally, the old file goes. Bounded by the cap
 * the old reader had; runs only while no tally exists. */
static json_t *migrate_legacy(acme_client *c, int64_t now)
{
    json_t *old = store_get_advice(c, LEGACY_REL, LEGACY_CAP);
    if (!old)
        return NULL;
    json_t *tally = json_object();
    const char *ident;
    json_t *scores;
    json_object_foreach(old, ident, scores) {
        if (!json_is_object(scores))
            continue;
        if (strcmp(ident, "*") == 0) {
            json_object_set(tally, "s", scores);
            continue;
        }
        char *key = history_key(ident);
        if (!key)
            continue;
        json_t *rec = json_pack("{s:s, s:I, s:O}", "i", ident, "t", (json_int_t)now, "s", scores);
        if (rec)
            save(c, key, rec);
        json_decref(rec);
        free(key);
    }
    json_object_set_new(tally, "t", json_integer(now));
    save(c, TALLY_REL, tally);
    store_remove(c, LEGACY_REL);
    result_reset(c);
    json_decref(old);
    return tally;
}

/* *migrated says the legacy file was moved just now, so a record that was
 * missing a moment ago may exist. */
static json_t *tally_load(acme_client *c, int64_t now, int *migrated)
{
    json_t *t = store_get_advice(c, TALLY_REL, RECORD_CAP);
    if (!t && (t = migrate_legacy(c, now)) != NULL && migrated)
        *migrated = 1;
    return t ? t : json_object();
}

/* ident's record if it exists, is ident's (not a hash collision or a
 * planted file) and is fresh; else NULL. */
static json_t *record_load(acme_client *c, const char *key, const char *ident, int64_t now)
{
    json_t *rec = store_get_advice(c, key, RECORD_CAP);
    if (!rec)
        return NULL;
    const char *who = json_string_value(json_object_get(rec, "i"));
    if (!who || strcasecmp(who, ident) != 0 || stale(rec, now)) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

json_t *history_scores_at(acme_client *c, const char *ident, int64_t now)
{
    char *key = history_key(ident);
    json_t *rec = key ? record_load(c, key, ident, now) : NULL;
    if (!rec) {
        int migrated = 0;
        rec = tally_load(c, now, &migrated);
        json_t *own = migrated && key ? record_load(c, key, ident, now) : NULL;
        if (own) {
            json_decref(rec);
            rec = own;
        }
    }
    free(key);
    json_t *s = json_incref(scores_of(rec));
    json_decref(rec);
    return s;
}

json_t *history_scores(acme_client *c, const char *ident)
{
    return history_scores_at(c, ident, (int64_t)time(NULL));
}

struct sweep_ctx {
    acme_client *c;
    int64_t now;
    size_t seen, removed;
};

static int sweep_one(void *ud, const char *rel)
{
    struct sweep_ctx *s = ud;
    s->seen++;
    json_t *rec = store_get_advice(s->c, rel, RECORD_CAP);
    /* Unreadable records are dead weight too. */
    if (!rec || stale(rec, s->now)) {
        store_remove(s->c, rel);
        result_reset(s->c);
        s->removed++;
    }
    json_decref(rec);
    return 0;
}

/* Keep storage bounded: at most once an hour, one bucket (1/64 of the
 * records) is read and its stale records removed, so every record is
 * looked at within 64 hours and an identifier no longer managed leaves
 * after HISTORY_MAX_AGE_S. The tally remembers where the sweep is. */
static void sweep_maybe(acme_client *c, json_t *tally, int64_t now)
{
    json_t *at = json_object_get(tally, "swept");
    if (json_is_integer(at) && now - (int64_t)json_integer_value(at) < HISTORY_SWEEP_EVERY_S)
        return;
    size_t next = (size_t)json_integer_value(json_object_get(tally, "bucket")) % (sizeof BUCKETS - 1);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "history/id/%c/", BUCKETS[next]);
    struct sweep_ctx s = {c, now, 0, 0};
    store_list(c, prefix, sweep_one, &s);
    result_reset(c);
    json_object_set_new(tally, "swept", json_integer(now));
    json_object_set_new(tally, "bucket", json_integer((json_int_t)((next + 1) % (sizeof BUCKETS - 1))));
}

void history_record_at(acme_client *c, const char *ident, const char *type, int ok, int64_t now)
{
    char *key = history_key(ident);
    if (!key)
        return;
    /* The tally first: on the first run after an upgrade it migrates the
     * legacy file, which must not overwrite the record written below. */
    json_t *tally = tally_load(c, now, NULL);
    json_t *rec = record_load(c, key, ident, now);
    if (!rec)
        rec = json_pack("{s:s}", "i", ident);
    if (rec) {
        bump(scores_of(rec), type, ok);
        json_object_set_new(rec, "t", json_integer(now));
        save(c, key, rec);
        json_decref(rec);
    }
    free(key);

    bump(scores_of(tally), type, ok);
    json_object_set_new(tally, "t", json_integer(now));
    sweep_maybe(c, tally, now);
    save(c, TALLY_REL, tally);
    json_decref(tally);
}

void history_record(acme_client *c, const char *ident, const char *type, int ok)
{
    history_record_at(c, ident, type, ok, (int64_t)time(NULL));
}
