// glibc malloc tuning (lt_malloc_tune), which the Java side applies once at load unless the
// user opted out or chose an allocator setting of their own; see NativeLibrary's Javadoc.
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "internal.h"

extern "C" lt_status lt_malloc_tune(int64_t mmap_threshold, int64_t trim_threshold, int64_t top_pad) {
    LT_BODY(
#if defined(__GLIBC__)
        const int64_t max_int = 0x7fffffff;
        auto set = [&](int option, int64_t value, const char* name) {
            if (value < 0) return;
            if (value > max_int || mallopt(option, static_cast<int>(value)) != 1)
                throw std::invalid_argument(std::string("glibc refused ") + name + " = " + std::to_string(value));
        };
        set(M_MMAP_THRESHOLD, mmap_threshold, "M_MMAP_THRESHOLD");
        set(M_TRIM_THRESHOLD, trim_threshold, "M_TRIM_THRESHOLD");
        set(M_TOP_PAD, top_pad, "M_TOP_PAD");
#else
        throw c10::NotImplementedError({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                                       "lt_malloc_tune needs glibc");
#endif
    );
}
