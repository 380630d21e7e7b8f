// Device-memory bandwidth and data checks: a 16-byte-wide copy, a seeded fill
// and a check of that fill.

extern "C" __global__ void copy_u4(const uint4* __restrict__ src, uint4* __restrict__ dst, u64 n) {
    for (u64 i = kiln_tid(); i < n; i += kiln_stride()) dst[i] = src[i];
}

extern "C" __global__ void fill_words(u32* p, u64 n, u32 seed) {
    for (u64 i = kiln_tid(); i < n; i += kiln_stride()) p[i] = kiln_word(i, seed);
}

extern "C" __global__ void check_words(const u32* __restrict__ p, u64 n, u32 seed, u64* errs) {
    for (u64 i = kiln_tid(); i < n; i += kiln_stride()) {
        u32 want = kiln_word(i, seed);
        u32 got = p[i];
        if (got != want) kiln_record(errs, i, want, got);
    }
}
