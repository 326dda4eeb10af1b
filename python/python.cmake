# The Python module `irene` (pybind11 from Debian's pybind11-dev), built into build/python/irene:
#   PYTHONPATH=build/python python3 -c "import irene; print(irene.predict('gpt2')['energy_j'])"
# It links irene_core only (no libtorch). Debian's /usr/bin/python3 is used when present, so
# that the module matches the interpreter of python3-pytest and python3-pandas.
if(NOT DEFINED Python3_EXECUTABLE AND EXISTS /usr/bin/python3)
  set(Python3_EXECUTABLE /usr/bin/python3)
endif()
find_package(Python3 COMPONENTS Interpreter Development.Module REQUIRED)
set(PYBIND11_FINDPYTHON ON)
find_package(pybind11 CONFIG REQUIRED)

set(IRENE_PYTHON_DIR ${PROJECT_BINARY_DIR}/python/irene)
pybind11_add_module(irene_python MODULE ${PROJECT_SOURCE_DIR}/python/irene_module.cpp)
set_target_properties(irene_python PROPERTIES OUTPUT_NAME _irene LIBRARY_OUTPUT_DIRECTORY ${IRENE_PYTHON_DIR})
target_link_libraries(irene_python PRIVATE irene_core)
add_custom_command(
  OUTPUT ${IRENE_PYTHON_DIR}/__init__.py
  COMMAND ${CMAKE_COMMAND} -E copy ${PROJECT_SOURCE_DIR}/python/irene/__init__.py ${IRENE_PYTHON_DIR}/__init__.py
  DEPENDS ${PROJECT_SOURCE_DIR}/python/irene/__init__.py
  COMMENT "Copying the irene Python package")
add_custom_target(irene_python_package ALL DEPENDS ${IRENE_PYTHON_DIR}/__init__.py)
add_dependencies(irene_python irene_python_package)

if(IRENE_BUILD_TESTS)
  add_test(NAME Python COMMAND ${Python3_EXECUTABLE} -m pytest -q -p no:cacheprovider
           ${PROJECT_SOURCE_DIR}/tests/python)
  set_tests_properties(Python PROPERTIES TIMEOUT 300
    ENVIRONMENT "PYTHONPATH=${PROJECT_BINARY_DIR}/python;IRENE_SOURCE_DIR=${PROJECT_SOURCE_DIR};IRENE_BINARY=$<TARGET_FILE:irene_cli>")
endif()
