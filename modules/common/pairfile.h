/* Replacing a private key and its certificate chain as a pair.
 *
 * A web server loads ssl.privkey and ssl.pemfile (or --out's <id>.key and
 * <id>.crt) together and refuses to start when they do not belong
 * together. Writing them one after the other, each atomically, leaves the
 * new key beside the old chain when the second write fails (a full disk).
 * pairfile_write writes and fsyncs both new files first and only then
 * renames them into place; if the second rename fails, the old key is put
 * back. Shared by acmectl (examples/acmectl) and mod_acme, compiled into
 * each: no library of its own, no exported symbols. */
#ifndef ACME_PAIRFILE_H
#define ACME_PAIRFILE_H

#include <stddef.h>

/* Replace key_path (mode 0600) and chain_path (chain_mode) so that on disk
 * there is always either the old pair or the new one (a crash between the
 * two renames is the one exception: both renames are then a few
 * microseconds apart, and a host that keeps the pair elsewhere, as libacme
 * does, puts it on disk again at its next start). The two paths may be in
 * different directories. Returns 0, or -1 with errno set and a sentence in
 * err that names the file and says whether the old pair is intact. */
int pairfile_write(const char *key_path, const void *key, size_t key_len,
                   const char *chain_path, const void *chain, size_t chain_len,
                   unsigned chain_mode, char *err, size_t errlen);

#endif
