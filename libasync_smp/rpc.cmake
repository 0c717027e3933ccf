# asmp_rpc: Sun RPC over TCP on the runtime (record marking, async client and
# server, a record filter point). XDR comes from libtirpc.
pkg_check_modules(TIRPC REQUIRED IMPORTED_TARGET libtirpc)
add_library(asmp_rpc
  src/rpc/transport.cc
  src/rpc/transport_output.cc
  src/rpc/record_buf.cc
  src/rpc/tcp_connect.cc
  src/rpc/messages.cc
  src/rpc/connection.cc
  src/rpc/call.cc
  src/rpc/server.cc
  src/rpc/address.cc
  src/rpc/acceptor.cc
)
target_include_directories(asmp_rpc PUBLIC include)
target_compile_options(asmp_rpc PRIVATE ${SFS_WARNINGS})
target_link_libraries(asmp_rpc PUBLIC asmp PkgConfig::TIRPC)
