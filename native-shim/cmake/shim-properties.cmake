# Writes liblora4j.properties beside liblora4j.so: what the shim was built for, read by the Java
# side (NativeLibrary) to pick the shim that matches the LibTorch present and to refuse one built
# for another LibTorch with a clear message. Run by CMakeLists.txt after every link:
#   cmake -DSHIM=... -DOUT=... -DOBJDUMP=... -DTORCH_VERSION=... -DPLATFORM=... -P shim-properties.cmake
execute_process(COMMAND "${OBJDUMP}" -p "${SHIM}" OUTPUT_VARIABLE dump RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "objdump -p ${SHIM} failed")
endif()
string(REGEX MATCHALL "NEEDED +lib(torch|c10)[^\n ]*" needed_lines "${dump}")
set(needed "")
foreach(line IN LISTS needed_lines)
  string(REGEX REPLACE "NEEDED +" "" lib "${line}")
  list(APPEND needed "${lib}")
endforeach()
# libc10 first: the Java side probes it to tell which LibTorch is present.
list(SORT needed)
string(REPLACE ";" "," needed "${needed}")
string(REGEX MATCH "^[0-9]+\\.[0-9]+" line "${TORCH_VERSION}")
file(WRITE "${OUT}.tmp"
  "# Written by native-shim/cmake/shim-properties.cmake: what liblora4j.so was built for.\n"
  "libtorch.version=${TORCH_VERSION}\n"
  "libtorch.line=${line}\n"
  "platform=${PLATFORM}\n"
  "classifier=${PLATFORM}-libtorch${line}\n"
  "needed=${needed}\n")
file(RENAME "${OUT}.tmp" "${OUT}")
