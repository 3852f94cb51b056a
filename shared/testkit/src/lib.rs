//! What the workspace's tests (and `cargo xtask`) need to run the service's processes the same
//! way everywhere: [`server::OtaServer`], a real `ota-server` per test; [`process::Process`], the
//! spawning, output draining and stopping under it, for other deployments too; and
//! [`cargo_env`], the variables a command that runs cargo must not inherit from the crate that
//! cargo is running; [`multipart::form`], an upload body for clients that write bytes.

pub mod cargo_env;
pub mod multipart;
pub mod process;
pub mod server;
