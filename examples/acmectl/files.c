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

#include <sys/random.h>

#include "acmectl.h"
#include "pairfile.h"

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ".<name>.XXXXXX" created exclusively in dfd with a random name, never
 * through a link. */
static int temp_at(int dfd, const char *name, char *tmp, size_t cap)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (int tries = 0; tries < 100; tries++) {
        unsigned char r[6];
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
            return -1;
        if ((size_t)snprintf(tmp, cap, ".%s.%c%c%c%c%c%c", name, set[r[0] % 62], set[r[1] % 62],
                             set[r[2] % 62], set[r[3] % 62], set[r[4] % 62], set[r[5] % 62]) >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        /* 0600 at creation: the secret is never readable by others. */
        int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

int file_write_atomic_at(int dfd, const char *name, const void *data, size_t len, unsigned mode)
{
    char tmp[4096];
    int fd = temp_at(dfd, name, tmp, sizeof(tmp));
    if (fd < 0)
        return -1;
    int e = 0;
    if (fchmod(fd, (mode_t)mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    /* renameat replaces name itself, never what a link there points at. */
    if (!e && renameat(dfd, tmp, dfd, name) != 0)
        e = errno;
    if (e) {
        unlinkat(dfd, tmp, 0);
        errno = e;
        return -1;
    }
    /* The rename itself must survive a crash. */
    (void)fsync(dfd);
    return 0;
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
