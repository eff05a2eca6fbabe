/* What the CA failover tests (it_ca_failover, it_engine_failover) share:
 * two real Pebbles (with-pebble --second) and a loopback port that refuses
 * connections (a CA that is down), each Pebble's root to tell who issued,
 * a CA list on one state directory, the first Pebble's outage, and the
 * checks of the stored choice and of the FAILOVER event. */
#ifndef FO_FIXTURE_H
#define FO_FIXTURE_H

#include <stddef.h>
#include <acme/ca_list.h>
#include "etest.h"

typedef struct fo_env {
    const char *one, *two; /* the two Pebbles' directory URLs */
    char down[64];         /* a directory URL whose port refuses connections */
    int hold;              /* that port, bound and never listening */
    char *root[2];         /* each Pebble's root */
} fo_env;

/* Fails the test unless run under with-pebble --second. */
void fo_env_init(fo_env *env);
void fo_env_clear(fo_env *env);

/* One CA of a list: ca_file NULL is the harness's trust. */
typedef struct fo_ca {
    const char *name;
    const char *url;
    const char *ca_file;
} fo_ca;

/* A list of n CAs, each client on state directory dir with h's callbacks. */
acme_ca_list *fo_make_list(etest_host *h, const char *dir, const fo_ca *cas, size_t n);

/* The last chain installed for id verifies against Pebble `which`'s root
 * (0 or 1) and not the other's, and the installed key is its leaf's. */
void fo_issued_by(const fo_env *env, const etest_host *h, const char *id, int which);

/* SIGTERM to the first Pebble (ACME_TEST_PEBBLE_PID), waiting until it is gone. */
void fo_stop_first_pebble(void);

/* dir/failover/<id>.json says: at CA ca, a failover. */
void fo_check_record(const char *dir, const char *id, const char *ca);

/* A FAILOVER event for id from event index `from` on: leaving from_name
 * at from_url for to_name at to_url, its message containing reason_has.
 * Returns its index. */
size_t fo_check_event(const etest_host *h, size_t from, const char *id, const char *from_name,
                      const char *from_url, const char *to_name, const char *to_url, const char *reason_has);

#endif
