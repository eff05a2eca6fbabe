/* Issue 11, item 6: the engine driven by a host's event loop through the
 * socket and timer callbacks alone (acme_engine_set_socket_callback(3)),
 * against the harness's Pebble.
 *
 * The loop here is what a libuv or epoll host does: it keeps its own table
 * of descriptors from the socket callback and one timer from the timer
 * callback, polls only those, and calls acme_engine_socket_action() /
 * acme_engine_timeout_action(). It never calls acme_engine_fds,
 * acme_engine_timeout_ms or acme_engine_step.
 *
 *  A. A certificate issued that way. Every descriptor is open when it is
 *     watched and still open when ACME_POLL_REMOVE comes (fcntl), and none
 *     watched is ever found closed (poll's POLLNVAL): the engine never
 *     closes what the host watches. The callbacks' set equals the snapshot
 *     of acme_engine_fds() at every turn.
 *  B. install answers ACME_E_PENDING and the loop finishes it later with
 *     acme_engine_done(): inside done the timer callback asks for a call
 *     at once (0 ms), so a loop with nothing else to wake it goes on.
 *  C. The PENDING deadline: publish answers PENDING and never finishes.
 *     Meanwhile the status says "waiting_on":"host" and since when; after
 *     the deadline (2 s here) the order fails with a sentence naming the
 *     callback and the deadline, "waiting_on" is null again, and a late
 *     done() is refused.
 *  C2. The same for an install that never finishes: the certificate is
 *     stored and valid, the install counts as failed with that sentence.
 *  D. Re-entrancy: from inside publish, the socket callback and the timer
 *     callback, calls back into the engine and the client return
 *     ACME_E_STATE with a sentence naming the call; the order still runs
 *     exactly once.
 *  E. Removing the socket callback unwatches every descriptor. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "etest.h"

#define MAX_WATCH 64

typedef struct loop {
    acme_engine *e;
    acme_client *c;
    struct { int fd, events; } w[MAX_WATCH];
    size_t n;
    int timer_on;
    double timer_at;               /* etest_now() */
    unsigned watch_calls, remove_calls, timer_calls, actions, timeouts;
    int in_done;                   /* inside acme_engine_done */
    int timer_zero_in_done;        /* the timer callback asked for 0 ms inside done */
    /* D: calls back into the engine from the loop's own callbacks */
    int reenter;
    unsigned refused_socket, refused_timer;
} loop;

static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void on_socket(void *ud, int fd, int events)
{
    loop *l = ud;
    size_t i = 0;
    while (i < l->n && l->w[i].fd != fd)
        i++;
    CHECK_MSG(NULL, fd_open(fd), "socket callback (events %d) for fd %d, which is closed", events, fd);
    if (events == ACME_POLL_REMOVE) {
        CHECK_MSG(NULL, i < l->n, "ACME_POLL_REMOVE for fd %d, which was never watched", fd);
        l->w[i] = l->w[--l->n];
        l->remove_calls++;
    } else {
        CHECK_MSG(NULL, events == ACME_POLL_IN || events == ACME_POLL_OUT || events == ACME_POLL_INOUT,
                  "socket callback with events %d", events);
        if (i == l->n) {
            CHECK_MSG(NULL, l->n < MAX_WATCH, "more than %d descriptors watched", MAX_WATCH);
            l->n++;
        }
        l->w[i].fd = fd;
        l->w[i].events = events;
        l->watch_calls++;
    }
    if (l->reenter) {
        int rc = acme_engine_socket_action(l->e, fd, ACME_POLL_IN);
        CHECK_MSG(NULL, rc == ACME_E_STATE, "acme_engine_socket_action from the socket callback returned %d", rc);
        CHECK_MSG(NULL, strstr(acme_client_last_error(l->c), "acme_engine_socket_action() was called from inside "
                                                               "the host's socket callback") != NULL,
                  "last error: %s", acme_client_last_error(l->c));
        l->refused_socket++;
    }
}

static void on_timer(void *ud, int ms)
{
    loop *l = ud;
    l->timer_calls++;
    l->timer_on = ms >= 0;
    l->timer_at = etest_now() + (ms > 0 ? ms : 0) / 1000.0;
    if (l->in_done && ms == 0)
        l->timer_zero_in_done = 1;
    if (l->reenter) {
        int rc = acme_engine_timeout_action(l->e);
        CHECK_MSG(NULL, rc == ACME_E_STATE, "acme_engine_timeout_action from the timer callback returned %d", rc);
        l->refused_timer++;
    }
}

/* The callbacks' table is exactly acme_engine_fds()'s snapshot. */
static void check_same_as_snapshot(loop *l)
{
    struct pollfd fds[MAX_WATCH];
    size_t n = 0;
    CHECK_OK(l->c, acme_engine_fds(l->e, fds, MAX_WATCH, &n));
    CHECK_MSG(NULL, n == l->n, "the socket callback watches %zu descriptors, acme_engine_fds() lists %zu", l->n, n);
    for (size_t i = 0; i < n; i++) {
        int ev = ((fds[i].events & POLLIN) ? ACME_POLL_IN : 0) | ((fds[i].events & POLLOUT) ? ACME_POLL_OUT : 0);
        size_t j = 0;
        while (j < l->n && l->w[j].fd != fds[i].fd)
            j++;
        CHECK_MSG(NULL, j < l->n, "fd %d is in acme_engine_fds() but was never given to the socket callback",
                  fds[i].fd);
        CHECK_MSG(NULL, l->w[j].events == ev, "fd %d: socket callback said events %d, acme_engine_fds() %d",
                  fds[i].fd, l->w[j].events, ev);
    }
}

/* ---- the host callbacks ---- */

typedef struct host {
    acme_responder_set *set;
    loop *l;
    int pending_publish, pending_install;
    int install_never;            /* C2: the pending install is never finished */
    const void *pending_obj;      /* the one pending callback's object */
    double pending_due;           /* when the loop finishes it; 0 = never */
    int pending_kind;             /* 1 publish, 3 install */
    unsigned publishes, installs, orders_created;
    char *installed_chain, *installed_key;
    int reenter;                  /* D: call back into libacme from publish */
    unsigned refused_publish;
} host;

static void expect_refused(loop *l, int rc, const char *call)
{
    CHECK_MSG(NULL, rc == ACME_E_STATE, "%s from inside publish returned %d (%s), not ACME_E_STATE", call, rc,
              acme_strerror(rc));
    char want[160];
    snprintf(want, sizeof want, "%s() was called from inside the host's publish callback", call);
    const char *err = acme_client_last_error(l->c);
    CHECK_MSG(NULL, err && strstr(err, want), "%s refused, but the last error does not say so: %s", call,
              err ? err : "(none)");
}

static int cb_publish(void *ud, const acme_challenge *ch)
{
    host *h = ud;
    h->publishes++;
    if (h->reenter) {
        loop *l = h->l;
        static const char *other[] = {"reenter-other.example"};
        acme_issue_params p = {.size = sizeof p, .names = other, .name_count = 1};
        expect_refused(l, acme_engine_step(l->e), "acme_engine_step");
        expect_refused(l, acme_engine_manage(l->e, &p), "acme_engine_manage");
        expect_refused(l, acme_engine_done(l->e, ch, ACME_OK), "acme_engine_done");
        expect_refused(l, acme_engine_timeout_action(l->e), "acme_engine_timeout_action");
        expect_refused(l, acme_issue(l->c, &p), "acme_issue");
        expect_refused(l, acme_account_find(l->c), "acme_account_find");
        h->refused_publish++;
    }
    if (h->pending_publish) {
        h->pending_obj = ch;
        h->pending_kind = 1;
        h->pending_due = 0; /* never: C */
        return ACME_E_PENDING;
    }
    return acme_responder_publish(h->set, ch);
}

static int cb_unpublish(void *ud, const acme_challenge *ch)
{
    host *h = ud;
    return acme_responder_unpublish(h->set, ch);
}

static void keep_cert(host *h, const acme_certificate *cert)
{
    free(h->installed_chain);
    free(h->installed_key);
    h->installed_chain = itest_strdup(acme_certificate_chain_pem(cert));
    h->installed_key = itest_strdup(acme_certificate_key_pem(cert));
    h->installs++;
}

static int cb_install(void *ud, const acme_certificate *cert)
{
    host *h = ud;
    if (h->pending_install) {
        h->pending_obj = cert;
        h->pending_kind = 3;
        h->pending_due = h->install_never ? 0 : etest_now() + 0.3;
        return ACME_E_PENDING;
    }
    keep_cert(h, cert);
    return ACME_OK;
}

static void cb_log(void *ud, acme_log_level level, const char *msg)
{
    host *h = ud;
    (void)level;
    if (strstr(msg, "order: ") && strstr(msg, " created"))
        h->orders_created++;
    if (getenv("ITEST_DEBUG") || level <= ACME_LOG_WARNING)
        itest_log("libacme: %s", msg);
}

/* ---- the loop ---- */

/* Turn the loop until done(h) or timeout_s. Returns 1 if done. */
static int run_loop(host *h, int (*done)(host *), double timeout_s)
{
    loop *l = h->l;
    double deadline = etest_now() + timeout_s;
    while (!done(h)) {
        double now = etest_now();
        if (now >= deadline)
            return 0;
        /* The pending callback the host finishes itself. */
        if (h->pending_obj && h->pending_due > 0 && now >= h->pending_due) {
            const void *obj = h->pending_obj;
            h->pending_obj = NULL;
            if (h->pending_kind == 3)
                keep_cert(h, obj);
            l->in_done = 1;
            l->timer_zero_in_done = 0;
            CHECK_OK(l->c, acme_engine_done(l->e, obj, ACME_OK));
            l->in_done = 0;
            CHECK_MSG(NULL, l->timer_zero_in_done,
                      "acme_engine_done() did not ask the timer callback for a call at once");
            continue;
        }
        check_same_as_snapshot(l);
        double until = deadline;
        if (l->timer_on && l->timer_at < until)
            until = l->timer_at;
        if (h->pending_obj && h->pending_due > 0 && h->pending_due < until)
            until = h->pending_due;
        int ms = until <= now ? 0 : (int)((until - now) * 1000.0) + 1;
        struct pollfd fds[MAX_WATCH];
        size_t n = l->n;
        for (size_t i = 0; i < n; i++) {
            fds[i].fd = l->w[i].fd;
            fds[i].events = (short)(((l->w[i].events & ACME_POLL_IN) ? POLLIN : 0) |
                                    ((l->w[i].events & ACME_POLL_OUT) ? POLLOUT : 0));
            fds[i].revents = 0;
        }
        int r = poll(fds, n, ms);
        CHECK_MSG(NULL, r >= 0 || errno == EINTR, "poll: %s", strerror(errno));
        for (size_t i = 0; r > 0 && i < n; i++) {
            CHECK_MSG(NULL, !(fds[i].revents & POLLNVAL), "fd %d is watched but closed", fds[i].fd);
            if (!fds[i].revents)
                continue;
            /* An earlier action may have unwatched it (libuv drops such
             * events too). */
            size_t j = 0;
            while (j < l->n && l->w[j].fd != fds[i].fd)
                j++;
            if (j == l->n)
                continue;
            int ev = ((fds[i].revents & POLLIN) ? ACME_POLL_IN : 0) | ((fds[i].revents & POLLOUT) ? ACME_POLL_OUT : 0) |
                     ((fds[i].revents & (POLLERR | POLLHUP)) ? ACME_POLL_ERR : 0);
            l->actions++;
            CHECK_OK(l->c, acme_engine_socket_action(l->e, fds[i].fd, ev));
        }
        if (l->timer_on && etest_now() >= l->timer_at) {
            l->timer_on = 0;
            l->timeouts++;
            CHECK_OK(l->c, acme_engine_timeout_action(l->e));
        }
    }
    return 1;
}

static int until_installed_idle(host *h)
{
    return h->installs > 0 && !h->pending_obj && acme_engine_idle(h->l->e);
}

static int until_not_ordering(host *h)
{
    acme_cert_status st = {.size = sizeof st};
    return acme_engine_cert_status(h->l->e, "deadline.example", &st) == ACME_OK && st.state != ACME_CERT_STATE_ORDERING &&
           st.attempts > 0;
}

static int until_install_given_up(host *h)
{
    acme_cert_status st = {.size = sizeof st};
    return acme_engine_cert_status(h->l->e, "deadline-install.example", &st) == ACME_OK &&
           st.state == ACME_CERT_STATE_VALID && st.last_error != NULL;
}

static int until_pending(host *h)
{
    return h->pending_obj != NULL;
}

static void check_cert(host *h, const char *name)
{
    const char *names[] = {name};
    char *root = itest_pebble_root(0);
    const char *why = NULL;
    CHECK_MSG(NULL, h->installed_chain, "%s: nothing installed", name);
    CHECK_MSG(NULL, itest_chain_verifies(h->installed_chain, root, &why), "%s: chain does not verify: %s", name, why);
    CHECK_MSG(NULL, itest_key_matches(h->installed_chain, h->installed_key), "%s: key does not match", name);
    CHECK_MSG(NULL, itest_leaf_names_are(h->installed_chain, names, 1), "%s: wrong names", name);
    free(root);
}

static json_t *status_of(acme_engine *e, const char *id)
{
    json_error_t err;
    json_t *all = json_loads(acme_engine_status_json(e), 0, &err);
    CHECK_MSG(NULL, json_is_array(all), "status JSON does not parse: %s", err.text);
    size_t i;
    json_t *v;
    json_array_foreach(all, i, v) {
        if (itest_streq(json_string_value(json_object_get(v, "id")), id)) {
            json_incref(v);
            json_decref(all);
            return v;
        }
    }
    json_decref(all);
    CHECK_MSG(NULL, 0, "%s not in the status", id);
    return NULL;
}

static acme_engine *new_engine(acme_client *c)
{
    acme_engine_options o = {.size = sizeof o, .retry_min_s = 3600};
    acme_engine *e = NULL;
    CHECK_OK(c, acme_engine_new(c, &o, &e));
    return e;
}

int main(void)
{
    itest_init("it_engine_socket");
    etest_watchdog(280);
    static const acme_challenge_type http[] = {ACME_CHALLENGE_HTTP_01};

    acme_responder_set set;
    itest_responders_start(&set, 1, 0);
    host h = {.set = &set};
    loop l = {0};
    h.l = &l;
    acme_host_callbacks cb = {.size = sizeof cb, .publish = cb_publish, .unpublish = cb_unpublish,
                              .install = cb_install, .log = cb_log};
    char *dir = itest_fresh_dir("socket");
    acme_client *c = itest_client_with(&cb, &h, dir, itest_env("ACME_TEST_DIRECTORY"), itest_env("ACME_TEST_CA_FILE"));
    itest_register(c, NULL);
    l.c = c;
    l.e = new_engine(c);

    CHECK_OK(c, acme_engine_set_socket_callback(l.e, on_socket, &l));
    CHECK_OK(c, acme_engine_set_timer_callback(l.e, on_timer, &l));
    CHECK_MSG(NULL, l.n == 1, "before any work, %zu descriptors watched (the wake-up pipe only, expected 1)", l.n);

    /* A. */
    CHECK_OK(c, etest_manage1(l.e, "socket-a.example", http, 1));
    CHECK_MSG(NULL, l.timer_on && l.timer_at <= etest_now() + 0.001,
              "acme_engine_manage() did not ask the timer callback for a call now");
    double t0 = etest_now();
    CHECK_MSG(NULL, run_loop(&h, until_installed_idle, 60), "A: not installed within 60 s");
    check_cert(&h, "socket-a.example");
    CHECK_MSG(NULL, l.watch_calls > 1 && l.remove_calls > 0 && l.timer_calls > 0,
              "A: %u watch, %u remove, %u timer calls: the CA's sockets did not go through the callbacks",
              l.watch_calls, l.remove_calls, l.timer_calls);
    itest_log("ok: A. issued in %.2f s through the callbacks: %u watch, %u remove, %u timer calls, %u socket "
              "actions, %u timeouts", etest_now() - t0, l.watch_calls, l.remove_calls, l.timer_calls, l.actions,
              l.timeouts);

    /* B. */
    h.pending_install = 1;
    h.installs = 0;
    CHECK_OK(c, etest_manage1(l.e, "socket-b.example", http, 1));
    CHECK_MSG(NULL, run_loop(&h, until_installed_idle, 60), "B: not installed within 60 s");
    check_cert(&h, "socket-b.example");
    h.pending_install = 0;
    itest_log("ok: B. a pending install finished with acme_engine_done(), which asked for a call at once");

    /* C. */
    CHECK_OK(c, acme_engine_set_pending_timeout(l.e, 2));
    h.pending_publish = 1;
    CHECK_OK(c, etest_manage1(l.e, "deadline.example", http, 1));
    CHECK_MSG(NULL, run_loop(&h, until_pending, 30), "C: publish was never called");
    double pend_at = etest_now(), pend_wall = etest_wall();
    json_t *st = status_of(l.e, "deadline.example");
    CHECK_MSG(NULL, itest_streq(json_string_value(json_object_get(st, "waiting_on")), "host"),
              "C: status while publish is pending: %s", acme_engine_status_json(l.e));
    json_int_t since = json_integer_value(json_object_get(st, "waiting_since"));
    CHECK_MSG(NULL, since >= (json_int_t)pend_wall - 2 && since <= (json_int_t)pend_wall + 1,
              "C: waiting_since %lld, now %.0f", (long long)since, pend_wall);
    json_decref(st);
    const void *stale = h.pending_obj;
    CHECK_MSG(NULL, run_loop(&h, until_not_ordering, 20), "C: the order still runs 20 s after a 2 s deadline");
    double waited = etest_now() - pend_at;
    CHECK_MSG(NULL, waited >= 1.5 && waited < 6, "C: the engine gave up after %.2f s (deadline 2 s)", waited);
    st = status_of(l.e, "deadline.example");
    const char *err = json_string_value(json_object_get(st, "last_error"));
    CHECK_MSG(NULL, err && strstr(err, "publish callback for deadline.example answered ACME_E_PENDING") &&
                    strstr(err, "acme_engine_set_pending_timeout"),
              "C: last_error: %s", err ? err : "(null)");
    CHECK_MSG(NULL, json_is_null(json_object_get(st, "waiting_on")), "C: still waiting on the host: %s",
              acme_engine_status_json(l.e));
    CHECK_MSG(NULL, itest_streq(json_string_value(json_object_get(st, "state")), "waiting"), "C: state %s",
              json_string_value(json_object_get(st, "state")));
    itest_log("ok: C. gave up after %.2f s: %s", waited, err);
    json_decref(st);
    CHECK_CODE(c, acme_engine_done(l.e, stale, ACME_OK), ACME_E_NOT_FOUND);
    h.pending_publish = 0;
    h.pending_obj = NULL;
    CHECK_OK(c, acme_engine_unmanage(l.e, "deadline.example"));

    /* C2. The same for an install: the certificate is stored and counts
     * as valid, the install failed (it is tried again later). */
    h.pending_install = 1;
    h.install_never = 1;
    h.installs = 0;
    CHECK_OK(c, etest_manage1(l.e, "deadline-install.example", http, 1));
    CHECK_MSG(NULL, run_loop(&h, until_pending, 30), "C2: install was never called");
    pend_at = etest_now();
    stale = h.pending_obj;
    st = status_of(l.e, "deadline-install.example");
    CHECK_MSG(NULL, itest_streq(json_string_value(json_object_get(st, "waiting_on")), "host"),
              "C2: status while install is pending: %s", acme_engine_status_json(l.e));
    json_decref(st);
    CHECK_MSG(NULL, run_loop(&h, until_install_given_up, 20), "C2: still waiting for install 20 s after a 2 s deadline");
    waited = etest_now() - pend_at;
    CHECK_MSG(NULL, waited >= 1.5 && waited < 6, "C2: the engine gave up after %.2f s (deadline 2 s)", waited);
    acme_cert_status cs = {.size = sizeof cs};
    CHECK_OK(c, acme_engine_cert_status(l.e, "deadline-install.example", &cs));
    CHECK_MSG(NULL, cs.last_error && strstr(cs.last_error, "install callback for deadline-install.example answered "
                                                           "ACME_E_PENDING"),
              "C2: last_error: %s", cs.last_error ? cs.last_error : "(null)");
    CHECK_MSG(NULL, h.installs == 0, "C2: %u installs", h.installs);
    itest_log("ok: C2. install given up after %.2f s, certificate stored and valid: %s", waited, cs.last_error);
    CHECK_CODE(c, acme_engine_done(l.e, stale, ACME_OK), ACME_E_NOT_FOUND);
    h.pending_install = 0;
    h.install_never = 0;
    h.pending_obj = NULL;
    CHECK_OK(c, acme_engine_unmanage(l.e, "deadline-install.example"));

    /* D. */
    h.reenter = 1;
    l.reenter = 1;
    h.installs = 0;
    unsigned orders0 = h.orders_created, pubs0 = h.publishes;
    CHECK_OK(c, etest_manage1(l.e, "reenter.example", http, 1));
    CHECK_MSG(NULL, run_loop(&h, until_installed_idle, 60), "D: not installed within 60 s");
    check_cert(&h, "reenter.example");
    CHECK_MSG(NULL, h.refused_publish == 1 && h.publishes - pubs0 == 1, "D: %u publishes, %u refused sets",
              h.publishes - pubs0, h.refused_publish);
    CHECK_MSG(NULL, h.orders_created - orders0 == 1, "D: %u orders created for one certificate",
              h.orders_created - orders0);
    CHECK_MSG(NULL, l.refused_socket > 0 && l.refused_timer > 0, "D: %u socket, %u timer refusals",
              l.refused_socket, l.refused_timer);
    CHECK_MSG(NULL, h.installs == 1, "D: %u installs", h.installs);
    h.reenter = 0;
    l.reenter = 0;
    itest_log("ok: D. calls from inside publish (6 kinds), %u socket and %u timer callbacks refused; one order",
              l.refused_socket, l.refused_timer);

    /* E. */
    CHECK_OK(c, acme_engine_set_socket_callback(l.e, NULL, NULL));
    CHECK_MSG(NULL, l.n == 0, "E: %zu descriptors still watched after removing the callback", l.n);
    CHECK_OK(c, acme_engine_set_timer_callback(l.e, NULL, NULL));
    itest_log("ok: E. removing the socket callback unwatched every descriptor");

    acme_engine_free(l.e);
    acme_client_free(c);
    itest_responders_stop(&set);
    free(h.installed_chain);
    free(h.installed_key);
    free(dir);
    itest_done();
    return 0;
}
