/* Fuzz target: RFC 7807 problem documents (libacme/error.c, as net.c
 * reads every error answer) and renewalInfo answers (libacme/ari.c, RFC
 * 9773), both JSON a CA chooses. The input is the body; for ARI it is
 * also given a Retry-After header taken from its first line.
 *
 * Promises checked: a parsed problem has a type and a detail (maybe
 * empty) and one level of subproblems; the describing line starts with
 * the type; problem_is matches only the ACME namespace; an ARI window that
 * parses does not end before it starts, and a refusal says why. */
#include <string.h>

#include <acme/acme.h>

#include "ari.h"
#include "fuzz.h"
#include "internal.h"
#include "net.h"

#define T "fuzz_problem"

static void check_problem(const acme_problem *p, int depth)
{
    FUZZ_CHECK(T, p->type && p->detail, "type and detail are set");
    FUZZ_CHECK(T, depth == 0 || p->sub_count == 0, "subproblems are one level deep");
    for (size_t i = 0; i < p->sub_count; i++)
        check_problem(&p->subs[i], depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    acme_problem *p = problem_parse((const char *)data, size);
    if (p) {
        check_problem(p, 0);
        char *line = problem_describe(p);
        FUZZ_CHECK(T, line && !strncmp(line, p->type, strlen(p->type)), "description starts with the type");
        free(line);
        if (problem_is(p, "badNonce"))
            FUZZ_CHECK(T, !strcmp(p->type, "urn:ietf:params:acme:error:badNonce"), "problem_is namespace");
        (void)problem_is(p, "");
        (void)acme_problem_subproblem(p, p->sub_count);
        problem_free(p);
    }

    /* The same bytes as a renewalInfo answer. */
    http_exchange x;
    memset(&x, 0, sizeof(x));
    http_response_init(&x.resp, 1 << 20);
    x.req.url = "https://ca.invalid/renewal-info/x.y";
    acme_http_response_set_status(&x.resp, 200);
    const uint8_t *nl = memchr(data, '\n', size);
    acme_http_response_add_header(&x.resp, "Retry-After", 11, (const char *)data,
                                  nl ? (size_t)(nl - data) : size);
    acme_http_response_append_body(&x.resp, data, size);
    int64_t start = 0, end = 0;
    unsigned retry = 0;
    char *why = NULL;
    int rc = ari_parse(&x, &start, &end, &retry, &why);
    if (rc == ACME_OK)
        FUZZ_CHECK(T, end >= start, "ARI window order");
    else
        FUZZ_CHECK(T, why && *why, "ARI refusal without a reason");
    free(why);
    http_response_clear(&x.resp);
    return 0;
}
