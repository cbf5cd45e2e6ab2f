// lane-insert: times the instruction pattern Mesa 22.3 llvmpipe emits for every element of a
// storage or workgroup-memory load (see bench/RESULTS.notes.md, "What a load costs on
// llvmpipe"): for each SIMD lane, a scalar load, then an insert of that scalar into a 256-bit
// vector at a lane index held in a register, which LLVM lowers to
//     vmovdqa %ymm, (stack)      ; spill the whole vector
//     mov     %eax, (stack,idx,4); overwrite one dword
//     vmovdqa (stack), %ymm      ; reload: a 32-byte load over a 4-byte store -> the store
//                                ;   cannot be forwarded; the load waits for it to commit
// The lanes of one vector form a serial chain of such reloads. Compared against the same chain
// done in registers (broadcast + blend with a lane mask), which is what a constant lane index
// or a gather would cost. Prints nanoseconds per inserted element for both.
//   gcc -O2 -mavx2 -o lane-insert lane-insert.c && ./lane-insert
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

static int32_t src[1024];
static __m256i slot __attribute__((aligned(32)));

__attribute__((noinline)) static __m256i chain_memory(long iters) {
  __m256i v = _mm256_setzero_si256();
  for (long it = 0; it < iters; it++) {
    for (long lane = 0; lane < 8; lane++) {
      int32_t x = src[(it * 8 + lane) & 1023];
      __asm__ volatile(
          "vmovdqa %0, (%2)\n\t"
          "movl %1, (%2,%3,4)\n\t"
          "vmovdqa (%2), %0\n\t"
          : "+x"(v) : "r"(x), "r"(&slot), "r"(lane) : "memory");
    }
  }
  return v;
}

__attribute__((noinline)) static __m256i chain_register(long iters) {
  __m256i v = _mm256_setzero_si256();
  const __m256i ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (long it = 0; it < iters; it++) {
    for (long lane = 0; lane < 8; lane++) {
      int32_t x = src[(it * 8 + lane) & 1023];
      __m256i m = _mm256_cmpeq_epi32(ids, _mm256_set1_epi32((int)lane));
      v = _mm256_blendv_epi8(v, _mm256_set1_epi32(x), m);
      __asm__ volatile("" : "+x"(v));
    }
  }
  return v;
}

int main(void) {
  for (int i = 0; i < 1024; i++) src[i] = i * 7;
  const long iters = 2000000;
  volatile int sink = 0;
  double best_m = 1e30, best_r = 1e30;
  for (int rep = 0; rep < 5; rep++) {
    double t0 = now_ns();
    __m256i a = chain_memory(iters);
    double t1 = now_ns();
    __m256i b = chain_register(iters);
    double t2 = now_ns();
    sink += _mm256_extract_epi32(a, 3) + _mm256_extract_epi32(b, 5);
    if (t1 - t0 < best_m) best_m = t1 - t0;
    if (t2 - t1 < best_r) best_r = t2 - t1;
  }
  double n = (double)iters * 8;
  printf("{\"spillInsertNs\": %.3f, \"registerInsertNs\": %.3f, \"ratio\": %.2f}\n", best_m / n, best_r / n, best_m / best_r);
  return sink == 42 ? 1 : 0;
}
