# The library's sources, relative to the repository root. One list, read by the root
# CMakeLists.txt; keep it sorted, the assembly for each ABI last.
set(WEFT_RUNTIME_SOURCES
    runtime/chaos.c
    runtime/deque.c
    runtime/fault.c
    runtime/futex_linux.c
    runtime/inject.c
    runtime/memory.c
    runtime/park.c
    runtime/pool.c
    runtime/runtime.c
    runtime/stack.c
    runtime/task.c
    runtime/timer.c
    runtime/timer_handle.c
    runtime/timer_wheel.c
    runtime/worker.c
    runtime/arch/x86_64_sysv_elf.S)
