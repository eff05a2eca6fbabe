/* Fuzz target: the dns01 module's settings (modules/dns01/config.c),
 * key=value lines as acmectl's run file or a host hands them over, and
 * the TSIG key file it reads (BIND or Knot syntax, or the bare secret).
 *
 * tsig-secret-file names a file; so that the fuzzer controls its
 * contents instead of probing the file system, the target writes the
 * value of a "tsig-secret-file" line ("\n" for a line break) to a private
 * in-memory file and passes that file's name instead. The resolver is stubbed (no_network.c):
 * server=ns.example fails as "does not resolve", never as a query.
 *
 * Promises checked: a refusal leaves one non-empty line; an accepted
 * configuration has its back end, every number inside its documented
 * range, a TSIG key with a non-empty secret when one was asked for, an
 * https api-url for acme-dns and a command for hook. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dns01.h"
#include "fuzz.h"

#define T "fuzz_dns01_config"

/* The file behind tsig-secret-file: an anonymous in-memory file (nothing
 * touches the disk or is left behind), reached as /proc/self/fd/N. */
static char secret_path[64];
static int secret_fd = -1;

static const char *secret_file(const char *contents)
{
    if (secret_fd < 0) {
        secret_fd = memfd_create("fuzz-dns01-secret", 0);
        if (secret_fd < 0)
            abort();
        snprintf(secret_path, sizeof(secret_path), "/proc/self/fd/%d", secret_fd);
    }
    /* The stored form of a key file: one line per "\n" escape. */
    char buf[8192];
    size_t n = 0;
    for (const char *p = contents; *p && n < sizeof(buf); p++) {
        if (p[0] == '\\' && p[1] == 'n') {
            buf[n++] = '\n';
            p++;
        } else {
            buf[n++] = *p;
        }
    }
    if (ftruncate(secret_fd, (off_t)n) != 0 || pwrite(secret_fd, buf, n, 0) != (ssize_t)n)
        abort();
    return secret_path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    const char *keys[64], *values[64];
    size_t n = fuzz_kv_lines(text, keys, values, 64);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(keys[i], "tsig-secret-file"))
            values[i] = secret_file(values[i]);
    dns01 *d = calloc(1, sizeof(*d));
    if (!d)
        abort();
    char err[512];
    err[0] = '\0';
    int rc = dns01_configure(d, keys, values, n, err, sizeof(err));
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "%s: %s\n", T, rc ? err : "accepted");
    if (rc != ACME_OK) {
        FUZZ_CHECK(T, err[0] && !strpbrk(err, "\r\n"), "a refusal of one line");
    } else {
        FUZZ_CHECK(T, d->backend != NULL, "a back end");
        FUZZ_CHECK(T, d->nameserver_port >= 1 && d->nameserver_port <= 65535, "nameserver-port range");
        FUZZ_CHECK(T, d->query_timeout_ms >= 100 && d->query_timeout_ms <= 60000, "dns-timeout range");
        FUZZ_CHECK(T, d->propagation_timeout_s <= 86400, "propagation-timeout range");
        FUZZ_CHECK(T, d->propagation_interval_ms >= 50 && d->propagation_interval_ms <= 600000,
                   "propagation-interval range");
        FUZZ_CHECK(T, d->ttl <= 604800, "ttl range");
        FUZZ_CHECK(T, d->resolver.salen > 0, "a resolver");
        FUZZ_CHECK(T, d->nameserver_count <= DNS01_MAX_NS, "nameserver count");
        if (d->have_tsig)
            FUZZ_CHECK(T, d->tsig.secret_len > 0 && d->tsig.secret_len <= TSIG_MAX_SECRET, "TSIG secret");
        if (d->kind == DNS01_RFC2136)
            FUZZ_CHECK(T, d->have_primary && d->primary.salen > 0, "rfc2136 has a server");
        if (d->kind == DNS01_ACMEDNS)
            FUZZ_CHECK(T, d->api_url && !strncasecmp(d->api_url, "https://", 8), "acme-dns api-url");
        if (d->kind == DNS01_HOOK)
            FUZZ_CHECK(T, d->command && *d->command, "hook command");
    }
    dns01_config_free(d);
    free(d);
    free(text);
    return 0;
}
