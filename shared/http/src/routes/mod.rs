pub mod blob;
pub mod device;
pub mod devices;
pub mod firmware;
pub mod health;
pub mod logs;
pub mod observe;
pub mod rollouts;
