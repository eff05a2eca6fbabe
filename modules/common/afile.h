/* Files the hosts and modules write themselves, in one place: acmectl
 * (--out, --webroot, run's status file), mod_acme (certificates, the
 * tls-alpn-01 files, its directories), the HAProxy module (PEM and
 * crt-list files) and pairfile.c (a key and its chain as a pair).
 *
 * The rules every one of them follows:
 *   - a file is replaced atomically: a temporary in the same directory,
 *     created exclusively and never through a link, its mode set before
 *     any byte is written (a key is never readable by others, even
 *     briefly), written in full, fsync'ed, then renamed over the old
 *     name; the directory is fsync'ed so the rename survives a crash. A
 *     reader sees the old file or the new one, never half of one, and a
 *     failed write leaves the old file and no temporary behind;
 *   - directories are made like `mkdir -p`, with a mode (and an owner)
 *     for those this call creates, and a component that exists but is
 *     not a directory is an error.
 * libacme's own file storage (libacme/storage_file.c) follows the same
 * rules inside the library; this is the copy for code outside it.
 * Compiled into each user (acmectl, mod_acme, the HAProxy module): no
 * library of its own, no exported symbols. */
#ifndef ACME_AFILE_H
#define ACME_AFILE_H

#include <stddef.h>
#include <sys/types.h>

typedef struct afile_opts {
    unsigned mode;     /* of the new file */
    int durable;       /* fsync the file and, after the rename, its directory */
    uid_t uid;         /* owner for the new file; (uid_t)-1 and (gid_t)-1: as created */
    gid_t gid;
    const char *tag;   /* the temporary is "<dir>/.<base>.<tag>XXXXXX"; NULL: "" */
} afile_opts;

/* What failed, for the caller's sentence: "create", "chmod", "write",
 * "fsync", "close", "rename". */
typedef struct afile_fault {
    const char *step;
    int chown_errno;   /* the owner could not be set (not fatal: the file is written) */
    int dir_sync_errno;/* the directory could not be fsync'ed after the rename (not fatal) */
} afile_fault;

/* "<dir>/.<base>.<tag>XXXXXX" next to path, in buf. 0, or -1 (ENAMETOOLONG). */
int afile_sibling(const char *path, const char *tag, char *buf, size_t cap);

/* Draw the last six characters of name (a template's XXXXXX) anew: a
 * random name for a file created exclusively. 0, or -1 (no randomness). */
int afile_pick_name(char *name);

/* tmp, a template from afile_sibling, becomes a complete file of o's mode
 * (relative to dfd, or AT_FDCWD), its last six characters replaced by the
 * random part of the name chosen.
 * 0, or -1 with errno and nothing left behind. fault may be NULL. */
int afile_temp_at(int dfd, char *tmp, const void *data, size_t len, const afile_opts *o, afile_fault *fault);

/* Replace path (relative to dfd, or AT_FDCWD) with data, as above; the
 * final name itself is replaced, never what a link there points at.
 * 0, or -1 with errno; fault (may be NULL) says which step failed. */
int afile_replace_at(int dfd, const char *path, const void *data, size_t len, const afile_opts *o,
                     afile_fault *fault);

/* fsync the directory holding path (relative to dfd), so a rename or a new
 * entry in it is durable. 0, or -1 with errno (some file systems cannot:
 * EINVAL counts as done). */
int afile_fsync_dir_of(int dfd, const char *path);

/* mkdir -p dir; what this call creates gets mode and, unless uid is
 * (uid_t)-1, that owner. 0, or -1 with errno and a sentence in err (may
 * be NULL) naming the directory. */
int afile_mkdirs(const char *dir, unsigned mode, uid_t uid, gid_t gid, char *err, size_t errlen);

/* The directory part of path ("." or "/" at the ends), malloc'ed. */
char *afile_dirname(const char *path);

/* 1 if path is a regular file holding exactly data, else 0. */
int afile_equals(const char *path, const void *data, size_t len);

#endif
