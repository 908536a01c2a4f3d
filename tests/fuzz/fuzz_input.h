/*
 * fuzz_input.h: what the libFuzzer targets share: the failure macro (prints the target,
 * where and why, then aborts so that libFuzzer saves the input), and the reader that
 * turns the input bytes into a stream of operands (zeros once the input runs out).
 */
#ifndef WEFT_FUZZ_INPUT_H
#define WEFT_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The target's name, for failure lines: each target defines FUZZ_NAME first. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s: %s:%d: %s: ", FUZZ_NAME, __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct input {
    const uint8_t *p;
    size_t left;
} input;

static inline uint8_t in_u8(input *in) {
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

/* n bytes (n <= 8), big-endian. */
static inline uint64_t in_bytes(input *in, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | in_u8(in);
    return v;
}

#endif /* WEFT_FUZZ_INPUT_H */
