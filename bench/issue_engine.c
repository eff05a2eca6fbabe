/* issue_engine — libacme, concurrent: one process, one client, one account,
 * an engine (include/acme/engine.h) managing COUNT single-name certificates,
 * driven by acme_engine_perform() until idle (http-01 published into a
 * webroot, as the peer clients do).
 *
 *   issue_engine -d DIRECTORY_URL -c CA_FILE -s STATE_DIR -w WEBROOT
 *                -o OUT_DIR -n COUNT -p PREFIX [-j MAX_ORDERS] [-v]
 *
 * Prints "issued=N failed=M seconds=S longest_step_us=U". Exit 0 only if
 * every certificate is valid. Bounded: perform gets at most 600 s.
 * Used by bench/issuance_bench.sh. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "issue_common.h"

#include <jansson.h>

#include <acme/engine.h>

#define PERFORM_BOUND_MS 600000

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse(argc, argv, &o, 1);
    double t0 = bench_now();
    acme_client *c = bench_client(&o, "issue_engine");
    if (!c)
        return 1;
    acme_engine_options eo;
    memset(&eo, 0, sizeof(eo));
    eo.size = sizeof(eo);
    eo.max_orders = (unsigned)o.jobs;
    acme_engine *e = NULL;
    int rc = acme_engine_new(c, &eo, &e);
    if (rc != ACME_OK) {
        fprintf(stderr, "issue_engine: acme_engine_new: %s\n", acme_strerror(rc));
        acme_client_free(c);
        return 1;
    }
    for (int i = 0; i < o.count; i++) {
        acme_issue_params ip;
        bench_fill_params(&ip, (const char *const *)&o.names[i]);
        rc = acme_engine_manage(e, &ip);
        if (rc != ACME_OK) {
            fprintf(stderr, "issue_engine: manage %s: %s (%s)\n", o.names[i], acme_strerror(rc),
                    acme_client_last_error(c));
            acme_engine_free(e);
            acme_client_free(c);
            return 1;
        }
    }
    rc = acme_engine_perform(e, PERFORM_BOUND_MS);
    if (rc != ACME_OK)
        fprintf(stderr, "issue_engine: acme_engine_perform: %s\n", acme_strerror(rc));

    /* Count the states the engine reports. */
    int valid = 0, shown = 0;
    json_error_t jerr;
    json_t *st = json_loads(acme_engine_status_json(e), 0, &jerr);
    size_t idx;
    json_t *item;
    json_array_foreach(st, idx, item) {
        const char *state = json_string_value(json_object_get(item, "state"));
        if (state && strcmp(state, "valid") == 0) {
            valid++;
        } else if (shown++ < 5) {
            const char *err = json_string_value(json_object_get(item, "last_error"));
            fprintf(stderr, "issue_engine: %s: %s (%s)\n",
                    json_string_value(json_object_get(item, "id")), state ? state : "?",
                    err ? err : "");
        }
    }
    json_decref(st);
    unsigned long long longest = (unsigned long long)acme_engine_longest_step_us(e);
    acme_engine_free(e);
    acme_client_free(c);
    printf("issued=%d failed=%d seconds=%.3f longest_step_us=%llu\n", o.installed,
           o.count - valid, bench_now() - t0, longest);
    return (rc == ACME_OK && valid == o.count && o.installed == o.count) ? 0 : 1;
}
