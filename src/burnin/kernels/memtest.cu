// Device-memory test patterns over 64-bit words: walking ones, walking zeros,
// own address, seeded random, and moving inversions (check a pattern and write
// its complement, ascending then descending).

#define KILN_WALK_ONES 0
#define KILN_WALK_ZEROS 1
#define KILN_OWN_ADDRESS 2
#define KILN_RANDOM 3

__device__ __forceinline__ u64 kiln_pattern(u32 kind, const u64* base, u64 i, u64 seed) {
    switch (kind) {
    case KILN_WALK_ONES:
        // Neighbouring words hold neighbouring bit positions, so one pass
        // sets every bit position somewhere and the next pass shifts them.
        return 1ULL << ((i + seed) & 63);
    case KILN_WALK_ZEROS:
        return ~(1ULL << ((i + seed) & 63));
    case KILN_OWN_ADDRESS:
        return (u64)(base + i);
    default:
        return kiln_mix64(i ^ (seed * 0x9e3779b97f4a7c15ULL));
    }
}

extern "C" __global__ void mt_fill(u64* base, u64 n, u32 kind, u64 seed) {
    for (u64 i = kiln_tid(); i < n; i += kiln_stride()) base[i] = kiln_pattern(kind, base, i, seed);
}

// Checks every word against the pattern (complemented when `inverted`).
extern "C" __global__ void mt_verify(const u64* base, u64 n, u32 kind, u64 seed, u32 inverted, u64* errs) {
    const u64 flip = inverted ? ~0ULL : 0ULL;
    for (u64 i = kiln_tid(); i < n; i += kiln_stride()) {
        u64 want = kiln_pattern(kind, base, i, seed) ^ flip;
        u64 got = base[i];
        if (got != want) kiln_record(errs, i, want, got);
    }
}

// One moving-inversions sweep: check each word holds the pattern (or its
// complement when `inverted`), then write the opposite. `descending` walks
// each thread's words from the top of the buffer down.
extern "C" __global__ void mt_invert(u64* base, u64 n, u32 kind, u64 seed, u32 inverted, u32 descending, u64* errs) {
    const u64 flip = inverted ? ~0ULL : 0ULL;
    for (u64 j = kiln_tid(); j < n; j += kiln_stride()) {
        u64 i = descending ? (n - 1 - j) : j;
        u64 want = kiln_pattern(kind, base, i, seed) ^ flip;
        u64 got = base[i];
        if (got != want) kiln_record(errs, i, want, got);
        base[i] = ~want;
    }
}

// Test-only fault injection: overwrites one word.
extern "C" __global__ void mt_corrupt(u64* base, u64 index, u64 value) {
    if (kiln_tid() == 0) base[index] = value;
}
