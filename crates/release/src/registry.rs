//! Images to a registry over the OCI distribution API, without a daemon.
