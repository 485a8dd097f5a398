// Lists the kernels in libmixgemm with the GPUs they run on, and checks a problem against each
// (shape rules need no GPU: group_size=100 is refused by every kernel before any device check).
#include <cstdio>

#include "mixgemm/mixgemm.h"

int main() {
  std::printf("mixgemm %s: %d kernels\n", mixgemm_version(), mixgemm_kernel_count());
  for (int i = 0; i < mixgemm_kernel_count(); ++i) {
    int caps[8];
    int n = mixgemm_kernel_capabilities(i, caps, 8);
    std::printf("%s runs on", mixgemm_kernel_name(i));
    for (int c = 0; c < n && c < 8; ++c) std::printf(" sm%d", caps[c]);
    std::printf("\n");
  }
  mixgemm_problem p;
  mixgemm_problem_init(&p);
  p.m = 1; p.n = 4096; p.k = 4096; p.group_size = 100;
  for (int i = 0; i < mixgemm_kernel_count(); ++i) {
    char err[256];
    int status = mixgemm_check(i, &p, err, sizeof err);
    std::printf("check %s: status %d (%s)\n", mixgemm_kernel_name(i), status, status ? err : "ok");
  }
  return 0;
}
