/* The default storage: a directory on disk. See doc/storage.md.
 *
 * Layout under the root:
 *   <key>                 one file per key, mode 0600; directories 0700
 *   <key>~XXXXXX          a put() in progress (never a valid key: '~')
 *   .locks/<name>         a held lock: pid, host and lease expiry
 *   .locks/guard~         serialises lock take-overs (flock)
 * The top-level name ".locks" is therefore reserved: keys under it are
 * refused with ACME_E_INVALID_ARG. */
#ifndef ACME_STORAGE_FILE_H
#define ACME_STORAGE_FILE_H

#include <acme/storage.h>

/* Bounds on a key, so that root + key + temp suffix always fits a path and
 * a directory walk never goes deeper than this many levels. */
#define STORAGE_KEY_MAX 1024        /* bytes, without the NUL */
#define STORAGE_COMPONENT_MAX 200   /* bytes per component (NAME_MAX minus suffix room) */
#define STORAGE_KEY_MAX_DEPTH 32    /* components */

extern const acme_storage_ops storage_file_ops;

/* Create (0700, mkdir -p) or open the directory. *ud is passed to
 * storage_file_ops. ACME_E_STORAGE if it cannot be created or exists but is
 * not a directory, or when it is not safe: not owned by the effective uid,
 * writable by group or others, or below a directory that is not owned by
 * root or us or is group/other-writable without the sticky bit (ssh's
 * StrictModes). ACME_E_INVALID_ARG for an empty or overlong path.
 * Below the root nothing is followed: a symbolic link met by any operation,
 * or a file or directory owned by another uid, is ACME_E_STORAGE with a
 * sentence in storage_file_last_error. */
int storage_file_open(const char *dir, void **ud);
/* Why the last storage_file_open on this thread failed, as a sentence that
 * says what to fix; "" if it did not (or failed only for memory). */
const char *storage_file_open_error(void);
/* Releases any lock this handle still holds, then frees it. */
void storage_file_close(void *ud);
/* 1 if key is a well-formed storage key (see include/acme/storage.h),
 * within the bounds above. */
int storage_key_valid(const char *key);

/* The last ACME_E_STORAGE failure on this handle as "<operation> <path>:
 * <errno text>", e.g. "write /srv/acme/x~a1B2c3: No space left on device";
 * "" if none yet. Not cleared by later successes. The string is a copy owned
 * by the calling thread, valid until its next call of this function.
 *
 * Locks (storage_file_ops.lock/unlock) are not re-entrant: a second lock of
 * a name this handle holds is ACME_E_LOCKED. unlock returns ACME_E_STATE if
 * this handle does not hold the name (nothing is touched), and
 * ACME_E_LOCKED if it did but its lease ran out and another holder took the
 * lock over (the other holder's lock is left alone). Leases use the wall
 * clock, so hosts sharing a directory need roughly synchronised clocks. */
const char *storage_file_last_error(void *ud);

#endif
