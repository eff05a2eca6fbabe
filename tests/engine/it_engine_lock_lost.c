/* Issue 11/13: a lost order lock on the default file storage stops the
 * order (real Pebble, tests/harness/with-pebble).
 *
 * A child process runs an engine on the state directory; its host answers
 * publish with ACME_E_PENDING and finishes it only after the lock's first
 * refresh is due (ACME_LOCK_LEASE_S / 3 = 100 s after the lock). While it
 * waits, this process replaces the lock file .locks/<ca-id>.order.<id>
 * with one of its own, as a host that took the lock over after the lease
 * ran out would. At its refresh the child's storage answers ACME_E_LOCKED
 * and the child must: emit ACME_EVENT_LOCK_LOST, end the order as failed
 * with ACME_E_LOCKED and a sentence saying the lock was lost and another
 * process may take over, never ask the CA to validate, deactivate nothing,
 * take its challenge down, and write nothing more (its saved order.json
 * is byte for byte and mtime the same, no cert.json). Then this process
 * orders the certificate: it resumes the child's saved order and installs
 * a certificate that verifies against Pebble's root. About two minutes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etest.h"

#define NAME "lostlock.example"

/* The lock file's path, malloc'ed, or NULL while there is none. */
static char *lock_file(const char *dir)
{
    char *locks = itest_printf("%s/.locks", dir);
    DIR *d = opendir(locks);
    char *found = NULL;
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)))
            if (strstr(de->d_name, ".order." NAME) && !strchr(de->d_name, '~') && !found)
                found = itest_printf("%s/%s", locks, de->d_name);
        closedir(d);
    }
    free(locks);
    return found;
}

/* The saved order state's path, malloc'ed, or NULL. */
static char *order_file(const char *dir, const char *leaf)
{
    char *pat = itest_printf("%s/*/certs/" NAME "/%s", dir, leaf);
    glob_t g;
    char *p = NULL;
    if (glob(pat, 0, NULL, &g) == 0) {
        p = strdup(g.gl_pathv[0]);
        globfree(&g);
    }
    free(pat);
    return p;
}

static char *slurp(const char *path, struct stat *st)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    if (st)
        fstat(fileno(f), st);
    char *b = calloc(1, 1 << 20);
    size_t n = b ? fread(b, 1, (1 << 20) - 1, f) : 0;
    (void)n;
    fclose(f);
    return b;
}

static int until_failed(etest_host *h, void *arg)
{
    (void)arg;
    return etest_find_event(h, 0, ACME_EVENT_FAILED, NAME) != (size_t)-1;
}

/* The holder: exit 0 when it behaved, else a message and a code. */
static void child(const char *dir)
{
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
    acme_responder_set set;
    itest_responders_start(&set, 1, 0); /* its publish lands: there is something to take down */
    etest_host h;
    etest_host_init(&h, &set);
    h.pending_publish = 1;
    h.pending_ms = 112000;     /* after the refresh at 100 s */
    acme_client *c = etest_client(&h, dir);
    acme_engine *e = etest_engine(c, &h, 0, 3600, 0);
    if (etest_manage1(e, NAME, http, 1) != ACME_OK)
        _exit(2);
    if (!etest_drive(&h, e, until_failed, NULL, 200000, NULL)) {
        fprintf(stderr, "child: the order did not end: %s\n", etest_last_error(e, NAME));
        _exit(3);
    }
    size_t lost = etest_find_event(&h, 0, ACME_EVENT_LOCK_LOST, NAME);
    size_t failed = etest_find_event(&h, 0, ACME_EVENT_FAILED, NAME);
    const etest_event *fe = &h.events[failed];
    if (lost == (size_t)-1 || lost > failed) {
        fprintf(stderr, "child: no ACME_EVENT_LOCK_LOST before the failure\n");
        _exit(4);
    }
    if (fe->result != ACME_E_LOCKED || !fe->message || !strstr(fe->message, "was lost") ||
        !strstr(fe->message, "may take the order over")) {
        fprintf(stderr, "child: the failure: code %d, %s\n", fe->result, fe->message ? fe->message : "(none)");
        _exit(5);
    }
    if (etest_count_lines(&h, 0, "asked the CA to validate") || etest_count_lines(&h, 0, "deactivated the pending")) {
        fprintf(stderr, "child: went on with the order after losing its lock\n");
        _exit(6);
    }
    if (h.unpublish_calls < 1) {
        fprintf(stderr, "child: left its challenge published\n");
        _exit(7);
    }
    etest_drive(&h, e, etest_until_idle, NULL, 20000, NULL);
    acme_engine_free(e);
    acme_client_free(c);
    etest_host_clear(&h);
    itest_responders_stop(&set);
    _exit(0);
}

int main(void)
{
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};
    itest_init("it_engine_lock_lost");
    etest_watchdog(290);
    char *dir = itest_fresh_dir("locklost");
    etest_register_account(dir);
    fflush(NULL);
    pid_t pid = fork();
    CHECK_MSG(NULL, pid >= 0, "fork");
    if (pid == 0)
        child(dir);
    double t0 = etest_now();
    char *lock = NULL, *order = NULL;
    while ((!(lock = lock_file(dir)) || !(order = order_file(dir, "order.json"))) && etest_now() - t0 < 60) {
        free(lock);
        lock = NULL;
        usleep(50000);
    }
    CHECK_MSG(NULL, lock && order, "the child never took the lock and saved its order");
    usleep(500000);
    struct stat st0;
    char *saved = slurp(order, &st0);
    CHECK_MSG(NULL, saved && strstr(saved, "order_url"), "the saved order state: %s", saved ? saved : "(none)");

    /* Take the lock over: a new lock file (another inode) in its place. */
    char *tmp = itest_printf("%s.takeover~", lock);
    FILE *f = fopen(tmp, "w");
    CHECK_MSG(NULL, f != NULL, "create %s: %s", tmp, strerror(errno));
    struct timeval tv;
    gettimeofday(&tv, NULL);
    fprintf(f, "pid=%ld\nhost=elsewhere.invalid\nexpires_ms=%lld\n", (long)getpid(),
            (long long)tv.tv_sec * 1000 + 600000);
    fclose(f);
    CHECK_MSG(NULL, rename(tmp, lock) == 0, "rename over %s: %s", lock, strerror(errno));
    double t_takeover = etest_now();

    int status;
    CHECK_MSG(NULL, waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK_MSG(NULL, WIFEXITED(status) && WEXITSTATUS(status) == 0, "the holder misbehaved (exit %d)",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    printf("the holder exited %.1f s after the take-over (its refresh was due %u s after the lock; its host's "
           "publish, answered 112 s after it began, was waited for)\n", etest_now() - t_takeover, ACME_LOCK_LEASE_S / 3);
    struct stat st1;
    char *after = slurp(order, &st1);
    CHECK_MSG(NULL, after && strcmp(after, saved) == 0 && st1.st_ino == st0.st_ino &&
              st1.st_mtim.tv_sec == st0.st_mtim.tv_sec && st1.st_mtim.tv_nsec == st0.st_mtim.tv_nsec,
              "the holder wrote its order state after losing the lock");
    char *cert = order_file(dir, "cert.json");
    CHECK_MSG(NULL, cert == NULL, "the holder stored a certificate after losing the lock");
    /* Ours is "elsewhere": it stays until its lease. Let it go, as its
     * holder would when done. */
    CHECK_MSG(NULL, unlink(lock) == 0, "unlink %s", lock);

    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    etest_host h;
    etest_host_init(&h, &set);
    acme_client *c = etest_client(&h, dir);
    acme_engine *e = etest_engine(c, &h, 0, 3600, 0);
    CHECK_OK(c, etest_manage1(e, NAME, http, 1));
    size_t one = 1;
    int ok = etest_drive(&h, e, etest_until_installs, &one, 60000, NULL);
    if (!ok)
        etest_dump_log(&h, 40);
    CHECK_MSG(NULL, ok, "no certificate after the take-over: %s", etest_last_error(e, NAME));
    CHECK_MSG(NULL, etest_count_lines(&h, 0, "resuming the order") == 1, "the lost holder's order was not resumed");
    const char *names[] = {NAME};
    etest_check_installed(&h, NAME, names, 1);
    etest_drive(&h, e, etest_until_idle, NULL, 20000, NULL);
    acme_engine_free(e);
    acme_client_free(c);
    etest_host_clear(&h);
    itest_responders_stop(&set);
    free(lock);
    free(order);
    free(saved);
    free(after);
    free(tmp);
    free(dir);
    itest_done();
    return 0;
}
