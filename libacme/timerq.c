/* The engine's timer queue (timerq.h). */
#include <stdlib.h>

#include <acme/error.h>
#include "timerq.h"

void timerq_node_init(timerq_node *nd)
{
    nd->due = 0;
    nd->pos = TIMERQ_NOT_QUEUED;
}

static void place(timerq *s, size_t i, timerq_node *nd)
{
    s->heap[i] = nd;
    nd->pos = i;
}

static void sift_up(timerq *s, size_t i)
{
    timerq_node *nd = s->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent]->due <= nd->due)
            break;
        place(s, i, s->heap[parent]);
        i = parent;
    }
    place(s, i, nd);
}

static void sift_down(timerq *s, size_t i)
{
    timerq_node *nd = s->heap[i];
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

int timerq_set(timerq *s, timerq_node *nd, uint64_t due)
{
    if (nd->pos != TIMERQ_NOT_QUEUED) {
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
        timerq_node **grown = realloc(s->heap, cap * sizeof(*grown));
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

void timerq_remove(timerq *s, timerq_node *nd)
{
    size_t i = nd->pos;
    if (i == TIMERQ_NOT_QUEUED)
        return;
    nd->pos = TIMERQ_NOT_QUEUED;
    timerq_node *last = s->heap[--s->n];
    if (i == s->n)
        return;
    place(s, i, last);
    /* The moved node may belong above or below its new place. */
    if (i > 0 && s->heap[(i - 1) / 2]->due > last->due)
        sift_up(s, i);
    else
        sift_down(s, i);
}

timerq_node *timerq_top(const timerq *s)
{
    return s->n ? s->heap[0] : NULL;
}

void timerq_free(timerq *s)
{
    for (size_t i = 0; i < s->n; i++)
        s->heap[i]->pos = TIMERQ_NOT_QUEUED;
    free(s->heap);
    s->heap = NULL;
    s->n = s->cap = 0;
}
