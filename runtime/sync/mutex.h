/*
 * mutex.h: what the rest of the sync room asks of weft_mutex (mutex.c).
 */
#ifndef WEFT__SYNC_MUTEX_H
#define WEFT__SYNC_MUTEX_H

#include "weft.h"

#include <stdbool.h>

/* Does the calling task (or thread) hold m? */
bool weft__mutex_held_by_caller(weft_mutex *m);

#endif /* WEFT__SYNC_MUTEX_H */
