/* issue_cert — the smallest useful libacme host: obtain one certificate
 * with http-01, served by libacme's own responder, and write it out.
 *
 *   issue_cert -d DIRECTORY_URL [-c CA_FILE] [-s STATE_DIR] [-o OUT_DIR]
 *              [-p HTTP_PORT] NAME...
 *
 * examples/quickstart.sh runs it against a local Pebble. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <acme/acme.h>
#include <acme/responder.h>

struct host {
    acme_responder_set responders; /* who serves the challenges */
    const char *out_dir;           /* where install writes the PEM files */
};

static int publish(void *ud, const acme_challenge *ch)
{
    return acme_responder_publish(&((struct host *)ud)->responders, ch);
}

static int unpublish(void *ud, const acme_challenge *ch)
{
    return acme_responder_unpublish(&((struct host *)ud)->responders, ch);
}

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    size_t len = strlen(text);
    int ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    return ok ? ACME_OK : ACME_E_CALLBACK;
}

/* The certificate is already stored by libacme; put a copy where a server
 * would read it: OUT_DIR/<id>.crt (chain, leaf first) and <id>.key (0600). */
static int install(void *ud, const acme_certificate *cert)
{
    struct host *h = ud;
    char crt[4096], key[4096];
    snprintf(crt, sizeof crt, "%s/%s.crt", h->out_dir, acme_certificate_id(cert));
    snprintf(key, sizeof key, "%s/%s.key", h->out_dir, acme_certificate_id(cert));
    if (write_file(key, acme_certificate_key_pem(cert), 0600) != ACME_OK ||
        write_file(crt, acme_certificate_chain_pem(cert), 0644) != ACME_OK)
        return ACME_E_CALLBACK;
    printf("certificate: %s\nprivate key: %s\n", crt, key);
    for (size_t i = 0; i < acme_certificate_name_count(cert); i++)
        printf("name:        %s\n", acme_certificate_name(cert, i));
    return ACME_OK;
}

static void logline(void *ud, acme_log_level level, const char *msg)
{
    (void)ud; (void)level;
    fprintf(stderr, "libacme: %s\n", msg);
}

static int usage(void)
{
    fprintf(stderr,
        "usage: issue_cert -d DIRECTORY_URL [-c CA_FILE] [-s STATE_DIR] [-o OUT_DIR]\n"
        "                  [-p HTTP_PORT] NAME...\n"
        "  -d  the CA's ACME directory (https://...)\n"
        "  -c  PEM file to trust for the CA's HTTPS (default: the system store)\n"
        "  -s  where libacme keeps keys and certificates (default ./acme-state)\n"
        "  -o  where to write NAME.crt and NAME.key (default .)\n"
        "  -p  port of the built-in http-01 responder (default 80)\n"
        "By running this you agree to the CA's terms of service.\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *dir_url = NULL, *ca_file = NULL, *state = "acme-state";
    struct host h = { .out_dir = "." };
    unsigned port = 80;
    int opt, rc;

    while ((opt = getopt(argc, argv, "d:c:s:o:p:h")) != -1) {
        switch (opt) {
        case 'd': dir_url = optarg; break;
        case 'c': ca_file = optarg; break;
        case 's': state = optarg; break;
        case 'o': h.out_dir = optarg; break;
        case 'p': port = (unsigned)strtoul(optarg, NULL, 10); break;
        default: return usage();
        }
    }
    if (!dir_url || optind >= argc || port == 0 || port > 65535)
        return usage();

    acme_client *c = NULL;
    acme_responder *http = NULL;
    if ((rc = acme_client_new(dir_url, &c)) != ACME_OK) {
        fprintf(stderr, "issue_cert: %s\n", acme_strerror(rc));
        return 1;
    }
    acme_responder_options ro = { .size = sizeof ro, .port = port };
    acme_host_callbacks cb = { .size = sizeof cb, .publish = publish,
                               .unpublish = unpublish, .install = install, .log = logline };
    acme_account_params ap = { .size = sizeof ap, .agree_tos = 1 };
    acme_issue_params ip = { .size = sizeof ip, .names = (const char *const *)&argv[optind],
                             .name_count = (size_t)(argc - optind) };

    if ((ca_file && (rc = acme_client_set_ca_file(c, ca_file)) != ACME_OK) ||
        (rc = acme_client_set_storage_dir(c, state)) != ACME_OK ||
        (rc = acme_client_set_host(c, &cb, &h)) != ACME_OK)
        goto fail;
    /* The responder binds now, so a busy port fails here and not mid-order. */
    if ((rc = acme_responder_new(ACME_RESPONDER_HTTP01, &ro, &http)) != ACME_OK ||
        (rc = acme_responder_start_thread(http)) != ACME_OK) {
        fprintf(stderr, "issue_cert: http-01 responder on port %u: %s\n", port, acme_strerror(rc));
        goto out;
    }
    h.responders = (acme_responder_set){ .size = sizeof h.responders, .http01 = http };
    ip.challenges = (const acme_challenge_type[]){ ACME_CHALLENGE_HTTP_01 };
    ip.challenge_count = 1;

    if ((rc = acme_account_register(c, &ap)) != ACME_OK || (rc = acme_issue(c, &ip)) != ACME_OK)
        goto fail;
    printf("stored:      in %s (libacme's copy, renewed by acme_renew)\n", state);
    acme_responder_free(http);
    acme_client_free(c);
    return 0;

fail:
    fprintf(stderr, "issue_cert: %s\n", acme_client_last_error(c));
out:
    acme_responder_free(http);
    acme_client_free(c);
    return 1;
}
