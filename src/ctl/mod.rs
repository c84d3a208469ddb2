//! `monitorctl` subcommands: operator tools over the monitor APIs and offline tools over local
//! files. Each submodule is one command family; `src/bin/monitorctl.rs` only parses arguments.
//! A command must never panic on what a user feeds it: bad input is a reported, counted error.

pub mod admin;
pub mod alerts;
pub mod hosts;
pub mod lp;
pub mod search;
