//! The admin's side: tools an Exchange admin runs beside the gate (explain a decision, check a
//! configuration, import the tenant from Exchange Online, report on an audit log) and the
//! observation endpoint (`[admin] listen`: metrics and health).

pub mod check;
pub mod config_check;
pub mod http;
pub mod import_exo;
pub mod report;
