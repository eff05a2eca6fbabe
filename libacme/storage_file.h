/* The default storage: a directory on disk. See doc/storage.md. */
#ifndef ACME_STORAGE_FILE_H
#define ACME_STORAGE_FILE_H

#include <acme/storage.h>

extern const acme_storage_ops storage_file_ops;

/* Create (0700) or open the directory. *ud is passed to storage_file_ops. */
int storage_file_open(const char *dir, void **ud);
void storage_file_close(void *ud);
/* 1 if key is a well-formed storage key (see include/acme/storage.h). */
int storage_key_valid(const char *key);

#endif
