# The web front end, embedded into libirene at build time (included from CMakeLists.txt).
#
# Sources: web/src/{template.html,style.css,app.js} and d3's bundle from npm
# (web/node_modules/d3/dist/d3.min.js, installed by `npm ci` in web/, which
# scripts/install-deps.sh runs). They become byte arrays in a generated .cpp that defines
# irene::explain::web_asset() (src/irene/explain/web_assets.hpp), so a report or the served
# page needs no network and no files at run time.
set(IRENE_WEB_DIR ${PROJECT_SOURCE_DIR}/web)
set(IRENE_D3_JS ${IRENE_WEB_DIR}/node_modules/d3/dist/d3.min.js)
if(NOT EXISTS ${IRENE_D3_JS})
  message(FATAL_ERROR
    "irene: ${IRENE_D3_JS} is missing. The report's chart library comes from npm: run "
    "`npm ci` in ${IRENE_WEB_DIR} (scripts/install-deps.sh does it), then configure again.")
endif()
set(IRENE_WEB_INPUTS
  ${IRENE_WEB_DIR}/src/template.html ${IRENE_WEB_DIR}/src/style.css ${IRENE_WEB_DIR}/src/app.js
  ${IRENE_D3_JS} ${IRENE_WEB_DIR}/node_modules/d3/LICENSE)
set(IRENE_WEB_CPP ${PROJECT_BINARY_DIR}/generated/irene_web_assets.cpp)
add_custom_command(
  OUTPUT ${IRENE_WEB_CPP}
  COMMAND ${CMAKE_COMMAND} -DOUT=${IRENE_WEB_CPP} -DWEB_DIR=${IRENE_WEB_DIR} -P ${IRENE_WEB_DIR}/embed.cmake
  DEPENDS ${IRENE_WEB_INPUTS} ${IRENE_WEB_DIR}/embed.cmake
  COMMENT "Embedding the web front end (d3 + app) into libirene"
  VERBATIM)
target_sources(irene_core PRIVATE ${IRENE_WEB_CPP})

# cpp-httplib for `irene serve` (explain/server.cpp): Debian ships it as a compiled library,
# built with these options; every file that includes httplib.h must see the same ones.
find_library(HTTPLIB_LIBRARY NAMES cpp-httplib REQUIRED)
target_link_libraries(irene_core PUBLIC ${HTTPLIB_LIBRARY})
target_compile_definitions(irene_core PUBLIC
  CPPHTTPLIB_OPENSSL_SUPPORT CPPHTTPLIB_ZLIB_SUPPORT CPPHTTPLIB_BROTLI_SUPPORT)

# The browser test (tests/browser/test_pages.mjs): Debian's chromium driven by playwright-core
# from web/node_modules, on the report and on `irene serve` (loopback, ephemeral port).
if(NOT DEFINED IRENE_BUILD_TESTS OR IRENE_BUILD_TESTS)
  enable_testing()
  find_program(NODE_EXECUTABLE node)
  if(NOT NODE_EXECUTABLE)
    message(FATAL_ERROR "irene: node is missing (the browser test and npm ci need Node.js)")
  endif()
  add_test(NAME ExplainBrowser
    COMMAND ${NODE_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/browser/test_pages.mjs
            --irene $<TARGET_FILE:irene_cli> --out ${PROJECT_BINARY_DIR}/browser)
  set_tests_properties(ExplainBrowser PROPERTIES TIMEOUT 180 ENVIRONMENT "IRENE_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endif()
