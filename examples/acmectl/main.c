/* acmectl: argument parsing and dispatch. Everything that can be checked
 * without the network is checked here or in the command before a client
 * exists, so a typo costs nothing at the CA. See acmectl(1). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acmectl.h"

static const char usage_text[] =
    "usage: acmectl [OPTIONS] issue NAME...\n"
    "       acmectl [OPTIONS] renew [--force] [ID...]\n"
    "       acmectl [OPTIONS] revoke CERTFILE [--reason N] [--key KEYFILE]\n"
    "       acmectl [OPTIONS] account show|update|deactivate|rollover\n"
    "       acmectl [-v|-q] [--status-file FILE] run CONFIG\n"
    "       acmectl [OPTIONS] dns-persist NAME... [--resolver ADDR[:PORT]] [--issuer NAME]\n"
    "                                     [--persist-until UNIXTIME]\n"
    "\n"
    "  -d, --directory URL        the CA's ACME directory (or $ACMECTL_DIRECTORY);\n"
    "                             repeated: CAs to fail over to, in order (issue, renew)\n"
    "      --ca-file FILE         trust only these roots for the ACME server\n"
    "  -s, --state-dir DIR        account and certificates (default: /var/lib/acmectl\n"
    "                             for root, else $XDG_STATE_HOME/acmectl)\n"
    "  -c, --challenge LIST       types in preference order (http-01,tls-alpn-01,dns-01;\n"
    "                             also dns-persist-01, dns-account-01)\n"
    "      --http-port N          built-in http-01 responder port (80)\n"
    "      --tls-port N           built-in tls-alpn-01 responder port (443)\n"
    "      --bind ADDR            address of the built-in responders (all)\n"
    "  -w, --webroot DIR          answer http-01 with files under DIR/.well-known/\n"
    "      --hook PROGRAM         publish/unpublish challenges, install certificates\n"
    "      --no-hook-install      do not call the hook with \"install\"\n"
    "      --dns-provider MODULE  answer dns-01 with this libacme module (.so)\n"
    "      --dns-config FILE      its settings (key = value lines)\n"
    "  -k, --key-type TYPE        certificate key: ec-256, ec-384, rsa-2048/3072/4096\n"
    "      --account-key-type T   new account key (also rollover): as above or ed25519\n"
    "      --contact URI          account contact (mailto:...), repeatable\n"
    "      --agree-tos            agree to the CA's terms of service\n"
    "      --eab-kid KID          external account binding key id\n"
    "      --eab-hmac-key-file F  external account binding HMAC key (base64url), read\n"
    "                             from F (or $ACMECTL_EAB_HMAC_KEY)\n"
    "      --eab-hmac-key KEY     the same on the command line: visible to every local\n"
    "                             user (ps); prefer the file or the variable\n"
    "      --preferred-chain CN   prefer the chain whose root/issuer has this name\n"
    "      --profile NAME         ask the CA for this certificate profile\n"
    "  -o, --out DIR              write DIR/ID.crt (chain) and DIR/ID.key (0600)\n"
    "      --json                 machine-readable result on stdout\n"
    "  -f, --force                renew even if not due\n"
    "      --reason N             revoke: 0-5 or a name (keyCompromise, superseded...)\n"
    "      --key FILE             revoke: sign with the certificate's key\n"
    "      --yes                  confirm account deactivate\n"
    "      --status-file FILE     run: keep the engine's status (JSON) in FILE\n"
    "      --resolver ADDR[:PORT] dns-persist: look the record up there (default: the\n"
    "                             system's resolver)\n"
    "      --issuer NAME          dns-persist: the CA's issuer domain name (default: the\n"
    "                             first its directory lists)\n"
    "      --persist-until T      dns-persist: the record stops working after Unix time T\n"
    "  -v, --verbose              more detail (repeatable); -q, --quiet: errors only\n"
    "  -h, --help, --version\n"
    "\n"
    "Exit status: 0 ok, 1 usage, 2 account, 3 challenge failed, 4 network/TLS,\n"
    "5 storage, 6 CA refused, 7 install hook failed, 8 internal. See acmectl(1).\n";

enum {
    OPT_CA_FILE = 256, OPT_HTTP_PORT, OPT_TLS_PORT, OPT_BIND, OPT_NO_HOOK_INSTALL,
    OPT_ACCOUNT_KEY_TYPE, OPT_CONTACT, OPT_AGREE_TOS, OPT_EAB_KID, OPT_EAB_HMAC,
    OPT_PREFERRED_CHAIN, OPT_PROFILE, OPT_JSON, OPT_REASON, OPT_KEY, OPT_YES, OPT_HELP, OPT_VERSION, OPT_HOOK,
    OPT_DNS_PROVIDER, OPT_DNS_CONFIG, OPT_STATUS_FILE, OPT_EAB_HMAC_FILE, OPT_RESOLVER, OPT_ISSUER,
    OPT_PERSIST_UNTIL
};

static const struct option long_opts[] = {
    {"directory", required_argument, NULL, 'd'},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"state-dir", required_argument, NULL, 's'},
    {"challenge", required_argument, NULL, 'c'},
    {"http-port", required_argument, NULL, OPT_HTTP_PORT},
    {"tls-port", required_argument, NULL, OPT_TLS_PORT},
    {"bind", required_argument, NULL, OPT_BIND},
    {"webroot", required_argument, NULL, 'w'},
    {"hook", required_argument, NULL, OPT_HOOK},
    {"no-hook-install", no_argument, NULL, OPT_NO_HOOK_INSTALL},
    {"dns-provider", required_argument, NULL, OPT_DNS_PROVIDER},
    {"resolver", required_argument, NULL, OPT_RESOLVER},
    {"issuer", required_argument, NULL, OPT_ISSUER},
    {"persist-until", required_argument, NULL, OPT_PERSIST_UNTIL},
    {"dns-config", required_argument, NULL, OPT_DNS_CONFIG},
    {"status-file", required_argument, NULL, OPT_STATUS_FILE},
    {"key-type", required_argument, NULL, 'k'},
    {"account-key-type", required_argument, NULL, OPT_ACCOUNT_KEY_TYPE},
    {"contact", required_argument, NULL, OPT_CONTACT},
    {"agree-tos", no_argument, NULL, OPT_AGREE_TOS},
    {"eab-kid", required_argument, NULL, OPT_EAB_KID},
    {"eab-hmac-key", required_argument, NULL, OPT_EAB_HMAC},
    {"eab-hmac-key-file", required_argument, NULL, OPT_EAB_HMAC_FILE},
    {"preferred-chain", required_argument, NULL, OPT_PREFERRED_CHAIN},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"out", required_argument, NULL, 'o'},
    {"json", no_argument, NULL, OPT_JSON},
    {"force", no_argument, NULL, 'f'},
    {"reason", required_argument, NULL, OPT_REASON},
    {"key", required_argument, NULL, OPT_KEY},
    {"yes", no_argument, NULL, OPT_YES},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static acmectl_opts O;
static char usage_msg[600];

static int bad(const char *fmt, const char *arg)
{
    bprintf(usage_msg, sizeof(usage_msg), fmt, arg);
    return -1;
}

/* The EAB HMAC key: a copy of ours (wiped at exit), wherever it came
 * from. Where it came from decides the warnings. */
static char *eab_key;
static const char *eab_file;      /* --eab-hmac-key-file */
static int eab_on_cmdline;        /* --eab-hmac-key */
static char eab_warning[700];     /* said once the progress lines are set up */

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static int set_eab_key(const char *v)
{
    wipe_free(eab_key);
    /* Leading and trailing white space (a file's newline) is not part of
     * a base64url key. */
    while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
        v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\n' || v[n - 1] == '\r'))
        n--;
    eab_key = strndup(v, n);
    return eab_key ? 0 : -1;
}

/* --eab-hmac-key-file: the key alone in a file (a trailing newline is
 * fine). The buffer is wiped; a file others can read is worth a warning. */
static int read_eab_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        bprintf(usage_msg, sizeof(usage_msg), "--eab-hmac-key-file %s: %s (give the file holding the CA's "
                "HMAC key)", path, strerror(errno));
        return -1;
    }
    struct stat st;
    char buf[4097];
    ssize_t got = 0, r = 0;
    memset(&st, 0, sizeof(st));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return bad("--eab-hmac-key-file %s: not a regular file", path);
    }
    while ((size_t)got < sizeof(buf) - 1 && (r = read(fd, buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
        got += r;
    close(fd);
    int rc = 0;
    if (r < 0) {
        bprintf(usage_msg, sizeof(usage_msg), "--eab-hmac-key-file %s: %s", path, strerror(errno));
        rc = -1;
    }
    else if ((size_t)got == sizeof(buf) - 1)
        rc = bad("--eab-hmac-key-file %s: larger than 4 KiB; it should hold only the base64url key", path);
    else {
        buf[got] = '\0';
        if (strlen(buf) != (size_t)got)
            rc = bad("--eab-hmac-key-file %s: not a text file (it holds a NUL byte)", path);
        else if (set_eab_key(buf))
            rc = bad("out of memory%s", "");
        else if (!*eab_key)
            rc = bad("--eab-hmac-key-file %s: empty", path);
    }
    explicit_bzero(buf, sizeof(buf));
    if (!rc && (st.st_mode & (S_IRGRP | S_IROTH)))
        bprintf(eab_warning, sizeof(eab_warning), "--eab-hmac-key-file %s can be read by group or others "
                "(mode %04o); chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
    return rc;
}

static int parse_port(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 1 || v > 65535)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_challenges(const char *list)
{
    O.challenge_count = 0;
    O.challenges_explicit = 1;
    char *copy = strdup(list);
    if (!copy)
        return bad("out of memory%s", "");
    int rc = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
        acme_challenge_type ty = !strcmp(t, "http-01") ? ACME_CHALLENGE_HTTP_01
                                 : !strcmp(t, "tls-alpn-01") ? ACME_CHALLENGE_TLS_ALPN_01
                                 : !strcmp(t, "dns-01") ? ACME_CHALLENGE_DNS_01
                                 : !strcmp(t, "dns-persist-01") ? ACME_CHALLENGE_DNS_PERSIST_01
                                 : !strcmp(t, "dns-account-01") ? ACME_CHALLENGE_DNS_ACCOUNT_01
                                 : ACME_CHALLENGE_NONE;
        if (ty == ACME_CHALLENGE_NONE) {
            rc = bad("--challenge: unknown type \"%s\" (http-01, tls-alpn-01, dns-01, dns-persist-01, "
                     "dns-account-01)", t);
            break;
        }
        for (size_t i = 0; i < O.challenge_count; i++)
            if (O.challenges[i] == ty)
                rc = bad("--challenge: %s listed twice", t);
        if (!rc)
            O.challenges[O.challenge_count++] = ty;
    }
    free(copy);
    if (!rc && O.challenge_count == 0)
        rc = bad("--challenge: empty list%s", "");
    return rc;
}

static int parse_reason(const char *s)
{
    static const struct { const char *name; int code; } names[] = {
        {"unspecified", 0}, {"keyCompromise", 1}, {"affiliationChanged", 3},
        {"superseded", 4}, {"cessationOfOperation", 5},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcasecmp(s, names[i].name)) {
            O.reason = names[i].code;
            return 0;
        }
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || !(v == 0 || v == 1 || (v >= 3 && v <= 5)))
        return bad("--reason %s: give 0 unspecified, 1 keyCompromise, 3 affiliationChanged, "
                   "4 superseded or 5 cessationOfOperation", s);
    O.reason = (int)v;
    return 0;
}

static int add_contact(const char *uri)
{
    O.contacts_given = 1;
    if (!*uri)
        return 0; /* --contact '' : "no contacts" for account update */
    if (!strchr(uri, ':'))
        return bad("--contact %s: give a URI such as mailto:admin@example.org", uri);
    const char **n = realloc(O.contacts, (O.contact_count + 1) * sizeof(char *));
    if (!n)
        return bad("out of memory%s", "");
    O.contacts = n;
    O.contacts[O.contact_count++] = uri;
    return 0;
}

static int parse(int argc, char **argv)
{
    int c, li;
    /* Leading '+' is not used: GNU permutation lets options follow the
     * command and names ("acmectl issue x.example --out /etc/x"). */
    while ((li = -1, c = getopt_long(argc, argv, "d:s:c:w:k:o:fvqh", long_opts, &li)) != -1) {
        /* run takes its settings from its configuration file. */
        if (c != 'v' && c != 'q' && c != OPT_STATUS_FILE && c != '?' && !O.not_for_run) {
            static char shortopt[3] = "-";
            shortopt[1] = (char)c;
            O.not_for_run = li >= 0 ? long_opts[li].name : shortopt;
        }
        switch (c) {
        case 'd':
            /* Repeated: CA failover in this order (issue, renew). */
            if (O.directory_count == MAX_DIRECTORIES)
                return bad("--directory given more than 8 times%s", "");
            O.directories[O.directory_count++] = optarg;
            O.directory = O.directories[0];
            break;
        case OPT_CA_FILE: O.ca_file = optarg; break;
        case 's': O.state_dir = optarg; break;
        case 'c':
            if (parse_challenges(optarg))
                return -1;
            break;
        case OPT_HTTP_PORT:
            if (parse_port(optarg, &O.http_port))
                return bad("--http-port %s: give a port number 1-65535", optarg);
            break;
        case OPT_TLS_PORT:
            if (parse_port(optarg, &O.tls_port))
                return bad("--tls-port %s: give a port number 1-65535", optarg);
            break;
        case OPT_BIND: {
            unsigned char buf[16];
            if (inet_pton(AF_INET, optarg, buf) != 1 && inet_pton(AF_INET6, optarg, buf) != 1)
                return bad("--bind %s: give a numeric IPv4 or IPv6 address", optarg);
            O.bind = optarg;
            break;
        }
        case 'w': O.webroot = optarg; break;
        case OPT_HOOK: O.hook = optarg; break;
        case OPT_NO_HOOK_INSTALL: O.hook_install = 0; break;
        case OPT_DNS_PROVIDER: O.dns_provider = optarg; break;
        case OPT_DNS_CONFIG: O.dns_config = optarg; break;
        case OPT_STATUS_FILE: O.status_file = optarg; break;
        case OPT_RESOLVER: O.resolver = optarg; break;
        case OPT_ISSUER: O.issuer = optarg; break;
        case OPT_PERSIST_UNTIL: {
            char *end;
            errno = 0;
            long long v = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || v <= 0)
                return bad("--persist-until %s: give a Unix time (seconds since 1970, e.g. date -d 2027-01-01 +%%s)",
                           optarg);
            O.persist_until = (int64_t)v;
            break;
        }
        case 'k':
            if (acme_key_type_from_name(optarg, &O.key_type) != ACME_OK || O.key_type == ACME_KEY_ED25519)
                return bad("--key-type %s: give ec-256, ec-384, rsa-2048, rsa-3072 or rsa-4096", optarg);
            break;
        case OPT_ACCOUNT_KEY_TYPE:
            if (acme_key_type_from_name(optarg, &O.account_key_type) != ACME_OK)
                return bad("--account-key-type %s: give ec-256, ec-384, rsa-2048, rsa-3072, rsa-4096 "
                           "or ed25519", optarg);
            break;
        case OPT_CONTACT:
            if (add_contact(optarg))
                return -1;
            break;
        case OPT_AGREE_TOS: O.agree_tos = 1; break;
        case OPT_EAB_KID: O.eab_kid = optarg; break;
        case OPT_EAB_HMAC:
            if (set_eab_key(optarg))
                return bad("out of memory%s", "");
            /* Shortens the time the key is readable in /proc/PID/cmdline
             * (it does not close it: hence the warning). */
            explicit_bzero(optarg, strlen(optarg));
            eab_on_cmdline = 1;
            break;
        case OPT_EAB_HMAC_FILE: eab_file = optarg; break;
        case OPT_PREFERRED_CHAIN: O.preferred_chain = optarg; break;
        case OPT_PROFILE: O.profile = optarg; break;
        case 'o': O.out_dir = optarg; break;
        case OPT_JSON: O.json = 1; break;
        case 'f': O.force = 1; break;
        case OPT_REASON:
            if (parse_reason(optarg))
                return -1;
            break;
        case OPT_KEY: O.key_file = optarg; break;
        case OPT_YES: O.yes = 1; break;
        case 'v': O.verbosity = O.verbosity < 0 ? 1 : O.verbosity + 1; O.verbosity_given = 1; break;
        case 'q': O.verbosity = -1; O.verbosity_given = 1; break;
        case 'h':
        case OPT_HELP:
            fputs(usage_text, stdout);
            exit(EXIT_OK);
        case OPT_VERSION:
            printf("acmectl (libacme %s)\n", acme_version());
            exit(EXIT_OK);
        default:
            /* getopt has printed what was wrong. */
            return bad("see acmectl --help%s", "");
        }
    }
    if (optind >= argc)
        return bad("no command given: issue, renew, revoke, account, run or dns-persist%s", "");
    O.command = argv[optind];
    O.args = argv + optind + 1;
    O.arg_count = argc - optind - 1;
    if (strcmp(O.command, "issue") && strcmp(O.command, "renew") && strcmp(O.command, "revoke") &&
        strcmp(O.command, "account") && strcmp(O.command, "run") && strcmp(O.command, "dns-persist"))
        return bad("unknown command \"%s\": issue, renew, revoke, account, run or dns-persist", O.command);
    if (strcmp(O.command, "dns-persist") && (O.resolver || O.issuer || O.persist_until))
        return bad("--resolver, --issuer and --persist-until are for dns-persist%s", "");
    if (!strcmp(O.command, "run")) {
        if (O.not_for_run) {
            char m[200];
            bprintf(m, sizeof(m), "%s%s", strncmp(O.not_for_run, "-", 1) ? "--" : "", O.not_for_run);
            return bad("run takes its settings from the configuration file, not %s (only -v, -q and "
                       "--status-file go on the command line)", m);
        }
        return 0;
    }
    if (O.status_file)
        return bad("--status-file is for run%s", "");
    if (O.dns_config && !O.dns_provider)
        return bad("--dns-config goes with --dns-provider%s", "");
    if (O.dns_provider && strcmp(O.command, "issue") && strcmp(O.command, "renew"))
        return bad("--dns-provider is for issue and renew%s", "");
    if (O.dns_provider) {
        /* Resolved once, here: libacme loads exactly the file checked, and
         * never a name dlopen() would look up in its own search path. */
        if (!strchr(O.dns_provider, '/'))
            return bad("--dns-provider %s: give the module's path (an absolute path, or ./NAME for one in "
                       "the working directory)", O.dns_provider);
        char *real = realpath(O.dns_provider, NULL);
        if (!real || access(real, R_OK) != 0) {
            free(real);
            return bad("--dns-provider %s: not a readable file (give the module's path)", O.dns_provider);
        }
        O.dns_provider = real; /* lives as long as the process */
    }
    if (O.dns_config && access(O.dns_config, R_OK) != 0)
        return bad("--dns-config %s: not a readable file", O.dns_config);
    if (!O.directory)
        O.directory = getenv("ACMECTL_DIRECTORY");
    if (!O.directory || !*O.directory)
        return bad("no ACME directory: give --directory URL or set ACMECTL_DIRECTORY%s", "");
    if (!O.directory_count)
        O.directories[O.directory_count++] = O.directory;
    for (size_t i = 0; i < O.directory_count; i++)
        if (strncasecmp(O.directories[i], "https://", 8) != 0)
            return bad("--directory %s: the ACME directory must be an https:// URL", O.directories[i]);
    if (O.directory_count > 1 && strcmp(O.command, "issue") && strcmp(O.command, "renew"))
        return bad("--directory is given more than once, but only issue and renew fail over between "
                   "CAs; give one for %s", O.command);
    /* The HMAC key: --eab-hmac-key-file or --eab-hmac-key (not both), else
     * $ACMECTL_EAB_HMAC_KEY when --eab-kid is given. The variable is
     * taken out of the environment so that no hook inherits it. */
    const char *env_key = getenv("ACMECTL_EAB_HMAC_KEY");
    if (eab_file && eab_on_cmdline)
        return bad("--eab-hmac-key-file and --eab-hmac-key: give one of them%s", "");
    if (eab_file && read_eab_file(eab_file))
        return -1;
    if (env_key) {
        if (!eab_key && O.eab_kid && set_eab_key(env_key))
            return bad("out of memory%s", "");
        explicit_bzero((char *)env_key, strlen(env_key));
        unsetenv("ACMECTL_EAB_HMAC_KEY");
    }
    if (eab_on_cmdline)
        bprintf(eab_warning, sizeof(eab_warning), "--eab-hmac-key puts the key on the command line, where "
                "every local user can read it (ps, /proc/PID/cmdline); use --eab-hmac-key-file FILE or "
                "ACMECTL_EAB_HMAC_KEY instead");
    O.eab_hmac = eab_key && *eab_key ? eab_key : NULL;
    if (!O.eab_kid != !O.eab_hmac)
        return bad(O.eab_kid ? "--eab-kid needs the HMAC key: give --eab-hmac-key-file FILE (or set "
                               "ACMECTL_EAB_HMAC_KEY)%s"
                             : "--eab-hmac-key-file and --eab-hmac-key go with --eab-kid KID%s", "");
    if (O.hook && access(O.hook, X_OK) != 0)
        return bad("--hook %s: not an executable file (give a path)", O.hook);
    if (!O.state_dir) {
        char *d = state_dir_default();
        if (!d)
            return bad("no state directory: give --state-dir DIR (neither root nor $HOME set)%s", "");
        O.state_dir = d; /* lives as long as the process */
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* A validator closing early must not kill us through a responder write. */
    signal(SIGPIPE, SIG_IGN);
    O.http_port = 80;
    O.tls_port = 443;
    O.hook_install = 1;
    static const acme_challenge_type defaults[] = {
        ACME_CHALLENGE_HTTP_01, ACME_CHALLENGE_TLS_ALPN_01, ACME_CHALLENGE_DNS_01,
    };
    memcpy(O.challenges, defaults, sizeof(defaults));
    O.challenge_count = 3;

    if (parse(argc, argv) != 0) {
        result res = { .command = O.command ? O.command : "" };
        output_error(&O, &res, EXIT_USAGE, ACME_E_INVALID_ARG, NULL, usage_msg);
        if (!O.json)
            fputs("Try acmectl --help.\n", stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(O.command, "run")) {
        /* A daemon: its own signal handling (cmd_run.c) and log style. */
        progress_init_daemon(O.verbosity);
        int code = cmd_run(&O);
        progress_shutdown();
        return code;
    }
    signals_start();
    progress_init(O.verbosity);
    if (eab_warning[0])
        progress(ACME_LOG_WARNING, "%s", eab_warning);
    int code;
    if (!strcmp(O.command, "issue"))
        code = cmd_issue(&O);
    else if (!strcmp(O.command, "renew"))
        code = cmd_renew(&O);
    else if (!strcmp(O.command, "revoke"))
        code = cmd_revoke(&O);
    else if (!strcmp(O.command, "dns-persist"))
        code = cmd_dns_persist(&O);
    else
        code = cmd_account(&O);
    progress_shutdown();
    wipe_free(eab_key);
    return code;
}
