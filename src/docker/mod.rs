//! Bottom layer: how mbx talks to Docker. The process runner (with the
//! `CommandError` of a failed child), the `docker buildx` CLI, the Engine API
//! and the BuildKit control-API dial. Uses no stage.

pub mod buildkit;
pub mod buildx;
pub mod engine;
pub mod load;
pub mod login;
pub mod process;

pub use crate::error::CommandError;
pub use buildx::{BuildOutcome, BuilderInfo, Buildx};
pub use engine::Docker;
