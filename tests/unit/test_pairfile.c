/* Tests for the key + chain pair writer acmectl and mod_acme share
 * (modules/common/pairfile.c): whatever fails, the files on disk are the
 * old pair or the new pair, never a new key beside an old chain. Failures
 * are real ones: a missing directory, a directory where the chain goes (its
 * rename fails after the key's succeeded), and a write cut short by
 * RLIMIT_FSIZE, which fails like a full disk. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "pairfile.h"

#define OLD_KEY "-----BEGIN PRIVATE KEY-----\nold key\n-----END PRIVATE KEY-----\n"
#define OLD_CHAIN "-----BEGIN CERTIFICATE-----\nold chain\n-----END CERTIFICATE-----\n"
#define NEW_KEY "-----BEGIN PRIVATE KEY-----\nnew key\n-----END PRIVATE KEY-----\n"
#define NEW_CHAIN "-----BEGIN CERTIFICATE-----\nnew chain\n-----END CERTIFICATE-----\n"

typedef struct fixture {
    char dir[64], key[128], chain[128];
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
    snprintf(f->dir, sizeof(f->dir), "/tmp/libacme-pair-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->key, sizeof(f->key), "%s/site.key", f->dir);
    snprintf(f->chain, sizeof(f->chain), "%s/site.crt", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void file_put(const char *path, const char *text)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* The whole file as a string, or NULL when it does not exist. */
static char *file_get(const char *path)
{
    static char text[4][4096];
    static int slot;
    char *t = text[slot++ % 4];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, t, sizeof(text[0]) - 1);
    close(fd);
    t[n > 0 ? n : 0] = '\0';
    return t;
}

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

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static int put(const fixture *f, const char *chain_path, char *err, size_t errlen)
{
    return pairfile_write(f->key, NEW_KEY, strlen(NEW_KEY), chain_path, NEW_CHAIN, strlen(NEW_CHAIN),
                          0644, err, errlen);
}

static void old_pair(const fixture *f)
{
    file_put(f->key, OLD_KEY);
    file_put(f->chain, OLD_CHAIN);
}

static void assert_old_pair(const fixture *f)
{
    assert_string_equal(file_get(f->key), OLD_KEY);
    assert_string_equal(file_get(f->chain), OLD_CHAIN);
}

static void test_new_and_replaced(void **state)
{
    fixture *f = *state;
    char err[600] = "";
    mode_t old = umask(0); /* a permissive umask must not loosen the key */
    assert_int_equal(put(f, f->chain, err, sizeof(err)), 0);
    umask(old);
    assert_string_equal(file_get(f->key), NEW_KEY);
    assert_string_equal(file_get(f->chain), NEW_CHAIN);
    assert_int_equal(mode_of(f->key), 0600);
    assert_int_equal(mode_of(f->chain), 0644);
    assert_int_equal(count_entries(f->dir), 2);

    old_pair(f);
    assert_int_equal(put(f, f->chain, err, sizeof(err)), 0);
    assert_string_equal(file_get(f->key), NEW_KEY);
    assert_string_equal(file_get(f->chain), NEW_CHAIN);
    assert_int_equal(count_entries(f->dir), 2); /* no temporary, no kept key left */
}

/* The chain's temporary cannot even be made: nothing is replaced. */
static void test_chain_not_writable(void **state)
{
    fixture *f = *state;
    old_pair(f);
    char err[600] = "", chain[160];
    snprintf(chain, sizeof(chain), "%s/missing/site.crt", f->dir);
    assert_int_equal(put(f, chain, err, sizeof(err)), -1);
    print_message("%s\n", err);
    assert_non_null(strstr(err, chain));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_non_null(strstr(err, "the old key and certificate are unchanged"));
    assert_old_pair(f);
    assert_int_equal(count_entries(f->dir), 2);
}

/* The key is already renamed when the chain's rename fails: the old key
 * must come back, the very same file. */
static void test_second_rename_fails(void **state)
{
    fixture *f = *state;
    file_put(f->key, OLD_KEY);
    struct stat before, after;
    assert_int_equal(stat(f->key, &before), 0);
    char err[600] = "", chain[160];
    snprintf(chain, sizeof(chain), "%s/chain-is-a-dir", f->dir);
    assert_int_equal(mkdir(chain, 0700), 0);
    snprintf(err, sizeof(err), "%s/chain-is-a-dir/keep", f->dir);
    file_put(err, "x"); /* not empty: rename over it fails */
    err[0] = '\0';
    assert_int_equal(put(f, chain, err, sizeof(err)), -1);
    print_message("%s\n", err);
    assert_non_null(strstr(err, "cannot replace"));
    assert_non_null(strstr(err, chain));
    assert_non_null(strstr(err, "the old key and certificate are unchanged"));
    assert_string_equal(file_get(f->key), OLD_KEY);
    assert_int_equal(stat(f->key, &after), 0);
    assert_int_equal(after.st_ino, before.st_ino);
    assert_int_equal(count_entries(f->dir), 2); /* the key and the directory */

    /* With no key before, none is left after. */
    assert_int_equal(unlink(f->key), 0);
    assert_int_equal(put(f, chain, err, sizeof(err)), -1);
    assert_null(file_get(f->key));
    assert_int_equal(count_entries(f->dir), 1);
}

/* A chain too big for the file size limit: write() fails with EFBIG half
 * way, as it would with ENOSPC on a full disk. In a child, because the
 * limit applies to the whole process. */
static void test_short_write(void **state)
{
    fixture *f = *state;
    old_pair(f);
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
        char *big = malloc(n + 1);
        if (!big)
            _exit(101);
        memset(big, 'c', n);
        big[n] = '\0';
        char err[600] = "";
        int rc = pairfile_write(f->key, NEW_KEY, strlen(NEW_KEY), f->chain, big, n, 0644, err, sizeof(err));
        /* Freed: under valgrind the child's leak check decides its
         * exit status (--error-exitcode). */
        free(big);
        if (write(pfd[1], err, strlen(err)) < 0)
            _exit(102);
        _exit(rc == -1 ? 0 : 103);
    }
    close(pfd[1]);
    char msg[700] = "";
    ssize_t k, got = 0;
    while ((k = read(pfd[0], msg + got, sizeof(msg) - 1 - (size_t)got)) > 0)
        got += k;
    msg[got] = '\0';
    close(pfd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    print_message("%s\n", msg);
    assert_non_null(strstr(msg, f->chain));
    assert_non_null(strstr(msg, "File too large"));
    assert_non_null(strstr(msg, "unchanged"));
    assert_old_pair(f);
    assert_int_equal(count_entries(f->dir), 2);
}

/* A key planted as a link: the link is replaced, its target untouched. */
static void test_key_link_replaced(void **state)
{
    fixture *f = *state;
    char victim[128], err[600] = "";
    snprintf(victim, sizeof(victim), "%s/victim", f->dir);
    file_put(victim, "victim");
    assert_int_equal(symlink(victim, f->key), 0);
    assert_int_equal(put(f, f->chain, err, sizeof(err)), 0);
    assert_string_equal(file_get(victim), "victim");
    struct stat st;
    assert_int_equal(lstat(f->key, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_string_equal(file_get(f->key), NEW_KEY);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_new_and_replaced),
        T(test_chain_not_writable),
        T(test_second_rename_fails),
        T(test_short_write),
        T(test_key_link_replaced),
    };
    return cmocka_run_group_tests_name("pairfile", tests, NULL, NULL);
}
