/*
 * hello.c: the smallest weft program: start two tasks, await both.
 *
 * The asyncio program it mirrors:
 *
 *     async def greet(name): return f"hello, {name}"
 *     async def main():
 *         a = asyncio.create_task(greet("world"))
 *         b = asyncio.create_task(greet("weft"))
 *         print(await a); print(await b)
 *     asyncio.run(main())
 */
#include <stdio.h>
#include <stdlib.h>

#include <weft.h>

static void *greet(void *name) {
    char *line = malloc(64);
    if (line)
        snprintf(line, 64, "hello, %s (from task %llu)", (const char *)name,
                 (unsigned long long)weft_current_id());
    return line;
}

static void *main_task(void *arg) {
    (void)arg;
    weft_task *a = weft_spawn(greet, "world"); /* asyncio.create_task */
    weft_task *b = weft_spawn(greet, "weft");
    if (!a || !b)
        return (void *)1;
    void *line;
    weft_join(a, &line); /* await a */
    puts(line ? line : "(out of memory)");
    free(line);
    weft_join(b, &line);
    puts(line ? line : "(out of memory)");
    free(line);
    return NULL;
}

int main(void) {
    void *failed;
    int rc = weft_run(NULL, main_task, NULL, &failed); /* asyncio.run */
    if (rc != 0 || failed) {
        fprintf(stderr, "hello: weft_run failed (%d)\n", rc);
        return 1;
    }
    return 0;
}
