mod copy;
mod policy;
mod postgres;
