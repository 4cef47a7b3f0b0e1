pub mod diff;
pub mod drain;
pub mod inspect;
pub mod refresh;
pub mod verify_refresh;
