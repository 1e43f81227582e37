/* The extension module indical.calib.combine._native: native.c, native_avx2.c and apply.c
 * linked into one shared object that the package build compiles. Python code calls their
 * entry points through ctypes (native.py loads this module's file), so the module itself
 * defines nothing but the hash of the sources it was built from. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* sha256 of the kernel's C sources (setup.py computes it): what a Dask client compares with
 * its workers' (indical.calib.cluster_tasks.this_build). */
#ifndef IND_SOURCE_SHA
#define IND_SOURCE_SHA "unknown"
#endif
const char *ind_source_sha(void) { return IND_SOURCE_SHA; }

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native",
    "indical's compiled kernels (combine, apply); called through ctypes by "
    "indical.calib.combine.native.", -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&native_module); }
