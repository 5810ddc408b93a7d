// Being written.
#include "airm/dataset.hpp"
