mod copy;
mod policy;
