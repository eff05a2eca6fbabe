/* A table's asynchronous face made synchronous for the callers inside
 * libacme (see storage_submit.c). */
#ifndef ACME_STORAGE_SUBMIT_H
#define ACME_STORAGE_SUBMIT_H

#include <acme/storage.h>

/* Members that submit to host->submit and wait; *out_ud is freed with
 * storage_submit_free. */
int storage_submit_wrap(const acme_storage_ops *host, void *host_ud, acme_storage_ops *out, void **out_ud);
void storage_submit_free(void *ud);

#endif
