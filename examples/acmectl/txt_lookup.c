/* One TXT lookup through the system's resolver (resolv.conf) or through a
 * resolver the user names (acmectl dns-persist --resolver ADDR[:PORT]):
 * libresolv's res_nquery, so no DNS code of our own here. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acmectl.h"

static int parse_server(const char *spec, struct sockaddr_in *sa, char *err, size_t errlen)
{
    char host[64];
    unsigned port = 53;
    const char *colon = strrchr(spec, ':');
    size_t hl = colon ? (size_t)(colon - spec) : strlen(spec);
    if (hl == 0 || hl >= sizeof(host)) {
        bprintf(err, errlen, "--resolver %s: give an IPv4 address, optionally with :PORT", spec);
        return -1;
    }
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (colon) {
        char *end;
        unsigned long v = strtoul(colon + 1, &end, 10);
        if (*end || end == colon + 1 || v < 1 || v > 65535) {
            bprintf(err, errlen, "--resolver %s: the port must be 1-65535", spec);
            return -1;
        }
        port = (unsigned)v;
    }
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        bprintf(err, errlen, "--resolver %s: give an IPv4 address (IPv6 resolvers: put them in resolv.conf)", spec);
        return -1;
    }
    return 0;
}

int txt_lookup(const char *resolver, const char *name, txt_answer *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct __res_state st;
    memset(&st, 0, sizeof(st));
    if (res_ninit(&st) != 0) {
        bprintf(err, errlen, "cannot set up the resolver (resolv.conf)");
        return -1;
    }
    if (resolver) {
        struct sockaddr_in sa;
        if (parse_server(resolver, &sa, err, errlen) != 0) {
            res_nclose(&st);
            return -1;
        }
        st.nsaddr_list[0] = sa;
        st.nscount = 1;
    }
    st.retry = 2;
    st.retrans = 2;
    unsigned char ans[8192];
    int n = res_nquery(&st, name, ns_c_in, ns_t_txt, ans, sizeof(ans));
    int herr = st.res_h_errno;
    res_nclose(&st);
    const char *via = resolver ? resolver : "the system's resolver";
    if (n < 0) {
        if (herr == HOST_NOT_FOUND || herr == NO_DATA)
            return 0; /* the name or the TXT does not exist: no record */
        bprintf(err, errlen, "TXT %s through %s: %s", name, via,
                herr == TRY_AGAIN ? "no answer (timeout or SERVFAIL)" : "the lookup failed");
        return -1;
    }
    ns_msg msg;
    if (ns_initparse(ans, n, &msg) != 0) {
        bprintf(err, errlen, "TXT %s through %s: the answer does not parse", name, via);
        return -1;
    }
    for (int i = 0; i < ns_msg_count(msg, ns_s_an) && out->count < TXT_MAX; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 || ns_rr_type(rr) != ns_t_txt)
            continue;
        /* A TXT record is one or more <length><bytes> strings; CAs join them. */
        const unsigned char *p = ns_rr_rdata(rr), *end = p + ns_rr_rdlen(rr);
        char *txt = out->text[out->count];
        size_t used = 0;
        while (p < end) {
            size_t len = *p++;
            if (len > (size_t)(end - p))
                len = (size_t)(end - p);
            for (size_t k = 0; k < len && used + 1 < TXT_LEN; k++)
                txt[used++] = (p[k] >= 0x20 && p[k] < 0x7f) ? (char)p[k] : '?';
            p += len;
        }
        txt[used] = '\0';
        out->count++;
    }
    return 0;
}
