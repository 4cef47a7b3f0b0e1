//! tus 1.0 resumable uploads. [`receiver`] is a server that never
//! acknowledges what is not on disk: each chunk is synced before the offset
//! advances, the upload's state is written atomically, and the final step
//! (moving the file into place, its receipt with the SHA-256) is durable
//! before the PATCH that completes the upload is answered. [`client`] is the
//! sending side (creation, chunked PATCHes with checksums, resuming from the
//! server's offset), and [`ledger`] the sender's durable record of every file.

pub mod client;
pub mod ledger;
pub mod receiver;

pub use client::{UploadError, Uploader};
pub use ledger::{Ledger, LedgerError, State};
pub use receiver::{Receipt, ReceiverConfig, serve};
