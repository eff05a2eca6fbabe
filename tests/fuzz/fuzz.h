/* What every fuzz target shares (tests/fuzz/README.md).
 *
 * A target defines LLVMFuzzerTestOneInput and nothing else of its own
 * outside its file; corpus_main.c (the plain corpus runner) or libFuzzer
 * drives it, and no_network.c makes any attempt to reach the network
 * abort the run. */
#ifndef FUZZ_FUZZ_H
#define FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A promise of the parser did not hold: say which, then crash so libFuzzer
 * (or the corpus runner, or the sanitizer) records the input. */
#define FUZZ_CHECK(target, ok, what)                                                \
    do {                                                                            \
        if (!(ok)) {                                                                \
            fprintf(stderr, "%s: broken promise: %s (%s:%d)\n", (target), (what),   \
                    __FILE__, __LINE__);                                            \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* A promise known to be broken, with its reproducer in tests/fuzz/crashers/
 * and the fix in another helper's file: reported once per run instead of
 * aborting, so the corpus tests stay green and a long libFuzzer run goes
 * on to find other bugs. FUZZ_STRICT_OPEN=1 in the environment makes it
 * abort like FUZZ_CHECK (to check the fix). Turn it into FUZZ_CHECK when
 * the fix lands. */
#define FUZZ_CHECK_OPEN(target, ok, what, crasher)                                  \
    do {                                                                            \
        static int told_;                                                           \
        if (!(ok)) {                                                                \
            if (getenv("FUZZ_STRICT_OPEN"))                                         \
                FUZZ_CHECK(target, 0, what);                                        \
            if (!told_++)                                                           \
                fprintf(stderr, "%s: known open bug: %s (reproducer: %s)\n",        \
                        (target), (what), (crasher));                               \
        }                                                                           \
    } while (0)

/* Inputs made of several pieces (one HTTP response each, one HAProxy reply
 * each) separate them with this line. Chosen so that no JSON body, PEM
 * chain or HAProxy reply in the corpora contains it. */
#define FUZZ_SEP "\n@@@\n"
#define FUZZ_SEP_LEN 5

/* Walks the pieces of an input: fuzz_pieces_init, then fuzz_next_piece
 * until it returns 0. An input without a separator is one piece. */
typedef struct fuzz_pieces {
    const uint8_t *p, *end;
    int done;
} fuzz_pieces;

static inline void fuzz_pieces_init(fuzz_pieces *it, const uint8_t *data, size_t size)
{
    it->p = data;
    it->end = data + size;
    it->done = 0;
}

static inline int fuzz_next_piece(fuzz_pieces *it, const uint8_t **piece, size_t *len)
{
    if (it->done)
        return 0;
    const uint8_t *hit = NULL;
    for (const uint8_t *q = it->p; (size_t)(it->end - q) >= FUZZ_SEP_LEN; q++) {
        q = memchr(q, '\n', (size_t)(it->end - q) - FUZZ_SEP_LEN + 1);
        if (!q)
            break;
        if (memcmp(q, FUZZ_SEP, FUZZ_SEP_LEN) == 0) {
            hit = q;
            break;
        }
    }
    *piece = it->p;
    if (hit) {
        *len = (size_t)(hit - it->p);
        it->p = hit + FUZZ_SEP_LEN;
    } else {
        *len = (size_t)(it->end - it->p);
        it->done = 1;
    }
    return 1;
}

/* A NUL-terminated copy (malloc'ed), for parsers that take C strings. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* "key=value" lines (the form acmectl hands a module its settings) into
 * parallel arrays pointing into text, which is modified. Lines without
 * '=' become a key with an empty value; at most cap pairs. */
static inline size_t fuzz_kv_lines(char *text, const char **keys, const char **values, size_t cap)
{
    size_t n = 0;
    for (char *line = text, *next; line && n < cap; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (!*line)
            continue;
        char *eq = strchr(line, '=');
        if (eq)
            *eq = '\0';
        keys[n] = line;
        values[n] = eq ? eq + 1 : line + strlen(line);
        n++;
    }
    return n;
}

/* 1 if s has a byte below 0x20 or DEL (a string a parser promised to keep
 * free of them). */
static inline int fuzz_has_control(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

#endif
