/* The row transforms of Winograd's F(4, 3) (Lavin & Gray 2016) for a grid convolution whose rows
   are tiles of four columns (see Tensors/Kernels+RowWinograd.swift): Bᵀ on six inputs per tile, Aᵀ on
   six transform points per tile, and their adjoints. Eight tiles at a time: the four columns of each
   tile are split into four vectors over tiles (a 4×8 transpose) and joined back the same way. Each
   row goes through a zero-padded line on the stack, so a partial block of tiles reads and writes
   nothing beyond the row; transform planes are read and written with masked loads and stores. */
#include "CKernels.h"

#include <stdlib.h>

#if defined(__x86_64__)
#include "TargetAttributes.h"

/* Lines hold up to this many tiles (4096 columns) plus a block of slack. */
enum { maximumTiles = 1024, lineLength = 4 * maximumTiles + 48 };

/* The arithmetic of the four transforms, once for both vector widths: P is the intrinsics' prefix
   (_mm256 or _mm512), every operand a vector over tiles.
   Input: v = Bᵀ·(d0 … d3, d4, d5), a tile's six inputs. */
#define INPUT_POINTS(P, d, d4, d5, v) do {                                                          \
        const __typeof__(d4) two = P##_set1_ps(2), four = P##_set1_ps(4), five = P##_set1_ps(5);     \
        v[0] = P##_add_ps(P##_fmsub_ps(four, d[0], P##_mul_ps(five, d[2])), d4);                   \
        v[1] = P##_fnmadd_ps(four, P##_add_ps(d[1], d[2]), P##_add_ps(d[3], d4));                  \
        v[2] = P##_fmadd_ps(four, P##_sub_ps(d[1], d[2]), P##_sub_ps(d4, d[3]));                   \
        v[3] = P##_fmadd_ps(two, P##_sub_ps(d[3], d[1]), P##_sub_ps(d4, d[2]));                    \
        v[4] = P##_fmadd_ps(two, P##_sub_ps(d[1], d[3]), P##_sub_ps(d4, d[2]));                    \
        v[5] = P##_add_ps(P##_fmsub_ps(four, d[1], P##_mul_ps(five, d[3])), d5);                   \
    } while (0)
/* Output: y = Aᵀ·m + bias (b), a tile's four columns. */
#define OUTPUT_COLUMNS(P, m, b, y) do {                                                              \
        const __typeof__(b) two = P##_set1_ps(2), four = P##_set1_ps(4), eight = P##_set1_ps(8);     \
        __typeof__(b) p = P##_add_ps(m[1], m[2]), q = P##_sub_ps(m[1], m[2]);                       \
        __typeof__(b) a = P##_add_ps(m[3], m[4]), c = P##_sub_ps(m[3], m[4]);                       \
        y[0] = P##_add_ps(P##_add_ps(m[0], b), P##_add_ps(p, a));                                  \
        y[1] = P##_fmadd_ps(two, c, P##_add_ps(q, b));                                             \
        y[2] = P##_fmadd_ps(four, a, P##_add_ps(p, b));                                            \
        y[3] = P##_fmadd_ps(eight, c, P##_add_ps(P##_add_ps(q, m[5]), b));                         \
    } while (0)
/* The output's adjoint: v = A·y for a tile's four column gradients (v[1] is their sum). */
#define GRADIENT_POINTS(P, y, v) do {                                                                \
        const __typeof__(y[0]) two = P##_set1_ps(2), four = P##_set1_ps(4), eight = P##_set1_ps(8);  \
        __typeof__(y[0]) even = P##_add_ps(y[0], y[2]), odd = P##_add_ps(y[1], y[3]);              \
        __typeof__(y[0]) evenFour = P##_fmadd_ps(four, y[2], y[0]);                                 \
        __typeof__(y[0]) oddEight = P##_fmadd_ps(eight, y[3], P##_mul_ps(two, y[1]));               \
        v[0] = y[0];                                                                               \
        v[1] = P##_add_ps(even, odd);                                                              \
        v[2] = P##_sub_ps(even, odd);                                                              \
        v[3] = P##_add_ps(evenFour, oddEight);                                                     \
        v[4] = P##_sub_ps(evenFour, oddEight);                                                     \
        v[5] = y[3];                                                                               \
    } while (0)
/* The input's adjoint: B·v, a tile's gradients for its inputs 0…3 (d) and 4, 5 (e0, e1). */
#define INPUT_GRADIENT(P, v, d, e0, e1) do {                                                         \
        const __typeof__(v[0]) two = P##_set1_ps(2), four = P##_set1_ps(4), five = P##_set1_ps(5);   \
        __typeof__(v[0]) a = P##_add_ps(v[1], v[2]), b = P##_add_ps(v[3], v[4]);                    \
        d[0] = P##_mul_ps(four, v[0]);                                                             \
        d[1] = P##_fmadd_ps(four, P##_add_ps(P##_sub_ps(v[2], v[1]), v[5]), P##_mul_ps(two, P##_sub_ps(v[4], v[3]))); \
        d[2] = P##_sub_ps(P##_fnmadd_ps(five, v[0], P##_fnmadd_ps(four, a, P##_setzero_ps())), b); \
        d[3] = P##_fmadd_ps(two, P##_sub_ps(v[3], v[4]), P##_fnmadd_ps(five, v[5], P##_sub_ps(v[1], v[2]))); \
        e0 = P##_add_ps(P##_add_ps(v[0], a), b);                                                   \
        e1 = v[5];                                                                                 \
    } while (0)

AVX2 static __m256i tileMask(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* line[0 … padded) = row[0 … columns), its ReLU with `relu`, then zeros; reads nothing past the row
   (masked loads) and writes whole vectors (`padded` a multiple of 8). */
AVX2 static void loadLine(const float *row, long columns, int relu, float *line, long padded) {
    const __m256 zero = _mm256_setzero_ps();
    for (long c = 0; c < padded; c += 8) {
        __m256 v = c + 8 <= columns ? _mm256_loadu_ps(row + c)
                 : c < columns     ? _mm256_maskload_ps(row + c, tileMask((int)(columns - c))) : zero;
        _mm256_storeu_ps(line + c, relu ? _mm256_max_ps(zero, v) : v);  /* NaN stays NaN */
    }
}

/* d[j][l] = source[4l + j] for tiles l < 8 and columns j < 4 (32 floats readable). */
AVX2 static void split(const float *source, __m256 d[4]) {
    __m256 a0 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(source)), _mm_loadu_ps(source + 16), 1);
    __m256 a1 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(source + 4)), _mm_loadu_ps(source + 20), 1);
    __m256 a2 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(source + 8)), _mm_loadu_ps(source + 24), 1);
    __m256 a3 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(source + 12)), _mm_loadu_ps(source + 28), 1);
    __m256 l01 = _mm256_unpacklo_ps(a0, a1), l23 = _mm256_unpacklo_ps(a2, a3);
    __m256 h01 = _mm256_unpackhi_ps(a0, a1), h23 = _mm256_unpackhi_ps(a2, a3);
    d[0] = _mm256_shuffle_ps(l01, l23, 0x44);
    d[1] = _mm256_shuffle_ps(l01, l23, 0xEE);
    d[2] = _mm256_shuffle_ps(h01, h23, 0x44);
    d[3] = _mm256_shuffle_ps(h01, h23, 0xEE);
}

/* The inverse of `split`: target[4l + j] = d[j][l] (32 floats). */
AVX2 static void join(const __m256 d[4], float *target) {
    __m256 l01 = _mm256_unpacklo_ps(d[0], d[1]), l23 = _mm256_unpacklo_ps(d[2], d[3]);
    __m256 h01 = _mm256_unpackhi_ps(d[0], d[1]), h23 = _mm256_unpackhi_ps(d[2], d[3]);
    __m256 t04 = _mm256_shuffle_ps(l01, l23, 0x44), t15 = _mm256_shuffle_ps(l01, l23, 0xEE);
    __m256 t26 = _mm256_shuffle_ps(h01, h23, 0x44), t37 = _mm256_shuffle_ps(h01, h23, 0xEE);
    _mm256_storeu_ps(target, _mm256_permute2f128_ps(t04, t15, 0x20));
    _mm256_storeu_ps(target + 8, _mm256_permute2f128_ps(t26, t37, 0x20));
    _mm256_storeu_ps(target + 16, _mm256_permute2f128_ps(t04, t15, 0x31));
    _mm256_storeu_ps(target + 24, _mm256_permute2f128_ps(t26, t37, 0x31));
}

AVX2 static void loadPoints(const float *points, long plane, int count, __m256 m[6]) {
    __m256i mask = tileMask(count);
    for (int xi = 0; xi < 6; xi++) m[xi] = count >= 8 ? _mm256_loadu_ps(points + xi * plane) : _mm256_maskload_ps(points + xi * plane, mask);
}

/* Whole vectors, also past a partial block's last tile (masked stores are slow on AMD). */
AVX2 static void storePoints(const __m256 v[6], float *points, long plane) {
    for (int xi = 0; xi < 6; xi++) _mm256_storeu_ps(points + xi * plane, v[xi]);
}

AVX2 int seriatim_winograd_input(const float *row, int tiles, int relu, float *points, long plane, long prefetch) {
    if (tiles < 1 || tiles > maximumTiles) return 0;
    float line[lineLength];
    int columns = 4 * tiles + 2, padded = 32 * ((tiles + 7) / 8) + 8;
    if (prefetch) for (int c = 0; c < columns; c += 16) __builtin_prefetch(row + prefetch + c);
    loadLine(row, columns, relu, line, padded);
    for (int k = 0; k < tiles; k += 8) {
        __m256 d[4], e[4], v[6];
        split(line + 4 * k, d);      /* inputs 0…3 of each tile */
        split(line + 4 * k + 4, e);  /* inputs 4, 5: the next tile's 0, 1 */
        INPUT_POINTS(_mm256, d, e[0], e[1], v);
        storePoints(v, points + k, plane);
    }
    return 1;
}

/* AVX-512, two image rows at once where a row is 4…7 tiles (up to 30 columns: two 16-float loads or
   stores per row). A row pair's points are 2·tiles in a row in each plane (row A's tiles, then row B's),
   one vector per point: row A's tiles in lanes 0 … tiles − 1, row B's in tiles … 2·tiles − 1. Columns are
   split into tiles and joined back by `vpermt2ps`. */
int seriatim_winograd_row_pairs(int tiles) {
    return tiles >= 4 && tiles <= 7 && seriatim_tap_panel_width() == 32;
}

AVX512 static void loadRow(const float *row, int columns, int relu, __m512 *lo, __m512 *hi) {
    *lo = _mm512_maskz_loadu_ps(firstLanes(columns), row);
    *hi = _mm512_maskz_loadu_ps(firstLanes(columns - 16), row + 16);
    if (relu) { *lo = _mm512_max_ps(_mm512_setzero_ps(), *lo); *hi = _mm512_max_ps(_mm512_setzero_ps(), *hi); }
}

/* d[j] = column 4l + j + first of row A in lanes l < tiles, of row B in lanes tiles … 2·tiles − 1 (j < count). */
AVX512 static void splitPair(const float *row, long stride, int tiles, int columns, int relu, int count, __m512 d[]) {
    __m512 aLo, aHi, bLo, bHi;
    loadRow(row, columns, relu, &aLo, &aHi);
    loadRow(row + stride, columns, relu, &bLo, &bHi);
    const __m512i fours = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60);
    const __m512i backB = _mm512_set1_epi32(4 * tiles);  /* row B's lanes start at tile 0 again */
    const __mmask16 laneB = (__mmask16)(firstLanes(2 * tiles) & ~firstLanes(tiles));
    for (int j = 0; j < count; j++) {
        __m512i index = _mm512_add_epi32(fours, _mm512_set1_epi32(j));  /* taken mod 32: lanes past a row are unused */
        d[j] = _mm512_mask_mov_ps(_mm512_permutex2var_ps(aLo, index, aHi), laneB,
                                  _mm512_permutex2var_ps(bLo, _mm512_sub_epi32(index, backB), bHi));
    }
}

/* The inverse of `splitPair` for one row: columns 0…15 in *lo and 16…31 in *hi, column 4l + j = z[j][l + offset]
   (offset 0 for row A, tiles for row B). */
AVX512 static void joinRow(const __m512 z[4], int offset, __m512 *lo, __m512 *hi) {
    /* p01[2l + j] = z[j][l + offset] for j = 0, 1; p23 likewise for j = 2, 3 (l < 8, so lanes ≤ 14) */
    __m512i pairIndex = _mm512_add_epi32(_mm512_set1_epi32(offset),
                                         _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
    __m512 p01 = _mm512_permutex2var_ps(z[0], pairIndex, z[1]), p23 = _mm512_permutex2var_ps(z[2], pairIndex, z[3]);
    /* column 4l + j: p01[2l + j] for j < 2, p23[2l + j − 2] otherwise */
    __m512i columnIndex = _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
    *lo = _mm512_permutex2var_ps(p01, columnIndex, p23);
    *hi = _mm512_permutex2var_ps(p01, _mm512_add_epi32(columnIndex, _mm512_set1_epi32(8)), p23);
}

/* row[0 … columns) (16 ≤ columns ≤ 32) = lo, hi, zero where gate ≤ 0 (gate not NULL), plus residual (not NULL);
   reads and writes nothing past the row's columns (the next row may belong to another worker). */
AVX512 static void storeRow(__m512 lo, __m512 hi, int columns, const float *gate, const float *residual, float *row) {
    const __m512 zero = _mm512_setzero_ps();
    __mmask16 rest = firstLanes(columns - 16);
    if (gate) {  /* NaN stays NaN where the gate is open */
        lo = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_loadu_ps(gate), zero, _CMP_GT_OQ), lo);
        hi = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(rest, gate + 16), zero, _CMP_GT_OQ), hi);
    }
    if (residual) {
        lo = _mm512_add_ps(lo, _mm512_loadu_ps(residual));
        hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(rest, residual + 16));
    }
    _mm512_storeu_ps(row, lo);
    _mm512_mask_storeu_ps(row + 16, rest, hi);
}

/* Whole-vector stores: up to 8 floats past the pair's 2·tiles points (the next row's, or the plane's padding). */
AVX512 static void storePointPair(const __m512 v[6], float *points, long plane) {
    for (int xi = 0; xi < 6; xi++) _mm512_storeu_ps(points + xi * plane, v[xi]);
}

AVX512 static void loadPointPair(const float *points, long plane, int tiles, __m512 m[6]) {
    __mmask16 both = firstLanes(2 * tiles);
    for (int xi = 0; xi < 6; xi++) m[xi] = _mm512_maskz_loadu_ps(both, points + xi * plane);
}

AVX512 int seriatim_winograd_input_pair(const float *row, long stride, int tiles, int relu, float *points,
                                        long plane, long prefetch) {
    if (!seriatim_winograd_row_pairs(tiles)) return 0;
    int columns = 4 * tiles + 2;
    if (prefetch)
        for (int c = 0; c < columns; c += 16) { __builtin_prefetch(row + prefetch + c); __builtin_prefetch(row + stride + prefetch + c); }
    __m512 d[6];
    splitPair(row, stride, tiles, columns, relu, 6, d);  /* inputs 4, 5: the next tile's 0, 1 */
    __m512 v[6];
    INPUT_POINTS(_mm512, d, d[4], d[5], v);
    storePointPair(v, points, plane);
    return 1;
}

AVX512 int seriatim_winograd_output_pair(const float *points, long plane, int tiles, float bias, const float *residual,
                                         float *row, long stride) {
    if (!seriatim_winograd_row_pairs(tiles)) return 0;
    const __m512 b = _mm512_set1_ps(bias);
    __m512 m[6], y[4], lo, hi;
    loadPointPair(points, plane, tiles, m);
    OUTPUT_COLUMNS(_mm512, m, b, y);
    joinRow(y, 0, &lo, &hi);
    storeRow(lo, hi, 4 * tiles, NULL, residual, row);
    joinRow(y, tiles, &lo, &hi);
    storeRow(lo, hi, 4 * tiles, NULL, residual ? residual + stride : NULL, row + stride);
    return 1;
}

AVX512 int seriatim_winograd_gradient_pair(const float *row, long stride, int tiles, float *points, long plane,
                                           float *sumA, float *sumB) {
    if (!seriatim_winograd_row_pairs(tiles)) return 0;
    __m512 y[4], v[6];
    splitPair(row, stride, tiles, 4 * tiles, 0, 4, y);
    GRADIENT_POINTS(_mm512, y, v);
    storePointPair(v, points, plane);
    if (sumA) *sumA += _mm512_mask_reduce_add_ps(firstLanes(tiles), v[1]);
    if (sumB) *sumB += _mm512_mask_reduce_add_ps((__mmask16)(firstLanes(2 * tiles) & ~firstLanes(tiles)), v[1]);
    return 1;
}

AVX512 int seriatim_winograd_input_gradient_pair(const float *points, long plane, int tiles, const float *gate,
                                                 const float *residual, float *row, long stride, long prefetch) {
    if (!seriatim_winograd_row_pairs(tiles)) return 0;
    if (prefetch && gate)
        for (int c = 0; c < 4 * tiles; c += 16) { __builtin_prefetch(gate + prefetch + c); __builtin_prefetch(gate + stride + prefetch + c); }
    __m512 v[6], d[4], e0, e1, column[4], lo, hi;
    loadPointPair(points, plane, tiles, v);
    /* Tile k's inputs 0…3 are columns 4k − 1 … 4k + 2 (d), its inputs 4, 5 columns 4k + 3, 4k + 4 (e0, e1). */
    INPUT_GRADIENT(_mm512, v, d, e0, e1);
    /* Column 4k: d1[k] + e1[k − 1]; 4k + 1: d2[k]; 4k + 2: d3[k]; 4k + 3: e0[k] + d0[k + 1]. A row's first
       tile has no k − 1 and its last no k + 1: those lanes take zero, so the rows stay apart. */
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), one = _mm512_set1_epi32(1);
    __mmask16 both = firstLanes(2 * tiles);
    __mmask16 hasPrevious = (__mmask16)(both & ~(1u | (1u << tiles))), hasNext = (__mmask16)(both & ~((1u << (tiles - 1)) | (1u << (2 * tiles - 1))));
    column[0] = _mm512_add_ps(d[1], _mm512_maskz_permutexvar_ps(hasPrevious, _mm512_sub_epi32(lane, one), e1));
    column[1] = d[2];
    column[2] = d[3];
    column[3] = _mm512_add_ps(e0, _mm512_maskz_permutexvar_ps(hasNext, _mm512_add_epi32(lane, one), d[0]));
    joinRow(column, 0, &lo, &hi);
    storeRow(lo, hi, 4 * tiles, gate, residual, row);
    joinRow(column, tiles, &lo, &hi);
    storeRow(lo, hi, 4 * tiles, gate ? gate + stride : NULL, residual ? residual + stride : NULL, row + stride);
    return 1;
}

AVX2 int seriatim_winograd_output(const float *points, long plane, int tiles, float bias, const float *residual, float *row) {
    if (tiles < 1 || tiles > maximumTiles) return 0;
    float line[lineLength];
    const __m256 b = _mm256_set1_ps(bias);
    for (int k = 0; k < tiles; k += 8) {
        __m256 m[6], y[4];
        loadPoints(points + k, plane, tiles - k, m);
        OUTPUT_COLUMNS(_mm256, m, b, y);
        join(y, line + 4 * k);
    }
    /* Whole vectors of eight, then one of four (the row is a multiple of four long). */
    int columns = 4 * tiles, c = 0;
    for (; c + 8 <= columns; c += 8) {
        __m256 v = _mm256_loadu_ps(line + c);
        _mm256_storeu_ps(row + c, residual ? _mm256_add_ps(v, _mm256_loadu_ps(residual + c)) : v);
    }
    if (c < columns) {
        __m128 v = _mm_loadu_ps(line + c);
        _mm_storeu_ps(row + c, residual ? _mm_add_ps(v, _mm_loadu_ps(residual + c)) : v);
    }
    return 1;
}

AVX2 int seriatim_winograd_gradient(const float *row, int tiles, float *points, long plane, float *sum) {
    if (tiles < 1 || tiles > maximumTiles) return 0;
    float line[lineLength];
    int columns = 4 * tiles, padded = 32 * ((tiles + 7) / 8);
    loadLine(row, columns, 0, line, padded);
    __m256 total = _mm256_setzero_ps();
    for (int k = 0; k < tiles; k += 8) {
        __m256 y[4], v[6];
        split(line + 4 * k, y);
        GRADIENT_POINTS(_mm256, y, v);
        total = _mm256_add_ps(total, v[1]);
        storePoints(v, points + k, plane);
    }
    if (sum) {
        __m128 half = _mm_add_ps(_mm256_castps256_ps128(total), _mm256_extractf128_ps(total, 1));
        half = _mm_add_ps(half, _mm_movehl_ps(half, half));
        *sum += _mm_cvtss_f32(_mm_add_ss(half, _mm_movehdup_ps(half)));
    }
    return 1;
}

AVX2 int seriatim_winograd_input_gradient(const float *points, long plane, int tiles, const float *gate,
                                          const float *residual, float *row, long prefetch) {
    if (tiles < 1 || tiles > maximumTiles) return 0;
    if (prefetch && gate) for (int c = 0; c < 4 * tiles; c += 16) __builtin_prefetch(gate + prefetch + c);
    /* low[4k + j]: column 4k − 1 + j from tile k's inputs 0…3; high[4k + 4 + j]: column 4k + 3 + j
       from its inputs 4, 5 (the next tile's first two columns). */
    float low[lineLength], high[lineLength];
    int padded = 32 * ((tiles + 7) / 8) + 8;
    for (int c = 0; c < 4; c++) high[c] = 0;
    const __m256 zero = _mm256_setzero_ps();
    for (int k = 0; k < tiles; k += 8) {
        __m256 v[6], d[4], e[4];
        loadPoints(points + k, plane, tiles - k, v);
        INPUT_GRADIENT(_mm256, v, d, e[0], e[1]);
        e[2] = zero;
        e[3] = zero;
        join(d, low + 4 * k);
        join(e, high + 4 * k + 4);
    }
    for (int c = 32 * ((tiles + 7) / 8); c < padded; c++) low[c] = 0;  /* column 4·tiles − 1 has no tile k = tiles */
    /* row[c] = low[c + 1] + high[c + 1], zero where gate[c] ≤ 0, plus residual[c]: eights, then one four. */
    int columns = 4 * tiles, c = 0;
    for (; c + 8 <= columns; c += 8) {
        __m256 value = _mm256_add_ps(_mm256_loadu_ps(low + c + 1), _mm256_loadu_ps(high + c + 1));
        if (gate) value = _mm256_and_ps(value, _mm256_cmp_ps(_mm256_loadu_ps(gate + c), zero, _CMP_GT_OQ));
        if (residual) value = _mm256_add_ps(value, _mm256_loadu_ps(residual + c));
        _mm256_storeu_ps(row + c, value);
    }
    if (c < columns) {
        __m128 value = _mm_add_ps(_mm_loadu_ps(low + c + 1), _mm_loadu_ps(high + c + 1));
        if (gate) value = _mm_and_ps(value, _mm_cmpgt_ps(_mm_loadu_ps(gate + c), _mm_setzero_ps()));
        if (residual) value = _mm_add_ps(value, _mm_loadu_ps(residual + c));
        _mm_storeu_ps(row + c, value);
    }
    return 1;
}
#else
/* Unreachable: the row transforms are used only with the AVX2 tap products, which need x86-64. */
int seriatim_winograd_row_pairs(int tiles) { (void)tiles; return 0; }
int seriatim_winograd_input_pair(const float *row, long stride, int tiles, int relu, float *points, long plane, long prefetch) {
    (void)row; (void)stride; (void)tiles; (void)relu; (void)points; (void)plane; (void)prefetch; return 0;
}
int seriatim_winograd_output_pair(const float *points, long plane, int tiles, float bias, const float *residual,
                                  float *row, long stride) {
    (void)points; (void)plane; (void)tiles; (void)bias; (void)residual; (void)row; (void)stride; return 0;
}
int seriatim_winograd_gradient_pair(const float *row, long stride, int tiles, float *points, long plane,
                                    float *sumA, float *sumB) {
    (void)row; (void)stride; (void)tiles; (void)points; (void)plane; (void)sumA; (void)sumB; return 0;
}
int seriatim_winograd_input_gradient_pair(const float *points, long plane, int tiles, const float *gate,
                                          const float *residual, float *row, long stride, long prefetch) {
    (void)points; (void)plane; (void)tiles; (void)gate; (void)residual; (void)row; (void)stride; (void)prefetch; return 0;
}
int seriatim_winograd_input(const float *row, int tiles, int relu, float *points, long plane, long prefetch) {
    (void)row; (void)tiles; (void)relu; (void)points; (void)plane; (void)prefetch; return 0;
}
int seriatim_winograd_output(const float *points, long plane, int tiles, float bias, const float *residual, float *row) {
    (void)points; (void)plane; (void)tiles; (void)bias; (void)residual; (void)row; return 0;
}
int seriatim_winograd_gradient(const float *row, int tiles, float *points, long plane, float *sum) {
    (void)row; (void)tiles; (void)points; (void)plane; (void)sum; return 0;
}
int seriatim_winograd_input_gradient(const float *points, long plane, int tiles, const float *gate,
                                     const float *residual, float *row, long prefetch) {
    (void)points; (void)plane; (void)tiles; (void)gate; (void)residual; (void)row; (void)prefetch; return 0;
}
#endif
