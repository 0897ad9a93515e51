// SLUICE_ASAN is defined when AddressSanitizer instruments this build: gcc says so with
// __SANITIZE_ADDRESS__, clang (the CI's ASan build) only through __has_feature.
#pragma once

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLUICE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(SLUICE_ASAN)
#define SLUICE_ASAN 1
#endif
