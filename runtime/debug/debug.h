/*
 * debug.h: the debug room's interface to the composition root (runtime.c): what a
 * runtime's creation and destruction must tell the dump (dump.c: the process's list of
 * runtimes for WEFT_DUMP_SIGNAL) and the trace (trace.c: WEFT_TRACE, and a trace still
 * running at destroy). The public calls (weft_runtime_dump, weft_trace_*) are in weft.h.
 *
 * debug/ is the top room: it reads every room below (the workers and their metrics, the
 * task objects in their pools, the trace rings) and nothing below includes it.
 */
#ifndef WEFT__DEBUG_DEBUG_H
#define WEFT__DEBUG_DEBUG_H

#include "weft.h"

/* After rt's workers exist, before their threads start: registers rt for signal dumps,
 * installs the WEFT_DUMP_SIGNAL handler (once per process) and starts a WEFT_TRACE
 * trace. Failures are reported on stderr and otherwise ignored (diagnostics never stop
 * a program). */
void weft__debug_runtime_created(weft_runtime *rt);

/* In weft_runtime_destroy, after its workers have exited and before it waits for the
 * foreign calls (RT-D4): rt leaves the list of signal dumps; a dump in progress holds a
 * foreign-call pin on rt, which RT-D4 waits for. */
void weft__debug_runtime_leaving(weft_runtime *rt);

/* After rt's workers have exited (RT-D3), before anything is freed: a trace still
 * running is stopped (its file written) and the trace's memory freed. */
void weft__debug_runtime_stopped(weft_runtime *rt);

/* trace.c's part of the above. */
void weft__trace_env_start(weft_runtime *rt);
void weft__trace_runtime_stopped(weft_runtime *rt);

#endif /* WEFT__DEBUG_DEBUG_H */
