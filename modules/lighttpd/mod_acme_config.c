/* mod_acme: the configuration keys (doc/lighttpd.md lists them).
 *
 * Server-wide keys live in the global scope. acme.domains may appear in
 * the global scope and in any condition block ($HTTP["host"] == ...,
 * $SERVER["socket"] == ...): each occurrence is one certificate, written
 * to the ssl.pemfile (and ssl.privkey) in effect in that block — set in
 * the block itself or in an enclosing one. */
#include "mod_acme.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "array.h"
#include "configfile.h"
#include "log.h"

const config_plugin_keys_t mod_acme_keys[] = {
    {CONST_STR_LEN("acme.directory"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.ca-file"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.state-dir"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.contact"), T_CONFIG_ARRAY_VLIST, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.agree-tos"), T_CONFIG_BOOL, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.domains"), T_CONFIG_ARRAY_VLIST, T_CONFIG_SCOPE_CONNECTION},
    {CONST_STR_LEN("acme.challenge"), T_CONFIG_ARRAY_VLIST, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.key-type"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.profile"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.eab-kid"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.eab-hmac-key"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.status-url"), T_CONFIG_STRING, T_CONFIG_SCOPE_CONNECTION},
    {CONST_STR_LEN("acme.status-allow"), T_CONFIG_ARRAY_VLIST, T_CONFIG_SCOPE_CONNECTION},
    {CONST_STR_LEN("acme.renew-after-seconds"), T_CONFIG_INT, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.retry-seconds"), T_CONFIG_INT, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.log-level"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.dns-module"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.dns-module-config"), T_CONFIG_ARRAY_KVSTRING, T_CONFIG_SCOPE_SERVER},
    /* A cluster of hosts sharing their state in etcd (doc/cluster.md). */
    {CONST_STR_LEN("acme.storage"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.etcd-endpoints"), T_CONFIG_ARRAY_VLIST, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.etcd-prefix"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.etcd-ca-file"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.etcd-username"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.etcd-password"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.etcd-lock-ttl"), T_CONFIG_INT, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.etcd-node-name"), T_CONFIG_STRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.etcd-poll-seconds"), T_CONFIG_INT, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.max-orders"), T_CONFIG_INT, T_CONFIG_SCOPE_SERVER},
    /* CA failover (issue 14 part 3): ( "name" => "https://directory", ... )
     * in order after acme.directory; ( "name" => "KID:HMACKEY" ) per CA. */
    {CONST_STR_LEN("acme.fallback"), T_CONFIG_ARRAY_KVSTRING, T_CONFIG_SCOPE_SERVER},
    {CONST_STR_LEN("acme.fallback-eab"), T_CONFIG_ARRAY_KVSTRING, T_CONFIG_SCOPE_SERVER},
    {NULL, 0, T_CONFIG_UNSET, T_CONFIG_SCOPE_UNSET}};

void macme_conf_free(macme_conf *mc)
{
    if (!mc)
        return;
    free(mc->directory);
    free(mc->ca_file);
    free(mc->state_dir);
    for (size_t i = 0; i < mc->contact_count; i++)
        free(mc->contacts[i]);
    free(mc->contacts);
    free(mc->profile);
    free(mc->dns_module);
    if (mc->dns_module_config) {
        /* May hold a TSIG secret or an API password. */
        explicit_bzero(mc->dns_module_config, strlen(mc->dns_module_config));
        free(mc->dns_module_config);
    }
    for (size_t i = 0; i < mc->fallback_count; i++) {
        free(mc->fallback[i].name);
        free(mc->fallback[i].directory);
        free(mc->fallback[i].eab_kid);
        if (mc->fallback[i].eab_hmac) {
            explicit_bzero(mc->fallback[i].eab_hmac, strlen(mc->fallback[i].eab_hmac));
            free(mc->fallback[i].eab_hmac);
        }
    }
    free(mc->fallback);
    free(mc->eab_kid);
    for (size_t i = 0; i < mc->etcd_endpoint_count; i++)
        free(mc->etcd_endpoints[i]);
    free(mc->etcd_endpoints);
    free(mc->etcd_prefix);
    free(mc->etcd_ca_file);
    free(mc->etcd_username);
    if (mc->etcd_password) {
        explicit_bzero(mc->etcd_password, strlen(mc->etcd_password));
        free(mc->etcd_password);
    }
    free(mc->etcd_node_name);
    if (mc->eab_hmac) {
        explicit_bzero(mc->eab_hmac, strlen(mc->eab_hmac));
        free(mc->eab_hmac);
    }
    for (size_t i = 0; i < mc->alpn_dir_count; i++)
        free(mc->alpn_dirs[i]);
    for (size_t i = 0; i < mc->cert_count; i++) {
        macme_cert *c = &mc->certs[i];
        free(c->id);
        for (size_t j = 0; j < c->name_count; j++)
            free(c->names[j]);
        free(c->names);
        free(c->pemfile);
        free(c->privkey);
        free(c->where);
    }
    free(mc->certs);
    free(mc);
}

const macme_cert *macme_conf_cert(const macme_conf *mc, const char *id)
{
    for (size_t i = 0; mc && id && i < mc->cert_count; i++)
        if (strcmp(mc->certs[i].id, id) == 0)
            return &mc->certs[i];
    return NULL;
}

static char *bdup(const buffer *b)
{
    return strndup(b->ptr ? b->ptr : "", buffer_clen(b));
}

static const char *ctx_name(const data_config *dc, int idx)
{
    if (idx == 0 || !dc->key.ptr || !*dc->key.ptr)
        return "the global scope";
    return dc->key.ptr;
}

/* A string value of key in this block or the nearest enclosing one. */
static const buffer *inherited(const data_config *dc, const char *key, size_t klen)
{
    for (; dc; dc = dc->parent) {
        const data_unset *du = array_get_element_klen(dc->value, key, (uint32_t)klen);
        if (du && du->type == TYPE_STRING)
            return &((const data_string *)du)->value;
    }
    return NULL;
}

static int name_ok(const char *n)
{
    unsigned char ip[16];
    if (inet_pton(AF_INET, n, ip) == 1 || inet_pton(AF_INET6, n, ip) == 1)
        return 1;
    size_t len = strlen(n);
    if (!len || len > 253 || n[0] == '.' || n[0] == '-' || n[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)n[i];
        if (!(isalnum(c) || c == '-' || c == '.' || (c == '*' && i == 0 && n[1] == '.')))
            return 0;
        if (c == '.' && n[i + 1] == '.')
            return 0;
    }
    return 1;
}

static int add_cert(server *srv, macme_conf *mc, const data_config *dc, int idx, const array *names)
{
    const char *where = ctx_name(dc, idx);
    if (names->used == 0) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: acme.domains in %s is empty", where);
        return -1;
    }
    macme_cert *grown = realloc(mc->certs, (mc->cert_count + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    mc->certs = grown;
    macme_cert *c = &mc->certs[mc->cert_count++];
    memset(c, 0, sizeof(*c));
    c->where = strdup(where);
    c->names = calloc(names->used, sizeof(char *));
    if (!c->names || !c->where)
        return -1;
    for (uint32_t i = 0; i < names->used; i++) {
        const buffer *v = &((const data_string *)names->data[i])->value;
        char *n = bdup(v);
        if (!n)
            return -1;
        for (char *s = n; *s; s++)
            *s = (char)tolower((unsigned char)*s);
        c->names[c->name_count++] = n;
        if (!name_ok(n)) {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: acme.domains in %s: \"%s\" is not a DNS name or IP address", where, n);
            return -1;
        }
        /* A wildcard needs dns-01: checked once acme.challenge is known. */
    }
    /* libacme's id for the certificate: the first name, "*." as "_."
     * (a storage key cannot hold '*'). */
    c->id = strdup(c->names[0]);
    if (c->id && c->id[0] == '*')
        c->id[0] = '_';
    const buffer *pem = inherited(dc, CONST_STR_LEN("ssl.pemfile"));
    const buffer *key = inherited(dc, CONST_STR_LEN("ssl.privkey"));
    if (!pem || buffer_is_blank(pem)) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                  "mod_acme: acme.domains in %s needs ssl.pemfile (in the same block or an enclosing one): "
                  "that is where the certificate for %s is written", where, c->names[0]);
        return -1;
    }
    c->pemfile = bdup(pem);
    c->privkey = key && !buffer_is_blank(key) ? bdup(key) : NULL;
    if (!c->id || !c->pemfile || (key && !buffer_is_blank(key) && !c->privkey))
        return -1;
    if (c->pemfile[0] != '/' || (c->privkey && c->privkey[0] != '/')) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                  "mod_acme: acme.domains in %s: ssl.pemfile and ssl.privkey must be absolute paths (\"%s\")", where,
                  c->pemfile);
        return -1;
    }
    for (size_t i = 0; i + 1 < mc->cert_count; i++) {
        const macme_cert *o = &mc->certs[i];
        if (strcmp(o->id, c->id) == 0) {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: acme.domains: \"%s\" starts the list both in %s and in %s", c->id, o->where, where);
            return -1;
        }
        if (strcmp(o->pemfile, c->pemfile) == 0) {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: acme.domains in %s and in %s would both write ssl.pemfile \"%s\": give each "
                      "block its own ssl.pemfile", o->where, where, c->pemfile);
            return -1;
        }
    }
    return 0;
}

/* dns-01 and dns-account-01 need a DNS module to publish; dns-persist-01
 * does not (the owner created the record once: draft-ietf-acme-dns-persist),
 * but a module that answers it checks the record, or creates it once. */
static int set_challenges(server *srv, macme_conf *mc, const array *a)
{
    static const struct {
        const char *name;
        acme_challenge_type type;
        int needs_module;
    } known[] = {
        {"http-01", ACME_CHALLENGE_HTTP_01, 0},
        {"tls-alpn-01", ACME_CHALLENGE_TLS_ALPN_01, 0},
        {"dns-01", ACME_CHALLENGE_DNS_01, 1},
        {"dns-account-01", ACME_CHALLENGE_DNS_ACCOUNT_01, 1},
        {"dns-persist-01", ACME_CHALLENGE_DNS_PERSIST_01, 0},
    };
    mc->challenge_count = 0;
    for (uint32_t i = 0; i < a->used; i++) {
        const buffer *v = &((const data_string *)a->data[i])->value;
        size_t k = 0;
        while (k < sizeof(known) / sizeof(known[0]) && !buffer_eq_slen(v, known[k].name, strlen(known[k].name)))
            k++;
        if (k == sizeof(known) / sizeof(known[0])) {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: acme.challenge: unknown challenge type \"%s\" (use \"http-01\", \"tls-alpn-01\", "
                      "\"dns-01\", \"dns-account-01\", \"dns-persist-01\")", v->ptr ? v->ptr : "");
            return -1;
        }
        if (known[k].needs_module && !mc->dns_module) {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: acme.challenge: %s needs a DNS module: set acme.dns-module to the dns01 "
                      "module's path (and acme.dns-module-config to its settings)", known[k].name);
            return -1;
        }
        acme_challenge_type t = known[k].type;
        int dup = 0;
        for (size_t j = 0; j < mc->challenge_count; j++)
            dup |= mc->challenges[j] == t;
        if (!dup && mc->challenge_count < sizeof(mc->challenges) / sizeof(mc->challenges[0]))
            mc->challenges[mc->challenge_count++] = t;
    }
    if (!mc->challenge_count) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: acme.challenge is empty");
        return -1;
    }
    return 0;
}

static int set_string(char **dst, const buffer *b)
{
    free(*dst);
    *dst = buffer_is_blank(b) ? NULL : bdup(b);
    return 0;
}

/* acme.dns-module-config = ( "key" => "value", ... ) as the module's
 * "key=value" lines. */
static int set_module_config(server *srv, macme_conf *mc, const array *a)
{
    size_t len = 1;
    for (uint32_t i = 0; i < a->used; i++) {
        const data_string *ds = (const data_string *)a->data[i];
        len += buffer_clen(&ds->key) + buffer_clen(&ds->value) + 2;
        if (memchr(ds->value.ptr ? ds->value.ptr : "", '\n', buffer_clen(&ds->value)) ||
            buffer_is_blank(&ds->key)) {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: acme.dns-module-config: each entry is \"key\" => \"value\" on one line");
            return -1;
        }
    }
    char *text = calloc(1, len);
    if (!text)
        return -1;
    size_t used = 0;
    for (uint32_t i = 0; i < a->used; i++) {
        const data_string *ds = (const data_string *)a->data[i];
        used += (size_t)snprintf(text + used, len - used, "%s=%s\n", ds->key.ptr,
                                 ds->value.ptr ? ds->value.ptr : "");
    }
    free(mc->dns_module_config);
    mc->dns_module_config = text;
    return 0;
}

/* acme.fallback = ( "name" => "https://...", ... ): the CAs after
 * acme.directory, in order. */
static int set_fallback(server *srv, macme_conf *mc, const array *a)
{
    if (!a->used)
        return 0;
    mc->fallback = calloc(a->used, sizeof(*mc->fallback));
    if (!mc->fallback)
        return -1;
    for (uint32_t i = 0; i < a->used; i++) {
        const data_string *ds = (const data_string *)a->data[i];
        const char *name = ds->key.ptr ? ds->key.ptr : "";
        int ok = *name && *name != '.' && strlen(name) <= 64 && strcmp(name, "primary");
        for (const char *c = name; ok && *c; c++)
            ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                 *c == '_' || *c == '-';
        if (!ok || !ds->value.ptr || strncmp(ds->value.ptr, "https://", 8) != 0) {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: acme.fallback: each entry is \"name\" => \"https://directory\" (name: letters, "
                      "digits, '.', '_', '-', not \"primary\"); got \"%s\" => \"%s\"", name,
                      ds->value.ptr ? ds->value.ptr : "");
            return -1;
        }
        mc->fallback[i].name = strdup(name);
        mc->fallback[i].directory = strdup(ds->value.ptr);
        mc->fallback_count++;
        if (!mc->fallback[i].name || !mc->fallback[i].directory)
            return -1;
    }
    return 0;
}

/* acme.fallback-eab = ( "name" => "KID:HMACKEY" ): after acme.fallback. */
static int set_fallback_eab(server *srv, macme_conf *mc, const array *a)
{
    for (uint32_t i = 0; i < a->used; i++) {
        const data_string *ds = (const data_string *)a->data[i];
        const char *v = ds->value.ptr ? ds->value.ptr : "", *colon = strchr(v, ':');
        macme_ca *ca = NULL;
        for (size_t j = 0; j < mc->fallback_count && !ca; j++)
            if (ds->key.ptr && !strcmp(mc->fallback[j].name, ds->key.ptr))
                ca = &mc->fallback[j];
        if (!ca || !colon || colon == v || !colon[1]) {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: acme.fallback-eab: each entry is \"name\" => \"KID:HMACKEY\" for a name of "
                      "acme.fallback (\"%s\")", ds->key.ptr ? ds->key.ptr : "");
            return -1;
        }
        ca->eab_kid = strndup(v, (size_t)(colon - v));
        ca->eab_hmac = strdup(colon + 1);
        if (!ca->eab_kid || !ca->eab_hmac)
            return -1;
    }
    return 0;
}

/* One server-scope value from the global block. */
static int global_value(server *srv, macme_conf *mc, const config_plugin_value_t *cpv, const array **challenge,
                        const array **fallback_eab)
{
    switch (cpv->k_id) {
    case K_DIRECTORY: return set_string(&mc->directory, cpv->v.b);
    case K_CA_FILE: return set_string(&mc->ca_file, cpv->v.b);
    case K_STATE_DIR: return set_string(&mc->state_dir, cpv->v.b);
    case K_CONTACT: {
        const array *a = cpv->v.a;
        mc->contacts = calloc(a->used ? a->used : 1, sizeof(char *));
        if (!mc->contacts)
            return -1;
        for (uint32_t i = 0; i < a->used; i++) {
            const buffer *v = &((const data_string *)a->data[i])->value;
            if (buffer_is_blank(v))
                continue;
            /* "admin@example.org" means "mailto:admin@example.org". */
            int bare = strchr(v->ptr, ':') == NULL;
            size_t n = buffer_clen(v) + (bare ? 8 : 0) + 1;
            char *s = malloc(n);
            if (!s)
                return -1;
            snprintf(s, n, "%s%s", bare ? "mailto:" : "", v->ptr);
            mc->contacts[mc->contact_count++] = s;
        }
        return 0;
    }
    case K_AGREE_TOS: mc->agree_tos = (int)cpv->v.u; return 0;
    case K_CHALLENGE: *challenge = cpv->v.a; return 0;
    case K_KEY_TYPE:
        if (buffer_is_blank(cpv->v.b) || acme_key_type_from_name(cpv->v.b->ptr, &mc->key_type) != ACME_OK ||
            mc->key_type == ACME_KEY_ED25519) {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: acme.key-type: unknown certificate key type \"%s\" (use ec-256, ec-384, rsa-2048, "
                      "rsa-3072 or rsa-4096)", cpv->v.b->ptr ? cpv->v.b->ptr : "");
            return -1;
        }
        return 0;
    case K_PROFILE: return set_string(&mc->profile, cpv->v.b);
    case K_EAB_KID: return set_string(&mc->eab_kid, cpv->v.b);
    case K_EAB_HMAC: return set_string(&mc->eab_hmac, cpv->v.b);
    case K_DNS_MODULE: return set_string(&mc->dns_module, cpv->v.b);
    case K_DNS_MODULE_CONFIG: return set_module_config(srv, mc, cpv->v.a);
    case K_STORAGE:
        if (buffer_eq_slen(cpv->v.b, CONST_STR_LEN("etcd")))
            mc->storage_etcd = 1;
        else if (buffer_eq_slen(cpv->v.b, CONST_STR_LEN("file")))
            mc->storage_etcd = 0;
        else {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: acme.storage: \"%s\" is not \"file\" (acme.state-dir, the default) or \"etcd\" "
                      "(a cluster: acme.etcd-endpoints)", cpv->v.b->ptr ? cpv->v.b->ptr : "");
            return -1;
        }
        return 0;
    case K_ETCD_ENDPOINTS: {
        const array *a = cpv->v.a;
        mc->etcd_endpoints = calloc(a->used ? a->used : 1, sizeof(char *));
        if (!mc->etcd_endpoints)
            return -1;
        for (uint32_t i = 0; i < a->used; i++) {
            const buffer *v = &((const data_string *)a->data[i])->value;
            if (!buffer_is_blank(v) && !(mc->etcd_endpoints[mc->etcd_endpoint_count++] = bdup(v)))
                return -1;
        }
        return 0;
    }
    case K_ETCD_PREFIX: return set_string(&mc->etcd_prefix, cpv->v.b);
    case K_ETCD_CA_FILE: return set_string(&mc->etcd_ca_file, cpv->v.b);
    case K_ETCD_USERNAME: return set_string(&mc->etcd_username, cpv->v.b);
    case K_ETCD_PASSWORD: return set_string(&mc->etcd_password, cpv->v.b);
    case K_ETCD_NODE_NAME: return set_string(&mc->etcd_node_name, cpv->v.b);
    case K_ETCD_LOCK_TTL: mc->etcd_lock_ttl = cpv->v.u; return 0;
    case K_ETCD_POLL: mc->etcd_poll_s = cpv->v.u; return 0;
    case K_MAX_ORDERS: mc->max_orders = cpv->v.u; return 0;
    case K_FALLBACK: return set_fallback(srv, mc, cpv->v.a);
    case K_FALLBACK_EAB: *fallback_eab = cpv->v.a; return 0;
    case K_RENEW_AFTER: mc->renew_after_s = cpv->v.u; return 0;
    case K_RETRY: mc->retry_s = cpv->v.u; return 0;
    case K_LOG_LEVEL: {
        static const char *const names[] = {"error", "warning", "info", "debug"};
        for (int i = 0; i < 4; i++)
            if (buffer_eq_slen(cpv->v.b, names[i], strlen(names[i]))) {
                mc->log_level = (acme_log_level)i;
                return 0;
            }
        log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                  "mod_acme: acme.log-level: \"%s\" is not one of error, warning, info, debug",
                  cpv->v.b->ptr ? cpv->v.b->ptr : "");
        return -1;
    }
    default: return 0;
    }
}

int mod_acme_config_build(server *srv, plugin_data *p, macme_conf **out)
{
    *out = NULL;
    macme_conf *mc = calloc(1, sizeof(*mc));
    if (!mc)
        return -1;
    mc->log_level = ACME_LOG_INFO;
    const array *challenge = NULL, *fallback_eab = NULL;
    int bad = 0;
    const data_config *const *ctxs = (const data_config *const *)srv->config_context->data;

    for (int i = 0; i < p->nconfig && !bad; i++) {
        if (!p->cvlist[i].v.u2[1])
            continue;
        int idx = p->cvlist[i].k_id;
        const data_config *dc = ctxs[idx];
        for (const config_plugin_value_t *cpv = p->cvlist + p->cvlist[i].v.u2[0]; cpv->k_id != -1 && !bad; cpv++) {
            int scope = mod_acme_keys[cpv->k_id].scope;
            if (cpv->k_id == K_DOMAINS) {
                if (add_cert(srv, mc, dc, idx, cpv->v.a))
                    bad = 1;
            } else if (scope == T_CONFIG_SCOPE_SERVER) {
                if (idx != 0) {
                    log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                              "mod_acme: %s must be set in the global scope, not in %s", mod_acme_keys[cpv->k_id].k,
                              ctx_name(dc, idx));
                    bad = 1;
                } else if (global_value(srv, mc, cpv, &challenge, &fallback_eab)) {
                    bad = 1;
                }
            }
        }
    }
    /* After the loop: acme.fallback must be known to name its EAB. */
    if (!bad && fallback_eab && set_fallback_eab(srv, mc, fallback_eab))
        bad = 1;
    for (size_t i = 0; !bad && i < mc->fallback_count; i++)
        for (size_t j = 0; j < i && !bad; j++)
            if (!strcmp(mc->fallback[i].directory, mc->fallback[j].directory)) {
                log_error(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: acme.fallback lists %s twice",
                          mc->fallback[i].directory);
                bad = 1;
            }
    if (bad)
        goto fail;
    if (mc->cert_count == 0) {
        if (mc->directory)
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: acme.directory is set but no acme.domains anywhere: nothing to manage");
        macme_conf_free(mc);
        return 0;
    }

    /* Every distinct ssl.acme-tls-1, wherever it is set. */
    for (uint32_t u = 0; u < srv->config_context->used; u++) {
        const data_unset *du = array_get_element_klen(ctxs[u]->value, CONST_STR_LEN("ssl.acme-tls-1"));
        if (!du || du->type != TYPE_STRING || buffer_is_blank(&((const data_string *)du)->value))
            continue;
        const buffer *b = &((const data_string *)du)->value;
        int seen = 0;
        for (size_t j = 0; j < mc->alpn_dir_count; j++)
            seen |= buffer_eq_slen(b, mc->alpn_dirs[j], strlen(mc->alpn_dirs[j]));
        if (seen)
            continue;
        if (mc->alpn_dir_count == MACME_MAX_ALPN_DIRS || b->ptr[0] != '/') {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: ssl.acme-tls-1 \"%s\": %s", b->ptr,
                      b->ptr[0] != '/' ? "must be an absolute path" : "too many different directories");
            goto fail;
        }
        if (!(mc->alpn_dirs[mc->alpn_dir_count++] = bdup(b)))
            goto fail;
    }

    if (!mc->directory) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                  "mod_acme: acme.domains is set but acme.directory is not: set acme.directory to the CA's "
                  "ACME directory URL (https://...)");
        goto fail;
    }
    if (strncmp(mc->directory, "https://", 8) != 0) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: acme.directory \"%s\" must be an https:// URL",
                  mc->directory);
        goto fail;
    }
    if (!mc->state_dir && !(mc->state_dir = strdup(DEFAULT_STATE_DIR)))
        goto fail;
    if (mc->state_dir[0] != '/') {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: acme.state-dir \"%s\" must be an absolute path",
                  mc->state_dir);
        goto fail;
    }
    if (mc->ca_file && mc->ca_file[0] != '/') {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: acme.ca-file \"%s\" must be an absolute path",
                  mc->ca_file);
        goto fail;
    }
    if (!mc->eab_kid != !mc->eab_hmac) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                  "mod_acme: acme.eab-kid and acme.eab-hmac-key go together: set both or neither");
        goto fail;
    }
    if (mc->dns_module && mc->dns_module[0] != '/') {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: acme.dns-module \"%s\" must be an absolute path",
                  mc->dns_module);
        goto fail;
    }
    if (mc->storage_etcd && !mc->etcd_endpoint_count) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                  "mod_acme: acme.storage = \"etcd\" needs acme.etcd-endpoints = (\"http://10.0.0.1:2379\", ...): "
                  "the client URLs of the etcd members");
        goto fail;
    }
    if (!mc->storage_etcd && (mc->etcd_endpoint_count || mc->etcd_prefix || mc->etcd_username)) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                  "mod_acme: acme.etcd-* is set but acme.storage is not \"etcd\": set acme.storage = \"etcd\" "
                  "(or remove the acme.etcd-* keys)");
        goto fail;
    }
    if (mc->storage_etcd && !mc->etcd_node_name) {
        /* The host name, not libacme's "<host>:<pid>": the name must stay
         * the same across graceful restarts (macme_storage_set). */
        char host[256] = "";
        if (gethostname(host, sizeof(host) - 1) != 0 || !*host)
            snprintf(host, sizeof(host), "lighttpd");
        if (!(mc->etcd_node_name = strdup(host)))
            goto fail;
    }
    if (mc->etcd_ca_file && mc->etcd_ca_file[0] != '/') {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__, "mod_acme: acme.etcd-ca-file \"%s\" must be an absolute path",
                  mc->etcd_ca_file);
        goto fail;
    }
    if (!mc->etcd_username != !mc->etcd_password) {
        log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                  "mod_acme: acme.etcd-username and acme.etcd-password go together: set both or neither");
        goto fail;
    }
    if (challenge) {
        if (set_challenges(srv, mc, challenge))
            goto fail;
    } else {
        mc->challenges[mc->challenge_count++] = ACME_CHALLENGE_HTTP_01;
        if (mc->alpn_dir_count)
            mc->challenges[mc->challenge_count++] = ACME_CHALLENGE_TLS_ALPN_01;
        /* Last: names http-01 can prove still use it; wildcards get dns-01
         * (the only type a CA offers for them). */
        if (mc->dns_module)
            mc->challenges[mc->challenge_count++] = ACME_CHALLENGE_DNS_01;
    }
    /* A CA offers only DNS validation for a wildcard: dns-01, dns-account-01,
     * or dns-persist-01 (whose record then says policy=wildcard). */
    int dns = 0;
    for (size_t i = 0; i < mc->challenge_count; i++)
        dns |= mc->challenges[i] == ACME_CHALLENGE_DNS_01 || mc->challenges[i] == ACME_CHALLENGE_DNS_ACCOUNT_01 ||
               mc->challenges[i] == ACME_CHALLENGE_DNS_PERSIST_01;
    for (size_t i = 0; i < mc->cert_count && !dns; i++)
        for (size_t j = 0; j < mc->certs[i].name_count; j++)
            if (mc->certs[i].names[j][0] == '*') {
                log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                          "mod_acme: acme.domains in %s: the wildcard \"%s\" needs dns-01: set acme.dns-module "
                          "(the dns01 module) and leave dns-01 in acme.challenge (or use dns-account-01, or "
                          "dns-persist-01 with a policy=wildcard record)", mc->certs[i].where,
                          mc->certs[i].names[j]);
                goto fail;
            }
    for (size_t i = 0; i < mc->challenge_count; i++)
        if (mc->challenges[i] == ACME_CHALLENGE_TLS_ALPN_01 && !mc->alpn_dir_count) {
            log_error(srv->errh, MOD_ACME_SRC, __LINE__,
                      "mod_acme: acme.challenge asks for tls-alpn-01, but ssl.acme-tls-1 is not set: set "
                      "ssl.acme-tls-1 = \"<dir>\" (mod_acme writes the challenge certificates there)");
            goto fail;
        }
    *out = mc;
    return 0;
fail:
    macme_conf_free(mc);
    return -1;
}
