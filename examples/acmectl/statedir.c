/* Where acmectl keeps its state, and the lock that keeps two acmectl runs
 * (a cron job and a person, say) from ordering over each other. The
 * layout inside is libacme's (see FILES in acmectl(1)). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acmectl.h"
#include "afile.h"

char *state_dir_default(void)
{
    char *out = NULL;
    if (geteuid() == 0)
        return strdup("/var/lib/acmectl");
    const char *xdg = getenv("XDG_STATE_HOME");
    /* The XDG spec says to ignore a relative value. */
    if (xdg && xdg[0] == '/') {
        if (asprintf(&out, "%s/acmectl", xdg) < 0)
            return NULL;
        return out;
    }
    const char *home = getenv("HOME");
    if (!home || !*home)
        return NULL;
    if (asprintf(&out, "%s/.local/state/acmectl", home) < 0)
        return NULL;
    return out;
}

int mkdir_p(const char *path, unsigned mode)
{
    /* modules/common/afile.c: the one mkdir -p of the hosts. */
    return afile_mkdirs(path, mode, (uid_t)-1, (gid_t)-1, NULL, 0);
}

/* ssh's StrictModes, the rule libacme's file storage applies too: each
 * directory above the state directory must be owned by root or us and not
 * writable by group or others unless sticky (/tmp is fine above it).
 * Checked before the lock file is opened, so a hostile directory is refused
 * before acmectl creates or writes anything in it. */
static int check_above(const char *dir, const char *abs, char *err, size_t errlen)
{
    char *p = strdup(abs);
    if (!p) {
        bprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (char *slash; !rc && p[1] != '\0' && (slash = strrchr(p, '/')) != NULL;) {
        if (slash == p)
            slash[1] = '\0';
        else
            *slash = '\0';
        struct stat st;
        if (stat(p, &st) != 0) {
            bprintf(err, errlen, "state directory %s: cannot check %s above it: %s", dir, p, strerror(errno));
            rc = -1;
        } else if (st.st_uid != 0 && st.st_uid != geteuid()) {
            bprintf(err, errlen, "state directory %s: the directory %s above it is owned by uid %ld, neither "
                    "root nor you (uid %ld), so that user could replace it: chown root %s, or use "
                    "--state-dir elsewhere", dir, p, (long)st.st_uid, (long)geteuid(), p);
            rc = -1;
        } else if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
            bprintf(err, errlen, "state directory %s: the directory %s above it is writable by group/others "
                    "(mode %04o), so they could replace it: chmod go-w %s, or use --state-dir elsewhere",
                    dir, p, (unsigned)(st.st_mode & 07777), p);
            rc = -1;
        }
    }
    free(p);
    return rc;
}

/* The state directory (open as dfd): ours, writable by nobody else (sticky
 * or not), and safe above, as given and as resolved. */
static int check_state_dir(const char *dir, int dfd, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(dfd, &st) != 0) {
        bprintf(err, errlen, "state directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (st.st_uid != geteuid()) {
        bprintf(err, errlen, "state directory %s is owned by uid %ld, not you (uid %ld): chown %ld %s, "
                "or use a --state-dir of your own", dir, (long)st.st_uid, (long)geteuid(), (long)geteuid(), dir);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        bprintf(err, errlen, "state directory %s is writable by group/others (mode %04o): chmod go-w %s",
                dir, (unsigned)(st.st_mode & 07777), dir);
        return -1;
    }
    char cwd[4096], *given = NULL;
    if (dir[0] == '/')
        given = strdup(dir);
    else if (getcwd(cwd, sizeof(cwd)) && asprintf(&given, "%s/%s", cwd, dir) < 0)
        given = NULL;
    char *real = realpath(dir, NULL);
    int rc = -1;
    if (!given || !real)
        bprintf(err, errlen, "state directory %s: cannot resolve it: %s", dir, strerror(errno));
    else if (check_above(dir, given, err, errlen) == 0 &&
             (strcmp(given, real) == 0 || check_above(dir, real, err, errlen) == 0))
        rc = 0;
    free(given);
    free(real);
    return rc;
}

int state_dir_lock(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    bprintf(path, sizeof(path), "%s/acmectl.lock", dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        bprintf(err, errlen, "cannot open the state directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (check_state_dir(dir, dfd, err, errlen) != 0) {
        close(dfd);
        return -1;
    }
    /* Kept open (and locked) until the process exits; the kernel drops
     * the lock even if we are killed, so a stale lock cannot exist.
     * O_NOFOLLOW: a lock file planted as a link (to /etc/shadow, say) is
     * refused, never opened, truncated or written; O_NONBLOCK: a FIFO
     * planted there cannot hang us in open. */
    int fd = openat(dfd, "acmectl.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0600);
    int e = errno;
    struct stat st;
    int lnk = fd < 0 && (e == ELOOP || e == EMLINK) && fstatat(dfd, "acmectl.lock", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
              S_ISLNK(st.st_mode);
    close(dfd);
    if (fd < 0) {
        if (lnk)
            bprintf(err, errlen, "refusing the lock file %s: it is a symbolic link, and acmectl would write "
                    "through it to another file: remove it", path);
        else
            bprintf(err, errlen, "cannot open the lock file %s: %s", path, strerror(e));
        return -1;
    }
    /* A hard link to somebody's file is as bad as a symbolic one. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1) {
        if (fstat(fd, &st) != 0)
            bprintf(err, errlen, "cannot check the lock file %s: %s", path, strerror(errno));
        else if (!S_ISREG(st.st_mode))
            bprintf(err, errlen, "refusing the lock file %s: not a regular file: remove it", path);
        else if (st.st_uid != geteuid())
            bprintf(err, errlen, "refusing the lock file %s: owned by uid %ld, not you (uid %ld): remove it",
                    path, (long)st.st_uid, (long)geteuid());
        else
            bprintf(err, errlen, "refusing the lock file %s: it has %ld hard links, so it is also another "
                    "file: remove it", path, (long)st.st_nlink);
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        if (e == EWOULDBLOCK)
            bprintf(err, errlen, "another acmectl (pid %s) is using the state directory %s; "
                     "wait for it to finish", pid[0] ? pid : "?", dir);
        else
            bprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0) {
        /* Only informative: the flock is what counts. */
    }
    return 0;
}
