/* Files acmectl writes itself (--out, --webroot): always atomically, so a
 * web server reloading at the wrong moment reads the old file or the new
 * one, never half of one — and a key never exists, even briefly, with
 * looser permissions than it will end with. A key and its chain are
 * replaced as a pair (modules/common/pairfile.c, shared with mod_acme), so
 * a full disk never leaves a new key beside an old certificate. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acmectl.h"
#include "afile.h"
#include "pairfile.h"

/* One home for the temp + fsync + rename (modules/common/afile.c, shared
 * with mod_acme and the HAProxy module); the name is never followed. */
int file_write_atomic_at(int dfd, const char *name, const void *data, size_t len, unsigned mode)
{
    afile_opts o = {.mode = mode, .durable = 1, .uid = (uid_t)-1, .gid = (gid_t)-1};
    return afile_replace_at(dfd, name, data, len, &o, NULL);
}

int file_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                      unsigned mode)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = file_write_atomic_at(dfd, name, data, len, mode);
    int e = errno;
    close(dfd);
    errno = e;
    return rc;
}

int file_write_pair(const char *dir, const char *id, const acme_certificate *cert, char *err, size_t errlen)
{
    char key[4096], crt[4096];
    bprintf(key, sizeof(key), "%s/%s.key", dir, id);
    bprintf(crt, sizeof(crt), "%s/%s.crt", dir, id);
    const char *kp = acme_certificate_key_pem(cert), *cp = acme_certificate_chain_pem(cert);
    return pairfile_write(key, kp, strlen(kp), crt, cp, strlen(cp), 0644, err, errlen);
}

char *file_read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
        if (n + 1 >= cap) {
            if (cap >= (64u << 20)) { /* no certificate or key is this big */
                free(buf);
                buf = NULL;
                errno = EFBIG;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int e = ferror(f) ? EIO : 0;
    fclose(f);
    if (buf && e) {
        free(buf);
        errno = e;
        return NULL;
    }
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = n;
    }
    return buf;
}
