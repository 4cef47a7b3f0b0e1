pub mod diff;
pub mod inspect;
pub mod refresh;
