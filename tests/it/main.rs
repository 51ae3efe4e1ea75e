//! The one integration-test binary: black-box tests against the real app.

mod harness;

mod architecture;
mod backup;
mod bad_input;
mod channels;
mod chat;
mod ci_protocol;
mod cli;
mod delivery;
mod e2e_semgrep;
mod egress;
mod hardening;
mod limits;
mod migrations;
mod multinode;
mod openapi;
mod proxy;
mod receiver;
mod retention;
mod routing;
mod security;
mod snapshots;
mod ui;
mod ui_browser;
mod uploads;
