/* --webroot: answer http-01 through a web server that is already running,
 * by putting the key authorization where it serves files from. The file
 * appears whole (written atomically) and world-readable, because the web
 * server usually runs as another user. Directories acmectl had to create
 * are removed again when they are empty, so nothing is left behind. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acmectl.h"

/* One webroot per run: remember what we created so we only remove that. */
static int created_wellknown, created_challenge;

/* The directory name inside dfd, created 0755 if missing, and never
 * through a symbolic link: the webroot usually belongs to the site, and
 * whoever can write there could point .well-known (or acme-challenge) at
 * any directory, where acmectl, often root, would then create and remove
 * files. Returns a descriptor, or -1 with a message. */
static int open_dir_at(int dfd, const char *shown, const char *name, int *created, char *err, size_t errlen)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (mkdirat(dfd, name, 0755) == 0)
            *created = 1;
        else if (errno != EEXIST)
            goto fail;
        fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        /* The umask may have narrowed it; the web server must enter it. */
        if (fd >= 0 && *created && fchmod(fd, 0755) != 0) {
            close(fd);
            goto fail;
        }
    }
    if (fd >= 0)
        return fd;
fail:;
    int e = errno;
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        bprintf(err, errlen, "refusing %s: it is a symbolic link, and acmectl does not follow links under "
                "--webroot (it could point anywhere): make it a real directory", shown);
    else
        bprintf(err, errlen, "cannot create %s: %s", shown, strerror(e == ELOOP ? ENOTDIR : e));
    return -1;
}

int webroot_publish(const char *root, const char *token, const char *key_auth,
                    char *err, size_t errlen)
{
    char wk[4096], ch[4096];
    bprintf(wk, sizeof(wk), "%s/.well-known", root);
    bprintf(ch, sizeof(ch), "%s/.well-known/acme-challenge", root);
    /* The document root itself is never created: a typo would make a
     * directory no web server serves, and the challenge would fail later
     * with a less clear message. It may be a link (the operator's choice);
     * nothing below it is followed. */
    int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0) {
        bprintf(err, errlen, "--webroot %s: %s", root, errno == ENOTDIR ? "not a directory" : strerror(errno));
        return -1;
    }
    int c1 = 0, c2 = 0;
    int wfd = open_dir_at(rfd, wk, ".well-known", &c1, err, errlen);
    close(rfd);
    if (wfd < 0)
        return -1;
    created_wellknown |= c1;
    int cfd = open_dir_at(wfd, ch, "acme-challenge", &c2, err, errlen);
    close(wfd);
    if (cfd < 0)
        return -1;
    created_challenge |= c2;
    /* The token is strict base64url (libacme guarantees it): a safe name. */
    int rc = file_write_atomic_at(cfd, token, key_auth, strlen(key_auth), 0644);
    int e = errno;
    close(cfd);
    if (rc != 0) {
        bprintf(err, errlen, "cannot write %s/%s: %s", ch, token, strerror(e));
        return -1;
    }
    return 0;
}

void webroot_unpublish(const char *root, const char *token)
{
    /* The same walk as publish, without following anything: a link
     * planted since then leads nowhere. */
    int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int wfd = rfd < 0 ? -1 : openat(rfd, ".well-known", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int cfd = wfd < 0 ? -1 : openat(wfd, "acme-challenge", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0 || (unlinkat(cfd, token, 0) != 0 && errno != ENOENT))
        progress(ACME_LOG_WARNING, "could not remove %s/.well-known/acme-challenge/%s: %s; remove it by hand",
                 root, token, strerror(errno));
    /* rmdir fails on a directory that still holds something: exactly the
     * case (another token, or the site's own files) where it must stay. */
    if (created_challenge && wfd >= 0 && unlinkat(wfd, "acme-challenge", AT_REMOVEDIR) == 0)
        created_challenge = 0;
    if (created_wellknown && !created_challenge && rfd >= 0 && unlinkat(rfd, ".well-known", AT_REMOVEDIR) == 0)
        created_wellknown = 0;
    if (cfd >= 0)
        close(cfd);
    if (wfd >= 0)
        close(wfd);
    if (rfd >= 0)
        close(rfd);
}
