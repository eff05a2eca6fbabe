/* Issue 11, item 3: the order lock's contract with a holder that died.
 * A child process runs an engine on the default file storage whose host
 * never finishes publishing, so its order holds the lock
 * "<ca-id>.order.lockme.example" (.locks/ in the state directory). While
 * it lives, acme_issue of the same certificate from this process is
 * refused with ACME_E_LOCKED and a sentence naming the lock. Then the
 * child is killed with SIGKILL (no clean-up at all) and an engine here
 * orders the certificate at once — not after the lease (ACME_LOCK_LEASE_S)
 * — resuming the dead holder's saved order if it got that far. */
#include <dirent.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etest.h"

#define NAME "lockme.example"

static int lock_file_present(const char *dir)
{
    char *locks = itest_printf("%s/.locks", dir);
    DIR *d = opendir(locks);
    free(locks);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".order." NAME) && !strchr(de->d_name, '~'))
            found = 1;
    closedir(d);
    return found;
}

static int never(etest_host *h, void *arg)
{
    (void)h, (void)arg;
    return 0;
}

/* The dead holder's saved order (written once it has one). */
static int order_saved(const char *dir)
{
    char *pat = itest_printf("%s/*/certs/" NAME "/order.json", dir);
    glob_t g;
    int n = glob(pat, 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
    if (n)
        globfree(&g);
    free(pat);
    return n > 0;
}

static void child(const char *dir)
{
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
    etest_host h;
    etest_host_init(&h, NULL);
    h.quiet = 1;
    h.pending_publish = 1;       /* answer PENDING ... */
    h.pending_ms = 3600000;      /* ... and never finish: the order holds its lock */
    acme_client *c = etest_client(&h, dir);
    acme_engine *e = etest_engine(c, &h, 0, 3600, 0);
    if (etest_manage1(e, NAME, http, 1) != ACME_OK)
        _exit(2);
    etest_drive(&h, e, never, NULL, 120000, NULL);
    _exit(3); /* killed long before */
}

int main(void)
{
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
    itest_init("it_engine_lock");
    etest_watchdog(280);
    char *dir = itest_fresh_dir("lock");
    /* The account first, so both processes share it. */
    etest_register_account(dir);
    fflush(NULL);
    pid_t pid = fork();
    CHECK_MSG(NULL, pid >= 0, "fork");
    if (pid == 0) {
        child(dir);
    }
    double t0 = etest_now();
    while (!lock_file_present(dir) && etest_now() - t0 < 60)
        usleep(20000);
    CHECK_MSG(NULL, lock_file_present(dir), "the child never took the order lock");
    /* Let it get to its (never finished) publish: the order is saved first. */
    while (!order_saved(dir) && etest_now() - t0 < 60)
        usleep(20000);
    CHECK_MSG(NULL, order_saved(dir), "the child never saved its order");
    usleep(200000);

    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    etest_host h;
    etest_host_init(&h, &set);
    acme_client *c = etest_client(&h, dir);
    const char *names[] = {NAME};
    acme_issue_params p;
    memset(&p, 0, sizeof(p));
    p.size = sizeof(p);
    p.names = names;
    p.name_count = 1;
    p.challenges = http;
    p.challenge_count = 1;
    /* A live holder: refused, and the sentence says why and what to do. */
    CHECK_CODE(c, acme_issue(c, &p), ACME_E_LOCKED);
    const char *why = acme_client_last_error(c);
    CHECK_MSG(c, why && strstr(why, "another process is ordering") && strstr(why, ".order." NAME),
              "acme_issue's sentence: %s", why ? why : "(none)");

    kill(pid, SIGKILL);
    int status;
    CHECK_MSG(NULL, waitpid(pid, &status, 0) == pid && WIFSIGNALED(status), "the child did not die by SIGKILL");
    /* Its lock file is still there: only its flock died with it. */
    CHECK_MSG(NULL, lock_file_present(dir), "the lock file vanished with the holder");

    size_t from = h.line_count;
    acme_engine *e = etest_engine(c, &h, 0, 3600, 0);
    CHECK_OK(c, etest_manage1(e, NAME, http, 1));
    size_t one = 1;
    etest_drive_stats st;
    double t1 = etest_now();
    int ok = etest_drive(&h, e, etest_until_installs, &one, 60000, &st);
    if (!ok)
        etest_dump_log(&h, 40);
    CHECK_MSG(NULL, ok, "no certificate %.1f s after the holder was killed: %s", etest_now() - t1,
              etest_last_error(e, NAME));
    CHECK_MSG(NULL, etest_count_lines(&h, from, "another process is ordering") == 0,
              "the engine was refused the dead holder's lock");
    CHECK_MSG(NULL, etest_count_lines(&h, from, "resuming the order") == 1,
              "the dead holder's saved order was not resumed");
    etest_check_installed(&h, NAME, names, 1);
    printf("ordered %.2f s after SIGKILL of the holder (lease %u s)\n", etest_now() - t1, ACME_LOCK_LEASE_S);
    etest_drive(&h, e, etest_until_idle, NULL, 20000, NULL);
    acme_engine_free(e);
    /* Released at the end of the order. */
    CHECK_MSG(NULL, !lock_file_present(dir), "the lock is still there after the order ended");
    acme_client_free(c);
    etest_host_clear(&h);
    itest_responders_stop(&set);
    free(dir);
    itest_done();
    return 0;
}
