/* What HAProxy reads at start: certificate files and crt-list files.
 * Every write is atomic (a reader sees the old file or the new one) and
 * durable (fsync of the file and of its directory) before we say done.
 * Temporary files start with a dot: HAProxy's `crt <dir>/` loading skips
 * dot files, so a crash never leaves a half file it would try to load. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "haproxy.h"
#include "afile.h"

#define HAP_MAX_FILE (8u * 1024u * 1024u)

/* ---- PEM ------------------------------------------------------------------ */

/* Append text to out without "\r" and without blank lines (a blank line
 * ends HAProxy's payload). */
static size_t copy_lines(char *out, const char *text)
{
    size_t o = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        size_t keep = 0, nonblank = 0;
        for (size_t i = 0; i < len; i++)
            if (p[i] != '\r') {
                out[o + keep++] = p[i];
                nonblank |= p[i] != ' ' && p[i] != '\t';
            }
        if (nonblank) {
            o += keep;
            out[o++] = '\n';
        }
        p = eol ? eol + 1 : p + len;
    }
    return o;
}

char *hap_pem_payload(const char *chain_pem, const char *key_pem)
{
    if (!chain_pem || !key_pem || !strstr(chain_pem, "-----BEGIN CERTIFICATE-----") ||
        !strstr(key_pem, "PRIVATE KEY-----"))
        return NULL;
    size_t cap = strlen(chain_pem) + strlen(key_pem) + 3;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t o = copy_lines(out, chain_pem);
    o += copy_lines(out + o, key_pem);
    out[o] = '\0';
    return out;
}

static int first_cert(const char *pem, gnutls_x509_crt_t *crt)
{
    const char *b = strstr(pem, "-----BEGIN CERTIFICATE-----");
    if (!b || gnutls_x509_crt_init(crt) < 0)
        return -1;
    gnutls_datum_t d = {(unsigned char *)b, (unsigned)strlen(b)};
    if (gnutls_x509_crt_import(*crt, &d, GNUTLS_X509_FMT_PEM) < 0) {
        gnutls_x509_crt_deinit(*crt);
        return -1;
    }
    return 0;
}

char *hap_pem_sha1(const char *pem)
{
    gnutls_x509_crt_t crt;
    if (first_cert(pem, &crt))
        return NULL;
    unsigned char md[20];
    size_t n = sizeof(md);
    char *hex = NULL;
    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA1, md, &n) == 0 && n == sizeof(md) &&
        (hex = malloc(2 * n + 1))) {
        for (size_t i = 0; i < n; i++)
            snprintf(hex + 2 * i, 3, "%02X", md[i]);
    }
    gnutls_x509_crt_deinit(crt);
    return hex;
}

int hap_pem_check(hap *h, const char *pem)
{
    gnutls_x509_crt_t crt;
    if (first_cert(pem, &crt))
        return hap_fail(h, ACME_E_CRYPTO, "the certificate cannot be parsed");
    /* The key block: the first "-----BEGIN ... PRIVATE KEY-----". */
    const char *k = strstr(pem, "PRIVATE KEY-----");
    while (k && k > pem && strncmp(k, "-----BEGIN", 10) != 0)
        k--;
    gnutls_x509_privkey_t key = NULL;
    int rc = ACME_OK;
    if (!k || strncmp(k, "-----BEGIN", 10) != 0 || gnutls_x509_privkey_init(&key) < 0) {
        rc = hap_fail(h, ACME_E_CRYPTO, "no private key after the certificate");
    } else {
        gnutls_datum_t d = {(unsigned char *)k, (unsigned)strlen(k)};
        unsigned char a[64], b[64];
        size_t na = sizeof(a), nb = sizeof(b);
        if (gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN) < 0)
            rc = hap_fail(h, ACME_E_CRYPTO, "the private key cannot be parsed");
        else if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &na) < 0 ||
                 gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b, &nb) < 0)
            rc = hap_fail(h, ACME_E_CRYPTO, "cannot compare the key with the certificate");
        else if (na != nb || memcmp(a, b, na) != 0)
            rc = hap_fail(h, ACME_E_KEY_MISMATCH, "the private key does not belong to the certificate");
    }
    if (key)
        gnutls_x509_privkey_deinit(key);
    gnutls_x509_crt_deinit(crt);
    return rc;
}

/* ---- files ------------------------------------------------------------- */

int hap_file_exists(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return 1;
    return errno == ENOENT ? 0 : -1;
}

/* The whole file, NUL-terminated; ACME_E_NOT_FOUND if absent. */
static int read_file(const char *path, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? ACME_E_NOT_FOUND : ACME_E_STORAGE;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int rc = buf ? ACME_OK : ACME_E_NOMEM;
    while (rc == ACME_OK) {
        if (n + 1 >= cap) {
            char *nb = cap < HAP_MAX_FILE ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                rc = cap < HAP_MAX_FILE ? ACME_E_NOMEM : ACME_E_TOO_LARGE;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = ACME_E_STORAGE;
        else if (r == 0)
            break;
        else
            n += (size_t)r;
    }
    int saved = errno;
    close(fd);
    if (rc) {
        if (buf)
            explicit_bzero(buf, cap);
        free(buf);
        errno = saved; /* for the caller's message */
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return ACME_OK;
}

static void free_secret(char *p, size_t len)
{
    if (p) {
        explicit_bzero(p, len);
        free(p);
    }
}

int hap_write_file(hap *h, const char *path, const char *data, size_t len, unsigned mode, int *changed)
{
    *changed = 0;
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (!exists && errno != ENOENT)
        return hap_fail(h, ACME_E_STORAGE, "cannot look at %s: %s", path, strerror(errno));
    if (exists && !S_ISREG(st.st_mode))
        return hap_fail(h, ACME_E_STORAGE, "%s is not a regular file", path);
    unsigned want = mode ? mode : (exists ? (unsigned)(st.st_mode & 07777) : 0644u);
    if (exists) {
        char *old;
        size_t old_len;
        if (read_file(path, &old, &old_len) == ACME_OK) {
            int same = old_len == len && !memcmp(old, data, len);
            free_secret(old, old_len);
            if (same && (st.st_mode & 07777) == want)
                return ACME_OK;
        }
    }
    /* The temp + fsync + rename: modules/common/afile.c, shared with
     * acmectl and mod_acme. The file we replace keeps its owner and group
     * when we may (root). */
    afile_opts o = {.mode = want, .durable = 1, .uid = (uid_t)-1, .gid = (gid_t)-1, .tag = "tmp-"};
    if (exists && geteuid() == 0) {
        o.uid = st.st_uid;
        o.gid = st.st_gid;
    }
    afile_fault f = {0};
    if (afile_replace_at(AT_FDCWD, path, data, len, &o, &f) != 0) {
        int e = errno;
        char *dir = afile_dirname(path);
        int rc;
        if (!strcmp(f.step, "create"))
            rc = hap_fail(h, ACME_E_STORAGE, "cannot create a file in %s: %s", dir ? dir : path, strerror(e));
        else if (!strcmp(f.step, "rename"))
            rc = hap_fail(h, ACME_E_STORAGE, "cannot rename the new file over %s: %s", path, strerror(e));
        else
            rc = hap_fail(h, ACME_E_STORAGE, "%s of the new %s: %s", !strcmp(f.step, "write") ? "writing" : f.step,
                          path, strerror(e));
        free(dir);
        return rc;
    }
    if (f.chown_errno)
        hap_log(h, ACME_LOG_WARNING, "cannot give the new %s the owner of the old one: %s", path,
                strerror(f.chown_errno));
    if (f.dir_sync_errno)
        hap_log(h, ACME_LOG_WARNING, "fsync of the directory of %s: %s", path, strerror(f.dir_sync_errno));
    *changed = 1;
    return ACME_OK;
}

int hap_crt_list_file_add(hap *h, const char *list_path, const char *cert_path, const char *options)
{
    char *text;
    size_t len;
    int rc = read_file(list_path, &text, &len);
    if (rc == ACME_E_NOT_FOUND)
        return hap_fail(h, ACME_E_STORAGE, "the crt-list file %s does not exist (create it, empty if need be, "
                        "before HAProxy starts)", list_path);
    if (rc)
        return hap_fail(h, rc, "cannot read the crt-list file %s: %s", list_path,
                        rc == ACME_E_STORAGE ? strerror(errno) : acme_strerror(rc));
    size_t n = strlen(cert_path);
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        const char *s = p;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!strncmp(s, cert_path, n) && (s[n] == '\0' || s[n] == '\n' || s[n] == '\r' || s[n] == ' ' ||
                                          s[n] == '\t')) {
            free(text);
            return ACME_OK; /* already listed */
        }
        p = eol ? eol + 1 : p + strlen(p);
    }
    char *out = NULL;
    int w = asprintf(&out, "%s%s%s%s%s\n", text, len && text[len - 1] != '\n' ? "\n" : "", cert_path,
                     options ? " " : "", options ? options : "");
    free(text);
    if (w < 0)
        return hap_fail(h, ACME_E_NOMEM, "out of memory");
    int changed;
    rc = hap_write_file(h, list_path, out, (size_t)w, 0, &changed);
    free(out);
    return rc;
}
