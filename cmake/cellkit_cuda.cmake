# Finds nvcc (on PATH, else /usr/local/cuda) and enables the CUDA language for cellkit's targets.
macro(cellkit_enable_cuda)
  if(NOT CMAKE_CUDA_COMPILER)
    find_program(CELLKIT_NVCC nvcc HINTS ENV CUDA_PATH PATHS /usr/local/cuda/bin NO_CACHE)
    if(NOT CELLKIT_NVCC)
      message(FATAL_ERROR "CELLKIT_ENABLE_CUDA=ON but nvcc was found neither on PATH nor in /usr/local/cuda/bin")
    endif()
    set(CMAKE_CUDA_COMPILER "${CELLKIT_NVCC}")
  endif()
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)  # Hopper (H100/H200); override with -DCMAKE_CUDA_ARCHITECTURES=...
  endif()
  if(NOT DEFINED CMAKE_CUDA_HOST_COMPILER)
    set(CMAKE_CUDA_HOST_COMPILER "${CMAKE_CXX_COMPILER}")
  endif()
  enable_language(CUDA)
  # CMake 3.25 does not know the dialect flags of nvcc 13, so the standard is passed directly
  # (by cellkit's INTERFACE target) instead of through CMAKE_CUDA_STANDARD.
endmacro()
