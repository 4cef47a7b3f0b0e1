//! tus 1.0 resumable uploads. [`receiver`] is a server that never
//! acknowledges what is not on disk: each chunk is synced before the offset
//! advances, the upload's state is written atomically, and the final step
//! (moving the file into place, its receipt with the SHA-256) is durable
//! before the PATCH that completes the upload is answered.

pub mod receiver;

pub use receiver::{Receipt, ReceiverConfig, serve};
