//! The storage ports' contract, as executable checks. Every backend's tests call [`meta_cases`],
//! [`fleet_cases`] and [`blob_cases`] with a factory for a fresh, empty store; a case panics (fails the test)
//! when the backend breaks the contract.

mod blobs;
pub mod fixtures;
mod fleet;
mod meta;

pub use blobs::blob_cases;
pub use fleet::fleet_cases;
pub use meta::meta_cases;
