/* The engine's timer queue (libacme/timerq.c): after any sequence of
 * inserts, moves and removals the top is the earliest queued node, every
 * node knows its place, and popping yields due times in order. Checked
 * against a brute-force scan over a bounded pseudo-random sequence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <acme/error.h>
#include "timerq.h"

#define NODES 500
#define OPS 20000

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void check_invariants(const timerq *s, timerq_node *nodes)
{
    const timerq_node *best = NULL;
    size_t queued = 0;
    for (size_t i = 0; i < NODES; i++) {
        if (nodes[i].pos == TIMERQ_NOT_QUEUED)
            continue;
        queued++;
        assert_true(nodes[i].pos < s->n);
        assert_ptr_equal(s->heap[nodes[i].pos], &nodes[i]);
        if (!best || nodes[i].due < best->due)
            best = &nodes[i];
    }
    assert_int_equal(queued, s->n);
    if (best)
        assert_int_equal(timerq_top(s)->due, best->due);
    else
        assert_null(timerq_top(s));
}

static void random_operations_keep_the_heap(void **state)
{
    (void)state;
    timerq s = {0};
    timerq_node nodes[NODES];
    for (size_t i = 0; i < NODES; i++)
        timerq_node_init(&nodes[i]);
    for (int op = 0; op < OPS; op++) {
        timerq_node *nd = &nodes[rnd() % NODES];
        switch (rnd() % 4) {
        case 0:
        case 1: /* insert or move, often to an equal time */
            assert_int_equal(timerq_set(&s, nd, rnd() % 1000), ACME_OK);
            break;
        case 2:
            timerq_remove(&s, nd);
            break;
        case 3: { /* pop the top */
            timerq_node *top = timerq_top(&s);
            if (top)
                timerq_remove(&s, top);
            break;
        }
        }
        if (op % 97 == 0)
            check_invariants(&s, nodes);
    }
    check_invariants(&s, nodes);
    /* Drain: non-decreasing. */
    uint64_t last = 0;
    timerq_node *top;
    while ((top = timerq_top(&s)) != NULL) {
        assert_true(top->due >= last);
        last = top->due;
        timerq_remove(&s, top);
        assert_int_equal(top->pos, TIMERQ_NOT_QUEUED);
    }
    timerq_free(&s);
}

static void removing_an_unqueued_node_is_harmless(void **state)
{
    (void)state;
    timerq s = {0};
    timerq_node a, b;
    timerq_node_init(&a);
    timerq_node_init(&b);
    timerq_remove(&s, &a);
    assert_int_equal(timerq_set(&s, &a, 5), ACME_OK);
    assert_int_equal(timerq_set(&s, &b, 3), ACME_OK);
    assert_ptr_equal(timerq_top(&s), &b);
    assert_int_equal(timerq_set(&s, &b, 9), ACME_OK); /* moved later */
    assert_ptr_equal(timerq_top(&s), &a);
    timerq_remove(&s, &a);
    timerq_remove(&s, &a);
    assert_ptr_equal(timerq_top(&s), &b);
    timerq_free(&s);
    assert_int_equal(b.pos, TIMERQ_NOT_QUEUED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_operations_keep_the_heap),
        cmocka_unit_test(removing_an_unqueued_node_is_harmless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
