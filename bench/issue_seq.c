/* issue_seq — libacme, sequential: one process, one client, one account,
 * then acme_issue() for COUNT single-name certificates, one after another
 * (http-01 published into a webroot, as the peer clients do).
 *
 *   issue_seq -d DIRECTORY_URL -c CA_FILE -s STATE_DIR -w WEBROOT -o OUT_DIR
 *             -n COUNT -p PREFIX [-v]
 *
 * Prints "issued=N failed=M seconds=S". Exit 0 only if all were issued.
 * Used by bench/issuance_bench.sh. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "issue_common.h"

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse(argc, argv, &o, 0);
    double t0 = bench_now();
    acme_client *c = bench_client(&o, "issue_seq");
    if (!c)
        return 1;
    int failed = 0;
    for (int i = 0; i < o.count; i++) {
        acme_issue_params ip;
        bench_fill_params(&ip, (const char *const *)&o.names[i]);
        int rc = acme_issue(c, &ip);
        if (rc != ACME_OK) {
            if (failed++ < 5)
                fprintf(stderr, "issue_seq: %s: %s (%s)\n", o.names[i], acme_strerror(rc),
                        acme_client_last_error(c));
        }
    }
    acme_client_free(c);
    printf("issued=%d failed=%d seconds=%.3f\n", o.installed, failed, bench_now() - t0);
    return (failed == 0 && o.installed == o.count) ? 0 : 1;
}
