#include "airm/report.hpp"
