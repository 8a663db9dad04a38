# Which matrix products of a dense layer run on fastnn's own small-GEMM
# kernels (src/small_gemm_kernels.h) and which on BLAS, and on how many
# threads: plain integers that fastnn._calibration sets from measurements
# made on the running machine, before any training.  blas.pxd reads them on
# every product; they change only between fits, never during a step.

cdef enum:
    # The three products of a dense layer, by their operands (row-major):
    PRODUCT_NN = 0      # forward X·W: the batch is C's rows
    PRODUCT_TN = 1      # weight gradient Xᵀ·dZ: the batch is the inner size
    PRODUCT_NT = 2      # input gradient dZ·Wᵀ: the batch is C's rows
    N_PRODUCTS = 3


cdef struct GemmChoice:
    # [0: float32, 1: float64][product]: the own kernels for batches of at
    # most this many rows, BLAS above (0: BLAS always) ...
    int own_max_rows[2][N_PRODUCTS]
    # ... and, for the input gradient, only where rows of W (the dot
    # products' length) have at least this many elements ...
    int own_min_length[2]
    # ... where W has at most this many elements: the kernels stream W
    # from memory once per block of rows, so the crossover found on the
    # calibrated layer sizes says nothing about larger ones ...
    long long own_max_weights[2]
    # ... and for a larger W, up to own_large_max_weights elements, batches
    # of own_large_min_rows to own_large_max_rows rows (max 0: BLAS always),
    # the crossovers found on a large layer
    int own_large_min_rows[2][N_PRODUCTS]
    int own_large_max_rows[2][N_PRODUCTS]
    long long own_large_max_weights[2]
    # own-kernel products of at least this many multiply-adds are split
    # over `threads` threads ...
    double split_min_work[2][N_PRODUCTS]
    # ... and, whatever the calibration said, those of at least this many
    # (INFINITY: none): an epoch that times the split itself sets it
    double split_floor
    int threads


cdef GemmChoice choice
