/* The extension module indical.calib.combine._native: native.c, native_avx2.c and apply.c
 * linked into one shared object that the package build compiles. Python code calls their
 * entry points through ctypes (native.py loads this module's file), so the module itself
 * defines nothing. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native",
    "indical's compiled kernels (combine, apply); called through ctypes by "
    "indical.calib.combine.native.", -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&native_module); }
