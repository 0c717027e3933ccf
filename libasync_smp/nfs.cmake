# asmp_nfs: the libnfs adapter (asmp/nfs.h), a library of its own so that the
# core runtime does not depend on libnfs. Built only where libnfs is found.
# GLOBAL: tests/ builds a raw libnfs client of its own (nfs_intruder).
pkg_check_modules(LIBNFS IMPORTED_TARGET GLOBAL libnfs)
if(LIBNFS_FOUND)
  add_library(asmp_nfs
    src/nfs/calls.cc
    src/nfs/client.cc
    src/nfs/connection.cc
    src/nfs/procedures_read.cc
    src/nfs/procedures_write.cc
    src/nfs/types.cc
  )
  target_include_directories(asmp_nfs PUBLIC include)
  target_compile_options(asmp_nfs PRIVATE ${SFS_WARNINGS})
  target_link_libraries(asmp_nfs PUBLIC asmp PRIVATE PkgConfig::LIBNFS)
else()
  message(STATUS "libnfs not found: asmp_nfs, its tests and nfs_read_bench are skipped")
endif()
