/* Proof that no_network.c takes the C library's place: "resolve" must get
 * EAI_FAIL for a name that would resolve (localhost), "socket" must die
 * (the test expects that run to fail). */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "resolve")) {
        struct addrinfo *res = NULL;
        int rc = getaddrinfo("localhost", "80", NULL, &res);
        if (rc != EAI_FAIL || res) {
            fprintf(stderr, "getaddrinfo was not stubbed (rc %d)\n", rc);
            return 1;
        }
        if (gethostbyname("localhost")) {
            fprintf(stderr, "gethostbyname was not stubbed\n");
            return 1;
        }
        printf("resolver stubbed\n");
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "socket")) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        fprintf(stderr, "socket() returned %d instead of aborting\n", fd);
        return 0; /* the test expects a failure: returning 0 fails it */
    }
    fprintf(stderr, "usage: fuzz_no_network_check resolve|socket\n");
    return 2;
}
