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
    char *p = strdup(path);
    if (!p)
        return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, mode);
    int e = errno;
    free(p);
    if (rc != 0 && e != EEXIST) {
        errno = e;
        return -1;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int state_dir_lock(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    bprintf(path, sizeof(path), "%s/acmectl.lock", dir);
    /* Kept open (and locked) until the process exits; the kernel drops
     * the lock even if we are killed, so a stale lock cannot exist. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        bprintf(err, errlen, "cannot open the lock file %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
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
