// Being written.
#include "airm/metrics.hpp"
