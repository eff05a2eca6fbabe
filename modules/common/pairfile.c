/* A key and its chain on disk, replaced as a pair (see pairfile.h).
 *
 * Order of work, each step undone if a later one fails:
 *   1. write each new file to a temporary in its own directory (mode set
 *      before any byte is written), fsync it; a full disk stops us here,
 *      with nothing replaced;
 *   2. keep the old key under a second name (a hard link: no data blocks,
 *      so it cannot fail for space; a copy where links do not work);
 *   3. rename the new key into place, then the new chain; if the chain's
 *      rename fails, rename the kept old key back (or remove the new key
 *      when there was none before);
 *   4. drop the kept key, fsync both directories. */
#include "pairfile.h"
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

static int say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(char *err, size_t errlen, const char *fmt, ...)
{
    int e = errno;
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    errno = e;
    return -1;
}

/* Step 1 for one file: tmp (a template from afile_sibling) becomes a
 * complete, fsync'ed file of the given mode (afile.c: the one home of
 * that). -1 with errno; nothing is left behind. */
static int write_temp(char *tmp, const void *data, size_t len, unsigned mode)
{
    afile_opts o = {.mode = mode, .durable = 1, .uid = (uid_t)-1, .gid = (gid_t)-1};
    return afile_temp_at(AT_FDCWD, tmp, data, len, &o, NULL);
}

/* Step 2: keep the old key at a fresh name in keep. 1 if kept, 0 if there
 * was no old key, -1 with errno. */
static int keep_old(const char *key_path, char *keep)
{
    struct stat st;
    if (lstat(key_path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISREG(st.st_mode))
        return 0; /* nothing worth restoring: a link or odd file is replaced */
    for (int tries = 0; tries < 100; tries++) {
        if (afile_pick_name(keep) != 0)
            return -1;
        if (link(key_path, keep) == 0)
            return 1;
        if (errno == EEXIST)
            continue;
        if (errno != EPERM && errno != EOPNOTSUPP && errno != EXDEV && errno != EMLINK)
            return -1;
        /* No hard links here: a copy, written before anything is replaced,
         * so running out of space for it changes nothing either. */
        int in = open(key_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0)
            return -1;
        char buf[65536];
        ssize_t n = read(in, buf, sizeof(buf));
        int e = n == (ssize_t)sizeof(buf) ? EFBIG : errno; /* no key is that long */
        close(in);
        if (n < 0 || n == (ssize_t)sizeof(buf)) {
            explicit_bzero(buf, sizeof(buf));
            errno = e;
            return -1;
        }
        int rc = write_temp(keep, buf, (size_t)n, (unsigned)(st.st_mode & 0777));
        explicit_bzero(buf, sizeof(buf));
        return rc == 0 ? 1 : -1;
    }
    errno = EEXIST;
    return -1;
}

static void fsync_dir_of(const char *path)
{
    (void)afile_fsync_dir_of(AT_FDCWD, path);
}

int pairfile_write(const char *key_path, const void *key, size_t key_len,
                   const char *chain_path, const void *chain, size_t chain_len,
                   unsigned chain_mode, char *err, size_t errlen)
{
    char tk[4096], tc[4096], kb[4096];
    if (afile_sibling(key_path, "new", tk, sizeof(tk)) || afile_sibling(chain_path, "new", tc, sizeof(tc)) ||
        afile_sibling(key_path, "old", kb, sizeof(kb)))
        return say(err, errlen, "cannot write %s: %s", key_path, strerror(errno));

    if (write_temp(tk, key, key_len, 0600) != 0)
        return say(err, errlen, "cannot write %s: %s; the old key and certificate are unchanged", key_path,
                   strerror(errno));
    if (write_temp(tc, chain, chain_len, chain_mode) != 0) {
        say(err, errlen, "cannot write %s: %s; the old key and certificate are unchanged", chain_path,
            strerror(errno));
        unlink(tk);
        return -1;
    }
    int kept = keep_old(key_path, kb);
    if (kept < 0) {
        say(err, errlen, "cannot keep a copy of %s to fall back to: %s; the old key and certificate are "
            "unchanged", key_path, strerror(errno));
        unlink(tk);
        unlink(tc);
        return -1;
    }
    if (rename(tk, key_path) != 0) {
        say(err, errlen, "cannot replace %s: %s; the old key and certificate are unchanged", key_path,
            strerror(errno));
        unlink(tk);
        unlink(tc);
        if (kept)
            unlink(kb);
        return -1;
    }
    if (rename(tc, chain_path) != 0) {
        int e = errno;
        unlink(tc);
        /* Put the old key back: rename is atomic, so a reader sees the old
         * key or the new one, never none. Without an old key, the new one
         * goes, and the directory is as it was. */
        int back = kept ? rename(kb, key_path) : unlink(key_path);
        if (back != 0) {
            int e2 = errno;
            if (kept)
                unlink(kb);
            errno = e;
            return say(err, errlen, "cannot replace %s: %s, and the old key could not be put back (%s): %s "
                       "now holds a key that does not match %s; run again once the cause is fixed",
                       chain_path, strerror(e), strerror(e2), key_path, chain_path);
        }
        fsync_dir_of(key_path);
        errno = e;
        return say(err, errlen, "cannot replace %s: %s; the old key and certificate are unchanged", chain_path,
                   strerror(e));
    }
    if (kept)
        unlink(kb);
    fsync_dir_of(key_path);
    fsync_dir_of(chain_path);
    return 0;
}
