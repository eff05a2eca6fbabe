/* Back end: a command the user supplies, for any DNS host with its own
 * API. Run as
 *
 *     /bin/sh -c '<command> "$@"' acme-dns01-hook add|del <name> <value>
 *
 * with <name> the record's owner after CNAMEs, without the final dot, and
 * ACME_DNS01_ZONE / ACME_DNS01_IDENTIFIER in its environment. Exit status
 * 0 means done; anything else fails with the last line it printed. It runs
 * in its own process group, which is killed when hook-timeout passes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dns01.h"

extern char **environ;

#define OUTPUT_KEEP 4096
#define KILL_GRACE_MS 2000

static char *env_entry(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *e = malloc(n);
    if (e)
        snprintf(e, n, "%s=%s", name, value);
    return e;
}

/* environ without our variables, plus ours. */
static char **make_env(const char *zone, const char *identifier)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + 3, sizeof(char *));
    if (!env)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "ACME_DNS01_ZONE=", 16) && strncmp(environ[i], "ACME_DNS01_IDENTIFIER=", 22))
            env[o++] = environ[i];
    env[o] = env_entry("ACME_DNS01_ZONE", zone);
    env[o + 1] = env_entry("ACME_DNS01_IDENTIFIER", identifier);
    if (!env[o] || !env[o + 1]) {
        free(env[o]);
        free(env[o + 1]);
        free(env);
        return NULL;
    }
    return env;
}

static void free_env(char **env)
{
    size_t n = 0;
    while (env[n])
        n++;
    /* The last two are ours. */
    if (n >= 2) {
        free(env[n - 1]);
        free(env[n - 2]);
    }
    free(env);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The last non-empty line of out, in place. */
static const char *last_line(char *out)
{
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = '\0';
    char *nl = strrchr(out, '\n');
    return nl ? nl + 1 : out;
}

static int run(dns01 *d, const char *action, const dns01_record *r)
{
    char name[DNS_NAME_TEXT], zone[DNS_NAME_TEXT];
    dns_name_to_text(&r->target, name, sizeof(name));
    dns_name_to_text(&r->zone, zone, sizeof(zone));
    size_t sl = strlen(d->command) + 8;
    char *script = malloc(sl);
    char **env = make_env(zone, r->identifier);
    int pipefd[2] = {-1, -1};
    if (!script || !env || pipe2(pipefd, O_CLOEXEC) != 0) {
        free(script);
        if (env)
            free_env(env);
        return dns01_fail(d, ACME_E_NOMEM, "hook: cannot prepare to run the command");
    }
    snprintf(script, sl, "%s \"$@\"", d->command);
    char *argv[] = {"/bin/sh", "-c", script, "acme-dns01-hook", (char *)action, name,
                    (char *)r->value, NULL};

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    static const int reset[] = {SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGALRM,
                                SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
        sigaddset(&defaults, reset[i]);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &defaults);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    int err = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(pipefd[1]);
    free_env(env);
    if (err) {
        close(pipefd[0]);
        free(script);
        return dns01_fail(d, ACME_E_CALLBACK, "hook: cannot run /bin/sh: %s", strerror(err));
    }
    dns01_log(d, ACME_LOG_DEBUG, "hook: %s %s %s %s (pid %ld)", d->command, action, name, r->value,
              (long)pid);

    char out[OUTPUT_KEEP + 1];
    size_t used = 0;
    int status = 0, exited = 0, open_pipe = 1, timed_out = 0;
    uint64_t deadline = dns_now_ms() + (uint64_t)d->hook_timeout_s * 1000u;
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    while (!exited) {
        if (open_pipe) {
            struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
            if (poll(&p, 1, 50) > 0) {
                char tmp[512];
                ssize_t n = read(pipefd[0], tmp, sizeof(tmp));
                if (n == 0)
                    open_pipe = 0;
                for (ssize_t i = 0; i < n; i++) {
                    if (used == OUTPUT_KEEP) { /* keep the tail */
                        memmove(out, out + OUTPUT_KEEP / 2, OUTPUT_KEEP / 2);
                        used = OUTPUT_KEEP / 2;
                    }
                    out[used++] = tmp[i] ? tmp[i] : ' ';
                }
            }
        } else {
            sleep_ms(50);
        }
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            exited = 1;
        } else if (w < 0 && errno != EINTR) {
            /* The host reaps children itself (SIGCHLD ignored): we cannot
             * learn the status. */
            close(pipefd[0]);
            free(script);
            return dns01_fail(d, ACME_E_CALLBACK, "hook: lost track of the command (waitpid: %s); "
                              "is SIGCHLD ignored?", strerror(errno));
        } else if (dns_now_ms() >= deadline) {
            timed_out = 1;
            kill(-pid, SIGTERM);
            uint64_t grace = dns_now_ms() + KILL_GRACE_MS;
            while (waitpid(pid, &status, WNOHANG) == 0 && dns_now_ms() < grace)
                sleep_ms(50);
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            exited = 1;
        }
    }
    /* Whatever is left in the pipe now (a background child may hold it
     * open; do not wait for it). */
    for (;;) {
        char tmp[512];
        ssize_t n = read(pipefd[0], tmp, sizeof(tmp));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && used < OUTPUT_KEEP; i++)
            out[used++] = tmp[i] ? tmp[i] : ' ';
    }
    close(pipefd[0]);
    free(script);
    out[used] = '\0';
    const char *line = last_line(out);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\n')
            *p = ' ';
    if (timed_out)
        return dns01_fail(d, ACME_E_TIMEOUT, "hook: `%s %s %s` did not finish within %u s (killed)",
                          d->command, action, name, d->hook_timeout_s);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        if (*line)
            dns01_log(d, ACME_LOG_DEBUG, "hook: %s", line);
        return ACME_OK;
    }
    char how[64];
    if (WIFEXITED(status))
        snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(how, sizeof(how), "was killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return dns01_fail(d, ACME_E_CALLBACK, "hook: `%s %s %s` %s%s%.300s", d->command, action, name,
                      how, *line ? ": " : "", line);
}

static int hook_add(dns01 *d, const dns01_record *r)
{
    return run(d, "add", r);
}

static int hook_del(dns01 *d, const dns01_record *r)
{
    return run(d, "del", r);
}

const dns01_backend dns01_backend_hook = {
    .name = "hook",
    .add = hook_add,
    .del = hook_del,
};
