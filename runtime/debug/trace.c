/*
 * trace.c: weft_trace_start / weft_trace_stop (weft.h). STUB, to be replaced.
 */
#include "debug/debug.h"

#include "sched/runtime.h"

#include <errno.h>

WEFT_API int weft_trace_start(weft_runtime *rt, const char *path) {
    if (!rt || !path)
        return -EINVAL;
    return -ENOSYS;
}

WEFT_API int weft_trace_stop(weft_runtime *rt) {
    if (!rt)
        return -EINVAL;
    return -EINVAL;
}

void weft__trace_env_start(weft_runtime *rt) {
    (void)rt;
}

void weft__trace_runtime_stopped(weft_runtime *rt) {
    (void)rt;
}
