pub mod diff;
pub mod inspect;
pub mod refresh;
pub mod verify_refresh;
