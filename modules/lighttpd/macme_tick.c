/* mod_acme: what one tick of the engine cost lighttpd's loop, part by part.
 *
 * A tick runs inside lighttpd's event loop; it must never wait. The
 * thread's voluntary context switches (getrusage RUSAGE_THREAD) rise only
 * when it blocked (a lock held by another thread or process, a syscall
 * that sleeps, a page fault that reads the disk), so they are read after
 * each part of the tick and a tick that waited says in which part. The
 * involuntary switches are the scheduler giving the core to someone else:
 * wall time beyond CPU without a wait is that, which no code here can
 * avoid. */
#include "macme.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static const char *const part_names[MACME_PART_N] = {
    [MACME_PART_INSTALLS] = "installs", [MACME_PART_CLUSTER] = "cluster", [MACME_PART_ENGINE] = "engine",
    [MACME_PART_RESTART] = "restart",   [MACME_PART_FD_SYNC] = "fd_sync", [MACME_PART_STATUS] = "status",
};

const char *macme_part_name(macme_part p)
{
    return p < MACME_PART_N ? part_names[p] : "?";
}

static uint64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int switches(long *vol, long *invol)
{
    struct rusage r;
    if (getrusage(RUSAGE_THREAD, &r) != 0)
        return -1;
    *vol = r.ru_nvcsw;
    *invol = r.ru_nivcsw;
    return 0;
}

void macme_tick_begin(macme_tick *t)
{
    memset(t, 0, sizeof(*t));
    t->have_ru = switches(&t->vol, &t->invol0) == 0;
    t->t0 = clock_us(CLOCK_MONOTONIC);
    t->c0 = clock_us(CLOCK_THREAD_CPUTIME_ID);
}

void macme_tick_part(macme_tick *t, macme_part p)
{
    long vol, invol;
    if (!t->have_ru || p >= MACME_PART_N || switches(&vol, &invol) != 0)
        return;
    t->part_waits[p] += vol - t->vol;
    t->vol = vol;
}

/* The tick as it stands now, into t's figures and s. */
static void account(macme_tick *t, macme_tick_stats *s)
{
    uint64_t wall = clock_us(CLOCK_MONOTONIC) - t->t0, cpu = clock_us(CLOCK_THREAD_CPUTIME_ID) - t->c0;
    long vol = 0, invol = 0, waits = 0, preempted = 0;
    unsigned mask = 0;
    if (t->have_ru && switches(&vol, &invol) == 0)
        preempted = invol - t->invol0;
    for (int p = 0; p < MACME_PART_N; p++)
        if (t->part_waits[p] > 0) {
            waits += t->part_waits[p];
            mask |= 1u << p;
            s->waited_in[p]++;
        }
    s->ticks++;
    t->wall_us = wall;
    t->cpu_us = cpu;
    t->waits = waits;
    t->preempted = preempted;
    t->mask = mask;
    if (waits > 0) {
        s->ticks_waited++;
        s->last_wait_tick = s->ticks;
        s->last_wait_mask = mask;
        s->last_wait_waits = waits;
        s->last_wait_us = wall;
    }
    if (wall > s->longest_us) {
        s->longest_us = wall;
        s->longest_waits = waits;
        s->longest_preempted = preempted;
    }
    if (cpu > s->longest_cpu_us)
        s->longest_cpu_us = cpu;
}

void macme_tick_end(macme_tick *t, macme_tick_stats *s)
{
    account(t, s);
}

void macme_tick_peek(const macme_tick *t, const macme_tick_stats *s, macme_tick_stats *out)
{
    macme_tick copy = *t;
    *out = *s;
    account(&copy, out);
}

void macme_parts_text(unsigned mask, const unsigned long *counts, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int p = 0; p < MACME_PART_N && n < cap; p++) {
        if (!(mask & (1u << p)) && !(counts && counts[p]))
            continue;
        int w = counts ? snprintf(out + n, cap - n, "%s%s %lu", n ? ", " : "", part_names[p], counts[p])
                       : snprintf(out + n, cap - n, "%s%s", n ? ", " : "", part_names[p]);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}
