/* The default storage: one file per key under a root directory.
 *
 * What matters here is that nothing is ever lost or half-written: a put()
 * goes to a fresh temp file in the same directory, is fsync'ed, and is
 * renamed over the old value, then the directory is fsync'ed so the rename
 * itself survives a crash. Everything is created 0600 / 0700 because the
 * store holds private keys. Keys are validated before any path is built, so
 * no key can name anything outside the root.
 *
 * The store is often used by root, and the place it lives in may have been
 * prepared by somebody else. So the root is opened once and checked (owned
 * by us, writable by nobody else, and every directory above it owned by
 * root or us and not writable by others unless sticky, as ssh's StrictModes
 * does); every key is then resolved relative to that descriptor, one
 * component at a time with O_NOFOLLOW, and every file and directory met on
 * the way must be ours. A symbolic link planted anywhere below the root is
 * refused, never followed, so nobody can redirect a write (or the truncation
 * of a lock file) to a file of their choosing. */
#include "storage_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <acme/error.h>

#include "buf.h"
#include "util.h"

#define LOCK_DIR ".locks"
/* '~' is not a key character, so neither the guard nor a temp file can
 * ever be mistaken for (or collide with) a key or a lock name. */
#define GUARD_NAME "guard~"
#define ROOT_MAX 2048          /* leaves room for key + suffix in PATH_MAX */
#define GUARD_WAIT_MS 5000     /* how long lock()/unlock() wait for the guard */
#define LOCK_FILE_MAX 512
/* Descriptors opened below the root: no following, no blocking on a FIFO
 * somebody put there, no controlling terminal. */
#define OPEN_SAFE (O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK)

typedef struct held_lock {
    struct held_lock *next;
    char *name;
    int fd;        /* open, with flock(LOCK_EX) held, for as long as we hold */
    dev_t dev;
    ino_t ino;
} held_lock;

typedef struct storage_file {
    char *root;
    int rootfd;         /* every key is resolved relative to this */
    uid_t uid;          /* the effective uid at open: owner of everything */
    pthread_mutex_t mu; /* guards err and held */
    char err[512];
    held_lock *held;
    char host[256];
} storage_file;

/* ---- keys ---- */

static int key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* One component [s, s+n): non-empty, key characters only, not "." or "..". */
static int component_valid(const char *s, size_t n)
{
    if (n == 0 || n > STORAGE_COMPONENT_MAX)
        return 0;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!key_char(s[i]))
            return 0;
    return 1;
}

int storage_key_valid(const char *key)
{
    if (!key || !*key)
        return 0;
    size_t len = strnlen(key, STORAGE_KEY_MAX + 1);
    if (len > STORAGE_KEY_MAX)
        return 0;
    size_t depth = 0;
    const char *s = key;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        /* An empty component rejects a leading '/', "a//b" and a trailing '/'. */
        if (!component_valid(s, n) || ++depth > STORAGE_KEY_MAX_DEPTH)
            return 0;
        if (!slash)
            return 1;
        s = slash + 1;
    }
}

/* The lock directory shares the root with the keys; keep keys out of it. */
static int key_reserved(const char *key)
{
    size_t n = sizeof(LOCK_DIR) - 1;
    return strncmp(key, LOCK_DIR, n) == 0 && (key[n] == '\0' || key[n] == '/');
}

static int key_usable(const char *key)
{
    return storage_key_valid(key) && !key_reserved(key);
}

/* ---- errors ---- */

static void set_err(storage_file *sf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(storage_file *sf, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&sf->mu);
    va_start(ap, fmt);
    vsnprintf(sf->err, sizeof(sf->err), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&sf->mu);
}

static int fail(storage_file *sf, const char *op, const char *path, int errnum)
{
    char tmp[128];
    /* GNU strerror_r: returns the message, thread-safe. */
    const char *msg = strerror_r(errnum, tmp, sizeof(tmp));
    set_err(sf, "%s %s: %s", op, path, msg);
    return ACME_E_STORAGE;
}

/* The three refusals of a hostile tree; each says what to do about it. */
static int fail_link(storage_file *sf, const char *path)
{
    set_err(sf, "refusing %s: it is a symbolic link, and libacme never follows links inside its "
                "storage (one could redirect a write to any file): remove it", path);
    return ACME_E_STORAGE;
}

static int fail_owner(storage_file *sf, const char *path, const struct stat *st)
{
    set_err(sf, "refusing %s: owned by uid %ld, not you (uid %ld): chown %ld %s, or remove it", path,
            (long)st->st_uid, (long)sf->uid, (long)sf->uid, path);
    return ACME_E_STORAGE;
}

static int fail_type(storage_file *sf, const char *path)
{
    set_err(sf, "refusing %s: not a regular file: remove it", path);
    return ACME_E_STORAGE;
}

const char *storage_file_last_error(void *ud)
{
    /* A copy per thread, so a reader never sees a message torn by another
     * thread's failure on the same handle. */
    static _Thread_local char copy[sizeof(((storage_file *)0)->err)];
    storage_file *sf = ud;
    if (!sf)
        return "";
    pthread_mutex_lock(&sf->mu);
    memcpy(copy, sf->err, sizeof(copy));
    pthread_mutex_unlock(&sf->mu);
    return copy;
}

/* storage_file_open fails before there is a handle to ask. */
static _Thread_local char open_err[sizeof(((storage_file *)0)->err)];

const char *storage_file_open_error(void)
{
    return open_err;
}

/* ---- file-system helpers ---- */

/* "<root>/<first n bytes of rel>", for messages only: no path built here is
 * ever opened. */
static char *shown(const storage_file *sf, const char *rel, size_t n)
{
    return xasprintf("%s/%.*s", sf->root, (int)n, rel);
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        /* A zero-byte write of a non-zero request is not progress. */
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fsync a directory so a create/rename/unlink in it is durable. Some file
 * systems cannot fsync a directory (EINVAL); there is nothing more to do. */
static int fsync_dirfd(int fd)
{
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        return -1;
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync_dirfd(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static int fsync_parent(char *path)
{
    char *slash = strrchr(path, '/');
    if (!slash)
        return fsync_dir(".");
    if (slash == path)
        return fsync_dir("/");
    *slash = '\0';
    int rc = fsync_dir(path);
    int e = errno;
    *slash = '/';
    errno = e;
    return rc;
}

/* mkdir -p for path[0 .. end), creating only components past 'from' (an
 * index of a '/' or 0). New directories get 0700 whatever the umask, and
 * their parent is fsync'ed so the new entry is durable. Used only for the
 * root and the directories above it, which are the caller's to choose;
 * storage_file_open checks the result. */
static int make_dirs(storage_file *sf, char *path, size_t from, size_t end)
{
    for (size_t i = from + 1; i <= end; i++) {
        if (i != end && path[i] != '/')
            continue;
        char save = path[i];
        path[i] = '\0';
        int rc = 0;
        if (path[0] != '\0') {
            if (mkdir(path, 0700) == 0) {
                if (chmod(path, 0700) != 0 || fsync_parent(path) != 0)
                    rc = fail(sf, "mkdir", path, errno);
            } else if (errno == EEXIST) {
                struct stat st;
                if (stat(path, &st) != 0)
                    rc = fail(sf, "stat", path, errno);
                else if (!S_ISDIR(st.st_mode))
                    rc = fail(sf, "mkdir", path, ENOTDIR);
            } else {
                rc = fail(sf, "mkdir", path, errno);
            }
        }
        path[i] = save;
        if (rc)
            return rc;
    }
    return ACME_OK;
}

/* What openat(dfd, name, O_NOFOLLOW...) failing with errno e means, as a
 * return code: a link is refused loudly; the rest is the caller's. */
static int is_link_at(int dfd, const char *name)
{
    struct stat st;
    return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

/* Resolve rel ("a/b/leaf", or "a/b/" for the directory a/b itself) below
 * the root one component at a time: every directory on the way is opened
 * with O_NOFOLLOW | O_DIRECTORY and must be ours. On ACME_OK, *dfd is the
 * directory holding the last component (the caller closes it) and *leaf
 * points at that component in rel ("" for a trailing '/').
 * create: make missing directories (0700, parent fsync'ed).
 * ACME_E_NOT_FOUND when a directory is missing (or is a file) and !create;
 * a symbolic link, or a directory that is not ours, is ACME_E_STORAGE with
 * a sentence. */
static int open_parent(storage_file *sf, const char *rel, int create, int *dfd, const char **leaf)
{
    /* A new open of ".", not a dup: a dup would share the directory offset
     * with every other user of the root (readdir in list). */
    int cur = openat(sf->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0)
        return fail(sf, "open", sf->root, errno);
    const char *s = rel;
    for (const char *slash; (slash = strchr(s, '/')) != NULL; s = slash + 1) {
        size_t n = (size_t)(slash - s);
        char name[STORAGE_COMPONENT_MAX + 16];
        if (n == 0 || n >= sizeof(name)) {
            close(cur);
            return ACME_E_INVALID_ARG;
        }
        memcpy(name, s, n);
        name[n] = '\0';
        int rc = ACME_OK, made = 0;
        int next = openat(cur, name, O_RDONLY | O_DIRECTORY | OPEN_SAFE);
        if (next < 0 && errno == ENOENT && create) {
            if (mkdirat(cur, name, 0700) == 0)
                made = 1;
            else if (errno != EEXIST)
                rc = -1;
            if (!rc)
                next = openat(cur, name, O_RDONLY | O_DIRECTORY | OPEN_SAFE);
        }
        if (next < 0 || rc) {
            int e = errno;
            char *p = shown(sf, rel, (size_t)(slash - rel));
            if (!p)
                rc = ACME_E_NOMEM;
            else if ((e == ELOOP || e == ENOTDIR) && is_link_at(cur, name))
                rc = fail_link(sf, p);
            else if (!create && (e == ENOENT || e == ENOTDIR))
                rc = ACME_E_NOT_FOUND; /* a file where a directory would be: no such key */
            else
                rc = fail(sf, create ? "mkdir" : "open", p, e);
            free(p);
            if (next >= 0)
                close(next);
            close(cur);
            return rc;
        }
        struct stat st;
        int bad_owner = 0;
        if (fstat(next, &st) != 0 || (bad_owner = st.st_uid != sf->uid) ||
            (made && (fchmod(next, 0700) != 0 || fsync_dirfd(cur) != 0))) {
            int e = errno;
            char *p = shown(sf, rel, (size_t)(slash - rel));
            rc = !p ? ACME_E_NOMEM : bad_owner ? fail_owner(sf, p, &st) : fail(sf, "mkdir", p, e);
            free(p);
            close(next);
            close(cur);
            return rc;
        }
        close(cur);
        cur = next;
    }
    *dfd = cur;
    *leaf = s;
    return ACME_OK;
}

/* Open leaf in dfd (flags | OPEN_SAFE) and require a regular file of ours.
 * Returns the descriptor, or -1 with *rc set: ACME_E_NOT_FOUND when absent
 * (also ENOTDIR and, with want_dir_as_absent, a directory), ACME_E_STORAGE
 * with a sentence for a link, another owner or another kind of file. rel is
 * the key path, for messages. */
static int open_file_at(storage_file *sf, int dfd, const char *leaf, const char *rel, int flags,
                        unsigned mode, int *rc)
{
    int fd = openat(dfd, leaf, flags | OPEN_SAFE, (mode_t)mode);
    if (fd < 0) {
        int e = errno;
        char *p = shown(sf, rel, strlen(rel));
        if (!p)
            *rc = ACME_E_NOMEM;
        else if (e == ENOENT || e == ENOTDIR)
            *rc = ACME_E_NOT_FOUND;
        else if (e == ELOOP && is_link_at(dfd, leaf))
            *rc = fail_link(sf, p);
        else if (e == EISDIR)
            *rc = ACME_E_NOT_FOUND; /* a directory is a key prefix, not a value */
        else
            *rc = fail(sf, "open", p, e);
        free(p);
        return -1;
    }
    struct stat st;
    int statted = fstat(fd, &st) == 0, e = errno;
    *rc = ACME_OK;
    if (statted && S_ISDIR(st.st_mode)) {
        *rc = ACME_E_NOT_FOUND; /* a directory is a key prefix, not a value */
    } else if (!statted || !S_ISREG(st.st_mode) || st.st_uid != sf->uid) {
        char *p = shown(sf, rel, strlen(rel));
        if (!p)
            *rc = ACME_E_NOMEM;
        else if (!statted)
            *rc = fail(sf, "stat", p, e);
        else if (!S_ISREG(st.st_mode))
            *rc = fail_type(sf, p);
        else
            *rc = fail_owner(sf, p, &st);
        free(p);
    }
    if (*rc != ACME_OK) {
        close(fd);
        return -1;
    }
    /* Back to blocking I/O for a regular file (O_NONBLOCK only guarded the
     * open itself against a FIFO). */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

/* Create "<leaf>~<pid>.XXXXXX" in dfd exclusively, mode 0600, with a random
 * name, so two writers of the same key never share a temp file. The name
 * goes to name (cap bytes). -1 with errno on failure. */
static int make_temp_at(int dfd, const char *leaf, char *name, size_t cap)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (int tries = 0; tries < 100; tries++) {
        unsigned char r[6];
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
            return -1;
        char sfx[7];
        for (size_t i = 0; i < 6; i++)
            sfx[i] = set[r[i] % (sizeof(set) - 1)];
        sfx[6] = '\0';
        if ((size_t)snprintf(name, cap, "%s~%ld.%s", leaf, (long)getpid(), sfx) >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | OPEN_SAFE, 0600);
        if (fd >= 0) {
            int fl = fcntl(fd, F_GETFL);
            if (fl >= 0)
                (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
            return fd;
        }
        if (errno != EEXIST)
            return -1;
    }
    errno = EEXIST;
    return -1;
}

/* ---- get / put / remove ---- */

static int sf_get(void *ud, const char *key, acme_buffer *out)
{
    storage_file *sf = ud;
    if (!sf || !out || !key || !key_usable(key))
        return ACME_E_INVALID_ARG;
    int dfd, rc;
    const char *leaf;
    if ((rc = open_parent(sf, key, 0, &dfd, &leaf)) != ACME_OK)
        return rc;
    int fd = open_file_at(sf, dfd, leaf, key, O_RDONLY, 0, &rc);
    close(dfd);
    if (fd < 0)
        return rc;

    size_t start = out->len;
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            char *p = shown(sf, key, strlen(key));
            rc = p ? fail(sf, "read", p, e) : ACME_E_NOMEM;
            free(p);
            break;
        }
        if (n == 0)
            break;
        if ((rc = buf_append(out, chunk, (size_t)n)) != ACME_OK)
            break;
    }
    /* The value may be a private key: leave no copy on the stack, and
     * no half value in the caller's buffer. */
    explicit_zero(chunk, sizeof(chunk));
    if (rc != ACME_OK && out->data) {
        explicit_zero(out->data + start, out->len - start);
        out->len = start;
        out->data[start] = '\0';
    }
    close(fd);
    return rc;
}

static int sf_put(void *ud, const char *key, const void *data, size_t len, unsigned flags)
{
    storage_file *sf = ud;
    /* Every file is 0600, so ACME_STORAGE_SECRET needs no special path:
     * there is no mode a secret could be stored with by mistake. */
    /* NO_SYNC: advisory data may be lost in a crash, but never torn — the
     * temp file + rename stays; only the waits for the disk go. */
    int sync = !(flags & ACME_STORAGE_NO_SYNC);
    if (!sf || !key || !key_usable(key) || (!data && len))
        return ACME_E_INVALID_ARG;
    int dfd, rc;
    const char *leaf;
    if ((rc = open_parent(sf, key, 1, &dfd, &leaf)) != ACME_OK)
        return rc;
    char tmp[STORAGE_COMPONENT_MAX + 40];
    char *path = shown(sf, key, strlen(key));
    int fd = -1, have_tmp = 0;
    if (!path) {
        rc = ACME_E_NOMEM;
        goto out;
    }
    fd = make_temp_at(dfd, leaf, tmp, sizeof(tmp));
    if (fd < 0) {
        rc = fail(sf, "create", path, errno);
        goto out;
    }
    have_tmp = 1;
    /* For messages: the temp file's full name. */
    char *tpath = xasprintf("%.*s%s", (int)(strlen(path) - strlen(leaf)), path, tmp);
    const char *tp = tpath ? tpath : path;
    /* The umask can only have removed bits; make the mode exact anyway. */
    if (fchmod(fd, 0600) != 0)
        rc = fail(sf, "chmod", tp, errno);
    else if (write_all(fd, data, len) != 0)
        rc = fail(sf, "write", tp, errno);
    else if (sync && fsync(fd) != 0)
        rc = fail(sf, "fsync", tp, errno);
    free(tpath);
    if (rc)
        goto out;
    /* Some file systems (NFS) report write-back errors only here. */
    int c = close(fd);
    fd = -1;
    if (c != 0) {
        rc = fail(sf, "close", path, errno);
        goto out;
    }
    /* renameat replaces whatever is at leaf, a planted link included,
     * without following it. */
    if (renameat(dfd, tmp, dfd, leaf) != 0) {
        rc = fail(sf, "rename", path, errno);
        goto out;
    }
    have_tmp = 0; /* renamed: it is the value now */
    /* Readers already see the new value, but the rename may not survive a
     * crash: report it, since the caller cannot otherwise know. */
    if (sync && fsync_dirfd(dfd) != 0)
        rc = fail(sf, "fsync directory of", path, errno);

out:
    if (fd >= 0)
        close(fd);
    if (have_tmp)
        unlinkat(dfd, tmp, 0);
    close(dfd);
    free(path);
    return rc;
}

static int sf_remove(void *ud, const char *key)
{
    storage_file *sf = ud;
    if (!sf || !key || !key_usable(key))
        return ACME_E_INVALID_ARG;
    int dfd, rc;
    const char *leaf;
    if ((rc = open_parent(sf, key, 0, &dfd, &leaf)) != ACME_OK)
        return rc == ACME_E_NOT_FOUND ? ACME_OK : rc; /* absent: nothing to remove */
    int removed = unlinkat(dfd, leaf, 0) == 0;
    if (!removed && errno != ENOENT && errno != ENOTDIR && errno != EISDIR) {
        /* Absent (or a directory, which is not a value) is not a failure. */
        int e = errno;
        char *p = shown(sf, key, strlen(key));
        rc = p ? fail(sf, "unlink", p, e) : ACME_E_NOMEM;
        free(p);
    }
    /* Best effort: a removal that is lost in a crash only resurrects a
     * value the caller had finished with. */
    if (removed)
        (void)fsync_dirfd(dfd);
    close(dfd);
    if (!removed)
        return rc;
    /* Directories left empty go too (never the root itself): a failed
     * order must not leave its traces in the tree. */
    char *dir = xstrdup(key);
    if (!dir)
        return ACME_OK;
    for (char *slash = strrchr(dir, '/'); slash; slash = strrchr(dir, '/')) {
        *slash = '\0';
        const char *dl;
        int pfd;
        if (open_parent(sf, dir, 0, &pfd, &dl) != ACME_OK)
            break;
        int ok = unlinkat(pfd, dl, AT_REMOVEDIR) == 0;
        close(pfd);
        if (!ok)
            break;
    }
    free(dir);
    return ACME_OK;
}

/* ---- list ---- */

typedef struct walk_entry {
    char *name;
    int is_dir;
} walk_entry;

typedef struct walk_ctx {
    storage_file *sf;
    const char *prefix;
    size_t prefix_len;
    acme_storage_list_cb cb;
    void *cbdata;
    int stop;
} walk_ctx;

static void free_entries(walk_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].name);
    free(e);
}

/* Read the names in one directory (rel: "" or "a/b/") up front and close it
 * before calling back or descending, so a callback may change the store
 * and the walk holds one descriptor at a time however deep it goes. */
static int read_dir(storage_file *sf, const char *rel, walk_entry **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    int pfd, rc;
    const char *leaf;
    if ((rc = open_parent(sf, rel, 0, &pfd, &leaf)) != ACME_OK)
        return rc == ACME_E_NOT_FOUND ? ACME_OK : rc; /* no such prefix: no keys */
    DIR *d = fdopendir(pfd);
    if (!d) {
        int e = errno;
        close(pfd);
        char *p = shown(sf, rel, strlen(rel));
        rc = p ? fail(sf, "opendir", p, e) : ACME_E_NOMEM;
        free(p);
        return rc;
    }
    int at_root = rel[0] == '\0';
    walk_entry *e = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) {
                int err = errno;
                char *p = shown(sf, rel, strlen(rel));
                rc = p ? fail(sf, "readdir", p, err) : ACME_E_NOMEM;
                free(p);
            }
            break;
        }
        const char *name = de->d_name;
        /* Temp files and the guard carry '~', "." and ".." are not
         * components: none of them is a key. */
        if (!component_valid(name, strlen(name)))
            continue;
        if (at_root && strcmp(name, LOCK_DIR) == 0)
            continue;
        /* Only real files and directories: a symbolic link is not a key
         * (get refuses it), so it is not listed either. */
        int is_dir;
        unsigned char type = de->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                continue;
            type = S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR : DT_UNKNOWN;
        }
        if (type == DT_REG)
            is_dir = 0;
        else if (type == DT_DIR)
            is_dir = 1;
        else
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            walk_entry *ne = realloc(e, nc * sizeof(*ne));
            if (!ne) {
                rc = ACME_E_NOMEM;
                break;
            }
            e = ne;
            cap = nc;
        }
        if (!(e[n].name = strdup(name))) {
            rc = ACME_E_NOMEM;
            break;
        }
        e[n++].is_dir = is_dir;
    }
    closedir(d);
    if (rc != ACME_OK) {
        free_entries(e, n);
        return rc;
    }
    *out = e;
    *count = n;
    return ACME_OK;
}

/* Walk the directory for key prefix 'rel' ("" or "a/b/"), at 'depth'
 * components below the root. */
static int walk(walk_ctx *w, const char *rel, size_t depth)
{
    walk_entry *e;
    size_t n;
    int rc = read_dir(w->sf, rel, &e, &n);
    if (rc != ACME_OK)
        return rc;

    for (size_t i = 0; i < n && rc == ACME_OK && !w->stop; i++) {
        char *key = xasprintf("%s%s%s", rel, e[i].name, e[i].is_dir ? "/" : "");
        if (!key) {
            rc = ACME_E_NOMEM;
            break;
        }
        size_t klen = strlen(key);
        if (e[i].is_dir) {
            /* Descend only where a key could still start with the prefix. */
            size_t m = klen < w->prefix_len ? klen : w->prefix_len;
            if (depth + 1 < STORAGE_KEY_MAX_DEPTH && klen < STORAGE_KEY_MAX &&
                strncmp(key, w->prefix, m) == 0)
                rc = walk(w, key, depth + 1);
        } else if (klen <= STORAGE_KEY_MAX && strncmp(key, w->prefix, w->prefix_len) == 0) {
            if (w->cb(w->cbdata, key) != 0)
                w->stop = 1;
        }
        free(key);
    }
    free_entries(e, n);
    return rc;
}

static int sf_list(void *ud, const char *prefix, acme_storage_list_cb cb, void *cbdata)
{
    storage_file *sf = ud;
    if (!sf || !cb)
        return ACME_E_INVALID_ARG;
    if (!prefix)
        prefix = "";
    size_t plen = strnlen(prefix, STORAGE_KEY_MAX + 1);
    if (plen > STORAGE_KEY_MAX)
        return ACME_E_INVALID_ARG;

    /* The prefix is normally a directory ("ca/certs/"), but the contract is
     * "every key that starts with prefix", so a partial last component
     * ("ca/ce") is allowed: walk its directory and filter. */
    const char *last = strrchr(prefix, '/');
    size_t dir_len = last ? (size_t)(last - prefix) : 0;
    for (const char *p = last ? last + 1 : prefix; *p; p++)
        if (!key_char(*p))
            return ACME_E_INVALID_ARG;
    char *rel;
    if (last) {
        char *dir = strndup(prefix, dir_len);
        if (!dir)
            return ACME_E_NOMEM;
        int ok = key_usable(dir);
        free(dir);
        if (!ok)
            return ACME_E_INVALID_ARG;
        rel = strndup(prefix, dir_len + 1);
    } else {
        rel = strdup("");
    }
    if (!rel)
        return ACME_E_NOMEM;

    walk_ctx w = { sf, prefix, plen, cb, cbdata, 0 };
    size_t depth = 0;
    for (const char *p = rel; *p; p++)
        depth += *p == '/';
    int rc = walk(&w, rel, depth);
    free(rel);
    /* Stopping early at the callback's request is not a failure. */
    return rc;
}

/* ---- locks ----
 *
 * A lock is the file .locks/<name> holding "pid host expires_ms". It is
 * live while its lease has not expired, unless its holder is provably gone:
 * on this host, a holder keeps flock(LOCK_EX) on the file for as long as it
 * holds it, and the kernel drops that flock when the holder dies, so a free
 * flock on a same-host lock means a dead holder (more reliable than kill(pid,
 * 0), which a recycled pid fools). The pid test is the fallback where flock
 * is not supported. Holders on other hosts are trusted until their lease
 * runs out.
 *
 * The check-then-replace of a stale lock must not be done by two
 * contenders at once (both would "win"), so it runs under an exclusive
 * flock on .locks/guard~, held only for those few file operations. A new
 * lock is written to a temp file, fsync'ed and flocked first, then link()ed
 * into place: link is exclusive like O_EXCL, and nobody can ever see a lock
 * file without its content or without its flock. */

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct lock_info {
    long pid;
    char host[256];
    long long expires_ms;
} lock_info;

static int parse_lock(const char *s, lock_info *li)
{
    int have = 0;
    memset(li, 0, sizeof(*li));
    while (*s) {
        const char *eol = strchr(s, '\n');
        size_t n = eol ? (size_t)(eol - s) : strlen(s);
        char line[LOCK_FILE_MAX];
        if (n >= sizeof(line))
            return -1;
        memcpy(line, s, n);
        line[n] = '\0';
        char *end;
        if (strncmp(line, "pid=", 4) == 0) {
            errno = 0;
            li->pid = strtol(line + 4, &end, 10);
            if (errno || *end || li->pid <= 0)
                return -1;
            have |= 1;
        } else if (strncmp(line, "host=", 5) == 0) {
            if (strlen(line + 5) >= sizeof(li->host))
                return -1;
            strcpy(li->host, line + 5);
            have |= 2;
        } else if (strncmp(line, "expires_ms=", 11) == 0) {
            errno = 0;
            li->expires_ms = strtoll(line + 11, &end, 10);
            if (errno || *end)
                return -1;
            have |= 4;
        }
        s += n;
        if (*s == '\n')
            s++;
    }
    return have == 7 ? 0 : -1;
}


/* Take the guard; *gfd is closed (releasing it) by release_guard. */
static int take_guard(storage_file *sf, int *gfd)
{
    static const char rel[] = LOCK_DIR "/" GUARD_NAME;
    int dfd, rc;
    const char *leaf;
    if ((rc = open_parent(sf, rel, 1, &dfd, &leaf)) != ACME_OK)
        return rc;
    /* O_RDWR: on NFS flock is emulated with POSIX locks, which need it.
     * O_NOFOLLOW (in open_file_at): a guard~ planted as a link to another
     * file is refused, not opened (and so never created or locked). */
    int fd = open_file_at(sf, dfd, leaf, rel, O_RDWR | O_CREAT, 0600, &rc);
    close(dfd);
    if (fd < 0)
        return rc == ACME_E_NOT_FOUND ? fail(sf, "open", sf->root, ENOENT) : rc;
    /* Poll rather than block: a stopped process holding the guard must not
     * hang every caller forever. */
    uint64_t deadline = now_ms() + GUARD_WAIT_MS;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            char *p = shown(sf, rel, strlen(rel));
            rc = p ? fail(sf, "flock", p, errno) : ACME_E_NOMEM;
            free(p);
            break;
        }
        if (now_ms() >= deadline) {
            rc = ACME_E_LOCKED;
            break;
        }
        sleep_ms(2);
    }
    if (rc) {
        close(fd);
        return rc;
    }
    *gfd = fd;
    return ACME_OK;
}

static void release_guard(int gfd)
{
    close(gfd); /* drops the flock */
}

/* Decide about an existing lock file (opened O_RDWR as fd): 1 if it is
 * stale and may be replaced, 0 if live. */
static int lock_is_stale(storage_file *sf, int fd)
{
    char text[LOCK_FILE_MAX + 1];
    ssize_t n;
    do
        n = pread(fd, text, LOCK_FILE_MAX, 0);
    while (n < 0 && errno == EINTR);
    text[n > 0 ? n : 0] = '\0';

    int flock_free = 0, flock_known = 1;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        flock_free = 1;
    else if (errno != EWOULDBLOCK)
        flock_known = 0; /* ENOLCK, EOPNOTSUPP...: flock says nothing here */

    lock_info li;
    if (n < 0 || parse_lock(text, &li) != 0) {
        /* Not written by us (we write complete, fsync'ed files): junk,
         * unless someone is visibly holding it. */
        return flock_free || !flock_known;
    }
    if (wall_ms() >= li.expires_ms)
        return 1;
    if (strcmp(li.host, sf->host) != 0)
        return 0;
    if (flock_known)
        return flock_free;
    return kill((pid_t)li.pid, 0) != 0 && errno == ESRCH;
}

static held_lock *find_held(storage_file *sf, const char *name)
{
    for (held_lock *h = sf->held; h; h = h->next)
        if (strcmp(h->name, name) == 0)
            return h;
    return NULL;
}

static int sf_lock(void *ud, const char *name, unsigned lease_seconds)
{
    storage_file *sf = ud;
    if (!sf || !name || !storage_key_valid(name) || lease_seconds == 0)
        return ACME_E_INVALID_ARG;

    pthread_mutex_lock(&sf->mu);
    int mine = find_held(sf, name) != NULL;
    pthread_mutex_unlock(&sf->mu);
    if (mine)
        return ACME_E_LOCKED; /* not re-entrant: see storage_file.h */

    held_lock *h = calloc(1, sizeof(*h));
    char *rel = xasprintf(LOCK_DIR "/%s", name);
    char *path = rel ? shown(sf, rel, strlen(rel)) : NULL;
    char tmp[STORAGE_COMPONENT_MAX + 40];
    const char *leaf = NULL;
    int rc = ACME_OK, gfd = -1, fd = -1, ldfd = -1, have_guard = 0, have_tmp = 0;
    if (!h || !path || !(h->name = strdup(name))) {
        rc = ACME_E_NOMEM;
        goto out;
    }
    if ((rc = take_guard(sf, &gfd)) != ACME_OK)
        goto out;
    have_guard = 1;
    if ((rc = open_parent(sf, rel, 1, &ldfd, &leaf)) != ACME_OK)
        goto out;

    int old = open_file_at(sf, ldfd, leaf, rel, O_RDWR, 0, &rc);
    if (old >= 0) {
        int stale = lock_is_stale(sf, old);
        close(old);
        if (!stale) {
            rc = ACME_E_LOCKED;
            goto out;
        }
        if (unlinkat(ldfd, leaf, 0) != 0 && errno != ENOENT) {
            rc = fail(sf, "unlink", path, errno);
            goto out;
        }
    } else if (rc != ACME_E_NOT_FOUND) {
        goto out; /* a link, a directory of someone else's...: refused */
    }
    rc = ACME_OK;

    fd = make_temp_at(ldfd, leaf, tmp, sizeof(tmp));
    if (fd < 0) {
        rc = fail(sf, "create", path, errno);
        goto out;
    }
    have_tmp = 1;
    char text[LOCK_FILE_MAX];
    int tn = snprintf(text, sizeof(text), "pid=%ld\nhost=%s\nexpires_ms=%lld\n",
                      (long)getpid(), sf->host, wall_ms() + 1000LL * lease_seconds);
    /* A fresh file: nobody else can hold its flock. */
    if (fchmod(fd, 0600) != 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
        rc = fail(sf, "flock", path, errno);
        goto out;
    }
    if (write_all(fd, text, (size_t)tn) != 0 || fsync(fd) != 0) {
        rc = fail(sf, "write", path, errno);
        goto out;
    }
    /* linkat never follows: leaf is created exactly where it is named. */
    if (linkat(ldfd, tmp, ldfd, leaf, 0) != 0) {
        /* EEXIST: someone not going through the guard got there first. */
        rc = errno == EEXIST ? ACME_E_LOCKED : fail(sf, "link", path, errno);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = fail(sf, "stat", path, errno);
        unlinkat(ldfd, leaf, 0);
        goto out;
    }
    h->fd = fd;
    h->dev = st.st_dev;
    h->ino = st.st_ino;
    fd = -1;
    pthread_mutex_lock(&sf->mu);
    h->next = sf->held;
    sf->held = h;
    pthread_mutex_unlock(&sf->mu);
    h = NULL;

out:
    if (have_tmp)
        unlinkat(ldfd, tmp, 0); /* the lock, if taken, lives on under its real name */
    if (fd >= 0)
        close(fd);
    if (ldfd >= 0)
        close(ldfd);
    if (have_guard)
        release_guard(gfd);
    if (h) {
        free(h->name);
        free(h);
    }
    free(path);
    free(rel);
    return rc;
}

/* Remove our lock file if it is still ours; called with h unlinked from
 * the held list. Frees h. */
static int release_held(storage_file *sf, held_lock *h)
{
    char *rel = xasprintf(LOCK_DIR "/%s", h->name);
    int rc = ACME_OK, gfd = -1, ldfd = -1;
    const char *leaf;
    if (!rel) {
        rc = ACME_E_NOMEM;
    } else if ((rc = take_guard(sf, &gfd)) == ACME_OK) {
        /* Under the guard nobody can replace the file between this check
         * and the unlink, so we never remove a lock that took ours over. */
        struct stat st;
        if ((rc = open_parent(sf, rel, 0, &ldfd, &leaf)) == ACME_OK) {
            if (fstatat(ldfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == h->dev &&
                st.st_ino == h->ino) {
                if (unlinkat(ldfd, leaf, 0) != 0) {
                    char *p = shown(sf, rel, strlen(rel));
                    rc = p ? fail(sf, "unlink", p, errno) : ACME_E_NOMEM;
                    free(p);
                }
            } else {
                rc = ACME_E_LOCKED;
            }
            close(ldfd);
        } else if (rc == ACME_E_NOT_FOUND) {
            rc = ACME_E_LOCKED; /* gone: someone else's business now */
        }
        release_guard(gfd);
    }
    close(h->fd);
    free(h->name);
    free(h);
    free(rel);
    return rc;
}

static int sf_unlock(void *ud, const char *name)
{
    storage_file *sf = ud;
    if (!sf || !name || !storage_key_valid(name))
        return ACME_E_INVALID_ARG;
    pthread_mutex_lock(&sf->mu);
    held_lock **pp = &sf->held;
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    held_lock *h = *pp;
    if (h)
        *pp = h->next;
    pthread_mutex_unlock(&sf->mu);
    if (!h)
        return ACME_E_STATE; /* not ours: refuse, touch nothing */
    return release_held(sf, h);
}

/* Extend a lease we hold: the lock file is rewritten in place (under the
 * guard, so nobody judges it half-written), and only if it is still ours. */
static int sf_refresh(void *ud, const char *name, unsigned lease_seconds)
{
    storage_file *sf = ud;
    if (!sf || !name || !storage_key_valid(name) || lease_seconds == 0)
        return ACME_E_INVALID_ARG;
    pthread_mutex_lock(&sf->mu);
    held_lock *h = find_held(sf, name);
    int fd = h ? h->fd : -1;
    dev_t dev = h ? h->dev : 0;
    ino_t ino = h ? h->ino : 0;
    pthread_mutex_unlock(&sf->mu);
    if (!h)
        return ACME_E_LOCKED; /* not held by this handle */
    char *rel = xasprintf(LOCK_DIR "/%s", name);
    if (!rel)
        return ACME_E_NOMEM;
    int rc, gfd = -1, ldfd = -1;
    const char *leaf;
    if ((rc = take_guard(sf, &gfd)) != ACME_OK) {
        free(rel);
        /* A busy guard says nothing about our lock: not ACME_E_LOCKED
         * (which tells the caller its lock is gone). */
        return rc == ACME_E_LOCKED ? ACME_E_TIMEOUT : rc;
    }
    struct stat st;
    if ((rc = open_parent(sf, rel, 0, &ldfd, &leaf)) == ACME_OK) {
        if (fstatat(ldfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == dev && st.st_ino == ino) {
            char text[LOCK_FILE_MAX];
            int tn = snprintf(text, sizeof(text), "pid=%ld\nhost=%s\nexpires_ms=%lld\n",
                              (long)getpid(), sf->host, wall_ms() + 1000LL * lease_seconds);
            ssize_t w = pwrite(fd, text, (size_t)tn, 0);
            if (w != tn || ftruncate(fd, tn) != 0 || fsync(fd) != 0) {
                char *p = shown(sf, rel, strlen(rel));
                rc = p ? fail(sf, "write", p, w < 0 ? errno : EIO) : ACME_E_NOMEM;
                free(p);
            }
        } else {
            rc = ACME_E_LOCKED; /* expired and taken over */
        }
        close(ldfd);
    } else if (rc == ACME_E_NOT_FOUND) {
        rc = ACME_E_LOCKED;
    }
    if (rc == ACME_E_LOCKED)
        set_err(sf, "the lock file %s is no longer this process's (its lease ran out, or another process took "
                "it over)", rel);
    release_guard(gfd);
    free(rel);
    return rc;
}

/* ---- open / close ---- */

/* ---- leftovers of writers that died ----
 * A writer killed between creating its temp file and the rename leaves
 * "<key>~<pid>.XXXXXX" behind. The value itself is intact (old or new);
 * the temp file is only clutter, removed here when its writer is gone:
 * dead on this host, or older than an hour (a writer on another host
 * sharing the directory finishes in milliseconds). */
#define STALE_TEMP_S 3600

static int sweep_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (flag != FTW_F)
        return 0;
    const char *base = path + ftw->base;
    const char *tilde = strrchr(base, '~');
    if (!tilde || !strchr(tilde, '.'))
        return 0;
    char *end = NULL;
    long pid = strtol(tilde + 1, &end, 10);
    if (!end || *end != '.' || pid <= 0 || strlen(end) != 7)
        return 0;
    int dead = pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    int old = st->st_mtime + STALE_TEMP_S < time(NULL);
    if (dead || old)
        (void)unlink(path);
    return 0;
}

/* ssh's StrictModes for the directories above the root (abs: the root as an
 * absolute path): each must be owned by root or us and not writable by
 * group or others, unless it is sticky (/tmp is fine above a state
 * directory: nobody can rename or remove what is ours in it). Anyone who
 * can replace a parent can replace the whole store. */
static int check_ancestors(storage_file *sf, const char *abs)
{
    char *p = xstrdup(abs);
    if (!p)
        return ACME_E_NOMEM;
    int rc = ACME_OK;
    for (char *slash; rc == ACME_OK && p[1] != '\0' && (slash = strrchr(p, '/')) != NULL;) {
        if (slash == p)
            slash[1] = '\0'; /* up to "/" itself */
        else
            *slash = '\0';
        struct stat st;
        if (stat(p, &st) != 0) {
            rc = fail(sf, "stat", p, errno);
        } else if (st.st_uid != 0 && st.st_uid != sf->uid) {
            set_err(sf, "state directory %s: the directory %s above it is owned by uid %ld, neither root "
                        "nor you (uid %ld), so that user could replace it: chown root %s, or use a state "
                        "directory elsewhere", sf->root, p, (long)st.st_uid, (long)sf->uid, p);
            rc = ACME_E_STORAGE;
        } else if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
            set_err(sf, "state directory %s: the directory %s above it is writable by group/others "
                        "(mode %04o), so they could replace it: chmod go-w %s, or use a state directory "
                        "elsewhere", sf->root, p, (unsigned)(st.st_mode & 07777), p);
            rc = ACME_E_STORAGE;
        }
    }
    free(p);
    return rc;
}

/* The root itself: ours, and writable by nobody else, sticky or not (a
 * sticky world-writable root would still let anyone plant names in it). */
static int check_root(storage_file *sf)
{
    struct stat st;
    if (fstat(sf->rootfd, &st) != 0)
        return fail(sf, "stat", sf->root, errno);
    if (st.st_uid != sf->uid) {
        set_err(sf, "state directory %s is owned by uid %ld, not you (uid %ld): chown %ld %s, or use "
                    "a state directory of your own", sf->root, (long)st.st_uid, (long)sf->uid,
                (long)sf->uid, sf->root);
        return ACME_E_STORAGE;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        set_err(sf, "state directory %s is writable by group/others (mode %04o): chmod go-w %s",
                sf->root, (unsigned)(st.st_mode & 07777), sf->root);
        return ACME_E_STORAGE;
    }
    int rc = ACME_OK;
    /* As given (a link on the way sits in a directory that must be safe
     * too) and as resolved (where the store really is). */
    char cwd[PATH_MAX];
    char *given = sf->root[0] == '/' ? xstrdup(sf->root)
                  : getcwd(cwd, sizeof(cwd)) ? xasprintf("%s/%s", cwd, sf->root) : NULL;
    char *real = realpath(sf->root, NULL);
    if (!given || !real)
        rc = fail(sf, "resolve", sf->root, errno ? errno : ENOMEM);
    if (rc == ACME_OK)
        rc = check_ancestors(sf, given);
    if (rc == ACME_OK && strcmp(given, real) != 0)
        rc = check_ancestors(sf, real);
    free(given);
    free(real);
    return rc;
}

int storage_file_open(const char *dir, void **ud)
{
    open_err[0] = '\0';
    if (!ud)
        return ACME_E_INVALID_ARG;
    *ud = NULL;
    if (!dir || !*dir || strlen(dir) > ROOT_MAX)
        return ACME_E_INVALID_ARG;
    storage_file *sf = calloc(1, sizeof(*sf));
    if (!sf)
        return ACME_E_NOMEM;
    sf->rootfd = -1;
    sf->uid = geteuid();
    pthread_mutex_init(&sf->mu, NULL);
    if (!(sf->root = strdup(dir))) {
        storage_file_close(sf);
        return ACME_E_NOMEM;
    }
    /* "/srv/acme///" and "/srv/acme" are the same root; keep "/" as is. */
    size_t n = strlen(sf->root);
    while (n > 1 && sf->root[n - 1] == '/')
        sf->root[--n] = '\0';
    if (gethostname(sf->host, sizeof(sf->host) - 1) != 0)
        strcpy(sf->host, "localhost");
    /* The host name goes into a line of the lock file. */
    for (char *p = sf->host; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = '_';

    int rc = make_dirs(sf, sf->root, 0, n);
    if (rc == ACME_OK) {
        sf->rootfd = open(sf->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY);
        if (sf->rootfd < 0)
            rc = fail(sf, "open", sf->root, errno);
    }
    if (rc == ACME_OK)
        rc = check_root(sf);
    if (rc != ACME_OK) {
        memcpy(open_err, sf->err, sizeof(open_err));
        storage_file_close(sf);
        return rc;
    }
    (void)nftw(sf->root, sweep_one, 16, FTW_PHYS);
    *ud = sf;
    return ACME_OK;
}

void storage_file_close(void *ud)
{
    storage_file *sf = ud;
    if (!sf)
        return;
    while (sf->held) {
        held_lock *h = sf->held;
        sf->held = h->next;
        (void)release_held(sf, h);
    }
    if (sf->rootfd >= 0)
        close(sf->rootfd);
    pthread_mutex_destroy(&sf->mu);
    free(sf->root);
    free(sf);
}

const acme_storage_ops storage_file_ops = {
    .size = sizeof(acme_storage_ops),
    .get = sf_get,
    .put = sf_put,
    .remove = sf_remove,
    .list = sf_list,
    .lock = sf_lock,
    .unlock = sf_unlock,
    .refresh = sf_refresh,
};
