mod copy;
mod partitions;
mod policy;
mod postgres;
mod subset;
