/* native.c compiled a second time for x86-64 CPUs with AVX2 (wider vectors for the sorting
 * network and the per-pixel sums); native.c's entry points choose this copy at run time when
 * the CPU has AVX2. Same source, same operations in the same order: the same results. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KERNEL_AVX2 1
#include "native.c"
#else
typedef int no_avx2_copy_on_this_target; /* (an empty file is not valid C) */
#endif
