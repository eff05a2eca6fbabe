/* The engine's timer queue (timerq.h). */
#include <stdlib.h>

#include <acme/error.h>
#include "timerq.h"

void sched_node_init(sched_node *nd)
{
    nd->due = 0;
    nd->pos = SCHED_NOT_QUEUED;
}

static void place(sched *s, size_t i, sched_node *nd)
{
    s->heap[i] = nd;
    nd->pos = i;
}

static void sift_up(sched *s, size_t i)
{
    sched_node *nd = s->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent]->due <= nd->due)
            break;
        place(s, i, s->heap[parent]);
        i = parent;
    }
    place(s, i, nd);
}

static void sift_down(sched *s, size_t i)
{
    sched_node *nd = s->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        uint64_t best_due = nd->due;
        if (l < s->n && s->heap[l]->due < best_due)
            best = l, best_due = s->heap[l]->due;
        if (r < s->n && s->heap[r]->due < best_due)
            best = r;
        if (best == i)
            break;
        place(s, i, s->heap[best]);
        i = best;
    }
    place(s, i, nd);
}

int sched_set(sched *s, sched_node *nd, uint64_t due)
{
    if (nd->pos != SCHED_NOT_QUEUED) {
        uint64_t old = nd->due;
        nd->due = due;
        if (due < old)
            sift_up(s, nd->pos);
        else if (due > old)
            sift_down(s, nd->pos);
        return ACME_OK;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        sched_node **grown = realloc(s->heap, cap * sizeof(*grown));
        if (!grown)
            return ACME_E_NOMEM;
        s->heap = grown;
        s->cap = cap;
    }
    nd->due = due;
    place(s, s->n++, nd);
    sift_up(s, nd->pos);
    return ACME_OK;
}

void sched_remove(sched *s, sched_node *nd)
{
    size_t i = nd->pos;
    if (i == SCHED_NOT_QUEUED)
        return;
    nd->pos = SCHED_NOT_QUEUED;
    sched_node *last = s->heap[--s->n];
    if (i == s->n)
        return;
    place(s, i, last);
    /* The moved node may belong above or below its new place. */
    if (i > 0 && s->heap[(i - 1) / 2]->due > last->due)
        sift_up(s, i);
    else
        sift_down(s, i);
}

sched_node *sched_top(const sched *s)
{
    return s->n ? s->heap[0] : NULL;
}

void sched_free(sched *s)
{
    for (size_t i = 0; i < s->n; i++)
        s->heap[i]->pos = SCHED_NOT_QUEUED;
    free(s->heap);
    s->heap = NULL;
    s->n = s->cap = 0;
}
