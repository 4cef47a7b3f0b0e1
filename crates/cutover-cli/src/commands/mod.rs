pub mod diff;
pub mod drain;
pub mod hold;
pub mod inspect;
pub mod receive;
pub mod refresh;
pub mod send;
pub mod verify_refresh;
