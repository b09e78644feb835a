/* A sum of shifted matrix products, the inner loop of a masked convolution on a padded grid:
   output[o, j] += Σ_t Σ_i W_t[o, i] · input[i, j + shift_t]. The BLAS does this as one GEMM per tap,
   packing the input again for each and reloading the output each time; here every tap and input
   channel is one contraction of length taps·inputs: 16 columns of every shifted input row are
   copied once into a contiguous panel, and each 6×16 block of the output stays in twelve AVX
   registers across the whole contraction. */
#include "CKernels.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum { maximumDepth = SERIATIM_TAP_MAXIMUM_DEPTH };

/* Output rows per register block: six (twelve accumulators) while that leaves a multiple of two
   that is not 2, then four; any multiple of 4 splits this way (64 = 10·6 + 4). */
static int blockRows(int remaining) { return remaining == 4 || remaining == 8 ? 4 : 6; }

void seriatim_pack_tap_weights(int outputs, int inputs, int taps, const float *weights,
                               long tapStride, long outputStride, long inputStride, float *packed) {
    /* Per block of rows: depth k = t·inputs + i, then the block's rows' weights. */
    for (int first = 0, rows; first < outputs; first += rows) {
        rows = blockRows(outputs - first);
        for (int t = 0; t < taps; t++)
            for (int i = 0; i < inputs; i++)
                for (int r = 0; r < rows; r++)
                    *packed++ = weights[t * tapStride + (long)(first + r) * outputStride + i * inputStride];
    }
}

#if defined(__x86_64__)
#include "TargetAttributes.h"

int seriatim_tap_convolution_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* R outputs × 16 columns: out[r·ldo + j] += Σ_k w[R·k + r] · panel[16k + j]. With R = 6, twelve
   accumulators, two input vectors and a weight fill fifteen of the sixteen registers. */
#define BLOCK(R)                                                                                              \
    AVX2 static void block##R##x16(long depth, const float *w, const float *panel, float *out, long ldo,      \
                                   int accumulate) {                                                         \
        __m256 c[R][2];                                                                                       \
        for (int r = 0; r < R; r++) {                                                                         \
            c[r][0] = accumulate ? _mm256_loadu_ps(out + r * ldo) : _mm256_setzero_ps();                      \
            c[r][1] = accumulate ? _mm256_loadu_ps(out + r * ldo + 8) : _mm256_setzero_ps();                  \
        }                                                                                                     \
        for (long k = 0; k < depth; k++, w += R, panel += 16) {                                               \
            __m256 x0 = _mm256_load_ps(panel), x1 = _mm256_load_ps(panel + 8);                                \
            for (int r = 0; r < R; r++) {                                                                     \
                __m256 v = _mm256_broadcast_ss(w + r);                                                        \
                c[r][0] = _mm256_fmadd_ps(v, x0, c[r][0]);                                                    \
                c[r][1] = _mm256_fmadd_ps(v, x1, c[r][1]);                                                    \
            }                                                                                                 \
        }                                                                                                     \
        for (int r = 0; r < R; r++) {                                                                         \
            _mm256_storeu_ps(out + r * ldo, c[r][0]);                                                         \
            _mm256_storeu_ps(out + r * ldo + 8, c[r][1]);                                                     \
        }                                                                                                     \
    }
BLOCK(6)
BLOCK(4)

AVX2 static void block(int rows, long depth, const float *w, const float *panel, float *out, long ldo, int accumulate) {
    if (rows == 6) block6x16(depth, w, panel, out, ldo, accumulate); else block4x16(depth, w, panel, out, ldo, accumulate);
}

/* The same for only the first `count` (< 16) columns, through a scratch block so that nothing past them is touched. */
AVX2 static void partialBlock(int rows, long depth, const float *w, const float *panel, float *out, long ldo, int accumulate,
                              long count) {
    float edge[6 * 16] = { 0 };
    if (accumulate) for (int r = 0; r < rows; r++) for (long c = 0; c < count; c++) edge[r * 16 + c] = out[r * ldo + c];
    block(rows, depth, w, panel, edge, 16, 1);
    for (int r = 0; r < rows; r++) for (long c = 0; c < count; c++) out[r * ldo + c] = edge[r * 16 + c];
}

/* Copies columns j…j+count−1 (count ≤ 16) of every shifted input row into a contiguous panel of 16
   per row, zeros after `count`: the block then reads one sequential stream from L1 instead of one
   row per page (the input rows are kilobytes apart and the page walks cost more than the copy). */
AVX2 static void packPanel(long depth, const float *in, const long *offsets, long count, float *panel) {
    if (count == 16) {
        for (long k = 0; k < depth; k++) {
            const float *p = in + offsets[k];
            _mm256_store_ps(panel + 16 * k, _mm256_loadu_ps(p));
            _mm256_store_ps(panel + 16 * k + 8, _mm256_loadu_ps(p + 8));
        }
    } else {
        for (long k = 0; k < depth; k++)
            for (long j = 0; j < 16; j++) panel[16 * k + j] = j < count ? in[offsets[k] + j] : 0;
    }
}

/* AVX-512: the same blocks over 32 columns, each row's two halves in two of the 32 registers (twelve
   accumulators for six rows, as above, but each multiply-add twice as wide), on panels of 32 columns.
   Columns past `count` are masked off in the loads and stores of the output, so a partial block needs
   no scratch. */
#define WIDE_BLOCK(R)                                                                                         \
    AVX512 static void wide##R##x32(long depth, const float *w, const float *panel, float *out, long ldo,     \
                                    int accumulate, long count) {                                             \
        __mmask16 m0 = firstLanes(count), m1 = firstLanes(count - 16);                                        \
        __m512 c[R][2];                                                                                       \
        for (int r = 0; r < R; r++) {                                                                         \
            c[r][0] = accumulate ? _mm512_maskz_loadu_ps(m0, out + r * ldo) : _mm512_setzero_ps();            \
            c[r][1] = accumulate ? _mm512_maskz_loadu_ps(m1, out + r * ldo + 16) : _mm512_setzero_ps();       \
        }                                                                                                     \
        for (long k = 0; k < depth; k++, w += R, panel += 32) {                                               \
            __m512 x0 = _mm512_load_ps(panel), x1 = _mm512_load_ps(panel + 16);                               \
            for (int r = 0; r < R; r++) {                                                                     \
                __m512 v = _mm512_set1_ps(w[r]);                                                              \
                c[r][0] = _mm512_fmadd_ps(v, x0, c[r][0]);                                                    \
                c[r][1] = _mm512_fmadd_ps(v, x1, c[r][1]);                                                    \
            }                                                                                                 \
        }                                                                                                     \
        for (int r = 0; r < R; r++) {                                                                         \
            _mm512_mask_storeu_ps(out + r * ldo, m0, c[r][0]);                                                \
            _mm512_mask_storeu_ps(out + r * ldo + 16, m1, c[r][1]);                                           \
        }                                                                                                     \
    }
WIDE_BLOCK(6)
WIDE_BLOCK(4)

/* Columns j…j+count−1 (count ≤ 32) of every shifted input row into a panel of 32 per row, zeros after. */
AVX512 static void packWidePanel(long depth, const float *in, const long *offsets, long count, float *panel) {
    __mmask16 m0 = firstLanes(count), m1 = firstLanes(count - 16);
    for (long k = 0; k < depth; k++) {
        const float *p = in + offsets[k];
        _mm512_store_ps(panel + 32 * k, _mm512_maskz_loadu_ps(m0, p));
        _mm512_store_ps(panel + 32 * k + 16, _mm512_maskz_loadu_ps(m1, p + 16));
    }
}

int seriatim_tap_panel_width(void) {
    static _Atomic int width = -1; /* decided once: every product asks */
    if (width < 0) {
        const char *kernels = getenv("SERIATIM_KERNELS");
        int avx2Only = kernels && strcmp(kernels, "avx2") == 0;
        width = !seriatim_tap_convolution_available() ? 0 : !avx2Only && __builtin_cpu_supports("avx512f") ? 32 : 16;
    }
    return width;
}

int seriatim_tap_wide_available(void) { return seriatim_tap_convolution_available() && __builtin_cpu_supports("avx512f"); }

/* The width asked for (0: the widest), or 0 where this CPU cannot run it. */
static int usableWidth(int width) {
    int widest = seriatim_tap_panel_width();
    if (width == 0) return widest;
    if (width == 16) return widest > 0 ? 16 : 0;
    return width == 32 && seriatim_tap_wide_available() ? 32 : 0;
}

/* One block of `rows` output rows over one panel of `width` columns, `count` of them real. */
static void anyBlock(int width, int rows, long depth, const float *w, const float *panel, float *out, long ldo,
                     int accumulate, long count) {
    if (width == 32) {
        if (rows == 6) wide6x32(depth, w, panel, out, ldo, accumulate, count);
        else wide4x32(depth, w, panel, out, ldo, accumulate, count);
    } else if (count == 16) {
        block(rows, depth, w, panel, out, ldo, accumulate);
    } else {
        partialBlock(rows, depth, w, panel, out, ldo, accumulate, count);
    }
}

/* dst[k · ld + r] = src[r · ls + k] for r < rows, k < length: four rows at a time by 4×4 transposes
   (the rest one by one), for the weight gradient's operands, which it reads across rows. */
AVX2 static void transposeRows(const float *src, long ls, int rows, long length, float *dst, long ld) {
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        long k = 0;
        for (; k + 4 <= length; k += 4) {
            __m128 a = _mm_loadu_ps(src + r * ls + k), b = _mm_loadu_ps(src + (r + 1) * ls + k);
            __m128 c = _mm_loadu_ps(src + (r + 2) * ls + k), d = _mm_loadu_ps(src + (r + 3) * ls + k);
            _MM_TRANSPOSE4_PS(a, b, c, d);
            _mm_storeu_ps(dst + k * ld + r, a);
            _mm_storeu_ps(dst + (k + 1) * ld + r, b);
            _mm_storeu_ps(dst + (k + 2) * ld + r, c);
            _mm_storeu_ps(dst + (k + 3) * ld + r, d);
        }
        for (; k < length; k++)
            for (int i = 0; i < 4; i++) dst[k * ld + r + i] = src[(r + i) * ls + k];
    }
    for (; r < rows; r++)
        for (long k = 0; k < length; k++) dst[k * ld + r] = src[r * ls + k];
}

int seriatim_tap_convolution(int outputs, int inputs, int taps, const float *packed,
                             const float *input, long inputLd, const long *shifts,
                             float *output, long outputLd, long columns, int accumulate, int panelWidth) {
    long depth = (long)taps * inputs;
    int width = usableWidth(panelWidth);
    if (outputs % 4 != 0 || depth > maximumDepth || width == 0) return 0;
    long offsets[maximumDepth];
    for (int t = 0; t < taps; t++)
        for (int i = 0; i < inputs; i++) offsets[(long)t * inputs + i] = i * inputLd + shifts[t];
    float *panel = aligned_alloc(64, (size_t)depth * width * sizeof(float));
    if (!panel) return 0;
    for (long j = 0; j < columns; j += width) {
        long count = columns - j < width ? columns - j : width;
        if (width == 32) packWidePanel(depth, input + j, offsets, count, panel);
        else packPanel(depth, input + j, offsets, count, panel);
        const float *w = packed;
        for (int first = 0, rows; first < outputs; first += rows, w += rows * depth) {
            rows = blockRows(outputs - first);
            anyBlock(width, rows, depth, w, panel, output + (long)first * outputLd + j, outputLd, accumulate, count);
        }
    }
    free(panel);
    return 1;
}

int seriatim_tap_weight_gradient(int outputs, int inputs, int taps, const float *gradient, long gradientLd,
                                 const float *input, long inputLd, const long *shifts, long columns, float *weightGradient,
                                 int panelWidth) {
    int width = usableWidth(panelWidth);
    if (outputs % 4 != 0 || width == 0) return 0;
    /* The contraction runs over columns, in chunks whose transposed operands stay in L2: the gradient
       as blocks of rows ([column][rows]), the input as panels of `width` channels ([column][width],
       zeros past `inputs`), each panel once for all taps (tap t starts shifts[t] columns on). */
    enum { chunk = 256 };
    long reach = 0;
    for (int t = 0; t < taps; t++) if (shifts[t] > reach) reach = shifts[t];
    int panels = (inputs + width - 1) / width;
    float *rowsT = aligned_alloc(64, (size_t)outputs * chunk * sizeof(float));
    float *inputT = aligned_alloc(64, (size_t)panels * (chunk + reach) * width * sizeof(float));
    if (!rowsT || !inputT) { free(rowsT); free(inputT); return 0; }
    for (long q0 = 0; q0 < columns; q0 += chunk) {
        long depth = columns - q0 < chunk ? columns - q0 : chunk, span = depth + reach;
        float *a = rowsT;
        for (int first = 0, rows; first < outputs; first += rows) {
            rows = blockRows(outputs - first);
            transposeRows(gradient + (long)first * gradientLd + q0, gradientLd, rows, depth, a, rows);
            a += (long)rows * depth;
        }
        for (int p = 0; p < panels; p++) {
            float *panel = inputT + (long)p * span * width;
            int real = inputs - p * width < width ? inputs - p * width : width;
            transposeRows(input + (long)p * width * inputLd + q0, inputLd, real, span, panel, width);
            for (int c = real; c < width; c++)
                for (long q = 0; q < span; q++) panel[q * width + c] = 0;
        }
        for (int p = 0; p < panels; p++) {
            long count = inputs - p * width < width ? inputs - p * width : width;
            for (int t = 0; t < taps; t++) {
                const float *panel = inputT + ((long)p * span + shifts[t]) * width;
                a = rowsT;
                for (int first = 0, rows; first < outputs; first += rows, a += (long)rows * depth) {
                    rows = blockRows(outputs - first);
                    float *out = weightGradient + ((long)t * outputs + first) * inputs + p * width;
                    anyBlock(width, rows, depth, a, panel, out, inputs, 1, count);
                }
            }
        }
    }
    free(rowsT);
    free(inputT);
    return 1;
}
#else
int seriatim_tap_convolution_available(void) { return 0; }
int seriatim_tap_panel_width(void) { return 0; }
int seriatim_tap_wide_available(void) { return 0; }

int seriatim_tap_convolution(int outputs, int inputs, int taps, const float *packed,
                             const float *input, long inputLd, const long *shifts,
                             float *output, long outputLd, long columns, int accumulate, int panelWidth) {
    (void)accumulate; (void)panelWidth; (void)outputs; (void)inputs; (void)taps; (void)packed; (void)input; (void)inputLd; (void)shifts;
    (void)output; (void)outputLd; (void)columns;
    return 0;
}

int seriatim_tap_weight_gradient(int outputs, int inputs, int taps, const float *gradient, long gradientLd,
                                 const float *input, long inputLd, const long *shifts, long columns, float *weightGradient,
                                 int panelWidth) {
    (void)panelWidth; (void)outputs; (void)inputs; (void)taps; (void)gradient; (void)gradientLd; (void)input; (void)inputLd; (void)shifts;
    (void)columns; (void)weightGradient;
    return 0;
}
#endif
