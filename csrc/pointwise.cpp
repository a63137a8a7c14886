// placeholder: replaced by the pointwise kernels
#include "cpu.h"
