/* Included in every C and C++ file of numpy's build (build_numpy.sh). glibc 2.35
   gave hypot and hypotf new symbol versions; Lambda's python3.12 runtime has glibc
   2.34, so the build links the versions every x86-64 glibc has. */
#if defined(__x86_64__) && defined(__linux__)
__asm__(".symver hypot,hypot@GLIBC_2.2.5");
__asm__(".symver hypotf,hypotf@GLIBC_2.2.5");
#endif
