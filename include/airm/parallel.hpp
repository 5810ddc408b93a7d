// Running independent items on a few threads.
#pragma once

#include <cstddef>
#include <functional>

namespace airm {

// The thread count to use: `requested` if positive, else every core this
// process may run on (sched_getaffinity; hardware_concurrency where that is
// unavailable). Never less than 1.
int resolve_threads(int requested);

// The cores this process may run on (its CPU affinity mask), at least 1.
int available_cores();

// Sets LibTorch's intra-op thread count (and so OpenMP's, which LibTorch's
// kernels use) to resolve_threads(requested) and returns it. LibTorch's own
// default is not "all cores" everywhere (it was 1 on one 2-core machine), so
// every command calls this, 0 included.
int set_torch_threads(int requested);

// Calls body(i) for i in [0, count) on up to `threads` threads (items are
// handed out in order). The first exception thrown by a body is rethrown
// after all threads stop; bodies that must not stop the others catch their own.
void parallel_for(std::size_t count, int threads, const std::function<void(std::size_t)>& body);

}  // namespace airm
