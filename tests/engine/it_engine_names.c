/* A certificate's names change while a valid one is stored, against real
 * Pebble. The id stays (by default the first name), so without a check
 * the engine would keep serving the old certificate until its renewal
 * point — months with a real CA — and the new name would get nothing.
 *  A. first issuance of nm.example;
 *  B. manage() the same id with nm.example + nm2.example: a new order at
 *     once, installed with both names;
 *  C. a restart with nm.example + nm3.example: the stored certificate is
 *     installed at start (it serves meanwhile), then one for the new names;
 *  D. a restart with the same names as stored: nothing is ordered. */
#include <stdio.h>
#include <string.h>
#include "etest.h"

static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};

static acme_engine *start(etest_host *h, const char *dir, acme_client **c)
{
    *c = etest_client(h, dir);
    itest_register(*c, NULL);
    return etest_engine(*c, h, 2, 1, 0);
}

static void stop(etest_host *h, acme_engine *e, acme_client *c)
{
    acme_engine_free(e);
    acme_client_free(c);
    h->engine = NULL;
}

int main(void)
{
    itest_init("it_engine_names");
    etest_watchdog(280);

    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    etest_host h;
    etest_host_init(&h, &set);
    h.quiet = 1;
    char *dir = itest_fresh_dir("names");
    const char *id = "nm.example";

    /* ---- A ---------------------------------------------------------------- */
    acme_client *c;
    acme_engine *e = start(&h, dir, &c);
    const char *one[] = {"nm.example"};
    CHECK_OK(c, etest_manage(e, one, 1, http, 1, NULL));
    size_t want = 1;
    CHECK_MSG(NULL, etest_drive(&h, e, etest_until_installs, &want, 60000, NULL), "A: not installed");
    etest_check_installed(&h, id, one, 1);
    itest_log("ok: A. %s issued", id);

    /* ---- B ---------------------------------------------------------------- */
    size_t lines = h.line_count;
    const char *two[] = {"nm.example", "nm2.example"};
    double t0 = etest_now();
    CHECK_OK(c, etest_manage(e, two, 2, http, 1, NULL));
    want = 2;
    if (!etest_drive(&h, e, etest_until_installs, &want, 60000, NULL)) {
        etest_dump_log(&h, 40);
        CHECK_MSG(NULL, 0, "B: the new names were not ordered (%zu installs)", h.install_count);
    }
    etest_check_installed(&h, id, two, 2);
    CHECK_MSG(NULL, etest_count_lines(&h, lines, "engine: ordering nm.example") == 1, "B: %zu orders",
              etest_count_lines(&h, lines, "engine: ordering nm.example"));
    CHECK_MSG(NULL, etest_count_lines(&h, lines, "the names changed") == 1, "B: no sentence about the change");
    itest_log("ok: B. names changed: ordered at once, installed with both names in %.1f s", etest_now() - t0);
    /* The engine is idle again: no second order for the same names. */
    CHECK_MSG(NULL, etest_drive(&h, e, etest_until_idle, NULL, 30000, NULL), "B: not idle");
    CHECK_MSG(NULL, etest_count_lines(&h, lines, "engine: ordering nm.example") == 1, "B: ordered again");
    stop(&h, e, c);

    /* ---- C ---------------------------------------------------------------- */
    lines = h.line_count;
    size_t installs = h.install_count;
    const char *three[] = {"nm.example", "nm3.example"};
    e = start(&h, dir, &c);
    CHECK_OK(c, etest_manage(e, three, 2, http, 1, NULL));
    want = installs + 2;
    if (!etest_drive(&h, e, etest_until_installs, &want, 60000, NULL)) {
        etest_dump_log(&h, 40);
        CHECK_MSG(NULL, 0, "C: %zu installs after the restart (want 2)", h.install_count - installs);
    }
    /* First the stored one (nm + nm2) so the name is served at once, then
     * the new one. */
    const itest_cert *stored = &h.installs[installs];
    CHECK_MSG(NULL, stored->name_count == 2 &&
                        (strcmp(stored->names[0], "nm2.example") == 0 || strcmp(stored->names[1], "nm2.example") == 0),
              "C: the first install after the restart is not the stored certificate");
    etest_check_installed(&h, id, three, 2);
    CHECK_MSG(NULL, etest_count_lines(&h, lines, "ordered for other names") == 1,
              "C: no sentence about the stored certificate's names");
    CHECK_MSG(NULL, etest_count_lines(&h, lines, "engine: ordering nm.example") == 1, "C: %zu orders",
              etest_count_lines(&h, lines, "engine: ordering nm.example"));
    itest_log("ok: C. restart with new names: stored certificate installed, then one for the new names");
    stop(&h, e, c);

    /* ---- D ---------------------------------------------------------------- */
    lines = h.line_count;
    installs = h.install_count;
    e = start(&h, dir, &c);
    CHECK_OK(c, etest_manage(e, three, 2, http, 1, NULL));
    CHECK_MSG(NULL, etest_drive(&h, e, etest_until_idle, NULL, 30000, NULL), "D: not idle");
    CHECK_MSG(NULL, h.install_count == installs + 1, "D: %zu installs (want the stored one)", h.install_count - installs);
    CHECK_MSG(NULL, etest_count_lines(&h, lines, "engine: ordering") == 0, "D: ordered although the names are the same");
    etest_check_installed(&h, id, three, 2);
    itest_log("ok: D. restart with the same names: nothing ordered");
    stop(&h, e, c);

    etest_host_clear(&h);
    itest_responders_stop(&set);
    free(dir);
    itest_log("PASS");
    return 0;
}
