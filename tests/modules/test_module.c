/* Test modules for the loader (libacme/module.c), one source built once
 * per kind (-DKIND_...): each is what a broken or outdated module could
 * hand libacme. The tables that are too small are real objects of that
 * size, so a loader that read a member past them would be caught by
 * ASan (a global-buffer-overflow) instead of reading a neighbour. */
#include <stddef.h>
#include <stdio.h>

#include <acme/error.h>
#include <acme/module.h>

#define EXPORT __attribute__((visibility("default")))

#if defined(KIND_NULL)
/* Declines the host's ABI: returns no table. */
EXPORT const acme_module_ops *acme_module_entry(unsigned host_abi_version)
{
    (void)host_abi_version;
    return NULL;
}

#elif defined(KIND_TINY)
/* A table that is only its size member: not even abi_version. */
static const struct { size_t size; } tiny = { sizeof(size_t) };
EXPORT const acme_module_ops *acme_module_entry(unsigned host_abi_version)
{
    (void)host_abi_version;
    return (const acme_module_ops *)(const void *)&tiny;
}

#elif defined(KIND_SHORT)
/* The right ABI, but the table stops after abi_version: no create(). */
static const struct { size_t size; unsigned abi_version; } shorty = {
    offsetof(acme_module_ops, abi_version) + sizeof(unsigned), ACME_MODULE_ABI_VERSION
};
EXPORT const acme_module_ops *acme_module_entry(unsigned host_abi_version)
{
    (void)host_abi_version;
    return (const acme_module_ops *)(const void *)&shorty;
}

#else
/* A whole table; KIND_ABI sets the ABI it claims (default: the right one,
 * a module that loads). */
#ifndef KIND_ABI
#define KIND_ABI ACME_MODULE_ABI_VERSION
#endif
static int t_create(const acme_module_host *host, const char *const *keys, const char *const *values,
                    size_t n, void **instance, char *err, size_t errlen)
{
    (void)host; (void)keys; (void)values; (void)n; (void)err; (void)errlen;
    static int dummy;
    *instance = &dummy;
    return ACME_OK;
}

static unsigned t_types(void *instance)
{
    (void)instance;
    return ACME_MODULE_CHALLENGE(ACME_CHALLENGE_DNS_01);
}

static const acme_module_ops ops = {
    .size = sizeof(acme_module_ops),
    .abi_version = KIND_ABI,
    .name = "testmod",
    .create = t_create,
    .challenge_types = t_types,
};

EXPORT const acme_module_ops *acme_module_entry(unsigned host_abi_version)
{
    (void)host_abi_version;
    return &ops;
}
#endif
