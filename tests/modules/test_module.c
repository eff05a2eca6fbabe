/* Test modules for the loader (libacme/module.c), one source built once
 * per kind (-DKIND_...): each is what a broken or outdated module could
 * hand libacme. The tables that are too small are real objects of that
 * size, so a loader that read a member past them would be caught by
 * ASan (a global-buffer-overflow) instead of reading a neighbour. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

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

#elif defined(KIND_V1) || defined(KIND_V2)
/* Modules that do something, each call logged through the host as
 * "<hook> <identifier> tid=<thread>", so the test sees what ran, in
 * which order and on which thread. The identifier "fail.test" makes
 * publish (ABI 1) or wait (ABI 2) fail.
 *
 * KIND_V1: a module built for module ABI 1 as that ABI's documentation
 * told: its table ends at last_error and it answers NULL to any other
 * host ABI.
 * KIND_V2: present / wait / cleanup; present answers ACME_E_PENDING and
 * finishes from a thread of its own through host->done; wait takes
 * 300 ms. */
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef struct inst {
    acme_module_host host;
    char err[128];
} inst;

static void say(inst *s, const char *what, const char *ident)
{
    char line[256];
    snprintf(line, sizeof(line), "%s %s tid=%ld", what, ident, (long)syscall(SYS_gettid));
    s->host.log(s->host.ud, ACME_LOG_INFO, line);
}

static int t_create(const acme_module_host *host, const char *const *keys, const char *const *values,
                    size_t n, void **instance, char *err, size_t errlen)
{
    (void)keys; (void)values; (void)n; (void)err; (void)errlen;
    inst *s = calloc(1, sizeof(*s));
    if (!s)
        return ACME_E_NOMEM;
    memcpy(&s->host, host, host->size < sizeof(s->host) ? host->size : sizeof(s->host));
    *instance = s;
    return ACME_OK;
}

static void t_destroy(void *p) { free(p); }

static unsigned t_types(void *instance)
{
    (void)instance;
    return ACME_MODULE_CHALLENGE(ACME_CHALLENGE_DNS_01);
}

static const char *t_last_error(void *p) { return ((inst *)p)->err[0] ? ((inst *)p)->err : NULL; }

static int fails(inst *s, const acme_challenge *ch, const char *what)
{
    if (strcmp(acme_challenge_identifier(ch), "fail.test") != 0)
        return 0;
    snprintf(s->err, sizeof(s->err), "%s refused for fail.test by the test module", what);
    return 1;
}

static int t_unpublish(void *p, const acme_challenge *ch)
{
    say(p, "unpublish", acme_challenge_identifier(ch));
    return ACME_OK;
}

#if defined(KIND_V2)
static int t_install(void *p, const acme_certificate *cert)
{
    say(p, "install", acme_certificate_id(cert));
    return ACME_OK;
}
#endif

#if defined(KIND_V1)
static int t_publish(void *p, const acme_challenge *ch)
{
    say(p, "publish", acme_challenge_identifier(ch));
    return fails(p, ch, "publish") ? ACME_E_CALLBACK : ACME_OK;
}

static const acme_module_ops ops = {
    .size = offsetof(acme_module_ops, flags),   /* ABI 1's table */
    .abi_version = 1,
    .name = "testv1",
    .create = t_create,
    .destroy = t_destroy,
    .challenge_types = t_types,
    .publish = t_publish,
    .unpublish = t_unpublish,
    .last_error = t_last_error,
};

EXPORT const acme_module_ops *acme_module_entry(unsigned host_abi_version)
{
    return host_abi_version == 1 ? &ops : NULL;
}

#else
typedef struct later { inst *s; const void *object; } later;

static void *finish_later(void *arg)
{
    later *l = arg;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    l->s->host.done(l->s->host.ud, l->object, ACME_OK);
    free(l);
    return NULL;
}

static int t_present(void *p, const acme_challenge *ch)
{
    inst *s = p;
    say(s, "present", acme_challenge_identifier(ch));
    /* Finish later, from another thread, as a module with a loop of its
     * own would. */
    later *l = calloc(1, sizeof(*l));
    pthread_t t;
    if (!l)
        return ACME_E_NOMEM;
    l->s = s;
    l->object = ch;
    if (pthread_create(&t, NULL, finish_later, l) != 0) {
        free(l);
        return ACME_E_NOMEM;
    }
    pthread_detach(t);
    return ACME_E_PENDING;
}

static int t_wait(void *p, const acme_challenge *ch)
{
    inst *s = p;
    if (!strcmp(acme_challenge_identifier(ch), "slow.test")) {
        /* A wait of up to 30 s that gives up when the host stops it. */
        for (int i = 0; i < 3000; i++) {
            if (s->host.stopping(s->host.ud)) {
                say(s, "wait stopped", acme_challenge_identifier(ch));
                return ACME_E_STATE;
            }
            struct timespec tick = {0, 10 * 1000000L};
            nanosleep(&tick, NULL);
        }
        return ACME_E_TIMEOUT;
    }
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    say(s, "wait", acme_challenge_identifier(ch));
    return fails(s, ch, "wait") ? ACME_E_TIMEOUT : ACME_OK;
}

static int t_cleanup(void *p, const acme_challenge *ch)
{
    say(p, "cleanup", acme_challenge_identifier(ch));
    return ACME_OK;
}

static const acme_module_ops ops = {
    .size = sizeof(acme_module_ops),
    .abi_version = 2,
    .name = "testv2",
    .create = t_create,
    .destroy = t_destroy,
    .challenge_types = t_types,
    .unpublish = t_unpublish,     /* not used: cleanup is */
    .install = t_install,
    .last_error = t_last_error,
    .flags = ACME_MODULE_PUBLISHES | ACME_MODULE_INSTALLS,
    .present = t_present,
    .wait = t_wait,
    .cleanup = t_cleanup,
};

EXPORT const acme_module_ops *acme_module_entry(unsigned host_abi_version)
{
    return host_abi_version == 2 ? &ops : NULL;
}
#endif

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
