// tsan_suppressions_test.cc: this test binary's ThreadSanitizer
// suppressions (no tests here). Its clients decode sealed file handles, whose
// length is not a multiple of 4, on several colors at once, and libtirpc's
// xdr_opaque() writes their padding into one file-static scratch array: a
// benign race inside libtirpc (docs/rpc.md, "Under ThreadSanitizer").
// libtirpc has no symbols for TSan to name, so the frames of the generated
// XDR routines (xdr_sfs_*) are suppressed, for this binary only, as
// tests/conn does.
extern "C" const char* __tsan_default_suppressions() { return "race:xdr_sfs_\n"; }
