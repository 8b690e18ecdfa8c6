//! One module per subcommand; each returns the process exit code.

pub mod cancel;
pub mod doctor;
pub mod logs;
pub mod pools;
pub mod show;
pub mod status;
