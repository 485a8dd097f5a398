# mixgemm CMake package: the kernel library and its C API, as installed with the Python package.
#   find_package(mixgemm REQUIRED)   # -Dmixgemm_DIR=$(mixgemm cmake-dir)
#   target_link_libraries(app PRIVATE mixgemm::mixgemm)
get_filename_component(_mixgemm_root "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)  # .../site-packages/mixgemm
include(CMakeFindDependencyMacro)
find_dependency(CUDAToolkit)  # mixgemm.h names cudaStream_t
if(NOT TARGET mixgemm::mixgemm)
  add_library(mixgemm::mixgemm SHARED IMPORTED)
  set_target_properties(mixgemm::mixgemm PROPERTIES
    IMPORTED_LOCATION "${_mixgemm_root}/libmixgemm.so"
    INTERFACE_INCLUDE_DIRECTORIES "${_mixgemm_root}/include"
    INTERFACE_LINK_LIBRARIES CUDA::toolkit)
endif()
set(mixgemm_FOUND TRUE)
