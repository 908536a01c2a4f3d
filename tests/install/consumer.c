/*
 * consumer.c: the smallest program built against an installed weft, through pkg-config
 * and through find_package(weft) (tools/test). It exits 0 when a task's result makes it
 * back to the caller.
 */
#include <stdint.h>
#include <stdio.h>
#include <weft.h>

static void *answer(void *arg) {
    (void)arg;
    return (void *)(intptr_t)42;
}

int main(void) {
    void *result = NULL;
    int rc = weft_run(NULL, answer, NULL, &result);
    if (rc != 0 || (intptr_t)result != 42) {
        fprintf(stderr, "consumer: weft_run returned %d, result %ld (want 0, 42)\n", rc,
                (long)(intptr_t)result);
        return 1;
    }
    return 0;
}
