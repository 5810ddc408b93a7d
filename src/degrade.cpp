// Being written.
#include "airm/degrade.hpp"
