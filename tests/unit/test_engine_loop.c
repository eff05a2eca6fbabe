/* The engine's face to a host loop without a network (libacme/engine_socket.c,
 * reentry.c): what the timer callback is told as deadlines move, the
 * PENDING deadline's default, the re-entrancy guard's sentence, and the
 * descriptors of a fresh engine: the wake-up pipe watched at once when the
 * socket callback is set, unwatched (still open) when it is removed and
 * when the engine is freed. The whole engine against Pebble is
 * tests/engine/it_engine_socket.c. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <acme/acme.h>
#include <acme/engine.h>
#include "engine_loop.h"
#include "internal.h"
#include "reentry.h"

typedef struct rec {
    acme_client *c;
    int calls;
    int last;
    int refused_inside;       /* a call back from inside was refused with the right sentence */
} rec;

static void on_timer(void *ud, int ms)
{
    rec *r = ud;
    r->calls++;
    r->last = ms;
    if (reentry_refused(r->c, "acme_engine_step") == ACME_E_STATE &&
        strstr(acme_client_last_error(r->c), "acme_engine_step() was called from inside the host's timer callback"))
        r->refused_inside++;
}

static acme_client *new_client(char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/acme-unit-loop.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(dir));
    acme_client *c = NULL;
    assert_int_equal(acme_client_new("https://127.0.0.1:1/dir", &c), ACME_OK);
    assert_int_equal(acme_client_set_storage_dir(c, dir), ACME_OK);
    return c;
}

static void remove_tree(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_timer_sync(void **state)
{
    (void)state;
    char dir[4096];
    acme_client *c = new_client(dir, sizeof dir);
    rec r = {.c = c};
    engine_loop l;
    memset(&l, 0, sizeof l);
    engine_loop_init(&l, c, NULL, NULL);
    engine_loop_sync(&l, 100); /* no callback: nothing to tell */
    l.timer_cb = on_timer;
    l.timer_ud = &r;
    engine_loop_sync(&l, -1);
    assert_int_equal(r.calls, 0);            /* nothing armed, nothing wanted */
    engine_loop_sync(&l, 100);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.last, 100);
    engine_loop_sync(&l, 5000);
    assert_int_equal(r.calls, 1);            /* the earlier timer brings a call in time */
    engine_loop_sync(&l, 20);
    assert_int_equal(r.calls, 2);            /* sooner: told */
    assert_int_equal(r.last, 20);
    engine_loop_sync(&l, -1);
    assert_int_equal(r.calls, 3);            /* nothing wanted any more: timer off */
    assert_int_equal(r.last, -1);
    engine_loop_sync(&l, -1);
    assert_int_equal(r.calls, 3);
    engine_loop_sync(&l, 0);
    assert_int_equal(r.calls, 4);
    assert_int_equal(r.last, 0);
    engine_loop_sync(&l, 0);
    assert_int_equal(r.calls, 4);            /* already due: the call is coming */
    assert_int_equal(r.refused_inside, 4);   /* every call ran as "the timer callback" */
    assert_null(c->in_callback);             /* and the guard is off again after it */
    assert_int_equal(reentry_refused(c, "acme_engine_step"), ACME_OK);
    acme_client_free(c);
    remove_tree(dir);
}

static void test_pending_deadline(void **state)
{
    (void)state;
    engine_loop l;
    memset(&l, 0, sizeof l);
    engine_loop_init(&l, NULL, NULL, NULL);
    assert_int_equal(l.pending_timeout_s, 600);
    assert_true(engine_loop_pending_deadline(&l, 1000) == 1000 + 600000u);
    l.pending_timeout_s = 0;
    assert_true(engine_loop_pending_deadline(&l, 1000) == UINT64_MAX);
}

static void test_reentry_sentence(void **state)
{
    (void)state;
    char dir[4096];
    acme_client *c = new_client(dir, sizeof dir);
    const char *prev = callback_enter(c, "publish");
    assert_null(prev);
    assert_int_equal(reentry_refused(c, "acme_issue"), ACME_E_STATE);
    assert_string_equal(c->in_callback, "publish");
    const char *err = acme_client_last_error(c);
    assert_non_null(strstr(err, "acme_issue() was called from inside the host's publish callback"));
    /* A second refusal says its own name, not the first one's. */
    acme_issue_params p = {.size = sizeof p};
    assert_int_equal(acme_issue(c, &p), ACME_E_STATE);
    assert_int_equal(acme_account_find(c), ACME_E_STATE);
    assert_non_null(strstr(acme_client_last_error(c), "acme_account_find()"));
    callback_leave(c, prev);
    assert_null(c->in_callback);
    acme_client_free(c);
    remove_tree(dir);
}

typedef struct socks {
    int fd[8], ev[8];
    int n;
    int closed_at_remove;
} socks;

static void on_socket(void *ud, int fd, int events)
{
    socks *s = ud;
    if (events == ACME_POLL_REMOVE && fcntl(fd, F_GETFD) == -1 && errno == EBADF)
        s->closed_at_remove++;
    if (s->n < 8) {
        s->fd[s->n] = fd;
        s->ev[s->n] = events;
        s->n++;
    }
}

static void test_engine_descriptors(void **state)
{
    (void)state;
    char dir[4096];
    acme_client *c = new_client(dir, sizeof dir);
    acme_engine *e = NULL;
    assert_int_equal(acme_engine_new(c, NULL, &e), ACME_OK);
    struct pollfd fds[8];
    size_t n = 0;
    assert_int_equal(acme_engine_fds(e, fds, 8, &n), ACME_OK);
    assert_int_equal(n, 1); /* the wake-up pipe; no socket before any exchange */

    socks s = {0};
    assert_int_equal(acme_engine_set_socket_callback(e, on_socket, &s), ACME_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.fd[0], fds[0].fd);
    assert_int_equal(s.ev[0], ACME_POLL_IN);
    assert_int_equal(acme_engine_set_socket_callback(e, NULL, NULL), ACME_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.fd[1], fds[0].fd);
    assert_int_equal(s.ev[1], ACME_POLL_REMOVE);

    rec r = {.c = c};
    assert_int_equal(acme_engine_set_timer_callback(e, on_timer, &r), ACME_OK);
    assert_int_equal(r.calls, 1);          /* the directory is due now */
    assert_int_equal(r.last, 0);
    assert_int_equal(acme_engine_set_pending_timeout(e, 5), ACME_OK);
    assert_int_equal(acme_engine_set_pending_timeout(NULL, 5), ACME_E_INVALID_ARG);
    assert_int_equal(acme_engine_socket_action(NULL, 0, ACME_POLL_IN), ACME_E_INVALID_ARG);
    assert_int_equal(acme_engine_timeout_action(NULL), ACME_E_INVALID_ARG);

    /* Freed with the callback set: the pipe is unwatched while still open. */
    assert_int_equal(acme_engine_set_socket_callback(e, on_socket, &s), ACME_OK);
    assert_int_equal(s.n, 3);
    acme_engine_free(e);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.ev[3], ACME_POLL_REMOVE);
    assert_int_equal(s.closed_at_remove, 0);
    acme_client_free(c);
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_sync),
        cmocka_unit_test(test_pending_deadline),
        cmocka_unit_test(test_reentry_sentence),
        cmocka_unit_test(test_engine_descriptors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
