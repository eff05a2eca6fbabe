/* bench/metrics_cost.c — what one scrape costs the engine's loop: for N
 * managed certificates, the CPU time of acme_engine_metrics() against the
 * peer every host already pays after its steps, acme_engine_status_json()
 * (status-file, mod_acme's status page). No CA: the certificates are
 * declared, not issued; both calls read the same entries.
 *
 *   metrics_cost STATE_DIR N ROUNDS   prints "N status_us metrics_us bytes"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <acme/acme.h>

static double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: metrics_cost STATE_DIR N ROUNDS\n");
        return 2;
    }
    size_t n = strtoul(argv[2], NULL, 10), rounds = strtoul(argv[3], NULL, 10);
    acme_client *c = NULL;
    acme_engine *e = NULL;
    if (acme_client_new("https://ca.invalid/dir", &c) || acme_client_set_storage_dir(c, argv[1]) ||
        acme_engine_new(c, NULL, &e)) {
        fprintf(stderr, "metrics_cost: set-up failed\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        char name[64], alt[64];
        snprintf(name, sizeof name, "host%06zu.bench.example", i);
        snprintf(alt, sizeof alt, "www.host%06zu.bench.example", i);
        const char *names[] = {name, alt};
        acme_issue_params p = {.size = sizeof p, .names = names, .name_count = 2};
        if (acme_engine_manage(e, &p) != ACME_OK) {
            fprintf(stderr, "metrics_cost: manage failed: %s\n", acme_client_last_error(c));
            return 1;
        }
    }
    size_t bytes = 0;
    double t0 = cpu_us();
    for (size_t r = 0; r < rounds; r++)
        if (!acme_engine_status_json(e))
            return 1;
    double status_us = (cpu_us() - t0) / (double)rounds;
    t0 = cpu_us();
    for (size_t r = 0; r < rounds; r++) {
        acme_buffer *b = acme_buffer_new();
        if (!b || acme_engine_metrics(e, b) != ACME_OK)
            return 1;
        bytes = acme_buffer_len(b);
        acme_buffer_free(b);
    }
    double metrics_us = (cpu_us() - t0) / (double)rounds;
    printf("%zu %.1f %.1f %zu\n", n, status_us, metrics_us, bytes);
    acme_engine_free(e);
    acme_client_free(c);
    return 0;
}
