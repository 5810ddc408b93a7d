// Running independent items on a few threads.
#pragma once

#include <cstddef>
#include <functional>

namespace airm {

// The thread count to use: `requested` if positive, else the hardware's.
int resolve_threads(int requested);

// Calls body(i) for i in [0, count) on up to `threads` threads (items are
// handed out in order). The first exception thrown by a body is rethrown
// after all threads stop; bodies that must not stop the others catch their own.
void parallel_for(std::size_t count, int threads, const std::function<void(std::size_t)>& body);

}  // namespace airm
