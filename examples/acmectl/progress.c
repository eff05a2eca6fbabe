/* Progress for a person, on stderr: every line carries the time since
 * acmectl started, so a slow step shows where the time went. While a
 * blocking call (an order, a hook) is quiet for a while, a ticker thread
 * says how long it has been waiting and on what — a person watching a
 * terminal should never wonder whether it hung.
 *
 * `run` is a daemon: its lines carry the wall-clock time (UTC) instead,
 * there is no ticker (a daemon is quiet most of the time), and libacme's
 * errors are shown as they happen. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acmectl.h"

#define TICK_QUIET_MS 5000   /* say "still waiting" after this much silence */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t ticker;
    int ticker_on, stop;
    int verbosity;
    int daemon;
    uint64_t start_ms, last_ms, wait_since_ms;
    char last[256];          /* the last thing said: why we are waiting */
    char activity[256];      /* set explicitly while a hook runs */
} P = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Caller holds P.mu. msg may carry the CA's words: escaped here, the one
 * place every progress line passes. */
static void emit(const char *tag, const char *raw)
{
    char *esc = text_escape_dup(raw);
    const char *msg = esc ? esc : "(out of memory)";
    uint64_t now = mono_ms();
    if (P.daemon) {
        struct timespec ts;
        struct tm tm;
        char when[32];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(stderr, "%s.%03ldZ acmectl[%ld]: %s%s\n", when, ts.tv_nsec / 1000000L, (long)getpid(), tag, msg);
        fflush(stderr);
        P.last_ms = now;
        free(esc);
        return;
    }
    uint64_t t = now - P.start_ms;
    fprintf(stderr, "[%4llu.%03llus] %s%s\n", (unsigned long long)(t / 1000),
            (unsigned long long)(t % 1000), tag, msg);
    fflush(stderr);
    P.last_ms = now;
    free(esc);
}

static void *ticker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&P.mu);
    while (!P.stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&P.cv, &P.mu, &ts);
        if (P.stop)
            break;
        uint64_t now = mono_ms();
        if (now - P.last_ms >= TICK_QUIET_MS && P.verbosity >= 0) {
            const char *why = P.activity[0] ? P.activity : P.last;
            char line[400];
            bprintf(line, sizeof(line), "still waiting (%llu s) after: %s",
                     (unsigned long long)((now - P.wait_since_ms) / 1000), why);
            emit("", line);
        }
    }
    pthread_mutex_unlock(&P.mu);
    return NULL;
}

void progress_init(int verbosity)
{
    P.verbosity = verbosity;
    P.start_ms = P.last_ms = P.wait_since_ms = mono_ms();
    bprintf(P.last, sizeof(P.last), "start");
    if (verbosity >= 0 && pthread_create(&P.ticker, NULL, ticker, NULL) == 0)
        P.ticker_on = 1;
}

void progress_init_daemon(int verbosity)
{
    P.verbosity = verbosity;
    P.daemon = 1;
    P.start_ms = P.last_ms = P.wait_since_ms = mono_ms();
}

void progress_set_verbosity(int verbosity)
{
    pthread_mutex_lock(&P.mu);
    P.verbosity = verbosity;
    pthread_mutex_unlock(&P.mu);
}

void progress_shutdown(void)
{
    if (!P.ticker_on)
        return;
    pthread_mutex_lock(&P.mu);
    P.stop = 1;
    pthread_cond_signal(&P.cv);
    pthread_mutex_unlock(&P.mu);
    pthread_join(P.ticker, NULL);
    P.ticker_on = 0;
}

static int shown(acme_log_level level)
{
    if (P.verbosity < -1)
        return level <= ACME_LOG_ERROR;
    if (P.verbosity < 0)
        return level <= ACME_LOG_WARNING;
    if (P.verbosity == 0)
        return level <= ACME_LOG_INFO;
    return 1;
}

static void say(acme_log_level level, const char *msg)
{
    pthread_mutex_lock(&P.mu);
    bprintf(P.last, sizeof(P.last), "%s", msg);
    P.wait_since_ms = mono_ms();
    if (shown(level))
        emit(level == ACME_LOG_WARNING ? "warning: " : level == ACME_LOG_ERROR ? "error: " : "", msg);
    pthread_mutex_unlock(&P.mu);
}

void progress(acme_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    say(level, msg);
}

void progress_lib_log(void *ud, acme_log_level level, const char *libmsg)
{
    (void)ud;
    char buf[1200];
    const char *msg = acmectl_wording(libmsg, buf, sizeof(buf));
    /* libacme logs its first failure at ERROR and also keeps it as
     * acme_client_last_error(), which acmectl prints at the end with the
     * CA's problem: show it here only when asked for detail. */
    if (level == ACME_LOG_ERROR && P.verbosity < 1 && !P.daemon) {
        pthread_mutex_lock(&P.mu);
        bprintf(P.last, sizeof(P.last), "%s", msg);
        pthread_mutex_unlock(&P.mu);
        return;
    }
    say(level, msg);
}

void bprintf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

void progress_activity(const char *fmt, ...)
{
    pthread_mutex_lock(&P.mu);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(P.activity, sizeof(P.activity), fmt, ap);
        va_end(ap);
        P.wait_since_ms = mono_ms();
    } else {
        P.activity[0] = '\0';
    }
    pthread_mutex_unlock(&P.mu);
}

/* ---- text from elsewhere, made safe for a terminal --------------------- */

/* The escaped form of one byte, or NULL when it stands for itself. */
static const char *escape_of(unsigned char ch, char buf[5])
{
    if (ch >= 0x20 && ch != 0x7f)
        return NULL;
    /* One form for all, the one libacme's log lines use. */
    snprintf(buf, 5, "\\x%02x", ch);
    return buf;
}

size_t text_escape(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    if (!outlen)
        return 0;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p; p++) {
        char tmp[5];
        const char *e = escape_of(*p, tmp);
        size_t n = e ? strlen(e) : 1;
        /* Never half an escape: a cut "\x1" would read as something else. */
        if (o + n >= outlen)
            break;
        if (e)
            memcpy(out + o, e, n);
        else
            out[o] = (char)*p;
        o += n;
    }
    out[o] = '\0';
    return o;
}

char *text_escape_dup(const char *in)
{
    size_t len = strlen(in ? in : "");
    char *out = malloc(len * 4 + 1);
    if (out)
        text_escape(in, out, len * 4 + 1);
    return out;
}

void print_line(FILE *f, const char *fmt, ...)
{
    char *raw = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&raw, fmt, ap);
    va_end(ap);
    char *esc = n >= 0 ? text_escape_dup(raw) : NULL;
    fputs(esc ? esc : "acmectl: (out of memory)", f);
    fputc('\n', f);
    free(esc);
    if (n >= 0)
        free(raw);
}
