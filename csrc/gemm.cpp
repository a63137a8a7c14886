// placeholder: replaced by the gemm kernels
#include "cpu.h"
