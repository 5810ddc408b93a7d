# `cmake --install BUILD --prefix P`: the library, its public headers, the CLI,
# the default models and configs, and the CMake package (find_package(airm)
# gives airm::airm).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(AIRM_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/airm)
set(AIRM_INSTALL_MODELSDIR ${CMAKE_INSTALL_DATADIR}/airm/models)
set(AIRM_INSTALL_CONFIGSDIR ${CMAKE_INSTALL_DATADIR}/airm/configs)

install(TARGETS airm airm_build_flags EXPORT airmTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/airm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(AIRM_BUILD_APPS)
  install(TARGETS airm_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/models/ DESTINATION ${AIRM_INSTALL_MODELSDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs/ DESTINATION ${AIRM_INSTALL_CONFIGSDIR})

install(EXPORT airmTargets NAMESPACE airm:: DESTINATION ${AIRM_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/airmConfig.cmake.in
  ${PROJECT_BINARY_DIR}/airmConfig.cmake
  INSTALL_DESTINATION ${AIRM_INSTALL_CMAKEDIR}
  PATH_VARS AIRM_INSTALL_MODELSDIR AIRM_INSTALL_CONFIGSDIR CMAKE_INSTALL_BINDIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/airmConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/airmConfig.cmake ${PROJECT_BINARY_DIR}/airmConfigVersion.cmake
  DESTINATION ${AIRM_INSTALL_CMAKEDIR})
