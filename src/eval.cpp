// Being written.
#include "airm/eval.hpp"
