/* Fuzz target: the haproxy module's settings (modules/haproxy/config.c),
 * key=value lines as acmectl's run file or a host hands them over.
 *
 * Promises checked: a refusal leaves one non-empty line in err; an
 * accepted configuration has a socket path that fits a Unix socket, a
 * certificate directory, and only words HAProxy's command line can carry
 * (map, crt-list, alpn-crt-list, paths, prefix) with the absolute ones
 * absolute and no trailing '/' on directories; cert-mode gives nothing to
 * others. */
#include <string.h>

#include "fuzz.h"
#include "haproxy.h"

#define T "fuzz_hap_config"

static void word(const char *s, int absolute)
{
    if (!s)
        return;
    FUZZ_CHECK(T, hap_word_ok(s), "a setting that is not one command-line word");
    if (absolute)
        FUZZ_CHECK(T, s[0] == '/', "an absolute path setting that is not absolute");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    const char *keys[64], *values[64];
    size_t n = fuzz_kv_lines(text, keys, values, 64);
    hap h;
    memset(&h, 0, sizeof(h));
    char err[512];
    err[0] = '\0';
    int rc = hap_configure(&h, keys, values, n, err, sizeof(err));
    if (rc != ACME_OK) {
        FUZZ_CHECK(T, err[0] && !strpbrk(err, "\r\n"), "a refusal of one line");
    } else {
        FUZZ_CHECK(T, h.socket_path && *h.socket_path && strlen(h.socket_path) < 108, "socket path");
        FUZZ_CHECK(T, h.cert_dir != NULL, "certificate directory");
        word(h.map, 0);
        word(h.alpn_crt_list, 0);
        word(h.alpn_prefix, 1);
        word(h.cert_dir, 1);
        word(h.crt_list, 1);
        word(h.crt_dir, 1);
        size_t cl = strlen(h.cert_dir);
        FUZZ_CHECK(T, cl == 1 || h.cert_dir[cl - 1] != '/', "directory without a trailing slash");
        FUZZ_CHECK(T, (h.cert_mode & 0400) && !(h.cert_mode & 0137), "certificate file mode");
        for (size_t i = 0; i < h.path_count; i++) {
            FUZZ_CHECK(T, h.paths[i].id && *h.paths[i].id, "cert-path id");
            word(h.paths[i].path, 1);
        }
        if (h.crt_list_options)
            FUZZ_CHECK(T, h.crt_list_options[0] == '[' && !strpbrk(h.crt_list_options, "\r\n"),
                       "crt-list options");
    }
    hap_config_free(&h);
    free(text);
    return 0;
}
