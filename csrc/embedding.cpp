// placeholder: being written
#include "cpu.h"
