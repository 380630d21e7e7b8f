// kiln's own GEMM, used only when cuBLASLt is absent: a plain shared-memory
// tiled product, column-major like BLAS (C[i + j*m] = sum_p A[i + p*m] * B[p + j*k]).
// It is slow next to cuBLASLt; it exists so a node without cuBLAS still burns in.

#define KILN_TILE 16

__device__ __forceinline__ float kiln_bf16(unsigned short x) { return __uint_as_float(((u32)x) << 16); }

#define KILN_GEMM(NAME, TIN, TACC, LOAD)                                                          \
extern "C" __global__ void NAME(int m, int n, int k, const TIN* A, const TIN* B, TACC* C) {      \
    __shared__ TACC As[KILN_TILE][KILN_TILE + 1];                                                 \
    __shared__ TACC Bs[KILN_TILE][KILN_TILE + 1];                                                 \
    int row = blockIdx.x * KILN_TILE + threadIdx.x;                                               \
    int col = blockIdx.y * KILN_TILE + threadIdx.y;                                               \
    TACC acc = 0;                                                                                 \
    for (int t = 0; t < k; t += KILN_TILE) {                                                      \
        int ak = t + threadIdx.y;                                                                 \
        int bk = t + threadIdx.x;                                                                 \
        As[threadIdx.x][threadIdx.y] = (row < m && ak < k) ? LOAD(A[row + (u64)ak * m]) : (TACC)0; \
        Bs[threadIdx.x][threadIdx.y] = (bk < k && col < n) ? LOAD(B[bk + (u64)col * k]) : (TACC)0; \
        __syncthreads();                                                                          \
        for (int p = 0; p < KILN_TILE; ++p) acc += As[threadIdx.x][p] * Bs[p][threadIdx.y];       \
        __syncthreads();                                                                          \
    }                                                                                             \
    if (row < m && col < n) C[row + (u64)col * m] = acc;                                          \
}

#define KILN_ID(x) (x)
KILN_GEMM(gemm_bf16, unsigned short, float, kiln_bf16)
KILN_GEMM(gemm_fp32, float, float, KILN_ID)
KILN_GEMM(gemm_fp64, double, double, KILN_ID)
