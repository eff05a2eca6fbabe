/* Tests for the directory storage: keys, round trips, modes, atomic
 * replacement under failure, listing, leased locks, and a hostile tree
 * (planted links, foreign owners, unsafe modes). Everything happens in a
 * fresh directory under /tmp that is removed afterwards. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <acme/client.h>
#include <acme/error.h>

#include "buf.h"
#include "storage_file.h"

typedef struct fixture {
    char dir[64];
    void *st;
} fixture;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/libacme-st-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(storage_file_open(f->dir, &f->st), ACME_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    storage_file_close(f->st);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static int put_str(void *st, const char *key, const char *v)
{
    return storage_file_ops.put(st, key, v, strlen(v), 0);
}

/* get as a NUL-terminated string (caller frees), or NULL with *rc set. */
static char *get_str(void *st, const char *key, int *rc)
{
    acme_buf b;
    buf_init(&b, 0);
    *rc = storage_file_ops.get(st, key, &b);
    if (*rc != ACME_OK) {
        buf_clear(&b);
        return NULL;
    }
    return buf_steal(&b, NULL);
}

static void assert_value(void *st, const char *key, const char *want)
{
    int rc;
    char *v = get_str(st, key, &rc);
    assert_int_equal(rc, ACME_OK);
    assert_string_equal(v, want);
    free(v);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

/* Names in a directory other than "." and "..", for leftover checks. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* ---- keys ---- */

static void test_key_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "a", "a/b", "abc/certs/example.org.pem", "A-Z_0.9", ".hidden", "..x", "x..", "a/.b/c",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(storage_key_valid(good[i]));
    static const char *const bad[] = {
        "", "/x", "x/", "a//b", "a/./b", "../x", "a/..", ".", "..", "a b", "a~", "a\\b",
        "caf\xc3\xa9", "a/\n", "a:b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(storage_key_valid(bad[i]));
    assert_false(storage_key_valid(NULL));

    char k[STORAGE_KEY_MAX + 2];
    /* Long keys: many short components up to the byte bound. */
    memset(k, 'a', sizeof(k));
    k[STORAGE_COMPONENT_MAX] = '\0';
    assert_true(storage_key_valid(k));
    k[STORAGE_COMPONENT_MAX] = 'a';
    k[STORAGE_COMPONENT_MAX + 1] = '\0';
    assert_false(storage_key_valid(k)); /* one component too long */
    /* Depth bound. */
    char deep[2 * (STORAGE_KEY_MAX_DEPTH + 1) + 1];
    size_t n = 0;
    for (int i = 0; i < STORAGE_KEY_MAX_DEPTH; i++) {
        deep[n++] = 'd';
        deep[n++] = '/';
    }
    deep[n - 1] = '\0';
    assert_true(storage_key_valid(deep));
    deep[n - 1] = '/';
    deep[n++] = 'd';
    deep[n] = '\0';
    assert_false(storage_key_valid(deep));
    /* Byte bound. */
    size_t m = 0;
    while (m + 101 <= STORAGE_KEY_MAX + 1) {
        memset(k + m, 'b', 100);
        k[m + 100] = '/';
        m += 101;
    }
    k[m - 1] = '\0';
    assert_true(storage_key_valid(k));
    memset(k, 'c', STORAGE_KEY_MAX + 1);
    for (size_t i = 100; i < STORAGE_KEY_MAX; i += 101)
        k[i] = '/';
    k[STORAGE_KEY_MAX + 1] = '\0';
    assert_false(storage_key_valid(k));
}

static void test_invalid_keys_rejected(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = { "../x", "/x", "a//b", "a/./b", "", "..", "x/",
                                       "../../etc/passwd", ".locks/a", ".locks" };
    /* /tmp/x may exist for reasons of its own: only its appearance counts. */
    char sibling[128];
    snprintf(sibling, sizeof(sibling), "%s/../x", f->dir);
    int had_sibling = access(sibling, F_OK) == 0;
    acme_buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(put_str(f->st, bad[i], "v"), ACME_E_INVALID_ARG);
        assert_int_equal(storage_file_ops.get(f->st, bad[i], &b), ACME_E_INVALID_ARG);
        assert_int_equal(storage_file_ops.remove(f->st, bad[i]), ACME_E_INVALID_ARG);
    }
    assert_int_equal(storage_file_ops.get(f->st, NULL, &b), ACME_E_INVALID_ARG);
    assert_int_equal(storage_file_ops.put(f->st, "k", NULL, 3, 0), ACME_E_INVALID_ARG);
    buf_clear(&b);
    /* Nothing was written anywhere: the root is still empty, and no "x"
     * appeared next to it. */
    assert_int_equal(count_entries(f->dir), 0);
    if (!had_sibling)
        assert_int_not_equal(access(sibling, F_OK), 0);
}

/* ---- values ---- */

static void test_round_trip(void **state)
{
    fixture *f = *state;
    int rc;
    assert_null(get_str(f->st, "acct/key.pem", &rc));
    assert_int_equal(rc, ACME_E_NOT_FOUND);

    assert_int_equal(put_str(f->st, "acct/key.pem", "first"), ACME_OK);
    assert_value(f->st, "acct/key.pem", "first");
    assert_int_equal(put_str(f->st, "acct/key.pem", "second, longer value"), ACME_OK);
    assert_value(f->st, "acct/key.pem", "second, longer value");
    assert_int_equal(put_str(f->st, "acct/key.pem", "3"), ACME_OK);
    assert_value(f->st, "acct/key.pem", "3");
    assert_int_equal(put_str(f->st, "acct/empty", ""), ACME_OK);
    assert_value(f->st, "acct/empty", "");

    /* Binary data with NULs, larger than one read chunk. */
    size_t n = 100000;
    unsigned char *blob = malloc(n);
    assert_non_null(blob);
    for (size_t i = 0; i < n; i++)
        blob[i] = (unsigned char)(i * 7);
    assert_int_equal(storage_file_ops.put(f->st, "a/b/c/d/blob", blob, n, ACME_STORAGE_SECRET),
                     ACME_OK);
    acme_buf b;
    buf_init(&b, 0);
    assert_int_equal(storage_file_ops.get(f->st, "a/b/c/d/blob", &b), ACME_OK);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, blob, n);
    buf_clear(&b);
    free(blob);

    /* get appends to what the buffer holds; over its cap nothing is kept. */
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, "xy", 2), ACME_OK);
    assert_int_equal(storage_file_ops.get(f->st, "acct/key.pem", &b), ACME_OK);
    assert_memory_equal(b.data, "xy3", 3);
    assert_int_equal(storage_file_ops.get(f->st, "a/b/c/d/blob", &b), ACME_E_TOO_LARGE);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "xy3");
    buf_clear(&b);

    /* A directory is a prefix, not a value. */
    assert_null(get_str(f->st, "a/b", &rc));
    assert_int_equal(rc, ACME_E_NOT_FOUND);
    /* Below a file: cannot exist. */
    assert_null(get_str(f->st, "acct/key.pem/x", &rc));
    assert_int_equal(rc, ACME_E_NOT_FOUND);

    assert_int_equal(storage_file_ops.remove(f->st, "acct/key.pem"), ACME_OK);
    assert_null(get_str(f->st, "acct/key.pem", &rc));
    assert_int_equal(rc, ACME_E_NOT_FOUND);
    assert_int_equal(storage_file_ops.remove(f->st, "acct/key.pem"), ACME_OK);
    assert_int_equal(storage_file_ops.remove(f->st, "never/was"), ACME_OK);

    /* A second handle on the same directory sees the same data. */
    void *st2;
    assert_int_equal(storage_file_open(f->dir, &st2), ACME_OK);
    assert_value(st2, "acct/empty", "");
    storage_file_close(st2);
}

static void test_permissions(void **state)
{
    fixture *f = *state;
    /* A permissive umask must not loosen anything. */
    mode_t old = umask(0);
    char root[128], path[256];
    snprintf(root, sizeof(root), "%s/new/root", f->dir);
    void *st;
    assert_int_equal(storage_file_open(root, &st), ACME_OK);
    assert_int_equal(storage_file_ops.put(st, "acct/keys/account.key", "k", 1,
                                          ACME_STORAGE_SECRET),
                     ACME_OK);
    assert_int_equal(put_str(st, "acct/url", "https://ca/acct/1"), ACME_OK);
    umask(old);

    snprintf(path, sizeof(path), "%s/new", f->dir);
    assert_int_equal(mode_of(path), 0700);
    assert_int_equal(mode_of(root), 0700);
    snprintf(path, sizeof(path), "%s/acct", root);
    assert_int_equal(mode_of(path), 0700);
    snprintf(path, sizeof(path), "%s/acct/keys", root);
    assert_int_equal(mode_of(path), 0700);
    snprintf(path, sizeof(path), "%s/acct/keys/account.key", root);
    assert_int_equal(mode_of(path), 0600);
    snprintf(path, sizeof(path), "%s/acct/url", root);
    assert_int_equal(mode_of(path), 0600);

    assert_int_equal(storage_file_ops.lock(st, "acct", 60), ACME_OK);
    snprintf(path, sizeof(path), "%s/.locks", root);
    assert_int_equal(mode_of(path), 0700);
    snprintf(path, sizeof(path), "%s/.locks/acct", root);
    assert_int_equal(mode_of(path), 0600);
    storage_file_close(st);
}

static void test_open_refuses_non_dir(void **state)
{
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof(path), "%s/plainfile", f->dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    void *st = (void *)0x1;
    assert_int_equal(storage_file_open(path, &st), ACME_E_STORAGE);
    assert_null(st);
    snprintf(path, sizeof(path), "%s/plainfile/sub", f->dir);
    assert_int_equal(storage_file_open(path, &st), ACME_E_STORAGE);
    assert_int_equal(storage_file_open("", &st), ACME_E_INVALID_ARG);
    /* Trailing slashes name the same root. */
    snprintf(path, sizeof(path), "%s///", f->dir);
    assert_int_equal(storage_file_open(path, &st), ACME_OK);
    assert_int_equal(put_str(st, "k", "v"), ACME_OK);
    assert_value(f->st, "k", "v");
    storage_file_close(st);
}

static void test_atomic_parent_is_file(void **state)
{
    fixture *f = *state;
    assert_int_equal(put_str(f->st, "f", "old"), ACME_OK);
    assert_int_equal(put_str(f->st, "f/g", "new"), ACME_E_STORAGE);
    const char *msg = storage_file_last_error(f->st);
    print_message("parent is a file: %s\n", msg);
    assert_non_null(strstr(msg, "Not a directory"));
    assert_non_null(strstr(msg, f->dir));
    assert_value(f->st, "f", "old");
    assert_int_equal(count_entries(f->dir), 1);

    /* Replacing a directory with a value fails the same clean way. */
    assert_int_equal(put_str(f->st, "d/x", "1"), ACME_OK);
    assert_int_equal(put_str(f->st, "d", "2"), ACME_E_STORAGE);
    assert_value(f->st, "d/x", "1");
    char d[128];
    snprintf(d, sizeof(d), "%s/d", f->dir);
    assert_int_equal(count_entries(d), 1); /* no temp file left beside x */
    assert_int_equal(count_entries(f->dir), 2);
}

/* A write cut short by RLIMIT_FSIZE (SIGXFSZ ignored, so write() fails
 * with EFBIG) must leave the old value and no temp file. Done in a child:
 * the limit applies to the whole process, test log included. */
static void test_atomic_short_write(void **state)
{
    fixture *f = *state;
    assert_int_equal(put_str(f->st, "cert.pem", "old value"), ACME_OK);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = { 4096, 4096 };
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(100);
        size_t n = 10000;
        char *big = malloc(n);
        if (!big)
            _exit(101);
        memset(big, 'z', n);
        int rc = storage_file_ops.put(f->st, "cert.pem", big, n, 0);
        const char *msg = storage_file_last_error(f->st);
        if (write(pfd[1], msg, strlen(msg)) < 0)
            _exit(102);
        free(big);
        _exit(rc);
    }
    close(pfd[1]);
    char msg[600] = "";
    ssize_t k, got = 0;
    while ((k = read(pfd[0], msg + got, sizeof(msg) - 1 - (size_t)got)) > 0)
        got += k;
    msg[got] = '\0';
    close(pfd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), ACME_E_STORAGE);
    print_message("short write: %s\n", msg);
    assert_true(strncmp(msg, "write ", 6) == 0);
    assert_non_null(strstr(msg, "File too large"));

    assert_value(f->st, "cert.pem", "old value");
    assert_int_equal(count_entries(f->dir), 1); /* the value, no temp file */
}

/* ---- list ---- */

typedef struct seen {
    char *keys[32];
    size_t n;
    size_t stop_after; /* 0 = never */
} seen;

static int collect(void *cbdata, const char *key)
{
    seen *s = cbdata;
    assert_true(s->n < 32);
    s->keys[s->n++] = strdup(key);
    return s->stop_after && s->n >= s->stop_after;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void expect_list(void *st, const char *prefix, size_t n, const char *const *want)
{
    seen s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(storage_file_ops.list(st, prefix, collect, &s), ACME_OK);
    qsort(s.keys, s.n, sizeof(s.keys[0]), cmp_str);
    assert_int_equal(s.n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(s.keys[i], want[i]);
    for (size_t i = 0; i < s.n; i++)
        free(s.keys[i]);
}

static void test_list(void **state)
{
    fixture *f = *state;
    assert_int_equal(put_str(f->st, "abc/certs/a.pem", "1"), ACME_OK);
    assert_int_equal(put_str(f->st, "abc/certs/sub/b.pem", "2"), ACME_OK);
    assert_int_equal(put_str(f->st, "abc/other", "3"), ACME_OK);
    assert_int_equal(put_str(f->st, "abd/x", "4"), ACME_OK);
    assert_int_equal(storage_file_ops.lock(f->st, "abc", 60), ACME_OK);
    /* A temp file left by a crashed writer is not a key. */
    char path[256];
    snprintf(path, sizeof(path), "%s/abc/certs/a.pem~Xy12zQ", f->dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);

    static const char *const certs[] = { "abc/certs/a.pem", "abc/certs/sub/b.pem" };
    expect_list(f->st, "abc/certs/", 2, certs);
    static const char *const abc[] = { "abc/certs/a.pem", "abc/certs/sub/b.pem", "abc/other" };
    expect_list(f->st, "abc/", 3, abc);
    static const char *const all[] = { "abc/certs/a.pem", "abc/certs/sub/b.pem", "abc/other",
                                       "abd/x" };
    expect_list(f->st, "", 4, all);
    expect_list(f->st, NULL, 4, all);
    expect_list(f->st, "ab", 4, all);
    static const char *const partial[] = { "abc/certs/a.pem", "abc/certs/sub/b.pem" };
    expect_list(f->st, "abc/ce", 2, partial);
    static const char *const one[] = { "abd/x" };
    expect_list(f->st, "abd", 1, one);
    expect_list(f->st, "missing/", 0, NULL);
    expect_list(f->st, "abd/x/", 0, NULL); /* below a file */

    seen s;
    memset(&s, 0, sizeof(s));
    s.stop_after = 2;
    assert_int_equal(storage_file_ops.list(f->st, "", collect, &s), ACME_OK);
    assert_int_equal(s.n, 2);
    for (size_t i = 0; i < s.n; i++)
        free(s.keys[i]);

    static const char *const bad[] = { "/x", "a//", ".locks/", "a/../", "../", "a b/", "x~" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(storage_file_ops.list(f->st, bad[i], collect, &s), ACME_E_INVALID_ARG);
    assert_int_equal(storage_file_ops.list(f->st, "", NULL, &s), ACME_E_INVALID_ARG);
    assert_int_equal(storage_file_ops.unlock(f->st, "abc"), ACME_OK);
}

/* ---- a hostile tree ----
 * The store is often root's, in a directory somebody else could have
 * prepared. Nothing below the root may be followed or trusted unless it is
 * ours: these plant what an attacker would. Each store lives in
 * <fixture>/store, each victim in <fixture>/outside. */

typedef struct hostile {
    char store[128], outside[128], victim[160];
    void *st;
} hostile;

static void file_put(const char *path, const char *text)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static char *file_get(const char *path)
{
    static char text[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    return text;
}

static void hostile_open(const fixture *f, hostile *h)
{
    snprintf(h->store, sizeof(h->store), "%s/store", f->dir);
    snprintf(h->outside, sizeof(h->outside), "%s/outside", f->dir);
    snprintf(h->victim, sizeof(h->victim), "%s/victim", h->outside);
    assert_int_equal(mkdir(h->outside, 0700), 0);
    file_put(h->victim, "victim's own content\n");
    assert_int_equal(storage_file_open(h->store, &h->st), ACME_OK);
}

static void plant(const hostile *h, const char *rel, const char *target)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", h->store, rel);
    assert_int_equal(symlink(target, path), 0);
}

static void assert_refused(const hostile *h, int rc, const char *what)
{
    const char *msg = storage_file_last_error(h->st);
    print_message("%s: %s\n", what, msg);
    assert_int_equal(rc, ACME_E_STORAGE);
    assert_non_null(strstr(msg, "symbolic link"));
    assert_non_null(strstr(msg, "remove it"));
    assert_string_equal(file_get(h->victim), "victim's own content\n");
}

static void test_hostile_lock_links(void **state)
{
    fixture *f = *state;
    hostile h;
    hostile_open(f, &h);
    char path[256];
    snprintf(path, sizeof(path), "%s/.locks", h.store);
    assert_int_equal(mkdir(path, 0700), 0);

    /* A lock file planted as a link to a victim: neither truncated, nor
     * locked, nor replaced. */
    plant(&h, ".locks/acct", h.victim);
    assert_refused(&h, storage_file_ops.lock(h.st, "acct", 60), "lock file link");
    snprintf(path, sizeof(path), "%s/.locks/acct", h.store);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));

    /* The guard planted as a link, to an existing file and to a name that
     * does not exist yet (O_CREAT must not create it). The lock above
     * made a real guard: replace it. */
    snprintf(path, sizeof(path), "%s/.locks/guard~", h.store);
    assert_int_equal(unlink(path), 0);
    plant(&h, ".locks/guard~", h.victim);
    assert_refused(&h, storage_file_ops.lock(h.st, "other", 60), "guard link");
    snprintf(path, sizeof(path), "%s/.locks/guard~", h.store);
    assert_int_equal(unlink(path), 0);
    char fresh[200];
    snprintf(fresh, sizeof(fresh), "%s/created-by-libacme", h.outside);
    plant(&h, ".locks/guard~", fresh);
    assert_refused(&h, storage_file_ops.lock(h.st, "other", 60), "guard link to a new name");
    assert_int_not_equal(access(fresh, F_OK), 0);

    /* The whole lock directory as a link. */
    storage_file_close(h.st);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(unlink(strcat(strcpy(fresh, h.store), "/.locks/acct")), 0);
    snprintf(path, sizeof(path), "%s/.locks", h.store);
    assert_int_equal(rmdir(path), 0);
    plant(&h, ".locks", h.outside);
    assert_int_equal(storage_file_open(h.store, &h.st), ACME_OK);
    assert_refused(&h, storage_file_ops.lock(h.st, "acct", 60), "lock directory link");
    assert_int_equal(count_entries(h.outside), 1); /* the victim only */
    storage_file_close(h.st);
}

static void test_hostile_key_links(void **state)
{
    fixture *f = *state;
    hostile h;
    hostile_open(f, &h);
    acme_buf b;
    buf_init(&b, 0);

    /* A key file that is a link: get refuses rather than read the victim. */
    assert_int_equal(put_str(h.st, "acct/url", "u"), ACME_OK);
    plant(&h, "acct/key.pem", h.victim);
    assert_refused(&h, storage_file_ops.get(h.st, "acct/key.pem", &b), "key link, get");
    assert_int_equal(b.len, 0);
    /* put replaces the link itself (rename never follows): the victim is
     * untouched and the key is a file of ours again. */
    assert_int_equal(put_str(h.st, "acct/key.pem", "new key"), ACME_OK);
    assert_string_equal(file_get(h.victim), "victim's own content\n");
    char path[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/acct/key.pem", h.store);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_value(h.st, "acct/key.pem", "new key");

    /* A directory on the way that is a link: nothing is read, written,
     * listed or removed through it. */
    file_put(strcat(strcpy(path, h.outside), "/cert.json"), "theirs");
    plant(&h, "certs", h.outside);
    assert_refused(&h, storage_file_ops.get(h.st, "certs/cert.json", &b), "dir link, get");
    assert_refused(&h, put_str(h.st, "certs/cert.json", "x"), "dir link, put");
    assert_refused(&h, put_str(h.st, "certs/new/cert.json", "x"), "dir link, put below");
    assert_refused(&h, storage_file_ops.remove(h.st, "certs/cert.json"), "dir link, remove");
    assert_string_equal(file_get(path), "theirs");
    assert_int_equal(count_entries(h.outside), 2);
    static const char *const keys[] = { "acct/key.pem", "acct/url" };
    expect_list(h.st, "", 2, keys);
    buf_clear(&b);
    storage_file_close(h.st);
}

/* A file or directory below the root that belongs to another uid. */
static void test_hostile_foreign_files(void **state)
{
    if (geteuid() != 0) {
        print_message("skipped: needs root to chown a file to another uid (CI runs this as root)\n");
        skip();
    }
    fixture *f = *state;
    hostile h;
    hostile_open(f, &h);
    char path[256];
    assert_int_equal(put_str(h.st, "acct/key.pem", "k"), ACME_OK);
    snprintf(path, sizeof(path), "%s/acct/key.pem", h.store);
    assert_int_equal(chown(path, 65534, 65534), 0);
    acme_buf b;
    buf_init(&b, 0);
    assert_int_equal(storage_file_ops.get(h.st, "acct/key.pem", &b), ACME_E_STORAGE);
    const char *msg = storage_file_last_error(h.st);
    print_message("foreign file: %s\n", msg);
    assert_non_null(strstr(msg, "owned by uid 65534, not you (uid 0)"));
    assert_non_null(strstr(msg, "chown 0"));
    assert_int_equal(put_str(h.st, "acct/url", "u"), ACME_OK);
    snprintf(path, sizeof(path), "%s/acct", h.store);
    assert_int_equal(chown(path, 65534, 65534), 0);
    assert_int_equal(put_str(h.st, "acct/url", "v"), ACME_E_STORAGE);
    assert_non_null(strstr(storage_file_last_error(h.st), "owned by uid 65534"));
    buf_clear(&b);
    storage_file_close(h.st);
}

/* ---- an unsafe root ---- */

static void expect_open_refused(const char *dir, const char *needle1, const char *needle2)
{
    void *st = (void *)0x1;
    assert_int_equal(storage_file_open(dir, &st), ACME_E_STORAGE);
    assert_null(st);
    const char *msg = storage_file_open_error();
    print_message("%s: %s\n", dir, msg);
    assert_non_null(strstr(msg, needle1));
    assert_non_null(strstr(msg, needle2));
}

static void test_unsafe_root_modes(void **state)
{
    fixture *f = *state;
    char root[128], parent[128];
    snprintf(root, sizeof(root), "%s/state", f->dir);
    assert_int_equal(mkdir(root, 0700), 0);
    assert_int_equal(chmod(root, 0777), 0);
    expect_open_refused(root, "is writable by group/others (mode 0777)", "chmod go-w");
    /* Sticky does not make a world-writable root safe: anyone could still
     * plant new names in it. */
    assert_int_equal(chmod(root, 01777), 0);
    expect_open_refused(root, "writable by group/others (mode 1777)", "chmod go-w");
    assert_int_equal(chmod(root, 0770), 0);
    expect_open_refused(root, "writable by group/others (mode 0770)", "chmod go-w");
    assert_int_equal(chmod(root, 0700), 0);
    void *st;
    assert_int_equal(storage_file_open(root, &st), ACME_OK);
    storage_file_close(st);

    /* A parent writable by others could swap the whole store... */
    snprintf(parent, sizeof(parent), "%s/shared", f->dir);
    snprintf(root, sizeof(root), "%s/shared/state", f->dir);
    assert_int_equal(mkdir(parent, 0700), 0);
    assert_int_equal(chmod(parent, 0777), 0);
    expect_open_refused(root, "above it is writable by group/others (mode 0777)", "chmod go-w");
    /* ...even one met through a link on the way. */
    char via[128], through[160];
    snprintf(via, sizeof(via), "%s/via", f->dir);
    assert_int_equal(symlink(parent, via), 0);
    snprintf(through, sizeof(through), "%s/state", via);
    expect_open_refused(through, "above it is writable by group/others", "chmod go-w");
    /* ...unless it is sticky, like /tmp. */
    assert_int_equal(chmod(parent, 01777), 0);
    assert_int_equal(storage_file_open(root, &st), ACME_OK);
    storage_file_close(st);

    /* The sentence reaches the host through acme_client_last_error. */
    assert_int_equal(chmod(root, 0707), 0);
    acme_client *c;
    assert_int_equal(acme_client_new("https://127.0.0.1:1/dir", &c), ACME_OK);
    assert_int_equal(acme_client_set_storage_dir(c, root), ACME_E_STORAGE);
    print_message("client: %s\n", acme_client_last_error(c));
    assert_non_null(strstr(acme_client_last_error(c), "chmod go-w"));
    acme_client_free(c);
}

static void test_unsafe_root_owner(void **state)
{
    if (geteuid() != 0) {
        print_message("skipped: needs root to chown the state directory to another uid "
                      "(CI runs this as root)\n");
        skip();
    }
    fixture *f = *state;
    char root[128], parent[128];
    snprintf(root, sizeof(root), "%s/state", f->dir);
    assert_int_equal(mkdir(root, 0700), 0);
    assert_int_equal(chown(root, 65534, 65534), 0);
    expect_open_refused(root, "is owned by uid 65534, not you (uid 0)", "chown 0");
    assert_int_equal(chown(root, 0, 0), 0);
    /* A parent owned by somebody else (not root, not us) could be
     * replaced by them. */
    snprintf(parent, sizeof(parent), "%s/theirs", f->dir);
    snprintf(root, sizeof(root), "%s/theirs/state", f->dir);
    assert_int_equal(mkdir(parent, 0755), 0);
    assert_int_equal(chown(parent, 65534, 65534), 0);
    expect_open_refused(root, "above it is owned by uid 65534, neither root nor you", "chown root");
}

/* ---- locks ---- */

static void lock_path(const fixture *f, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/.locks/%s", f->dir, name);
}

static void test_lock_contention(void **state)
{
    fixture *f = *state;
    void *b;
    assert_int_equal(storage_file_open(f->dir, &b), ACME_OK);
    char path[256];
    lock_path(f, "acct", path, sizeof(path));

    assert_int_equal(storage_file_ops.lock(f->st, "acct", 60), ACME_OK);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(storage_file_ops.lock(b, "acct", 60), ACME_E_LOCKED);
    assert_int_equal(storage_file_ops.lock(f->st, "acct", 60), ACME_E_LOCKED); /* not re-entrant */
    /* Other names are independent, including nested ones. */
    assert_int_equal(storage_file_ops.lock(b, "ca1/order-7", 60), ACME_OK);
    assert_int_equal(storage_file_ops.lock(f->st, "ca1/order-7", 60), ACME_E_LOCKED);

    /* Unlock by a non-holder is refused and changes nothing. */
    assert_int_equal(storage_file_ops.unlock(b, "acct"), ACME_E_STATE);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(storage_file_ops.lock(b, "acct", 60), ACME_E_LOCKED);

    assert_int_equal(storage_file_ops.unlock(f->st, "acct"), ACME_OK);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(storage_file_ops.unlock(f->st, "acct"), ACME_E_STATE);
    assert_int_equal(storage_file_ops.lock(b, "acct", 60), ACME_OK);
    assert_int_equal(storage_file_ops.unlock(b, "acct"), ACME_OK);
    assert_int_equal(storage_file_ops.unlock(b, "ca1/order-7"), ACME_OK);

    assert_int_equal(storage_file_ops.lock(b, "../x", 60), ACME_E_INVALID_ARG);
    assert_int_equal(storage_file_ops.lock(b, "x", 0), ACME_E_INVALID_ARG);
    assert_int_equal(storage_file_ops.unlock(b, "/x"), ACME_E_INVALID_ARG);
    storage_file_close(b);
}

static void test_lock_expired_takeover(void **state)
{
    fixture *f = *state;
    void *b, *c;
    assert_int_equal(storage_file_open(f->dir, &b), ACME_OK);
    assert_int_equal(storage_file_open(f->dir, &c), ACME_OK);

    assert_int_equal(storage_file_ops.lock(f->st, "order", 1), ACME_OK);
    assert_int_equal(storage_file_ops.lock(b, "order", 60), ACME_E_LOCKED);
    usleep(1100 * 1000);
    /* The lease ran out: taken over although the holder still lives. */
    assert_int_equal(storage_file_ops.lock(b, "order", 60), ACME_OK);
    assert_int_equal(storage_file_ops.lock(c, "order", 60), ACME_E_LOCKED);
    /* The old holder can no longer release it... */
    assert_int_equal(storage_file_ops.unlock(f->st, "order"), ACME_E_LOCKED);
    /* ...and trying did not free it. */
    assert_int_equal(storage_file_ops.lock(c, "order", 60), ACME_E_LOCKED);
    assert_int_equal(storage_file_ops.unlock(b, "order"), ACME_OK);
    assert_int_equal(storage_file_ops.lock(c, "order", 60), ACME_OK);
    storage_file_close(c); /* releases */
    assert_int_equal(storage_file_ops.lock(b, "order", 60), ACME_OK);
    storage_file_close(b);
}

/* refresh (1.2) keeps a lease alive while an order runs; a lease lost to a
 * take-over cannot be refreshed back. */
static void test_lock_refresh(void **state)
{
    fixture *f = *state;
    void *b;
    assert_int_equal(storage_file_open(f->dir, &b), ACME_OK);
    assert_int_equal(storage_file_ops.lock(f->st, "order", 1), ACME_OK);
    assert_int_equal(storage_file_ops.refresh(f->st, "order", 60), ACME_OK);
    usleep(1300 * 1000);
    /* The first lease would have run out; the refreshed one has not. */
    assert_int_equal(storage_file_ops.lock(b, "order", 60), ACME_E_LOCKED);
    /* Not held by b: nothing to refresh. */
    assert_int_equal(storage_file_ops.refresh(b, "order", 60), ACME_E_LOCKED);
    /* Shorten it, let it run out, let b take it over. */
    assert_int_equal(storage_file_ops.refresh(f->st, "order", 1), ACME_OK);
    usleep(1100 * 1000);
    assert_int_equal(storage_file_ops.lock(b, "order", 60), ACME_OK);
    assert_int_equal(storage_file_ops.refresh(f->st, "order", 60), ACME_E_LOCKED);
    assert_int_equal(storage_file_ops.refresh(b, "order", 60), ACME_OK);
    assert_int_equal(storage_file_ops.unlock(f->st, "order"), ACME_E_LOCKED);
    assert_int_equal(storage_file_ops.unlock(b, "order"), ACME_OK);
    storage_file_close(b);
}

/* A holder process that dies (SIGKILL: no cleanup) frees its lock at once,
 * long before its lease would run out. */
static void test_lock_dead_holder(void **state)
{
    fixture *f = *state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        void *st;
        char ok = 'n';
        if (storage_file_open(f->dir, &st) == ACME_OK &&
            storage_file_ops.lock(st, "acct", 3600) == ACME_OK)
            ok = 'y';
        if (write(pfd[1], &ok, 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(pfd[1]);
    char ok = 0;
    assert_int_equal(read(pfd[0], &ok, 1), 1);
    close(pfd[0]);
    assert_int_equal(ok, 'y');
    assert_int_equal(storage_file_ops.lock(f->st, "acct", 60), ACME_E_LOCKED);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(storage_file_ops.lock(f->st, "acct", 60), ACME_OK);
    assert_int_equal(storage_file_ops.unlock(f->st, "acct"), ACME_OK);
}

static void write_lock(const fixture *f, const char *name, const char *text)
{
    char dir[256], path[256];
    snprintf(dir, sizeof(dir), "%s/.locks", f->dir);
    mkdir(dir, 0700);
    lock_path(f, name, path, sizeof(path));
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static long long wall_ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Lock files as another process or host would leave them. */
static void test_lock_foreign_files(void **state)
{
    fixture *f = *state;
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    char text[512];
    long long now = wall_ms_now();

    /* Another host, live lease: trusted even though no flock is visible. */
    snprintf(text, sizeof(text), "pid=1\nhost=elsewhere.invalid\nexpires_ms=%lld\n",
             now + 600000);
    write_lock(f, "a", text);
    assert_int_equal(storage_file_ops.lock(f->st, "a", 60), ACME_E_LOCKED);

    /* Another host, lease over. */
    snprintf(text, sizeof(text), "pid=1\nhost=elsewhere.invalid\nexpires_ms=%lld\n", now - 1);
    write_lock(f, "b", text);
    assert_int_equal(storage_file_ops.lock(f->st, "b", 60), ACME_OK);

    /* This host, live lease, but the holder's pid is gone. */
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    snprintf(text, sizeof(text), "pid=%ld\nhost=%s\nexpires_ms=%lld\n", (long)pid, host,
             now + 600000);
    write_lock(f, "c", text);
    assert_int_equal(storage_file_ops.lock(f->st, "c", 60), ACME_OK);

    /* Junk nobody holds. */
    write_lock(f, "d", "garbage");
    assert_int_equal(storage_file_ops.lock(f->st, "d", 60), ACME_OK);

    /* What we write is what we read back. */
    char path[256];
    lock_path(f, "d", path, sizeof(path));
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char got[512] = "";
    size_t k = fread(got, 1, sizeof(got) - 1, fp);
    got[k] = '\0';
    fclose(fp);
    char want[300];
    snprintf(want, sizeof(want), "pid=%ld\nhost=%s\n", (long)getpid(), host);
    assert_true(strncmp(got, want, strlen(want)) == 0);
    assert_non_null(strstr(got, "expires_ms="));
}

/* Many contenders for one stale lock at the same moment: exactly one wins. */
#define RACERS 8
static pthread_barrier_t race_barrier;
static const char *race_dir;

static void *racer(void *arg)
{
    int *result = arg;
    void *st;
    if (storage_file_open(race_dir, &st) != ACME_OK) {
        *result = -1;
        return NULL;
    }
    pthread_barrier_wait(&race_barrier);
    *result = storage_file_ops.lock(st, "hot", 60);
    /* Hold on until everyone has tried, then let go. */
    pthread_barrier_wait(&race_barrier);
    storage_file_close(st);
    return NULL;
}

static void test_lock_race(void **state)
{
    fixture *f = *state;
    char text[256];
    snprintf(text, sizeof(text), "pid=1\nhost=elsewhere.invalid\nexpires_ms=%lld\n",
             wall_ms_now() - 1000);
    write_lock(f, "hot", text);
    race_dir = f->dir;
    pthread_barrier_init(&race_barrier, NULL, RACERS);
    pthread_t th[RACERS];
    int results[RACERS];
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, racer, &results[i]), 0);
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&race_barrier);
    int won = 0, locked = 0;
    for (int i = 0; i < RACERS; i++) {
        won += results[i] == ACME_OK;
        locked += results[i] == ACME_E_LOCKED;
    }
    assert_int_equal(won, 1);
    assert_int_equal(locked, RACERS - 1);
    /* The winner's close released it. */
    assert_int_equal(storage_file_ops.lock(f->st, "hot", 60), ACME_OK);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_valid),
        T(test_invalid_keys_rejected),
        T(test_round_trip),
        T(test_permissions),
        T(test_open_refuses_non_dir),
        T(test_atomic_parent_is_file),
        T(test_atomic_short_write),
        T(test_list),
        T(test_hostile_lock_links),
        T(test_hostile_key_links),
        T(test_hostile_foreign_files),
        T(test_unsafe_root_modes),
        T(test_unsafe_root_owner),
        T(test_lock_contention),
        T(test_lock_expired_takeover),
        T(test_lock_refresh),
        T(test_lock_dead_holder),
        T(test_lock_foreign_files),
        T(test_lock_race),
    };
    return cmocka_run_group_tests_name("storage_file", tests, NULL, NULL);
}
