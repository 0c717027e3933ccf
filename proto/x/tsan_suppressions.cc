// tsan_suppressions.cc: ThreadSanitizer's suppressions for the programs
// that decode SFS records on several colors at once (sfsd, sfsclient and
// the tests that drive them); linked into each as the object library
// `sfs_tsan_suppressions`. Outside a TSan build nothing calls it.
//
// Sealed file handles are not a multiple of 4 bytes long, and libtirpc's
// xdr_opaque() reads their XDR padding into one file-static scratch array:
// two colors decoding at once both write it. The bytes are thrown away, so
// the race is benign, and it is inside libtirpc (docs/rpc.md, "Under
// ThreadSanitizer"). libtirpc has no symbols for TSan to name, so the
// frames of the generated XDR routines (xdr_sfs_*) are what is suppressed.
// Without this, a TSan-built sfsd halts (halt_on_error=1) as soon as two
// connections decode handles at once, and every client sees its
// connection lost.
extern "C" const char* __tsan_default_suppressions() { return "race:xdr_sfs_\n"; }
