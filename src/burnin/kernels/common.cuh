// Shared helpers for kiln's burn-in kernels (compiled at run time with NVRTC).
// Error records: errs[0] counts every mismatch; the first KILN_RECORDED
// mismatches are kept as (index, expected, actual) triples after it.
#define KILN_RECORDED 16

typedef unsigned long long u64;
typedef unsigned int u32;

__device__ __forceinline__ void kiln_record(u64* errs, u64 index, u64 expected, u64 actual) {
    u64 slot = atomicAdd(errs, 1ULL);
    if (slot < KILN_RECORDED) {
        errs[1 + 3 * slot] = index;
        errs[2 + 3 * slot] = expected;
        errs[3 + 3 * slot] = actual;
    }
}

// splitmix64's finalizer: a cheap, well-mixed hash of a 64-bit value. The
// host side (Rust) computes the same function to check copied data.
__device__ __forceinline__ u64 kiln_mix64(u64 x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

// The 32-bit word at index i of a seeded pattern (same as burnin::pattern::word).
__device__ __forceinline__ u32 kiln_word(u64 i, u32 seed) {
    u64 x = kiln_mix64(i ^ ((u64)seed << 32));
    return (u32)(x >> 32) ^ (u32)x;
}

__device__ __forceinline__ u64 kiln_tid() { return (u64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ u64 kiln_stride() { return (u64)gridDim.x * blockDim.x; }
