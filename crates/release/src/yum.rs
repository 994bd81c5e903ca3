//! A yum/dnf repository in the output folder: `repodata/` with a signed `repomd.xml`.
