/* Running the --hook program. posix_spawn rather than system(): the
 * arguments (names, tokens) never pass through a shell, so nothing in
 * them can be interpreted. The hook's stdout goes to our stderr, because
 * stdout belongs to --json. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acmectl.h"

extern char **environ;

/* environ with the extra variables set (replacing same-named ones). Ours
 * come first; *owned says how many of them to free. */
static char **build_env(const hook_env *env, size_t envc, size_t *owned)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **out = calloc(n + envc + 1, sizeof(char *));
    *owned = 0;
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t j = 0; j < envc; j++) {
        const char *v = env[j].value ? env[j].value : "";
        size_t len = strlen(env[j].name) + strlen(v) + 2;
        char *s = malloc(len);
        if (!s) {
            for (size_t i = 0; i < k; i++)
                free(out[i]);
            free(out);
            return NULL;
        }
        strcpy(s, env[j].name);
        strcat(s, "=");
        strcat(s, v);
        out[k++] = s;
    }
    *owned = k;
    for (size_t i = 0; i < n; i++) {
        int replaced = 0;
        for (size_t j = 0; j < envc && !replaced; j++) {
            size_t l = strlen(env[j].name);
            replaced = strncmp(environ[i], env[j].name, l) == 0 && environ[i][l] == '=';
        }
        if (!replaced)
            out[k++] = environ[i]; /* borrowed, not freed */
    }
    out[k] = NULL;
    return out;
}

static void free_env(char **e, size_t owned)
{
    if (!e)
        return;
    for (size_t i = 0; i < owned; i++)
        free(e[i]);
    free(e);
}

int hook_run(const char *hook, const char *const *args, size_t argc,
             const hook_env *env, size_t envc)
{
    char **argv = calloc(argc + 2, sizeof(char *));
    size_t owned = 0;
    char **envp = build_env(env, envc, &owned);
    if (!argv || !envp) {
        free(argv);
        free_env(envp, owned);
        errno = ENOMEM;
        return -1;
    }
    argv[0] = (char *)hook;
    for (size_t i = 0; i < argc; i++)
        argv[i + 1] = (char *)(args[i] ? args[i] : "");

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
    /* acmectl blocks the interrupt signals (signals.c) and ignores
     * SIGPIPE; a hook gets the ordinary defaults. */
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGHUP);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, hook, &fa, &at, argv, envp);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    free(argv);
    free_env(envp, owned);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 256 + WTERMSIG(st);
    return -1;
}
