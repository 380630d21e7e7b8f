// Compares a GEMM output against its reference word by word (exact: the same
// algorithm on the same inputs must give the same bits), and plants faults.

extern "C" __global__ void compare_words(const u32* __restrict__ out, const u32* __restrict__ ref, u64 n, u64* errs) {
    const u64 n4 = n / 4;
    const uint4* o4 = (const uint4*)out;
    const uint4* r4 = (const uint4*)ref;
    for (u64 i = kiln_tid(); i < n4; i += kiln_stride()) {
        uint4 a = o4[i];
        uint4 b = r4[i];
        if (a.x != b.x) kiln_record(errs, 4 * i + 0, b.x, a.x);
        if (a.y != b.y) kiln_record(errs, 4 * i + 1, b.y, a.y);
        if (a.z != b.z) kiln_record(errs, 4 * i + 2, b.z, a.z);
        if (a.w != b.w) kiln_record(errs, 4 * i + 3, b.w, a.w);
    }
    for (u64 i = 4 * n4 + kiln_tid(); i < n; i += kiln_stride()) {
        if (out[i] != ref[i]) kiln_record(errs, i, ref[i], out[i]);
    }
}

// Test-only fault injection: flips one bit of one word.
extern "C" __global__ void flip_bit(u32* p, u64 index, u32 bit) {
    if (kiln_tid() == 0) p[index] ^= (1u << bit);
}
