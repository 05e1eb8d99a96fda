//! One file per subcommand: arguments → plan → pipeline → emit → exit status.

mod build;
mod cache;
mod ci;
mod merge;
mod report;
mod setup;
mod verify;

pub use crate::pipeline::ExitStatus;
pub use build::build;
pub use cache::cache;
pub use ci::ci;
pub use merge::merge;
pub use report::report;
pub use setup::setup;
pub use verify::verify;
