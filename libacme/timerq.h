/* A timer queue: an indexed binary min-heap of nodes keyed by a monotonic
 * due time, so the engine finds what is due without walking every
 * certificate it manages (issue 12: a step's cost must not grow with
 * the number of certificates). The node lives inside the caller's object
 * (container_of style); the queue only holds pointers, and an object's
 * node knows its position, so update and remove are O(log n). */
#ifndef LIBACME_TIMERQ_H
#define LIBACME_TIMERQ_H

#include <stddef.h>
#include <stdint.h>

#define TIMERQ_NOT_QUEUED SIZE_MAX

typedef struct timerq_node {
    uint64_t due;   /* when the owner wants to run (monotonic ms) */
    size_t pos;     /* index in the heap, TIMERQ_NOT_QUEUED when not queued */
} timerq_node;

typedef struct timerq {
    timerq_node **heap;
    size_t n, cap;
} timerq;

void timerq_node_init(timerq_node *nd);
/* Queue nd at due, or move it there if it is queued. ACME_E_NOMEM when
 * the heap cannot grow (nd is then not queued). */
int timerq_set(timerq *s, timerq_node *nd, uint64_t due);
/* Take nd out; nothing if it is not queued. */
void timerq_remove(timerq *s, timerq_node *nd);
/* The earliest node, or NULL. */
timerq_node *timerq_top(const timerq *s);
void timerq_free(timerq *s);

#endif
