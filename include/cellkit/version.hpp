#pragma once
/// @file
/// cellkit's version, as numbers for preprocessor tests and as a string.

#define CELLKIT_VERSION_MAJOR 0
#define CELLKIT_VERSION_MINOR 1
#define CELLKIT_VERSION_PATCH 0
#define CELLKIT_VERSION_STRING "0.1.0"

namespace cellkit {
inline constexpr int version_major = CELLKIT_VERSION_MAJOR;
inline constexpr int version_minor = CELLKIT_VERSION_MINOR;
inline constexpr int version_patch = CELLKIT_VERSION_PATCH;
inline constexpr const char* version_string = CELLKIT_VERSION_STRING;
}  // namespace cellkit
