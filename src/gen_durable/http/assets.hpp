// The dashboard's static files, embedded in the binary at build time (cmake/EmbedAssets.cmake).
#pragma once

#include <cstddef>
#include <string_view>

namespace gen_durable::detail {

struct Asset {
  std::string_view path;          // "/index.html"
  std::string_view content_type;  // "text/html; charset=utf-8"
  const char* data;
  std::size_t size;
};

// The asset at `path` (starting with "/"), or nullptr.
const Asset* FindAsset(std::string_view path);

}  // namespace gen_durable::detail
