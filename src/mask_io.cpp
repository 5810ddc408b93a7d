// Being written.
#include "airm/mask_io.hpp"
