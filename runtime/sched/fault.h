/*
 * fault.h: stack-overflow reports (fault.c): the SIGSEGV/SIGBUS handler, installed while
 * any runtime exists, and each worker thread's signal stack.
 */
#ifndef WEFT__SCHED_FAULT_H
#define WEFT__SCHED_FAULT_H

#include "weft.h"

#include <stddef.h>

/* Stack overflow report (fault.c): the message, then abort(). Async-signal-safe. */
_Noreturn void weft__report_overflow(const weft_task *t, size_t stack_size, const void *addr,
                                     const char *how);

int weft__fault_install(void);
void weft__fault_uninstall(void);
void *weft__fault_thread_init(void);
void weft__fault_thread_exit(void *signal_stack);

#endif /* WEFT__SCHED_FAULT_H */
