//! End-to-end tests: the real `gradient` binary, real interpreters, real PEP 517 backends,
//! run on the projects in `fixtures/`.

mod util;

mod architecture;
mod bad_input;
mod build;
mod cache;
mod commands;
mod container;
mod differential;
mod faults;
mod fidelity;
mod frozen;
mod hostile;
mod lock;
mod ospkg;
mod plan;
mod platforms;
mod release;
mod release_support;
mod report;
mod repositories;
mod run;
mod secrets;
mod signals;
mod smoke;
mod zipapp;
