/* Shared by the kernels' .c files (not part of the module's interface): the per-function instruction
   sets they are compiled for, and the lane masks of the AVX-512 ones. */
#ifndef SERIATIM_TARGET_ATTRIBUTES_H
#define SERIATIM_TARGET_ATTRIBUTES_H
#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx2,fma")))

/* The first `count` of sixteen lanes (none for count ≤ 0, all for count ≥ 16): a row's first sixteen
   columns take firstLanes(count), the next sixteen firstLanes(count − 16). */
AVX512 static inline __mmask16 firstLanes(long count) {
    return count <= 0 ? 0 : count >= 16 ? 0xFFFF : (__mmask16)((1u << count) - 1);
}
#endif
#endif
