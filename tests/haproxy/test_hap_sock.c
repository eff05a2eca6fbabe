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
    /* Retried for about a second (HAProxy may be restarting), not the whole timeout. */
    assert_true(took >= 0.9 && took < 2.5);
    assert_false(reached);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file"));
    assert_non_null(strstr(err, "stats socket"));
    /* A short timeout bounds the retries too. */
    t0 = now_s();
    assert_int_equal(cmd(path, 200, "show info", NULL, &reply, &reached, err, sizeof(err)), ACME_E_NETWORK);
    assert_true(now_s() - t0 < 0.6);
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
