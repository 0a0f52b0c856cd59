//! The one-shot commands an Exchange admin runs beside the gate: explain a decision (`check`),
//! check a configuration (`config check`), print it with every default filled in (`config
//! show`), import the tenant from Exchange Online (`import-exo`), report on an audit log
//! (`report`), tell one message's story from the log (`trace`), hash a submission user's password
//! (`passwd`), and `serve`, which runs the gate.
//! Each is its own module with a `run` function; `main.rs` only parses the command line and
//! dispatches.

pub mod check;
pub mod config_check;
pub mod config_show;
pub mod import_exo;
pub mod passwd;
pub mod report;
pub mod serve;
pub mod trace;

use crate::config::{Config, Settings};
use std::process::ExitCode;

/// Load and validate a configuration before anything runs; exit status 2 when it fails.
pub fn load_settings(config: &std::path::Path) -> Result<Settings, ExitCode> {
    Config::load(config)
        .and_then(|c| c.validate())
        .map_err(|e| {
            eprintln!("relaygate: {e}");
            ExitCode::from(2)
        })
}
