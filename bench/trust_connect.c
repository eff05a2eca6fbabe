/* bench/trust_connect.c — what one fresh connection to the ACME server
 * costs under each way of trusting it (doc/benchmarks.md, "Trust on small
 * devices"). Run by bench/trust_bench.sh under tests/harness/with-pebble.
 *
 *     trust_connect COUNT
 *
 * Each mode opens COUNT fresh connections (a rebuilt transport) and makes
 * one signed request on each, then prints one line:
 * "mode cpu_ms_per_connection wall_ms_per_connection lookups". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <acme/acme.h>

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "trust_connect: cannot open %s\n", path);
        exit(1);
    }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap && !(b = realloc(b, cap *= 2)))
            break;
    }
    fclose(f);
    if (!b)
        exit(1);
    b[n] = '\0';
    return b;
}

static const char *blob;
static int lookups;

static int from_blob(void *ud, const acme_trust_chain *ch, acme_buffer *out)
{
    (void)ud;
    lookups++;
    for (size_t i = 0; i < acme_trust_chain_count(ch); i++) {
        size_t n = 0;
        const unsigned char *akid = acme_trust_chain_akid(ch, i, &n);
        if (akid && acme_trust_blob_find(blob, strlen(blob), akid, n, out) == ACME_OK)
            return ACME_OK;
    }
    return ACME_E_DECLINED;
}

static double now(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

enum { PINNED, LOOKUP_COLD, LOOKUP_WARM, SYSTEM_THEN_LOOKUP, MODES };
static const char *const names[MODES] = {"pinned", "lookup-cold", "lookup-warm", "system+lookup"};

static acme_trust_anchor_ops ops = {.size = sizeof ops, .lookup = from_blob};

/* One client per mode, with an account (made once, not timed), so every
 * timed round is the same work: a new connection (the transport rebuilt)
 * and one acme_account_find (a signed POST; the nonce is kept). */
static acme_client *client(const char *url, int mode, const char *ca, const char *system_bundle)
{
    acme_client *c = NULL;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", getenv("ACME_TEST_TMPDIR"), names[mode]);
    if (acme_client_new(url, &c) != ACME_OK || acme_client_set_storage_dir(c, dir) != ACME_OK)
        exit(1);
    if (mode == PINNED)
        acme_client_set_ca_pem(c, ca, strlen(ca));
    else if (mode == SYSTEM_THEN_LOOKUP)
        acme_client_set_ca_file(c, system_bundle);
    if (mode != PINNED)
        acme_client_set_trust_anchor_lookup(c, &ops, NULL);
    acme_account_params p = {.size = sizeof p, .agree_tos = 1};
    if (acme_account_register(c, &p) != ACME_OK) {
        fprintf(stderr, "%s: %s\n", names[mode], acme_client_last_error(c));
        exit(1);
    }
    return c;
}

int main(int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : 40;
    const char *url = getenv("ACME_TEST_DIRECTORY");
    const char *bundle = getenv("SYSTEM_BUNDLE") ? getenv("SYSTEM_BUNDLE") : "/etc/ssl/certs/ca-certificates.crt";
    if (!url || count <= 0) {
        fprintf(stderr, "usage: trust_connect COUNT (under tests/harness/with-pebble)\n");
        return 1;
    }
    char *ca = slurp(getenv("ACME_TEST_CA_FILE"));
    blob = ca;
    for (int mode = 0; mode < MODES; mode++) {
        acme_client *c = client(url, mode, ca, bundle);
        lookups = 0;
        double c0 = now(CLOCK_PROCESS_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
        for (int i = 0; i < count; i++) {
            if (mode == LOOKUP_COLD || mode == SYSTEM_THEN_LOOKUP)
                acme_client_set_trust_anchor_lookup(c, &ops, NULL); /* forgets the binding */
            else
                acme_client_set_timeouts(c, 0, 0); /* a new connection, the binding stays */
            if (acme_account_find(c) != ACME_OK) {
                fprintf(stderr, "%s: %s\n", names[mode], acme_client_last_error(c));
                return 1;
            }
        }
        double cpu = (now(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e3 / count;
        double wall = (now(CLOCK_MONOTONIC) - w0) * 1e3 / count;
        printf("%s %.3f %.3f %d\n", names[mode], cpu, wall, lookups);
        acme_client_free(c);
    }
    free(ca);
    return 0;
}
