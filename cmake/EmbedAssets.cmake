# gen_durable_embed_assets(OUTPUT DIR): generates OUTPUT, a C++ file defining
#   gen_durable::detail::FindAsset(std::string_view path) -> const Asset* (nullptr if unknown)
# with every file under DIR as a byte array, so the dashboard is served from the binary with no
# build step of its own and no files to install. Regenerated when a file under DIR changes.
function(gen_durable_embed_assets output dir)
  file(GLOB_RECURSE assets CONFIGURE_DEPENDS RELATIVE ${dir} ${dir}/*)
  list(SORT assets)
  set(deps)
  foreach(a ${assets})
    list(APPEND deps ${dir}/${a})
  endforeach()
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -DOUTPUT=${output} -DDIR=${dir}
            -P ${PROJECT_SOURCE_DIR}/cmake/EmbedAssetsScript.cmake
    DEPENDS ${deps} ${PROJECT_SOURCE_DIR}/cmake/EmbedAssetsScript.cmake
    COMMENT "Embedding the dashboard's assets"
    VERBATIM)
endfunction()
