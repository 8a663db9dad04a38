/*
 * The small-batch matrix kernels of small_gemm_kernels.h, compiled once.
 *
 * setup.py builds this file into a static library that every extension module
 * links; the modules include the header with FASTNN_SMALL_GEMM_EXTERN and so
 * see only its declarations.  Compiled into each module that calls a product
 * (dense and train), the AVX-512 kernels took about five seconds of compiler
 * time in each.  Hidden visibility: a module linking them keeps its own copy
 * and exports none of it.
 */
#if defined(__GNUC__)
#define SG_API __attribute__((visibility("hidden")))
#else
#define SG_API
#endif

#include "small_gemm_kernels.h"
