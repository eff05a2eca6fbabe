/* Atomic file replacement and mkdir -p for the hosts and modules (see
 * afile.h for the rules). */
#include "afile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static int set_step(afile_fault *f, const char *step)
{
    if (f)
        f->step = step;
    return -1;
}

int afile_sibling(const char *path, const char *tag, char *buf, size_t cap)
{
    const char *slash = strrchr(path, '/');
    int dl = slash ? (int)(slash - path + 1) : 0;
    if ((size_t)snprintf(buf, cap, "%.*s.%s.%sXXXXXX", dl, path, slash ? slash + 1 : path, tag ? tag : "") >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int afile_pick_name(char *name)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[6];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return -1;
    char *x = name + strlen(name) - 6;
    for (size_t i = 0; i < 6; i++)
        x[i] = set[r[i] % (sizeof(set) - 1)];
    return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int afile_temp_at(int dfd, char *tmp, const void *data, size_t len, const afile_opts *o, afile_fault *fault)
{
    if (fault)
        *fault = (afile_fault){0};
    /* The last six characters are the random part (a name tried before
     * may be passed again: they are simply drawn anew). */
    if (strlen(tmp) < 6) {
        errno = EINVAL;
        return set_step(fault, "create");
    }
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        if (afile_pick_name(tmp) != 0)
            return set_step(fault, "create");
        /* 0600 at creation: nobody else can open it before the chmod. */
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            return set_step(fault, "create");
    }
    if (fd < 0)
        return set_step(fault, "create");
    const char *step = NULL;
    if (o->uid != (uid_t)-1 || o->gid != (gid_t)-1) {
        if (fchown(fd, o->uid, o->gid) != 0 && fault)
            fault->chown_errno = errno;
    }
    if (fchmod(fd, (mode_t)o->mode) != 0)
        step = "chmod";
    else if (write_all(fd, data, len) != 0)
        step = "write";
    else if (o->durable && fsync(fd) != 0)
        step = "fsync";
    int e = step ? errno : 0;
    /* Some file systems report a failed write only at close. */
    if (close(fd) != 0 && !step) {
        step = "close";
        e = errno;
    }
    if (step) {
        unlinkat(dfd, tmp, 0);
        errno = e;
        return set_step(fault, step);
    }
    return 0;
}

int afile_replace_at(int dfd, const char *path, const void *data, size_t len, const afile_opts *o,
                     afile_fault *fault)
{
    char tmp[4096];
    if (afile_sibling(path, o->tag, tmp, sizeof(tmp)) != 0)
        return set_step(fault, "create");
    if (afile_temp_at(dfd, tmp, data, len, o, fault) != 0)
        return -1;
    /* renameat replaces the name itself, never what a link there points at. */
    if (renameat(dfd, tmp, dfd, path) != 0) {
        int e = errno;
        unlinkat(dfd, tmp, 0);
        errno = e;
        return set_step(fault, "rename");
    }
    /* The rename itself must survive a crash; the file is in place either
     * way, so a directory that cannot be synced is not a failure here. */
    if (o->durable && afile_fsync_dir_of(dfd, path) != 0 && fault)
        fault->dir_sync_errno = errno;
    return 0;
}

int afile_fsync_dir_of(int dfd, const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        strcpy(dir, ".");
    else if ((size_t)(slash - path) >= sizeof(dir))
        return errno = ENAMETOOLONG, -1;
    else
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int fd = openat(dfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd) != 0 && errno != EINVAL && errno != EROFS ? -1 : 0;
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static int say(char *err, size_t errlen, int e, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int say(char *err, size_t errlen, int e, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    errno = e;
    return -1;
}

int afile_mkdirs(const char *dir, unsigned mode, uid_t uid, gid_t gid, char *err, size_t errlen)
{
    char *p = strdup(dir);
    if (!p)
        return say(err, errlen, ENOMEM, "out of memory");
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
        p[--len] = '\0';
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char keep = *s;
        *s = '\0';
        struct stat st;
        if (stat(p, &st) != 0) {
            if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
                int e = errno;
                say(err, errlen, e, "cannot create directory %s: %s", p, strerror(e));
                free(p);
                return -1;
            }
            if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(p, uid, gid) != 0) {
                int e = errno;
                say(err, errlen, e, "cannot give directory %s to uid %ld: %s", p, (long)uid, strerror(e));
                free(p);
                return -1;
            }
        } else if (!S_ISDIR(st.st_mode)) {
            say(err, errlen, ENOTDIR, "%s exists and is not a directory", p);
            free(p);
            return -1;
        }
        *s = keep;
        if (!keep)
            break;
    }
    free(p);
    return 0;
}

char *afile_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int afile_equals(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != len) {
        close(fd);
        return 0;
    }
    const char *want = data;
    char buf[8192];
    size_t off = 0;
    int same = 1;
    while (off < len) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || off + (size_t)n > len || memcmp(buf, want + off, (size_t)n) != 0) {
            same = 0;
            break;
        }
        off += (size_t)n;
    }
    if (same) {
        /* Nothing after the expected end. */
        ssize_t n = read(fd, buf, 1);
        same = n == 0;
    }
    explicit_bzero(buf, sizeof(buf)); /* it may have held a key */
    close(fd);
    return same;
}
