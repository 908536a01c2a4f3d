# The library's sources, relative to the repository root, room by room (docs/
# ARCHITECTURE.md): base, arch, sched, time, io, sync, debug, then the composition root. One list, read by
# the root CMakeLists.txt; keep each room sorted. The arch room holds one file per target:
# the context switch for the processor being built for.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set(WEFT_ARCH_SOURCE runtime/arch/x86_64_sysv_elf.S)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
    set(WEFT_ARCH_SOURCE runtime/arch/aarch64_aapcs_elf.S)
else()
    message(FATAL_ERROR "runtime/sources.cmake: no context switch for '${CMAKE_SYSTEM_PROCESSOR}'")
endif()
set(WEFT_RUNTIME_SOURCES
    runtime/base/chaos.c
    runtime/base/futex_linux.c
    runtime/base/memory.c
    runtime/base/pool.c
    runtime/base/ticks.c
    ${WEFT_ARCH_SOURCE}
    runtime/sched/cancel.c
    runtime/sched/deque.c
    runtime/sched/fault.c
    runtime/sched/idle.c
    runtime/sched/inject.c
    runtime/sched/join.c
    runtime/sched/live.c
    runtime/sched/stack.c
    runtime/sched/spawn.c
    runtime/sched/task.c
    runtime/sched/wait.c
    runtime/sched/worker.c
    runtime/time/timer.c
    runtime/time/timer_handle.c
    runtime/time/timer_wheel.c
    runtime/io/blocking.c
    runtime/io/fd.c
    runtime/io/poller_epoll.c
    runtime/io/reactor.c
    runtime/io/tcp.c
    runtime/sync/chan.c
    runtime/sync/cond.c
    runtime/sync/event.c
    runtime/sync/group.c
    runtime/sync/mutex.c
    runtime/sync/select.c
    runtime/sync/semaphore.c
    runtime/sync/waitgroup.c
    runtime/sync/waitq.c
    runtime/debug/dump.c
    runtime/debug/trace.c
    runtime/runtime.c)
