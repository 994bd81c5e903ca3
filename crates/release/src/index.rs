//! Wheel and sdist to a package index, through the upload API twine uses.
