//! tus 1.0 resumable uploads. [`receiver`] is a server that never
//! acknowledges what is not on disk: each chunk is synced before the offset
//! advances, the upload's state is written atomically, and the final step
//! (moving the file into place, its receipt with the SHA-256) is durable
//! before the PATCH that completes the upload is answered. [`client`] is the
//! sending side (creation, chunked PATCHes with checksums, resuming from the
//! server's offset), [`ledger`] the sender's durable record of every file,
//! [`verify`] the independent proof that a file is on the receiver, and
//! [`deliver`] the whole: send, verify, replay what went missing. [`auth`]
//! keeps a sign-in fresh, [`exchange`] is the data-exchange service's
//! contract (manifest, info verdicts), and [`reconcile`] compares the
//! ledger with what that service's status API lists.

pub mod auth;
pub mod client;
pub mod deliver;
pub mod exchange;
pub mod ledger;
mod parts;
pub mod receiver;
pub mod reconcile;
pub mod verify;

pub use auth::{Auth, AuthError, Grant, SignIn};
pub use client::{Created, Protocol, UploadError, Uploader};
pub use deliver::{
    DeliveryError, DeliveryProgress, FileToSend, NoDeliveryProgress, Pass, Replay, Sent,
};
pub use ledger::{Entry, Ledger, LedgerError, Part, State, Transition};
pub use receiver::{Receipt, ReceiverConfig, serve};
pub use verify::{Expectation, Finding, Probe, Verdict, Verifier};
