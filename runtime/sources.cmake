# The library's sources, relative to the repository root, room by room (docs/
# ARCHITECTURE.md): base, arch, sched, time, then the composition root. One list, read by
# the root CMakeLists.txt; keep each room sorted.
set(WEFT_RUNTIME_SOURCES
    runtime/base/chaos.c
    runtime/base/futex_linux.c
    runtime/base/memory.c
    runtime/base/pool.c
    runtime/arch/x86_64_sysv_elf.S
    runtime/sched/deque.c
    runtime/sched/fault.c
    runtime/sched/idle.c
    runtime/sched/inject.c
    runtime/sched/join.c
    runtime/sched/live.c
    runtime/sched/stack.c
    runtime/sched/spawn.c
    runtime/sched/task.c
    runtime/sched/worker.c
    runtime/time/timer.c
    runtime/time/timer_handle.c
    runtime/time/timer_wheel.c
    runtime/runtime.c)
