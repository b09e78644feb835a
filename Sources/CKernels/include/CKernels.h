#ifndef SERIATIM_CKERNELS_H
#define SERIATIM_CKERNELS_H
/* Hand-vectorised kernels the BLAS has no call for. C, because the register blocking they need
   (twelve AVX accumulators) is what Swift's code generator spills. Compiled for AVX2 + FMA (the tap
   products and the input transform also for AVX-512) per function and chosen at run time, so a build
   still runs on any x86-64 (callers fall back to BLAS). */

/* The longest contraction (taps · inputs) `seriatim_tap_convolution` takes. */
#define SERIATIM_TAP_MAXIMUM_DEPTH 8192

/* Whether this CPU runs the AVX2 + FMA kernels below. */
int seriatim_tap_convolution_available(void);

/* The columns the shifted-tap products below work on at a time by default: 32 with AVX-512 F (six
   rows × 32 columns in twelve 512-bit registers), 16 with AVX2 only (six rows × 16 in twelve 256-bit
   ones), 0 where neither runs; 16 with SERIATIM_KERNELS=avx2 in the environment (to measure one
   against the other). Each product takes a `panelWidth`: 0 for this default, or 16 or 32 (the tests
   run both); a width the CPU cannot run makes it return 0. */
int seriatim_tap_panel_width(void);
/* Whether blocks of 32 columns (AVX-512 F) run on this CPU. */
int seriatim_tap_wide_available(void);

/* Packs the weights of a shifted-tap product for `seriatim_tap_convolution` (outputs · inputs · taps
   floats): weight (t, o, i) is weights[t * tapStride + o * outputStride + i * inputStride] (so a
   transpose is a swap of strides). `outputs` must be a multiple of 4. */
void seriatim_pack_tap_weights(int outputs, int inputs, int taps, const float *weights,
                               long tapStride, long outputStride, long inputStride, float *packed);

/* output[o * outputLd + j] += Σ_t Σ_i weight(t, o, i) · input[i * inputLd + j + shifts[t]]
   for o < outputs, j < columns (shifts ≥ 0), with `packed` from `seriatim_pack_tap_weights`;
   with `accumulate` 0, = instead of += (the output need not be initialised).
   Returns 0 (and does nothing) if the CPU lacks AVX2 + FMA or taps · inputs exceeds SERIATIM_TAP_MAXIMUM_DEPTH. */
int seriatim_tap_convolution(int outputs, int inputs, int taps, const float *packed,
                             const float *input, long inputLd, const long *shifts,
                             float *output, long outputLd, long columns, int accumulate, int panelWidth);

/* The weights' gradient of the same product: weightGradient[(t * outputs + o) * inputs + i] +=
   Σ_{q < columns} gradient[o * gradientLd + q] · input[i * inputLd + q + shifts[t]] (shifts ≥ 0).
   Returns 0 (and does nothing) if the CPU lacks AVX2 + FMA or outputs is not a multiple of 4. */
int seriatim_tap_weight_gradient(int outputs, int inputs, int taps, const float *gradient, long gradientLd,
                                 const float *input, long inputLd, const long *shifts, long columns, float *weightGradient,
                                 int panelWidth);

/* Winograd F(4, 3) along a row of `tiles` tiles of four columns (at most 1024 tiles), with the six
   transform points of tile k at points[ξ · plane + k]. The two that write points write whole blocks
   of eight tiles: up to 7 points past the last tile of each plane (the next row's, if written after,
   or padding). Each returns 0 (and does nothing) for a tile
   count out of range; call them only where `seriatim_tap_convolution_available()`. A `prefetch`
   other than 0 asks for the input row (or gate) that many floats on, the next channel's, to be
   fetched into cache meanwhile.
   Input: points = Bᵀ · row[4k … 4k + 5] (row at column −1 of the image row; its ReLU with `relu`). */
int seriatim_winograd_input(const float *row, int tiles, int relu, float *points, long plane, long prefetch);
/* Output: row[4k … 4k + 3] = Aᵀ · points + bias (+ residual[4k …] when not NULL). */
int seriatim_winograd_output(const float *points, long plane, int tiles, float bias, const float *residual, float *row);
/* The adjoint of the output transform: points = A · row[4k … 4k + 3]; adds the row's sum to *sum
   when `sum` is not NULL (a bias gradient). */
int seriatim_winograd_gradient(const float *row, int tiles, float *points, long plane, float *sum);
/* The adjoint of the input transform, overlapping tiles added, for the image columns 0 … 4·tiles − 1:
   row[c] = (B · points)[column c], zero where gate[c] ≤ 0 (when gate is not NULL), plus residual[c]
   (when not NULL). */
int seriatim_winograd_input_gradient(const float *points, long plane, int tiles, const float *gate,
                                     const float *residual, float *row, long prefetch);

/* The four transforms for two consecutive rows at once (AVX-512; rows of 4…7 tiles): row B is `stride`
   floats after row A (and so are its gate and residual); the points of row A's tiles, then row B's, are
   2·tiles in a row from `points` in each plane. The two that write points write up to 8 floats past
   them; rows are written only in their image columns. Call only where `seriatim_winograd_row_pairs(tiles)`;
   each returns 0 (and does nothing) otherwise. The gradient adds row A's sum to *sumA and row B's to *sumB
   (either may be NULL). */
int seriatim_winograd_row_pairs(int tiles);
int seriatim_winograd_input_pair(const float *row, long stride, int tiles, int relu, float *points, long plane, long prefetch);
int seriatim_winograd_output_pair(const float *points, long plane, int tiles, float bias, const float *residual,
                                  float *row, long stride);
int seriatim_winograd_gradient_pair(const float *row, long stride, int tiles, float *points, long plane,
                                    float *sumA, float *sumB);
int seriatim_winograd_input_gradient_pair(const float *points, long plane, int tiles, const float *gate,
                                          const float *residual, float *row, long stride, long prefetch);

/* A hint to the core that the caller is spinning on a flag (x86 PAUSE; nothing elsewhere). */
static inline void seriatim_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
#endif
