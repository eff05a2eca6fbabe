/* modules/common/afile.c: the one atomic file writer and mkdir -p of the
 * hosts and modules (acmectl, mod_acme, the HAProxy module, pairfile.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "afile.h"

static char dir[64]; /* "/tmp/test_afile.XXXXXX": short, so the paths below fit */

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_afile.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Only name (no temporary) in the directory. */
static void only_file(const char *d, const char *name)
{
    DIR *dp = opendir(d);
    assert_non_null(dp);
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (strcmp(e->d_name, name) != 0)
            fail_msg("left behind in %s: %s", d, e->d_name);
    }
    closedir(dp);
}

static const afile_opts key_opts = {.mode = 0600, .durable = 1, .uid = (uid_t)-1, .gid = (gid_t)-1, .tag = "t-"};

static void replace_writes_mode_and_content(void **state)
{
    (void)state;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/key.pem", dir);
    afile_fault f;
    assert_int_equal(afile_replace_at(AT_FDCWD, path, "one\n", 4, &key_opts, &f), 0);
    assert_string_equal(slurp(path), "one\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    afile_opts pub = key_opts;
    pub.mode = 0644;
    assert_int_equal(afile_replace_at(AT_FDCWD, path, "two, longer\n", 12, &pub, &f), 0);
    assert_string_equal(slurp(path), "two, longer\n");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(f.dir_sync_errno, 0);
    only_file(dir, "key.pem");
    assert_int_equal(afile_equals(path, "two, longer\n", 12), 1);
    assert_int_equal(afile_equals(path, "two, longer", 11), 0);
    assert_int_equal(afile_equals(path, "two, LONGER\n", 12), 0);
}

/* A link at the final name is replaced itself, never written through. */
static void link_is_replaced_not_followed(void **state)
{
    (void)state;
    char target[PATH_MAX], link[PATH_MAX];
    snprintf(target, sizeof(target), "%s/target", dir);
    snprintf(link, sizeof(link), "%s/link", dir);
    FILE *t = fopen(target, "w");
    assert_non_null(t);
    fputs("keep me\n", t);
    fclose(t);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(afile_replace_at(AT_FDCWD, link, "new\n", 4, &key_opts, NULL), 0);
    assert_string_equal(slurp(target), "keep me\n");
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_string_equal(slurp(link), "new\n");
}

/* A failed replacement leaves the old file and no temporary; the fault
 * names the step. Here the rename fails: a directory has the name. */
static void failure_leaves_old_state(void **state)
{
    (void)state;
    char sub[PATH_MAX];
    snprintf(sub, sizeof(sub), "%s/adir", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    char inner[PATH_MAX];
    snprintf(inner, sizeof(inner), "%s/adir/x", dir);
    FILE *x = fopen(inner, "w");
    assert_non_null(x);
    fclose(x);
    afile_fault f;
    assert_int_equal(afile_replace_at(AT_FDCWD, sub, "data", 4, &key_opts, &f), -1);
    assert_string_equal(f.step, "rename");
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    only_file(dir, "adir");
    /* A directory that does not exist: the temporary cannot be made. */
    char missing[PATH_MAX];
    snprintf(missing, sizeof(missing), "%s/none/file", dir);
    assert_int_equal(afile_replace_at(AT_FDCWD, missing, "data", 4, &key_opts, &f), -1);
    assert_int_equal(errno, ENOENT);
    assert_string_equal(f.step, "create");
}

/* Relative to a directory descriptor, as acmectl's --webroot writes. */
static void relative_to_dirfd(void **state)
{
    (void)state;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    afile_opts o = key_opts;
    o.tag = NULL;
    assert_int_equal(afile_replace_at(dfd, "token", "auth", 4, &o, NULL), 0);
    close(dfd);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/token", dir);
    assert_string_equal(slurp(path), "auth");
    only_file(dir, "token");
}

static void mkdirs_modes_and_errors(void **state)
{
    (void)state;
    char deep[PATH_MAX], err[300];
    mode_t mask = umask(0);
    umask(mask);
    snprintf(deep, sizeof(deep), "%s/a/b/c/", dir);
    assert_int_equal(afile_mkdirs(deep, 0750, (uid_t)-1, (gid_t)-1, err, sizeof(err)), 0);
    struct stat st;
    char b[PATH_MAX];
    snprintf(b, sizeof(b), "%s/a/b", dir);
    assert_int_equal(stat(b, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0750 & ~mask);
    assert_int_equal(afile_mkdirs(deep, 0700, (uid_t)-1, (gid_t)-1, err, sizeof(err)), 0); /* again: fine */
    /* A component that is a file. */
    char file[PATH_MAX], below[PATH_MAX], want[PATH_MAX + 64];
    snprintf(file, sizeof(file), "%s/plain", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(below, sizeof(below), "%s/plain/sub", dir);
    assert_int_equal(afile_mkdirs(below, 0700, (uid_t)-1, (gid_t)-1, err, sizeof(err)), -1);
    assert_int_equal(errno, ENOTDIR);
    snprintf(want, sizeof(want), "%s exists and is not a directory", file);
    assert_string_equal(err, want);
    char *d = afile_dirname("/x/y/z.pem");
    assert_string_equal(d, "/x/y");
    free(d);
    d = afile_dirname("/z.pem");
    assert_string_equal(d, "/");
    free(d);
    d = afile_dirname("z.pem");
    assert_string_equal(d, ".");
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(replace_writes_mode_and_content, setup, teardown),
        cmocka_unit_test_setup_teardown(link_is_replaced_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(failure_leaves_old_state, setup, teardown),
        cmocka_unit_test_setup_teardown(relative_to_dirfd, setup, teardown),
        cmocka_unit_test_setup_teardown(mkdirs_modes_and_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
