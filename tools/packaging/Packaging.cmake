# Installation layout and the Debian package (docs/operations.md).
#
# `cmake --install build [--prefix P]` lays out, under P (default
# /usr/local; the .deb uses /usr):
#   bin/                         every executable built under tools/ and cairnd
#   share/cairn/cairnd.conf      the default configuration (the .deb's postinst
#                                copies it to /etc/cairn/cairnd.conf)
#   share/cairn/yang/            the CPE YANG modules
#   share/doc/cairn/             the operator docs
#   share/man/man1/              the man pages (cairnctl.1)
#   lib/systemd/system/cairnd.service   the hardened unit
# Every destination is relative, so a prefix install (tests, ansible's
# "prefix" install method) holds the whole layout.
include(GNUInstallDirs)

set(CAIRN_SHARE_DIR ${CMAKE_INSTALL_DATADIR}/cairn)
set(CAIRN_PACKAGING_DIR ${CMAKE_CURRENT_LIST_DIR})

# Executables: cairnd and whatever tools/ (and its subfolders) build, so a
# tool added there is installed without touching this file.
function(cairn_collect_executables dir out)
    get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
    get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
    set(found "")
    foreach(t IN LISTS targets)
        get_target_property(type ${t} TYPE)
        if(type STREQUAL "EXECUTABLE")
            list(APPEND found ${t})
        endif()
    endforeach()
    foreach(sub IN LISTS subdirs)
        cairn_collect_executables(${sub} sub_found)
        list(APPEND found ${sub_found})
    endforeach()
    set(${out} ${found} PARENT_SCOPE)
endfunction()

cairn_collect_executables(${CMAKE_SOURCE_DIR}/tools CAIRN_TOOL_EXECUTABLES)
install(TARGETS cairnd ${CAIRN_TOOL_EXECUTABLES} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(FILES ${CAIRN_PACKAGING_DIR}/cairnd.conf DESTINATION ${CAIRN_SHARE_DIR})
file(GLOB CAIRN_YANG_MODULES ${CMAKE_SOURCE_DIR}/southbound/yang/*.yang)
install(FILES ${CAIRN_YANG_MODULES} DESTINATION ${CAIRN_SHARE_DIR}/yang)
# Man pages (docs/*.1: cairnctl's).
file(GLOB CAIRN_MAN_PAGES ${CMAKE_SOURCE_DIR}/docs/*.1)
install(FILES ${CAIRN_MAN_PAGES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_SOURCE_DIR}/docs/operations.md ${CMAKE_SOURCE_DIR}/docs/configuration.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The unit names absolute paths: those of the package (prefix /usr) unless
# CAIRN_UNIT_PREFIX says otherwise.
set(CAIRN_UNIT_PREFIX "/usr" CACHE PATH "prefix the systemd unit's ExecStart points into")
set(CAIRN_BIN_DIR ${CAIRN_UNIT_PREFIX}/${CMAKE_INSTALL_BINDIR})
set(CAIRN_DOC_DIR ${CAIRN_UNIT_PREFIX}/${CMAKE_INSTALL_DOCDIR})
configure_file(${CAIRN_PACKAGING_DIR}/cairnd.service.in ${CMAKE_BINARY_DIR}/cairnd.service @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/cairnd.service DESTINATION lib/systemd/system)

# CPack: `cpack --config build/CPackConfig.cmake -B build/pkg` (or
# `cmake --build build --target package`) builds cairn_VERSION_ARCH.deb.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cairn)
set(CPACK_PACKAGE_VERSION ${CAIRN_VERSION})
set(CPACK_PACKAGE_VENDOR "Cairn")
set(CPACK_PACKAGE_CONTACT "Cairn maintainers <cairn@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "clustered service orchestrator for customer-premises devices")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
# Depends: the runtime libraries, computed by dpkg-shlibdeps from the
# binaries (libraft2 from bookworm-backports, libuv1, librocksdb7.8, ...),
# plus passwd for useradd in the postinst and libraft0 >= 0.22.1 (older
# libraft can overwrite committed entries; see docs/design.md).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd, libraft0 (>= 0.22.1)")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CAIRN_PACKAGING_DIR}/postinst ${CAIRN_PACKAGING_DIR}/prerm ${CAIRN_PACKAGING_DIR}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
