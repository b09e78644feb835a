/* glibc allocator tuning (mallopt), used by Tensors.Allocator. */
#include <malloc.h>
