/* The dns01 module's internal contract: one instance, its configuration,
 * and the table every back end fills. Files:
 *
 *   module.c        the entry point, publish/unpublish, dispatch
 *   config.c        key=value configuration into struct dns01
 *   dns_wire.c      DNS messages on the wire (no I/O)
 *   tsig.c          TSIG signatures (RFC 8945)
 *   dns_net.c       one UDP/TCP exchange with a server
 *   resolve.c       queries: CNAME chains, the zone cut, NS sets, TXT checks
 *   propagation.c   waiting until every authoritative server answers
 *   update.c        back end: RFC 2136 dynamic update
 *   backend_acmedns.c  back end: the acme-dns HTTP API
 *   backend_hook.c  back end: a command the user supplies
 *   persist.c       dns-persist-01: check the persistent record, create it once
 */
#ifndef DNS01_DNS01_H
#define DNS01_DNS01_H

#include <stddef.h>
#include <stdint.h>

#include <acme/error.h>
#include <acme/module.h>

#include "dns_net.h"
#include "dns_wire.h"
#include "tsig.h"

#define DNS01_MAX_NS 16           /* authoritative servers checked per zone */
#define DNS01_MAX_CNAME 8         /* CNAME hops followed */
#define DNS01_ERR 768

typedef enum dns01_backend_kind {
    DNS01_RFC2136 = 0,
    DNS01_ACMEDNS = 1,
    DNS01_HOOK = 2
} dns01_backend_kind;

/* One TXT record as a back end sees it. */
typedef struct dns01_record {
    const char *identifier;   /* the name being validated (no "*.") */
    dns_name challenge;       /* _acme-challenge.<identifier> */
    dns_name target;          /* where the TXT goes: challenge after CNAMEs */
    dns_name zone;            /* the zone holding target */
    const char *value;        /* the TXT value */
} dns01_record;

typedef struct dns01 dns01;

typedef struct dns01_backend {
    const char *name;
    /* Before the CNAME chain is followed: a back end that knows where the
     * record must end up (acme-dns: its registration) sets r->target
     * (r->target.len != 0). Returns an acme_code. Optional. */
    int (*prepare)(dns01 *d, dns01_record *r);
    int (*add)(dns01 *d, const dns01_record *r);
    int (*del)(dns01 *d, const dns01_record *r);
} dns01_backend;

/* What we published, so that unpublish removes it from the same place
 * even if the CNAME changes in between. */
typedef struct dns01_published {
    struct dns01_published *next;
    dns01_record rec;
    char *identifier;
    char *value;
} dns01_published;

struct dns01 {
    acme_module_host host;
    const dns01_backend *backend;
    dns01_backend_kind kind;

    /* DNS lookups */
    dns_server resolver;
    int have_zone;
    dns_name zone;
    dns_server nameservers[DNS01_MAX_NS];   /* configured instead of NS discovery */
    size_t nameserver_count;
    unsigned nameserver_port;               /* for discovered servers (53) */
    unsigned query_timeout_ms;
    unsigned propagation_timeout_s;
    unsigned propagation_interval_ms;
    uint32_t ttl;

    /* rfc2136 */
    dns_server primary;
    int have_primary;
    int have_tsig;
    tsig_key tsig;

    /* acme-dns */
    char *api_url;
    char *ca_file;
    unsigned http_timeout_s;

    /* hook */
    char *command;
    unsigned hook_timeout_s;

    dns01_published *published;
    char err[DNS01_ERR];
};

/* Record a failure (one line) for last_error and return code. */
int dns01_fail(dns01 *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void dns01_log(dns01 *d, acme_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Text of a name for messages, without the final dot (static ring of 4). */
const char *dns01_name_text(const dns_name *n);

/* module.c: fill r->target and r->zone for r->challenge (CNAME chain,
 * zone= or SOA walk). ACME_OK or a code (d->err set). */
int dns01_locate(dns01 *d, dns01_record *r);

/* config.c: parse the key/value pairs into d. 0, or an acme_code with a
 * one-line reason naming the key in err. */
int dns01_configure(dns01 *d, const char *const *keys, const char *const *values, size_t n,
                    char *err, size_t errlen);
void dns01_config_free(dns01 *d);

extern const dns01_backend dns01_backend_rfc2136;
extern const dns01_backend dns01_backend_acmedns;
extern const dns01_backend dns01_backend_hook;

#endif
