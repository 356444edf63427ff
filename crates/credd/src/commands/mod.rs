//! One file per command (or command group); `main.rs` dispatches to them.
//! A command file imports leaves only (see `main.rs` for the layering),
//! never another command file.

pub mod audit;
pub mod completions;
pub mod console;
pub mod credential_process;
pub mod decode_message;
pub mod demo;
pub mod docker;
pub mod docker_setup;
pub mod doctor;
pub mod env;
pub mod exec;
pub mod keys;
pub mod login;
pub mod login_saml;
pub mod mfa;
pub mod prompt;
pub mod relay;
pub mod serve;
pub mod service;
pub mod status;
pub mod token;
pub mod whoami;
pub mod write_credentials;
