#include <cblas.h>
/* OpenBLAS extensions: thread control for the "BLAS threads or our own, never both" rule. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
/* The kernels chosen for this CPU (or forced by OPENBLAS_CORETYPE), e.g. "Haswell", "SkylakeX". */
char *openblas_get_corename(void);
