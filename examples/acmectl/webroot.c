/* --webroot: answer http-01 through a web server that is already running,
 * by putting the key authorization where it serves files from. The file
 * appears whole (written atomically) and world-readable, because the web
 * server usually runs as another user. Directories acmectl had to create
 * are removed again when they are empty, so nothing is left behind. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acmectl.h"

/* One webroot per run: remember what we created so we only remove that. */
static int created_wellknown, created_challenge;

static int make_dir(const char *path, int *created)
{
    if (mkdir(path, 0755) == 0) {
        *created = 1;
        /* The umask may have narrowed it; the web server must enter it. */
        return chmod(path, 0755);
    }
    if (errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int webroot_publish(const char *root, const char *token, const char *key_auth,
                    char *err, size_t errlen)
{
    char wk[4096], ch[4096];
    bprintf(wk, sizeof(wk), "%s/.well-known", root);
    bprintf(ch, sizeof(ch), "%s/.well-known/acme-challenge", root);
    struct stat st;
    /* The document root itself is never created: a typo would make a
     * directory no web server serves, and the challenge would fail later
     * with a less clear message. */
    if (stat(root, &st) != 0) {
        bprintf(err, errlen, "--webroot %s: %s", root, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        bprintf(err, errlen, "--webroot %s: not a directory", root);
        return -1;
    }
    int c1 = 0, c2 = 0;
    if (make_dir(wk, &c1) != 0) {
        bprintf(err, errlen, "cannot create %s: %s", wk, strerror(errno));
        return -1;
    }
    created_wellknown |= c1;
    if (make_dir(ch, &c2) != 0) {
        bprintf(err, errlen, "cannot create %s: %s", ch, strerror(errno));
        return -1;
    }
    created_challenge |= c2;
    /* The token is strict base64url (libacme guarantees it): a safe name. */
    if (file_write_atomic(ch, token, key_auth, strlen(key_auth), 0644) != 0) {
        bprintf(err, errlen, "cannot write %s/%s: %s", ch, token, strerror(errno));
        return -1;
    }
    return 0;
}

void webroot_unpublish(const char *root, const char *token)
{
    char path[4096];
    bprintf(path, sizeof(path), "%s/.well-known/acme-challenge/%s", root, token);
    if (unlink(path) != 0 && errno != ENOENT)
        progress(ACME_LOG_WARNING, "could not remove %s: %s; remove it by hand", path, strerror(errno));
    /* rmdir fails on a directory that still holds something: exactly the
     * case (another token, or the site's own files) where it must stay. */
    if (created_challenge) {
        bprintf(path, sizeof(path), "%s/.well-known/acme-challenge", root);
        if (rmdir(path) == 0)
            created_challenge = 0;
    }
    if (created_wellknown && !created_challenge) {
        bprintf(path, sizeof(path), "%s/.well-known", root);
        if (rmdir(path) == 0)
            created_wellknown = 0;
    }
}
