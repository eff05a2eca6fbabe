/* Unit tests for the haproxy module's socket client and operations.
 *
 *   - reply classification, against replies recorded from Debian's
 *     HAProxy 2.6.12 (each one seen on a real admin socket);
 *   - the client against a fake server: framing of the << payload form,
 *     a reply in many small pieces, no reply (timeout), a close without a
 *     reply, a missing socket, a stale one (nobody listens), one we may not
 *     write to (permission denied);
 *   - configuration, file writes, PEM handling;
 *   - with a real HAProxy (the HAPROXY variable names the binary; skipped
 *     when empty): the same replies live, the map, install of a new name,
 *     a mismatched key, a stale transaction of ours, tls-alpn-01 publish.
 *     HAProxy binds abns@ sockets only, so no TCP port is needed.
 *
 * The test certificates below are self-signed throwaways made for this
 * file (P-256, "unit.test", valid until 2126); KEY2 does not match CERT1. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "haproxy.h"

static const char CERT1[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBlDCCATugAwIBAgIUCTuoeb5TA2hr/Rp42LvEjHMOMAQwCgYIKoZIzj0EAwIw\n"
    "FDESMBAGA1UEAwwJdW5pdC50ZXN0MCAXDTI2MTEyMzE1NDkyN1oYDzIxMjYxMDMw\n"
    "MTU0OTI3WjAUMRIwEAYDVQQDDAl1bml0LnRlc3QwWTATBgcqhkjOPQIBBggqhkjO\n"
    "PQMBBwNCAATeJNt7jrWRPrB12vUnHgKgvleRb02FN53GXz7CNgUA9Eu3WCDqaym2\n"
    "+IL5BnKS0p3SHd4zFwUIuPu1vfHh2uS9o2kwZzAdBgNVHQ4EFgQUyOmyYfUy+9dm\n"
    "2eCnIp4eN1HX6c8wHwYDVR0jBBgwFoAUyOmyYfUy+9dm2eCnIp4eN1HX6c8wDwYD\n"
    "VR0TAQH/BAUwAwEB/zAUBgNVHREEDTALggl1bml0LnRlc3QwCgYIKoZIzj0EAwID\n"
    "RwAwRAIgU7emKQWNWJ0LKmGPtU6J0OkUFaJdNsefv5nGlG9f06UCIEoIONrW7y6k\n"
    "zmiIc8S1MMoLjvfM/pVvKmTZuntQNjlN\n"
    "-----END CERTIFICATE-----\n";
static const char KEY1[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgq7L/p5j/Zr3y28sD\n"
    "tCNK6eF3uWiSVDnXb/lX16TUE5ehRANCAATeJNt7jrWRPrB12vUnHgKgvleRb02F\n"
    "N53GXz7CNgUA9Eu3WCDqaym2+IL5BnKS0p3SHd4zFwUIuPu1vfHh2uS9\n"
    "-----END PRIVATE KEY-----\n";
static const char CERT2[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBlTCCATugAwIBAgIUJvnxL1Fntzw30H1Ud8bC10dNl/QwCgYIKoZIzj0EAwIw\n"
    "FDESMBAGA1UEAwwJdW5pdC50ZXN0MCAXDTI2MTEyMzE1NDkyN1oYDzIxMjYxMDMw\n"
    "MTU0OTI3WjAUMRIwEAYDVQQDDAl1bml0LnRlc3QwWTATBgcqhkjOPQIBBggqhkjO\n"
    "PQMBBwNCAAR8G4dbcu99k5EL/lD0vdWSzm1tQ0rs0gw0A2oj1XcS4TFFaQhgzocq\n"
    "X9GpRm6HYtdo2JN2Nn09Czwpx+9UnznBo2kwZzAdBgNVHQ4EFgQU22pfaCUre8/c\n"
    "eJ16OE1PviZbsZkwHwYDVR0jBBgwFoAU22pfaCUre8/ceJ16OE1PviZbsZkwDwYD\n"
    "VR0TAQH/BAUwAwEB/zAUBgNVHREEDTALggl1bml0LnRlc3QwCgYIKoZIzj0EAwID\n"
    "SAAwRQIgTeMzVunIl7u1RgugBa3R/y1IM84tHgFLsbW0UFypIvwCIQCLhPLWdoNS\n"
    "PPRFDJVLLjb5wBeWG8YpYKNwcmB5al1XIg==\n"
    "-----END CERTIFICATE-----\n";
static const char KEY2[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgU7/6/NymMKHm3qfU\n"
    "on0y/eY/sbbS2BitcNL5LKkNOguhRANCAAR8G4dbcu99k5EL/lD0vdWSzm1tQ0rs\n"
    "0gw0A2oj1XcS4TFFaQhgzocqX9GpRm6HYtdo2JN2Nn09Czwpx+9UnznB\n"
    "-----END PRIVATE KEY-----\n";

/* ------------------------------------------------------------------ helpers */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *scratch_dir(void)
{
    const char *base = getenv("TMPDIR");
    char *d = NULL;
    assert_true(asprintf(&d, "%s/test_hap_sock.XXXXXX", base && *base ? base : "/tmp") > 0);
    assert_non_null(mkdtemp(d));
    return d;
}

static void rm_rf(const char *dir)
{
    char *cmd = NULL;
    assert_true(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(cmd);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static char *join(const char *a, const char *b)
{
    char *s = NULL;
    assert_true(asprintf(&s, "%s%s", a, b) > 0);
    return s;
}

/* ------------------------------------------------------------------ replies */

typedef struct recorded {
    const char *reply;
    hap_kind kind;
} recorded;

/* Replies seen on Debian's HAProxy 2.6.12, byte for byte. */
static const recorded replies[] = {
    {"\n", HAP_OK},                                                   /* add map, del map */
    {"Key not found.\n\n", HAP_NOT_FOUND},                            /* del map */
    {"Unknown map identifier. Please use #<id> or <file>.\n\n", HAP_UNKNOWN_MAP},
    {"Permission denied\n\n", HAP_PERMISSION},                        /* level user */
    {"Unknown command, but maybe one of the following ones is a better match:\n"
     "  add map [@<ver>] <map> <key> <val>      : add a map entry (payload supported instead of key/val)\n\n",
     HAP_UNKNOWN_COMMAND},
    {"Transaction created for certificate /x/a.pem!\n\n", HAP_OK},
    {"Transaction updated for certificate /x/a.pem!\n\n", HAP_OK},
    {"inconsistencies between private key and certificate loaded '/x/a.pem'.\nCan't commit /x/a.pem!\n\n",
     HAP_KEY_MISMATCH},
    {"Committing /x/a.pem.\nSuccess!\n\n", HAP_OK},
    {"Committing /x/c.pem\nSuccess!\n\n", HAP_OK},
    {"Transaction aborted for certificate '/x/a.pem'!\n\n", HAP_OK},
    {"No ongoing transaction!\n\n", HAP_NOT_FOUND},
    {"No ongoing transaction! !\nCan't commit /x/a.pem!\n\n", HAP_NOT_FOUND},
    {"Can't replace a certificate which is not referenced by the configuration!\nCan't update /x/u.pem!\n\n",
     HAP_NOT_REFERENCED},
    {"New empty certificate store '/x/c.pem'!\n\n", HAP_OK},
    {"Certificate '/x/c.pem' already exists!\n\n", HAP_EXISTS},
    {"The ongoing transaction is about '/x/a.pem' but you are trying to set '/x/c.pem'\nCan't commit /x/c.pem!\n\n",
     HAP_BUSY},
    {"Inserting certificate '/x/c.pem' in crt-list '/x/list.txt'.\nSuccess!\n\n", HAP_OK},
    {"Can't edit the crt-list: crt-list '/nolist' does not exist!\n\n", HAP_UNKNOWN_LIST},
    {"Can't delete the entry: crt-list '/nolist' does not exist!\n\n", HAP_UNKNOWN_LIST},
    {"didn't find the specified filename\n\n", HAP_UNKNOWN_LIST},
    {"Can't edit the crt-list: certificate '/x/u.pem' does not exist!\n\n", HAP_NOT_FOUND},
    {"Entry '/x/c.pem' deleted in crtlist '/x/list.txt'!\n\n", HAP_OK},
    {"Can't delete the entry: certificate '/x/c.pem' can't be found in crt-list '/x/list.txt'!\n\n", HAP_NOT_FOUND},
    {"Certificate '/x/c.pem' deleted!\n\n", HAP_OK},
    {"Can't remove the certificate: certificate '/x/c.pem' doesn't exist!\n\n\n", HAP_NOT_FOUND},
    {"Can't remove the certificate: certificate '/x/c.pem' in use, can't be deleted!\n\n\n", HAP_IN_USE},
    {"Can't display the certificate: Not found or the certificate is a bundle!\n\n", HAP_NOT_FOUND},
    {"unable to load certificate from file '/x/a.pem'.\nCan't load the payload\nCan't update /x/a.pem!\n\n",
     HAP_ERROR},
    {"Can't allocate memory!\n\n", HAP_ERROR},
    {"", HAP_EMPTY},
};

static void test_classify_recorded(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        hap_kind got = hap_classify(replies[i].reply);
        if (got != replies[i].kind)
            fail_msg("reply %zu (%.60s): kind %d, expected %d", i, replies[i].reply, got, replies[i].kind);
    }
    assert_int_equal(hap_classify(NULL), HAP_EMPTY);
}

static void test_reply_helpers(void **state)
{
    (void)state;
    char line[64];
    hap_reply_line("inconsistencies.\nCan't commit /x!\n\n", line, sizeof(line));
    assert_string_equal(line, "inconsistencies.; Can't commit /x!");
    hap_reply_line("\n", line, sizeof(line));
    assert_string_equal(line, "");
    hap_reply_line("abc\x01" "def\n", line, 5);
    assert_string_equal(line, "abc");
    assert_true(hap_reply_has_line("Committing /x.\nSuccess!\n\n", "Success!"));
    assert_false(hap_reply_has_line("Committing /x.\nSuccess!!\n", "Success!"));
    assert_false(hap_reply_has_line("No Success!\n", "Success!"));
    assert_true(hap_word_ok("/etc/haproxy/certs/a.test.pem"));
    assert_true(hap_word_ok("tok-EN_1.thumb"));
    assert_false(hap_word_ok(""));
    assert_false(hap_word_ok("a b"));
    assert_false(hap_word_ok("a;b"));
    assert_false(hap_word_ok("a\\b"));
    assert_false(hap_word_ok("a#b"));
    assert_false(hap_word_ok("a\nb"));
    assert_false(hap_word_ok("a\"b"));
}

/* ------------------------------------------------------------------ fake server */

enum { FAKE_REPLY, FAKE_SILENT, FAKE_CLOSE };

typedef struct fake {
    char *dir, *path;
    int lfd;
    int mode;
    const char *reply;
    size_t reply_len;   /* 0: strlen(reply) */
    char got[8192];
    size_t got_len;
    pthread_t th;
} fake;

static int request_complete(const char *buf, size_t len)
{
    const char *pay = memmem(buf, len, " <<\n", 4);
    if (!pay)
        return len && buf[len - 1] == '\n';
    return len >= 2 && buf[len - 1] == '\n' && buf[len - 2] == '\n' && (size_t)(pay - buf) + 4 < len;
}

static void *fake_run(void *arg)
{
    fake *f = arg;
    int c = accept(f->lfd, NULL, NULL);
    if (c < 0)
        return NULL;
    while (f->got_len < sizeof(f->got) - 1) {
        ssize_t n = read(c, f->got + f->got_len, sizeof(f->got) - 1 - f->got_len);
        if (n <= 0)
            break;
        f->got_len += (size_t)n;
        if (request_complete(f->got, f->got_len))
            break;
    }
    if (f->mode == FAKE_REPLY) {
        /* In pieces of 3 bytes: the client must read to the close. */
        size_t len = f->reply_len ? f->reply_len : strlen(f->reply);
        for (size_t off = 0; off < len; off += 3) {
            size_t n = len - off < 3 ? len - off : 3;
            if (write(c, f->reply + off, n) < 0)
                break;
            usleep(1000);
        }
    } else if (f->mode == FAKE_SILENT) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        poll(&p, 1, 3000); /* until the client gives up */
    }
    close(c);
    return NULL;
}

static void fake_start(fake *f, int mode, const char *reply)
{
    memset(f, 0, sizeof(*f));
    f->dir = scratch_dir();
    f->path = join(f->dir, "/admin.sock");
    f->mode = mode;
    f->reply = reply;
    f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, f->path);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lfd, 4), 0);
    assert_int_equal(pthread_create(&f->th, NULL, fake_run, f), 0);
}

static void fake_stop(fake *f)
{
    pthread_join(f->th, NULL);
    close(f->lfd);
    rm_rf(f->dir);
    free(f->dir);
    free(f->path);
}

static int cmd(const char *path, unsigned timeout_ms, const char *command, const char *payload, char **reply,
               int *reached, char *err, size_t errlen)
{
    hap_sock s = {.path = path, .timeout_ms = timeout_ms};
    return hap_command(&s, command, payload, reply, reached, err, errlen);
}

static void test_fake_reply_in_pieces(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, FAKE_REPLY, "Committing /x/a.pem.\nSuccess!\n\n");
    char *reply = NULL, err[512];
    int reached;
    assert_int_equal(cmd(f.path, 3000, "commit ssl cert /x/a.pem", NULL, &reply, &reached, err, sizeof(err)), ACME_OK);
    assert_true(reached);
    assert_string_equal(reply, "Committing /x/a.pem.\nSuccess!\n\n");
    assert_int_equal(hap_classify(reply), HAP_OK);
    free(reply);
    fake_stop(&f);
    f.got[f.got_len] = '\0';
    assert_string_equal(f.got, "commit ssl cert /x/a.pem\n");
}

static void test_fake_payload_framing(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, FAKE_REPLY, "Transaction created for certificate /x/a.pem!\n\n");
    char *reply = NULL, err[512];
    int reached;
    /* No final newline in the payload: the client adds it, then the empty line. */
    assert_int_equal(cmd(f.path, 3000, "set ssl cert /x/a.pem", "LINE1\nLINE2", &reply, &reached, err,
                         sizeof(err)), ACME_OK);
    free(reply);
    fake_stop(&f);
    f.got[f.got_len] = '\0';
    assert_string_equal(f.got, "set ssl cert /x/a.pem <<\nLINE1\nLINE2\n\n");

    fake_start(&f, FAKE_REPLY, "Inserting certificate '/x/c.pem' in crt-list '/x/l'.\nSuccess!\n\n");
    assert_int_equal(cmd(f.path, 3000, "add ssl crt-list /x/l", "/x/c.pem [alpn h2] c.test\n", &reply, &reached,
                         err, sizeof(err)), ACME_OK);
    free(reply);
    fake_stop(&f);
    f.got[f.got_len] = '\0';
    assert_string_equal(f.got, "add ssl crt-list /x/l <<\n/x/c.pem [alpn h2] c.test\n\n");

    /* A newline in the command itself is refused before anything is sent. */
    assert_int_equal(cmd("/nonexistent", 3000, "show\ninfo", NULL, &reply, &reached, err, sizeof(err)),
                     ACME_E_INVALID_ARG);
    assert_null(reply);
}

static void test_fake_nul_in_reply(void **state)
{
    (void)state;
    /* "show ssl crt-list" in 2.6 sends a NUL inside the options. */
    static const char with_nul[] = "# /l\n/x/c.pem [alpn h2,http/1.1\0] c.test\n\n";
    fake f;
    fake_start(&f, FAKE_REPLY, with_nul);
    f.reply_len = sizeof(with_nul) - 1;
    char *reply = NULL, err[512];
    int reached;
    assert_int_equal(cmd(f.path, 3000, "show ssl crt-list /l", NULL, &reply, &reached, err, sizeof(err)), ACME_OK);
    assert_string_equal(reply, "# /l\n/x/c.pem [alpn h2,http/1.1 ] c.test\n\n");
    free(reply);
    fake_stop(&f);
}

static void test_fake_silent_times_out(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, FAKE_SILENT, NULL);
    char *reply = NULL, err[512];
    int reached;
    double t0 = now_s();
    assert_int_equal(cmd(f.path, 300, "show ssl cert", NULL, &reply, &reached, err, sizeof(err)), ACME_E_TIMEOUT);
    double took = now_s() - t0;
    assert_true(took >= 0.25 && took < 1.5);
    assert_true(reached);
    assert_null(reply);
    assert_non_null(strstr(err, "did not answer `show ssl cert` within 300 ms"));
    fake_stop(&f);
}

static void test_fake_close_without_reply(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, FAKE_CLOSE, NULL);
    char *reply = NULL, err[512];
    int reached;
    assert_int_equal(cmd(f.path, 3000, "add map /m k v", NULL, &reply, &reached, err, sizeof(err)), ACME_E_NETWORK);
    assert_true(reached);
    assert_non_null(strstr(err, "without an answer"));
    fake_stop(&f);
}

/* A reply whose last line ends in a bare CR (no LF after it). HAProxy
 * itself always ends lines with LF, so only the fake server can send
 * this; the line walker once advanced by the CR-trimmed length there and
 * spun forever at 100 % CPU. An alarm turns such a hang into a failure. */
static void on_hang(int sig)
{
    (void)sig;
    static const char msg[] = "reply parsing did not finish within its alarm: an endless loop\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    _exit(1);
}

static void test_reply_bare_cr_ends(void **state)
{
    (void)state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_hang;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    alarm(10); /* the whole case takes milliseconds, even under valgrind */

    /* The helpers on their own: a trailing CR is a line end like CRLF. */
    assert_true(hap_reply_has_line("Committing /x.\nSuccess!\r", "Success!"));
    assert_false(hap_reply_has_line("Committing /x.\nFailure\r", "Success!"));
    assert_false(hap_reply_has_line("\r", "Success!"));
    assert_false(hap_reply_has_line("\r\r\r", ""));
    assert_true(hap_reply_has_line("a\r\n\r", ""));
    assert_int_equal(hap_classify("Committing /x.\nSuccess!\r"), HAP_OK);
    assert_int_equal(hap_classify("something odd\r"), HAP_ERROR);

    /* The same through the socket client, as the module sees it. */
    static const char *tails[] = { "Committing /x/a.pem.\nSuccess!\r", "Can't commit /x/a.pem!\r" };
    static const hap_kind kinds[] = { HAP_OK, HAP_ERROR };
    for (size_t i = 0; i < 2; i++) {
        fake f;
        fake_start(&f, FAKE_REPLY, tails[i]);
        char *reply = NULL, err[512];
        int reached;
        assert_int_equal(cmd(f.path, 3000, "commit ssl cert /x/a.pem", NULL, &reply, &reached, err,
                             sizeof(err)), ACME_OK);
        assert_string_equal(reply, tails[i]);
        assert_int_equal(hap_classify(reply), kinds[i]);
        char line[128];
        hap_reply_line(reply, line, sizeof(line));
        assert_null(strchr(line, '\r'));
        free(reply);
        fake_stop(&f);
    }
    alarm(0);
    assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
}

static void test_missing_socket(void **state)
{
    (void)state;
    char *dir = scratch_dir();
    char *path = join(dir, "/nope.sock");
    char *reply = NULL, err[512];
    int reached = 1;
    double t0 = now_s();
    assert_int_equal(cmd(path, 3000, "show info", NULL, &reply, &reached, err, sizeof(err)), ACME_E_NETWORK);
    double took = now_s() - t0;
    /* Retried briefly (HAProxy may be restarting), not for the whole timeout. */
    assert_true(took >= 0.2 && took < 1.0);
    assert_false(reached);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file"));
    assert_non_null(strstr(err, "stats socket"));
    /* A short timeout bounds the retries too. */
    t0 = now_s();
    assert_int_equal(cmd(path, 100, "show info", NULL, &reply, &reached, err, sizeof(err)), ACME_E_NETWORK);
    assert_true(now_s() - t0 < 0.5);
    rm_rf(dir);
    free(dir);
    free(path);
}

static void test_stale_socket(void **state)
{
    (void)state;
    /* A socket file nobody listens on: what HAProxy leaves when stopped. */
    char *dir = scratch_dir();
    char *path = join(dir, "/admin.sock");
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    char *reply = NULL, err[512];
    int reached = 1;
    assert_int_equal(cmd(path, 500, "show info", NULL, &reply, &reached, err, sizeof(err)), ACME_E_NETWORK);
    assert_false(reached);
    assert_non_null(strstr(err, "Connection refused"));
    assert_non_null(strstr(err, "nobody listens"));
    /* Not a socket at all. */
    char *file = join(dir, "/plain");
    write_text(file, "x");
    assert_int_equal(cmd(file, 500, "show info", NULL, &reply, &reached, err, sizeof(err)), ACME_E_NETWORK);
    assert_non_null(strstr(err, "Connection refused"));
    /* A path too long for a Unix socket. */
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    assert_int_equal(cmd(longp, 500, "show info", NULL, &reply, &reached, err, sizeof(err)), ACME_E_INVALID_ARG);
    rm_rf(dir);
    free(dir);
    free(path);
    free(file);
}

static void test_permission_denied(void **state)
{
    (void)state;
    fake f;
    fake_start(&f, FAKE_CLOSE, NULL);
    /* Root passes file permissions: check as nobody in a child. */
    int root = geteuid() == 0;
    assert_int_equal(chmod(f.dir, 0711), 0);
    assert_int_equal(chmod(f.path, root ? 0600 : 0), 0);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        if (root && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        char *reply = NULL, err[512];
        int reached = 1;
        int rc = cmd(f.path, 500, "show info", NULL, &reply, &reached, err, sizeof(err));
        dprintf(pfd[1], "%d %d %s", rc, reached, err);
        _exit(0);
    }
    close(pfd[1]);
    char buf[600] = "";
    ssize_t n = read(pfd[0], buf, sizeof(buf) - 1);
    close(pfd[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_int_equal(atoi(buf), ACME_E_NETWORK);
    assert_non_null(strstr(buf, " 0 "));
    assert_non_null(strstr(buf, "Permission denied"));
    assert_non_null(strstr(buf, "write access"));
    /* Unblock the fake server, which waits for a connection. */
    chmod(f.path, 0600);
    char *reply = NULL, err[512];
    int reached;
    cmd(f.path, 500, "quit", NULL, &reply, &reached, err, sizeof(err));
    free(reply);
    fake_stop(&f);
}

/* ------------------------------------------------------------------ configuration */

static int configure(hap *h, char *err, size_t errlen, ...)
{
    const char *keys[32], *values[32];
    size_t n = 0;
    va_list ap;
    va_start(ap, errlen);
    const char *k;
    while ((k = va_arg(ap, const char *)) && n < 32) {
        keys[n] = k;
        values[n++] = va_arg(ap, const char *);
    }
    va_end(ap);
    memset(h, 0, sizeof(*h));
    err[0] = '\0';
    int rc = hap_configure(h, keys, values, n, err, errlen);
    return rc;
}

#define REFUSED(text, ...)                                                    \
    do {                                                                      \
        hap h_;                                                               \
        char e_[512];                                                         \
        assert_int_equal(configure(&h_, e_, sizeof(e_), __VA_ARGS__, NULL), ACME_E_INVALID_ARG); \
        if (!strstr(e_, text))                                                \
            fail_msg("expected \"%s\" in: %s", text, e_);                     \
        hap_config_free(&h_);                                                 \
    } while (0)

static void test_config(void **state)
{
    (void)state;
    hap h;
    char err[512];
    assert_int_equal(configure(&h, err, sizeof(err), "socket", "/run/haproxy/admin.sock", "map", "/etc/m.map",
                               "alpn-crt-list", "/etc/a.list", "crt-dir", "/etc/certs//", NULL), ACME_OK);
    assert_string_equal(h.crt_dir, "/etc/certs");
    assert_string_equal(h.cert_dir, "/etc/certs");
    assert_string_equal(h.alpn_prefix, "/acme-tls-alpn-01/");
    assert_int_equal(h.sock.timeout_ms, 3000);
    assert_int_equal(h.cert_mode, 0600);
    assert_int_equal(h.types, ACME_MODULE_CHALLENGE(ACME_CHALLENGE_HTTP_01) |
                                  ACME_MODULE_CHALLENGE(ACME_CHALLENGE_TLS_ALPN_01));
    hap_config_free(&h);

    assert_int_equal(configure(&h, err, sizeof(err), "socket", "/s", "cert-dir", "/c", "crt-list", "/l",
                               "timeout", "500", "cert-mode", "0640", "cert-path.www", "/etc/site.pem",
                               "crt-list-options", "[alpn h2,http/1.1]", NULL), ACME_OK);
    assert_int_equal(h.types, 0);
    assert_int_equal(h.cert_mode, 0640);
    assert_int_equal(h.sock.timeout_ms, 500);
    char *p = hap_cert_file(&h, "www");
    assert_string_equal(p, "/etc/site.pem");
    free(p);
    p = hap_cert_file(&h, "_.example.org");
    assert_string_equal(p, "/c/_.example.org.pem");
    free(p);
    assert_null(hap_cert_file(&h, ".hidden"));
    assert_null(hap_cert_file(&h, "a b"));
    hap_config_free(&h);

    REFUSED("socket: missing", "cert-dir", "/c");
    REFUSED("cert-dir: missing", "socket", "/s");
    REFUSED("unknown key", "socket", "/s", "cert-dir", "/c", "crtlist", "/l");
    REFUSED("given twice", "socket", "/s", "cert-dir", "/c", "map", "/a", "map", "/b");
    REFUSED("not both", "socket", "/s", "crt-list", "/l", "crt-dir", "/d");
    REFUSED("not an absolute path", "socket", "/s", "cert-dir", "certs");
    REFUSED("command line", "socket", "/s", "cert-dir", "/c", "map", "/my maps/m.map");
    REFUSED("command line", "socket", "/s", "cert-dir", "/c", "map", "/m;show info");
    REFUSED("timeout", "socket", "/s", "cert-dir", "/c", "timeout", "5");
    REFUSED("timeout", "socket", "/s", "cert-dir", "/c", "timeout", "3s");
    REFUSED("cert-mode", "socket", "/s", "cert-dir", "/c", "cert-mode", "0644");
    REFUSED("cert-mode", "socket", "/s", "cert-dir", "/c", "cert-mode", "0200");
    REFUSED("crt-list-options", "socket", "/s", "cert-dir", "/c", "crt-list-options", "alpn h2");
    REFUSED("no certificate id", "socket", "/s", "cert-dir", "/c", "cert-path.", "/x.pem");
    /* The cluster's settings (haproxy_etcd.c): read here, used by
     * hap_cluster_start (cluster_haproxy runs it against a real etcd). */
    assert_int_equal(configure(&h, err, sizeof(err), "socket", "/s", "cert-dir", "/c", "map", "/m",
                               "etcd-endpoints", "http://127.0.0.1:2379, https://10.0.0.2:2379 http://h3:2379",
                               "etcd-node-name", "web-1-haproxy", "etcd-wait", "800", NULL), ACME_OK);
    assert_non_null(h.cluster);
    hap_config_free(&h);
    assert_null(h.cluster);
    assert_int_equal(configure(&h, err, sizeof(err), "socket", "/s", "cert-dir", "/c", NULL), ACME_OK);
    assert_null(h.cluster);
    hap_config_free(&h);
    REFUSED("without etcd-endpoints", "socket", "/s", "cert-dir", "/c", "etcd-node-name", "n1");
    REFUSED("etcd client URLs", "socket", "/s", "cert-dir", "/c", "etcd-endpoints", "127.0.0.1:2379");
    REFUSED("no endpoints", "socket", "/s", "cert-dir", "/c", "etcd-endpoints", " , ");
    REFUSED("ends in '/'", "socket", "/s", "cert-dir", "/c", "etcd-endpoints", "http://e:2379", "etcd-prefix",
            "/libacme");
    REFUSED("etcd-wait", "socket", "/s", "cert-dir", "/c", "etcd-endpoints", "http://e:2379", "etcd-wait", "10");
    REFUSED("without etcd-username", "socket", "/s", "cert-dir", "/c", "etcd-endpoints", "http://e:2379",
            "etcd-password-file", "/dev/null");
    REFUSED("is empty", "socket", "/s", "cert-dir", "/c", "etcd-endpoints", "http://e:2379", "etcd-username", "u",
            "etcd-password-file", "/dev/null");
    REFUSED("longer than", "socket",
            "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            "aaaaaaaaaa", "cert-dir", "/c");
}

/* ------------------------------------------------------------------ PEM and files */

static void test_pem(void **state)
{
    (void)state;
    char *messy = NULL;
    assert_true(asprintf(&messy, "\r\n%s\r\n\r\n", CERT1) > 0);
    for (char *q = messy; (q = strstr(q, "\n")) && q[1]; q++)
        ; /* keep as is */
    char *pem = hap_pem_payload(messy, KEY1);
    assert_non_null(pem);
    assert_null(strstr(pem, "\n\n"));
    assert_null(strchr(pem, '\r'));
    assert_int_equal(pem[0], '-');
    assert_int_equal(strlen(pem), strlen(CERT1) + strlen(KEY1));
    assert_null(hap_pem_payload("no pem", KEY1));
    assert_null(hap_pem_payload(CERT1, "no key"));

    hap h;
    memset(&h, 0, sizeof(h));
    assert_int_equal(hap_pem_check(&h, pem), ACME_OK);
    char *bad = hap_pem_payload(CERT1, KEY2);
    assert_int_equal(hap_pem_check(&h, bad), ACME_E_KEY_MISMATCH);
    assert_non_null(strstr(h.err, "does not belong"));
    char *sha1 = hap_pem_sha1(pem);
    assert_non_null(sha1);
    assert_int_equal(strlen(sha1), 40);
    for (const char *c = sha1; *c; c++)
        assert_true((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'F'));
    free(sha1);
    free(bad);
    free(pem);
    free(messy);

    char *sni = hap_alpn_sni("192.0.2.7");
    assert_string_equal(sni, "7.2.0.192.in-addr.arpa");
    free(sni);
    sni = hap_alpn_sni("2001:db8::1");
    assert_string_equal(sni, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    free(sni);
    sni = hap_alpn_sni("WWW.Example.ORG");
    assert_string_equal(sni, "www.example.org");
    free(sni);
}

static void test_files(void **state)
{
    (void)state;
    char *dir = scratch_dir();
    hap h;
    memset(&h, 0, sizeof(h));
    char *f = join(dir, "/a.pem");
    int changed = -1;
    assert_int_equal(hap_write_file(&h, f, "one\n", 4, 0600, &changed), ACME_OK);
    assert_int_equal(changed, 1);
    struct stat st;
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    struct timespec before = st.st_mtim;
    /* Same bytes: not rewritten. */
    assert_int_equal(hap_write_file(&h, f, "one\n", 4, 0600, &changed), ACME_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(stat(f, &st), 0);
    assert_true(st.st_mtim.tv_sec == before.tv_sec && st.st_mtim.tv_nsec == before.tv_nsec);
    assert_int_equal(hap_write_file(&h, f, "two\n", 4, 0640, &changed), ACME_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    char *t = read_text(f);
    assert_string_equal(t, "two\n");
    free(t);
    /* No temporary file left (they would be dot files). */
    char *ls = NULL;
    assert_true(asprintf(&ls, "test -z \"$(ls -A '%s' | grep '^\\.')\"", dir) > 0);
    assert_int_equal(system(ls), 0);
    free(ls);

    /* A crt-list keeps its mode; a line is added once. */
    char *list = join(dir, "/certs.crt-list");
    write_text(list, "# comment\n/etc/x.pem [alpn h2] x.test\n/etc/y.pem");
    assert_int_equal(chmod(list, 0644), 0);
    assert_int_equal(hap_crt_list_file_add(&h, list, "/etc/x.pem", NULL), ACME_OK);
    assert_int_equal(hap_crt_list_file_add(&h, list, "/etc/y.pem", NULL), ACME_OK);
    t = read_text(list);
    assert_string_equal(t, "# comment\n/etc/x.pem [alpn h2] x.test\n/etc/y.pem");
    free(t);
    assert_int_equal(hap_crt_list_file_add(&h, list, "/etc/z.pem", "[alpn h2,http/1.1]"), ACME_OK);
    assert_int_equal(hap_crt_list_file_add(&h, list, "/etc/x", NULL), ACME_OK);
    t = read_text(list);
    assert_string_equal(t, "# comment\n/etc/x.pem [alpn h2] x.test\n/etc/y.pem\n/etc/z.pem [alpn h2,http/1.1]\n"
                           "/etc/x\n");
    free(t);
    assert_int_equal(stat(list, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    char *nolist = join(dir, "/missing.crt-list");
    assert_int_equal(hap_crt_list_file_add(&h, nolist, "/etc/x.pem", NULL), ACME_E_STORAGE);
    assert_non_null(strstr(h.err, "does not exist"));
    /* Not a directory we can write to. */
    char *inval = join(dir, "/no/such/dir/a.pem");
    assert_int_equal(hap_write_file(&h, inval, "x", 1, 0600, &changed), ACME_E_STORAGE);
    rm_rf(dir);
    free(dir);
    free(f);
    free(list);
    free(nolist);
    free(inval);
}

/* ------------------------------------------------------------------ a real HAProxy */

typedef struct real {
    char *dir, *sock, *map, *list, *alpn, *certs, *existing;
    pid_t pid;
    hap h;
} real;

static real R;

static int real_cmd(const char *command, const char *payload, char **reply)
{
    char err[512];
    int reached;
    int rc = cmd(R.sock, 3000, command, payload, reply, &reached, err, sizeof(err));
    if (rc)
        fprintf(stderr, "%s: %s\n", command, err);
    return rc;
}

static hap_kind real_kind(const char *command, const char *payload)
{
    char *reply = NULL;
    assert_int_equal(real_cmd(command, payload, &reply), ACME_OK);
    hap_kind k = hap_classify(reply);
    free(reply);
    return k;
}

static int real_setup(void **state)
{
    (void)state;
    const char *bin = getenv("HAPROXY");
    memset(&R, 0, sizeof(R));
    if (!bin || !*bin || access(bin, X_OK) != 0)
        return 0; /* the tests skip */
    R.dir = scratch_dir();
    R.sock = join(R.dir, "/admin.sock");
    R.map = join(R.dir, "/acme.map");
    R.list = join(R.dir, "/certs.crt-list");
    R.alpn = join(R.dir, "/acme-tls.crt-list");
    R.certs = join(R.dir, "/certs");
    R.existing = join(R.certs, "/existing.pem");
    assert_int_equal(mkdir(R.certs, 0700), 0);
    char *pem = join(CERT1, KEY1);
    write_text(R.existing, pem);
    free(pem);
    write_text(R.map, "");
    write_text(R.alpn, "");
    char *line = join(R.existing, "\n");
    write_text(R.list, line);
    free(line);
    char *cfg = NULL, *cfg_path = join(R.dir, "/haproxy.cfg");
    int id = (int)getpid();
    assert_true(asprintf(&cfg,
                         "global\n"
                         "    stats socket %s mode 600 level admin\n"
                         "defaults\n"
                         "    mode http\n"
                         "    timeout connect 1s\n"
                         "    timeout client 1s\n"
                         "    timeout server 1s\n"
                         "frontend http\n"
                         "    bind abns@unit-%d-http\n"
                         "    http-request return status 200 content-type text/plain lf-string \"%%[path,field(-1,/),map(%s)]\" if "
                         "{ path,field(-1,/),map(%s) -m found }\n"
                         "frontend https\n"
                         "    bind abns@unit-%d-https ssl crt-list %s\n"
                         "    http-request return status 200\n"
                         "frontend acme_tls\n"
                         "    mode tcp\n"
                         "    bind abns@unit-%d-alpn ssl crt-list %s strict-sni alpn acme-tls/1\n"
                         "    tcp-request content reject\n",
                         R.sock, id, R.map, R.map, id, R.list, id, R.alpn) > 0);
    write_text(cfg_path, cfg);
    free(cfg);
    char *log = join(R.dir, "/haproxy.log");
    R.pid = fork();
    assert_true(R.pid >= 0);
    if (R.pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(bin, bin, "-f", cfg_path, "-db", (char *)NULL);
        _exit(127);
    }
    free(cfg_path);
    for (int i = 0; i < 100; i++) {
        char *reply = NULL;
        char err[512];
        int reached;
        if (access(R.sock, F_OK) == 0 &&
            cmd(R.sock, 1000, "show info", NULL, &reply, &reached, err, sizeof(err)) == ACME_OK) {
            free(reply);
            free(log);
            return 0;
        }
        if (waitpid(R.pid, NULL, WNOHANG) == R.pid) {
            char *text = read_text(log);
            fprintf(stderr, "haproxy exited at start:\n%s\n", text ? text : "");
            free(text);
            R.pid = 0;
            free(log);
            return -1;
        }
        usleep(100000);
    }
    free(log);
    return -1;
}

static int real_teardown(void **state)
{
    (void)state;
    if (R.pid > 0) {
        kill(R.pid, SIGTERM);
        waitpid(R.pid, NULL, 0);
    }
    if (R.dir)
        rm_rf(R.dir);
    hap_config_free(&R.h);
    free(R.dir);
    free(R.sock);
    free(R.map);
    free(R.list);
    free(R.alpn);
    free(R.certs);
    free(R.existing);
    return 0;
}

static void need_real(void)
{
    if (!R.dir)
        skip();
}

/* The module's instance for this HAProxy. */
static hap *real_hap(void)
{
    hap_config_free(&R.h);
    char err[512];
    assert_int_equal(configure(&R.h, err, sizeof(err), "socket", R.sock, "map", R.map, "alpn-crt-list", R.alpn,
                               "cert-dir", R.certs, "crt-list", R.list, "timeout", "2000", NULL), ACME_OK);
    return &R.h;
}

static void test_real_replies(void **state)
{
    (void)state;
    need_real();
    char *c = NULL;
#define K(want, ...)                                                                     \
    do {                                                                                 \
        free(c);                                                                         \
        assert_true(asprintf(&c, __VA_ARGS__) > 0);                                      \
        hap_kind k_ = real_kind(c, NULL);                                                \
        if (k_ != (want))                                                                \
            fail_msg("`%s`: kind %d, expected %d", c, k_, (want));                       \
    } while (0)
    K(HAP_OK, "add map %s tok1 v1", R.map);
    K(HAP_OK, "del map %s tok1", R.map);
    K(HAP_NOT_FOUND, "del map %s tok1", R.map);
    K(HAP_UNKNOWN_MAP, "add map %s/other.map k v", R.dir);
    K(HAP_UNKNOWN_COMMAND, "no such command");
    K(HAP_NOT_FOUND, "abort ssl cert %s", R.existing);
    K(HAP_NOT_FOUND, "commit ssl cert %s", R.existing);
    K(HAP_IN_USE, "del ssl cert %s", R.existing);
    K(HAP_NOT_FOUND, "del ssl cert %s/nothing.pem", R.dir);
    K(HAP_UNKNOWN_LIST, "show ssl crt-list %s/nolist", R.dir);
    K(HAP_NOT_FOUND, "show ssl cert %s/nothing.pem", R.dir);
    K(HAP_OK, "new ssl cert %s/n.pem", R.dir);
    K(HAP_EXISTS, "new ssl cert %s/n.pem", R.dir);
    K(HAP_OK, "del ssl cert %s/n.pem", R.dir);
    free(c);
    c = NULL;
    char *pem = join(CERT2, KEY2);
    char *set_unknown = NULL, *set_existing = NULL, *commit = NULL, *abort_cmd = NULL, *add = NULL;
    assert_true(asprintf(&set_unknown, "set ssl cert %s/unknown.pem", R.dir) > 0);
    assert_true(asprintf(&set_existing, "set ssl cert %s", R.existing) > 0);
    assert_true(asprintf(&commit, "commit ssl cert %s", R.existing) > 0);
    assert_true(asprintf(&abort_cmd, "abort ssl cert %s", R.existing) > 0);
    assert_true(asprintf(&add, "add ssl crt-list %s/nolist", R.dir) > 0);
    assert_int_equal(real_kind(set_unknown, pem), HAP_NOT_REFERENCED);
    assert_int_equal(real_kind(add, "/x.pem\n"), HAP_UNKNOWN_LIST);
    /* A mismatched pair: accepted by set, refused by commit. */
    char *bad = join(CERT2, KEY1);
    assert_int_equal(real_kind(set_existing, bad), HAP_OK);
    assert_int_equal(real_kind(commit, NULL), HAP_KEY_MISMATCH);
    assert_int_equal(real_kind(abort_cmd, NULL), HAP_OK);
    /* The 2.6 trap the module guards against: a set for another name
     * lands in the open transaction. */
    assert_int_equal(real_kind(set_existing, pem), HAP_OK);
    char *reply = NULL;
    assert_int_equal(real_cmd(set_unknown, pem, &reply), ACME_OK);
    assert_non_null(strstr(reply, "Transaction updated for certificate"));
    free(reply);
    assert_int_equal(real_kind(abort_cmd, NULL), HAP_OK);
    /* Too big for HAProxy's buffer: it closes without a word. */
    size_t big_len = 20000;
    char *big = malloc(big_len + 1);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (i % 64 == 63) ? '\n' : 'A';
    big[big_len] = '\0';
    char err[512];
    int reached;
    reply = NULL;
    int rc = cmd(R.sock, 3000, set_existing, big, &reply, &reached, err, sizeof(err));
    assert_int_equal(rc, ACME_E_NETWORK);
    assert_non_null(strstr(err, "tune.bufsize"));
    assert_int_equal(real_kind(abort_cmd, NULL), HAP_NOT_FOUND);
    free(big);
    free(bad);
    free(pem);
    free(set_unknown);
    free(set_existing);
    free(commit);
    free(abort_cmd);
    free(add);
#undef K
}

static int map_entries(const char *token, const char *value)
{
    char *c = NULL, *reply = NULL;
    assert_true(asprintf(&c, "show map %s", R.map) > 0);
    assert_int_equal(real_cmd(c, NULL, &reply), ACME_OK);
    int n = 0;
    for (char *l = strtok(reply, "\n"); l; l = strtok(NULL, "\n")) {
        char *k = strchr(l, ' ');
        if (!k)
            continue;
        k++;
        char *v = strchr(k, ' ');
        if (v && (size_t)(v - k) == strlen(token) && !strncmp(k, token, strlen(token)) &&
            (!value || !strcmp(v + 1, value)))
            n++;
    }
    free(c);
    free(reply);
    return n;
}

static void test_real_map(void **state)
{
    (void)state;
    need_real();
    hap *h = real_hap();
    assert_int_equal(hap_map_publish(h, "tokA", "tokA.first"), ACME_OK);
    /* Published again (a retry): one entry, the new value. */
    assert_int_equal(hap_map_publish(h, "tokA", "tokA.second"), ACME_OK);
    assert_int_equal(map_entries("tokA", NULL), 1);
    assert_int_equal(map_entries("tokA", "tokA.second"), 1);
    assert_int_equal(hap_map_publish(h, "tokB", "tokB.x"), ACME_OK);
    assert_int_equal(hap_map_unpublish(h, "tokA"), ACME_OK);
    assert_int_equal(hap_map_unpublish(h, "tokA"), ACME_OK); /* gone already: fine */
    assert_int_equal(map_entries("tokA", NULL), 0);
    assert_int_equal(map_entries("tokB", "tokB.x"), 1);
    assert_int_equal(hap_map_unpublish(h, "tokB"), ACME_OK);
    assert_int_equal(hap_map_publish(h, "bad token", "x"), ACME_E_INVALID_ARG);
    /* Nothing went to the map file. */
    char *t = read_text(R.map);
    assert_string_equal(t, "");
    free(t);
}

static char *served(const char *path)
{
    char *c = NULL, *reply = NULL, *fp = NULL;
    assert_true(asprintf(&c, "show ssl cert %s", path) > 0);
    assert_int_equal(real_cmd(c, NULL, &reply), ACME_OK);
    const char *tag = strstr(reply, "SHA1 FingerPrint: ");
    if (tag)
        fp = strndup(tag + strlen("SHA1 FingerPrint: "), 40);
    free(c);
    free(reply);
    return fp;
}

static int transaction_open(void)
{
    char *reply = NULL;
    assert_int_equal(real_cmd("show ssl cert", NULL, &reply), ACME_OK);
    int open_ = strstr(reply, "# transaction") != NULL;
    free(reply);
    return open_;
}

static void test_real_install(void **state)
{
    (void)state;
    need_real();
    hap *h = real_hap();
    char *path = join(R.certs, "/new.test.pem");
    char *pem1 = join(CERT1, KEY1), *pem2 = join(CERT2, KEY2);
    char *fp1 = hap_pem_sha1(pem1), *fp2 = hap_pem_sha1(pem2);

    /* A name HAProxy does not serve: new ssl cert + crt-list, and disk. */
    assert_int_equal(hap_install(h, "new.test", CERT1, KEY1), ACME_OK);
    char *fp = served(path);
    assert_non_null(fp);
    assert_string_equal(fp, fp1);
    free(fp);
    char *t = read_text(path);
    assert_string_equal(t, pem1);
    free(t);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    t = read_text(R.list);
    assert_non_null(strstr(t, path));
    free(t);
    char *c = NULL, *reply = NULL;
    assert_true(asprintf(&c, "show ssl crt-list %s", R.list) > 0);
    assert_int_equal(real_cmd(c, NULL, &reply), ACME_OK);
    assert_non_null(strstr(reply, path));
    free(reply);

    /* The same again (the engine at start): no transaction, nothing changes. */
    assert_int_equal(hap_install(h, "new.test", CERT1, KEY1), ACME_OK);
    assert_int_equal(real_cmd(c, NULL, &reply), ACME_OK);
    assert_non_null(strstr(reply, path));
    assert_null(strstr(strstr(reply, path) + 1, path)); /* listed once */
    free(reply);
    free(c);

    /* A mismatched key: refused at commit, aborted, old one stays. */
    assert_int_equal(hap_install(h, "new.test", CERT2, KEY1), ACME_E_KEY_MISMATCH);
    assert_non_null(strstr(h->err, "inconsistencies between private key and certificate"));
    assert_non_null(strstr(h->err, "transaction aborted"));
    assert_false(transaction_open());
    fp = served(path);
    assert_string_equal(fp, fp1);
    free(fp);
    t = read_text(path);
    assert_string_equal(t, pem1);
    free(t);

    /* A transaction of ours left open (a crash between set and commit):
     * aborted, then the install goes through. */
    char *set = NULL;
    assert_true(asprintf(&set, "set ssl cert %s", path) > 0);
    assert_int_equal(real_kind(set, pem1), HAP_OK);
    assert_true(transaction_open());
    assert_int_equal(hap_install(h, "new.test", CERT2, KEY2), ACME_OK);
    assert_false(transaction_open());
    fp = served(path);
    assert_string_equal(fp, fp2);
    free(fp);
    t = read_text(path);
    assert_string_equal(t, pem2);
    free(t);

    /* Somebody else's transaction (a name outside cert-dir): left alone,
     * we fail. */
    char *other = NULL;
    assert_true(asprintf(&other, "new ssl cert %s/foreign.pem", R.dir) > 0);
    assert_int_equal(real_kind(other, NULL), HAP_OK);
    free(other);
    assert_true(asprintf(&other, "set ssl cert %s/foreign.pem", R.dir) > 0);
    assert_int_equal(real_kind(other, pem2), HAP_OK);
    assert_int_equal(hap_install(h, "new.test", CERT1, KEY1), ACME_E_CALLBACK);
    assert_non_null(strstr(h->err, "open certificate transaction"));
    assert_true(transaction_open());
    free(other);
    assert_true(asprintf(&other, "abort ssl cert %s/foreign.pem", R.dir) > 0);
    assert_int_equal(real_kind(other, NULL), HAP_OK);
    fp = served(path);
    assert_string_equal(fp, fp2);
    free(fp);

    /* A list HAProxy does not know: refused before anything is created. */
    hap_config_free(&R.h);
    char err[512], *nolist = join(R.dir, "/nolist");
    write_text(nolist, "");
    assert_int_equal(configure(&R.h, err, sizeof(err), "socket", R.sock, "cert-dir", R.certs, "crt-list", nolist,
                               NULL), ACME_OK);
    assert_int_equal(hap_install(&R.h, "other.test", CERT1, KEY1), ACME_E_INVALID_ARG);
    assert_non_null(strstr(R.h.err, "crt-list"));
    char *other_path = join(R.certs, "/other.test.pem");
    assert_null(served(other_path));
    free(other_path);
    free(nolist);

    free(other);
    free(set);
    free(path);
    free(pem1);
    free(pem2);
    free(fp1);
    free(fp2);
}

static void test_real_alpn(void **state)
{
    (void)state;
    need_real();
    hap *h = real_hap();
    char *c = NULL, *reply = NULL;
    assert_true(asprintf(&c, "show ssl crt-list %s", R.alpn) > 0);
    assert_int_equal(hap_alpn_publish(h, "Unit.Test", CERT1, KEY1), ACME_OK);
    assert_int_equal(real_cmd(c, NULL, &reply), ACME_OK);
    assert_non_null(strstr(reply, "/acme-tls-alpn-01/unit.test.pem unit.test"));
    free(reply);
    /* Again (an earlier attempt left it): still one line, new certificate. */
    assert_int_equal(hap_alpn_publish(h, "unit.test", CERT2, KEY2), ACME_OK);
    assert_int_equal(real_cmd(c, NULL, &reply), ACME_OK);
    char *first = strstr(reply, "/acme-tls-alpn-01/unit.test.pem");
    assert_non_null(first);
    assert_null(strstr(first + 1, "/acme-tls-alpn-01/unit.test.pem"));
    free(reply);
    char *pem2 = join(CERT2, KEY2), *fp2 = hap_pem_sha1(pem2), *fp = served("/acme-tls-alpn-01/unit.test.pem");
    assert_string_equal(fp, fp2);
    free(fp);
    free(fp2);
    free(pem2);
    assert_int_equal(hap_alpn_unpublish(h, "unit.test"), ACME_OK);
    assert_int_equal(hap_alpn_unpublish(h, "unit.test"), ACME_OK);
    assert_int_equal(real_cmd(c, NULL, &reply), ACME_OK);
    assert_null(strstr(reply, "unit.test"));
    free(reply);
    assert_null(served("/acme-tls-alpn-01/unit.test.pem"));
    /* A pair HAProxy refuses: nothing left behind. */
    assert_int_equal(hap_alpn_publish(h, "unit.test", CERT1, KEY2), ACME_E_KEY_MISMATCH);
    assert_null(served("/acme-tls-alpn-01/unit.test.pem"));
    assert_false(transaction_open());
    free(c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest plain[] = {
        cmocka_unit_test(test_classify_recorded),
        cmocka_unit_test(test_reply_helpers),
        cmocka_unit_test(test_fake_reply_in_pieces),
        cmocka_unit_test(test_fake_payload_framing),
        cmocka_unit_test(test_fake_nul_in_reply),
        cmocka_unit_test(test_fake_silent_times_out),
        cmocka_unit_test(test_fake_close_without_reply),
        cmocka_unit_test(test_reply_bare_cr_ends),
        cmocka_unit_test(test_missing_socket),
        cmocka_unit_test(test_stale_socket),
        cmocka_unit_test(test_permission_denied),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_pem),
        cmocka_unit_test(test_files),
    };
    const struct CMUnitTest with_haproxy[] = {
        cmocka_unit_test(test_real_replies),
        cmocka_unit_test(test_real_map),
        cmocka_unit_test(test_real_install),
        cmocka_unit_test(test_real_alpn),
    };
    int failed = cmocka_run_group_tests_name("haproxy socket client", plain, NULL, NULL);
    failed += cmocka_run_group_tests_name("haproxy module against a real HAProxy", with_haproxy, real_setup,
                                          real_teardown);
    return failed ? 1 : 0;
}
