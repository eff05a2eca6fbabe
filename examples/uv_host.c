/* uv_host — the engine inside a libuv loop, through the socket and timer
 * callbacks only (acme_engine_set_socket_callback(3)), the way a libuv
 * server embeds it. It keeps every NAME's certificate (one certificate
 * per name) and exits once all are installed:
 *
 *   uv_host -d DIRECTORY_URL [-c CA_FILE] [-s STATE_DIR] [-o OUT_DIR]
 *           [-p HTTP_PORT] NAME...
 *
 * What it shows:
 *  - one uv_poll_t per descriptor the engine hands out, stopped and closed
 *    at ACME_POLL_REMOVE, which comes before the engine closes it (libuv
 *    aborts on a closed descriptor it still watches);
 *  - one uv_timer_t following the timer callback;
 *  - install answering ACME_E_PENDING: the files are written on libuv's
 *    thread pool, and acme_engine_done() from the loop wakes the engine
 *    (its timer callback asks for a call at once), so nothing stalls;
 *  - leaving the loop: removing the socket callback unwatches everything,
 *    the handles close and uv_run() returns.
 * The http-01 responder runs on its own thread here (a host could put its
 * descriptors in the loop too: acme_responder_fds). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include <acme/acme.h>
#include <acme/engine.h>
#include <acme/responder.h>

typedef struct watch {
    uv_poll_t poll;              /* first: the handle's address is the watch's */
    int fd;
    struct watch *next;
} watch;

typedef struct host {
    uv_loop_t *loop;
    uv_timer_t timer;
    watch *watches;
    acme_client *client;
    acme_engine *engine;
    acme_responder_set responders;
    const char *out_dir;
    char **names;
    size_t name_count;
    int installs_running;        /* installs on the thread pool, done() not called yet */
    int stopping;
    int failed;
    unsigned socket_calls, timer_calls, actions, timeouts;
    uint64_t last_done_ms;       /* uv_now() at the last acme_engine_done */
} host;

/* ---- writing the files, on the thread pool ---- */

typedef struct install_job {
    uv_work_t req;
    host *h;
    const acme_certificate *cert;  /* valid until acme_engine_done */
    char *id, *chain, *key;        /* copies: the worker never touches cert */
    int rc;
} install_job;

/* temp, fsync, rename: a crash never leaves half a file where a good one was */
static int write_file(const char *dir, const char *id, const char *ext, const char *text, mode_t mode)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s.%s", dir, id, ext);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    size_t len = strlen(text);
    int ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    if (ok && rename(tmp, path) != 0)
        ok = 0;
    if (!ok)
        unlink(tmp);
    return ok ? ACME_OK : ACME_E_CALLBACK;
}

static void install_work(uv_work_t *req)
{
    install_job *j = req->data;
    j->rc = write_file(j->h->out_dir, j->id, "key", j->key, 0600);
    if (!j->rc)
        j->rc = write_file(j->h->out_dir, j->id, "crt", j->chain, 0644);
}

static void check_finished(host *h);

/* Back on the loop thread, outside any engine call: report. */
static void install_done(uv_work_t *req, int status)
{
    install_job *j = req->data;
    host *h = j->h;
    int rc = status == 0 ? j->rc : ACME_E_CALLBACK;
    if (rc == ACME_OK)
        printf("uv_host: installed %s in %s\n", j->id, h->out_dir);
    h->last_done_ms = uv_now(h->loop);
    if (acme_engine_done(h->engine, j->cert, rc) != ACME_OK)
        fprintf(stderr, "uv_host: acme_engine_done: %s\n", acme_client_last_error(h->client));
    h->installs_running--;
    memset(j->key, 0, strlen(j->key));
    free(j->id);
    free(j->chain);
    free(j->key);
    free(j);
    check_finished(h);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int install(void *ud, const acme_certificate *cert)
{
    host *h = ud;
    install_job *j = calloc(1, sizeof(*j));
    if (!j)
        return ACME_E_NOMEM;
    j->h = h;
    j->cert = cert;
    j->id = dup_or_null(acme_certificate_id(cert));
    j->chain = dup_or_null(acme_certificate_chain_pem(cert));
    j->key = dup_or_null(acme_certificate_key_pem(cert));
    j->req.data = j;
    if (!j->id || !j->chain || !j->key || uv_queue_work(h->loop, &j->req, install_work, install_done) != 0) {
        free(j->id);
        free(j->chain);
        free(j->key);
        free(j);
        return ACME_E_CALLBACK;
    }
    h->installs_running++;
    return ACME_E_PENDING; /* install_done() finishes it */
}

static int publish(void *ud, const acme_challenge *ch)
{
    return acme_responder_publish(&((host *)ud)->responders, ch);
}

static int unpublish(void *ud, const acme_challenge *ch)
{
    return acme_responder_unpublish(&((host *)ud)->responders, ch);
}

static void logline(void *ud, acme_log_level level, const char *msg)
{
    (void)ud;
    if (level <= ACME_LOG_INFO)
        fprintf(stderr, "libacme: %s\n", msg);
}

/* ---- the engine's descriptors and timer in libuv ---- */

static void on_poll(uv_poll_t *p, int status, int events)
{
    watch *w = (watch *)p;
    host *h = p->data;
    int ev = status < 0 ? ACME_POLL_ERR
                        : ((events & UV_READABLE) ? ACME_POLL_IN : 0) | ((events & UV_WRITABLE) ? ACME_POLL_OUT : 0);
    h->actions++;
    acme_engine_socket_action(h->engine, w->fd, ev);
    check_finished(h);
}

static void free_watch(uv_handle_t *handle)
{
    free(handle);
}

static watch **find_watch(host *h, int fd)
{
    watch **pp = &h->watches;
    while (*pp && (*pp)->fd != fd)
        pp = &(*pp)->next;
    return pp;
}

static void on_engine_socket(void *ud, int fd, int events)
{
    host *h = ud;
    h->socket_calls++;
    watch **pp = find_watch(h, fd);
    if (events == ACME_POLL_REMOVE) {
        /* fd is still open now and closes after we return: let go first. */
        if (*pp) {
            watch *w = *pp;
            *pp = w->next;
            uv_poll_stop(&w->poll);
            uv_close((uv_handle_t *)&w->poll, free_watch);
        }
        return;
    }
    watch *w = *pp;
    if (!w) {
        w = calloc(1, sizeof(*w));
        if (!w || uv_poll_init(h->loop, &w->poll, fd) != 0) {
            fprintf(stderr, "uv_host: cannot watch fd %d\n", fd);
            free(w);
            h->failed = 1;
            return;
        }
        w->fd = fd;
        w->poll.data = h;
        w->next = h->watches;
        h->watches = w;
    }
    int uv_events = ((events & ACME_POLL_IN) ? UV_READABLE : 0) | ((events & ACME_POLL_OUT) ? UV_WRITABLE : 0);
    uv_poll_start(&w->poll, uv_events, on_poll);
}

static void on_timer(uv_timer_t *t)
{
    host *h = t->data;
    h->timeouts++;
    acme_engine_timeout_action(h->engine);
    check_finished(h);
}

static void on_engine_timer(void *ud, int timeout_ms)
{
    host *h = ud;
    h->timer_calls++;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
}

/* Every certificate valid and nothing in flight: leave the loop. A name
 * that failed ends it too (the engine would retry it after back-off). */
static void check_finished(host *h)
{
    if (h->stopping)
        return;
    int all_valid = 1;
    for (size_t i = 0; i < h->name_count; i++) {
        acme_cert_status st = {.size = sizeof st};
        if (acme_engine_cert_status(h->engine, h->names[i], &st) != ACME_OK)
            return;
        if (st.state == ACME_CERT_STATE_WAITING && st.failures > 0) {
            fprintf(stderr, "uv_host: %s: %s\n", h->names[i], st.last_error ? st.last_error : "failed");
            h->failed = 1;
        } else if (st.state != ACME_CERT_STATE_VALID) {
            all_valid = 0;
        }
    }
    if (!h->failed && (!all_valid || h->installs_running || !acme_engine_idle(h->engine)))
        return;
    h->stopping = 1;
    /* Unwatches every descriptor (each handle closes); then nothing keeps
     * the loop alive but the timer, which goes too. */
    acme_engine_set_socket_callback(h->engine, NULL, NULL);
    acme_engine_set_timer_callback(h->engine, NULL, NULL);
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, NULL);
}

static void usage(void)
{
    fprintf(stderr, "usage: uv_host -d DIRECTORY_URL [-c CA_FILE] [-s STATE_DIR] [-o OUT_DIR] [-p HTTP_PORT] NAME...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *dir_url = NULL, *ca_file = NULL, *state = "uv-state", *out = ".";
    unsigned port = 80;
    int opt;
    while ((opt = getopt(argc, argv, "d:c:s:o:p:")) != -1) {
        switch (opt) {
        case 'd': dir_url = optarg; break;
        case 'c': ca_file = optarg; break;
        case 's': state = optarg; break;
        case 'o': out = optarg; break;
        case 'p': port = (unsigned)strtoul(optarg, NULL, 10); break;
        default: usage();
        }
    }
    if (!dir_url || optind >= argc)
        usage();

    host h = {.loop = uv_default_loop(), .out_dir = out, .names = argv + optind,
              .name_count = (size_t)(argc - optind)};
    acme_responder_options ro = {.size = sizeof ro, .bind_address = "127.0.0.1", .port = port};
    h.responders.size = sizeof h.responders;
    if (acme_responder_new(ACME_RESPONDER_HTTP01, &ro, &h.responders.http01) != ACME_OK ||
        acme_responder_start_thread(h.responders.http01) != ACME_OK) {
        fprintf(stderr, "uv_host: cannot serve http-01 on port %u\n", port);
        return 1;
    }
    acme_host_callbacks cb = {.size = sizeof cb, .publish = publish, .unpublish = unpublish,
                              .install = install, .log = logline};
    int rc = acme_client_new(dir_url, &h.client);
    if (!rc && ca_file)
        rc = acme_client_set_ca_file(h.client, ca_file);
    if (!rc)
        rc = acme_client_set_storage_dir(h.client, state);
    if (!rc)
        rc = acme_client_set_host(h.client, &cb, &h);
    if (!rc)
        rc = acme_engine_new(h.client, NULL, &h.engine);
    acme_account_params ap = {.size = sizeof ap, .agree_tos = 1};
    if (!rc)
        rc = acme_engine_set_account(h.engine, &ap); /* find or register, without blocking */
    for (size_t i = 0; !rc && i < h.name_count; i++) {
        const char *one[] = {h.names[i]};
        const acme_challenge_type types[] = {ACME_CHALLENGE_HTTP_01};
        acme_issue_params p = {.size = sizeof p, .names = one, .name_count = 1, .challenges = types,
                               .challenge_count = 1};
        rc = acme_engine_manage(h.engine, &p);
    }
    uv_timer_init(h.loop, &h.timer);
    h.timer.data = &h;
    if (!rc)
        rc = acme_engine_set_timer_callback(h.engine, on_engine_timer, &h);
    if (!rc)
        rc = acme_engine_set_socket_callback(h.engine, on_engine_socket, &h);
    if (rc) {
        fprintf(stderr, "uv_host: %s (%s)\n", h.client ? acme_client_last_error(h.client) : "", acme_strerror(rc));
        return 1;
    }

    uv_run(h.loop, UV_RUN_DEFAULT);

    uv_update_time(h.loop);
    printf("uv_host: loop exited: %s; %u socket and %u timer callbacks, %u socket actions, %u timeouts; "
           "%llu ms after the last acme_engine_done\n", h.failed ? "failed" : "every certificate installed",
           h.socket_calls, h.timer_calls, h.actions, h.timeouts,
           (unsigned long long)(uv_now(h.loop) - h.last_done_ms));
    acme_engine_free(h.engine);
    acme_client_free(h.client);
    acme_responder_free(h.responders.http01);
    uv_loop_close(h.loop);
    return h.failed ? 1 : 0;
}
