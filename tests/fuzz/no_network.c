/* Linked into every fuzz binary (plain and libFuzzer): a fuzz target must
 * never resolve a name or send a packet. These definitions take the place
 * of the C library's for the whole process (the executable's symbols come
 * first), so a parser that reaches for the resolver gets a clean "does not
 * resolve" (what it would see offline), and anything that opens a socket
 * or sends aborts the run loudly, naming the call. Targets that parse host
 * names (dns01 settings: server=, resolver=) rely on the resolver stubs;
 * no target is expected to reach the socket ones. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void forbidden(const char *call)
{
    static const char pre[] = "fuzz target called ";
    static const char post[] = "(): fuzz targets must not use the network (tests/fuzz/README.md)\n";
    /* write(2) only: this may run inside a sanitizer's or stdio's state. */
    ssize_t r = write(2, pre, sizeof(pre) - 1);
    size_t n = 0;
    while (call[n])
        n++;
    r = write(2, call, n);
    r = write(2, post, sizeof(post) - 1);
    (void)r;
    abort();
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    (void)node;
    (void)service;
    (void)hints;
    if (res)
        *res = NULL;
    return EAI_FAIL;
}

void freeaddrinfo(struct addrinfo *res)
{
    (void)res; /* ours never allocates */
}

struct hostent *gethostbyname(const char *name)
{
    (void)name;
    h_errno = NO_RECOVERY;
    return NULL;
}

struct hostent *gethostbyname2(const char *name, int af)
{
    (void)name;
    (void)af;
    h_errno = NO_RECOVERY;
    return NULL;
}

int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
                    struct hostent **result, int *h_errnop)
{
    (void)name;
    (void)ret;
    (void)buf;
    (void)buflen;
    *result = NULL;
    if (h_errnop)
        *h_errnop = NO_RECOVERY;
    return 0;
}

int socket(int domain, int type, int protocol)
{
    (void)domain;
    (void)type;
    (void)protocol;
    forbidden("socket");
    return -1;
}

int socketpair(int domain, int type, int protocol, int sv[2])
{
    (void)domain;
    (void)type;
    (void)protocol;
    (void)sv;
    forbidden("socketpair");
    return -1;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    (void)fd;
    (void)addr;
    (void)len;
    forbidden("connect");
    return -1;
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
               socklen_t alen)
{
    (void)fd;
    (void)buf;
    (void)len;
    (void)flags;
    (void)addr;
    (void)alen;
    forbidden("sendto");
    return -1;
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    (void)fd;
    (void)buf;
    (void)len;
    (void)flags;
    forbidden("send");
    return -1;
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    (void)fd;
    (void)msg;
    (void)flags;
    forbidden("sendmsg");
    return -1;
}
