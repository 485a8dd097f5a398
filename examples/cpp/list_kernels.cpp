// Lists the kernels in libmixgemm and checks a problem against the first one (no GPU needed to list).
#include <cstdio>

#include "mixgemm/mixgemm.h"

int main() {
  std::printf("mixgemm %s: %d kernels\n", mixgemm_version(), mixgemm_kernel_count());
  for (int i = 0; i < mixgemm_kernel_count(); ++i)
    std::printf("%s sm%d\n", mixgemm_kernel_name(i), mixgemm_kernel_arch(i));
  if (mixgemm_kernel_count() > 0) {
    mixgemm_problem p{};
    p.m = 1; p.n = 4096; p.k = 4096; p.group_size = 100;
    char err[256];
    int status = mixgemm_check(0, &p, err, sizeof err);
    std::printf("check: status %d (%s)\n", status, status ? err : "ok");
  }
  return 0;
}
