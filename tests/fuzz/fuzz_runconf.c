/* Fuzz target: the configuration file of `acmectl run`
 * (examples/acmectl/runconf.c): sections, key = value lines, comments,
 * every value check, the checks across sections. runconf.c is compiled
 * into this file so the text goes straight to its parser (runconf_load's
 * own steps, minus reading the file, are repeated here); names.c comes
 * with it, and the two helpers it takes from elsewhere in acmectl
 * (bprintf, file_read_all) are given here.
 *
 * Promises checked: a refusal is "FILE:LINE: ..." on one line, naming a
 * line that exists; an accepted file has its certificates' names all
 * passing acmectl's name check, ids that are storage-safe, distinct
 * module labels with a path, and every module's settings survive
 * runconf_module_text as key=value lines that read back to the same pairs;
 * runconf_module_line blames a line of the file. */
#include <stdarg.h>
#include <stdio.h>

#include "../../examples/acmectl/runconf.c"

#include "fuzz.h"

#define T "fuzz_runconf"

void bprintf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (len)
        vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

char *file_read_all(const char *path, size_t *len)
{
    (void)path;
    (void)len;
    abort(); /* the target hands the text over itself */
}

static int lines_of(const char *s)
{
    int n = 1;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void check_module(const run_module *m, int max_line)
{
    FUZZ_CHECK(T, m->label && m->line >= 1 && m->line <= max_line, "module label and line");
    char *text = runconf_module_text(m);
    FUZZ_CHECK(T, text != NULL, "module text");
    size_t i = 0;
    for (char *ln = text, *next; *ln; ln = next, i++) {
        next = strchr(ln, '\n');
        FUZZ_CHECK(T, next != NULL, "module text ends its lines");
        *next++ = '\0';
        FUZZ_CHECK(T, i < m->kv_count, "module text has one line per setting");
        char *eq = strchr(ln, '=');
        FUZZ_CHECK(T, eq && (size_t)(eq - ln) == strlen(m->kv[i].key) && !strncmp(ln, m->kv[i].key, (size_t)(eq - ln)) &&
                      !strcmp(eq + 1, m->kv[i].value),
                   "module setting reads back");
        FUZZ_CHECK(T, m->kv[i].line >= 1 && m->kv[i].line <= max_line, "setting line");
    }
    FUZZ_CHECK(T, i == m->kv_count, "every setting in the module text");
    free(text);
    int blamed = runconf_module_line(m, "socket: refused");
    FUZZ_CHECK(T, blamed >= 1 && blamed <= max_line, "blamed line exists");
    if (m->kv_count) {
        char msg[600];
        snprintf(msg, sizeof(msg), "%s=%s: bad", m->kv[0].key, m->kv[0].value);
        FUZZ_CHECK(T, runconf_module_line(m, msg) == m->kv[0].line, "a message naming a key blames its line");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memchr(data, '\0', size))
        return 0; /* runconf_load refuses these before parsing */
    char *text = fuzz_strndup(data, size);
    int max_line = lines_of(text) + 1;
    char err[512];
    err[0] = '\0';
    run_config *cf = calloc(1, sizeof(*cf));
    if (!cf || !(cf->file = strdup("run.conf")))
        abort();
    parser p = {.cf = cf, .file = "run.conf", .err = err, .errlen = sizeof(err)};
    int rc = parse_text(&p, text);
    forget_seen(&p);
    if (!rc)
        rc = check_whole(&p);
    free(text);
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "%s: %s\n", T, rc ? err : "accepted");
    if (rc) {
        FUZZ_CHECK(T, !strncmp(err, "run.conf:", 9), "a refusal names the file");
        FUZZ_CHECK(T, !strchr(err, '\n'), "a refusal of one line");
        FUZZ_CHECK(T, !fuzz_has_control(err), "a refusal quotes a control character of the file");
        runconf_free(cf);
        return 0;
    }
    for (size_t i = 0; i < cf->cert_count; i++) {
        const run_cert *c = &cf->certs[i];
        FUZZ_CHECK(T, c->name_count >= 1, "a certificate has names");
        for (size_t k = 0; k < c->name_count; k++) {
            char why[256];
            FUZZ_CHECK(T, name_check(c->names[k], why, sizeof(why)) == 0, "certificate names pass the name check");
        }
        if (c->id)
            FUZZ_CHECK(T, id_ok(c->id), "certificate id is storage-safe");
        FUZZ_CHECK(T, c->challenge_count <= MAX_CHALLENGES, "challenge count");
    }
    for (size_t i = 0; i < cf->module_count; i++) {
        FUZZ_CHECK(T, cf->modules[i].path && *cf->modules[i].path, "module path");
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(T, strcmp(cf->modules[i].label, cf->modules[j].label), "module labels differ");
        check_module(&cf->modules[i], max_line);
    }
    FUZZ_CHECK(T, cf->challenge_count <= MAX_CHALLENGES, "challenge count");
    runconf_free(cf);
    return 0;
}
