/* A sum of shifted matrix products, the inner loop of a masked convolution on a padded grid:
   output[o, j] += Σ_t Σ_i W_t[o, i] · input[i, j + shift_t]. The BLAS does this as one GEMM per tap,
   packing the input again for each and reloading the output each time; here every tap and input
   channel is one contraction of length taps·inputs: 16 columns of every shifted input row are
   copied once into a contiguous panel, and each 6×16 block of the output stays in twelve AVX
   registers across the whole contraction. */
#include "CKernels.h"

#include <stddef.h>
#include <stdlib.h>

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
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

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

int seriatim_tap_convolution(int outputs, int inputs, int taps, const float *packed,
                             const float *input, long inputLd, const long *shifts,
                             float *output, long outputLd, long columns, int accumulate) {
    long depth = (long)taps * inputs;
    if (outputs % 4 != 0 || depth > maximumDepth || !seriatim_tap_convolution_available()) return 0;
    long offsets[maximumDepth];
    for (int t = 0; t < taps; t++)
        for (int i = 0; i < inputs; i++) offsets[(long)t * inputs + i] = i * inputLd + shifts[t];
    float *panel = aligned_alloc(32, (size_t)depth * 16 * sizeof(float));
    if (!panel) return 0;
    for (long j = 0; j < columns; j += 16) {
        long count = columns - j < 16 ? columns - j : 16;
        packPanel(depth, input + j, offsets, count, panel);
        const float *w = packed;
        for (int first = 0, rows; first < outputs; first += rows, w += rows * depth) {
            rows = blockRows(outputs - first);
            float *out = output + (long)first * outputLd + j;
            if (count == 16) block(rows, depth, w, panel, out, outputLd, accumulate);
            else partialBlock(rows, depth, w, panel, out, outputLd, accumulate, count);
        }
    }
    free(panel);
    return 1;
}

int seriatim_tap_weight_gradient(int outputs, int inputs, int taps, const float *gradient, long gradientLd,
                                 const float *input, long inputLd, const long *shifts, long columns, float *weightGradient) {
    if (outputs % 4 != 0 || !seriatim_tap_convolution_available()) return 0;
    /* The contraction runs over columns, in chunks whose transposed operands stay in L2: the gradient
       as blocks of rows ([column][rows]), the input as panels of 16 channels ([column][16], zeros past
       `inputs`), each panel once for all taps (tap t starts shifts[t] columns on). */
    enum { chunk = 256 };
    long reach = 0;
    for (int t = 0; t < taps; t++) if (shifts[t] > reach) reach = shifts[t];
    int panels = (inputs + 15) / 16;
    float *rowsT = aligned_alloc(32, (size_t)outputs * chunk * sizeof(float));
    float *inputT = aligned_alloc(32, (size_t)panels * (chunk + reach) * 16 * sizeof(float));
    if (!rowsT || !inputT) { free(rowsT); free(inputT); return 0; }
    for (long q0 = 0; q0 < columns; q0 += chunk) {
        long depth = columns - q0 < chunk ? columns - q0 : chunk, span = depth + reach;
        float *a = rowsT;
        for (int first = 0, rows; first < outputs; first += rows) {
            rows = blockRows(outputs - first);
            for (int r = 0; r < rows; r++) {
                const float *g = gradient + (long)(first + r) * gradientLd + q0;
                for (long k = 0; k < depth; k++) a[k * rows + r] = g[k];
            }
            a += (long)rows * depth;
        }
        for (int p = 0; p < panels; p++) {
            float *panel = inputT + (long)p * span * 16;
            for (int c = 0; c < 16; c++) {
                int i = p * 16 + c;
                if (i >= inputs) { for (long q = 0; q < span; q++) panel[q * 16 + c] = 0; continue; }
                const float *x = input + (long)i * inputLd + q0;
                for (long q = 0; q < span; q++) panel[q * 16 + c] = x[q];
            }
        }
        for (int p = 0; p < panels; p++) {
            int width = inputs - p * 16 < 16 ? inputs - p * 16 : 16;
            for (int t = 0; t < taps; t++) {
                const float *panel = inputT + ((long)p * span + shifts[t]) * 16;
                a = rowsT;
                for (int first = 0, rows; first < outputs; first += rows, a += (long)rows * depth) {
                    rows = blockRows(outputs - first);
                    float *out = weightGradient + ((long)t * outputs + first) * inputs + p * 16;
                    if (width == 16) block(rows, depth, a, panel, out, inputs, 1);
                    else partialBlock(rows, depth, a, panel, out, inputs, 1, width);
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

int seriatim_tap_convolution(int outputs, int inputs, int taps, const float *packed,
                             const float *input, long inputLd, const long *shifts,
                             float *output, long outputLd, long columns, int accumulate) {
    (void)accumulate; (void)outputs; (void)inputs; (void)taps; (void)packed; (void)input; (void)inputLd; (void)shifts;
    (void)output; (void)outputLd; (void)columns;
    return 0;
}

int seriatim_tap_weight_gradient(int outputs, int inputs, int taps, const float *gradient, long gradientLd,
                                 const float *input, long inputLd, const long *shifts, long columns, float *weightGradient) {
    (void)outputs; (void)inputs; (void)taps; (void)gradient; (void)gradientLd; (void)input; (void)inputLd; (void)shifts;
    (void)columns; (void)weightGradient;
    return 0;
}
#endif
