// Being written.
#include "airm/synth.hpp"
