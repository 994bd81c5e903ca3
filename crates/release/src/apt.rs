//! An apt repository in the output folder: `Packages`, `Release`, a signed `InRelease`.
