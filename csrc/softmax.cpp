// placeholder: replaced by the softmax kernels
#include "cpu.h"
