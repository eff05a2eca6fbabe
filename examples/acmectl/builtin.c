/* The built-in challenge responders (libacme's): one http-01 server and
 * one tls-alpn-01 server, each on its own thread for as long as acmectl
 * runs, because acme_issue blocks the main thread while the CA
 * validates. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acmectl.h"

/* Why binding failed: libacme says only ACME_E_NETWORK, so try the same
 * bind here to get the errno a person can act on. */
static void bind_diagnosis(const char *addr, unsigned port, char *out, size_t len)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    int fam;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    const char *a = addr ? addr : "::";
    if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
        fam = AF_INET6;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
    } else if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
        fam = AF_INET;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
    } else {
        bprintf(out, len, "not a numeric address");
        return;
    }
    int fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        bprintf(out, len, "%s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        if (e == EACCES)
            bprintf(out, len, "%s: ports below 1024 need root or CAP_NET_BIND_SERVICE", strerror(e));
        else if (e == EADDRINUSE)
            bprintf(out, len, "%s: another program (a web server?) listens there", strerror(e));
        else
            bprintf(out, len, "%s", strerror(e));
    } else {
        bprintf(out, len, "unknown reason");
    }
    close(fd);
}

int builtin_start(const acmectl_opts *o, acme_challenge_type t, acme_responder **out)
{
    return builtin_listen(o, t, 1, out);
}

int builtin_listen(const acmectl_opts *o, acme_challenge_type t, int serve, acme_responder **out)
{
    const char *name = acme_challenge_type_name(t);
    acme_responder_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.size = sizeof(ro);
    ro.bind_address = o->bind;
    ro.port = t == ACME_CHALLENGE_HTTP_01 ? o->http_port : o->tls_port;
    acme_responder *r = NULL;
    int rc = acme_responder_new(t == ACME_CHALLENGE_HTTP_01 ? ACME_RESPONDER_HTTP01
                                                            : ACME_RESPONDER_TLSALPN01, &ro, &r);
    if (rc == ACME_OK && serve && (rc = acme_responder_start_thread(r)) != ACME_OK) {
        acme_responder_free(r);
        r = NULL;
    }
    if (rc != ACME_OK) {
        char why[200];
        bind_diagnosis(o->bind, ro.port, why, sizeof(why));
        /* Not acme_strerror(rc): its NETWORK text is about the CA. */
        progress(ACME_LOG_WARNING, "%s not offered: the built-in responder cannot listen on port %u of %s (%s)",
                 name, ro.port, o->bind ? o->bind : "all addresses", why);
        return -1;
    }
    progress(ACME_LOG_INFO, "built-in %s responder listening on port %u of %s", name,
             acme_responder_port(r), o->bind ? o->bind : "all addresses");
    *out = r;
    return 0;
}
