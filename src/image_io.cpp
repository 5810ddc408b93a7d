// Being written.
#include "airm/image_io.hpp"
