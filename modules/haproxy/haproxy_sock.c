/* The runtime-API client: one command per connection, the way HAProxy's
 * non-interactive mode works (it answers, then closes). Every step is
 * bounded by the caller's timeout; nothing here blocks without poll(). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "haproxy.h"

#define HAP_MAX_REPLY (4u * 1024u * 1024u)
/* HAProxy reads a command and its payload into one buffer (tune.bufsize,
 * 16384 by default); a larger one is dropped without an answer. */
#define HAP_DEFAULT_BUFSIZE 16384u
/* A refused or missing socket (HAProxy restarting, the listen backlog
 * full) is retried for at most this long: short, because the engine's step
 * waits meanwhile, and a HAProxy that is down stays down for longer. */
#define HAP_CONNECT_RETRY_MS 250u

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(long long deadline)
{
    long long d = deadline - now_ms();
    return d > 0 ? (int)d : 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The first word of a command, for messages ("set ssl cert"). Commands
 * carry no secrets (payloads do), so the whole command line is fine to
 * show; it is cut to keep messages one short line. */
static void cmd_text(const char *cmd, char *out, size_t outlen)
{
    snprintf(out, outlen, "%.120s", cmd);
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

static const char *connect_hint(int e)
{
    switch (e) {
    case ENOENT:
        return "is HAProxy running, with this path in a `stats socket` line of its global section?";
    case ECONNREFUSED:
        return "nobody listens: HAProxy is stopped or restarting";
    case EACCES:
    case EPERM:
        return "this user needs write access to the socket (`stats socket ... mode 660 group <group>`, "
               "and be in that group)";
    case ENOTSOCK:
        return "that path is not a socket";
    case EAGAIN:
        return "HAProxy does not accept connections (listen backlog full)";
    default:
        return NULL;
    }
}

static int connect_unix(const hap_sock *s, long long deadline, int *fd_out, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t len = strlen(s->path);
    if (len == 0 || len >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "HAProxy admin socket path \"%.200s\" is empty or longer than %zu bytes",
                 s->path, sizeof(sa.sun_path) - 1);
        return ACME_E_INVALID_ARG;
    }
    memcpy(sa.sun_path, s->path, len);
    long long retry_until = now_ms() + HAP_CONNECT_RETRY_MS;
    if (retry_until > deadline)
        retry_until = deadline;
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            snprintf(err, errlen, "cannot make a socket: %s", strerror(errno));
            return ACME_E_NETWORK;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            *fd_out = fd;
            return ACME_OK;
        }
        int e = errno;
        close(fd);
        /* A refused or missing socket may be HAProxy restarting: it binds
         * the new socket and renames it into place. Try again briefly. */
        int again = (e == EAGAIN || e == ECONNREFUSED || e == ENOENT || e == EINTR);
        if (!again || now_ms() + 50 > retry_until) {
            const char *hint = connect_hint(e);
            snprintf(err, errlen, "cannot connect to HAProxy's admin socket %.300s: %s%s%s", s->path,
                     strerror(e), hint ? " — " : "", hint ? hint : "");
            return ACME_E_NETWORK;
        }
        sleep_ms(50);
    }
}

static int send_all(int fd, const char *data, size_t len, long long deadline, const hap_sock *s,
                    const char *what, char *err, size_t errlen)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int ms = left_ms(deadline);
            int r = ms > 0 ? poll(&p, 1, ms) : 0;
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                snprintf(err, errlen, "HAProxy's admin socket %.300s did not take `%s` within %u ms",
                         s->path, what, s->timeout_ms);
                return ACME_E_TIMEOUT;
            }
            continue;
        }
        int e = n < 0 ? errno : EIO;
        snprintf(err, errlen, "sending `%s` to HAProxy's admin socket %.300s failed: %s%s", what, s->path,
                 strerror(e),
                 (e == EPIPE || e == ECONNRESET) && len > HAP_DEFAULT_BUFSIZE - 512
                     ? " (the command and its payload are larger than HAProxy's buffer: raise tune.bufsize "
                       "in the global section of haproxy.cfg)" : "");
        return ACME_E_NETWORK;
    }
    return ACME_OK;
}

static int read_all(int fd, long long deadline, const hap_sock *s, const char *what, size_t sent,
                    char **reply, char *err, size_t errlen)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return ACME_E_NOMEM;
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= HAP_MAX_REPLY) {
                free(buf);
                snprintf(err, errlen, "HAProxy's reply to `%s` is larger than %u bytes", what, HAP_MAX_REPLY);
                return ACME_E_TOO_LARGE;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                snprintf(err, errlen, "out of memory");
                return ACME_E_NOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n == 0)
            break; /* HAProxy is done */
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int ms = left_ms(deadline);
            int r = ms > 0 ? poll(&p, 1, ms) : 0;
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                free(buf);
                snprintf(err, errlen, "HAProxy's admin socket %.300s did not answer `%s` within %u ms%s",
                         s->path, what, s->timeout_ms,
                         len ? " (the reply was cut)" : "");
                return ACME_E_TIMEOUT;
            }
            continue;
        }
        if (errno == ECONNRESET)
            break; /* judged below, like a close */
        free(buf);
        snprintf(err, errlen, "reading HAProxy's answer to `%s` failed: %s", what, strerror(errno));
        return ACME_E_NETWORK;
    }
    if (len == 0) {
        free(buf);
        snprintf(err, errlen, "HAProxy closed the admin connection on `%s` without an answer%s", what,
                 sent > HAP_DEFAULT_BUFSIZE - 512 ? ": the command and its payload are larger than "
                 "HAProxy's buffer (raise tune.bufsize in the global section of haproxy.cfg)" : "");
        return ACME_E_NETWORK;
    }
    /* Some HAProxy 2.6 answers carry a stray NUL ("show ssl crt-list"). */
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[len] = '\0';
    *reply = buf;
    return ACME_OK;
}

int hap_command(const hap_sock *s, const char *cmd, const char *payload, char **reply, int *reached,
                char *err, size_t errlen)
{
    *reply = NULL;
    *reached = 0;
    if (errlen)
        err[0] = '\0';
    char what[128];
    cmd_text(cmd, what, sizeof(what));
    if (strchr(cmd, '\n')) {
        snprintf(err, errlen, "refusing to send a command with a newline: `%s`", what);
        return ACME_E_INVALID_ARG;
    }
    /* The message: "<cmd>\n", or "<cmd> <<\n<payload>\n\n". */
    size_t clen = strlen(cmd), plen = payload ? strlen(payload) : 0;
    size_t total = clen + 1 + (payload ? 3 + plen + 2 : 0);
    char *msg = malloc(total + 1);
    if (!msg) {
        snprintf(err, errlen, "out of memory");
        return ACME_E_NOMEM;
    }
    size_t off = 0;
    memcpy(msg, cmd, clen);
    off = clen;
    if (payload) {
        memcpy(msg + off, " <<\n", 4);
        off += 4;
        memcpy(msg + off, payload, plen);
        off += plen;
        if (plen && payload[plen - 1] != '\n')
            msg[off++] = '\n';
        msg[off++] = '\n'; /* the empty line ends the payload */
    } else {
        msg[off++] = '\n';
    }
    msg[off] = '\0';

    long long deadline = now_ms() + (s->timeout_ms ? s->timeout_ms : 3000u);
    int fd = -1;
    int rc = connect_unix(s, deadline, &fd, err, errlen);
    *reached = rc == ACME_OK;
    if (rc == ACME_OK)
        rc = send_all(fd, msg, off, deadline, s, what, err, errlen);
    if (rc == ACME_OK)
        rc = read_all(fd, deadline, s, what, off, reply, err, errlen);
    if (fd >= 0)
        close(fd);
    /* The payload may be a private key. */
    explicit_bzero(msg, total + 1);
    free(msg);
    return rc;
}

/* ---- replies ------------------------------------------------------------ */

static int has(const char *s, const char *needle)
{
    return strstr(s, needle) != NULL;
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int hap_reply_has_line(const char *reply, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = reply; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        /* Step past the whole line before trimming: advancing by the
         * trimmed length left a last line of "...\r" forever on its CR. */
        const char *next = eol ? eol + 1 : p + len;
        if (len && p[len - 1] == '\r')
            len--;
        if (len == n && !memcmp(p, line, n))
            return 1;
        p = next;
    }
    return 0;
}

hap_kind hap_classify(const char *reply)
{
    if (!reply || !*reply)
        return HAP_EMPTY;
    const char *p = reply;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    if (!*p)
        return HAP_OK; /* "add map", "del map", "set map": an empty line */
    /* Errors first: none of them contains a success sentence. */
    if (has(p, "Permission denied"))
        return HAP_PERMISSION;
    if (starts(p, "Unknown command"))
        return HAP_UNKNOWN_COMMAND;
    if (has(p, "Unknown map identifier"))
        return HAP_UNKNOWN_MAP;
    if (has(p, "inconsistencies between private key and certificate"))
        return HAP_KEY_MISMATCH;
    if (has(p, "The ongoing transaction is about"))
        return HAP_BUSY;
    if (has(p, "not referenced by the configuration"))
        return HAP_NOT_REFERENCED;
    if (has(p, "already exists"))
        return HAP_EXISTS;
    if (has(p, "in use, can't be deleted"))
        return HAP_IN_USE;
    if ((has(p, "crt-list '") && has(p, "does not exist")) || has(p, "didn't find the specified filename"))
        return HAP_UNKNOWN_LIST;
    if (has(p, "Key not found") || has(p, "entry not found") || has(p, "doesn't exist") ||
        has(p, "does not exist") || has(p, "can't be found") || has(p, "No ongoing transaction") ||
        has(p, ": Not found"))
        return HAP_NOT_FOUND;
    if (hap_reply_has_line(p, "Success!") || starts(p, "Transaction created for certificate") ||
        starts(p, "Transaction updated for certificate") || starts(p, "Transaction aborted for certificate") ||
        starts(p, "New empty certificate store") || (starts(p, "Certificate '") && has(p, "' deleted!")) ||
        (starts(p, "Entry '") && has(p, "deleted in crtlist")))
        return HAP_OK;
    return HAP_ERROR;
}

void hap_reply_line(const char *reply, char *out, size_t outlen)
{
    if (!outlen)
        return;
    size_t o = 0;
    int pending_sep = 0;
    for (const char *p = reply ? reply : ""; *p && o + 1 < outlen; p++) {
        char c = *p;
        if (c == '\n' || c == '\r') {
            if (o)
                pending_sep = 1;
            continue;
        }
        if (pending_sep) {
            for (const char *sep = "; "; *sep && o + 1 < outlen; sep++)
                out[o++] = *sep;
            pending_sep = 0;
        }
        if (o + 1 < outlen)
            out[o++] = (unsigned char)c < 0x20 ? ' ' : c;
    }
    while (o && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

int hap_word_ok(const char *s)
{
    if (!s || !*s)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == ';' || *p == '\\' || *p == '#' || *p == '"' || *p == '\'')
            return 0;
    return 1;
}
